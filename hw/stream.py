"""Stream plumbing: the 32-bit word stream of the protocol and AXI width adapters.

Inside the core every frame is a stream of 32-bit words with a ``last`` flag
(``WORD_STREAM``). The AXI4-Stream ports may be 8, 16 or 32 bits wide; narrower beats carry
each word least significant byte first (docs/protocol.md section 1).

``stream_put`` / ``stream_get`` are the testbench helpers for these interfaces (in the
style Glasgow keeps next to its gateware); the unit tests reuse them.
"""

from amaranth import Module, Signal, Cat, Const, Mux
from amaranth.lib import wiring, data, stream
from amaranth.lib.wiring import In, Out

__all__ = ["word_layout", "WORD_STREAM", "beat_stream", "WidthUp", "WidthDown", "Skid",
           "stream_put", "stream_get"]


def word_layout(width=32):
    return data.StructLayout({"data": width, "last": 1})


WORD_STREAM = stream.Signature(word_layout(32))


def beat_stream(width):
    """Stream signature of one AXI beat of ``width`` bits with tlast."""
    return stream.Signature(word_layout(width))


class WidthUp(wiring.Component):
    """Pack ``width``-bit beats into 32-bit words (LSB first); tlast ends a word early.

    Parameters
    ----------
    width : 8, 16 or 32
    registered_ready : bool
        ``i.ready`` from a flip-flop only (``~o.valid``): the next beat is taken the cycle
        after the word leaves, not in it (at most one idle cycle per word), so no ready
        chain runs from the word's consumer back into the source. iCE40 builds (hw/top.py).

    Members
    -------
    i : In(beat_stream(width))
    o : Out(WORD_STREAM)
    """

    def __init__(self, *, width, registered_ready=False):
        if width not in (8, 16, 32):
            raise ValueError(f"width must be 8, 16 or 32, not {width!r}")
        self._width = width
        self._registered_ready = bool(registered_ready)
        super().__init__({"i": In(beat_stream(width)), "o": Out(WORD_STREAM)})

    def elaborate(self, platform):
        m = Module()
        w = self._width
        if w == 32:
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
            return m
        n = 32 // w
        buf = Signal(32 - w)
        count = Signal(range(n))
        m.d.comb += self.i.ready.eq(~self.o.valid if self._registered_ready
                                    else ~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            # Lanes above `count` of `buf` are zero, so a short (tlast) word is zero-padded.
            word = Signal(32)
            m.d.comb += word.eq(Cat(buf, Const(0, w)) | (self.i.payload.data << (count * w)))
            with m.If((count == n - 1) | self.i.payload.last):
                m.d.sync += [
                    self.o.payload.data.eq(word),
                    self.o.payload.last.eq(self.i.payload.last),
                    self.o.valid.eq(1),
                    count.eq(0),
                    buf.eq(0),
                ]
            with m.Else():
                m.d.sync += [buf.eq(word[:32 - w]), count.eq(count + 1)]
        return m


class WidthDown(wiring.Component):
    """Split 32-bit words into ``width``-bit beats (LSB first); tlast on the last beat.

    The output is driven from registers only, so it follows the AXI4-Stream rule: once
    ``valid`` rises, ``valid``, ``data`` and ``last`` hold until the beat transfers.

    Parameters
    ----------
    width : 8, 16 or 32
    registered_ready : bool
        ``i.ready`` from a flip-flop only (``~busy``): the next word is taken the cycle
        after the last beat, not in it (one idle cycle per word), so no ready chain runs
        from the output back into the source. iCE40 builds, which have no register
        slices (hw/top.py).
    in_place : bool
        No word register: the beats are selected from the input word itself, which its
        source holds until it is taken, and ``i.ready`` is a flip-flop set by the last
        beat (one idle cycle per word, as with ``registered_ready``). For a source whose
        payload is a register that changes only when taken (the core's transmit framer):
        32 flip-flops fewer, each a logic cell of its own on iCE40 (hw/top.py).

    Members
    -------
    i : In(WORD_STREAM)
    o : Out(beat_stream(width))
    """

    def __init__(self, *, width, registered_ready=False, in_place=False):
        if width not in (8, 16, 32):
            raise ValueError(f"width must be 8, 16 or 32, not {width!r}")
        self._width = width
        self._registered_ready = bool(registered_ready)
        self._in_place = bool(in_place)
        super().__init__({"i": In(WORD_STREAM), "o": Out(beat_stream(width))})

    def elaborate(self, platform):
        m = Module()
        w = self._width
        if w == 32:
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
            return m
        n = 32 // w
        count = Signal(range(n))
        final = count == n - 1
        if self._in_place:
            done = Signal()         # the word's last beat went: take the word
            m.d.comb += [
                self.o.valid.eq(self.i.valid & ~done),
                self.o.payload.data.eq(self.i.payload.data.word_select(count, w)),
                self.o.payload.last.eq(self.i.payload.last & final),
                self.i.ready.eq(done),
            ]
            m.d.sync += done.eq(0)
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += count.eq(Mux(final, 0, count + 1))
                with m.If(final):
                    m.d.sync += done.eq(1)
            return m
        word = Signal(32)
        last = Signal()
        busy = Signal()
        m.d.comb += [
            self.o.valid.eq(busy),
            self.o.payload.data.eq(word.word_select(count, w)),
            self.o.payload.last.eq(last & final),
            self.i.ready.eq(~busy if self._registered_ready
                            else ~busy | (self.o.ready & final)),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += count.eq(Mux(final, 0, count + 1))
            with m.If(final):
                m.d.sync += busy.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [word.eq(self.i.payload.data), last.eq(self.i.payload.last),
                         busy.eq(1), count.eq(0)]
        return m


class Skid(wiring.Component):
    """Register slice (skid buffer): every output, ``i.ready`` included, comes from a
    flip-flop, so no combinational path crosses it in either direction. Full throughput,
    one cycle of latency.

    It cuts the ready chains between the AXI ports and the core (Fmax, docs/boards.md).

    Parameters
    ----------
    layout : shape of the payload (default: a 32-bit word with ``last``)
    spare : bool
        ``False``: no spare register, so ``i.ready`` is ``~o.valid | o.ready``, a
        combinational path; half the flip-flops (iCE40 builds, hw/lane.py ``is_ice40``).

    Members
    -------
    i : In(stream.Signature(layout))
    o : Out(stream.Signature(layout))
    """

    def __init__(self, layout=None, *, spare=True):
        layout = word_layout(32) if layout is None else layout
        self._spare = bool(spare)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        if not self._spare:
            m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
            with m.If(self.i.ready):
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
            return m
        spare = Signal.like(self.i.payload)
        spare_valid = Signal()
        m.d.comb += self.i.ready.eq(~spare_valid)
        with m.If(~self.o.valid | self.o.ready):
            # The output register moves on: refill it from the spare, else the input.
            with m.If(spare_valid):
                m.d.sync += [self.o.payload.eq(spare), self.o.valid.eq(1), spare_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(~spare_valid):
            # The output is stalled: park the input in the spare, valid or not (so that
            # the spare's enable is flip-flops only, not the input's valid: Fmax).
            m.d.sync += [spare.eq(self.i.payload), spare_valid.eq(self.i.valid)]
        return m


async def stream_put(ctx, s, payload):
    """Testbench: drive one transfer into stream ``s`` (valid never waits for ready)."""
    ctx.set(s.valid, 1)
    ctx.set(s.payload, payload)
    await ctx.tick().until(s.ready)
    ctx.set(s.valid, 0)


async def stream_get(ctx, s):
    """Testbench: take one transfer from stream ``s`` and return its payload."""
    ctx.set(s.ready, 1)
    payload, = await ctx.tick().sample(s.payload).until(s.valid)
    ctx.set(s.ready, 0)
    return payload
