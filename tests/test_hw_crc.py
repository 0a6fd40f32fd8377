"""Crc32 (hw/crc.py) against zlib.crc32, in the Amaranth simulator.

The device's CRC is CRC-32/ISO-HDLC over the little-endian bytes of 32-bit words
(docs/protocol.md section 2), so ``zlib.crc32`` of those bytes is the reference.
"""

import random
import zlib

import pytest

from anyprec.hw.crc import Crc32, crc32_matrix, CRC32_POLY_REFLECTED

from hwsim import simulate


def _zlib(words):
    return zlib.crc32(b"".join(w.to_bytes(4, "little") for w in words))


def _run(ops, serial=False, staged=False):
    """Drive ``ops`` = list of (clear, en, data), one per cycle; return ``value`` as seen
    in the cycle after each op. ``serial``: after an ``en``, ``busy`` must be high for
    exactly 32 cycles, 33 staged (``data`` scrambled meanwhile: it is needed in the
    ``en`` cycle only), and ``value`` is read once it falls. ``staged``: the staged
    form."""
    dut = Crc32(serial=serial, staged=staged)
    seen = []

    async def tb(ctx):
        for clear, en, data in ops:
            ctx.set(dut.clear, clear)
            ctx.set(dut.en, en)
            ctx.set(dut.data, data)
            await ctx.tick()
            if serial and en and not clear:
                ctx.set(dut.en, 0)
                ctx.set(dut.data, data ^ 0x5A5A5A5A)
                busy = 0
                while ctx.get(dut.busy):
                    busy += 1
                    await ctx.tick()
                assert busy == 32 + staged, busy
            assert serial or ctx.get(dut.busy) == 0
            seen.append(ctx.get(dut.value))

    simulate(dut, [tb], timeout_cycles=40 * len(ops) + 10, what="crc")
    return seen


@pytest.mark.parametrize("serial,staged", [(False, False), (True, False), (True, True)],
                         ids=["word", "serial", "serial-staged"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crc_matches_zlib(seed, serial, staged):
    """Random word sequences (0 to 40 words, random data, some extreme words), each
    started with ``clear``; the value after every word equals zlib's CRC of the prefix,
    word-parallel and bit-serial (the receive framer's serial form is staged)."""
    rng = random.Random(seed)
    ops, want = [], []
    for _ in range(12):
        n = rng.choice([0, 1, 2, 3, 7, 40])
        words = [rng.choice([0, 0xFFFFFFFF, 1 << 31, 1, rng.getrandbits(32)])
                 for _ in range(n)]
        ops.append((1, 0, rng.getrandbits(32)))
        want.append(0)                   # CRC of nothing
        for i, w in enumerate(words):
            ops.append((0, 1, w))
            want.append(_zlib(words[:i + 1]))
    got = _run(ops, serial)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"seed {seed}: cycle {i}: hw {g:#010x} != zlib {w:#010x}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_staged_crc_matches_zlib(seed):
    """The staged form (RxFramer's): random cycles of clear, absorb (mostly back to
    back) and idle; after every cycle the value is zlib's CRC of the words absorbed
    since the last clear, a word counting from the second cycle after its ``en``, and
    a clear in either cycle dropping it."""
    rng = random.Random(seed)
    ops = [(1, 0, 0)]
    for _ in range(400):
        r = rng.random()
        ops.append((int(r < 0.06), int(0.03 < r < 0.85),
                    rng.choice([0, 0xFFFFFFFF, 1 << 31, 1, rng.getrandbits(32)])))
    got = _run(ops, staged=True)
    words, pending, want = [], None, []
    for clear, en, data in ops:
        if clear:
            words = []
        elif pending is not None:
            words.append(pending)
        pending = data if en and not clear else None
        want.append(_zlib(words))
    assert sum(1 for c, e, _ in ops if e and not c) > 250
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"seed {seed}: cycle {i}: hw {g:#010x} != zlib {w:#010x}"


def _unstep32(v):
    """Inverse of absorbing a zero word: undo 32 reflected shift steps."""
    for _ in range(32):
        v = (((v ^ CRC32_POLY_REFLECTED) << 1) | 1) if v >> 31 else (v << 1)
        v &= 0xFFFFFFFF
    return v


def _step32(v):
    for _ in range(32):
        v = (v >> 1) ^ (CRC32_POLY_REFLECTED if v & 1 else 0)
    return v


def test_crc_check_value():
    """The catalogue check value: CRC of ASCII ``123456789`` is 0xCBF43926.

    The engine absorbs whole words and 9 bytes are not a whole number of words, so the
    string is preceded by 7 bytes that return the register to its initial value: three
    zero bytes, then the one word that maps the register back to 0xFFFFFFFF (absorbing a
    word is a bijection). zlib confirms the 12-byte sequence has the same CRC.
    """
    s = 0xFFFFFFFF
    for _ in range(24):                 # three zero bytes (0 ^ state, 8 shifts each)
        s = (s >> 1) ^ (CRC32_POLY_REFLECTED if s & 1 else 0)
    # Bytes 3..6 (little-endian word w) take the register from s to step32(s ^ w).
    w = s ^ _unstep32(0xFFFFFFFF)
    assert _step32(s ^ w) == 0xFFFFFFFF
    data = bytes(3) + w.to_bytes(4, "little") + b"123456789"
    assert len(data) == 16
    assert zlib.crc32(data) == 0xCBF43926 == zlib.crc32(b"123456789")
    words = [int.from_bytes(data[i:i + 4], "little") for i in range(0, 16, 4)]
    for serial in (False, True):
        got = _run([(1, 0, 0)] + [(0, 1, x) for x in words], serial)
        assert got[-1] == 0xCBF43926, f"hw CRC of '123456789' is {got[-1]:#010x} ({serial=})"


def test_crc_matrix_is_the_word_step():
    """The XOR matrix equals 32 reflected shift steps of the polynomial (random words)."""
    rng = random.Random(7)
    rows = crc32_matrix()
    for _ in range(200):
        v = rng.getrandbits(32)
        via = sum(((bin(v & row).count("1") & 1) << i) for i, row in enumerate(rows))
        assert via == _step32(v), f"seed 7: v={v:#010x}"


@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("serial", [False, True], ids=["word", "serial"])
def test_crc_clear_and_enable(seed, serial):
    """Random per-cycle mix of idle, absorb, clear and clear+en: ``en`` low holds the
    state, ``clear`` restarts and wins over ``en``, ``value`` follows one cycle later
    (serial: once ``busy`` falls)."""
    rng = random.Random(seed)
    ops, want, words = [], [], []
    for _ in range(300):
        kind = rng.choices(["idle", "en", "clear", "both"], [3, 5, 1, 1])[0]
        data = rng.getrandbits(32)
        if kind == "idle":
            ops.append((0, 0, data))
        elif kind == "en":
            ops.append((0, 1, data))
            words.append(data)
        else:
            ops.append((1, int(kind == "both"), data))
            words = []
        want.append(_zlib(words))
    got = _run(ops, serial)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"seed {seed}: cycle {i} op {ops[i]}: hw {g:#010x} != {w:#010x}"


def test_serial_crc_clear_stops_absorbing():
    """``clear`` in the middle of a serial absorption restarts at once: ``busy`` falls and
    the value is the CRC of nothing; the next word is absorbed from scratch."""
    dut = Crc32(serial=True)

    async def tb(ctx):
        ctx.set(dut.en, 1)
        ctx.set(dut.data, 0x12345678)
        await ctx.tick()
        ctx.set(dut.en, 0)
        for _ in range(5):
            await ctx.tick()
        assert ctx.get(dut.busy) == 1
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        assert (ctx.get(dut.busy), ctx.get(dut.value)) == (0, 0)
        ctx.set(dut.en, 1)
        ctx.set(dut.data, 0xCAFEF00D)
        await ctx.tick()
        ctx.set(dut.en, 0)
        await ctx.tick().until(~dut.busy)
        assert ctx.get(dut.value) == _zlib([0xCAFEF00D])

    simulate(dut, [tb], timeout_cycles=100, what="serial crc clear")
