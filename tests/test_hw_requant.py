"""Requant (hw/requant.py) against golden.arith.requant / requant_final, bit for bit."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from anyprec.golden import arith
from anyprec.hw.requant import Requant

CONFIGS = [(8, 8, 64), (4, 3, 13), (8, 8, 1024)]  # N, A, K_max


def _cases(n, a, k_max, seed):
    rng = np.random.default_rng(seed)
    w = arith.widths(n, a, k_max)
    dmax = (1 << (w.d_bits - 1)) - 1
    out = []
    for _ in range(300):
        d = int(rng.integers(-dmax, dmax + 1))
        m = int(rng.integers(-(1 << 15), 1 << 15))
        b = int(rng.integers(-(1 << 31), 1 << 31))
        shift = int(rng.integers(0, 64))
        out.append((d, m, b, shift, int(rng.integers(1, a + 1)), int(rng.integers(1, a + 1)),
                    bool(rng.integers(0, 2))))
    # Edges: extreme D and m, zero shift, shifts past the V width, exact half-way points.
    for d in (dmax, -dmax, 0, 1, -1):
        for m in (32767, -32768, 1, -1):
            for shift in (0, 1, 20, 40, 63):
                out.append((d, m, 0, shift, a, a, False))
                out.append((d, m, -(1 << 31), shift, 1, a, True))
    for shift in range(1, 10):   # V = +-(k + 1/2) * 2^S exactly: rounds up (toward +inf)
        for kk in (-3, -1, 0, 2):
            out.append((0, 0, (2 * kk + 1) << (shift - 1), shift, a, a, True))
            out.append((0, 0, (2 * kk + 1) << (shift - 1), shift, a, a, False))
    return out


def _golden(n, a, case):
    d, m, b, shift, a_in, a_out, final = case
    args = (np.array([d]), np.array([m]), np.array([b]), shift)
    if final:
        return int(arith.requant_final(*args, a_in=a_in, amax=a)[0])
    return int(arith.requant(*args, a_in=a_in, a_out=a_out, amax=a)[0])


def _run_rows(dut, cases):
    """Each case alone through the pipeline (fields held while it is in flight)."""
    got = []

    async def tb(ctx):
        for case in cases:
            d, m, b, shift, a_in, a_out, final = case
            for sig, v in ((dut.d, d), (dut.m, m), (dut.b, b), (dut.shift, shift),
                           (dut.a_in, a_in), (dut.a_out, a_out), (dut.final, final),
                           (dut.valid, 1)):
                ctx.set(sig, v)
            # Static fields must be held while the row is in flight.
            ctx.set(dut.valid, 1)
            await ctx.tick()
            ctx.set(dut.valid, 0)
            for _ in range(dut.latency - 1):
                await ctx.tick()
            assert ctx.get(dut.o_valid) == 1
            got.append(ctx.get(dut.o_value))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got


@pytest.mark.parametrize("compact", [False, True], ids=["nine-stage", "compact"])
@pytest.mark.parametrize("n,a,k_max", CONFIGS)
def test_requant_matches_golden(n, a, k_max, compact):
    seed = n * 1000 + a * 10 + k_max
    w = arith.widths(n, a, k_max)
    dut = Requant(abits=a, d_bits=w.d_bits, v_bits=w.v_bits, round_bits=w.round_bits,
                  compact=compact)
    assert dut.latency == (7 if compact else 9)
    cases = _cases(n, a, k_max, seed)
    got = _run_rows(dut, cases)
    for case, g in zip(cases, got):
        want = _golden(n, a, case)
        assert g == want, f"seed {seed}: case {case}: hw {g} != golden {want}"


def _clamp_edges(a):
    """Rows whose rounded value y lands on each side of the clamp's bounds (hi - 1, hi,
    hi + 1 and lo - 1, lo, lo + 1), each reached from V = y 2^S + delta with delta at the
    rounding's edges (exactly half-way, which rounds up, and one below it), so that every
    compare of the saturation is tested at its boundary."""
    def deltas(s):      # half-way (rounds up), one below it, the top of the interval
        return (0,) if s == 0 else (-(1 << (s - 1)), -(1 << (s - 1)) - 1, (1 << (s - 1)) - 1)

    out = []
    for a_out in range(1, a + 1):               # hidden layers: lo = 0, hi = 2^a_out - 1
        for shift in (0, 1, 2, 5):
            s = shift + a - a_out
            hi = (1 << a_out) - 1
            for y in (hi - 1, hi, hi + 1, -1, 0, 1):
                for dl in deltas(s):
                    out.append((0, 0, y * (1 << s) + dl, shift, a, a_out, False))
    for s in (0, 1, 2, 3):                       # logits: lo = -2^31, hi = 2^31 - 1
        for sign in (1, -1):
            # V = d m + b with d m = sign 2^(31 + S) (d = -sign 2^(16+S), m = -2^15).
            for y_off in (-1, 0, 1):
                for dl in deltas(s):
                    b = y_off * (1 << s) + dl
                    out.append((-sign * (1 << (16 + s)), -(1 << 15), b, s, a, a, True))
    return out


@pytest.mark.parametrize("compact", [False, True], ids=["nine-stage", "compact"])
def test_requant_clamp_edges(compact):
    """The saturation's compares exactly at their bounds, both layer kinds, every a_out."""
    n, a, k_max = 8, 8, 64
    w = arith.widths(n, a, k_max)
    cases = _clamp_edges(a)
    assert all(abs(d) < (1 << (w.d_bits - 1)) for d, *_ in cases)
    dut = Requant(abits=a, d_bits=w.d_bits, v_bits=w.v_bits, round_bits=w.round_bits,
                  compact=compact)
    got = _run_rows(dut, cases)
    want = [_golden(n, a, c) for c in cases]
    # The cases do reach both bounds and both sides of them.
    assert {-(1 << 31), (1 << 31) - 1, 0, 255}.issubset(set(want))
    for case, g, wv in zip(cases, got, want):
        assert g == wv, f"case {case}: hw {g} != golden {wv}"


@pytest.mark.parametrize("compact", [False, True], ids=["nine-stage", "compact"])
@pytest.mark.parametrize("n,a,k_max", [(8, 8, 64), (4, 3, 13)])
def test_requant_back_to_back_every_shift(n, a, k_max, compact):
    """Rows one per cycle (the pipeline full), at every shift 0..63, every input precision
    and both layer kinds; operands of every magnitude (random values shifted right by a
    random amount), against golden."""
    w = arith.widths(n, a, k_max)
    rng = np.random.default_rng(7000 + n * 100 + a * 10 + k_max)
    dmax = (1 << (w.d_bits - 1)) - 1
    groups = []
    for shift in range(64):
        for a_in in range(1, a + 1):
            for final in (False, True):
                rows = [(int(rng.integers(-dmax, dmax + 1)) >> int(rng.integers(0, w.d_bits)),
                         int(rng.integers(-(1 << 15), 1 << 15)) >> int(rng.integers(0, 16)),
                         int(rng.integers(-(1 << 31), 1 << 31)) >> int(rng.integers(0, 32)))
                        for _ in range(6)]
                groups.append((shift, a_in, int(rng.integers(1, a + 1)), final, rows))
    dut = Requant(abits=a, d_bits=w.d_bits, v_bits=w.v_bits, round_bits=w.round_bits,
                  compact=compact)
    got = []

    async def tb(ctx):
        for shift, a_in, a_out, final, rows in groups:
            for sig, v in ((dut.shift, shift), (dut.a_in, a_in), (dut.a_out, a_out),
                           (dut.final, final), (dut.valid, 0)):
                ctx.set(sig, v)
            for _ in range(2):          # the per-layer constants settle (two registers)
                await ctx.tick()
            outs = []
            for i, (d, mm, b) in enumerate(rows + [(0, 0, 0)] * dut.latency):
                for sig, v in ((dut.d, d), (dut.m, mm), (dut.b, b),
                               (dut.valid, int(i < len(rows)))):
                    ctx.set(sig, v)
                await ctx.tick()
                if ctx.get(dut.o_valid):
                    outs.append(ctx.get(dut.o_value))
            got.append(outs)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    for (shift, a_in, a_out, final, rows), outs in zip(groups, got):
        d, mm, b = (np.array(col) for col in zip(*rows))
        if final:
            want = arith.requant_final(d, mm, b, shift, a_in=a_in, amax=a)
        else:
            want = arith.requant(d, mm, b, shift, a_in=a_in, a_out=a_out, amax=a)
        assert outs == [int(v) for v in want], (shift, a_in, a_out, final, rows)
