"""RxFramer and TxFramer (hw/framing.py) in the Amaranth simulator.

RxFramer: for every frame (well-formed, truncated at every position, oversize, bad CRC)
the header, payload pulses and verdict must match docs/protocol.md sections 2 and 3,
under random input gaps and a random ``hold``; between ``end`` and ``release`` no word
may be taken, and after an error the next frame is handled normally.

TxFramer: its output must be exactly ``encode_frame(op, tag, payload)`` (CRC included)
under random output stalls and payload gaps, taking exactly ``length`` payload words,
with the AXI4-Stream rule checked at every clock edge.
"""

import random

import pytest

from anyprec.host import protocol as P
from anyprec.host.protocol import Status
from anyprec.hw.framing import RxFramer, TxFramer

from hwsim import simulate, send, receive_one, axi_monitor


# --------------------------------------------------------------------------------------
# RxFramer
# --------------------------------------------------------------------------------------

def _expect_rx(beats):
    """Events the framer must report for one frame's beats (ending with its tlast)."""
    words = [w for w, _ in beats]
    first_last = next(i for i, (_, l) in enumerate(beats) if l)
    assert first_last == len(beats) - 1
    length = words[0] >> 16
    events = [("hdr", words[0])]
    if first_last <= length:
        verdict = Status.TRUNCATED
        n_pay = first_last
    else:
        n_pay = length
        if first_last > length + 1:
            verdict = Status.OVERSIZE
        elif P.crc32(words[:-1]) == words[-1]:
            verdict = Status.OK
        else:
            verdict = Status.BAD_CRC
    events += [("pay", i, words[i]) for i in range(1, n_pay + 1)]
    events.append(("end", verdict, length))
    return events


def _rx_frames(rng):
    """(label, beats) of every verdict class, in a mixed order."""
    def good(n, tag):
        return P.encode_frame(0x20 + n % 7, tag, [rng.getrandbits(32) for _ in range(n)])

    def whole(words):
        return [(w, i == len(words) - 1) for i, w in enumerate(words)]

    out = []
    for n in (0, 1, 5):
        out.append((f"ok L={n}", whole(good(n, n))))
    # TRUNCATED: a one-word frame (header with tlast) of L=0 and of L=3, then tlast on
    # every payload word of an L=3 frame (word 3 is the last before the CRC).
    out.append(("truncated 1-word L=0", [(good(0, 1)[0], True)]))
    f3 = good(3, 2)
    for pos in range(0, 4):
        out.append((f"truncated at word {pos} of L=3", [(w, i == pos) for i, w in
                                                        enumerate(f3[:pos + 1])]))
    big = P.make_header(0x11, 9, 0xFFFF)
    out.append(("truncated L=65535", [(big, False), (1, False), (2, True)]))
    out.append(("ok after truncation", whole(good(2, 3))))
    # OVERSIZE: no tlast on the CRC word, 1 or 3 more words; then recovery.
    for extra in (1, 3):
        f = good(2, 4) + [rng.getrandbits(32) for _ in range(extra)]
        out.append((f"oversize +{extra}", whole(f)))
        out.append(("ok after oversize", whole(good(1, 5))))
    f = good(0, 6) + [0]
    out.append(("oversize L=0", whole(f)))
    # BAD_CRC: a flipped CRC bit, a flipped payload bit, a flipped header bit (the
    # length field untouched).
    f = good(3, 7)
    out.append(("bad crc (crc word)", whole(f[:-1] + [f[-1] ^ 1])))
    out.append(("bad crc (payload)", whole([f[0], f[1] ^ (1 << 31)] + f[2:])))
    out.append(("bad crc (header tag)", whole([f[0] ^ (1 << 8)] + f[1:])))
    out.append(("ok L=0 after bad crc", whole(good(0, 8))))
    out.append(("ok L=12", whole(good(12, 9))))
    return out


@pytest.mark.parametrize("seed,gap,hold_rate", [(1, 0.0, 0.0), (2, 0.3, 0.4),
                                                (3, 0.1, 0.7)])
@pytest.mark.parametrize("serial_crc", [False, True], ids=["word-crc", "serial-crc"])
def test_rx_framer(seed, gap, hold_rate, serial_crc):
    rng = random.Random(seed)
    frames = _rx_frames(rng)
    rng.shuffle(frames)
    beats = [b for _, bs in frames for b in bs]
    dut = RxFramer(serial_crc=serial_crc)
    events = []          # per frame, list of events
    checks = {"held_cycles": 0, "release_wait": 0}

    async def source(ctx):
        await send(ctx, dut.i, [{"data": w, "last": int(l)} for w, l in beats],
                   random.Random(seed + 1), gap)

    async def controller(ctx):
        r = random.Random(seed + 2)
        cur = []
        release_in = None          # cycles until release, after `end`
        async for _, _, hdr, pay, word, idx, end, verdict, length, idle, valid, ready, \
                hold, release in ctx.tick().sample(
                    dut.hdr, dut.pay, dut.word, dut.idx, dut.end, dut.verdict, dut.length,
                    dut.idle, dut.i.valid, dut.i.ready, dut.hold, dut.release):
            where = f"seed {seed}, frame {len(events)}"
            take = valid and ready
            if hold and not idle:
                checks["held_cycles"] += 1
                assert not pay, f"{where}: payload word taken while hold was high"
            if hdr:
                assert idle and not cur, f"{where}: header while a frame is in progress"
                cur.append(("hdr", word))
            if pay:
                cur.append(("pay", idx, word))
            if release_in is not None:
                # Between `end` and `release` the framer takes nothing.
                assert not take, f"{where}: word taken before release"
                checks["release_wait"] += 1
            if end:
                cur.append(("end", Status(verdict), length))
                events.append(cur)
                cur = []
                release_in = r.choice([0, 1, 3])
            ctx.set(dut.release, 0)
            if release_in is not None:
                if release_in == 0:
                    ctx.set(dut.release, 1)
                    release_in = None
                    if len(events) == len(frames):
                        return
                else:
                    release_in -= 1
            ctx.set(dut.hold, int(r.random() < hold_rate))

    simulate(dut, [controller], [source], timeout_cycles=60 * len(beats) + 200,
             what=f"RxFramer seed {seed}")
    assert len(events) == len(frames), f"seed {seed}: {len(events)} frames ended"
    for (label, bs), got in zip(frames, events):
        want = _expect_rx(bs)
        assert got == want, f"seed {seed}: frame '{label}':\n  hw   {got}\n  want {want}"
    if hold_rate:
        assert checks["held_cycles"] > 0, f"seed {seed}: hold never exercised"
    assert checks["release_wait"] > 0


def test_rx_framer_waits_for_release():
    """After ``end`` the next frame's header is not taken until ``release``."""
    dut = RxFramer()
    f1 = P.encode_frame(1, 1, [])
    f2 = P.encode_frame(2, 2, [5])
    log = []

    async def tb(ctx):
        for i, w in enumerate(f1):
            ctx.set(dut.i.payload, {"data": w, "last": int(i == len(f1) - 1)})
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.payload, {"data": f2[0], "last": 0})
        # 20 cycles with the next header offered and no release: it must wait.
        for _ in range(20):
            _, _, ready, end, verdict = await ctx.tick().sample(dut.i.ready, dut.end,
                                                                dut.verdict)
            log.append((ready, end, verdict))
        ctx.set(dut.release, 1)
        await ctx.tick()
        ctx.set(dut.release, 0)
        hdr, word = await ctx.tick().sample(dut.hdr, dut.word).until(dut.i.ready)
        assert hdr and word == f2[0]

    simulate(dut, [tb], timeout_cycles=200, what="RxFramer release")
    assert sum(e for _, e, _ in log) == 1, "end must pulse exactly once"
    assert all(v == Status.OK for _, e, v in log if e)
    assert all(not ready for ready, _, _ in log[1:]), log


# --------------------------------------------------------------------------------------
# TxFramer
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,gap,stall", [(10, 0.0, 0.0), (11, 0.4, 0.5),
                                            (12, 0.0, 0.8)])
@pytest.mark.parametrize("serial_crc", [False, True], ids=["word-crc", "serial-crc"])
def test_tx_framer(seed, gap, stall, serial_crc):
    rng = random.Random(seed)
    frames = []
    for i in range(14):
        n = rng.choice([0, 0, 1, 2, 3, 7, 20])
        frames.append((rng.getrandbits(8), rng.getrandbits(8),
                       [rng.choice([rng.getrandbits(32), 0xFFFFFFFF, 0]) for _ in range(n)]))
    all_payload = [w for _, _, p in frames for w in p]
    dut = TxFramer(serial_crc=serial_crc)
    got, stats, consumed = [], {}, []

    async def payload_source(ctx):
        # One continuous stream: the framer must take exactly `length` words per frame.
        r = random.Random(seed + 1)
        for w in all_payload:
            await send(ctx, dut.i, [w], r, gap)
            consumed.append(w)

    async def controller(ctx):
        r = random.Random(seed + 2)
        for op, tag, payload in frames:
            for _ in range(r.choice([0, 0, 2])):
                await ctx.tick()
            ctx.set(dut.op, op)
            ctx.set(dut.tag, tag)
            ctx.set(dut.length, len(payload))
            ctx.set(dut.go, 1)
            await ctx.tick()
            ctx.set(dut.go, 0)
            # A changed op/tag/length after `go` must not matter.
            ctx.set(dut.op, op ^ 0xFF)
            ctx.set(dut.length, len(payload) + 1)
            await ctx.tick().until(~dut.busy)

    async def sink(ctx):
        r = random.Random(seed + 3)
        cur = []
        while len(got) < len(frames):
            if serial_crc and stall and r.random() < stall:
                # The serial CRC spaces words 35 cycles apart: stall longer than that.
                ctx.set(dut.o.ready, 0)
                for _ in range(r.randrange(30, 45)):
                    await ctx.tick()
            p = await receive_one(ctx, dut.o, r, stall)
            cur.append(p.data)
            if p.last:
                got.append(cur)
                cur = []
            else:
                assert len(cur) < 30, f"seed {seed}: frame without last"

    simulate(dut, [sink, controller], [payload_source, axi_monitor(dut.o, stats, "tx.o")],
             timeout_cycles=100 * (len(all_payload) + 3 * len(frames)) + 200,
             what=f"TxFramer seed {seed}")
    for i, ((op, tag, payload), words) in enumerate(zip(frames, got)):
        want = P.encode_frame(op, tag, payload)
        assert words == want, (f"seed {seed}: frame {i}:\n  hw   {[hex(w) for w in words]}"
                               f"\n  want {[hex(w) for w in want]}")
    assert consumed == all_payload
    if stall:
        assert stats["stalled"] > 0, f"seed {seed}: no output stall happened"
