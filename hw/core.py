"""The anyprec core: command controller, memories and the layer engine.

One frame is handled at a time (docs/protocol.md). ``RxFramer`` reports header, payload
words and the framing/CRC verdict; the controller parses payload words as they arrive
but changes no state until the frame has passed every check (protocol section 3), then
commits in its EXEC states. MATVEC and INFER start the layer engine and the response
together: results stream out of a FIFO while later rows are still being computed.

Memories:

=============  ===============================  ==========================================
name           words x bits                     use
=============  ===============================  ==========================================
``wmem``       depth x (R*C, or R*C*N)          weight bit-planes (block RAM)
``act0/1``     ceil(max(M,K)/C) x (C*A)         ping-pong activation buffers (iCE40: one
                                                memory ``act``, the buffer in the top
                                                address bit)
``tab``        layers*N*ceil(max_m/DL) x DL*48  requantisation m (16) and b (32), DL rows
                                                per word (DL = drain lanes), banked
``stage``      max_m x 48                       LOAD_REQUANT staging (copied after CRC)
``shifts``     layers*N x 6                     requantisation shifts
``fifo<i>``    ceil(max_m/DL) x 32, DL of them  results awaiting the response writer
                                                (row r in FIFO r mod DL)
=============  ===============================  ==========================================

Per-layer descriptors (sizes, base address, planes loaded, run precision...) are small
register files read combinationally; layer slots are few.
"""

from amaranth import (Module, Signal, Mux, Cat, Const, Array, Elaboratable, Instance,
                      ClockSignal, signed, unsigned)
from amaranth.lib import wiring, data, stream
from amaranth.lib.wiring import In, Out
from amaranth.lib.memory import Memory
from amaranth.lib.fifo import SyncFIFOBuffered

from ..golden.arith import SHIFT_MAX
from ..host.protocol import Opcode, Status, VERSION, MAGIC
from .stream import WORD_STREAM, Skid
from .framing import RxFramer, TxFramer
from .actbuf import ActWriter
from .engine import LayerEngine, MODE_RAW, MODE_HIDDEN, MODE_FINAL
from .lane import is_ice40, is_ecp5

__all__ = ["AnyprecCore"]

_TAB = data.StructLayout({"m": signed(16), "b": signed(32)})

# Response payload sources.
_SRC_NONE, _SRC_INFO, _SRC_SLOTS, _SRC_DATA = range(4)


def _ceil_div(value, divisor):
    """ceil(value / divisor) for a constant divisor (shift when it is a power of two)."""
    if divisor & (divisor - 1) == 0:
        return (value + (divisor - 1)) >> (divisor.bit_length() - 1)
    # Only configuration commands use this; it never sits in the datapath.
    return (value + (divisor - 1)) // divisor


def _ceil_div_reg(m, value, divisor, q_max, name):
    """ceil(value / divisor), two cycles after ``value``, for any constant divisor.

    A power of two is a shift (combinational, as :func:`_ceil_div`). Otherwise a divider
    in one cycle was the whole design's critical path (27.6 MHz for a 12 x 12 array on
    ECP5), so the quotient is computed in two registered stages that run in every cycle:
    a thermometer code ``value > i * divisor`` (constant compares), then its length in
    binary. Exact for ``value <= q_max * divisor``, saturated at ``q_max`` above (callers
    refuse those values anyway).
    """
    if divisor & (divisor - 1) == 0:
        return _ceil_div(value, divisor)
    therm = Signal(q_max, name=f"{name}_therm")
    m.d.sync += therm.eq(Cat(*[value > i * divisor for i in range(q_max)]))
    q = Signal(range(q_max + 1), name=name)
    ends = [therm[i] & (~therm[i + 1] if i + 1 < q_max else 1) for i in range(q_max)]
    m.d.sync += q.eq(Cat(*[
        Cat(*[ends[i] for i in range(q_max) if (i + 1) >> b & 1]).any()
        for b in range(len(q))]))
    return q


#: Words per weight-memory bank: one ECP5 DP16KD holds 512 x 36, so a bank of 512 words
#: maps to block RAMs side by side with no depth multiplexer behind their outputs.
WMEM_BANK = 512


#: yosys' ``no_rw_check`` memory attribute: a read in the cycle of a write to the same
#: address may return anything. yosys otherwise keeps a non-transparent read port's
#: "old data" in logic beside an iCE40 block RAM, whose collisions are undefined: a
#: flip-flop and a LUT per data bit and an address compare (33 flip-flops and 32 LUTs
#: for a 32-bit memory). Set on iCE40 memories whose data read in such a cycle is never
#: used: the activation buffers (the writer fills one half while the engine reads the
#: other; host activations go in between runs), the LOAD_REQUANT staging memory (read by
#: RQ_COPY after the frame's CRC, long after its last write). yosys' Verilog frontend
#: turns the attribute into the read ports' COLLISION_X_MASK (for users of the
#: generated Verilog); from Amaranth's RTLIL it does nothing by itself, so the board
#: builds set that mask on these memories' read ports, and on the FIFOs'
#: (boards/build.py: Amaranth's SyncFIFOBuffered never reads the entry it writes).
_NO_RW_CHECK = {"no_rw_check": 1}


class _Port:
    def __init__(self, **signals):
        self.__dict__.update(signals)


_DP16KD_DEPTH = 512      # words of an ECP5 DP16KD in its 36-bit mode


class _Dp16kdOutreg(Elaboratable):
    """One ECP5 DP16KD as a 512 x 36 simple dual-port RAM (write port A, read port B)
    with its output register on: read data two cycles after the address, like a
    ``Memory`` sync read port followed by a flip-flop. yosys never infers the output
    register, so the block RAM is instantiated (simulated with ``hw.top.cell_models``).

    The pins follow yosys' own map of a 36-bit memory (share/lattice/brams_map_16kd.v,
    ``$__PDPW16KD_``): word bits 0-17 on DIA/DOA, 18-35 on DIB/DOB, the address on
    AD*13..5, ADA3..0 the byte enables. In this mode half of the read word leaves
    through port A's output pins, so both REGMODE_A and REGMODE_B are OUTREG (what
    nextpnr does for a PDPW16KD, and what its timing model expects of the DOA pins).
    """

    def __init__(self, *, waddr, wdata, we, raddr, rdata):
        assert len(wdata) == len(rdata) <= 36 and len(waddr) <= 9 and len(raddr) <= 9
        self.waddr, self.wdata, self.we, self.raddr, self.rdata = waddr, wdata, we, raddr, rdata

    def elaborate(self, platform):
        m = Module()
        w = len(self.wdata)
        do = Signal(36)
        m.d.comb += self.rdata.eq(do[:w])
        ports = {}
        for i in range(14):
            # 36-bit mode: address bits 13..5; ADA3..0 are the four 9-bit byte enables.
            ports[f"i_ADA{i}"] = (self.waddr[i - 5] if 5 <= i < 5 + len(self.waddr) else
                                  (self.we if i < 4 else 0))
            ports[f"i_ADB{i}"] = self.raddr[i - 5] if 5 <= i < 5 + len(self.raddr) else 0
        for i in range(18):
            ports[f"i_DIA{i}"] = self.wdata[i] if i < w else 0
            ports[f"i_DIB{i}"] = self.wdata[18 + i] if 18 + i < w else 0
            ports[f"o_DOA{i}"] = do[i]
            ports[f"o_DOB{i}"] = do[18 + i]
        m.submodules.ram = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=36, p_DATA_WIDTH_B=36, p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
            p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_A="0b000",
            p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
            p_GSR="DISABLED",
            i_CLKA=ClockSignal(), i_CEA=1, i_OCEA=1, i_WEA=1, i_RSTA=0,
            i_CSA0=0, i_CSA1=0, i_CSA2=0,
            i_CLKB=ClockSignal(), i_CEB=1, i_OCEB=1, i_WEB=0, i_RSTB=0,
            i_CSB0=0, i_CSB1=0, i_CSB2=0, **ports)
        return m


class _Ecp5Fifo(Elaboratable):
    """The result FIFO on ECP5: ``r_data`` two cycles after a read (``r_en`` while
    ``r_rdy``), from a :class:`BankedMemory` (DP16KD with its output register), not
    first-word-fall-through like ``SyncFIFOBuffered``. Never written when full (the
    engine writes at most a layer's rows, which ``depth`` holds)."""

    def __init__(self, *, width, depth):
        self._width, self._depth = width, depth
        self.w_data = Signal(width)
        self.w_en = Signal()
        self.r_en = Signal()
        self.r_rdy = Signal()
        self.r_data = Signal(width)

    def elaborate(self, platform):
        m = Module()
        D = self._depth
        m.submodules.mem = mem = BankedMemory(width=self._width, depth=D, granularity=None,
                                              bank_depth=WMEM_BANK)
        wp = Signal(range(D))
        rp = Signal(range(D))
        level = Signal(range(D + 1))
        # level != 0 as a flip-flop, exact (the compare in front of the take and the
        # level's own adder was a long path at 150 MHz).
        nonempty = Signal()
        take = self.r_en & nonempty
        m.d.comb += [mem.w.addr.eq(wp), mem.w.data.eq(self.w_data), mem.w.en.eq(self.w_en),
                     mem.r.addr.eq(rp), self.r_data.eq(mem.r.data), self.r_rdy.eq(nonempty)]
        with m.If(self.w_en):
            m.d.sync += [nonempty.eq(1), wp.eq(Mux(wp == D - 1, 0, wp + 1))]
        with m.Elif(take):
            m.d.sync += nonempty.eq(level != 1)
        with m.If(take):
            m.d.sync += rp.eq(Mux(rp == D - 1, 0, rp + 1))
        m.d.sync += level.eq(level + self.w_en - take)
        return m


class BankedMemory(Elaboratable):
    """The weight memory: banks of ``bank_depth`` words, each bank's read data registered
    before the bank multiplexer, so block-RAM clock-to-out ends in a flip-flop (Fmax;
    the multiplexer behind an inferred deep memory was a critical path). Read data
    arrives two cycles after the address (``engine.W_LATENCY``).

    Ports (``w``: addr, data, en; ``r``: addr, en, data) mirror ``Memory``'s.
    """

    def __init__(self, *, width, depth, granularity, bank_depth, hold_read=False):
        self._width, self._depth, self._gran = width, depth, granularity
        self._hold_read = hold_read
        self._bank = max(1, min(bank_depth, depth))
        self._n = -(-depth // self._bank)
        aw = max(depth - 1, 1).bit_length()
        ens = 1 if granularity is None else width // granularity
        self.w = _Port(addr=Signal(aw, name="wmem_waddr"),
                       data=Signal(width, name="wmem_wdata", reset_less=True),
                       en=Signal(ens, name="wmem_wen"))
        self.r = _Port(addr=Signal(aw, name="wmem_raddr"), en=Signal(name="wmem_ren"),
                       data=Signal(width, name="wmem_rdata"))

    def elaborate(self, platform):
        m = Module()
        B, n = self._bank, self._n
        lo = max(B - 1, 1).bit_length() if n > 1 else len(self.w.addr)
        outs = []
        ecp5 = is_ecp5(platform) and not self._hold_read and B <= _DP16KD_DEPTH
        for b in range(n):
            depth = min(B, self._depth - b * B)
            sel_w = (self.w.addr[lo:] == b) if n > 1 else Const(1)
            q = Signal(self._width, name=f"bank{b}_q", reset_less=True)
            if ecp5:
                # The block RAM's own output register holds the second cycle: its
                # clock-to-out from the array (5.8 ns) into a fabric flip-flop capped the
                # ECP5 builds near 120 MHz (docs/boards.md).
                en = Signal.like(self.w.en)
                m.d.comb += en.eq(Mux(sel_w, self.w.en, 0))
                gran = self._gran or self._width
                for g in range(self._width // gran):
                    for lo_bit in range(g * gran, (g + 1) * gran, 36):
                        hi_bit = min(lo_bit + 36, (g + 1) * gran)
                        m.submodules[f"bank{b}_{lo_bit}"] = _Dp16kdOutreg(
                            waddr=self.w.addr[:lo], wdata=self.w.data[lo_bit:hi_bit],
                            we=en[g], raddr=self.r.addr[:lo], rdata=q[lo_bit:hi_bit])
            else:
                mem = Memory(shape=self._width, depth=max(depth, 2), init=[])
                m.submodules[f"bank{b}"] = mem
                wp = mem.write_port(granularity=self._gran)
                rp = mem.read_port(domain="sync")
                m.d.comb += [wp.addr.eq(self.w.addr[:lo]), wp.data.eq(self.w.data),
                             wp.en.eq(Mux(sel_w, self.w.en, 0)),
                             rp.addr.eq(self.r.addr[:lo])]
                # A read enable becomes a multiplexer between the block RAM and its
                # register (it must hold the old word); only the single-port SPRAM needs it.
                m.d.comb += rp.en.eq(self.r.en if self._hold_read else 1)
                m.d.sync += q.eq(rp.data)
            outs.append(q)
        if n > 1:
            sel1 = Signal(range(n))
            sel2 = Signal(range(n))
            m.d.sync += [sel1.eq(self.r.addr[lo:]), sel2.eq(sel1)]
            m.d.comb += self.r.data.eq(Array(outs)[sel2])
        else:
            m.d.comb += self.r.data.eq(outs[0])
        return m


class AnyprecCore(wiring.Component):
    """Frame-level accelerator core on 32-bit word streams.

    Parameters
    ----------
    cfg : AnyprecConfig

    Members
    -------
    i : In(WORD_STREAM)
        Request words (host -> device), ``last`` on the final word of a frame.
    o : Out(WORD_STREAM)
        Response words, driven from registers.
    """

    i: In(WORD_STREAM)
    o: Out(WORD_STREAM)

    def __init__(self, cfg):
        self._cfg = cfg
        super().__init__()

    @property
    def cfg(self):
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        L, N, A, R, C = cfg.layers, cfg.max_wbits, cfg.max_abits, cfg.rows, cfg.cols
        EPW, WPW = cfg.elems_per_word, cfg.words_per_slice
        wd = cfg.widths
        serial = cfg.design == "serial"
        depth = cfg.depth_words
        aw = max(depth - 1, 1).bit_length()
        DL = cfg.drain_lanes
        tab_depth = L * N * cfg.tab_stride
        LW = max(L, 2)   # layer-index signals: range(1) would be zero bits wide
        # The device family's form of the design (hw/lane.py): iCE40 trades Fmax for logic
        # cells, ECP5 instantiates its block RAM and multiplier registers.
        ice40, ecp5 = is_ice40(platform), is_ecp5(platform)
        # The register stages added for Fmax that iCE40 leaves out (its logic cells are
        # all taken and its clock is slow): statements added to `late` happen a cycle
        # later off iCE40, in the same cycle on it.
        late = m.d.comb if ice40 else m.d.sync

        # ------------------------------------------------------------- memories
        m.submodules.wmem = wmem = BankedMemory(
            width=cfg.word_bits, depth=depth,
            granularity=None if serial else cfg.slice_bits,
            bank_depth=depth if ice40 else WMEM_BANK,
            hold_read=ice40)
        wmem_w, wmem_r = wmem.w, wmem.r
        acts = []
        if ice40:
            # Both buffers in one memory, the buffer's index the address's top bit: one
            # block RAM pair instead of two, and no C x A multiplexer of two read ports in
            # logic cells (the engine reads a register of its address, hw/engine.py).
            act_aw = (max(cfg.act_depth, 2) - 1).bit_length()
            mem = Memory(shape=C * A, depth=2 << act_aw, init=[], attrs=_NO_RW_CHECK)
            m.submodules.act = mem
            acts.append((mem.write_port(), mem.read_port(domain="sync")))
        else:
            for b in range(2):
                mem = Memory(shape=C * A, depth=max(cfg.act_depth, 2), init=[])
                m.submodules[f"act{b}"] = mem
                acts.append((mem.write_port(), mem.read_port(domain="sync")))
        m.submodules.tab = tab = BankedMemory(
            width=_TAB.size * DL, depth=tab_depth, granularity=_TAB.size,
            bank_depth=tab_depth if ice40 else WMEM_BANK,
            hold_read=ice40)
        tab_w, tab_r = tab.w, tab.r
        # On ECP5 the staging memory is block RAM with its output register (read latency
        # 2): as distributed RAM its write address reached the read register through
        # the RAM and its read multiplexer, a long path (Fmax). Elsewhere a Memory
        # (block RAM on iCE40, latency 1).
        if ecp5:
            m.submodules.stage = stage = BankedMemory(
                width=_TAB.size, depth=max(cfg.max_m, 2), granularity=None,
                bank_depth=WMEM_BANK)
            stage_w = _Port(addr=stage.w.addr, data=data.View(_TAB, stage.w.data),
                            en=stage.w.en)
            stage_r = _Port(addr=stage.r.addr, data=data.View(_TAB, stage.r.data))
            ST_LAT = 2
        else:
            m.submodules.stage = stage = Memory(shape=_TAB, depth=max(cfg.max_m, 2), init=[],
                                                attrs=_NO_RW_CHECK if ice40 else None)
            stage_w, stage_r = stage.write_port(), stage.read_port(domain="sync")
            ST_LAT = 1
        m.submodules.shifts = shifts = Memory(shape=range(SHIFT_MAX + 1), depth=L * N,
                                              init=[])
        shifts_w, shifts_r = shifts.write_port(), shifts.read_port(domain="comb")
        # The engine delivers up to DL results per cycle (drain lanes): row r goes to FIFO
        # r mod DL, and the reader takes them round robin from FIFO 0 (``fifo_rd``, reset
        # when a computation starts; every response drains all FIFOs before the next).
        fifos = []
        for i in range(DL):
            if ecp5:
                f = _Ecp5Fifo(width=32, depth=max(cfg.tab_stride, 2))
            else:
                f = SyncFIFOBuffered(width=32, depth=max(cfg.tab_stride, 2))
            m.submodules[f"fifo{i}" if DL > 1 else "fifo"] = f
            fifos.append(f)
        fifo_rd = Signal(range(max(DL, 2)))
        # Off ECP5 the FIFO (SyncFIFOBuffered) gives its block RAM's output directly, with
        # its slow clock-to-out (5.8 ns on an ECP5 DP16KD without the output register),
        # so its data goes straight into a flip-flop (``fifo_d``, only an enable), then
        # through a register slice to the response multiplexer (Fmax; on iCE40 only the
        # slice, without its spare, below). A word is read only when the slice (either
        # kind) is sure to take it: one word every two cycles at most, faster than any
        # stream width drains 32-bit words but w32.
        m.submodules.fifo_q = fifo_q = Skid(unsigned(32), spare=not ice40)
        fifo_ren = Signal()
        fifo_rdy = Signal()
        m.d.comb += fifo_rdy.eq(Array(f.r_rdy for f in fifos)[fifo_rd])
        for i, f in enumerate(fifos):
            m.d.comb += f.r_en.eq(fifo_ren & (fifo_rd == i))
        with m.If(fifo_ren & fifo_rdy):
            if DL > 1:
                m.d.sync += fifo_rd.eq(Mux(fifo_rd == DL - 1, 0, fifo_rd + 1))
        if ecp5:
            # ECP5: the FIFOs are block RAM with the output register (_Ecp5Fifo), their
            # data two cycles after the read, straight into the slice. A read is issued
            # only when none is in flight and the slice has room, so the slice still
            # has room when the word arrives: one word every three cycles.
            fl1, fl2 = Signal(), Signal()
            sel1 = Signal.like(fifo_rd)
            sel2 = Signal.like(fifo_rd)
            m.d.comb += fifo_ren.eq(~fl1 & ~fl2 & fifo_q.i.ready)
            m.d.sync += [fl1.eq(fifo_ren & fifo_rdy), fl2.eq(fl1), sel1.eq(fifo_rd),
                         sel2.eq(sel1)]
            m.d.comb += [fifo_q.i.payload.eq(Array(f.r_data for f in fifos)[sel2]),
                         fifo_q.i.valid.eq(fl2)]
        elif ice40:
            # On iCE40 the slice has no spare, so its ``i.ready`` is combinational from the
            # response path's ready (the transmit framer's): a read waits for an empty
            # slice instead (a flip-flop; the iCEBreaker's critical path ran from the
            # framer into the FIFO's read). The slice takes the FIFO's block RAM output
            # (SB_RAM40_4K's read data is registered in the RAM) directly: a copy in
            # flip-flops (``fifo_d`` below) took 32 logic cells of their own. A word every
            # two cycles at most, against 35 per word in the bit-serial CRC behind it.
            m.d.comb += [fifo_ren.eq(~fifo_q.o.valid),
                         fifo_q.i.payload.eq(Array(f.r_data for f in fifos)[fifo_rd]),
                         fifo_q.i.valid.eq(fifo_rdy & ~fifo_q.o.valid)]
        else:
            fifo_d = Signal(32)
            fifo_dv = Signal()
            m.d.comb += fifo_ren.eq(~fifo_dv & fifo_q.i.ready)
            with m.If(fifo_ren & fifo_rdy):
                m.d.sync += fifo_d.eq(Array(f.r_data for f in fifos)[fifo_rd])
            m.d.sync += fifo_dv.eq(fifo_ren & fifo_rdy)
            m.d.comb += [fifo_q.i.payload.eq(fifo_d), fifo_q.i.valid.eq(fifo_dv)]

        # ------------------------------------------------------------- descriptors
        # One entry per layer slot (L), although the index signals are LW wide: with one
        # slot, index 1 (which the range checks never let through to a write) reads 0,
        # the reset value the unused second entry used to hold. Saves a descriptor set
        # (about 240 iCE40 logic cells) in single-layer configurations.
        def field(name, shape):
            return Array(Signal(shape, name=f"{name}_{i}") for i in range(L))
        f_cfg = field("configured", 1)
        f_ms = field("m_s", range(cfg.max_m + 1))
        f_ks = field("k_s", range(cfg.max_k + 1))
        f_base = field("base", aw)
        f_end = field("end", aw + 1)
        f_js = field("j_s", range(cfg.chunks_max + 1))
        f_tj = field("tj", aw + 1)
        f_pw = field("pw", 16)
        f_planes = field("planes", range(N + 1))
        f_mask = field("mask", N)
        f_wptr = field("wptr", aw + 1)
        f_wbits = field("wbits", range(N + 1))
        f_abits = field("abits", range(A + 1))
        f_mrun = field("m_run", range(cfg.max_m + 1))
        f_krun = field("k_run", range(cfg.max_k + 1))
        f_trun = field("t_run", range(cfg.tiles_max + 1))
        f_jrun = field("j_run", range(cfg.chunks_max + 1))

        # ------------------------------------------------------------- submodules
        m.submodules.rxf = rxf = RxFramer(serial_crc=ice40)
        m.submodules.txf = txf = TxFramer(serial_crc=ice40)
        wiring.connect(m, wiring.flipped(self.i), rxf.i)
        wiring.connect(m, txf.o, wiring.flipped(self.o))
        m.submodules.writer = writer_ = ActWriter(
            cols=C, abits=A, depth=max(cfg.act_depth, 2), sum_bits=wd.sx_bits, lanes=DL)
        # The writer's inputs pass through registers: the controller drives `writer`
        # (a stand-in with the same members) and the real writer sees it a cycle later.
        # Its two sources (host activations, the engine's results) were selected by the
        # compute state in front of its lane logic, a long path (Fmax). Every reader of
        # the writer (the sum in CHECK and NEXT, the buffer at START) comes later still.
        writer = _Port(start=Signal(), valid=Signal(), n=Signal.like(writer_.n, init=1),
                       values=Signal.like(writer_.values), flush=Signal(), sum=writer_.sum,
                       wr_en=writer_.wr_en, wr_addr=writer_.wr_addr, wr_data=writer_.wr_data)
        late += [writer_.start.eq(writer.start), writer_.valid.eq(writer.valid),
                writer_.n.eq(writer.n), writer_.values.eq(writer.values),
                writer_.flush.eq(writer.flush)]
        m.submodules.engine = eng = LayerEngine(cfg)

        wr_sel = Signal()   # activation buffer the writer fills
        rd_sel = Signal()   # activation buffer the engine reads
        # Buffer writes land one cycle after the writer produces them, from registers (the
        # writer's inputs come from the controller and the engine; Fmax). Nothing reads a
        # buffer that soon after writing it.
        if ice40:
            (wp, rp), = acts
            m.d.sync += [wp.addr.eq(Cat(writer.wr_addr, wr_sel)), wp.data.eq(writer.wr_data),
                         wp.en.eq(writer.wr_en)]
            m.d.comb += [rp.addr.eq(Cat(eng.x_addr, rd_sel)), eng.x_data.eq(rp.data)]
        else:
            for b, (wp, rp) in enumerate(acts):
                m.d.sync += [wp.addr.eq(writer.wr_addr), wp.data.eq(writer.wr_data),
                             wp.en.eq(writer.wr_en & (wr_sel == b))]
                m.d.comb += rp.addr.eq(eng.x_addr)
            m.d.comb += eng.x_data.eq(Mux(rd_sel, acts[1][1].data, acts[0][1].data))
        # One address for both ports of the weight and requantisation memories: writes
        # (LOAD_PLANE, the LOAD_REQUANT copy) and reads (compute) never overlap, and a
        # shared address lets single-port RAMs (iCE40 SPRAM, boards/) hold them.
        wmem_we = Signal()
        wmem_addr = Signal(aw)
        wq_data = Signal.like(wmem_w.data)
        wq_en = Signal.like(wmem_w.en)
        wq_addr = Signal(aw)
        # Only iCE40 needs that (its weight memory is SPRAM); elsewhere each port has its
        # own address, which keeps the multiplexer out of the block RAM's address path.
        m.d.comb += [wmem_we.eq(wmem_w.en.any()), wmem_r.en.eq(~wmem_we),
                     wmem_r.addr.eq(wmem_addr if ice40 else eng.w_addr),
                     wmem_w.addr.eq(wmem_addr if ice40 else wq_addr)]
        if serial:
            m.d.comb += eng.w_data.eq(wmem_r.data)
        else:
            # Memory word = N slices, slice p holding plane p (bit r*C+c); the array wants
            # cell (r, c) as an N-bit code at bits [(r*C+c)*N, +N), plane 0 its MSB.
            S = cfg.slice_bits
            m.d.comb += eng.w_data.eq(Cat(*[wmem_r.data[p * S + cell]
                                            for cell in range(S)
                                            for p in reversed(range(N))]))
        tab_rdata = data.View(data.ArrayLayout(_TAB, DL), tab_r.data)
        tab_addr = Signal.like(tab_r.addr)
        tab_waddr = Signal.like(tab_r.addr)     # the LOAD_REQUANT copy's write (comb)
        tab_we = Signal()
        tab_wen = Signal.like(tab_w.en)
        tab_wdata = Signal.like(tab_w.data)
        # The copy's writes land a cycle later, from registers (the controller state in
        # front of the block RAMs' inputs was a long path, Fmax).
        # (Not on iCE40, whose logic cells are all taken and whose clock is slow.)
        tw_we = Signal()
        tw_addr = Signal.like(tab_r.addr)
        tw_en = Signal.like(tab_w.en)
        late += [tw_we.eq(tab_we), tw_addr.eq(tab_waddr), tw_en.eq(tab_wen),
                 tab_w.data.eq(tab_wdata)]
        # (the byte enables qualified by tw_we, so that yosys sees the write and the
        # read enable ~tw_we exclude each other: the iCE40's single-port SPRAM)
        m.d.comb += tab_w.en.eq(Mux(tw_we, tw_en, 0))
        m.d.comb += [tab_r.en.eq(~tw_we), tab_r.addr.eq(tab_addr if ice40 else eng.t_addr),
                     tab_w.addr.eq(tab_addr if ice40 else tw_addr),
                     tab_addr.eq(Mux(tw_we, tw_addr, eng.t_addr))]
        m.d.comb += [eng.t_m[i].eq(tab_rdata[i].m) for i in range(DL)]
        m.d.comb += [eng.t_b[i].eq(tab_rdata[i].b) for i in range(DL)]

        # ------------------------------------------------------------- frame state
        op = Signal(8)
        tag = Signal(8)
        err = Signal(8)            # first command-check failure, 0 if none
        err_arg = Signal(8)
        w1 = Signal(32)
        w2 = Signal(32)
        # Word 3 (SET_LAYER's base address) is kept only as wide as an end address,
        # with a flag for the bits above: a base that sets one is out of range anyway.
        # (All 32 bits went through the layer-setup adder and compares: a 34-bit carry
        # chain where 15 bits do on the iCEBreaker, docs/boards.md.)
        w3_bits = aw + 1
        w3 = Signal(w3_bits)
        w3_big = Signal()
        word = rxf.word
        length = rxf.length

        # The opcode decoded into registers a cycle after the header: a small index
        # (KNOWN order, len(KNOWN) when unknown) for the second-stage and CHECK switches
        # and flags for the payload paths (the first payload word comes later still);
        # and `err != 0` as a flip-flop (`err_set`, written wherever err is): compares of
        # the 8-bit registers there sat in front of many registers (Fmax).
        KNOWN = [Opcode.INFO, Opcode.STATUS, Opcode.SET_LAYER, Opcode.SET_RUN,
                 Opcode.LOAD_PLANE, Opcode.LOAD_REQUANT, Opcode.MATVEC, Opcode.INFER]
        K = {code: i for i, code in enumerate(KNOWN)}
        # In two registered steps (the 8-bit decode in one was a long path at 150 MHz):
        # the opcodes differ only in bits 0-1 and 4-5, so the first step keeps those and
        # whether the other four are zero. op_k is first used by the word-1 checks'
        # second stage, at least three cycles after the header.
        op_k = Signal(range(len(KNOWN) + 1))
        op_pl, op_rq, op_x, op_in = Signal(), Signal(), Signal(), Signal()
        assert all(code & 0xCC == 0 for code in KNOWN)
        op_q = Signal(5)            # op[0:2], op[4:6], and op's other bits all zero
        m.d.sync += op_q.eq(Cat(op[0:2], op[4:6], Cat(op[2:4], op[6:8]) == 0))
        m.d.sync += [op_pl.eq(0), op_rq.eq(0), op_x.eq(0), op_in.eq(0)]
        with m.Switch(op_q):
            for i, code in enumerate(KNOWN):
                with m.Case((code & 3) | ((code >> 4 & 3) << 2) | 16):
                    m.d.sync += op_k.eq(i)
                    if code == Opcode.LOAD_PLANE:
                        m.d.sync += op_pl.eq(1)
                    if code == Opcode.LOAD_REQUANT:
                        m.d.sync += op_rq.eq(1)
                    if code in (Opcode.MATVEC, Opcode.INFER):
                        m.d.sync += op_x.eq(1)
                    if code == Opcode.INFER:
                        m.d.sync += op_in.eq(1)
            with m.Default():
                m.d.sync += op_k.eq(len(KNOWN))
        err_set = Signal()

        def fail(code, arg=0):
            """Record a command-check failure; callers test ``~err_set`` (the first one
            stands). Written straight into the registers: a shared combinational
            failure code in front of them was a long path (Fmax)."""
            assert not isinstance(code, int) or code != 0
            m.d.sync += [err.eq(code), err_arg.eq(arg), err_set.eq(1)]

        # ------------------------------------------------------------- header checks
        # The header's own checks run a cycle later, on the registered opcode and length
        # (the decode behind the framer's take was a long path, Fmax); nothing else can
        # fail that early in a frame.
        hdr_r = Signal()
        m.d.sync += hdr_r.eq(rxf.hdr)
        with m.If(rxf.hdr):
            m.d.sync += [op.eq(word[0:8]), tag.eq(word[8:16])]
        hv_unknown, hv_bad_len = Signal(), Signal()
        with m.If(hdr_r):
            # The last frame's error is cleared here, a cycle after the header (the
            # framer's take in front of its 17 flip-flops was a long path); nothing
            # reads it before.
            m.d.sync += [err.eq(0), err_arg.eq(0), err_set.eq(0)]
            hop = op
            hlen = length
            bad_len = Signal()
            known = Signal()
            with m.Switch(hop):
                with m.Case(Opcode.INFO, Opcode.STATUS):
                    m.d.comb += [known.eq(1), bad_len.eq(hlen != 0)]
                with m.Case(Opcode.SET_LAYER):
                    m.d.comb += [known.eq(1), bad_len.eq(hlen != 3)]
                with m.Case(Opcode.SET_RUN):
                    m.d.comb += [known.eq(1), bad_len.eq(hlen != 2)]
                with m.Case(Opcode.LOAD_PLANE, Opcode.LOAD_REQUANT, Opcode.MATVEC,
                            Opcode.INFER):
                    m.d.comb += [known.eq(1), bad_len.eq(hlen == 0)]
            m.d.sync += [hv_unknown.eq(~known), hv_bad_len.eq(bad_len)]
        # ... and the verdict lands a cycle after that (the decode in front of `err`'s
        # other sources was a long path); the word-1 checks come later still.
        hdr_rr = Signal()
        m.d.sync += hdr_rr.eq(hdr_r)
        with m.If(hdr_rr):
            # `err` was cleared a cycle after the header: write the verdict directly.
            with m.If(hv_unknown):
                m.d.sync += [err.eq(Status.BAD_OPCODE), err_set.eq(1)]
            with m.Elif(hv_bad_len):
                m.d.sync += [err.eq(Status.BAD_LENGTH), err_set.eq(1)]

        # ------------------------------------------------------------- payload: word 1
        # Word 1 is checked in the cycle after it arrives, from the ``dw`` register (the
        # framer is held for that cycle; it is in ``w1`` from the next): the checks index
        # the descriptors and compare sizes, too much logic to follow the incoming word in
        # the same cycle (Fmax).
        l1 = w1[0:8]
        b1 = w1[8:16]
        c1 = w1[16:24]
        lsel = Signal(range(LW))    # word 1's layer, 0 when out of range (registered)

        # LOAD_PLANE state
        pl_ok = Signal()
        pl_layer = Signal(range(LW))
        pl_plane = Signal(range(N))
        wp_addr = Signal(aw + 1)
        slice_buf = Signal(32 * max(WPW - 1, 1), reset_less=True)
        slice_cnt = Signal(range(max(WPW, 2)))
        # LOAD_REQUANT state
        rq_ok = Signal()
        rq_idx = Signal(range(cfg.max_m + 1))
        rq_hi = Signal()           # 0: next word is m, 1: next word is b
        rq_m = Signal(16)
        # activation input state (MATVEC / INFER)
        x_ok = Signal()
        x_word = Signal(32)
        x_busy = Signal()
        x_lane = Signal(range(EPW))
        x_idx = Signal(16)
        # x_idx < k_run (more activations to take) as a flip-flop, exact: set with k_run,
        # cleared when x_idx reaches k_run - 1 (``x_km1``) while counting (a carry-chain
        # compare in front of the range check's synchronous reset was a long path).
        x_more = Signal()
        x_km1 = Signal(range(cfg.max_k + 1))
        x_bits = Signal(range(A + 1))
        x_arg = Signal(8)

        # Payload words 1-3 are kept from `dw` (the word of the cycle before, always
        # registered) a cycle after they arrive: the framer's take (behind its hold)
        # enabling 96 flip-flops was a long path (Fmax). Only `lsel` is taken directly.
        first = Signal()           # payload word 1 arrived last cycle; it is in dw
        second = Signal()          # the cycle after ``first``: it is in w1, checks decide
        pay2, pay3 = Signal(), Signal()
        dw = Signal(32)
        # "The next payload word is word 1" (the framer's idx == 1) as a flip-flop, set by
        # the header and cleared by the first payload word: the framer's take and a
        # 16-bit compare of idx in front of the hold register was a long path (Fmax).
        at1 = Signal()
        with m.If(rxf.hdr):
            m.d.sync += at1.eq(1)
        with m.Elif(rxf.pay):
            m.d.sync += at1.eq(0)
        pay1 = rxf.pay & at1                # payload word 1 is on `word`
        pay_n = rxf.pay & ~at1              # a later one (idx >= 2)
        m.d.sync += [first.eq(pay1), second.eq(first),
                     pay2.eq(rxf.pay & (rxf.idx == 2)), pay3.eq(rxf.pay & (rxf.idx == 3))]
        with m.If(pay1):
            m.d.sync += lsel.eq(Mux(word[0:8] < L, word[0:8], 0))
        # They read 0 in a frame without them: cleared the cycle after the header (at
        # least a cycle before word 1 reaches w1), not by the framer's take itself.
        with m.If(hdr_r):
            m.d.sync += [w1.eq(0), w2.eq(0), w3.eq(0), w3_big.eq(0)]
        with m.If(first):
            m.d.sync += w1.eq(dw)
        with m.If(pay2):
            m.d.sync += w2.eq(dw)
        with m.If(pay3):
            m.d.sync += [w3.eq(dw), w3_big.eq(dw[w3_bits:] != 0)]

        # (cleared a cycle after the header: the framer's take fanning out to them was
        # a long path; the first payload word sets or uses any of them much later)
        with m.If(hdr_r):
            m.d.sync += [pl_ok.eq(0), rq_ok.eq(0), x_ok.eq(0), slice_cnt.eq(0),
                         rq_idx.eq(0), rq_hi.eq(0), x_idx.eq(0)]

        # Stage 1 (``first``): range flags of word 1 and the addressed layer's descriptor
        # values, into registers. Stage 2 (``second``): decide, into registers; stage 3
        # acts (below). The framer is held for all three cycles.
        r_l_bad, r_pl_range, r_rq_range, r_mv_range, r_in_range = (
            Signal(name=f"r_{n}") for n in ("l_bad", "pl_range", "rq_range", "mv_range",
                                             "in_range"))
        r_cfg, r_cfg0 = Signal(), Signal()
        r_pw_bad, r_ms_bad, r_kw_bad, r_kw0_bad = Signal(), Signal(), Signal(), Signal()
        len_m1 = Signal(17)     # the frame's length - 1, a cycle after the header
        m.d.sync += len_m1.eq(length - 1)
        r_order_bad = Signal()   # word 1's plane is not the layer's next one
        r_krun = Signal(range(cfg.max_k + 1))
        r_krun0 = Signal(range(cfg.max_k + 1))
        r_abits0 = Signal(range(A + 1))
        r_wptr = Signal(aw + 1)
        if ice40:
            pw_bad, ms_bad = len_m1 != f_pw[lsel], len_m1 != (f_ms[lsel] << 1)
            order_bad = dw[8:16] != f_planes[lsel]
            kw_bad = len_m1 != _ceil_div(f_krun[lsel], EPW)
            kw0_bad = len_m1 != _ceil_div(f_krun[0], EPW)
        else:
            # ceil(k_run / EPW) == length - 1 as a range of k_run, ((length - 2) * EPW,
            # (length - 1) * EPW], its bounds registered with len_m1: two compares of the
            # selected k_run instead of an adder and a compare behind the descriptor
            # multiplexer (the 85F's longest path at 150 MHz, 7.2 ns). Both bounds
            # saturate at max_k (k_run <= max_k, so the check is the same), to keep the
            # compares short: at full width they were a long path at 150 MHz. Whether
            # (length - 2) * EPW > max_k is a compare of the length itself, beside the
            # subtraction rather than behind it.
            kw_lo = Signal(signed(cfg.max_k.bit_length() + 2))
            kw_hi = Signal.like(kw_lo)
            kq = cfg.max_k // EPW
            m.d.sync += [kw_lo.eq(Mux(length > kq + 2, cfg.max_k, (length - 2) * EPW)),
                         kw_hi.eq(Mux(length > kq + 1, cfg.max_k, (length - 1) * EPW))]
            # Off iCE40, each layer's length and order checks are flags registered in
            # every cycle, and stage 1 only selects the addressed layer's: the descriptor
            # multiplexer in front of the compares was the 85F's longest path at 150 MHz
            # (7.2 ns). The length registers settle two cycles after the header (len_m1,
            # kw_lo/kw_hi; the framer's LEN state), word 1 is on `word` a cycle before
            # `first`, and the descriptors change only in an earlier frame's CHECK.
            def per_layer(name, fn):
                flags = Array(Signal(name=f"{name}_{i}") for i in range(L))
                m.d.sync += [flags[i].eq(fn(i)) for i in range(L)]
                return flags
            k_out = per_layer("kw_out", lambda i: ~((kw_lo < f_krun[i]) &
                                                     (f_krun[i] <= kw_hi)))
            pw_bad = per_layer("pw_bad", lambda i: len_m1 != f_pw[i])[lsel]
            ms_bad = per_layer("ms_bad", lambda i: len_m1 != (f_ms[i] << 1))[lsel]
            order_bad = per_layer("order_bad", lambda i: word[8:16] != f_planes[i])[lsel]
            kw_bad, kw0_bad = k_out[lsel], k_out[0]
        with m.If(first):
            f_l, f_b, f_c = dw[0:8], dw[8:16], dw[16:24]     # word 1, not yet in w1
            bad_k = (f_b == 0) | (f_b > N) | (Const(0) if serial else (f_b != N))
            m.d.sync += [
                r_l_bad.eq(f_l >= L),
                r_pl_range.eq((f_l >= L) | (f_b >= N)),
                r_rq_range.eq((f_l >= L) | (f_b == 0) | (f_b > N) | (f_c > SHIFT_MAX)),
                r_mv_range.eq(bad_k | (f_c == 0) | (f_c > A)),
                r_in_range.eq((f_l == 0) | (f_l > L)),
                r_cfg.eq(f_cfg[lsel]), r_cfg0.eq(f_cfg[0]),
                # The length checks as flags, against length - 1 (a register): the
                # second stage then only combines flags (a compare there, in front of
                # the decision's many registers, was a long path, Fmax).
                r_pw_bad.eq(pw_bad), r_order_bad.eq(order_bad), r_ms_bad.eq(ms_bad),
                r_kw_bad.eq(kw_bad), r_kw0_bad.eq(kw0_bad),
                r_krun.eq(f_krun[lsel]), r_krun0.eq(f_krun[0]), r_abits0.eq(f_abits[0]),
                r_wptr.eq(f_wptr[lsel] if serial else f_base[lsel]),
            ]

        # Stage 2 decides into registers (the first failing check's code and argument, or
        # which command may go on) and stage 3, the cycle after, acts on them: the checks'
        # priority chains under the opcode in front of `err` and the payload state were
        # a long path at 150 MHz (Fmax). `err_set` cannot change between the two.
        v_fail, v_pl, v_rq, v_mv, v_in = (Signal(name=f"v_{n}")
                                          for n in ("fail", "pl", "rq", "mv", "in"))
        v_code = Signal(8)
        v_arg = Signal(8)

        # The argument is word 1's layer, or 0 for INFER, whichever check fails: loaded
        # in every cycle, outside the decision.
        # (Registered on iCE40 too: the flags through the chains into `err_arg`'s
        # enable in one cycle were the UP5K's slowest path at 50 MHz, docs/boards.md.)
        m.d.sync += v_arg.eq(Mux(op_in, 0, l1))

        # Per opcode, the first failing check's code (priority chains of stage-1 flags,
        # independent of the opcode), then OR-ed under one-hot opcode flags: a switch
        # on the opcode index around the chains was a long path at 150 MHz.
        def first_of(*checks):
            code = Const(0, 8)
            for flag, status in reversed(checks):
                code = Mux(flag, status, code)
            return code, Cat(*[flag for flag, _ in checks]).any()

        op_mv = op_x & ~op_in
        chains = [
            (op_pl, first_of((r_pl_range, Status.RANGE), (~r_cfg, Status.NOT_READY),
                             (r_pw_bad, Status.BAD_LENGTH), (r_order_bad, Status.ORDER)),
             v_pl),
            (op_rq, first_of((r_rq_range, Status.RANGE), (~r_cfg, Status.NOT_READY),
                             (r_ms_bad, Status.BAD_LENGTH)), v_rq),
            (op_mv, first_of((r_l_bad, Status.RANGE), (~r_cfg, Status.NOT_READY),
                             (r_kw_bad, Status.BAD_LENGTH), (r_mv_range, Status.RANGE)),
             v_mv),
            (op_in, first_of((r_in_range, Status.RANGE), (~r_cfg0, Status.NOT_READY),
                             (r_kw0_bad, Status.BAD_LENGTH)), v_in),
        ]
        code = Const(0, 8)
        for is_op, (c, _), _ in chains:
            code = code | Mux(is_op, c, 0)
        m.d.sync += v_code.eq(code)         # in every cycle; used with v_fail only
        go = second & ~err_set
        m.d.sync += v_fail.eq(go & Cat(*[is_op & bad for is_op, (_, bad), _ in chains]).any())
        for is_op, (_, bad), v in chains:
            m.d.sync += v.eq(go & is_op & ~bad)
        # (v_* are one-cycle pulses, the cycle after `second`)
        with m.If(v_fail):
            fail(v_code, v_arg)
        with m.If(v_pl):
            m.d.sync += [pl_ok.eq(1), pl_layer.eq(lsel), pl_plane.eq(b1), wp_addr.eq(r_wptr)]
        with m.If(v_rq):
            m.d.sync += rq_ok.eq(1)
        with m.If(v_mv):
            m.d.sync += [x_ok.eq(1), x_bits.eq(c1), x_arg.eq(l1),
                         x_more.eq(r_krun != 0), x_km1.eq(r_krun - 1)]
        with m.If(v_in):
            m.d.sync += [x_ok.eq(1), x_bits.eq(r_abits0), x_arg.eq(0),
                         x_more.eq(r_krun0 != 0), x_km1.eq(r_krun0 - 1)]

        # ------------------------------------------------------------- payload: data
        # Data words are handled one cycle after the framer delivers them, from registers:
        # the framer's hold/ready chain and the memory writes in one cycle were a long path
        # (Fmax, docs/boards.md). The framer is held while an activation word waits here.
        data_word = Signal()
        dw_x = Signal()
        m.d.sync += [data_word.eq(pay_n), dw.eq(word), dw_x.eq(pay_n & op_x & x_ok)]
        # Plane slices -> weight memory, only for a frame that passed its word-1 checks.
        # The write data is assigned in every cycle (only the enable is conditional), so
        # that its register is a plain flip-flop and not a wide reset-to-zero (Fmax).
        full = Signal(32 * WPW)
        m.d.comb += full.eq(Cat(slice_buf, dw) if WPW > 1 else dw)
        sl = full[:cfg.slice_bits]
        m.d.comb += wq_data.eq(sl if serial else Cat(*([sl] * N)))
        with m.If(data_word & op_pl & pl_ok):
            with m.If(slice_cnt == WPW - 1):
                if serial:
                    m.d.comb += wq_en.eq(1)
                else:
                    m.d.comb += wq_en.eq(1 << pl_plane)
                m.d.sync += [wp_addr.eq(wp_addr + 1), slice_cnt.eq(0)]
            with m.Else():
                if WPW > 1:
                    m.d.sync += slice_cnt.eq(slice_cnt + 1)
        # The slice buffer shifts on every data word, whatever the command: its enable is
        # then one flip-flop (``data_word``) instead of the opcode and word-1 checks, which
        # fan out to every buffer bit (1,024 at 32 x 32: the critical path, 85 MHz). Only
        # the WPW - 1 words before a write are ever used, and slice_cnt counts those.
        if WPW > 1:
            with m.If(data_word):
                m.d.sync += slice_buf.eq(Cat(slice_buf[32:], dw))

        # The write reaches the memory one cycle later, from registers: the opcode and
        # slice decode feeding the shared address multiplexer was a long path (Fmax).
        m.d.sync += [wmem_w.data.eq(wq_data), wmem_w.en.eq(wq_en), wq_addr.eq(wp_addr)]
        m.d.comb += wmem_addr.eq(Mux(wmem_we, wq_addr, eng.w_addr))

        # Requantisation pairs -> staging memory, written one cycle later from registers
        # (address and data in every cycle, only the enable conditional): the opcode
        # decode fanned out to every write port of the distributed RAM (about 1,000 of
        # the 85F's endpoints below 150 MHz). RQ_COPY reads it long after the last write.
        # (On iCE40 written directly: its staging memory is block RAM, and the registers
        # would cost 57 of its last logic cells.)
        st_we = Signal()
        st_wa = Signal.like(stage_w.addr)
        st_wd = Signal.like(stage_w.data)
        late += [st_wa.eq(rq_idx), st_wd.m.eq(rq_m), st_wd.b.eq(dw)]
        if not ice40:
            m.d.sync += st_we.eq(0)
        m.d.comb += [stage_w.addr.eq(st_wa), stage_w.data.eq(st_wd), stage_w.en.eq(st_we)]
        with m.If(data_word & op_rq & rq_ok):
            with m.If(~rq_hi):
                m.d.sync += [rq_m.eq(dw[0:16]), rq_hi.eq(1)]
            with m.Else():
                m.d.sync += [rq_hi.eq(0), rq_idx.eq(rq_idx + 1)]
                late += st_we.eq(1)

        # Activations: EPW per word, one per cycle into the writer (buffer 0).
        lane_w = 32 // EPW
        x_val = Signal(lane_w)
        m.d.comb += x_val.eq(x_word.word_select(x_lane, lane_w))
        with m.If(dw_x):
            m.d.sync += [x_word.eq(dw), x_busy.eq(1), x_lane.eq(0)]
        # The framer's hold is x_busy | dw_x | first | second | (stage 3), taken from a
        # flip-flop loaded with the next values of those (the OR of registers in front
        # of the framer's ready, and so of its take and everything that take enables,
        # was a long path, Fmax). x_busy and dw_x never meet: pay waits for hold.
        hold_next = (pay1 | first | second | (pay_n & op_x & x_ok) |
                     (x_busy & (x_lane != EPW - 1)) | dw_x)
        hold_r = Signal()
        m.d.sync += hold_r.eq(hold_next)
        m.d.comb += rxf.hold.eq(hold_r)
        # The unpacked activation reaches the writer one cycle later, from registers
        # (index compare + writer + buffer write in one cycle was a long path, Fmax).
        # The range check is registered too and fails one cycle later (still before
        # WAITX lets CHECK run: x_push is high in that cycle). Its mask of the bits at and
        # above x_bits follows x_bits by a cycle; x_bits is set at least three cycles
        # before the first activation (lane select, shift and the fail priority chain
        # into `err` in one cycle were a long path, Fmax).
        x_push = Signal()
        x_pval = Signal(lane_w)
        x_hmask = Signal(lane_w)
        x_bad = Signal()
        m.d.sync += [x_push.eq(0), x_bad.eq(0),
                     x_hmask.eq(~((Const(1, lane_w + 1) << x_bits) - 1))]
        with m.If(x_busy):
            m.d.sync += [x_lane.eq(x_lane + 1), x_idx.eq(x_idx + 1),
                         x_more.eq(x_more & (x_idx != x_km1))]
            with m.If(x_lane == EPW - 1):
                m.d.sync += x_busy.eq(0)
            with m.If(x_more):
                m.d.sync += [x_push.eq(1), x_pval.eq(x_val),
                             x_bad.eq((x_val & x_hmask) != 0)]
        with m.If(x_bad & ~err_set):
            fail(Status.RANGE, x_arg)

        # ------------------------------------------------------------- response source
        # A stream of payload words for the TxFramer: status, then by source.
        src = Signal(2)
        src_state = Signal(2, init=3)   # 0 status, 1 body, 2 cycles, 3 done (idle)
        status_word = Signal(32)
        src_i = Signal(8)
        n_data = Signal(16)
        # n_data == 0 as a flip-flop (a 16-bit compare in front of the result FIFO's
        # ready was a long path, Fmax): exact after a take (n_data == 1 then), and
        # otherwise a cycle behind n_data, which only RESP_SET changes, at least two
        # cycles before the body starts (the framer sends its header first).
        n_zero = Signal()
        m.d.sync += n_zero.eq(n_data == 0)
        cycles = Signal(32)
        comp_done = Signal()
        st_layer = Signal(range(LW))
        st_word = Signal(3)
        info_words = [
            (MAGIC << 16) | (VERSION << 8) | (0 if serial else 1),
            R | (C << 16),
            N | (A << 8) | (L << 16) | (cfg.stream_width << 24),
            cfg.max_m | (cfg.max_k << 16),
            depth,
            wd.acc_bits | (wd.d_bits << 8) | (EPW << 16) | (WPW << 24),
        ]
        info_arr = Array(Const(v, 32) for v in info_words)
        slot_val = Signal(32)
        slot_val_r = Signal(32)
        slot_wait = Signal()            # (iCE40: direct, every cycle; logic cells)
        m.d.sync += slot_wait.eq(0)
        if not ice40:
            # The info words take the same registered path (a constant table behind the
            # source multiplexer was a long path too).
            m.d.sync += slot_val_r.eq(Mux(src == _SRC_INFO, info_arr[src_i], slot_val))
        with m.Switch(st_word):
            with m.Case(0):
                m.d.comb += slot_val.eq(Mux(f_cfg[st_layer],
                                            f_ms[st_layer] | (f_ks[st_layer] << 16), 0))
            with m.Case(1):
                m.d.comb += slot_val.eq(f_base[st_layer])
            with m.Case(2):
                m.d.comb += slot_val.eq(f_planes[st_layer] | (f_mask[st_layer] << 16))
            with m.Case(3):
                m.d.comb += slot_val.eq(f_wbits[st_layer] | (f_abits[st_layer] << 8))
            with m.Default():
                m.d.comb += slot_val.eq(f_mrun[st_layer] | (f_krun[st_layer] << 16))

        # Off iCE40 the payload words reach the framer through a register slice: the
        # framer's ready, the source multiplexer and the result FIFO's slice behind it
        # in one cycle were a long path (Fmax). The framer counts the words it takes.
        # On iCE40 the framer's valid and data are flip-flops, a cycle behind the
        # source's: its ready is one too, low in the cycle after every take
        # (hw/framing.py), so a word that is a cycle late is never taken stale (no
        # source withdraws or changes a word but by a take; the cycle count stops
        # before it is valid). ``s_rdy`` is the take itself there. (The source
        # multiplexer, the framer's ready and the output register's enable in one cycle
        # were the UP5K boards' longest paths, docs/boards.md.)
        if ice40:
            s_valid = Signal()
            s_data = Signal(32)
            s_rdy = Signal()
            m.d.sync += [txf.i.valid.eq(s_valid), txf.i.payload.eq(s_data)]
            m.d.comb += s_rdy.eq(txf.i.valid & txf.i.ready)
        else:
            m.submodules.src_q = src_q = Skid(unsigned(32))
            wiring.connect(m, src_q.o, txf.i)
            s_valid = src_q.i.valid
            s_data = src_q.i.payload
            s_rdy = src_q.i.ready
        # Each state below tests its own valid with the ready, not the multiplexed
        # valid (which put every source's valid in front of every state's registers).
        # Off iCE40, "the result FIFO's words are what goes out" (src_state 1, src DATA,
        # n_data != 0) as a flip-flop: that decode in front of the result slice's ready,
        # which enables its 64 flip-flops, was a long path at 150 MHz (Fmax). (Set from
        # n_data, not n_zero: the status word may leave the cycle after RESP_SET.)
        # Its take, from flip-flops too, also counts the words down (the source
        # multiplexer's take in front of n_data was a long path).
        dphase = Signal()
        if not ice40:
            d_take = Signal()
            m.d.comb += [fifo_q.o.ready.eq(dphase & s_rdy),
                         d_take.eq(dphase & s_rdy & fifo_q.o.valid)]
            with m.If(d_take):
                m.d.sync += [n_data.eq(n_data - 1), n_zero.eq(n_data == 1),
                             dphase.eq(n_data != 1)]
        with m.Switch(src_state):
            with m.Case(0):
                m.d.comb += [s_valid.eq(1), s_data.eq(status_word)]
                with m.If(s_rdy):
                    m.d.sync += [src_i.eq(0), st_layer.eq(0), st_word.eq(0), slot_wait.eq(1),
                                 src_state.eq(Mux(src == _SRC_NONE, 3, 1)),
                                 dphase.eq((src == _SRC_DATA) & (n_data != 0))]
            with m.Case(1):
                with m.Switch(src):
                    with m.Case(_SRC_INFO):
                        if ice40:
                            m.d.comb += [s_valid.eq(1), s_data.eq(info_arr[src_i])]
                        else:
                            m.d.comb += [s_valid.eq(~slot_wait), s_data.eq(slot_val_r)]
                        with m.If(s_rdy if ice40 else ~slot_wait & s_rdy):
                            m.d.sync += [src_i.eq(src_i + 1), slot_wait.eq(1)]
                            with m.If(src_i == len(info_words) - 1):
                                m.d.sync += src_state.eq(3)
                    with m.Case(_SRC_SLOTS):
                        # slot_val from a register, refreshed in the cycle after each
                        # word (the descriptor reads behind the source multiplexer
                        # were a long path, Fmax): a word every other cycle at most.
                        if ice40:
                            m.d.comb += [s_valid.eq(1), s_data.eq(slot_val)]
                        else:
                            m.d.comb += [s_valid.eq(~slot_wait), s_data.eq(slot_val_r)]
                        with m.If(s_rdy if ice40 else ~slot_wait & s_rdy):
                            m.d.sync += [st_word.eq(st_word + 1), slot_wait.eq(1)]
                            with m.If(st_word == 4):
                                m.d.sync += [st_word.eq(0), st_layer.eq(st_layer + 1)]
                                with m.If(st_layer == L - 1):
                                    m.d.sync += src_state.eq(3)
                    with m.Case(_SRC_DATA):
                        with m.If(n_zero):
                            m.d.sync += src_state.eq(2)
                        with m.Else():
                            m.d.comb += [s_valid.eq(fifo_q.o.valid), s_data.eq(fifo_q.o.payload)]
                            if ice40:
                                s_take = fifo_q.o.valid & s_rdy
                                m.d.comb += fifo_q.o.ready.eq(s_take)
                                with m.If(s_take):
                                    m.d.sync += [n_data.eq(n_data - 1),
                                                 n_zero.eq(n_data == 1)]
            with m.Case(2):
                m.d.comb += [s_valid.eq(comp_done), s_data.eq(cycles)]
                with m.If(comp_done & s_rdy):
                    m.d.sync += src_state.eq(3)

        # ------------------------------------------------------------- compute
        cmp_go = Signal()
        cmp_infer = Signal()
        cmp_n = Signal(range(L + 1))
        cmp_l = Signal(range(L + 1))
        cmp_k = Signal(range(N + 1))
        cmp_layer = Signal(range(LW))
        sx = Array(Signal(wd.sx_bits, name=f"sx{b}") for b in range(2))
        # Off iCE40 the sums are written under enables registered a cycle early (below
        # the compute FSM): the buffer select decoded from the layer counter and ORed
        # with the controller's write, in front of every sum bit's enable, was the
        # 85F's critical path at 150 MHz (7.1 ns, seed 1).
        sx_we = [Signal(name=f"sx{b}_we") for b in range(2)]
        if not ice40:
            m.d.sync += [sx_we[0].eq(0), sx_we[1].eq(0)]     # pulses, set in FLUSH
        counting = Signal()
        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)

        # The layer about to run: `cur`, its precision `cur_k` and the next layer, computed
        # from the run state, then registered (state SEL) before anything uses them; the
        # shift-table address is registered in SETUP. The engine samples everything at
        # START. (Descriptor reads, the shift-table read and the correction term in one
        # cycle were a long path, Fmax.)
        cur = Signal(range(LW))
        nxt = Signal(range(LW))
        cur_k = Signal(range(N + 1))
        last_layer = Signal()
        m.d.comb += [
            cur.eq(Mux(cmp_infer, cmp_l, cmp_layer)),
            nxt.eq(Mux(cmp_l + 1 < L, cmp_l + 1, 0)),
            cur_k.eq(Mux(cmp_infer, f_wbits[cur], cmp_k)),
            last_layer.eq(~cmp_infer | (cmp_l == cmp_n - 1)),
            rd_sel.eq(cmp_infer & cmp_l[0]),
        ]
        cur_r = Signal(range(LW))
        nxt_r = Signal(range(LW))
        cur_k_r = Signal(range(N + 1))
        last_r = Signal()
        saddr = Signal.like(shifts_r.addr)
        q_r = Signal.like(eng.q)
        # The correction term (2^k - 1) * sum(x) in three registered steps (SEL: the sum
        # by buffer, SETUP: the shift, CORR: the subtraction; the three in one cycle were
        # the 85F's critical path, 8.9 ns at a 150 MHz constraint). On iCE40 without
        # CORR: the subtraction goes into the engine's own register for q at START (the
        # three in one were both UP5K boards' critical path, 30.3 ns, and the shift and
        # subtraction in one, SETUP, at 50 MHz still, docs/boards.md).
        src_sx_r = Signal(wd.sx_bits)
        q_sh = Signal.like(eng.q)
        hidden = Signal()          # a hidden layer of INFER runs; set in SETUP
        src_sx = Signal(wd.sx_bits)
        m.d.comb += [src_sx.eq(sx[rd_sel]), shifts_r.addr.eq(saddr)]
        # The layer's descriptor values reach the engine through registers off iCE40
        # (`late`; exact from START on: cur_r, nxt_r and cur_k_r are set in SEL, at least
        # two cycles before, and no descriptor changes while computing): the descriptor
        # multiplexers in front of the engine's start-time compares were long paths at
        # 150 MHz (Fmax).
        late += [
            eng.base.eq(f_base[cur_r]), eng.tj.eq(f_tj[cur_r]), eng.j_s.eq(f_js[cur_r]),
            eng.t_run.eq(f_trun[cur_r]), eng.j_run.eq(f_jrun[cur_r]),
            eng.m_run.eq(f_mrun[cur_r]), eng.a_in.eq(f_abits[cur_r]),
            eng.a_out.eq(f_abits[nxt_r]),
            eng.tab_base.eq((cur_r * N + cur_k_r - 1) * cfg.tab_stride),
        ]
        m.d.comb += [
            eng.k.eq(cur_k_r),
            eng.mode.eq(Mux(~cmp_infer, MODE_RAW, Mux(last_r, MODE_FINAL, MODE_HIDDEN))),
            # (iCE40: q_r holds the shift, and the engine's start register the
            # difference, without the CORR state's cycle or register)
            eng.q.eq(q_r - src_sx_r if ice40 else q_r), eng.shift.eq(shifts_r.data),
        ]
        for i, f in enumerate(fifos):
            m.d.comb += [f.w_data.eq(eng.o_values[i]),
                         f.w_en.eq(eng.o_valid & ~hidden & (eng.o_n > i))]

        # The writer is shared: host activations while receiving, hidden layers while
        # computing (never both).
        w_start_rx = Signal()
        m.d.sync += w_start_rx.eq(0)       # a pulse, set in ctrl state FRAME
        w_flush_rx = Signal()
        m.d.sync += w_flush_rx.eq(0)       # a pulse, set in ctrl state WAITX
        # iCE40: the writer's start for a hidden layer is a flip-flop too (set in SETUP,
        # high in START), and the start the OR of the two pulses: through the compute
        # state's multiplexer it reached the writer's 60 flip-flops late (50 MHz).
        w_start_c = Signal()
        if ice40:
            m.d.sync += w_start_c.eq(0)
            m.d.comb += writer.start.eq(w_start_rx | w_start_c)
        with m.FSM(name="compute"):
            with m.State("IDLE"):
                m.d.comb += ([] if ice40 else [writer.start.eq(w_start_rx)]) + [
                    writer.flush.eq(w_flush_rx), writer.valid.eq(x_push),
                    writer.values.eq(x_pval)]
                with m.If(cmp_go):
                    m.d.sync += [cmp_l.eq(0), cycles.eq(0), counting.eq(1),
                                 comp_done.eq(0), fifo_rd.eq(0)]
                    m.next = "SEL"
            with m.State("SEL"):
                m.d.sync += [cur_r.eq(cur), nxt_r.eq(nxt), cur_k_r.eq(cur_k),
                             last_r.eq(last_layer), src_sx_r.eq(src_sx)]
                m.next = "SETUP"
            with m.State("SETUP"):
                m.d.sync += [wr_sel.eq(~rd_sel), hidden.eq(cmp_infer & ~last_r),
                             saddr.eq(cur_r * N + cur_k_r - 1)]
                if ice40:       # the shift; the subtraction on the way into the engine
                    m.d.sync += [q_r.eq(src_sx_r << cur_k_r),
                                 w_start_c.eq(cmp_infer & ~last_r)]
                    m.next = "START"
                else:
                    m.d.sync += q_sh.eq(src_sx_r << cur_k_r)
                    m.next = "CORR"
            if not ice40:
                with m.State("CORR"):
                    m.d.sync += q_r.eq(q_sh - src_sx_r)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [eng.start.eq(1)] + ([] if ice40 else [writer.start.eq(hidden)])
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(hidden):
                    m.d.comb += [writer.valid.eq(eng.o_valid), writer.n.eq(eng.o_n),
                                 writer.values.eq(Cat(*[eng.o_values[i][:A]
                                                        for i in range(DL)]))]
                with m.If(eng.done):
                    with m.If(hidden):
                        m.next = "FLUSH"
                    with m.Else():
                        m.d.sync += [counting.eq(0), comp_done.eq(1), wr_sel.eq(0)]
                        m.next = "IDLE"
            with m.State("FLUSH"):
                m.d.comb += writer.flush.eq(1)
                if not ice40:
                    m.d.sync += [sx_we[0].eq(rd_sel), sx_we[1].eq(~rd_sel)]
                m.next = "NEXT"
            with m.State("NEXT"):
                if ice40:   # one statement, as before: a reordering moved the iCESugar's netlist
                    m.d.sync += [sx[~rd_sel].eq(writer.sum), cmp_l.eq(cmp_l + 1)]
                else:
                    m.d.sync += cmp_l.eq(cmp_l + 1)
                m.next = "SEL"
        # Off iCE40 the writes to sx go through pulse flags outside the FSMs: sx_we[b]
        # set in FLUSH (high in NEXT; rd_sel holds until then) and d_sx set in the
        # controller's DECIDE (high in CHECK: d_mv | d_in there).
        d_sx = Signal()
        if not ice40:
            m.d.sync += d_sx.eq(0)        # a pulse, set in DECIDE
            with m.If(sx_we[0] | d_sx):
                m.d.sync += sx[0].eq(writer.sum)
            with m.If(sx_we[1]):
                m.d.sync += sx[1].eq(writer.sum)

        # ------------------------------------------------------------- controller
        new_m = w2[0:16]
        new_k = w2[16:32]
        e_layer = lsel              # word 1's layer (0 when out of range), registered
        # The addressed layer's sizes and plane count for PRE's compares, a cycle late
        # (exact: lsel and the descriptors settle many cycles before PRE): the
        # descriptor multiplexer in front of a 16-bit compare was a long path at 150 MHz
        # (Fmax), and the compare behind the layer index on the UP5K at 50 MHz.
        e_ms, e_ks, e_planes = (Signal.like(f[0], name=f"e_{n}") for f, n in
                                ((f_ms, "ms"), (f_ks, "ks"), (f_planes, "planes")))
        m.d.sync += [e_ms.eq(f_ms[e_layer]), e_ks.eq(f_ks[e_layer]),
                     e_planes.eq(f_planes[e_layer])]
        # SET_RUN's size checks likewise (w2 settles at least three cycles before PRE).
        sr_m_bad, sr_k_bad = Signal(), Signal()
        m.d.sync += [sr_m_bad.eq((new_m == 0) | (new_m > e_ms)),
                     sr_k_bad.eq((new_k == 0) | (new_k > e_ks))]
        # T and J of a SET_LAYER or SET_RUN that passes its size checks fit these (a
        # larger M or K is refused before they are used).
        t_new = Signal(range(cfg.tiles_max + 1))
        j_new = Signal(range(cfg.chunks_max + 1))
        # w2 is written the cycle after payload word 2 arrives, at least three cycles
        # before PRE reads t_new/j_new (CRC word, framer END, WAITX): the two-cycle
        # quotient of a divisor that is not a power of two is settled by then.
        m.d.comb += [t_new.eq(_ceil_div_reg(m, new_m, R, cfg.tiles_max, "t_new_q")),
                     j_new.eq(_ceil_div_reg(m, new_k, C, cfg.chunks_max, "j_new_q"))]
        end_bad = Signal()              # the layer ends past depth (state SL_CMP)
        # T*J by repeated addition (a rare command); mul_i counts the additions left.
        tj_acc = Signal(range(cfg.tiles_max * cfg.chunks_max + 1))
        mul_i = Signal.like(t_new)
        mul_last = Signal()
        span = Signal(range(cfg.tiles_max * cfg.chunks_max * (N if serial else 1) + 1))
        m.d.comb += span.eq(tj_acc * (N if serial else 1))
        new_end = Signal(max(w3_bits, len(span)) + 1)
        new_end_r = Signal.like(new_end)
        m.d.comb += new_end.eq(w3 + span)
        loop_i = Signal(range(max(L, cfg.max_m) + 2))
        cp_base = Signal(range(max(tab_depth, 2)))
        # The LOAD_REQUANT copy's write position (table word, lane), advanced row by row:
        # computing cp_base + (loop_i - 1) / DL in the copy cycle was two carry chains in
        # front of the block RAM's address (the iCESugar-Pro's and at times the 85F's
        # critical path, docs/boards.md). Reset to (cp_base, 0) outside the copy.
        cp_waddr = Signal.like(cp_base)
        cp_lane = Signal(range(max(DL, 2)))
        lat_ok = Signal()           # RQ_COPY: loop_i >= ST_LAT (off iCE40)
        m.d.sync += [cp_waddr.eq(cp_base), cp_lane.eq(0)]
        resp_len = Signal(16)

        # Registered checks (state PRE) for CHECK.
        pc_sl_bad, pc_sr_range, pc_notcfg, pc_sr_size, pc_mv_notready = (
            Signal(name=n) for n in ("pc_sl_bad", "pc_sr_range", "pc_notcfg", "pc_sr_size",
                                     "pc_mv_notready"))
        pc_bad_frame, pc_err = Signal(), Signal()    # final by PRE: the frame is over
        d_sl, d_pl, d_rq, d_sr, d_mv, d_in = (Signal(name=f"d_{n}") for n in (
            "sl", "pl", "rq", "sr", "mv", "in"))
        pc_mrun = Signal(range(cfg.max_m + 1))
        pc_planes1 = Signal(range(N + 2))
        pc_end_m1 = Signal(range(cfg.max_m + ST_LAT))    # pc_end below, less one
        rq_last = Signal()
        pc_mask = Signal(N)
        pc_saddr = Signal.like(shifts_w.addr)
        rq_kk = Signal(range(max(N, 2)))     # plane index of LOAD_REQUANT (checked < N)
        m.d.comb += rq_kk.eq(w1[8:16] - 1)
        pc_tnew = Signal.like(t_new)
        pc_jnew = Signal.like(j_new)
        sr_wb, sr_ab = w1[8:16], w1[16:24]
        sr_bad_w = (sr_wb == 0) | (sr_wb > N) | (Const(0) if serial else (sr_wb != N))

        so_done, so_conflict, so_other = Signal(), Signal(), Signal()
        so_end = Signal(aw + 1)
        so_base = Signal(aw)
        ic_done, ic_notready, ic_conflict = Signal(), Signal(), Signal()
        ic_li = Signal(range(LW))
        ic_cfg, ic_more = Signal(), Signal()
        ic_wb = Signal(range(N + 1))
        ic_planes = Signal(range(N + 1))
        ic_mask = Signal(N)
        ic_mrun = Signal(range(cfg.max_m + 1))
        ic_knext = Signal(range(cfg.max_k + 1))
        ic_len = Signal(range(cfg.max_m + 1))

        # A response is decided in two steps: the deciding state records which call of
        # respond() it took (a small index), and RESP_SET loads the response registers
        # from that call's values, which are all registers that hold still meanwhile.
        # Every decision's condition feeding 66 response bits in one cycle was a long
        # path (Fmax).
        resp_sites = []
        resp_site = Signal(5)

        def respond(status, arg=0, source=_SRC_NONE, length=1, n=0):
            m.d.sync += resp_site.eq(len(resp_sites))
            resp_sites.append((status, arg, source, length, n))
            m.next = "RESP_SET"

        # The staging memory's read address and the table's write data need no state
        # (reads are harmless, the write enable qualifies the data).
        m.d.comb += [stage_r.addr.eq(loop_i),
                     tab_wdata.eq(stage_r.data.as_value().replicate(DL))]

        with m.FSM(name="ctrl"):
            with m.State("FRAME"):
                # Receiving; host activations go to buffer 0 (wr_sel is 0 between runs).
                # (registered: the framer's handshake is a long path already; activation
                # words come at least three cycles after the header)
                m.d.sync += w_start_rx.eq(rxf.hdr)
                with m.If(rxf.end):
                    m.next = "WAITX"
            with m.State("WAITX"):
                with m.If(~x_busy & ~dw_x & ~x_push):
                    m.d.sync += w_flush_rx.eq(1)     # the writer flushes in PRE
                    m.next = "PRE"
            with m.State("PRE"):
                # Every check CHECK acts on, evaluated into registers one cycle earlier:
                # indexed descriptor reads and wide compares feeding the response set-up
                # and the compute start in one cycle were the design's longest paths
                # (Fmax, docs/boards.md).
                m.d.sync += [
                    pc_bad_frame.eq(rxf.verdict != Status.OK), pc_err.eq(err_set),
                    pc_sl_bad.eq((w1[0:8] >= L) | (new_m == 0) | (new_m > cfg.max_m) |
                                 (new_k == 0) | (new_k > cfg.max_k)),
                    pc_sr_range.eq((w1[0:8] >= L) | sr_bad_w | (sr_ab == 0) | (sr_ab > A)),
                    pc_notcfg.eq(~f_cfg[e_layer]),
                    pc_sr_size.eq(sr_m_bad | sr_k_bad),
                    pc_mv_notready.eq(e_planes < w1[8:16]),
                    pc_mrun.eq(f_mrun[e_layer]),
                    pc_planes1.eq(f_planes[pl_layer] + 1),
                    cp_base.eq((e_layer * N + w1[8:16] - 1) * cfg.tab_stride),
                    pc_tnew.eq(t_new), pc_jnew.eq(j_new),
                    pc_end_m1.eq(e_ms + (ST_LAT - 2)),
                    pc_mask.eq(f_mask[e_layer] | (1 << rq_kk)),
                    pc_saddr.eq(e_layer * N + rq_kk),
                ]
                m.next = "DECIDE"
            with m.State("DECIDE"):
                ok = ~pc_bad_frame & ~pc_err
                m.d.sync += [
                    d_sl.eq(ok & (op_k == K[Opcode.SET_LAYER]) & ~pc_sl_bad),
                    d_pl.eq(ok & (op_k == K[Opcode.LOAD_PLANE])),
                    d_rq.eq(ok & (op_k == K[Opcode.LOAD_REQUANT])),
                    d_sr.eq(ok & (op_k == K[Opcode.SET_RUN]) & ~pc_sr_range & ~pc_notcfg &
                            ~pc_sr_size),
                    d_mv.eq(ok & (op_k == K[Opcode.MATVEC]) & ~pc_mv_notready),
                    d_in.eq(ok & (op_k == K[Opcode.INFER])),
                ]
                if not ice40:   # d_mv | d_in, spelt out: sharing the terms moves the ECP5 netlist
                    m.d.sync += d_sx.eq(ok & (((op_k == K[Opcode.MATVEC]) & ~pc_mv_notready) |
                                              (op_k == K[Opcode.INFER])))
                m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(pc_bad_frame):
                    respond(rxf.verdict)
                with m.Elif(pc_err):
                    respond(err, err_arg)
                with m.Else():
                    with m.Switch(op_k):
                        with m.Case(K[Opcode.INFO]):
                            respond(Status.OK, source=_SRC_INFO, length=1 + len(info_words))
                        with m.Case(K[Opcode.STATUS]):
                            respond(Status.OK, source=_SRC_SLOTS, length=1 + 5 * L)
                        with m.Case(K[Opcode.SET_LAYER]):
                            with m.If(pc_sl_bad):
                                respond(Status.RANGE, w1[0:8])
                            with m.Else():
                                m.next = "SL_MUL"
                        with m.Case(K[Opcode.LOAD_PLANE]):
                            respond(Status.OK)
                        with m.Case(K[Opcode.LOAD_REQUANT]):
                            m.next = "RQ_COPY"
                        with m.Case(K[Opcode.SET_RUN]):
                            with m.If(pc_sr_range):
                                respond(Status.RANGE, w1[0:8])
                            with m.Elif(pc_notcfg):
                                respond(Status.NOT_READY, e_layer)
                            with m.Elif(pc_sr_size):
                                respond(Status.RANGE, e_layer)
                            with m.Else():
                                respond(Status.OK)
                        with m.Case(K[Opcode.MATVEC]):
                            with m.If(pc_mv_notready):
                                respond(Status.NOT_READY, e_layer)
                            with m.Else():
                                respond(Status.OK, source=_SRC_DATA,
                                        length=2 + pc_mrun, n=pc_mrun)
                        with m.Case(K[Opcode.INFER]):
                            m.next = "IN_CHECK"
                # What CHECK writes, each under one flag that DECIDE registered (the
                # verdict, the opcode and the checks in front of these registers' enables
                # were long paths, Fmax).
                with m.If(d_sl):
                    m.d.sync += [tj_acc.eq(0), mul_i.eq(pc_tnew), mul_last.eq(pc_tnew == 1)]
                with m.If(d_pl):
                    m.d.sync += f_planes[pl_layer].eq(pc_planes1)
                    if serial:
                        m.d.sync += f_wptr[pl_layer].eq(wp_addr)
                with m.If(d_rq | d_in):
                    m.d.sync += [loop_i.eq(0), rq_last.eq(0)]
                    if not ice40:
                        m.d.sync += lat_ok.eq(0)
                with m.If(d_sr):
                    m.d.sync += [f_wbits[e_layer].eq(sr_wb), f_abits[e_layer].eq(sr_ab),
                                 f_mrun[e_layer].eq(new_m), f_krun[e_layer].eq(new_k),
                                 f_trun[e_layer].eq(pc_tnew), f_jrun[e_layer].eq(pc_jnew)]
                with m.If(d_mv):
                    m.d.sync += [cmp_infer.eq(0), cmp_layer.eq(e_layer), cmp_k.eq(w1[8:16])]
                    m.d.comb += cmp_go.eq(1)
                if ice40:
                    with m.If(d_mv | d_in):
                        m.d.sync += sx[0].eq(writer.sum)

            # SET_LAYER: T*J, bounds, overlap, commit.
            with m.State("SL_MUL"):
                # T additions of J; ``mul_last`` (a register) marks the last one.
                m.d.sync += [tj_acc.eq(tj_acc + pc_jnew), mul_i.eq(mul_i - 1),
                             mul_last.eq(mul_i == 2)]
                with m.If(mul_last):
                    m.next = "SL_END"
            with m.State("SL_END"):
                m.d.sync += new_end_r.eq(new_end)
                m.next = "SL_CMP"
            with m.State("SL_CMP"):
                m.d.sync += end_bad.eq(w3_big | (new_end_r > depth))
                m.next = "SL_BOUND"
            with m.State("SL_BOUND"):
                with m.If(end_bad):
                    respond(Status.RANGE, e_layer)
                with m.Else():
                    m.d.sync += loop_i.eq(0)
                    m.next = "SL_OVERLAP"
            # SL_OVERLAP reads one layer's descriptor into registers, SL_COMPARE compares,
            # SL_DECIDE acts (IN_CHECK / IN_COMPARE / IN_DECIDE likewise): indexed descriptor
            # reads, wide compares and the response set-up in one cycle were the longest
            # paths of the design (Fmax, docs/boards.md). A few cycles per layer slot.
            with m.State("SL_OVERLAP"):
                li = Signal(range(LW))
                m.d.comb += li.eq(loop_i)
                m.d.sync += [so_done.eq(loop_i == L), so_other.eq((li != e_layer) & f_cfg[li]),
                             so_end.eq(f_end[li]), so_base.eq(f_base[li])]
                m.next = "SL_COMPARE"
            with m.State("SL_COMPARE"):
                m.d.sync += so_conflict.eq(so_other & (w3 < so_end) & (so_base < new_end_r))
                m.next = "SL_DECIDE"
            with m.State("SL_DECIDE"):
                with m.If(so_done):
                    m.d.sync += [
                        f_cfg[e_layer].eq(1), f_ms[e_layer].eq(new_m), f_ks[e_layer].eq(new_k),
                        f_base[e_layer].eq(w3), f_end[e_layer].eq(new_end_r),
                        f_js[e_layer].eq(pc_jnew), f_tj[e_layer].eq(tj_acc),
                        f_pw[e_layer].eq(tj_acc * WPW), f_planes[e_layer].eq(0),
                        f_mask[e_layer].eq(0), f_wptr[e_layer].eq(w3),
                        f_wbits[e_layer].eq(N), f_abits[e_layer].eq(A),
                        f_mrun[e_layer].eq(new_m), f_krun[e_layer].eq(new_k),
                        f_trun[e_layer].eq(pc_tnew), f_jrun[e_layer].eq(pc_jnew),
                    ]
                    respond(Status.OK)
                with m.Elif(so_conflict):
                    respond(Status.CONFLICT, e_layer)
                with m.Else():
                    m.d.sync += loop_i.eq(loop_i + 1)
                    m.next = "SL_OVERLAP"

            # LOAD_REQUANT: copy the staged table (read latency ST_LAT), then mark it
            # loaded. `rq_last` (a register, cleared in CHECK) marks the cycle that
            # writes the last row: loop_i == pc_end, the layer's M + ST_LAT - 1 (kept less
            # one, so that the test is a compare of two registers: Fmax).
            with m.State("RQ_COPY"):
                m.d.sync += [loop_i.eq(loop_i + 1), rq_last.eq(loop_i == pc_end_m1)]
                # (off iCE40 loop_i >= ST_LAT is a flip-flop, `lat_ok`, cleared with
                # loop_i in CHECK: the compare in front of the table's write registers
                # was a long path at 150 MHz)
                if not ice40:
                    m.d.sync += lat_ok.eq(lat_ok | (loop_i == ST_LAT - 1))
                with m.If((loop_i >= ST_LAT) if ice40 else lat_ok):
                    # Row i = loop_i - ST_LAT is lane i mod DL of word cp_base + i / DL.
                    m.d.comb += [tab_we.eq(1), tab_waddr.eq(cp_waddr),
                                 tab_wen.eq(Const(1, DL) << cp_lane)]
                    last_lane = cp_lane == DL - 1
                    m.d.sync += [cp_lane.eq(Mux(last_lane, 0, cp_lane + 1)),
                                 cp_waddr.eq(cp_waddr + last_lane)]
                with m.If(rq_last):
                    m.d.sync += f_mask[e_layer].eq(pc_mask)
                    m.d.comb += [shifts_w.addr.eq(pc_saddr),
                                 shifts_w.data.eq(w1[16:24]), shifts_w.en.eq(1)]
                    respond(Status.OK)

            # INFER: every layer ready and the sizes chain, then run.
            with m.State("IN_CHECK"):
                # Three steps per layer (read, compare, decide): the indexed descriptor
                # reads, the readiness compare and the variable shift of the plane mask in
                # one cycle were among the longest paths (Fmax, docs/boards.md).
                li = Signal(range(LW))
                m.d.comb += li.eq(loop_i)
                n = w1[0:8]
                last_i = Signal(range(LW))
                m.d.comb += last_i.eq(n - 1)
                m.d.sync += [
                    ic_done.eq(loop_i == n), ic_li.eq(li), ic_len.eq(f_mrun[last_i]),
                    ic_cfg.eq(f_cfg[li]), ic_wb.eq(f_wbits[li]), ic_planes.eq(f_planes[li]),
                    ic_mask.eq(f_mask[li]), ic_more.eq(loop_i + 1 < n),
                    ic_mrun.eq(f_mrun[li]), ic_knext.eq(f_krun[(li + 1)[:len(li)]]),
                ]
                m.next = "IN_COMPARE"
            with m.State("IN_COMPARE"):
                m.d.sync += [
                    ic_notready.eq(~ic_cfg | (ic_planes < ic_wb) |
                                   ~(ic_mask >> (ic_wb - 1)[:len(ic_wb)])[0]),
                    ic_conflict.eq(ic_more & (ic_mrun != ic_knext)),
                ]
                m.next = "IN_DECIDE"
            with m.State("IN_DECIDE"):
                n = w1[0:8]
                with m.If(ic_done):
                    m.d.sync += [cmp_infer.eq(1), cmp_n.eq(n)]
                    m.d.comb += cmp_go.eq(1)
                    respond(Status.OK, source=_SRC_DATA, length=2 + ic_len, n=ic_len)
                with m.Elif(ic_notready):
                    respond(Status.NOT_READY, ic_li)
                with m.Elif(ic_conflict):
                    respond(Status.CONFLICT, ic_li)
                with m.Else():
                    m.d.sync += loop_i.eq(loop_i + 1)
                    m.next = "IN_CHECK"

            with m.State("RESP_SET"):
                assert len(resp_sites) <= 2 ** len(resp_site)
                with m.Switch(resp_site):
                    for i, (status, arg, source, length, n) in enumerate(resp_sites):
                        with m.Case(i):
                            m.d.sync += [status_word.eq(status | (arg << 8)), src.eq(source),
                                         resp_len.eq(length), n_data.eq(n)]
                m.d.sync += src_state.eq(0)
                m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += [txf.go.eq(1), txf.op.eq(op), txf.tag.eq(tag),
                             txf.length.eq(resp_len)]
                m.next = "SENDING"
            with m.State("SENDING"):
                with m.If(~txf.busy & (src_state == 3)):
                    m.d.comb += rxf.release.eq(1)
                    m.next = "FRAME"
        return m
