"""ActWriter (hw/actbuf.py) in the Amaranth simulator.

Vectors of activations arrive one per ``valid`` cycle with random gaps; every C of them
must be written as one buffer word (lane c at bits ``[c*A, (c+1)*A)``), ``flush`` writes a
final partial word with zeros in the unused lanes (padding columns must contribute
nothing to the MAC array) and nothing when the vector filled whole words, ``sum`` and
``count`` follow what was written, and ``start`` restarts address, lane and sum, also in
the middle of a vector.
"""

import random

import pytest

from anyprec.golden import arith
from anyprec.hw.actbuf import ActWriter

from hwsim import simulate

CASES = [  # cols C, abits A, max vector length
    (4, 8, 16),
    (5, 3, 13),
    (1, 4, 5),
    (3, 16, 10),
    (8, 1, 20),
]


def _pack(xs, a):
    return sum(int(v) << (i * a) for i, v in enumerate(xs))


def _expected_writes(x, cols, a):
    return [(j, _pack(x[j * cols:(j + 1) * cols], a)) for j in range(-(-len(x) // cols))]


async def _feed(ctx, dut, a, groups, gaps, observe):
    """Feed ``groups`` of activations (``gaps[i]`` idle cycles before group i), then one
    idle cycle and a ``flush``; ``observe`` is called in every cycle to record writes."""
    for g, gap in zip(groups, gaps):
        for _ in range(gap):
            ctx.set(dut.valid, 0)
            observe()
            await ctx.tick()
        ctx.set(dut.valid, 1)
        ctx.set(dut.n, len(g))
        ctx.set(dut.values, _pack(g, a))
        observe()
        await ctx.tick()
    ctx.set(dut.valid, 0)
    ctx.set(dut.n, 1)
    observe()
    await ctx.tick()
    ctx.set(dut.flush, 1)
    observe()
    await ctx.tick()
    ctx.set(dut.flush, 0)
    observe()


@pytest.mark.parametrize("cols,a,kmax", CASES)
def test_act_writer(cols, a, kmax):
    seed = 7000 + cols * 100 + a
    rng = random.Random(seed)
    depth = -(-kmax // cols)
    sum_bits = arith.widths(1, a, kmax).sx_bits
    dut = ActWriter(cols=cols, abits=a, depth=depth, sum_bits=sum_bits)
    amax = (1 << a) - 1
    vectors = []
    for n in sorted({1, cols, cols + 1, kmax, rng.randint(1, kmax), max(1, kmax - 1)}):
        vectors.append([rng.randint(0, amax) for _ in range(n)])
    vectors.append([amax] * kmax)                     # sum at its maximum
    vectors.append([0] * (cols + 1))
    rng.shuffle(vectors)
    results = []      # per vector: (writes, sum, count)

    async def tb(ctx):
        for x in vectors:
            writes = []

            def observe():
                if ctx.get(dut.wr_en):
                    writes.append((ctx.get(dut.wr_addr), ctx.get(dut.wr_data)))

            # An aborted vector first: some values, then `start` in the middle of it.
            for v in [rng.randint(0, amax) for _ in range(rng.randint(0, cols + 2))]:
                ctx.set(dut.valid, 1)
                ctx.set(dut.values, v)
                await ctx.tick()
            ctx.set(dut.valid, 0)
            ctx.set(dut.start, 1)
            # `start` wins over a simultaneous `valid`.
            ctx.set(dut.valid, 1)
            ctx.set(dut.values, amax)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.valid, 0)
            assert ctx.get(dut.sum) == 0 and ctx.get(dut.count) == 0, \
                f"seed {seed}: start did not clear sum/count"
            await _feed(ctx, dut, a, [[v] for v in x],
                        [rng.choice([0, 0, 0, 1, 3]) for _ in x], observe)
            # A second flush must write nothing.
            ctx.set(dut.flush, 1)
            observe()
            await ctx.tick()
            ctx.set(dut.flush, 0)
            observe()
            results.append((writes, ctx.get(dut.sum), ctx.get(dut.count)))

    simulate(dut, [tb], timeout_cycles=200 * len(vectors) * kmax, what="ActWriter")
    for x, (writes, total, count) in zip(vectors, results):
        want = _expected_writes(x, cols, a)
        assert writes == want, (f"seed {seed}: vector {x}: writes "
                                f"{[(i, hex(d)) for i, d in writes]} != "
                                f"{[(i, hex(d)) for i, d in want]}")
        assert total == sum(x), f"seed {seed}: sum {total} != {sum(x)}"
        assert count == len(x), f"seed {seed}: count {count} != {len(x)}"


def test_act_writer_partial_word_lanes_are_zero():
    """A partial word after a full word of all-ones: unused lanes must be 0, not stale."""
    cols, a = 4, 8
    dut = ActWriter(cols=cols, abits=a, depth=4, sum_bits=16)
    x = [255] * cols + [1, 2]
    writes = []

    async def tb(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for v in x:
            ctx.set(dut.valid, 1)
            ctx.set(dut.values, v)
            if ctx.get(dut.wr_en):
                writes.append((ctx.get(dut.wr_addr), ctx.get(dut.wr_data)))
            await ctx.tick()
        ctx.set(dut.valid, 0)
        ctx.set(dut.flush, 1)
        writes.append((ctx.get(dut.wr_en), ctx.get(dut.wr_addr), ctx.get(dut.wr_data)))
        await ctx.tick()

    simulate(dut, [tb], timeout_cycles=100, what="ActWriter padding")
    assert writes == [(0, 0xFFFFFFFF), (1, 1, 0x0201)], writes


@pytest.mark.parametrize("cols,a,lanes", [(4, 8, 2), (8, 3, 4), (6, 5, 2), (4, 4, 4)])
def test_act_writer_lanes(cols, a, lanes):
    """Several activations per cycle (the requantisers' drain lanes): groups of ``lanes``
    from index 0, the last group partial, with gaps; and one per cycle (the host path) on
    the same multi-lane writer. Same words, sum and count as one at a time."""
    seed = 7500 + cols * 100 + a * 10 + lanes
    rng = random.Random(seed)
    kmax = 4 * cols + 3
    depth = -(-kmax // cols)
    dut = ActWriter(cols=cols, abits=a, depth=depth, sum_bits=arith.widths(1, a, kmax).sx_bits,
                    lanes=lanes)
    amax = (1 << a) - 1
    vectors = [[rng.randint(0, amax) for _ in range(n)]
               for n in (1, lanes, lanes + 1, cols, cols + 1, kmax, kmax - 1)]
    vectors.append([amax] * kmax)
    cases = [(x, grouped) for x in vectors for grouped in (True, False)]
    results = []

    async def tb(ctx):
        for x, grouped in cases:
            writes = []

            def observe():
                if ctx.get(dut.wr_en):
                    writes.append((ctx.get(dut.wr_addr), ctx.get(dut.wr_data)))

            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            step = lanes if grouped else 1
            groups = [x[i:i + step] for i in range(0, len(x), step)]
            await _feed(ctx, dut, a, groups, [rng.choice([0, 0, 1, 2]) for _ in groups],
                        observe)
            results.append((writes, ctx.get(dut.sum), ctx.get(dut.count)))

    simulate(dut, [tb], timeout_cycles=100 * len(cases) * kmax, what="ActWriter lanes")
    for (x, grouped), (writes, total, count) in zip(cases, results):
        want = _expected_writes(x, cols, a)
        where = f"seed {seed}: {'grouped' if grouped else 'single'} vector {x}"
        assert writes == want, f"{where}: writes {writes} != {want}"
        assert total == sum(x) and count == len(x), f"{where}: sum/count {total}/{count}"
