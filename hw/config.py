"""The anyprec build configuration: one frozen dataclass, validated when it is created.

Pure Python (no Amaranth import), so the host driver and the CLI can use it cheaply. Every
register width of the generated hardware is derived here from the build parameters through
:func:`anyprec.golden.arith.widths`, so nothing can overflow.
"""

from dataclasses import dataclass, fields, asdict
import math

from ..golden.arith import widths as _widths, M_BITS, B_BITS
from ..golden.errors import ConfigError

__all__ = ["AnyprecConfig", "DESIGNS", "TARGETS", "auto_drain"]

#: Datapath variants: the bit-serial precision-scalable array, and the bit-parallel int-N
#: baseline (fixed at N-bit weights) used for comparison (issue 7).
DESIGNS = ("serial", "parallel")

#: Verilog targets (hw/top.py ``generate_verilog``): plain, an ECP5 build's, an iCE40
#: build's. Here, without Amaranth, so the CLI can offer them cheaply.
TARGETS = ("generic", "ecp5", "ice40")

_LIMITS = {
    "rows": (1, 256), "cols": (1, 256), "max_wbits": (1, 16), "max_abits": (1, 16),
    "max_m": (1, 65535), "max_k": (1, 65535), "layers": (1, 255),
}


def _cdiv(a, b):
    return -(-a // b)


def auto_drain(rows, cols, k):
    """The fewest drain lanes (a power of two dividing ``rows`` and ``cols``) with which a
    layer of ``k`` inputs is not drain-bound at 1-bit weights: rows/lanes <= ceil(k/cols)."""
    j = _cdiv(k, cols)
    d = 1
    while rows // d > j and rows % (2 * d) == 0 and cols % (2 * d) == 0:
        d *= 2
    return d


@dataclass(frozen=True)
class AnyprecConfig:
    """Build parameters of one anyprec accelerator.

    Parameters
    ----------
    rows : int
        R, output rows computed in parallel (one bit-serial lane each).
    cols : int
        C, inputs consumed per lane per cycle.
    max_wbits : int
        N, the maximum (stored) weight precision; planes per weight.
    max_abits : int
        A, the maximum activation precision.
    max_m, max_k : int
        Largest layer (rows x inputs) the device accepts.
    layers : int
        Number of layer slots (descriptors, plane regions, requant tables).
    depth : int or None
        Words of the weight-plane memory (one word = one plane slice of R x C bits).
        ``None`` sizes it for every layer slot at the maximum size.
    stream_width : int
        AXI4-Stream tdata width in bits: 8, 16 or 32. Frames are sequences of 32-bit words;
        narrower streams carry them least significant byte first.
    design : str
        ``"serial"`` (default) or ``"parallel"`` (the bit-parallel baseline).
    use_dsp : bool
        Let synthesis map multipliers to DSP blocks (requantisation, parallel baseline).
    drain : int or None
        Drain lanes: rows that leave the MAC array's shadow register per cycle, each with
        its own requantiser (about 1,100 LUT4 on ECP5). A power of two dividing both R and
        C. A tile of R rows drains in R/drain cycles while the array computes the next one
        in k*ceil(K/C) cycles, so a layer runs at full rate when R/drain <= k*ceil(K/C).
        ``None`` picks the fewest lanes for which a maximum-size layer runs at full rate at
        k = 1 (R/drain <= ceil(max_k/C)), or the most that divide R and C.

    Raises
    ------
    ConfigError
        Any parameter out of range, or a combination the hardware cannot represent.
    """
    rows: int = 8
    cols: int = 8
    max_wbits: int = 8
    max_abits: int = 8
    max_m: int = 64
    max_k: int = 64
    layers: int = 4
    depth: int | None = None
    stream_width: int = 32
    design: str = "serial"
    use_dsp: bool = True
    drain: int | None = None

    def __post_init__(self):
        for name, (lo, hi) in _LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ConfigError(f"{name} must be from {lo} to {hi}, not {value}")
        if self.stream_width not in (8, 16, 32):
            raise ConfigError(f"stream_width must be 8, 16 or 32, not {self.stream_width!r}")
        if self.design not in DESIGNS:
            raise ConfigError(f"design must be one of {', '.join(DESIGNS)}, not {self.design!r}")
        if not isinstance(self.use_dsp, bool):
            raise ConfigError(f"use_dsp must be true or false, not {self.use_dsp!r}")
        if self.drain is not None:
            d = self.drain
            if isinstance(d, bool) or not isinstance(d, int) or d < 1 or d & (d - 1):
                raise ConfigError(f"drain must be a power of two (1, 2, 4, ...), not {d!r}")
            if self.rows % d or self.cols % d:
                raise ConfigError(f"drain {d} must divide rows ({self.rows}) and cols "
                                  f"({self.cols})")
        if self.depth is not None:
            if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
                raise ConfigError(f"depth must be a positive integer, not {self.depth!r}")
            if self.depth < self.layer_words_max:
                raise ConfigError(
                    f"depth {self.depth} cannot hold one layer of the maximum size "
                    f"({self.layer_words_max} words); raise depth or lower max_m/max_k")
        if self.depth_words > (1 << 24):
            raise ConfigError(f"weight memory of {self.depth_words} words is too deep "
                              "(at most 2^24); lower depth, layers, max_m or max_k")
        w = self.widths
        if w.d_bits > 32:
            raise ConfigError(
                f"dot products need {w.d_bits} bits with max_k={self.max_k}, "
                f"max_wbits={self.max_wbits}, max_abits={self.max_abits}; the protocol "
                "carries them as int32: lower max_k or the precisions")
        if 1 + self.plane_payload_words_max > 65535:
            raise ConfigError(
                f"one plane of a maximum-size layer is {self.plane_payload_words_max} words, "
                "more than one frame carries (65534); lower max_m or max_k")
        if 1 + 2 * self.max_m > 65535:
            raise ConfigError("max_m is too large for one requantisation frame (at most 32767)")

    # --- derived geometry -------------------------------------------------------------
    @property
    def tiles_max(self):
        """Row tiles of a maximum-size layer, ceil(max_m / R)."""
        return _cdiv(self.max_m, self.rows)

    @property
    def chunks_max(self):
        """Input chunks of a maximum-size layer, ceil(max_k / C)."""
        return _cdiv(self.max_k, self.cols)

    @property
    def drain_lanes(self):
        """Rows drained (and requantised) per cycle: ``drain``, or the automatic choice."""
        if self.drain is not None:
            return self.drain
        return auto_drain(self.rows, self.cols, self.max_k)

    @property
    def tab_stride(self):
        """Requantisation-table words per (layer, precision): ceil(max_m / drain lanes)."""
        return _cdiv(self.max_m, self.drain_lanes)

    @property
    def slice_bits(self):
        """Bits of one plane slice: one plane of an R x C block."""
        return self.rows * self.cols

    @property
    def word_bits(self):
        """Bits of one weight-memory word (serial: one plane slice; parallel: all planes)."""
        return self.slice_bits * (self.max_wbits if self.design == "parallel" else 1)

    @property
    def words_per_slice(self):
        """32-bit protocol words that carry one plane slice (WPW)."""
        return _cdiv(self.slice_bits, 32)

    @property
    def layer_words_max(self):
        """Weight-memory words of one maximum-size layer (all N planes)."""
        per_plane = 1 if self.design == "parallel" else self.max_wbits
        return self.tiles_max * self.chunks_max * per_plane

    @property
    def depth_words(self):
        """Effective weight-memory depth in words."""
        return self.depth if self.depth is not None else self.layers * self.layer_words_max

    @property
    def plane_payload_words_max(self):
        """Protocol words of one plane of a maximum-size layer."""
        return self.tiles_max * self.chunks_max * self.words_per_slice

    @property
    def act_depth(self):
        """Words (C activations each) of one activation buffer."""
        return _cdiv(max(self.max_m, self.max_k), self.cols)

    @property
    def elems_per_word(self):
        """Activations packed into one 32-bit protocol word: 4 (A <= 8) or 2 (A <= 16)."""
        return 4 if self.max_abits <= 8 else 2

    @property
    def widths(self):
        """Datapath widths (docs/arithmetic.md sections 5 and 6)."""
        return _widths(self.max_wbits, self.max_abits, self.max_k)

    @property
    def m_bits(self):
        return M_BITS

    @property
    def b_bits(self):
        return B_BITS

    # --- serialisation ------------------------------------------------------------
    def to_dict(self):
        """JSON-ready dict of the parameters (depth resolved to words)."""
        d = asdict(self)
        d["depth"] = self.depth_words
        d["drain"] = self.drain_lanes
        return d

    @classmethod
    def from_dict(cls, d):
        """Build from a dict, rejecting unknown keys with a clear message."""
        if not isinstance(d, dict):
            raise ConfigError(f"a configuration must be a mapping, not {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(names))}")
        return cls(**d)

    def replace(self, **changes):
        """A copy with some parameters changed (validated again)."""
        return self.from_dict({**asdict(self), **changes})

    def describe(self):
        """One-line human summary."""
        return (f"{self.design} {self.rows}x{self.cols}, wbits<={self.max_wbits}, "
                f"abits<={self.max_abits}, layers<={self.layers} of <= {self.max_m}x{self.max_k}, "
                f"{self.depth_words} x {self.word_bits}-bit weight words, "
                f"{self.stream_width}-bit stream, {self.drain_lanes} drain lane"
                f"{'s' if self.drain_lanes > 1 else ''}")
