"""anyprec bench: measured performance of bit-serial against bit-parallel designs."""

import json
from pathlib import Path

from . import add_parser, progress_printer
from ...golden.errors import AnyprecError

ORDER = 60


def register(sub):
    p = add_parser(sub, "bench", "measure throughput, area and Fmax against the bit-parallel "
                   "baseline",
                   "Place and route each point (design, board, R x C) with the open toolchain, "
                   "simulate a 256 x 256 reference layer at k = 1..8 cycle-accurately, and "
                   "compare effective MAC/s, MAC/s per LUT and utilisation of the bit-serial "
                   "array against the bit-parallel int8 baseline (LUT-only and DSP). Points "
                   "run in parallel on Dask (a local cluster, or --scheduler). Also measures "
                   "the simulation flow's speed against a bare Verilator run.",
                   ["anyprec bench                       # representative subset",
                    "anyprec bench --full --json > bench.json",
                    "anyprec bench --points serial:ulx3s-85f:16x16,parallel-dsp:ulx3s-85f:10x10",
                    "anyprec bench --scheduler tcp://10.0.0.5:8786 --full",
                    "anyprec bench --write-docs         # docs/performance.md + plot",
                    "anyprec bench --include docs/performance-device.json --write-docs"])
    p.add_argument("--full", action="store_true",
                   help="the full sweep (4x4, 8x8, 16x16 of each design; long)")
    p.add_argument("--points", default=None, metavar="D:BOARD:RxC[:REF],...",
                   help="explicit points, e.g. serial:ulx3s-85f:8x8")
    p.add_argument("--seed", type=int, default=1, help="place-and-route seed (default 1)")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="constrain place and route at MHZ (default: each board's Fmax "
                        "goal; large designs route much faster at a reachable clock)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=int, default=2, help="local Dask workers (default 2)")
    p.add_argument("--no-speed", action="store_true",
                   help="skip the simulation-speed measurement")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--out", default="build/bench", help="build directory (default build/bench)")
    p.add_argument("--from-json", default=None, metavar="FILE",
                   help="re-render the table, plot and docs from a saved JSON report "
                        "(no builds)")
    p.add_argument("--include", action="append", default=[], metavar="FILE",
                   help="add the points of a saved 'anyprec bench --json' report to this "
                        "one (points measured now take precedence); repeatable. 'make "
                        "bench' includes the whole-device pair this way "
                        "(docs/performance-device.json, 'make bench-device')")
    p.add_argument("--write-docs", action="store_true",
                   help="write docs/performance.md and docs/performance.png")
    p.set_defaults(func=run)


def parse_points(text):
    from ...boards.bench import Point, DESIGNS
    from ...boards.registry import get_board
    out = []
    for item in text.split(","):
        parts = item.strip().split(":")
        try:
            design, board, size = parts[:3]
            rows, cols = (int(v) for v in size.lower().split("x"))
            extra = parts[3:]
            drain = None
            if extra and extra[-1].lower().startswith("d"):
                drain = int(extra.pop()[1:])
            if len(extra) > 1:
                raise ValueError
            ref = int(extra[0]) if extra else 256
        except ValueError:
            raise AnyprecError(f"a point looks like serial:ulx3s-85f:8x8[:256][:d4] "
                               f"(design:board:RxC[:reference size][:drain lanes]), "
                               f"not {item!r}") from None
        if design not in DESIGNS:
            raise AnyprecError(f"unknown design {design!r} in {item!r}; "
                               f"choose from {', '.join(DESIGNS)}")
        get_board(board)
        out.append(Point(design, board, rows, cols, ref, drain))
    return out


def _load_report(path):
    """A saved report for --from-json: its points checked, the summary recomputed."""
    rep = _read_report(path)
    try:
        for layer in rep["layer_cycles"]["layers"]:     # JSON made the k keys strings
            for key, val in layer.items():
                if isinstance(val, dict) and all(str(k).isdigit() for k in val):
                    layer[key] = {int(k): v for k, v in val.items()}
    except (KeyError, TypeError, AttributeError) as e:
        raise AnyprecError(f"{path} is not an 'anyprec bench --json' report ({e})") from None
    return rep


def _key(p):
    ref = p.get("ref_layer")
    return (p["design"], p["board"], p["rows"], p["cols"],
            tuple(ref) if isinstance(ref, list) else ref)


def _check_point(i, p):
    """Raise KeyError/TypeError/ValueError unless point ``i`` has what the table, the plot
    and the summary read (a failed point: its error instead of the measurements)."""
    _key(p)
    if "error" in p:
        return
    try:
        for f in ("luts", "ffs", "brams", "dsps"):
            int(p[f])
        float(p["fmax_mhz"])
        for f, ks in (("utilisation", "18"), ("mac_per_s", "1248"),
                      ("mac_per_s_per_lut", "1248")):
            for k in ks:
                float(p[f][k])
    except KeyError as e:
        raise ValueError(f"point {i + 1} ({p['design']} {p['rows']}x{p['cols']}) has no "
                         f"{e.args[0]!r}") from None


def _read_report(path):
    """A saved ``anyprec bench --json`` report, each point checked for what the table, the
    plot and the summary read, the summary recomputed; or a one-line error."""
    from ...boards import bench
    try:
        rep = json.loads(Path(path).read_text())
        for i, p in enumerate(rep["points"]):
            _check_point(i, p)
        if not isinstance(rep.get("tools") or {}, dict):
            raise TypeError(f"'tools' is {type(rep['tools']).__name__}, not an object")
        rep["summary"] = bench.summarize(rep["points"])
    except OSError as e:
        raise AnyprecError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise AnyprecError(f"{path} is not an 'anyprec bench --json' report ({e})") from None
    return rep


def _include(rep, paths):
    """Add the points of saved reports to ``rep`` (not those it measured itself), each
    marked with its source and date, and recompute the summary."""
    from ...boards import bench
    have = {_key(p) for p in rep["points"]}
    for path in paths:
        other = _read_report(path)
        date = other.get("date", "?")
        for p in other["points"]:
            if _key(p) not in have:
                have.add(_key(p))
                # A point re-measured alone carries its own date (measured_on).
                rep["points"].append(dict(p, included_from=str(path),
                                          measured_on=p.get("measured_on", date)))
        for name, ver in (other.get("tools") or {}).items():
            rep["tools"].setdefault(name, ver)
        if isinstance(other.get("note"), str):
            rep.setdefault("included_notes", []).append(f"{path}: {other['note']}")
    rep["summary"] = bench.summarize(rep["points"])
    return rep


def run(args):
    from ...boards import bench
    if args.from_json:
        return _output(args, _include(_load_report(args.from_json), args.include))
    for path in args.include:      # a missing or malformed file fails before any build
        _read_report(path)
    if args.workers < 1:
        raise AnyprecError(f"--workers must be at least 1, not {args.workers}")
    if args.clock is not None and not 1 <= args.clock <= 1000:
        raise AnyprecError(f"--clock must be between 1 and 1000 MHz, not {args.clock:g}")
    points = (parse_points(args.points) if args.points
              else bench.DEFAULT_POINTS if args.full else bench.QUICK_POINTS)
    for p in points:
        bench.point_config(p)            # bad points fail here, before any build
    progress = None if args.json else progress_printer("bench")
    if progress:
        progress(f"{len(points)} points on {args.workers} Dask workers"
                 + (f" at {args.scheduler}" if args.scheduler else ""))
    records = bench.run(points, seed=args.seed, outdir=args.out, scheduler=args.scheduler,
                        workers=args.workers, progress=progress, clock_mhz=args.clock)
    rep = bench.report(records, seed=args.seed)
    rep["clock_constraint_mhz"] = args.clock or "board goal"
    from ...sim.cycles import layer_cycles
    if progress:
        progress("measuring layer cycles against the ideal (default 8x8 build)")
    rep["layer_cycles"] = {"config": "default 8x8", "layers": layer_cycles(
        [(32, 32), (64, 64), (32, 64), (64, 32)])}
    if not args.no_speed:
        from ...sim.speed import compare
        if progress:
            progress("measuring simulation speed (verify flow vs bare Verilator)")
        rep["tooling_speed"] = compare(samples=100, bits=(1, 8))
    # Saved before anything else renders it: a long sweep is never lost to a later error.
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "report.json").write_text(json.dumps(rep, indent=1))
    if progress:
        progress(f"raw report saved to {Path(args.out) / 'report.json'}")
    return _output(args, _include(rep, args.include))


def _output(args, rep):
    from ...boards import bench
    if args.write_docs:
        docs = Path(__file__).resolve().parents[2] / "docs"
        bench.plot(rep, docs / "performance.png")
        text = bench.markdown(rep) + _cycles_md(rep["layer_cycles"])
        if "tooling_speed" in rep:
            text += _speed_md(rep["tooling_speed"])
        (docs / "performance.md").write_text(text)
        (docs / "performance.json").write_text(json.dumps(rep, indent=1))
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print(bench.markdown(rep).split("## Tools")[0])
        print(_cycles_md(rep["layer_cycles"]))
        if "tooling_speed" in rep:
            print(_speed_md(rep["tooling_speed"]))
    # A point that does not fit its device is a result (the table says so), not a failure.
    return 0 if all("error" not in r or "does not fit" in r["error"]
                    for r in rep["points"]) else 1


def _speed_md(sp):
    b = sp["bare_verilator"]
    lines = ["", "## Simulation speed", "",
             f"The verify flow (host driver + cocotb + the harness) on the digits model, "
             f"{sp['workload']['samples']} images at k = "
             f"{', '.join(map(str, sp['workload']['wbits']))}, against a bare Verilator run "
             "(a C++ main, no cocotb) replaying the same frames through the same design"
             + (f"; the fastest of {len(b['runs_seconds'])} runs of each but Icarus "
                f"(bare: {', '.join(f'{t:.3f}' for t in b['runs_seconds'])} s)"
                if len(b.get("runs_seconds", [])) > 1 else "") + ":", "",
             "| run | cycles | seconds | cycles/s | ratio to bare | same responses |",
             "|---|---|---|---|---|---|",
             f"| bare Verilator | {b['cycles']} | {b['seconds']:.3f} | "
             f"{b['cycles_per_second']:.0f} | 1 | - |"]
    for sim, f in sp["flows"].items():
        lines.append(f"| verify flow on {sim} | {f['cycles']} | {f['seconds']:.3f} | "
                     f"{f['cycles_per_second']:.0f} | {f['ratio_to_bare']:.3f} | "
                     f"{'yes' if f['same_responses_as_bare'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def _cycles_md(lc):
    lines = ["", "## Cycles against the ideal", "",
             f"MATVEC on the {lc['config']} build (Verilator), from the start command to the "
             "last result, against the ideal k*ceil(K/C)*ceil(M/R); every result checked "
             "against golden.", "",
             "| M x K | " + " | ".join(f"k={k}" for k in range(1, 9)) + " | overhead |",
             "|---|" + "---|" * 9]
    for r in lc["layers"]:
        cells = [f"{r['cycles'][k]} ({r['over_ideal'][k]:.2f}x)" for k in range(1, 9)]
        lines.append(f"| {r['m']} x {r['k']} | " + " | ".join(cells) +
                     f" | {', '.join(map(str, r['overhead_cycles']))} |")
    lines += ["", "Latency ratio cycles(8 bits) / cycles(k bits) (ideal 8/k):", ""]
    for r in lc["layers"]:
        lines.append(f"- {r['m']} x {r['k']}: " + ", ".join(
            f"k={k}: {r['latency_ratio_8_over_k'][k]} (ideal {r['ideal_ratio_8_over_k'][k]})"
            for k in (1, 2, 4)))
    return "\n".join(lines) + "\n"
