"""anyprec bench: measured performance of bit-serial against bit-parallel designs."""

import io
import json
from pathlib import Path

from . import add_parser, progress_printer
from ...golden.errors import AnyprecError

ORDER = 60
#: Where --write-docs writes performance.md, .png and .json.
DOCS = Path(__file__).resolve().parents[2] / "docs"


#: The defaults of a measurement's options that are neither None nor False (with
#: --from-json, any of its options changed from its default is refused).
_DEFAULTS = {"seed": 1, "workers": 2, "out": "build/bench"}


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
    p.add_argument("--seed", type=int, default=_DEFAULTS["seed"],
                   help=f"place-and-route seed (default {_DEFAULTS['seed']})")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="constrain place and route at MHZ (default: each board's Fmax "
                        "goal; large designs route much faster at a reachable clock)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=int, default=_DEFAULTS["workers"],
                   help=f"local Dask workers (default {_DEFAULTS['workers']})")
    p.add_argument("--no-speed", action="store_true",
                   help="skip the simulation-speed measurement")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--out", default=_DEFAULTS["out"],
                   help=f"build directory (default {_DEFAULTS['out']})")
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
    from ...boards.bench import Point, DESIGNS, point_config
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
        if not get_board(board).bitstream:
            # (refused here: the point would fail, and the layer-cycle and simulation
            # speed measurements still run after it)
            raise AnyprecError(f"{item!r}: {board} has no open place-and-route flow; "
                               "bench places and routes on the iCE40 and ECP5 boards")
        point = Point(design, board, rows, cols, ref, drain)
        try:
            point_config(point)     # (bad sizes fail here, before any build, named)
        except AnyprecError as e:
            raise type(e)(f"point {item.strip()!r}: {e}") from None
        out.append(point)
    return out


def _load_report(path):
    """A saved report for --from-json: checked whole, the summary recomputed."""
    rep = _read_report(path, whole=True)
    for layer in rep["layer_cycles"]["layers"]:     # JSON made the k keys strings
        for key, val in layer.items():
            if isinstance(val, dict):
                layer[key] = {int(k) if k.isdecimal() else k: v for k, v in val.items()}
    return rep


def _key(p):
    ref = p.get("ref_layer")
    return (p["design"], p["board"], p["rows"], p["cols"],
            tuple(ref) if isinstance(ref, list) else ref)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# Kinds of report fields: (test, what the message says the field should be).
_ANY = (lambda v: True, "anything")
_INT = (_int, "an integer")
_SIZE = (lambda v: _int(v) and v >= 1, "a positive integer")
_NUMBER = (_number, "a number")
_POSITIVE = (lambda v: _number(v) and v > 0, "a positive number")
_NUMBER_OR_NULL = (lambda v: v is None or _number(v), "a number or null")
_NUMBERS = (lambda v: isinstance(v, list) and all(map(_number, v)), "a list of numbers")
_STR = (lambda v: isinstance(v, str), "a string")
_STRS = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
         "a list of strings")
_LIST = (lambda v: isinstance(v, list), "a list")
_OBJECT = (lambda v: isinstance(v, dict), "an object")
_OBJECT_OR_NULL = (lambda v: v is None or isinstance(v, dict), "an object or null")
_REF = (lambda v: v is None or (isinstance(v, list) and len(v) == 2 and all(
    _int(x) and x >= 1 for x in v)), "a list [M, K] of positive integers")
_KS = tuple(str(k) for k in range(1, 9))


def _field(obj, key, kind, where="", optional=False):
    """``obj[key]``, checked to be of ``kind``; otherwise a ValueError that names the field
    (``where``: the path to ``obj`` in the report; None when optional and absent)."""
    if key not in obj:
        if optional:
            return None
        raise ValueError(f"{where} has no {key!r}" if where else f"no {key!r}")
    value = obj[key]
    test, what = kind
    if not test(value):
        text = repr(value)
        text = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f"{where + ': ' if where else ''}{key!r} is {text}, not {what}")
    return value


def _per_k(obj, key, ks, kind, where, exact=False):
    """``obj[key]``, an object with a ``kind`` value at each k of ``ks`` (and no other key
    when ``exact``: the plot draws every key)."""
    d = _field(obj, key, _OBJECT, where)
    sub = f"{where}.{key}" if where else key
    for k in ks:
        _field(d, k, kind, sub)
    extra = sorted(set(d) - set(ks)) if exact else []
    if extra:
        raise ValueError(f"{sub} has {extra[0]!r}, not a k in {ks[0]}..{ks[-1]}")
    return d


def _check_point(i, p):
    """Raise ValueError unless point ``i`` has what the table, the plot and the summary
    read, of the right types (a failed point: its error instead of the measurements)."""
    if not isinstance(p, dict):
        raise ValueError(f"point {i + 1} is {type(p).__name__}, not an object")
    where = f"point {i + 1}"
    for f in ("design", "board"):
        _field(p, f, _STR, where)
    for f in ("rows", "cols"):
        _field(p, f, _SIZE, where)
    where = f"point {i + 1} ({p['design']} {p['rows']}x{p['cols']})"
    _field(p, "ref_layer", _REF, where, optional=True)
    if "error" in p:
        _field(p, "error", _STR, where)
        return
    for f in ("luts", "ffs", "brams", "dsps"):
        _field(p, f, _INT, where)
    _field(p, "fmax_mhz", _POSITIVE, where)
    for f in ("utilisation", "mac_per_s", "mac_per_s_per_lut"):
        _per_k(p, f, _KS, _POSITIVE, where, exact=True)
    _field(p, "drain_lanes", _SIZE, where, optional=True)
    _field(p, "array_luts", _NUMBER_OR_NULL, where, optional=True)
    # Read by the footnotes of included points.
    _field(p, "included_from", _STR, where, optional=True)
    _field(p, "measured_on", _STR, where, optional=True)
    _field(p, "clock_constraint_mhz", _NUMBER_OR_NULL, where, optional=True)


def _check_whole(rep):
    """Raise ValueError unless ``rep`` has what --from-json renders besides its points: the
    header fields, the layer cycles and (when there) the simulation speed."""
    _field(rep, "date", _STR)
    _field(rep, "seed", _INT)
    _field(rep, "simulator", _STR)
    _field(rep, "tools", _OBJECT)
    _field(rep, "included_notes", _STRS, optional=True)
    lc = _field(rep, "layer_cycles", _OBJECT)
    _field(lc, "config", _STR, "layer_cycles")
    for i, layer in enumerate(_field(lc, "layers", _LIST, "layer_cycles")):
        where = f"layer_cycles.layers[{i}]"
        if not isinstance(layer, dict):
            raise ValueError(f"{where} is {type(layer).__name__}, not an object")
        for f in ("m", "k"):
            _field(layer, f, _SIZE, where)
        for f in ("cycles", "over_ideal"):
            _per_k(layer, f, _KS, _NUMBER, where)
        for f in ("latency_ratio_8_over_k", "ideal_ratio_8_over_k"):
            _per_k(layer, f, ("1", "2", "4"), _ANY, where)
        _field(layer, "overhead_cycles", _LIST, where)
    sp = _field(rep, "tooling_speed", _OBJECT, optional=True)
    if sp is None:
        return
    b = _field(sp, "bare_verilator", _OBJECT, "tooling_speed")
    for f in ("cycles", "seconds", "cycles_per_second"):
        _field(b, f, _NUMBER, "tooling_speed.bare_verilator")
    _field(b, "runs_seconds", _NUMBERS, "tooling_speed.bare_verilator", optional=True)
    w = _field(sp, "workload", _OBJECT, "tooling_speed")
    _field(w, "samples", _INT, "tooling_speed.workload")
    _field(w, "wbits", _LIST, "tooling_speed.workload")
    for sim, flow in _field(sp, "flows", _OBJECT, "tooling_speed").items():
        where = f"tooling_speed.flows.{sim}"
        if not isinstance(flow, dict):
            raise ValueError(f"{where} is {type(flow).__name__}, not an object")
        for f in ("cycles", "seconds", "cycles_per_second", "ratio_to_bare"):
            _field(flow, f, _NUMBER, where)
        _field(flow, "same_responses_as_bare", _ANY, where)


def _read_report(path, whole=False):
    """A saved ``anyprec bench --json`` report, each point checked for what the table, the
    plot and the summary read, the summary recomputed; or a one-line error naming the
    field. ``whole``: also what --from-json renders besides the points (an included report
    only lends its points, tools, date and note)."""
    from ...boards import bench
    try:
        rep = json.loads(Path(path).read_text())
        if not isinstance(rep, dict):
            raise ValueError(f"the top level is {type(rep).__name__}, not an object")
        for i, p in enumerate(_field(rep, "points", _LIST)):
            _check_point(i, p)
        if whole:
            _check_whole(rep)
        _field(rep, "tools", _OBJECT_OR_NULL, optional=True)
        _field(rep, "date", _STR, optional=True)
        rep["summary"] = bench.summarize(rep["points"])
    except OSError as e:
        raise AnyprecError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError,
            RecursionError) as e:       # (RecursionError: JSON nested beyond the parser)
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
        # (once: a saved report that already includes this one keeps its note)
        note = f"{path}: {other['note']}" if isinstance(other.get("note"), str) else None
        if note and note not in rep.setdefault("included_notes", []):
            rep["included_notes"].append(note)
    rep["summary"] = bench.summarize(rep["points"])
    return rep


def run(args):
    from ...boards import bench
    if args.from_json:
        # (the options of a measurement are refused, not ignored: nothing is measured)
        unset = {"full": False, "points": None, "clock": None, "scheduler": None,
                 "no_speed": False, **_DEFAULTS}
        given = [f"--{k.replace('_', '-')}" for k, v in unset.items() if getattr(args, k) != v]
        if given:
            raise AnyprecError(f"{given[0]} is for a measurement; --from-json only renders "
                               "a saved report again")
        return _output(args, _include(_load_report(args.from_json), args.include),
                       " with ".join([args.from_json, *args.include]))
    for path in args.include:      # a missing or malformed file fails before any build
        _read_report(path)
    if args.workers < 1:
        raise AnyprecError(f"--workers must be at least 1, not {args.workers}")
    if args.clock is not None and not 1 <= args.clock <= 1000:
        raise AnyprecError(f"--clock must be between 1 and 1000 MHz, not {args.clock:g}")
    points = (parse_points(args.points) if args.points
              else bench.DEFAULT_POINTS if args.full else bench.QUICK_POINTS)
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
    return _output(args, _include(rep, args.include),
                   f"the report saved to {Path(args.out) / 'report.json'}")


def _output(args, rep, source):
    """Render ``rep`` (read from ``source``, named if it cannot be rendered), print it and,
    with --write-docs, write the docs, but only once everything has rendered."""
    from ...boards import bench
    try:
        md = bench.markdown(rep)
        cycles = _cycles_md(rep["layer_cycles"])
        speed = _speed_md(rep["tooling_speed"]) if "tooling_speed" in rep else None
        png = None
        if args.write_docs:
            png = io.BytesIO()
            bench.plot(rep, png)
        text = json.dumps(rep, indent=1)
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
        # (a report the checks of _read_report let through: still one line, docs untouched)
        raise AnyprecError(f"cannot render {source}: not a well-formed 'anyprec bench "
                           f"--json' report ({type(e).__name__}: {e})") from None
    if args.write_docs:
        # (replaced together: a failed write leaves the three as they were, a set)
        from ...golden.atomic import write_files
        write_files([(DOCS / "performance.png", png.getvalue),
                     (DOCS / "performance.md", lambda: (md + cycles + (speed or "")).encode()),
                     (DOCS / "performance.json", lambda: text.encode())])
    if args.json:
        print(text)
    else:
        print(md.split("## Tools")[0])
        print(cycles)
        if speed is not None:
            print(speed)
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
