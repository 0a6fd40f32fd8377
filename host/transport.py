"""Transports: how request frames reach the device and response frames come back.

A transport moves whole frames (lists of 32-bit words); it knows nothing of commands. The
driver (:mod:`anyprec.host.driver`) is written sans-I/O, so one set of command generators
runs over either kind:

* :class:`Transport` (synchronous): ``exchange(words, timeout=None) -> words``.
  :class:`ByteStreamTransport` implements it for byte links (UART, USB serial, TCP): a
  subclass provides only ``write(data)`` and ``read(n, timeout)``; frames are serialised
  little-endian and the response is delimited by its header's length field.
* :class:`AsyncTransport`: ``await exchange(words, timeout=None) -> words`` (e.g. the
  cocotb AXI-Stream transport).

In-process targets on :class:`anyprec.host.devmodel.ModelDevice`: :class:`ModelTransport`
(word frames, optionally as narrow-stream beats), :class:`ModelByteTransport` (through the
byte path) and :class:`AsyncModelTransport`.
"""

from __future__ import annotations

import asyncio
import time

from . import protocol as P
from .errors import DeviceTimeout, ProtocolError

__all__ = ["Transport", "AsyncTransport", "ByteStreamTransport", "ModelTransport",
           "ModelByteTransport", "AsyncModelTransport"]


class Transport:
    """Synchronous frame transport (base class).

    Subclasses implement :meth:`exchange`; :meth:`close` is optional. Usable as a context
    manager.
    """

    def exchange(self, words, timeout=None) -> list[int]:
        """Send one request frame, return the one response frame (words, CRC included).

        Parameters
        ----------
        words : list of int
            The complete request frame.
        timeout : float or None
            Seconds to wait for the complete response; None waits for ever.

        Raises
        ------
        DeviceTimeout
            No complete response within ``timeout``.
        """
        raise NotImplementedError

    def close(self):
        """Release the link (default: nothing to do)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AsyncTransport:
    """Asynchronous frame transport (base class): ``await exchange(words, timeout=None)``."""

    async def exchange(self, words, timeout=None) -> list[int]:
        """As :meth:`Transport.exchange`, awaited."""
        raise NotImplementedError

    async def aclose(self):
        """Release the link (default: nothing to do)."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


class ByteStreamTransport(Transport):
    """A :class:`Transport` over a byte link; subclasses provide :meth:`write`, :meth:`read`.

    Requests are sent as their little-endian bytes. The response is read as 4 header bytes,
    then ``4 * (L + 1)`` bytes for the L payload words and the CRC, so no delimiter is
    needed on the link. The CRC and the rest are checked by the driver.
    """

    def write(self, data: bytes):
        """Write all of ``data`` to the link."""
        raise NotImplementedError

    def read(self, n: int, timeout) -> bytes:
        """Read up to ``n`` bytes, blocking up to ``timeout`` seconds (None: until data
        arrives); may return fewer (or none) on timeout, like pyserial's ``read``. An empty
        result with ``timeout`` None means the link is closed."""
        raise NotImplementedError

    def _read_exact(self, n, deadline, what):
        data = b""
        while len(data) < n:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise DeviceTimeout(f"device timed out: got {len(data)} of the {n} bytes "
                                    f"of the response {what}")
            chunk = self.read(n - len(data), remaining)
            if not chunk and deadline is None:
                raise DeviceTimeout(f"link closed: got {len(data)} of the {n} bytes of the "
                                    f"response {what}")
            data += chunk
        return data

    def exchange(self, words, timeout=None) -> list[int]:
        self.write(P.words_to_bytes(words))
        deadline = None if timeout is None else time.monotonic() + timeout
        head = self._read_exact(4, deadline, "header")
        length = P.split_header(int.from_bytes(head, "little"))[2]
        rest = self._read_exact(4 * (length + 1), deadline, "payload and CRC")
        return P.bytes_to_words(head + rest)


class ModelTransport(Transport):
    """Synchronous transport to an in-process :class:`ModelDevice`.

    Parameters
    ----------
    device : ModelDevice
    width : int
        Stream width used to feed the model (32: one word per beat; 8 or 16 split words
        into beats as a narrow AXI-Stream port does).

    Members
    -------
    requests : list of list of int
        Every request frame sent, in order (tests count and inspect them).
    """

    def __init__(self, device, width=32):
        self.device = device
        self.width = width
        self.requests = []

    def exchange(self, words, timeout=None) -> list[int]:
        words = list(words)
        self.requests.append(words)
        responses = self.device.feed(P.to_beats(words, self.width), width=self.width)
        if len(responses) != 1:
            raise ProtocolError(f"the device model gave {len(responses)} responses to one "
                                "frame")
        return responses[0]


class ModelByteTransport(ByteStreamTransport):
    """A :class:`ByteStreamTransport` whose far end is a :class:`ModelDevice`.

    It exercises the byte path exactly as a UART would see it (the model receives whole
    words; a trailing partial word waits for more bytes).
    """

    def __init__(self, device):
        self.device = device
        self._rx = b""

    def write(self, data: bytes):
        words = P.bytes_to_words(data)
        for resp in self.device.feed_words(words):
            self._rx += P.words_to_bytes(resp)

    def read(self, n, timeout):
        out, self._rx = self._rx[:n], self._rx[n:]
        return out


class AsyncModelTransport(AsyncTransport):
    """Asynchronous transport to an in-process :class:`ModelDevice` (wraps
    :class:`ModelTransport`; yields to the event loop once per frame)."""

    def __init__(self, device, width=32):
        self.sync = ModelTransport(device, width)

    @property
    def requests(self):
        return self.sync.requests

    async def exchange(self, words, timeout=None) -> list[int]:
        await asyncio.sleep(0)
        return self.sync.exchange(words, timeout)
