"""The driver against the behavioural device model: results equal golden.arith bit for bit."""

import asyncio

import numpy as np
import pytest

from anyprec.golden import arith
from anyprec.golden.errors import ShapeError
from anyprec.hw.config import AnyprecConfig
from anyprec.host import protocol as P
from anyprec.host.devmodel import ModelDevice, random_network
from anyprec.host.driver import AsyncDriver, Driver
from anyprec.host.errors import (DeviceTimeout, ModelMismatchError, NotReadyError,
                                 ProtocolError, RangeError)
from anyprec.host.protocol import Opcode
from anyprec.host.transport import (AsyncModelTransport, ByteStreamTransport,
                                    ModelByteTransport, ModelTransport, Transport)

SEED = 7031

CONFIGS = {
    # R*C = 15 (not a multiple of 32), small N and A.
    "serial-3x5-N4-A4": AnyprecConfig(rows=3, cols=5, max_wbits=4, max_abits=4, max_m=16,
                                      max_k=20, layers=3),
    "serial-4x4-N8-A8": AnyprecConfig(rows=4, cols=4, max_wbits=8, max_abits=8, max_m=24,
                                      max_k=24, layers=3),
    # A > 8: two activations per word; R*C = 64 (two words per slice).
    "serial-8x8-N3-A10": AnyprecConfig(rows=8, cols=8, max_wbits=3, max_abits=10, max_m=20,
                                       max_k=20, layers=3),
    "parallel-4x8-N4-A4": AnyprecConfig(rows=4, cols=8, max_wbits=4, max_abits=4, max_m=20,
                                        max_k=20, layers=3, design="parallel"),
}
# Layer shapes that are not multiples of R or C, plus degenerate ones.
SHAPES = [(13, 17), (7, 13), (5, 7)]


def _wbits(cfg):
    n = cfg.max_wbits
    return [n] if cfg.design == "parallel" else list(range(1, n + 1))


def _abits(cfg):
    return sorted({1, max(1, cfg.max_abits // 2), cfg.max_abits})


def _loaded(cfg, seed, shapes=SHAPES, transport=None):
    rng = np.random.default_rng(seed)
    net = random_network(rng, shapes, cfg.max_wbits, cfg.max_abits)
    dev = ModelDevice(cfg)
    tr = transport(dev) if transport else ModelTransport(dev)
    drv = Driver(tr)
    drv.load_model(net)
    return rng, net, dev, tr, drv


@pytest.mark.parametrize("name", CONFIGS)
def test_matvec_equals_dot(name):
    cfg = CONFIGS[name]
    seed = SEED + list(CONFIGS).index(name)
    rng, net, dev, tr, drv = _loaded(cfg, seed)
    for l, layer in enumerate(net.layers):
        m, k = layer.shape
        for a in _abits(cfg):
            xs = [rng.integers(0, 1 << a, size=k), np.zeros(k, dtype=np.int64),
                  np.full(k, (1 << a) - 1)]
            for x in xs:
                for wb in _wbits(cfg):
                    res = drv.matvec(l, x, wb, a)
                    want = arith.dot(layer.codes, x, cfg.max_wbits, wb, a)
                    assert res.values.dtype == np.int64
                    assert np.array_equal(res.values, want), \
                        f"seed {seed}, {name}, layer {l}, wbits {wb}, abits {a}, x {x}"
                    assert res.cycles == 0  # the model is not cycle-accurate


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("fill", ["zero", "max"])
def test_matvec_extreme_codes(name, fill):
    cfg = CONFIGS[name]
    n, amax = cfg.max_wbits, cfg.max_abits
    value = 0 if fill == "zero" else (1 << n) - 1
    shapes = [(1, 1), (cfg.max_m, cfg.max_k), (1, cfg.max_k)]
    net = random_network(np.random.default_rng(SEED), shapes, n, amax)
    for layer in net.layers:
        layer.codes = np.full(layer.shape, value)
    drv = Driver(ModelTransport(ModelDevice(cfg)))
    drv.load_model(net)
    for l, layer in enumerate(net.layers):
        x = np.full(layer.shape[1], (1 << amax) - 1)
        for wb in _wbits(cfg):
            got = drv.matvec(l, x, wb, amax).values
            # All codes equal: every row is +-(2^k - 1) * sum(x), the extreme of D.
            sign = -1 if fill == "zero" else 1
            assert np.all(got == sign * ((1 << wb) - 1) * int(x.sum())), f"{name} {l} {wb}"
            assert np.array_equal(got, arith.dot(layer.codes, x, n, wb))


@pytest.mark.parametrize("name", CONFIGS)
def test_infer_mixed_precision_and_slimming(name):
    cfg = CONFIGS[name]
    seed = SEED + 100 + list(CONFIGS).index(name)
    rng, net, dev, tr, drv = _loaded(cfg, seed)
    n, amax = cfg.max_wbits, cfg.max_abits
    parallel = cfg.design == "parallel"
    cases = [(n, amax, None), ([n, 1 if not parallel else n, n], [amax, 2, amax], None)]
    for _ in range(6):
        wb = [n if parallel else int(rng.integers(1, n + 1)) for _ in SHAPES]
        ab = [int(rng.integers(1, amax + 1)) for _ in SHAPES]
        m0, m1 = int(rng.integers(1, 14)), int(rng.integers(1, 8))
        k0 = int(rng.integers(1, 18))
        sizes = [(m0, k0), (m1, m0), (int(rng.integers(1, 6)), m1)]
        cases += [(wb, ab, None), (wb, ab, sizes)]
    for wb, ab, sizes in cases:
        k0 = sizes[0][1] if sizes else SHAPES[0][1]
        x = rng.integers(0, 1 << (ab if isinstance(ab, int) else ab[0]), size=k0)
        want, trace = net.forward(x, wb, ab, sizes, return_all=True)
        drv.set_precision(wb, ab, sizes)
        res = drv.infer(x)
        assert np.array_equal(res.values, want), \
            f"seed {seed}, {name}, wbits {wb}, abits {ab}, sizes {sizes}"
        assert res.values.shape == (sizes[-1][0] if sizes else SHAPES[-1][0],)


def test_infer_8_2_8_and_prefix_of_layers():
    cfg = CONFIGS["serial-4x4-N8-A8"]
    rng, net, dev, tr, drv = _loaded(cfg, SEED + 2)
    x = rng.integers(0, 256, size=SHAPES[0][1])
    drv.set_precision([8, 2, 8], [8, 8, 8])
    assert np.array_equal(drv.infer(x).values, net.forward(x, [8, 2, 8], 8)), f"seed {SEED + 2}"
    # The first two layers alone: layer 1 becomes the last layer (raw logits).
    sub = arith.IntNetwork(net.layers[:2], net.n, net.a)
    assert np.array_equal(drv.infer(x, 2).values, sub.forward(x, [8, 2], 8))
    # A batch through forward() equals the golden batch.
    xb = rng.integers(0, 1 << 5, size=(SHAPES[0][1], 4))
    assert np.array_equal(drv.forward(xb, [3, 8, 1], [5, 4, 6]),
                          net.forward(xb, [3, 8, 1], [5, 4, 6])), f"seed {SEED + 2}"


def test_precision_switching_and_run_cache():
    cfg = CONFIGS["serial-4x4-N8-A8"]
    rng, net, dev, tr, drv = _loaded(cfg, SEED + 3)
    x = rng.integers(0, 16, size=SHAPES[0][1])
    seq = [(8, 4), (1, 4), (8, 4), (3, 4), (3, 4), (5, 4), (2, 4)]
    for wb, ab in seq:
        before = len(tr.requests)
        drv.set_precision(wb, ab)
        sent = [P.split_header(r[0])[0] for r in tr.requests[before:]]
        got = drv.infer(x).values
        assert np.array_equal(got, net.forward(x, wb, ab)), f"seed {SEED + 3}, {wb}/{ab}"
        assert all(op == Opcode.SET_RUN for op in sent)
    # Switching sends SET_RUN once per layer; repeating the same precision sends nothing.
    before = len(tr.requests)
    assert drv.set_precision(2, 4) == 0 and len(tr.requests) == before
    assert drv.set_precision(2, 4, force=True) == 3
    assert drv.set_precision(4, 4) == 3
    # The cache follows STATUS.
    st = drv.status()
    assert [(s.run_wbits, s.run_abits) for s in st.layers[:3]] == [(4, 4)] * 3


def test_progressive_streaming():
    cfg = CONFIGS["serial-4x4-N8-A8"]
    rng = np.random.default_rng(SEED + 4)
    net = random_network(rng, SHAPES, 8, 8)
    dev = ModelDevice(cfg)
    drv = Driver(ModelTransport(dev))
    drv.configure(net)
    drv.load_requant(net)
    x = rng.integers(0, 256, size=SHAPES[0][1])
    drv.set_precision(1, 8)
    with pytest.raises(NotReadyError, match=r"layer 0 has 0 planes loaded, needs 1"):
        drv.infer(x)
    seen = []
    for k in drv.stream_planes(net):
        seen.append(k)
        assert [s.planes for s in drv.status().layers[:3]] == [k] * 3
        for wb in range(1, k + 1):
            drv.set_precision(wb, 8)
            assert np.array_equal(drv.infer(x).values, net.forward(x, wb, 8)), \
                f"seed {SEED + 4}, {k} planes, wbits {wb}"
        if k < 8:
            drv.set_precision(k + 1, 8)
            with pytest.raises(NotReadyError,
                               match=rf"INFER.*layer 0 has {k} planes? loaded, needs {k + 1}"):
                drv.infer(x)
            with pytest.raises(NotReadyError):
                drv.matvec(1, rng.integers(0, 256, size=SHAPES[1][1]), k + 1, 8)
    assert seen == list(range(1, 9))
    # Mixed: a later layer short of planes is named in the error.
    drv.set_layer(1, *SHAPES[1], P.layout(SHAPES, cfg)[1])   # reload layer 1 (clears it)
    drv.load_requant(net)
    drv.load_planes(net, planes=range(2), layers=[1])
    drv.set_precision([8, 4, 8], 8)
    with pytest.raises(NotReadyError, match="layer 1 has 2 planes loaded, needs 4"):
        drv.infer(x)
    drv.set_precision([8, 2, 8], 8)
    assert np.array_equal(drv.infer(x).values, net.forward(x, [8, 2, 8], 8))


def test_async_driver_identical():
    cfg = CONFIGS["serial-3x5-N4-A4"]
    seed = SEED + 5
    rng = np.random.default_rng(seed)
    net = random_network(rng, SHAPES, 4, 4)
    xs = [rng.integers(0, 16, size=SHAPES[0][1]) for _ in range(4)]  # layer 0 runs 4-bit
    settings = [(4, 4, None), ([1, 4, 2], [4, 2, 3], None),
                ([3, 3, 3], [4, 1, 4], [(9, 10), (4, 9), (2, 4)])]

    sync_tr = ModelTransport(ModelDevice(cfg))
    drv = Driver(sync_tr)
    drv.load_model(net)
    sync_out = []
    for wb, ab, sizes in settings:
        drv.set_precision(wb, ab, sizes)
        k0 = sizes[0][1] if sizes else SHAPES[0][1]
        sync_out += [drv.infer(x[:k0]).values for x in xs]
        sync_out.append(drv.matvec(1, np.arange(sizes[1][1] if sizes else 13) % 4, 2, 2).values)

    async def main():
        atr = AsyncModelTransport(ModelDevice(cfg))
        adrv = AsyncDriver(atr)
        await adrv.configure(net)
        await adrv.load_requant(net)
        async for _ in adrv.stream_planes(net):
            pass
        out = []
        for wb, ab, sizes in settings:
            await adrv.set_precision(wb, ab, sizes)
            k0 = sizes[0][1] if sizes else SHAPES[0][1]
            out += [(await adrv.infer(x[:k0])).values for x in xs]
            out.append((await adrv.matvec(1, np.arange(sizes[1][1] if sizes else 13) % 4, 2,
                                          2)).values)
        return out, atr

    async_out, atr = asyncio.run(main())
    assert len(async_out) == len(sync_out)
    for i, (a, s) in enumerate(zip(async_out, sync_out)):
        assert np.array_equal(a, s), f"seed {seed}, result {i}"
    # Streaming plane by plane sends the same frames, in another order; the compute
    # requests are identical word for word.
    compute = {Opcode.INFER, Opcode.MATVEC, Opcode.SET_RUN}
    pick = lambda reqs: [r for r in reqs if P.split_header(r[0])[0] in compute]
    assert [r[1:-1] for r in pick(atr.requests)] == [r[1:-1] for r in pick(sync_tr.requests)]
    assert sorted(map(tuple, (r[1:-1] for r in atr.requests))) == \
        sorted(map(tuple, (r[1:-1] for r in sync_tr.requests)))


def _requests_opcodes(tr):
    return [P.split_header(r[0])[0] for r in tr.requests]


@pytest.mark.parametrize("case,match", [
    ("layers", "4 layers, the device only 3 layer slots"),
    ("max_m", r"layer 1 is 17x13, the device takes layers of at most 16x20"),
    ("max_k", r"layer 0 is 13x21"),
    ("wbits", "8-bit weights, the device stores 4-bit"),
    ("abits", "8-bit activations"),
    ("depth", "the model needs 104 words of weight memory, the device has 100"),
])
def test_model_mismatch_is_detected_before_sending(case, match):
    cfg = CONFIGS["serial-3x5-N4-A4"]
    n, a, shapes = 4, 4, list(SHAPES)
    if case == "layers":
        shapes = shapes + [(3, 5)]
    elif case == "max_m":
        shapes[1] = (17, 13)
    elif case == "max_k":
        shapes[0] = (13, 21)
    elif case == "wbits":
        n = 8
    elif case == "abits":
        a = 8
    elif case == "depth":
        # Spans T*N*J: 5*4*4 + 2*4*2 + 2*4*1 = 104 words, 4 more than the memory.
        cfg = cfg.replace(depth=100)
        shapes = [(13, 17), (6, 10), (4, 2)]
    net = random_network(np.random.default_rng(SEED), shapes, n, a)
    dev = ModelDevice(cfg)
    tr = ModelTransport(dev)
    drv = Driver(tr)
    with pytest.raises(ModelMismatchError, match=match):
        drv.load_model(net)
    assert _requests_opcodes(tr) == [Opcode.INFO]      # nothing streamed
    assert not any(s.configured for s in dev.slots)


def test_malformed_model_rejected_before_sending():
    cfg = CONFIGS["serial-3x5-N4-A4"]
    net = random_network(np.random.default_rng(SEED), SHAPES, 4, 4)
    net.layers[1].m = net.layers[1].m[:, :3]
    tr = ModelTransport(ModelDevice(cfg))
    with pytest.raises(ShapeError, match="layer 1: requantisation tables"):
        Driver(tr).load_model(net)
    assert _requests_opcodes(tr) == [Opcode.INFO]


def test_reconfigure_moves_stale_slots():
    cfg = AnyprecConfig(rows=3, cols=5, max_wbits=4, max_abits=4, max_m=16, max_k=20,
                        layers=3, depth=200)
    rng = np.random.default_rng(SEED + 6)
    small = random_network(rng, [(4, 4), (4, 4), (4, 4)], 4, 4)   # 8 words each
    big = random_network(rng, [(16, 20), (9, 16)], 4, 4)           # [0, 96), [96, 144)
    dev = ModelDevice(cfg)
    drv = Driver(ModelTransport(dev))
    drv.load_model(small)
    # Slot 0 sits inside big's layer-1 region and slot 1 inside its layer-0 region, so
    # neither SET_LAYER can go first; slot 2 (unused by big) blocks layer 0 too.
    drv.set_layer(0, 4, 4, 100)
    assert [(s.base, s.m) for s in drv.status().layers] == [(100, 4), (8, 4), (16, 4)]
    drv.load_model(big)
    st = drv.status()
    assert [(s.m, s.k, s.base) for s in st.layers[:2]] == [(16, 20, 0), (9, 16, 96)]
    assert (st[2].m, st[2].k) == (1, 1) and st[2].base >= 144   # parked out of the way
    x = rng.integers(0, 16, size=20)
    drv.set_precision(4, 4)
    assert np.array_equal(drv.infer(x).values, big.forward(x, 4, 4)), f"seed {SEED + 6}"
    # Without room to park the stale slot, the driver says so before changing anything.
    dev2 = ModelDevice(cfg.replace(depth=144))   # big fills it exactly
    tr2 = ModelTransport(dev2)
    drv2 = Driver(tr2)
    drv2.set_layer(2, 16, 20, 0)
    before = len(tr2.requests)
    with pytest.raises(ModelMismatchError, match=r"slot 2 .* \[0, 96\).* no free memory"):
        drv2.load_model(big)
    assert _requests_opcodes(tr2)[before:] == [Opcode.STATUS]
    assert [s.configured for s in dev2.slots] == [False, False, True]


def test_byte_stream_transport():
    cfg = CONFIGS["serial-3x5-N4-A4"]
    rng = np.random.default_rng(SEED + 7)
    net = random_network(rng, SHAPES, 4, 4)
    drv = Driver(ModelByteTransport(ModelDevice(cfg)))
    drv.load_model(net)
    x = rng.integers(0, 16, size=SHAPES[0][1])
    assert np.array_equal(drv.forward(x, [2, 3, 4], 4), net.forward(x, [2, 3, 4], 4))


def test_byte_stream_timeouts():
    class Silent(ByteStreamTransport):
        def __init__(self):
            self.sent = b""

        def write(self, data):
            self.sent += data

        def read(self, n, timeout):
            return b""

    link = Silent()
    with pytest.raises(DeviceTimeout, match="got 0 of the 4 bytes of the response header"):
        Driver(link, timeout=0.01).info()
    assert P.bytes_to_words(link.sent) == P.info(tag=0)
    with pytest.raises(DeviceTimeout, match="link closed"):
        Driver(Silent()).status()


@pytest.mark.parametrize("width", [8, 16])
def test_narrow_stream_widths(width):
    cfg = CONFIGS["serial-3x5-N4-A4"].replace(stream_width=width)
    rng = np.random.default_rng(SEED + width)
    net = random_network(rng, SHAPES, 4, 4)
    drv = Driver(ModelTransport(ModelDevice(cfg), width=width))
    assert drv.info().stream_width == width
    drv.load_model(net)
    x = rng.integers(0, 16, size=SHAPES[0][1])
    assert np.array_equal(drv.forward(x, 3, 4), net.forward(x, 3, 4)), f"seed {SEED + width}"


class _Tamper(Transport):
    """Corrupts responses in a chosen way."""

    def __init__(self, inner, how):
        self.inner, self.how, self.active = inner, how, False

    def exchange(self, words, timeout=None):
        resp = self.inner.exchange(words, timeout)
        if not self.active:
            return resp
        if self.how == "crc":
            return resp[:-1] + [resp[-1] ^ 0x80]
        if self.how == "tag":
            return P.encode_frame(resp[0] & 0xFF, ((resp[0] >> 8) + 1) & 0xFF, resp[1:-1])
        if self.how == "opcode":
            return P.encode_frame(0x7F, (resp[0] >> 8) & 0xFF, resp[1:-1])
        if self.how == "short":
            return resp[:-2] + [resp[-1]]
        if self.how == "timeout":
            raise DeviceTimeout("device timed out (test)")
        raise AssertionError(self.how)


@pytest.mark.parametrize("how,exc,match", [
    ("crc", ProtocolError, r"bad response to INFER \(3 layers\): frame CRC"),
    ("tag", ProtocolError, "echoes tag"),
    ("opcode", ProtocolError, "echoes opcode"),
    ("short", ProtocolError, "payload words"),
    ("timeout", DeviceTimeout, "timed out"),
])
def test_bad_responses(how, exc, match):
    cfg = CONFIGS["serial-3x5-N4-A4"]
    rng = np.random.default_rng(SEED + 8)
    net = random_network(rng, SHAPES, 4, 4)
    tr = _Tamper(ModelTransport(ModelDevice(cfg)), how)
    drv = Driver(tr)
    drv.load_model(net)
    drv.set_precision(4, 4)
    assert drv.core._runs  # cached
    tr.active = True
    with pytest.raises(exc, match=match):
        drv.infer(rng.integers(0, 16, size=SHAPES[0][1]))
    assert not drv.core._runs  # state unknown after a bad exchange: cache dropped
    tr.active = False
    x = rng.integers(0, 16, size=SHAPES[0][1])
    assert np.array_equal(drv.forward(x, 4, 4), net.forward(x, 4, 4))


def test_tags_increment_per_request():
    cfg = CONFIGS["serial-3x5-N4-A4"]
    tr = ModelTransport(ModelDevice(cfg))
    drv = Driver(tr)
    for _ in range(300):
        drv.status()
    tags = [P.split_header(r[0])[1] for r in tr.requests]
    assert tags == [i % 256 for i in range(len(tags))]


def test_host_checks_input_length_and_lanes():
    cfg = CONFIGS["serial-3x5-N4-A4"]
    rng, net, dev, tr, drv = _loaded(cfg, SEED + 9)
    before = len(tr.requests)
    # 16 of 17 inputs fit the same number of words: only the host can catch it.
    with pytest.raises(ShapeError, match="got 16 inputs, layer 0 runs 17"):
        drv.infer(np.zeros(16, dtype=np.int64))
    with pytest.raises(ShapeError, match="8-bit lane"):
        drv.matvec(0, np.full(17, 256), 4, 4)
    assert len(tr.requests) == before
    # Out of the precision's range but inside the lane: the device refuses (RANGE).
    with pytest.raises(RangeError, match="an activation is 200, above 15 for abits 4"):
        drv.matvec(0, np.full(17, 200), 4, 4)


def test_parallel_design_only_runs_n_bits():
    cfg = CONFIGS["parallel-4x8-N4-A4"]
    rng, net, dev, tr, drv = _loaded(cfg, SEED + 10)
    assert [s.requant_mask for s in drv.status().layers[:3]] == [0b1000] * 3
    with pytest.raises(RangeError, match="parallel design only runs 4-bit"):
        drv.set_run(0, 3, 4)
    with pytest.raises(RangeError, match="parallel design only runs 4-bit"):
        drv.matvec(0, np.zeros(SHAPES[0][1], dtype=np.int64), 2, 4)
    # The default requantisation load sends only the N-bit tables (checked above).
    with pytest.raises(RangeError, match="wbits 5 is outside 1..4"):
        drv.run(drv.core._load_requant(0, 5, 0, np.zeros(13, int), np.zeros(13, int),
                                       cfg))
