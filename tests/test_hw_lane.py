"""MacArray (hw/lane.py) against the golden arithmetic, in the Amaranth simulator.

A row tile is fed exactly as the sequencer feeds it: planes outer, chunks inner, MSB plane
first, no bubbles; several tiles back to back. The accumulators must equal
``P = sum_j c_k,j x_j`` (docs/arithmetic.md section 5) at every k.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from anyprec.golden import arith
from anyprec.hw.lane import MacArray

CASES = [  # rows, cols, N, A, K
    (4, 4, 8, 8, 16),
    (3, 5, 4, 3, 13),
    (8, 8, 8, 8, 24),
    (2, 1, 3, 2, 3),
]


def _pack(bits_rc):
    word = 0
    for i, b in enumerate(np.asarray(bits_rc).reshape(-1)):
        word |= int(b) << i
    return word


def _packx(xs, a):
    word = 0
    for i, v in enumerate(xs):
        word |= int(v) << (i * a)
    return word


def _run_tiles(rows, cols, n, a, k_in, tiles, k, seed):
    """Drive `tiles` = list of (codes (R x K), x (K,)) through the array; return accs."""
    acc_bits = arith.widths(n, a, k_in).acc_bits
    dut = MacArray(rows=rows, cols=cols, abits=a, acc_bits=acc_bits)
    chunks = -(-k_in // cols)
    results = []

    async def feeder(ctx):
        for codes, x in tiles:
            planes = arith.to_planes(codes, n)
            xp = np.zeros(chunks * cols, dtype=np.int64)
            xp[:k_in] = x
            for p in range(k):
                for j in range(chunks):
                    wp = np.zeros((rows, cols), dtype=np.int64)
                    sl = planes[p][:, j * cols:(j + 1) * cols]
                    wp[:, :sl.shape[1]] = sl
                    ctx.set(dut.valid, 1)
                    ctx.set(dut.first, p == 0 and j == 0)
                    ctx.set(dut.dbl, p > 0 and j == 0)
                    ctx.set(dut.last, p == k - 1 and j == chunks - 1)
                    ctx.set(dut.w, _pack(wp))
                    ctx.set(dut.x, _packx(xp[j * cols:(j + 1) * cols], a))
                    await ctx.tick()
        ctx.set(dut.valid, 0)

    async def collector(ctx):
        while len(results) < len(tiles):
            await ctx.tick()
            if ctx.get(dut.done):
                results.append([ctx.get(dut.acc[r]) for r in range(rows)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feeder)
    sim.add_testbench(collector, background=True)
    sim.run_until(1e-8 * (len(tiles) * k * chunks + 50))
    return results


@pytest.mark.parametrize("rows,cols,n,a,k_in", CASES)
def test_array_every_precision(rows, cols, n, a, k_in):
    seed = 1000 + rows * 100 + cols
    rng = np.random.default_rng(seed)
    for k in range(1, n + 1):
        tiles = [(rng.integers(0, 1 << n, (rows, k_in)), rng.integers(0, 1 << a, k_in))
                 for _ in range(3)]
        # Extremes: all-max codes and activations, then all-zero codes.
        tiles.append((np.full((rows, k_in), (1 << n) - 1), np.full(k_in, (1 << a) - 1)))
        tiles.append((np.zeros((rows, k_in), dtype=np.int64), np.full(k_in, (1 << a) - 1)))
        got = _run_tiles(rows, cols, n, a, k_in, tiles, k, seed)
        assert len(got) == len(tiles), f"seed {seed} k={k}: {len(got)} tiles done"
        for t, ((codes, x), acc) in enumerate(zip(tiles, got)):
            want = arith.truncate(codes, n, k) @ x
            assert np.array_equal(np.array(acc), want), \
                f"seed {seed} k={k} tile {t}: {acc} != {want.tolist()}"
            # The hardware identity D = 2P - Q is the golden D.
            d = 2 * np.array(acc) - ((1 << k) - 1) * x.sum()
            assert np.array_equal(d, arith.dot(codes, x, n, k))


@pytest.mark.parametrize("rows,cols,n,a,k_in", CASES)
def test_parallel_array_full_codes(rows, cols, n, a, k_in):
    """The bit-parallel baseline's array (wbits = N, registered multipliers): one word
    per chunk holds whole codes; ``done`` comes ``latency - 1`` cycles after ``last``."""
    seed = 2000 + rows * 100 + cols
    rng = np.random.default_rng(seed)
    acc_bits = arith.widths(n, a, k_in).acc_bits
    dut = MacArray(rows=rows, cols=cols, abits=a, acc_bits=acc_bits, wbits=n)
    assert dut.latency == dut.tree_depth + 3
    chunks = -(-k_in // cols)
    tiles = [(rng.integers(0, 1 << n, (rows, k_in)), rng.integers(0, 1 << a, k_in))
             for _ in range(3)]
    tiles.append((np.full((rows, k_in), (1 << n) - 1), np.full(k_in, (1 << a) - 1)))
    results, last_at, done_at = [], [], []

    async def feeder(ctx):
        cyc = 0
        for codes, x in tiles:
            cp = np.zeros((rows, chunks * cols), dtype=np.int64)
            cp[:, :k_in] = codes
            xp = np.zeros(chunks * cols, dtype=np.int64)
            xp[:k_in] = x
            for j in range(chunks):
                word = 0
                for r in range(rows):
                    for c in range(cols):
                        word |= int(cp[r, j * cols + c]) << ((r * cols + c) * n)
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, j == 0)
                ctx.set(dut.dbl, 0)
                ctx.set(dut.last, j == chunks - 1)
                ctx.set(dut.w, word)
                ctx.set(dut.x, _packx(xp[j * cols:(j + 1) * cols], a))
                if j == chunks - 1:
                    last_at.append(cyc)
                await ctx.tick()
                cyc += 1
        ctx.set(dut.valid, 0)

    async def collector(ctx):
        cyc = 0
        while len(results) < len(tiles):
            await ctx.tick()
            cyc += 1
            if ctx.get(dut.done):
                done_at.append(cyc)
                results.append([ctx.get(dut.acc[r]) for r in range(rows)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feeder)
    sim.add_testbench(collector, background=True)
    sim.run_until(1e-8 * (len(tiles) * chunks + 50))
    assert len(results) == len(tiles), f"seed {seed}: {len(results)} tiles done"
    for t, ((codes, x), acc) in enumerate(zip(tiles, results)):
        assert np.array_equal(np.array(acc), codes @ x), f"seed {seed} tile {t}"
    # The collector counts ticks after the tick in which `last` was applied, so `done`
    # seen `latency` ticks later is `latency - 1` cycles after the last input cycle.
    assert [d - l for d, l in zip(done_at, last_at)] == [dut.latency] * len(tiles)
