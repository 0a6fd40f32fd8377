"""The serial-port transport: the host driver talking to a board over its USB UART.

:class:`SerialTransport` is a :class:`~anyprec.host.transport.ByteStreamTransport` on a
pyserial port: requests go out as little-endian bytes, responses are delimited by their
header's length field. The board bridge (boards/bridge.py) frames requests from the same
length field and ends a frame that stops short after an inter-byte timeout, so a lost byte
costs one TRUNCATED/BAD_CRC answer instead of a hung link.

Errors are one-line :class:`~anyprec.golden.errors.AnyprecError` subclasses: a port that
does not exist or is busy raises :class:`SerialPortError`, a device that does not answer
in time raises :class:`~anyprec.host.errors.DeviceTimeout`.
"""

from __future__ import annotations

import math
import re
import time

from ..golden.errors import AnyprecError
from .errors import DeviceTimeout
from .transport import ByteStreamTransport

__all__ = ["SerialTransport", "SerialPortError", "DEFAULT_BAUD", "DEFAULT_TIMEOUT"]

#: The board tops' default UART speed (boards/top.py).
DEFAULT_BAUD = 115200
#: Seconds to wait for one complete response.
DEFAULT_TIMEOUT = 5.0


class SerialPortError(AnyprecError):
    """The serial port cannot be opened or used (missing, busy, no permission, unplugged)."""


class SerialTransport(ByteStreamTransport):
    """Frames over a serial port.

    Parameters
    ----------
    port : str or serial-like object
        A device name (``/dev/ttyUSB0``, ``COM3``, any pyserial URL such as ``loop://``),
        or an already open object with ``write``, ``read``, ``timeout`` and ``close``
        (tests pass a fake port).
    baud : int
        Must match the bitstream (``anyprec build --baud``; default 115200).
    timeout : float or None
        Default seconds for one complete response when the driver gives none.

    Members
    -------
    bytes_sent, bytes_received : int
        Traffic counters.
    """

    def __init__(self, port, baud=DEFAULT_BAUD, timeout=DEFAULT_TIMEOUT):
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise SerialPortError(f"baud must be a positive integer, not {baud!r}")
        if timeout is not None and (isinstance(timeout, bool) or not 0 < timeout < math.inf):
            raise SerialPortError(f"timeout must be a positive number of seconds, "
                                  f"not {timeout!r}")
        self.timeout = timeout
        self.bytes_sent = 0
        self.bytes_received = 0
        if isinstance(port, str):
            self.name = port
            self._port = self._open(port, baud)
        else:
            self.name = getattr(port, "name", None) or getattr(port, "port", None) or repr(port)
            self._port = port
        self._closed = False

    @staticmethod
    def _open(name, baud):
        try:
            import serial
        except ImportError:  # pragma: no cover - pyserial is a dependency
            raise SerialPortError("pyserial is not installed; run 'make setup'") from None
        _check_network_url(name)
        try:
            # exclusive=True: a second program on the same port fails here, not with
            # interleaved frames.
            return serial.serial_for_url(name, baudrate=baud, bytesize=8, parity="N",
                                         stopbits=1, timeout=0.1, write_timeout=10,
                                         exclusive=True)
        except serial.SerialException as e:
            raise SerialPortError(f"cannot open {name}: {_reason(e)}") from None
        except (ValueError, OverflowError, KeyError, OSError) as e:
            # pyserial's own checks (ValueError), a baud rate the OS call cannot take
            # (OverflowError), a bad URL option (KeyError: 'loop://?logging=foo').
            why = f"unknown option {e}" if isinstance(e, KeyError) else _reason(e)
            raise SerialPortError(f"cannot open {name}: {why}") from None

    def write(self, data: bytes):
        if self._closed:
            raise SerialPortError(f"{self.name} is closed")
        try:
            n = self._port.write(data)
            flush = getattr(self._port, "flush", None)
            if flush is not None:
                flush()
        except Exception as e:  # pyserial raises SerialException / SerialTimeoutException
            if "timeout" in type(e).__name__.lower():
                raise DeviceTimeout(f"{self.name}: writing {len(data)} bytes timed out "
                                    "(is the board connected and configured?)") from None
            raise SerialPortError(f"{self.name}: write failed: {_reason(e)}") from None
        if n is not None and n != len(data):
            raise SerialPortError(f"{self.name}: wrote {n} of {len(data)} bytes")
        self.bytes_sent += len(data)

    def read(self, n: int, timeout) -> bytes:
        if self._closed:
            raise SerialPortError(f"{self.name} is closed")
        if timeout is None:
            timeout = self.timeout
        try:
            # Short pyserial timeouts; the caller's deadline bounds the total wait.
            self._port.timeout = min(0.1, timeout) if timeout is not None else 0.1
            data = self._port.read(n)
        except Exception as e:
            raise SerialPortError(f"{self.name}: read failed: {_reason(e)}") from None
        self.bytes_received += len(data)
        return bytes(data)

    def exchange(self, words, timeout=None):
        # A response never arrives unrequested: bytes waiting now belong to an answer
        # the host gave up on (after a timeout); drop them so the link is back in step.
        reset = getattr(self._port, "reset_input_buffer", None)
        if reset is not None:
            try:
                reset()
            except Exception:
                pass
        if timeout is None:
            timeout = self.timeout
        return super().exchange(words, timeout=timeout)

    def _read_exact(self, n, deadline, what):
        data = b""
        while len(data) < n:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise DeviceTimeout(
                    f"{self.name}: no complete response (got {len(data)} of the {n} bytes "
                    f"of the response {what}); check the port, the baud rate and that the "
                    "board runs an anyprec bitstream")
            data += self.read(n - len(data), remaining)
        return data

    def close(self):
        if not self._closed:
            self._closed = True
            try:
                self._port.close()
            except Exception:
                pass


def _check_network_url(name):
    """socket:// and rfc2217:// URLs need HOST:PORT with a port from 1 to 65535. Checked
    here because pyserial's own message for a bad one is lost (its format string has
    braces in it: "Could not open port socket://h:x: 'debug|info|warning|error'")."""
    from urllib.parse import urlsplit
    scheme = name.split("://", 1)[0].lower() if "://" in name else ""
    if scheme not in ("socket", "rfc2217"):
        return
    try:
        port = urlsplit(name).port
    except ValueError:
        port = None
    if port is None or not 1 <= port <= 65535:
        raise SerialPortError(f"cannot open {name}: expected {scheme}://HOST:PORT with a "
                              "port number from 1 to 65535")


def _reason(e):
    text = str(e).strip() or type(e).__name__
    # pyserial nests the OS error in its own ("[Errno 2] could not open port X: [Errno 2]
    # No such file or directory: 'X'"): the innermost one says it, once.
    inner = re.findall(r"\[Errno -?\d+\] ((?:(?!\[Errno).)*)$", text)
    if inner and (text.count("[Errno") > 1 or text.lower().startswith("could not open port")):
        text = inner[0].strip()
    low = text.lower()
    if "busy" in low or "resource temporarily unavailable" in low or "could not exclusively" in low:
        return f"the port is busy (another program has it open): {text}"
    if ("no such file" in low or "filenotfound" in low
            or "could not open port" in low and "[errno 2]" in low):
        return f"no such port: {text}"
    if "permission" in low:
        return f"permission denied (add yourself to the dialout group): {text}"
    return text
