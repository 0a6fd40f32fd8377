"""Load a built bitstream into a board with the board's usual programmer.

``anyprec build`` leaves ``build/boards/<board>/anyprec_<board>.{bin,bit}`` and a report
next to it; :func:`program` checks that the file is there, that it was built for this
board and is the file the report describes, then runs the programmer the board's
community uses (the same tools amaranth-boards calls): ``iceprog`` (iCEBreaker),
``icesprog`` (iCESugar, iCESugar-Pro), ``openFPGALoader`` (ULX3S). The programmers are not
on PyPI: install them from your distribution, or point the environment variable named
after the tool (``ICEPROG``, ``ICESPROG``, ``OPENFPGALOADER``) at one.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from ..golden.errors import AnyprecError
from .build import _PACK_PRODUCT, _name, default_outdir
from .registry import get_board

__all__ = ["ProgramError", "program", "bitstream_path", "programmer_argv"]

#: Where to get each programmer (the error message when it is missing).
INSTALL_HINTS = {
    "iceprog": "Debian/Ubuntu 'apt install fpga-icestorm', or the oss-cad-suite",
    "icesprog": "from https://github.com/wuxx/icesugar (tools/), or drag the file onto "
                "the iCELink USB drive",
    "openFPGALoader": "Debian/Ubuntu 'apt install openfpgaloader', or the oss-cad-suite",
}


class ProgramError(AnyprecError):
    """The bitstream or the programmer is missing, or programming failed."""


def _env_name(tool):
    return re.sub(r"[^A-Z0-9]", "", tool.upper())


def bitstream_path(board, *, bitstream=None, outdir=None):
    """The bitstream ``anyprec build`` writes for ``board`` (or ``bitstream`` itself)."""
    board = get_board(board) if isinstance(board, str) else board
    if bitstream is not None:
        return Path(bitstream)
    ext = _PACK_PRODUCT[board.family]
    return Path(outdir or default_outdir(board.name)) / f"{_name(board)}.{ext}"


def programmer_argv(board, bitstream, *, flash=False):
    """The programmer's command line for ``bitstream``: the board's template, with the
    tool replaced by ``$TOOL`` (for example ``$ICEPROG``) when that is set."""
    board = get_board(board) if isinstance(board, str) else board
    template = board.programmer_flash if (flash and board.programmer_flash) else board.programmer
    argv = [a.format(bitstream=str(bitstream)) for a in template]
    argv[0] = os.environ.get(_env_name(template[0]), template[0])
    return argv


#: The configuration sync word every bitstream of the family carries near its start
#: (icepack's .bin: right after the FF 00 00 FF preamble; ecppack's .bit: after the
#: comment header).
_SYNC = {"ice40": bytes.fromhex("7eaa997e"), "ecp5": bytes.fromhex("ffffbdb3")}


#: The build report's fields that :func:`program` reads or passes on, with their types.
_REPORT_FIELDS = {"board": str, "bitstream_sha256": str, "config": dict,
                  "clock_mhz": (int, float), "baud": int, "seed": int, "timing_met": bool}


#: No bitstream of these families is larger (an LFE5U-85F's is about 2.3 MB uncompressed).
_MAX_BITSTREAM = 64 << 20


def _build_report(report_file):
    """The build report next to a bitstream, or None when it is missing, unreadable or
    malformed (a field of the wrong type): not ours to judge, and the bitstream itself is
    checked anyway. None of its fields is trusted unless all of them are well-typed."""
    try:
        built = json.loads(report_file.read_text())
    except (OSError, ValueError, RecursionError):   # (JSON nested beyond the parser)
        return None
    if not isinstance(built, dict):
        return None
    for key, kind in _REPORT_FIELDS.items():
        value = built.get(key)
        # (bool is an int to isinstance: a baud of true is as wrong as one of "115200")
        if value is not None and (not isinstance(value, kind)
                                  or isinstance(value, bool) != (kind is bool)):
            return None
    return built


def program(board, *, bitstream=None, outdir=None, flash=False, dry_run=False):
    """Program ``board`` with its built bitstream; returns a report dict.

    ``flash``: write the configuration flash (kept over power cycles) where the
    programmer also offers the volatile SRAM load (ULX3S); iceprog and icesprog always
    write the flash. ``dry_run``: check everything and return the command without running
    it. Raises :class:`ProgramError` with a one-line reason.
    """
    board = get_board(board) if isinstance(board, str) else board
    if not board.bitstream or not board.programmer:
        raise ProgramError(f"{board.name}: anyprec does not build this board's bitstream "
                           "(closed vendor tools); program it from the vendor's tools")
    path = bitstream_path(board, bitstream=bitstream, outdir=outdir)
    ext = _PACK_PRODUCT[board.family]
    if path.suffix != f".{ext}":
        raise ProgramError(f"{path}: {board.title} takes a .{ext} bitstream")
    if not path.is_file():
        how = ("check --bitstream" if bitstream is not None else
               f"run 'anyprec build --board {board.name}"
               + (f" -o {outdir}'" if outdir else "'") + " first")
        raise ProgramError(f"no bitstream at {path}: {how}")
    kind = {"ice40": "an iCE40", "ecp5": "an ECP5"}[board.family]
    try:
        size = path.stat().st_size
        if size > _MAX_BITSTREAM:
            # (read only to be hashed: a wrong file of gigabytes would take minutes)
            raise ProgramError(f"{path} is not {kind} bitstream ({size:,} bytes; the "
                               f"largest is a few MB)")
        with open(path, "rb") as f:
            head = f.read(4096)
            digest = hashlib.sha256(head)
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as e:
        raise ProgramError(f"cannot read {path}: {e.strerror or e}") from None
    if not head:
        raise ProgramError(f"{path} is empty: rebuild it")
    sync = _SYNC[board.family]
    if sync not in head:
        # (a renamed text file or a truncated download would go to the flash as it is)
        raise ProgramError(f"{path} is not {kind} bitstream (no "
                           f"configuration sync word {sync.hex()} near its start)")
    digest = digest.hexdigest()
    built = _build_report(path.parent / f"{path.stem}.anyprec.json")
    if built is not None:
        if built.get("board") not in (None, board.name):
            raise ProgramError(f"{path} was built for {built['board']}, not {board.name}")
        want = built.get("bitstream_sha256")
        if want and want != digest:
            raise ProgramError(f"{path} is not the file its build report describes "
                               f"(sha256 {digest[:12]}..., report {want[:12]}...): rebuild it")
    argv = programmer_argv(board, path, flash=flash)
    tool = argv[0]
    found = shutil.which(tool)
    rep = {"board": board.name, "bitstream": str(path), "bitstream_sha256": digest,
           "built": {k: built.get(k) for k in ("config", "clock_mhz", "baud", "seed",
                                                "timing_met")} if built is not None
           else None,
           # iceprog and icesprog have no volatile mode: they always write the flash.
           "flash": bool(flash) if board.programmer_flash else True,
           "argv": argv, "tool_found": found is not None, "ran": False,
           "serial_port": board.serial_port, "seconds": 0.0}
    if dry_run:
        return rep
    if found is None:
        base = board.programmer[0]
        raise ProgramError(f"{tool} not found: install it ({INSTALL_HINTS.get(base, base)}) "
                           f"or set ${_env_name(base)} to its path")
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv)
    except OSError as e:
        raise ProgramError(f"could not run {tool}: {e.strerror or e}") from None
    rep["seconds"] = round(time.monotonic() - t0, 2)
    if r.returncode != 0:
        raise ProgramError(f"{Path(tool).name} exited with status {r.returncode} (is the "
                           f"{board.title} plugged in, and may this user open it?)")
    rep["ran"] = True
    return rep
