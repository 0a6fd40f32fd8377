"""The anyprec integer arithmetic: the one implementation of docs/arithmetic.md.

Everything here is exact integer arithmetic (numpy int64, or Python integers where int64
could overflow). The hardware, the host driver and the tests import these functions; they
never re-derive them.
"""

from dataclasses import dataclass
import math

import numpy as np

from .errors import PrecisionError, ShapeError

__all__ = [
    "M_BITS", "B_BITS", "SHIFT_MAX",
    "check_precision", "truncate", "to_planes", "from_planes", "levels", "level_bits",
    "quantize_weights", "dequantize", "quantize_activations", "quantize_pixels",
    "dot", "dot_bitserial", "requant", "requant_final", "Widths", "widths",
    "IntLayer", "IntNetwork",
]

#: Width of the signed per-row requantisation multiplier m.
M_BITS = 16
#: Width of the signed per-row requantisation offset b.
B_BITS = 32
#: Largest per-precision requantisation shift.
SHIFT_MAX = 63

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


def check_precision(name, value, maximum):
    """Return ``value`` as an int if ``1 <= value <= maximum``, else raise PrecisionError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PrecisionError(f"{name} must be an integer from 1 to {maximum}, not {value!r}")
    if not 1 <= value <= maximum:
        raise PrecisionError(f"{name} must be from 1 to {maximum}, not {value}")
    return int(value)


def _codes(codes, n):
    codes = np.asarray(codes)
    if codes.dtype.kind not in "ui":
        raise ShapeError(f"weight codes must be an integer array, not {codes.dtype}")
    if codes.size and (codes.min() < 0 or codes.max() > (1 << n) - 1):
        raise ShapeError(f"weight codes must be unsigned {n}-bit values (0..{(1 << n) - 1}), "
                         f"found {codes.min()}..{codes.max()}")
    return codes.astype(np.int64)


def truncate(codes, n, k):
    """The k-bit code: the top k bit-planes of N-bit codes (``c_N >> (N - k)``)."""
    k = check_precision("wbits", k, n)
    return _codes(codes, n) >> (n - k)


def to_planes(codes, n):
    """Split N-bit codes into bit-planes; result[p] is plane p, plane 0 the MSB (uint8 0/1)."""
    codes = _codes(codes, n)
    return np.stack([((codes >> (n - 1 - p)) & 1).astype(np.uint8) for p in range(n)])


def from_planes(planes, k=None):
    """Rebuild k-bit codes from the first k planes (all planes when k is None)."""
    planes = np.asarray(planes)
    if k is None:
        k = planes.shape[0]
    k = check_precision("wbits", k, planes.shape[0])
    out = np.zeros(planes.shape[1:], dtype=np.int64)
    for p in range(k):
        out = (out << 1) | planes[p].astype(np.int64)
    return out


def levels(codes_k, k):
    """Odd-symmetric integer levels ``2*c_k + 1 - 2^k`` of k-bit codes."""
    return 2 * np.asarray(codes_k, dtype=np.int64) + 1 - (1 << k)


def level_bits(planes_k):
    """Level of the first k planes computed as ``sum 2^(k-1-p) * (2*plane_p - 1)``."""
    planes_k = np.asarray(planes_k, dtype=np.int64)
    k = planes_k.shape[0]
    return sum((1 << (k - 1 - p)) * (2 * planes_k[p] - 1) for p in range(k))


def quantize_weights(w, scale_n, n):
    """Float weights to N-bit codes: ``clamp(floor(w / (2 s_N)) + 2^(N-1), 0, 2^N - 1)``."""
    if not scale_n > 0:
        raise ValueError(f"weight scale must be positive, not {scale_n!r}")
    q = np.floor(np.asarray(w, dtype=np.float64) / (2.0 * scale_n)) + (1 << (n - 1))
    return np.clip(q, 0, (1 << n) - 1).astype(np.int64)


def dequantize(codes_n, n, k, scale_n):
    """Real k-bit weights ``s_k * lambda_k(c_k)`` with ``s_k = s_N * 2^(N-k)``."""
    return scale_n * (1 << (n - k)) * levels(truncate(codes_n, n, k), k).astype(np.float64)


def quantize_activations(v, sigma, a, amax):
    """Real values to a-bit activations with full-precision step sigma (round half up)."""
    a = check_precision("abits", a, amax)
    step = sigma * (1 << (amax - a))
    q = np.floor(np.asarray(v, dtype=np.float64) / step + 0.5)
    return np.clip(q, 0, (1 << a) - 1).astype(np.int64)


def quantize_pixels(pixels, a, amax, pixel_max=16):
    """Exact integer input quantisation of integer pixels in [0, pixel_max] (docs section 4)."""
    a = check_precision("abits", a, amax)
    p = np.asarray(pixels)
    if p.dtype.kind not in "ui" and not np.all(np.equal(np.mod(p, 1), 0)):
        raise ShapeError("pixels must be integers")
    p = p.astype(np.int64)
    if p.size and (p.min() < 0 or p.max() > pixel_max):
        raise ShapeError(f"pixels must be in 0..{pixel_max}")
    unit = 1 << (amax - a)
    q = (2 * p * ((1 << amax) - 1) + pixel_max * unit) // (2 * pixel_max * unit)
    return np.clip(q, 0, (1 << a) - 1)


def _activations(x, a):
    x = np.asarray(x)
    if x.dtype.kind not in "ui":
        raise ShapeError(f"activations must be an integer array, not {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > (1 << a) - 1):
        raise ShapeError(f"activations must be unsigned {a}-bit values (0..{(1 << a) - 1}), "
                         f"found {x.min()}..{x.max()}")
    return x.astype(np.int64)


def dot(codes_n, x, n, k, a=None):
    """Integer dot products D = lambda_k(c_k) @ x.

    ``codes_n`` is (M, K) N-bit codes; ``x`` is (K,) or (K, B) a-bit activations (a is only
    used for range checking; None skips it). Returns int64 (M,) or (M, B).
    """
    codes_n = np.asarray(codes_n)
    xs = _activations(x, a) if a is not None else np.asarray(x, dtype=np.int64)
    if codes_n.ndim != 2 or xs.shape[0] != codes_n.shape[1]:
        raise ShapeError(f"weights {codes_n.shape} and activations {xs.shape} do not fit: "
                         "need (M, K) and (K,)")
    return levels(truncate(codes_n, n, k), k) @ xs


def dot_bitserial(codes_n, x, n, k):
    """D computed the way the hardware does: MSB-first over planes, then 2P - Q."""
    planes = to_planes(codes_n, n)
    xs = np.asarray(x, dtype=np.int64)
    acc = np.zeros(planes.shape[1:2] + xs.shape[1:], dtype=np.int64)
    for p in range(k):
        acc = 2 * acc + planes[p].astype(np.int64) @ xs
    q = ((1 << k) - 1) * xs.sum(axis=0)
    return 2 * acc - q


def _exact(v):
    # int64 unless the values could leave its range; then exact Python integers.
    return np.asarray(v, dtype=object)


def _shift_round(v, s):
    """floor((v + 2^(s-1)) / 2^s) for s >= 0, exactly."""
    if s == 0:
        return v
    return (v + (1 << (s - 1))) >> s


def _check_requant(d, m, b, shift):
    m = np.asarray(m)
    b = np.asarray(b)
    if m.size and (m.min() < -(1 << (M_BITS - 1)) or m.max() > (1 << (M_BITS - 1)) - 1):
        raise ShapeError(f"requant multipliers must be signed {M_BITS}-bit")
    if b.size and (b.min() < _INT32_MIN or b.max() > _INT32_MAX):
        raise ShapeError(f"requant offsets must be signed {B_BITS}-bit")
    if not 0 <= int(shift) <= SHIFT_MAX:
        raise ShapeError(f"requant shift must be 0..{SHIFT_MAX}, not {shift}")
    return int(shift)


def _v(d, m, b, a_in, amax):
    d = _exact(d)
    m = _exact(m)
    b = _exact(b)
    if d.ndim == 2:  # (M, B) batch: broadcast per-row tables over columns
        m = m[:, None]
        b = b[:, None]
    return d * m * (1 << (amax - a_in)) + b


def requant(d, m, b, shift, a_in, a_out, amax):
    """Hidden-layer requantisation (docs section 6). Returns int64 a_out-bit activations."""
    shift = _check_requant(d, m, b, shift)
    a_in = check_precision("abits", a_in, amax)
    a_out = check_precision("abits", a_out, amax)
    y = _shift_round(_v(d, m, b, a_in, amax), shift + amax - a_out)
    return np.clip(y, 0, (1 << a_out) - 1).astype(np.int64)


def requant_final(d, m, b, shift, a_in, amax):
    """Last-layer requantisation to raw int32 logits (docs section 6)."""
    shift = _check_requant(d, m, b, shift)
    a_in = check_precision("abits", a_in, amax)
    y = _shift_round(_v(d, m, b, a_in, amax), shift)
    return np.clip(y, _INT32_MIN, _INT32_MAX).astype(np.int64)


@dataclass(frozen=True)
class Widths:
    """Register widths derived from (N, A, K_max); see docs/arithmetic.md section 5 and 6."""
    acc_bits: int    # unsigned row accumulator P (and the shared correction Q)
    sx_bits: int     # unsigned sum of activations
    d_bits: int      # signed dot product D
    v_bits: int      # signed requant product-plus-offset V
    round_bits: int  # signed rounded sum V + 2^(S-1)
    max_shift: int   # largest total right shift S


def widths(n, a, k_max):
    """Derive every datapath width from the maximum precisions and the largest K."""
    if k_max < 1:
        raise ValueError(f"k_max must be positive, not {k_max}")
    p_max = k_max * ((1 << n) - 1) * ((1 << a) - 1)
    acc = max(p_max.bit_length(), 1)
    sx = max((k_max * ((1 << a) - 1)).bit_length(), 1)
    d = acc + 1
    v = max(d + M_BITS + a - 1, B_BITS) + 1
    return Widths(acc_bits=acc, sx_bits=sx, d_bits=d, v_bits=v, round_bits=v + 1,
                  max_shift=SHIFT_MAX + a - 1)


@dataclass
class IntLayer:
    """One layer of the integer model.

    Members
    -------
    codes : (M, K) int array of N-bit weight codes.
    m : (N, M) int array, m[k-1] the signed 16-bit multipliers for weight precision k.
    b : (N, M) int array, b[k-1] the signed 32-bit offsets for weight precision k.
    shift : (N,) int array, shift[k-1] for weight precision k.
    """
    codes: np.ndarray
    m: np.ndarray
    b: np.ndarray
    shift: np.ndarray

    @property
    def shape(self):
        return tuple(self.codes.shape)


@dataclass
class IntNetwork:
    """An integer any-precision network: the reference the hardware must reproduce."""
    layers: list
    n: int   # maximum weight precision N
    a: int   # maximum activation precision A

    def _per_layer(self, name, value, maximum):
        if isinstance(value, (int, np.integer)):
            value = [value] * len(self.layers)
        value = list(value)
        if len(value) != len(self.layers):
            raise PrecisionError(f"{name} needs one value per layer ({len(self.layers)}), "
                                 f"got {len(value)}")
        return [check_precision(name, v, maximum) for v in value]

    def forward(self, x, wbits, abits, sizes=None, return_all=False):
        """Run the network on a-bit inputs.

        Parameters
        ----------
        x : (K0,) or (K0, B) integer inputs, already quantised to ``abits[0]`` bits.
        wbits, abits : int or one int per layer.
        sizes : optional list of (M', K') per layer for slimmed runs.
        return_all : also return the list of D vectors and activations per layer.

        Returns
        -------
        logits (int64, (M_last,) or (M_last, B)), and with return_all a dict of per-layer
        ``d`` and ``x`` arrays.
        """
        wbits = self._per_layer("wbits", wbits, self.n)
        abits = self._per_layer("abits", abits, self.a)
        xs = _activations(x, abits[0])
        trace = {"d": [], "x": [xs]}
        for i, layer in enumerate(self.layers):
            mm, kk = sizes[i] if sizes is not None else layer.shape
            if xs.shape[0] != kk:
                raise ShapeError(f"layer {i} expects {kk} inputs, got {xs.shape[0]}")
            k = wbits[i]
            d = dot(layer.codes[:mm, :kk], xs, self.n, k)
            trace["d"].append(d)
            tab = (layer.m[k - 1][:mm], layer.b[k - 1][:mm], int(layer.shift[k - 1]))
            if i + 1 < len(self.layers):
                xs = requant(d, *tab, a_in=abits[i], a_out=abits[i + 1], amax=self.a)
                trace["x"].append(xs)
            else:
                logits = requant_final(d, *tab, a_in=abits[i], amax=self.a)
        return (logits, trace) if return_all else logits

    def predict(self, x, wbits, abits, sizes=None):
        """Argmax class per sample (first maximum)."""
        return np.argmax(self.forward(x, wbits, abits, sizes), axis=0)
