"""LayerEngine (hw/engine.py) against the golden arithmetic, and its schedule.

The engine runs on real memories (weight planes in the plane-major layout of the core,
activation words of C lanes, requantisation table rows), initialised from a random layer.
Every run is compared with ``golden.arith``: raw D (MODE_RAW), requantised activations
(MODE_HIDDEN) and logits (MODE_FINAL), at every k, several a, full and slimmed sizes.

The schedule is checked too (engine docstring): one weight word per cycle with no
bubbles between chunks, planes or row tiles, except that tiles start at least R cycles
apart, R/DL with DL drain lanes. So ``cycles(start -> done) = (T-1)*max(kJ, R/DL) + kJ +
ceil(rows of the last tile / DL) + latency``, with one constant latency per mode, whatever
k, J and T.
"""

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal, signed
from amaranth.lib.memory import Memory

from anyprec.golden import arith
from anyprec.hw.config import AnyprecConfig
from anyprec.hw.engine import LayerEngine, MODE_RAW, MODE_HIDDEN, MODE_FINAL

from hwsim import simulate

CONFIGS = [
    AnyprecConfig(rows=3, cols=5, max_wbits=4, max_abits=3, max_m=11, max_k=13, layers=1),
    AnyprecConfig(rows=4, cols=3, max_wbits=8, max_abits=8, max_m=16, max_k=14, layers=1),
    AnyprecConfig(rows=2, cols=2, max_wbits=3, max_abits=10, max_m=7, max_k=9, layers=1),
    AnyprecConfig(rows=3, cols=4, max_wbits=5, max_abits=4, max_m=10, max_k=11, layers=1,
                  design="parallel"),
    # Drain lanes: two and four rows per cycle, max_m not a multiple of them.
    AnyprecConfig(rows=4, cols=6, max_wbits=4, max_abits=5, max_m=15, max_k=19, layers=1,
                  drain=2),
    AnyprecConfig(rows=8, cols=4, max_wbits=3, max_abits=4, max_m=21, max_k=9, layers=1,
                  drain=4),
    AnyprecConfig(rows=4, cols=2, max_wbits=3, max_abits=3, max_m=9, max_k=7, layers=1,
                  design="parallel", drain=2),
]


def _cdiv(a, b):
    return -(-a // b)


class _EngineBench(Elaboratable):
    """LayerEngine with its weight, activation and table memories (sync read ports).
    The testbench writes each run's activations through ``x_we/x_waddr/x_wdata``."""

    def __init__(self, cfg, codes, tab_m, tab_b):
        self.cfg = cfg
        self.eng = LayerEngine(cfg)
        R, C, N, A = cfg.rows, cfg.cols, cfg.max_wbits, cfg.max_abits
        M, K = codes.shape
        T, J = _cdiv(M, R), _cdiv(K, C)
        grid = np.zeros((T * R, J * C), dtype=np.int64)
        grid[:M, :K] = codes
        words = []
        if cfg.design == "serial":
            planes = arith.to_planes(grid, N)          # plane-major: p, t, j
            for p in range(N):
                for t in range(T):
                    for j in range(J):
                        blk = planes[p][t * R:(t + 1) * R, j * C:(j + 1) * C].reshape(-1)
                        words.append(sum(int(b) << i for i, b in enumerate(blk)))
        else:
            for t in range(T):                          # cell (r, c): N-bit code
                for j in range(J):
                    blk = grid[t * R:(t + 1) * R, j * C:(j + 1) * C].reshape(-1)
                    words.append(sum(int(v) << (i * N) for i, v in enumerate(blk)))
        self.wmem = Memory(shape=cfg.word_bits, depth=len(words), init=words)
        self.xmem = Memory(shape=C * A, depth=max(J, 2), init=[])
        self.x_we = Signal()
        self.x_waddr = Signal(range(max(J, 2)))
        self.x_wdata = Signal(C * A)
        # Table words hold DL consecutive rows (lane i at bits [16i, 16i+16) and [32i, ...)).
        DL = cfg.drain_lanes
        G = _cdiv(M, DL)
        pm = np.zeros(G * DL, dtype=np.int64)
        pb = np.zeros(G * DL, dtype=np.int64)
        pm[:M], pb[:M] = tab_m, tab_b
        self.mmem = Memory(shape=16 * DL, depth=max(G, 2), init=[
            sum((int(pm[g * DL + i]) & 0xFFFF) << (16 * i) for i in range(DL)) for g in range(G)])
        self.bmem = Memory(shape=32 * DL, depth=max(G, 2), init=[
            sum((int(pb[g * DL + i]) & 0xFFFFFFFF) << (32 * i) for i in range(DL))
            for g in range(G)])
        self.T, self.J = T, J

    def elaborate(self, platform):
        m = Module()
        m.submodules.eng = eng = self.eng
        for name in ("wmem", "xmem", "mmem", "bmem"):
            m.submodules[name] = getattr(self, name)
        wr = self.wmem.read_port()
        xr = self.xmem.read_port()
        xw = self.xmem.write_port()
        m.d.comb += [xw.en.eq(self.x_we), xw.addr.eq(self.x_waddr), xw.data.eq(self.x_wdata)]
        mr = self.mmem.read_port()
        br = self.bmem.read_port()
        # The core's weight memory and requantisation table answer W_LATENCY = 2 cycles
        # after the address (banked, registered), the activation buffer after one.
        w_reg, m_reg, b_reg = (Signal.like(p.data) for p in (wr, mr, br))
        m.d.sync += [w_reg.eq(wr.data), m_reg.eq(mr.data), b_reg.eq(br.data)]
        m.d.comb += [wr.addr.eq(eng.w_addr), eng.w_data.eq(w_reg),
                     xr.addr.eq(eng.x_addr), eng.x_data.eq(xr.data),
                     mr.addr.eq(eng.t_addr), eng.t_m.eq(m_reg),
                     br.addr.eq(eng.t_addr), eng.t_b.eq(b_reg)]
        return m


def _runs(cfg, rng, M, K):
    """(k, a_in, a_out, mode, run M, run K) cases: every k, each mode, full and slim."""
    ks = range(1, cfg.max_wbits + 1) if cfg.design == "serial" else [cfg.max_wbits]
    A = cfg.max_abits
    out = []
    for k in ks:
        out.append((k, A, A, MODE_RAW, M, K))
        out.append((k, int(rng.integers(1, A + 1)), int(rng.integers(1, A + 1)),
                    MODE_HIDDEN, int(rng.integers(1, M + 1)), int(rng.integers(1, K + 1))))
        out.append((k, int(rng.integers(1, A + 1)), A, MODE_FINAL, M,
                    int(rng.integers(1, K + 1))))
    out.append((ks[-1], 1, 1, MODE_RAW, 1, 1))
    out.append((ks[0], A, 1, MODE_HIDDEN, M, 1))
    return out


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.design}-r{c.rows}c{c.cols}"
                                                        f"n{c.max_wbits}a{c.max_abits}")
def test_engine(cfg):
    seed = 900 + cfg.rows * 100 + cfg.cols * 10 + cfg.max_wbits
    rng = np.random.default_rng(seed)
    N, A, R = cfg.max_wbits, cfg.max_abits, cfg.rows
    M, K = cfg.max_m, cfg.max_k
    codes = rng.integers(0, 1 << N, size=(M, K))
    runs = _runs(cfg, rng, M, K)
    tab_m = rng.integers(-(1 << 15), 1 << 15, size=M)
    tab_b = rng.integers(-(1 << 31), 1 << 31, size=M)
    shift = int(rng.integers(0, 20))
    # Each run its own input at its a_in (all at the top value in the first run).
    xs = [np.full(K, (1 << a) - 1) if i == 0 else rng.integers(0, 1 << a, size=K)
          for i, (_, a, *_) in enumerate(runs)]
    bench = _EngineBench(cfg, codes, tab_m, tab_b)
    eng = bench.eng
    C = cfg.cols
    results = []

    async def tb(ctx):
        for (k, a_in, a_out, mode, m_run, k_run), x in zip(runs, xs):
            # Lanes of the last chunk past run K are zero (the ActWriter pads them, and
            # the weights there are real); whole chunks past it must never be read.
            xp = np.full(bench.J * C, (1 << A) - 1, dtype=np.int64)
            xp[:_cdiv(k_run, C) * C] = 0
            xp[:k_run] = x[:k_run]
            for j in range(bench.J):
                ctx.set(bench.x_we, 1)
                ctx.set(bench.x_waddr, j)
                ctx.set(bench.x_wdata, sum(int(v) << (c * A)
                                           for c, v in enumerate(xp[j * C:(j + 1) * C])))
                await ctx.tick()
            ctx.set(bench.x_we, 0)
            q = ((1 << k) - 1) * int(x[:k_run].sum())
            for sig, v in ((eng.base, 0), (eng.tj, bench.T * bench.J), (eng.j_s, bench.J),
                           (eng.t_run, _cdiv(m_run, R)), (eng.j_run, _cdiv(k_run, cfg.cols)),
                           (eng.m_run, m_run), (eng.k, k), (eng.mode, mode), (eng.q, q),
                           (eng.shift, shift), (eng.a_in, a_in), (eng.a_out, a_out),
                           (eng.tab_base, 0), (eng.start, 1)):
                ctx.set(sig, v)
            await ctx.tick()
            ctx.set(eng.start, 0)
            # Scramble the inputs: everything must have been latched at start.
            for sig in (eng.k, eng.m_run, eng.t_run, eng.j_run, eng.q, eng.mode):
                ctx.set(sig, 0)
            outs, cycles = [], 1
            async for _, _, valid, n, values, done in ctx.tick().sample(
                    eng.o_valid, eng.o_n, eng.o_values, eng.done):
                cycles += 1
                if valid:
                    DL = cfg.drain_lanes
                    # A group of n rows starting at a multiple of DL, zeros above n.
                    assert 1 <= n <= DL and len(outs) % DL == 0, (len(outs), n)
                    assert all(values[i] == 0 for i in range(n, DL)), list(values)
                    outs.extend(int(values[i]) for i in range(n))
                if done:
                    break
                assert cycles < 10000
            results.append((outs, cycles))
            for _ in range(3):
                await ctx.tick()

    simulate(bench, [tb], timeout_cycles=20000 * len(runs), what=f"engine seed {seed}")
    latency = {}
    for (k, a_in, a_out, mode, m_run, k_run), x, (outs, cycles) in zip(runs, xs, results):
        where = f"seed {seed}: k={k} a_in={a_in} a_out={a_out} mode={mode} {m_run}x{k_run}"
        d = arith.dot(codes[:m_run, :k_run], x[:k_run], N, k)
        if mode == MODE_RAW:
            want = d
        elif mode == MODE_HIDDEN:
            want = arith.requant(d, tab_m[:m_run], tab_b[:m_run], shift, a_in, a_out, A)
        else:
            want = arith.requant_final(d, tab_m[:m_run], tab_b[:m_run], shift, a_in, A)
        assert outs == [int(v) for v in want], f"{where}: hw {outs} != {want.tolist()}"
        T, J = _cdiv(m_run, R), _cdiv(k_run, cfg.cols)
        kj = (k if cfg.design == "serial" else 1) * J
        DL = cfg.drain_lanes
        schedule = (T - 1) * max(kj, R // DL) + kj + _cdiv(m_run - (T - 1) * R, DL)
        latency.setdefault(mode == MODE_RAW, set()).add(cycles - schedule)
    for raw, lat in latency.items():
        assert len(lat) == 1, (f"seed {seed}: {'raw' if raw else 'requant'} runs take "
                               f"cycles beyond the schedule that vary: {sorted(lat)} "
                               "(bubbles in the issue loop?)")
