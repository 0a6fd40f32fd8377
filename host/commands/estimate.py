"""``anyprec estimate``: synthesis-only resource estimate for a board (no place and route)."""

import json
import sys

from . import add_parser, add_config_args

ORDER = 62


def register(sub):
    p = add_parser(
        sub, "estimate", help="fast resource estimate: does a configuration fit a board?",
        description="Synthesise the board design with yosys only (no place and route) and\n"
                    "estimate LUTs, FFs, block RAMs and DSPs against the device: whether the\n"
                    "configuration fits and by how much, so the largest array can be found\n"
                    "before a long build. Also checks that the weight-plane memory maps to\n"
                    "block RAM (DP16KD on ECP5, SB_RAM40_4K/SPRAM on iCE40), not LUTs.",
        examples=["anyprec estimate --board ulx3s-85f",
                  "anyprec estimate --board ulx3s-85f --rows 32 --cols 16 --json",
                  "anyprec estimate --board icebreaker --rows 1 --cols 4",
                  "anyprec estimate --board ulx3s-25f --largest    largest RxR that fits"])
    p.add_argument("--board", required=True, metavar="NAME", help="board name ('anyprec boards')")
    add_config_args(p)
    p.add_argument("--toolchain", choices=("yowasp", "system"), default="yowasp",
                   help="yowasp (default) or the system's yosys")
    p.add_argument("-o", "--outdir", default=None, metavar="DIR",
                   help="work directory (default build/boards/<board>-estimate; with "
                        "--largest build/boards/<board>-largest)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.add_argument("--largest", action="store_true",
                   help="find the largest square power-of-two array (R = C) that fits, "
                        "one size at a time from the configuration's own (a few estimates; "
                        "the other configuration flags apply)")
    p.set_defaults(func=run)


def run(args):
    from ...boards.build import estimate
    from .build import board_and_config
    if args.largest and (args.cfg_rows is not None or args.cfg_cols is not None):
        from ...golden.errors import ConfigError
        raise ConfigError("--largest chooses rows and cols itself; leave out --rows/--cols")
    board, cfg = board_and_config(args)
    if args.largest:
        return _largest(args, board, cfg)

    def show(i, n, label, state, seconds):
        if state == "start":
            print(f"[{board.name} {i}/{n}] {label} ...", file=sys.stderr, flush=True)
        else:
            print(f"[{board.name} {i}/{n}] {label} done in {seconds:.1f} s", file=sys.stderr,
                  flush=True)
    r = estimate(board, cfg, toolchain=args.toolchain, outdir=args.outdir, progress=show)
    if args.json:
        r = dict(r)
        r.pop("cells", None)
        print(json.dumps(r, indent=1))
        return 0
    c = r["config"]
    print(f"{r['board']} ({r['device']}), serial {c['rows']}x{c['cols']}, N={c['max_wbits']}, "
          f"A={c['max_abits']}, {c['layers']} layers of <= {c['max_m']}x{c['max_k']} "
          "(synthesis estimate)")
    names = {"luts": "LUTs", "ffs": "FFs", "brams": board.bram_kind, "sprams": "SPRAM",
             "dsps": "DSPs"}
    for k, label in names.items():
        if k == "sprams" and not r["totals"]["sprams"]:
            continue
        print(f"  {label:<12} {r['estimated'][k]:>7} / {r['totals'][k]:<7} "
              f"{100 * r['utilization'][k]:6.1f}%")
    if r["fits"]:
        verdict = (f"fits, {100 * r['headroom']:.0f}% headroom on {names[r['limiting']]}")
        if not r["within_headroom_limit"]:
            verdict += " (tight: place and route may fail or miss timing)"
    else:
        verdict = (f"does NOT fit: {names[r['limiting']]} over by "
                   f"{100 * -r['headroom']:.0f}%")
    print(f"  -> {verdict}")
    wm = r["weight_memory"]
    print(f"  weight memory: {'block RAM' if wm['in_block_ram'] else 'NOT in block RAM'} "
          f"({wm['detail']})")
    if r.get("untimed_dsps"):
        print(f"  note: {r['untimed_dsps']} SB_MAC16 cell(s) with a combinational path "
              "through them, which nextpnr does not time (its Fmax will leave those "
              "paths out)")
    return 0


def _largest(args, board, cfg):
    from ...boards.build import largest
    r = largest(board, cfg, toolchain=args.toolchain, outdir=args.outdir,
                progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    print(f"{r['board']} ({r['device']}): largest square array, synthesis estimates")
    print(f"  {'array':>7}  {'fits':<5} {'LUTs':>6} {'BRAM':>6} {'DSP':>6}  limiting")
    for p in r["probes"]:
        if p.get("extrapolated"):
            u = p["at_least"]
            print(f"  {p['rows']:>3}x{p['cols']:<3}  {'no':<5} >{100 * u['luts']:4.0f}% "
                  f">{100 * u['brams']:4.0f}% >{100 * u['dsps']:4.0f}%  {p['limiting']} "
                  "(extrapolated, not synthesised)")
            continue
        if "utilization" not in p:
            continue        # not a valid configuration (the JSON gives the reason)
        u = p["utilization"]
        print(f"  {p['rows']:>3}x{p['cols']:<3}  {'yes' if p['fits'] else 'no':<5} "
              f"{100 * u['luts']:5.1f}% {100 * u['brams']:5.1f}% {100 * u['dsps']:5.1f}%  "
              f"{p['limiting']}")
    if r["largest"] is None:
        print("  -> no square array fits this board with this configuration")
        return 0
    n = r["largest"]["rows"]
    from . import _CONFIG_FLAGS
    flags = "".join(f" {flag} {getattr(cfg, field)}" for flag, field, _ in _CONFIG_FLAGS
                    if field not in ("rows", "cols")
                    and getattr(cfg, field) != getattr(board.default, field))
    if cfg.design != board.default.design:
        flags += f" --design {cfg.design}"
    print(f"  -> largest: {n}x{n}; place and route it with "
          f"'anyprec build --board {r['board']} --rows {n} --cols {n}{flags}' (a nearly "
          "full device may need a slower --clock)")
    return 0
