"""WidthUp / WidthDown (hw/stream.py) in the Amaranth simulator.

The reference for beat/word conversion is the host's :class:`WordAssembler` and
:func:`to_beats` (docs/protocol.md section 1: words least significant byte first, a
``tlast`` in the middle of a word ends the frame and the word is completed with zero
bytes). Every case runs with random ``valid`` gaps and ``ready`` stalls, and an AXI
monitor checks at every clock edge that a stalled output holds ``valid``, data and last.
"""

import gc
import random
import warnings

import pytest
from amaranth import Module
from amaranth.hdl import UnusedElaboratable
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from anyprec.host import protocol as P
from anyprec.hw.stream import WidthUp, WidthDown, Skid, WORD_STREAM, stream_put, stream_get

from hwsim import simulate, send, receive_one, axi_monitor

WIDTHS = [8, 16, 32]
RATES = [(0.0, 0.0), (0.4, 0.5)]   # (valid gap, ready stall) probabilities


def _random_beats(rng, width, n_frames):
    """Beats (data, last) of frames of random length; tlast often mid-word."""
    per = 32 // width
    beats = []
    for _ in range(n_frames):
        n = rng.choice([1, 2, per - 1 or 1, per, per + 1, 3 * per, 3 * per + 2, 9])
        for i in range(n):
            data = rng.choice([rng.getrandbits(width), (1 << width) - 1])
            beats.append((data, i == n - 1))
    return beats


def _words_of(beats, width):
    asm = P.WordAssembler(width)
    out = []
    for data, last in beats:
        done = asm.push(data, last)
        if done is not None:
            out.append(done)
    assert not asm.partial
    return out


def _beats_of(words, width):
    """Beats of words with their own last flags (last on the final beat of a last word)."""
    out = []
    for word, last in words:
        bs = P.to_beats([word], width)
        out += [(d, last and i == len(bs) - 1) for i, (d, _) in enumerate(bs)]
    return out


@pytest.mark.parametrize("registered_ready", [False, True], ids=["comb-ready", "registered-ready"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("gap,stall", RATES)
def test_width_up(width, gap, stall, registered_ready):
    seed = 100 + width + int(gap * 10)
    rng = random.Random(seed)
    beats = _random_beats(rng, width, 25)
    want = _words_of(beats, width)
    dut = WidthUp(width=width, registered_ready=registered_ready)
    got, stats = [], {}

    async def source(ctx):
        await send(ctx, dut.i, [{"data": d, "last": int(l)} for d, l in beats],
                   random.Random(seed + 1), gap)

    async def sink(ctx):
        r = random.Random(seed + 2)
        while len(got) < len(want):
            p = await receive_one(ctx, dut.o, r, stall)
            got.append((p.data, bool(p.last)))

    simulate(dut, [sink], [source, axi_monitor(dut.o, stats, "WidthUp.o")],
             timeout_cycles=40 * len(beats) + 100, what=f"WidthUp seed {seed}")
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"seed {seed}: word {i}: hw {g[0]:#010x}/{g[1]} != {w[0]:#010x}/{w[1]}"
    if stall and width < 32:
        assert stats["stalled"] > 0, f"seed {seed}: no output stall happened"


@pytest.mark.parametrize("form", [{}, {"registered_ready": True}, {"in_place": True}],
                         ids=["comb-ready", "registered-ready", "in-place"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("gap,stall", RATES)
def test_width_down(width, gap, stall, form):
    seed = 200 + width + int(gap * 10)
    rng = random.Random(seed)
    words = [(rng.choice([rng.getrandbits(32), 0xFFFFFFFF, 0x01020304]), rng.random() < 0.3)
             for _ in range(40)]
    want = _beats_of(words, width)
    dut = WidthDown(width=width, **form)
    got, stats = [], {}

    async def source(ctx):
        await send(ctx, dut.i, [{"data": w, "last": int(l)} for w, l in words],
                   random.Random(seed + 1), gap)

    async def sink(ctx):
        r = random.Random(seed + 2)
        while len(got) < len(want):
            p = await receive_one(ctx, dut.o, r, stall)
            got.append((p.data, bool(p.last)))
        # (in place, the last word is taken the cycle after its last beat: let the
        # source finish)
        await ctx.tick().repeat(2)

    simulate(dut, [sink], [source, axi_monitor(dut.o, stats, "WidthDown.o")],
             timeout_cycles=40 * len(want) + 100, what=f"WidthDown seed {seed}")
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"seed {seed}: beat {i}: hw {g} != {w}"
    assert len(got) == len(want)
    if stall:
        assert stats["stalled"] > 0, f"seed {seed}: no output stall happened"


@pytest.mark.parametrize("spare", [True, False], ids=["spare", "no-spare"])
@pytest.mark.parametrize("gap,stall", RATES + [(0.0, 0.7), (0.7, 0.0)])
def test_skid_passes_every_word_in_order(gap, stall, spare):
    """The register slice (with or without its spare, the iCE40 form) loses, duplicates
    and reorders nothing, under any gap/stall mix, and its output obeys the AXI4-Stream
    rules."""
    seed = 300 + int(gap * 10) + int(stall * 100)
    rng = random.Random(seed)
    words = [{"data": rng.getrandbits(32), "last": int(rng.random() < 0.3)} for _ in range(80)]
    dut = Skid(spare=spare)
    got, stats = [], {}

    async def source(ctx):
        await send(ctx, dut.i, words, random.Random(seed + 1), gap)

    async def sink(ctx):
        r = random.Random(seed + 2)
        while len(got) < len(words):
            p = await receive_one(ctx, dut.o, r, stall)
            got.append({"data": p.data, "last": p.last})

    simulate(dut, [sink], [source, axi_monitor(dut.o, stats, "Skid.o")],
             timeout_cycles=20 * len(words) + 100, what=f"Skid seed {seed}")
    assert got == words, f"seed {seed}: words differ"
    if stall:
        assert stats["stalled"] > 0, f"seed {seed}: no output stall happened"


async def _ten_words_at_full_rate(ctx, dut, seen):
    """Offer words 0..9 one per cycle with the output ready; ``seen`` gets the output."""
    ctx.set(dut.o.ready, 1)
    ctx.set(dut.i.valid, 1)
    for n in range(10):
        ctx.set(dut.i.payload, {"data": n, "last": 0})
        await ctx.tick()
        seen.append(ctx.get(dut.o.payload.data) if ctx.get(dut.o.valid) else None)


def test_skid_full_throughput_and_registered_ready():
    """One word per cycle with no stalls, and ``i.ready`` does not follow ``o.ready``
    combinationally (it is a flip-flop: the point of the slice)."""
    dut = Skid()
    seen = []

    async def tb(ctx):
        await _ten_words_at_full_rate(ctx, dut, seen)
        # Stall the output: the word offered in that cycle goes to the spare, and only
        # then does ready fall.
        ctx.set(dut.o.ready, 0)
        r0 = ctx.get(dut.i.ready)
        await ctx.tick()
        r1 = ctx.get(dut.i.ready)
        await ctx.tick()
        assert (r0, r1, ctx.get(dut.i.ready)) == (1, 0, 0)

    simulate(dut, [tb], timeout_cycles=100, what="Skid throughput")
    assert seen == list(range(10)), seen


def test_skid_without_spare_full_throughput():
    """The iCE40 form: one word per cycle too, and a stalled output stops the input in the
    same cycle (``i.ready`` is ``~o.valid | o.ready``) and holds its word."""
    dut = Skid(spare=False)
    seen = []

    async def tb(ctx):
        await _ten_words_at_full_rate(ctx, dut, seen)
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.payload, {"data": 99, "last": 0})
        assert ctx.get(dut.i.ready) == 0
        await ctx.tick()
        assert (ctx.get(dut.o.valid), ctx.get(dut.o.payload.data)) == (1, 9)
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.i.ready) == 1
        await ctx.tick()
        assert ctx.get(dut.o.payload.data) == 99

    simulate(dut, [tb], timeout_cycles=100, what="Skid without spare")
    assert seen == list(range(10)), seen


def test_width_down_valid_does_not_wait_for_ready():
    """With ``ready`` held low, ``valid`` still rises and the first beat is held."""
    dut = WidthDown(width=8)
    seen = []

    async def tb(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.payload, {"data": 0xA1B2C3D4, "last": 1})
        ctx.set(dut.i.valid, 1)
        await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        for _ in range(5):
            await ctx.tick()
            seen.append((ctx.get(dut.o.valid), ctx.get(dut.o.payload.data),
                         ctx.get(dut.o.payload.last)))
        beats = []
        for _ in range(4):
            p = await stream_get(ctx, dut.o)
            beats.append((p.data, p.last))
        assert beats == [(0xD4, 0), (0xC3, 0), (0xB2, 0), (0xA1, 1)], beats

    simulate(dut, [tb], timeout_cycles=100, what="WidthDown valid")
    assert seen == [(1, 0xD4, 0)] * 5, seen


@pytest.mark.parametrize("width", [8, 16])
def test_width_up_pads_partial_word_with_zeros(width):
    """A tlast after one beat completes the word with zero bytes, and the bytes of the
    previous, longer word do not leak into it."""
    dut = WidthUp(width=width)
    ones = (1 << width) - 1
    per = 32 // width
    beats = [(ones, False)] * (per - 1) + [(ones, True)]      # a full word of ones
    beats += [(0x5A & ones, True)]                              # then a 1-beat frame
    beats += [(ones, False), (0x11 & ones, True)]               # then a 2-beat frame
    want = _words_of(beats, width)
    assert want[1] == (0x5A & ones, True)
    got = []

    async def tb(ctx):
        for d, l in beats:
            await stream_put(ctx, dut.i, {"data": d, "last": int(l)})
            if l:
                p = await stream_get(ctx, dut.o)
                got.append((p.data, bool(p.last)))

    simulate(dut, [tb], timeout_cycles=200, what="WidthUp padding")
    assert got == want, [(hex(a), b) for a, b in got]


class _RoundTrip(wiring.Component):
    """WidthDown then WidthUp: 32-bit words in, the same words out."""
    i: In(WORD_STREAM)
    o: Out(WORD_STREAM)

    def __init__(self, width):
        self._width = width
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.down = down = WidthDown(width=self._width)
        m.submodules.up = up = WidthUp(width=self._width)
        wiring.connect(m, wiring.flipped(self.i), down.i)
        wiring.connect(m, down.o, up.i)
        wiring.connect(m, up.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("width", WIDTHS)
def test_round_trip(width):
    seed = 300 + width
    rng = random.Random(seed)
    words = [(rng.getrandbits(32), rng.random() < 0.25) for _ in range(40)]
    dut = _RoundTrip(width)
    got, stats = [], {}

    async def source(ctx):
        await send(ctx, dut.i, [{"data": w, "last": int(l)} for w, l in words],
                   random.Random(seed + 1), 0.3)

    async def sink(ctx):
        r = random.Random(seed + 2)
        while len(got) < len(words):
            p = await receive_one(ctx, dut.o, r, 0.3)
            got.append((p.data, bool(p.last)))

    simulate(dut, [sink], [source, axi_monitor(dut.o, stats, "roundtrip.o")],
             timeout_cycles=60 * len(words) + 100, what=f"round trip seed {seed}")
    assert got == words, f"seed {seed}: round trip changed the words"


@pytest.mark.parametrize("cls", [WidthUp, WidthDown])
def test_width_rejected(cls):
    # The half-built component warns "created but never used" when it is collected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=r"width must be 8, 16 or 32, not 24"):
            cls(width=24)
        gc.collect()


def test_width_down_registered_ready_ignores_output_ready():
    """``registered_ready``: ``i.ready`` is low while a word is being split, whatever
    ``o.ready`` does (no combinational path), and high again the cycle after the last
    beat; without it, ``i.ready`` rises with ``o.ready`` on the last beat."""
    for registered in (True, False):
        dut = WidthDown(width=8, registered_ready=registered)
        seen = {}

        async def tb(ctx, dut=dut, seen=seen):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, {"data": 0x44332211, "last": 1})
            ctx.set(dut.o.ready, 0)
            await ctx.tick()                 # word taken, beat 0 offered
            ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, 1)
            for _ in range(3):
                await ctx.tick()             # beats 0..2 out, beat 3 offered
            seen["last_beat"] = (ctx.get(dut.o.payload.data), ctx.get(dut.o.payload.last))
            seen["ready_on_last"] = ctx.get(dut.i.ready)
            await ctx.tick()
            seen["ready_after"] = ctx.get(dut.i.ready)

        simulate(dut, [tb], timeout_cycles=50, what="WidthDown registered ready")
        assert seen["last_beat"] == (0x44, 1)
        assert seen["ready_on_last"] == (0 if registered else 1), registered
        assert seen["ready_after"] == 1


def test_width_down_in_place_takes_the_word_after_its_last_beat():
    """``in_place``: the beats come from the input word as its source holds it (no copy),
    ``i.ready`` stays low while the word is split, whatever ``o.ready`` does, and is high
    for one cycle after the last beat, when the word is taken; then the next word's first
    beat follows."""
    dut = WidthDown(width=8, in_place=True)
    seen = {"beats": [], "ready": []}

    async def tb(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"data": 0x44332211, "last": 1})
        ctx.set(dut.o.ready, 0)
        await ctx.tick()
        seen["stalled"] = (ctx.get(dut.o.valid), ctx.get(dut.o.payload.data),
                           ctx.get(dut.i.ready))
        ctx.set(dut.o.ready, 1)
        for _ in range(6):
            seen["ready"].append(ctx.get(dut.i.ready))
            if ctx.get(dut.o.valid):
                seen["beats"].append((ctx.get(dut.o.payload.data), ctx.get(dut.o.payload.last)))
            taken = ctx.get(dut.i.ready)
            await ctx.tick()
            if taken:
                ctx.set(dut.i.payload, {"data": 0x000000AA, "last": 0})

    simulate(dut, [tb], timeout_cycles=50, what="WidthDown in place")
    assert seen["stalled"] == (1, 0x11, 0)
    assert seen["beats"] == [(0x11, 0), (0x22, 0), (0x33, 0), (0x44, 1), (0xAA, 0)]
    assert seen["ready"] == [0, 0, 0, 0, 1, 0]


def test_width_up_registered_ready_ignores_output_ready():
    """``registered_ready``: while a whole word waits, ``i.ready`` stays low even in the
    cycle ``o.ready`` takes it (no combinational path) and rises the cycle after;
    without it, ``i.ready`` rises with ``o.ready``."""
    for registered in (True, False):
        dut = WidthUp(width=8, registered_ready=registered)
        seen = {}

        async def tb(ctx, dut=dut, seen=seen):
            ctx.set(dut.o.ready, 0)
            ctx.set(dut.i.valid, 1)
            for b in (0x11, 0x22, 0x33, 0x44):
                ctx.set(dut.i.payload, {"data": b, "last": 0})
                await ctx.tick()             # beat taken; after the fourth, a word
            ctx.set(dut.i.payload, {"data": 0x55, "last": 0})
            seen["word"] = (ctx.get(dut.o.valid), ctx.get(dut.o.payload.data))
            seen["ready_stalled"] = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1)          # the word leaves this cycle
            seen["ready_on_take"] = ctx.get(dut.i.ready)
            await ctx.tick()
            ctx.set(dut.o.ready, 0)
            seen["ready_after"] = ctx.get(dut.i.ready)

        simulate(dut, [tb], timeout_cycles=50, what="WidthUp registered ready")
        assert seen["word"] == (1, 0x44332211)
        assert seen["ready_stalled"] == 0
        assert seen["ready_on_take"] == (0 if registered else 1), registered
        assert seen["ready_after"] == 1
