"""Word-parallel CRC-32 (ISO-HDLC: the CRC of Ethernet and zlib), 32 bits per cycle.

The reflected CRC absorbs a little-endian 32-bit word by XORing it into the state and
shifting 32 times; that map is linear over GF(2), so each next-state bit is the XOR of a
fixed subset of the 32 bits of ``state ^ word``. The subsets are computed here in Python.
"""

from amaranth import Module, Signal, Cat
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

    Members
    -------
    clear : In(1)
        Restart (state ``0xFFFFFFFF``); wins over ``en`` in the same cycle.
    en : In(1)
        Absorb ``data`` this cycle.
    data : In(32)
        The word, little-endian byte order as on the wire.
    value : Out(32)
        CRC of the words absorbed so far (final XOR applied), valid the cycle after.
    """
    clear: In(1)
    en: In(1)
    data: In(32)
    value: Out(32)

    def elaborate(self, platform):
        m = Module()
        state = Signal(32, init=0xFFFFFFFF)
        mixed = Signal(32)
        nxt = Signal(32)
        m.d.comb += mixed.eq(state ^ self.data)
        for i, row in enumerate(crc32_matrix()):
            bits = [mixed[j] for j in range(32) if (row >> j) & 1]
            acc = bits[0]
            for b in bits[1:]:
                acc = acc ^ b
            m.d.comb += nxt[i].eq(acc)
        with m.If(self.clear):
            m.d.sync += state.eq(0xFFFFFFFF)
        with m.Elif(self.en):
            m.d.sync += state.eq(nxt)
        m.d.comb += self.value.eq(~state)
        return m
