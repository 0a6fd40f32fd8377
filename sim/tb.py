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
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Timer

from ..hw.config import AnyprecConfig
from ..host.driver import AsyncDriver
from .transport import FastTransport, AxiTransport

CLOCK_NS = 10


async def reset(dut):
    # May be called right after a read in the read-only phase, where writes are refused.
    await Timer(1, unit="ps")
    for name in ("ld_en", "go", "bypass", "gap_rate", "stall_rate", "seed", "rd_addr",
                 "s_axis_tvalid", "s_axis_tdata", "s_axis_tlast", "m_axis_tready"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


def make_transport(dut, cfg, kind, ext_clock=False, **kw):
    if kind == "fast":
        return FastTransport(dut, cfg.stream_width, clock_period_ns=CLOCK_NS, **kw)
    if kind == "axi":
        # Agents bind to the clock that really drives the DUT in this job.
        clock = dut.clk_ext if ext_clock else dut.clk
        return AxiTransport(dut, cfg.stream_width, clock_period_ns=CLOCK_NS, clock=clock,
                            **kw)
    raise ValueError(f"unknown transport {kind!r}")


@cocotb.test()
async def job(dut):
    spec = json.loads(open(os.environ["ANYPREC_JOB"]).read())
    cfg = AnyprecConfig.from_dict(spec["cfg"])
    # The clock normally runs inside the simulation (hw/simharness.py
    # generate_clock_wrapper): no cocotb callback per edge. AXI-agent jobs drive it from
    # here instead (+anyprec_extclk, set by the runner): cocotbext-axi samples in its
    # clock-edge callbacks, which with Verilator's internal clock would run after the
    # edge's register updates.
    ext_clock = spec.get("ext_clock", spec["transport"] == "axi")
    if ext_clock:
        dut.clk_ext.value = 0
        Clock(dut.clk_ext, CLOCK_NS, unit="ns", impl="gpi").start()
    await reset(dut)

    progress_file = open(spec["progress"], "a", buffering=1)
    arrays = {}
    if "arrays_in" in spec:
        with np.load(spec["arrays_in"]) as z:
            arrays = {k: z[k] for k in z.files}
    transport = make_transport(dut, cfg, spec["transport"], ext_clock)
    env = SimpleNamespace(
        dut=dut, cfg=cfg, transport=transport, driver=AsyncDriver(transport),
        arrays=arrays, arrays_out={}, clock_ns=CLOCK_NS,
        progress=lambda msg: progress_file.write(msg + "\n"),
        ext_clock=ext_clock,
        make_transport=lambda kind, **kw: make_transport(dut, cfg, kind, ext_clock, **kw),
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
