"""A behavioural model of the anyprec device protocol (docs/protocol.md), in pure Python.

:class:`ModelDevice` answers frames exactly as the protocol specifies: every opcode, every
check in the documented precedence order, commit only after all checks (a failed frame
changes nothing), planes loaded strictly MSB first, staged requantisation tables, slimmed
run sizes and the parallel design's wbits = N rule. All arithmetic is
:mod:`anyprec.golden.arith`.

It serves two purposes: the in-process target of the driver tests
(:class:`anyprec.host.transport.ModelTransport`), and the oracle for fuzzing the RTL, whose
status codes and results must equal this model's for any beat sequence. Precision matters
more than speed here.

The model is **not cycle-accurate**: the cycle count word of MATVEC and INFER responses is
always 0.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..golden import arith
from ..hw.config import AnyprecConfig
from . import protocol as P
from .protocol import Opcode, Status

__all__ = ["ModelDevice", "SlotState", "random_network"]


@dataclass
class SlotState:
    """Everything the device holds for one layer slot.

    Members
    -------
    m, k, base : int
        Stored size and region base; ``m == 0`` means not configured.
    planes : (N, M, K) uint8 array or None
        Plane bits; only the first ``loaded`` planes are meaningful.
    loaded : int
        Planes loaded so far (MSB first).
    req_m, req_b : (N, M) int64 arrays or None
        Requantisation tables, row k-1 for weight precision k.
    req_shift : (N,) int64 array or None
    req_mask : int
        Bit k-1 set when the table for k bits is loaded.
    run_wbits, run_abits, run_m, run_k : int
        Run settings (SET_RUN); all 0 while not configured.
    """
    m: int = 0
    k: int = 0
    base: int = 0
    planes: np.ndarray | None = None
    loaded: int = 0
    req_m: np.ndarray | None = None
    req_b: np.ndarray | None = None
    req_shift: np.ndarray | None = None
    req_mask: int = 0
    run_wbits: int = 0
    run_abits: int = 0
    run_m: int = 0
    run_k: int = 0

    @property
    def configured(self) -> bool:
        return self.m > 0

    def status(self) -> P.LayerStatus:
        return P.LayerStatus(self.m, self.k, self.base, self.loaded, self.req_mask,
                             self.run_wbits, self.run_abits, self.run_m, self.run_k)


class _Refuse(Exception):
    """A failed check: respond with (status, arg) and commit nothing."""

    def __init__(self, status, arg=0):
        super().__init__(status, arg)
        self.status = Status(status)
        self.arg = arg & 0xFF


class ModelDevice:
    """Behavioural model of ``anyprec_top``'s protocol.

    Parameters
    ----------
    cfg : AnyprecConfig
        The build configuration the model answers for (INFO reports it).

    Members
    -------
    cfg : AnyprecConfig
    slots : list of SlotState
        The layer slots (read them, do not write them).
    log : list of (request header word, status, arg)
        One entry per response, for debugging and for fuzz comparisons.

    Notes
    -----
    Input is a stream of beats ``(tdata, tlast)``; :meth:`feed` can be called with any
    split of the stream (a frame may span several calls). Responses are complete frames
    (lists of words). Error responses carry only the status word. The cycle count of MATVEC
    and INFER responses is 0: the model is not cycle-accurate.
    """

    def __init__(self, cfg: AnyprecConfig):
        if not isinstance(cfg, AnyprecConfig):
            raise TypeError(f"cfg must be an AnyprecConfig, not {type(cfg).__name__}")
        self.cfg = cfg
        self.log = []
        self.reset()

    # --- stream input --------------------------------------------------------------------
    def reset(self):
        """Power-on state: every slot unconfigured, no frame in progress."""
        self.slots = [SlotState() for _ in range(self.cfg.layers)]
        self._words = []        # words of the frame in progress
        self._discarding = False  # OVERSIZE: dropping words up to the next tlast
        self._assembler = None
        self._assembler_width = None

    def feed(self, beats, width=32) -> list[list[int]]:
        """Feed beats ``(tdata, tlast)`` of a ``width``-bit stream; return the responses.

        ``width`` 8 or 16 models a narrow AXI-Stream port: beats are assembled into words
        least significant byte first, and a tlast in the middle of a word completes it with
        zero bytes. A frame may be split across calls; changing ``width`` in the middle of
        a word is an error.
        """
        if self._assembler is None or self._assembler_width != width:
            if self._assembler is not None and self._assembler.partial:
                raise ValueError("stream width changed in the middle of a word")
            self._assembler = P.WordAssembler(width)
            self._assembler_width = width
        out = []
        for tdata, tlast in beats:
            done = self._assembler.push(tdata, tlast)
            if done is not None:
                resp = self._word(*done)
                if resp is not None:
                    out.append(resp)
        return out

    def feed_words(self, words) -> list[list[int]]:
        """Feed words on a 32-bit stream with tlast on the last one only."""
        words = list(words)
        return self.feed([(w, i == len(words) - 1) for i, w in enumerate(words)])

    def exchange(self, words) -> list[int]:
        """Send one frame (tlast on its last word) and return the single response frame."""
        resp = self.feed_words(words)
        if len(resp) != 1:
            raise ValueError(f"expected one response to a complete frame, got {len(resp)} "
                             "(was an earlier frame left unfinished?)")
        return resp[0]

    @property
    def idle(self) -> bool:
        """True when no frame is in progress (the next beat starts a header)."""
        return not self._words and not self._discarding and not (
            self._assembler is not None and self._assembler.partial)

    def _word(self, word, tlast):
        if self._discarding:
            if tlast:
                self._discarding = False
                return self._finish(Status.OVERSIZE)
            return None
        self._words.append(word)
        length = self._words[0] >> 16
        received = len(self._words)       # words 0 .. received-1
        if received < length + 2:
            return self._finish(Status.TRUNCATED) if tlast else None
        # Word L + 1, the CRC position, has arrived.
        if not tlast:
            self._discarding = True
            return None
        return self._finish(None)

    def _finish(self, framing_status):
        words, self._words = self._words, []
        opcode, tag, _ = P.split_header(words[0])
        if framing_status is not None:
            status, arg, payload = framing_status, 0, []
        else:
            status, arg, payload = self._execute(words)
        self.log.append((words[0], Status(status), arg))
        if status != Status.OK:
            payload = []
        return P.encode_frame(opcode, tag, [P.status_word(status, arg), *payload])

    # --- command execution -----------------------------------------------------------
    def _execute(self, words):
        opcode, _, length = P.split_header(words[0])
        if P.crc32(words[:-1]) != words[-1]:
            return Status.BAD_CRC, 0, []
        handler = _HANDLERS.get(opcode)
        if handler is None:
            return Status.BAD_OPCODE, 0, []
        try:
            payload = handler(self, list(words[1:-1]))
        except _Refuse as r:
            return r.status, r.arg, []
        return Status.OK, 0, payload

    # Each handler checks in the order of its section of docs/protocol.md, raising _Refuse
    # on the first failure, and only then mutates state: a refused frame changes nothing.

    def _info(self, p):
        if p:
            raise _Refuse(Status.BAD_LENGTH)
        return P.encode_info(self.cfg)

    def _status(self, p):
        if p:
            raise _Refuse(Status.BAD_LENGTH)
        return [w for s in self.slots for w in P.encode_layer_status(s.status())]

    def _wbits_ok(self, k):
        if self.cfg.design == "parallel":
            return k == self.cfg.max_wbits
        return 1 <= k <= self.cfg.max_wbits

    def _set_layer(self, p):
        cfg = self.cfg
        # The length is checked from the header alone, before w1 is read: argument 0.
        if len(p) != 3:
            raise _Refuse(Status.BAD_LENGTH)
        layer, m, k, base = p[0] & 0xFF, p[1] & 0xFFFF, p[1] >> 16, p[2]
        if (layer >= cfg.layers or not 1 <= m <= cfg.max_m or not 1 <= k <= cfg.max_k
                or base + P.span(m, k, cfg) > cfg.depth_words):
            raise _Refuse(Status.RANGE, layer)
        end = base + P.span(m, k, cfg)
        for i, s in enumerate(self.slots):
            if i != layer and s.configured and base < s.base + P.span(s.m, s.k, cfg) \
                    and s.base < end:
                raise _Refuse(Status.CONFLICT, layer)
        n = cfg.max_wbits
        self.slots[layer] = SlotState(
            m=m, k=k, base=base, planes=np.zeros((n, m, k), dtype=np.uint8), loaded=0,
            req_m=np.zeros((n, m), dtype=np.int64), req_b=np.zeros((n, m), dtype=np.int64),
            req_shift=np.zeros(n, dtype=np.int64), req_mask=0,
            run_wbits=n, run_abits=cfg.max_abits, run_m=m, run_k=k)
        return []

    def _load_plane(self, p):
        cfg = self.cfg
        if not p:
            raise _Refuse(Status.BAD_LENGTH)
        layer, plane = p[0] & 0xFF, (p[0] >> 8) & 0xFF
        if layer >= cfg.layers or plane >= cfg.max_wbits:
            raise _Refuse(Status.RANGE, layer)
        s = self.slots[layer]
        if not s.configured:
            raise _Refuse(Status.NOT_READY, layer)
        if len(p) != 1 + P.plane_payload_words(s.m, s.k, cfg):
            raise _Refuse(Status.BAD_LENGTH, layer)
        if plane != s.loaded:
            raise _Refuse(Status.ORDER, layer)
        bits = P.unpack_plane(p[1:], s.m, s.k, cfg)
        s.planes[plane] = bits
        s.loaded += 1
        return []

    def _load_requant(self, p):
        cfg = self.cfg
        if not p:
            raise _Refuse(Status.BAD_LENGTH)
        layer, k, shift = p[0] & 0xFF, (p[0] >> 8) & 0xFF, (p[0] >> 16) & 0xFF
        # Any k in 1..N, also on the parallel design (its tables for k < N are never used).
        if layer >= cfg.layers or not 1 <= k <= cfg.max_wbits or shift > arith.SHIFT_MAX:
            raise _Refuse(Status.RANGE, layer)
        s = self.slots[layer]
        if not s.configured:
            raise _Refuse(Status.NOT_READY, layer)
        if len(p) != 1 + 2 * s.m:
            raise _Refuse(Status.BAD_LENGTH, layer)
        m, b = P.unpack_requant(p[1:])
        s.req_m[k - 1] = m
        s.req_b[k - 1] = b
        s.req_shift[k - 1] = shift
        s.req_mask |= 1 << (k - 1)
        return []

    def _set_run(self, p):
        cfg = self.cfg
        if len(p) != 2:
            raise _Refuse(Status.BAD_LENGTH)
        layer, wbits, abits = p[0] & 0xFF, (p[0] >> 8) & 0xFF, (p[0] >> 16) & 0xFF
        run_m, run_k = p[1] & 0xFFFF, p[1] >> 16
        if layer >= cfg.layers or not self._wbits_ok(wbits) or not 1 <= abits <= cfg.max_abits:
            raise _Refuse(Status.RANGE, layer)
        s = self.slots[layer]
        if not s.configured:
            raise _Refuse(Status.NOT_READY, layer)
        if not 1 <= run_m <= s.m or not 1 <= run_k <= s.k:
            raise _Refuse(Status.RANGE, layer)
        s.run_wbits, s.run_abits, s.run_m, s.run_k = wbits, abits, run_m, run_k
        return []

    def _codes(self, s):
        # N-bit codes whose top planes are the loaded ones; unloaded planes read as 0 and
        # are never used, because a k-bit code only takes the top k planes.
        return arith.from_planes(s.planes)

    def _matvec(self, p):
        cfg = self.cfg
        if not p:
            raise _Refuse(Status.BAD_LENGTH)
        layer, k, a = p[0] & 0xFF, (p[0] >> 8) & 0xFF, (p[0] >> 16) & 0xFF
        if layer >= cfg.layers:
            raise _Refuse(Status.RANGE, layer)
        s = self.slots[layer]
        if not s.configured:
            raise _Refuse(Status.NOT_READY, layer)
        if len(p) != 1 + P.act_payload_words(s.run_k, cfg):
            raise _Refuse(Status.BAD_LENGTH, layer)
        if not self._wbits_ok(k) or not 1 <= a <= cfg.max_abits:
            raise _Refuse(Status.RANGE, layer)
        x = P.unpack_activations(p[1:], s.run_k, cfg)
        if x.max() >= 1 << a:
            raise _Refuse(Status.RANGE, layer)
        if s.loaded < k:
            raise _Refuse(Status.NOT_READY, layer)
        d = arith.dot(self._codes(s)[:s.run_m, :s.run_k], x, cfg.max_wbits, k, a)
        return [int(v) & 0xFFFFFFFF for v in d] + [0]

    def _infer(self, p):
        cfg = self.cfg
        if not p:
            raise _Refuse(Status.BAD_LENGTH)
        n = p[0] & 0xFF
        if not 1 <= n <= cfg.layers:
            raise _Refuse(Status.RANGE, 0)
        s0 = self.slots[0]
        if not s0.configured:
            raise _Refuse(Status.NOT_READY, 0)
        if len(p) != 1 + P.act_payload_words(s0.run_k, cfg):
            raise _Refuse(Status.BAD_LENGTH, 0)
        x = P.unpack_activations(p[1:], s0.run_k, cfg)
        if x.max() >= 1 << s0.run_abits:
            raise _Refuse(Status.RANGE, 0)
        for l in range(n):
            s = self.slots[l]
            if (not s.configured or s.loaded < s.run_wbits
                    or not s.req_mask >> (s.run_wbits - 1) & 1):
                raise _Refuse(Status.NOT_READY, l)
            # An unconfigured next slot has run K 0, so it fails here, before its own
            # NOT_READY check (the order of docs/protocol.md, section 5, INFER).
            if l + 1 < n and s.run_m != self.slots[l + 1].run_k:
                raise _Refuse(Status.CONFLICT, l)
        used = self.slots[:n]
        net = arith.IntNetwork(
            layers=[arith.IntLayer(self._codes(s), s.req_m, s.req_b, s.req_shift)
                    for s in used],
            n=cfg.max_wbits, a=cfg.max_abits)
        logits = net.forward(x, [s.run_wbits for s in used], [s.run_abits for s in used],
                             sizes=[(s.run_m, s.run_k) for s in used])
        return [int(v) & 0xFFFFFFFF for v in logits] + [0]

    # --- inspection ------------------------------------------------------------------
    def snapshot(self):
        """A deep copy of the slot state (compare two snapshots with :meth:`same_state`)."""
        return copy.deepcopy(self.slots)

    @staticmethod
    def same_state(a, b) -> bool:
        """True when two snapshots hold identical state."""
        def key(s):
            return (s.m, s.k, s.base, s.loaded, s.req_mask, s.run_wbits, s.run_abits,
                    s.run_m, s.run_k)
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            if key(x) != key(y):
                return False
            for f in ("req_m", "req_b", "req_shift"):
                u, v = getattr(x, f), getattr(y, f)
                if (u is None) != (v is None) or (u is not None and not np.array_equal(u, v)):
                    return False
            # Only loaded planes are state; the rest is never read.
            if x.planes is not None and not np.array_equal(x.planes[:x.loaded],
                                                           y.planes[:y.loaded]):
                return False
        return True


def random_network(rng, shapes, n, a) -> arith.IntNetwork:
    """A random :class:`IntNetwork` for tests and fuzzing (no training needed).

    Codes are uniform N-bit; the requantisation tables are scaled per precision so that
    hidden activations spread over their range instead of all saturating or vanishing.

    Parameters
    ----------
    rng : numpy.random.Generator
    shapes : list of (M, K)
    n, a : int
        Maximum weight and activation precision.
    """
    layers = []
    for m, k in shapes:
        shift = np.array([min(arith.SHIFT_MAX, int(round(0.5 * np.log2(k))) + kk + 11)
                          for kk in range(1, n + 1)], dtype=np.int64)
        sign = np.where(rng.random((n, m)) < 0.8, 1, -1)
        mult = sign * rng.integers(1 << 11, 1 << 13, size=(n, m))
        span_b = np.array([1 << min(30, int(s) + a - 2) for s in shift])[:, None]
        b = rng.integers(-span_b, span_b, size=(n, m))
        layers.append(arith.IntLayer(codes=rng.integers(0, 1 << n, size=(m, k)),
                                     m=mult.astype(np.int64), b=b.astype(np.int64),
                                     shift=shift))
    return arith.IntNetwork(layers=layers, n=n, a=a)


_HANDLERS = {
    Opcode.INFO: ModelDevice._info,
    Opcode.STATUS: ModelDevice._status,
    Opcode.SET_LAYER: ModelDevice._set_layer,
    Opcode.LOAD_PLANE: ModelDevice._load_plane,
    Opcode.LOAD_REQUANT: ModelDevice._load_requant,
    Opcode.SET_RUN: ModelDevice._set_run,
    Opcode.MATVEC: ModelDevice._matvec,
    Opcode.INFER: ModelDevice._infer,
}
