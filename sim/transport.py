"""cocotb transports for the host driver (``host.driver.AsyncDriver``).

``AxiTransport`` is the standard one: cocotbext-axi ``AxiStreamSource`` and
``AxiStreamSink`` on the DUT's ``s_axis`` / ``m_axis`` ports, with optional pause
generators for back-pressure. ``FastTransport`` loads the frame into the harness's request
buffer and sleeps until the response is captured (hw/simharness.py), so Python does not
run on every clock edge; it is what long verification runs use.

Both split 32-bit words into ``stream_width``-bit beats, least significant first
(docs/protocol.md section 1), and raise ``DeviceTimeout`` when no response arrives within
the bound.
"""

import cocotb
from cocotb.triggers import RisingEdge, ClockCycles, First, Timer, ReadOnly, with_timeout
from cocotb.utils import get_sim_time

from ..host.errors import DeviceTimeout
from ..hw.simharness import LANES
from ..host.protocol import WordAssembler, to_beats

__all__ = ["FastTransport", "AxiTransport", "DEFAULT_TIMEOUT_CYCLES"]

#: Default response watchdog, in clock cycles.
DEFAULT_TIMEOUT_CYCLES = 2_000_000


def _words(beats, width):
    """Beats of one frame back to 32-bit words."""
    asm = WordAssembler(width)
    words = []
    for i, b in enumerate(beats):
        done = asm.push(b, i == len(beats) - 1)
        if done is not None:
            words.append(done[0])
    return words


class FastTransport:
    """Frame exchange through the harness buffers (no per-cycle Python).

    Parameters
    ----------
    dut : the ``anyprec_sim_top`` handle
    width : int
        The build's stream width.
    gap_rate, stall_rate : int
        0..255: chance x 256 per cycle of a ``tvalid`` gap / ``tready`` stall.
    seed : int
        Seed of the harness LFSR (varied per exchange).
    """

    def __init__(self, dut, width, *, gap_rate=0, stall_rate=0, seed=1, clock_period_ns=10):
        self.dut = dut
        self.period = clock_period_ns
        self.width = width
        self.gap_rate = gap_rate
        self.stall_rate = stall_rate
        self.seed = seed & 0xFFFF
        self.exchanges = 0
        self.last_cycles = 0
        # FNV-style hash of every response beat, comparable with sim/speed.py's bare run.
        self.hash = 1469598103934665603

    async def exchange(self, words, timeout=None):
        beats = [b for b, _ in to_beats(words, self.width)]
        await self.send_beats(beats)
        return await self.receive(timeout)

    async def send_beats(self, beats):
        """Load raw beats (tlast on the final one) and start sending them.

        One clock edge per line of LANES beats; ``go`` rides on the last line. A previous
        ``receive`` ends in the read-only phase, where nothing may be written, so the
        first step is to wait for a clock edge (the load needs one anyway).
        """
        dut = self.dut
        await RisingEdge(dut.clk)
        dut.bypass.value = 0
        dut.gap_rate.value = self.gap_rate
        dut.stall_rate.value = self.stall_rate
        dut.rd_addr.value = 0
        self.seed = (self.seed * 75 + 74) % 65537 & 0xFFFF or 1
        dut.seed.value = self.seed
        w = self.width
        lines = [beats[i:i + LANES] for i in range(0, len(beats), LANES)] or [[]]
        for n, line in enumerate(lines):
            dut.ld_data.value = sum(b << (w * j) for j, b in enumerate(line))
            dut.ld_count.value = len(line)
            dut.ld_en.value = 1 if line else 0
            dut.go.value = 1 if n == len(lines) - 1 else 0
            await RisingEdge(dut.clk)
        dut.ld_en.value = 0
        dut.go.value = 0

    async def receive(self, timeout=None):
        """Wait for the captured response frame and return its words.

        ``go`` cleared ``done`` at the edge ``send_beats`` ended on, so the next rising
        edge of ``done`` is this response. The first line is read in the read-only phase
        of that step (``rd_addr`` is already 0); longer responses move ``rd_addr``.
        """
        dut = self.dut
        limit = DEFAULT_TIMEOUT_CYCLES if timeout is None else int(timeout)
        # A Timer, not ClockCycles: ClockCycles runs Python on every clock edge.
        await First(RisingEdge(dut.done), Timer(limit * self.period, unit="ns"))
        # `done` may fire before the other registers of its clock edge settle.
        await ReadOnly()
        if not int(dut.done.value):
            raise DeviceTimeout(f"no response within {limit} cycles")
        n = int(dut.rsp_count.value)
        beats = []
        mask = (1 << self.width) - 1
        for line in range(-(-n // LANES)):
            if line:
                if line == 1:
                    await Timer(1, unit="ps")   # leave the read-only phase before writing
                dut.rd_addr.value = line
                await Timer(1, unit="ps")
            v = int(dut.rd_data.value)
            for j in range(min(LANES, n - line * LANES)):
                beat = (v >> (self.width * j)) & mask
                beats.append(beat)
                self.hash = ((self.hash ^ beat) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        self.exchanges += 1
        self.last_cycles = int(dut.cycles.value)
        return _words(beats, self.width)


class AxiTransport:
    """Frame exchange through cocotbext-axi AXI-Stream agents.

    Parameters
    ----------
    dut : the ``anyprec_sim_top`` handle (its ``bypass`` is set)
    width : int
    source_pause, sink_pause : iterators of bool, optional
        cocotbext-axi pause generators (True = no tvalid / tready that cycle).
    clock_period_ns : float
    """

    def __init__(self, dut, width, *, source_pause=None, sink_pause=None,
                 clock_period_ns=10, clock=None):
        from cocotbext.axi import AxiStreamBus, AxiStreamSource, AxiStreamSink
        self.dut = dut
        self.width = width
        self.period = clock_period_ns
        dut.bypass.value = 1
        # The agents sample in this clock's edge callbacks: it must be the testbench's
        # own clock on Verilator (sim/tb.py, ext_clock).
        clk = dut.clk if clock is None else clock
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), clk,
                                      dut.rst, byte_size=width)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), clk,
                                  dut.rst, byte_size=width)
        for agent in (self.source, self.sink):
            agent.log.setLevel("WARNING")
        if source_pause is not None:
            self.source.set_pause_generator(source_pause)
        if sink_pause is not None:
            self.sink.set_pause_generator(sink_pause)
        self.exchanges = 0
        self.last_cycles = 0

    async def exchange(self, words, timeout=None):
        from cocotbext.axi import AxiStreamFrame
        beats = [b for b, _ in to_beats(words, self.width)]
        return await self.exchange_beats(beats, timeout)

    async def exchange_beats(self, beats, timeout=None):
        from cocotbext.axi import AxiStreamFrame
        t0 = get_sim_time(unit="ns")
        await self.source.send(AxiStreamFrame(list(beats)))
        limit = DEFAULT_TIMEOUT_CYCLES if timeout is None else int(timeout)
        try:
            frame = await with_timeout(self.sink.recv(), limit * self.period, "ns")
        except cocotb.triggers.SimTimeoutError:
            raise DeviceTimeout(f"no response within {limit} cycles") from None
        self.exchanges += 1
        self.last_cycles = int((get_sim_time(unit="ns") - t0) / self.period)
        return _words([int(b) for b in frame.tdata], self.width)
