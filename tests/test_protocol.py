"""Tests of anyprec.host.protocol: CRC, framing, packing, builders and parsers."""

import zlib

import numpy as np
import pytest

from anyprec.golden import arith
from anyprec.golden.errors import ShapeError
from anyprec.hw.config import AnyprecConfig
from anyprec.host import protocol as P
from anyprec.host.errors import FieldError, ProtocolError
from anyprec.host.protocol import Opcode, Status

SEED = 20240611


# --- CRC and bytes ------------------------------------------------------------------------

def test_crc_check_value():
    assert P.crc32_bytes(b"123456789") == 0xCBF43926
    assert P.crc32_reference(b"123456789") == 0xCBF43926


def test_crc_parameters_equal_zlib():
    # The bitwise CRC is written from the parameters in docs/protocol.md; equality with
    # zlib shows those parameters describe zlib's CRC-32.
    rng = np.random.default_rng(SEED)
    for trial in range(50):
        data = rng.integers(0, 256, size=int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
        assert P.crc32_reference(data) == zlib.crc32(data), f"seed {SEED}, trial {trial}"
    words = [int(w) for w in rng.integers(0, 1 << 32, size=17, dtype=np.uint64)]
    expect = zlib.crc32(b"".join(w.to_bytes(4, "little") for w in words))
    assert P.crc32(words) == expect, f"seed {SEED}"


def test_words_bytes_little_endian():
    assert P.words_to_bytes([0x04030201, 0xDDCCBBAA]) == bytes([1, 2, 3, 4, 0xAA, 0xBB,
                                                                0xCC, 0xDD])
    rng = np.random.default_rng(SEED)
    words = [int(w) for w in rng.integers(0, 1 << 32, size=33, dtype=np.uint64)]
    assert P.bytes_to_words(P.words_to_bytes(words)) == words, f"seed {SEED}"
    with pytest.raises(ProtocolError, match="whole number"):
        P.bytes_to_words(b"\x00" * 6)
    with pytest.raises(ProtocolError, match="32-bit"):
        P.words_to_bytes([1 << 32])


# --- frames ---------------------------------------------------------------------------

def test_info_example_of_the_spec():
    assert P.encode_frame(Opcode.INFO, 7) == [0x00000701, 0x9CB7AEFC]
    assert P.info(tag=7) == [0x00000701, 0x9CB7AEFC]
    assert zlib.crc32(bytes.fromhex("01070000")) == 0x9CB7AEFC


def test_frame_round_trip():
    rng = np.random.default_rng(SEED)
    for trial in range(100):
        opcode, tag = int(rng.integers(0, 256)), int(rng.integers(0, 256))
        payload = [int(w) for w in rng.integers(0, 1 << 32, size=int(rng.integers(0, 20)),
                                                   dtype=np.uint64)]
        words = P.encode_frame(opcode, tag, payload)
        assert len(words) == len(payload) + 2
        assert words[0] == opcode | tag << 8 | len(payload) << 16
        frame = P.decode_frame(words)
        assert (frame.opcode, frame.tag, list(frame.payload)) == (opcode, tag, payload), \
            f"seed {SEED}, trial {trial}"
        assert frame.words() == words


def test_decode_errors():
    good = P.encode_frame(Opcode.SET_RUN, 3, [0x0102, 0x00050006])
    with pytest.raises(ProtocolError, match="at least 2"):
        P.decode_frame(good[:1])
    with pytest.raises(ProtocolError, match="CRC"):
        P.decode_frame(good[:-1] + [good[-1] ^ 1])
    with pytest.raises(ProtocolError, match="says 2 payload words"):
        P.decode_frame(good[:2] + good[3:])
    with pytest.raises(ProtocolError, match="says 2 payload words"):
        P.decode_frame(good[:-1] + [0] + good[-1:])
    with pytest.raises(ProtocolError, match="not an integer"):
        P.decode_frame([good[0], "x", good[2], good[3]])
    with pytest.raises(ProtocolError, match="unsigned 32-bit"):
        P.decode_frame([good[0], -1, good[2], good[3]])


def test_encode_field_errors():
    with pytest.raises(FieldError, match="tag"):
        P.encode_frame(1, 256)
    with pytest.raises(FieldError, match="opcode"):
        P.encode_frame(-1, 0)
    with pytest.raises(FieldError, match="65535"):
        P.encode_frame(1, 0, [0] * 65536)
    with pytest.raises(FieldError, match="layer"):
        P.set_layer(256, 1, 1, 0)
    with pytest.raises(FieldError, match="K"):
        P.set_layer(0, 1, 1 << 16, 0)


def test_check_response():
    ok = P.decode_frame(P.encode_frame(Opcode.INFO, 9, [0] + [0] * 6))
    assert P.check_response(ok, Opcode.INFO, 9) == (Status.OK, 0)
    with pytest.raises(ProtocolError, match="tag 9"):
        P.check_response(ok, Opcode.INFO, 8)
    with pytest.raises(ProtocolError, match="opcode"):
        P.check_response(ok, Opcode.STATUS, 9)
    err = P.decode_frame(P.encode_frame(Opcode.MATVEC, 1, [P.status_word(Status.NOT_READY, 2)]))
    assert P.check_response(err, Opcode.MATVEC, 1) == (Status.NOT_READY, 2)
    long_err = P.decode_frame(P.encode_frame(Opcode.MATVEC, 1, [P.status_word(6, 0), 5]))
    with pytest.raises(ProtocolError, match="only the status word"):
        P.check_response(long_err, Opcode.MATVEC, 1)
    with pytest.raises(ProtocolError, match="unknown status"):
        P.check_response(P.decode_frame(P.encode_frame(1, 0, [0x0A])), 1, 0)
    with pytest.raises(ProtocolError, match="reserved"):
        P.check_response(P.decode_frame(P.encode_frame(1, 0, [0x10000])), 1, 0)
    with pytest.raises(ProtocolError, match="no status word"):
        P.check_response(P.decode_frame(P.encode_frame(1, 0, [])), 1, 0)


@pytest.mark.parametrize("width", [8, 16, 32])
def test_beats_round_trip(width):
    words = P.encode_frame(Opcode.STATUS, 200, [0x11223344, 0xAABBCCDD])
    beats = P.to_beats(words, width)
    assert len(beats) == len(words) * 32 // width
    assert [t for _, t in beats] == [False] * (len(beats) - 1) + [True]
    asm = P.WordAssembler(width)
    out = [w for b in beats if (w := asm.push(*b)) is not None]
    assert out == [(w, i == len(words) - 1) for i, w in enumerate(words)]


def test_assembler_completes_partial_word_with_zeros():
    asm = P.WordAssembler(8)
    assert asm.push(0x21, False) is None
    assert asm.push(0x07, True) == (0x0721, True)
    assert not asm.partial


# --- geometry and packing -----------------------------------------------------------------

# (R, C): square, R*C not a multiple of 32 (4x4, 3x5, 5x7), one word exactly, several words.
GEOMETRIES = [(8, 8), (4, 4), (3, 5), (5, 7), (1, 1), (16, 4), (12, 12)]


def _cfg(r, c, **kw):
    return AnyprecConfig(rows=r, cols=c, max_m=40, max_k=40, **kw)


def _bit(words, t, j, r, c, cfg, chunks):
    # Independent reading of docs/protocol.md LOAD_PLANE: slice (t, j) starts at word
    # (t*J + j)*WPW; slice bit r*C + c is bit (r*C + c) % 32 of word (r*C + c) // 32.
    idx = r * cfg.cols + c
    return (words[(t * chunks + j) * cfg.words_per_slice + idx // 32] >> (idx % 32)) & 1


@pytest.mark.parametrize("rows,cols", GEOMETRIES)
def test_pack_plane_layout(rows, cols):
    cfg = _cfg(rows, cols)
    rng = np.random.default_rng(SEED + rows * 100 + cols)
    shapes = [(1, 1), (1, 13), (13, 1), (rows, cols), (rows + 1, cols - 1 or 1),
              tuple(int(v) for v in rng.integers(1, 41, size=2))]
    for m, k in shapes:
        n = 8
        codes = rng.integers(0, 1 << n, size=(m, k))
        planes = arith.to_planes(codes, n)
        T, J = P.tiles(m, cfg), P.chunks(k, cfg)
        for p in range(n):
            words = P.pack_plane(codes, n, p, cfg)
            msg = f"seed {SEED + rows * 100 + cols}, R={rows} C={cols} {m}x{k} plane {p}"
            assert len(words) == T * J * cfg.words_per_slice == P.plane_payload_words(m, k, cfg)
            assert np.array_equal(P.unpack_plane(words, m, k, cfg), planes[p]), msg
            # Element by element against the spec's formula, including the zero padding.
            for t in range(T):
                for j in range(J):
                    for r in range(rows):
                        for c in range(cols):
                            row, col = t * rows + r, j * cols + c
                            want = planes[p][row, col] if row < m and col < k else 0
                            assert _bit(words, t, j, r, c, cfg, J) == want, msg
            # Unused bits of each slice's last word are zero.
            used = rows * cols - 32 * (cfg.words_per_slice - 1)
            last = words[cfg.words_per_slice - 1::cfg.words_per_slice]
            assert all(w >> used == 0 for w in last), msg


def test_unpack_plane_ignores_padding():
    cfg = _cfg(3, 5)
    codes = np.full((2, 3), 255)
    words = [w | 0xFFFF8000 for w in P.pack_plane(codes, 8, 0, cfg)]  # set padding bits
    assert np.array_equal(P.unpack_plane(words, 2, 3, cfg), np.ones((2, 3), dtype=np.uint8))


def test_pack_plane_rejects_bad_codes():
    cfg = _cfg(4, 4)
    with pytest.raises(ShapeError):
        P.pack_plane(np.array([[256]]), 8, 0, cfg)
    with pytest.raises(FieldError, match="plane"):
        P.pack_plane(np.array([[1]]), 8, 8, cfg)


@pytest.mark.parametrize("abits", [1, 4, 8, 9, 12, 16])
def test_pack_activations(abits):
    cfg = _cfg(4, 4, max_abits=abits, max_wbits=4)
    epw = 4 if abits <= 8 else 2
    assert cfg.elems_per_word == epw
    lane = 32 // epw
    rng = np.random.default_rng(SEED + abits)
    for k in [1, 2, 3, 4, 5, 7, 8, 33]:
        x = rng.integers(0, 1 << abits, size=k)
        words = P.pack_activations(x, cfg)
        msg = f"seed {SEED + abits}, abits {abits}, K {k}"
        assert len(words) == -(-k // epw) == P.act_payload_words(k, cfg), msg
        for i in range(k):
            assert (words[i // epw] >> ((i % epw) * lane)) & ((1 << lane) - 1) == x[i], msg
        if k % epw:  # padding lanes of the last word are zero
            assert words[-1] >> (k % epw) * lane == 0, msg
        assert np.array_equal(P.unpack_activations(words, k, cfg), x), msg
    with pytest.raises(ShapeError, match="lane"):
        P.pack_activations([1 << lane], cfg)
    with pytest.raises(ShapeError, match="lane"):
        P.pack_activations([-1], cfg)


def test_requant_words_are_twos_complement():
    words = P.pack_requant(np.array([-1, 32767, -32768]), np.array([-1, 5, -(1 << 31)]))
    assert words == [0xFFFF, 0xFFFFFFFF, 0x7FFF, 5, 0x8000, 0x80000000]
    m, b = P.unpack_requant([w | 0xABCD0000 if i % 2 == 0 else w for i, w in enumerate(words)])
    assert m.tolist() == [-1, 32767, -32768] and b.tolist() == [-1, 5, -(1 << 31)]
    with pytest.raises(ShapeError, match="16-bit"):
        P.pack_requant(np.array([32768]), np.array([0]))
    with pytest.raises(ShapeError, match="32-bit"):
        P.pack_requant(np.array([0]), np.array([1 << 31]))


def test_builders_place_fields():
    cfg = _cfg(4, 4)
    f = P.decode_frame(P.set_layer(3, 10, 20, 123456, tag=5))
    assert (f.opcode, f.tag, f.payload) == (0x10, 5, (3, 10 | 20 << 16, 123456))
    f = P.decode_frame(P.load_plane(2, 7, [9, 8], tag=6))
    assert (f.opcode, f.payload) == (0x11, (2 | 7 << 8, 9, 8))
    f = P.decode_frame(P.load_requant(1, 4, 63, np.array([-2]), np.array([-3])))
    assert (f.opcode, f.payload) == (0x12, (1 | 4 << 8 | 63 << 16, 0xFFFE, 0xFFFFFFFD))
    f = P.decode_frame(P.set_run(1, 2, 3, 40, 50))
    assert (f.opcode, f.payload) == (0x13, (1 | 2 << 8 | 3 << 16, 40 | 50 << 16))
    f = P.decode_frame(P.matvec(1, 2, 3, [1, 2, 3, 4, 5], cfg))
    assert (f.opcode, f.payload) == (0x20, (1 | 2 << 8 | 3 << 16, 0x04030201, 5))
    f = P.decode_frame(P.infer(2, [7], cfg))
    assert (f.opcode, f.payload) == (0x21, (2, 7))
    assert P.decode_frame(P.status(tag=1)).opcode == 0x02


# --- INFO / STATUS / results ----------------------------------------------------------

INFO_CONFIGS = [
    AnyprecConfig(),
    AnyprecConfig(rows=3, cols=5, max_wbits=4, max_abits=12, max_m=20, max_k=30, layers=3,
                  stream_width=8, design="parallel", depth=100),
    AnyprecConfig(rows=16, cols=16, max_m=256, max_k=256, layers=2, stream_width=16),
]


@pytest.mark.parametrize("cfg", INFO_CONFIGS, ids=lambda c: c.describe())
def test_info_round_trip(cfg):
    frame = P.decode_frame(P.encode_frame(Opcode.INFO, 0, [0, *P.encode_info(cfg)]))
    info = P.parse_info(frame)
    assert info.to_config() == cfg.replace(depth=cfg.depth_words)
    assert info.acc_bits == cfg.widths.acc_bits and info.d_bits == cfg.widths.d_bits
    assert info.epw == cfg.elems_per_word and info.wpw == cfg.words_per_slice
    assert frame.payload[1] >> 16 == 0x4150 and (frame.payload[1] >> 8) & 0xFF == 1


def test_info_rejects_foreign_device():
    words = P.encode_info(AnyprecConfig())
    for i, bad, what in [(0, words[0] ^ 0x10000, "magic"), (0, words[0] + 0x100, "version"),
                         (0, words[0] | 0x7, "design"), (5, words[5] ^ 0x10000, "activations"),
                         (5, words[5] ^ 0x1000000, "words per slice")]:
        w = list(words)
        w[i] = bad
        with pytest.raises(ProtocolError, match=what):
            P.parse_info(P.decode_frame(P.encode_frame(Opcode.INFO, 0, [0, *w])))
    with pytest.raises(ProtocolError, match="expected 7"):
        P.parse_info(P.decode_frame(P.encode_frame(Opcode.INFO, 0, [0, *words[:5]])))


def test_status_round_trip():
    layers = [P.LayerStatus(5, 7, 100, 3, 0b101, 4, 2, 5, 6), P.LayerStatus(*[0] * 9)]
    words = [0] + [w for s in layers for w in P.encode_layer_status(s)]
    st = P.parse_status(P.decode_frame(P.encode_frame(Opcode.STATUS, 0, words)), slots=2)
    assert st.layers == tuple(layers)
    assert st[0].configured and not st[1].configured
    assert st[0].has_requant(1) and not st[0].has_requant(2) and st[0].has_requant(3)
    with pytest.raises(ProtocolError, match="expected 1"):
        P.parse_status(P.decode_frame(P.encode_frame(Opcode.STATUS, 0, words)), slots=3)


def test_result_parsers_sign_extend():
    frame = P.decode_frame(P.encode_frame(Opcode.MATVEC, 0, [0, 0xFFFFFFFF, 0x80000000, 7,
                                                             1234]))
    res = P.parse_matvec(frame, m=3)
    assert res.values.tolist() == [-1, -(1 << 31), 7] and res.cycles == 1234
    assert res.values.dtype == np.int64
    inf = P.parse_infer(P.decode_frame(P.encode_frame(Opcode.INFER, 0, [0, 3, 9, 9, 0])))
    assert inf.prediction == 1
    with pytest.raises(ProtocolError, match=r"expected 6 \(2 \+ 4 rows\)"):
        P.parse_matvec(frame, m=4)


def test_layout_is_dense():
    cfg = _cfg(3, 5, max_wbits=4)
    shapes = [(7, 11), (5, 7), (1, 1)]
    spans = [3 * 4 * 3, 2 * 4 * 2, 1 * 4 * 1]   # T*N*J
    assert [P.span(m, k, cfg) for m, k in shapes] == spans
    assert P.layout(shapes, cfg) == [0, spans[0], spans[0] + spans[1]]
    par = cfg.replace(design="parallel")
    assert P.layout(shapes, par) == [0, 9, 13]   # T*J
