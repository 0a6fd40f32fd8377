"""Tests of the any-precision golden model: data, training, folding, the model file."""

import copy
import json
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from anyprec.golden import arith, export
from anyprec.golden.data import load_split
from anyprec.golden.errors import AnyprecError, ModelFileError
from anyprec.golden.model import (AnyPrecisionMLP, fake_quant_activations, quantize_input,
                                  train)

#: Acceptance floors of the shipped model (integer reference, abits 8).
FLOORS = {1: 0.90, **{k: 0.95 for k in range(2, 8)}, 8: 0.97}


@pytest.fixture(scope="module")
def shipped():
    return export.load_model(export.DEFAULT_MODEL, expect_n=8)


@pytest.fixture(scope="module")
def shipped_float():
    return export.load_float(export.DEFAULT_FLOAT_MODEL)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 1-epoch, 16-unit model exported to a temporary directory (the training smoke run)."""
    out = tmp_path_factory.mktemp("tiny")
    model, used = train({"hidden": [16], "epochs": 1, "seed": 3})
    npz, pt, meta = export.export(model, used, out)
    return model, npz, pt, meta


def _arrays_equal(a, b):
    return (a.n == b.n and a.a == b.a and len(a.layers) == len(b.layers) and all(
        np.array_equal(x.codes, y.codes) and np.array_equal(x.m, y.m)
        and np.array_equal(x.b, y.b) and np.array_equal(x.shift, y.shift)
        for x, y in zip(a.layers, b.layers)))


# --- data -----------------------------------------------------------------------------

def test_split_is_fixed_stratified_and_integer():
    x_train, x_test, y_train, y_test = load_split()
    assert x_train.shape == (1257, 64) and x_test.shape == (540, 64)
    assert x_test.dtype == np.int64 and y_test.dtype == np.int64
    assert x_test.min() == 0 and x_test.max() == 16
    # Stratified: every class's test share is 30 % of it, to within one image.
    for c in range(10):
        n_c = np.sum(y_train == c) + np.sum(y_test == c)
        assert abs(np.sum(y_test == c) - 0.3 * n_c) <= 1
    # Deterministic: the same images as a fresh sklearn call with the documented settings.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    ref = train_test_split(d.data, d.target, test_size=0.3, stratify=d.target, random_state=0)
    assert np.array_equal(ref[1], x_test) and np.array_equal(ref[3], y_test)


# --- the shipped checkpoint -----------------------------------------------------------

def test_shipped_model_meets_the_accuracy_floors(shipped):
    net, meta = shipped
    rows = export.accuracy_table(net, abits=(8, 4, 2))
    print("\ninteger reference accuracy (wbits: abits 8 / 4 / 2):")
    for k in range(1, 9):
        print(f"  {k}: " + " / ".join(f"{r['accuracy']:.4f}" for r in rows if r["wbits"] == k))
    for r in rows:
        if r["abits"] == 8:
            assert r["accuracy"] >= FLOORS[r["wbits"]], r
    # The metadata's table is the one the file actually produces.
    assert meta["accuracy"] == rows
    assert meta["dataset"] == "digits" and meta["split"]["test_samples"] == 540


def test_integer_and_float_paths_agree(shipped, shipped_float):
    net, _ = shipped
    _, x_test, _, y_test = load_split()
    model = copy.deepcopy(shipped_float).double()  # float64 once, not per precision
    figures = {}
    for a in (8, 4, 2):
        for k in range(1, 9):
            pi = net.predict(arith.quantize_pixels(x_test.T, a, 8), k, a)
            pf = export.float_predictions(model, k, a, x_test)
            figures[(k, a)] = float(np.mean(pi == pf))
    print("\nint/float argmax agreement, abits 8:",
          " ".join(f"{figures[(k, 8)]:.4f}" for k in range(1, 9)))
    print("abits 4:", " ".join(f"{figures[(k, 4)]:.4f}" for k in range(1, 9)),
          " abits 2:", " ".join(f"{figures[(k, 2)]:.4f}" for k in range(1, 9)))
    for k in range(1, 9):
        assert figures[(k, 8)] >= 0.99, (k, figures[(k, 8)])


def test_float_and_integer_activations_match(shipped, shipped_float):
    """Layer by layer, the integer activations are the float path's up to rare 1-LSB ties."""
    net, _ = shipped
    _, x_test, _, _ = load_split()
    model = copy.deepcopy(shipped_float).double()
    with torch.no_grad():
        _, levels = model(torch.from_numpy(x_test / 16.0), 4, 8, return_all=True)
    _, trace = net.forward(arith.quantize_pixels(x_test.T, 8, 8), 4, 8, return_all=True)
    assert np.array_equal(levels[0].numpy().T, trace["x"][0])  # the inputs: exactly
    for lf, li in zip(levels[1:], trace["x"][1:]):
        diff = np.abs(lf.numpy().T - li)
        assert diff.max() <= 1 and np.mean(diff == 0) >= 0.99


def test_shipped_float_checkpoint_folds_to_the_shipped_model(shipped, shipped_float):
    assert _arrays_equal(export.fold(shipped_float), shipped[0])


# --- folding and the float path mirror arith -----------------------------------------

def test_model_codes_truncate_to_every_precision(shipped_float):
    for l in range(shipped_float.num_layers):
        codes = shipped_float.codes(l)
        s_n = shipped_float.weight_scale(l)
        w = shipped_float.weights[l].detach().double().numpy()
        for k in range(1, 9):
            wq = shipped_float.quantized_weight(l, k).detach().double().numpy()
            assert np.allclose(wq, arith.dequantize(codes, 8, k, s_n), rtol=1e-6, atol=0)
            assert np.array_equal(arith.quantize_weights(w, s_n * (1 << (8 - k)), k),
                                  codes >> (8 - k))


def test_input_quantiser_equals_quantize_pixels():
    p = np.arange(17)
    for amax in (4, 8, 12):
        for a in range(1, amax + 1):
            for dtype in (torch.float32, torch.float64):
                q = quantize_input(torch.from_numpy(p / 16.0).to(dtype), a, amax)
                assert q.to(torch.int64).tolist() == arith.quantize_pixels(p, a, amax).tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-5, 300, allow_nan=False), min_size=1, max_size=30),
       st.floats(1e-3, 4), st.integers(1, 8))
def test_activation_quantiser_equals_arith_in_float64(vs, sigma, a):
    v = np.array(vs)
    q = fake_quant_activations(torch.from_numpy(v), sigma, a, 8)
    assert q.to(torch.int64).tolist() == arith.quantize_activations(v, sigma, a, 8).tolist()


def test_straight_through_gradients():
    v = torch.tensor([-1.0, 0.3, 2.0, 500.0], requires_grad=True)
    fake_quant_activations(v, 1.0, 8, 8).sum().backward()
    assert v.grad.tolist() == [0.0, 1.0, 1.0, 0.0]  # identity inside the range only
    model = AnyPrecisionMLP([4], n=4)
    model.quantized_weight(0, 2).sum().backward()
    assert torch.equal(model.weights[0].grad, torch.ones_like(model.weights[0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=8),
       st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=8, max_size=8))
def test_requant_table_takes_the_largest_shift(rm, rb):
    rm = np.array(rm)
    rb = np.array(rb[:len(rm)])
    m, b, shift = export.requant_table(rm, rb)
    assert np.abs(m).max() <= 32767 and np.abs(b).max() <= 2 ** 31 - 1
    assert np.array_equal(m, np.floor(rm * 2.0 ** shift + 0.5))
    assert np.array_equal(b, np.floor(rb * 2.0 ** shift + 0.5))
    if shift < 63:  # one more bit would overflow m or b
        m1 = np.floor(rm * 2.0 ** (shift + 1) + 0.5)
        b1 = np.floor(rb * 2.0 ** (shift + 1) + 0.5)
        assert np.abs(m1).max() > 32767 or np.abs(b1).max() > 2 ** 31 - 1


def test_requant_table_refuses_what_cannot_fit():
    with pytest.raises(AnyprecError, match="too large"):
        export.requant_table(np.array([40000.0]), np.array([0.0]))


# --- the model file --------------------------------------------------------------------

def test_export_import_round_trips_exactly(shipped, tmp_path):
    net, meta = shipped
    path = tmp_path / "copy.npz"
    export.save_model(path, net, meta)
    net2, meta2 = export.load_model(path, expect_n=8)
    assert _arrays_equal(net, net2) and meta2 == meta
    # The writer is deterministic: the shipped file is exactly what it writes.
    assert path.read_bytes() == export.DEFAULT_MODEL.read_bytes()
    # And a plain numpy reader sees the documented layout.
    with np.load(path, allow_pickle=False) as z:
        assert str(z["format"]) == "anyprec-model" and int(z["version"]) == 1
        assert z["layer0_planes"].shape == (8, 64, 8) and z["layer2_m"].dtype == np.int16


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


def _members(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("change,match", [
    (lambda d: d.update(format=np.array("something-else")), "format is 'something-else'"),
    (lambda d: d.update(version=np.array(2)), "version 2 is not supported"),
    (lambda d: d.pop("layer1_b"), "missing key.*layer1_b"),
    (lambda d: d.pop("meta"), "missing key.*meta"),
    (lambda d: d.update(extra=np.zeros(1)), "unexpected key.*extra"),
    # (at most 8 names, in layer order: 1,000 layers made a message of every missing key)
    (lambda d: d.update(shapes=np.full((1000, 2), 64)),
     r"missing key\(s\) layer3_planes, layer3_m, layer3_b, layer3_shift, layer4_planes, "
     r"layer4_m, layer4_b, layer4_shift, \.\.\. \(3,988 in all\)$"),
    (lambda d: d.update(layer0_m=d["layer0_m"].astype(np.int32)), "'layer0_m' must be int16"),
    (lambda d: d.update(layer2_b=d["layer2_b"][:, :5]), r"'layer2_b' must have shape \(8, 10\)"),
    (lambda d: d.update(layer0_shift=np.full(8, 64, np.uint8)), "shift of 64"),
    (lambda d: d.update(shapes=np.array([[64, 64], [64, 63], [10, 64]])), "layer 1 has 63 inputs"),
    (lambda d: d.update(meta=np.array("[1, 2]")), "JSON object"),
    (lambda d: d.update(meta=np.array("{oops")), "not valid JSON"),
    (lambda d: d.update(n=np.array(7)), "'layer0_planes' must have shape"),
])
def test_load_rejects_bad_contents(tmp_path, change, match):
    arrays = _members(export.DEFAULT_MODEL)
    change(arrays)
    path = _write(tmp_path / "bad.npz", arrays)
    with pytest.raises(ModelFileError, match=match) as e:
        export.load_model(path)
    assert "\n" not in str(e.value)


def test_load_rejects_padding_bits(tmp_path):
    # K = 12 packs into two bytes per row, the last four bits of the second are padding.
    net = arith.IntNetwork([arith.IntLayer(np.zeros((2, 12), np.int64), np.zeros((8, 2)),
                                           np.zeros((8, 2)), np.zeros(8))], n=8, a=8)
    export.save_model(tmp_path / "k12.npz", net)
    arrays = _members(tmp_path / "k12.npz")
    arrays["layer0_planes"][0, 0, 1] |= 0b0001_0000  # column 11: a real bit, accepted
    net2, _ = export.load_model(_write(tmp_path / "bit.npz", arrays))
    assert net2.layers[0].codes[0, 11] == 128
    arrays["layer0_planes"][0, 0, 1] |= 0b0000_0001  # column 15, beyond K = 12
    with pytest.raises(ModelFileError, match="non-zero padding bits"):
        export.load_model(_write(tmp_path / "pad.npz", arrays))


def test_load_rejects_missing_corrupt_and_wrong_n(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        export.load_model(tmp_path / "absent.npz")
    with pytest.raises(ModelFileError, match="not a file"):
        export.load_model(tmp_path)
    text = tmp_path / "text.npz"
    text.write_text("not a zip\n")
    with pytest.raises(ModelFileError, match="not an anyprec model file"):
        export.load_model(text)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(export.DEFAULT_MODEL.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="truncated.npz: corrupt model file"):
        export.load_model(truncated)
    # A member whose compressed bytes are damaged (the zip directory still intact).
    data = bytearray(export.DEFAULT_MODEL.read_bytes())
    with zipfile.ZipFile(export.DEFAULT_MODEL) as zf:
        info = zf.getinfo("layer1_planes.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 20
    data[start:start + 40] = bytes(40)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupt model file"):
        export.load_model(damaged)
    npy = tmp_path / "bare.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ModelFileError, match="bare .npy"):
        export.load_model(npy)
    with pytest.raises(ModelFileError, match="N=4 was expected"):
        export.load_model(export.DEFAULT_MODEL, expect_n=4)


def test_float_checkpoint_errors(tmp_path):
    with pytest.raises(ModelFileError, match="no such float checkpoint"):
        export.load_float(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="cannot read"):
        export.load_float(bad)
    ckpt = AnyPrecisionMLP([8]).checkpoint()
    ckpt["weights"][0] = torch.zeros(3, 3)
    torch.save(ckpt, bad)
    with pytest.raises(ModelFileError, match="layer 0 weights"):
        export.load_float(bad)


# --- training --------------------------------------------------------------------------

def test_training_smoke_run_gives_a_loadable_model(tiny):
    model, npz, pt, meta = tiny
    net, meta2 = export.load_model(npz, expect_n=8)
    assert [layer.shape for layer in net.layers] == [(16, 64), (10, 16)]
    assert meta2 == meta and meta["training"]["epochs"] == 1 and meta["seed"] == 3
    assert json.loads(json.dumps(meta)) == meta
    assert _arrays_equal(export.fold(export.load_float(pt)), net)
    # One epoch is enough to beat chance by far at 8 bits (computed, not recorded).
    acc = export.accuracy_table(net, wbits=[8], abits=[8])[0]["accuracy"]
    assert acc > 0.5, acc
    assert meta["accuracy"][7]["accuracy"] == acc


def test_training_is_bit_reproducible(tiny, tmp_path):
    _, npz, pt, _ = tiny
    model, used = train({"hidden": [16], "epochs": 1, "seed": 3})
    npz2, pt2, _ = export.export(model, used, tmp_path)
    assert npz2.read_bytes() == npz.read_bytes()
    assert pt2.read_bytes() == pt.read_bytes()
    other, _ = train({"hidden": [16], "epochs": 1, "seed": 4})
    assert not torch.equal(other.weights[0], model.weights[0])


def test_training_restores_torch_settings():
    threads = torch.get_num_threads()
    train({"hidden": [4], "epochs": 1})
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown training setting"):
        train({"epoch": 3})
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train({"epochs": 0})
    with pytest.raises(ValueError, match="layer widths"):
        AnyPrecisionMLP([0])
