"""AnyprecCore (hw/core.py) against the behavioural model, word for word.

A seeded scenario per configuration builds one long command sequence: the errors of
every status class (framing, opcode, length, range, readiness, order, conflict), a random
network configured and loaded plane by plane (MSB first) with MATVEC and INFER at every
k as soon as k planes are in, an inference at k bits refused with NOT_READY before the
k-th plane and the device working afterwards, mixed per-layer precisions and slimmed run
sizes changing between consecutive inferences, accumulator extremes, M = 1 and K = 1
layers, failed frames that must change nothing, and a random fuzz tail. The
:class:`ModelDevice` answers the same beats; every response of the core must equal the
model's, except the cycle-count word of MATVEC/INFER (the model says 0, the core must
report more than 0 and at least the ideal k*T*J of a MATVEC).

The scenario also asserts its own intent (each step's expected status, per the model),
so a change that silently made the scenario trivial would fail here too.
"""

import numpy as np
import pytest

from anyprec.hw.config import AnyprecConfig
from anyprec.host import protocol as P
from anyprec.host.devmodel import random_network
from anyprec.host.protocol import Opcode, Status

from hwsim import CoreBench, frame_beats, oversize_beats

OK, BAD_CRC, BAD_OPCODE, BAD_LENGTH, TRUNCATED, OVERSIZE, RANGE, NOT_READY, ORDER, \
    CONFLICT = list(Status)

#: name: (config, network layer shapes (M, K), seed)
CONFIGS = {
    # M not a multiple of R, K not a multiple of C (13 x 16, 6 x 13).
    "r4c4n8a8": (AnyprecConfig(rows=4, cols=4, max_wbits=8, max_abits=8, max_m=16,
                               max_k=16, layers=2), [(13, 16), (6, 13)], 41),
    # The maxima (14 x 17), three layers, a final layer of one row.
    "r3c5n8a8": (AnyprecConfig(rows=3, cols=5, max_wbits=8, max_abits=8, max_m=14,
                               max_k=17, layers=3), [(14, 17), (5, 14), (1, 5)], 42),
    # Small precisions; one slot left unconfigured.
    "r2c3n4a3": (AnyprecConfig(rows=2, cols=3, max_wbits=4, max_abits=3, max_m=10,
                               max_k=11, layers=3), [(9, 11), (7, 9)], 43),
    # Two words per plane slice (R*C = 40 bits) and two activations per word (A = 10).
    "r8c5n3a10": (AnyprecConfig(rows=8, cols=5, max_wbits=3, max_abits=10, max_m=12,
                                max_k=16, layers=2), [(12, 16), (5, 12)], 44),
    # The bit-parallel baseline: k = N only.
    "par-r3c4n6a5": (AnyprecConfig(rows=3, cols=4, max_wbits=6, max_abits=5, max_m=13,
                                   max_k=14, layers=2, design="parallel"),
                     [(13, 14), (4, 13)], 45),
}

#: (config name, input gap rate, output stall rate, check the AXI rule on core.o)
RUNS = [
    ("r4c4n8a8", 0.25, 0.4, True),
    ("r3c5n8a8", 0.0, 0.0, False),
    ("r2c3n4a3", 0.3, 0.3, True),
    ("r8c5n3a10", 0.0, 0.2, False),
    ("par-r3c4n6a5", 0.2, 0.3, False),
]


class Scenario:
    """Builds the command sequence into a :class:`CoreBench`, asserting each step's
    intended status against the model as it goes."""

    def __init__(self, cfg, shapes, seed, bench):
        self.cfg, self.shapes, self.seed, self.b = cfg, shapes, seed, bench
        self.rng = np.random.default_rng(seed)
        self.n, self.a, self.L = cfg.max_wbits, cfg.max_abits, cfg.layers
        self.serial = cfg.design == "serial"
        self.net = random_network(self.rng, shapes, self.n, self.a)
        self.bases = P.layout(shapes, cfg)
        self.ok_matvec_k, self.ok_infer_k = set(), set()
        self.cycles_min = []            # (response index, minimum cycle count)

    # --- helpers -------------------------------------------------------------------
    def tag(self):
        return int(self.rng.integers(0, 256))

    def expect(self, label, words, status=None, arg=None):
        st, ar, payload = self.b.frame(label, words)
        where = f"seed {self.seed}: scenario step '{label}'"
        if status is not None:
            assert st == status, f"{where}: model says {st.name} {ar}, intended {status.name}"
        if arg is not None:
            assert ar == arg, f"{where}: model says argument {ar}, intended {arg}"
        return st, payload

    def raw(self, label, beats, status):
        resps = self.b.add(label, beats)
        assert len(resps) == 1, f"seed {self.seed}: '{label}': {len(resps)} responses"
        got = Status(P.decode_frame(resps[0]).payload[0] & 0xFF)
        assert got == status, f"seed {self.seed}: '{label}': model {got.name}"

    def x(self, k, a, kind="random"):
        hi = (1 << a) - 1
        if kind == "max":
            return np.full(k, hi, dtype=np.int64)
        x = self.rng.integers(0, hi + 1, size=k)
        x[self.rng.integers(0, k)] = hi        # the top value at least once
        return x

    def k_choices(self):
        return range(1, self.n + 1) if self.serial else [self.n]

    def matvec(self, layer, k, a, x, status=OK, label=None):
        label = label or f"matvec l{layer} k{k} a{a}"
        st, payload = self.expect(label, P.matvec(layer, k, a, x, self.cfg, tag=self.tag()),
                                  status)
        if st == OK:
            self.ok_matvec_k.add(k)
            # The schedule issues one weight word per cycle: k*T*J words (T*J parallel).
            s = self.b.model.slots[layer]
            words = P.tiles(s.run_m, self.cfg) * P.chunks(s.run_k, self.cfg)
            self.cycles_min.append((len(self.b.expected) - 1,
                                    k * words if self.serial else words))

    def infer(self, n_layers, x, status=OK, arg=None, label=None):
        label = label or f"infer n{n_layers}"
        st, _ = self.expect(label, P.infer(n_layers, x, self.cfg, tag=self.tag()),
                            status, arg)
        if st == OK:
            self.ok_infer_k.update(self.b.model.slots[l].run_wbits for l in range(n_layers))

    def set_run(self, layer, k, a, m, kk, status=OK):
        self.expect(f"set_run l{layer} k{k} a{a} {m}x{kk}",
                    P.set_run(layer, k, a, m, kk, tag=self.tag()), status)

    def load_plane(self, layer, plane, codes, status=OK):
        self.expect(f"load_plane l{layer} p{plane}",
                    P.load_plane(layer, plane, P.pack_plane(codes, self.n, plane, self.cfg),
                                 tag=self.tag()), status)

    def load_requant(self, layer, k, status=OK, shift=None):
        lay = self.net.layers[layer]
        sh = int(lay.shift[k - 1]) if shift is None else shift
        self.expect(f"load_requant l{layer} k{k}",
                    P.load_requant(layer, k, sh, lay.m[k - 1], lay.b[k - 1], tag=self.tag()),
                    status)

    # --- phases --------------------------------------------------------------------
    def fresh_device_errors(self):
        cfg, L, N = self.cfg, self.L, self.n
        self.expect("info", P.info(tag=self.tag()), OK)
        self.expect("status", P.status(tag=self.tag()), OK)
        self.expect("bad opcode 0x7f", P.encode_frame(0x7F, 3, [1, 2]), BAD_OPCODE, 0)
        self.expect("bad opcode 0x00", P.encode_frame(0x00, 4, []), BAD_OPCODE)
        f = P.info(tag=5)
        self.expect("bad crc", f[:-1] + [f[-1] ^ 0x80000000], BAD_CRC)
        sl = P.set_layer(0, 4, 4, 0, tag=6)
        self.raw("truncated 1-word frame", [(sl[0], True)], TRUNCATED)
        self.raw("truncated at w2", frame_beats(sl, last_at=2), TRUNCATED)
        self.raw("oversize info", oversize_beats(P.info(tag=7), 2), OVERSIZE)
        self.expect("info after oversize", P.info(tag=8), OK)
        for op, n in ((Opcode.INFO, 1), (Opcode.STATUS, 2), (Opcode.SET_LAYER, 2),
                      (Opcode.SET_RUN, 3), (Opcode.LOAD_PLANE, 0), (Opcode.LOAD_REQUANT, 0),
                      (Opcode.MATVEC, 0), (Opcode.INFER, 0)):
            self.expect(f"bad length {op.name} L={n}", P.encode_frame(op, 9, [0] * n),
                        BAD_LENGTH, 0)
        # Unconfigured slots: NOT_READY; out-of-range fields first: RANGE.
        self.expect("load_plane unconfigured",
                    P.load_plane(0, 0, [0] * P.plane_payload_words(3, 3, cfg)), NOT_READY, 0)
        self.expect("load_plane plane N", P.load_plane(0, N, [0]), RANGE, 0)
        self.expect("load_plane layer L", P.load_plane(L, 0, [0]), RANGE, L)
        self.expect("load_requant unconfigured", P.load_requant(0, 1, 0, [1], [0]),
                    NOT_READY, 0)
        self.expect("set_run unconfigured", P.set_run(0, N, 1, 1, 1), NOT_READY, 0)
        self.expect("matvec unconfigured", P.matvec(0, N, 1, [0], cfg), NOT_READY, 0)
        self.expect("matvec layer L", P.matvec(L, N, 1, [0], cfg), RANGE, L)
        self.expect("infer unconfigured", P.infer(1, [0], cfg), NOT_READY, 0)
        self.expect("infer n=0", P.infer(0, [0], cfg), RANGE, 0)
        self.expect("infer n=L+1", P.infer(L + 1, [0], cfg), RANGE, 0)
        m, k = cfg.max_m, cfg.max_k
        for label, args in (("layer L", (L, 1, 1, 0)), ("M=0", (0, 0, k, 0)),
                            ("K=0", (0, m, 0, 0)), ("M>max", (0, m + 1, k, 0)),
                            ("K>max", (0, m, k + 1, 0)),
                            ("past depth", (0, m, k, cfg.depth_words
                                            - P.span(m, k, cfg) + 1)),
                            ("huge base", (0, 1, 1, 0xFFFFFFFF)),
                            # in range once the bits above an address are dropped
                            ("base 2^31", (0, 1, 1, 1 << 31))):
            self.expect(f"set_layer {label}", P.set_layer(*args), RANGE, args[0])
        # A maximum-size layer placed at the very end of memory is fine (regions touch
        # the end), then it is reconfigured at its final place below.
        self.expect("set_layer at end", P.set_layer(
            0, m, k, cfg.depth_words - P.span(m, k, cfg)), OK)

    def configure(self):
        cfg = self.cfg
        for l, ((m, k), base) in enumerate(zip(self.shapes, self.bases)):
            self.expect(f"set_layer {l}", P.set_layer(l, m, k, base, tag=self.tag()), OK)
        if len(self.shapes) > 1:
            (m1, k1), b0 = self.shapes[1], self.bases[0]
            self.expect("set_layer overlap", P.set_layer(1, m1, k1, b0 + 1), CONFLICT, 1)
            # Its own region does not count: the same SET_LAYER again is fine.
            self.expect("set_layer again", P.set_layer(1, m1, k1, self.bases[1]), OK)
        self.expect("status configured", P.status(tag=self.tag()), OK)
        # Requantisation tables for every k (also on the parallel design).
        for l in range(len(self.shapes)):
            for k in range(1, self.n + 1):
                self.load_requant(l, k)
        lay = self.net.layers[0]
        m0 = self.shapes[0][0]
        self.expect("load_requant k=0", P.load_requant(0, 0, 0, lay.m[0], lay.b[0]), RANGE, 0)
        self.expect("load_requant k=N+1",
                    P.load_requant(0, self.n + 1, 0, lay.m[0], lay.b[0]), RANGE, 0)
        self.expect("load_requant shift 64", P.load_requant(0, 1, 64, lay.m[0], lay.b[0]),
                    RANGE, 0)
        self.expect("load_requant short", P.load_requant(0, 1, 0, lay.m[0][:m0 - 1],
                                                         lay.b[0][:m0 - 1]), BAD_LENGTH, 0)
        # A table with a bad CRC must not replace the loaded one (checked by the
        # inferences that follow at k = N).
        f = P.load_requant(0, self.n, 3, -lay.m[-1], lay.b[-1] // 2)
        self.expect("load_requant bad crc", f[:-1] + [f[-1] ^ 1], BAD_CRC)
        self.raw("load_requant truncated", frame_beats(f, last_at=len(f) - 2), TRUNCATED)
        self.expect("status after failed load_requant", P.status(tag=self.tag()), OK)

    def progressive(self):
        """Planes MSB first; MATVEC and INFER at k as soon as k planes are loaded."""
        cfg, N = self.cfg, self.n
        layers = range(len(self.shapes))
        codes = [lay.codes for lay in self.net.layers]
        for p in range(N):
            k = p + 1
            if p + 1 < N:
                self.load_plane(0, p + 1, codes[0], ORDER)
            if p > 0:
                self.load_plane(0, p - 1, codes[0], ORDER)
            if self.serial:
                self.matvec(0, k, self.a, self.x(self.shapes[0][1], self.a), NOT_READY)
                for l in layers:
                    self.set_run(l, k, int(self.rng.integers(1, self.a + 1)), *self.shapes[l])
                # Inference at k bits before the k-th plane: refused, layer 0.
                x0 = self.x(self.shapes[0][1], self.b.model.slots[0].run_abits)
                self.infer(len(self.shapes), x0, NOT_READY, 0, label=f"infer k{k} early")
            # A LOAD_PLANE that fails after its data was written (truncated, bad CRC):
            # the plane is not counted and the correct one loads next.
            if p in (0, N - 1):
                junk = P.load_plane(0, p, [0xFFFFFFFF] * P.plane_payload_words(
                    *self.shapes[0], cfg))
                self.raw(f"load_plane p{p} truncated",
                         frame_beats(junk, last_at=len(junk) - 2), TRUNCATED)
                self.expect(f"load_plane p{p} bad crc", junk[:-1] + [junk[-1] ^ 4], BAD_CRC)
                self.expect(f"status after failed load_plane p{p}", P.status(tag=p), OK)
            self.load_plane(0, p, codes[0])
            if self.serial and len(self.shapes) > 1:
                self.infer(len(self.shapes), x0, NOT_READY, 1, label=f"infer k{k} early 2")
            for l in layers[1:]:
                self.load_plane(l, p, codes[l])
            if not self.serial and p < N - 1:
                self.matvec(0, N, self.a, self.x(self.shapes[0][1], self.a), NOT_READY)
                continue
            for l in layers:
                a = int(self.rng.integers(1, self.a + 1))
                self.matvec(l, k if self.serial else N, a, self.x(self.shapes[l][1], a))
            x0 = self.x(self.shapes[0][1], self.b.model.slots[0].run_abits)
            self.infer(len(self.shapes), x0, OK, label=f"infer k{k}")
            if self.serial:
                self.infer(1, x0, OK, label=f"infer k{k} one layer")
        self.expect("load_plane plane N", P.load_plane(0, N, [0]), RANGE, 0)
        self.expect("load_plane all loaded", P.load_plane(0, N - 1, P.pack_plane(
            codes[0], N, N - 1, cfg)), ORDER, 0)

    def mixed(self, rounds):
        """Per-layer precisions and slimmed sizes changing between inferences."""
        nl = len(self.shapes)
        for r in range(rounds):
            ks = [int(self.rng.choice(list(self.k_choices()))) for _ in range(nl)]
            as_ = [int(self.rng.integers(1, self.a + 1)) for _ in range(nl)]
            slim = r % 2 == 1
            run_k = int(self.rng.integers(1, self.shapes[0][1] + 1)) if slim \
                else self.shapes[0][1]
            sizes = []
            for l, (m, k) in enumerate(self.shapes):
                run_m = int(self.rng.integers(1, m + 1)) if slim else m
                sizes.append((run_m, run_k))
                run_k = run_m
            for l in range(nl):
                self.set_run(l, ks[l], as_[l], *sizes[l])
            x = self.x(sizes[0][1], as_[0], "max" if r == 2 else "random")
            self.infer(nl, x, OK, label=f"infer mixed {ks} {as_} {sizes}")
            l = int(self.rng.integers(0, nl))
            a = int(self.rng.integers(1, self.a + 1))
            self.matvec(l, ks[l], a, self.x(sizes[l][1], a), label=f"matvec slim l{l}")
        # Refusals with the run settings in place.
        nl_, s0 = nl, self.b.model.slots[0]
        x = self.x(s0.run_k, s0.run_abits)
        if s0.run_abits < self.a:
            bad = x.copy()
            bad[-1] = 1 << s0.run_abits
            self.infer(nl_, bad, RANGE, 0, label="infer input >= 2^abits")
        self.matvec(0, self.n, 1, np.full(s0.run_k, 2), RANGE, label="matvec x >= 2^a")
        self.expect("matvec a=0", P.matvec(0, self.n, 0, [0] * s0.run_k, self.cfg), RANGE, 0)
        self.expect("matvec a=A+1", P.matvec(0, self.n, self.a + 1, [0] * s0.run_k,
                                             self.cfg), RANGE, 0)
        self.expect("matvec k=0", P.matvec(0, 0, 1, [0] * s0.run_k, self.cfg), RANGE, 0)
        self.expect("matvec bad length", P.matvec(0, self.n, 1, [0] * (
            s0.run_k + self.cfg.elems_per_word), self.cfg), BAD_LENGTH, 0)
        # far past max_k (the length check's bounds saturate there) and one word short
        self.expect("matvec length >> max_k", P.matvec(0, self.n, 1, [0] * (
            s0.run_k + (self.cfg.max_k + 3) * self.cfg.elems_per_word), self.cfg),
            BAD_LENGTH, 0)
        if s0.run_k > self.cfg.elems_per_word:
            self.expect("matvec one word short", P.matvec(0, self.n, 1, [0] * (
                s0.run_k - self.cfg.elems_per_word), self.cfg), BAD_LENGTH, 0)
        if not self.serial:
            self.expect("matvec k<N parallel", P.matvec(0, self.n - 1, 1, [0] * s0.run_k,
                                                        self.cfg), RANGE, 0)
            self.set_run(0, self.n - 1, 1, s0.run_m, s0.run_k, RANGE)
        m0, k0 = self.shapes[0]
        self.set_run(0, self.n, 1, m0 + 1, k0, RANGE)
        self.set_run(0, self.n, 1, m0, 0, RANGE)
        self.set_run(0, self.n, 0, m0, k0, RANGE)
        self.set_run(0, self.n + 1, 1, m0, k0, RANGE)
        self.set_run(self.L, self.n, 1, m0, k0, RANGE)
        if nl > 1:
            # Sizes that do not chain: CONFLICT at layer 0.
            m1, k1 = self.shapes[1]
            self.set_run(0, self.n, self.a, m0, k0)
            self.set_run(1, self.n, self.a, m1, m0 - 1 if m0 > 1 else 1)
            if m0 > 1:
                self.infer(nl, self.x(k0, self.a), CONFLICT, 0, label="infer no chain")
            self.set_run(1, self.n, self.a, m1, k1)
        if nl < self.L:
            # The last configured layer feeds an unconfigured slot: CONFLICT there.
            self.infer(nl + 1, self.x(k0, self.a), CONFLICT, nl - 1,
                       label="infer into unconfigured")
        # Consecutive inferences at different precisions, same input.
        x = self.x(k0, self.a)
        for k in list(self.k_choices())[::-1][:3]:
            for l in range(nl):
                self.set_run(l, k, self.a, *self.shapes[l])
            self.infer(nl, x, OK, label=f"infer again k{k}")

    def extremes(self):
        """All-max codes and activations at max_k; all-zero codes with max activations."""
        cfg, N = self.cfg, self.n
        m0, k0 = self.shapes[0]
        base = self.bases[0]
        for name, code in (("max", (1 << N) - 1), ("zero", 0)):
            codes = np.full((m0, k0), code, dtype=np.int64)
            self.expect(f"set_layer {name}", P.set_layer(0, m0, k0, base), OK)
            for p in range(N):
                self.load_plane(0, p, codes)
            # Reconfiguring cleared the tables: all planes are back, but no inference
            # until the tables are.
            self.infer(len(self.shapes), self.x(k0, self.a), NOT_READY, 0,
                       label="infer without requant table")
            for k in ([1, N] if self.serial else [N]):
                self.matvec(0, k, self.a, self.x(k0, self.a, "max"),
                            label=f"matvec {name} codes k{k}")
            self.matvec(0, N, 1, self.x(k0, 1, "max"), label=f"matvec {name} codes a1")

    def restore(self, layer):
        """Configure and load a network layer again (after a phase reused its slot)."""
        m, k = self.shapes[layer]
        self.expect(f"set_layer {layer} reload", P.set_layer(layer, m, k, self.bases[layer]),
                    OK)
        for p in range(self.n):
            self.load_plane(layer, p, self.net.layers[layer].codes)
        for k in range(1, self.n + 1):
            self.load_requant(layer, k)

    def tiny(self):
        """M = 1 and K = 1 layers, in the last slot, at the end of memory."""
        cfg, N = self.cfg, self.n
        slot = self.L - 1
        for m, k in ((1, 1), (cfg.max_m, 1), (1, cfg.max_k)):
            base = cfg.depth_words - P.span(m, k, cfg)
            self.expect(f"set_layer {m}x{k}", P.set_layer(slot, m, k, base, tag=self.tag()),
                        OK)
            codes = self.rng.integers(0, 1 << N, size=(m, k))
            for p in range(N):
                self.load_plane(slot, p, codes)
            for kk in ([1, N] if self.serial else [N]):
                a = int(self.rng.integers(1, self.a + 1))
                self.matvec(slot, kk, a, self.x(k, a), label=f"matvec {m}x{k} k{kk}")

    def fuzz(self, count):
        """Random commands, plausible and not; only the core/model agreement counts."""
        cfg, rng = self.cfg, self.rng
        for i in range(count):
            op = int(rng.choice([Opcode.INFO, Opcode.STATUS, Opcode.SET_RUN, Opcode.MATVEC,
                                 Opcode.INFER, Opcode.LOAD_REQUANT, Opcode.LOAD_PLANE,
                                 Opcode.SET_LAYER, 0x22]))
            layer = int(rng.integers(0, self.L + 1))
            k = int(rng.integers(0, self.n + 2))
            a = int(rng.integers(0, self.a + 2))
            s = self.b.model.slots[min(layer, self.L - 1)]
            if op == Opcode.SET_RUN:
                words = P.set_run(layer, k, a, int(rng.integers(0, s.m + 2)),
                                  int(rng.integers(0, s.k + 2)))
            elif op == Opcode.MATVEC:
                n = s.run_k + int(rng.choice([0, 0, 0, 1, -1]))
                lane = 32 // cfg.elems_per_word
                words = P.matvec(layer, k, a, rng.integers(0, 1 << min(max(a, 1), lane),
                                                           size=max(n, 1)), cfg)
            elif op == Opcode.INFER:
                s0 = self.b.model.slots[0]
                words = P.infer(int(rng.integers(0, self.L + 2)),
                                rng.integers(0, 1 << max(s0.run_abits, 1),
                                             size=max(s0.run_k, 1)), cfg)
            elif op == Opcode.LOAD_REQUANT:
                mm = max(s.m, 1) + int(rng.choice([0, 0, -1]))
                words = P.load_requant(layer, k, int(rng.integers(0, 66)),
                                       rng.integers(-(1 << 15), 1 << 15, size=max(mm, 1)),
                                       rng.integers(-(1 << 31), 1 << 31, size=max(mm, 1)))
            elif op == Opcode.LOAD_PLANE:
                n = P.plane_payload_words(max(s.m, 1), max(s.k, 1), cfg)
                words = P.load_plane(layer, int(rng.integers(0, self.n + 1)),
                                     [int(v) for v in rng.integers(0, 1 << 32, size=n)])
            elif op == Opcode.SET_LAYER:
                # Only slots outside the network, so the state stays interesting.
                words = P.set_layer(self.L - 1 if rng.random() < 0.5 else self.L,
                                    int(rng.integers(0, cfg.max_m + 2)),
                                    int(rng.integers(0, cfg.max_k + 2)),
                                    int(rng.integers(0, cfg.depth_words)))
            else:
                words = P.encode_frame(op, i & 0xFF, [int(v) for v in rng.integers(
                    0, 1 << 32, size=int(rng.integers(0, 4)))])
            mode = rng.random()
            if mode < 0.08:
                words = words[:-1] + [words[-1] ^ 0x10]
            if mode > 0.95 and len(words) > 2:
                self.b.add(f"fuzz {i} truncated", frame_beats(
                    words, last_at=int(rng.integers(0, len(words) - 1))))
            elif 0.92 < mode <= 0.95:
                self.b.add(f"fuzz {i} oversize", oversize_beats(words, 1))
            else:
                self.b.frame(f"fuzz {i} op {op:#x}", words)


def _build(name, gap, stall):
    cfg, shapes, seed = CONFIGS[name]
    bench = CoreBench(cfg, seed, gap=gap, stall=stall)
    sc = Scenario(cfg, shapes, seed, bench)
    sc.fresh_device_errors()
    sc.configure()
    sc.progressive()
    sc.mixed(rounds=5)
    sc.extremes()
    sc.restore(0)
    sc.tiny()
    if cfg.layers <= len(shapes):
        sc.restore(cfg.layers - 1)
    # The whole network again, at full precision, before the fuzz tail.
    sc.infer(len(shapes), sc.x(shapes[0][1], cfg.max_abits), OK, label="infer restored")
    sc.fuzz(40)
    sc.expect("final status", P.status(tag=0xEE), OK)
    return cfg, bench, sc


@pytest.mark.parametrize("name,gap,stall,check_axi", RUNS)
def test_core_matches_model(name, gap, stall, check_axi):
    cfg, bench, sc = _build(name, gap, stall)
    seed = sc.seed
    # Coverage of the scenario itself (from the model, before simulating).
    statuses = {Status(w[1] & 0xFF) for _, w in bench.expected}
    assert statuses == set(Status), f"seed {seed}: statuses not covered: " \
                                    f"{set(Status) - statuses}"
    assert sc.ok_matvec_k == set(sc.k_choices()), f"seed {seed}: matvec k {sc.ok_matvec_k}"
    assert sc.ok_infer_k == set(sc.k_choices()), f"seed {seed}: infer k {sc.ok_infer_k}"

    results = bench.run(check_axi=check_axi)     # compares every response with the model
    assert len(results) == len(bench.expected)
    for i, minimum in sc.cycles_min:
        label, words = results[i]
        cycles = words[-2]
        assert cycles >= minimum, (f"seed {seed}: '{label}': {cycles} cycles, fewer than "
                                   f"the {minimum} the schedule needs")
    if check_axi:
        assert bench.stats["stalled"] > 0, f"seed {seed}: no output stall happened"


#: Cycle-count cases: (config, M, K); M >= 4R and K >= 4C.
CYCLE_CASES = [
    (AnyprecConfig(rows=4, cols=4, max_wbits=8, max_abits=8, max_m=16, max_k=16, layers=1),
     16, 16),
    (AnyprecConfig(rows=3, cols=5, max_wbits=8, max_abits=8, max_m=13, max_k=21, layers=1),
     13, 21),
    (AnyprecConfig(rows=4, cols=4, max_wbits=8, max_abits=8, max_m=16, max_k=16, layers=1,
                   design="parallel"), 16, 16),
]


@pytest.mark.parametrize("cfg,m,k", CYCLE_CASES,
                         ids=["r4c4-16x16", "r3c5-13x21", "par-r4c4-16x16"])
def test_cycle_count(cfg, m, k):
    """MATVEC cycle counts against the ideal k * ceil(K/C) * ceil(M/R) (one weight word per
    cycle, no bubbles; T * J for the parallel design). Reported, loosely bounded."""
    seed = 500 + m * 100 + k
    rng = np.random.default_rng(seed)
    bench = CoreBench(cfg, seed)
    codes = rng.integers(0, 1 << cfg.max_wbits, size=(m, k))
    assert bench.frame("set_layer", P.set_layer(0, m, k, 0))[0] == OK
    for p in range(cfg.max_wbits):
        bench.frame(f"plane {p}", P.load_plane(0, p, P.pack_plane(codes, cfg.max_wbits, p,
                                                                  cfg)))
    ks = range(1, cfg.max_wbits + 1) if cfg.design == "serial" else [cfg.max_wbits]
    first = len(bench.expected)
    for kk in ks:
        x = rng.integers(0, 1 << cfg.max_abits, size=k)
        assert bench.frame(f"matvec k{kk}", P.matvec(0, kk, cfg.max_abits, x, cfg))[0] == OK
    results = bench.run()
    tj = P.tiles(m, cfg) * P.chunks(k, cfg)
    rows = []
    for kk, (label, words) in zip(ks, results[first:]):
        ideal = (kk if cfg.design == "serial" else 1) * tj
        rows.append((kk, words[-2], ideal))
    table = "\n".join(f"  k={kk}: {c:5d} cycles, ideal {i:5d}, ratio {c / i:.2f}, "
                      f"overhead {c - i:+d}" for kk, c, i in rows)
    print(f"\n{cfg.design} R={cfg.rows} C={cfg.cols}, layer {m}x{k}:\n{table}")
    for kk, cycles, ideal in rows:
        assert ideal <= cycles < 2 * ideal + 64, \
            f"seed {seed}: k={kk}: {cycles} cycles vs ideal {ideal}\n{table}"


@pytest.mark.parametrize("divisor,q_max", [(12, 22), (3, 7), (5, 4), (8, 32)])
def test_ceil_div_reg(divisor, q_max):
    """The two-stage quotient used for T = ceil(M/R), J = ceil(K/C): exact up to
    q_max * divisor two cycles after the value, saturated above; shift for 2^n."""
    from amaranth import Module, Signal
    from amaranth.sim import Simulator
    from anyprec.hw.core import _ceil_div_reg
    m = Module()
    v = Signal(16)
    q = Signal(16)
    m.d.comb += q.eq(_ceil_div_reg(m, v, divisor, q_max, "q"))
    m.d.sync += Signal().eq(1)    # a sync domain even for the pure-shift case
    values = list(range(q_max * divisor + 3)) + [65535]
    got = []

    async def tb(ctx):
        for x in values:
            ctx.set(v, x)
            await ctx.tick()
            await ctx.tick()
            got.append(ctx.get(q))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    want = [-(-x // divisor) if divisor & (divisor - 1) else (x + divisor - 1) // divisor
            for x in values]
    want = [min(w, q_max) if divisor & (divisor - 1) else w for w in want]
    assert got == want, [(x, g, w) for x, g, w in zip(values, got, want) if g != w][:5]
