"""CRC-32 (ISO-HDLC: the CRC of Ethernet and zlib) of 32-bit words, one word per cycle or,
for small devices, one bit per cycle.

The reflected CRC absorbs a little-endian 32-bit word by XORing it into the state and
shifting 32 times; that map is linear over GF(2), so each next-state bit is the XOR of a
fixed subset of the 32 bits of ``state ^ word``. The subsets are computed here in Python.
The serial form XORs the word in and then takes the 32 shift steps one per cycle.
"""

from amaranth import Module, Signal, Cat, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Crc32", "crc32_matrix", "CRC32_POLY_REFLECTED"]

CRC32_POLY_REFLECTED = 0xEDB88320


def _step32(v):
    for _ in range(32):
        v = (v >> 1) ^ (CRC32_POLY_REFLECTED if v & 1 else 0)
    return v


def crc32_matrix():
    """rows[i] = bitmask of the bits of ``state ^ word`` that XOR into next-state bit i."""
    cols = [_step32(1 << j) for j in range(32)]
    return [sum(1 << j for j in range(32) if (cols[j] >> i) & 1) for i in range(32)]


class Crc32(wiring.Component):
    """Running CRC-32 of the words absorbed since the last ``clear``.

    Parameters
    ----------
    serial : bool
        Absorb a word over 33 cycles (one shift step per cycle after the XOR) in about a
        quarter of the logic: ``busy`` is high for the 32 cycles after ``en`` (33 when
        ``staged``), and ``en`` must wait for it to fall. iCE40 builds (hw/lane.py
        ``is_ice40``), whose UART brings a word every 12,500 cycles (36 MHz, 115200 baud).

    Members
    -------
    clear : In(1)
        Restart (state ``0xFFFFFFFF``); wins over ``en`` in the same cycle.
    en : In(1)
        Absorb ``data`` this cycle (``data`` is needed in this cycle only).
    data : In(32)
        The word, little-endian byte order as on the wire.
    value : Out(32)
        CRC of the words absorbed so far (final XOR applied), valid the cycle after (the
        serial form: once ``busy`` is low).
    busy : Out(1)
        Serial form: still absorbing. Always low in the word-parallel form.
    staged : bool
        Word-parallel form: the word's share of the next state (the matrix times
        ``data``) goes into a register in the cycle of ``en``, and the state absorbs it
        in the next: ``value`` is valid two cycles after ``en``, and ``clear`` wins over
        an absorb in either cycle. The XOR tree in front of the state then has half the
        inputs (at most 18, two levels of ECP5 LUTs), Fmax. Serial form: the word and
        ``en`` are registered and absorbed a cycle later, ``busy`` high from the cycle
        after ``en`` (``clear`` wins likewise).
    """

    def __init__(self, *, serial=False, staged=False):
        self._serial = bool(serial)
        self._staged = bool(staged)
        super().__init__({"clear": In(1), "en": In(1), "data": In(32), "value": Out(32),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        state = Signal(32, init=0xFFFFFFFF)
        if self._serial:
            left = Signal(range(33))        # shift steps still to take
            # busy is ``left != 0`` kept in a flip-flop of its own (set with left, cleared
            # with its last step): the compare of the counter led the framers' ready
            # chains, the UP5K boards' critical path (29.8 ns).
            busy = Signal()
            en, data = self.en, self.data
            if self._staged:
                # The word and its ``en`` from registers, absorbed a cycle later (the
                # receive framer's take in front of the 32 state flip-flops was the
                # UP5K boards' longest path group, docs/boards.md); ``busy`` covers
                # that cycle too. The word's register is the one the controller keeps
                # of each word anyway (yosys merges the two).
                en, data = Signal(), Signal(32)
                m.d.sync += [en.eq(self.en & ~self.clear), data.eq(self.data)]
                m.d.comb += self.busy.eq(busy | en)
            else:
                m.d.comb += self.busy.eq(busy)
            m.d.comb += self.value.eq(~state)
            with m.If(self.clear):
                m.d.sync += [state.eq(0xFFFFFFFF), left.eq(0), busy.eq(0)]
            with m.Elif(en):
                m.d.sync += [state.eq(state ^ data), left.eq(32), busy.eq(1)]
            with m.Elif(busy):
                m.d.sync += [state.eq((state >> 1) ^ Mux(state[0], CRC32_POLY_REFLECTED, 0)),
                             left.eq(left - 1), busy.eq(left != 1)]
            return m
        def times_matrix(v):
            out = []
            for row in crc32_matrix():
                bits = [v[j] for j in range(32) if (row >> j) & 1]
                acc = bits[0]
                for b in bits[1:]:
                    acc = acc ^ b
                out.append(acc)
            return Cat(*out)

        nxt = Signal(32)
        en = self.en
        if self._staged:
            # M(state ^ data) = M state ^ M data: M data is registered first.
            share = Signal(32)
            en = Signal()
            m.d.sync += [share.eq(times_matrix(self.data)), en.eq(self.en & ~self.clear)]
            m.d.comb += nxt.eq(times_matrix(state) ^ share)
        else:
            m.d.comb += nxt.eq(times_matrix(state ^ self.data))
        with m.If(self.clear):
            m.d.sync += state.eq(0xFFFFFFFF)
        with m.Elif(en):
            m.d.sync += state.eq(nxt)
        m.d.comb += self.value.eq(~state)
        return m
