"""Activation buffer writer: gathers activations one at a time into C-wide buffer words.

Activations arrive one per cycle (from the host input or from the requantiser) in index
order. Every C of them form one activation-buffer word (lane c at bits ``[c*A, (c+1)*A)``);
``flush`` writes a final partial word with zeros in the unused lanes. Those zeros matter:
the MAC array reads whole chunks, and padding columns must contribute nothing. The writer
also sums what it wrote: the ``sum x`` of the correction term Q (docs/arithmetic.md 5).
"""

from amaranth import Module, Signal, Cat, Const
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ActWriter"]


class ActWriter(wiring.Component):
    """Gather activations into buffer words.

    Parameters
    ----------
    cols : int
        C, activations per word.
    abits : int
        A, bits per activation.
    depth : int
        Words in the buffer being written.
    sum_bits : int
        Width of the running sum.

    Members
    -------
    start : In(1)
        Begin a new vector: address, lane and sum return to 0.
    valid : In(1)
        ``value`` is the next activation.
    value : In(abits)
    flush : In(1)
        End of vector: write the partial word, if any. Not in the same cycle as ``valid``.
    wr_en, wr_addr, wr_data : Out
        Buffer write port (combinational, the write happens at this cycle's clock edge).
    sum : Out(sum_bits)
        Sum of the activations written since ``start``.
    count : Out(range(depth * cols + 1))
        Activations written since ``start``.
    """

    def __init__(self, *, cols, abits, depth, sum_bits):
        self._cols, self._abits, self._depth = cols, abits, depth
        super().__init__({
            "start": In(1), "valid": In(1), "value": In(abits), "flush": In(1),
            "wr_en": Out(1), "wr_addr": Out(range(max(depth, 2))), "wr_data": Out(cols * abits),
            "sum": Out(sum_bits), "count": Out(range(depth * cols + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        C, A = self._cols, self._abits
        lane = Signal(range(C))
        word = Signal(C * A)      # lanes >= `lane` are zero
        addr = Signal.like(self.wr_addr)
        merged = Signal(C * A)
        m.d.comb += merged.eq(word | (self.value << (lane * A)))
        m.d.comb += self.wr_addr.eq(addr)

        with m.If(self.start):
            m.d.sync += [lane.eq(0), word.eq(0), addr.eq(0), self.sum.eq(0), self.count.eq(0)]
        with m.Elif(self.valid):
            m.d.sync += [self.sum.eq(self.sum + self.value), self.count.eq(self.count + 1)]
            with m.If(lane == C - 1):
                m.d.comb += [self.wr_en.eq(1), self.wr_data.eq(merged)]
                m.d.sync += [lane.eq(0), word.eq(0), addr.eq(addr + 1)]
            with m.Else():
                m.d.sync += [lane.eq(lane + 1), word.eq(merged)]
        with m.Elif(self.flush):
            with m.If(lane != 0):
                m.d.comb += [self.wr_en.eq(1), self.wr_data.eq(word)]
                m.d.sync += [lane.eq(0), word.eq(0), addr.eq(addr + 1)]
        return m
