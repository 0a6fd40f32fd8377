"""UART, frame delimiter and PLL solver units (Amaranth simulator), boards/uart.py,
boards/bridge.py and boards/pll.py."""

import random

import pytest
from amaranth import Module, Signal, Elaboratable
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from anyprec.boards.bridge import FrameDelimiter, AnyprecUartTop
from anyprec.boards.pll import ice40_pll, ecp5_pll, PllError
from anyprec.boards.uart import UartRx, UartTx, uart_divisor
from anyprec.golden.errors import ConfigError
from anyprec.hw.config import AnyprecConfig
from anyprec.hw.top import target_platform


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_uart_loopback(divisor):
    """TX -> RX at several divisors: every byte arrives, in order, no framing errors."""
    seed = 1234 + divisor
    rng = random.Random(seed)
    data = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(12)]
    m = Module()
    m.submodules.tx = tx = UartTx(divisor=divisor)
    m.submodules.rx = rx = UartRx(divisor=divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def bench(ctx):
        for b in data:
            ctx.set(tx.i.payload, b)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
        for _ in range(divisor * 12 * 2):
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(_watcher(rx, got))
    sim.run()
    assert got == data, f"seed {seed}: sent {data}, received {got}"


def _watcher(rx, got):
    async def proc(ctx):
        async for _clk, _rst, v, p in ctx.tick().sample(rx.o.valid, rx.o.payload):
            if v:
                got.append(p)
    return proc


def _drive_bits(ctx, pin, bits, divisor):
    async def go():
        for b in bits:
            ctx.set(pin, b)
            for _ in range(divisor):
                await ctx.tick()
    return go()


def test_uart_rx_rejects_bad_stop_bit_and_recovers():
    divisor = 8
    rx = UartRx(divisor=divisor)
    got = []

    async def bench(ctx):
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(5)
        # 0x3C with a low stop bit (framing error), then idle, then a good 0xA5.
        bad = [0] + [(0x3C >> i) & 1 for i in range(8)] + [0, 0]
        await _drive_bits(ctx, rx.rx, bad, divisor)
        await _drive_bits(ctx, rx.rx, [1, 1], divisor)
        good = [0] + [(0xA5 >> i) & 1 for i in range(8)] + [1, 1]
        await _drive_bits(ctx, rx.rx, good, divisor)
        assert ctx.get(rx.errors) == 1

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(_watcher(rx, got))
    sim.run()
    assert got == [0xA5]


def _frame_bytes(length, fill=0x11):
    header = (0x01 | (0x22 << 8) | (length << 16)).to_bytes(4, "little")
    return list(header) + [fill] * (4 * length) + [0xC0, 0xC1, 0xC2, 0xC3]


class _InIce40Form(Elaboratable):
    """``dut`` elaborated for the iCE40 platform stand-in (hw/top.py ``target_platform``)."""

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        return Fragment.get(self.dut, target_platform("ice40"))


#: The delimiter's two forms: generic (ECP5 and others) and iCE40 (flags as flip-flops).
FORMS = pytest.mark.parametrize("ice40", [False, True], ids=["generic", "ice40"])


def _delim_sim(events, timeout=50, ready_fn=None, gap=3, ice40=False):
    """Feed FrameDelimiter: events are bytes, ('idle', n) or ('stall', n)."""
    dut = FrameDelimiter(timeout=timeout)
    out = []
    stall = [0]

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for ev in events:
            if isinstance(ev, tuple) and ev[0] == "idle":
                await ctx.tick().repeat(ev[1])
                continue
            if isinstance(ev, tuple) and ev[0] == "stall":
                ctx.set(dut.o.ready, 0 if ev[1] else 1)
                continue
            ctx.set(dut.i.payload, ev)
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            ctx.set(dut.i.valid, 0)
            await ctx.tick().repeat(gap)
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(timeout + 10)

    async def proc(ctx):
        async for _c, _r, v, r, d, l in ctx.tick().sample(dut.o.valid, dut.o.ready,
                                                          dut.o.payload.data,
                                                          dut.o.payload.last):
            if v and r:
                out.append((d, l))

    sim = Simulator(_InIce40Form(dut) if ice40 else dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(proc)
    sim.run()
    return dut, out


@FORMS
@pytest.mark.parametrize("gap", [2, 3])
@pytest.mark.parametrize("length", [0, 1, 3])
def test_delimiter_marks_last_byte_from_length(length, gap, ice40):
    """gap 2: bytes 3 cycles apart, the closest the contract allows (the last-byte
    test is a flip-flop a cycle behind the count)."""
    frames = _frame_bytes(length) + _frame_bytes(length + 1, fill=0x22)
    _, out = _delim_sim(frames, gap=gap, ice40=ice40)
    assert [d for d, _ in out] == frames
    lasts = [i for i, (_, l) in enumerate(out) if l]
    n1 = 4 * (length + 2)
    assert lasts == [n1 - 1, n1 + 4 * (length + 3) - 1]


@FORMS
@pytest.mark.parametrize("timeout", [4, 50])
def test_delimiter_timeout_ends_partial_frame_with_zero_byte(timeout, ice40):
    """timeout 4: one cycle more than the 3 idle cycles between two bytes."""
    frame = _frame_bytes(2)
    # The last 5 bytes are lost; the line goes idle for longer than the timeout.
    events = frame[:-5] + [("idle", 120)] + _frame_bytes(0)
    _, out = _delim_sim(events, timeout=timeout, ice40=ice40)
    n = len(frame) - 5
    assert out[:n] == [(b, 0) for b in frame[:n]]
    assert out[n] == (0, 1), "timeout must end the frame with a zero byte carrying tlast"
    # The next frame is framed normally.
    rest = out[n + 1:]
    assert [d for d, _ in rest] == _frame_bytes(0)
    assert [l for _, l in rest] == [0] * 7 + [1]


@FORMS
def test_delimiter_no_timeout_between_frames(ice40):
    """An idle line between complete frames produces nothing."""
    events = _frame_bytes(0) + [("idle", 200)] + _frame_bytes(0)
    dut, out = _delim_sim(events, timeout=50, ice40=ice40)
    assert len(out) == 16 and sum(l for _, l in out) == 2


@FORMS
def test_delimiter_dropped_last_byte_is_still_terminated(ice40):
    """A full FIFO loses bytes; a lost tlast is replaced as soon as there is room."""
    frame = _frame_bytes(1)
    events = frame[:-1] + [("stall", 1), frame[-1], ("stall", 0)]
    _, out = _delim_sim(events, ice40=ice40)
    assert [d for d, _ in out[:-1]] == frame[:-1]
    assert out[-1] == (0, 1)


def test_bridge_parameter_checks():
    cfg8 = AnyprecConfig(stream_width=8)
    with pytest.raises(ConfigError, match="stream_width=8"):
        AnyprecUartTop(AnyprecConfig(), divisor=8, timeout=100)
    with pytest.raises(ValueError, match="divisor"):
        AnyprecUartTop(cfg8, divisor=2, timeout=100)
    with pytest.raises(ValueError, match="timeout"):
        AnyprecUartTop(cfg8, divisor=8, timeout=0)


def test_uart_divisor():
    assert uart_divisor(24e6, 115200) == 208
    assert uart_divisor(100e6, 1_000_000) == 100
    with pytest.raises(ValueError, match="too fast"):
        uart_divisor(12e6, 6_000_000)
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(10e6, 1_800_000)     # 5.56 -> 6: 7% off


def test_pll_solvers():
    p = ice40_pll(12, 24)
    assert p.fout_mhz == pytest.approx(24.0)
    assert 12 / (p.divr + 1) * (p.divf + 1) / (1 << p.divq) == pytest.approx(p.fout_mhz)
    q = ecp5_pll(25, 100)
    assert q.fout_mhz == pytest.approx(100.0)
    assert 400 <= q.fvco_mhz <= 800
    assert 25 / q.clki_div * q.clkfb_div == pytest.approx(q.fout_mhz)
    with pytest.raises(PllError):
        ice40_pll(12, 500)
    with pytest.raises(PllError):
        ecp5_pll(25, 1000)
