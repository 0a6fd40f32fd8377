"""AnyprecTop (hw/top.py) on narrow AXI4-Stream ports, against the behavioural model.

The core is tested word for word in test_hw_core.py; this checks the 8- and 16-bit
ports around it: beats assembled least significant byte first, a ``tlast`` in the middle
of a word completing it with zero bytes (the response still echoes the opcode and tag of
that header), responses split into beats with ``tlast`` on the last one, random
``tvalid`` gaps and ``tready`` stalls, and the AXI rule on ``m_axis`` at every edge.
"""

import random
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth import Cat

from anyprec.hw.config import AnyprecConfig
from anyprec.hw.top import AnyprecTop
from anyprec.host import protocol as P
from anyprec.host.devmodel import ModelDevice
from anyprec.host.protocol import Opcode

from hwsim import simulate, axi_monitor


def _requests(cfg, rng):
    """(label, frame words, beats cut after this many beats or None)."""
    n = cfg.max_wbits
    m, k = cfg.max_m - 1, cfg.max_k
    codes = rng.integers(0, 1 << n, size=(m, k))
    per = 32 // cfg.stream_width
    out = [("info", P.info(tag=0x31), None),
           # tlast in the middle of the header (after opcode and tag): the header is
           # completed with zeros.
           ("header cut mid-word", P.set_layer(0, m, k, 0, tag=0x32), max(1, per // 2)),
           ("set_layer", P.set_layer(0, m, k, 0, tag=0x33), None)]
    for p in range(n):
        out.append((f"plane {p}", P.load_plane(0, p, P.pack_plane(codes, n, p, cfg),
                                               tag=p), None))
    x = rng.integers(0, 1 << cfg.max_abits, size=k)
    out.append(("matvec", P.matvec(0, n, cfg.max_abits, x, cfg, tag=0x40), None))
    # tlast in the middle of the first activation word.
    out.append(("payload cut mid-word", P.matvec(0, n, cfg.max_abits, x, cfg, tag=0x41),
                per + 1))
    out.append(("status", P.status(tag=0x42), None))
    return out


@pytest.mark.parametrize("width", [8, 16])
def test_top_narrow_stream(width):
    seed = 60 + width
    rng = np.random.default_rng(seed)
    cfg = AnyprecConfig(rows=2, cols=3, max_wbits=3, max_abits=4, max_m=5, max_k=7,
                        layers=1, stream_width=width)
    requests = _requests(cfg, rng)
    beats = []
    for _, words, cut in requests:
        bs = P.to_beats(words, width)
        if cut is not None:
            bs = bs[:cut - 1] + [(bs[cut - 1][0], True)]
        beats += bs
    # An OVERSIZE frame on the narrow port: the CRC word without tlast, then one word.
    over = P.to_beats(P.info(tag=0x50) + [0x12345678], width)
    beats += over + P.to_beats(P.info(tag=0x51), width)
    model = ModelDevice(cfg)
    want = model.feed(beats, width=width)
    assert [P.split_header(r[0])[:2] for r in want][1] == (Opcode.SET_LAYER, 0x32)
    top = AnyprecTop(cfg)
    got, stats = [], {}
    m_axis = SimpleNamespace(valid=top.m_axis_tvalid, ready=top.m_axis_tready,
                             payload=Cat(top.m_axis_tdata, top.m_axis_tlast))

    async def source(ctx):
        r = random.Random(seed)
        for data, last in beats:
            if r.random() < 0.3:
                ctx.set(top.s_axis_tvalid, 0)
                await ctx.tick()
            ctx.set(top.s_axis_tdata, data)
            ctx.set(top.s_axis_tlast, int(last))
            ctx.set(top.s_axis_tvalid, 1)
            await ctx.tick().until(top.s_axis_tready)
        ctx.set(top.s_axis_tvalid, 0)

    async def sink(ctx):
        r = random.Random(seed + 1)
        asm = P.WordAssembler(width)
        cur = []
        while len(got) < len(want):
            ctx.set(top.m_axis_tready, 0)
            while r.random() < 0.4:
                await ctx.tick()
            ctx.set(top.m_axis_tready, 1)
            data, last = await ctx.tick().sample(top.m_axis_tdata, top.m_axis_tlast).until(
                top.m_axis_tvalid)
            word = asm.push(data, last)
            if word is not None:
                cur.append(word[0])
                if word[1]:
                    got.append(cur)
                    cur = []
                else:
                    assert not last
        ctx.set(top.m_axis_tready, 0)

    simulate(top, [sink], [source, axi_monitor(m_axis, stats, "m_axis")],
             timeout_cycles=60 * len(beats) + 20000, what=f"top width {width}")
    labels = [l for l, _, _ in requests] + ["oversize", "info after oversize"]
    for i, (label, w, g) in enumerate(zip(labels, want, got)):
        if (w[0] & 0xFF) == Opcode.MATVEC and w[1] == 0:
            assert g[:-2] == w[:-2] and len(g) == len(w), \
                f"seed {seed}: {label}: hw {[hex(v) for v in g]} != {[hex(v) for v in w]}"
            assert P.decode_frame(g).payload[-1] > 0
        else:
            assert g == w, \
                f"seed {seed}: {label}: hw {[hex(v) for v in g]} != {[hex(v) for v in w]}"
    assert len(got) == len(want) == len(labels)
    assert stats["stalled"] > 0, f"seed {seed}: no m_axis stall happened"
