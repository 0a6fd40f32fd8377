"""Tests of golden/arith.py against docs/arithmetic.md (sections 1-6)."""

from fractions import Fraction
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from anyprec.golden import arith
from anyprec.golden.errors import PrecisionError, ShapeError

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


@st.composite
def codes_n_k(draw, max_n=12, max_rows=6, max_cols=9):
    """(codes, n, k): an (M, K) matrix of N-bit codes and a precision 1 <= k <= N."""
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, n))
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(1, max_cols))
    flat = draw(st.lists(st.integers(0, (1 << n) - 1), min_size=rows * cols,
                         max_size=rows * cols))
    return np.array(flat, dtype=np.int64).reshape(rows, cols), n, k


# --- section 1: codes, planes, truncation -----------------------------------------------

@given(codes_n_k())
def test_truncation_is_the_top_planes(case):
    codes, n, k = case
    planes = arith.to_planes(codes, n)
    assert planes.shape == (n,) + codes.shape and planes.dtype == np.uint8
    assert np.array_equal(arith.truncate(codes, n, k), arith.from_planes(planes, k))
    assert np.array_equal(arith.truncate(codes, n, k), codes >> (n - k))
    assert np.array_equal(arith.from_planes(planes), codes)


def test_plane_zero_is_the_msb():
    planes = arith.to_planes(np.array([[0b1000_0001, 0b0100_0000]]), 8)
    assert planes[0].tolist() == [[1, 0]] and planes[1].tolist() == [[0, 1]]
    assert planes[7].tolist() == [[1, 0]]


def test_truncate_rejects_bad_input():
    with pytest.raises(PrecisionError, match="wbits"):
        arith.truncate(np.array([1]), 8, 9)
    with pytest.raises(ShapeError, match="unsigned 4-bit"):
        arith.truncate(np.array([16]), 4, 2)


# --- section 3: the quantiser is truncation-consistent --------------------------------

# Weights far outside the clamp range are included; subnormal quotients are not (see the
# test below for why they are excluded).
_weights = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False).filter(
    lambda w: w == 0 or abs(w) > 1e-200)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_weights, min_size=1, max_size=20), st.floats(1e-6, 1e3),
       st.integers(1, 16), st.data())
def test_quantiser_is_truncation_consistent(ws, s_n, n, data):
    k = data.draw(st.integers(1, n))
    w = np.array(ws)
    c_n = arith.quantize_weights(w, s_n, n)
    s_k = s_n * (1 << (n - k))
    assert np.array_equal(arith.quantize_weights(w, s_k, k), arith.truncate(c_n, n, k))


@pytest.mark.parametrize("n", [1, 2, 8])
def test_quantiser_at_exact_bin_edges_and_out_of_range(n):
    # With s_N a power of two, w = 2 s_N j is exactly representable: every bin edge, and
    # edges well outside the clamp range on both sides.
    s_n = 2.0 ** -7
    j = np.arange(-(1 << n) - 5, (1 << n) + 5)
    w = np.concatenate([2 * s_n * j, 2 * s_n * j - 2.0 ** -30, [-1e30, 1e30]])
    c_n = arith.quantize_weights(w, s_n, n)
    # A bin is [s_N (2c - 2^N), s_N (2c + 2 - 2^N)), closed at the bottom (docs section 2).
    expect = np.clip(np.floor(w / (2 * s_n)) + (1 << (n - 1)), 0, (1 << n) - 1)
    assert np.array_equal(c_n, expect.astype(np.int64))
    assert c_n[0] == 0 and c_n[-1] == (1 << n) - 1
    for k in range(1, n + 1):
        assert np.array_equal(arith.quantize_weights(w, s_n * (1 << (n - k)), k),
                              c_n >> (n - k))


# --- section 2: levels -----------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 3, 8])
def test_levels_nest(n):
    # Integer arithmetic with s_N = 1, so s_k = 2^(N-k) exactly.
    for k in range(1, n):
        s_k, s_k1 = 1 << (n - k), 1 << (n - k - 1)
        for c in range(1 << k):
            lo, hi = s_k * (2 * c - (1 << k)), s_k * (2 * c + 2 - (1 << k))
            lo0 = s_k1 * (2 * (2 * c) - (1 << (k + 1)))
            mid = s_k1 * (2 * (2 * c) + 2 - (1 << (k + 1)))
            hi1 = s_k1 * (2 * (2 * c + 1) + 2 - (1 << (k + 1)))
            assert (lo, hi) == (lo0, hi1) and lo < mid < hi  # union of the two child bins
            parent = s_k * int(arith.levels(c, k))
            kids = s_k1 * arith.levels(np.array([2 * c, 2 * c + 1]), k + 1)
            assert 2 * parent == int(kids.sum())  # the level is the midpoint of the kids
            assert lo < parent < hi and parent == (lo + hi) // 2  # and of its bin


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_levels_are_odd_and_symmetric(k):
    lv = arith.levels(np.arange(1 << k), k)
    assert lv[0] == -((1 << k) - 1) and lv[-1] == (1 << k) - 1
    assert np.all(lv % 2 == 1) and np.array_equal(lv, -lv[::-1])
    assert np.all(np.diff(lv) == 2)
    if k == 1:
        assert lv.tolist() == [-1, 1]  # binary network: weights +-s_1


@given(codes_n_k())
def test_level_bit_plane_form(case):
    codes, n, k = case
    planes = arith.to_planes(codes, n)[:k]
    assert np.array_equal(arith.level_bits(planes), arith.levels(arith.truncate(codes, n, k), k))


def test_dequantize_is_scaled_levels():
    codes = np.array([[0, 127, 128, 255]])
    assert arith.dequantize(codes, 8, 8, 0.5).tolist() == [[-127.5, -0.5, 0.5, 127.5]]
    assert arith.dequantize(codes, 8, 1, 0.5).tolist() == [[-64.0, -64.0, 64.0, 64.0]]


# --- section 5: dot products and widths ------------------------------------------------

@given(codes_n_k(), st.integers(1, 8), st.integers(1, 3), st.data())
def test_dot_bitserial_equals_dot(case, a, batch, data):
    codes, n, k = case
    xs = data.draw(st.lists(st.integers(0, (1 << a) - 1), min_size=codes.shape[1] * batch,
                            max_size=codes.shape[1] * batch))
    x = np.array(xs, dtype=np.int64).reshape(codes.shape[1], batch)
    d = arith.dot(codes, x, n, k, a)
    assert np.array_equal(arith.dot_bitserial(codes, x, n, k), d)
    # The definition, with Python integers: D = sum lambda * x = 2 P - Q.
    c_k = codes >> (n - k)
    p = c_k @ x
    q = ((1 << k) - 1) * x.sum(axis=0)
    assert np.array_equal(d, 2 * p - q)
    assert np.array_equal(arith.dot(codes, x[:, 0], n, k), d[:, 0])


def _fits_signed(v, bits):
    return -(1 << (bits - 1)) <= v <= (1 << (bits - 1)) - 1


def _fits_unsigned(v, bits):
    return 0 <= v <= (1 << bits) - 1


@pytest.mark.parametrize("n,a,k_max", [(1, 1, 1), (8, 8, 64), (8, 8, 1), (4, 8, 100),
                                       (8, 2, 7), (16, 16, 3), (8, 8, 256)])
def test_widths_at_the_extremes(n, a, k_max):
    w = arith.widths(n, a, k_max)
    x_max = np.full(k_max, (1 << a) - 1, dtype=np.int64)
    all_max = np.full((1, k_max), (1 << n) - 1)
    all_zero = np.zeros((1, k_max), dtype=np.int64)
    d_max = int(arith.dot(all_max, x_max, n, n)[0])
    d_min = int(arith.dot(all_zero, x_max, n, n)[0])
    extreme = k_max * ((1 << n) - 1) * ((1 << a) - 1)
    assert (d_max, d_min) == (extreme, -extreme)
    assert _fits_signed(d_max, w.d_bits) and _fits_signed(d_min, w.d_bits)
    assert not _fits_signed(d_max, w.d_bits - 1)  # derived, not padded
    # P = sum c x and Q = (2^N - 1) sum x peak at the same value; sum x at K (2^A - 1).
    p_max = int((all_max @ x_max)[0])
    assert _fits_unsigned(p_max, w.acc_bits) and not _fits_unsigned(p_max, w.acc_bits - 1)
    sx = int(x_max.sum())
    assert _fits_unsigned(sx, w.sx_bits) and not _fits_unsigned(sx, w.sx_bits - 1)
    # V = D m 2^(A - a_in) + b at its extremes, and the rounded sum V + 2^(S - 1). The
    # rounded sum fits round_bits for S <= v_bits; every larger S gives the same result as
    # S = v_bits (|V| < 2^(v_bits - 1), so the quotient is 0), which is how a datapath of
    # round_bits bits can honour shifts up to max_shift.
    assert w.max_shift == 63 + a - 1
    for d in (d_max, d_min):
        for m in (-(1 << 15), (1 << 15) - 1):
            for b in (INT32_MIN, INT32_MAX):
                v = d * m * (1 << (a - 1)) + b
                assert _fits_signed(v, w.v_bits)
                s_fit = min(w.max_shift, w.v_bits)
                assert _fits_signed(v + (1 << (s_fit - 1)), w.round_bits)
                assert all((v + (1 << (s - 1))) >> s == 0
                           for s in range(w.v_bits, w.max_shift + 1))
                if w.v_bits <= 63:
                    tab = (np.array([d]), np.array([m]), np.array([b]))
                    assert arith.requant_final(*tab, w.v_bits, 1, a).tolist() == [0]


def test_all_zero_codes_give_the_most_negative_d():
    rng = np.random.default_rng(1)
    n, a, k_max = 4, 3, 16
    x_max = np.full(k_max, (1 << a) - 1)
    floor = int(arith.dot(np.zeros((1, k_max), dtype=np.int64), x_max, n, n)[0])
    codes = rng.integers(0, 1 << n, size=(500, k_max))
    xs = rng.integers(0, 1 << a, size=(k_max, 20))
    assert arith.dot(codes, xs, n, n).min() >= floor
    assert floor == -k_max * ((1 << n) - 1) * ((1 << a) - 1)


def test_widths_reject_bad_k_max():
    with pytest.raises(ValueError, match="k_max"):
        arith.widths(8, 8, 0)


# --- section 6: requantisation ---------------------------------------------------------

A = 8


@pytest.mark.parametrize("d,m,b,shift,a_in,a_out,expect", [
    (5, 1, 0, 1, 8, 8, 3),        # 2.5 rounds half up to 3
    (3, 1, 0, 1, 8, 8, 2),        # 1.5 -> 2
    (1, 1, 0, 1, 8, 8, 1),        # 0.5 -> 1
    (4, 1, -1, 3, 8, 8, 0),       # 3/8 = 0.375 -> 0
    (5, 1, 0, 0, 8, 8, 5),        # S = 0: V itself
    (-1, 1, 0, 1, 8, 8, 0),       # -0.5 -> 0 (and the ReLU clamp)
    (-7, 1, 0, 1, 8, 8, 0),       # negative -> 0
    (3, 1, 0, 2, 7, 8, 2),        # V = 3 * 2 = 6, 6/4 = 1.5 -> 2
    (3, 1, 0, 2, 7, 7, 1),        # S = 3: 6/8 = 0.75 -> 1
    (3, 1, -2, 2, 7, 7, 1),       # 4/8 = 0.5 -> 1
    (3, 1, -3, 2, 7, 7, 0),       # 3/8 -> 0
    (255, 1, 0, 0, 8, 8, 255),    # exactly 2^a - 1 passes
    (256, 1, 0, 0, 8, 8, 255),    # one more saturates
    (32, 1, 0, 0, 8, 2, 1),       # a_out = 2: S = 6, 32/64 = 0.5 -> 1
    (31, 1, 0, 0, 8, 2, 0),       # 31/64 -> 0
    (1000, 1, 0, 0, 8, 2, 3),     # 1000/64 = 15.6 saturates at 2^2 - 1
    (-2, 3, 7, 0, 8, 8, 1),       # V = -6 + 7, S = 0
    (2, -3, 7, 1, 8, 8, 1),       # V = 1, 1/2 -> 1
    (2, -3, 5, 1, 8, 8, 0),       # V = -1, -1/2 -> 0
])
def test_requant_hand_computed(d, m, b, shift, a_in, a_out, expect):
    y = arith.requant(np.array([d]), np.array([m]), np.array([b]), shift, a_in, a_out, A)
    assert y.tolist() == [expect]


@pytest.mark.parametrize("v,shift,expect", [
    (5, 1, 3), (-5, 1, -2), (-7, 1, -3), (7, 1, 4), (-6, 2, -1), (-10, 2, -2),
    (-3, 0, -3), (INT32_MAX, 0, INT32_MAX), (INT32_MIN, 0, INT32_MIN),
])
def test_requant_final_rounds_half_up_for_negative_values(v, shift, expect):
    # D = v, m = 1, b = 0: V = v. -2.5 rounds up to -2, -3.5 to -3, -1.5 to -1, -2.5 to -2.
    y = arith.requant_final(np.array([v]), np.array([1]), np.array([0]), shift, A, A)
    assert y.tolist() == [expect]


def test_requant_final_saturates_at_int32():
    d = np.array([1 << 20, -(1 << 20), 1 << 10, -(1 << 10)])
    m = np.full(4, 32767)
    b = np.array([INT32_MAX, INT32_MIN, 0, 0])
    y = arith.requant_final(d, m, b, 0, A, A)
    assert y.tolist() == [INT32_MAX, INT32_MIN, (1 << 10) * 32767, -(1 << 10) * 32767]
    # One below the limit is not clamped; one above is.
    y = arith.requant_final(np.array([1, 1]), np.array([1, 2]), np.array([INT32_MAX - 1] * 2),
                            0, A, A)
    assert y.tolist() == [INT32_MAX, INT32_MAX]
    y = arith.requant_final(np.array([1]), np.array([0]), np.array([INT32_MAX]), 0, A, A)
    assert y.tolist() == [INT32_MAX]


def test_requant_exact_beyond_int64():
    # D m 2^(A - a_in) + b with a 2^63 shift: the intermediate is far beyond int64.
    d = np.array([(1 << 23) - 1])
    y = arith.requant_final(d, np.array([32767]), np.array([0]), 63, 1, 8)
    exact = (((1 << 23) - 1) * 32767 * (1 << 7) + (1 << 62)) >> 63
    assert y.tolist() == [exact]


def test_requant_rejects_tables_out_of_range():
    one = np.array([1])
    with pytest.raises(ShapeError, match="16-bit"):
        arith.requant(one, np.array([32768]), one, 0, 8, 8, 8)
    with pytest.raises(ShapeError, match="32-bit"):
        arith.requant(one, one, np.array([INT32_MAX + 1]), 0, 8, 8, 8)
    with pytest.raises(ShapeError, match="shift"):
        arith.requant(one, one, one, 64, 8, 8, 8)
    with pytest.raises(PrecisionError, match="abits"):
        arith.requant(one, one, one, 0, 8, 9, 8)


@settings(max_examples=200)
@given(st.integers(-(1 << 24), 1 << 24), st.integers(-(1 << 15), (1 << 15) - 1),
       st.integers(INT32_MIN, INT32_MAX), st.integers(0, 63), st.integers(1, 8),
       st.integers(1, 8))
def test_requant_is_round_half_up_of_the_exact_quotient(d, m, b, shift, a_in, a_out):
    v = Fraction(d * m * (1 << (A - a_in)) + b, 1 << (shift + A - a_out))
    expect = min(max(math.floor(v + Fraction(1, 2)), 0), (1 << a_out) - 1)
    y = arith.requant(np.array([d]), np.array([m]), np.array([b]), shift, a_in, a_out, A)
    assert y.tolist() == [expect]
    v = Fraction(d * m * (1 << (A - a_in)) + b, 1 << shift)
    expect = min(max(math.floor(v + Fraction(1, 2)), INT32_MIN), INT32_MAX)
    assert arith.requant_final(np.array([d]), np.array([m]), np.array([b]), shift, a_in,
                               A).tolist() == [expect]


# --- section 4: activations and pixels -------------------------------------------------

@pytest.mark.parametrize("amax", [1, 2, 4, 8, 12, 16])
def test_quantize_pixels_matches_the_real_formula(amax):
    p = np.arange(17)
    for a in range(1, amax + 1):
        # The real quantiser q_a(p / 16) with sigma_0 = 1 / (2^A - 1), in exact rationals.
        step = Fraction(1, (1 << amax) - 1) * (1 << (amax - a))
        expect = [min(max(math.floor(Fraction(int(pi), 16) / step + Fraction(1, 2)), 0),
                      (1 << a) - 1) for pi in p]
        assert arith.quantize_pixels(p, a, amax).tolist() == expect
    assert arith.quantize_pixels(np.array([0, 16]), amax, amax).tolist() == [0, (1 << amax) - 1]


def test_quantize_pixels_rejects_bad_pixels():
    with pytest.raises(ShapeError, match="0..16"):
        arith.quantize_pixels(np.array([17]), 8, 8)
    with pytest.raises(ShapeError, match="integers"):
        arith.quantize_pixels(np.array([0.5]), 8, 8)
    with pytest.raises(PrecisionError):
        arith.quantize_pixels(np.array([1]), 9, 8)


@given(st.lists(st.floats(-10, 1000, allow_nan=False), min_size=1, max_size=20),
       st.floats(1e-3, 10), st.integers(1, 8))
def test_quantize_activations_rounds_half_up_and_clamps(vs, sigma, a):
    q = arith.quantize_activations(np.array(vs), sigma, a, 8)
    step = sigma * (1 << (8 - a))
    assert q.min() >= 0 and q.max() <= (1 << a) - 1
    for v, qi in zip(vs, q):
        if 0 <= v / step <= (1 << a) - 1.5:
            assert abs(qi * step - v) <= step / 2 * (1 + 1e-12)  # nearest level
