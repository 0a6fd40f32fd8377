"""Files on disk survive failed writes: ``anyprec verilog -o FILE`` and ``anyprec train
--out DIR`` (``golden.export``) replace their outputs atomically, and a full disk or an
unwritable directory gives one ``anyprec: error: ...`` line with exit status 2.

The write failures are real ones where that is cheap: a subprocess with a small
``RLIMIT_FSIZE`` gets EFBIG from the kernel part-way through a write, exactly where a full
disk gives ENOSPC. In-process cases inject ENOSPC into the writers instead. No case
trains: the training function is replaced by a fixed, untrained model (its export is the
same code path as a trained one's).
"""

import errno
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest
import torch

from anyprec.golden import export
from anyprec.golden.model import AnyPrecisionMLP

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
#: The settings ``anyprec train --hidden 4 --epochs 1`` passes to ``train``.
TRAIN_ARGS = ["train", "--hidden", "4", "--epochs", "1", "--quiet"]


def _snapshot(d):
    """Every entry of directory ``d`` (hidden ones too): name -> bytes (or its mode)."""
    return {p.name: p.read_bytes() if p.is_file() else stat.S_IFMT(p.lstat().st_mode)
            for p in sorted(d.iterdir())}


def _one_line_error(code, err, *parts):
    assert code == 2, f"exit status {code}, not 2\n{err}"
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("anyprec: error: "), err
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.fixture
def cli(capsys, monkeypatch):
    """``anyprec args`` through ``anyprec.host.cli.main`` in this process: (code, out, err).
    Anything but the CLI's own error handling propagates and fails the test."""
    from anyprec.host.cli import main

    def go(*args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return go


#: Prefix of the subprocess scripts: ``limit_file_size(n)`` makes every later write past
#: byte n of any file fail with EFBIG (SIGXFSZ ignored, so the write returns the error).
_LIMIT = """
import resource, signal, sys
def limit_file_size(n):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
"""


def _subprocess(script, *args, cwd):
    """Run ``script`` (Python source after :data:`_LIMIT`; ``sys.argv[1:] == args``) in a
    fresh interpreter."""
    source = _LIMIT + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", source, *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


# --- anyprec verilog -o FILE ------------------------------------------------------------

#: Stands in for the generated Verilog (the real generation runs yosys, which itself writes
#: files and would trip the file-size limit).
FAKE_VERILOG = "// stands in for the generated Verilog\n" * 5000
SMALL = ["--rows", "2", "--cols", "2", "--max-m", "4", "--max-k", "4", "--layers", "1"]


def test_verilog_write_failure_keeps_the_old_file(tmp_path):
    """A write that fails part-way (EFBIG here, ENOSPC on a full disk) leaves the previous
    file byte for byte, and no temporary file behind."""
    out = tmp_path / "top.v"
    out.write_text("module previous_good_design; endmodule\n")
    before = _snapshot(tmp_path)
    r = _subprocess("""
        import anyprec.hw.top as top
        from anyprec.host.cli import main
        text = "// stands in for the generated Verilog\\n" * 5000
        top.generate_verilog = lambda cfg, name="anyprec_top", target="generic": text
        limit_file_size(len(text) // 2)
        sys.exit(main(sys.argv[1:]))
    """, "verilog", "-o", out, *SMALL, cwd=tmp_path)
    _one_line_error(r.returncode, r.stderr, f"cannot write {out}", "File too large")
    assert _snapshot(tmp_path) == before


def test_verilog_replaces_the_file_whole(tmp_path, cli, monkeypatch):
    """The counter-case and what the atomic replacement must keep: the new text in full,
    the old file's permissions, a symbolic link (its target is written), writing into a
    device such as /dev/null (written in place, never renamed over), and ``-o -``."""
    import anyprec.hw.top as top
    monkeypatch.setattr(top, "generate_verilog",
                        lambda cfg, name="anyprec_top", target="generic": FAKE_VERILOG)
    out = tmp_path / "top.v"
    out.write_text("old\n")
    out.chmod(0o640)
    code, stdout, err = cli("verilog", "-o", out, *SMALL)
    assert code == 0, err
    assert out.read_text() == FAKE_VERILOG and f"wrote {out}" in stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["top.v"]

    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "top.v"
    target.write_text("old\n")
    link = tmp_path / "link.v"
    link.symlink_to(target)
    assert cli("verilog", "-o", link, *SMALL)[0] == 0
    assert link.is_symlink() and target.read_text() == FAKE_VERILOG
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["top.v"]

    if os.path.exists(os.devnull):
        assert cli("verilog", "-o", os.devnull, *SMALL)[0] == 0
        assert stat.S_ISCHR(os.stat(os.devnull).st_mode)

    code, stdout, _ = cli("verilog", "-o", "-", *SMALL)
    assert code == 0 and stdout == FAKE_VERILOG


# --- anyprec train --out DIR --------------------------------------------------------------

def _model():
    """A fixed 64-4-10 model (untrained: exporting it is what matters here)."""
    torch.manual_seed(1)
    return AnyPrecisionMLP([4]).eval()


@pytest.fixture
def no_training(monkeypatch):
    """Training fails the test: these cases must be refused before it starts."""
    import anyprec.golden.model as gm

    def train(settings=None, progress=None):
        raise AssertionError("training started; the bad --out must be refused first")
    monkeypatch.setattr(gm, "train", train)


@pytest.fixture
def quick_training(monkeypatch):
    """``train`` returns :func:`_model` at once."""
    import anyprec.golden.model as gm
    monkeypatch.setattr(gm, "train", lambda settings=None, progress=None:
                        (_model(), dict(settings)))


@pytest.fixture
def old_model(tmp_path):
    """A directory holding a previous model pair: copies of the shipped checkpoint."""
    d = tmp_path / "models"
    d.mkdir()
    shutil.copyfile(export.DEFAULT_MODEL, d / "digits_mlp.npz")
    shutil.copyfile(export.DEFAULT_FLOAT_MODEL, d / "digits_mlp.pt")
    return d


def _read_only_for_real(d, monkeypatch):
    """A really read-only directory: chmod 555, or for root (whom modes do not stop)
    chattr +i."""
    if os.geteuid() != 0:
        d.chmod(0o555)
        return lambda: d.chmod(0o755)
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(d)],
                                        capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system or to this root "
                    "(the 'simulated' case still runs)")
    undo = lambda: subprocess.run([chattr, "-i", str(d)], check=True)  # noqa: E731
    try:
        (d / "probe").touch()
    except PermissionError:
        return undo
    undo()
    (d / "probe").unlink()
    pytest.skip("chattr +i did not make the directory read-only")


def _read_only_by_simulation(d, monkeypatch):
    """Every file creation in ``d`` fails with EROFS (a read-only mount), whoever we are."""
    real_open = os.open

    def open_(path, flags, mode=0o777, *, dir_fd=None):
        if flags & os.O_CREAT and os.path.dirname(os.path.abspath(path)) == str(d):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, flags, mode, dir_fd=dir_fd)
    monkeypatch.setattr(os, "open", open_)
    return lambda: None


@pytest.mark.parametrize("make_read_only", [_read_only_for_real, _read_only_by_simulation],
                         ids=["real", "simulated"])
def test_train_read_only_out_is_refused_before_training(old_model, cli, monkeypatch,
                                                        no_training, make_read_only):
    before = _snapshot(old_model)
    undo = make_read_only(old_model, monkeypatch)
    try:
        code, out, err = cli(*TRAIN_ARGS, "--out", old_model)
    finally:
        undo()
    _one_line_error(code, err, f"--out {old_model}: cannot write to the directory")
    assert "training" not in out
    assert _snapshot(old_model) == before


def test_train_output_name_taken_by_a_directory_is_refused_before_training(
        old_model, cli, no_training):
    (old_model / "digits_mlp.pt").unlink()
    (old_model / "digits_mlp.pt").mkdir()
    before = _snapshot(old_model)
    code, _, err = cli(*TRAIN_ARGS, "--out", old_model)
    _one_line_error(code, err, "digits_mlp.pt exists and is not a file")
    assert _snapshot(old_model) == before


def _torch_save_fails(monkeypatch):
    """torch.save writes part of the checkpoint, then the disk is full."""
    import io
    real = torch.save

    def save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real(obj, buf, *args, **kwargs)
        part = buf.getvalue()[:1000]
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as fh:
                fh.write(part)
        else:
            f.write(part)
        raise ENOSPC
    monkeypatch.setattr(torch, "save", save)


def _npz_write_fails(monkeypatch):
    """The model file's third member is written, then the disk is full."""
    import zipfile
    real = zipfile.ZipFile.writestr
    count = [0]

    def writestr(self, *args, **kwargs):
        count[0] += 1
        if count[0] == 3:
            raise ENOSPC
        return real(self, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)


@pytest.mark.parametrize("fail", [_torch_save_fails, _npz_write_fails],
                         ids=["pt-full-disk", "npz-full-disk"])
def test_train_export_failure_keeps_the_old_model(old_model, cli, monkeypatch,
                                                  quick_training, fail):
    """``train --out`` over an existing model (golden/checkpoints, say): a write that fails
    leaves both old files byte for byte and no temporary file; one line, exit status 2."""
    before = _snapshot(old_model)
    fail(monkeypatch)
    code, _, err = cli(*TRAIN_ARGS, "--out", old_model)
    _one_line_error(code, err, "cannot write", "No space left on device")
    assert _snapshot(old_model) == before


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The checkpoint of :func:`_model` and the sizes of the files it exports to."""
    d = tmp_path_factory.mktemp("exported")
    torch.save(_model().checkpoint(), d / "model.ckpt")
    npz, pt, _ = export.export(_model(), {"hidden": [4], "seed": 0, "epochs": 1}, d / "out")
    return d / "model.ckpt", npz.stat().st_size, pt.stat().st_size


def test_train_write_failure_in_the_second_file_keeps_both_old_files(old_model, exported):
    """A real failing write (the kernel's file-size limit) in the .pt, after the .npz was
    written in full: torch.save used to turn it into a RuntimeError traceback, after the
    new .npz had already replaced the old one."""
    ckpt, npz_size, pt_size = exported
    assert npz_size < pt_size, (npz_size, pt_size)
    before = _snapshot(old_model)
    r = _subprocess("""
        import anyprec.golden.model as gm
        from anyprec.golden import export
        from anyprec.host.cli import main
        gm.train = lambda settings, progress=None: (export.load_float(sys.argv[1]),
                                                    dict(settings))
        limit_file_size(int(sys.argv[2]))
        sys.exit(main(sys.argv[3:]))
    """, ckpt, (npz_size + pt_size) // 2, *TRAIN_ARGS, "--out", old_model, cwd=old_model)
    # (torch writes the checkpoint itself, under its final name in a temporary directory,
    # and reports the kernel's refusal only as an iostream error)
    _one_line_error(r.returncode, r.stderr, f"cannot write {old_model / 'digits_mlp.pt'}",
                    "torch.save could not write it")
    assert _snapshot(old_model) == before


def test_export_replaces_both_files_and_keeps_their_permissions(old_model, tmp_path):
    """The counter-case: a successful export replaces the pair in full (loadable, the same
    bytes as an export into an empty directory), keeps the old files' modes and leaves
    nothing else behind."""
    for p in old_model.iterdir():
        p.chmod(0o640)
    settings = {"hidden": [4], "seed": 0, "epochs": 1}
    npz, pt, _ = export.export(_model(), settings, old_model)
    assert sorted(p.name for p in old_model.iterdir()) == ["digits_mlp.npz", "digits_mlp.pt"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in (npz, pt))
    fresh_npz, fresh_pt, _ = export.export(_model(), settings, tmp_path / "fresh")
    assert npz.read_bytes() == fresh_npz.read_bytes()
    assert pt.read_bytes() == fresh_pt.read_bytes()
    net, _ = export.load_model(npz, expect_n=8)
    assert [layer.shape for layer in net.layers] == [(4, 64), (10, 4)]
    assert export.load_float(pt).hparams["hidden"] == [4]


def test_checkpoint_bytes_are_torch_save_of_its_name(tmp_path):
    """The atomic .pt is what ``torch.save(ckpt, "<dir>/digits_mlp.pt")`` writes: torch
    names the archive's folder after the file (from a buffer it would be ``archive/``), so
    retraining still reproduces the shipped checkpoints byte for byte
    (docs/model-format.md)."""
    import zipfile
    model = _model()
    _, pt, _ = export.export(model, {"hidden": [4], "seed": 0, "epochs": 1}, tmp_path / "a")
    with zipfile.ZipFile(pt) as z:
        assert {n.split("/")[0] for n in z.namelist()} == {"digits_mlp"}
    (tmp_path / "b").mkdir()
    torch.save(model.checkpoint(), tmp_path / "b" / "digits_mlp.pt")
    assert pt.read_bytes() == (tmp_path / "b" / "digits_mlp.pt").read_bytes()
