"""Constrained-random MATVEC on the generated Verilog, Icarus and Verilator, vs golden.

Shapes include M and K that are not multiples of R and C, M = 1, K = 1 and the maxima;
every weight precision k in 1..N; several activation precisions; random data and the
extremes (all-zero and all-max codes and activations). One simulation job per
(simulator, configuration) runs every case through the host driver.
"""

import numpy as np
import pytest

from anyprec.golden import arith
from anyprec.hw.config import AnyprecConfig
from anyprec.sim.runner import build, run_job

CONFIGS = {
    "default": AnyprecConfig(),
    # Odd sizes: R*C not a power of two nor a multiple of 32, an 8-bit stream, N=4, A=3.
    "odd": AnyprecConfig(rows=3, cols=5, max_wbits=4, max_abits=3, max_m=20, max_k=17,
                         layers=2, stream_width=8),
    # The bit-parallel int-N baseline (issue 7): full N-bit codes per cycle, k = N only.
    "parallel": AnyprecConfig(rows=4, cols=4, max_m=24, max_k=24, layers=2,
                              design="parallel"),
    # Four drain lanes (results leave the array four rows per cycle, into four result
    # FIFOs); max_m not a multiple of four, so the last group is partial.
    "drain": AnyprecConfig(rows=8, cols=4, max_m=38, max_k=21, layers=2, drain=4),
}


def make_cases(cfg, seed):
    rng = np.random.default_rng(seed)
    n, a_max = cfg.max_wbits, cfg.max_abits
    R, C = cfg.rows, cfg.cols
    shapes = [(1, 1), (1, cfg.max_k), (cfg.max_m, 1), (cfg.max_m, cfg.max_k),
              (R + 1, C - 1 if C > 1 else 1), (2 * R - 1, 3 * C + 2),
              (int(rng.integers(1, cfg.max_m + 1)), int(rng.integers(1, cfg.max_k + 1)))]
    a_choices = sorted({1, max(1, a_max // 2), a_max})
    arrays, cases = {}, []
    for s, (m, k) in enumerate(shapes):
        for kind in ("random", "max", "zero"):
            if kind == "random":
                w = rng.integers(0, 1 << n, (m, k))
            elif kind == "max":
                w = np.full((m, k), (1 << n) - 1)
            else:
                w = np.zeros((m, k), dtype=np.int64)
            wname = f"w{s}{kind}"
            arrays[wname] = w
            # Every k on the random weights of every shape, a few k on the extremes.
            ks = range(1, n + 1) if kind == "random" else (1, n)
            if cfg.design == "parallel":
                ks = (n,)
            for kb in ks:
                a = a_choices[(kb + s) % len(a_choices)]
                xkind = ("random", "max", "zero")[(kb + s) % 3] if kind == "random" else "max"
                if xkind == "random":
                    x = rng.integers(0, 1 << a, k)
                elif xkind == "max":
                    x = np.full(k, (1 << a) - 1)
                else:
                    x = np.zeros(k, dtype=np.int64)
                xname = f"x{len(cases)}"
                arrays[xname] = x
                cases.append({"w": wname, "x": xname, "wbits": kb, "abits": a})
    return arrays, cases


def _check(cfg, sim, seed, label, target="generic"):
    arrays, cases = make_cases(cfg, seed)
    sb = build(cfg, sim, target=target)
    res, _ = run_job(sb, "anyprec.sim.flows:matvec_cases", {"cases": cases}, arrays=arrays)
    assert len(res["results"]) == len(cases)
    bad = []
    for c, r in zip(cases, res["results"]):
        want = arith.dot(arrays[c["w"]], arrays[c["x"]], cfg.max_wbits, c["wbits"])
        if r["y"] != [int(v) for v in want]:
            bad.append((c, r["y"][:4], want[:4].tolist()))
        assert r["cycles"] > 0
    assert not bad, f"seed {seed}, {sim}, {label}: {len(bad)}/{len(cases)} mismatches, first {bad[0]}"
    print(f"{sim} {label}: {len(cases)} matvecs bit-exact")


# Two pairs run in ``make test-all`` only (the suite's 15-minute budget): "drain" on
# Verilator (drain lanes run on both simulators in test_sim_network.py, and the drain
# matvecs on Icarus here) and "odd" on Verilator (the same configuration runs there in
# test_matvec_random_ecp5_cells below, and the generic form on Icarus here).
_SLOW_PAIRS = {("verilator", "drain"), ("verilator", "odd")}


@pytest.mark.parametrize("sim,name", [
    pytest.param(sim, name, marks=pytest.mark.slow) if (sim, name) in _SLOW_PAIRS
    else (sim, name)
    for name in sorted(CONFIGS) for sim in ("verilator", "icarus")])
def test_matvec_random(sim, name):
    _check(CONFIGS[name], sim, 4242 + len(name), name)


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
@pytest.mark.parametrize("name", [pytest.param("default", marks=pytest.mark.slow), "odd"])
def test_matvec_random_ecp5_cells(sim, name):
    """The Verilog of an ECP5 build (the MAC array's first adder level in CCU2C carry
    cells, hw/lane.py ``and_add_pair``) on yosys' models of those cells: bit-exact too.
    "odd" has C = 5 (one cell left unpaired) and A = 3; the 8x8 default runs in
    ``make test-all`` (the fast suite's time budget)."""
    _check(CONFIGS[name], sim, 5151 + len(name), f"{name} (ecp5 target)", target="ecp5")
