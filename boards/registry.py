"""The board targets: device, resources, clocks, UART pins and a default configuration.

Each default :class:`~anyprec.hw.config.AnyprecConfig` holds the shipped digits MLP
(3 layers of at most 64 x 64, N = 8, A = 8), except on the UP5K boards, which fit one
layer slot (the shipped one-layer classifier), and was chosen from measured builds
(docs/boards.md) to fit and meet timing at the board's target clock.
"""

from dataclasses import dataclass, field
import importlib

from ..golden.errors import AnyprecError
from ..hw.config import AnyprecConfig

__all__ = ["Board", "BOARDS", "get_board", "board_names", "UnknownBoardError"]


class UnknownBoardError(AnyprecError):
    """A board name that is not in the registry."""


@dataclass(frozen=True)
class Board:
    """One board target.

    Members
    -------
    name : str
        Registry key (``--board`` value).
    title : str
        Human name.
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"xc7"``.
    device, package : str
    platform : str
        ``"module:Class"`` of the amaranth-boards platform.
    luts, ffs, brams, dsps : int
        Device resources: logic cells (LUT4), flip-flops, block RAMs, DSP/multiplier
        blocks.
    bram_kind : str
        The block-RAM primitive the weight memory must map to.
    sprams : int
        iCE40UP single-port 256 Kbit RAMs (0 elsewhere).
    clock_resource : str
        The oscillator resource; ``osc_mhz`` its frequency.
    target_mhz : float
        The PLL output the design runs at (the timing constraint).
    goal_mhz : float
        The Fmax goal of the project for this board (reported next to the result).
    uart_rx, uart_tx : str
        Package pins of the USB-serial bridge (the FPGA's receive and transmit pins).
    leds : dict
        ``role -> (resource, number[, subsignal])`` for ``heartbeat``, ``busy``,
        ``error``.
    default : AnyprecConfig
    bitstream : bool
        False for a vendor-tool board: Verilog and pin constraints only.
    fits : bool
        False when the smallest useful configuration is known not to fit the device
        (measured); ``anyprec build --board all`` skips such a board.
    notes : str
    synth_opts : tuple
        Extra ``synth_*`` options for yosys (the build report lists them as
        ``synth_opts``).
    synth_wire_ps : int
        iCE40: the wire delay (ps) abc9 assumes between LUTs when it maps logic for delay
        (yosys' ``synth_ice40.abc9.W``; 0 keeps yosys' default for the device).
    pnr_opts : tuple
        Extra nextpnr options (the build report lists them as ``nextpnr_opts``).
    programmer : tuple
        The programmer's command line, ``{bitstream}`` standing for the file
        (boards/program.py; empty for vendor-tool boards).
    programmer_flash : tuple
        The same writing the configuration flash, when ``programmer`` loads the volatile
        SRAM (empty when ``programmer`` writes the flash already).
    serial_port : str
        Where the board's USB serial port usually appears on Linux (a hint for
        ``anyprec run --port``).
    """
    name: str
    title: str
    family: str
    device: str
    package: str
    platform: str
    luts: int
    ffs: int
    brams: int
    bram_kind: str
    dsps: int
    clock_resource: str
    osc_mhz: float
    target_mhz: float
    goal_mhz: float
    uart_rx: str
    uart_tx: str
    leds: dict
    default: AnyprecConfig
    bitstream: bool = True
    fits: bool = True
    sprams: int = 0
    extra_resources: str = ""
    notes: str = ""
    synth_opts: tuple = field(default=())
    synth_wire_ps: int = 0
    pnr_opts: tuple = field(default=())
    programmer: tuple = field(default=())
    programmer_flash: tuple = field(default=())
    serial_port: str = ""

    @property
    def holds_digits(self):
        """The default configuration holds the shipped digits MLP (3 x <= 64x64, N=A=8)."""
        c = self.default
        return (c.max_wbits == 8 and c.max_abits == 8 and c.layers >= 3 and c.max_m >= 64
                and c.max_k >= 64)

    def platform_class(self):
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)

    def to_dict(self):
        return {
            "name": self.name, "title": self.title, "family": self.family,
            "device": self.device, "package": self.package,
            "resources": {"luts": self.luts, "ffs": self.ffs, "brams": self.brams,
                          "bram_kind": self.bram_kind, "sprams": self.sprams,
                          "dsps": self.dsps},
            "osc_mhz": self.osc_mhz, "target_mhz": self.target_mhz,
            "goal_mhz": self.goal_mhz,
            "uart": {"rx": self.uart_rx, "tx": self.uart_tx},
            "bitstream": self.bitstream, "fits": self.fits,
            "default_config": self.default.to_dict(),
            "holds_digits_mlp": self.holds_digits,
            "notes": self.notes,
            # Argument lists, as in the build report (a script can run them as they are).
            "synth_opts": list(self.synth_opts),
            "synth_wire_ps": self.synth_wire_ps or None,
            "nextpnr_opts": list(self.pnr_opts),
            "programmer": list(self.programmer),
            "serial_port": self.serial_port,
        }


def _cfg(rows, cols, **kw):
    # One drain lane: a board talks over a 115200-baud UART, which takes milliseconds per
    # inference against microseconds of compute, so more drain lanes (a requantiser each,
    # about 1,100 LUT4 on ECP5) would buy nothing a user can see.
    return AnyprecConfig(rows=rows, cols=cols, max_wbits=8, max_abits=8, max_m=64, max_k=64,
                         layers=kw.pop("layers", 3), stream_width=8,
                         drain=kw.pop("drain", 1), **kw)


#: nextpnr options of the ECP5 builds: the HeAP placer's timing weight at 30 instead of 10.
#: The 85F's 16x16 netlist of e94762a placed and routed against 150 MHz reached 141.6 to
#: 158.5 MHz over seeds 1 to 8 (seven met), against 122.3 to 151.9 (one met) with
#: nextpnr's defaults (docs/boards.md).
ECP5_PNR_OPTS = ("--placer-heap-timingweight", "30")


def _ulx3s(size, *, luts, brams, dsps, default, notes=""):
    # The ULX3S comes with four ECP5 sizes on one PCB: same pins, clock and LEDs.
    return Board(
        name=f"ulx3s-{size.lower()}", title=f"Radiona ULX3S {size}", family="ecp5",
        device=f"LFE5U-{size}", package="CABGA381",
        platform=f"amaranth_boards.ulx3s:ULX3S_{size}_Platform",
        luts=luts, ffs=luts, brams=brams, bram_kind="DP16KD", dsps=dsps,
        clock_resource="clk25", osc_mhz=25.0, target_mhz=150.0, goal_mhz=150.0,
        uart_rx="M1", uart_tx="L4",
        leds={"heartbeat": ("led", 0), "busy": ("led", 1), "error": ("led", 2)},
        default=default, notes=notes, pnr_opts=ECP5_PNR_OPTS,
        programmer=("openFPGALoader", "-b", "ulx3s", "{bitstream}"),
        programmer_flash=("openFPGALoader", "-b", "ulx3s", "-f", "{bitstream}"),
        serial_port="/dev/ttyUSB0")


def _up5k(**kw):
    # iCE40UP5K-SG48 boards with a 12 MHz oscillator: one layer slot of the iCE40 form
    # fits (docs/boards.md); the weight memory goes to SPRAM.
    return Board(
        family="ice40", device="iCE40UP5K", package="SG48",
        luts=5280, ffs=5280, brams=30, bram_kind="SB_RAM40_4K", dsps=8, sprams=4,
        clock_resource="clk12", osc_mhz=12.0, target_mhz=36.0, goal_mhz=50.0,
        default=_cfg(1, 4, layers=1),
        # The design clock (36 MHz, exact from the PLL) is met by every seed 1 to 4 with 18
        # to 42 % to spare (42.8 to 51.3 MHz; 24 MHz until the design reached those).
        # The UltraPlus timing model ("-device u"; yosys' default is the HX's), and abc9
        # mapping for depth against 2.5 ns between LUTs instead of the 0.75 ns that
        # model assumes: the UP5K's routing takes 1.8 to 4 ns a hop at this fill.
        # With the state machines one-hot (boards/build.py), seeds 1 to 4 at a 50 MHz
        # constraint: 38.4 MHz on average against 36.6, and 400 late register inputs
        # against 582 (docs/boards.md).
        # A flip-flop enable shared by fewer than 8 flip-flops is made logic in front of
        # the flip-flop (-dffe_min_ce_use 8): a logic block's 8 cells share one enable
        # net, so small enable groups left blocks part empty. 152 control sets become 93,
        # for 1 to 8 more cells; seeds 1 to 8 at a 50 MHz constraint: 45.7 MHz on average
        # against 44.0 (docs/boards.md, fifteenth session).
        synth_opts=("-device", "u", "-dsp", "-spram", "-dffe_min_ce_use", "8"),
        synth_wire_ps=2500, **kw)


BOARDS = {b.name: b for b in (
    _up5k(
        name="icebreaker", title="1BitSquared iCEBreaker",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
        uart_rx="6", uart_tx="9",
        leds={"heartbeat": ("led_g", 0), "error": ("led_r", 0), "busy": ("led", 2)},
        extra_resources="break_off_pmod",
        notes="One layer slot: a 1x4 array in iCE40 form (seven-stage requantiser, "
              "bit-serial CRCs, no register slices) takes 4,426 of the 5,280 logic cells "
              "and meets 36 MHz; three slots (the digits MLP, --layers 3) place in 5,221 "
              "(98.9%, no headroom; docs/boards.md). The weight memory is in SPRAM. The "
              "busy LED is on the snap-off PMOD.",
        # The FTDI's first channel writes the flash, the second is the UART.
        programmer=("iceprog", "{bitstream}"), serial_port="/dev/ttyUSB1",
    ),
    _up5k(
        name="icesugar", title="MuseLab iCESugar",
        platform="amaranth_boards.icesugar:ICESugarPlatform",
        uart_rx="4", uart_tx="6",
        leds={"heartbeat": ("led_g", 0), "busy": ("led_b", 0), "error": ("led_r", 0)},
        notes="The iCEBreaker's device (UP5K) and design: one layer slot, iCE40 form. "
              "The UART is the on-board iCELink's.",
        programmer=("icesprog", "{bitstream}"), serial_port="/dev/ttyACM0",
    ),
    # The design clock is the one each default build (seed 1) meets: 150 MHz, the goal,
    # on every ECP5 board (docs/boards.md).
    _ulx3s("85F", luts=83640, brams=208, dsps=156, default=_cfg(16, 16)),
    _ulx3s("45F", luts=43848, brams=108, dsps=72, default=_cfg(16, 16)),
    _ulx3s("25F", luts=24288, brams=56, dsps=28, default=_cfg(8, 8)),
    _ulx3s("12F", luts=12288, brams=32, dsps=28, default=_cfg(8, 8),
           notes="nextpnr places the 12F on the 25F die it shares and reports the 25F's "
                 "24,288 logic cells; the default configuration is sized against Lattice's "
                 "12,288."),
    Board(
        name="icesugar-pro", title="MuseLab iCESugar-Pro", family="ecp5",
        device="LFE5U-25F", package="CABGA256",
        platform="amaranth_boards.icesugar_pro:ICESugarProPlatform",
        luts=24288, ffs=24288, brams=56, bram_kind="DP16KD", dsps=28,
        clock_resource="clk25", osc_mhz=25.0, target_mhz=150.0, goal_mhz=150.0,
        uart_rx="A9", uart_tx="B9",
        leds={"heartbeat": ("rgb_led", 0, "g"), "busy": ("rgb_led", 0, "b"),
              "error": ("rgb_led", 0, "r")},
        default=_cfg(8, 8), pnr_opts=ECP5_PNR_OPTS,
        programmer=("icesprog", "{bitstream}"), serial_port="/dev/ttyACM0",
    ),
    Board(
        name="arty-a7-35", title="Digilent Arty A7-35T", family="xc7",
        device="xc7a35ticsg324-1L", package="csg324",
        platform="amaranth_boards.arty_a7:ArtyA7_35Platform",
        luts=20800, ffs=41600, brams=50, bram_kind="RAMB36E1", dsps=90,
        clock_resource="clk100", osc_mhz=100.0, target_mhz=100.0, goal_mhz=100.0,
        uart_rx="A9", uart_tx="D10",
        leds={"heartbeat": ("led", 0), "busy": ("led", 1), "error": ("led", 2)},
        default=_cfg(8, 8),
        bitstream=False, serial_port="/dev/ttyUSB1",
        notes="Vendor tools (Vivado) are closed: anyprec writes Verilog, a wrapper and an "
              "XDC; build the bitstream in Vivado.",
    ),
)}


def board_names():
    return list(BOARDS)


def get_board(name) -> Board:
    """The board called ``name``; UnknownBoardError lists the known ones."""
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise UnknownBoardError(f"unknown board {name!r}; known boards: "
                                f"{', '.join(BOARDS)}") from None
