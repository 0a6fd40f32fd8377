"""The ``anyprec golden`` and ``anyprec train`` commands, run as a user runs them."""

import json
import subprocess
import sys

import numpy as np
import pytest

from anyprec.golden import export

CLI = [sys.executable, "-m", "anyprec.host.cli"]


def anyprec(*args, cwd=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def api_table():
    net, _ = export.load_model(export.DEFAULT_MODEL)
    return export.accuracy_table(net, abits=(8, 4, 2))


def test_golden_json_schema_and_values(api_table):
    r = anyprec("golden", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"dataset", "samples", "results"}
    assert out["dataset"] == "digits" and out["samples"] == 540
    for row in out["results"]:
        assert set(row) == {"wbits", "abits", "accuracy"}
        assert isinstance(row["wbits"], int) and isinstance(row["abits"], int)
        assert 0.0 <= row["accuracy"] <= 1.0
    # Default: wbits 1-8 at abits 8, then abits 4 and 2; the same numbers as the API.
    assert [(r["wbits"], r["abits"]) for r in out["results"]] == \
        [(k, a) for a in (8, 4, 2) for k in range(1, 9)]
    assert out["results"] == api_table


def test_golden_selected_precisions_and_table(api_table):
    r = anyprec("golden", "--json", "--wbits", "1,3-4", "--abits", "4")
    assert r.returncode == 0, r.stderr
    want = [row for row in api_table if row["abits"] == 4 and row["wbits"] in (1, 3, 4)]
    assert json.loads(r.stdout)["results"] == want
    r = anyprec("golden", "--wbits", "2", "--abits", "8,2", "--model",
                str(export.DEFAULT_MODEL))
    assert r.returncode == 0, r.stderr
    acc = {(row["wbits"], row["abits"]): row["accuracy"] for row in api_table}
    line = [ln for ln in r.stdout.splitlines() if ln.split()[:1] == ["2"]]
    assert len(line) == 1
    assert [float(v) for v in line[0].split()[1:]] == \
        [round(100 * acc[(2, 8)], 2), round(100 * acc[(2, 2)], 2)]
    assert "540" in r.stdout


def _one_line_error(r, pattern):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines and lines[0].startswith("anyprec") and "error" in lines[0], r.stderr
    assert pattern in r.stderr, r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("args,pattern", [
    (["--wbits", "0"], "--wbits: 0 is out of range 1..8"),
    (["--wbits", "9"], "--wbits: 9 is out of range 1..8"),
    (["--wbits", "1-x"], "--wbits must look like"),
    (["--abits", "9"], "--abits: 9 is out of range 1..8"),
    (["--abits", "0,8"], "--abits: 0 is out of range"),
    (["--max-wbits", "4"], "N=4 was expected"),
    (["--max-wbits", "17"], "--max-wbits must be from 1 to 16"),
    (["--max-wbits", "eight"], "invalid int value"),
    (["--model", "no/such/model.npz"], "no such model file"),
    (["--model", str(export.DEFAULT_FLOAT_MODEL)], "no 'format' entry"),
])
def test_golden_bad_arguments(args, pattern):
    r = anyprec("golden", *args)
    _one_line_error(r, pattern)
    assert len(r.stderr.strip().splitlines()) <= 2  # argparse adds a usage hint line


def test_golden_bad_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello\n")
    _one_line_error(anyprec("golden", "--model", str(text)), "not an .npz/zip archive")
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(export.DEFAULT_MODEL.read_bytes()[:3000])
    _one_line_error(anyprec("golden", "--model", str(trunc)), "corrupt model file")
    with np.load(export.DEFAULT_MODEL) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["version"] = np.array(7)
    np.savez(tmp_path / "v7.npz", **arrays)
    _one_line_error(anyprec("golden", "--model", str(tmp_path / "v7.npz")),
                    "format version 7 is not supported")
    for r in (anyprec("golden", "--model", str(trunc)),):
        assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,pattern", [
    (["--hidden", "0"], "--hidden: layer width 0 is out of range"),
    (["--hidden", "64,x"], "--hidden must be comma-separated integers"),
    (["--hidden", "nothing"], "like '64,64' or 'none'"),
    (["--epochs", "0"], "--epochs must be from 1"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
])
def test_train_bad_arguments(args, pattern):
    r = anyprec("train", *args)
    _one_line_error(r, pattern)
    assert len(r.stderr.strip().splitlines()) == 1


def test_train_then_golden(tmp_path):
    out = tmp_path / "run"
    r = anyprec("train", "--hidden", "12", "--epochs", "2", "--seed", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "epoch 1/2" in r.stdout and "epoch 2/2" in r.stdout and "loss" in r.stdout
    assert (out / "digits_mlp.pt").is_file()
    net, meta = export.load_model(out / "digits_mlp.npz", expect_n=8)
    assert [layer.shape for layer in net.layers] == [(12, 64), (10, 12)]
    assert meta["seed"] == 5 and meta["hidden"] == [12]
    assert meta["training"]["epochs"] == 2
    # The table train prints is the metadata's, which is what golden measures.
    lines = r.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("wbits"))
    printed = {int(ln.split()[0]): float(ln.split()[1]) for ln in lines[head + 1:head + 9]}
    a8 = {row["wbits"]: row["accuracy"] for row in meta["accuracy"] if row["abits"] == 8}
    assert printed == {k: round(100 * v, 2) for k, v in a8.items()}
    g = anyprec("golden", "--json", "--model", str(out / "digits_mlp.npz"))
    assert g.returncode == 0, g.stderr
    assert json.loads(g.stdout)["results"] == meta["accuracy"]


def test_train_one_layer_and_the_shipped_linear_model(tmp_path):
    """``--hidden none`` trains the one-layer classifier (64-10) as digits_linear.*; the
    shipped one (for one-slot devices) is that model at the defaults: one 10x64 layer,
    N = A = 8, above 90 % at every weight precision with 8-bit activations."""
    out = tmp_path / "lin"
    r = anyprec("train", "--hidden", "none", "--epochs", "1", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "training 64-10 at wbits 1-8" in r.stdout
    net, meta = export.load_model(out / "digits_linear.npz", expect_n=8)
    assert [layer.shape for layer in net.layers] == [(10, 64)] and meta["hidden"] == []
    assert (out / "digits_linear.pt").is_file() and not (out / "digits_mlp.npz").exists()
    net, meta = export.load_model(export.DEFAULT_LINEAR_MODEL, expect_n=8)
    assert [layer.shape for layer in net.layers] == [(10, 64)] and (net.n, net.a) == (8, 8)
    assert meta["seed"] == 0 and meta["training"]["epochs"] == 40
    a8 = {row["wbits"]: row["accuracy"] for row in meta["accuracy"] if row["abits"] == 8}
    assert sorted(a8) == list(range(1, 9)) and min(a8.values()) > 0.9, a8


def test_train_refuses_a_file_as_output_dir(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = anyprec("train", "--hidden", "4", "--epochs", "1", "--out", str(f), "--quiet")
    _one_line_error(r, "exists and is not a directory")


def test_help_is_fast_and_documents_the_defaults():
    from anyprec.golden.model import TrainSettings

    r = anyprec("train", "--help")
    assert r.returncode == 0
    assert f"(default {TrainSettings.DEFAULTS['epochs']})" in r.stdout  # help text in sync
    assert "examples:" in r.stdout
    r = anyprec("golden", "--help")
    assert r.returncode == 0 and "examples:" in r.stdout
    # --help must not pay for torch: the command modules import it lazily.
    r = subprocess.run([sys.executable, "-c", "import sys, anyprec.host.cli as c; "
                        "c.build_parser(); print('torch' in sys.modules)"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr


def test_golden_with_a_model_for_another_n(tmp_path):
    from anyprec.golden.model import train

    model, used = train({"hidden": [8], "epochs": 1, "n": 4, "a": 4})
    npz, _, meta = export.export(model, used, tmp_path)
    _one_line_error(anyprec("golden", "--model", str(npz)),
                    "model has 4-bit weights (N=4) but N=8 was expected")
    r = anyprec("golden", "--json", "--model", str(npz), "--max-wbits", "4")
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    # Default activation precisions: A (= 4) and 2, wbits 1..N.
    assert [(row["wbits"], row["abits"]) for row in results] == \
        [(k, a) for a in (4, 2) for k in range(1, 5)]
    assert results == export.accuracy_table(export.load_model(npz)[0], abits=(4, 2))
    _one_line_error(anyprec("golden", "--model", str(npz), "--max-wbits", "4", "--abits", "8"),
                    "--abits: 8 is out of range 1..4 (the model's A)")
