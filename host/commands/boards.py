"""``anyprec boards``: the board targets, their devices and default configurations."""

import json

from . import add_parser

ORDER = 60


def register(sub):
    p = add_parser(
        sub, "boards", help="list the FPGA board targets and their default configurations",
        description="List the board targets of 'anyprec build' / 'anyprec estimate': device,\n"
                    "resources, design clock, UART pins and the default configuration\n"
                    "(chosen to hold the digits MLP and fit with headroom).",
        examples=["anyprec boards",
                  "anyprec boards --json",
                  "anyprec build --board icebreaker"])
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.set_defaults(func=run)


def run(args):
    from ...boards.registry import BOARDS
    if args.json:
        print(json.dumps({"boards": [b.to_dict() for b in BOARDS.values()]}, indent=1))
        return 0
    print(f"{'board':<14} {'device':<20} {'LUTs':>6} {'BRAM':>5} {'DSP':>4} {'clock':>9}  "
          f"{'default config':<34} output")
    for b in BOARDS.values():
        c = b.default
        cfg = (f"{c.rows}x{c.cols} N{c.max_wbits} A{c.max_abits} "
               f"{c.layers}x{c.max_m}x{c.max_k}")
        out = ("bitstream" if b.bitstream else "Verilog + XDC") + ("" if b.fits else
                                                                " (does not fit yet)")
        print(f"{b.name:<14} {b.device:<20} {b.luts:>6} {b.brams:>5} {b.dsps:>4} "
              f"{b.target_mhz:>5g} MHz  {cfg:<34} {out}")
    print("UART 115200 8N1 by default (anyprec build --baud); details: docs/boards.md")
    return 0
