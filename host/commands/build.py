"""``anyprec build``: bitstream (or Verilog for closed-toolchain boards) and a JSON report."""

import json
import os
import sys

from . import add_parser, add_config_args, config_from_args, parse_ranges

ORDER = 61


def register(sub):
    p = add_parser(
        sub, "build", help="build a board's bitstream and report resources and Fmax",
        description="Synthesise, place and route and pack the accelerator for a board\n"
                    "(UART bridge, PLL, status LEDs) with the open toolchain, then report\n"
                    "LUTs, FFs, block RAMs, DSPs, Fmax against the design clock, the seed,\n"
                    "tool versions and the bitstream's SHA-256. The same seed and inputs give\n"
                    "the same bitstream. Boards with closed vendor tools (arty-a7-35) get\n"
                    "Verilog and pin constraints instead. Configuration flags override the\n"
                    "board's default configuration ('anyprec boards').",
        examples=["anyprec build --board icebreaker",
                  "anyprec build --board ulx3s-85f --rows 16 --cols 16 --seed 3 --json",
                  "anyprec build --board icebreaker --clock 36 --seeds 1-4 --workers 2   best of 4",
                  "anyprec build --board all                   every target (make boards)",
                  "anyprec build --board arty-a7-35 -o out/arty  Verilog + XDC for Vivado",
                  "anyprec build --board icebreaker --toolchain system --baud 1000000"])
    p.add_argument("--board", required=True, metavar="NAME",
                   help="board name (see 'anyprec boards'), or 'all'")
    add_config_args(p)
    p.add_argument("--seed", type=int, default=None,
                   help="nextpnr placement seed (default 1)")
    p.add_argument("--seeds", default=None, metavar="LIST",
                   help="seed sweep, e.g. 1-4 or 1,3,7: synthesise once, place and route "
                        "with each seed, keep the highest Fmax (report 'seeds' lists all)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="with --seeds: seeds placed at once (default 1; each nextpnr "
                        "takes a core)")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="design clock made by the PLL (default: the board's)")
    p.add_argument("--baud", type=int, default=None,
                   help="UART baud rate (default 115200)")
    p.add_argument("--toolchain", choices=("yowasp", "system"), default="yowasp",
                   help="yowasp: the PyPI tools (default); system: yosys/nextpnr on PATH")
    p.add_argument("-o", "--outdir", default=None, metavar="DIR",
                   help="build directory (default build/boards/<board>; with "
                        "--board all, DIR/<board>)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 1 when timing is not met")
    p.add_argument("--slack", action="store_true",
                   help="list every register input that misses the clock, grouped by "
                        "register (report 'slack', <name>.slack.json)")
    p.set_defaults(func=run)


MAX_SEEDS = 64


def parse_seeds(text):
    """'1-4', '7' or '1,3,7' -> [1, 2, 3, 4] ...: distinct seeds in the order given."""
    from ...golden.errors import ConfigError
    bad = ConfigError(f"--seeds must look like '1-4', '7' or '1,3,7' (at most {MAX_SEEDS} "
                      f"seeds), not {text!r}")
    out = []
    for lo, hi in parse_ranges(text, bad):
        if hi - lo >= MAX_SEEDS:
            raise bad
        out += [s for s in range(lo, hi + 1) if s not in out]
    if len(out) > MAX_SEEDS:
        raise ConfigError(f"--seeds: at most {MAX_SEEDS} seeds, not {len(out)}")
    for s in out:
        if not 0 <= s <= 2**31 - 1:
            raise ConfigError(f"--seeds: seed {s} is out of range 0..2147483647")
    return out


def _check(args):
    from ...golden.errors import ConfigError
    if args.seed is not None and args.seeds is not None:
        raise ConfigError("give --seed or --seeds, not both")
    if args.seeds is not None:
        args.seeds = parse_seeds(args.seeds)
    if args.seed is None:
        args.seed = 1
    if not 1 <= args.workers <= MAX_SEEDS:
        raise ConfigError(f"--workers must be from 1 to {MAX_SEEDS}, not {args.workers}")
    if args.workers > 1 and args.seeds is None:
        raise ConfigError("--workers places several seeds at once: it needs --seeds")
    if args.seed < 0 or args.seed > 2**31 - 1:
        raise ConfigError(f"--seed must be from 0 to 2147483647, not {args.seed}")
    if args.baud is not None and args.baud <= 0:
        raise ConfigError(f"--baud must be positive, not {args.baud}")
    if args.clock is not None and not 1 <= args.clock <= 500:
        raise ConfigError(f"--clock must be from 1 to 500 MHz, not {args.clock:g}")


def board_and_config(args):
    """(Board, AnyprecConfig) from --board and the configuration flags."""
    from ...boards.registry import get_board
    from ...golden.errors import ConfigError
    board = get_board(args.board)
    cfg = config_from_args(args, base=board.default)
    if cfg.stream_width != 8:
        raise ConfigError(f"board builds talk over a UART and need --stream-width 8, not "
                          f"{cfg.stream_width}")
    return board, cfg


def _progress(json_mode, board):
    def show(i, n, label, state, seconds):
        if state == "start":
            print(f"[{board} {i}/{n}] {label} ...", file=sys.stderr, flush=True)
        else:
            print(f"[{board} {i}/{n}] {label} done in {seconds:.1f} s", file=sys.stderr,
                  flush=True)
    return show


def run(args):
    from ...boards import build as B
    from ...boards.registry import BOARDS
    from ...boards.top import DEFAULT_BAUD
    from ...golden.errors import AnyprecError
    _check(args)
    names = list(BOARDS) if args.board == "all" else [args.board]
    if args.board == "all":
        for name in [n for n in names if not BOARDS[n].fits]:
            print(f"anyprec: skipping {name}: {BOARDS[name].notes.split('. ')[0]}",
                  file=sys.stderr)
        names = [n for n in names if BOARDS[n].fits]
    if args.board == "all":
        _check_all(names, args)
    reports, failures = [], []
    failed_timing = False
    if args.slack and len(names) == 1 and not BOARDS[names[0]].bitstream:
        raise B.BuildError(f"{names[0]}: --slack reads nextpnr's timing; this board exports "
                           "Verilog only (no place and route here)")
    for name in names:
        a = _Args(args, board=name)
        board, cfg = board_and_config(a)
        baud = args.baud or DEFAULT_BAUD
        outdir = (os.path.join(args.outdir, name) if args.board == "all" and args.outdir
                  else args.outdir)
        try:
            if not board.bitstream:
                rep = B.export(board, cfg, outdir=outdir, baud=baud)
            else:
                rep = B.build(board, cfg, seed=args.seed, toolchain=args.toolchain,
                              outdir=outdir, target_mhz=args.clock, baud=baud,
                              progress=_progress(args.json, board.name),
                              slack=args.slack, seeds=args.seeds, jobs=args.workers)
                failed_timing |= not rep["timing_met"]
        except AnyprecError as e:
            if len(names) == 1:
                raise
            # --board all: report and go on with the other boards.
            print(f"anyprec: error: {name}: {e}", file=sys.stderr)
            failures.append(name)
            continue
        reports.append(rep)
        if not args.json:
            _summary(rep, board)
    if args.json:
        print(json.dumps(reports[0] if len(names) == 1 else
                         {"builds": reports, "failed": failures}, indent=1))
    if failures:
        raise AnyprecError(f"{len(failures)} of {len(names)} board builds failed: "
                           f"{', '.join(failures)}")
    return 1 if (args.strict and failed_timing) else 0


def _check_all(names, args):
    """--board all: every board's configuration, clock and baud rate checked before the
    first build (a --clock one PLL cannot make failed only when its board's turn came,
    after the others had built), and an -o that cannot be a directory refused once."""
    from ...boards.top import DEFAULT_BAUD, link_plan
    from ...golden.errors import AnyprecError, ConfigError
    if args.outdir and os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise ConfigError(f"--board all writes one directory per board into -o "
                          f"{args.outdir}, which is not a directory")
    bad = []
    for name in names:
        try:
            board, _ = board_and_config(_Args(args, board=name))
            link_plan(board, args.clock, args.baud or DEFAULT_BAUD)
        except AnyprecError as e:
            bad.append(f"{name}: {e}")
    if bad:
        raise ConfigError(f"{len(bad)} of {len(names)} boards refuse these settings, nothing "
                          f"was built: " + "; ".join(bad))


class _Args:
    """args with one attribute replaced."""
    def __init__(self, args, **changes):
        self.__dict__.update(vars(args))
        self.__dict__.update(changes)


def _summary(r, board):
    if r.get("bitstream") is None:
        print(f"{r['board']} ({r['device']}): Verilog-only target, wrote {len(r['files'])} files "
              f"to {r['outdir']}")
        for f in r["files"]:
            print(f"  {f}")
        print(f"  clock {r['clock_mhz']:g} MHz, UART {r['baud']} baud; build the bitstream "
              "with Vivado (README.txt there)")
        return
    c = r["config"]
    met = "met" if r["timing_met"] else "NOT MET"
    print(f"{r['board']} ({r['device']}): {c.get('design', 'serial')} {c['rows']}x{c['cols']}, N={c['max_wbits']}, "
          f"A={c['max_abits']}, {c['layers']} layers of <= {c['max_m']}x{c['max_k']}")
    print(f"  LUTs   {r['luts']:>7} / {r['luts_total']} ({100 * r['luts'] / r['luts_total']:.1f}%)")
    print(f"  FFs    {r['ffs']:>7}")
    bram = f"{r['brams']:>7} / {board.brams} {board.bram_kind}"
    if r.get("sprams"):
        bram += f", {r['sprams']} / {board.sprams} SPRAM"
    print(f"  BRAMs  {bram}")
    print(f"  DSPs   {r['dsps']:>7} / {board.dsps}")
    print(f"  Fmax   {r['fmax_mhz']:>7} MHz vs {r['target_mhz']:g} MHz design clock: timing {met}"
          f" (goal {r['goal_mhz']:g} MHz)")
    if r.get("binops_per_lut"):
        print(f"  binary ops per LUT per cycle: {r['binops_per_lut']:.3f} (whole design)"
              + (f", {r['array_binops_per_lut']:.3f} (MAC array alone)"
                 if r.get("array_binops_per_lut") else ""))
    if r.get("array_luts_per_lane"):
        print(f"  LUTs per lane (MAC array): {r['array_luts_per_lane']:.1f} "
              f"({c['cols']} cells of {1 if c.get('design', 'serial') == 'serial' else c['max_wbits']}"
              f" x {c['max_abits']} bits each)")
    wm = r["weight_memory"]
    print(f"  weight memory: {'block RAM' if wm['in_block_ram'] else 'NOT in block RAM'} "
          f"({wm['detail']})")
    if len(r.get("seeds", ())) > 1:
        print("  seeds  " + ", ".join(
            f"{t['seed']}: " + (f"{t['fmax_mhz']} MHz" if t["fmax_mhz"] is not None
                                else "did not place") for t in r["seeds"])
            + f"; kept {r['seed']} (highest Fmax)")
    print(f"  seed {r['seed']}, {r['seconds']:.1f} s "
          f"({', '.join(f'{k} {v:.1f} s' for k, v in r['steps'].items())})")
    print(f"  bitstream {r['bitstream']}")
    print(f"  sha256 {r['bitstream_sha256']}")
    if r.get("slack"):
        from ...boards.slack import slack_table
        print("  " + slack_table(r["slack"]).replace("\n", "\n  "))
    if r.get("untimed_dsps"):
        print(f"  warning: {r['untimed_dsps']} SB_MAC16 cell(s) with a combinational path "
              "through them, which nextpnr does not time: the Fmax above leaves those "
              "paths out", file=sys.stderr)
    if not r["timing_met"]:
        print(f"  warning: the design may not work at {r['target_mhz']:g} MHz; rebuild with "
              f"--clock {int(r['fmax_mhz'] or 1)} or a smaller array", file=sys.stderr)
