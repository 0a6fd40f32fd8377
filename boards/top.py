"""Board tops: PLL, reset, UART pins and LEDs around :class:`AnyprecUartTop`.

The board oscillator feeds a PLL that makes the design clock (the board's ``target_mhz``
unless overridden); the reset is held until the PLL has locked and a few thousand cycles
have passed (iCE40 block RAM must not be used in the first microseconds after
configuration). The UART divisor is computed from the PLL's exact output frequency.
"""

from amaranth import Module, Signal, ClockDomain, Elaboratable
from amaranth.lib import io

from .bridge import AnyprecUartTop
from .pll import ice40_pll, ecp5_pll, ice40_pll_instance, ecp5_pll_instance
from .registry import Board
from .uart import uart_divisor

__all__ = ["BoardTop", "DEFAULT_BAUD", "DEFAULT_TIMEOUT_MS", "clock_plan", "link_plan"]

#: Default UART speed: every USB-serial bridge on these boards does it.
DEFAULT_BAUD = 115200
#: Inter-byte timeout that ends a partial request frame.
DEFAULT_TIMEOUT_MS = 50


def clock_plan(board: Board, target_mhz=None):
    """(pll settings or None, exact design clock in MHz) for ``board``."""
    f = board.target_mhz if target_mhz is None else float(target_mhz)
    if board.family == "ice40":
        p = ice40_pll(board.osc_mhz, f)
        return p, p.fout_mhz
    if board.family == "ecp5":
        p = ecp5_pll(board.osc_mhz, f)
        return p, p.fout_mhz
    return None, board.osc_mhz


def link_plan(board: Board, target_mhz=None, baud=DEFAULT_BAUD):
    """(pll settings or None, exact design clock in MHz, UART divisor) for ``board``; a
    ConfigError when the PLL cannot make the clock or the baud rate is unusable at it.
    BoardTop's own check, and ``anyprec build --board all``'s for every board at once."""
    pll, clock_mhz = clock_plan(board, target_mhz)
    return pll, clock_mhz, uart_divisor(clock_mhz * 1e6, baud)


class BoardTop(Elaboratable):
    """The accelerator on a board: clocking, reset, UART and LEDs.

    Parameters
    ----------
    board : Board
    cfg : AnyprecConfig
        ``stream_width`` must be 8.
    target_mhz : float, optional
        Design clock (default: the board's ``target_mhz``).
    baud : int
    timeout_ms : float
        Inter-byte timeout inside a request frame.
    """

    def __init__(self, board, cfg, *, target_mhz=None, baud=DEFAULT_BAUD,
                 timeout_ms=DEFAULT_TIMEOUT_MS):
        self.board = board
        self.cfg = cfg
        try:
            self.pll, self.clock_mhz, self.divisor = link_plan(board, target_mhz, baud)
            self.baud = baud
            self.timeout = max(1, int(self.clock_mhz * 1e3 * timeout_ms))
            # Built here so that parameter errors surface before synthesis.
            self.core = AnyprecUartTop(
                cfg, divisor=self.divisor, timeout=self.timeout,
                heartbeat_bits=max(2, int(self.clock_mhz * 1e6).bit_length() - 1))
        except Exception:
            # A refused parameter: this half-made top is no design, so Amaranth's
            # "created but never used" warning (at garbage collection, often in a later
            # command or test) would only be noise after the one-line error.
            self._MustUse__silence = True
            raise

    def elaborate(self, platform):
        m = Module()
        board = self.board
        m.domains.sync = cd = ClockDomain("sync")
        locked = Signal()
        if board.family == "ice40":
            pad = platform.request(board.clock_resource, 0, dir="-")
            m.submodules.pll = ice40_pll_instance(self.pll, pad.io, cd.clk, locked)
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer(
                "i", platform.request(board.clock_resource, 0, dir="-"))
            if board.family == "ecp5":
                m.submodules.pll = ecp5_pll_instance(self.pll, clk_buf.i, cd.clk, locked)
            else:
                m.d.comb += [cd.clk.eq(clk_buf.i), locked.eq(1)]
        if self.pll is None:
            platform.add_clock_constraint(cd.clk, self.clock_mhz * 1e6)
        # With a PLL, nextpnr derives the output clock's constraint from the oscillator's
        # and the PLL's dividers (naming the PLL net here would not survive synthesis).

        # Power-on / lock reset: not itself reset, counts while the PLL is locked.
        por = Signal(12, reset_less=True)
        with m.If(~locked):
            m.d.sync += por.eq(0)
        with m.Elif(~por.all()):
            m.d.sync += por.eq(por + 1)
        # The reset reaches every flip-flop: drive it from a flip-flop, not from the
        # counter's 12-input AND (that net was the critical path, docs/boards.md).
        rst = Signal(reset_less=True, init=1)
        m.d.sync += rst.eq(~por.all())
        m.d.comb += cd.rst.eq(rst)

        m.submodules.core = core = self.core
        # Every subsignal raw ("-"): the ULX3S's UART also has rts and dtr, which the
        # design leaves unused; requesting them without a direction is deprecated.
        uart = platform.request("uart", 0,
                                dir={sub.name: "-" for sub in platform.lookup("uart", 0).ios})
        m.submodules.uart_rx = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx)]

        requested = {}
        for role, sig in (("heartbeat", core.led_heartbeat), ("busy", core.led_busy),
                          ("error", core.led_error)):
            spec = board.leds.get(role)
            if spec is None:
                continue
            key = (spec[0], spec[1])
            if key not in requested:
                requested[key] = platform.request(spec[0], spec[1], dir="-")
            port = requested[key]
            port = getattr(port, spec[2]) if len(spec) > 2 else port
            buf = io.Buffer("o", port)
            m.submodules[f"led_{role}"] = buf
            m.d.comb += buf.o.eq(sig)
        return m
