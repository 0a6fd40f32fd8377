"""8N1 UART receiver and transmitter for the board tops.

Both run from the ``sync`` clock with an integer ``divisor`` (clock cycles per bit). The
receiver re-times the pin through two flip-flops, starts on a falling edge, checks the
start bit at mid-bit, samples the 8 data bits (LSB first) at their middles and accepts a
byte only when the stop bit reads high; a byte with a bad stop bit is dropped and counted
in ``errors``. The baud error budget of 8N1 is about +-4 % over a frame, so any divisor of
16 or more gives a usable link (rounding the divisor costs at most 1/32).
"""

from amaranth import Module, Signal, Cat
from amaranth.lib import wiring, stream
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..golden.errors import ConfigError
from ..hw.lane import is_ice40

__all__ = ["UartRx", "UartTx", "uart_divisor", "MIN_DIVISOR"]

#: The smallest divisor the receiver accepts (it needs a mid-bit sample point).
MIN_DIVISOR = 4


def uart_divisor(clock_hz, baud):
    """Clock cycles per bit, rounded; raises ConfigError when the baud rate is unusable."""
    if baud <= 0 or clock_hz <= 0:
        raise ConfigError(f"baud and clock must be positive, not {baud!r} and {clock_hz!r}")
    div = round(clock_hz / baud)
    if div < MIN_DIVISOR:
        raise ConfigError(f"{baud} baud is too fast for a {clock_hz / 1e6:g} MHz clock "
                         f"(needs at least {MIN_DIVISOR} clocks per bit)")
    error = abs(clock_hz / div - baud) / baud
    if error > 0.02:
        raise ConfigError(f"{baud} baud from a {clock_hz / 1e6:g} MHz clock is off by "
                         f"{100 * error:.1f}% (at most 2% works reliably)")
    return div


def _check_divisor(divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be an integer >= {MIN_DIVISOR}, not {divisor!r}")


class UartRx(wiring.Component):
    """UART receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    rx : In(1)
        The serial input pin (idle high); it is synchronised here.
    o : Out(stream.Signature(8))
        Received bytes. There is no flow control on a UART: ``o.valid`` is a one-cycle
        pulse and the byte is lost if nothing takes it (``o.ready`` is ignored).
    errors : Out(8)
        Bytes dropped for a low stop bit (wraps).
    active : Out(1)
        A byte is being received.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    errors: Out(8)
    active: Out(1)

    def __init__(self, *, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        pin = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, pin, init=1)
        timer = Signal(range(div + div // 2 + 1))
        bit = Signal(range(9))
        shreg = Signal(8)
        m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~pin):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += self.active.eq(1)
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(pin):
                    m.next = "IDLE"          # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.active.eq(1)
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], pin)), timer.eq(div - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.comb += self.active.eq(1)
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(pin):
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        # Framing error: wait for the line to return high before the next
                        # start bit can be recognised.
                        m.d.sync += self.errors.eq(self.errors + 1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(pin):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """UART transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; one is taken whenever the transmitter is idle.
    tx : Out(1)
        The serial output pin (idle high, driven from a register).
    busy : Out(1)
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)
    busy: Out(1)

    def __init__(self, *, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        shreg = Signal(10)               # stop, data[7:0], start; shifted out LSB first
        left = Signal(range(11))         # bits not yet started
        # `busy` is a flip-flop: (left != 0) | (timer != 0) of the next state. As a
        # compare of the timer it began the ready chain into the bridge's response path
        # (Fmax at 150 MHz on the 85F).
        # `timer == 0` is a flip-flop too (`t_zero`; exact: it follows every change of the
        # timer), so that the timer's own compare does not sit in front of its
        # decrement and the shift register's enable (Fmax).
        # Off iCE40 `left != 0` is a flip-flop as well (`l_nz`, exact likewise): its
        # compare in front of the shift register's enables was a long path at 150 MHz
        # on the 25F. (iCE40 compares: its logic cells are all taken.)
        n_left = Signal.like(left)
        n_timer = Signal.like(timer)
        t_zero = Signal(init=1)
        n_zero = Signal()
        if is_ice40(platform):
            n_lnz = None
            left_nz, n_left_nz = left != 0, n_left != 0
        else:
            l_nz, n_lnz = Signal(), Signal()
            left_nz, n_left_nz = l_nz, n_lnz
            m.d.comb += n_lnz.eq(l_nz)
            m.d.sync += l_nz.eq(n_lnz)
        m.d.comb += [n_left.eq(left), n_timer.eq(timer), n_zero.eq(t_zero),
                     self.i.ready.eq(~self.busy)]
        m.d.sync += [left.eq(n_left), timer.eq(n_timer), t_zero.eq(n_zero),
                     self.busy.eq(n_left_nz | ~n_zero)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += shreg.eq(Cat(0, self.i.payload, 1))
            m.d.comb += n_left.eq(10)
            if n_lnz is not None:
                m.d.comb += n_lnz.eq(1)
        with m.Elif(~t_zero):
            m.d.comb += [n_timer.eq(timer - 1), n_zero.eq(timer == 1)]
        with m.Elif(left_nz):
            # Each bit is held for `div` cycles; `busy` covers the whole stop bit.
            m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg[1:])]
            m.d.comb += [n_left.eq(left - 1), n_timer.eq(div - 1), n_zero.eq(0)]
            if n_lnz is not None:
                m.d.comb += n_lnz.eq(left != 1)
        return m
