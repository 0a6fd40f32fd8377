"""Frame receive and transmit (docs/protocol.md sections 2 and 3).

``RxFramer`` splits the request word stream into header, payload and a verdict:
OK, TRUNCATED (``last`` before the CRC word), OVERSIZE (no ``last`` on the CRC word; the
rest of the frame is dropped) or BAD_CRC. The controller sees every payload word as it
arrives but acts on the frame only after ``end``, so a bad frame can be refused whole.

``TxFramer`` wraps a payload stream in a response frame: header, exactly ``length``
payload words, then the CRC with ``last``. Its output is registered (AXI4-Stream rule:
``valid`` never waits for ``ready``, and nothing changes while a beat is stalled).
"""

from amaranth import Module, Signal, Mux, Cat
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from ..host.protocol import Status
from .crc import Crc32
from .stream import WORD_STREAM

__all__ = ["RxFramer", "TxFramer"]


class RxFramer(wiring.Component):
    """Request framing and CRC check.

    Members
    -------
    i : In(WORD_STREAM)
    hold : In(1)
        The controller cannot take a payload word this cycle.
    release : In(1)
        The controller is done with the frame (response sent); accept the next header.
    hdr : Out(1)
        Pulse: the header word is on ``word`` this cycle.
    pay : Out(1)
        Pulse: payload word number ``idx`` (1-based) is on ``word`` this cycle.
    word : Out(32)
        The word being taken (valid with ``hdr`` or ``pay``).
    idx : Out(16)
    length : Out(16)
        Payload length from the header (valid after ``hdr``).
    end : Out(1)
        Pulse: the frame is over, ``verdict`` is final.
    verdict : Out(8)
        ``Status.OK``, ``TRUNCATED``, ``OVERSIZE`` or ``BAD_CRC``.
    idle : Out(1)
        Waiting for a header.

    Parameters
    ----------
    serial_crc : bool
        The bit-serial CRC (hw/crc.py, staged): a payload or CRC word is taken only once
        the previous word is absorbed, one word per 35 cycles (iCE40 builds).
    """
    i: In(WORD_STREAM)
    hold: In(1)
    release: In(1)
    hdr: Out(1)
    pay: Out(1)
    word: Out(32)
    idx: Out(16)
    length: Out(16)
    end: Out(1)
    verdict: Out(8)
    idle: Out(1)

    def __init__(self, *, serial_crc=False):
        self._serial_crc = bool(serial_crc)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = Crc32(serial=self._serial_crc, staged=True)
        take = Signal()
        last = self.i.payload.last
        data = self.i.payload.data
        m.d.comb += [take.eq(self.i.valid & self.i.ready), self.word.eq(data)]
        # With the parallel CRC, a word is absorbed the cycle after its take, from a
        # register (the staged CRC's share of it, hw/crc.py), and the CRC word is
        # compared in state CHK, from a register (``word_r``, loaded in every cycle): the
        # take (valid, hold, state) in front of the CRC's 32 enables, the whole XOR tree
        # of state and word, and the incoming word's compare in front of the verdict,
        # were long paths at 150 MHz (Fmax). One cycle more per frame.
        serial = self._serial_crc
        absorb = Signal()
        m.d.comb += [crc.data.eq(data), crc.en.eq(absorb)]
        if not serial:
            word_r = Signal(32)
            m.d.sync += word_r.eq(data)

        # Serial CRC: the ready of each state from flip-flops, a cycle behind (a word
        # takes 35 cycles here anyway): ``rdy_pay`` for PAY (ANDed with ``hold``),
        # ``rdy_any`` for HDR, CRCW and DRAIN. Exact: no state change but by a take
        # (after which both are low) makes a state ready sooner, and the CRC becomes
        # busy only by a take. (The CRC's busy and the state decode in front of the
        # take, which enables the CRC, the counters and the upstream FIFO's read, were
        # the UP5K boards' longest paths, docs/boards.md.)
        rdy_pay, rdy_any = Signal(), Signal()
        if serial:
            m.d.sync += [rdy_pay.eq(0), rdy_any.eq(0)]

        def ready(value, pay=False):
            # (``pay``: PAY's ready, which the controller's ``hold`` also gates)
            if not serial:
                m.d.comb += self.i.ready.eq(~self.hold & value if pay else value)
                return
            m.d.comb += self.i.ready.eq(rdy_pay & ~self.hold if pay else rdy_any)
            m.d.sync += (rdy_pay if pay else rdy_any).eq(value & ~take)

        no_pay = Signal()                       # the header's length is 0
        at_last = Signal()                      # idx == length
        len_m1 = Signal(16)                     # length - 1
        # Each state's take (serial CRC): in PAY the ready is ``rdy_pay & ~hold``, in the
        # other states ``rdy_any`` alone (each is low outside its states), so the takes
        # are spelt from those and the input's valid, not from the shared ready: synthesis
        # merged the two, and the header registers' and the payload index's enables came
        # out five LUTs deep, late at 50 MHz on the UP5K.
        if serial:
            take_any, take_pay = Signal(), Signal()
            m.d.comb += [take_any.eq(self.i.valid & rdy_any),
                         take_pay.eq(self.i.valid & rdy_pay & ~self.hold)]
        else:
            take_any = take_pay = take
        with m.FSM():
            with m.State("HDR"):
                # The CRC is already clear here (END and DONE clear it, and a frame always
                # passes through both): clearing it again on ~take put the input's valid
                # in front of the 32 CRC flip-flops' resets (Fmax).
                m.d.comb += [self.idle.eq(1), absorb.eq(take_any), self.hdr.eq(take_any)]
                ready(1)
                with m.If(take_any):
                    hlen = data[16:32]
                    m.d.sync += [self.length.eq(hlen), self.idx.eq(1),
                                 self.verdict.eq(Status.OK)]
                    if not serial:
                        m.d.sync += [no_pay.eq(hlen == 0), at_last.eq(hlen == 1),
                                     len_m1.eq(hlen - 1)]
                    with m.If(last):
                        m.d.sync += self.verdict.eq(Status.TRUNCATED)
                        m.next = "END"
                    with m.Else():
                        if serial:
                            with m.If(hlen == 0):
                                m.next = "CRCW"
                            with m.Else():
                                m.next = "PAY"
                        else:
                            m.next = "LEN"
            if not serial:
                with m.State("LEN"):
                    # One cycle to choose PAY or CRCW from a registered flag: the length
                    # compare of the incoming header word in front of the state register
                    # was a long path at 150 MHz, and so was that flag in front of PAY's
                    # ready. (at_last, "word idx is the last", is a flip-flop for the same
                    # reason.) The serial-CRC (iCE40) form compares directly (cells).
                    m.next = "PAY"
                    with m.If(no_pay):
                        m.next = "CRCW"
            with m.State("PAY"):
                m.d.comb += [absorb.eq(take_pay), self.pay.eq(take_pay)]
                ready(~crc.busy, pay=True)
                if serial:
                    m.d.comb += at_last.eq(self.idx == self.length)
                with m.If(take_pay):
                    m.d.sync += self.idx.eq(self.idx + 1)
                    if not serial:
                        m.d.sync += at_last.eq(self.idx == len_m1)
                    with m.If(last):
                        m.d.sync += self.verdict.eq(Status.TRUNCATED)
                        m.next = "END"
                    with m.Elif(at_last):
                        m.next = "CRCW"
            with m.State("CRCW"):
                ready(~crc.busy)
                with m.If(take_any):
                    with m.If(~last):
                        m.d.sync += self.verdict.eq(Status.OVERSIZE)
                        m.next = "DRAIN"
                    with m.Else():
                        if serial:
                            with m.If(data != crc.value):
                                m.d.sync += self.verdict.eq(Status.BAD_CRC)
                            m.next = "END"
                        else:
                            m.next = "CHK"
            if not serial:
                # word_r is the CRC word; the last payload word was absorbed by now (in
                # the cycle the CRC word was taken, at the latest). Compared byte by byte
                # into flags (CHK), then the verdict (CHK2): a 32-bit compare in front of
                # the verdict was a long path too.
                diff = Signal(4)
                with m.State("CHK"):
                    m.d.sync += diff.eq(Cat(*[word_r[8 * b:8 * b + 8] !=
                                              crc.value[8 * b:8 * b + 8] for b in range(4)]))
                    m.next = "CHK2"
                with m.State("CHK2"):
                    with m.If(diff.any()):
                        m.d.sync += self.verdict.eq(Status.BAD_CRC)
                    m.next = "END"
            with m.State("DRAIN"):
                ready(1)
                with m.If(take_any & last):
                    m.next = "END"
            with m.State("END"):
                # Clear here too: the next header may be taken in the first HDR cycle.
                m.d.comb += [self.end.eq(1), crc.clear.eq(1)]
                m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += crc.clear.eq(1)
                with m.If(self.release):
                    m.next = "HDR"
        return m


class TxFramer(wiring.Component):
    """Response framing: header, ``length`` payload words from ``i``, CRC.

    Members
    -------
    go : In(1)
        Start a frame; ``op``, ``tag``, ``length`` are sampled in this cycle.
    op, tag : In(8)
    length : In(16)
    i : In(stream.Signature(32))
        Payload words.
    o : Out(WORD_STREAM)
    busy : Out(1)
        From ``go`` until the CRC word has been accepted downstream... of the register.

    Parameters
    ----------
    serial_crc : bool
        The bit-serial CRC (hw/crc.py): a word is pushed only once the previous one is
        absorbed, one word per 35 cycles (iCE40 builds).
    """
    go: In(1)
    op: In(8)
    tag: In(8)
    length: In(16)
    i: In(stream.Signature(32))
    o: Out(WORD_STREAM)
    busy: Out(1)

    def __init__(self, *, serial_crc=False):
        self._serial_crc = bool(serial_crc)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = Crc32(serial=self._serial_crc)
        free = Signal()
        pending = Signal()
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # A pushed word is absorbed into the CRC the cycle after, from the output
        # register: the payload may come straight from block RAM (the response FIFO),
        # and RAM + multiplexer + CRC in one cycle was a critical path (Fmax). The FSM
        # spends a cycle in PAY with ``left == 0`` before CRC, so the CRC is complete.
        # The serial CRC takes a word only when idle: no push while one is pending or
        # being absorbed (the CRC word waits for the last one the same way).
        if self._serial_crc:
            # ... and only into an empty output register: the output's ready (the UART
            # transmitter's, through the narrowing adapter) then does not reach ``i.ready``
            # and the result FIFO behind it, the UP5K boards' longest chain. At most one
            # cycle more per word (after a stalled output), of the 35 a word takes.
            m.d.comb += free.eq(~self.o.valid & ~pending & ~crc.busy)
            rdy = Signal()          # i.ready, registered (state PAY, below)
            m.d.sync += rdy.eq(0)
        else:
            m.d.comb += free.eq(~self.o.valid | self.o.ready)
        m.d.sync += pending.eq(0)
        # The data in every cycle, only the enable from `pending` (gating the data with
        # it put `pending` in front of the CRC's XOR trees: Fmax).
        m.d.comb += [crc.en.eq(pending), crc.data.eq(self.o.payload.data)]

        def push(value, last=False, absorb=True):
            m.d.sync += [self.o.payload.data.eq(value), self.o.payload.last.eq(last),
                         self.o.valid.eq(1)]
            if absorb:
                m.d.sync += pending.eq(1)

        left = Signal(16)
        # left == 0 as a flip-flop, exact: set with left, and from left == 1 on a push
        # (a 16-bit compare in front of ``i.ready``, and so of the response source's
        # multiplexer and FIFO slice, was a long path, Fmax).
        left_zero = Signal()
        header = Signal(32)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += crc.clear.eq(1)
                with m.If(self.go):
                    m.d.sync += [header.eq(self.op | (self.tag << 8) | (self.length << 16)),
                                 left.eq(self.length), left_zero.eq(self.length == 0)]
                    m.next = "HDR"
            with m.State("HDR"):
                m.d.comb += self.busy.eq(1)
                with m.If(free):
                    push(header)
                    m.next = "PAY"
            with m.State("PAY"):
                m.d.comb += self.busy.eq(1)
                with m.If(left_zero):
                    m.next = "CRC"
                with m.Else():
                    if self._serial_crc:
                        # ``i.ready`` as a flip-flop, a cycle behind ``free`` (a word
                        # takes 35 cycles here anyway): exact, since nothing but a push
                        # in this state clears ``free`` or sets ``left_zero``. ``free``
                        # and the state decode in front of the source's valid, the
                        # result FIFO's ready and the output register's enable were the
                        # UP5K boards' longest path (docs/boards.md).
                        take = self.i.valid & rdy
                        m.d.comb += self.i.ready.eq(rdy)
                        m.d.sync += rdy.eq(free & ~take)
                    else:
                        take = self.i.valid & free
                        m.d.comb += self.i.ready.eq(free)
                    with m.If(take):
                        push(self.i.payload)
                        m.d.sync += [left.eq(left - 1), left_zero.eq(left == 1)]
            with m.State("CRC"):
                m.d.comb += self.busy.eq(1)
                with m.If(free):
                    push(crc.value, last=True, absorb=False)
                    m.next = "IDLE"
        return m
