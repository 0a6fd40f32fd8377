"""Requantisation pipeline: D -> next-layer activation or int32 logit, one row per cycle.

Implements docs/arithmetic.md section 6 bit for bit:

    V = D * m * 2^(A - a_in) + b
    y = clamp(floor((V + 2^(S-1)) / 2^S), lo, hi)     (y = clamp(V) when S = 0)

with ``S = shift + (A - a_out)``, ``[lo, hi] = [0, 2^a_out - 1]`` for a hidden layer and
``S = shift``, ``[lo, hi] = int32`` for the last layer. Every intermediate has the width
``golden.arith.widths`` derives, so no stage wraps.
"""

from amaranth import (Module, Signal, Mux, Cat, Const, Elaboratable, Instance,
                      ClockSignal, signed)

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.arith import M_BITS, B_BITS, SHIFT_MAX
from .lane import is_ecp5, is_ice40

__all__ = ["Requant"]


class Mult18Reg(Elaboratable):
    """``p = a * b`` two cycles after ``a`` and ``b``, as one ECP5 MULT18X18D with its
    input and output registers (clock enable and reset unused). ``a`` is taken as
    signed when ``a_signed`` (else zero-extended), ``b`` as signed; both fit 18 bits
    signed, ``p`` 36. Simulated with ``hw.top.cell_models("ecp5")``."""

    def __init__(self, *, a, a_signed, b, p):
        assert len(a) + (0 if a_signed else 1) <= 18 and len(b) <= 18 and len(p) <= 36
        self.a, self.a_signed, self.b, self.p = a, a_signed, b, p

    def elaborate(self, platform):
        m = Module()
        a18 = Signal(signed(18))
        b18 = Signal(signed(18))
        p36 = Signal(signed(36))
        m.d.comb += [a18.eq(self.a.as_signed() if self.a_signed else self.a.as_unsigned()),
                     b18.eq(self.b.as_signed()), self.p.eq(p36)]
        ports = {}
        for i in range(18):
            ports[f"i_A{i}"] = a18[i]
            ports[f"i_B{i}"] = b18[i]
        for i in range(36):
            ports[f"o_P{i}"] = p36[i]
        m.submodules.mult = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_GSR="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            i_CLK0=ClockSignal(), i_CE0=1, i_RST0=0, **ports)
        return m


class _Mac16(Elaboratable):
    """``p = a * b + c`` two cycles after ``a``, ``b`` and ``c``, as one iCE40 SB_MAC16
    with its input registers (A, B, C, D) and its output registers (the accumulator
    registers, loaded from the adders): ``a`` up to 16 bits (signed when ``a_signed``,
    else unsigned), ``b`` 16 bits signed, ``c`` added through the C:D inputs, ``p`` 32 bits;
    the caller keeps ``a * b + c`` within 32 bits signed. Clock enable, holds and resets
    unused. Simulated with ``hw.top.cell_models("ice40")`` (yosys' SB_MAC16 model)."""

    def __init__(self, *, a, a_signed, b, c, p):
        assert len(a) <= 16 and len(b) <= 16 and len(p) == 32
        self.a, self.a_signed, self.b, self.c, self.p = a, a_signed, b, c, p

    def elaborate(self, platform):
        m = Module()
        a16 = Signal(16)
        b16 = Signal(16)
        c32 = Signal(32)
        m.d.comb += [a16.eq(self.a), b16.eq(self.b.as_signed()), c32.eq(self.c)]

        def bit(v, w=1):
            return Const(v, w)
        m.submodules.mac = Instance(
            "SB_MAC16",
            p_NEG_TRIGGER=bit(0), p_A_REG=bit(1), p_B_REG=bit(1), p_C_REG=bit(1),
            p_D_REG=bit(1), p_TOP_8x8_MULT_REG=bit(0), p_BOT_8x8_MULT_REG=bit(0),
            p_PIPELINE_16x16_MULT_REG1=bit(0), p_PIPELINE_16x16_MULT_REG2=bit(0),
            # O = the accumulator registers, each loaded with its adder's sum: the
            # 16 x 16 product's half plus C (top) or D (bottom), the top adder taking the
            # bottom one's carry.
            p_TOPOUTPUT_SELECT=bit(1, 2), p_TOPADDSUB_LOWERINPUT=bit(2, 2),
            p_TOPADDSUB_UPPERINPUT=bit(1), p_TOPADDSUB_CARRYSELECT=bit(2, 2),
            p_BOTOUTPUT_SELECT=bit(1, 2), p_BOTADDSUB_LOWERINPUT=bit(2, 2),
            p_BOTADDSUB_UPPERINPUT=bit(1), p_BOTADDSUB_CARRYSELECT=bit(0, 2),
            p_MODE_8x8=bit(0), p_A_SIGNED=bit(int(self.a_signed)), p_B_SIGNED=bit(1),
            i_CLK=ClockSignal(), i_CE=1, i_A=a16, i_B=b16, i_C=c32[16:], i_D=c32[:16],
            i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0, i_IRSTTOP=0, i_IRSTBOT=0,
            i_ORSTTOP=0, i_ORSTBOT=0, i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0,
            i_ADDSUBBOT=0, i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
            o_O=self.p, o_CO=Signal(name="co"), o_ACCUMCO=Signal(name="accumco"),
            o_SIGNEXTOUT=Signal(name="signextout"))
        return m


class Requant(wiring.Component):
    """Nine-stage requantiser (input register, scale, multiply, offset, high partial product,
    two shift steps, round and the clamp's compares, select), or seven stages when
    ``compact``.

    Parameters
    ----------
    abits : int
        A, the maximum activation precision.
    d_bits, v_bits, round_bits : int
        Widths from ``golden.arith.widths``.
    compact : bool
        Seven stages (scale, 16 x 16 partial products with the offset, their sum, two
        shift steps, round with the clamp's decision, select) instead of nine: fewer
        flip-flops, for small slow devices (the iCE40 boards), at a lower Fmax. On an
        iCE40 platform the scale and partial-product stages are SB_MAC16 registers
        (``_Mac16``).

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

    FULL_LATENCY = 9
    COMPACT_LATENCY = 7

    def __init__(self, *, abits, d_bits, v_bits, round_bits, compact=False):
        self._abits, self._d_bits = abits, d_bits
        self._v_bits, self._round_bits = v_bits, round_bits
        self._compact = bool(compact)
        #: Cycles from an input row to its ``o_value``.
        self.latency = self.COMPACT_LATENCY if compact else self.FULL_LATENCY
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
        s_eff = Signal(range(self._round_bits))
        hi = Signal(signed(33))
        lo = Signal(signed(33))
        hi2 = Signal(signed(35))        # 2 hi + 1 and 2 lo - 1: the clamp tested on t
        lo2 = Signal(signed(35))
        # Three register levels: A - a_out, then S, then everything derived from it; the
        # clamp bounds 2^a_out - 1 and 2^(a_out+1) - 1 as thermometer codes (constant
        # compares, no carry chain). (The subtraction, the addition and the select in
        # one cycle were a long path at 150 MHz, Fmax.)
        # (The compact form keeps two levels: its rows reach the shift sooner.)
        if self._compact:
            m.d.sync += [
                s.eq(Mux(self.final, self.shift, self.shift + (A - self.a_out))),
                hi.eq(Mux(self.final, (1 << 31) - 1, (1 << self.a_out) - 1)),
            ]
        else:
            a_rest = Signal(range(A + 1))
            # (bits only up to A: a_out <= A, and a constant compare would be a lint
            # warning)
            therm = Cat(*[self.a_out > i for i in range(A)])
            therm2 = Cat(Const(1, 1), *[self.a_out >= i for i in range(1, A + 1)])
            m.d.sync += [
                a_rest.eq(A - self.a_out),
                s.eq(Mux(self.final, self.shift, self.shift + a_rest)),
                hi.eq(Mux(self.final, (1 << 31) - 1, therm)),
                hi2.eq(Mux(self.final, (1 << 32) - 1, therm2)),
                lo2.eq(Mux(self.final, -(1 << 32) - 1, -1)),
            ]
        m.d.sync += [
            ash.eq(A - self.a_in),
            s_eff.eq(Mux(s >= self._round_bits, self._round_bits - 1, s)),
            lo.eq(Mux(self.final, -(1 << 31), 0)),
        ]

        if self._compact:
            self._compact_stages(m, s_eff, hi, lo, is_ice40(platform))
            return m

        # Stage 0: register the inputs (the table entry comes straight from block RAM).
        d0 = Signal.like(self.d)
        m0 = Signal.like(self.m)
        b0 = Signal.like(self.b)
        v0 = Signal()
        m.d.sync += [d0.eq(self.d), m0.eq(self.m), b0.eq(self.b), v0.eq(self.valid)]

        # Stage 1: scale D by 2^(A - a_in) before the multiply (V = (D 2^ash) m + b): the
        # shifter is D-wide instead of product-wide, and b can join the partial products.
        ds_bits = self._d_bits + A - 1
        ds = Signal(signed(ds_bits))
        m1 = Signal.like(self.m)
        b1 = Signal.like(self.b)
        v1 = Signal()
        ds_next = Signal(signed(ds_bits))
        m.d.comb += ds_next.eq(d0 << ash)
        m.d.sync += [ds.eq(ds_next), m1.eq(m0), b1.eq(b0), v1.eq(v0)]
        # On ECP5 each product is a MULT18X18D with its input and output registers (they
        # stand for ds, m1 and the product register, so the latency is the same): an
        # unregistered multiplier between two fabric registers took 7.3 ns (Fmax).
        dsp = is_ecp5(platform) and ds_bits - 17 <= 18

        def product(out, a_lo, a_hi, a_signed):
            if dsp:
                m.submodules += Mult18Reg(a=ds_next[a_lo:a_hi], a_signed=a_signed, b=m0,
                                          p=out)
            else:
                av = ds[a_lo:a_hi]
                m.d.sync += out.eq((av.as_signed() if a_signed else av.as_unsigned()) * m1)

        # Stages 2-4: the multiply as partial products that each fit one 18x18 DSP
        # (ds = ds_hi 2^17 + ds_lo, ds_lo unsigned); b added to the low one, then the high
        # one added: a ds_bits x 16 product was two DSPs and a carry chain in one cycle.
        LO = 17
        v = Signal(signed(self._v_bits))
        v2 = Signal()
        if ds_bits > LO:
            p_lo = Signal(signed(LO + 1 + M_BITS))
            p_hi = Signal(signed(ds_bits - LO + M_BITS))
            b2 = Signal.like(self.b)
            v2a = Signal()
            product(p_lo, 0, LO, False)
            product(p_hi, LO, ds_bits, True)
            m.d.sync += [b2.eq(b1), v2a.eq(v1)]
            lo_b = Signal(signed(max(LO + 1 + M_BITS, B_BITS) + 1))
            ph = Signal.like(p_hi)
            v2b = Signal()
            m.d.sync += [lo_b.eq(p_lo + b2), ph.eq(p_hi), v2b.eq(v2a)]
            m.d.sync += [v.eq((ph << LO) + lo_b), v2.eq(v2b)]
        else:
            # The same three stages, so that the latency does not depend on widths.
            p = Signal(signed(ds_bits + M_BITS))
            b2 = Signal.like(self.b)
            v2a = Signal()
            product(p, 0, ds_bits, True)
            m.d.sync += [b2.eq(b1), v2a.eq(v1)]
            pb = Signal(signed(self._v_bits))
            v2b = Signal()
            m.d.sync += [pb.eq(p + b2), v2b.eq(v2a)]
            m.d.sync += [v.eq(pb), v2.eq(v2b)]

        # Stages 5-7: round half up and shift right by S, as (floor(2V / 2^S) + 1) >> 1, which
        # equals floor((V + 2^(S-1)) / 2^S) for S >= 1 and V for S = 0: the shift works on
        # 2V (round_bits wide) and the rounding is an increment after it, so no 2^(S-1)
        # constant is needed. Since |2V| < 2^(round_bits-1), any S >= round_bits-1 gives
        # floor(2V / 2^S) in {-1, 0} and so y = 0: S is capped there (``s_eff``).
        # The shift in two steps (multiples of 8, then 0..7): one barrel shifter of
        # round_bits x 6 levels was too deep for one cycle.
        t, v3b = self._shift_2v(m, v, v2, s_eff, "v3b")
        # Stage 7: round (t1 = t + 1, r = t1 >> 1) and, beside it, the clamp's two
        # compares on t itself: floor((t + 1) / 2) > hi exactly when t >= 2 hi + 1, and
        # < lo exactly when t < 2 lo - 1. (Compares and select behind the rounding in one
        # cycle were the 85F's critical path, 9.0 ns.) Stage 8: select.
        t1 = Signal(signed(self._round_bits))
        gt = Signal()
        lt = Signal()
        v3 = Signal()
        m.d.sync += [t1.eq(t + 1), gt.eq(t >= hi2), lt.eq(t < lo2), v3.eq(v3b)]
        r = Signal(signed(self._round_bits - 1))
        m.d.comb += r.eq(t1 >> 1)
        m.d.sync += [
            self.o_value.eq(Mux(gt, hi, Mux(lt, lo, r))),
            self.o_valid.eq(v3),
        ]
        return m

    def _shift_2v(self, m, v, valid, s_eff, valid_name):
        """floor(2v / 2^s_eff) in two register stages, by the multiple of 8 and then by
        0 to 7 (both forms); returns it and ``valid`` delayed alike (``valid_name``)."""
        coarse = Signal(signed(self._round_bits))
        v3a = Signal()
        m.d.sync += [coarse.eq((v << 1) >> Cat(Const(0, 3), s_eff[3:])), v3a.eq(valid)]
        t = Signal(signed(self._round_bits))
        v_out = Signal(name=valid_name)
        m.d.sync += [t.eq(coarse >> s_eff[:3]), v_out.eq(v3a)]
        return t, v_out

    def _compact_stages(self, m, s_eff, hi, lo, ice40):
        # The same arithmetic as the nine stages in seven. The first stage scales by
        # A - a_in from ``a_in`` itself, not from the registered ``ash``: a row may come
        # in the very cycle its layer's parameters do, as it may in the nine stages.
        A = self._abits
        # Stage 0: scale D by 2^(A - a_in) (V = (D 2^ash) m + b).
        ds_next = Signal(signed(self._d_bits + A - 1))
        ash = Signal(range(A))
        m.d.comb += [ash.eq(A - self.a_in), ds_next.eq(self.d << ash)]
        # Stage 1: the multiply as 16-bit chunks of ds (the top one signed, the others
        # unsigned), each chunk times m in one 16 x 16 multiplier, b's low half added to
        # the lowest product and its high half to the next (every sum fits 32 bits
        # signed). Stage 2: the products summed, v = sum of p_i 2^(16 i).
        # On iCE40 stages 0 and 1 are the input and output registers of one SB_MAC16 per
        # chunk (``_Mac16``). nextpnr times an SB_MAC16 as registered whatever its
        # configuration: an unregistered multiplier between fabric registers (as
        # before) left the path through it out of the reported Fmax.
        n = max(2, -(-len(ds_next) // 16))
        dsx = Signal(signed(16 * n))
        m.d.comb += dsx.eq(ds_next)
        b_part = [self.b[:16].as_unsigned(), self.b[16:32].as_signed()] + [0] * (n - 2)
        prods = []
        v1 = Signal()
        v0 = Signal()
        m.d.sync += [v0.eq(self.valid), v1.eq(v0)]
        for i in range(n):
            top = i == n - 1
            chunk = dsx[16 * i:16 * (i + 1)]
            chunk = chunk.as_signed() if top else chunk
            p = Signal(signed(32), name=f"p{i}", reset_less=True)
            if ice40:
                m.submodules[f"mac{i}"] = _Mac16(a=chunk, a_signed=top, b=self.m,
                                                 c=b_part[i], p=p)
            else:
                a_r = Signal(signed(16) if top else 16, name=f"a{i}", reset_less=True)
                b_r = Signal.like(self.m, name=f"m{i}", reset_less=True)
                c_r = Signal(signed(17), name=f"c{i}", reset_less=True)
                m.d.sync += [a_r.eq(chunk), b_r.eq(self.m), c_r.eq(b_part[i])]
                m.d.sync += p.eq(a_r * b_r + c_r)
            prods.append(p)
        v = Signal(signed(self._v_bits))
        v2 = Signal()
        total = prods[0]
        for i, p in enumerate(prods[1:], start=1):
            total = total + (p << (16 * i))
        m.d.sync += [v.eq(total), v2.eq(v1)]
        # Stages 3 and 4: floor(2V / 2^S) in two steps, as in the nine-stage form. One
        # barrel shifter of six 2:1 levels was the deepest logic in the design, and
        # yosys' abc9 maps every other path to the depth of the deepest one (it recovers
        # area up to that delay): with the shifter in one cycle, 9-input enables came
        # out six LUTs deep (docs/boards.md).
        t, v3 = self._shift_2v(m, v, v2, s_eff, "v3")
        # Stage 5: round, r = (t + 1) >> 1, and decide the clamp on t itself; stage 6:
        # select. r > hi exactly when t >= 2 hi + 1 = H (H = 2^(j+1) - 1: j ones of hi
        # and one more, j = a_out, or 31 for the last layer), that is, t not negative
        # and either a bit set above H's or H's bits all set. r < lo exactly when t <= -2
        # for a hidden layer (lo = 0: t is not -1) and t < -2^32 - 1 for the last (lo =
        # -2^31: not "bits 47.. 33 all set and (bit 32 or bits 31.. 0 all set)").
        # Otherwise r fits 32 bits, which the increment of t's low 33 bits gives: a
        # 33-bit carry chain, not one of round_bits (48 on the UP5K boards: a 20.9 ns
        # path, their Fmax cap at 50 MHz, docs/boards.md), and OR / AND trees instead
        # of compares (two carry chains of r's width were the critical path, 31.4 ns).
        tw = len(t)
        assert tw >= 34         # b alone is 32 bits signed: |2V| needs 34 at least
        neg = t[-1]
        hm = Cat(Const(1, 1), hi[:32])                # H's bits, 0 .. 32
        above = Cat(t[:33] & ~hm, t[33:tw - 1]).any()
        h_all = (t[:33] | ~hm).all()
        top_all = t[33:].all()
        gt = Signal()
        lt = Signal()
        r = Signal(signed(32))
        v4 = Signal()
        t33 = Signal(34)
        m.d.comb += t33.eq(t[:33] + 1)
        m.d.sync += [
            r.eq(t33[1:33]),
            gt.eq(~neg & (above | h_all)),
            # (lo[-1]: the last layer's lo, -2^31)
            lt.eq(neg & ~(top_all & Mux(lo[-1], t[32] | t[:32].all(),
                                        t[32] & t[:32].all()))),
            v4.eq(v3),
        ]
        m.d.sync += [
            self.o_value.eq(Mux(gt, hi, Mux(lt, lo, r))),
            self.o_valid.eq(v4),
        ]
