"""The serial bridge: UART bytes <-> the accelerator's 8-bit AXI4-Stream ports.

A serial link has no ``tlast``, so :class:`FrameDelimiter` frames requests itself from the
header's length field (docs/protocol.md section 2): bytes 2 and 3 of a frame are L, and the
frame is ``4 * (L + 2)`` bytes; ``tlast`` goes on the last one. If the line stays idle for
``timeout`` cycles in the middle of a frame, the delimiter ends the frame with one zero byte
carrying ``tlast``: the device then answers TRUNCATED (or BAD_CRC when only the very last
byte was lost), so a lost byte can never hang the link and host and device are back in
step for the next frame.

:class:`AnyprecUartTop` is the whole board design without clocking or pins:
``UartRx -> FrameDelimiter -> FIFO -> AnyprecTop(stream_width=8) -> UartTx``, plus status
LEDs (heartbeat, busy, error). Board tops (boards/top.py) add the PLL, reset and pins;
the cocotb UART test simulates this module directly.
"""

from amaranth import Module, Signal, Cat, Const, Mux
from amaranth.lib import wiring, stream
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.back import verilog

from ..golden.errors import ConfigError
from ..hw.config import AnyprecConfig
from ..hw.lane import is_ice40
from ..hw.stream import beat_stream
from ..hw.top import AnyprecTop
from .uart import UartRx, UartTx, _check_divisor

__all__ = ["FrameDelimiter", "AnyprecUartTop", "generate_uart_verilog", "MAX_FRAME_BYTES"]

#: Largest frame in bytes: header, 65535 payload words, CRC.
MAX_FRAME_BYTES = 4 * (0xFFFF + 2)


class FrameDelimiter(wiring.Component):
    """Add ``tlast`` to a byte stream of request frames.

    Parameters
    ----------
    timeout : int
        Idle cycles inside a frame after which the frame is ended (at least 1).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes, one-cycle ``valid`` pulses at least 3 cycles apart (a UART receiver);
        ``i.ready`` is always high.
    o : Out(beat_stream(8))
        Beats with ``last``. When ``o.ready`` is low a byte is dropped (counted in
        ``dropped``); a dropped ``last``, like a timeout, is replaced by a zero byte with
        ``last`` as soon as ``o.ready`` returns, so every frame is terminated.
    in_frame : Out(1)
        Part of a frame has arrived.
    timeouts, dropped : Out(8)
        Event counters (wrap).
    """

    i: In(stream.Signature(8))
    o: Out(beat_stream(8))
    in_frame: Out(1)
    timeouts: Out(8)
    dropped: Out(8)

    def __init__(self, *, timeout):
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            raise ValueError(f"timeout must be a positive integer, not {timeout!r}")
        self._timeout = timeout
        super().__init__()

    @property
    def timeout(self):
        return self._timeout

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(MAX_FRAME_BYTES + 1))    # bytes of this frame so far
        # Index of the byte before the frame's last, once bytes 2-3 are in: the frame size
        # minus two, one bit wider so that a size of 0 (wrapped) never matches. Stored
        # instead of the size so that the per-byte test is a compare of two registers,
        # not an add and a compare (Fmax).
        last_m1 = Signal(len(count) + 1)
        len_lo = Signal(8)
        idle = Signal(range(self._timeout + 1))
        owe = Signal()                                # a terminating zero byte is due
        held = Signal()                               # a byte waits one cycle behind it
        held_data = Signal(8)
        held_last = Signal()

        # On iCE40 ``count != 0`` and ``idle == timeout - 1`` are flip-flops (`nz`,
        # `idle_end`), exact: set with count and idle (the two compares in front of the
        # counters' enables were the delimiter's long paths at 50 MHz, docs/boards.md).
        ice40 = is_ice40(platform)
        if ice40:
            nz = Signal()
            idle_end = Signal(init=int(self._timeout == 1))
        else:
            nz, idle_end = count != 0, idle == self._timeout - 1
        m.d.comb += [self.i.ready.eq(1), self.in_frame.eq(nz)]

        # Output: the owed terminator first, then the held byte.
        with m.If(owe):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.data.eq(0),
                         self.o.payload.last.eq(1)]
            with m.If(self.o.ready):
                m.d.sync += owe.eq(0)
        with m.Elif(held):
            m.d.sync += held.eq(0)
            with m.If(self.o.ready):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.data.eq(held_data),
                             self.o.payload.last.eq(held_last)]
            with m.Else():
                m.d.sync += self.dropped.eq(self.dropped + 1)
                with m.If(held_last):
                    m.d.sync += owe.eq(1)

        # Input: count the byte, find the frame size, mark the last byte.
        # is_last (this byte, number `count`, is the frame's last, size - 1) is a
        # flip-flop, exact: it is recomputed for the next count whenever the count
        # changes (the compare in front of the count's own multiplexer was a long path,
        # Fmax). The size is a multiple of 4 and at least 8, so byte 4 is never the last
        # and the new last_m1 need not be looked at in the same cycle.
        # Off iCE40 the test itself is a flip-flop too (`hit`), the compare in front of
        # is_last being a long path at 150 MHz on the 85F. It is a cycle behind its
        # operands, which change only with a byte or a timeout: bytes come at least 3
        # cycles apart, and a timeout at least a cycle after a byte, so it has settled
        # by the next byte. Its `count == last_m1` is `count >= last_m1` (one carry
        # chain; a 20-bit equality was three LUT levels): from byte 4 on last_m1 is this
        # frame's, and the count passes it only with the last byte, where ~is_last
        # masks the test. (iCE40 compares for equality, in the same cycle: cells.)
        is_last = Signal()
        if ice40:
            hit = (count >= 4) & (count == last_m1)
        else:
            hit = Signal()
            m.d.sync += hit.eq((count >= 4) & (count >= last_m1))
        with m.If(self.i.valid):
            m.d.sync += [held.eq(1), held_data.eq(self.i.payload), held_last.eq(is_last),
                         idle.eq(0), count.eq(Mux(is_last, 0, count + 1)),
                         is_last.eq(~is_last & hit)]
            with m.If(count == 2):
                m.d.sync += len_lo.eq(self.i.payload)
            with m.If(count == 3):
                size = ((Cat(len_lo, self.i.payload) + 2) << 2)[:len(count)]
                m.d.sync += last_m1.eq(size - 2)
            if ice40:
                m.d.sync += [nz.eq(~is_last), idle_end.eq(self._timeout == 1)]
        with m.Elif(nz):
            with m.If(idle_end):
                m.d.sync += [owe.eq(1), count.eq(0), idle.eq(0), is_last.eq(0),
                             self.timeouts.eq(self.timeouts + 1)]
                if ice40:
                    m.d.sync += [nz.eq(0), idle_end.eq(self._timeout == 1)]
            with m.Else():
                m.d.sync += idle.eq(idle + 1)
                if ice40:
                    m.d.sync += idle_end.eq(idle == self._timeout - 2)
        return m


class AnyprecUartTop(wiring.Component):
    """The accelerator behind a UART, with status LEDs (no clocking, no pins).

    Parameters
    ----------
    cfg : AnyprecConfig
        Must have ``stream_width=8``.
    divisor : int
        Clock cycles per UART bit (``clock_hz / baud``).
    timeout : int
        Inter-byte timeout in cycles (see :class:`FrameDelimiter`).
    fifo_depth : int
        Request bytes buffered while the core is busy (off iCE40 one fewer: a byte goes
        in only while two entries are free).
    heartbeat_bits : int
        The heartbeat LED toggles every ``2**(heartbeat_bits-1)`` cycles.
    stretch_bits : int
        The busy LED stays on ``2**stretch_bits`` cycles after activity, to be visible.

    Members
    -------
    rx : In(1), tx : Out(1)
        UART pins, idle high.
    led_heartbeat, led_busy, led_error : Out(1)
        Heartbeat; a frame is being received, executed or answered; the last response
        carried a non-OK status.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    led_heartbeat: Out(1)
    led_busy: Out(1)
    led_error: Out(1)

    def __init__(self, cfg, *, divisor, timeout, fifo_depth=64, heartbeat_bits=24,
                 stretch_bits=20):
        try:
            self._validate(cfg, divisor, timeout, fifo_depth, heartbeat_bits, stretch_bits)
        except Exception:
            self._MustUse__silence = True     # a rejected design is not "unused"
            raise
        self._cfg = cfg
        self._divisor = divisor
        self._timeout = timeout
        self._fifo_depth = fifo_depth
        self._heartbeat_bits = heartbeat_bits
        self._stretch_bits = stretch_bits
        super().__init__()

    @staticmethod
    def _validate(cfg, divisor, timeout, fifo_depth, heartbeat_bits, stretch_bits):
        if not isinstance(cfg, AnyprecConfig):
            raise TypeError(f"cfg must be an AnyprecConfig, not {type(cfg).__name__}")
        if cfg.stream_width != 8:
            raise ConfigError(f"a serial board top needs stream_width=8, not "
                              f"{cfg.stream_width}")
        _check_divisor(divisor)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            raise ValueError(f"timeout must be a positive integer, not {timeout!r}")
        for name, v, lo in (("fifo_depth", fifo_depth, 2), ("heartbeat_bits", heartbeat_bits, 1),
                            ("stretch_bits", stretch_bits, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")

    @property
    def cfg(self):
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = UartRx(divisor=self._divisor)
        m.submodules.utx = utx = UartTx(divisor=self._divisor)
        m.submodules.delim = delim = FrameDelimiter(timeout=self._timeout)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=9, depth=self._fifo_depth)
        # (paced_out: the UART takes a byte per 10 bit times; the response adapter's
        # ready chain from the transmitter's busy was a long path at 150 MHz.)
        m.submodules.dut = dut = AnyprecTop(self._cfg, paced_out=True)

        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.o, delim.i)
        # Off iCE40 "the FIFO has room" is a flip-flop: at least two entries were free a
        # cycle ago, so one is free now (a byte a cycle at most goes in). The FIFO's
        # level compare, the delimiter's output and the FIFO's write enables in one
        # cycle were a long path at 150 MHz on the 45F. (iCE40: the FIFO's w_rdy.)
        if is_ice40(platform):
            w_en, room = delim.o.valid, fifo.w_rdy
        else:
            room = Signal()
            m.d.sync += room.eq(fifo.level < self._fifo_depth - 1)
            w_en = delim.o.valid & room
        m.d.comb += [
            fifo.w_data.eq(Cat(delim.o.payload.data, delim.o.payload.last)),
            fifo.w_en.eq(w_en), delim.o.ready.eq(room),
            dut.s_axis_tdata.eq(fifo.r_data[:8]), dut.s_axis_tlast.eq(fifo.r_data[8]),
            dut.s_axis_tvalid.eq(fifo.r_rdy), fifo.r_en.eq(dut.s_axis_tready),
            utx.i.payload.eq(dut.m_axis_tdata), utx.i.valid.eq(dut.m_axis_tvalid),
            dut.m_axis_tready.eq(utx.i.ready),
        ]

        # Error LED: the status code is byte 4 of every response frame.
        rsp_idx = Signal(3)
        with m.If(dut.m_axis_tvalid & dut.m_axis_tready):
            with m.If(dut.m_axis_tlast):
                m.d.sync += rsp_idx.eq(0)
            with m.Elif(rsp_idx != 5):
                m.d.sync += rsp_idx.eq(rsp_idx + 1)
            with m.If(rsp_idx == 4):
                m.d.sync += self.led_error.eq(dut.m_axis_tdata != 0)

        beat = Signal(self._heartbeat_bits)
        m.d.sync += beat.eq(beat + 1)
        m.d.comb += self.led_heartbeat.eq(beat[-1])

        stretch = Signal(self._stretch_bits)    # (the iCE40 form's is one bit wider)
        # `active` is sampled into a flip-flop first (a cycle late for an LED): as a
        # combination of the stream handshakes it fanned out to the 20-bit counter
        # (Fmax at 150 MHz).
        active = Signal()
        m.d.sync += active.eq(delim.in_frame | fifo.r_rdy | ~dut.s_axis_tready |
                              dut.m_axis_tvalid | utx.busy)
        if is_ice40(platform):
            # One bit more, counting down through 0 to -1: "still stretching" is the
            # top bit, a flip-flop, not an OR of every bit in front of the counter's
            # enable (five LUTs, late at 50 MHz on the UP5K). One cycle longer.
            stretch = Signal(self._stretch_bits + 1, init=-1, name="stretch")
            running, full = ~stretch[-1], (1 << self._stretch_bits) - 1
        else:
            running, full = stretch != 0, -1
        with m.If(active):
            m.d.sync += stretch.eq(full)
        with m.Elif(running):
            m.d.sync += stretch.eq(stretch - 1)
        m.d.comb += self.led_busy.eq(active | running)
        return m


def generate_uart_verilog(cfg, *, divisor, timeout, name="anyprec_uart_top",
                          target="generic", **kw):
    """Verilog of :class:`AnyprecUartTop` (clock ``clk``, synchronous reset ``rst``) for
    one of ``hw.config.TARGETS`` (``"ice40"``: what an iCE40 board build carries)."""
    from ..hw.top import target_platform
    top = AnyprecUartTop(cfg, divisor=divisor, timeout=timeout, **kw)
    return verilog.convert(top, name=name, platform=target_platform(target), emit_src=False)
