"""Soak: a long seeded sequence through the host driver, checked against golden throughout.

``anyprec.sim.robust.soak_plan`` interleaves network loads (the driver reconfigures the
slots with SET_LAYER, moving or parking slots whose memory the new network needs), single
layers reloaded with new codes, progressive plane streaming (MSB first, layers at
different plane counts), precision switches (SET_RUN with random per-layer wbits within
the planes loaded, abits, and slimmed sizes that chain), MATVECs, INFERs, STATUS reads and
changes of the harness's tvalid-gap / tready-stall rates. Every MATVEC must equal
``golden.arith.dot`` and every INFER ``IntNetwork.forward``, computed when the plan is
made; every STATUS must show the planes, tables and run settings the plan expects.

``make test`` runs 1,500 steps on Verilator and 80 on Icarus; ``make test-all`` adds
30,000 steps on Verilator and 2,000 on Icarus.
"""

from collections import Counter

import pytest

from anyprec.hw.config import AnyprecConfig
from anyprec.sim.robust import soak_plan
from anyprec.sim.runner import build, run_job

# The fuzz build with three slots (tests/test_sim_fuzz.py "w32").
CFG = AnyprecConfig(rows=4, cols=4, max_wbits=8, max_abits=8, max_m=16, max_k=16, layers=3)


def run_soak(sim, seed, steps):
    ops, arrays, expected = soak_plan(CFG, seed, steps)
    kinds = Counter(o["op"] for o in ops)
    # The plan exercises what it claims to (a change of soak_plan that made it trivial
    # would fail here).
    for kind in ("load", "reload", "planes", "run", "infer", "matvec", "status", "bp"):
        assert kinds[kind] > 0, f"seed {seed}: no {kind} step in {steps}"
    res, _ = run_job(build(CFG, sim), "anyprec.sim.robust:soak", {"ops": ops},
                     arrays=arrays)
    where = f"seed {seed}, {sim}, {steps} steps"
    assert res["failure"] is None, f"{where}: {res['failure']}"
    assert len(res["results"]) == len(ops), where
    checked = 0
    for i, (op, want, got) in enumerate(zip(ops, expected, res["results"])):
        if want is None:
            assert got is None, f"{where}: step {i} ({op['op']}) returned {got}"
            continue
        assert got == want, (f"{where}: step {i} ({op['op']} {dict(list(op.items())[1:4])}): "
                             f"device {got}, golden {want}")
        checked += 1
    cycles = res["compute_cycles"]
    assert cycles and min(cycles) > 0, where
    print(f"\n{where}: {res['frames']} frames, {checked} results checked, "
          f"{dict(kinds)}, {res['seconds']:.1f} s")
    return res, kinds


@pytest.mark.parametrize("sim,steps,seed", [("verilator", 1500, 31), ("icarus", 80, 32)])
def test_soak(sim, steps, seed):
    run_soak(sim, seed, steps)


@pytest.mark.slow
@pytest.mark.parametrize("sim,steps,seed", [("verilator", 30000, 41), ("icarus", 2000, 42)])
def test_soak_long(sim, steps, seed):
    run_soak(sim, seed, steps)
