"""cocotb test of the board design through its UART pins (boards/bridge.py).

A bit-level UART model drives ``rx`` and reads ``tx`` of ``anyprec_uart_top``; on top of it
:class:`UartByteTransport` is the host's serial framing in async form (requests as
little-endian bytes, responses delimited by their header's length field, exactly as
:class:`anyprec.host.transport.ByteStreamTransport` does), so the unchanged
:class:`~anyprec.host.driver.AsyncDriver` runs over it. The job (``$ANYPREC_UART_JOB``)
loads a network, runs inferences at several precisions and, optionally, checks that a
frame with lost bytes is answered (TRUNCATED / BAD_CRC) after the inter-byte timeout
instead of hanging the link. Results go back through a JSON and an ``.npz`` file.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, FallingEdge, Timer, with_timeout, SimTimeoutError

from ..host import protocol as P
from ..host.driver import AsyncDriver
from ..host.errors import DeviceTimeout
from ..host.transport import AsyncTransport
from .flows import arrays_to_net

CLOCK_NS = 10


class UartModel:
    """Bit-level 8N1 UART on the DUT's ``rx`` (driven) and ``tx`` (monitored) pins."""

    def __init__(self, dut, divisor):
        self.dut = dut
        self.bit_ns = divisor * CLOCK_NS
        self.rx_bytes = Queue()
        dut.rx.value = 1
        self._mon = cocotb.start_soon(self._monitor())

    async def send(self, data):
        for byte in data:
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                self.dut.rx.value = bit
                await Timer(self.bit_ns, unit="ns")

    async def _monitor(self):
        tx = self.dut.tx
        while True:
            await FallingEdge(tx)
            await Timer(self.bit_ns // 2, unit="ns")          # middle of the start bit
            if int(tx.value) != 0:
                continue
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                byte |= int(tx.value) << i
            await Timer(self.bit_ns, unit="ns")
            assert int(tx.value) == 1, "stop bit of a transmitted byte is low"
            self.rx_bytes.put_nowait(byte)


class UartByteTransport(AsyncTransport):
    """The host's serial framing (ByteStreamTransport) over :class:`UartModel`."""

    def __init__(self, uart, timeout_ns):
        self.uart = uart
        self.timeout_ns = timeout_ns
        self.exchanges = 0

    async def read(self, n):
        out = bytearray()
        for _ in range(n):
            try:
                out.append(await with_timeout(self.uart.rx_bytes.get(), self.timeout_ns, "ns"))
            except SimTimeoutError:
                raise DeviceTimeout(f"no byte within {self.timeout_ns} ns "
                                    f"(got {len(out)} of {n})") from None
        return bytes(out)

    async def exchange_bytes(self, data):
        await self.uart.send(data)
        head = await self.read(4)
        length = P.split_header(int.from_bytes(head, "little"))[2]
        rest = await self.read(4 * (length + 1))
        self.exchanges += 1
        return P.bytes_to_words(head + rest)

    async def exchange(self, words, timeout=None):
        return await self.exchange_bytes(P.words_to_bytes(words))


@cocotb.test()
async def uart_job(dut):
    spec = json.loads(open(os.environ["ANYPREC_UART_JOB"]).read())
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)

    uart = UartModel(dut, spec["divisor"])
    # A response takes at most a few bytes' time to start once the frame is in.
    link = UartByteTransport(uart, timeout_ns=spec["response_timeout_cycles"] * CLOCK_NS)
    drv = AsyncDriver(link)
    result = {}
    with np.load(spec["arrays_in"]) as z:
        arrays = {k: z[k] for k in z.files}
    net = arrays_to_net(arrays)
    out = {}

    info = await drv.info()
    result["info_rows"], result["info_cols"] = info.rows, info.cols

    if spec.get("lost_bytes"):
        # A STATUS frame with its CRC and a header byte lost: the bridge must end it
        # after the inter-byte timeout, and the device must answer (TRUNCATED), not hang.
        req = P.words_to_bytes(P.status(tag=0x5A))
        resp = await link.exchange_bytes(req[:-5])
        frame = P.decode_frame(resp)
        result["lost_bytes_status"] = int(frame.status)
        result["lost_bytes_tag"] = int(frame.tag)
        # And the link is back in step: a normal command works.
        await drv.info()
        result["after_loss_ok"] = True

    await drv.configure(net)
    await drv.load_requant(net, wbits=sorted(set(spec["wbits"])))
    planes = spec.get("planes")
    await drv.load_planes(net, planes=None if planes is None else list(range(planes)))
    L = len(net.layers)
    for i, (k, a) in enumerate(zip(spec["wbits"], spec["abits"])):
        await drv.set_precision(k, a)
        xs = arrays[f"x_{i}"]
        logits = np.zeros((xs.shape[0], net.layers[-1].shape[0]), dtype=np.int64)
        for s in range(xs.shape[0]):
            r = await drv.infer(xs[s], L)
            logits[s] = r.values
        out[f"logits_{i}"] = logits
    result["exchanges"] = link.exchanges
    np.savez(spec["arrays_out"], **out)
    with open(spec["result"], "w") as f:
        json.dump(result, f)
