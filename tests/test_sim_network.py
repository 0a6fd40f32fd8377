"""The shipped digits model on the simulated RTL: every logit equals golden.

Verilator runs the whole test split at every uniform weight precision 1..8 plus a
per-layer mixed setting (8-2-8) and one with mixed activation precisions. Icarus, about
30x slower here, runs the first images in `make test` and the whole split in
`make test-all`.
"""

import pytest

from anyprec.sim.verify import verify, stream

MIXED = ["8-2-8", "4-8-2/8-4-8"]


def _check(report, samples):
    assert report["results"], "no results"
    for r in report["results"]:
        assert r["samples"] == samples
        assert r["mismatches"] == 0, f"{report['simulator']}: {r}"
        assert r["hw_accuracy"] == r["golden_accuracy"]
        assert r["cycles_per_inference"] > 0
    uniform = [r for r in report["results"] if isinstance(r["wbits"], int)]
    # Cycles scale with the weight precision: exactly linear in k for this schedule.
    cyc = {r["wbits"]: r["cycles_per_inference"] for r in uniform}
    if 1 in cyc and 2 in cyc:
        step = cyc[2] - cyc[1]
        assert step > 0
        for k, c in cyc.items():
            assert c == cyc[1] + (k - 1) * step, f"cycles not linear in k: {cyc}"


def test_network_verilator_full_split():
    report = verify(bits=range(1, 9), mixed=MIXED, sim="verilator")
    _check(report, 540)
    acc = {r["wbits"]: r["hw_accuracy"] for r in report["results"] if isinstance(r["wbits"], int)}
    print("verilator hw accuracy by k:", acc)


def test_network_icarus_subset():
    report = verify(bits=range(1, 9), mixed=MIXED, samples=12, sim="icarus")
    _check(report, 12)


@pytest.mark.slow
def test_network_icarus_full_split():
    report = verify(bits=range(1, 9), mixed=MIXED, sim="icarus")
    _check(report, 540)


def test_network_axi_transport_both_sims():
    # The standard cocotbext-axi agents, on both simulators, through the same driver.
    for sim in ("verilator", "icarus"):
        report = verify(bits=[1, 8], mixed=["8-2-8"], samples=8, sim=sim, transport="axi")
        _check(report, 8)


@pytest.mark.parametrize("sim,samples", [("verilator", 120), ("icarus", 12)])
def test_progressive_streaming(sim, samples):
    r = stream(samples=samples, sim=sim)
    assert r["refused_before_first_plane"], f"inference before any plane was not refused: {r}"
    assert "NOT_READY" in r["refusal"]
    assert [s["planes"] for s in r["steps"]] == list(range(1, 9))
    for s in r["steps"]:
        assert s["mismatches"] == 0, s
        assert s["hw_accuracy"] == s["golden_accuracy"]
    accs = [s["hw_accuracy"] for s in r["steps"]]
    # Accuracy rises from the first plane to the full model (not necessarily monotonic).
    assert max(accs[1:]) >= accs[0]
    cyc = [s["cycles_per_inference"] for s in r["steps"]]
    assert cyc == sorted(cyc) and cyc[0] < cyc[-1]


def test_network_drain_lanes():
    # Four drain lanes: hidden activations reach the activation writer four per cycle and
    # the 10 logits leave in groups of 4, 4, 2; every precision, both simulators.
    from anyprec.hw.config import AnyprecConfig
    cfg = AnyprecConfig(rows=16, cols=8, drain=4)
    report = verify(bits=range(1, 9), mixed=MIXED, samples=16, cfg=cfg, sim="verilator")
    _check(report, 16)
    small = verify(bits=[1, 8], samples=4, cfg=cfg, sim="icarus")
    _check(small, 4)


def test_network_ice40_target_both_sims():
    # What an iCEBreaker build carries (hw.top target "ice40": the seven-stage requantiser,
    # bit-serial CRCs, no register slices, single-bank memories), bit-exact too: the board's
    # exact configuration (one layer slot) with the shipped one-layer classifier. Hidden
    # layers in this form (the requantiser's activation path) run through the UART pins
    # in tests/test_sim_uart.py.
    from anyprec.boards.registry import BOARDS
    from anyprec.golden.export import DEFAULT_LINEAR_MODEL
    board = BOARDS["icebreaker"].default
    report = verify(DEFAULT_LINEAR_MODEL, bits=range(1, 9), samples=24, cfg=board,
                    sim="verilator", target="ice40")
    assert report["target"] == "ice40" and report["config"]["layers"] == 1
    _check(report, 24)
    _check(verify(DEFAULT_LINEAR_MODEL, bits=[1, 8], samples=3, cfg=board, sim="icarus",
                  target="ice40"), 3)


def test_network_ecp5_target_both_sims():
    # What an ECP5 build carries (hw.top target "ecp5": CCU2C carry cells in the array,
    # and the weight, table and staging memories as DP16KD block RAMs with their output
    # registers, on the cell models), through hidden layers: the LOAD_REQUANT copy out of
    # the staging RAM and the requantised activations, bit-exact at several precisions.
    report = verify(bits=[1, 3, 8], mixed=["8-2-8"], samples=16, sim="verilator",
                    target="ecp5")
    assert report["target"] == "ecp5"
    _check(report, 16)
    _check(verify(bits=[2], samples=2, sim="icarus", target="ecp5"), 2)


def test_network_parallel_baseline_at_8_bits():
    # The bit-parallel baseline runs the same protocol and model, at N = 8 bits only.
    from anyprec.hw.config import AnyprecConfig
    cfg = AnyprecConfig(design="parallel")
    report = verify(bits=[8], samples=30, cfg=cfg, sim="verilator")
    _check(report, 30)
    small = verify(bits=[8], samples=4, cfg=cfg, sim="icarus")
    _check(small, 4)
    from anyprec.golden.errors import PrecisionError
    with pytest.raises(PrecisionError, match="8-bit weights only"):
        verify(bits=[4], samples=2, cfg=cfg, sim="icarus")
