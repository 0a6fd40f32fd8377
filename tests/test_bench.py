"""anyprec bench: the comparison arithmetic, and one point measured for real in simulation.

Place and route of the sweep runs in `make bench` / `make test-all`; here a stand-in
supplies the place-and-route numbers so the simulation part and the report are checked.
"""

import json
import subprocess
import sys

import pytest

from anyprec.boards import bench


def _rec(design, r, c, luts, fmax, util=1.0, board="ulx3s-85f"):
    ks = range(1, 9)
    if design == "serial":
        mac = {str(k): r * c * fmax * 1e6 / k * util for k in ks}
    else:
        mac = {str(k): r * c * fmax * 1e6 * util for k in ks}
    return {"design": design, "board": board, "rows": r, "cols": c, "luts": luts,
            "fmax_mhz": fmax, "utilisation": {str(k): util for k in ks},
            "mac_per_s": mac, "mac_per_s_per_lut": {k: v / luts for k, v in mac.items()}}


def test_summary_ratios():
    pts = [_rec("serial", 16, 16, 8000, 120, 0.97), _rec("serial", 8, 8, 2500, 130, 0.99),
           _rec("parallel-lut", 8, 8, 12000, 100), _rec("parallel-dsp", 12, 12, 3000, 110)]
    s = bench.summarize(pts)
    # Best serial MAC/s per LUT at k=1 (the 16x16 here) over the LUT-only parallel array.
    best_serial = max(256 * 120e6 * 0.97 / 8000, 64 * 130e6 * 0.99 / 2500)
    want = best_serial / (64 * 100e6 / 12000)
    assert s["equal_lut_ratio"]["1"] == pytest.approx(want, rel=1e-3)
    # Whole device at k=8: the 16x16 serial against the 12x12 DSP array.
    want8 = (256 * 120e6 / 8 * 0.97) / (144 * 110e6)
    assert s["whole_device_ratio"]["8"] == pytest.approx(want8, rel=1e-3)
    assert s["min_utilisation"] == 0.97
    assert set(s["equal_lut_ratio"]) == {str(k) for k in range(1, 9)}


def test_summary_skips_failed_points():
    pts = [_rec("serial", 8, 8, 2500, 130), {"design": "parallel-lut", "board": "ulx3s-85f",
                                             "rows": 8, "cols": 8, "error": "did not fit"}]
    s = bench.summarize(pts)
    assert s["equal_lut_ratio"] == {}
    assert s["min_utilisation"] == 1.0


def test_measure_point_with_stand_in_pnr(tmp_path):
    p = bench.Point("serial", "ulx3s-85f", 8, 8, ref=64)

    def fake_pnr(point, cfg, seed, outdir):
        assert cfg.rows == 8 and cfg.max_m == 64 and cfg.design == "serial"
        return {"luts": 1000, "fmax_mhz": 100.0, "ffs": 900, "brams": 4, "dsps": 1,
                "device": "LFE5U-85F", "luts_total": 83640, "timing_met": True, "tools": {}}

    r = bench.measure(p, pnr=fake_pnr, outdir=tmp_path)
    # Cycles measured in simulation: at least the ideal k*8*8, and near it.
    for k in range(1, 9):
        c = r["cycles"][str(k)]
        assert c >= k * 64
        assert r["utilisation"][str(k)] == pytest.approx(k * 64 / c, abs=1e-4)
        assert r["mac_per_s"][str(k)] == pytest.approx(64 * 100e6 / k * k * 64 / c, rel=1e-6)
    # Cycles grow by exactly one ideal pass per weight bit.
    steps = {r["cycles"][str(k + 1)] - r["cycles"][str(k)] for k in range(1, 8)}
    assert steps == {64}, r["cycles"]
    md = bench.markdown(bench.report([r]))
    assert "| serial | ulx3s-85f | 8x8, DL 1 | 1000 |" in md


def test_bench_points_drain_suffix():
    from anyprec.host.commands.bench import parse_points
    a, b, c = parse_points("serial:ulx3s-85f:32x32:d4,parallel-lut:ulx3s-85f:8x8:128,"
                           "serial:ulx3s-85f:16x16:64:d2")
    assert (a.rows, a.ref, a.drain) == (32, 256, 4)
    assert (b.ref, b.drain) == (128, None)
    assert (c.ref, c.drain) == (64, 2)
    # No suffix: the fewest lanes that keep the reference layer from being drain-bound.
    assert bench.point_config(a).drain_lanes == 4
    assert bench.point_config(bench.Point("serial", "ulx3s-85f", 32, 32)).drain_lanes == 4
    assert bench.point_config(bench.Point("serial", "ulx3s-85f", 16, 16)).drain_lanes == 1
    assert bench.point_config(c).drain_lanes == 2


def test_builtin_points_are_valid_configs():
    """The make-bench subset and the full sweep are valid configurations (user points are
    checked as they are parsed)."""
    from anyprec.boards import bench
    for p in bench.QUICK_POINTS + bench.DEFAULT_POINTS:
        cfg = bench.point_config(p)
        assert (cfg.rows, cfg.cols, cfg.max_m) == (p.rows, p.cols, p.ref)


def test_bench_cli_bad_points():
    for bad, msg in (("serial:nowhere:8x8", "board"), ("magic:ulx3s-85f:8x8", "design"),
                     ("serial:ulx3s-85f:8by8", "looks like"),
                     ("serial:ulx3s-85f:8x8:64:d3", "drain must be a power of two"),
                     ("serial:ulx3s-85f:8x6:d4", "drain 4 must divide rows (8) and cols (6)"),
                     ("serial:ulx3s-85f:8x8:1:2", "looks like"),
                     ("serial:arty-a7-35:8x8", "no open place-and-route flow"),
                     # (the size checks name the point; they named max_m alone)
                     ("serial:ulx3s-85f:8x8:-5", "point 'serial:ulx3s-85f:8x8:-5': max_m must "
                                                 "be from 1 to 65535, not -5")):
        r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", "--points", bad],
                           capture_output=True, text=True)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert msg in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", "--clock", "0",
                        "--points", "serial:ulx3s-85f:8x8"], capture_output=True, text=True)
    assert r.returncode == 2 and "--clock must be between" in r.stderr
    assert "Traceback" not in r.stderr


def test_bench_from_json_refuses_measurement_options(tmp_path, capsys):
    """--from-json measures nothing: the options of a measurement are refused, not ignored
    (`--points bogus` and `--workers 0` were accepted in silence)."""
    from anyprec.host.cli import main
    f = tmp_path / "rep.json"
    f.write_text(json.dumps(_full_report()))
    for extra, flag in ((["--points", "bogus"], "--points"), (["--workers", "0"], "--workers"),
                        (["--full"], "--full"), (["--seed", "7"], "--seed"),
                        (["--clock", "90"], "--clock"), (["--out", "x"], "--out")):
        code = main(["bench", "--from-json", str(f), *extra])
        _, err = capsys.readouterr()
        assert code == 2 and err == (f"anyprec: error: {flag} is for a measurement; "
                                     "--from-json only renders a saved report again\n"), err
    assert main(["bench", "--from-json", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["points"]


@pytest.mark.slow
def test_bench_quick_subset_real(tmp_path):
    # Real place and route + simulation of the make-bench subset.
    r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", "--json",
                        "--no-speed", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    assert len(rep["points"]) == len(bench.QUICK_POINTS)
    for p in rep["points"]:
        assert p["luts"] > 0 and p["fmax_mhz"] > 0


def test_summary_array_only_ratio():
    s_ = dict(_rec("serial", 16, 16, 15000, 110), array_luts=5000, ffs=1, brams=1, dsps=2)
    p_ = dict(_rec("parallel-lut", 8, 8, 19000, 80), array_luts=12000, ffs=1, brams=1, dsps=0)
    s = bench.summarize([s_, p_])
    assert s["equal_lut_ratio_array"]["8"] == pytest.approx(
        (256 * 110e6 / 8 / 5000) / (64 * 80e6 / 12000), rel=1e-3)
    assert s["equal_lut_ratio_array"]["8"] > s["equal_lut_ratio"]["8"]
    assert "MAC arrays alone" in bench.markdown(bench.report([s_, p_]))


def test_summary_per_cycle_ratio_takes_the_clocks_out():
    pts = [_rec("serial", 16, 16, 8000, 120, 1.0), _rec("parallel-lut", 8, 8, 12000, 60)]
    s = bench.summarize(pts)
    # The clock ratio (2x) is in the plain ratio and not in the per-cycle one.
    assert s["equal_lut_ratio"]["8"] == pytest.approx(
        2 * s["equal_lut_ratio_per_cycle"]["8"], rel=1e-3)
    assert s["equal_lut_ratio_per_cycle"]["1"] == pytest.approx(
        (256 / 8000) / (64 / 12000), rel=1e-3)


def test_bench_from_json_rerenders_and_counts_no_fit_as_a_result(tmp_path):
    pts = [dict(_rec("serial", 16, 16, 8000, 120), ref_layer=[256, 256]),
           _rec("parallel-lut", 8, 8, 12000, 60),
           {"design": "serial", "board": "icebreaker", "rows": 1, "cols": 4,
            "error": "the design does not fit the device: ICESTORM_LC 6039/5280 (114%)"}]
    for p in pts[:2]:
        p.update({"ffs": 1, "brams": 1, "dsps": 0})
    layer = {"m": 32, "k": 32, "cycles": {"1": 40}, "over_ideal": {"1": 2.5},
             "overhead_cycles": [20], "latency_ratio_8_over_k": {"1": 3.0},
             "ideal_ratio_8_over_k": {"1": 8.0}}
    for key in ("cycles", "over_ideal"):
        layer[key] = {str(k): layer[key]["1"] for k in range(1, 9)}
    for key in ("latency_ratio_8_over_k", "ideal_ratio_8_over_k"):
        layer[key] = {str(k): layer[key]["1"] for k in (1, 2, 4)}
    rep = {"points": pts, "seed": 1, "simulator": "verilator", "tools": {}, "date": "x",
           "layer_cycles": {"config": "default 8x8", "layers": [layer]}}
    f = tmp_path / "rep.json"
    f.write_text(json.dumps(rep))
    r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", "--from-json",
                        str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "does not fit the device" in r.stdout and "equal clocks" in r.stdout
    # --include adds the points of another report (the whole-device pair), marked, and
    # the summary is recomputed over all of them; points measured now are not replaced.
    dev = {"points": [dict(_rec("serial", 32, 32, 30000, 90), ffs=1, brams=1, dsps=2,
                           ref_layer=[256, 256]),
                      dict(_rec("parallel-dsp", 12, 12, 9000, 80), ffs=1, brams=1, dsps=146,
                           clock_constraint_mhz=90.0, measured_on="2026-12-06"),
                      dict(_rec("serial", 16, 16, 1, 1), ffs=1, brams=1, dsps=0,
                           ref_layer=[256, 256])],
           "tools": {"x": "1"}, "date": "2026-11-22", "note": "the 12x12 point is missing"}
    g = tmp_path / "dev.json"
    g.write_text(json.dumps(dev))
    r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", "--from-json",
                        str(f), "--include", str(g), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    merged = json.loads(r.stdout)
    assert [(p["design"], p["rows"]) for p in merged["points"]] == [
        ("serial", 16), ("parallel-lut", 8), ("serial", 1), ("serial", 32),
        ("parallel-dsp", 12)]
    assert merged["points"][0]["luts"] == 8000 and "included_from" not in merged["points"][0]
    assert merged["points"][3]["measured_on"] == "2026-11-22"
    md = bench.markdown(merged)
    assert "the 12x12 point is missing" in md
    # Included points built at different clock constraints get footnotes of their own.
    assert "| 32x32 (b) |" in md and "| 12x12 (c) |" in md
    assert "(b) measured on 2026-11-22 by the same flow, and included" in md
    # A point re-measured alone keeps its own date.
    assert merged["points"][4]["measured_on"] == "2026-12-06"
    assert ("(c) measured on 2026-12-06 by the same flow, place and route constrained at "
            "90 MHz") in md
    assert merged["summary"]["whole_device_pairs"]["1"] == (
        "32x32 serial vs 12x12 parallel-dsp (146 DSPs)")
    assert merged["summary"]["whole_device_ratio"]["1"] == pytest.approx(
        (1024 * 90e6) / (144 * 80e6), rel=1e-3)
    # Re-rendering the merged report with the same --include keeps one copy of its note.
    f2 = tmp_path / "merged.json"
    f2.write_text(r.stdout)
    r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", "--from-json",
                        str(f2), "--include", str(g)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("the 12x12 point is missing") == 1, r.stdout
    r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", "--from-json",
                        str(f), "--include", str(tmp_path / "none.json")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", "--from-json",
                        str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("anyprec: error: ")
    assert len(r.stderr.strip().splitlines()) == 1
    # A point without what the table reads (here its MAC/s) is refused in one line, as an
    # included report or as the report itself, not a traceback while rendering.
    half = tmp_path / "half.json"
    half.write_text(json.dumps({"points": [{k: v for k, v in dev["points"][0].items()
                                            if k != "mac_per_s"}]}))
    for argv in (["--from-json", str(f), "--include", str(half)], ["--from-json", str(half)]):
        r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", *argv],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip() == (f"anyprec: error: {half} is not an 'anyprec bench --json' "
                                    "report (point 1 (serial 32x32) has no 'mac_per_s')")
    # A point that is not an object: the same one-line error, --from-json as --include.
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"points": [3]}))
    for argv in (["--from-json", str(f), "--include", str(odd)], ["--from-json", str(odd)]):
        r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", *argv],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(f"anyprec: error: {odd} is not an 'anyprec bench --json'")


@pytest.mark.parametrize("argv, msg", [
    (["--include", "HALF"], "has no 'mac_per_s'"),
    (["--include", "DIR"], "cannot read"),
    (["--scheduler", "bad:addr"], "is not a Dask scheduler address like tcp://HOST:8786"),
])
def test_bench_bad_input_fails_before_any_build(tmp_path, argv, msg):
    """A malformed --include or --scheduler is a one-line error before anything is built
    (a sweep takes minutes to hours; the timeout fails the test if one starts)."""
    point = dict(_rec("serial", 8, 8, 1, 1), ffs=1, brams=1, dsps=0)
    del point["mac_per_s"]
    half = tmp_path / "half.json"
    half.write_text(json.dumps({"points": [point]}))
    argv = [str(half) if a == "HALF" else str(tmp_path) if a == "DIR" else a for a in argv]
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "anyprec.host.cli", "bench", "--points",
                        "serial:ulx3s-85f:4x4", "--out", str(out), *argv],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("anyprec: error: ")]
    assert len(lines) == 1 and msg in lines[0], r.stderr
    assert not out.exists()


def _full_report():
    """A complete report, as 'anyprec bench --json' writes it (stand-in numbers)."""
    pts = [dict(_rec("serial", 16, 16, 8000, 120), ref_layer=[256, 256]),
           _rec("parallel-lut", 8, 8, 12000, 60),
           dict(_rec("serial", 1, 4, 5000, 40, board="icebreaker"), ref_layer=[64, 64])]
    for p in pts:
        p.update({"ffs": 1, "brams": 1, "dsps": 0})
    layer = {"m": 32, "k": 32, "cycles": {str(k): 40 for k in range(1, 9)},
             "over_ideal": {str(k): 2.5 for k in range(1, 9)}, "overhead_cycles": [20],
             "latency_ratio_8_over_k": {k: 3.0 for k in ("1", "2", "4")},
             "ideal_ratio_8_over_k": {k: 8.0 for k in ("1", "2", "4")}}
    speed = {"workload": {"samples": 100, "wbits": [1, 8]},
             "bare_verilator": {"cycles": 10, "seconds": 0.5, "cycles_per_second": 20.0,
                                "runs_seconds": [0.5, 0.6]},
             "flows": {"verilator": {"cycles": 10, "seconds": 1.0, "cycles_per_second": 10.0,
                                     "ratio_to_bare": 0.5, "same_responses_as_bare": True}}}
    return {"points": pts, "seed": 1, "simulator": "verilator", "tools": {"x": "1"},
            "date": "2026-01-01", "layer_cycles": {"config": "default 8x8", "layers": [layer]},
            "tooling_speed": speed}


def _docs(tmp_path, monkeypatch):
    """Stand-in docs files where --write-docs writes, so that a test sees what it changes."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("performance.md", "performance.png", "performance.json"):
        (docs / name).write_text(f"the {name} before")
    monkeypatch.setattr("anyprec.host.commands.bench.DOCS", docs)
    return {f: f.read_bytes() for f in docs.iterdir()}


def _lc(rep):
    return rep["layer_cycles"]["layers"][0]


# (what is wrong, the change to a complete report, what the error message names)
MALFORMED = [
    ("no date", lambda r: r.pop("date"), "(no 'date')"),
    ("no seed", lambda r: r.pop("seed"), "(no 'seed')"),
    ("no simulator", lambda r: r.pop("simulator"), "(no 'simulator')"),
    ("no tools", lambda r: r.pop("tools"), "(no 'tools')"),
    ("no layer config", lambda r: r["layer_cycles"].pop("config"),
     "(layer_cycles has no 'config')"),
    ("no layer cycles", lambda r: _lc(r).pop("cycles"),
     "(layer_cycles.layers[0] has no 'cycles')"),
    ("no k=8 cycles", lambda r: _lc(r)["cycles"].pop("8"),
     "(layer_cycles.layers[0].cycles has no '8')"),
    ("speed not an object", lambda r: r.update(tooling_speed="fast"),
     "('tooling_speed' is 'fast', not an object)"),
    ("speed without cycles", lambda r: r["tooling_speed"]["bare_verilator"].pop("cycles"),
     "(tooling_speed.bare_verilator has no 'cycles')"),
    ("rows a string", lambda r: r["points"][0].update(rows="8"),
     "(point 1: 'rows' is '8', not a positive integer)"),
    ("ref_layer an object", lambda r: r["points"][0].update(ref_layer={"m": 256}),
     "(point 1 (serial 16x16): 'ref_layer' is {'m': 256}, not a list [M, K] of positive "
     "integers)"),
    ("fmax a string", lambda r: r["points"][2].update(fmax_mhz="40"),
     "(point 3 (serial 1x4): 'fmax_mhz' is '40', not a positive number)"),
    ("k not 1..8", lambda r: r["points"][2]["mac_per_s_per_lut"].update(x=1.0),
     "(point 3 (serial 1x4).mac_per_s_per_lut has 'x', not a k in 1..8)"),
]


def test_bench_from_json_deeply_nested_file_is_one_line(tmp_path, capsys):
    """JSON nested deeper than the parser goes raises RecursionError, not ValueError: still
    one line (it was a traceback), for --from-json and --include alike."""
    from anyprec.host.cli import main
    f = tmp_path / "deep.json"
    f.write_text("[" * 100000 + "]" * 100000)
    for args in (["--from-json", str(f)],
                 ["--points", "serial:ulx3s-85f:4x4", "--include", str(f), "--workers", "0"]):
        code = main(["bench", *args])
        _, err = capsys.readouterr()
        assert code == 2 and "Traceback" not in err, err
        assert err.count("\n") == 1 and err.startswith(
            f"anyprec: error: {f} is not an 'anyprec bench --json' report (maximum "
            "recursion depth exceeded"), err


@pytest.mark.parametrize("change, message", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_bench_from_json_malformed_report_is_one_line_and_leaves_the_docs(
        tmp_path, monkeypatch, capsys, change, message):
    """A report with a field missing or of the wrong type is refused in one line that names
    the file and the field, before anything is written (--write-docs used to rewrite the
    plot, then die with a traceback while writing the text)."""
    from anyprec.host.cli import main
    before = _docs(tmp_path, monkeypatch)
    rep = _full_report()
    change(rep)
    f = tmp_path / "rep.json"
    f.write_text(json.dumps(rep))
    code = main(["bench", "--from-json", str(f), "--write-docs"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith(
        f"anyprec: error: {f} is not an 'anyprec bench --json' report "), err
    assert err.strip().endswith(message), err
    assert {p: p.read_bytes() for p in before} == before


def test_bench_from_json_complete_report_writes_the_docs(tmp_path, monkeypatch, capsys):
    """The complete report of the malformed cases above renders, and writes all three."""
    from anyprec.host.cli import main
    before = _docs(tmp_path, monkeypatch)
    f = tmp_path / "rep.json"
    f.write_text(json.dumps(_full_report()))
    assert main(["bench", "--from-json", str(f), "--write-docs"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "## Simulation speed" in out
    after = {p: p.read_bytes() for p in before}
    assert all(after[p] != before[p] for p in before)
    assert after[tmp_path / "docs" / "performance.png"].startswith(b"\x89PNG")


def test_bench_render_failure_is_one_line_and_leaves_the_docs(tmp_path, monkeypatch,
                                                               capsys):
    """Backstop: a report that passes the checks and still cannot be rendered is a one-line
    error, and the docs are written only once everything has rendered."""
    from anyprec.host.cli import main
    before = _docs(tmp_path, monkeypatch)
    f = tmp_path / "rep.json"
    f.write_text(json.dumps(_full_report()))

    def markdown(rep, plot_name="performance.png"):
        raise KeyError("equal_lut_ratio")
    monkeypatch.setattr(bench, "markdown", markdown)
    code = main(["bench", "--from-json", str(f), "--write-docs"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err, err
    assert err == (f"anyprec: error: cannot render {f}: not a well-formed 'anyprec bench "
                   "--json' report (KeyError: 'equal_lut_ratio')\n")
    assert {p: p.read_bytes() for p in before} == before


def test_bench_write_failure_leaves_the_docs_as_a_set(tmp_path, monkeypatch, capsys):
    """A disk that fills while --write-docs writes (here: on performance.json, the last
    one) leaves all three docs files as they were, not a new plot beside old tables."""
    import errno
    import os
    import pathlib
    from anyprec.host.cli import main
    before = _docs(tmp_path, monkeypatch)
    f = tmp_path / "rep.json"
    f.write_text(json.dumps(_full_report()))
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_open, real_write_text = os.open, pathlib.Path.write_text

    def open_(path, flags, mode=0o777, *, dir_fd=None):
        if flags & os.O_CREAT and "performance.json" in os.path.basename(path):
            raise full
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def write_text(self, *a, **kw):
        if self.name == "performance.json":
            raise full
        return real_write_text(self, *a, **kw)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    code = main(["bench", "--from-json", str(f), "--write-docs"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert "performance.json" in err and "No space left" in err, err
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == sorted(
        p.name for p in before)        # (no temporary file left behind)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["points"][0].update(rows="8"), "point 1: 'rows' is '8'"),
    (lambda r: r["points"][0].update(ref_layer={"m": 256}), "'ref_layer' is {'m': 256}"),
    (lambda r: r["points"][2].update(fmax_mhz="40"), "'fmax_mhz' is '40'"),
    (lambda r: r["points"][1].update(measured_on=20261206), "'measured_on' is 20261206"),
    (lambda r: r.update(date=20261206), "'date' is 20261206, not a string"),
], ids=["rows", "ref_layer", "fmax", "measured_on", "date"])
def test_bench_malformed_include_fails_before_anything_else(tmp_path, capsys, change,
                                                            message):
    """--include checks the types of the points' fields before any build, before even the
    other options (--workers 0 here: the build can never start, whatever the outcome)."""
    from anyprec.host.cli import main
    rep = _full_report()
    change(rep)
    f = tmp_path / "inc.json"
    f.write_text(json.dumps(rep))
    out = tmp_path / "out"
    code = main(["bench", "--points", "serial:ulx3s-85f:4x4", "--out", str(out),
                 "--include", str(f), "--workers", "0"])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err, err
    assert err.count("\n") == 1 and err.startswith(
        f"anyprec: error: {f} is not an 'anyprec bench --json' report ("), err
    assert message in err, err
    assert not out.exists()
