"""The ``anyprec`` command line: a thin layer over the Python API.

Each subcommand lives in its own module under ``anyprec.host.commands`` and provides
``register(subparsers)``, which adds its parser and sets ``func``; an optional ``ORDER``
int sets its place in ``--help``. Command modules import heavy packages (torch, Amaranth)
inside their handlers, so ``anyprec --help`` stays fast.

User mistakes raise :class:`anyprec.golden.errors.AnyprecError`; they are printed as one
line ``anyprec: error: ...`` with exit status 2. Anything else is a bug and keeps its
traceback.
"""

import argparse
import importlib
import sys

from . import __version__
from ..golden.errors import AnyprecError



def _command_modules():
    """Every module in anyprec.host.commands, ordered by its ORDER attribute, then name."""
    import pkgutil
    from . import commands
    mods = [importlib.import_module(f"{commands.__name__}.{info.name}")
            for info in pkgutil.iter_modules(commands.__path__) if not info.name.startswith("_")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))

EPILOG = """\
examples:
  anyprec golden                      golden accuracy table at every precision
  anyprec verilog -o anyprec_top.v    write the accelerator's Verilog
  anyprec verify --bits 1-8           run the digits model on the simulated hardware
  anyprec <command> --help            options and examples of one command
"""


class _Parser(argparse.ArgumentParser):
    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        # An empty value ("--model ''", "-o ''") is a mistake, not "not given": the
        # commands test their options for truth and would quietly use the default.
        for action in self._actions:
            if action.option_strings and getattr(ns, action.dest, None) == "":
                self.error(f"argument {'/'.join(action.option_strings)}: "
                           "an empty value is not allowed")
        return ns, rest

    def error(self, message):
        # argparse's own errors become one line plus the usage hint, exit status 2.
        self.exit(2, f"{self.prog}: error: {message}\n"
                     f"(run '{self.prog} --help' for usage)\n")


def build_parser():
    parser = _Parser(
        prog="anyprec",
        description="Generate, simulate and verify any-precision neural-network accelerators.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"anyprec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    for module in _command_modules():
        module.register(sub)
    return parser


def _drop_stdout():
    """Point stdout at /dev/null: what is still buffered for it can never be written,
    and the interpreter would fail again flushing it at exit."""
    import os
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _subcommands(parser):
    """The top-level parser's subcommand parsers, by name."""
    return next(a for a in parser._actions
                if isinstance(a, argparse._SubParsersAction)).choices


def _misplaced_option(parser, argv):
    """An option before the command that is not one of anyprec's own (``anyprec --planes
    3 stream``): argparse would call its value an invalid command. Says where it goes."""
    if not argv or not argv[0].startswith("-") or argv[0] == "-":
        return
    word = argv[0].split("=", 1)[0]
    own = [o for a in parser._actions for o in a.option_strings]
    if any(o == word or (word.startswith("--") and o.startswith(word)) for o in own):
        return
    subs = _subcommands(parser)
    command = next((a for a in argv if a in subs), None)
    parser.error(f"{word} is not an option of anyprec itself; a command's options go after "
                 f"it: anyprec {command or '<command>'} {word} ...")


def main(argv=None):
    parser = build_parser()
    _misplaced_option(parser, sys.argv[1:] if argv is None else list(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:
        # (reported by the subcommand's parser, whose --help lists what it takes)
        sub = _subcommands(parser).get(getattr(args, "command", None), parser)
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args) or 0
        if sys.stdout is not None:  # (None when started with stdout closed: `>&-`)
            sys.stdout.flush()  # (a full output device fails here, inside the handlers)
        return code
    except AnyprecError as e:
        print(f"anyprec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anyprec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`anyprec verilog -o - | head`): not an error of ours.
        _drop_stdout()
        return 0
    except OSError as e:
        import errno
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        # The disk (or `>/dev/full`) is full: the environment, not a bug of ours. What
        # is still buffered for stdout cannot be written either; drop it.
        _drop_stdout()
        where = f" {e.filename}" if e.filename else ""
        print(f"anyprec: error: cannot write{where}: {e.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
