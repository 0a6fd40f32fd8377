"""Every status code of the device model, provoked with raw beats.

Each refusal is checked for its code and argument, for the documented precedence, and for
leaving the device exactly as it was: the STATUS response, inference and matvec results
(and the model's internal state) are identical before and after, and the next frame is
handled normally.
"""

import numpy as np
import pytest

from anyprec.hw.config import AnyprecConfig
from anyprec.host import protocol as P
from anyprec.host.devmodel import ModelDevice, random_network
from anyprec.host.driver import Driver
from anyprec.host.protocol import Opcode, Status
from anyprec.host.transport import ModelTransport

SEED = 4242
CFG = AnyprecConfig(rows=3, cols=5, max_wbits=4, max_abits=4, max_m=12, max_k=12, layers=3)
SHAPES = [(7, 11), (5, 7)]
SPANS = [P.span(m, k, CFG) for m, k in SHAPES]       # T*N*J: 36, 16
TAG = 0x5A
OK, BAD_CRC, BAD_OPCODE, BAD_LENGTH, TRUNCATED, OVERSIZE, RANGE, NOT_READY, ORDER, \
    CONFLICT = list(Status)


class Bench:
    """A device with a known state, and the means to show a refusal changed nothing."""

    def __init__(self, cfg=CFG, partial=None, slot2=0):
        self.cfg = cfg
        self.net = random_network(np.random.default_rng(SEED), SHAPES, cfg.max_wbits,
                                  cfg.max_abits)
        self.dev = ModelDevice(cfg)
        self.drv = Driver(ModelTransport(self.dev))
        self.drv.load_model(self.net)
        n = cfg.max_wbits
        if cfg.design == "serial":
            self.drv.set_precision([3, 2], [4, 3])
        if partial is not None:  # layer 1 with only `partial` planes
            self.drv.set_layer(1, *SHAPES[1], SPANS[0])
            self.drv.load_requant(self.net)
            self.drv.load_planes(self.net, planes=range(partial), layers=[1])
        if slot2:  # slot 2 configured after the model, with `slot2` planes loaded
            codes = np.random.default_rng(SEED + 1).integers(0, 1 << n, size=(4, 6))
            self.drv.set_layer(2, 4, 6, sum(SPANS))
            for p in range(slot2):
                self.drv.load_plane(2, codes, p)
        self.x = np.random.default_rng(SEED + 2).integers(0, 8, size=SHAPES[0][1])

    def frame(self, opcode, payload, tag=TAG):
        return P.encode_frame(opcode, tag, payload)

    def observe(self):
        """Responses that expose the state (the device must be idle)."""
        out = [tuple(self.dev.exchange(P.status(tag=1)))]
        out.append(tuple(self.dev.exchange(P.infer(2, self.x, self.cfg, tag=2))))
        for l, s in enumerate(self.dev.slots):
            if s.configured:
                w = self.cfg.max_wbits if self.cfg.design == "parallel" else max(s.loaded, 1)
                x = np.arange(s.run_k) % 4
                out.append(tuple(self.dev.exchange(P.matvec(l, w, 2, x, self.cfg, tag=3))))
        return out

    def refuse(self, beats, status, arg=0, *, opcode=None, tag=TAG, width=32):
        """Feed ``beats``; expect exactly one refusal (status, arg) and no state change."""
        before, snap = self.observe(), self.dev.snapshot()
        resps = self.dev.feed(beats, width=width)
        assert len(resps) == 1, f"expected one response, got {resps}"
        frame = P.decode_frame(resps[0])
        if opcode is not None:
            assert frame.opcode == opcode, f"opcode echo {frame.opcode:#x}"
        assert frame.tag == tag
        got = (Status(frame.payload[0] & 0xFF), frame.payload[0] >> 8)
        assert got == (status, arg), f"expected {status.name} arg {arg}, got {got}"
        assert frame.length == 1, "an error response carries only the status word"
        assert self.dev.idle
        assert ModelDevice.same_state(snap, self.dev.snapshot()), "internal state changed"
        assert self.observe() == before, "observable state changed"

    def refuse_frame(self, words, status, arg=0):
        self.refuse(_beats(words), status, arg, opcode=words[0] & 0xFF,
                    tag=(words[0] >> 8) & 0xFF)

    def ok(self, words):
        resp = P.decode_frame(self.dev.exchange(words))
        assert resp.payload[0] == 0, f"expected OK, got status word {resp.payload[0]:#x}"
        return resp


def _beats(words, tlast_at=None):
    """Word beats with tlast on word ``tlast_at`` (default: the last)."""
    last = len(words) - 1 if tlast_at is None else tlast_at
    return [(w, i == last) for i, w in enumerate(words)]


def _raw(opcode, payload, length=None, tag=TAG):
    """A frame whose header length may lie about the payload; the CRC is right."""
    head = opcode | tag << 8 | (len(payload) if length is None else length) << 16
    words = [head, *payload]
    return words + [P.crc32(words)]


def _plane(bench, layer, plane, shape=None):
    m, k = shape or SHAPES[layer]
    codes = bench.net.layers[layer].codes if shape is None else np.zeros(shape, dtype=int)
    return P.load_plane(layer, plane, P.pack_plane(codes, CFG.max_wbits, plane, CFG), tag=TAG)


@pytest.fixture
def bench():
    return Bench()


# --- the bench itself ---------------------------------------------------------------------

def test_observation_sees_changes(bench):
    # The no-change assertions mean something only if a change would be seen.
    before = bench.observe()
    bench.ok(P.set_run(1, 3, 3, 5, 7, tag=TAG))
    assert bench.observe() != before
    before = bench.observe()
    bench.ok(P.load_requant(0, 3, 5, np.ones(7, int), np.zeros(7, int), tag=TAG))
    assert bench.observe() != before


def test_split_feeds_and_no_early_response(bench):
    words = P.status(tag=TAG)
    assert bench.dev.feed([(words[0], False)]) == []
    assert not bench.dev.idle
    resp = bench.dev.feed([(words[1], True)])
    assert len(resp) == 1 and P.decode_frame(resp[0]).payload[0] == 0


# --- BAD_CRC ------------------------------------------------------------------------------

def test_bad_crc(bench):
    good = P.set_run(1, 1, 1, 2, 3, tag=TAG)   # a valid command: only the CRC is wrong
    for bit in (0, 17, 31):
        bench.refuse_frame(good[:-1] + [good[-1] ^ (1 << bit)], BAD_CRC)
    # A corrupted payload word with the old CRC.
    bench.refuse_frame([good[0], good[1] ^ 0x100, good[2], good[3]], BAD_CRC)
    # A corrupted tag: the response echoes what the device received.
    bench.refuse_frame([good[0] ^ 0x0300, *good[1:]], BAD_CRC)
    bench.ok(good)
    assert bench.dev.slots[1].run_wbits == 1


def test_bad_crc_precedes_opcode_and_command_checks(bench):
    for words in (P.encode_frame(0x77, TAG, [1, 2]),          # BAD_OPCODE otherwise
                  P.encode_frame(Opcode.INFO, TAG, [0]),      # BAD_LENGTH otherwise
                  P.set_layer(9, 0, 0, 0, tag=TAG),           # RANGE otherwise
                  _plane(bench, 1, 0)):                        # ORDER otherwise
        bench.refuse_frame(words[:-1] + [words[-1] ^ 1], BAD_CRC)


# --- BAD_OPCODE ---------------------------------------------------------------------------

@pytest.mark.parametrize("opcode", [0x00, 0x03, 0x0F, 0x14, 0x1F, 0x22, 0x80, 0xFF])
def test_bad_opcode(bench, opcode):
    bench.refuse_frame(P.encode_frame(opcode, TAG, []), BAD_OPCODE)
    bench.refuse_frame(P.encode_frame(opcode, TAG, [0x00000101, 5, 6]), BAD_OPCODE)


# --- BAD_LENGTH ---------------------------------------------------------------------------

def test_bad_length(bench):
    x = bench.x
    # LOAD_PLANE missing its last data word (with a correct CRC).
    short_plane = P.encode_frame(Opcode.LOAD_PLANE, TAG,
                                 P.decode_frame(_plane(bench, 1, 0)).payload[:-1])
    cases = [
        (P.encode_frame(Opcode.INFO, TAG, [0]), 0),
        (P.encode_frame(Opcode.STATUS, TAG, [0, 0]), 0),
        # SET_LAYER and SET_RUN check the length first, from the header: argument 0.
        (P.encode_frame(Opcode.SET_LAYER, TAG, [2, 1 | 1 << 16]), 0),
        (P.encode_frame(Opcode.SET_LAYER, TAG, [2, 1 | 1 << 16, 100, 0]), 0),
        (P.encode_frame(Opcode.SET_LAYER, TAG, []), 0),
        (P.encode_frame(Opcode.LOAD_PLANE, TAG, []), 0),
        (short_plane, 1),
        (P.encode_frame(Opcode.LOAD_REQUANT, TAG, []), 0),
        (P.encode_frame(Opcode.LOAD_REQUANT, TAG, [1 | 2 << 8, *[0] * 9]), 1),
        (P.encode_frame(Opcode.LOAD_REQUANT, TAG, [1 | 2 << 8, *[0] * 11]), 1),
        (P.encode_frame(Opcode.SET_RUN, TAG, [1 | 2 << 8 | 2 << 16]), 0),
        (P.encode_frame(Opcode.SET_RUN, TAG, [1 | 2 << 8 | 2 << 16, 5 | 7 << 16, 0]), 0),
        (P.encode_frame(Opcode.SET_RUN, TAG, []), 0),
        (P.encode_frame(Opcode.MATVEC, TAG, []), 0),
        # Layer 0 runs K = 11: 3 words; 2 and 4 are wrong.
        (P.encode_frame(Opcode.MATVEC, TAG, [0 | 2 << 8 | 2 << 16, 0, 0]), 0),
        (P.encode_frame(Opcode.MATVEC, TAG, [1 | 2 << 8 | 2 << 16, 0, 0, 0]), 1),
        (P.encode_frame(Opcode.INFER, TAG, []), 0),
        (P.encode_frame(Opcode.INFER, TAG, [2, *P.pack_activations(x[:8], CFG)]), 0),
        (P.encode_frame(Opcode.INFER, TAG, [2, *P.pack_activations(np.r_[x, x], CFG)]), 0),
    ]
    for words, arg in cases:
        bench.refuse_frame(words, BAD_LENGTH, arg)


def test_bad_length_is_the_header_not_the_beats(bench):
    # The header claims 2 payload words but 3 arrive before tlast: the word at position
    # L + 1 = 3 is taken as the CRC and has no tlast, so this is OVERSIZE, not BAD_LENGTH.
    words = _raw(Opcode.STATUS, [0, 0, 0], length=2)
    bench.refuse(_beats(words), OVERSIZE, opcode=Opcode.STATUS)


# --- TRUNCATED ----------------------------------------------------------------------------

def test_truncated(bench):
    run = P.set_run(1, 1, 1, 2, 3, tag=TAG)
    for last in range(len(run) - 1):       # tlast on the header, payload words
        bench.refuse(_beats(run[:last + 1]), TRUNCATED, opcode=Opcode.SET_RUN)
    # Length 0: the header alone is still one word short (the CRC).
    bench.refuse([(P.info(tag=TAG)[0], True)], TRUNCATED, opcode=Opcode.INFO)
    # Precedence: a truncated frame with an unknown opcode or a huge length.
    bench.refuse(_beats(P.encode_frame(0x99, TAG, [1, 2, 3])[:3]), TRUNCATED)
    bench.refuse([(0xFFFF0000 | TAG << 8 | 0x21, False), (1, True)], TRUNCATED)


def test_truncated_plane_is_not_loaded():
    bench = Bench(slot2=1)
    codes = np.ones((4, 6), dtype=int) * 15
    words = P.load_plane(2, 1, P.pack_plane(codes, 4, 1, CFG), tag=TAG)
    bench.refuse(_beats(words[:-1]), TRUNCATED, opcode=Opcode.LOAD_PLANE)
    assert bench.dev.slots[2].loaded == 1
    bench.ok(words)                      # the same plane, complete, loads normally
    assert bench.dev.slots[2].loaded == 2


@pytest.mark.parametrize("width", [8, 16])
def test_narrow_stream_tlast_mid_word(bench, width):
    words = P.set_run(1, 1, 1, 2, 3, tag=TAG)
    beats = P.to_beats(words, width)
    per = 32 // width
    # tlast on the first beat of payload word 1: that word is completed with zeros and
    # ends the frame early.
    cut = beats[:per + 1]
    cut[-1] = (cut[-1][0], True)
    bench.refuse(cut, TRUNCATED, opcode=Opcode.SET_RUN, width=width)
    # tlast on the first beat of the CRC word: the frame is complete in length but the
    # CRC's upper bytes read as zero.
    cut = beats[:len(beats) - per + 1]
    cut[-1] = (cut[-1][0], True)
    assert words[-1] >> width != 0
    bench.refuse(cut, BAD_CRC, opcode=Opcode.SET_RUN, width=width)
    # The whole frame in beats works.
    assert P.decode_frame(bench.dev.feed(beats, width=width)[0]).payload == (0,)
    assert bench.dev.slots[1].run_wbits == 1


# --- OVERSIZE -----------------------------------------------------------------------------

def test_oversize(bench):
    good = P.set_run(1, 1, 1, 2, 3, tag=TAG)     # valid: would change the run settings
    for extra in ([0], [1, 2, 3], P.status(tag=7)):    # even a whole frame is discarded
        bench.refuse(_beats(good + list(extra)), OVERSIZE, opcode=Opcode.SET_RUN)
    # Precedence over BAD_CRC and BAD_OPCODE.
    bench.refuse(_beats(good[:-1] + [good[-1] ^ 1, 0]), OVERSIZE, opcode=Opcode.SET_RUN)
    bench.refuse(_beats(P.encode_frame(0x99, TAG, [5]) + [0]), OVERSIZE)
    # The response waits for the tlast that ends the discarded beats.
    assert bench.dev.feed(_beats(good + [0, 0], tlast_at=99)) == []
    resp = bench.dev.feed([(0, True)])
    assert P.decode_frame(resp[0]).payload == (P.status_word(OVERSIZE),)
    bench.ok(good)


# --- RANGE --------------------------------------------------------------------------------

def test_range_set_layer(bench):
    depth = CFG.depth_words
    span = P.span(4, 6, CFG)
    for layer, m, k, base, arg in [
            (3, 4, 6, 100, 3), (200, 4, 6, 100, 200),
            (2, 0, 6, 100, 2), (2, 4, 0, 100, 2), (2, 13, 6, 100, 2), (2, 4, 13, 100, 2),
            (2, 4, 6, depth - span + 1, 2), (2, 4, 6, 0xFFFFFFFF, 2)]:
        bench.refuse_frame(P.set_layer(layer, m, k, base, tag=TAG), RANGE, arg)
    bench.ok(P.set_layer(2, 4, 6, depth - span, tag=TAG))   # the last word fits


def test_range_load_plane(bench):
    bench.refuse_frame(P.load_plane(3, 0, [0], tag=TAG), RANGE, 3)
    bench.refuse_frame(P.load_plane(0, 4, [0], tag=TAG), RANGE, 0)
    bench.refuse_frame(P.load_plane(0, 255, [0], tag=TAG), RANGE, 0)


def test_range_load_requant(bench):
    m, b = np.zeros(7, int), np.zeros(7, int)
    for layer, k, shift, arg in [(3, 1, 0, 3), (0, 0, 0, 0), (0, 5, 0, 0), (0, 1, 64, 0),
                                 (0, 1, 255, 0)]:
        bench.refuse_frame(P.load_requant(layer, k, shift, m, b, tag=TAG), RANGE, arg)
    bench.ok(P.load_requant(0, 4, 63, m, b, tag=TAG))


def test_range_set_run(bench):
    for layer, w, a, m, k, arg in [
            (3, 1, 1, 1, 1, 3), (1, 0, 1, 1, 1, 1), (1, 5, 1, 1, 1, 1), (1, 1, 0, 1, 1, 1),
            (1, 1, 5, 1, 1, 1), (1, 1, 1, 0, 1, 1), (1, 1, 1, 6, 1, 1), (1, 1, 1, 1, 0, 1),
            (1, 1, 1, 1, 8, 1)]:
        bench.refuse_frame(P.set_run(layer, w, a, m, k, tag=TAG), RANGE, arg)
    bench.ok(P.set_run(1, 4, 4, 5, 7, tag=TAG))


def test_range_matvec(bench):
    x = np.zeros(11, dtype=int)
    for layer, k, a, xx, arg in [(3, 1, 1, x, 3), (0, 0, 1, x, 0), (0, 5, 1, x, 0),
                                 (0, 1, 0, x, 0), (0, 1, 5, x, 0),
                                 (0, 1, 2, np.r_[x[:10], 4], 0),
                                 (0, 4, 4, np.r_[16, x[1:]], 0)]:
        bench.refuse_frame(P.matvec(layer, k, a, xx, CFG, tag=TAG), RANGE, arg)
    # Padding lanes of the last word are ignored: lane 11 holds 255.
    words = P.encode_frame(Opcode.MATVEC, TAG, [0 | 1 << 8 | 1 << 16, 0, 0, 0xFF000000])
    bench.ok(words)


def test_range_infer(bench):
    x = bench.x
    bench.refuse_frame(P.infer(0, x, CFG, tag=TAG), RANGE, 0)
    bench.refuse_frame(P.infer(4, x, CFG, tag=TAG), RANGE, 0)
    # Layer 0 runs at 4 bits: 16 is out of range.
    bench.refuse_frame(P.infer(2, np.r_[x[:-1], 16], CFG, tag=TAG), RANGE, 0)
    # RANGE on n precedes NOT_READY and BAD_LENGTH.
    bench.refuse_frame(P.encode_frame(Opcode.INFER, TAG, [9]), RANGE, 0)


def test_range_parallel_design_wbits():
    cfg = CFG.replace(design="parallel")
    bench = Bench(cfg)
    x = np.zeros(11, dtype=int)
    for w in (1, 3):
        bench.refuse_frame(P.set_run(0, w, 4, 7, 11, tag=TAG), RANGE, 0)
        bench.refuse_frame(P.matvec(0, w, 4, x, cfg, tag=TAG), RANGE, 0)
    bench.ok(P.set_run(0, 4, 2, 7, 11, tag=TAG))
    # LOAD_REQUANT stores any k in 1..N (the tables for k < N are never used).
    bench.ok(P.load_requant(0, 1, 0, np.zeros(7, int), np.zeros(7, int), tag=TAG))
    assert bench.dev.slots[0].req_mask == 0b1001


# --- NOT_READY ----------------------------------------------------------------------------

def test_not_ready_unconfigured_slot(bench):
    # Each precedes BAD_LENGTH (the frames are also the wrong length).
    bench.refuse_frame(P.load_plane(2, 0, [0], tag=TAG), NOT_READY, 2)
    bench.refuse_frame(P.load_requant(2, 1, 0, [0], [0], tag=TAG), NOT_READY, 2)
    bench.refuse_frame(P.matvec(2, 1, 1, [0] * 40, CFG, tag=TAG), NOT_READY, 2)
    # SET_RUN: NOT_READY precedes the run-size RANGE check.
    bench.refuse_frame(P.set_run(2, 1, 1, 0, 0, tag=TAG), NOT_READY, 2)
    bench.refuse_frame(P.set_run(2, 1, 1, 1, 1, tag=TAG), NOT_READY, 2)


def test_not_ready_infer_layer0_unconfigured():
    dev = ModelDevice(CFG)
    resp = P.decode_frame(dev.exchange(P.encode_frame(Opcode.INFER, TAG, [1, 0, 0, 0, 0, 0])))
    assert resp.payload == (P.status_word(NOT_READY, 0),)
    assert all(not s.configured for s in dev.slots)


def test_not_ready_planes():
    bench = Bench(slot2=2)
    x = np.arange(6) % 4
    bench.refuse_frame(P.matvec(2, 3, 2, x, CFG, tag=TAG), NOT_READY, 2)
    bench.refuse_frame(P.matvec(2, 4, 2, x, CFG, tag=TAG), NOT_READY, 2)
    # RANGE on an activation precedes the planes check.
    bench.refuse_frame(P.matvec(2, 3, 1, x, CFG, tag=TAG), RANGE, 2)
    bench.ok(P.matvec(2, 2, 2, x, CFG, tag=TAG))


def test_not_ready_infer_planes_and_tables():
    bench = Bench(partial=2)   # layer 1: 2 planes, every table
    bench.ok(P.set_run(1, 2, 3, 5, 7, tag=TAG))
    bench.ok(P.infer(2, bench.x, CFG, tag=TAG))
    bench.ok(P.set_run(1, 3, 3, 5, 7, tag=TAG))
    bench.refuse_frame(P.infer(2, bench.x, CFG, tag=TAG), NOT_READY, 1)
    bench.ok(P.infer(1, bench.x, CFG, tag=TAG))   # layer 0 alone is ready
    # RANGE on an input precedes the per-layer checks.
    bench.refuse_frame(P.infer(2, np.r_[bench.x[:-1], 16], CFG, tag=TAG), RANGE, 0)
    # No requantisation table for the run wbits.
    fresh = Bench()
    fresh.ok(P.set_layer(1, *SHAPES[1], SPANS[0], tag=TAG))
    for p in range(4):
        fresh.ok(_plane(fresh, 1, p))
    fresh.ok(P.load_requant(1, 1, 0, np.zeros(5, int), np.zeros(5, int), tag=TAG))
    fresh.ok(P.set_run(1, 2, 3, 5, 7, tag=TAG))
    fresh.refuse_frame(P.infer(2, fresh.x, CFG, tag=TAG), NOT_READY, 1)
    fresh.ok(P.set_run(1, 1, 3, 5, 7, tag=TAG))
    fresh.ok(P.infer(2, fresh.x, CFG, tag=TAG))


# --- ORDER --------------------------------------------------------------------------------

def test_order():
    bench = Bench(slot2=2)
    codes = np.zeros((4, 6), dtype=int)
    for plane in (0, 1, 3):
        words = P.load_plane(2, plane, P.pack_plane(codes, 4, plane, CFG), tag=TAG)
        bench.refuse_frame(words, ORDER, 2)
    # A fully loaded layer refuses every plane.
    for plane in range(4):
        bench.refuse_frame(_plane(bench, 1, plane), ORDER, 1)
    # BAD_LENGTH precedes ORDER.
    bench.refuse_frame(P.load_plane(2, 3, [0], tag=TAG), BAD_LENGTH, 2)
    bench.ok(P.load_plane(2, 2, P.pack_plane(codes, 4, 2, CFG), tag=TAG))


# --- CONFLICT -----------------------------------------------------------------------------

def test_conflict_overlap(bench):
    # Slot 0 holds [0, 36), slot 1 [36, 52); a 4x6 layer spans 16 words.
    end = sum(SPANS)
    assert (SPANS, P.span(4, 6, CFG)) == ([36, 16], 16)
    for base in (0, 1, 20, 21, 35, 36, 40, end - 1):
        bench.refuse_frame(P.set_layer(2, 4, 6, base, tag=TAG), CONFLICT, 2)
    # Containing a whole region.
    bench.refuse_frame(P.set_layer(2, 12, 12, 30, tag=TAG), CONFLICT, 2)
    # RANGE precedes CONFLICT; BAD_LENGTH precedes RANGE.
    bench.refuse_frame(P.set_layer(2, 13, 6, 0, tag=TAG), RANGE, 2)
    bench.refuse_frame(P.encode_frame(Opcode.SET_LAYER, TAG, [7, 0, 0, 0]), BAD_LENGTH, 0)
    # Touching regions do not overlap, and a slot never conflicts with its own region.
    bench.ok(P.set_layer(2, 4, 6, end, tag=TAG))
    bench.ok(P.set_layer(0, 7, 11, 0, tag=TAG))
    assert bench.dev.slots[0].loaded == 0     # ... and reconfiguring clears its planes


def test_conflict_chain():
    bench = Bench()
    bench.ok(P.set_run(1, 2, 3, 5, 6, tag=TAG))       # layer 0 runs 7 rows, layer 1 6 inputs
    bench.refuse_frame(P.infer(2, bench.x, CFG, tag=TAG), CONFLICT, 0)
    bench.ok(P.infer(1, bench.x, CFG, tag=TAG))       # one layer has nothing to chain
    bench.ok(P.set_run(0, 3, 4, 6, 11, tag=TAG))      # slim layer 0 to 6 rows
    bench.ok(P.infer(2, bench.x, CFG, tag=TAG))


def test_infer_check_order_per_layer():
    # For each layer in order: NOT_READY(l), then CONFLICT(l) with layer l + 1.
    bench = Bench(partial=2)
    bench.ok(P.set_run(1, 3, 3, 5, 6, tag=TAG))       # layer 1 short of planes AND unchained
    bench.refuse_frame(P.infer(2, bench.x, CFG, tag=TAG), CONFLICT, 0)
    bench.ok(P.set_run(1, 3, 3, 5, 7, tag=TAG))
    bench.refuse_frame(P.infer(2, bench.x, CFG, tag=TAG), NOT_READY, 1)
    # Layer 0 not ready precedes its chain conflict.
    bench.ok(P.set_run(0, 4, 4, 6, 11, tag=TAG))
    bench.ok(P.set_layer(0, 7, 11, 0, tag=TAG))       # clears layer 0 planes and run size
    bench.ok(P.set_run(1, 3, 3, 5, 6, tag=TAG))
    bench.refuse_frame(P.infer(2, bench.x, CFG, tag=TAG), NOT_READY, 0)
    # An unconfigured next slot has run K 0: CONFLICT on the layer that feeds it.
    full = Bench()
    full.refuse_frame(P.infer(3, full.x, CFG, tag=TAG), CONFLICT, 1)


def test_status_of_unconfigured_slots_is_zero():
    dev = ModelDevice(CFG)
    resp = P.decode_frame(dev.exchange(P.status(tag=TAG)))
    assert resp.payload == (0,) + (0,) * 5 * CFG.layers
    # docs/protocol.md section 6: INFO with tag 7 is answered with header 0x00070701.
    assert dev.exchange(P.info(tag=7))[:2] == [0x00070701, 0x00000000]
    info = P.decode_frame(dev.exchange(P.info(tag=TAG)))
    assert info.length == 7 and P.parse_info(info).to_config() == CFG.replace(
        depth=CFG.depth_words)


def test_reserved_bits_are_ignored(bench):
    # SET_LAYER w1 bits 31:8, SET_RUN w1 bits 31:24, INFER w1 bits 31:8 are reserved.
    bench.ok(P.encode_frame(Opcode.SET_LAYER, TAG, [0xFFFFFF02, 4 | 6 << 16, sum(SPANS)]))
    assert (bench.dev.slots[2].m, bench.dev.slots[2].k) == (4, 6)
    bench.ok(P.encode_frame(Opcode.SET_RUN, TAG, [0xAB000000 | 1 | 2 << 8 | 3 << 16,
                                                  5 | 7 << 16]))
    assert bench.dev.slots[1].run_wbits == 2
    plain = bench.dev.exchange(P.infer(2, bench.x, CFG, tag=TAG))
    words = P.infer(2, bench.x, CFG, tag=TAG)
    payload = [words[1] | 0xABCD00, *words[2:-1]]
    assert bench.dev.exchange(P.encode_frame(Opcode.INFER, TAG, payload)) == plain


def test_random_beats_one_response_per_tlast():
    """Fuzz: mutated frames never crash the model; every tlast ends exactly one frame and
    gets one well-formed response; every refusal leaves the state unchanged."""
    seed = SEED + 99
    rng = np.random.default_rng(seed)
    bench = Bench(slot2=1)
    cfg = bench.cfg
    codes = rng.integers(0, 16, size=(4, 6))
    seeds = [P.status(), P.info(), P.set_run(1, 2, 3, 5, 7), P.set_run(0, 3, 4, 7, 11),
             P.set_layer(2, 4, 6, sum(SPANS)), P.load_plane(2, 1, P.pack_plane(codes, 4, 1, cfg)),
             P.load_requant(1, 2, 9, np.arange(5) - 2, np.arange(5) * 1000),
             P.matvec(0, 3, 2, np.arange(11) % 4, cfg), P.infer(2, bench.x, cfg),
             P.infer(1, bench.x, cfg)]
    counts = {}
    for trial in range(1500):
        words = list(seeds[rng.integers(len(seeds))])
        kind = rng.integers(7)
        if kind == 1:      # flip a bit anywhere
            i = int(rng.integers(len(words)))
            words[i] ^= 1 << int(rng.integers(32))
        elif kind == 2:    # flip a payload bit and fix the CRC
            if len(words) > 2:
                words[int(rng.integers(1, len(words) - 1))] ^= 1 << int(rng.integers(32))
                words[-1] = P.crc32(words[:-1])
        elif kind == 3:    # drop words
            words = words[:int(rng.integers(1, len(words) + 1))]
        elif kind == 4:    # add words
            words += [int(w) for w in rng.integers(0, 1 << 32, size=int(rng.integers(1, 4)),
                                                    dtype=np.uint64)]
        elif kind == 5:    # random opcode and length, right CRC
            words = P.encode_frame(int(rng.integers(256)), 0, [
                int(w) for w in rng.integers(0, 1 << 32, size=int(rng.integers(0, 6)),
                                             dtype=np.uint64)])
        elif kind == 6:    # one payload word more or less, consistent header and CRC
            payload = words[1:-1] + [0] if rng.random() < 0.5 else words[1:-2]
            words = P.encode_frame(words[0] & 0xFF, 0, payload)
        beats = _beats(words)
        snap = bench.dev.snapshot()
        resps = bench.dev.feed(beats)
        msg = f"seed {seed}, trial {trial}, words {[hex(w) for w in words]}"
        assert len(resps) == 1 and bench.dev.idle, msg
        frame = P.decode_frame(resps[0])
        assert frame.opcode == words[0] & 0xFF, msg
        code, arg = P.parse_status_word(frame.payload[0])
        counts[code] = counts.get(code, 0) + 1
        if code != OK:
            assert frame.length == 1, msg
            assert ModelDevice.same_state(snap, bench.dev.snapshot()), msg
    # The mutations reach most of the status codes.
    assert {OK, BAD_CRC, BAD_OPCODE, BAD_LENGTH, TRUNCATED, OVERSIZE, RANGE} <= set(counts), \
        counts
