"""Build and run the UART-level simulation of the board design (sim/uart_tb.py).

``build_uart(cfg, sim, divisor, timeout)`` compiles ``anyprec_uart_top``
(boards/bridge.py) once per (configuration, simulator, divisor, timeout, sources), cached
like :func:`anyprec.sim.runner.build`; ``run_uart(...)`` runs one job on it: load a
network through the UART with the host driver, infer at several precisions, return the
logits.
"""

import hashlib
import json
import tempfile
import time
from pathlib import Path

from ..hw.config import AnyprecConfig
from .runner import (SimulationFailed, cache_root, cell_sources, _locked,
                     _fix_verilator_make, _source_digest, _failures, _TIMESCALE)
from .tools import resolve_sim, setup_env, tool_versions

__all__ = ["build_uart", "run_uart", "TOPLEVEL"]

TOPLEVEL = "anyprec_uart_top"
_BOARDS = Path(__file__).resolve().parent.parent / "boards"


def _digest():
    h = hashlib.sha256(_source_digest().encode())
    for p in sorted(_BOARDS.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def build_uart(cfg, sim=None, *, divisor=4, timeout=4000, target="generic"):
    """Compile (or reuse) the UART board design for ``target`` (``hw.config.TARGETS``;
    ``"ecp5"`` with yosys' models of its carry cells, as :func:`anyprec.sim.runner.build`);
    returns ``(build_dir, sim, seconds)``."""
    from cocotb_tools.runner import get_runner
    from ..boards.bridge import generate_uart_verilog
    from ..hw.top import VERILATOR_WAIVERS, cell_models

    models = cell_models(target)       # also rejects an unknown target
    sim = resolve_sim(sim)
    setup_env()
    key_src = json.dumps({"cfg": cfg.to_dict(), "sim": sim, "divisor": divisor,
                          "timeout": timeout, "target": target, "tools": tool_versions(sim),
                          "models": hashlib.sha256(models.encode()).hexdigest(),
                          "src": _digest()}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    bdir = cache_root() / f"uart-{sim}" / key
    stamp = bdir / ".built"
    t0 = time.monotonic()
    with _locked(cache_root() / f"uart-{sim}" / f"{key}.lock"):
        if not stamp.exists():
            bdir.mkdir(parents=True, exist_ok=True)
            vfile = bdir / f"{TOPLEVEL}.v"
            # A short heartbeat / busy stretch keeps the LED logic exercised in simulation.
            vfile.write_text(generate_uart_verilog(cfg, divisor=divisor, timeout=timeout,
                                                   heartbeat_bits=8, stretch_bits=4,
                                                   target=target))
            sources = cell_sources(bdir, models) + [vfile]
            runner = get_runner(sim)
            if sim == "verilator":
                _fix_verilator_make()
            args = list(VERILATOR_WAIVERS) if sim == "verilator" else ["-g2005"]
            try:
                runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=bdir,
                             timescale=_TIMESCALE, build_args=args, always=True,
                             log_file=bdir / "build.log")
            except Exception as e:
                log = bdir / "build.log"
                tail = log.read_text()[-300:] if log.exists() else ""
                raise SimulationFailed(f"{sim} build of {TOPLEVEL} failed in {bdir} ({e}): "
                                       f"{tail!r}") from None
            stamp.write_text(key_src)
    return bdir, sim, time.monotonic() - t0


def run_uart(cfg, net, settings, *, sim=None, divisor=4, timeout=4000, lost_bytes=True,
             response_timeout_cycles=400_000, planes=None, target="generic"):
    """Run ``net`` through the simulated UART at each ``(wbits, abits, x)`` setting.

    ``x`` is an (S, K0) array of inputs quantised at ``abits``; only the requantisation
    tables of the listed precisions and the first ``planes`` planes (default all) are
    loaded, which keeps the slow bit-level link short. Returns
    ``(result dict, [logits (S, M_last) per setting])``.
    """
    import numpy as np
    from cocotb_tools.runner import get_runner
    from .flows import net_to_arrays

    bdir, sim, _ = build_uart(cfg, sim, divisor=divisor, timeout=timeout, target=target)
    with tempfile.TemporaryDirectory(prefix="anyprec-uart-") as tdir:
        tdir = Path(tdir)
        arrays = net_to_arrays(net)
        for i, (_, _, x) in enumerate(settings):
            arrays[f"x_{i}"] = np.asarray(x, dtype=np.int64)
        np.savez(tdir / "in.npz", **arrays)
        spec = {"divisor": divisor, "wbits": [int(s[0]) for s in settings],
                "abits": [int(s[1]) for s in settings], "lost_bytes": bool(lost_bytes),
                "response_timeout_cycles": int(response_timeout_cycles),
                "planes": None if planes is None else int(planes),
                "arrays_in": str(tdir / "in.npz"), "arrays_out": str(tdir / "out.npz"),
                "result": str(tdir / "result.json")}
        (tdir / "job.json").write_text(json.dumps(spec))
        runner = get_runner(sim)
        env = {"ANYPREC_UART_JOB": str(tdir / "job.json"), "COCOTB_LOG_LEVEL": "WARNING"}
        xml = tdir / "results.xml"
        try:
            runner.test(test_module="anyprec.sim.uart_tb", testcase="uart_job",
                        hdl_toplevel_lang="verilog", hdl_toplevel=TOPLEVEL, build_dir=bdir,
                        test_dir=tdir, extra_env=env, timescale=_TIMESCALE,
                        log_file=tdir / "sim.log", results_xml=str(xml))
        except Exception as e:
            if not xml.exists():
                raise SimulationFailed(f"{sim} did not run the UART job: {e}") from None
        fails = _failures(xml)
        if fails or not Path(spec["result"]).exists():
            log = (tdir / "sim.log").read_text() if (tdir / "sim.log").exists() else ""
            keep = Path(tempfile.mkdtemp(prefix="anyprec-uart-failed-"))
            (keep / "sim.log").write_text(log)
            reason = fails[0] if fails else "the job wrote no result"
            raise SimulationFailed(f"UART job failed on {sim}: "
                                   f"{reason.strip().splitlines()[0][:400]} "
                                   f"(log: {keep / 'sim.log'})")
        result = json.loads(Path(spec["result"]).read_text())
        with np.load(spec["arrays_out"]) as z:
            logits = [z[f"logits_{i}"] for i in range(len(settings))]
    return result, logits
