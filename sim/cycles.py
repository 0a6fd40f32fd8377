"""Cycle counts against the ideal k*ceil(K/C)*ceil(M/R), measured in simulation.

Issue 4's performance statements are about cycles, so they are measured on the RTL
(Verilator) and reported, never asserted from wall-clock time:

- a layer M x K at k bits, from the start command to the last result, against the ideal
  ``k*ceil(K/C)*ceil(M/R)``;
- the latency ratio cycles(8 bits) / cycles(k bits) against the ideal 8/k.
"""

import math

import numpy as np

from ..golden import arith
from ..golden.errors import AnyprecError
from ..hw.config import AnyprecConfig
from .runner import build, run_job

__all__ = ["layer_cycles"]


def layer_cycles(shapes, cfg=None, sim="verilator", seed=5):
    """Measured MATVEC cycles for each (M, K) in ``shapes`` at every k (checked vs golden).

    Returns a list of dicts: M, K, ideal per k, cycles per k, overhead and the ratios.
    """
    cfg = cfg or AnyprecConfig()
    rng = np.random.default_rng(seed)
    n = cfg.max_wbits
    arrays, cases = {}, []
    for i, (m, k) in enumerate(shapes):
        if m > cfg.max_m or k > cfg.max_k:
            raise AnyprecError(f"a {m} x {k} layer does not fit {cfg.describe()}")
        arrays[f"w{i}"] = rng.integers(0, 1 << n, (m, k))
        arrays[f"x{i}"] = rng.integers(0, 1 << cfg.max_abits, k)
        for kb in range(1, n + 1):
            cases.append({"w": f"w{i}", "x": f"x{i}", "wbits": kb, "abits": cfg.max_abits})
    sb = build(cfg, sim)
    res, _ = run_job(sb, "anyprec.sim.flows:matvec_cases", {"cases": cases}, arrays=arrays)
    out = []
    for i, (m, k) in enumerate(shapes):
        rows = {}
        for c, r in zip(cases, res["results"]):
            if c["w"] != f"w{i}":
                continue
            want = arith.dot(arrays[c["w"]], arrays[c["x"]], n, c["wbits"])
            if r["y"] != [int(v) for v in want]:
                raise AnyprecError(f"{m}x{k} at k={c['wbits']}: result differs from golden")
            rows[c["wbits"]] = r["cycles"]
        tiles, chunks = math.ceil(m / cfg.rows), math.ceil(k / cfg.cols)
        ideal = {kb: kb * tiles * chunks for kb in rows}
        out.append({
            "m": m, "k": k, "cycles": rows, "ideal": ideal,
            "over_ideal": {kb: round(rows[kb] / ideal[kb], 4) for kb in rows},
            "latency_ratio_8_over_k": {kb: round(rows[n] / rows[kb], 3) for kb in rows},
            "ideal_ratio_8_over_k": {kb: round(n / kb, 3) for kb in rows},
            "overhead_cycles": sorted({rows[kb] - ideal[kb] for kb in rows}),
        })
    return out
