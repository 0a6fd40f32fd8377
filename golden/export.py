"""Folding a trained any-precision model to integers, and the model file format.

:func:`fold` turns an :class:`anyprec.golden.model.AnyPrecisionMLP` into an
:class:`anyprec.golden.arith.IntNetwork` (docs/arithmetic.md section 6);
:func:`save_model` / :func:`load_model` write and read the ``.npz`` model file described in
docs/model-format.md; :func:`accuracy_table` is the integer-reference accuracy on the digits
test split. The integer forward pass is ``IntNetwork.forward`` and nothing else.
"""

import copy
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from . import arith
from .atomic import write_files
from .data import DATASET, load_split
from .errors import AnyprecError, ModelFileError

__all__ = ["FORMAT", "VERSION", "DEFAULT_MODEL", "DEFAULT_FLOAT_MODEL", "fold",
           "requant_table", "save_model", "load_model", "accuracy_table", "save_float",
           "load_float", "float_predictions", "agreement", "export", "default_abits"]

#: Format name and version stored in every model file.
FORMAT = "anyprec-model"
VERSION = 1

_CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
#: The shipped integer model and the float checkpoint it was exported from.
DEFAULT_MODEL = _CHECKPOINTS / "digits_mlp.npz"
DEFAULT_FLOAT_MODEL = _CHECKPOINTS / "digits_mlp.pt"
#: The one-layer digits classifier (64-10, ``anyprec train --hidden none``) for devices
#: with a single layer slot (the iCEBreaker's build, boards/registry.py).
DEFAULT_LINEAR_MODEL = _CHECKPOINTS / "digits_linear.npz"

_M_MAX = (1 << (arith.M_BITS - 1)) - 1
_B_MAX = (1 << (arith.B_BITS - 1)) - 1


def _round_half_up(v):
    return np.floor(v + 0.5)


def requant_table(ratio_m, ratio_b):
    """Integer (m, b, shift) with ``m / 2^shift ~ ratio_m`` and ``b / 2^shift ~ ratio_b``.

    ``shift`` is the largest value <= 63 for which every rounded ``|m| <= 32767`` and every
    rounded ``|b| <= 2^31 - 1``; ``m = floor(ratio_m 2^shift + 1/2)``, likewise b.

    Parameters
    ----------
    ratio_m, ratio_b : (M,) float arrays
        The real per-row multiplier and offset (in output steps).

    Returns
    -------
    m : (M,) int64, b : (M,) int64, shift : int

    Raises
    ------
    AnyprecError
        If even ``shift = 0`` does not fit (a multiplier of 32768 output steps or more).
    """
    ratio_m = np.asarray(ratio_m, dtype=np.float64)
    ratio_b = np.asarray(ratio_b, dtype=np.float64)
    if not (np.all(np.isfinite(ratio_m)) and np.all(np.isfinite(ratio_b))):
        raise AnyprecError("cannot fold a layer with non-finite batch-norm constants")
    for shift in range(arith.SHIFT_MAX, -1, -1):
        # Scaling by 2^shift is exact in binary floating point; only the rounding is not.
        m = _round_half_up(np.ldexp(ratio_m, shift))
        b = _round_half_up(np.ldexp(ratio_b, shift))
        if np.all(np.abs(m) <= _M_MAX) and np.all(np.abs(b) <= _B_MAX):
            return m.astype(np.int64), b.astype(np.int64), shift
    raise AnyprecError(f"requantisation constants too large to fold: |m| up to "
                       f"{np.abs(ratio_m).max():.4g}, |b| up to {np.abs(ratio_b).max():.4g}")


def fold(model):
    """Fold a trained model into the integer network (docs/arithmetic.md section 6).

    Per layer l and weight precision k, with the eval-mode batch-norm ``g z + h``
    (``g = gamma / sqrt(var + eps)``, ``h = beta - mean g``), ``s_k = s_N 2^(N-k)``, the
    input step ``sigma_l`` and the output step ``sigma_out`` (the next layer's input step,
    or the model's ``logit_step`` for the last layer):
    ``m / 2^shift ~ g s_k sigma_l / sigma_out`` and ``b / 2^shift ~ h / sigma_out``.

    Parameters
    ----------
    model : AnyPrecisionMLP

    Returns
    -------
    arith.IntNetwork
    """
    import torch

    n, a = model.n, model.a
    sigma = [float(s) for s in model.sigma]
    layers = []
    for l in range(model.num_layers):
        codes = model.codes(l)
        s_n = model.weight_scale(l)
        out_step = sigma[l + 1] if l + 1 < model.num_layers else model.logit_step
        ms, bs, shifts = [], [], []
        for k in range(1, n + 1):
            bn = model.bns[l][k - 1]
            with torch.no_grad():
                var = bn.running_var.to(torch.float64).numpy()
                mean = bn.running_mean.to(torch.float64).numpy()
                gamma = bn.weight.detach().to(torch.float64).numpy()
                beta = bn.bias.detach().to(torch.float64).numpy()
            g = gamma / np.sqrt(var + bn.eps)
            h = beta - mean * g
            s_k = s_n * (1 << (n - k))
            m, b, shift = requant_table(g * s_k * sigma[l] / out_step, h / out_step)
            ms.append(m)
            bs.append(b)
            shifts.append(shift)
        layers.append(arith.IntLayer(codes=codes, m=np.stack(ms), b=np.stack(bs),
                                     shift=np.array(shifts, dtype=np.int64)))
    return arith.IntNetwork(layers=layers, n=n, a=a)


# --- the model file ---------------------------------------------------------------------

def _layer_keys(l):
    return (f"layer{l}_planes", f"layer{l}_m", f"layer{l}_b", f"layer{l}_shift")


_HEADER_KEYS = ("format", "version", "n", "a", "shapes", "meta")


def _npz_bytes(arrays):
    # np.savez stamps every member with the current time; a fixed date makes the file a
    # pure function of its contents (reproducible exports).
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return out.getbuffer()


def _model_arrays(net, meta):
    n = net.n
    shapes = np.array([layer.shape for layer in net.layers], dtype=np.int64).reshape(-1, 2)
    arrays = {
        "format": np.array(FORMAT), "version": np.array(VERSION, dtype=np.int64),
        "n": np.array(n, dtype=np.int64), "a": np.array(net.a, dtype=np.int64),
        "shapes": shapes,
        "meta": np.array(json.dumps(meta or {}, sort_keys=True, separators=(",", ":"))),
    }
    for l, layer in enumerate(net.layers):
        k_planes, k_m, k_b, k_shift = _layer_keys(l)
        arrays[k_planes] = np.packbits(arith.to_planes(layer.codes, n), axis=-1,
                                       bitorder="big")
        arrays[k_m] = np.asarray(layer.m).astype(np.int16)
        arrays[k_b] = np.asarray(layer.b).astype(np.int32)
        arrays[k_shift] = np.asarray(layer.shift).astype(np.uint8)
        # Round-trip check: a table that does not fit its on-disk type must fail here.
        for key, src in ((k_m, layer.m), (k_b, layer.b), (k_shift, layer.shift)):
            if not np.array_equal(arrays[key], np.asarray(src)):
                raise AnyprecError(f"layer {l}: {key.split('_', 1)[1]} does not fit "
                                   f"{arrays[key].dtype}")
    return arrays


def save_model(path, net, meta=None):
    """Write an integer network and its metadata as an anyprec model file (docs/model-format.md).

    The file is replaced atomically: after a failure (a full disk) an existing file at
    ``path`` is unchanged.

    Parameters
    ----------
    path : str or Path
        Destination ``.npz`` file (parent directories must exist).
    net : arith.IntNetwork
    meta : dict, optional
        JSON-serialisable metadata (dataset, split, seed, training settings, accuracies).

    Raises
    ------
    AnyprecError
        If the file cannot be written.
    """
    arrays = _model_arrays(net, meta)        # (its errors are not write errors)
    write_files([(path, lambda: _npz_bytes(arrays))])


def _scalar_int(z, key, path):
    v = z[key]
    if v.shape != () or v.dtype.kind not in "iu":
        raise ModelFileError(f"{path}: '{key}' must be an integer scalar, "
                             f"not {v.dtype} of shape {v.shape}")
    return int(v)


def _array(z, key, path, kind, itemsize, shape):
    v = z[key]
    if v.dtype.kind != kind or v.dtype.itemsize != itemsize:
        want = {"u": "uint", "i": "int"}[kind] + str(8 * itemsize)
        raise ModelFileError(f"{path}: '{key}' must be {want}, not {v.dtype}")
    if v.shape != shape:
        raise ModelFileError(f"{path}: '{key}' must have shape {shape}, not {v.shape}")
    return v.astype(v.dtype.newbyteorder("="))


def _some(names, most=8):
    """At most ``most`` names of a list, and how many there are: a 'shapes' entry of
    100,000 layers made a 6 MB message of the missing keys."""
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most]) + f", ... ({len(names):,} in all)"


def load_model(path, expect_n=None):
    """Read and validate an anyprec model file.

    Parameters
    ----------
    path : str or Path
    expect_n : int, optional
        The weight precision N the caller was built for; a model for another N is refused.

    Returns
    -------
    net : arith.IntNetwork
    meta : dict

    Raises
    ------
    ModelFileError
        Missing file, not an npz, wrong format or version, missing or unexpected keys, bad
        shapes, dtypes or values, or a model for a different N than ``expect_n``.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the model file ({e.strerror})") from None
    if magic == b"\x93NUMPY":
        raise ModelFileError(f"{path}: not an anyprec model file (a bare .npy array, "
                             "not an .npz archive)")
    if not magic.startswith(b"PK"):
        raise ModelFileError(f"{path}: not an anyprec model file (not an .npz/zip archive)")
    # The file is opened here, not by np.load: np.load leaves its own file open when the
    # archive cannot be read (a truncated file).
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the model file ({e.strerror})") from None
    with fh:
        try:
            z = np.load(fh, allow_pickle=False)
        except Exception as e:  # numpy raises many types (ValueError, OSError, BadZipFile...)
            why = str(e).splitlines()[0] if str(e) else "unreadable"
            raise ModelFileError(f"{path}: corrupt model file (cannot open the .npz "
                                 f"archive, truncated or damaged? {type(e).__name__}: "
                                 f"{why})") from None
        if not isinstance(z, np.lib.npyio.NpzFile):  # unreachable after the magic check
            raise ModelFileError(f"{path}: not an anyprec model file (not an .npz archive)")
        try:
            with z:
                return _read(z, path, expect_n)
        except ModelFileError:
            raise
        except Exception as e:  # a corrupt member (bad CRC, truncated data, pickled object)
            raise ModelFileError(f"{path}: corrupt model file ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else 'unreadable'})"
                                 ) from None


def _read(z, path, expect_n):
    keys = set(z.files)
    if "format" not in keys:
        raise ModelFileError(f"{path}: not an anyprec model file (no 'format' entry)")
    fmt = z["format"]
    if fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise ModelFileError(f"{path}: format is {str(fmt)[:40]!r}, expected {FORMAT!r}")
    if "version" not in keys:
        raise ModelFileError(f"{path}: missing key 'version'")
    version = _scalar_int(z, "version", path)
    if version != VERSION:
        raise ModelFileError(f"{path}: format version {version} is not supported "
                             f"(this anyprec reads version {VERSION})")
    missing = [k for k in _HEADER_KEYS if k not in keys]
    if missing:
        raise ModelFileError(f"{path}: missing key(s) {', '.join(missing)}")
    n = _scalar_int(z, "n", path)
    a = _scalar_int(z, "a", path)
    if not 1 <= n <= 16 or not 1 <= a <= 16:
        raise ModelFileError(f"{path}: N={n} and A={a} must both be from 1 to 16")
    if expect_n is not None and n != expect_n:
        raise ModelFileError(f"{path}: model has {n}-bit weights (N={n}) but N={expect_n} "
                             "was expected (e.g. the build's max_wbits)")
    shapes = z["shapes"]
    if shapes.dtype.kind not in "iu" or shapes.ndim != 2 or shapes.shape[1] != 2 \
            or shapes.shape[0] < 1:
        raise ModelFileError(f"{path}: 'shapes' must be an (L, 2) integer array with L >= 1, "
                             f"not {shapes.dtype} of shape {shapes.shape}")
    shapes = [(int(mm), int(kk)) for mm, kk in shapes]
    for l, (mm, kk) in enumerate(shapes):
        if mm < 1 or kk < 1:
            raise ModelFileError(f"{path}: layer {l} has shape {(mm, kk)}; sizes must be "
                                 "positive")
        if l and kk != shapes[l - 1][0]:
            raise ModelFileError(f"{path}: layer {l} has {kk} inputs but layer {l - 1} has "
                                 f"{shapes[l - 1][0]} outputs")
    order = list(_HEADER_KEYS) + [k for l in range(len(shapes)) for k in _layer_keys(l)]
    expected = set(order)
    missing = [k for k in order if k not in keys]      # (in layer order, not as strings)
    if missing:
        raise ModelFileError(f"{path}: missing key(s) {_some(missing)}")
    extra = sorted(keys - expected)
    if extra:
        raise ModelFileError(f"{path}: unexpected key(s) {_some(extra)}")
    layers = []
    for l, (mm, kk) in enumerate(shapes):
        k_planes, k_m, k_b, k_shift = _layer_keys(l)
        packed = _array(z, k_planes, path, "u", 1, (n, mm, -(-kk // 8)))
        bits = np.unpackbits(packed, axis=-1, bitorder="big")
        if bits[..., kk:].any():
            raise ModelFileError(f"{path}: '{k_planes}' has non-zero padding bits")
        codes = arith.from_planes(bits[..., :kk])
        m = _array(z, k_m, path, "i", 2, (n, mm)).astype(np.int64)
        b = _array(z, k_b, path, "i", 4, (n, mm)).astype(np.int64)
        shift = _array(z, k_shift, path, "u", 1, (n,)).astype(np.int64)
        if shift.max() > arith.SHIFT_MAX:
            raise ModelFileError(f"{path}: '{k_shift}' has a shift of {shift.max()}, more "
                                 f"than {arith.SHIFT_MAX}")
        layers.append(arith.IntLayer(codes=codes, m=m, b=b, shift=shift))
    meta_arr = z["meta"]
    if meta_arr.shape != () or meta_arr.dtype.kind != "U":
        raise ModelFileError(f"{path}: 'meta' must be a JSON string")
    try:
        meta = json.loads(str(meta_arr))
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: 'meta' is not valid JSON ({e.msg} at {e.pos})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: 'meta' must be a JSON object, not "
                             f"{type(meta).__name__}")
    return arith.IntNetwork(layers=layers, n=n, a=a), meta


# --- accuracy --------------------------------------------------------------------------

def _test_data(x, y):
    if x is None or y is None:
        _, x_test, _, y_test = load_split()
        x = x_test if x is None else x
        y = y_test if y is None else y
    return np.asarray(x), np.asarray(y)


def default_abits(a):
    """The activation precisions reported by default: A, 4 and 2 (those <= A), descending."""
    return sorted({a, min(4, a), min(2, a)}, reverse=True)


def accuracy_table(net, wbits=None, abits=None, x=None, y=None):
    """Integer-reference accuracy for every (wbits, abits) pair.

    Parameters
    ----------
    net : arith.IntNetwork
    wbits : iterable of int, optional
        Weight precisions (default 1..N); every layer runs at the same precision.
    abits : iterable of int, optional
        Activation precisions (every layer input, the pixels included); default
        :func:`default_abits` (8, 4, 2 for A = 8).
    x, y : arrays, optional
        (B, 64) integer pixels 0..16 and labels; default the digits test split.

    Returns
    -------
    list of ``{"wbits": k, "abits": a, "accuracy": fraction}``, abits-major in the order
    given, then wbits ascending.
    """
    x, y = _test_data(x, y)
    wbits = list(range(1, net.n + 1)) if wbits is None else list(wbits)
    abits = default_abits(net.a) if abits is None else list(abits)
    for k in wbits:
        arith.check_precision("wbits", k, net.n)
    rows = []
    for a in abits:
        xq = arith.quantize_pixels(x.T, a, net.a)
        for k in wbits:
            pred = net.predict(xq, k, a)
            rows.append({"wbits": int(k), "abits": int(a),
                         "accuracy": float(np.mean(pred == y))})
    return rows


def float_predictions(model, wbits, abits, x=None):
    """Predictions of the float fake-quantised path on integer pixels (default: test split).

    The model runs in float64 (a float64 copy unless it already is), where its weight codes
    and activation roundings are the very operations of ``arith``. The caller's model is
    never modified.
    """
    import torch

    x, _ = _test_data(x, np.zeros(0))
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64) / 16.0)
    if next(model.parameters()).dtype != torch.float64:
        model = copy.deepcopy(model).double()
    return model.predict(xt, wbits, abits).numpy()


# --- the float checkpoint ---------------------------------------------------------------

def _pt_bytes(model, name):
    """The checkpoint as ``torch.save`` writes it to a file called ``name``.

    torch names the archive's inner folder after the file it writes (``digits_mlp/``;
    ``archive/`` for a buffer), so it is saved under its final name in a private
    temporary directory and read back: the bytes are those of a plain
    ``torch.save(..., name)``, and the shipped checkpoints stay reproducible byte for byte
    (docs/model-format.md). A failed write there (torch's RuntimeError) is an OSError for
    :func:`write_files`, which then replaces nothing."""
    import errno
    import tempfile
    import torch

    with tempfile.TemporaryDirectory(prefix="anyprec-pt-") as d:
        path = os.path.join(d, os.path.basename(name))
        try:
            torch.save(model.checkpoint(), path)
        except RuntimeError as e:
            raise OSError(errno.EIO, f"torch.save could not write it (is {d} full? "
                                     f"{str(e).splitlines()[0][:80]})") from None
        with open(path, "rb") as f:
            return f.read()


def save_float(path, model):
    """Write the float model (state dict and hyper-parameters) as a ``.pt`` file.

    The file is replaced atomically (an existing file survives a failed write); raises
    AnyprecError if it cannot be written.
    """
    write_files([(path, lambda: _pt_bytes(model, path))])


def load_float(path):
    """Read a float checkpoint written by :func:`save_float` (``weights_only`` loading)."""
    import torch
    from .model import AnyPrecisionMLP

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such float checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelFileError(f"{path}: cannot read the float checkpoint "
                             f"({type(e).__name__})") from None
    return AnyPrecisionMLP.from_checkpoint(ckpt)


# --- one-call export --------------------------------------------------------------------

def agreement(model, net, wbits=None, abits=None, x=None):
    """Fraction of samples where the float path and the integer reference predict the same.

    Returns a list of ``{"wbits": k, "abits": a, "agreement": fraction}`` (default k = 1..N
    at a = A).
    """
    abits = net.a if abits is None else abits
    x, _ = _test_data(x, np.zeros(0))
    wbits = list(range(1, net.n + 1)) if wbits is None else list(wbits)
    xq = arith.quantize_pixels(x.T, abits, net.a)
    model = copy.deepcopy(model).double()  # once, not per precision
    out = []
    for k in wbits:
        same = float_predictions(model, k, abits, x) == net.predict(xq, k, abits)
        out.append({"wbits": int(k), "abits": int(abits), "agreement": float(np.mean(same))})
    return out


def export(model, settings, out_dir, stem="digits_mlp"):
    """Fold, evaluate and write a trained model: ``<stem>.npz`` and ``<stem>.pt``.

    Parameters
    ----------
    model : AnyPrecisionMLP
        The trained model.
    settings : dict
        The training settings (recorded in the metadata).
    out_dir : str or Path
        Output directory (created if needed).
    stem : str
        File name stem.

    Returns
    -------
    npz_path, pt_path : Path
    meta : dict
        The metadata written into the model file (with the accuracy table).
    """
    import torch
    from .data import SPLIT

    try:
        from importlib.metadata import version
        anyprec_version = version("anyprec")
    except Exception:
        anyprec_version = "unknown"
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ModelFileError(f"{out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    net = fold(model)
    x_train, x_test, _, _ = load_split()
    meta = {
        "dataset": DATASET,
        "split": dict(SPLIT, train_samples=len(x_train), test_samples=len(x_test)),
        "seed": settings.get("seed"),
        "hidden": list(model.hparams["hidden"]),
        "layers": [list(layer.shape) for layer in net.layers],
        "training": dict(settings),
        "quantisation": {
            "weight_scale": "s_N = mean|W| / 2^(N-1) per layer",
            "sigma": [float(s) for s in model.sigma],
            "logit_step": model.logit_step,
        },
        "accuracy": accuracy_table(net),
        "agreement_float_int": agreement(model, net),
        "float_checkpoint": f"{stem}.pt",
        "software": {"anyprec": anyprec_version, "torch": torch.__version__.split("+")[0],
                     "numpy": np.__version__},
    }
    npz_path, pt_path = out_dir / f"{stem}.npz", out_dir / f"{stem}.pt"
    # Both files complete before either replaces its old version: a failed export leaves
    # a previous model pair (the shipped one in golden/checkpoints, say) as it was.
    arrays = _model_arrays(net, meta)
    write_files([(npz_path, lambda: _npz_bytes(arrays)),
                 (pt_path, lambda: _pt_bytes(model, pt_path))])
    return npz_path, pt_path, meta
