"""``anyprec program``: load a built bitstream into the board with its programmer."""

import json
import sys

from . import add_parser

ORDER = 62


def register(sub):
    p = add_parser(
        sub, "program", help="load a built bitstream into a board (iceprog, icesprog, "
                             "openFPGALoader)",
        description="Load the bitstream 'anyprec build' made into the board, with the\n"
                    "programmer the board's community uses: iceprog (iCEBreaker), icesprog\n"
                    "(iCESugar, iCESugar-Pro) or openFPGALoader (ULX3S). The bitstream must\n"
                    "match its build report (board and SHA-256). The programmers are not on\n"
                    "PyPI: install one, or set $ICEPROG / $ICESPROG / $OPENFPGALOADER to its\n"
                    "path. Then talk to the board with 'anyprec run --port PORT'.",
        examples=["anyprec program --board icebreaker",
                  "anyprec program --board ulx3s-85f --flash    keep it over power cycles",
                  "anyprec program --board ulx3s-85f --dry-run  show the command only",
                  "anyprec program --board icesugar --bitstream out/anyprec_icesugar.bin"])
    p.add_argument("--board", required=True, metavar="NAME",
                   help="board name (see 'anyprec boards')")
    p.add_argument("--bitstream", default=None, metavar="FILE",
                   help="bitstream file (default: the one 'anyprec build' writes)")
    p.add_argument("-o", "--outdir", default=None, metavar="DIR",
                   help="build directory given to 'anyprec build -o' (default "
                        "build/boards/<board>)")
    p.add_argument("--flash", action="store_true",
                   help="write the configuration flash instead of the volatile SRAM (ULX3S; "
                        "iceprog and icesprog always write the flash)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the bitstream and print the command without running it")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args):
    from ...boards.program import program
    from ...boards.registry import get_board
    from ...golden.errors import AnyprecError
    board = get_board(args.board)
    if args.bitstream is not None and args.outdir is not None:
        raise AnyprecError("give --bitstream or --outdir, not both")
    rep = program(board, bitstream=args.bitstream, outdir=args.outdir, flash=args.flash,
                  dry_run=args.dry_run)
    if args.json:
        print(json.dumps(rep, indent=1))
        return 0
    cmd = " ".join(rep["argv"])
    if args.dry_run:
        print(cmd)
        if not rep["tool_found"]:
            print(f"anyprec: note: {rep['argv'][0]} is not on PATH", file=sys.stderr)
        return 0
    print(f"{board.name}: programmed {rep['bitstream']} (sha256 "
          f"{rep['bitstream_sha256'][:16]}...) in {rep['seconds']:.1f} s"
          + (", flash" if rep["flash"] else ", SRAM (lost at power-off; --flash keeps it)"))
    if rep["serial_port"]:
        print(f"next: anyprec run --port {rep['serial_port']}"
              + (f" --baud {rep['built']['baud']}" if rep["built"] and
                 rep["built"].get("baud") not in (None, 115200) else ""))
    return 0
