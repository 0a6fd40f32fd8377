"""anyprec program: bitstream checks, the programmer's command line, a stand-in
programmer on PATH, and one-line errors for every way it can go wrong."""

import hashlib
import json
import os
import re
import stat

import pytest

from anyprec.boards.program import ProgramError, bitstream_path, program, programmer_argv
from anyprec.boards.registry import BOARDS, get_board
from anyprec.host.cli import main

PROGRAMMABLE = [n for n, b in BOARDS.items() if b.bitstream]


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


#: Enough of a bitstream for the checks: both families' configuration sync words.
BITS = bytes.fromhex("ff0000ff7eaa997e") + bytes.fromhex("ffffbdb3") + b" bitstream"


def _fake_build(tmp_path, name, data=BITS, report=True, **changes):
    """The files 'anyprec build -o DIR' leaves: the bitstream and its report."""
    board = get_board(name)
    path = bitstream_path(board, outdir=tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if report:
        rep = {"board": name, "bitstream": str(path), "baud": 115200,
               "bitstream_sha256": hashlib.sha256(data).hexdigest(), **changes}
        (path.parent / f"{path.stem}.anyprec.json").write_text(json.dumps(rep))
    return path


def _fake_tool(tmp_path, status=0):
    """A programmer that records its arguments and exits with ``status``."""
    log = tmp_path / "args.txt"
    tool = tmp_path / "fakeprog"
    tool.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\nexit {status}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return tool, log


def test_every_bitstream_board_has_a_programmer():
    for name in PROGRAMMABLE:
        b = get_board(name)
        assert b.programmer and "{bitstream}" in b.programmer, name
        assert b.serial_port.startswith("/dev/tty"), name
    assert not get_board("arty-a7-35").programmer


@pytest.mark.parametrize("name", PROGRAMMABLE)
def test_dry_run_command(tmp_path, name, monkeypatch):
    for var in ("ICEPROG", "ICESPROG", "OPENFPGALOADER"):
        monkeypatch.delenv(var, raising=False)
    path = _fake_build(tmp_path, name)
    rep = program(name, outdir=tmp_path, dry_run=True)
    assert rep["argv"][0] == get_board(name).programmer[0]
    assert rep["argv"][-1] == str(path) and not rep["ran"]
    assert rep["bitstream_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.suffix == (".bin" if get_board(name).family == "ice40" else ".bit")


def test_ulx3s_sram_or_flash(tmp_path):
    path = _fake_build(tmp_path, "ulx3s-85f")
    sram = programmer_argv("ulx3s-85f", path)
    flash = programmer_argv("ulx3s-85f", path, flash=True)
    assert "-f" not in sram and "-f" in flash and flash[-1] == str(path)
    assert program("ulx3s-85f", outdir=tmp_path, dry_run=True)["flash"] is False
    assert program("ulx3s-85f", outdir=tmp_path, dry_run=True, flash=True)["flash"] is True
    # iceprog always writes the flash; --flash changes nothing there.
    _fake_build(tmp_path / "ib", "icebreaker")
    rep = program("icebreaker", outdir=tmp_path / "ib", dry_run=True, flash=True)
    assert rep["flash"] is True and "-f" not in rep["argv"]


def test_runs_the_programmer_from_its_environment_variable(tmp_path, monkeypatch, capsys):
    tool, log = _fake_tool(tmp_path)
    monkeypatch.setenv("ICEPROG", str(tool))
    path = _fake_build(tmp_path / "b", "icebreaker")
    code, out, err = _cli(capsys, "program", "--board", "icebreaker", "-o",
                          str(tmp_path / "b"))
    assert code == 0, err
    assert log.read_text().split() == [str(path)]
    assert "programmed" in out and "next: anyprec run --port /dev/ttyUSB1" in out


def test_programmer_failure_is_one_line(tmp_path, monkeypatch, capsys):
    tool, log = _fake_tool(tmp_path, status=3)
    monkeypatch.setenv("OPENFPGALOADER", str(tool))
    _fake_build(tmp_path / "b", "ulx3s-12f")
    code, out, err = _cli(capsys, "program", "--board", "ulx3s-12f", "-o",
                          str(tmp_path / "b"), "--flash")
    assert code == 2 and log.read_text().split()[-2:] == ["-f", str(
        bitstream_path("ulx3s-12f", outdir=tmp_path / "b"))]
    assert err.count("\n") == 1 and "exited with status 3" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("case, message", [
    ("missing", "no bitstream at .*run 'anyprec build --board icebreaker -o"),
    ("empty", "is empty: rebuild it"),
    ("other-board", "was built for icesugar, not icebreaker"),
    ("stale", "is not the file its build report describes"),
    ("suffix", "takes a .bin bitstream"),
    ("no-tool", "not found: install it .*fpga-icestorm.* or set \\$ICEPROG"),
    ("vendor", "closed vendor tools"),
    ("both", "give --bitstream or --outdir, not both"),
    ("not-a-bitstream", "is not an iCE40 bitstream \\(no configuration sync word 7eaa997e"),
    ("huge", "is not an iCE40 bitstream \\(68,157,440 bytes; the largest is a few MB\\)"),
])
def test_errors(tmp_path, monkeypatch, capsys, case, message):
    monkeypatch.setenv("ICEPROG", str(tmp_path / "nowhere" / "iceprog"))
    d = tmp_path / "b"
    args = ["program", "--board", "icebreaker", "-o", str(d)]
    if case == "empty":
        _fake_build(d, "icebreaker", data=b"")
    elif case == "other-board":
        _fake_build(d, "icebreaker", board="icesugar")
    elif case == "stale":
        path = _fake_build(d, "icebreaker")
        path.write_bytes(BITS + b" rebuilt by hand")
    elif case == "suffix":
        f = tmp_path / "x.bit"
        f.write_bytes(b"1")
        args = ["program", "--board", "icebreaker", "--bitstream", str(f)]
    elif case == "no-tool":
        _fake_build(d, "icebreaker")
    elif case == "vendor":
        args = ["program", "--board", "arty-a7-35"]
    elif case == "not-a-bitstream":
        # (an ECP5 bitstream for an iCE40 board is not one either)
        _fake_build(d, "icebreaker", data=b"hello\n" + bytes.fromhex("ffffbdb3"))
    elif case == "both":
        args += ["--bitstream", str(tmp_path / "x.bin")]
    elif case == "huge":
        # (a sparse file: it used to be read whole, into memory, only to be hashed)
        path = _fake_build(d, "icebreaker")
        with open(path, "r+b") as f:
            f.truncate(65 << 20)
    code, out, err = _cli(capsys, *args)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(message, err), err


def test_unreadable_report_does_not_block(tmp_path, monkeypatch):
    """A report that is not JSON is ignored; the bitstream itself is still checked."""
    monkeypatch.delenv("ICEPROG", raising=False)
    path = _fake_build(tmp_path, "icebreaker", report=False)
    (tmp_path / f"{path.stem}.anyprec.json").write_text("{not json")
    assert program("icebreaker", outdir=tmp_path, dry_run=True)["built"] is None
    with pytest.raises(ProgramError, match="no bitstream"):
        program("icebreaker", outdir=tmp_path / "elsewhere", dry_run=True)


def test_deeply_nested_report_does_not_block(tmp_path):
    """A report nested deeper than the JSON parser goes (RecursionError, not ValueError)
    is ignored like any other unreadable one."""
    path = _fake_build(tmp_path, "icebreaker", report=False)
    (tmp_path / f"{path.stem}.anyprec.json").write_text("[" * 100000 + "]" * 100000)
    rep = program("icebreaker", outdir=tmp_path, dry_run=True)
    assert rep["built"] is None and rep["bitstream_sha256"] == hashlib.sha256(BITS).hexdigest()


@pytest.mark.parametrize("field, value", [
    ("bitstream_sha256", 123), ("bitstream_sha256", ["ab"]), ("baud", [1]), ("baud", "9600"),
    ("baud", True), ("board", 5), ("seed", 1.5), ("clock_mhz", "12"), ("timing_met", "yes"),
    ("config", "8x8"),
])
def test_malformed_report_is_treated_as_unreadable(tmp_path, monkeypatch, capsys, field,
                                                   value):
    """A build report with a field of the wrong type is ignored as a whole, like one that
    is not JSON: no traceback, no check against it, nothing of it echoed (it used to end
    in a TypeError, or suggest '--baud [1]')."""
    monkeypatch.setenv("ICEPROG", str(tmp_path / "nowhere" / "iceprog"))
    d = tmp_path / "b"
    path = _fake_build(d, "icebreaker", **{field: value})
    args = ["program", "--board", "icebreaker", "-o", str(d), "--dry-run"]
    code, out, err = _cli(capsys, *args)
    assert code == 0, err
    assert err.count("\n") == 1 and "Traceback" not in err and "not on PATH" in err, err
    assert out.strip().split()[-1] == str(path)
    code, out, err = _cli(capsys, *args, "--json")
    assert code == 0 and err == "", err
    assert json.loads(out)["built"] is None
    tool, log = _fake_tool(tmp_path)
    monkeypatch.setenv("ICEPROG", str(tool))
    code, out, err = _cli(capsys, *args[:-1])
    assert code == 0 and err == "", err
    assert log.read_text().split() == [str(path)]
    assert out.splitlines()[-1] == "next: anyprec run --port /dev/ttyUSB1"


def test_dry_run_cli_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENFPGALOADER", "/nonexistent/openFPGALoader")
    path = _fake_build(tmp_path, "ulx3s-45f")
    code, out, err = _cli(capsys, "program", "--board", "ulx3s-45f", "-o", str(tmp_path),
                          "--dry-run")
    assert code == 0 and out.strip() == f"/nonexistent/openFPGALoader -b ulx3s {path}"
    assert "not on PATH" in err
    code, out, _ = _cli(capsys, "program", "--board", "ulx3s-45f", "-o", str(tmp_path),
                        "--dry-run", "--json")
    rep = json.loads(out)
    assert code == 0 and rep["tool_found"] is False and rep["built"]["baud"] == 115200
    assert os.path.samefile(rep["bitstream"], path)
