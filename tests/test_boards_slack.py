"""boards/slack.py: failing endpoints of a routed ECP5 netlist, grouped by register.

A hand-made netlist and detailed timing report stand in for nextpnr's (the real ones
come from a full build, `make test-all`): two register inputs late, one in time, a
combinational cell between, a block RAM input among the endpoints.
"""

import json

import pytest

from anyprec.boards.slack import endpoint_slack, group_name, slack_table, SlackError
from anyprec.host.cli import main


def _cell(type_, inputs, outputs, **params):
    conns = {**{p: [b] for p, b in inputs.items()}, **{p: [b] for p, b in outputs.items()}}
    dirs = {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}}
    return {"type": type_, "connections": conns, "port_directions": dirs,
            "parameters": params}


@pytest.fixture
def routed(tmp_path):
    cells = {
        # a -> LUT -> b (late); c -> RAM data input (late); c -> d (in time)
        "core.a_TRELLIS_FF_Q_3": _cell("TRELLIS_FF", {"DI": 1}, {"Q": 2}),
        "core.b_LUT4_Z": _cell("TRELLIS_COMB", {"A": 2, "B": 9}, {"F": 3}, MODE="LOGIC"),
        "core.b_TRELLIS_FF_Q_0": _cell("TRELLIS_FF", {"DI": 3}, {"Q": 4}),
        "core.c_TRELLIS_FF_Q": _cell("TRELLIS_FF", {"DI": 4}, {"Q": 5}),
        "core.ram.bank0": _cell("DP16KD", {"DIA0": 5}, {"DOA0": 6}),
        "core.d_TRELLIS_FF_Q_12": _cell("TRELLIS_FF", {"DI": 5}, {"Q": 7}),
        "core.e_TRELLIS_FF_Q": _cell("TRELLIS_FF", {"DI": 8}, {"Q": 9}),
    }
    net = {"modules": {"top": {"cells": cells, "netnames": {}}}}
    timings = [
        {"net": "n2", "endpoints": [{"cell": "core.b_LUT4_Z", "port": "A", "delay": [1, 5.0]}]},
        {"net": "n9", "endpoints": [{"cell": "core.b_LUT4_Z", "port": "B", "delay": [1, 1.2]}]},
        {"net": "n3", "endpoints": [{"cell": "core.b_TRELLIS_FF_Q_0", "port": "DI",
                                     "delay": [2, 8.25]}]},
        {"net": "n5", "endpoints": [{"cell": "core.ram.bank0", "port": "DIA0", "delay": [1, 7.0]},
                                    {"cell": "core.d_TRELLIS_FF_Q_12", "port": "DI",
                                     "delay": [1, 2.0]}]},
        {"net": "n4", "endpoints": [{"cell": "core.c_TRELLIS_FF_Q", "port": "DI",
                                     "delay": [1, 6.5]}]},
    ]
    (tmp_path / "routed.json").write_text(json.dumps(net))
    (tmp_path / "report.json").write_text(json.dumps({"detailed_net_timings": timings}))
    return tmp_path / "routed.json", tmp_path / "report.json"


def test_failing_endpoints_grouped_by_register(routed):
    r = endpoint_slack(*routed, 150)
    assert r["period_ns"] == pytest.approx(6.667)
    assert r["endpoints"] == 4              # b, c, d and the RAM input; not the LUT's pins
    assert r["failing"] == 2 and r["worst_ns"] == 8.25
    # worst first among equal counts; b's path traced back through the LUT's later input
    assert r["groups"] == [
        {"endpoint": "core.b", "source": "core.a", "count": 1, "worst_ns": 8.25},
        {"endpoint": "core.ram.bank0", "source": "core.c", "count": 1, "worst_ns": 7.0},
    ]
    table = slack_table(r)
    assert "2 of 4 register inputs arrive after 6.667 ns (latest 8.25 ns)" in table
    assert "| 1 | 8.25 | core.b | core.a |" in table


def test_a_slower_clock_clears_them(routed):
    r = endpoint_slack(*routed, 100)
    assert r["failing"] == 0 and r["groups"] == []


def test_setup_time_counts_at_lsr(tmp_path):
    # A synchronous reset (LSR) needs 0.424 ns before the edge in nextpnr's ECP5 model:
    # an arrival of 6.4 ns there misses 6.667 ns; the same arrival at DI does not.
    cells = {"core.a_TRELLIS_FF_Q": _cell("TRELLIS_FF", {"DI": 1}, {"Q": 2}),
             "core.r_TRELLIS_FF_Q": _cell("TRELLIS_FF", {"LSR": 2}, {"Q": 3}),
             "core.s_TRELLIS_FF_Q": _cell("TRELLIS_FF", {"DI": 2}, {"Q": 4})}
    (tmp_path / "n.json").write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    (tmp_path / "r.json").write_text(json.dumps({"detailed_net_timings": [
        {"net": "n2", "endpoints": [
            {"cell": "core.r_TRELLIS_FF_Q", "port": "LSR", "delay": [1, 6.4]},
            {"cell": "core.s_TRELLIS_FF_Q", "port": "DI", "delay": [1, 6.4]}]}]}))
    r = endpoint_slack(tmp_path / "n.json", tmp_path / "r.json", 150)
    assert r["failing"] == 1 and r["worst_ns"] == pytest.approx(6.824)
    assert r["groups"] == [{"endpoint": "core.r", "source": "core.a", "count": 1,
                            "worst_ns": 6.824}]


def test_group_names():
    assert group_name("core.fifo_d_TRELLIS_FF_Q_12") == "core.fifo_d"
    assert group_name("core.tab.bank0_36.ram") == "core.tab.bank0_36.ram"
    assert group_name("core.x$CCU2_COMB1") == "core.x"
    assert group_name("core.st_word_2_3") == "core.st_word"


def test_unreadable_inputs_are_one_clear_error(routed, tmp_path):
    net, rep = routed
    with pytest.raises(SlackError, match="cannot read the routed netlist"):
        endpoint_slack(tmp_path / "missing.json", rep, 150)
    (tmp_path / "plain.json").write_text(json.dumps({"critical_paths": []}))
    with pytest.raises(SlackError, match="--detailed-timing-report"):
        endpoint_slack(net, tmp_path / "plain.json", 150)
    with pytest.raises(SlackError, match="no module 'top'"):
        endpoint_slack(tmp_path / "plain.json", rep, 150)


def test_cli_slack_is_ecp5_only(capsys):
    code = main(["build", "--board", "icebreaker", "--slack"])
    err = capsys.readouterr().err
    assert code == 2
    assert "available for the ECP5 boards only" in err and len(err.strip().splitlines()) == 1
