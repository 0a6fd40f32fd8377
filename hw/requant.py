"""Requantisation pipeline: D -> next-layer activation or int32 logit, one row per cycle.

Implements docs/arithmetic.md section 6 bit for bit:

    V = D * m * 2^(A - a_in) + b
    y = clamp(floor((V + 2^(S-1)) / 2^S), lo, hi)     (y = clamp(V) when S = 0)

with ``S = shift + (A - a_out)``, ``[lo, hi] = [0, 2^a_out - 1]`` for a hidden layer and
``S = shift``, ``[lo, hi] = int32`` for the last layer. Every intermediate has the width
``golden.arith.widths`` derives, so no stage wraps.
"""

from amaranth import Module, Signal, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.arith import M_BITS, B_BITS, SHIFT_MAX

__all__ = ["Requant"]


class Requant(wiring.Component):
    """Six-stage requantiser (input register, multiply, scale, round, shift, saturate).

    Parameters
    ----------
    abits : int
        A, the maximum activation precision.
    d_bits, v_bits, round_bits : int
        Widths from ``golden.arith.widths``.

    Members
    -------
    valid, d, m, b : In
        One row per cycle: the dot product and its table entry.
    shift : In(range(SHIFT_MAX + 1))
    a_in, a_out : In(range(abits + 1))
        Precisions of this layer's input and of its output (ignored when ``final``).
    final : In(1)
        Last layer: int32 logits instead of activations.
        ``shift``, ``a_in``, ``a_out`` and ``final`` must be held for a whole layer.
    o_valid : Out(1)
    o_value : Out(signed(32))
        ``latency`` cycles after the input.
    """

    latency = 6

    def __init__(self, *, abits, d_bits, v_bits, round_bits):
        self._abits, self._d_bits = abits, d_bits
        self._v_bits, self._round_bits = v_bits, round_bits
        super().__init__({
            "valid": In(1), "d": In(signed(d_bits)), "m": In(signed(M_BITS)),
            "b": In(signed(B_BITS)), "shift": In(range(SHIFT_MAX + 1)),
            "a_in": In(range(abits + 1)), "a_out": In(range(abits + 1)), "final": In(1),
            "o_valid": Out(1), "o_value": Out(signed(32)),
        })

    def elaborate(self, platform):
        m = Module()
        A = self._abits
        max_s = SHIFT_MAX + A - 1

        # Per-layer constants, registered: they only depend on ``shift``, ``a_in``,
        # ``a_out`` and ``final``, which are held for a whole layer, and the first row
        # reaches the stages that use them several cycles after they change. This keeps
        # the decoders off the datapath's critical paths (Fmax, docs/boards.md).
        ash = Signal(range(A))
        s = Signal(range(max_s + 1))
        big = Signal()
        s_eff = Signal(range(self._v_bits))
        half = Signal(unsigned(self._v_bits - 1))
        hi = Signal(signed(33))
        lo = Signal(signed(33))
        m.d.comb += s.eq(Mux(self.final, self.shift, self.shift + (A - self.a_out)))
        m.d.sync += [
            ash.eq(A - self.a_in),
            big.eq(s >= self._v_bits),
            s_eff.eq(Mux(s >= self._v_bits, 0, s)),
            half.eq(Mux((s == 0) | (s >= self._v_bits), 0, (1 << s) >> 1)),
            hi.eq(Mux(self.final, (1 << 31) - 1, (1 << self.a_out) - 1)),
            lo.eq(Mux(self.final, -(1 << 31), 0)),
        ]

        # Stage 0: register the inputs (the table entry comes straight from block RAM).
        d0 = Signal.like(self.d)
        m0 = Signal.like(self.m)
        b0 = Signal.like(self.b)
        v0 = Signal()
        m.d.sync += [d0.eq(self.d), m0.eq(self.m), b0.eq(self.b), v0.eq(self.valid)]

        # Stage 1: the multiply (maps to a DSP where available).
        prod = Signal(signed(self._d_bits + M_BITS))
        b1 = Signal(signed(B_BITS))
        v1 = Signal()
        m.d.sync += [prod.eq(d0 * m0), b1.eq(b0), v1.eq(v0)]

        # Stage 2: scale by 2^(A - a_in), add the offset.
        v = Signal(signed(self._v_bits))
        v2 = Signal()
        m.d.sync += [v.eq((prod << ash) + b1), v2.eq(v1)]

        # Stage 3: round half up, then shift right by S. Since |V| < 2^(v_bits-1), any
        # S >= v_bits gives exactly 0 (V + 2^(S-1) lies in (0, 2^S)); handling that case
        # apart keeps the rounding constant, and the adder, within v_bits.
        rounded = Signal(signed(self._round_bits))
        v3a = Signal()
        m.d.sync += [rounded.eq(v + half), v3a.eq(v2)]
        r = Signal(signed(self._round_bits))
        v3 = Signal()
        m.d.sync += [r.eq(Mux(big, 0, rounded >> s_eff)), v3.eq(v3a)]

        # Stage 4: saturate.
        m.d.sync += [
            self.o_value.eq(Mux(r > hi, hi, Mux(r < lo, lo, r))),
            self.o_valid.eq(v3),
        ]
        return m
