"""Robustness flows: protocol fuzzing, back-pressure and soak runs on the simulated RTL.

Three async flows run inside the simulator (``sim/tb.py`` calls them through
``sim.runner.run_job``); their tests are ``tests/test_sim_fuzz.py``,
``tests/test_sim_backpressure.py`` and ``tests/test_sim_soak.py``, and
``docs/robustness.md`` describes what they check and the counts measured.

* :func:`fuzz`: seeded random and mutated frames (:class:`FuzzGen`) mixed with valid
  commands, sent as raw beats through the harness buffers; every response is compared with
  :class:`~anyprec.host.devmodel.ModelDevice` fed the same beats. After every refused
  frame the "a failed frame changes nothing" promise is checked on the RTL: STATUS and a
  reference MATVEC or INFER give the same words (cycle count included) as just before the
  refused frame. A watchdog (:func:`watchdog_bound`) fails the run when a response takes
  longer than a bound derived from the frame sizes and the command's compute.
* :func:`exchange_frames`: one list of request frames, replayed from reset under several
  back-pressure patterns (harness LFSR gaps and stalls, cocotbext-axi pause generators
  with long random stretches, frames queued back to back); the responses of every
  pattern are returned for comparison word for word.
* :func:`soak`: a long plan (:func:`soak_plan`) of network loads and reconfigurations,
  progressive plane streaming, precision and size switches, matvecs and inferences,
  executed through the host driver; :func:`soak_plan` computes the golden result of every
  compute step with ``golden.arith`` alone.

:class:`FuzzGen`, :func:`watchdog_bound` and :func:`soak_plan` are plain Python (no
cocotb), so they can be checked against the model without a simulator.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass

import numpy as np

from ..golden import arith
from ..host import protocol as P
from ..host.devmodel import ModelDevice, random_network
from ..host.errors import DeviceTimeout
from ..host.protocol import Opcode, Status
from ..hw.config import AnyprecConfig

__all__ = ["FuzzItem", "FuzzGen", "MUTATIONS", "watchdog_bound", "compute_work",
           "compare_response", "harness_capacity", "with_tlast", "fuzz", "fuzz_runs",
           "fuzz_table",
           "exchange_frames", "pause_stretches", "soak_plan", "soak"]

_KNOWN = frozenset(int(o) for o in Opcode)
_STATE_OPS = frozenset({Opcode.SET_LAYER, Opcode.LOAD_PLANE, Opcode.LOAD_REQUANT,
                        Opcode.SET_RUN})

# --------------------------------------------------------------------------------------
# Watchdog bound, response comparison
# --------------------------------------------------------------------------------------

#: Fixed part of the watchdog bound, in cycles (reset of the framer, response header,
#: harness start-up; generous).
WATCHDOG_FIXED = 256
#: Per executed layer: pipeline fill and drain (array, requantiser, activation writer).
WATCHDOG_PER_LAYER = 128


def watchdog_bound(cfg, beats_in, words_out, work=(), gap_rate=0, stall_rate=0) -> int:
    """Cycles within which the response to one request must be complete.

    ``bound = 256 + 2*Bin*g + EPW*Win + 2*Bout*s + 2*max_m + 2*tiles_max + 4*layers
    + sum over executed layers (2*k*T*J + 128)``

    with ``Bin`` the request beats and ``Win = ceil(Bin / (32/W))`` its words, ``Bout``
    the beats of the expected response (known from the model), ``g = 256/(256-gap_rate)``
    and ``s = 256/(256-stall_rate)`` the slow-downs of the harness LFSR, and ``k*T*J``
    the ideal compute cycles of each layer a MATVEC or INFER runs (``work``, from
    :func:`compute_work`; T*J for the parallel design). The terms: one beat per cycle in
    and out (x2 margin), EPW cycles to unpack each activation word, the command loops
    (LOAD_REQUANT copies max_m rows, SET_LAYER multiplies T*J by repeated addition and
    scans the slots, INFER checks every slot) and the compute at one weight word per cycle
    (x2 margin) plus a fixed pipeline allowance per layer.
    """
    per = 32 // cfg.stream_width
    words_in = -(-beats_in // per)
    g = 256.0 / (256 - min(int(gap_rate), 255))
    s = 256.0 / (256 - min(int(stall_rate), 255))
    return int(WATCHDOG_FIXED + 2 * beats_in * g + cfg.elems_per_word * words_in
               + 2 * words_out * per * s + 2 * cfg.max_m + 2 * cfg.tiles_max
               + 4 * cfg.layers + sum(2 * w + WATCHDOG_PER_LAYER for w in work))


def compute_work(cfg, slots, request_words, response_words) -> list[int]:
    """Ideal compute cycles (k*T*J) of each layer an OK MATVEC / INFER runs, else []."""
    op, _, _ = P.split_header(response_words[0])
    if len(response_words) < 3 or response_words[1] & 0xFF != Status.OK \
            or op not in (Opcode.MATVEC, Opcode.INFER) or len(request_words) < 2:
        return []
    per = 1 if cfg.design == "parallel" else None
    w1 = request_words[1]
    if op == Opcode.MATVEC:
        layers, ks = [w1 & 0xFF], [(w1 >> 8) & 0xFF]
    else:
        layers = list(range(w1 & 0xFF))
        ks = [slots[l].run_wbits for l in layers]
    return [(per or k) * P.tiles(slots[l].run_m, cfg) * P.chunks(slots[l].run_k, cfg)
            for l, k in zip(layers, ks)]


def compare_response(got, want):
    """Compare an RTL response with the model's; return None or a description.

    Word for word, except the cycle-count word of an OK MATVEC / INFER (the model says 0):
    there the RTL's must be above 0, and its CRC (which covers the count) must be valid.
    """
    if got == want:
        op = want[0] & 0xFF
        if op in (Opcode.MATVEC, Opcode.INFER) and len(want) > 3 \
                and want[1] & 0xFF == Status.OK:
            return "cycle count is 0"
        return None
    if len(got) != len(want):
        return f"{len(got)} words, the model answers {len(want)}"
    op = want[0] & 0xFF
    if op in (Opcode.MATVEC, Opcode.INFER) and len(want) > 3 and want[1] & 0xFF == Status.OK:
        diff = [i for i in range(len(want) - 2) if got[i] != want[i]]
        if diff:
            return f"word {diff[0]} is {got[diff[0]]:#010x}, the model says {want[diff[0]]:#010x}"
        if got[-2] == 0:
            return "cycle count is 0"
        if P.crc32(got[:-1]) != got[-1]:
            return f"response CRC {got[-1]:#010x} is wrong"
        return None
    i = next(i for i in range(len(want)) if got[i] != want[i])
    return f"word {i} is {got[i]:#010x}, the model says {want[i]:#010x}"


def harness_capacity(cfg) -> int:
    """Beats the simulation harness's request buffer holds (hw/simharness.py)."""
    from ..hw.simharness import SimHarness
    return SimHarness(cfg)._buf


def _words_of(beats, width):
    asm = P.WordAssembler(width)
    out = []
    for i, b in enumerate(beats):
        done = asm.push(b, i == len(beats) - 1)
        if done is not None:
            out.append(done[0])
    return out


def with_tlast(beats):
    """``(tdata, tlast)`` pairs of one tlast-terminated request (for ModelDevice.feed)."""
    n = len(beats)
    return [(b, i == n - 1) for i, b in enumerate(beats)]


def _fmt(words, limit=12):
    s = " ".join(f"{w:08x}" for w in words[:limit])
    return s + (f" ... ({len(words)} words)" if len(words) > limit else "")


# --------------------------------------------------------------------------------------
# The fuzz frame generator
# --------------------------------------------------------------------------------------

#: Mutation kinds and their relative weights (``valid`` is an unmutated command).
MUTATIONS = {
    "valid": 40,         # a command valid for the current state (loads, SET_RUN, MATVEC...)
    "repeat": 4,         # the previous frame again, beat for beat
    "flip_header": 4,    # one bit of the header flipped, CRC kept
    "flip_payload": 4,   # one payload bit flipped, CRC kept
    "flip_crc": 4,       # one CRC bit flipped
    "flip_recrc": 6,     # one header or payload bit flipped, CRC recomputed
    "truncate": 6,       # tlast at a random beat before the end (inside words on 8/16 bit)
    "oversize": 5,       # extra words (or a whole frame, or part of a word) after the CRC
    "length": 4,         # payload grown or shrunk with the header, CRC recomputed
    "length_only": 3,    # header length changed, payload kept, CRC recomputed
    "opcode": 3,         # unknown opcode, valid CRC
    "range": 7,          # a field out of range (layer, precision, plane, shift, size, x)
    "order": 6,          # planes skipped or repeated, compute before planes, overlaps,
                         # sizes that stop chaining, commands on unconfigured slots
    "short": 2,          # header only, or header + CRC with no w1
    "garbage": 2,        # random beats
}


@dataclass
class FuzzItem:
    """One request: ``beats`` (tdata; tlast on the last), its mutation ``kind`` and a
    ``label`` naming the command and the variant."""
    kind: str
    label: str
    beats: list


class FuzzGen:
    """Seeded generator of valid and mutated request frames for a :class:`ModelDevice`.

    It reads the model's state (never writes it) to make valid commands valid: the next
    plane of a slot, missing requantisation tables, SET_RUN chains whose sizes link up,
    MATVEC at loaded precisions, INFER over the runnable layers, occasional SET_LAYER
    reconfigurations into free memory. Mutations start from such commands. Multi-frame
    sequences (the initial load, a SET_RUN chain, a chain break followed by INFER) wait in
    a queue and are interleaved with the random stream.

    Parameters
    ----------
    cfg : AnyprecConfig
    seed : int
    model : ModelDevice
        The model the same frames are fed to (by the caller).
    capacity : int, optional
        Largest request in beats (the harness buffer); default :func:`harness_capacity`.
    """

    def __init__(self, cfg, seed, model, capacity=None):
        self.cfg = cfg
        self.seed = seed
        self.model = model
        self.rng = np.random.default_rng(seed)
        self.width = cfg.stream_width
        self.per = 32 // cfg.stream_width
        self.capacity = capacity if capacity is not None else harness_capacity(cfg)
        self.queue = deque()
        self.prev = None
        self.n, self.a, self.L = cfg.max_wbits, cfg.max_abits, cfg.layers
        self.serial = cfg.design == "serial"
        self._kinds = list(MUTATIONS)
        w = np.array([MUTATIONS[k] for k in self._kinds], dtype=float)
        self._p = w / w.sum()
        self._initial_load()

    # --- helpers ------------------------------------------------------------------
    def _i(self, lo, hi):
        """Random int in [lo, hi] (inclusive)."""
        return int(self.rng.integers(lo, hi + 1))

    def _tag(self):
        return self._i(0, 255)

    def _slots(self):
        return self.model.slots

    def _configured(self):
        return [i for i, s in enumerate(self._slots()) if s.configured]

    def _ks(self):
        return list(range(1, self.n + 1)) if self.serial else [self.n]

    def _x(self, count, a):
        count = max(int(count), 1)
        hi = (1 << a) - 1
        r = self.rng.random()
        if r < 0.1:
            return np.full(count, hi, dtype=np.int64)
        if r < 0.15:
            return np.zeros(count, dtype=np.int64)
        return self.rng.integers(0, hi + 1, size=count)

    def _table(self, rows, k_in, kk):
        """A requantisation table (m, b, shift) for ``rows`` rows at precision ``kk``,
        scaled like :func:`random_network` so hidden activations spread out."""
        shift = min(arith.SHIFT_MAX, int(round(0.5 * np.log2(max(k_in, 1)))) + kk + 11)
        sign = np.where(self.rng.random(rows) < 0.8, 1, -1)
        m = sign * self.rng.integers(1 << 11, 1 << 13, size=rows)
        span = 1 << min(30, shift + self.a - 2)
        b = self.rng.integers(-span, span, size=rows)
        return m.astype(np.int64), b.astype(np.int64), shift

    def _plane_words(self, m, k):
        bits = self.rng.integers(0, 2, size=(max(m, 1), max(k, 1)))
        return P.pack_plane_bits(bits, self.cfg)

    def _runnable(self):
        """Every n for which INFER(n) passes its per-layer checks in the model's state."""
        slots = self._slots()
        out = []
        for n in range(1, self.L + 1):
            ok = True
            for l in range(n):
                s = slots[l]
                if (not s.configured or s.loaded < s.run_wbits
                        or not s.req_mask >> (s.run_wbits - 1) & 1):
                    ok = False
                    break
                if l + 1 < n and s.run_m != slots[l + 1].run_k:
                    ok = False
                    break
            if ok:
                out.append(n)
        return out

    def _free_bases(self, slot, m, k):
        cfg = self.cfg
        span = P.span(m, k, cfg)
        if span > cfg.depth_words:
            return []
        free = np.ones(cfg.depth_words - span + 1, dtype=bool)
        for i, s in enumerate(self._slots()):
            if i == slot or not s.configured:
                continue
            lo, hi = s.base, s.base + P.span(s.m, s.k, cfg)
            # base b overlaps [lo, hi) when b < hi and lo < b + span
            free[max(0, lo - span + 1):max(0, min(hi, len(free)))] = False
        return np.flatnonzero(free).tolist()

    def _beats(self, words):
        return [b for b, _ in P.to_beats(words, self.width)]

    # --- valid commands -----------------------------------------------------------
    def _initial_load(self):
        """Configure every slot with chained random shapes, queue two tables and planes."""
        cfg = self.cfg
        k = self._i(max(1, cfg.max_k // 2), cfg.max_k)
        shapes = []
        for l in range(self.L):
            last = l == self.L - 1
            hi = cfg.max_m if last else min(cfg.max_m, cfg.max_k)
            m = self._i(1 if last else max(1, hi // 2), hi)
            shapes.append((m, k))
            k = m
        bases = P.layout(shapes, cfg)
        q = self.queue
        q.append(("valid", "INFO", P.info(tag=self._tag())))
        for l, ((m, k), base) in enumerate(zip(shapes, bases)):
            q.append(("valid", "SET_LAYER setup", P.set_layer(l, m, k, base, tag=self._tag())))
        # A table and the first planes only: the valid commands load the rest as the
        # fuzzing goes (progressive loading), and short runs get to the mutations soon.
        for l, (m, k) in enumerate(shapes):
            for kk in sorted({self._ks()[0], self.n}):
                mm, bb, sh = self._table(m, k, kk)
                q.append(("valid", "LOAD_REQUANT setup",
                          P.load_requant(l, kk, sh, mm, bb, tag=self._tag())))
        for p in range(min(2, self.n)):
            for l, (m, k) in enumerate(shapes):
                q.append(("valid", "LOAD_PLANE setup",
                          P.load_plane(l, p, self._plane_words(m, k), tag=self._tag())))

    def v_info(self):
        return "INFO", P.info(tag=self._tag())

    def v_status(self):
        return "STATUS", P.status(tag=self._tag())

    def v_load_plane(self):
        todo = [i for i in self._configured() if self._slots()[i].loaded < self.n]
        if not todo:
            return None
        l = int(self.rng.choice(todo))
        s = self._slots()[l]
        return "LOAD_PLANE", P.load_plane(l, s.loaded, self._plane_words(s.m, s.k),
                                          tag=self._tag())

    def v_load_requant(self):
        conf = self._configured()
        if not conf:
            return None
        missing = [(l, k) for l in conf for k in self._ks()
                   if not self._slots()[l].req_mask >> (k - 1) & 1]
        if missing and self.rng.random() < 0.9:
            l, k = missing[self._i(0, len(missing) - 1)]
        else:
            l, k = int(self.rng.choice(conf)), self._i(1, self.n)
        s = self._slots()[l]
        mm, bb, sh = self._table(s.m, s.k, k)
        return "LOAD_REQUANT", P.load_requant(l, k, sh, mm, bb, tag=self._tag())

    def _run_chain(self):
        """(layer, wbits, abits, run M, run K) for the configured prefix, chained."""
        slots = self._slots()
        c = 0
        while c < self.L and slots[c].configured:
            c += 1
        if c == 0:
            return []
        out = []
        s0 = slots[0]
        run_k = s0.k if self.rng.random() < 0.4 else self._i(1, s0.k)
        for l in range(c):
            s = slots[l]
            run_k = min(run_k, s.k)
            cap = min(s.m, slots[l + 1].k) if l + 1 < c else s.m
            run_m = cap if self.rng.random() < 0.4 else self._i(1, cap)
            good = [k for k in self._ks() if s.loaded >= k and s.req_mask >> (k - 1) & 1]
            wb = int(self.rng.choice(good)) if good and self.rng.random() < 0.9 \
                else int(self.rng.choice(self._ks()))
            ab = self._i(1, self.a)
            out.append((l, wb, ab, run_m, run_k))
            run_k = run_m
        return out

    def v_set_run_chain(self):
        chain = self._run_chain()
        if not chain:
            return None
        frames = [P.set_run(*c, tag=self._tag()) for c in chain]
        for f in frames[1:]:
            self.queue.append(("valid", "SET_RUN chain", f))
        return "SET_RUN chain", frames[0]

    def v_set_run_one(self):
        conf = self._configured()
        if not conf:
            return None
        l = int(self.rng.choice(conf))
        s = self._slots()[l]
        return "SET_RUN", P.set_run(l, int(self.rng.choice(self._ks())), self._i(1, self.a),
                                    self._i(1, s.m), self._i(1, s.k), tag=self._tag())

    def v_matvec(self):
        cand = [i for i in self._configured() if self._slots()[i].loaded >= 1]
        if not cand:
            return None
        l = int(self.rng.choice(cand))
        s = self._slots()[l]
        ks = [k for k in self._ks() if k <= s.loaded]
        if not ks:
            return None
        k = int(self.rng.choice(ks))
        a = self._i(1, self.a)
        return "MATVEC", P.matvec(l, k, a, self._x(s.run_k, a), self.cfg, tag=self._tag())

    def v_infer(self):
        ns = self._runnable()
        if not ns:
            return None
        n = ns[-1] if self.rng.random() < 0.6 else int(self.rng.choice(ns))
        s0 = self._slots()[0]
        return "INFER", P.infer(n, self._x(s0.run_k, s0.run_abits), self.cfg,
                                tag=self._tag())

    def v_set_layer(self):
        """Reconfigure a slot: a shape chained to its neighbours, into free memory."""
        cfg, slots = self.cfg, self._slots()
        l = self._i(0, self.L - 1)
        k = slots[l - 1].m if l > 0 and slots[l - 1].configured else self._i(1, cfg.max_k)
        m = slots[l + 1].k if l + 1 < self.L and slots[l + 1].configured \
            else self._i(1, cfg.max_m)
        k, m = min(k, cfg.max_k), min(m, cfg.max_m)
        bases = self._free_bases(l, m, k)
        if not bases:
            s = slots[l]
            if not s.configured:
                return None
            m, k, bases = s.m, s.k, [s.base]
        base = int(bases[self._i(0, len(bases) - 1)])
        return "SET_LAYER", P.set_layer(l, m, k, base, tag=self._tag())

    def valid(self):
        """A valid command for the current state: (label, words)."""
        slots = self._slots()
        behind = any(s.configured and s.loaded < self.n for s in slots)
        missing = any(s.configured and not s.req_mask >> (k - 1) & 1
                      for s in slots for k in self._ks())
        choices = [
            (self.v_load_plane, 3.0 if behind else 0.0),
            (self.v_load_requant, 2.0 if missing else 0.3),
            (self.v_set_run_chain, 1.2),
            (self.v_set_run_one, 0.3),
            (self.v_matvec, 2.0),
            (self.v_infer, 3.0),
            (self.v_info, 0.2),
            (self.v_status, 0.3),
            (self.v_set_layer, 0.3),
        ]
        fns = [f for f, w in choices if w > 0]
        w = np.array([w for _, w in choices if w > 0])
        for _ in range(8):
            out = fns[int(self.rng.choice(len(fns), p=w / w.sum()))]()
            if out is not None:
                return out
        return self.v_status()

    # --- mutations ----------------------------------------------------------------
    def _flip(self, words, lo, hi, recrc):
        words = list(words)
        i = self._i(lo, hi)
        words[i] ^= 1 << self._i(0, 31)
        if recrc:
            words[-1] = P.crc32(words[:-1])
        return words, i

    def m_range(self):
        cfg, L, N, A = self.cfg, self.L, self.n, self.a
        slots = self._slots()
        conf = self._configured()
        l = int(self.rng.choice(conf)) if conf else 0
        s = slots[l]
        bad_layer = self._i(L, 255)
        v = self._i(0, 5)
        t = self._tag()
        if v == 0:
            which = self._i(0, 6)
            m, k, base = self._i(1, cfg.max_m), self._i(1, cfg.max_k), 0
            layer = l
            if which == 0:
                layer = bad_layer
            elif which == 1:
                m = 0
            elif which == 2:
                k = 0
            elif which == 3:
                m = self._i(cfg.max_m + 1, 0xFFFF)
            elif which == 4:
                k = self._i(cfg.max_k + 1, 0xFFFF)
            elif which == 5:
                base = cfg.depth_words - P.span(m, k, cfg) + self._i(1, 64)
            else:
                base = self._i(cfg.depth_words, 0xFFFFFFFF)
            return f"SET_LAYER range {which}", P.set_layer(layer, m, k, base, tag=t)
        if v == 1:
            words = self._plane_words(s.m, s.k)
            if self.rng.random() < 0.5:
                return "LOAD_PLANE range layer", P.load_plane(bad_layer, 0, words, tag=t)
            return "LOAD_PLANE range plane", P.load_plane(l, self._i(N, 255), words, tag=t)
        if v == 2:
            mm, bb, sh = self._table(max(s.m, 1), max(s.k, 1), 1)
            which = self._i(0, 3)
            layer, kk = (bad_layer if which == 0 else l), 1
            if which == 1:
                kk = 0
            elif which == 2:
                kk = self._i(N + 1, 255)
            if which == 3:
                sh = self._i(arith.SHIFT_MAX + 1, 255)
            return f"LOAD_REQUANT range {which}", P.load_requant(layer, kk, sh, mm, bb, tag=t)
        if v == 3:
            which = self._i(0, 6)
            layer, wb, ab = l, self._i(1, N), self._i(1, A)
            rm, rk = self._i(1, max(s.m, 1)), self._i(1, max(s.k, 1))
            if which == 0:
                layer = bad_layer
            elif which == 1:
                wb = 0 if self.rng.random() < 0.5 else self._i(N + 1, 255)
            elif which == 2:
                ab = 0 if self.rng.random() < 0.5 else self._i(A + 1, 255)
            elif which == 3:
                rm = 0
            elif which == 4:
                rm = self._i(s.m + 1, 0xFFFF)
            elif which == 5:
                rk = 0
            else:
                rk = self._i(s.k + 1, 0xFFFF)
            return f"SET_RUN range {which}", P.set_run(layer, wb, ab, rm, rk, tag=t)
        if v == 4:
            which = self._i(0, 3)
            layer, k, a = l, self._i(1, max(min(s.loaded, N), 1)), self._i(1, A)
            lane = 32 // cfg.elems_per_word
            x = self._x(s.run_k, a)
            if which == 0:
                layer = bad_layer
            elif which == 1:
                k = 0 if self.rng.random() < 0.5 else self._i(N + 1, 255)
            elif which == 2:
                a = 0 if self.rng.random() < 0.5 else self._i(A + 1, 255)
                x = self._x(s.run_k, min(max(a, 1), A))
            else:
                if a < lane:
                    x[self._i(0, len(x) - 1)] = self._i(1 << a, (1 << lane) - 1)
            return f"MATVEC range {which}", P.matvec(layer, k, a, x, cfg, tag=t)
        s0 = slots[0]
        which = self._i(0, 2)
        a0 = max(s0.run_abits, 1)
        x = self._x(s0.run_k, min(a0, A))
        n = self._i(1, L)
        if which == 0:
            n = 0
        elif which == 1:
            n = self._i(L + 1, 255)
        else:
            lane = 32 // cfg.elems_per_word
            if a0 < lane:
                x[self._i(0, len(x) - 1)] = self._i(1 << a0, (1 << lane) - 1)
        return f"INFER range {which}", P.infer(n, x, cfg, tag=t)

    def m_order(self):
        cfg, slots, N = self.cfg, self._slots(), self.n
        conf = self._configured()
        unconf = [i for i in range(self.L) if not slots[i].configured]
        t = self._tag()
        v = self._i(0, 6)
        if v == 6 and unconf:
            l = int(self.rng.choice(unconf))
            which = self._i(0, 3)
            if which == 0:
                mm, bb, sh = self._table(1, 1, 1)
                return "LOAD_REQUANT unconfigured", P.load_requant(l, 1, sh, mm, bb, tag=t)
            if which == 1:
                return "SET_RUN unconfigured", P.set_run(l, N, 1, 1, 1, tag=t)
            if which == 2:
                return "MATVEC unconfigured", P.matvec(l, 1, 1, [0], cfg, tag=t)
            return "LOAD_PLANE unconfigured", P.load_plane(l, 0, self._plane_words(1, 1),
                                                           tag=t)
        if not conf:
            return "INFER unconfigured", P.infer(1, [0], cfg, tag=t)
        l = int(self.rng.choice(conf))
        s = slots[l]
        if v in (0, 1):
            # A plane other than the next one: skipped ahead, or one already loaded.
            ahead = list(range(s.loaded + 1, N))
            behind = list(range(0, min(s.loaded, N)))
            pool = ahead if (v == 0 and ahead) or not behind else behind
            if not pool:
                pool = [0]
            p = int(self.rng.choice(pool))
            return f"LOAD_PLANE order {'skip' if p > s.loaded else 'again'}", \
                P.load_plane(l, p, self._plane_words(s.m, s.k), tag=t)
        if v == 2 and s.loaded < N:
            k = self._i(s.loaded + 1, N)
            a = self._i(1, self.a)
            return "MATVEC before planes", P.matvec(l, k, a, self._x(s.run_k, a), cfg, tag=t)
        if v == 3 and len(conf) > 1:
            other = int(self.rng.choice([i for i in conf if i != l]))
            o = slots[other]
            lo, hi = o.base, o.base + P.span(o.m, o.k, cfg)
            m, k = self._i(1, cfg.max_m), self._i(1, cfg.max_k)
            span = P.span(m, k, cfg)
            base = self._i(max(0, lo - span + 1), hi - 1)
            return "SET_LAYER overlap", P.set_layer(l, m, k, base, tag=t)
        if v == 4 and self.L > 1 and slots[0].configured and slots[1].configured:
            # A valid SET_RUN that breaks the chain, then an INFER that must see CONFLICT.
            s0, s1 = slots[0], slots[1]
            rm = self._i(1, s0.m)
            if rm == s1.run_k:
                rm = rm - 1 if rm > 1 else (2 if s0.m >= 2 else 1)
            self.queue.append(("order", "INFER chain broken",
                               P.infer(self._i(2, self.L), self._x(s0.run_k, s0.run_abits),
                                       cfg, tag=self._tag())))
            return "SET_RUN chain break", P.set_run(0, s0.run_wbits, s0.run_abits, rm,
                                                    s0.run_k, tag=t)
        # An inference over a random number of layers, ready or not.
        s0 = slots[0]
        return "INFER any", P.infer(self._i(1, self.L), self._x(s0.run_k, max(s0.run_abits, 1)),
                                    cfg, tag=t)

    def mutate(self, kind):
        """(label, beats) of one mutated request of ``kind``."""
        if kind == "repeat" and self.prev is not None:
            return "repeat", list(self.prev)
        if kind == "range":
            label, words = self.m_range()
            return label, self._beats(words)
        if kind == "order":
            label, words = self.m_order()
            return label, self._beats(words)
        if kind == "opcode":
            op = self._i(0, 255)
            while op in _KNOWN:
                op = self._i(0, 255)
            pay = [int(v) for v in self.rng.integers(0, 1 << 32, size=self._i(0, 5))]
            return f"opcode {op:#04x}", self._beats(P.encode_frame(op, self._tag(), pay))
        if kind == "garbage":
            n = self._i(1, 8 * self.per)
            return "garbage", [int(v) for v in self.rng.integers(0, 1 << self.width, size=n)]
        if kind == "short":
            op = int(self.rng.choice(sorted(_KNOWN)))
            if self.rng.random() < 0.5:
                # A header alone (any length field), tlast on it.
                hdr = P.make_header(op, self._tag(), self._i(0, 40))
                beats = self._beats([hdr])
                if self.per > 1 and self.rng.random() < 0.5:
                    beats = beats[:self._i(1, self.per)]
                return f"header only {Opcode(op).name}", beats
            return f"no payload {Opcode(op).name}", self._beats(
                P.encode_frame(op, self._tag(), []))
        label, words = self.valid()
        L = len(words) - 2
        if kind == "flip_header":
            words, _ = self._flip(words, 0, 0, False)
        elif kind == "flip_payload" and L > 0:
            words, _ = self._flip(words, 1, L, False)
        elif kind == "flip_crc" or (kind == "flip_payload" and L == 0):
            words, _ = self._flip(words, L + 1, L + 1, False)
        elif kind == "flip_recrc":
            words, i = self._flip(words, 0, L, True)
            label += " header" if i == 0 else " payload"
        elif kind == "truncate":
            beats = self._beats(words)
            cut = self._i(0, len(beats) - 2)
            return f"{label} cut at beat {cut}", beats[:cut + 1]
        elif kind == "oversize":
            beats = self._beats(words)
            v = self._i(0, 2)
            if v == 0:
                extra = [int(x) for x in self.rng.integers(0, 1 << 32, size=self._i(1, 4))]
                beats += self._beats(extra)
            elif v == 1:
                beats += self._beats(self.valid()[1])
                label += " + frame"
            else:
                n = self._i(1, self.per - 1) if self.per > 1 else 1
                beats += [int(x) for x in self.rng.integers(0, 1 << self.width, size=n)]
                label += f" + {n} beats"
            return label, beats
        elif kind == "length":
            d = self._i(1, 3) * (1 if self.rng.random() < 0.5 or L == 0 else -1)
            newlen = max(0, L + d)
            pay = words[1:1 + L]
            pay = (pay + [int(x) for x in self.rng.integers(0, 1 << 32, size=newlen)])[:newlen]
            op, tag, _ = P.split_header(words[0])
            words = P.encode_frame(op, tag, pay)
            label += f" length {L}->{newlen}"
        elif kind == "length_only":
            op, tag, _ = P.split_header(words[0])
            newlen = L + self._i(1, 3) if L == 0 or self.rng.random() < 0.5 \
                else self._i(0, L - 1)
            words = list(words)
            words[0] = P.make_header(op, tag, newlen)
            words[-1] = P.crc32(words[:-1])
            label += f" header length {L}->{newlen}"
        return label, self._beats(words)

    def next(self) -> FuzzItem:
        """The next request (queued sequences first, mostly)."""
        if self.queue and self.rng.random() < 0.8:
            kind, label, words = self.queue.popleft()
            item = FuzzItem(kind, label, self._beats(words))
        else:
            kind = self._kinds[int(self.rng.choice(len(self._kinds), p=self._p))]
            if kind == "valid":
                label, words = self.valid()
                item = FuzzItem(kind, label, self._beats(words))
            else:
                label, beats = self.mutate(kind)
                item = FuzzItem(kind, label, beats)
        if len(item.beats) > self.capacity:
            item = FuzzItem("valid", "STATUS (instead of an oversized request)",
                            self._beats(P.status(tag=self._tag())))
        self.prev = item.beats
        return item

    # --- probes -------------------------------------------------------------------
    def probes(self, version):
        """The reference requests for the current state: STATUS, and an INFER over every
        runnable layer or else a MATVEC on a loaded slot (inputs seeded by ``version``)."""
        rng = np.random.default_rng([self.seed, version])
        slots = self._slots()
        out = [("STATUS", P.status(tag=0xA5))]
        ns = self._runnable()
        if ns:
            s0 = slots[0]
            x = rng.integers(0, 1 << s0.run_abits, size=s0.run_k)
            out.append(("INFER", P.infer(ns[-1], x, self.cfg, tag=0x5A)))
        else:
            cand = [i for i in self._configured() if slots[i].loaded >= 1]
            if cand:
                l = cand[0]
                s = slots[l]
                k = min(s.loaded, self.n) if self.serial else self.n
                if s.loaded >= k:
                    x = rng.integers(0, 1 << self.a, size=s.run_k)
                    out.append(("MATVEC", P.matvec(l, k, self.a, x, self.cfg, tag=0x5B)))
        return out


# --------------------------------------------------------------------------------------
# The fuzz flow
# --------------------------------------------------------------------------------------

class _Failure(Exception):
    pass


async def fuzz(env, seed, frames, gap_rate=0, stall_rate=0, probe=True,
               progress_every=1000, watchdog_scale=1.0, model_cfg=None):
    """Fuzz the RTL with ``frames`` requests from :class:`FuzzGen`; compare with the model.

    ``watchdog_scale`` multiplies the watchdog bound and ``model_cfg`` (a config dict)
    makes the model answer for another build: both exist to show that the checks fail
    when they should (tests/test_sim_fuzz.py).

    Returns a dict: counts per mutation kind and resulting status, per status, per
    opcode of valid frames, probes, exchanges, simulated cycles, the largest
    (cycles / watchdog bound) and (cycle count / ideal compute) ratios, and ``failure``
    (None, or the first mismatch, watchdog expiry or broken promise with the request
    and both responses). The run stops at the first failure.
    """
    cfg = env.cfg
    tr = env.make_transport("fast", gap_rate=gap_rate, stall_rate=stall_rate,
                            seed=seed & 0xFFFF or 1)
    width = cfg.stream_width
    model = ModelDevice(AnyprecConfig.from_dict(model_cfg) if model_cfg else cfg)
    gen = FuzzGen(cfg, seed, model)
    by_kind = defaultdict(Counter)
    by_status = Counter()
    by_label = Counter()
    stats = Counter()
    ratio = {"bound": 0.0, "compute": 0.0, "overhead": 0.0}
    cache = {}                 # state version -> RTL responses of the probes
    version = 0
    t0 = time.monotonic()

    async def exchange(beats, what):
        """Send ``beats`` to model and RTL; return (model response, RTL response)."""
        exp = model.feed(with_tlast(beats), width)
        if len(exp) != 1:
            raise _Failure(f"{what}: the model gave {len(exp)} responses (generator bug)")
        exp = exp[0]
        req = _words_of(beats, width)
        work = compute_work(cfg, model.slots, req, exp)
        bound = max(1, int(watchdog_bound(cfg, len(beats), len(exp), work, gap_rate,
                                          stall_rate) * watchdog_scale))
        await tr.send_beats(beats)
        try:
            got = await tr.receive(timeout=bound)
        except DeviceTimeout:
            raise _Failure(f"{what}: watchdog: no response within {bound} cycles "
                           f"(request {_fmt(req)}; the model answers {_fmt(exp)})") from None
        stats["exchanges"] += 1
        stats["cycles"] += tr.last_cycles
        ratio["bound"] = max(ratio["bound"], tr.last_cycles / bound)
        if tr.last_cycles > bound:
            raise _Failure(f"{what}: response after {tr.last_cycles} cycles, bound {bound}")
        bad = compare_response(got, exp)
        if bad:
            raise _Failure(f"{what}: {bad}\n  request  {_fmt(req, 40)}\n  model    "
                           f"{_fmt(exp, 40)}\n  RTL      {_fmt(got, 40)}")
        if work:
            ratio["compute"] = max(ratio["compute"], got[-2] / sum(work))
            ratio["overhead"] = max(ratio["overhead"], (got[-2] - sum(work)) / len(work))
        return exp, got

    async def run_probes(when):
        if version in cache and when == "before":
            return
        got_all = []
        for label, words in gen.probes(version):
            exp, got = await exchange([b for b, _ in P.to_beats(words, width)],
                                      f"probe {label} {when} frame {i}")
            if exp[1] & 0xFF != Status.OK:
                raise _Failure(f"probe {label} {when} frame {i}: model refused it "
                               f"(generator bug): {_fmt(exp)}")
            got_all.append(got)
            stats["probes"] += 1
        if version in cache:
            if cache[version] != got_all:
                raise _Failure(
                    f"frame {i} ({item.kind}: {item.label}) was refused but the device "
                    f"state changed: reference responses before: "
                    f"{[_fmt(g) for g in cache[version]]}, after: {[_fmt(g) for g in got_all]}")
            stats["promise_checks"] += 1
        else:
            cache[version] = got_all

    failure = None
    i = -1
    item = None
    try:
        for i in range(frames):
            item = gen.next()
            # Look ahead: is the frame refused? Then the reference probes run first, so
            # the model is rolled back and fed again in step with the RTL.
            snap, logged = model.snapshot(), len(model.log)
            exp = model.feed(with_tlast(item.beats), width)
            if not model.idle:
                raise _Failure(f"frame {i} ({item.kind}): left the model inside a frame "
                               "(generator bug)")
            model.slots = snap
            del model.log[logged:]
            refused = len(exp) == 1 and exp[0][1] & 0xFF != Status.OK
            if probe and refused:
                await run_probes("before")
            snap = model.snapshot()
            exp, _ = await exchange(item.beats, f"frame {i} ({item.kind}: {item.label})")
            op, _, _ = P.split_header(exp[0])
            st = Status(exp[1] & 0xFF)
            by_kind[item.kind][st.name] += 1
            by_status[st.name] += 1
            if item.kind == "valid":
                by_label[item.label.split()[0]] += 1
            if st == Status.OK and op in _STATE_OPS:
                version += 1
            elif st != Status.OK:
                if not ModelDevice.same_state(snap, model.snapshot()):
                    raise _Failure(f"frame {i}: the model changed state on {st.name} "
                                   "(model bug)")
                if probe:
                    await run_probes("after")
            if progress_every and (i + 1) % progress_every == 0:
                env.progress(f"fuzz seed {seed}: {i + 1}/{frames} frames, "
                             f"{stats['exchanges']} exchanges, "
                             f"{time.monotonic() - t0:.0f} s")
    except _Failure as f:
        failure = str(f)
    return {
        "seed": seed, "frames": i + 1 if failure is None else i, "requested": frames,
        "exchanges": stats["exchanges"], "probes": stats["probes"],
        "promise_checks": stats["promise_checks"], "cycles": stats["cycles"],
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
        "by_status": dict(by_status), "valid_by_opcode": dict(by_label),
        "max_bound_ratio": ratio["bound"], "max_compute_ratio": ratio["compute"],
        "max_overhead_per_layer": ratio["overhead"],
        "failure": failure, "seconds": time.monotonic() - t0,
    }


def fuzz_table(results) -> str:
    """A markdown table of fuzz results (one or several runs summed): requests per
    mutation kind and the status each got."""
    if isinstance(results, dict):
        results = [results]
    by_kind = defaultdict(Counter)
    for r in results:
        for kind, sts in r["by_kind"].items():
            by_kind[kind].update(sts)
    names = [s.name for s in Status]
    head = "| kind | frames | refused | " + " | ".join(names) + " |"
    rows = [head, "|" + "---|" * (len(names) + 3)]
    total = Counter()
    for kind in MUTATIONS:
        c = by_kind.get(kind, Counter())
        n = sum(c.values())
        total.update(c)
        rows.append(f"| {kind} | {n} | {n - c['OK']} | "
                    + " | ".join(str(c[s]) if c[s] else "" for s in names) + " |")
    n = sum(total.values())
    rows.append(f"| **all** | {n} | {n - total['OK']} | "
                + " | ".join(str(total[s]) for s in names) + " |")
    return "\n".join(rows)


async def fuzz_runs(env, runs):
    """Several :func:`fuzz` runs in one simulation (``runs``: their keyword arguments),
    the device reset between them (a run that stopped at a failure may leave a frame
    half answered). ``model_cfg`` may be ``"smaller_max_m"``: this build with max_m - 1.
    Returns ``{"runs": [result, ...]}``."""
    from cocotb.triggers import RisingEdge
    out = []
    for i, kw in enumerate(runs):
        kw = dict(kw)
        if kw.get("model_cfg") == "smaller_max_m":
            kw["model_cfg"] = env.cfg.replace(max_m=env.cfg.max_m - 1).to_dict()
        if i:
            # The last receive may have ended in the read-only phase: step out first.
            await RisingEdge(env.dut.clk)
            await env.reset()
        out.append(await fuzz(env, **kw))
    return {"runs": out}


# --------------------------------------------------------------------------------------
# Back-pressure: one frame list replayed from reset under several patterns
# --------------------------------------------------------------------------------------

def pause_stretches(seed, run, pause, long_every=0, long_pause=(0, 0)):
    """A cocotbext-axi pause generator: ``False`` (go) for a random run of cycles in
    ``run`` (inclusive range), then ``True`` (pause) for a random stretch in ``pause``,
    forever. With ``long_every`` > 0, about one pause in ``long_every`` lasts
    ``long_pause`` cycles instead."""
    rng = np.random.default_rng(seed)
    while True:
        for _ in range(int(rng.integers(run[0], run[1] + 1))):
            yield False
        lo, hi = pause
        if long_every and rng.random() < 1.0 / long_every:
            lo, hi = long_pause
        for _ in range(int(rng.integers(lo, hi + 1))):
            yield True


async def _bus_monitor(dut, prefix, frames):
    """Record the beats that transfer on an AXI4-Stream port, frame by frame.

    Sampled at the falling clock edge, half a cycle away from any change, so the record
    does not depend on how the simulator orders callbacks at the rising edge (the
    ground truth the agents' own records are compared with)."""
    from cocotb.triggers import FallingEdge
    valid, ready = getattr(dut, f"{prefix}_tvalid"), getattr(dut, f"{prefix}_tready")
    data, last = getattr(dut, f"{prefix}_tdata"), getattr(dut, f"{prefix}_tlast")
    cur = []
    while True:
        await FallingEdge(dut.clk)
        if valid.value == 1 and ready.value == 1:
            cur.append(int(data.value))
            if last.value == 1:
                frames.append(cur)
                cur = []


async def exchange_frames(env, frames, patterns, timeout=400_000):
    """Replay ``frames`` (request word lists) from reset under each back-pressure pattern.

    ``patterns``: list of dicts with ``name`` and ``transport`` (``"fast"`` or ``"axi"``);
    fast patterns take ``gap_rate`` / ``stall_rate`` (harness LFSR, 0..255); axi patterns
    take ``source`` / ``sink`` (keyword arguments of :func:`pause_stretches`, seeded by
    ``seed``) and ``queued`` (push every frame into the source queue before reading any
    response, as a host streaming back to back would).

    Returns ``{"patterns": [{"name", "responses", "sim_cycles", "extra_frames",
    "seconds", ...}], "failure"}``: the responses in order (each a word list; for axi
    patterns, as the AxiStreamSink recorded them), the simulated cycles the pattern took,
    and for axi patterns ``bus_requests`` / ``bus_responses``, the frames that actually
    crossed ``s_axis`` / ``m_axis`` (recorded by a monitor of this flow, independently of
    the cocotbext-axi agents; the host waits on this monitor), and ``extra_frames``, the
    frames beyond one per request that came out within 2000 cycles after the last (must
    be 0); ``failure`` names the first frame without a response in ``timeout`` cycles (the
    run stops there), else None.
    """
    import cocotb
    from cocotb.triggers import ClockCycles, RisingEdge, Timer
    from cocotb.utils import get_sim_time
    from cocotbext.axi import AxiStreamFrame

    cfg, dut = env.cfg, env.dut
    width = cfg.stream_width
    axi = None
    out = []
    failure = None
    for pi, pat in enumerate(patterns):
        if failure:
            break
        # FastTransport.receive returns in the read-only phase, where nothing may be
        # written: step to the next edge before the reset.
        await RisingEdge(dut.clk)
        await env.reset()
        t0, s0 = time.monotonic(), get_sim_time(unit="ns")
        responses, extra = [], 0
        if pat["transport"] == "fast":
            tr = env.make_transport("fast", gap_rate=pat.get("gap_rate", 0),
                                    stall_rate=pat.get("stall_rate", 0),
                                    seed=pat.get("seed", 1 + pi))
            for i, words in enumerate(frames):
                try:
                    responses.append(await tr.exchange(words, timeout=timeout))
                except DeviceTimeout as e:
                    failure = f"pattern {pat['name']}: frame {i}: {e}"
                    break
        else:
            if axi is None:
                # One pair of agents for the whole job: agents bound twice to the same
                # port would both drive it.
                axi = env.make_transport("axi")
            dut.bypass.value = 1
            seed = pat.get("seed", 1 + pi)
            for agent, key in ((axi.source, "source"), (axi.sink, "sink")):
                # clear_pause_generator() leaves `pause` as it was: a generator stopped
                # in the middle of a stretch would hold the port forever.
                agent.clear_pause_generator()
                agent.pause = False
                if pat.get(key):
                    agent.set_pause_generator(pause_stretches(seed * 2 + (key == "sink"),
                                                              **pat[key]))
            beats = [[b for b, _ in P.to_beats(w, width)] for w in frames]
            bus_in, bus_out = [], []
            mons = [cocotb.start_soon(_bus_monitor(dut, "s_axis", bus_in)),
                    cocotb.start_soon(_bus_monitor(dut, "m_axis", bus_out))]
            async def wait_bus(count, what):
                # The monitor, not the sink, tells when a response is complete: the
                # device is checked even where the agent mis-records (see
                # _bus_monitor); polled every 32 cycles, no Python per cycle here.
                waited = 0
                while len(bus_out) < count:
                    if waited > timeout:
                        return (f"pattern {pat['name']}: no response to {what} within "
                                f"{timeout} cycles")
                    await Timer(32 * env.clock_ns, unit="ns")
                    waited += 32
                return None

            if pat.get("queued"):
                for b in beats:
                    await axi.source.send(AxiStreamFrame(b))
                failure = await wait_bus(len(frames), "every frame")
            else:
                for i, b in enumerate(beats):
                    await axi.source.send(AxiStreamFrame(b))
                    failure = await wait_bus(i + 1, f"frame {i}")
                    if failure:
                        break
            # Nothing more may come out: wait out a long stall and look again.
            await ClockCycles(dut.clk, 2000)
            for m in mons:
                m.cancel()
            extra = len(bus_out) - len(frames)
            while not axi.sink.empty():
                f = axi.sink.recv_nowait()
                responses.append(_words_of([int(v) for v in f.tdata], width))
            for agent in (axi.source, axi.sink):
                agent.clear_pause_generator()
                agent.pause = False
        bus = {}
        if pat["transport"] == "axi":
            bus = {"bus_requests": [_words_of(f, width) for f in bus_in],
                   "bus_responses": [_words_of(f, width) for f in bus_out]}
        out.append({"name": pat["name"], "responses": responses, "extra_frames": extra, **bus,
                    "sim_cycles": int((get_sim_time(unit="ns") - s0) / env.clock_ns),
                    "seconds": time.monotonic() - t0})
        env.progress(f"pattern {pat['name']}: {len(responses)} responses, "
                     f"{out[-1]['sim_cycles']} cycles")
    return {"patterns": out, "failure": failure}


# --------------------------------------------------------------------------------------
# Soak: a long plan through the host driver, golden results computed by the planner
# --------------------------------------------------------------------------------------

def _random_shapes(rng, cfg, n_layers):
    k = int(rng.integers(1, cfg.max_k + 1))
    shapes = []
    for l in range(n_layers):
        hi = cfg.max_m if l == n_layers - 1 else min(cfg.max_m, cfg.max_k)
        m = int(rng.integers(1, hi + 1))
        shapes.append((m, k))
        k = m
    return shapes


def soak_plan(cfg, seed, steps):
    """A seeded soak plan and the golden result of each step.

    Steps: ``load`` (a new random network of 1..layers layers: driver configure, which
    reconfigures the slots with SET_LAYER, and every requantisation table; no planes yet),
    ``planes`` (the next planes of some layers, MSB first: progressive streaming),
    ``reload`` (one layer gets new weight codes: SET_LAYER on its slot, which clears its
    planes and tables, then its tables again), ``run`` (SET_RUN of every layer: random
    per-layer wbits within the planes loaded, abits, and slimmed sizes that chain),
    ``infer`` (a few inputs), ``matvec`` (one layer at a random k within its planes, any
    a), ``status`` and ``bp`` (harness gap / stall rates for the following steps).

    Returns
    -------
    ops : list of JSON-able dicts (the flow's input)
    arrays : dict of numpy arrays (the networks)
    expected : list, per step: None, a list of golden result vectors (``infer``,
        ``matvec``), or the expected STATUS fields per slot of the network
    """
    rng = np.random.default_rng(seed)
    N, A, L = cfg.max_wbits, cfg.max_abits, cfg.layers
    ops, expected, arrays = [], [], {}
    state = {"net": None}

    def new_net(name, shapes):
        from .flows import net_to_arrays
        net = random_network(rng, shapes, N, A)
        arrays.update(net_to_arrays(net, prefix=name))
        return net

    def load():
        n_layers = int(rng.integers(1, L + 1)) if rng.random() < 0.3 else L
        name = f"n{len(ops)}"
        net = new_net(name, _random_shapes(rng, cfg, n_layers))
        state.update(net=net, name=name, loaded=[0] * n_layers,
                     runs=[(N, A, *lay.shape) for lay in net.layers],
                     bases=P.layout(net, cfg))
        ops.append({"op": "load", "net": name})
        expected.append(None)

    def planes():
        net, loaded = state["net"], state["loaded"]
        behind = [l for l in range(len(loaded)) if loaded[l] < N]
        if rng.random() < 0.6:
            layers = behind
        else:
            layers = sorted(rng.choice(behind, size=int(rng.integers(1, len(behind) + 1)),
                                       replace=False).tolist())
        count = 1 if rng.random() < 0.7 else int(rng.integers(1, N + 1))
        todo = []
        for l in layers:
            for p in range(loaded[l], min(N, loaded[l] + count)):
                todo.append([int(l), p])
            loaded[l] = min(N, loaded[l] + count)
        ops.append({"op": "planes", "planes": todo})
        expected.append(None)

    def reload():
        from .flows import arrays_to_net, net_to_arrays
        net = state["net"]
        l = int(rng.integers(0, len(net.layers)))
        name = f"n{len(ops)}"
        fresh = random_network(rng, [net.layers[l].shape], N, A).layers[0]
        layers = list(net.layers)
        layers[l] = arith.IntLayer(codes=fresh.codes, m=net.layers[l].m, b=net.layers[l].b,
                                   shift=net.layers[l].shift)
        net = arith.IntNetwork(layers=layers, n=N, a=A)
        arrays.update(net_to_arrays(net, prefix=name))
        m, k = net.layers[l].shape
        state.update(net=net, name=name)
        state["loaded"][l] = 0
        state["runs"][l] = (N, A, m, k)
        ops.append({"op": "reload", "net": name, "layer": l, "m": m, "k": k,
                    "base": state["bases"][l]})
        expected.append(None)

    def run():
        net, loaded = state["net"], state["loaded"]
        slim = rng.random() < 0.5
        m0, k0 = net.layers[0].shape
        run_k = int(rng.integers(1, k0 + 1)) if slim else k0
        runs = []
        for l, lay in enumerate(net.layers):
            m, _ = lay.shape
            run_m = int(rng.integers(1, m + 1)) if slim and l + 1 < len(net.layers) else m
            if slim and l + 1 == len(net.layers) and rng.random() < 0.5:
                run_m = int(rng.integers(1, m + 1))
            wb = int(rng.integers(1, max(loaded[l], 1) + 1))
            runs.append((wb, int(rng.integers(1, A + 1)), run_m, run_k))
            run_k = run_m
        state["runs"] = runs
        ops.append({"op": "run", "wbits": [r[0] for r in runs], "abits": [r[1] for r in runs],
                    "sizes": [[r[2], r[3]] for r in runs]})
        expected.append(None)

    def infer():
        net, runs = state["net"], state["runs"]
        a0, k0 = runs[0][1], runs[0][3]
        xs = rng.integers(0, 1 << a0, size=(int(rng.integers(1, 4)), k0))
        if rng.random() < 0.1:
            xs[0] = (1 << a0) - 1
        want = net.forward(xs.T, [r[0] for r in runs], [r[1] for r in runs],
                           sizes=[(r[2], r[3]) for r in runs]).T
        ops.append({"op": "infer", "n": len(net.layers), "x": xs.tolist()})
        expected.append([[int(v) for v in row] for row in want])

    def matvec():
        net, loaded, runs = state["net"], state["loaded"], state["runs"]
        cand = [l for l in range(len(loaded)) if loaded[l] > 0]
        l = int(rng.choice(cand))
        k = int(rng.integers(1, loaded[l] + 1))
        a = int(rng.integers(1, A + 1))
        run_m, run_k = runs[l][2], runs[l][3]
        x = rng.integers(0, 1 << a, size=run_k)
        if rng.random() < 0.1:
            x[:] = (1 << a) - 1
        want = arith.dot(net.layers[l].codes[:run_m, :run_k], x, N, k)
        ops.append({"op": "matvec", "layer": l, "k": k, "a": a, "x": x.tolist()})
        expected.append([[int(v) for v in want]])

    def status():
        net = state["net"]
        want = []
        for l, lay in enumerate(net.layers):
            m, k = lay.shape
            want.append([m, k, state["bases"][l], state["loaded"][l], (1 << N) - 1,
                         *state["runs"][l]])
        ops.append({"op": "status"})
        expected.append(want)

    def bp():
        g = 0 if rng.random() < 0.5 else int(rng.integers(32, 200))
        s = 0 if rng.random() < 0.5 else int(rng.integers(32, 240))
        ops.append({"op": "bp", "gap_rate": g, "stall_rate": s})
        expected.append(None)

    load()
    while len(ops) < steps:
        loaded = state["loaded"]
        ready = all(v > 0 for v in loaded)
        behind = any(v < N for v in loaded)
        choices = [(load, 0.03), (reload, 0.03), (planes, (0.6 if not ready else 0.15)
                                                  if behind else 0.0),
                   (run, 0.2 if ready else 0.0), (infer, 0.3 if ready else 0.0),
                   (matvec, 0.2 if any(loaded) else 0.0), (status, 0.05), (bp, 0.03)]
        fns = [f for f, w in choices if w > 0]
        w = np.array([w for _, w in choices if w > 0])
        fn = fns[int(rng.choice(len(fns), p=w / w.sum()))]
        runs = state["runs"]
        if fn is infer and (any(runs[l][0] > loaded[l] for l in range(len(loaded)))
                            or any(runs[l][2] != runs[l + 1][3]
                                   for l in range(len(runs) - 1))):
            # A reload cleared planes below the run precision, or reset its layer's run
            # size so the sizes no longer chain: switch first.
            fn = run
        fn()
    return ops, arrays, expected


async def soak(env, ops, progress_every=200):
    """Execute a :func:`soak_plan` through the host driver; return every result.

    Returns ``{"results", "compute_cycles", "counts", "frames", "failure", "seconds"}``:
    per step None, the list of result vectors (``infer``: one per input; ``matvec``:
    one), or the STATUS fields per slot of the network ([M, K, base, planes, requant mask,
    wbits, abits, run M, run K]); the cycle counts of every compute response; counts per
    step kind; the frames exchanged; the first error (the run stops there) or None.
    """
    drv = env.driver
    tr = env.transport
    net = None
    results, cycles = [], []
    counts = Counter()
    frames0 = getattr(tr, "exchanges", 0)
    t0 = time.monotonic()
    failure = None
    for i, op in enumerate(ops):
        counts[op["op"]] += 1
        try:
            net, res = await _soak_step(env, op, net, cycles)
        except Exception as e:     # reported, not raised: the plan step is the context
            failure = f"step {i} ({op['op']}): {type(e).__name__}: {e}"
            break
        results.append(res)
        if progress_every and (i + 1) % progress_every == 0:
            env.progress(f"soak: {i + 1}/{len(ops)} steps, "
                         f"{getattr(tr, 'exchanges', 0) - frames0} frames, "
                         f"{time.monotonic() - t0:.0f} s")
    return {"results": results, "compute_cycles": cycles, "counts": dict(counts),
            "frames": getattr(tr, "exchanges", 0) - frames0, "failure": failure,
            "seconds": time.monotonic() - t0}


async def _soak_step(env, op, net, cycles):
    """One soak step; returns (the network now loaded, the step's result or None)."""
    from .flows import arrays_to_net
    drv, tr = env.driver, env.transport
    kind = op["op"]
    if kind == "load":
        net = arrays_to_net(env.arrays, op["net"])
        await drv.configure(net)
        await drv.load_requant(net)
    elif kind == "planes":
        for l, p in op["planes"]:
            await drv.load_plane(l, net.layers[l].codes, p)
    elif kind == "reload":
        net = arrays_to_net(env.arrays, op["net"])
        await drv.set_layer(op["layer"], op["m"], op["k"], op["base"])
        await drv.load_requant(net)
    elif kind == "run":
        await drv.set_precision(op["wbits"], op["abits"], [tuple(s) for s in op["sizes"]])
    elif kind == "infer":
        res = []
        for x in op["x"]:
            r = await drv.infer(np.array(x, dtype=np.int64), op["n"])
            res.append([int(v) for v in r.values])
            cycles.append(int(r.cycles))
        return net, res
    elif kind == "matvec":
        r = await drv.matvec(op["layer"], np.array(op["x"], dtype=np.int64), op["k"],
                             op["a"])
        cycles.append(int(r.cycles))
        return net, [[int(v) for v in r.values]]
    elif kind == "status":
        st = await drv.status()
        return net, [[s.m, s.k, s.base, s.planes, s.requant_mask, s.run_wbits, s.run_abits,
                      s.run_m, s.run_k] for s in st.layers[:len(net.layers)]]
    elif kind == "bp":
        tr.gap_rate, tr.stall_rate = op["gap_rate"], op["stall_rate"]
    else:
        raise ValueError(f"unknown soak step {kind!r}")
    return net, None
