"""The MAC array: R lanes, each a C-input AND/adder tree feeding a Horner accumulator.

Bit-serial design: each cycle lane r receives one plane slice (C weight bits) of its row
and the C activations of the current input chunk, and computes ``S = sum_c bit_c * x_c``.
The accumulator runs MSB first over planes (docs/arithmetic.md section 5):

    first cycle of a row tile:         acc <- S
    first chunk of a later plane:      acc <- 2*acc + S
    any other cycle:                   acc <- acc + S

so after k planes it holds ``P = sum_j c_k,j * x_j`` and stopping early gives the k-bit
result. Bit-parallel design (the int-N baseline of issue 7): the slice holds all N planes,
each lane multiplies full N-bit codes, and ``dbl`` is never used.

The adder tree is registered after every level (each partial sum is its own register),
which keeps yosys from folding the tree into one wide ``$macc`` and lets it use carry
chains; see ../shared/CONVENTIONS.md, FPGA build pitfalls.

On ECP5 the first level of the serial array is built from CCU2C carry cells directly
(:class:`AndAddPair`): the LUT4 in front of each carry bit computes
``(w0 & x0[i]) ^ (w1 & x1[i])`` from four inputs, so the AND gates cost nothing, where
yosys would spend one LUT4 per activation bit on them and then an adder behind them.
"""

from amaranth import Module, Signal, Mux, Const, Instance, Elaboratable
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

__all__ = ["MacArray", "AndAddPair", "fold_and_for", "is_ice40", "is_ecp5"]


def fold_and_for(platform):
    """True when ``platform`` is an ECP5 (Amaranth's ``LatticePlatform`` sets ``family``
    to ``"ecp5"``; :func:`anyprec.hw.top.generate_verilog` passes a stand-in with the same
    attribute), whose CCU2C carry cells can absorb the serial array's AND gates."""
    return getattr(platform, "family", None) == "ecp5"


def is_ecp5(platform):
    """True when ``platform`` is a Lattice ECP5 (``family``, or an LFE5U / LFE5UM
    ``device``): the gateware then instantiates DP16KD block RAMs with their output
    register (hw/core.py ``BankedMemory``)."""
    return (getattr(platform, "family", None) == "ecp5"
            or str(getattr(platform, "device", "")).upper().startswith("LFE5U"))


def is_ice40(platform):
    """True when ``platform`` is an iCE40 (``family``, or a ``device`` name starting with
    iCE40): small and slow devices, for which the gateware trades Fmax for logic cells
    (one memory bank, a seven-stage requantiser on SB_MAC16 cells, no register slices)."""
    return (getattr(platform, "family", None) == "ice40"
            or str(getattr(platform, "device", "")).upper().startswith("ICE40"))


def _ccu2c_init(fn):
    """INIT of one CCU2C half: bit ``D*8 + C*4 + B*2 + A`` is ``fn(A, B, C, D)``."""
    return sum(fn(i & 1, i >> 1 & 1, i >> 2 & 1, i >> 3 & 1) << i for i in range(16))


#: Propagate of ``(A & B) + (C & D)`` (A = x0 bit, B = w0, C = x1 bit, D = w1). The carry
#: cell's generate is a LUT2 of A and B that reuses INIT[3:0] (the LUT4 at C = D = 0):
#: that is ``A & B``, which is the carry out whenever the two terms are equal (P = 0).
_INIT_ANDXOR = _ccu2c_init(lambda a, b, c, d: (a & b) ^ (c & d))


def and_add_pair(m, w0, x0, w1, x1, *, fold, name):
    """``(w0 ? x0 : 0) + (w1 ? x1 : 0)``, ``len(x0) + 1`` bits wide (``x0``, ``x1`` of
    equal width). ``fold``: one CCU2C chain with the ANDs in its LUTs (ECP5 only);
    otherwise plain Amaranth arithmetic. Returns the combinational sum."""
    a = len(x0)
    out = Signal(a + 1, name=name)
    if not fold:
        m.d.comb += out.eq(Mux(w0, x0, 0) + Mux(w1, x1, 0))
        return out
    bits = a + 1                       # the carry out of bit a - 1 is bit a
    cin = Const(0, 1)
    for c in range(-(-bits // 2)):
        ports = {}
        for h in (0, 1):
            i = 2 * c + h
            if i < a:
                ports.update({f"i_A{h}": x0[i], f"i_B{h}": w0, f"i_C{h}": x1[i],
                              f"i_D{h}": w1, f"p_INIT{h}": Const(_INIT_ANDXOR, 16)})
            else:
                # Above the operands the propagate is 0, so S = carry in.
                ports.update({f"i_A{h}": Const(0, 1), f"i_B{h}": Const(0, 1),
                              f"i_C{h}": Const(0, 1), f"i_D{h}": Const(0, 1),
                              f"p_INIT{h}": Const(0, 16)})
            ports[f"o_S{h}"] = out[i] if i < bits else Signal(name=f"{name}_nc{c}")
        cout = Signal(name=f"{name}_co{c}")
        m.submodules[f"{name}_ccu{c}"] = Instance(
            "CCU2C", p_INJECT1_0="NO", p_INJECT1_1="NO", i_CIN=cin, o_COUT=cout, **ports)
        cin = cout
    return out


class AndAddPair(Elaboratable):
    """Two serial-array cells summed: ``y = (w0 ? x0 : 0) + (w1 ? x1 : 0)``,
    combinational. Exists for the equivalence check of the CCU2C form against plain
    arithmetic (hw/equiv.py); :class:`MacArray` uses :func:`and_add_pair`.

    Parameters
    ----------
    abits : int
        Width of ``x0`` and ``x1``; ``y`` is one bit wider.
    fold : bool
        CCU2C cells (ECP5) or plain arithmetic.
    """

    def __init__(self, *, abits, fold):
        if not isinstance(abits, int) or abits < 1:
            self._MustUse__silence = True     # a rejected design is not "unused"
            raise ValueError(f"abits must be a positive integer, not {abits!r}")
        self._fold = bool(fold)
        self.w0, self.w1 = Signal(name="w0"), Signal(name="w1")
        self.x0, self.x1 = Signal(abits, name="x0"), Signal(abits, name="x1")
        self.y = Signal(abits + 1, name="y")

    def elaborate(self, platform):
        m = Module()
        s = and_add_pair(m, self.w0, self.x0, self.w1, self.x1, fold=self._fold, name="s")
        m.d.comb += self.y.eq(s)
        return m


def _tree_depth(n):
    depth = 0
    while n > 1:
        n = (n + 1) // 2
        depth += 1
    return depth


class MacArray(wiring.Component):
    """R lanes of C-input multiply-accumulate, bit-serial or bit-parallel in the weights.

    Parameters
    ----------
    rows, cols : int
        R lanes, C inputs per lane per cycle.
    abits : int
        A, activation width.
    acc_bits : int
        Accumulator width (``golden.arith.widths(...).acc_bits``).
    wbits : int
        Weight bits per cell per cycle: 1 for the bit-serial design, N for the baseline.
    fold_and : bool or None
        Serial design: build the first adder level from ECP5 CCU2C cells with the AND
        gates folded into their LUTs (:func:`and_add_pair`). ``None`` (default): when
        the platform is an ECP5 (:func:`fold_and_for`). Same cycle behaviour either way.

    Members
    -------
    valid, first, dbl, last : In(1)
        Cycle control: data valid; first cycle of a row tile; first chunk of a new plane
        (double the accumulator); last cycle of the tile.
    w : In(rows * cols * wbits)
        Weights: cell (r, c) at bits ``[(r*C + c)*wbits, +wbits)`` (serial: one plane bit).
    x : In(cols * abits)
        Activations: input c at bits ``[c*A, (c+1)*A)``.
    done : Out(1)
        High for one cycle when ``acc`` holds a finished tile; ``latency`` cycles after
        the ``last`` input cycle.
    acc : Out(ArrayLayout(acc_bits, rows))
        The accumulators.
    """

    def __init__(self, *, rows, cols, abits, acc_bits, wbits=1, fold_and=None):
        for name, v in (("rows", rows), ("cols", cols), ("abits", abits),
                        ("acc_bits", acc_bits), ("wbits", wbits)):
            if not isinstance(v, int) or v < 1:
                self._MustUse__silence = True     # a rejected design is not "unused"
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if not (fold_and is None or isinstance(fold_and, bool)):
            self._MustUse__silence = True
            raise ValueError(f"fold_and must be None, True or False, not {fold_and!r}")
        self._rows, self._cols, self._abits = rows, cols, abits
        self._acc_bits, self._wbits = acc_bits, wbits
        self._fold_and = fold_and
        super().__init__({
            "valid": In(1), "first": In(1), "dbl": In(1), "last": In(1),
            "w": In(rows * cols * wbits),
            "x": In(cols * abits),
            "done": Out(1),
            "acc": Out(data.ArrayLayout(acc_bits, rows)),
        })

    @property
    def tree_depth(self):
        return _tree_depth(self._cols)

    @property
    def product_stages(self):
        """Register stages after the products: two for full multipliers (the bit-parallel
        baseline: each multiplier's operands are registered per cell, then its product,
        as a careful user pipelines a multiplier so that the placer can put both register
        ranks next to the DSP block; a fair Fmax comparison), none for the serial design's
        AND gates."""
        return 2 if self._wbits > 1 else 0

    @property
    def latency(self):
        """Cycles from an input cycle to the accumulator update it causes, plus one."""
        return self.product_stages + self.tree_depth + 1

    def elaborate(self, platform):
        m = Module()
        R, C, A, WB = self._rows, self._cols, self._abits, self._wbits
        xs = [self.x[c * A:(c + 1) * A] for c in range(C)]
        # Control flags travel alongside the data through the registered tree levels.
        valid_d, first_d, dbl_d, last_d = (self._delay(m, s, name) for s, name in (
            (self.valid, "valid"), (self.first, "first"), (self.dbl, "dbl"), (self.last, "last")))
        pw = A if WB == 1 else A + WB
        fold = WB == 1 and (fold_and_for(platform) if self._fold_and is None
                            else self._fold_and)

        for r in range(R):
            # Level 0: one product per cell (AND for a plane bit; multiply for a full code,
            # operands and product registered: see ``product_stages``).
            level = []
            for c in range(C):
                wcell = self.w[(r * C + c) * WB:(r * C + c + 1) * WB]
                p = Signal(pw, name=f"p_{r}_{c}")
                if WB == 1:
                    m.d.comb += p.eq(Mux(wcell[0], xs[c], 0))
                else:
                    wq = Signal(WB, name=f"wq_{r}_{c}")
                    xq = Signal(A, name=f"xq_{r}_{c}")
                    m.d.sync += [wq.eq(wcell), xq.eq(xs[c]), p.eq(wq * xq)]
                level.append(p)
            lvl = 0
            while len(level) > 1:
                nxt = []
                for i in range(0, len(level), 2):
                    if i + 1 < len(level):
                        a, b = level[i], level[i + 1]
                        s = Signal(max(len(a), len(b)) + 1, name=f"s_{r}_{lvl}_{i // 2}",
                                   attrs={"keep": 1})
                        if lvl == 0 and fold:
                            # The same sum from the cells' weight bits and activations, the
                            # AND gates inside the carry cells' LUTs (a and b go unused).
                            m.d.sync += s.eq(and_add_pair(
                                m, self.w[r * C + i], xs[i], self.w[r * C + i + 1], xs[i + 1],
                                fold=True, name=f"pa_{r}_{i // 2}"))
                        else:
                            m.d.sync += s.eq(a + b)
                    else:
                        s = Signal(len(level[i]), name=f"s_{r}_{lvl}_{i // 2}",
                                   attrs={"keep": 1})
                        m.d.sync += s.eq(level[i])
                    nxt.append(s)
                level = nxt
                lvl += 1
            total = level[0]

            acc = self.acc[r]
            accr = Signal(self._acc_bits, name=f"acc_{r}")
            m.d.comb += acc.eq(accr)
            with m.If(valid_d):
                base = Mux(first_d, 0, Mux(dbl_d, accr << 1, accr))
                m.d.sync += accr.eq(base + total)

        m.d.sync += self.done.eq(valid_d & last_d)
        return m

    def _delay(self, m, sig, name):
        """``sig`` delayed by the product stages and the tree depth."""
        cur = sig
        for i in range(self.product_stages + self.tree_depth):
            nxt = Signal(len(sig), name=f"{name}_d{i + 1}")
            m.d.sync += nxt.eq(cur)
            cur = nxt
        return cur
