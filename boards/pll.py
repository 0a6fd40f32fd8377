"""PLL parameter solvers and instances (iCE40 SB_PLL40_PAD, ECP5 EHXPLLL).

The solvers search the divider space the same way ``icepll`` and ``ecppll`` (the
IceStorm / Trellis tools) do and return the exact output frequency, which the board top
uses for the UART divisor and the timing constraint.
"""

from dataclasses import dataclass

from amaranth import Instance

from ..golden.errors import ConfigError

__all__ = ["Ice40Pll", "Ecp5Pll", "ice40_pll", "ecp5_pll", "PllError", "ice40_pll_instance",
           "ecp5_pll_instance"]


class PllError(ConfigError):
    """No PLL setting produces the requested frequency."""


@dataclass(frozen=True)
class Ice40Pll:
    divr: int
    divf: int
    divq: int
    filter_range: int
    fin_mhz: float
    fout_mhz: float


@dataclass(frozen=True)
class Ecp5Pll:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    fin_mhz: float
    fout_mhz: float

    @property
    def fvco_mhz(self):
        return self.fout_mhz * self.clkop_div


def ice40_pll(fin_mhz, fout_mhz, tolerance=0.02):
    """Closest SB_PLL40 (SIMPLE feedback) setting; PllError if off by more than
    ``tolerance`` (relative)."""
    best = None
    for divr in range(16):
        fpfd = fin_mhz / (divr + 1)
        if not 10 <= fpfd <= 133:
            continue
        for divf in range(128):
            fvco = fpfd * (divf + 1)
            if not 533 <= fvco <= 1066:
                continue
            for divq in range(1, 7):
                fout = fvco / (1 << divq)
                if not 16 <= fout <= 275:          # SB_PLL40 output range
                    continue
                if best is None or abs(fout - fout_mhz) < abs(best[0] - fout_mhz):
                    best = (fout, divr, divf, divq, fpfd)
    if best is None or abs(best[0] - fout_mhz) > tolerance * fout_mhz:
        raise PllError(f"an iCE40 PLL cannot make {fout_mhz:g} MHz from {fin_mhz:g} MHz")
    fout, divr, divf, divq, fpfd = best
    fr = next(i for i, lim in enumerate((17, 26, 44, 66, 101, 1e9), start=1) if fpfd < lim)
    return Ice40Pll(divr, divf, divq, fr, fin_mhz, fout)


def ecp5_pll(fin_mhz, fout_mhz, tolerance=0.02):
    """Closest EHXPLLL setting (CLKOP feedback); PllError if off by more than
    ``tolerance``."""
    best = None
    for clki in range(1, 129):
        fpfd = fin_mhz / clki
        if not 3.125 <= fpfd <= 400:
            continue
        for fb in range(1, 81):
            fout = fpfd * fb
            if not 3.125 <= fout <= 400:
                continue
            for op in range(1, 129):
                fvco = fout * op
                if 400 <= fvco <= 800:
                    break
            else:
                continue
            if best is None or abs(fout - fout_mhz) < abs(best[0] - fout_mhz):
                best = (fout, clki, fb, op)
    if best is None or abs(best[0] - fout_mhz) > tolerance * fout_mhz:
        raise PllError(f"an ECP5 PLL cannot make {fout_mhz:g} MHz from {fin_mhz:g} MHz")
    fout, clki, fb, op = best
    return Ecp5Pll(clki, fb, op, fin_mhz, fout)


def ice40_pll_instance(p: Ice40Pll, pad, clk_out, locked):
    """SB_PLL40_PAD fed from the (dedicated) clock pad ``pad`` (an IO port)."""
    return Instance(
        "SB_PLL40_PAD",
        p_FEEDBACK_PATH="SIMPLE",
        p_DIVR=p.divr, p_DIVF=p.divf, p_DIVQ=p.divq, p_FILTER_RANGE=p.filter_range,
        i_PACKAGEPIN=pad,
        i_RESETB=1, i_BYPASS=0,
        o_PLLOUTGLOBAL=clk_out, o_LOCK=locked,
    )


def ecp5_pll_instance(p: Ecp5Pll, clk_in, clk_out, locked):
    """EHXPLLL with CLKOP feedback (the configuration ``ecppll`` writes)."""
    return Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{p.fin_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{p.fout_mhz:.6g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
        a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
        p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.clkop_div,
        p_CLKOP_CPHASE=p.clkop_div - 1, p_CLKOP_FPHASE=0,
        p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p.clkfb_div,
        i_RST=0, i_STDBY=0, i_CLKI=clk_in, o_CLKOP=clk_out, i_CLKFB=clk_out,
        i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
        i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
    )
