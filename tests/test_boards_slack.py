"""boards/slack.py: failing endpoints of a routed ECP5 or iCE40 netlist, grouped by
register.

Hand-made netlists and detailed timing reports stand in for nextpnr's (the real ones
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


def _lc(inputs, outputs, dff):
    return _cell("ICESTORM_LC", inputs, outputs, DFF_ENABLE="1" if dff else "0",
                 CARRY_ENABLE="0")


@pytest.fixture
def routed_ice40(tmp_path):
    # a (flip-flop) -> LUT-only cell -> b's LUT input I1 (late); c -> block RAM WDATA
    # (late); c -> d's CEN (in time); the clock network adds 0.9 ns to every arrival in
    # the detailed report, which nextpnr's critical path (a -> b, 8.0 ns with b's setup)
    # does not count.
    cells = {
        "core.a_SB_DFF_Q_D_SB_LUT4_O_LC": _lc({"I0": 1}, {"O": 2}, True),
        "core.b_SB_LUT4_I1_LC": _lc({"I0": 2, "I3": 9}, {"O": 3}, False),
        "core.b_SB_DFFE_Q_3_D_SB_LUT4_O_LC": _lc({"I1": 3, "CLK": 10}, {"O": 4}, True),
        "core.c_SB_DFF_Q_LC": _lc({"I3": 4}, {"O": 5}, True),
        "core.tab.bank0.0.1_RAM": _cell("ICESTORM_RAM", {"WDATA_0": 5, "WCLK": 10},
                                        {"RDATA_0": 6}),
        "core.d_SB_DFFE_Q_12_LC": _lc({"CEN": 5}, {"O": 7}, True),
        "core.e_SB_DFF_Q_LC": _lc({"I0": 8}, {"O": 9}, True),
    }
    net = {"modules": {"top": {"cells": cells, "netnames": {}}}}
    ep = lambda cell, port, t: {"cell": cell, "port": port, "delay": [1.0, t]}  # noqa: E731
    timings = [
        {"net": "n2", "endpoints": [ep("core.b_SB_LUT4_I1_LC", "I0", 4.0)]},
        {"net": "n9", "endpoints": [ep("core.b_SB_LUT4_I1_LC", "I3", 2.0)]},
        {"net": "n3", "endpoints": [ep("core.b_SB_DFFE_Q_3_D_SB_LUT4_O_LC", "I1", 7.719)]},
        {"net": "n5", "endpoints": [ep("core.tab.bank0.0.1_RAM", "WDATA_0", 7.5),
                                    ep("core.d_SB_DFFE_Q_12_LC", "CEN", 3.0)]},
        {"net": "n4", "endpoints": [ep("core.c_SB_DFF_Q_LC", "I3", 5.0)]},
    ]
    path = [{"type": "clk-to-q", "delay": 1.39, "from": {"cell": "core.a", "port": "O"},
             "to": {"cell": "core.a", "port": "O"}},
            {"type": "routing", "delay": 5.429, "from": {"cell": "core.a", "port": "O"},
             "to": {"cell": "core.b_SB_DFFE_Q_3_D_SB_LUT4_O_LC", "port": "I1"}},
            {"type": "setup", "delay": 1.181,
             "from": {"cell": "core.b_SB_DFFE_Q_3_D_SB_LUT4_O_LC", "port": "I1"},
             "to": {"cell": "core.b_SB_DFFE_Q_3_D_SB_LUT4_O_LC", "port": "I1"}}]
    # a path from a pin has no clock network at its start: it must not set the offset
    pin = [{"type": "routing", "delay": 0.5, "from": {"cell": "rx", "port": "O"},
            "to": {"cell": "core.c_SB_DFF_Q_LC", "port": "I3"}}]
    rep = {"detailed_net_timings": timings,
           "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": path},
                              {"from": "<async>", "to": "posedge clk", "path": pin}]}
    (tmp_path / "routed.json").write_text(json.dumps(net))
    (tmp_path / "report.json").write_text(json.dumps(rep))
    return tmp_path / "routed.json", tmp_path / "report.json"


def test_ice40_registers_setup_and_clock_offset(routed_ice40):
    # b's I1 arrives at 7.719 - 0.9 = 6.819 ns and needs the LUT's delay less 0.05 ns
    # (1.181 ns) more: 8.0 ns, nextpnr's critical path. Late at 126 MHz (7.937 ns).
    r = endpoint_slack(*routed_ice40, 126)
    assert r["clock_offset_ns"] == pytest.approx(0.9)
    # b, c, d and the RAM's write data; not the LUT-only cell, not the clock pins
    assert r["endpoints"] == 4
    assert r["worst_ns"] == pytest.approx(8.0)
    # the RAM's input: 7.5 - 0.9 + 0.1 = 6.7 ns, in time; c's I3: 5.0 - 0.9 + 0.824
    assert r["failing"] == 1
    assert r["groups"] == [{"endpoint": "core.b", "source": "core.a", "count": 1,
                            "worst_ns": 8.0}]
    r = endpoint_slack(*routed_ice40, 150)          # 6.667 ns: the RAM input joins
    assert r["failing"] == 2
    assert r["groups"][1] == {"endpoint": "core.tab.bank0.0.1_RAM", "source": "core.c",
                              "count": 1, "worst_ns": 6.7}
    assert endpoint_slack(*routed_ice40, 125)["failing"] == 0


def test_ice40_group_names():
    assert group_name("core.dut.core.rxf.crc.left_SB_DFFESR_Q_5_D_SB_LUT4_O_LC") == \
        "core.dut.core.rxf.crc.left"
    assert group_name("core.fifo.storage.0.0_RDATA") == "core.fifo.storage.0.0_RDATA"
    assert group_name("$nextpnr_ICESTORM_LC_96") == "(unnamed)"


def test_cli_slack_needs_a_place_and_route_build(capsys):
    code = main(["build", "--board", "arty-a7-35", "--slack"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--slack reads nextpnr's timing" in err and len(err.strip().splitlines()) == 1
