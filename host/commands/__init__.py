"""One module per ``anyprec`` subcommand; each provides ``register(subparsers)``."""

import argparse


def add_parser(sub, name, help, description, examples):
    """Add a subcommand parser with an examples epilog (every subcommand has examples)."""
    return sub.add_parser(
        name, help=help, description=description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter)


def parse_bits(text, maximum, name="--bits"):
    """Parse '1-8', '4', '1,2,4' or '8-2-8'-free lists into a sorted list of ints."""
    from ...golden.errors import PrecisionError
    out = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-")
                lo, hi = int(lo), int(hi)
                if lo > hi:
                    raise ValueError
                out.update(range(lo, hi + 1))
            else:
                out.add(int(part))
    except ValueError:
        raise PrecisionError(f"{name} must look like '1-8', '4' or '1,2,4', not {text!r}")
    for b in out:
        if not 1 <= b <= maximum:
            raise PrecisionError(f"{name}: {b} is out of range 1..{maximum}")
    return sorted(out)
