"""The cocotb test that runs one anyprec simulation job (see sim/runner.py).

The job file (``$ANYPREC_JOB``) names an async flow function; this test starts the clock,
resets the DUT, builds the transport and the host driver, awaits the flow and writes its
result. Keeping the flows as plain async functions (sim/flows.py) lets pytest, the CLI and
benchmarks share them.
"""

import importlib
import json
import os
import time
from types import SimpleNamespace

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from ..hw.config import AnyprecConfig
from ..host.driver import AsyncDriver
from .transport import FastTransport, AxiTransport

CLOCK_NS = 10


async def reset(dut):
    for name in ("ld_en", "go", "bypass", "gap_rate", "stall_rate", "seed", "rd_addr",
                 "s_axis_tvalid", "s_axis_tdata", "s_axis_tlast", "m_axis_tready"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


def make_transport(dut, cfg, kind, **kw):
    if kind == "fast":
        return FastTransport(dut, cfg.stream_width, clock_period_ns=CLOCK_NS, **kw)
    if kind == "axi":
        return AxiTransport(dut, cfg.stream_width, clock_period_ns=CLOCK_NS, **kw)
    raise ValueError(f"unknown transport {kind!r}")


@cocotb.test()
async def job(dut):
    spec = json.loads(open(os.environ["ANYPREC_JOB"]).read())
    cfg = AnyprecConfig.from_dict(spec["cfg"])
    # The clock runs inside the simulation (hw/simharness.py generate_clock_wrapper):
    # no cocotb callback per edge.
    await reset(dut)

    progress_file = open(spec["progress"], "a", buffering=1)
    arrays = {}
    if "arrays_in" in spec:
        with np.load(spec["arrays_in"]) as z:
            arrays = {k: z[k] for k in z.files}
    transport = make_transport(dut, cfg, spec["transport"])
    env = SimpleNamespace(
        dut=dut, cfg=cfg, transport=transport, driver=AsyncDriver(transport),
        arrays=arrays, arrays_out={}, clock_ns=CLOCK_NS,
        progress=lambda msg: progress_file.write(msg + "\n"),
        make_transport=lambda kind, **kw: make_transport(dut, cfg, kind, **kw),
        reset=lambda: reset(dut))
    module, func = spec["entry"].split(":")
    fn = getattr(importlib.import_module(module), func)
    t0 = time.monotonic()
    prof = None
    if os.environ.get("ANYPREC_PROFILE"):
        # Opt-in profile of the Python side of a job (tooling-speed work).
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    result = await fn(env, **spec["args"])
    if prof is not None:
        prof.disable()
        prof.dump_stats(os.environ["ANYPREC_PROFILE"])
    result = dict(result or {})
    result.setdefault("wall_seconds", time.monotonic() - t0)
    if env.arrays_out:
        np.savez(spec["arrays_out"], **env.arrays_out)
    with open(spec["result"], "w") as f:
        json.dump(result, f)
    progress_file.close()
