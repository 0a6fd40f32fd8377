"""The anyprec device protocol (docs/protocol.md), as pure functions: no I/O anywhere.

Framing (:func:`encode_frame`, :func:`decode_frame`, CRC-32, byte and beat conversion),
one builder per command (:func:`info`, :func:`status`, :func:`set_layer`,
:func:`load_plane`, :func:`load_requant`, :func:`set_run`, :func:`matvec`, :func:`infer`),
the payload packers (:func:`pack_plane`, :func:`pack_activations`, :func:`pack_requant` and
their inverses) and the response parsers (:func:`parse_info`, :func:`parse_status`,
:func:`parse_matvec`, :func:`parse_infer`).

A frame is a ``list[int]`` of 32-bit words: header, payload, CRC. The driver
(:mod:`anyprec.host.driver`), the behavioural device model (:mod:`anyprec.host.devmodel`)
and the simulation testbenches all build and read frames through this module, so the wire
format is written down exactly once.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..golden import arith
from ..golden.errors import ConfigError, ShapeError
from ..hw.config import AnyprecConfig
from .errors import FieldError, ProtocolError

__all__ = [
    "VERSION", "MAGIC", "Opcode", "Status", "DESIGN_CODES",
    "crc32", "crc32_bytes", "crc32_reference", "words_to_bytes", "bytes_to_words",
    "make_header", "split_header", "status_word", "parse_status_word",
    "Frame", "encode_frame", "decode_frame", "check_response",
    "to_beats", "WordAssembler",
    "tiles", "chunks", "span", "plane_payload_words", "act_payload_words", "layout",
    "pack_plane", "pack_plane_bits", "unpack_plane", "pack_activations",
    "unpack_activations", "pack_requant", "unpack_requant",
    "info", "status", "set_layer", "load_plane", "load_requant", "set_run", "matvec", "infer",
    "DeviceInfo", "encode_info", "parse_info", "parse_info_config", "LayerStatus", "DeviceStatus",
    "encode_layer_status", "parse_status", "MatvecResult", "InferResult", "parse_matvec",
    "parse_infer",
]

#: Protocol version reported by INFO.
VERSION = 1
#: INFO magic ("AP").
MAGIC = 0x4150
#: INFO design codes.
DESIGN_CODES = {"serial": 0, "parallel": 1}

_WORD_MAX = (1 << 32) - 1
_MAX_LENGTH = 0xFFFF


class Opcode(enum.IntEnum):
    """Command opcodes (docs/protocol.md section 5)."""
    INFO = 0x01
    STATUS = 0x02
    SET_LAYER = 0x10
    LOAD_PLANE = 0x11
    LOAD_REQUANT = 0x12
    SET_RUN = 0x13
    MATVEC = 0x20
    INFER = 0x21


class Status(enum.IntEnum):
    """Response status codes (docs/protocol.md section 4)."""
    OK = 0x00
    BAD_CRC = 0x01
    BAD_OPCODE = 0x02
    BAD_LENGTH = 0x03
    TRUNCATED = 0x04
    OVERSIZE = 0x05
    RANGE = 0x06
    NOT_READY = 0x07
    ORDER = 0x08
    CONFLICT = 0x09


# --------------------------------------------------------------------------------------
# CRC and byte order
# --------------------------------------------------------------------------------------

def crc32_bytes(data) -> int:
    """CRC-32/ISO-HDLC of a byte string (zlib's CRC-32)."""
    return zlib.crc32(bytes(data)) & _WORD_MAX


def crc32_reference(data) -> int:
    """Bitwise CRC-32 written from the parameters of docs/protocol.md section 2.

    Polynomial 0x04C11DB7, reflected input and output (so the register shifts right with the
    bit-reversed polynomial 0xEDB88320), initial value and final XOR 0xFFFFFFFF. Slow; it
    exists to show (and test) that these parameters are exactly zlib's CRC, and as a model
    for a gateware CRC engine.
    """
    poly = int(f"{0x04C11DB7:032b}"[::-1], 2)
    crc = 0xFFFFFFFF
    for byte in bytes(data):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (poly if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _check_words(words, what="frame"):
    out = []
    for i, w in enumerate(words):
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)):
            raise ProtocolError(f"{what} word {i} is not an integer: {w!r}")
        w = int(w)
        if not 0 <= w <= _WORD_MAX:
            raise ProtocolError(f"{what} word {i} is not an unsigned 32-bit value: {w:#x}")
        out.append(w)
    return out


def words_to_bytes(words) -> bytes:
    """Serialise 32-bit words little-endian (the byte order of the wire and of the CRC)."""
    words = list(words)
    try:
        # Fast path; struct rejects non-integers and values outside 0..2^32-1 ...
        if not any(isinstance(w, bool) for w in words):
            return struct.pack(f"<{len(words)}I", *words)
    except (struct.error, TypeError):
        pass
    # ... and the per-word check then says which word and why.
    return b"".join(w.to_bytes(4, "little") for w in _check_words(words, "data"))


def bytes_to_words(data) -> list[int]:
    """Split a little-endian byte string into 32-bit words (length must be a multiple of 4)."""
    data = bytes(data)
    if len(data) % 4:
        raise ProtocolError(f"{len(data)} bytes is not a whole number of 32-bit words")
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


def crc32(words) -> int:
    """CRC-32 of 32-bit words, over their little-endian bytes (docs/protocol.md section 2)."""
    return crc32_bytes(words_to_bytes(words))


# --------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------

def _field(name, value, bits, lo=0):
    """Check that ``value`` fits an unsigned field of ``bits`` bits; return it as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise FieldError(f"{name} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value < (1 << bits):
        raise FieldError(f"{name} must be from {lo} to {(1 << bits) - 1} "
                         f"(a {bits}-bit field), not {value}")
    return value


def make_header(opcode, tag, length) -> int:
    """Header word: opcode (7:0), tag (15:8), payload length in words (31:16)."""
    return (_field("opcode", opcode, 8) | _field("tag", tag, 8) << 8
            | _field("length", length, 16) << 16)


def split_header(word) -> tuple[int, int, int]:
    """``(opcode, tag, length)`` of a header word."""
    return word & 0xFF, (word >> 8) & 0xFF, (word >> 16) & 0xFFFF


def status_word(code, arg=0) -> int:
    """Response status word: code (7:0), argument (15:8), reserved 0 (31:16)."""
    return _field("status", code, 8) | _field("status argument", arg, 8) << 8


def parse_status_word(word) -> tuple[Status, int]:
    """``(Status, arg)`` of a status word; unknown codes or reserved bits are ProtocolError."""
    if word >> 16:
        raise ProtocolError(f"status word {word:#010x} has reserved bits 31:16 set")
    try:
        code = Status(word & 0xFF)
    except ValueError:
        raise ProtocolError(f"unknown status code 0x{word & 0xFF:02x}") from None
    return code, (word >> 8) & 0xFF


@dataclass(frozen=True)
class Frame:
    """A decoded frame (either direction).

    Members
    -------
    opcode, tag : int
        Header fields.
    payload : tuple of int
        Payload words (words 1 .. L), without header and CRC.
    """
    opcode: int
    tag: int
    payload: tuple

    @property
    def length(self) -> int:
        """Payload length L in words."""
        return len(self.payload)

    @property
    def status(self) -> Status:
        """Status code of a response frame."""
        return parse_status_word(self._first())[0]

    @property
    def arg(self) -> int:
        """Status argument of a response frame."""
        return parse_status_word(self._first())[1]

    def _first(self):
        if not self.payload:
            raise ProtocolError("response has an empty payload (no status word)")
        return self.payload[0]

    def words(self) -> list[int]:
        """The frame encoded again (header, payload, CRC)."""
        return encode_frame(self.opcode, self.tag, self.payload)


def encode_frame(opcode, tag, payload=()) -> list[int]:
    """Words of a frame: header, payload, CRC-32 of header and payload.

    Raises
    ------
    FieldError
        opcode or tag not 8-bit, payload longer than 65535 words.
    ProtocolError
        A payload word that is not an unsigned 32-bit integer.
    """
    payload = _check_words(payload, "payload")
    if len(payload) > _MAX_LENGTH:
        raise FieldError(f"a frame carries at most {_MAX_LENGTH} payload words, "
                         f"not {len(payload)}")
    words = [make_header(opcode, tag, len(payload)), *payload]
    words.append(crc32(words))
    return words


def decode_frame(words) -> Frame:
    """Check and decode one complete frame (header, L payload words, CRC).

    Raises
    ------
    ProtocolError
        Fewer than two words, a length field that disagrees with the number of words, a
        word that is not unsigned 32-bit, or a CRC mismatch.
    """
    words = _check_words(words)
    if len(words) < 2:
        raise ProtocolError(f"a frame has at least 2 words (header and CRC), got {len(words)}")
    opcode, tag, length = split_header(words[0])
    if len(words) != length + 2:
        raise ProtocolError(f"frame header says {length} payload words, but the frame has "
                            f"{len(words) - 2}")
    crc = crc32(words[:-1])
    if crc != words[-1]:
        raise ProtocolError(f"frame CRC is {words[-1]:#010x}, expected {crc:#010x}")
    return Frame(opcode, tag, tuple(words[1:-1]))


def check_response(frame: Frame, opcode, tag) -> tuple[Status, int]:
    """Check that ``frame`` answers the request ``(opcode, tag)``; return ``(status, arg)``.

    Non-OK responses must carry only the status word (length 1).

    Raises
    ------
    ProtocolError
        Wrong opcode or tag echo, missing status word, unknown status, or an error
        response with more than the status word.
    """
    if frame.opcode != opcode:
        raise ProtocolError(f"response echoes opcode 0x{frame.opcode:02x}, "
                            f"the request was 0x{int(opcode):02x}")
    if frame.tag != tag:
        raise ProtocolError(f"response echoes tag {frame.tag}, the request had tag {tag}")
    code, arg = parse_status_word(frame._first())
    if code != Status.OK and frame.length != 1:
        raise ProtocolError(f"{code.name} response has {frame.length} payload words, "
                            "an error response has only the status word")
    return code, arg


def to_beats(words, width=32) -> list[tuple[int, bool]]:
    """Beats ``(tdata, tlast)`` of a frame on a ``width``-bit stream (LSB first, tlast last)."""
    if width not in (8, 16, 32):
        raise FieldError(f"stream width must be 8, 16 or 32, not {width}")
    per = 32 // width
    mask = (1 << width) - 1
    beats = [((w >> (width * i)) & mask, False)
             for w in _check_words(words) for i in range(per)]
    if beats:
        beats[-1] = (beats[-1][0], True)
    return beats


class WordAssembler:
    """Assembles ``width``-bit beats into 32-bit words, as the device's input does.

    ``push(tdata, tlast)`` returns ``(word, tlast)`` when a word completes, else None. A
    tlast in the middle of a word completes it with zero bytes (docs/protocol.md section 1).
    """

    def __init__(self, width=32):
        if width not in (8, 16, 32):
            raise FieldError(f"stream width must be 8, 16 or 32, not {width}")
        self.width = width
        self._word = 0
        self._count = 0

    def push(self, tdata, tlast):
        tdata = int(tdata)
        if not 0 <= tdata < (1 << self.width):
            raise FieldError(f"beat data {tdata:#x} does not fit a {self.width}-bit stream")
        self._word |= tdata << (self.width * self._count)
        self._count += 1
        if tlast or self._count * self.width == 32:
            word, self._word, self._count = self._word, 0, 0
            return word, bool(tlast)
        return None

    @property
    def partial(self) -> bool:
        """True while part of a word has been received."""
        return self._count > 0


# --------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------

def _cdiv(a, b):
    return -(-a // b)


def tiles(m, cfg: AnyprecConfig) -> int:
    """Row tiles T = ceil(M / R)."""
    return _cdiv(m, cfg.rows)


def chunks(k, cfg: AnyprecConfig) -> int:
    """Input chunks J = ceil(K / C)."""
    return _cdiv(k, cfg.cols)


def span(m, k, cfg: AnyprecConfig) -> int:
    """Weight-memory words of an M x K layer: T*N*J (serial) or T*J (parallel)."""
    per = 1 if cfg.design == "parallel" else cfg.max_wbits
    return tiles(m, cfg) * chunks(k, cfg) * per


def plane_payload_words(m, k, cfg: AnyprecConfig) -> int:
    """Data words of one plane of an M x K layer: T*J*WPW (LOAD_PLANE length minus 1)."""
    return tiles(m, cfg) * chunks(k, cfg) * cfg.words_per_slice


def act_payload_words(k, cfg: AnyprecConfig) -> int:
    """Words carrying K activations: ceil(K / EPW)."""
    return _cdiv(k, cfg.elems_per_word)


def layout(net, cfg: AnyprecConfig) -> list[int]:
    """Dense base addresses of a network's layers: base_0 = 0, base_{l+1} = base_l + span_l.

    ``net`` is an :class:`anyprec.golden.arith.IntNetwork` or a list of ``(M, K)`` shapes.
    """
    shapes = _shapes(net)
    bases, base = [], 0
    for m, k in shapes:
        bases.append(base)
        base += span(m, k, cfg)
    return bases


def _shapes(net):
    layers = getattr(net, "layers", net)
    return [tuple(getattr(layer, "shape", layer)) for layer in layers]


# --------------------------------------------------------------------------------------
# Payload packing
# --------------------------------------------------------------------------------------

_BIT_WEIGHTS = np.left_shift(np.uint64(1), np.arange(32, dtype=np.uint64))


def pack_plane_bits(bits, cfg: AnyprecConfig) -> list[int]:
    """Pack an (M, K) array of 0/1 plane bits into LOAD_PLANE data words.

    For t < T, for j < J: one slice of R*C bits, slice bit ``r*C + c`` = bit at row
    ``t*R + r``, column ``j*C + c``, sent as WPW words least significant first. Bits outside
    the layer and unused bits of a slice's last word are 0.
    """
    bits = np.asarray(bits)
    if bits.ndim != 2 or bits.size == 0:
        raise ShapeError(f"plane bits must be a non-empty (M, K) array, not shape {bits.shape}")
    if bits.dtype.kind not in "uib" or (bits.size and (bits.min() < 0 or bits.max() > 1)):
        raise ShapeError("plane bits must be 0 or 1")
    m, k = bits.shape
    r, c, wpw = cfg.rows, cfg.cols, cfg.words_per_slice
    t, j = tiles(m, cfg), chunks(k, cfg)
    grid = np.zeros((t * r, j * c), dtype=np.uint64)
    grid[:m, :k] = bits
    slices = np.zeros((t * j, wpw * 32), dtype=np.uint64)
    slices[:, :r * c] = grid.reshape(t, r, j, c).transpose(0, 2, 1, 3).reshape(t * j, r * c)
    words = (slices.reshape(t * j, wpw, 32) * _BIT_WEIGHTS).sum(axis=2, dtype=np.uint64)
    return [int(w) for w in words.reshape(-1)]


def pack_plane(codes, n, plane, cfg: AnyprecConfig) -> list[int]:
    """LOAD_PLANE data words of plane ``plane`` (0 = MSB) of (M, K) N-bit weight codes."""
    plane = _field("plane", plane, 8)
    if plane >= n:
        raise FieldError(f"plane must be from 0 to {n - 1}, not {plane}")
    return pack_plane_bits(arith.to_planes(codes, n)[plane], cfg)


def unpack_plane(words, m, k, cfg: AnyprecConfig) -> np.ndarray:
    """Inverse of :func:`pack_plane_bits`: the (M, K) uint8 plane bits of LOAD_PLANE data.

    Bits outside the layer and slice padding are ignored, as the device ignores them.
    """
    r, c, wpw = cfg.rows, cfg.cols, cfg.words_per_slice
    t, j = tiles(m, cfg), chunks(k, cfg)
    if len(words) != t * j * wpw:
        raise ShapeError(f"a {m}x{k} plane is {t * j * wpw} words, not {len(words)}")
    w = np.asarray(words, dtype=np.uint64).reshape(t * j, wpw, 1)
    bits = ((w >> np.arange(32, dtype=np.uint64)) & np.uint64(1)).reshape(t * j, wpw * 32)
    grid = bits[:, :r * c].reshape(t, j, r, c).transpose(0, 2, 1, 3).reshape(t * r, j * c)
    return grid[:m, :k].astype(np.uint8)


def pack_activations(x, cfg: AnyprecConfig) -> list[int]:
    """Pack activations EPW per word: element i in word ``i // EPW`` at bit
    ``(i % EPW) * (32 / EPW)``; padding lanes of the last word are 0.

    Raises
    ------
    ShapeError
        Not a 1-D integer array, or a value that does not fit its lane (negative or
        ``>= 2^(32/EPW)``). Values that fit the lane but not the precision are sent as
        they are: the device checks them against a (RANGE).
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ShapeError(f"activations must be a 1-D vector, not shape {x.shape}")
    if x.size and x.dtype.kind not in "ui":
        raise ShapeError(f"activations must be integers, not {x.dtype}")
    epw = cfg.elems_per_word
    lane = 32 // epw
    if x.size and (x.min() < 0 or x.max() >= (1 << lane)):
        raise ShapeError(f"activations must be from 0 to {(1 << lane) - 1} to fit a "
                         f"{lane}-bit lane, found {x.min()}..{x.max()}")
    padded = np.zeros(act_payload_words(x.size, cfg) * epw, dtype=np.uint64)
    padded[:x.size] = x
    shifts = np.arange(epw, dtype=np.uint64) * np.uint64(lane)
    words = (padded.reshape(-1, epw) << shifts).sum(axis=1, dtype=np.uint64)
    return [int(w) for w in words]


def unpack_activations(words, count, cfg: AnyprecConfig) -> np.ndarray:
    """The first ``count`` activations (int64) of packed words; padding lanes ignored."""
    epw = cfg.elems_per_word
    lane = 32 // epw
    if len(words) != act_payload_words(count, cfg):
        raise ShapeError(f"{count} activations are {act_payload_words(count, cfg)} words, "
                         f"not {len(words)}")
    w = np.asarray(words, dtype=np.uint64).reshape(-1, 1)
    lanes = (w >> (np.arange(epw, dtype=np.uint64) * np.uint64(lane))) & np.uint64(
        (1 << lane) - 1)
    return lanes.reshape(-1)[:count].astype(np.int64)


def pack_requant(m, b) -> list[int]:
    """LOAD_REQUANT table words: per row ``m[r]`` (16-bit two's complement in bits 15:0)
    then ``b[r]`` (32-bit two's complement)."""
    m = np.asarray(m)
    b = np.asarray(b)
    if m.ndim != 1 or b.shape != m.shape:
        raise ShapeError(f"requantisation m and b must be equal-length vectors, "
                         f"not {m.shape} and {b.shape}")
    lo_m, hi_m = -(1 << (arith.M_BITS - 1)), (1 << (arith.M_BITS - 1)) - 1
    lo_b, hi_b = -(1 << (arith.B_BITS - 1)), (1 << (arith.B_BITS - 1)) - 1
    out = []
    for r, (mr, br) in enumerate(zip(m.tolist(), b.tolist())):
        if not (isinstance(mr, int) and lo_m <= mr <= hi_m):
            raise ShapeError(f"requantisation multiplier m[{r}] = {mr!r} is not a signed "
                             f"{arith.M_BITS}-bit integer")
        if not (isinstance(br, int) and lo_b <= br <= hi_b):
            raise ShapeError(f"requantisation offset b[{r}] = {br!r} is not a signed "
                             f"{arith.B_BITS}-bit integer")
        out += [mr & 0xFFFF, br & _WORD_MAX]
    return out


def _signed(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def unpack_requant(words) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_requant`: int64 ``(m, b)``; bits 31:16 of m words ignored."""
    if len(words) % 2:
        raise ShapeError(f"requantisation tables are pairs of words, got {len(words)}")
    m = np.array([_signed(w, 16) for w in words[0::2]], dtype=np.int64)
    b = np.array([_signed(w, 32) for w in words[1::2]], dtype=np.int64)
    return m, b


# --------------------------------------------------------------------------------------
# Command builders (each returns the complete request frame)
# --------------------------------------------------------------------------------------

def info(*, tag=0) -> list[int]:
    """INFO request (0x01, length 0)."""
    return encode_frame(Opcode.INFO, tag)


def status(*, tag=0) -> list[int]:
    """STATUS request (0x02, length 0)."""
    return encode_frame(Opcode.STATUS, tag)


def set_layer(layer, m, k, base, *, tag=0) -> list[int]:
    """SET_LAYER request: slot ``layer`` holds an M x K layer at weight-memory ``base``."""
    return encode_frame(Opcode.SET_LAYER, tag, [
        _field("layer", layer, 8),
        _field("M", m, 16) | _field("K", k, 16) << 16,
        _field("base", base, 32)])


def load_plane(layer, plane, data, *, tag=0) -> list[int]:
    """LOAD_PLANE request carrying ``data`` (the words of :func:`pack_plane`)."""
    return encode_frame(Opcode.LOAD_PLANE, tag,
                        [_field("layer", layer, 8) | _field("plane", plane, 8) << 8, *data])


def load_requant(layer, wbits, shift, m, b, *, tag=0) -> list[int]:
    """LOAD_REQUANT request: table of ``layer`` for weight precision ``wbits``."""
    return encode_frame(Opcode.LOAD_REQUANT, tag, [
        _field("layer", layer, 8) | _field("wbits", wbits, 8) << 8
        | _field("shift", shift, 8) << 16, *pack_requant(m, b)])


def set_run(layer, wbits, abits, m, k, *, tag=0) -> list[int]:
    """SET_RUN request: run ``layer`` at (wbits, abits) on its first m rows, k columns."""
    return encode_frame(Opcode.SET_RUN, tag, [
        _field("layer", layer, 8) | _field("wbits", wbits, 8) << 8
        | _field("abits", abits, 8) << 16,
        _field("run M", m, 16) | _field("run K", k, 16) << 16])


def matvec(layer, wbits, abits, x, cfg: AnyprecConfig, *, tag=0) -> list[int]:
    """MATVEC request: raw dot products of ``layer`` at (wbits, abits) with input ``x``."""
    return encode_frame(Opcode.MATVEC, tag, [
        _field("layer", layer, 8) | _field("wbits", wbits, 8) << 8
        | _field("abits", abits, 8) << 16, *pack_activations(x, cfg)])


def infer(n_layers, x, cfg: AnyprecConfig, *, tag=0) -> list[int]:
    """INFER request: run layers 0 .. n_layers-1 on input ``x``."""
    return encode_frame(Opcode.INFER, tag,
                        [_field("number of layers", n_layers, 8), *pack_activations(x, cfg)])


# --------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceInfo:
    """The build configuration as reported by INFO (docs/protocol.md section 5, 0x01).

    ``wpw`` is the low 8 bits the INFO field carries; :attr:`words_per_slice` is the full
    value derived from R and C.
    """
    version: int
    design: str
    rows: int
    cols: int
    max_wbits: int
    max_abits: int
    layers: int
    stream_width: int
    max_m: int
    max_k: int
    depth: int
    acc_bits: int
    d_bits: int
    epw: int
    wpw: int

    @property
    def words_per_slice(self) -> int:
        return _cdiv(self.rows * self.cols, 32)

    def to_config(self) -> AnyprecConfig:
        """The :class:`AnyprecConfig` of the device (``use_dsp`` is not reported; default).

        Raises
        ------
        ProtocolError
            The reported parameters are not a valid configuration.
        """
        try:
            return AnyprecConfig(rows=self.rows, cols=self.cols, max_wbits=self.max_wbits,
                                 max_abits=self.max_abits, max_m=self.max_m,
                                 max_k=self.max_k, layers=self.layers, depth=self.depth,
                                 stream_width=self.stream_width, design=self.design)
        except ConfigError as e:
            raise ProtocolError(f"the device reports an impossible configuration: {e}") from e


def encode_info(cfg: AnyprecConfig) -> list[int]:
    """The six INFO words after the status word, for configuration ``cfg``.

    The WPW field is 8 bits wide and carries ``WPW mod 256`` (WPW > 255 needs R*C > 8160);
    hosts take WPW from R and C.
    """
    w = cfg.widths
    return [
        MAGIC << 16 | VERSION << 8 | DESIGN_CODES[cfg.design],
        cfg.rows | cfg.cols << 16,
        cfg.max_wbits | cfg.max_abits << 8 | cfg.layers << 16 | cfg.stream_width << 24,
        cfg.max_m | cfg.max_k << 16,
        cfg.depth_words,
        w.acc_bits | w.d_bits << 8 | cfg.elems_per_word << 16
        | (cfg.words_per_slice & 0xFF) << 24,
    ]


def _expect_ok(frame, opcode, length=None, what=None):
    if frame.opcode != opcode:
        raise ProtocolError(f"expected a {Opcode(opcode).name} response, got opcode "
                            f"0x{frame.opcode:02x}")
    code, _ = parse_status_word(frame._first())
    if code != Status.OK:
        raise ProtocolError(f"{Opcode(opcode).name} response has status {code.name}, "
                            "only OK responses carry results")
    if length is not None and frame.length != length:
        raise ProtocolError(f"{Opcode(opcode).name} response has {frame.length} payload "
                            f"words, expected {length}{what or ''}")


def parse_info(frame: Frame) -> DeviceInfo:
    """Decode an OK INFO response.

    Raises
    ------
    ProtocolError
        Wrong length, wrong magic, unsupported version, unknown design, or EPW / WPW
        fields that contradict the other fields.
    """
    _expect_ok(frame, Opcode.INFO, 7)
    w = frame.payload
    if w[1] >> 16 != MAGIC:
        raise ProtocolError(f"INFO magic is {w[1] >> 16:#06x}, expected {MAGIC:#06x} "
                            "(is this an anyprec device?)")
    version = (w[1] >> 8) & 0xFF
    if version != VERSION:
        raise ProtocolError(f"device speaks protocol version {version}, this host "
                            f"version {VERSION}")
    designs = {v: k for k, v in DESIGN_CODES.items()}
    if w[1] & 0xFF not in designs:
        raise ProtocolError(f"unknown design code {w[1] & 0xFF}")
    di = DeviceInfo(
        version=version, design=designs[w[1] & 0xFF],
        rows=w[2] & 0xFFFF, cols=w[2] >> 16,
        max_wbits=w[3] & 0xFF, max_abits=(w[3] >> 8) & 0xFF, layers=(w[3] >> 16) & 0xFF,
        stream_width=w[3] >> 24, max_m=w[4] & 0xFFFF, max_k=w[4] >> 16, depth=w[5],
        acc_bits=w[6] & 0xFF, d_bits=(w[6] >> 8) & 0xFF, epw=(w[6] >> 16) & 0xFF,
        wpw=w[6] >> 24)
    if di.epw != (4 if di.max_abits <= 8 else 2):
        raise ProtocolError(f"INFO says {di.epw} activations per word with A = "
                            f"{di.max_abits}; the protocol fixes {4 if di.max_abits <= 8 else 2}")
    if di.wpw != di.words_per_slice & 0xFF:
        raise ProtocolError(f"INFO says {di.wpw} words per slice, but R x C = "
                            f"{di.rows} x {di.cols} needs {di.words_per_slice}")
    return di


def parse_info_config(frame: Frame) -> AnyprecConfig:
    """Shortcut: the :class:`AnyprecConfig` of an INFO response."""
    return parse_info(frame).to_config()


@dataclass(frozen=True)
class LayerStatus:
    """One layer slot as reported by STATUS (all fields 0 when not configured)."""
    m: int
    k: int
    base: int
    planes: int
    requant_mask: int
    run_wbits: int
    run_abits: int
    run_m: int
    run_k: int

    @property
    def configured(self) -> bool:
        return self.m > 0

    def has_requant(self, wbits) -> bool:
        """True when the table for weight precision ``wbits`` is loaded."""
        return bool(self.requant_mask >> (wbits - 1) & 1)


def encode_layer_status(ls: LayerStatus) -> list[int]:
    """The five STATUS words of one layer slot."""
    return [ls.m | ls.k << 16, ls.base, ls.planes | ls.requant_mask << 16,
            ls.run_wbits | ls.run_abits << 8, ls.run_m | ls.run_k << 16]


@dataclass(frozen=True)
class DeviceStatus:
    """The STATUS response: one :class:`LayerStatus` per slot, in slot order."""
    layers: tuple

    def __getitem__(self, i) -> LayerStatus:
        return self.layers[i]

    def __len__(self):
        return len(self.layers)


def parse_status(frame: Frame, slots=None) -> DeviceStatus:
    """Decode an OK STATUS response (``slots`` checks the number of slots if given)."""
    _expect_ok(frame, Opcode.STATUS)
    if (frame.length - 1) % 5 or (slots is not None and frame.length != 1 + 5 * slots):
        raise ProtocolError(f"STATUS response has {frame.length} payload words, expected "
                            f"1 + 5 per layer slot"
                            + (f" = {1 + 5 * slots}" if slots is not None else ""))
    layers = []
    w = frame.payload
    for s in range(1, frame.length, 5):
        layers.append(LayerStatus(
            m=w[s] & 0xFFFF, k=w[s] >> 16, base=w[s + 1], planes=w[s + 2] & 0xFF,
            requant_mask=w[s + 2] >> 16, run_wbits=w[s + 3] & 0xFF,
            run_abits=(w[s + 3] >> 8) & 0xFF, run_m=w[s + 4] & 0xFFFF, run_k=w[s + 4] >> 16))
    return DeviceStatus(tuple(layers))


@dataclass(frozen=True)
class MatvecResult:
    """MATVEC result: raw dot products D (int64, run M of them) and the cycle count."""
    values: np.ndarray
    cycles: int


@dataclass(frozen=True)
class InferResult:
    """INFER result: the logits of the last layer (int64) and the cycle count."""
    values: np.ndarray
    cycles: int

    @property
    def prediction(self) -> int:
        """Index of the first maximum logit."""
        return int(np.argmax(self.values))


def _results(frame, opcode, m):
    what = f" (2 + {m} rows)" if m is not None else None
    _expect_ok(frame, opcode, None if m is None else 2 + m, what)
    if frame.length < 3:
        raise ProtocolError(f"{Opcode(opcode).name} response has {frame.length} payload "
                            "words, expected status, at least one result and the cycle count")
    values = np.array([_signed(w, 32) for w in frame.payload[1:-1]], dtype=np.int64)
    return values, frame.payload[-1]


def parse_matvec(frame: Frame, m=None) -> MatvecResult:
    """Decode an OK MATVEC response (``m`` checks the number of results if given)."""
    return MatvecResult(*_results(frame, Opcode.MATVEC, m))


def parse_infer(frame: Frame, m=None) -> InferResult:
    """Decode an OK INFER response (``m`` checks the number of logits if given)."""
    return InferResult(*_results(frame, Opcode.INFER, m))
