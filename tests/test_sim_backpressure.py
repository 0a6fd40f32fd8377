"""Back-pressure on both AXI4-Stream ports: nothing lost, nothing duplicated, same results.

One list of request frames (INFO, a network's SET_LAYERs, requantisation tables and
planes, then SET_RUNs, MATVECs and INFERs at several precisions and slimmed sizes, and a
final STATUS) is replayed from reset under several patterns
(``anyprec.sim.robust.exchange_frames``):

* the harness LFSR (FastTransport ``gap_rate`` / ``stall_rate``): random ``s_axis_tvalid``
  gaps, random ``m_axis_tready`` stalls, both;
* cocotbext-axi pause generators (AxiTransport) with long random stretches: tvalid gaps of
  up to hundreds of cycles, ``m_axis_tready`` held low for 100..600 cycles at a time, both,
  with every frame queued back to back before any response is read.

Every pattern must return exactly one response per request, in order, with the right
opcode and tag echo and nothing left over; every response must equal the unstalled
reference word for word (the cycle-count word included: it does not depend on how fast
the host sends or drains, docs/protocol.md section 5); MATVEC and INFER results must equal
golden (``golden.arith.dot`` and ``IntNetwork.forward``).
"""

import numpy as np
import pytest

from anyprec.golden import arith
from anyprec.hw.config import AnyprecConfig
from anyprec.host import protocol as P
from anyprec.host.devmodel import random_network
from anyprec.host.protocol import Opcode, Status
from anyprec.sim.runner import build, run_job

# The fuzz builds (tests/test_sim_fuzz.py): built once for both files.
CONFIGS = {
    "w8": AnyprecConfig(rows=4, cols=4, max_wbits=8, max_abits=8, max_m=16, max_k=16,
                        layers=2, stream_width=8),
    "w32": AnyprecConfig(rows=4, cols=4, max_wbits=8, max_abits=8, max_m=16, max_k=16,
                         layers=3),
}

GAPS = {"run": (1, 8), "pause": (1, 40), "long_every": 6, "long_pause": (150, 400)}
STALLS = {"run": (1, 24), "pause": (100, 600)}

PATTERNS = {
    "fast-ref": {"transport": "fast"},
    "fast-gaps": {"transport": "fast", "gap_rate": 180},
    "fast-stalls": {"transport": "fast", "stall_rate": 240},
    "fast-both": {"transport": "fast", "gap_rate": 128, "stall_rate": 220},
    "axi-ref": {"transport": "axi", "queued": True},
    "axi-gaps": {"transport": "axi", "source": GAPS, "queued": True},
    "axi-stalls": {"transport": "axi", "sink": STALLS, "queued": True},
    "axi-both": {"transport": "axi", "source": GAPS, "sink": STALLS, "queued": True},
    "axi-stalls-1by1": {"transport": "axi", "sink": STALLS},
}


def make_plan(cfg, seed):
    """Request frames and, per frame, the golden result (None when there is none)."""
    rng = np.random.default_rng(seed)
    N, A, L = cfg.max_wbits, cfg.max_abits, cfg.layers
    shapes = [(int(rng.integers(cfg.max_m // 2, cfg.max_m + 1)), cfg.max_k)]
    while len(shapes) < min(L, 2):
        shapes.append((int(rng.integers(1, cfg.max_m + 1)), shapes[-1][0]))
    net = random_network(rng, shapes, N, A)
    frames, golden = [], []
    tag = iter(range(1 << 30))

    def add(words, want=None):
        frames.append(words)
        golden.append(want)

    add(P.info(tag=next(tag) & 0xFF))
    for l, ((m, k), base) in enumerate(zip(shapes, P.layout(shapes, cfg))):
        add(P.set_layer(l, m, k, base, tag=next(tag) & 0xFF))
    for l, lay in enumerate(net.layers):
        for kk in range(1, N + 1):
            add(P.load_requant(l, kk, int(lay.shift[kk - 1]), lay.m[kk - 1], lay.b[kk - 1],
                               tag=next(tag) & 0xFF))
    for p in range(N):
        for l, lay in enumerate(net.layers):
            add(P.load_plane(l, p, P.pack_plane(lay.codes, N, p, cfg), tag=next(tag) & 0xFF))
    settings = [([N] * len(shapes), [A] * len(shapes), None),
                ([int(rng.integers(1, N + 1)) for _ in shapes],
                 [int(rng.integers(1, A + 1)) for _ in shapes], None)]
    m0, k0 = shapes[0]
    run_k = int(rng.integers(1, k0 + 1))
    sizes = [(int(rng.integers(1, m0 + 1)), run_k)]
    for m, _ in shapes[1:]:
        sizes.append((int(rng.integers(1, m + 1)), sizes[-1][0]))
    settings.append(([2] * len(shapes), [5] * len(shapes), sizes))
    for wbits, abits, sz in settings:
        run = sz or [lay.shape for lay in net.layers]
        for l in range(len(shapes)):
            add(P.set_run(l, wbits[l], abits[l], *run[l], tag=next(tag) & 0xFF))
        for _ in range(2):
            x = rng.integers(0, 1 << abits[0], size=run[0][1])
            want = net.forward(x, wbits, abits, sizes=run)
            add(P.infer(len(shapes), x, cfg, tag=next(tag) & 0xFF), want)
        for l in range(len(shapes)):
            k, a = int(rng.integers(1, N + 1)), int(rng.integers(1, A + 1))
            x = rng.integers(0, 1 << a, size=run[l][1])
            want = arith.dot(net.layers[l].codes[:run[l][0], :run[l][1]], x, N, k)
            add(P.matvec(l, k, a, x, cfg, tag=next(tag) & 0xFF), want)
    add(P.status(tag=next(tag) & 0xFF))
    return frames, golden


def check(res, frames, golden, names, where, agents_exact=False):
    """The device's side of every pattern: what crossed the ports (for axi patterns, as a
    monitor of the flow saw it at the falling clock edge; the agents' own records are
    checked by test_axi_agents_record_the_bus)."""
    assert res["failure"] is None, f"{where}: {res['failure']}"
    pats = {p["name"]: p for p in res["patterns"]}
    assert list(pats) == names, where
    for name, pat in pats.items():
        if "bus_responses" in pat:
            assert pat["bus_requests"] == frames, \
                f"{where}, {name}: the requests on s_axis differ from the frames sent"
            if agents_exact:
                assert pat["responses"] == pat["bus_responses"], \
                    f"{where}, {name}: the AxiStreamSink recorded other frames than m_axis"
            pat["responses"] = pat["bus_responses"]
        resp = pat["responses"]
        assert len(resp) == len(frames), f"{where}, {name}: {len(resp)} responses"
        assert pat["extra_frames"] == 0, f"{where}, {name}: {pat['extra_frames']} extra"
        for i, (req, words) in enumerate(zip(frames, resp)):
            f = P.decode_frame(words)
            op, tag, _ = P.split_header(req[0])
            status, _ = P.check_response(f, op, tag)
            assert status == Status.OK, f"{where}, {name}: frame {i} {status.name}"
            if golden[i] is not None:
                r = P.parse_matvec(f) if op == Opcode.MATVEC else P.parse_infer(f)
                assert r.values.tolist() == [int(v) for v in golden[i]], \
                    f"{where}, {name}: frame {i} ({Opcode(op).name}) differs from golden"
                assert r.cycles > 0
    for kind in ("fast", "axi"):
        ref = f"{kind}-ref"
        if ref not in pats:
            continue
        base = pats[ref]
        for name, pat in pats.items():
            if not name.startswith(kind) or name == ref:
                continue
            for i, (a, b) in enumerate(zip(base["responses"], pat["responses"])):
                assert a == b, (f"{where}: frame {i}: {name} answered {a}, {ref} {b} "
                                "(cycle counts must not depend on back-pressure)")
            # The pattern really held the ports: it took clearly longer.
            assert pat["sim_cycles"] > 1.3 * base["sim_cycles"], \
                f"{where}: {name} took {pat['sim_cycles']} cycles, {ref} " \
                f"{base['sim_cycles']}: no back-pressure happened"
    if "fast-ref" in pats and "axi-ref" in pats:
        assert pats["fast-ref"]["responses"] == pats["axi-ref"]["responses"], where


# Icarus is about 30x slower per cycle here: the 32-bit stream and fewer patterns.
_ICARUS_FAST = ["fast-ref", "fast-gaps", "fast-stalls", "axi-ref", "axi-gaps", "axi-stalls"]
RUNS = [
    # Verilator: the patterns the Icarus run leaves out, with both references (the
    # suite's 15-minute budget; every pattern runs on Verilator in SLOW_RUNS).
    ("verilator", "w8", [p for p in PATTERNS if p not in _ICARUS_FAST or p.endswith("-ref")],
     11),
    ("icarus", "w32", _ICARUS_FAST, 13),
]
SLOW_RUNS = [
    ("verilator", "w8", list(PATTERNS), 15),
    ("verilator", "w32", list(PATTERNS), 12),
    ("icarus", "w8", list(PATTERNS), 14),
]


def run_patterns(sim, name, patterns, seed):
    cfg = CONFIGS[name]
    frames, golden = make_plan(cfg, seed)
    pats = [dict(PATTERNS[p], name=p, seed=seed * 100 + i) for i, p in enumerate(patterns)]
    # AXI-agent patterns need the testbench's own clock (sim/runner.py, ext_clock).
    ext = any(PATTERNS[p].get("transport") == "axi" or p.startswith("axi") for p in patterns)
    res, _ = run_job(build(cfg, sim), "anyprec.sim.robust:exchange_frames",
                     {"frames": frames, "patterns": pats}, ext_clock=ext)
    # The agents' records must equal the bus on both simulators.
    check(res, frames, golden, patterns, f"seed {seed}, {sim}, {name}", agents_exact=True)
    cyc = {p["name"]: p["sim_cycles"] for p in res["patterns"]}
    print(f"\n{sim} {name}: {len(frames)} frames per pattern; cycles per pattern {cyc}")


@pytest.mark.parametrize("sim,name,patterns,seed", RUNS)
def test_backpressure(sim, name, patterns, seed):
    run_patterns(sim, name, patterns, seed)


@pytest.mark.slow
@pytest.mark.parametrize("sim,name,patterns,seed", SLOW_RUNS)
def test_backpressure_long(sim, name, patterns, seed):
    run_patterns(sim, name, patterns, seed)


#: cocotbext-axi agents sample the port in their RisingEdge(clk) callback and expect the
#: values from before the edge. With the clock generated inside the simulation (the fast
#: path), Verilator runs those callbacks after the edge's register updates, so AXI-agent
#: jobs drive the clock from the testbench instead (run_job(ext_clock=True)). This test
#: keeps that honest: the sink's frames must be the frames that crossed the bus.
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_axi_agents_record_the_bus(sim):
    """The AxiStreamSink's frames are the frames that crossed m_axis (under stalls)."""
    cfg, seed = CONFIGS["w8"], 15
    frames = [P.info(tag=t) for t in range(4)] + [P.status(tag=9)]
    pats = [dict(PATTERNS[p], name=p, seed=seed) for p in ("axi-ref", "axi-stalls")]
    res, _ = run_job(build(cfg, sim), "anyprec.sim.robust:exchange_frames",
                     {"frames": frames, "patterns": pats}, ext_clock=True)
    assert res["failure"] is None, f"seed {seed}, {sim}: {res['failure']}"
    for pat in res["patterns"]:
        assert len(pat["bus_responses"]) == len(frames), f"seed {seed}, {sim}: {pat['name']}"
        bad = [i for i, (a, b) in enumerate(zip(pat["responses"], pat["bus_responses"]))
               if a != b]
        assert not bad, (f"seed {seed}, {sim}, {pat['name']}: the sink recorded frames "
                         f"{bad} differently from the bus, e.g. "
                         f"{[hex(w) for w in pat['responses'][bad[0]]]} for "
                         f"{[hex(w) for w in pat['bus_responses'][bad[0]]]}")
