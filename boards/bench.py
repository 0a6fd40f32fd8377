"""``anyprec bench``: bit-serial against bit-parallel, on the same devices, side by side.

Each point (design, board, R x C) is measured twice:

- **place and route** of the board build (boards/build.py): LUTs, FFs, block RAMs, DSPs
  and the Fmax nextpnr reports;
- **cycle-accurate simulation** (Verilator) of a reference layer (M = K = 256, or the
  largest the point's memory holds) at k = 1..8: the cycles from the start command to the
  last result, as the device itself counts them.

From those: utilisation (ideal ``k*ceil(K/C)*ceil(M/R)`` over measured cycles), effective
MAC/s (``R*C*Fmax/k * utilisation``; the bit-parallel baseline computes at 8 bits whatever
k is asked for), and MAC/s per LUT. The summary compares the designs at equal LUTs (MAC/s
per LUT of the best serial point over the best LUT-only parallel point) and for the whole
device (the best serial point's MAC/s over the best DSP parallel point's).

Points run in parallel on Dask: a local cluster by default, an existing scheduler with
``scheduler="tcp://host:8786"``.
"""

import datetime
import json
import math
import time
from dataclasses import dataclass, asdict
from pathlib import Path

import numpy as np

from ..golden.errors import AnyprecError, ConfigError
from ..hw.config import AnyprecConfig

__all__ = ["DESIGNS", "Point", "point_config", "measure", "run", "summarize", "plot",
           "markdown", "DEFAULT_POINTS", "QUICK_POINTS"]

#: design name -> (AnyprecConfig.design, use_dsp)
DESIGNS = {"serial": ("serial", True), "parallel-lut": ("parallel", False),
           "parallel-dsp": ("parallel", True)}
KS = tuple(range(1, 9))
REF = 256


@dataclass(frozen=True)
class Point:
    design: str
    board: str
    rows: int
    cols: int
    ref: int = REF
    drain: int | None = None     # None: the config's choice (auto_drain with max_k = ref)

    @property
    def label(self):
        return f"{self.design} {self.rows}x{self.cols} on {self.board}"


def point_config(p: Point):
    """The AnyprecConfig of a bench point: one layer slot of ref x ref, N = A = 8."""
    if p.design not in DESIGNS:
        raise ConfigError(f"unknown design {p.design!r}; choose from {', '.join(DESIGNS)}")
    from .registry import get_board
    board = get_board(p.board)
    design, use_dsp = DESIGNS[p.design]
    base = board.default
    # drain None: the fewest lanes that keep the reference layer (ref x ref) from being
    # drain-bound at k = 1 (AnyprecConfig.drain); the same rule for every design.
    return AnyprecConfig(rows=p.rows, cols=p.cols, max_wbits=8, max_abits=8, max_m=p.ref,
                         max_k=p.ref, layers=1, stream_width=base.stream_width,
                         design=design, use_dsp=use_dsp, drain=p.drain)


#: The representative subset `make bench` runs: the ECP5-85F points the targets name
#: (serial 8x8 and 16x16 against the 8x8 bit-parallel baseline, LUT-only and with DSPs),
#: and the smallest UP5K point, which shows that the iCEBreaker does not fit.
QUICK_POINTS = [
    Point("serial", "ulx3s-85f", 8, 8), Point("serial", "ulx3s-85f", 16, 16),
    Point("parallel-lut", "ulx3s-85f", 8, 8), Point("parallel-dsp", "ulx3s-85f", 8, 8),
    Point("serial", "icebreaker", 1, 4, ref=64),
]
#: The full sweep (`anyprec bench --full`): 4x4, 8x8, 16x16 of each design, and 10x10 with
#: DSPs (100 of the 85F's 156 multipliers: the largest DSP array that nextpnr routes; 12x12
#: did not finish routing in 26 to 47 minutes with either router, docs/performance.md).
DEFAULT_POINTS = [
    Point(d, "ulx3s-85f", n, n) for d in DESIGNS for n in (4, 8, 16)
] + [Point("parallel-dsp", "ulx3s-85f", 10, 10), Point("serial", "icebreaker", 1, 4, ref=64),
     Point("serial", "icebreaker", 4, 4, ref=64)]


def _cycles(p: Point, cfg, sim, seed):
    """Measured cycles of the reference layer at each k (serial) or at 8 bits (parallel)."""
    from ..sim.runner import build, run_job
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 256, (p.ref, p.ref))
    x = rng.integers(0, 256, p.ref)
    ks = KS if cfg.design == "serial" else (cfg.max_wbits,)
    sb = build(cfg, sim)
    res, _ = run_job(sb, "anyprec.sim.flows:matvec_cases",
                     {"cases": [{"w": "W", "x": "x", "wbits": k, "abits": 8} for k in ks]},
                     arrays={"W": w, "x": x})
    from ..golden import arith
    for k, r in zip(ks, res["results"]):
        if r["y"] != [int(v) for v in arith.dot(w, x, 8, k)]:
            raise AnyprecError(f"{p.label}: the reference layer's result differs from golden "
                               f"at k={k}; the benchmark would be meaningless")
    return {k: r["cycles"] for k, r in zip(ks, res["results"])}


def measure(p: Point, *, seed=1, sim="verilator", outdir="build/bench", pnr=None,
            clock_mhz=None):
    """Measure one point. ``pnr(point, cfg, seed, outdir)`` overrides place and route
    (tests use a stand-in); by default it is :func:`boards.build.build`, constrained at
    ``clock_mhz`` (default: the board's Fmax goal, so that nextpnr's Fmax is its best
    effort)."""
    t0 = time.monotonic()
    cfg = point_config(p)
    if pnr is None:
        from .build import build as pnr_build

        def pnr(point, cfg, seed, outdir):
            return pnr_build(point.board, cfg, seed=seed, outdir=outdir,
                             target_mhz=clock_mhz, bench=True)
    out = Path(outdir) / f"{p.design}-{p.board}-{p.rows}x{p.cols}"
    rep = pnr(p, cfg, seed, out)
    cyc = _cycles(p, cfg, sim, seed)
    R, C = p.rows, p.cols
    tiles, chunks = math.ceil(p.ref / R), math.ceil(p.ref / C)
    fmax = rep["fmax_mhz"] or 0.0
    util, macs = {}, {}
    for k in KS:
        if cfg.design == "serial":
            ideal = k * tiles * chunks
            u = ideal / cyc[k]
            m = R * C * fmax * 1e6 / k * u
        else:
            ideal = tiles * chunks
            u = ideal / cyc[cfg.max_wbits]
            m = R * C * fmax * 1e6 * u
        util[str(k)] = round(u, 4)
        macs[str(k)] = m
    luts = rep["luts"]
    return {
        "design": p.design, "board": p.board, "device": rep.get("device"),
        "rows": R, "cols": C, "drain_lanes": cfg.drain_lanes, "ref_layer": [p.ref, p.ref],
        "luts": luts, "luts_total": rep.get("luts_total"), "ffs": rep.get("ffs"),
        "array_luts": rep.get("array_luts"),
        "brams": rep.get("brams"), "dsps": rep.get("dsps"),
        "fmax_mhz": rep.get("fmax_mhz"), "timing_met": rep.get("timing_met"),
        "clock_constraint_mhz": rep.get("target_mhz"),
        "cycles": {str(k): v for k, v in cyc.items()},
        "utilisation": util, "mac_per_s": {k: round(v) for k, v in macs.items()},
        "mac_per_s_per_lut": {k: round(v / luts, 1) if luts else None
                              for k, v in macs.items()},
        "seed": seed, "tools": rep.get("tools", {}), "seconds": round(time.monotonic() - t0, 1),
    }


def _client(scheduler, workers):
    from dask.distributed import Client, LocalCluster
    if scheduler:
        try:
            return Client(scheduler, timeout="10s"), None
        except OSError as e:
            raise AnyprecError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        except (ValueError, TypeError) as e:
            # (a malformed address: Dask's parser raises these)
            raise AnyprecError(f"--scheduler {scheduler!r} is not a Dask scheduler address "
                               f"like tcp://HOST:8786 ({e})") from None
    import logging
    # A point that fails (does not fit, timing tool error) is a result, reported in the
    # table: keep Dask's worker logs from printing it as a traceback.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def run(points, *, seed=1, sim="verilator", outdir="build/bench", scheduler=None,
        workers=2, progress=None, clock_mhz=None):
    """Measure ``points`` in parallel on Dask; returns records in the order given."""
    points = list(points)
    outdir = str(Path(outdir).resolve())
    client, cluster = _client(scheduler, workers)
    try:
        futs = client.map(lambda p: measure(p, seed=seed, sim=sim, outdir=outdir,
                                            clock_mhz=clock_mhz), points, pure=False)
        from dask.distributed import as_completed
        index = {f.key: i for i, f in enumerate(futs)}
        results = [None] * len(points)
        done = 0
        t0 = time.monotonic()
        for fut in as_completed(futs):
            i = index[fut.key]
            try:
                results[i] = fut.result()
            except AnyprecError as e:
                results[i] = {"design": points[i].design, "board": points[i].board,
                              "rows": points[i].rows, "cols": points[i].cols,
                              "error": str(e)}
            done += 1
            if progress:
                r = results[i]
                what = (f"{r['luts']} LUTs, {r['fmax_mhz']} MHz" if "error" not in r
                        else f"failed: {r['error'][:120]}")
                progress(f"[{done}/{len(points)}] {points[i].label}: {what} "
                         f"({time.monotonic() - t0:.0f} s)")
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def summarize(points):
    """The comparison of the designs (JSON ``summary`` of the report)."""
    ok = [p for p in points if "error" not in p and p.get("luts")]

    def best(design, board_family=None, key=None):
        cand = [p for p in ok if p["design"] == design
                and (board_family is None or p["board"] == board_family)]
        return max(cand, key=key) if cand else None

    out = {"equal_lut_ratio": {}, "whole_device_ratio": {}, "min_utilisation": None,
           "pairs": {}}
    boards = sorted({p["board"] for p in ok})
    # Equal LUTs: MAC/s per LUT of the best serial point over the best LUT-only parallel
    # point, on the ECP5 board when there is one (that is where the targets apply).
    board = "ulx3s-85f" if "ulx3s-85f" in boards else (boards[0] if boards else None)
    for k in map(str, KS):
        s = best("serial", board, key=lambda p: p["mac_per_s_per_lut"][k])
        pl = best("parallel-lut", board, key=lambda p: p["mac_per_s_per_lut"][k])
        if s and pl:
            out["equal_lut_ratio"][k] = round(s["mac_per_s_per_lut"][k] /
                                              pl["mac_per_s_per_lut"][k], 3)
            # The same comparison with the clocks taken out (MACs per cycle per LUT): what
            # the architectures give before timing closure.
            out.setdefault("equal_lut_ratio_per_cycle", {})[k] = round(
                (s["mac_per_s_per_lut"][k] / s["fmax_mhz"]) /
                (pl["mac_per_s_per_lut"][k] / pl["fmax_mhz"]), 3)
            out["pairs"].setdefault("equal_lut", f"{s['rows']}x{s['cols']} serial vs "
                                                 f"{pl['rows']}x{pl['cols']} parallel-lut")
            out.setdefault("equal_lut_pairs", {})[k] = (
                f"{s['rows']}x{s['cols']} serial vs {pl['rows']}x{pl['cols']} parallel-lut")
        # The same per LUT of the MAC arrays alone: the rest of the design (controller,
        # memories, CRCs, requantiser, UART) is the same in both and dilutes the ratio.
        per_array = lambda p: p["mac_per_s"][k] / p["array_luts"] if p.get("array_luts") else 0
        sa = best("serial", board, key=per_array)
        pa = best("parallel-lut", board, key=per_array)
        if sa and pa and per_array(sa) and per_array(pa):
            out.setdefault("equal_lut_ratio_array", {})[k] = round(
                per_array(sa) / per_array(pa), 3)
        s = best("serial", board, key=lambda p: p["mac_per_s"][k])
        pd = best("parallel-dsp", board, key=lambda p: p["mac_per_s"][k])
        if s and pd:
            out["whole_device_ratio"][k] = round(s["mac_per_s"][k] / pd["mac_per_s"][k], 3)
            out.setdefault("whole_device_ratio_per_cycle", {})[k] = round(
                (s["mac_per_s"][k] / s["fmax_mhz"]) / (pd["mac_per_s"][k] / pd["fmax_mhz"]), 3)
            out["pairs"].setdefault("whole_device", f"{s['rows']}x{s['cols']} serial vs "
                                                    f"{pd['rows']}x{pd['cols']} parallel-dsp")
            out.setdefault("whole_device_pairs", {})[k] = (
                f"{s['rows']}x{s['cols']} serial vs {pd['rows']}x{pd['cols']} parallel-dsp "
                f"({pd.get('dsps')} DSPs)")
    utils = [u for p in ok if p["design"] == "serial" for u in p["utilisation"].values()]
    out["min_utilisation"] = min(utils) if utils else None
    out["board"] = board
    return out


def report(points, *, seed=1, sim="verilator"):
    """The full JSON report: points, summary, tools, date."""
    from ..sim.tools import tool_versions
    tools = {}
    for p in points:
        tools.update(p.get("tools") or {})
    tools.update(tool_versions(sim))
    return {"points": points, "summary": summarize(points), "seed": seed, "simulator": sim,
            "tools": tools, "date": datetime.date.today().isoformat()}


def plot(rep, path):
    """Throughput per LUT against k, for every point (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"serial": "o-", "parallel-lut": "s--", "parallel-dsp": "^:"}
    for p in rep["points"]:
        if "error" in p:
            continue
        ks = [int(k) for k in p["mac_per_s_per_lut"]]
        ax.plot(ks, [p["mac_per_s_per_lut"][str(k)] / 1e3 for k in ks],
                styles.get(p["design"], "o-"),
                label=f"{p['design']} {p['rows']}x{p['cols']} {p['board']} "
                      f"({p['luts']} LUT, {p['fmax_mhz']:.0f} MHz)")
    ax.set_yscale("log")
    ax.set_xlabel("weight bits k")
    ax.set_ylabel("effective kMAC/s per LUT")
    ax.set_title("anyprec: bit-serial vs bit-parallel, measured (P&R + simulation)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pairs_text(pairs):
    """'A at k = 1-3; B at k = 4-8' from {k: pair}."""
    groups = []
    for k, v in pairs.items():
        if groups and groups[-1][1] == v:
            groups[-1][0].append(k)
        else:
            groups.append(([k], v))
    return "; ".join(f"{v} at k = {ks[0]}" + (f"-{ks[-1]}" if len(ks) > 1 else "")
                     for ks, v in groups)


def markdown(rep, plot_name="performance.png"):
    """docs/performance.md text for a report."""
    s = rep["summary"]
    lines = [
        "# anyprec performance (measured)",
        "",
        f"Generated by `anyprec bench` on {rep['date']}. Every number comes from nextpnr "
        "(resources, Fmax) and from cycle-accurate simulation of the reference layer on "
        f"{rep['simulator']}; nothing is estimated. Seed {rep['seed']}.",
        "",
        "| design | board | R x C | LUTs | FFs | BRAM | DSP | Fmax MHz | util k=1 | util k=8 "
        "| MMAC/s k=1 | k=2 | k=4 | k=8 | kMAC/s/LUT k=1 | k=8 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    # One footnote per included build setting (file, date, clock constraint): (b), (c), ...
    def _inc_key(p):
        return (p["included_from"], p.get("measured_on", "?"), p.get("clock_constraint_mhz"))
    inc = sorted({_inc_key(p) for p in rep["points"] if p.get("included_from")},
                 key=lambda t: (t[0], t[1], t[2] or 0))
    label = {key: f"({chr(ord('b') + i)})" for i, key in enumerate(inc)}
    for p in rep["points"]:
        if "error" in p:
            lines.append(f"| {p['design']} | {p['board']} | {p['rows']}x{p['cols']} | "
                         f"{p['error'][:110]} |" + " |" * 12)
            continue
        m = p["mac_per_s"]
        ml = p["mac_per_s_per_lut"]
        mark = (f", DL {p['drain_lanes']}" if "drain_lanes" in p else "") + (
            f" {label[_inc_key(p)]}" if p.get("included_from") else "")
        lines.append(
            f"| {p['design']} | {p['board']} | {p['rows']}x{p['cols']}{mark} | {p['luts']} | "
            f"{p['ffs']} | {p['brams']} | {p['dsps']} | {p['fmax_mhz']:.1f} | "
            f"{p['utilisation']['1']:.3f} | {p['utilisation']['8']:.3f} | "
            f"{m['1'] / 1e6:.0f} | {m['2'] / 1e6:.0f} | {m['4'] / 1e6:.0f} | "
            f"{m['8'] / 1e6:.0f} | {ml['1'] / 1e3:.1f} | {ml['8'] / 1e3:.1f} |")
    if inc:
        lines += [""] + [f"{label[(f, d, c)]} measured on {d} by the same flow" +
                         (f", place and route constrained at {c:g} MHz" if c else "") +
                         f", and included from `{f}` (`make bench-device`: builds too long "
                         "for the subset)." for f, d, c in inc]
        lines += [""] + [f"Note from {n}" for n in rep.get("included_notes", [])]
    lines += ["", f"![throughput per LUT]({plot_name})", "", "## Summary", ""]
    if s["equal_lut_ratio"]:
        lines.append(f"Equal LUTs ({s['board']}; the serial and LUT-only parallel points with "
                     "the most MAC/s per LUT at each k): serial / parallel MAC/s per LUT = " +
                     ", ".join(f"k={k}: {v}" for k, v in s["equal_lut_ratio"].items()) +
                     " (target: >= 0.9 x 8/k for k = 1, 2, 4 and >= 1.0 at k = 8). "
                     "Points compared: " + _pairs_text(s.get("equal_lut_pairs", {})) + ".")
    if s.get("equal_lut_ratio_per_cycle"):
        lines.append("")
        lines.append("The same at equal clocks (MACs per cycle per LUT, Fmax taken out): " +
                     ", ".join(f"k={k}: {v}"
                               for k, v in s["equal_lut_ratio_per_cycle"].items()) + ".")
    if s.get("equal_lut_ratio_array"):
        lines.append("")
        lines.append("The same per LUT of the MAC arrays alone (the controller, memories, CRCs "
                     "and requantiser are common to both designs): " +
                     ", ".join(f"k={k}: {v}" for k, v in s["equal_lut_ratio_array"].items())
                     + ".")
    if s["whole_device_ratio"]:
        lines.append("")
        lines.append(f"Whole device ({s['board']}; the serial and DSP arrays with the most "
                     "MAC/s at each k): serial / DSP-parallel MAC/s = " +
                     ", ".join(f"k={k}: {v}" for k, v in s["whole_device_ratio"].items()) +
                     " (goal: > 1 at every k, about 8 at k = 1). Arrays compared: " +
                     _pairs_text(s.get("whole_device_pairs", {})) + ".")
    if s.get("whole_device_ratio_per_cycle"):
        lines.append("")
        lines.append("The same at equal clocks: " + ", ".join(
            f"k={k}: {v}" for k, v in s["whole_device_ratio_per_cycle"].items()) + ".")
    if s["min_utilisation"] is not None:
        lines += ["", f"Minimum utilisation of the serial array on the reference layer: "
                      f"{s['min_utilisation']:.3f} (target >= 0.95)."]
    bound = []
    for p in rep["points"]:
        if p["design"] != "serial" or "error" in p:
            continue
        ref_k = (p.get("ref_layer") or [REF, REF])[1]
        j = -(-ref_k // p["cols"])
        dl = p.get("drain_lanes", 1)
        rd = p["rows"] // dl
        ks = [k for k in KS if k * j < rd]
        if ks:
            bound.append(f"{p['rows']}x{p['cols']} with {dl} drain lane{'s' if dl > 1 else ''} "
                         f"at k = {', '.join(map(str, ks))} (k*J = {ks[0] * j}"
                         f"{'...' if len(ks) > 1 else ''} < R/DL = {rd})")
    if bound:
        lines += ["", "Drain-bound points: a finished tile's R results leave the array DL "
                      "per cycle (DL drain lanes, hw/engine.py), so a tile takes "
                      "max(k*J, R/DL) cycles and arrays with R/DL > k*ceil(K/C) idle part of "
                      "the time: " + "; ".join(bound) + "."]
    lines += ["", "## Tools", ""] + [f"- {k} {v}" for k, v in sorted(rep["tools"].items())]
    lines += ["", "Reproduce: `make bench` (representative subset) or "
                  "`anyprec bench --full --write-docs`.", ""]
    return "\n".join(lines)
