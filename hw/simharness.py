"""``anyprec_sim_top``: ``anyprec_top`` plus testbench frame buffers (simulation only).

A cocotb testbench that drives AXI-Stream beats from Python pays for Python work on every
clock edge. This wrapper lets it load a whole request frame into a buffer (one word per
clock), start it, and sleep until the response has been captured: the inference itself
runs with no Python in the loop. Random ``tvalid`` gaps and ``tready`` stalls come from an
LFSR, so back-pressure can be exercised at full speed too.

With ``bypass`` high the external ``s_axis_*`` / ``m_axis_*`` ports connect straight to
the DUT, for standard AXI-Stream agents (cocotbext-axi) on the same build.
"""

from amaranth import Module, Signal, Mux, Cat
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.lib.memory import Memory
from amaranth.back import verilog

from .top import AnyprecTop

__all__ = ["SimHarness", "generate_sim_verilog", "LANES"]

#: Beats moved per load or read access: a typical request or response fits in one line,
#: so a Python testbench needs one clock edge to load it and no clock to read it.
LANES = 32


class SimHarness(wiring.Component):
    """Frame buffers around the DUT.

    Parameters
    ----------
    cfg : AnyprecConfig
    buf_words : int, optional
        Capacity of each buffer, in stream beats; default: the largest frame ``cfg``
        allows (a plane, a requant table, an input vector or a response).

    Members
    -------
    bypass : In(1)
        Connect the ``s_axis_*`` / ``m_axis_*`` ports to the DUT instead of the buffers.
    ld_en, ld_data, ld_count : In
        Append ``ld_count`` (1..LANES) beats, lane 0 first, to the request buffer (one
        load per clock; every load but a frame's last must be full). Wide loads keep a
        Python testbench from paying a clock edge per beat.
    go : In(1)
        Send the loaded beats (``tlast`` on the final one) and capture the response. May
        come in the same cycle as the frame's last load.
    gap_rate, stall_rate : In(8)
        Probability x 256 of a ``tvalid`` gap / ``tready`` stall on each cycle.
    seed : In(16)
        LFSR seed, loaded with ``go``.
    done : Out(1)
        The response (up to its ``tlast``) is in the response buffer.
    rsp_count : Out(16)
        Beats captured.
    rd_addr : In, rd_data : Out
        Combinational read of the response buffer, LANES beats (a line) at a time: line
        ``rd_addr`` holds beats ``LANES*rd_addr ...``.
    cycles : Out(32)
        Clock cycles from ``go`` to ``done``.
    """

    def __init__(self, cfg, *, buf_words=None):
        self._cfg = cfg
        buf_words = _buf_words(cfg) if buf_words is None else max(buf_words, 2 * LANES)
        self._buf = buf_words
        super().__init__(_ports(cfg, buf_words))

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        w = cfg.stream_width
        m.submodules.dut = dut = AnyprecTop(cfg)
        lines = self._buf // LANES
        m.submodules.req = req = Memory(shape=w * LANES, depth=lines, init=[])
        m.submodules.rsp = rsp = Memory(shape=w * LANES, depth=lines, init=[])
        req_w, req_r = req.write_port(), req.read_port(domain="comb")
        rsp_w, rsp_r = rsp.write_port(granularity=w), rsp.read_port(domain="comb")

        n_req = Signal(17)
        sent = Signal(17)
        sending = Signal()
        capturing = Signal()
        lfsr = Signal(16, init=1)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5]))
        roll_a = lfsr[0:8]
        roll_b = lfsr[8:16]
        gap = roll_a < self.gap_rate
        stall = roll_b < self.stall_rate

        shift = (LANES - 1).bit_length()
        m.d.comb += [req_w.addr.eq(n_req >> shift), req_w.data.eq(self.ld_data),
                     req_w.en.eq(self.ld_en), req_r.addr.eq(sent >> shift),
                     rsp_r.addr.eq(self.rd_addr), self.rd_data.eq(rsp_r.data)]
        with m.If(self.ld_en):
            m.d.sync += n_req.eq(n_req + self.ld_count)

        # Buffer-side stream signals.
        b_tvalid = Signal()
        b_tready = Signal()
        m.d.comb += [b_tvalid.eq(sending & ~gap), b_tready.eq(capturing & ~stall)]

        with m.If(self.bypass):
            m.d.comb += [
                dut.s_axis_tdata.eq(self.s_axis_tdata), dut.s_axis_tvalid.eq(self.s_axis_tvalid),
                dut.s_axis_tlast.eq(self.s_axis_tlast), self.s_axis_tready.eq(dut.s_axis_tready),
                self.m_axis_tdata.eq(dut.m_axis_tdata), self.m_axis_tvalid.eq(dut.m_axis_tvalid),
                self.m_axis_tlast.eq(dut.m_axis_tlast), dut.m_axis_tready.eq(self.m_axis_tready),
            ]
        with m.Else():
            m.d.comb += [
                dut.s_axis_tdata.eq(req_r.data.word_select(sent[:shift], w)),
                dut.s_axis_tvalid.eq(b_tvalid),
                dut.s_axis_tlast.eq(sent == n_req - 1), dut.m_axis_tready.eq(b_tready),
            ]

        # A gap is only allowed between beats: once tvalid is up it must stay up.
        hold_valid = Signal()
        with m.If(~self.bypass & sending):
            with m.If(hold_valid):
                m.d.comb += dut.s_axis_tvalid.eq(1)
            with m.If(dut.s_axis_tvalid & dut.s_axis_tready):
                m.d.sync += [sent.eq(sent + 1), hold_valid.eq(0)]
                with m.If(sent == n_req - 1):
                    m.d.sync += sending.eq(0)
            with m.Elif(dut.s_axis_tvalid):
                m.d.sync += hold_valid.eq(1)

        with m.If(~self.bypass & capturing & dut.m_axis_tvalid & dut.m_axis_tready):
            m.d.comb += [rsp_w.addr.eq(self.rsp_count >> shift),
                         rsp_w.data.eq(dut.m_axis_tdata.replicate(LANES)),
                         rsp_w.en.eq(1 << self.rsp_count[:shift])]
            m.d.sync += self.rsp_count.eq(self.rsp_count + 1)
            with m.If(dut.m_axis_tlast):
                # The request was fully sent before any response: start the next one at 0.
                m.d.sync += [capturing.eq(0), self.done.eq(1), n_req.eq(0)]

        with m.If(capturing):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        n_total = Signal.like(n_req)
        m.d.comb += n_total.eq(Mux(self.ld_en, n_req + self.ld_count, n_req))
        with m.If(self.go):
            m.d.sync += [sending.eq(n_total != 0), sent.eq(0), capturing.eq(1),
                         self.done.eq(0), self.rsp_count.eq(0), self.cycles.eq(0),
                         hold_valid.eq(0), lfsr.eq(self.seed | 1)]
        return m


def _buf_words(cfg):
    """Beats of the largest frame ``cfg`` allows, rounded up to a power of two."""
    words = 4 + max(cfg.plane_payload_words_max, 2 * cfg.max_m + 2,
                    -(-cfg.max_k // cfg.elems_per_word) + 2, 5 * cfg.layers + 2,
                    cfg.max_m + 3)
    return max(1 << (words * (32 // cfg.stream_width) - 1).bit_length(), 2 * LANES)


def _ports(cfg, buf_words):
    """The harness's signature members (also used to write the clock wrapper)."""
    w = cfg.stream_width
    aw = (buf_words - 1).bit_length()
    lw = (buf_words // LANES - 1).bit_length()
    return {
        "s_axis_tdata": In(w), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
        "s_axis_tlast": In(1),
        "m_axis_tdata": Out(w), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
        "m_axis_tlast": Out(1),
        "bypass": In(1),
        "ld_en": In(1), "ld_data": In(w * LANES), "ld_count": In(range(LANES + 1)),
        "go": In(1),
        "gap_rate": In(8), "stall_rate": In(8), "seed": In(16),
        "done": Out(1), "rsp_count": Out(aw + 1),
        "rd_addr": In(lw), "rd_data": Out(w * LANES), "cycles": Out(32),
    }


def generate_sim_verilog(cfg, name="anyprec_sim_top", target="generic"):
    """Verilog text of the harness (which contains ``anyprec_top``) for one of
    ``hw.top.TARGETS``; a vendor target needs ``hw.top.cell_models(target)`` beside it."""
    from .top import target_platform
    return verilog.convert(SimHarness(cfg), name=name, platform=target_platform(target),
                           emit_src=False)


def generate_clock_wrapper(cfg, *, name="anyprec_sim_tb", inner="anyprec_sim_top",
                           period_ns=10):
    """A Verilog wrapper that generates the clock inside the simulation.

    With the clock driven by cocotb, every edge is a callback through the simulator
    interface: on Verilator that alone capped a run at about a quarter of a bare C++
    harness (sim/speed.py). Here ``always #(period/2) clk = ~clk`` runs inside the
    simulator (Verilator ``--timing``; native in Icarus) and Python only wakes on the
    events it awaits. ``clk`` stays visible to the testbench as a signal of this module.
    """
    sig = wiring.Signature(_ports(cfg, _buf_words(cfg)))
    ports, conns = [], [".clk(clk)", ".rst(rst)"]
    for pname, member in sig.members.items():
        from amaranth.hdl import Shape
        width = Shape.cast(member.shape).width
        rng = f"[{width - 1}:0] " if width > 1 else ""
        direction = "input" if member.flow == wiring.In else "output"
        ports.append(f"  {direction} wire {rng}{pname}")
        conns.append(f".{pname}({pname})")
    half = period_ns / 2
    return "\n".join([
        "`timescale 1ns/1ps",
        f"// Generated by anyprec: {inner} with an internal {period_ns} ns clock (simulation only).",
        "// With +anyprec_extclk the clock comes from clk_ext instead (driven by the testbench):",
        "// standard AXI-Stream agents sample in their clock-edge callbacks and need the",
        "// testbench's own clock to see the values from before the edge.",
        f"module {name} (",
        "  input wire rst,",
        "  input wire clk_ext,",
        ",\n".join(ports),
        ");",
        "  reg ext = 1'b0;",
        "  reg clk_int = 1'b0;",
        "  initial begin",
        '    ext = $test$plusargs("anyprec_extclk");',
        f"    if (!ext) forever #{half:g} clk_int = ~clk_int;",
        "  end",
        "  wire clk = ext ? clk_ext : clk_int;",
        f"  {inner} dut (",
        "    " + ",\n    ".join(conns),
        "  );",
        "endmodule",
        "",
    ])
