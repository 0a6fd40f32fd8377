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
"""

from amaranth import Module, Signal, Mux, Cat
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

__all__ = ["MacArray"]


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

    def __init__(self, *, rows, cols, abits, acc_bits, wbits=1):
        for name, v in (("rows", rows), ("cols", cols), ("abits", abits),
                        ("acc_bits", acc_bits), ("wbits", wbits)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self._rows, self._cols, self._abits = rows, cols, abits
        self._acc_bits, self._wbits = acc_bits, wbits
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
        """Register stages after the products: one for full multipliers (the bit-parallel
        baseline, so that its multipliers are pipelined like the serial array's adder
        tree, a fair Fmax comparison), none for the serial design's AND gates."""
        return 1 if self._wbits > 1 else 0

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

        for r in range(R):
            # Level 0: one product per cell (AND for a plane bit, multiply for a full code,
            # registered: see ``product_stages``).
            level = []
            for c in range(C):
                wcell = self.w[(r * C + c) * WB:(r * C + c + 1) * WB]
                p = Signal(pw, name=f"p_{r}_{c}")
                if WB == 1:
                    m.d.comb += p.eq(Mux(wcell[0], xs[c], 0))
                else:
                    m.d.sync += p.eq(wcell * xs[c])
                level.append(p)
            lvl = 0
            while len(level) > 1:
                nxt = []
                for i in range(0, len(level), 2):
                    if i + 1 < len(level):
                        a, b = level[i], level[i + 1]
                        s = Signal(max(len(a), len(b)) + 1, name=f"s_{r}_{lvl}_{i // 2}",
                                   attrs={"keep": 1})
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
