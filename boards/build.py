"""Board builds: elaborate, synthesise, place and route, pack; estimates; Verilog export.

:func:`build` runs Amaranth's generated build script one step at a time (synthesis, place
and route, pack) so that it can report progress and time per step, then collects a JSON
report from yosys' ``stat -json`` and nextpnr's ``--report``. :func:`estimate` runs the
synthesis step only. :func:`export` writes Verilog and pin constraints for boards whose
vendor tools are closed (no bitstream).

Memory mapping: every memory of the design holds no meaningful initial contents (the
host loads them), so the iCE40 flow drops the all-zero initialisers Amaranth emits; that
lets yosys put the weight-plane and requantisation memories (``ram_style = "huge"``) in
the UP5K's single-port SPRAMs, which :mod:`anyprec.hw.core` addresses through one shared
address for exactly this reason.
"""

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from ..golden.errors import AnyprecError, ConfigError
from ..hw.config import AnyprecConfig
from .registry import Board, get_board, BOARDS
from .toolchain import resolve
from .top import BoardTop, DEFAULT_BAUD, DEFAULT_TIMEOUT_MS

__all__ = ["BuildError", "build", "estimate", "largest", "export", "board_config", "STEPS",
           "count_cells", "bram_check", "default_outdir"]

STEPS = ("synthesis", "place and route", "pack")

# Fraction of the device a default configuration may use (the rest is headroom).
HEADROOM_LIMIT = 0.90

_PACK_PRODUCT = {"ice40": "bin", "ecp5": "bit"}
_FF_TYPES = re.compile(r"^(SB_DFF\w*|TRELLIS_FF|FD\w*)$")


class BuildError(AnyprecError):
    """A tool failed during a board build (its log is kept)."""


def default_outdir(board_name):
    return Path("build") / "boards" / board_name


def board_config(board: Board, overrides=None) -> AnyprecConfig:
    """The board's default configuration with ``overrides`` applied (validated).

    ``stream_width`` is always 8 on a serial board; asking for another is an error.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if overrides.get("stream_width", 8) != 8:
        raise ConfigError(f"board builds talk over a UART and need stream_width=8, not "
                          f"{overrides['stream_width']}")
    return board.default.replace(**overrides)


def _name(board):
    return "anyprec_" + board.name.replace("-", "_")


def _platform(board):
    plat = board.platform_class()()
    if board.extra_resources:
        plat.add_resources(getattr(plat, board.extra_resources))
    return plat


#: The name the SB_MAC16 cells carry through synth_ice40 (``_prepare``).
MAC16_ALIAS = "anyprec_SB_MAC16"


def mac16_stub():
    """A black-box module ``MAC16_ALIAS`` with SB_MAC16's ports and parameters (from the
    model ``hw.top.cell_models("ice40")`` carries)."""
    from ..hw.top import cell_models
    model = cell_models("ice40")
    mod = re.search(r"^module SB_MAC16\b.*?\);", model, re.M | re.S).group(0)
    params = re.findall(r"^\s*parameter .*;$", model, re.M)
    return ("(* blackbox *)\n" + mod.replace("module SB_MAC16", f"module {MAC16_ALIAS}", 1)
            + "\n" + "\n".join(params) + "\nendmodule\n")


def _prepare(board, cfg, *, seed, target_mhz, baud, timeout_ms, outdir, stat_only=False,
             slack=False):
    """Elaborate the board top and write Amaranth's build tree into ``outdir``."""
    top = BoardTop(board, cfg, target_mhz=target_mhz, baud=baud, timeout_ms=timeout_ms)
    name = _name(board)
    plat = _platform(board)
    kw = {}
    if board.family in ("ice40", "ecp5"):
        after_read = []
        after_synth = []
        if board.family == "ice40":
            # The weight memory and the requantisation table (one bank each on iCE40,
            # hw/core.py BankedMemory) go to the single-port SPRAMs.
            after_read += ['setattr -set ram_style "huge" m:bank*',
                           "delete t:$meminit_v2"]
            # Block RAM without yosys' read-during-write logic: a read port whose data in
            # the cycle of a write to the same address may be anything (COLLISION_X_MASK,
            # what yosys' Verilog frontend makes of a ``no_rw_check`` memory; Amaranth
            # writes 0). For the memories that never use such a read (hw/core.py
            # _NO_RW_CHECK): the activation buffers ``act``, the staging memory ``stage``,
            # and Amaranth's SyncFIFOBuffered (``storage``: the result FIFO and the UART
            # byte FIFO), which reads only when not empty and writes only when not full,
            # so never the entry it reads.
            after_read += ["setparam -set COLLISION_X_MASK 1'1 t:$memrd_v2 r:MEMID=\\act "
                           "r:MEMID=\\stage %u r:MEMID=\\storage %u %i"]
            # The requantiser's SB_MAC16 cells (hw/requant.py _Mac16) under another name
            # through synthesis: synth_ice40 -dsp (ice40_dsp) takes every SB_MAC16 for a
            # multiplier to pack registers into and sets its parameters anew, dropping
            # the registers and the adder configured here.
            after_read += [f"read_verilog <<EOT\n{mac16_stub()}EOT",
                           f"chtype -set {MAC16_ALIAS} t:SB_MAC16"]
            after_synth += [f"chtype -set SB_MAC16 t:{MAC16_ALIAS}"]
            if board.synth_wire_ps:
                after_read += [f"scratchpad -set synth_ice40.abc9.W {board.synth_wire_ps}"]
        # The controller's state machines one-hot (yosys fsm recodes them): a state test
        # is then one flip-flop, not a decode of the binary state in front of every
        # register it enables (Fmax; on the UP5K a third fewer late register inputs at
        # 50 MHz, docs/boards.md).
        after_read += ['setattr -set fsm_encoding "one-hot" w:*_state']
        opts = list(board.synth_opts)
        if not cfg.use_dsp:
            # LUT-only multipliers (the bit-parallel baseline at equal LUTs, issue 7),
            # Booth-encoded: the smallest LUT multipliers yosys makes, so that the baseline
            # is what a careful user would build. ("proc" first: booth acts on $mul cells,
            # which exist only after proc; plain "booth" here silently maps nothing.)
            opts = [o for o in opts if o != "-dsp"]
            if board.family == "ecp5":
                opts += ["-nodsp", "-nowidelut"]
            after_read += ["proc", "booth"]
        kw = dict(
            synth_opts=" ".join(opts),
            script_after_read="\n".join(after_read),
            script_after_synth="\n".join(after_synth + [f"tee -q -o {name}.stat.json stat -json"]),
            nextpnr_opts=(f"--seed {int(seed)} --report {name}.report.json --timing-allow-fail"
                          + "".join(f" {o}" for o in board.pnr_opts)
                          + (f" --detailed-timing-report --write {name}.routed.json"
                             if slack else "")),
        )
    plan = plat.prepare(top, name=name, **kw)
    outdir = _fresh_outdir(Path(outdir))
    plan.extract(str(outdir))
    return top, name, plan


#: Marks a directory that `build`, `estimate` and `export` made, and may therefore empty.
OUTDIR_MARK = ".anyprec-build"


def _fresh_outdir(outdir):
    """Empty ``outdir`` for a new build tree, refusing anything but a new directory, an
    empty one or one of our own (marked) build trees: ``-o ~/project`` must never delete
    a user's files."""
    try:
        if outdir.exists():
            if not outdir.is_dir():
                raise BuildError(f"output directory {outdir} exists and is not a directory")
            if any(outdir.iterdir()):
                # (build trees from before the marker have our build script)
                ours = ((outdir / OUTDIR_MARK).is_file()
                        or any(outdir.glob("build_anyprec_*.sh")))
                if not ours:
                    raise BuildError(
                        f"output directory {outdir} is not empty and was not made by "
                        f"anyprec (no {OUTDIR_MARK}); give a new or empty directory")
                shutil.rmtree(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / OUTDIR_MARK).write_text(
            "Made by anyprec; `anyprec build`, `estimate` and `export` replace this "
            "directory.\n")
    except OSError as e:
        raise BuildError(f"cannot use output directory {outdir}: "
                         f"{e.strerror or e}") from None
    return outdir


def _script_steps(script_text):
    """(preamble, [command lines]) of an Amaranth build_*.sh."""
    pre, cmds = [], []
    for line in script_text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s == "set -e":
            continue
        if s.startswith(":") or s.startswith("[ -n"):
            pre.append(s)
        else:
            cmds.append(s)
    return pre, cmds


def _run_step(label, preamble, cmd, cwd, env, log_path):
    script = "set -e\n" + "\n".join(preamble) + "\n" + cmd + "\n"
    with open(log_path, "w") as log:
        r = subprocess.run(["sh", "-c", script], cwd=cwd, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    if r.returncode != 0:
        text = Path(log_path).read_text()
        # nextpnr writes its utilisation table to its own log (--log <name>.tim).
        text += "".join(p.read_text(errors="replace") for p in Path(cwd).glob("*.tim"))
        over = re.findall(r"(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", text)
        over = [o for o in over if int(o[1]) > int(o[2])]
        if over:
            what = ", ".join(f"{t} {u}/{a} ({p}%)" for t, u, a, p in over)
            raise BuildError(f"the design does not fit the device: {what}; try a smaller "
                             f"configuration ('anyprec estimate' is fast; log {log_path})")
        tail = text.strip().splitlines()[-8:]
        detail = " | ".join(t.strip() for t in tail if t.strip())[-600:]
        raise BuildError(f"{label} failed (exit {r.returncode}; log {log_path}): {detail}")


def count_cells(stat):
    """Cell counts by type from yosys ``stat -json`` (the top module, hierarchy included)."""
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type")
    if cells is None:
        mods = stat.get("modules", {})
        cells = {}
        for mod in mods.values():
            for k, v in mod.get("num_cells_by_type", {}).items():
                cells[k] = cells.get(k, 0) + v
    out = {}
    for k, v in cells.items():
        # Yosys names parametrised cells "$paramod$<hash>\SB_RAM40_4K".
        base = k.split("\\")[-1]
        out[base] = out.get(base, 0) + int(v)
    return out


def _estimate_luts(family, cells):
    """nextpnr's logic-cell count predicted from yosys' cells.

    Calibrated on the measured builds of docs/boards.md (within about 1.5 %): ECP5
    TRELLIS_COMB is about 1.1 x (LUT4 + 2 per CCU2C + 4 per TRELLIS_DPR16X4); an iCE40
    logic cell holds a LUT4, a carry and a flip-flop, and about 35 % of the carries and
    40 % of the flip-flops cannot share a cell with a LUT.
    """
    if family == "ecp5":
        return round(1.1 * (cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
                            + 4 * cells.get("TRELLIS_DPR16X4", 0)))
    if family == "ice40":
        ffs = sum(v for k, v in cells.items() if _FF_TYPES.match(k))
        return round(cells.get("SB_LUT4", 0) + 0.35 * cells.get("SB_CARRY", 0) + 0.40 * ffs)
    return sum(v for k, v in cells.items() if k.startswith("LUT"))


def _resources_from_cells(board, cells):
    ffs = sum(v for k, v in cells.items() if _FF_TYPES.match(k))
    if board.family == "ecp5":
        brams, dsps, sprams = cells.get("DP16KD", 0), cells.get("MULT18X18D", 0), 0
    else:
        brams = cells.get("SB_RAM40_4K", 0)
        dsps = cells.get("SB_MAC16", 0)
        sprams = cells.get("SB_SPRAM256KA", 0)
    return {"luts": _estimate_luts(board.family, cells), "ffs": ffs, "brams": brams,
            "dsps": dsps, "sprams": sprams}


def bram_check(netlist_path, board):
    """Where the weight-plane memory ``wmem`` went, from the synthesised JSON netlist.

    Returns ``{"wmem_cells": {type: count}, "in_block_ram": bool, "detail": str}``;
    block RAM means DP16KD on ECP5, SB_RAM40_4K or SB_SPRAM256KA on iCE40.
    """
    with open(netlist_path) as f:
        net = json.load(f)
    counts = {}
    lut_ram = 0
    for mod in net.get("modules", {}).values():
        for cname, cell in mod.get("cells", {}).items():
            if "wmem" not in cname:
                continue
            t = cell.get("type", "").split("\\")[-1]
            counts[t] = counts.get(t, 0) + 1
            if t in ("TRELLIS_DPR16X4", "$mem", "$mem_v2"):
                lut_ram += 1
    ok_types = {"ecp5": {"DP16KD"}, "ice40": {"SB_RAM40_4K", "SB_SPRAM256KA"}}
    block = sum(v for k, v in counts.items() if k in ok_types.get(board.family, set()))
    in_bram = block > 0 and lut_ram == 0
    if in_bram:
        detail = ", ".join(f"{v} x {k}" for k, v in sorted(counts.items())
                           if k in ok_types[board.family])
    elif counts:
        detail = "weight memory cells: " + ", ".join(f"{v} x {k}" for k, v in counts.items())
    else:
        detail = "no block RAM cell carries the weight memory's name"
    return {"wmem_cells": counts, "in_block_ram": in_bram, "detail": detail}


def _fmax(report, clock_mhz):
    """(achieved MHz, constraint MHz) of the design clock from nextpnr's report."""
    fmax = report.get("fmax", {})
    if not fmax:
        return None, clock_mhz
    best = min(fmax.items(), key=lambda kv: abs(kv[1].get("constraint", 0) - clock_mhz))
    return float(best[1]["achieved"]), float(best[1].get("constraint", clock_mhz))


def _util(report, *types):
    u = report.get("utilization", {})
    used = sum(int(u[t]["used"]) for t in types if t in u)
    avail = sum(int(u[t]["available"]) for t in types if t in u)
    return used, avail


def _array_luts(netlist_path):
    """LUT4 sites of the MAC array alone (cells under ``core.engine.array``)."""
    try:
        with open(netlist_path) as f:
            net = json.load(f)
    except OSError:
        return None
    n = 0
    for mod in net.get("modules", {}).values():
        for cname, cell in mod.get("cells", {}).items():
            attrs = cell.get("attributes", {})
            scope = attrs.get("hdlname", "") or cname
            if "engine.array" not in cname and "engine array" not in scope:
                continue
            t = cell.get("type", "")
            n += {"LUT4": 1, "SB_LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 2}.get(t, 0)
    return n or None


def _untimed_dsps(netlist_path, family="ice40"):
    """iCE40 SB_MAC16 cells with a combinational path through them (an input or an output
    not registered inside the cell, or no clock). nextpnr-ice40 times every SB_MAC16 port
    as a register port whatever the configuration, so a path through such a cell is
    missing from its Fmax. The design registers its own (hw/requant.py ``_Mac16``).
    0 off iCE40: nextpnr-ecp5 times MULT18X18D in each register configuration."""
    if family != "ice40":
        return 0
    try:
        with open(netlist_path) as f:
            net = json.load(f)
    except (OSError, ValueError):
        return None

    def num(v):
        return int(v, 2) if isinstance(v, str) and v and set(v) <= {"0", "1"} else int(v)

    def const(bits):
        return all(isinstance(b, str) for b in bits)
    n = 0
    for mod in net.get("modules", {}).values():
        for cell in mod.get("cells", {}).values():
            if cell.get("type") != "SB_MAC16":
                continue
            p = {k: num(v) for k, v in cell.get("parameters", {}).items()}
            c = cell.get("connections", {})
            ins = all(p.get(f"{x}_REG", 0) or const(c.get(x, []))
                      for x in ("A", "B", "C", "D"))
            outs = all(
                p.get(f"{h}OUTPUT_SELECT", 0) == 1
                or (p.get(f"{h}OUTPUT_SELECT", 0) == 3 and p.get("PIPELINE_16x16_MULT_REG2", 0))
                or (p.get(f"{h}OUTPUT_SELECT", 0) == 2 and p.get(f"{h}_8x8_MULT_REG", 0))
                for h in ("TOP", "BOT"))
            if const(c.get("CLK", [])) or not (ins and outs):
                n += 1
    return n


def _common(board, cfg, seed, top, tc, outdir):
    return {"board": board.name, "device": board.device, "config": cfg.to_dict(),
            "clock_mhz": round(top.clock_mhz, 4), "baud": top.baud, "seed": int(seed),
            "tools": tc.versions, "outdir": str(outdir)}


def _seed_cmd(cmd, name, seed, s):
    """The place-and-route command of ``seed`` rewritten for seed ``s``, every file it
    writes (report, log, placed design, routed netlist) under a per-seed name."""
    out = cmd.replace(f"--seed {int(seed)} ", f"--seed {int(s)} ", 1)
    for ext in ("report.json", "tim", "asc", "config", "routed.json"):
        out = re.sub(rf"(\s){re.escape(name)}\.{re.escape(ext)}(\s|$)",
                     rf"\g<1>{name}.seed{int(s)}.{ext}\g<2>", out)
    return out


def _seed_entry(seed, fmax, clock_mhz):
    """One row of a report's ``seeds``: the seed, its Fmax (MHz) and whether it meets."""
    return {"seed": seed, "fmax_mhz": round(fmax, 2) if fmax is not None else None,
            "timing_met": fmax is not None and fmax >= clock_mhz}


def _seed_sweep(board, name, seeds, cmd, seed, pre, outdir, env, clock_mhz, progress,
                first_step, n_steps, steps, jobs=1):
    """Place and route once per seed (one synthesis), ``jobs`` at a time; keep the seed
    with the highest Fmax (the earliest of equals) under the build's own file names.
    Returns (kept seed, table)."""
    def one(i, s):
        label = f"place and route, seed {s}"
        if progress:
            progress(first_step + i, n_steps, label, "start", 0.0)
        t0 = time.monotonic()
        try:
            _run_step(label, pre, _seed_cmd(cmd, name, seed, s), outdir, env,
                      outdir / f"step2_place_seed{s}.log")
        except BuildError as e:
            if "does not fit" in str(e):
                raise
            # A seed that does not place (nextpnr gives up on it) does not end the sweep.
            entry = {"seed": s, "fmax_mhz": None, "timing_met": False, "error": str(e)}
        else:
            rep = json.loads((outdir / f"{name}.seed{s}.report.json").read_text())
            entry = _seed_entry(s, _fmax(rep, clock_mhz)[0], clock_mhz)
        steps[label] = round(time.monotonic() - t0, 2)
        if progress:
            progress(first_step + i, n_steps, label, "done", steps[label])
        return entry

    if jobs <= 1:
        table = [one(i, s) for i, s in enumerate(seeds)]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, i, s) for i, s in enumerate(seeds)]
            table = [f.result() for f in futures]
        for s in seeds:     # the steps in seed order, whatever order they finished in
            steps[f"place and route, seed {s}"] = steps.pop(f"place and route, seed {s}")
    placed = [t for t in table if t["fmax_mhz"] is not None]
    if not placed:
        raise BuildError(f"place and route failed for every seed ({', '.join(map(str, seeds))})"
                         f": {table[0].get('error', '')}")
    best = max(placed, key=lambda t: t["fmax_mhz"])["seed"]
    for ext in ("report.json", "tim", "asc", "config", "routed.json"):
        for s in seeds:
            f = outdir / f"{name}.seed{s}.{ext}"
            if not f.exists():
                continue
            if s == best:
                os.replace(f, outdir / f"{name}.{ext}")
            elif ext in ("asc", "config", "routed.json"):
                f.unlink()          # the large ones; each seed's report and log stay
    # The tree's own build script then rebuilds the kept bitstream.
    for script in outdir.glob(f"build_{name}.*"):
        text = script.read_text()
        if f"--seed {int(seed)} " in text:
            script.write_text(text.replace(f"--seed {int(seed)} ", f"--seed {best} ", 1))
    return best, table


def build(board, cfg=None, *, seed=1, toolchain="yowasp", outdir=None, target_mhz=None,
          baud=DEFAULT_BAUD, timeout_ms=DEFAULT_TIMEOUT_MS, progress=None, bench=False,
          slack=False, seeds=None, jobs=1):
    """Build the bitstream of ``cfg`` (default: the board's) and return the report dict.

    ``seeds`` (a sequence of nextpnr seeds; ``seed`` is then ignored): synthesise once,
    place and route with each seed and keep the one with the highest Fmax (the earliest of
    equal ones); the report's ``seed`` is that one and ``seeds`` lists every seed's Fmax.
    The bitstream is the one ``seed=<that seed>`` builds. ``jobs``: seeds placed at once.

    ``progress(step_index, n_steps, name, state, seconds)`` is called with state
    ``"start"`` and ``"done"`` for every step. ``bench=True`` (performance sweeps):
    without ``target_mhz``, constrain the clock at the board's Fmax goal instead of its
    default design clock, so nextpnr's reported Fmax is its best effort. ``slack=True``:
    also list every register input that misses the clock, grouped by register
    (``boards.slack``), into the report's ``slack`` and ``<name>.slack.json``.
    """
    board = get_board(board) if isinstance(board, str) else board
    cfg = board.default if cfg is None else cfg
    if bench and target_mhz is None:
        target_mhz = board.goal_mhz
    if not board.bitstream:
        raise BuildError(f"{board.name}: the vendor tools are closed, anyprec cannot build "
                         f"its bitstream; use 'anyprec build --board {board.name}' to export "
                         "Verilog and constraints")
    sweep = seeds is not None
    if sweep:
        seeds = [int(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise BuildError(f"seeds must be distinct and at least one, not {seeds}")
        seed = seeds[0]
    t_all = time.monotonic()
    tc = resolve(board.family, toolchain)
    outdir = Path(outdir or default_outdir(board.name)).resolve()
    top, name, plan = _prepare(board, cfg, seed=seed, target_mhz=target_mhz, baud=baud,
                               timeout_ms=timeout_ms, outdir=outdir, slack=slack)
    pre, cmds = _script_steps((outdir / f"build_{name}.sh").read_text())
    if len(cmds) != len(STEPS):
        raise BuildError(f"unexpected build script {outdir / f'build_{name}.sh'}: "
                         f"{len(cmds)} commands")
    env = tc.environ()
    steps = {}
    n_steps = len(STEPS) - 1 + len(seeds) if sweep else len(STEPS)
    table = None
    i = 0
    for j, (label, cmd) in enumerate(zip(STEPS, cmds), start=1):
        i += 1
        if sweep and label == "place and route":
            seed, table = _seed_sweep(board, name, seeds, cmd, seed, pre, outdir, env,
                                      top.clock_mhz, progress, i, n_steps, steps, jobs)
            i += len(seeds) - 1
            continue
        if progress:
            progress(i, n_steps, label, "start", 0.0)
        t0 = time.monotonic()
        _run_step(label, pre, cmd, outdir, env, outdir / f"step{j}_{label.split()[0]}.log")
        steps[label] = round(time.monotonic() - t0, 2)
        if progress:
            progress(i, n_steps, label, "done", steps[label])

    stat = json.loads((outdir / f"{name}.stat.json").read_text())
    cells = count_cells(stat)
    rep = json.loads((outdir / f"{name}.report.json").read_text())
    if board.family == "ecp5":
        luts, luts_total = _util(rep, "TRELLIS_COMB")
        brams, _ = _util(rep, "DP16KD")
        dsps, _ = _util(rep, "MULT18X18D")
        sprams = 0
    else:
        luts, luts_total = _util(rep, "ICESTORM_LC")
        brams, _ = _util(rep, "ICESTORM_RAM")
        dsps, _ = _util(rep, "ICESTORM_DSP")
        sprams, _ = _util(rep, "ICESTORM_SPRAM")
    fmax, constraint = _fmax(rep, top.clock_mhz)
    bit = outdir / f"{name}.{_PACK_PRODUCT[board.family]}"
    digest = hashlib.sha256(bit.read_bytes()).hexdigest()
    ffs = sum(v for k, v in cells.items() if _FF_TYPES.match(k))
    binops = cfg.rows * cfg.cols * cfg.max_abits
    array_luts = _array_luts(outdir / f"{name}.json")
    report = _common(board, cfg, seed, top, tc, outdir)
    report.update({
        # The data sheet's count where nextpnr offers more: it places the LFE5U-12F on
        # the 25F die the two share (24,288 cells), but Lattice specifies 12,288.
        "luts": luts, "luts_total": min(luts_total or board.luts, board.luts), "ffs": ffs,
        "brams": brams, "brams_total": board.brams, "sprams": sprams,
        "dsps": dsps, "dsps_total": board.dsps,
        "fmax_mhz": round(fmax, 2) if fmax is not None else None,
        "target_mhz": round(top.clock_mhz, 4), "goal_mhz": board.goal_mhz,
        "timing_met": fmax is not None and fmax >= top.clock_mhz,
        "binops_per_lut": round(binops / luts, 4) if luts else None,
        "array_luts": array_luts,
        "array_binops_per_lut": round(binops / array_luts, 4) if array_luts else None,
        # A lane is one output row: C cells and its adder tree and accumulator.
        "array_luts_per_lane": round(array_luts / cfg.rows, 1) if array_luts else None,
        "weight_memory": bram_check(outdir / f"{name}.json", board),
        "untimed_dsps": _untimed_dsps(outdir / f"{name}.json", board.family),
        "bitstream": str(bit), "bitstream_sha256": digest,
        "synth_opts": list(board.synth_opts), "synth_wire_ps": board.synth_wire_ps or None,
        "nextpnr_opts": list(board.pnr_opts),
        "seeds": table or [_seed_entry(int(seed), fmax, top.clock_mhz)],
        "steps": steps, "seconds": round(time.monotonic() - t_all, 2),
    })
    if slack:
        from .slack import endpoint_slack
        result = endpoint_slack(outdir / f"{name}.routed.json", outdir / f"{name}.report.json",
                                top.clock_mhz)
        (outdir / f"{name}.slack.json").write_text(json.dumps(result, indent=1))
        report["slack"] = result
    (outdir / f"{name}.anyprec.json").write_text(json.dumps(report, indent=1))
    return report


def _require_open_flow(board):
    """Estimates need yosys' flow for the board's family (iCE40, ECP5)."""
    if not board.bitstream:
        raise BuildError(f"{board.name}: no open synthesis flow for {board.family}; "
                         "estimates cover the iCE40 and ECP5 boards")


def estimate(board, cfg=None, *, toolchain="yowasp", outdir=None, progress=None):
    """Synthesis only: estimated resources, whether ``cfg`` fits, and where the weight
    memory went. Fast compared with :func:`build` (no place and route)."""
    board = get_board(board) if isinstance(board, str) else board
    cfg = board.default if cfg is None else cfg
    t_all = time.monotonic()
    _require_open_flow(board)
    tc = resolve(board.family, toolchain)
    outdir = Path(outdir or (default_outdir(board.name).parent / (board.name + "-estimate")))
    outdir = outdir.resolve()
    top, name, plan = _prepare(board, cfg, seed=1, target_mhz=None, baud=DEFAULT_BAUD,
                               timeout_ms=DEFAULT_TIMEOUT_MS, outdir=outdir)
    pre, cmds = _script_steps((outdir / f"build_{name}.sh").read_text())
    if progress:
        progress(1, 1, "synthesis", "start", 0.0)
    t0 = time.monotonic()
    _run_step("synthesis", pre, cmds[0], outdir, tc.environ(), outdir / "step1_synthesis.log")
    if progress:
        progress(1, 1, "synthesis", "done", round(time.monotonic() - t0, 2))
    cells = count_cells(json.loads((outdir / f"{name}.stat.json").read_text()))
    res = _resources_from_cells(board, cells)
    totals = {"luts": board.luts, "ffs": board.ffs, "brams": board.brams, "dsps": board.dsps,
              "sprams": board.sprams}
    util = {k: (res[k] / totals[k] if totals[k] else (0.0 if res[k] == 0 else float("inf")))
            for k in res}
    fits = all(u <= 1.0 for u in util.values())
    worst = max(util, key=util.get)
    report = _common(board, cfg, 1, top, tc, outdir)
    report.update({
        "estimated": res, "totals": totals,
        "utilization": {k: round(v, 4) for k, v in util.items()},
        "fits": fits, "headroom": round(1.0 - util[worst], 4), "limiting": worst,
        "within_headroom_limit": util[worst] <= HEADROOM_LIMIT,
        "weight_memory": bram_check(outdir / f"{name}.json", board),
        "untimed_dsps": _untimed_dsps(outdir / f"{name}.json", board.family),
        "cells": cells, "seconds": round(time.monotonic() - t_all, 2),
    })
    return report


#: The square arrays ``largest`` tries: powers of two up to the configuration's limit.
LARGEST_SIZES = tuple(1 << i for i in range(9))
#: ``largest`` skips a size whose extrapolated use of some resource is over this (a
#: quarter above the device, so a size near the limit is always synthesised).
EXTRAPOLATION_MARGIN = 1.25


def largest(board, cfg=None, *, toolchain="yowasp", outdir=None, progress=None):
    """The largest square power-of-two array (R = C) of ``cfg`` (default: the board's;
    its other parameters kept) that the synthesis estimate fits on the board with the
    weight memory in block RAM. It steps from the configuration's own size, up while the
    size fits and down while it does not (each probe an :func:`estimate`).

    Returns ``{"board", "device", "largest": {"rows", "cols"} or None, "config",
    "probes": [...], "tools", "seconds"}``; ``progress(message)`` hears every probe.
    """
    board = get_board(board) if isinstance(board, str) else board
    cfg = board.default if cfg is None else cfg
    _require_open_flow(board)
    t_all = time.monotonic()
    tc = resolve(board.family, toolchain)
    outdir = Path(outdir or (default_outdir(board.name).parent / (board.name + "-largest")))
    # (the probes' trees go in subdirectories: the directory itself must be new, empty
    # or ours, as a build's is, so that a foreign one gets no 1x1/, 2x2/ ... in it)
    outdir = _fresh_outdir(outdir)
    sizes, probes = [], {}
    for n in LARGEST_SIZES:
        try:
            cfg.replace(rows=n, cols=n)
        except ConfigError as e:
            probes[n] = {"rows": n, "cols": n, "fits": False, "error": str(e)}
        else:
            sizes.append(n)
    if not sizes:
        raise BuildError(f"no square power-of-two array is a valid configuration here: "
                         f"{probes[1]['error']}")

    def fits(i):
        n = sizes[i]
        if progress:
            progress(f"{board.name}: estimating {n}x{n} ...")
        r = estimate(board, cfg.replace(rows=n, cols=n), toolchain=toolchain,
                     outdir=outdir / f"{n}x{n}")
        ok = r["fits"] and r["weight_memory"]["in_block_ram"]
        probes[n] = {"rows": n, "cols": n, "fits": ok,
                     "within_headroom_limit": r["within_headroom_limit"],
                     "limiting": r["limiting"], "utilization": r["utilization"],
                     "estimated": r["estimated"], "weight_memory": r["weight_memory"]["detail"],
                     "seconds": r["seconds"]}
        if progress:
            u = r["utilization"][r["limiting"]]
            progress(f"{board.name}: {n}x{n} {'fits' if ok else 'does not fit'} "
                     f"({r['limiting']} {100 * u:.1f}%, {r['seconds']:.0f} s)")
        return ok

    def hopeless(i):
        """Whether size i surely does not fit, from the two sizes below it, without its
        synthesis (the largest sizes take the longest: 64x64 on a 25F took 491 s). With
        every resource a fixed part plus parts linear and quadratic in n (non-negative),
        u(2n) - u(n) >= 2 (u(n) - u(n/2)); size i is skipped when that lower bound is over
        EXTRAPOLATION_MARGIN of some resource."""
        if i < 2 or "utilization" not in probes.get(sizes[i - 2], {}):
            return False
        u1, u2 = probes[sizes[i - 2]]["utilization"], probes[sizes[i - 1]]["utilization"]
        bound = {k: u2[k] + 2 * max(0.0, u2[k] - u1[k]) for k in u2}
        worst = max(bound, key=bound.get)
        if sizes[i - 1] != 2 * sizes[i - 2] or sizes[i] != 2 * sizes[i - 1] \
                or bound[worst] <= EXTRAPOLATION_MARGIN:
            return False
        n = sizes[i]
        probes[n] = {"rows": n, "cols": n, "fits": False, "extrapolated": True,
                     "limiting": worst, "at_least": {k: round(v, 4) for k, v in bound.items()}}
        if progress:
            progress(f"{board.name}: {n}x{n} does not fit (extrapolated from "
                     f"{sizes[i - 2]}x{sizes[i - 2]} and {sizes[i - 1]}x{sizes[i - 1]}: "
                     f"{worst} at least {100 * bound[worst]:.0f}%; not synthesised)")
        return True

    # One size at a time from the configuration's own: up while it fits, down while it
    # does not. Each size is four times the last one's array, so the answer is a step or
    # two away; a bisection would jump to sizes far too large (8x8 to 64x64 on a 25F),
    # the slowest to synthesise, and could not skip them as hopeless.
    i = max([i for i, n in enumerate(sizes) if n <= min(cfg.rows, cfg.cols)] or [0])
    if fits(i):
        while i + 1 < len(sizes) and not hopeless(i + 1) and fits(i + 1):
            i += 1
    else:
        while i > 0 and not fits(i - 1):
            i -= 1
        i -= 1
    best = sizes[i] if i >= 0 else None
    return {"board": board.name, "device": board.device,
            "largest": {"rows": best, "cols": best} if best else None,
            "config": cfg.replace(rows=best, cols=best).to_dict() if best else None,
            "probes": [probes[n] for n in sorted(probes)],
            "tools": tc.versions, "outdir": str(outdir.resolve()),
            "seconds": round(time.monotonic() - t_all, 2)}


def export(board, cfg=None, *, outdir=None, baud=DEFAULT_BAUD, timeout_ms=DEFAULT_TIMEOUT_MS):
    """Verilog, pin constraints and the vendor build script, for a closed-toolchain board.

    Returns a report dict listing the files written.
    """
    board = get_board(board) if isinstance(board, str) else board
    cfg = board.default if cfg is None else cfg
    t0 = time.monotonic()
    outdir = Path(outdir or default_outdir(board.name)).resolve()
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    top, name, plan = _prepare(board, cfg, seed=1, target_mhz=None, baud=baud,
                               timeout_ms=timeout_ms, outdir=outdir)
    files = sorted(str(p.relative_to(outdir)) for p in outdir.iterdir()
                   if p.name != OUTDIR_MARK)
    (outdir / "README.txt").write_text(
        f"anyprec for the {board.title} ({board.device}), Verilog only.\n\n"
        f"Configuration: {cfg.describe()}\n"
        f"Clock: {top.clock_mhz:g} MHz from {board.clock_resource}; UART {top.baud} baud "
        f"(8N1) on rx={board.uart_rx}, tx={board.uart_tx}.\n\n"
        f"{name}.v is the whole design, {name}.xdc the pin and clock constraints. "
        f"build_{name}.sh runs Vivado in batch mode ({name}.tcl); or create a project "
        f"with both files, set {name} as top and run synthesis and implementation.\n")
    files.append("README.txt")
    report = {"board": board.name, "device": board.device, "config": cfg.to_dict(),
              "clock_mhz": top.clock_mhz, "baud": top.baud, "outdir": str(outdir),
              "files": files, "bitstream": None, "seconds": round(time.monotonic() - t0, 2)}
    (outdir / f"{name}.anyprec.json").write_text(json.dumps(report, indent=1))
    return report
