"""Activation buffer writer: gathers activations one at a time into C-wide buffer words.

Activations arrive in index order, up to ``lanes`` per cycle (one from the host input,
a group of up to ``lanes`` from the requantisers; ``lanes`` divides C, and a group of
``lanes`` starts at a multiple of ``lanes``, so it never straddles two words). Every C of them form one activation-buffer word (lane c at bits ``[c*A, (c+1)*A)``);
``flush`` writes a final partial word with zeros in the unused lanes. Those zeros matter:
the MAC array reads whole chunks, and padding columns must contribute nothing. The writer
also sums what it wrote: the ``sum x`` of the correction term Q (docs/arithmetic.md 5).
"""

from amaranth import Module, Signal, Const, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ActWriter"]


class ActWriter(wiring.Component):
    """Gather activations into buffer words.

    Parameters
    ----------
    cols : int
        C, activations per word.
    lanes : int
        Most activations per cycle (divides ``cols``).
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
        ``values[0 .. n-1]`` are the next ``n`` activations.
    n : In(range(lanes + 1))
        How many, 1 .. ``lanes`` when ``valid`` (ignored, taken as 1, when ``lanes`` is 1).
        Lanes at and above ``n`` must be zero.
    values : In(lanes * abits)
        Lane i at bits ``[i*A, (i+1)*A)``.
    flush : In(1)
        End of vector: write the partial word, if any. Not in the same cycle as ``valid``.
    wr_en, wr_addr, wr_data : Out
        Buffer write port (combinational, the write happens at this cycle's clock edge).
    sum : Out(sum_bits)
        Sum of the activations written since ``start``.
    count : Out(range(depth * cols + 1))
        Activations written since ``start``.
    """

    def __init__(self, *, cols, abits, depth, sum_bits, lanes=1):
        assert cols % lanes == 0
        self._cols, self._abits, self._depth, self._lanes = cols, abits, depth, lanes
        super().__init__({
            "start": In(1), "valid": In(1), "n": In(range(lanes + 1), init=1),
            "values": In(lanes * abits), "flush": In(1),
            "wr_en": Out(1), "wr_addr": Out(range(max(depth, 2))), "wr_data": Out(cols * abits),
            "sum": Out(sum_bits), "count": Out(range(depth * cols + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        C, A, LN = self._cols, self._abits, self._lanes
        # The next free word lane, one-hot (bit c: lane c): the select of every word lane
        # is then one flip-flop instead of a compare that fans out to C * A bits (the
        # 85F's longest paths at 150 MHz, 8.9 ns).
        lane_oh = Signal(C, init=1)
        word = Signal(C * A)      # lanes from the next free one up are zero
        addr = Signal.like(self.wr_addr)
        merged = Signal(C * A)
        # Word lane c takes input lane c - l (l the next free lane; when that is 0 .. LN-1):
        # an LN-input AND-OR per bit rather than a barrel shifter over the whole word.
        vals = [self.values[i * A:(i + 1) * A] for i in range(LN)]
        for c in range(C):
            terms = [vals[i] & lane_oh[c - i].replicate(A) for i in range(LN)
                     if 0 <= c - i < C]
            acc = terms[0]
            for t_ in terms[1:]:
                acc = acc | t_
            m.d.comb += merged[c * A:(c + 1) * A].eq(word[c * A:(c + 1) * A] | acc)
        m.d.comb += self.wr_addr.eq(addr)
        total = vals[0]
        for v in vals[1:]:
            total = total + v
        n = self.n if LN > 1 else Const(1)
        # Does this group complete the word (l + n >= C)? As an OR of lane_oh's top n bits,
        # selected by n, so that nothing wide sits between the inputs and the write. valid
        # and n come from the core's source multiplexer (host or requantisers); an adder on
        # n plus a compare behind it was the critical path of the 16x16 and 32x32 bench
        # builds (9.9 ns, docs/boards.md), and a carry-chain compare of a binary lane
        # count, fanning out to every word bit, a long path at 150 MHz on the 85F.
        full = Signal()
        if LN == 1:
            m.d.comb += full.eq(lane_oh[C - 1])
        else:
            with m.Switch(n):
                for i in range(1, LN + 1):
                    with m.Case(i):
                        m.d.comb += full.eq(lane_oh[max(C - i, 0):].any())

        # The write data needs no enable of its own (wr_en qualifies it): merged while
        # `valid`, the partial word otherwise.
        m.d.comb += self.wr_data.eq(Mux(self.valid, merged, word))
        with m.If(self.start):
            m.d.sync += [lane_oh.eq(1), word.eq(0), addr.eq(0), self.sum.eq(0),
                         self.count.eq(0)]
        with m.Elif(self.valid):
            m.d.sync += [self.sum.eq(self.sum + total), self.count.eq(self.count + n)]
            with m.If(full):
                m.d.comb += self.wr_en.eq(1)
                m.d.sync += [lane_oh.eq(1), word.eq(0), addr.eq(addr + 1)]
            with m.Else():
                m.d.sync += word.eq(merged)
                if LN == 1:
                    m.d.sync += lane_oh.eq(lane_oh << 1)
                else:
                    with m.Switch(n):
                        for i in range(1, LN + 1):
                            with m.Case(i):
                                m.d.sync += lane_oh.eq(lane_oh << i)
        with m.Elif(self.flush):
            with m.If(~lane_oh[0]):
                m.d.comb += self.wr_en.eq(1)
                m.d.sync += [lane_oh.eq(1), word.eq(0), addr.eq(addr + 1)]
        return m
