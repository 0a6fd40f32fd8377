"""One module per ``anyprec`` subcommand; each provides ``register(subparsers)``."""

import argparse
import re


def add_parser(sub, name, help, description, examples):
    """Add a subcommand parser with an examples epilog (every subcommand has examples)."""
    return sub.add_parser(
        name, help=help, description=description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter)


def parse_ranges(text, bad):
    """'1-8', '4' or '1,2,4' -> (1, 8); (4, 4); (1, 1), (2, 2), (4, 4): each part's bounds,
    one part at a time in the order given, raising ``bad`` at a part that is not a number
    or a range of two (ASCII digits only: int() also takes '٣', and '1-' is not a range)
    or that runs backwards. Not expanded: callers check the bounds first (a range to
    10**9 would fill the memory)."""
    for part in str(text).split(","):
        got = re.fullmatch(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?", part)
        if not got or (got[2] is not None and int(got[1]) > int(got[2])):
            raise bad
        yield int(got[1]), int(got[2] or got[1])


def parse_bits(text, maximum, name="--bits"):
    """Parse '1-8', '4' or '1,2,4' into a sorted list of ints from 1 to ``maximum``."""
    from ...golden.errors import PrecisionError
    out = set()
    bad = PrecisionError(f"{name} must look like '1-8', '4' or '1,2,4', not {text!r}")
    for lo, hi in parse_ranges(text, bad):
        for b in (lo, hi):
            if not 1 <= b <= maximum:
                raise PrecisionError(f"{name}: {b} is out of range 1..{maximum}")
        out.update(range(lo, hi + 1))
    return sorted(out)


_CONFIG_FLAGS = [  # (flag, dataclass field, help)
    ("--rows", "rows", "R, output rows computed in parallel"),
    ("--cols", "cols", "C, inputs per lane per cycle"),
    ("--max-wbits", "max_wbits", "N, maximum weight bits"),
    ("--max-abits", "max_abits", "A, maximum activation bits"),
    ("--max-m", "max_m", "largest layer output size"),
    ("--max-k", "max_k", "largest layer input size"),
    ("--layers", "layers", "layer slots"),
    ("--depth", "depth", "weight-memory words (default: every slot at maximum size)"),
    ("--stream-width", "stream_width", "AXI4-Stream data width: 8, 16 or 32"),
    ("--drain", "drain", "drain lanes: rows requantised per cycle, a power of two dividing "
                         "rows and cols (default: the fewest with which a max-k layer is "
                         "not drain-bound at 1-bit weights)"),
]


def add_config_args(parser):
    """Add the build-configuration flags (defaults: AnyprecConfig's)."""
    g = parser.add_argument_group("build configuration (defaults: the anyprec defaults)")
    for flag, field, help in _CONFIG_FLAGS:
        g.add_argument(flag, dest=f"cfg_{field}", type=int, default=None, metavar="N",
                       help=help)
    g.add_argument("--design", dest="cfg_design", choices=("serial", "parallel"),
                   default=None, help="bit-serial array (default) or the bit-parallel baseline")
    return g


def config_from_args(args, base=None, **overrides):
    """The AnyprecConfig the flags describe (ConfigError on bad values)."""
    from ...golden.errors import ConfigError
    from ...hw.config import AnyprecConfig
    base = base or AnyprecConfig()
    changes = {name[4:]: v for name, v in vars(args).items()
               if name.startswith("cfg_") and v is not None}
    changes.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return base.replace(**changes) if changes else base
    except ConfigError as e:
        # The dataclass names its fields ("rows must be from 1 to 256"); the user typed
        # a flag: name the flag when the message is about a value they gave.
        # Multi-word fields (max_m, stream_width, ...) are never English words: named as
        # flags wherever they appear ("raise depth or lower max_m/max_k").
        text = new = str(e)
        for flag, field, _ in _CONFIG_FLAGS:
            if field in changes and re.match(rf"{field} ", new):
                new = flag + new[len(field):]
            if "_" in field:
                new = re.sub(rf"\b{field}\b", flag, new)
        if new != text:
            raise ConfigError(new) from None
        raise


def add_board_arg(parser, verb):
    """--board NAME: the configuration and Verilog form of that board's builds."""
    parser.add_argument("--board", default=None, metavar="NAME",
                        help=f"{verb} the accelerator as 'anyprec build --board NAME' has "
                             "it (without the board's UART bridge): the board's default "
                             "configuration, which the build flags change, in its FPGA "
                             "family's form (anyprec boards lists the boards)")


def add_target_arg(parser):
    """--target: the Verilog form a simulation runs (hw.config.TARGETS)."""
    from ...hw.config import TARGETS
    parser.add_argument("--target", choices=TARGETS, default=None,
                        help="the Verilog form to simulate: generic (default), ecp5 (the "
                             "array's adders as carry cells) or ice40 (the smaller form iCE40 "
                             "boards build); with --board, the board's family")


def board_target_config(args):
    """``(board or None, target, config)`` from --board, --target and the build flags: a
    board's builds carry its family's form (iCE40, ECP5; the generic Verilog for a
    vendor-tool board) and start from its default configuration."""
    if args.board is None:
        return None, args.target or "generic", config_from_args(args)
    from ...boards.registry import get_board
    from ...golden.errors import AnyprecError
    from ...hw.config import TARGETS
    board = get_board(args.board)
    form = board.family if board.family in TARGETS else "generic"
    if args.target not in (None, form):
        raise AnyprecError(f"--target {args.target}: {board.name} builds the {form} form "
                           f"({board.device}); leave --target out")
    return board, form, config_from_args(args, base=board.default)


def add_sim_args(parser):
    """--sim and --transport."""
    parser.add_argument("--sim", choices=("verilator", "icarus"), default=None,
                        help="simulator (default: $SIM, else verilator)")
    # (default None, "fast" in the handlers: so that a path without a simulator can
    # tell that --transport was given and refuse it)
    parser.add_argument("--transport", choices=("fast", "axi"), default=None,
                        help="fast: frame buffers in the harness (default); "
                             "axi: cocotbext-axi AXI-Stream agents")


def progress_printer(prefix="anyprec"):
    """A progress callback that prints to stderr with elapsed time."""
    import sys
    import time
    t0 = time.monotonic()

    def show(msg):
        print(f"[{prefix} {time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)
    return show
