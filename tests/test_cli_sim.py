"""The simulation commands from the command line: JSON schemas and one-line errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anyprec.golden import arith

CLI = [sys.executable, "-m", "anyprec.host.cli"]


def run(*args, **kw):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, **kw)


def _matvec_files(tmp_path, seed, shape, x_top):
    """Random 8-bit weight codes and activations below x_top, saved as W.npy and x.npy:
    (w, x, the matvec options naming the files)."""
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 256, shape).astype(np.uint8)
    x = rng.integers(0, x_top, shape[1]).astype(np.int32)
    np.save(tmp_path / "W.npy", w)
    np.save(tmp_path / "x.npy", x)
    return w, x, ["--weights", str(tmp_path / "W.npy"), "--x", str(tmp_path / "x.npy")]


def test_verify_json_schema(tmp_path):
    # (a plot asked for by name is written with --json too; it was dropped in silence)
    png = tmp_path / "v.png"
    r = run("verify", "--bits", "1,8", "--mixed", "8-2-8", "--samples", "10", "--json",
            "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 1000
    rep = json.loads(r.stdout)
    assert set(rep) >= {"config", "simulator", "results", "tools", "model"}
    assert rep["simulator"] == "verilator"
    assert [e["wbits"] for e in rep["results"]] == [1, 8, [8, 2, 8]]
    for e in rep["results"]:
        assert set(e) >= {"wbits", "abits", "samples", "hw_accuracy", "golden_accuracy",
                          "mismatches", "cycles_per_inference"}
        assert e["samples"] == 10 and e["mismatches"] == 0
        assert 0.0 <= e["hw_accuracy"] <= 1.0
    # The README's `make demo` table quotes the same build's cycles per inference (they
    # do not depend on the images): it must still be what the hardware takes.
    readme = {}
    for line in (Path(__file__).parents[1] / "README.md").read_text().splitlines():
        mt = re.fullmatch(r"\s*(\d|\d-\d-\d)\s+8\s+[\d.]+\s+[\d.]+\s+0\s+(\d+)", line)
        if mt:
            readme[mt[1]] = int(mt[2])
    assert len(readme) == 9, readme
    for e in rep["results"]:
        key = "-".join(map(str, e["wbits"])) if isinstance(e["wbits"], list) else str(e["wbits"])
        assert e["cycles_per_inference"] == readme[key], (key, e["cycles_per_inference"])


def test_verify_board_simulates_that_boards_build(tmp_path):
    # --board: the board's default configuration in its family's form, and on a one-slot
    # device the shipped one-layer classifier (as `anyprec run` picks on the board).
    from anyprec.boards.registry import BOARDS
    r = run("verify", "--board", "icebreaker", "--bits", "1,8", "--samples", "3", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["board"] == "icebreaker" and rep["target"] == "ice40"
    assert rep["config"] == BOARDS["icebreaker"].default.to_dict()
    assert rep["model"]["path"].endswith("digits_linear.npz")
    assert [e["mismatches"] for e in rep["results"]] == [0, 0]
    # stream and matvec take --board too (the same simulation model).
    r = run("stream", "--board", "icebreaker", "--samples", "2", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["board"] == "icebreaker" and rep["target"] == "ice40"
    assert rep["model"]["path"].endswith("digits_linear.npz")
    assert [s["planes"] for s in rep["steps"]] == list(range(1, 9))
    assert rep["refused_before_first_plane"] and not any(s["mismatches"] for s in rep["steps"])
    w, x, files = _matvec_files(tmp_path, 3, (5, 7), 256)
    r = run("matvec", *files, "--wbits", "3", "--board", "icebreaker", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["board"] == "icebreaker" and out["target"] == "ice40"
    assert out["y"] == arith.dot(w, x, 8, 3).tolist() and out["matches_golden"]
    # A board's build is not grown to fit a layer, as matvec grows the default build.
    np.save(tmp_path / "W70.npy", np.ones((70, 3), dtype=np.uint8))
    np.save(tmp_path / "x3.npy", np.ones(3, dtype=np.uint8))
    r = run("matvec", "--weights", str(tmp_path / "W70.npy"), "--x", str(tmp_path / "x3.npy"),
            "--wbits", "1", "--board", "icebreaker")
    assert r.returncode == 2 and "a 70 x 3 layer does not fit the build" in r.stderr


def test_verify_board_choices_without_simulating():
    # What `verify --board` hands the simulation, decided before it: the build flags
    # change the board's configuration, the form stays the board's family's (the generic
    # Verilog for a vendor-tool board), and the MLP runs once it has its three slots.
    from anyprec.boards.registry import BOARDS
    from anyprec.host.cli import build_parser
    from anyprec.host.commands import board_target_config
    from anyprec.host.commands.verify import model_for
    parse = build_parser().parse_args
    for argv, form, layers, linear in (
            (["--board", "icebreaker"], "ice40", 1, True),
            (["--board", "icebreaker", "--layers", "3"], "ice40", 3, False),
            (["--board", "ulx3s-25f", "--rows", "4"], "ecp5", 3, False),
            (["--board", "arty-a7-35"], "generic", 3, False),
            (["--target", "ice40"], "ice40", 4, False),
            (["--layers", "2"], "generic", 2, True)):
        args = parse(["verify", *argv])
        board, target, cfg = board_target_config(args)
        assert target == form and cfg.layers == layers, argv
        if board is not None:
            assert cfg.cols == BOARDS[board.name].default.cols
            assert cfg.rows == (4 if "--rows" in argv else board.default.rows)
        said = []
        model = model_for(args, cfg, said.append)
        assert (model is not None and model.name == "digits_linear.npz") == linear, argv
        assert bool(said) == linear


def test_verify_table_and_plot(tmp_path):
    png = tmp_path / "v.png"
    r = run("verify", "--bits", "2", "--samples", "5", "--sim", "icarus", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert "mismatches" in r.stdout and "match the golden reference" in r.stdout
    assert png.stat().st_size > 1000


def test_matvec_json(tmp_path):
    w, x, files = _matvec_files(tmp_path, 7, (9, 13), 16)
    r = run("matvec", *files, "--wbits", "5", "--abits", "4", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["y"] == arith.dot(w, x, 8, 5).tolist()
    assert out["cycles"] > 0
    assert out["config"] == {"rows": 8, "cols": 8, "max_wbits": 8, "max_abits": 8,
                             "max_m": 64, "max_k": 64}


def test_matvec_grows_build_to_fit(tmp_path):
    w = np.ones((70, 3), dtype=np.uint8)
    x = np.ones(3, dtype=np.uint8)
    np.save(tmp_path / "W.npy", w)
    np.save(tmp_path / "x.npy", x)
    r = run("matvec", "--weights", str(tmp_path / "W.npy"), "--x", str(tmp_path / "x.npy"),
            "--wbits", "8", "--json", "--sim", "icarus")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["config"]["max_m"] == 70
    assert out["y"] == arith.dot(w, x, 8, 8).tolist()


@pytest.mark.parametrize("make,args,msg", [
    (None, ["--weights", "nope.npy", "--x", "x.npy", "--wbits", "1"], "does not exist"),
    ("float", ["--weights", "W.npy", "--x", "xf.npy", "--wbits", "1"], "must be integers"),
    ("short", ["--weights", "W.npy", "--x", "xs.npy", "--wbits", "1"], "activations but"),
    ("ok", ["--weights", "W.npy", "--x", "x.npy", "--wbits", "0"], "wbits must be"),
    ("ok", ["--weights", "W.npy", "--x", "x.npy", "--wbits", "2", "--abits", "1"], "1-bit"),
    ("big", ["--weights", "Wb.npy", "--x", "x.npy", "--wbits", "2"], "8-bit"),
    ("npz", ["--weights", "W.npz", "--x", "x.npy", "--wbits", "2"], ".npz"),
    ("junk", ["--weights", "junk.npy", "--x", "x.npy", "--wbits", "2"], "not"),
    ("ok", ["--weights", "W.npy", "--x", "x.npy", "--wbits", "2", "--rows", "0"], "rows"),
    ("ok", ["--weights", "W.npy", "--x", "x.npy", "--wbits", "2", "--max-m", "2"], "fit"),
])
def test_matvec_bad_input(tmp_path, make, args, msg):
    w = np.full((4, 6), 3, dtype=np.uint8)
    np.save(tmp_path / "W.npy", w)
    np.save(tmp_path / "Wb.npy", np.full((4, 6), 300, dtype=np.uint16))
    np.savez(tmp_path / "W.npz", w=w)
    np.save(tmp_path / "x.npy", np.full(6, 3, dtype=np.uint8))
    np.save(tmp_path / "xf.npy", np.full(6, 0.5))
    np.save(tmp_path / "xs.npy", np.full(5, 1, dtype=np.uint8))
    (tmp_path / "junk.npy").write_bytes(b"this is not numpy")
    r = run("matvec", *args, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("anyprec: error:"), r.stderr
    assert msg in lines[0], lines[0]


@pytest.mark.parametrize("args,msg", [
    (["--bits", "9"], "out of range"),
    (["--bits", "x"], "--bits"),
    (["--mixed", "8-8"], "3 layers"),
    (["--samples", "0"], "--samples"),
    (["--model", "missing.npz"], "missing.npz"),
    (["--max-k", "16"], "max_m x max_k"),
    (["--sim", "modelsim"], "invalid choice"),
])
def test_verify_bad_input(args, msg):
    r = run("verify", *args, "--plot", "none")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("(run")]
    assert len(lines) == 1, r.stderr
    assert msg in lines[0], lines[0]


def test_verilog_command_lints(tmp_path):
    out = tmp_path / "top.v"
    r = run("verilog", "--rows", "4", "--cols", "4", "-o", str(out), "--lint")
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "module anyprec_top" in text
    for port in ("s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast",
                 "m_axis_tdata", "m_axis_tvalid", "m_axis_tready", "m_axis_tlast"):
        assert port in text
    assert "clean" in r.stdout


def test_verilog_command_lints_ice40_with_its_cell_model(tmp_path):
    """--target ice40 instantiates SB_MAC16 cells: --lint reads yosys' model beside the
    Verilog (without it Verilator stops at the unknown module)."""
    out = tmp_path / "top.v"
    r = run("verilog", "--rows", "2", "--cols", "4", "--target", "ice40", "-o", str(out),
            "--lint")
    assert r.returncode == 0, r.stderr
    assert "SB_MAC16 #(" in out.read_text() and "clean" in r.stdout


def test_verilog_board_writes_that_boards_core(tmp_path):
    # --board: the board's configuration in its family's form (what its build carries).
    out = tmp_path / "core.v"
    r = run("verilog", "--board", "icebreaker", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "serial 1x4" in r.stdout and "layers<=1" in r.stdout
    assert "ice40 target (icebreaker's build)" in r.stdout
    assert "SB_MAC16 #(" in out.read_text()
    r = run("verilog", "--board", "ulx3s-25f", "--rows", "4", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "serial 4x8" in r.stdout and "ecp5 target" in r.stdout
    assert "CCU2C" in out.read_text()


def test_verilog_command_lints_ecp5_with_its_cell_models(tmp_path):
    """--target ecp5 instantiates CCU2C carry cells, DP16KD block RAMs and MULT18X18D
    multipliers: --lint reads the models the simulations use (hw.top.cell_models);
    without them Verilator stops at the unknown modules."""
    from anyprec.golden.errors import AnyprecError
    from anyprec.host.commands.verilog import lint
    out = tmp_path / "top.v"
    r = run("verilog", "--rows", "2", "--cols", "4", "--target", "ecp5", "-o", str(out),
            "--lint")
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "CCU2C #(" in text and "DP16KD #(" in text and "clean" in r.stdout
    with pytest.raises(AnyprecError, match="verilator lint failed"):
        lint(out, "anyprec_top", "generic")     # the same file without the models
