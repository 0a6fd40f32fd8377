"""User mistakes on the command line and in files: one line on stderr, no traceback.

Every case runs ``anyprec`` (through ``main`` in-process, and a few per command in a
subprocess as a user runs it) with bad arguments and with
missing, corrupt (truncated .npz, random bytes, a text file), wrong-dtype, wrong-shape
and mismatched files, for ``golden``, ``verify``, ``matvec``, ``stream``, ``verilog`` and
``train``. Each must fail quickly (no simulator build, no training: a time limit
enforces it) with a non-zero exit status and a single ``anyprec: error: ...`` line
(argparse's own usage errors: ``anyprec <command>: error: ...`` and the one-line
``--help`` hint), and never print a traceback.

The driver checks a model against the device's INFO before anything is streamed:
:class:`ModelMismatchError` for more layers than slots, a larger K or M, another N or A,
or more weight memory than the device has, with only INFO / STATUS on the wire.
"""

import asyncio
import subprocess
import sys

import numpy as np
import pytest

from anyprec.golden import export
from anyprec.hw.config import AnyprecConfig
from anyprec.host.devmodel import ModelDevice, random_network
from anyprec.host.driver import AsyncDriver, Driver
from anyprec.host.errors import ModelMismatchError
from anyprec.host.protocol import Opcode
from anyprec.host.transport import AsyncModelTransport, ModelTransport

CLI = [sys.executable, "-m", "anyprec.host.cli"]
#: No case may get as far as a simulator build or a training run.
LIMIT_S = 60


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-errors")
    rng = np.random.default_rng(2024)
    good = export.DEFAULT_MODEL.read_bytes()
    (d / "trunc.npz").write_bytes(good[:len(good) // 3])
    (d / "random.npz").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "random.npy").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (d / "text.npz").write_text("weights: 1 2 3\nthis is not a model\n")
    (d / "text.npy").write_text("1 2 3 4 5 6\n")
    (d / "afile").write_text("a file, not a directory\n")
    (d / "adir").mkdir()
    with np.load(export.DEFAULT_MODEL) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(d / "dtype.npz", **{**arrays, "layer0_m": arrays["layer0_m"].astype(np.float32)})
    np.savez(d / "shape.npz", **{**arrays, "layer1_b": arrays["layer1_b"][:, :-1]})
    np.savez(d / "nofmt.npz", **{k: v for k, v in arrays.items() if k != "format"})
    # Valid model files that do not fit: 32 inputs (the digits have 64), a 80 x 64 layer
    # (the default build takes 64 x 64), N = 4 (the build stores 8-bit weights), 5 layers.
    export.save_model(d / "k32.npz", random_network(rng, [(16, 32), (10, 16)], 8, 8))
    export.save_model(d / "m80.npz", random_network(rng, [(80, 64), (10, 80)], 8, 8))
    export.save_model(d / "n4.npz", random_network(rng, [(16, 64), (10, 16)], 4, 8))
    export.save_model(d / "l5.npz", random_network(
        rng, [(8, 64), (8, 8), (8, 8), (8, 8), (10, 8)], 8, 8))
    np.save(d / "W.npy", np.full((4, 6), 3, dtype=np.uint8))
    np.save(d / "x.npy", np.full(6, 3, dtype=np.uint8))
    np.save(d / "Wf.npy", np.full((4, 6), 0.5))
    np.save(d / "xf.npy", np.full(6, 0.5))
    np.save(d / "W3.npy", np.zeros((2, 3, 4), dtype=np.uint8))
    np.save(d / "x2.npy", np.zeros((6, 1), dtype=np.uint8))
    np.save(d / "x5.npy", np.zeros(5, dtype=np.uint8))
    np.save(d / "Wneg.npy", np.full((4, 6), -1, dtype=np.int16))
    np.save(d / "W0.npy", np.zeros((0, 6), dtype=np.uint8))
    np.save(d / "Wwide.npy", np.zeros((1, 100000), dtype=np.uint8))
    np.save(d / "xwide.npy", np.zeros(100000, dtype=np.uint8))
    np.save(d / "Wobj.npy", np.array([[{"w": 1}]], dtype=object), allow_pickle=True)
    npy = (d / "W.npy").read_bytes()
    (d / "Wtrunc.npy").write_bytes(npy[:-7])
    np.savez(d / "W.npz", w=np.full((4, 6), 3, dtype=np.uint8))
    # A .npy header that announces 10^13 bytes (np.load would try to allocate them), and
    # one that does not parse.
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (10000000, 1000000), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    (d / "huge.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                 + header + bytes(16))
    bad = b"{'descr': nonsense, 'fortran_order': False, 'shape': (2,), }"
    bad += b" " * (63 - len(bad) % 64) + b"\n"
    (d / "badhdr.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(bad).to_bytes(2, "little")
                                   + bad + bytes(2))
    # Headers that broke the parse with other exceptions than ValueError: an unclosed
    # bracket (tokenize's TokenError), and dimensions np.load cannot represent
    # (OverflowError) or that are negative.
    for name, hdr in [("openhdr", b"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), "),
                      ("bigdim", b"{'descr': '|u1', 'fortran_order': False, "
                                 b"'shape': (0, 99999999999999999999), }"),
                      ("negdim", b"{'descr': '|u1', 'fortran_order': False, 'shape': (-1, 2), }")]:
        hdr += b" " * (63 - len(hdr) % 64) + b"\n"
        (d / f"{name}.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little")
                                        + hdr + bytes(4))
    # A valid model that does not classify the digits (5 outputs, not 10).
    export.save_model(d / "o5.npz", random_network(rng, [(16, 64), (5, 16)], 8, 8))
    return d


def run(args, cwd):
    """``anyprec args`` in a subprocess, as a user runs it."""
    try:
        return subprocess.run(CLI + args, capture_output=True, text=True, cwd=cwd,
                              timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"anyprec {' '.join(args)} ran for more than {LIMIT_S} s: a user "
                    "mistake must be refused before any long run starts")


@pytest.fixture
def run_inproc(capsys, monkeypatch):
    """``anyprec args`` through ``anyprec.host.cli.main`` in this process (much faster
    than a subprocess; an exception other than the CLI's own errors propagates and fails
    the test, as a traceback would). Returns a CompletedProcess-like result."""
    from types import SimpleNamespace
    from anyprec.host.cli import main

    def go(args, cwd):
        import time
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        t0 = time.monotonic()
        try:
            code = main(list(args))
        except SystemExit as e:         # argparse
            code = e.code
        assert time.monotonic() - t0 < LIMIT_S
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)
    return go


#: Cases that also run as a real subprocess (one or two per command).
SUBPROCESS = {"golden-truncated", "verify-random", "matvec-truncated-npz", "stream-text",
              "verilog-name-space", "train-out-under-file", "verilog-design",
              "no-such-command"}


#: A small build, for cases that generate the Verilog before they fail.
SMALL = ["--rows", "2", "--cols", "2", "--max-m", "4", "--max-k", "4", "--layers", "1"]

# (id, arguments, part of the message)
ERRORS = [
    # golden
    ("golden-missing", ["golden", "--model", "nope.npz"], "no such model file"),
    ("golden-dir", ["golden", "--model", "adir"], "not a file"),
    ("golden-truncated", ["golden", "--model", "trunc.npz"], "corrupt model file"),
    ("golden-random", ["golden", "--model", "random.npz"], "not an anyprec model file"),
    ("golden-text", ["golden", "--model", "text.npz"], "not an anyprec model file"),
    ("golden-npy", ["golden", "--model", "W.npy"], "bare .npy array"),
    ("golden-no-format", ["golden", "--model", "nofmt.npz"], "no 'format' entry"),
    ("golden-dtype", ["golden", "--model", "dtype.npz"], "'layer0_m' must be int16"),
    ("golden-shape", ["golden", "--model", "shape.npz"], "'layer1_b' must have shape"),
    ("golden-inputs", ["golden", "--model", "k32.npz"], "the digits need 64 inputs"),
    ("golden-n", ["golden", "--model", "n4.npz"], "N=8 was expected"),
    ("golden-abits", ["golden", "--model", "n4.npz", "--max-wbits", "4", "--abits", "9"],
     "--abits: 9 is out of range"),
    ("golden-outputs", ["golden", "--model", "o5.npz"], "to 5 outputs; the digits need"),
    # (a range is checked before it is expanded: 1-10^9 used to fill the memory)
    ("golden-wbits-huge", ["golden", "--wbits", "1-1000000000"], "out of range 1..8"),
    ("golden-wbits-digit", ["golden", "--wbits", "\u0663"], "must look like"),
    # verify (all refused before the simulation model is built)
    ("verify-missing", ["verify", "--model", "nope.npz"], "no such model file"),
    ("verify-truncated", ["verify", "--model", "trunc.npz"], "corrupt model file"),
    ("verify-random", ["verify", "--model", "random.npz"], "not an anyprec model file"),
    ("verify-text", ["verify", "--model", "text.npz"], "not an anyprec model file"),
    ("verify-dtype", ["verify", "--model", "dtype.npz"], "must be int16"),
    ("verify-shape", ["verify", "--model", "shape.npz"], "must have shape"),
    ("verify-inputs", ["verify", "--model", "k32.npz"], "maps 32 inputs to 10 outputs"),
    ("verify-outputs", ["verify", "--model", "o5.npz"], "need 64 inputs and 10 outputs"),
    ("verify-mixed-slash", ["verify", "--mixed", "8-2-8/"], "looks like '8-2-8'"),
    # (--plot is checked before the simulation runs)
    ("verify-plot-format", ["verify", "--plot", "acc.xyz"], "cannot write a .xyz plot"),
    ("verify-plot-dir", ["verify", "--plot", "nodir/acc.png"], "no directory nodir"),
    # (an existing directory: a missing suffix used to write DIR.png beside it)
    ("verify-plot-is-dir", ["verify", "--plot", "adir"], "--plot adir: is a directory"),
    ("verify-plot-unwritable", ["verify", "--plot", "/proc/acc.png"],
     "--plot /proc/acc.png: cannot write it"),
    ("verify-too-big", ["verify", "--model", "m80.npz"], "max_m x max_k"),
    ("verify-n", ["verify", "--model", "n4.npz"], "4-bit weights"),
    # (--bits not given: the model's N against the build's, not "--bits: 8 is out of range")
    ("verify-build-n", ["verify", "--max-wbits", "4"], "the device stores 4-bit weights"),
    ("verify-layers", ["verify", "--model", "l5.npz"], "5 layers"),
    ("verify-board", ["verify", "--board", "icebreakr"], "unknown board 'icebreakr'"),
    ("verify-board-target", ["verify", "--board", "icebreaker", "--target", "ecp5"],
     "--target ecp5: icebreaker builds the ice40 form"),
    ("verify-board-flag", ["verify", "--board", "ulx3s-25f", "--rows", "0"],
     "--rows must be"),
    ("verilog-board-target", ["verilog", "-o", "t.v", "--board", "arty-a7-35", "--target",
                              "ice40"], "--target ice40: arty-a7-35 builds the generic form"),
    ("verify-build-k", ["verify", "--max-k", "16"], "max_m x max_k"),
    ("verify-samples", ["verify", "--samples", "100000"], "--samples"),
    ("verify-abits", ["verify", "--abits", "9"], "abits must be from 1 to 8"),
    ("verify-bits", ["verify", "--bits", "1-9"], "out of range"),
    ("verify-mixed", ["verify", "--mixed", "8-8-8-8"], "3 layers"),
    ("verify-width", ["verify", "--stream-width", "12"], "--stream-width must be 8, 16 or 32"),
    # matvec
    ("matvec-missing", ["matvec", "--weights", "nope.npy", "--x", "x.npy", "--wbits", "1"],
     "does not exist"),
    ("matvec-dir", ["matvec", "--weights", "adir", "--x", "x.npy", "--wbits", "1"],
     "is a directory"),
    ("matvec-truncated-npy", ["matvec", "--weights", "Wtrunc.npy", "--x", "x.npy",
                              "--wbits", "1"], "Wtrunc.npy is truncated or damaged"),
    ("matvec-truncated-npz", ["matvec", "--weights", "W.npy", "--x", "trunc.npz",
                              "--wbits", "1"], "not a readable .npy file"),
    # (no NumPy header: np.load would take them for pickles and suggest allow_pickle)
    ("matvec-random", ["matvec", "--weights", "random.npy", "--x", "x.npy", "--wbits", "1"],
     "random.npy is not a .npy file (no NumPy header)"),
    ("matvec-text", ["matvec", "--weights", "W.npy", "--x", "text.npy", "--wbits", "1"],
     "text.npy is not a .npy file (no NumPy header)"),
    ("matvec-object", ["matvec", "--weights", "Wobj.npy", "--x", "x.npy", "--wbits", "1"],
     "not a plain .npy array"),
    ("matvec-npz", ["matvec", "--weights", "W.npz", "--x", "x.npy", "--wbits", "1"],
     "an .npz archive"),
    ("matvec-w-dtype", ["matvec", "--weights", "Wf.npy", "--x", "x.npy", "--wbits", "1"],
     "unsigned integer codes"),
    ("matvec-x-dtype", ["matvec", "--weights", "W.npy", "--x", "xf.npy", "--wbits", "1"],
     "must be integers"),
    ("matvec-w-shape", ["matvec", "--weights", "W3.npy", "--x", "x.npy", "--wbits", "1"],
     "2-D"),
    ("matvec-x-shape", ["matvec", "--weights", "W.npy", "--x", "x2.npy", "--wbits", "1"],
     "1-D"),
    ("matvec-mismatch", ["matvec", "--weights", "W.npy", "--x", "x5.npy", "--wbits", "1"],
     "5 activations but the weights have K = 6"),
    ("matvec-negative", ["matvec", "--weights", "Wneg.npy", "--x", "x.npy", "--wbits", "1"],
     "8-bit"),
    ("matvec-empty", ["matvec", "--weights", "W0.npy", "--x", "x.npy", "--wbits", "1"],
     "empty"),
    ("matvec-wbits", ["matvec", "--weights", "W.npy", "--x", "x.npy", "--wbits", "9"],
     "wbits must be from 1 to 8"),
    ("matvec-too-wide", ["matvec", "--weights", "Wwide.npy", "--x", "xwide.npy", "--wbits",
                         "1"], "no build takes a 1 x 100000 layer"),
    ("matvec-fit", ["matvec", "--weights", "W.npy", "--x", "x.npy", "--wbits", "1",
                    "--max-k", "4"], "does not fit"),
    ("matvec-huge-header", ["matvec", "--weights", "huge.npy", "--x", "x.npy", "--wbits",
                            "1"], "header announces a 10000000x1000000 uint8 array"),
    ("matvec-bad-header", ["matvec", "--weights", "W.npy", "--x", "badhdr.npy", "--wbits",
                           "1"], "badhdr.npy has a damaged .npy header"),
    ("matvec-open-header", ["matvec", "--weights", "openhdr.npy", "--x", "x.npy", "--wbits",
                            "1"], "openhdr.npy has a damaged .npy header"),
    ("matvec-big-dim", ["matvec", "--weights", "W.npy", "--x", "bigdim.npy", "--wbits", "1"],
     "damaged .npy header (a dimension of 99999999999999999999)"),
    ("matvec-neg-dim", ["matvec", "--weights", "negdim.npy", "--x", "x.npy", "--wbits", "1"],
     "damaged .npy header (a dimension of -1)"),
    # run and stream on a board: refused before the port is opened
    ("run-outputs", ["run", "--port", "loop://", "--model", "o5.npz"], "10 outputs"),
    ("run-samples", ["run", "--port", "loop://", "--samples", "100000"],
     "--samples must be from 1 to 540"),
    ("run-timeout-nan", ["run", "--port", "loop://", "--timeout", "nan"], "--timeout"),
    ("run-timeout-inf", ["run", "--port", "loop://", "--timeout", "inf"], "--timeout"),
    ("stream-timeout-nan", ["stream", "--port", "loop://", "--timeout", "nan"], "--timeout"),
    # options of the other path are refused, not ignored
    ("stream-port-rows", ["stream", "--port", "loop://", "--rows", "0"],
     "--rows configures the simulated device"),
    ("stream-port-sim", ["stream", "--port", "loop://", "--sim", "icarus"],
     "--sim configures the simulated device"),
    ("stream-port-transport", ["stream", "--port", "loop://", "--transport", "axi"],
     "--transport configures the simulated device"),
    ("stream-port-board", ["stream", "--port", "loop://", "--board", "icebreaker"],
     "--board configures the simulated device"),
    ("stream-baud-no-port", ["stream", "--baud", "0"], "--baud is for a board (--port)"),
    ("stream-timeout-no-port", ["stream", "--timeout", "3"], "--timeout is for a board"),
    ("run-port-option", ["run", "--port", "loop://?logging=foo"], "unknown option"),
    # stream
    ("stream-missing", ["stream", "--model", "nope.npz"], "no such model file"),
    ("stream-truncated", ["stream", "--model", "trunc.npz"], "corrupt model file"),
    ("stream-random", ["stream", "--model", "random.npz"], "not an anyprec model file"),
    ("stream-text", ["stream", "--model", "text.npz"], "not an anyprec model file"),
    ("stream-dtype", ["stream", "--model", "dtype.npz"], "must be int16"),
    ("stream-shape", ["stream", "--model", "shape.npz"], "must have shape"),
    ("stream-too-big", ["stream", "--model", "m80.npz"], "max_m x max_k"),
    ("stream-n", ["stream", "--model", "n4.npz"], "4-bit weights"),
    # (the named MLP: without --model a device with fewer slots than the MLP has layers
    # runs the one-layer classifier, as `run` does; tests/test_cli_sim.py)
    ("stream-layers", ["stream", "--model", str(export.DEFAULT_MODEL), "--layers", "2"],
     "only 2 layer slots"),
    ("stream-samples", ["stream", "--samples", "0"], "--samples"),
    ("stream-abits", ["stream", "--abits", "0"], "abits must be from 1 to 8"),
    ("stream-parallel", ["stream", "--design", "parallel"],
     "the bit-parallel baseline (--design parallel) runs 8-bit weights only"),
    # verilog
    ("verilog-rows", ["verilog", "-o", "t.v", "--rows", "0"], "--rows must be from 1"),
    ("verilog-width", ["verilog", "-o", "t.v", "--stream-width", "12"], "--stream-width must be 8, 16 or 32"),
    ("verilog-depth", ["verilog", "-o", "t.v", "--depth", "3"], "cannot hold one layer"),
    # (a message about several fields names the flags: it said "lower max_m/max_k")
    ("verilog-depth-flags", ["verilog", "-o", "t.v", "--depth", "3"],
     "raise depth or lower --max-m/--max-k"),
    ("verilog-drain-flag", ["verilog", "-o", "t.v", "--drain", "4", "--rows", "2"],
     "error: --drain 4 must divide rows (2) and cols (8)"),
    ("verilog-int32", ["verilog", "-o", "t.v", "--max-wbits", "16", "--max-abits", "16",
                       "--max-k", "65535"], "int32"),
    ("verilog-out-dir", ["verilog", "-o", "adir", *SMALL], "cannot write"),
    ("verilog-out-under-file", ["verilog", "-o", "afile/t.v", *SMALL],
     "cannot write afile/t.v: afile is not a directory"),
    ("verilog-name-space", ["verilog", "-o", "t.v", "--name", "my top"],
     "Verilog identifier"),
    ("verilog-lint-stdout", ["verilog", "-o", "-", "--lint"], "give -o FILE"),
    ("verilog-name-digit", ["verilog", "-o", "t.v", "--name", "9top"], "Verilog identifier"),
    # train (all refused before training starts)
    ("train-hidden", ["train", "--hidden", "a,b"], "comma-separated integers"),
    ("train-hidden-0", ["train", "--hidden", "64,0"], "out of range 1..4096"),
    ("train-epochs", ["train", "--epochs", "0"], "--epochs"),
    ("train-seed", ["train", "--seed", "-1"], "--seed"),
    ("train-out-file", ["train", "--out", "afile"], "not a directory"),
    ("train-out-under-file", ["train", "--out", "afile/sub"], "cannot create"),
]


@pytest.mark.parametrize("args,msg", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_one_line_error(files, run_inproc, args, msg, request):
    sub = request.node.callspec.id in SUBPROCESS
    r = run(args, files) if sub else run_inproc(args, files)
    assert r.returncode == 2, f"anyprec {' '.join(args)}: exit {r.returncode}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("anyprec: error: "), \
        f"anyprec {' '.join(args)}:\n{r.stderr}"
    assert msg in lines[0], lines[0]
    assert r.stdout == "", r.stdout


def test_subprocess_cases_exist():
    ids = {c[0] for c in ERRORS + USAGE}
    assert SUBPROCESS <= ids, SUBPROCESS - ids


# argparse's usage errors: "anyprec <command>: error: ..." plus the --help hint.
USAGE = [
    ("golden-wbits-word", ["golden", "--max-wbits", "eight"], "invalid int value"),
    ("verify-sim", ["verify", "--sim", "modelsim"], "invalid choice"),
    ("verify-transport", ["verify", "--transport", "pcie"], "invalid choice"),
    ("matvec-no-x", ["matvec", "--weights", "W.npy", "--wbits", "1"], "--x"),
    ("matvec-wbits-word", ["matvec", "--weights", "W.npy", "--x", "x.npy", "--wbits", "two"],
     "invalid int value"),
    # (from the subcommand's parser, which points at its own --help)
    ("stream-unknown", ["stream", "--planes", "3"],
     "anyprec stream: error: unrecognized arguments: --planes 3"),
    ("verilog-no-output", ["verilog"], "-o/--output"),
    ("verilog-design", ["verilog", "-o", "t.v", "--design", "fancy"], "invalid choice"),
    ("verilog-target", ["verilog", "-o", "t.v", "--target", "xilinx"], "invalid choice"),
    ("train-epochs-word", ["train", "--epochs", "many"], "invalid int value"),
    ("no-such-command", ["frobnicate"], "invalid choice"),
    # a command's option before the command (argparse called "3" an invalid command)
    ("option-before-command", ["--planes", "3", "stream"],
     "--planes is not an option of anyprec itself; a command's options go after it: "
     "anyprec stream --planes ..."),
    ("option-without-command", ["--rows=2"], "anyprec <command> --rows ..."),
    # An empty value is refused, not taken for "not given" (the default model, the
    # simulator instead of the port, the default output directory...).
    ("verilog-name-empty", ["verilog", "-o", "t.v", "--name", ""], "empty value"),
    ("verify-model-empty", ["verify", "--model", ""], "argument --model: an empty value"),
    ("stream-port-empty", ["stream", "--port", ""], "argument --port: an empty value"),
    ("build-out-empty", ["build", "--board", "icebreaker", "-o", ""], "-o/--outdir"),
]


@pytest.mark.parametrize("args,msg", [c[1:] for c in USAGE], ids=[c[0] for c in USAGE])
def test_usage_error(files, run_inproc, args, msg, request):
    sub = request.node.callspec.id in SUBPROCESS
    r = run(args, files) if sub else run_inproc(args, files)
    assert r.returncode == 2, f"anyprec {' '.join(args)}: exit {r.returncode}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and lines[0].startswith("anyprec") and ": error: " in lines[0], r.stderr
    assert all(ln.startswith("(run 'anyprec") for ln in lines[1:]), r.stderr
    assert msg in lines[0], lines[0]


def test_nothing_written_on_error(files, run_inproc):
    # A refused verilog or train command leaves no output behind.
    assert run_inproc(["verilog", "-o", "never.v", "--rows", "0"], files).returncode == 2
    assert run_inproc(["train", "--out", "never", "--epochs", "0"], files).returncode == 2
    assert not (files / "never.v").exists() and not (files / "never").exists()


# --- the driver: ModelMismatchError before anything is streamed ----------------------

DEVICE = AnyprecConfig(rows=4, cols=4, max_wbits=8, max_abits=8, max_m=16, max_k=16,
                       layers=2, depth=200)

#: (what, network shapes, N, A, message): each model does not fit DEVICE.
MISMATCHES = [
    ("more layers", [(8, 16), (8, 8), (4, 8)], 8, 8, "3 layers, the device only 2"),
    ("larger K", [(8, 17), (4, 8)], 8, 8, "8x17"),
    ("larger M", [(17, 16), (4, 17)], 8, 8, "17x16"),
    ("other N", [(8, 16), (4, 8)], 6, 8, "6-bit weights"),
    ("other A", [(8, 16), (4, 8)], 8, 4, "4-bit activations"),
    ("memory", [(16, 16), (16, 16)], 8, 8, "words of weight memory"),
]


@pytest.mark.parametrize("what,shapes,n,a,msg", MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_model_mismatch_before_streaming(what, shapes, n, a, msg):
    rng = np.random.default_rng(len(what))
    net = random_network(rng, shapes, n, a)
    dev = ModelDevice(DEVICE)
    tr = ModelTransport(dev)
    drv = Driver(tr)
    before = dev.snapshot()
    with pytest.raises(ModelMismatchError, match=msg):
        drv.load_model(net)
    ops = [w[0] & 0xFF for w in tr.requests]
    assert Opcode.INFO in ops, ops
    assert set(ops) <= {Opcode.INFO, Opcode.STATUS}, \
        f"{what}: frames other than INFO/STATUS were sent: {[hex(o) for o in ops]}"
    assert ModelDevice.same_state(before, dev.snapshot())
    # Progressive streaming checks the same way (configure first), also asynchronously.
    atr = AsyncModelTransport(ModelDevice(DEVICE))
    adrv = AsyncDriver(atr)
    with pytest.raises(ModelMismatchError, match=msg):
        asyncio.run(adrv.configure(net))
    assert {w[0] & 0xFF for w in atr.requests} <= {Opcode.INFO, Opcode.STATUS}


def test_fitting_model_loads():
    # The counter-case: a model within every limit loads and runs on the same device.
    rng = np.random.default_rng(7)
    net = random_network(rng, [(16, 16), (4, 16)], 8, 8)
    dev = ModelDevice(DEVICE)
    drv = Driver(ModelTransport(dev))
    drv.load_model(net)
    x = rng.integers(0, 256, 16)
    assert drv.infer(x).values.tolist() == net.forward(x, 8, 8).tolist()


@pytest.mark.parametrize("cache", ["afile", "afile/sub"])
def test_unusable_simulation_cache(files, run_inproc, monkeypatch, cache):
    """A simulation cache that cannot be a directory: one line before any build."""
    monkeypatch.setenv("ANYPREC_CACHE", str(files / cache))
    r = run_inproc(["matvec", "--weights", "W.npy", "--x", "x.npy", "--wbits", "1"], files)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot use the simulation cache" in lines[0], r.stderr
    assert "ANYPREC_CACHE" in lines[0]


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="no /dev/full")
def test_full_output_device(files):
    """`anyprec boards >/dev/full`: the write fails with ENOSPC; one line, exit 2."""
    with open("/dev/full", "w") as full:
        r = subprocess.run(CLI + ["boards"], stdout=full, stderr=subprocess.PIPE, text=True,
                           cwd=files, timeout=LIMIT_S)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == "anyprec: error: cannot write: No space left on device"


def test_closed_output(files):
    """`anyprec boards >&-`: Python starts with no sys.stdout at all; nothing to write to,
    and no traceback (the final flush met None)."""
    r = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *CLI, "boards"],
                       stderr=subprocess.PIPE, text=True, cwd=files, timeout=LIMIT_S)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_pgf_plot_without_latex_is_refused_before_the_run(tmp_path, monkeypatch):
    """A .pgf plot needs LaTeX: without it the plot used to fail after the whole
    simulation, with a traceback (matplotlib's RuntimeError)."""
    from anyprec.golden.errors import AnyprecError
    from anyprec.host.commands.verify import plot_path
    monkeypatch.setenv("PATH", str(tmp_path))          # (no xelatex there)
    with pytest.raises(AnyprecError, match="a .pgf plot needs xelatex"):
        plot_path(str(tmp_path / "acc.pgf"))
    assert plot_path(str(tmp_path / "acc")) == str(tmp_path / "acc.png")
    assert not (tmp_path / "acc.png").exists()          # (tried, and removed again)
