"""SerialTransport (host/serial.py) over fake serial ports, and `anyprec run` on them."""

import json
import os
import pty

import numpy as np
import pytest

from anyprec.golden.data import load_split
from anyprec.golden.export import DEFAULT_MODEL, load_model
from anyprec.host import protocol as P
from anyprec.host.cli import main
from anyprec.host.devmodel import ModelDevice
from anyprec.host.driver import Driver
from anyprec.host.errors import DeviceTimeout
from anyprec.host.serial import SerialTransport, SerialPortError
from anyprec.hw.config import AnyprecConfig


class FakeSerial:
    """A pyserial-like port whose far end is a ModelDevice behind a byte link.

    ``drop_after`` loses every response byte after that many (a cable pulled mid-answer);
    ``silent`` answers nothing; ``junk`` is stale input waiting before the first request.
    """

    def __init__(self, cfg, *, silent=False, drop_after=None, junk=b""):
        self.device = ModelDevice(cfg)
        self.timeout = 0.1
        self.name = "fake0"
        self.silent = silent
        self.drop_after = drop_after
        self._in = b""
        self._out = bytearray(junk)
        self.sent = 0
        self.closed = False
        self.resets = 0

    def write(self, data):
        self._in += bytes(data)
        n = len(self._in) // 4 * 4
        words, self._in = P.bytes_to_words(self._in[:n]), self._in[n:]
        for resp in self.device.feed_words(words):
            if not self.silent:
                self._out += P.words_to_bytes(resp)
        if self.drop_after is not None:
            del self._out[self.drop_after:]
        self.sent += len(data)
        return len(data)

    def flush(self):
        pass

    def read(self, n):
        out, self._out = bytes(self._out[:n]), self._out[n:]
        return out

    def reset_input_buffer(self):
        self.resets += 1
        self._out.clear()

    def close(self):
        self.closed = True


CFG = AnyprecConfig(rows=8, cols=8, layers=3, stream_width=8)


@pytest.fixture(scope="module")
def digits():
    net, _ = load_model(DEFAULT_MODEL)
    _, x, _, y = load_split()
    return net, x[:12], y[:12]


def test_driver_over_serial_is_bit_exact(digits):
    from anyprec.golden.arith import quantize_pixels
    net, x, _ = digits
    port = FakeSerial(CFG)
    with SerialTransport(port, 115200, timeout=1.0) as link:
        drv = Driver(link, timeout=1.0)
        assert drv.config().rows == 8
        drv.load_model(net)
        for k, a in ((8, 8), (2, 4)):
            xq = quantize_pixels(x.T, a, net.a)
            got = drv.forward(xq, k, a)
            np.testing.assert_array_equal(got, net.forward(xq, k, a))
        assert link.bytes_sent == port.sent > 0
        assert link.bytes_received > 0
    assert port.closed


def test_silent_device_times_out_with_one_line_message():
    link = SerialTransport(FakeSerial(CFG, silent=True), timeout=0.2)
    with pytest.raises(DeviceTimeout, match=r"fake0: no complete response \(got 0 of the 4 "
                                            r"bytes of the response header\)"):
        Driver(link, timeout=0.2).info()


def test_partial_response_times_out_and_link_recovers():
    port = FakeSerial(CFG, drop_after=10)
    link = SerialTransport(port, timeout=0.2)
    with pytest.raises(DeviceTimeout, match="got 6 of the"):
        link.exchange(P.info(tag=1))
    port.drop_after = None
    # Stale bytes from the lost answer are dropped before the next request.
    port._out += b"\x99\x99"
    words = link.exchange(P.info(tag=2))
    assert P.decode_frame(words).tag == 2
    assert port.resets >= 2


def test_stale_input_is_flushed_before_a_request():
    port = FakeSerial(CFG, junk=b"\x01\x02\x03")
    drv = Driver(SerialTransport(port, timeout=1.0), timeout=1.0)
    assert drv.info().rows == 8


def test_missing_port_is_a_one_line_error():
    with pytest.raises(SerialPortError, match="cannot open /dev/anyprec-no-such-port"):
        SerialTransport("/dev/anyprec-no-such-port", 115200)


@pytest.mark.parametrize("url", ["socket://localhost", "socket://localhost:99999",
                                 "socket://h:abc", "socket://:0", "rfc2217://localhost:70000"])
def test_bad_network_port_url_is_named(url):
    # pyserial's own message for these lost its text ("'debug|info|warning|error'") or
    # was a TypeError about None.
    with pytest.raises(SerialPortError, match=r"cannot open .*: expected (socket|rfc2217)"
                                              r"://HOST:PORT with a port number from 1"):
        SerialTransport(url, 115200)


def test_network_port_url_reaches_the_socket():
    # A well-formed URL gets through the check: nothing listens there, and the OS says so.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(SerialPortError, match="refused"):
        SerialTransport(f"socket://127.0.0.1:{port}", 115200)


def test_busy_port_is_reported():
    master, slave = pty.openpty()
    name = os.ttyname(slave)
    first = SerialTransport(name, 115200, timeout=0.2)
    try:
        with pytest.raises(SerialPortError, match="busy"):
            SerialTransport(name, 115200)
    finally:
        first.close()
        os.close(master)
        os.close(slave)


def test_bad_parameters():
    with pytest.raises(SerialPortError, match="baud"):
        SerialTransport(FakeSerial(CFG), baud=0)
    with pytest.raises(SerialPortError, match="timeout"):
        SerialTransport(FakeSerial(CFG), timeout=-1)


def test_cli_run_over_fake_port(monkeypatch, capsys):
    """`anyprec run` end to end: model load, inference, golden comparison, JSON report."""
    monkeypatch.setattr(SerialTransport, "_open", staticmethod(lambda name, baud: FakeSerial(CFG)))
    code = main(["run", "--port", "/dev/fake", "--wbits", "1,8", "--samples", "8", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    rep = json.loads(out)
    assert [r["wbits"] for r in rep["results"]] == [1, 8]
    assert all(r["mismatches"] == 0 for r in rep["results"])
    assert rep["results"][1]["hw_accuracy"] == rep["results"][1]["golden_accuracy"] > 0.5
    assert rep["samples"] == 8


def test_cli_run_one_slot_device_runs_the_linear_model(monkeypatch, capsys):
    """A one-slot device (the iCEBreaker's build) without ``--model``: `anyprec run` says
    it runs the shipped one-layer classifier and does, bit-exact; asking for the 3-layer
    MLP on it is a one-line error."""
    from anyprec.boards.registry import BOARDS
    from anyprec.golden.export import DEFAULT_MODEL as MLP
    cfg = BOARDS["icebreaker"].default
    monkeypatch.setattr(SerialTransport, "_open", staticmethod(lambda name, baud: FakeSerial(cfg)))
    code = main(["run", "--port", "/dev/fake", "--wbits", "1,8", "--samples", "6", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    rep = json.loads(out)
    assert rep["model_layers"] == 1 and rep["config"]["layers"] == 1
    assert all(r["mismatches"] == 0 for r in rep["results"])
    code = main(["run", "--port", "/dev/fake", "--wbits", "8", "--samples", "2"])
    cap = capsys.readouterr()
    assert code == 0 and "running the one-layer digits classifier" in cap.err
    code = main(["run", "--port", "/dev/fake", "--samples", "1", "--model", str(MLP)])
    err = capsys.readouterr().err
    assert code != 0 and "the model has 3 layers, the device only 1 layer slot" in err
    errors = [ln for ln in err.strip().splitlines() if not ln.startswith("[run] ")]
    assert errors == [err.strip().splitlines()[-1]] and "Traceback" not in err


def test_cli_run_reports_mismatch(monkeypatch, capsys):
    """A device that computes something else makes `anyprec run` exit 1."""
    orig = ModelDevice._infer

    def wrong_infer(self, p):
        words = list(orig(self, p))
        words[0] ^= 1                      # the first logit is off by one bit
        return words
    from anyprec.host import devmodel
    monkeypatch.setitem(devmodel._HANDLERS, P.Opcode.INFER, wrong_infer)
    monkeypatch.setattr(SerialTransport, "_open", staticmethod(lambda name, baud: FakeSerial(CFG)))
    code = main(["run", "--port", "/dev/fake", "--wbits", "8", "--samples", "3"])
    out = capsys.readouterr().out
    assert code == 1
    assert "MISMATCH: 3 inferences differ" in out


def test_cli_run_missing_port_one_line(capsys):
    code = main(["run", "--port", "/dev/anyprec-no-such-port", "--samples", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("anyprec: error: cannot open /dev/anyprec-no-such-port")
    errors = [ln for ln in err.strip().splitlines() if not ln.startswith("[run] ")]
    assert errors == [err.strip().splitlines()[-1]] and "Traceback" not in err


def test_cli_stream_over_fake_port(monkeypatch, capsys):
    """`anyprec stream --port`: refused before the first plane, then bit-exact at every
    plane count as the planes arrive MSB first, over the serial framing."""
    monkeypatch.setattr(SerialTransport, "_open", staticmethod(lambda name, baud: FakeSerial(CFG)))
    code = main(["stream", "--port", "/dev/fake", "--samples", "6", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    rep = json.loads(out)
    assert rep["refused_before_first_plane"] is True
    assert [s["planes"] for s in rep["steps"]] == list(range(1, 9))
    assert all(s["mismatches"] == 0 and s["samples"] == 6 for s in rep["steps"])
    assert rep["port"] == "/dev/fake"


def test_cli_stream_port_reports_mismatch(monkeypatch, capsys):
    orig = ModelDevice._infer

    def wrong_infer(self, p):
        words = list(orig(self, p))
        words[0] ^= 1
        return words
    from anyprec.host import devmodel
    monkeypatch.setitem(devmodel._HANDLERS, P.Opcode.INFER, wrong_infer)
    monkeypatch.setattr(SerialTransport, "_open", staticmethod(lambda name, baud: FakeSerial(CFG)))
    code = main(["stream", "--port", "/dev/fake", "--samples", "2"])
    out = capsys.readouterr().out
    assert code == 1 and "planes" in out


def test_cli_stream_missing_port_one_line(capsys):
    code = main(["stream", "--port", "/dev/anyprec-no-such-port", "--samples", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("anyprec: error: cannot open /dev/anyprec-no-such-port")
    errors = [ln for ln in err.strip().splitlines() if not ln.startswith("[run] ")]
    assert errors == [err.strip().splitlines()[-1]] and "Traceback" not in err


def test_missing_port_reason_said_once(capsys):
    """pyserial nests the OS error in its own ('[Errno 2] could not open port X: [Errno 2]
    No such file or directory: ...'); the one line says it once."""
    code = main(["run", "--port", "/dev/anyprec-no-such-port", "--samples", "1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err == ("anyprec: error: cannot open /dev/anyprec-no-such-port: no such port: "
                   "No such file or directory: '/dev/anyprec-no-such-port'")
