"""Board targets: registry, elaboration of every board top, Verilog-only export, CLI
errors, the synthesis estimate, and (slow) full builds with bitstream reproducibility."""

import json
from collections import Counter
from fnmatch import fnmatchcase
import os
import re
from pathlib import Path

import pytest

from anyprec.boards.build import OUTDIR_MARK, _platform, _prepare, count_cells, export
from anyprec.boards.registry import BOARDS, get_board, UnknownBoardError
from anyprec.boards.top import BoardTop
from anyprec.golden.export import DEFAULT_MODEL, load_model
from anyprec.host.cli import main
from anyprec.host.driver import check_model

NAMES = list(BOARDS)


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_registry_fields():
    assert {"icebreaker", "icesugar", "ulx3s-85f", "ulx3s-45f", "ulx3s-25f", "ulx3s-12f",
            "icesugar-pro", "arty-a7-35"} <= set(NAMES)
    for b in BOARDS.values():
        assert b.default.stream_width == 8, b.name
        assert b.family in ("ice40", "ecp5", "xc7")
        assert b.luts > 0 and b.brams > 0 and b.target_mhz > 0
        assert b.platform_class().device.lower().startswith(b.device.lower()[:8])
        d = b.to_dict()
        assert d["default_config"]["rows"] == b.default.rows
    with pytest.raises(UnknownBoardError, match="known boards: icebreaker"):
        get_board("de10-nano")


def test_docs_targets_table_matches_registry():
    """docs/boards.md's Targets table gives each board's registry figures."""
    text = (Path(__file__).parents[1] / "docs" / "boards.md").read_text()
    table = text.split("## Targets", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 9, line
        rows[re.match(r"`([^`]+)`", cells[0]).group(1)] = cells
    assert set(rows) == set(NAMES)
    for b in BOARDS.values():
        _, device, logic, bram, dsp, osc, clock, uart, _ = rows[b.name]
        assert device.split()[0].lower()[:7] == b.device.lower()[:7], (b.name, device)
        assert logic.split()[0] == f"{b.luts:,}", (b.name, logic)
        assert bram.split()[0] == str(b.brams) and dsp.split()[0] == str(b.dsps), b.name
        assert osc == f"{b.osc_mhz:g} MHz", (b.name, osc)
        assert clock in ("see table", f"{b.target_mhz:g} MHz"), (b.name, clock)
        assert uart.startswith(f"{b.uart_rx} / {b.uart_tx}"), (b.name, uart)


@pytest.mark.parametrize("name", [n for n in NAMES if BOARDS[n].holds_digits])
def test_default_config_holds_the_digits_mlp(name):
    """The shipped 3-layer digits MLP (N=8, A=8) fits the board's default configuration."""
    net, _ = load_model(DEFAULT_MODEL)
    shapes = check_model(net, BOARDS[name].default)
    assert shapes == [(64, 64), (64, 64), (10, 64)]


@pytest.mark.parametrize("name", NAMES)
def test_board_top_elaborates(name, tmp_path):
    """Every board target elaborates into a complete build tree (no tools run)."""
    board = get_board(name)
    top, stem, plan = _prepare(board, board.default, seed=1, target_mhz=None, baud=115200,
                               timeout_ms=50, outdir=tmp_path / name)
    files = {p.name for p in (tmp_path / name).iterdir()}
    assert f"build_{stem}.sh" in files
    if board.family == "xc7":
        assert f"{stem}.v" in files and f"{stem}.xdc" in files
    else:
        assert f"{stem}.il" in files
        il = (tmp_path / name / f"{stem}.il").read_text()
        assert "EHXPLLL" in il or "SB_PLL40_PAD" in il
        assert "\\wmem" in il
        # nextpnr runs with the seed and the board's options (ECP5: the timing weight).
        script = (tmp_path / name / f"build_{stem}.sh").read_text()
        pnr = next(ln for ln in script.splitlines() if "NEXTPNR" in ln and "--json" in ln)
        assert "--seed 1 " in pnr and " ".join(board.pnr_opts) in pnr, pnr
        assert ("--placer-heap-timingweight 30" in pnr) == (board.family == "ecp5"), pnr
    # The UART divisor matches the PLL clock within 2 %.
    assert abs(top.clock_mhz * 1e6 / top.divisor - 115200) / 115200 < 0.02


def test_arty_verilog_only_export(tmp_path):
    rep = export("arty-a7-35", outdir=tmp_path / "arty")
    out = Path(rep["outdir"])
    xdc = (out / "anyprec_arty_a7_35.xdc").read_text()
    for pin in ("E3", "A9", "D10"):          # clk100, uart rx, uart tx
        assert pin in xdc, pin
    v = (out / "anyprec_arty_a7_35.v").read_text()
    assert "module anyprec_arty_a7_35" in v
    assert "README.txt" in rep["files"] and rep["bitstream"] is None
    assert "Vivado" in (out / "README.txt").read_text()


def test_outdir_of_user_files_is_refused(tmp_path, capsys):
    # `-o` naming a directory with someone's files must never empty it; our own build
    # trees (marked) are replaced.
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, out, err = _cli(capsys, "build", "--board", "arty-a7-35", "-o", str(mine))
    assert code != 0 and "not made by anyprec" in err
    assert err.startswith("anyprec: error: ") and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "keep me"
    f = tmp_path / "a-file"
    f.write_text("x")
    code, _, err = _cli(capsys, "build", "--board", "arty-a7-35", "-o", str(f))
    assert code != 0 and "is not a directory" in err and f.read_text() == "x"
    # A directory that cannot be made (its parent is a file): one line, no traceback.
    for cmd in ("build", "estimate"):
        code, _, err = _cli(capsys, cmd, "--board", "icebreaker", "-o", str(f / "sub"))
        assert code != 0 and err.startswith("anyprec: error: cannot use output directory")
        assert len(err.strip().splitlines()) == 1 and f.read_text() == "x"
    # A build tree of ours is replaced: a stray file in it goes, the marker stays.
    out = tmp_path / "arty"
    export("arty-a7-35", outdir=out)
    (out / "stale.v").write_text("old")
    rep = export("arty-a7-35", outdir=out)
    assert not (out / "stale.v").exists() and (out / OUTDIR_MARK).is_file()
    assert OUTDIR_MARK not in rep["files"]
    # A build tree from before the marker (it has our build script) is ours too.
    (out / OUTDIR_MARK).unlink()
    export("arty-a7-35", outdir=out)
    assert (out / OUTDIR_MARK).is_file()


def test_cli_build_all_outdir(capsys, monkeypatch, tmp_path):
    """--board all -o DIR builds every board into DIR/<board>; the builds are stubbed."""
    from anyprec.boards import build as B
    seen = {}

    def fake(board, cfg=None, *, outdir=None, **kw):
        seen[board.name] = outdir
        return {"board": board.name, "timing_met": True}

    monkeypatch.setattr(B, "build", fake)
    monkeypatch.setattr(B, "export", fake)
    code, out, _ = _cli(capsys, "build", "--board", "all", "-o", str(tmp_path), "--json")
    assert code == 0
    assert [b["board"] for b in json.loads(out)["builds"]] == list(seen)
    assert seen and all(d == os.path.join(str(tmp_path), n) for n, d in seen.items())
    seen.clear()
    code, out, _ = _cli(capsys, "build", "--board", "all", "--json")
    assert code == 0 and seen and all(d is None for d in seen.values())


@pytest.mark.parametrize("argv, match", [
    (["--clock", "24"], "5 of 8 boards refuse these settings, nothing was built: ulx3s-85f: "
                        "an ECP5 PLL cannot make 24 MHz"),
    (["--baud", "5000000"], "2 of 8 boards refuse these settings, nothing was built: "
                            "icebreaker: 5000000 baud"),
    (["-o", "AFILE"], "is not a directory"),
])
def test_cli_build_all_checks_every_board_first(capsys, monkeypatch, tmp_path, argv, match):
    """--board all refuses settings that any board refuses before the first build (each
    board's failure used to surface only in its turn, after the others had built)."""
    from anyprec.boards import build as B

    def fake(board, cfg=None, **kw):
        raise AssertionError(f"{board.name} was built")
    monkeypatch.setattr(B, "build", fake)
    monkeypatch.setattr(B, "export", fake)
    (tmp_path / "AFILE").write_text("a file\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "build", "--board", "all", *argv)
    assert code == 2 and out == "", err
    assert err.startswith("anyprec: error: ") and len(err.strip().splitlines()) == 1, err
    assert match in err


ICE40_PNR = ('"$NEXTPNR_ICE40" --quiet --seed 1 --report top.report.json --timing-allow-fail '
             '--log top.tim --up5k --package sg48 --json top.json --pcf top.pcf --asc top.asc')


def test_seed_cmd_renames_every_output():
    from anyprec.boards.build import _seed_cmd
    ecp5 = ('"$NEXTPNR_ECP5" --quiet --seed 5 --report top.report.json --timing-allow-fail '
            '--detailed-timing-report --write top.routed.json --log top.tim --25k '
            '--json top.json --lpf top.lpf --textcfg top.config')
    out = _seed_cmd(ecp5, "top", 5, 9)
    assert out == ('"$NEXTPNR_ECP5" --quiet --seed 9 --report top.seed9.report.json '
                   '--timing-allow-fail --detailed-timing-report --write top.seed9.routed.json '
                   '--log top.seed9.tim --25k --json top.json --lpf top.lpf '
                   '--textcfg top.seed9.config')
    assert _seed_cmd(ICE40_PNR, "top", 1, 12).endswith("--pcf top.pcf --asc top.seed12.asc")


@pytest.mark.parametrize("jobs", [1, 3])
def test_seed_sweep_keeps_the_highest_fmax(monkeypatch, tmp_path, jobs):
    """Place and route stubbed: each seed writes its report; seed 3 does not place."""
    from anyprec.boards import build as B
    fmax = {1: 30.5, 2: 41.25, 3: None, 4: 41.25, 5: 12.0}
    ran = []

    def fake_step(label, pre, cmd, cwd, env, log_path):
        s = int(re.search(r"--seed (\d+) ", cmd).group(1))
        ran.append((s, label))
        if fmax[s] is None:
            raise B.BuildError(f"{label} failed (exit 1)")
        (cwd / f"top.seed{s}.report.json").write_text(json.dumps(
            {"fmax": {"clk": {"achieved": fmax[s], "constraint": 24.0}}}))
        (cwd / f"top.seed{s}.asc").write_text(f"placed with seed {s}")
        (cwd / f"top.seed{s}.tim").write_text("log")

    monkeypatch.setattr(B, "_run_step", fake_step)
    (tmp_path / "build_top.sh").write_text(ICE40_PNR + "\n")
    steps, shown = {}, []
    best, table = B._seed_sweep(None, "top", [1, 2, 3, 4, 5], ICE40_PNR, 1, [], tmp_path, {},
                                24.0, lambda *a: shown.append(a), 2, 7, steps, jobs)
    assert sorted(ran) == [(s, f"place and route, seed {s}") for s in (1, 2, 3, 4, 5)]
    assert list(steps) == [f"place and route, seed {s}" for s in (1, 2, 3, 4, 5)]
    assert best == 2    # 41.25 MHz, the earlier of the two equal seeds
    assert [(t["seed"], t["fmax_mhz"], t["timing_met"]) for t in table] == [
        (1, 30.5, True), (2, 41.25, True), (3, None, False), (4, 41.25, True),
        (5, 12.0, False)]
    assert "failed" in table[2]["error"]
    assert (tmp_path / "top.asc").read_text() == "placed with seed 2"
    assert json.loads((tmp_path / "top.report.json").read_text())["fmax"]["clk"]["achieved"] \
        == 41.25
    assert not list(tmp_path.glob("top.seed*.asc"))          # the others' placements go
    assert (tmp_path / "top.seed4.report.json").is_file()    # their reports stay
    assert "--seed 2 " in (tmp_path / "build_top.sh").read_text()
    assert sorted(a[0] for a in shown if a[3] == "done") == [2, 3, 4, 5, 6]
    # No seed places: one error naming the seeds; a design that does not fit stops at once.
    fmax.update({1: None, 2: None})
    with pytest.raises(B.BuildError, match=r"every seed \(1, 2, 3\)"):
        B._seed_sweep(None, "top", [1, 2, 3], ICE40_PNR, 1, [], tmp_path, {}, 24.0, None,
                      2, 5, {})

    def no_fit(label, pre, cmd, cwd, env, log_path):
        ran.append(cmd)
        raise B.BuildError("the design does not fit the device: ICESTORM_LC 6000/5280")

    monkeypatch.setattr(B, "_run_step", no_fit)
    ran.clear()
    with pytest.raises(B.BuildError, match="does not fit"):
        B._seed_sweep(None, "top", [1, 2, 3], ICE40_PNR, 1, [], tmp_path, {}, 24.0, None,
                      2, 5, {})
    assert len(ran) == 1


@pytest.mark.parametrize("seeds,match", [
    ("4-1", "must look like"), ("x", "must look like"), ("1,,2", "must look like"),
    ("0-64", "at most 64"), ("1-40,100-130", "at most 64 seeds, not 71"),
    ("2147483647-2147483648", "out of range")])
def test_cli_bad_seeds_is_one_line(capsys, monkeypatch, seeds, match):
    from anyprec.boards import build as B
    monkeypatch.setattr(B, "build", lambda *a, **k: pytest.fail("built"))
    code, _, err = _cli(capsys, "build", "--board", "icebreaker", "--seeds", seeds)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    code, _, err = _cli(capsys, "build", "--board", "icebreaker", "--seed", "1", "--seeds", "1-2")
    assert code == 2 and "not both" in err
    code, _, err = _cli(capsys, "build", "--board", "icebreaker", "--workers", "2")
    assert code == 2 and "needs --seeds" in err
    code, _, err = _cli(capsys, "build", "--board", "icebreaker", "--seeds", "1-2",
                        "--workers", "0")
    assert code == 2 and "--workers must be from 1 to 64, not 0" in err


def test_parse_seeds():
    from anyprec.host.commands.build import parse_seeds
    assert parse_seeds("1-4") == [1, 2, 3, 4]
    assert parse_seeds("7, 3,5-6,3") == [7, 3, 5, 6]
    assert parse_seeds("0") == [0]
    from anyprec.golden.errors import ConfigError
    # (an open range was taken for its first seed; '-5' is not a seed; non-ASCII digits)
    for bad in ("1-", "-5", "4-1", "1-100", "a", "1,,2", "\u0663"):
        with pytest.raises(ConfigError, match="--seeds must look like"):
            parse_seeds(bad)


def test_cli_boards_json(capsys):
    code, out, _ = _cli(capsys, "boards", "--json")
    assert code == 0
    boards = {b["name"]: b for b in json.loads(out)["boards"]}
    assert list(boards) == NAMES
    # Tool options and the programmer as argument lists, as the build report has them.
    assert boards["icebreaker"]["synth_opts"] == ["-device", "u", "-dsp", "-spram",
                                                  "-dffe_min_ce_use", "8"]
    assert boards["icebreaker"]["synth_wire_ps"] == 2500
    assert boards["ulx3s-85f"]["nextpnr_opts"] == ["--placer-heap-timingweight", "30"]
    assert boards["icebreaker"]["nextpnr_opts"] == []
    assert boards["icebreaker"]["programmer"] == ["iceprog", "{bitstream}"]
    assert boards["arty-a7-35"]["programmer"] == []
    code, out, _ = _cli(capsys, "boards")
    assert code == 0 and "ulx3s-85f" in out and "LFE5U-85F" in out


@pytest.mark.parametrize("argv, match", [
    (["build", "--board", "nope"], "unknown board 'nope'; known boards: icebreaker"),
    (["estimate", "--board", "nope"], "unknown board 'nope'"),
    (["build", "--board", "icebreaker", "--rows", "0"], "--rows must be from 1 to 256, not 0"),
    (["build", "--board", "ulx3s-85f", "--stream-width", "32"], "need --stream-width 8"),
    (["build", "--board", "ulx3s-85f", "--seed", "-1"], "--seed must be from 0"),
    (["build", "--board", "ulx3s-85f", "--clock", "900"], "--clock must be from 1 to 500"),
    (["estimate", "--board", "icebreaker", "--max-k", "70000"], "--max-k must be from 1"),
    (["build", "--board", "icesugar-pro", "--baud", "50000000", "--toolchain", "yowasp"],
     "too fast"),
    (["estimate", "--board", "arty-a7-35"], "no open synthesis flow"),
    (["build", "--board", "icebreaker", "--clock", "400"], "cannot make 400 MHz"),
])
def test_cli_bad_input_is_one_line(capsys, argv, match):
    code, out, err = _cli(capsys, *argv)
    assert code == 2, (argv, out, err)
    assert match in err
    assert err.startswith("anyprec: error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_refused_board_top_leaves_no_unused_warning(monkeypatch):
    """A BoardTop refused in its constructor (here: a baud rate too fast for the clock)
    is not reported by Amaranth as 'created but never used' when it is collected."""
    import gc
    import warnings
    from amaranth.hdl._ir import UnusedElaboratable
    from anyprec.golden.errors import AnyprecError
    # Amaranth enables the warning once anything has been elaborated in the process.
    monkeypatch.setattr(UnusedElaboratable, "_MustUse__silence", False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            BoardTop(get_board("icesugar-pro"), get_board("icesugar-pro").default,
                     baud=50_000_000)
        except AnyprecError as e:
            assert "too fast" in str(e)
        else:
            pytest.fail("the baud rate was accepted")
        gc.collect()
    assert not [w for w in seen if "never used" in str(w.message)], seen


def test_cli_missing_toolchain_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    code, out, err = _cli(capsys, "build", "--board", "icebreaker", "--toolchain", "system")
    assert code == 2
    assert "yosys is not installed" in err and len(err.strip().splitlines()) == 1


def test_count_cells_strips_paramod():
    stat = {"design": {"num_cells_by_type": {"$paramod$abc\\SB_RAM40_4K": 3,
                                             "SB_RAM40_4K": 1, "SB_LUT4": 7}}}
    assert count_cells(stat) == {"SB_RAM40_4K": 4, "SB_LUT4": 7}


def _fake_estimate(limit, calls):
    """An estimate stub: R x C uses R*C/limit**2 of the LUTs (fits up to limit x limit)."""
    def estimate(board, cfg, **kw):
        calls.append((cfg.rows, cfg.cols, cfg.layers))
        u = cfg.rows * cfg.cols / limit ** 2
        util = {"luts": u, "ffs": u / 2, "brams": 0.1, "dsps": 0.0, "sprams": 0.0}
        return {"fits": u <= 1, "within_headroom_limit": u <= 0.9, "limiting": "luts",
                "utilization": util, "estimated": {"luts": int(5000 * u)},
                "weight_memory": {"in_block_ram": True, "detail": "stub"}, "seconds": 1.0}
    return estimate


@pytest.mark.parametrize("limit,start,answer", [(8, 16, 8), (8, 1, 8), (64, 8, 64),
                                                (256, 16, 256), (1, 4, 1), (0.5, 8, None)])
def test_largest_steps_through_square_sizes(monkeypatch, tmp_path, limit, start, answer):
    """Estimates stubbed: the search finds the largest fitting power-of-two square,
    stepping one size at a time from the configuration's own (never past the first size
    that does not fit), keeping the configuration's other parameters."""
    from anyprec.boards import build as B
    calls = []
    monkeypatch.setattr(B, "estimate", _fake_estimate(limit, calls))
    cfg = get_board("ulx3s-85f").default.replace(rows=start, cols=start, layers=2)
    r = B.largest("ulx3s-85f", cfg, outdir=tmp_path)
    assert (r["largest"] or {}).get("rows") == answer
    assert r["config"] is None if answer is None else r["config"]["layers"] == 2
    assert all(rr == cc and l == 2 for rr, cc, l in calls)
    sizes = [c[0] for c in calls]
    assert sizes[0] == start and len(set(sizes)) == len(sizes)
    assert all(b in (2 * a, a // 2) for a, b in zip(sizes, sizes[1:])), sizes
    assert max(sizes) <= max(start, 2 * (answer or 0))       # nothing far too large
    fit = {p["rows"]: p["fits"] for p in r["probes"]}
    assert all(fit[n] == (n <= limit) for n in fit), fit
    if answer is not None and answer < 256:
        assert fit[answer] and not fit[2 * answer]       # the next size up was tried


def test_largest_skips_a_size_that_surely_does_not_fit(monkeypatch, tmp_path):
    """From 16x16 and 32x32 (6.25 % and 25 % of the LUTs in the stub), 64x64 would use at
    least 25 + 2 x 18.75 = 62.5 %: synthesised (it fits, 100 %). From 32x32 and 64x64,
    128x128 would use at least 250 %: not synthesised, listed as extrapolated."""
    from anyprec.boards import build as B
    calls = []
    monkeypatch.setattr(B, "estimate", _fake_estimate(64, calls))
    cfg = get_board("ulx3s-85f").default
    r = B.largest("ulx3s-85f", cfg, outdir=tmp_path)
    assert [c[0] for c in calls] == [16, 32, 64] and r["largest"]["rows"] == 64
    p = {q["rows"]: q for q in r["probes"]}
    assert p[128]["extrapolated"] and not p[128]["fits"] and p[128]["limiting"] == "luts"
    assert p[128]["at_least"]["luts"] == pytest.approx(2.5)
    assert "extrapolated" not in p[64]
    # Just over the device (a bound under the 25 % margin) is always synthesised.
    calls.clear()
    monkeypatch.setattr(B, "estimate", _fake_estimate(50, calls))
    r = B.largest("ulx3s-85f", cfg, outdir=tmp_path)
    assert [c[0] for c in calls] == [16, 32, 64] and r["largest"]["rows"] == 32


@pytest.mark.slow
def test_largest_icebreaker(tmp_path):
    """Real syntheses (about 1.5 minutes): the UP5K's largest square array fits by the
    estimate, the next size up does not."""
    from anyprec.boards.build import largest
    r = largest("icebreaker", outdir=tmp_path)
    n = r["largest"]["rows"]
    fit = {p["rows"]: p for p in r["probes"]}
    assert fit[n]["fits"] and fit[n]["utilization"]["luts"] <= 1.0
    assert not fit[2 * n]["fits"]
    assert r["config"]["layers"] == 1 and r["config"]["rows"] == r["config"]["cols"] == n


def test_cli_estimate_largest(monkeypatch, capsys, tmp_path):
    from anyprec.boards import build as B
    calls = []
    monkeypatch.setattr(B, "estimate", _fake_estimate(32, calls))
    code, out, err = _cli(capsys, "estimate", "--board", "ulx3s-85f", "--largest",
                          "--layers", "2", "-o", str(tmp_path))
    assert code == 0, err
    assert "-> largest: 32x32" in out and "--rows 32 --cols 32 --layers 2'" in out
    assert "ulx3s-85f: estimating 16x16 ..." in err
    code, out, _ = _cli(capsys, "estimate", "--board", "ulx3s-85f", "--largest", "--json",
                        "-o", str(tmp_path))
    assert code == 0 and json.loads(out)["largest"] == {"rows": 32, "cols": 32}
    code, _, err = _cli(capsys, "estimate", "--board", "ulx3s-85f", "--largest",
                        "--rows", "4")
    assert code == 2 and "leave out --rows/--cols" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _cli(capsys, "estimate", "--board", "arty-a7-35", "--largest")
    assert code == 2 and "no open synthesis flow" in err


def test_estimate_icebreaker(tmp_path, capsys, monkeypatch):
    """Synthesis-only estimate: resources against the device, the fit verdict (four
    layer slots are too many for the UP5K, which the estimate must say before any place
    and route), and the weight memory in block RAM (SPRAM), not LUTs. One synthesis
    (about 25 s); the readable forms are rendered from its report, and from the same
    report with the verdict of a configuration that fits (the default one-slot build
    does: test_icebreaker_build places and routes it)."""
    code, out, err = _cli(capsys, "estimate", "--board", "icebreaker", "--layers", "4",
                          "--json", "-o", str(tmp_path / "est"))
    assert code == 0, err
    r = json.loads(out)
    assert r["board"] == "icebreaker" and r["config"]["rows"] == 1
    assert r["config"]["layers"] == 4
    assert set(r["utilization"]) == {"luts", "ffs", "brams", "dsps", "sprams"}
    assert r["estimated"]["luts"] > 4000
    assert r["fits"] is False and r["limiting"] == "luts" and r["headroom"] < 0
    assert r["weight_memory"]["in_block_ram"], r["weight_memory"]
    assert r["weight_memory"]["wmem_cells"].get("SB_SPRAM256KA", 0) >= 1
    assert r["estimated"]["brams"] <= 30 and r["estimated"]["sprams"] <= 4
    assert "[icebreaker 1/1] synthesis" in err
    # abc9 maps for the UltraPlus's delays and against its routing (boards/registry.py)
    ys = (tmp_path / "est" / "anyprec_icebreaker.ys").read_text()
    assert "scratchpad -set synth_ice40.abc9.W 2500\n" in ys
    assert re.search(r"^synth_ice40 -device u -dsp -spram -dffe_min_ce_use 8\b", ys, re.M), ys
    # ... and with no flip-flop enable net for a handful of flip-flops (a logic block's
    # 8 cells share one): smaller groups are made logic (-dffe_min_ce_use 8). Without
    # it dozens of enables drive a single flip-flop; with it a group or two end below 8
    # when later passes drop flip-flops nobody reads.
    net = json.loads((tmp_path / "est" / "anyprec_icebreaker.json").read_text())
    ce_use = Counter(tuple(c["connections"]["E"]) for c in _cells(net, "SB_DFFE*"))
    assert len(ce_use) > 10 and min(ce_use.values()) >= 4, sorted(ce_use.values())[:5]
    assert sum(n < 8 for n in ce_use.values()) <= 4, sorted(ce_use.values())[:5]
    # The requantiser's two SB_MAC16s come out of synthesis as hw/requant.py configured
    # them, every input and output registered (synth_ice40 -dsp would have reset their
    # parameters, boards/build.py _prepare), so nextpnr's Fmax covers the paths
    # through them.
    macs = _cells(net, "SB_MAC16")
    assert len(macs) == 2 and r["estimated"]["dsps"] == 2 and r["untimed_dsps"] == 0
    for c in macs:
        p = {k: int(v, 2) for k, v in c["parameters"].items()}
        assert p["A_REG"] == p["B_REG"] == p["C_REG"] == p["D_REG"] == 1, p
        assert p["TOPOUTPUT_SELECT"] == p["BOTOUTPUT_SELECT"] == 1, p
        assert p["TOPADDSUB_CARRYSELECT"] == 2 and p["BOTADDSUB_UPPERINPUT"] == 1, p
        assert not all(isinstance(b, str) for b in c["connections"]["CLK"])
    import anyprec.boards.build as B
    with monkeypatch.context() as mp:
        mp.setattr(B, "estimate", lambda *a, **k: r)
        code, out, err = _cli(capsys, "estimate", "--board", "icebreaker", "--layers", "4",
                              "-o", str(tmp_path / "est2"))
    assert code == 0 and re.search(r"-> does NOT fit: LUTs over by \d+%", out), out
    assert "block RAM" in out
    assert len([ln for ln in out.splitlines() if "->" in ln]) == 1
    fits = dict(r, fits=True, headroom=0.03, limiting="sprams", within_headroom_limit=False)
    with monkeypatch.context() as mp:
        mp.setattr(B, "estimate", lambda *a, **k: fits)
        code, out, err = _cli(capsys, "estimate", "--board", "icebreaker",
                              "-o", str(tmp_path / "est3"))
    assert code == 0 and "-> fits, 3% headroom on SPRAM (tight: place and route may" in out


def _cells(net, kind):
    """The cells of a yosys JSON netlist (parsed) whose type matches ``kind`` (fnmatch)."""
    return [c for m in net["modules"].values() for c in m["cells"].values()
            if fnmatchcase(c["type"], kind)]


def test_untimed_dsps_finds_combinational_mac16(tmp_path):
    """The build report's ``untimed_dsps``: an SB_MAC16 as synth_ice40 -dsp infers it
    from a plain multiply (no clock, output from the multiplier) counts; one with its
    input and output registers does not; a missing netlist gives None; off iCE40, 0."""
    from anyprec.boards.build import _untimed_dsps
    regd = {"A_REG": "1", "B_REG": "1", "C_REG": "1", "D_REG": "1",
            "TOPOUTPUT_SELECT": "01", "BOTOUTPUT_SELECT": "01"}
    comb = {"A_REG": "0", "B_REG": "0", "C_REG": "0", "D_REG": "0",
            "TOPOUTPUT_SELECT": "11", "BOTOUTPUT_SELECT": "11"}

    def cell(params, clk):
        return {"type": "SB_MAC16", "parameters": params,
                "connections": {"CLK": clk, "A": [5], "B": [6], "C": ["0"], "D": [7]}}
    net = {"modules": {"top": {"cells": {"a": cell(regd, [2]), "b": cell(comb, ["0"]),
                                         "c": cell(dict(regd, D_REG="0"), [2]),
                                         "d": cell(dict(regd, C_REG="0"), [2])}}}}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(net))
    # b: combinational; c: D not registered; d: C unregistered but constant (fine)
    assert _untimed_dsps(path) == 2 and _untimed_dsps(path, "ecp5") == 0
    assert _untimed_dsps(tmp_path / "missing.json") is None


def _build(tmp_path, board, seed, sub):
    from anyprec.boards.build import build
    return build(board, seed=seed, outdir=tmp_path / sub)


@pytest.mark.slow
def test_build_is_reproducible(tmp_path):
    """Same seed and inputs give the same bitstream; the report has every field.
    (On the iCESugar-Pro, the smallest target that fits; about 5 minutes per build.)"""
    a = _build(tmp_path, "icesugar-pro", 7, "a")
    b = _build(tmp_path, "icesugar-pro", 7, "b")
    assert a["bitstream_sha256"] == b["bitstream_sha256"]
    for key in ("board", "device", "config", "luts", "luts_total", "ffs", "brams", "dsps",
                "fmax_mhz", "target_mhz", "timing_met", "seed", "tools", "bitstream",
                "bitstream_sha256", "seconds"):
        assert key in a, key
    assert a["seed"] == 7 and a["luts"] <= a["luts_total"]
    assert a["weight_memory"]["in_block_ram"]


@pytest.mark.slow
def test_seed_sweep_bitstream_is_the_kept_seeds(tmp_path):
    """A sweep's bitstream is the one a plain build with the kept seed makes, and the
    tree's build script names that seed."""
    from anyprec.boards.build import build
    sweep = build("icebreaker", seeds=(3, 4), outdir=tmp_path / "sweep")
    plain = _build(tmp_path, "icebreaker", sweep["seed"], "plain")
    assert sweep["bitstream_sha256"] == plain["bitstream_sha256"]
    assert plain["fmax_mhz"] == sweep["fmax_mhz"]
    assert f"--seed {sweep['seed']} " in (tmp_path / "sweep" /
                                          "build_anyprec_icebreaker.sh").read_text()


def test_icebreaker_build(tmp_path):
    """The one full build in ``make test`` (about a minute and a half): the iCEBreaker's
    default build (seed 1) fits the UP5K, meets its clock and writes a bitstream. (One
    seed: the margin is wide, and a second placement cost a minute of the suite's
    15-minute budget. The seed sweep's choice is tested on a stub above and, placed,
    in ``make test-all``.)"""
    r = _build(tmp_path, "icebreaker", 1, "icebreaker")
    assert r["seed"] == 1
    assert r["luts"] <= r["luts_total"] == 5280, r["luts"]
    assert r["timing_met"], f"Fmax {r['fmax_mhz']} MHz < {r['target_mhz']} MHz"
    assert r["config"]["layers"] == 1
    assert r["dsps"] == 2 and r["untimed_dsps"] == 0
    assert r["synth_opts"][:2] == ["-device", "u"] and r["synth_wire_ps"] == 2500
    assert Path(r["bitstream"]).stat().st_size > 1000
    assert len(r["bitstream_sha256"]) == 64


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if BOARDS[n].bitstream and BOARDS[n].fits
                                  and n != "icebreaker"])
def test_full_build(tmp_path, name):
    r = _build(tmp_path, name, 1, name)
    board = get_board(name)
    # The data sheet's count (nextpnr offers the 12F the 24,288 cells of its 25F die).
    assert r["luts_total"] == board.luts
    assert r["luts"] <= r["luts_total"]
    assert r["brams"] <= board.brams
    assert r["weight_memory"]["in_block_ram"], r["weight_memory"]
    assert r["timing_met"], f"{name}: Fmax {r['fmax_mhz']} MHz < {r['target_mhz']} MHz"
    assert Path(r["bitstream"]).stat().st_size > 1000
