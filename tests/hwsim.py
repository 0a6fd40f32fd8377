"""Shared Amaranth-simulator helpers for the hardware unit tests (tests/test_hw_*.py).

Stream drivers with random ``valid`` gaps and ``ready`` stalls, an AXI4-Stream stability
monitor, a watchdog, and :class:`CoreBench`, the differential harness that runs one beat
sequence through :class:`anyprec.hw.core.AnyprecCore` and :class:`ModelDevice` and
compares the responses word for word.

The Python simulator runs a few thousand cycles per second on the core, so the drivers
avoid per-cycle Python work where they can (``tick().until(...)``).
"""

import random

from amaranth import Module, Signal
from amaranth.sim import Simulator

from anyprec.host import protocol as P
from anyprec.host.devmodel import ModelDevice
from anyprec.host.protocol import Opcode, Status

PERIOD = 1e-8


def simulate(dut, testbenches, background=(), *, timeout_cycles, what="simulation"):
    """Run ``testbenches`` (critical) and ``background`` ones on ``dut`` with one clock.

    A watchdog fails the run if the critical testbenches have not finished after
    ``timeout_cycles`` cycles (a hung handshake would otherwise hang pytest).
    """
    # A purely combinational DUT (a 32-bit width adapter) has no clock domain of its own;
    # the toggling register provides one, so testbenches can still count clock edges.
    top = Module()
    top.submodules.dut = dut
    toggle = Signal()
    top.d.sync += toggle.eq(~toggle)
    sim = Simulator(top)
    sim.add_clock(PERIOD)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)

    async def watchdog(ctx):
        await ctx.delay(timeout_cycles * PERIOD)
        raise AssertionError(f"{what}: not finished after {timeout_cycles} cycles")

    sim.add_testbench(watchdog, background=True)
    sim.run()


def _idle_cycles(rng, rate):
    """Geometric number of idle cycles: each cycle idle with probability ``rate``."""
    n = 0
    while rate and rng.random() < rate:
        n += 1
    return n


async def send(ctx, s, payloads, rng=None, gap=0.0):
    """Drive ``payloads`` into stream ``s``; random ``valid`` gaps only between transfers
    (``valid`` never drops while a transfer is pending, as AXI4-Stream requires)."""
    for payload in payloads:
        n = _idle_cycles(rng, gap) if rng is not None else 0
        if n:
            ctx.set(s.valid, 0)
            for _ in range(n):
                await ctx.tick()
        ctx.set(s.payload, payload)
        ctx.set(s.valid, 1)
        await ctx.tick().until(s.ready)
    ctx.set(s.valid, 0)


async def receive_one(ctx, s, rng=None, stall=0.0):
    """Take one transfer from ``s`` after a random ``ready`` stall; return its payload."""
    n = _idle_cycles(rng, stall) if rng is not None else 0
    if n:
        ctx.set(s.ready, 0)
        for _ in range(n):
            await ctx.tick()
    ctx.set(s.ready, 1)
    payload, = await ctx.tick().sample(s.payload).until(s.valid)
    ctx.set(s.ready, 0)
    return payload


def _fmt(payload):
    try:
        return f"data={payload.data:#x} last={payload.last}"
    except AttributeError:
        return f"{payload!r}"


def axi_monitor(s, stats, name="o"):
    """Background testbench: check the AXI4-Stream rule on ``s`` at every clock edge.

    Once ``valid`` is high without ``ready``, the next cycle must still have ``valid`` high
    with the same payload. ``stats`` (a dict) counts ``cycles``, ``stalled`` (valid without
    ready) and ``transfers``, so a test can show that stalls really happened.
    """
    stats.setdefault("cycles", 0)
    stats.setdefault("stalled", 0)
    stats.setdefault("transfers", 0)

    async def monitor(ctx):
        pending = None
        async for _, _, valid, ready, payload in ctx.tick().sample(s.valid, s.ready,
                                                                    s.payload):
            stats["cycles"] += 1
            if pending is not None:
                assert valid, f"{name}.valid dropped while a beat was stalled " \
                              f"(cycle {stats['cycles']})"
                assert payload == pending, \
                    f"{name}.payload changed while stalled: {_fmt(pending)} -> " \
                    f"{_fmt(payload)} " \
                    f"(cycle {stats['cycles']})"
            if valid and not ready:
                stats["stalled"] += 1
                pending = payload
            else:
                pending = None
                if valid:
                    stats["transfers"] += 1
    return monitor


# --------------------------------------------------------------------------------------
# Differential harness: AnyprecCore against ModelDevice
# --------------------------------------------------------------------------------------

def frame_beats(words, *, last_at=None):
    """Beats ``(word, last)`` of a frame; ``tlast`` on word ``last_at`` (default: the last
    word). Words after ``last_at`` are dropped (a truncated frame)."""
    words = list(words)
    if last_at is None:
        last_at = len(words) - 1
    return [(w, i == last_at) for i, w in enumerate(words[:last_at + 1])]


def oversize_beats(words, extra):
    """A frame whose CRC word comes without ``tlast``, then ``extra`` more words (the last
    with ``tlast``): the device must discard them and answer OVERSIZE once."""
    assert extra >= 1
    words = list(words) + [(0x9E3779B9 * (i + 1)) & 0xFFFFFFFF for i in range(extra)]
    return [(w, i == len(words) - 1) for i, w in enumerate(words)]


def _response_key(words):
    """What must match exactly: for OK MATVEC/INFER responses everything except the
    cycle-count word and the CRC (the model reports 0 cycles)."""
    op = words[0] & 0xFF
    ok = len(words) > 2 and words[1] == 0
    if ok and op in (Opcode.MATVEC, Opcode.INFER):
        return tuple(words[:-2])
    return tuple(words)


class CoreBench:
    """Collects labelled requests, then runs them through the core and the model.

    Parameters
    ----------
    cfg : AnyprecConfig
    seed : int
        Seeds the gap/stall pattern; printed in every failure message.
    gap, stall : float
        Probability of an idle input cycle before a beat / an output ``ready`` stall.
    """

    def __init__(self, cfg, seed, *, gap=0.0, stall=0.0):
        self.cfg = cfg
        self.seed = seed
        self.gap = gap
        self.stall = stall
        self.model = ModelDevice(cfg)
        self.items = []        # (label, beats)
        self.expected = []     # (label, response words), in order

    def add(self, label, beats):
        """Queue a request (any beats); the model answers it at once. Returns the model's
        responses to these beats (normally exactly one frame)."""
        resps = self.model.feed(beats)
        self.items.append((label, beats))
        for r in resps:
            self.expected.append((label, r))
        return resps

    def frame(self, label, words):
        """Queue one well-formed frame; return the model's (status, arg, payload)."""
        resps = self.add(label, frame_beats(words))
        assert len(resps) == 1, f"{label}: model gave {len(resps)} responses"
        f = P.decode_frame(resps[0])
        return Status(f.payload[0] & 0xFF), f.payload[0] >> 8, f.payload[1:]

    def model_status(self, i=-1):
        label, words = self.expected[i]
        return Status(words[1] & 0xFF)

    def run(self, *, check_axi=False):
        """Simulate every queued request; compare each response with the model's.

        Returns the list of ``(label, hw response words)``.
        """
        from anyprec.hw.core import AnyprecCore
        dut = AnyprecCore(self.cfg)
        beats = [b for _, bs in self.items for b in bs]
        got = []
        rng_in = random.Random(self.seed)
        rng_out = random.Random(self.seed + 1)
        stats = {}

        async def sender(ctx):
            await send(ctx, dut.i, [{"data": w, "last": int(last)} for w, last in beats],
                       rng_in, self.gap)

        async def receiver(ctx):
            cur = []
            while len(got) < len(self.expected):
                payload = await receive_one(ctx, dut.o, rng_out, self.stall)
                cur.append(payload.data)
                if payload.last:
                    got.append(cur)
                    cur = []
            # Nothing more may come out: every frame has exactly one response.
            ctx.set(dut.o.ready, 1)
            for _ in range(16):
                _, _, valid = await ctx.tick().sample(dut.o.valid)
                assert not valid, f"seed {self.seed}: extra response word after the " \
                                  f"last expected response"

        background = [axi_monitor(dut.o, stats, "core.o")] if check_axi else []
        budget = 4000 + 40 * len(beats) + sum(
            40 * len(w) for _, w in self.expected) + self._compute_budget()
        simulate(dut, [receiver], [sender, *background], timeout_cycles=budget,
                 what=f"core differential test, seed {self.seed}")
        for i, ((label, want), hw) in enumerate(zip(self.expected, got)):
            self._compare(i, label, want, hw)
        self.stats = stats
        return [(label, hw) for (label, _), hw in zip(self.expected, got)]

    def _compute_budget(self):
        # Generous upper bound of compute cycles: every MATVEC/INFER at full size.
        cfg = self.cfg
        full = cfg.max_wbits * cfg.tiles_max * cfg.chunks_max + cfg.rows + 64
        n = sum(1 for _, w in self.expected if (w[0] & 0xFF) in (Opcode.MATVEC,
                                                                 Opcode.INFER))
        return 2 * n * full * cfg.layers

    def _compare(self, i, label, want, hw):
        where = f"seed {self.seed}, response {i} ({label})"
        assert _response_key(hw) == _response_key(want), (
            f"{where}: hw and model differ\n  hw    {[hex(w) for w in hw]}\n"
            f"  model {[hex(w) for w in want]}")
        # The hw frame must be well-formed (CRC included) even where it differs from the
        # model (the cycle count).
        frame = P.decode_frame(hw)
        if frame.opcode in (Opcode.MATVEC, Opcode.INFER) and frame.payload[0] == 0:
            assert len(hw) == len(want), f"{where}: length {len(hw)} != {len(want)}"
            assert frame.payload[-1] > 0, f"{where}: cycle count is 0"
