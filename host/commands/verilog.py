"""anyprec verilog: write the Verilog of anyprec_top."""

import re
import stat
import sys
from pathlib import Path

from . import add_parser, add_config_args, add_board_arg, board_target_config
from ...golden.errors import AnyprecError
from ...hw.config import TARGETS

ORDER = 30


def register(sub):
    p = add_parser(sub, "verilog", "write the accelerator's Verilog (anyprec_top)",
                   "Generate the Verilog of anyprec_top for a build configuration: clk, rst, "
                   "AXI4-Stream s_axis_* (requests) and m_axis_* (responses); protocol in "
                   "docs/protocol.md.",
                   ["anyprec verilog -o anyprec_top.v",
                    "anyprec verilog --rows 16 --cols 16 --max-m 256 --max-k 256 -o big.v",
                    "anyprec verilog --stream-width 8 -o uart_friendly.v --lint",
                    "anyprec verilog --target ecp5 -o anyprec_ecp5.v",
                    "anyprec verilog --board icebreaker -o icebreaker_core.v"])
    add_config_args(p)
    add_board_arg(p, "write")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="Verilog file to write ('-' for standard output)")
    p.add_argument("--name", default="anyprec_top", help="top module name")
    p.add_argument("--target", choices=TARGETS, default=None,
                   help="generic (default; with --board, the board's family): plain Verilog "
                        "for any tool and simulator; "
                        "ecp5: the MAC array's first adder level as Lattice CCU2C carry "
                        "cells with the AND gates in their LUTs (about 40%% fewer array "
                        "LUTs; for an ECP5 yosys/nextpnr flow; simulating it needs the cell "
                        "models, hw.top.cell_models); ice40: fewer logic cells at a lower "
                        "Fmax (seven-stage requantiser with its multiplies in SB_MAC16 "
                        "cells, no register slices; simulating it needs yosys' SB_MAC16 "
                        "model, hw.top.cell_models)")
    p.add_argument("--lint", action="store_true",
                   help="also run verilator --lint-only with the documented waivers "
                        "(ecp5, ice40: with yosys' models of the vendor cells the target "
                        "instantiates)")
    p.set_defaults(func=run)


def lint(path, name, target="generic"):
    """verilator --lint-only with the documented waivers (and the target's cell models);
    raises AnyprecError on findings."""
    import subprocess
    import tempfile
    from ...hw.top import VERILATOR_WAIVERS, cell_models
    from ...sim.runner import cell_sources
    from ...sim.tools import resolve_sim
    resolve_sim("verilator")
    with tempfile.TemporaryDirectory() as tmp:
        files = [*cell_sources(Path(tmp), cell_models(target)), path]
        r = subprocess.run(["verilator", "--lint-only", *VERILATOR_WAIVERS, "--top-module",
                            name, *map(str, files)], capture_output=True, text=True)
    if r.returncode != 0:
        first = next((l for l in r.stderr.splitlines() if l.startswith("%")), r.stderr[:200])
        raise AnyprecError(f"verilator lint failed: {first}")


def _write(path, data):
    """Write ``data`` to ``path`` whole (golden.atomic: a failed write leaves the old file
    as it was). A destination that exists but is not a regular file (``/dev/null``, a
    FIFO) is written in place: renaming over it would replace the device node itself."""
    import os
    from ...golden.atomic import write_files
    real = os.path.realpath(path)
    if os.path.exists(real) and not stat.S_ISREG(os.stat(real).st_mode):
        with open(real, "wb") as f:
            f.write(data)
        return
    write_files([(path, lambda: data)])


def run(args):
    from ...hw.top import generate_verilog
    # Checked here: an invalid name otherwise fails deep inside yosys with a traceback.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", args.name):
        raise AnyprecError(f"--name must be a Verilog identifier (a letter or _, then "
                           f"letters, digits, _ or $), not {args.name!r}")
    if args.output == "-" and args.lint:
        raise AnyprecError("--lint lints a written file: give -o FILE, not -o -")
    board, args.target, cfg = board_target_config(args)
    text = generate_verilog(cfg, name=args.name, target=args.target)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write(out, text.encode())
    except OSError as e:
        # (mkdir says "File exists" when a parent of the output is a file)
        blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocking} is not a directory" if blocking else (e.strerror or e)
        raise AnyprecError(f"cannot write {out}: {why}") from None
    w = cfg.widths
    print(f"wrote {out} ({len(text.splitlines())} lines): module {args.name}, {cfg.describe()}"
          + ("" if args.target == "generic" else f", {args.target} target")
          + ("" if board is None else f" ({board.name}'s build)"))
    print(f"  widths: accumulator {w.acc_bits} b, D {w.d_bits} b, requant V {w.v_bits} b; "
          f"weight memory {cfg.depth_words} x {cfg.word_bits} b")
    if args.lint:
        lint(out, args.name, args.target)
        print("  verilator --lint-only: clean (waivers: see hw/top.py VERILATOR_WAIVERS)")
    return 0
