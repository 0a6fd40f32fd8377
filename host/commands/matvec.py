"""anyprec matvec: one raw matrix-vector product on the simulated hardware."""

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from . import (add_parser, add_config_args, add_sim_args, add_board_arg,
               add_target_arg, board_target_config)
from ...golden.errors import AnyprecError, ConfigError, ShapeError

ORDER = 35


def register(sub):
    p = add_parser(sub, "matvec", "one raw matvec D = W_k x on the simulated hardware",
                   "Load an M x K array of unsigned N-bit weight codes and a K-vector of "
                   "unsigned a-bit activations, run MATVEC at k-bit weights on the simulated "
                   "RTL, and print the int32 dot products D (docs/arithmetic.md section 5). "
                   "Exits 1 if D differs from the golden reference. The build grows max_m / "
                   "max_k to fit W unless you set them.",
                   ["anyprec matvec --weights W.npy --x x.npy --wbits 4",
                    "anyprec matvec --weights W.npy --x x.npy --wbits 1 --abits 4 --json",
                    "anyprec matvec --weights W.npy --x x.npy --wbits 8 --sim icarus"])
    p.add_argument("--weights", required=True, metavar="W.npy",
                   help="M x K unsigned N-bit codes (uint8 for N <= 8)")
    p.add_argument("--x", required=True, metavar="X.npy", help="K unsigned a-bit integers")
    p.add_argument("--wbits", type=int, required=True, help="weight precision k")
    p.add_argument("--abits", type=int, default=None, help="activation precision (default A)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_board_arg(p, "simulate")
    add_target_arg(p)
    add_sim_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def _check_npy_size(fh, p, what):
    """The data a .npy header announces must be in the file: np.load would otherwise
    allocate whatever a damaged header claims (terabytes) before it finds out."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fh)
        else:
            shape, _, dtype = fmt.read_array_header_2_0(fh)
    except Exception as e:
        # (the header is a Python literal parsed from the file: a damaged one raises
        # ValueError or TypeError, but also tokenize's TokenError for an unclosed
        # bracket or string, SyntaxError, or RecursionError for deep nesting)
        why = str(e).splitlines()[0][:120] if str(e) else ""
        why = "" if " object at 0x" in why else f" ({why})"    # (an ast node's repr)
        raise AnyprecError(f"{what} file {p} has a damaged .npy header{why}") from None
    if dtype.hasobject:
        return      # refused by np.load itself (allow_pickle=False)
    bad = [n for n in shape if not 0 <= n < 2 ** 63]
    if bad:
        # (np.load cannot even represent a dimension of 2^63: OverflowError, not a size)
        raise AnyprecError(f"{what} file {p} has a damaged .npy header (a dimension of "
                           f"{bad[0]})")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = os.fstat(fh.fileno()).st_size - fh.tell()
    if need > have:
        raise AnyprecError(f"{what} file {p} is truncated or damaged: its header "
                           f"announces a {'x'.join(map(str, shape))} {dtype} array "
                           f"({need:,} bytes), the file holds {have:,}")


def load_array(path, what):
    """np.load with one-line errors for missing, unreadable or pickled files."""
    p = Path(path)
    if not p.exists():
        raise AnyprecError(f"{what} file {p} does not exist")
    if p.is_dir():
        raise AnyprecError(f"{what} file {p} is a directory")
    # Opened here, not by np.load, which leaves its own file open when a damaged .npz
    # cannot be read.
    try:
        with open(p, "rb") as fh:
            magic = fh.read(6)
            fh.seek(0)
            if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
                # (np.load would try it as a pickle, and its error suggests allow_pickle)
                raise AnyprecError(f"{what} file {p} is not a .npy file (no NumPy header)")
            if magic == b"\x93NUMPY":
                _check_npy_size(fh, p, what)
                fh.seek(0)
            arr = np.load(fh, allow_pickle=False)
            if isinstance(arr, np.lib.npyio.NpzFile):
                arr.close()
                raise AnyprecError(f"{what} file {p} is an .npz archive; give one .npy array")
    except ValueError as e:
        raise AnyprecError(f"{what} file {p} is not a plain .npy array ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        # BadZipFile: a damaged or truncated .npz (its zip magic makes np.load open it).
        raise AnyprecError(f"{what} file {p} is not a readable .npy file ({e})") from None
    return arr


def run(args):
    from ...sim.verify import matvec, fitting_config
    w = load_array(args.weights, "weights")
    x = load_array(args.x, "x")
    if w.ndim != 2:
        raise ShapeError(f"weights must be a 2-D M x K array, {args.weights} has shape {w.shape}")
    board, target, cfg = board_target_config(args)
    # (a board's build is what it is: a layer it cannot take is refused, not grown into)
    if board is None and args.cfg_max_m is None and args.cfg_max_k is None:
        try:
            cfg = fitting_config(*w.shape, cfg)
        except ConfigError as e:
            # (the user set no max_m or max_k: say which of their inputs is too large)
            raise ConfigError(f"weights {args.weights}: no build takes a "
                              f"{w.shape[0]} x {w.shape[1]} layer ({e})") from None
    r = matvec(w, x, args.wbits, args.abits, cfg=cfg, sim=args.sim,
               transport=args.transport or "fast", target=target)
    keys = ("rows", "cols", "max_wbits", "max_abits", "max_m", "max_k")
    if args.json:
        print(json.dumps({"y": r["y"], "cycles": r["cycles"],
                          "config": {k: r["config"][k] for k in keys},
                          "wbits": r["wbits"], "abits": r["abits"],
                          "matches_golden": r["match"], "simulator": r["simulator"],
                          "target": r["target"], "board": board and board.name,
                          "tools": r["tools"]}))
    else:
        m, k = w.shape
        print(f"D = W_{r['wbits']} x  ({m} x {k}, wbits {r['wbits']}, abits {r['abits']}) on "
              f"{r['simulator']}, {r['cycles']} cycles")
        print("y =", r["y"])
        print("matches golden" if r["match"] else f"MISMATCH: golden is {r['golden']}")
    return 0 if r["match"] else 1
