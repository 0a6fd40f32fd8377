"""How fast is the tooling? The verify flow against a bare Verilator run of the same design.

The bare run is a small C++ program (no cocotb, no Python) that clocks the same
``anyprec_sim_top`` through the same frames the host driver sends in the verify flow: it
loads each request into the harness buffer one beat per clock, starts it, clocks until the
response is captured and reads it back, exactly as ``FastTransport`` does. It prints the
cycles simulated, the seconds taken and a hash of every response word, so the two runs can
be checked to have done the same work.
"""

import hashlib
import json
import os
import struct
import subprocess
import time
from pathlib import Path

import numpy as np

from ..golden import arith
from ..golden.errors import AnyprecError
from ..hw.config import AnyprecConfig
from ..host import protocol as P
from ..host.devmodel import ModelDevice
from ..host.driver import Driver
from ..host.transport import ModelTransport
from .runner import cache_root, _fix_verilator_make, build, run_job
from .tools import setup_env, resolve_sim, tool_versions
from .flows import net_to_arrays

__all__ = ["workload_frames", "bare_verilator", "flow_speed", "compare"]

_MAIN_CPP = r"""
#include "Vanyprec_sim_top.h"
#include "verilated.h"
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <vector>
#include <algorithm>

// Beats are W bits; a line of LANES beats is W*LANES bits wide (Verilator: VlWide words,
// or a plain integer when it fits in 64 bits).
template <typename T> static void set_line(T& port, const uint32_t* b, size_t n) {
    if constexpr (sizeof(T) <= 8) {
        uint64_t v = 0;
        for (size_t j = 0; j < n; ++j) v |= (uint64_t)b[j] << (W * j);
        port = v;
    } else {
        for (size_t k = 0; k < sizeof(T) / 4; ++k) port[k] = 0;
        for (size_t j = 0; j < n; ++j) {
            size_t bit = W * j;
            port[bit / 32] |= b[j] << (bit % 32);
        }
    }
}
template <typename T> static uint64_t get_beat(const T& port, size_t j) {
    uint64_t mask = (W == 32) ? 0xffffffffULL : ((1ULL << W) - 1);
    if constexpr (sizeof(T) <= 8) return ((uint64_t)port >> (W * j)) & mask;
    else { size_t bit = W * j; return (port[bit / 32] >> (bit % 32)) & mask; }
}

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    if (argc < 2) { std::fprintf(stderr, "usage: bare FRAMES\n"); return 2; }
    std::ifstream in(argv[1], std::ios::binary);
    uint32_t n_frames = 0;
    in.read(reinterpret_cast<char*>(&n_frames), 4);
    std::vector<std::vector<uint32_t>> frames(n_frames);
    for (auto& f : frames) {
        uint32_t n = 0;
        in.read(reinterpret_cast<char*>(&n), 4);
        f.resize(n);
        in.read(reinterpret_cast<char*>(f.data()), 4 * n);
    }
    auto* top = new Vanyprec_sim_top;
    uint64_t cycles = 0;
    auto tick = [&]() { top->clk = 0; top->eval(); top->clk = 1; top->eval(); ++cycles; };
    top->clk = 0; top->rst = 1; top->bypass = 0; top->ld_en = 0; top->go = 0;
    top->gap_rate = 0; top->stall_rate = 0; top->seed = 1;
    for (int i = 0; i < 4; ++i) tick();
    top->rst = 0;
    tick(); tick();
    uint64_t hash = 1469598103934665603ULL;
    auto t0 = std::chrono::steady_clock::now();
    for (auto& f : frames) {
        top->rd_addr = 0;
        tick();  // the testbench's first edge (it leaves the read-only phase)
        for (size_t i = 0; i < f.size(); i += LANES) {
            size_t n = std::min<size_t>(LANES, f.size() - i);
            set_line(top->ld_data, &f[i], n);
            top->ld_count = n; top->ld_en = 1; top->go = (i + LANES >= f.size()); tick();
        }
        top->ld_en = 0; top->go = 0;
        uint64_t limit = 100000000ULL;
        while (!top->done && limit--) tick();
        if (!top->done) { std::fprintf(stderr, "timeout\n"); return 1; }
        uint32_t n = top->rsp_count;
        for (uint32_t line = 0; line * LANES < n; ++line) {
            top->rd_addr = line; top->eval();
            for (uint32_t j = 0; j < LANES && line * LANES + j < n; ++j)
                hash = (hash ^ get_beat(top->rd_data, j)) * 1099511628211ULL;
        }
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("{\"cycles\": %llu, \"seconds\": %.6f, \"frames\": %u, \"hash\": \"%016llx\"}\n",
                (unsigned long long)cycles, s, n_frames, (unsigned long long)hash);
    top->final();
    delete top;
    return 0;
}
"""


class _Recorder(ModelTransport):
    """ModelTransport that keeps every request frame (the driver needs real responses)."""

    def __init__(self, device):
        super().__init__(device)
        self.frames = []

    def exchange(self, words, timeout=None):
        self.frames.append(list(words))
        return super().exchange(words, timeout)


def workload_frames(net, cfg, settings, xs):
    """The exact request frames the driver sends to verify ``net`` at ``settings``.

    ``settings`` is a list of (wbits per layer, abits per layer); ``xs[i]`` are the inputs
    for setting i. Recorded against the behavioural model, which answers like the RTL.
    """
    rec = _Recorder(ModelDevice(cfg))
    drv = Driver(rec)
    drv.load_model(net)
    for (wb, ab), x in zip(settings, xs):
        drv.set_precision(list(wb), list(ab))
        for v in x:
            drv.infer(v, len(net.layers))
    return rec.frames


def _write_frames(path, frames, width):
    with open(path, "wb") as f:
        f.write(struct.pack("<I", len(frames)))
        for fr in frames:
            beats = [b for b, _ in P.to_beats(fr, width)]
            f.write(struct.pack("<I", len(beats)))
            f.write(struct.pack(f"<{len(beats)}I", *beats))


def _bare_binary(cfg):
    """Compile (once per configuration and source) the bare Verilator model."""
    from ..hw.simharness import generate_sim_verilog, LANES
    from ..hw.top import VERILATOR_WAIVERS
    resolve_sim("verilator")
    setup_env()
    _fix_verilator_make()
    text = generate_sim_verilog(cfg, name="anyprec_sim_top")
    key = hashlib.sha256((text + _MAIN_CPP + tool_versions("verilator")["verilator"])
                         .encode()).hexdigest()[:16]
    d = cache_root() / "bare" / key
    exe = d / "obj" / "bare"
    if not exe.exists():
        d.mkdir(parents=True, exist_ok=True)
        (d / "anyprec_sim_top.v").write_text(text)
        (d / "main.cpp").write_text(_MAIN_CPP)
        cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "-j", "2",
               f"-CFLAGS", f"-DW={cfg.stream_width} -DLANES={LANES} -std=c++17",
               *VERILATOR_WAIVERS, "--top-module", "anyprec_sim_top", "-Mdir", str(d / "obj"),
               "-o", "bare", "-CFLAGS", "-O2", str(d / "anyprec_sim_top.v"), str(d / "main.cpp")]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=d)
        if r.returncode != 0 or not exe.exists():
            raise AnyprecError(f"bare Verilator build failed: {r.stderr.strip()[-300:]}")
    return exe


def bare_verilator(cfg, frames):
    """Run ``frames`` on the bare Verilator model; returns its JSON line as a dict."""
    exe = _bare_binary(cfg)
    fpath = exe.parent.parent / f"frames-{os.getpid()}.bin"
    _write_frames(fpath, frames, cfg.stream_width)
    try:
        r = subprocess.run([str(exe), str(fpath)], capture_output=True, text=True)
    finally:
        fpath.unlink(missing_ok=True)
    if r.returncode != 0:
        raise AnyprecError(f"bare Verilator run failed: {r.stderr.strip()[-200:]}")
    return json.loads(r.stdout)


def _digits_workload(samples, bits):
    from ..golden.export import load_model
    from ..golden.data import load_split
    from .verify import default_model_path
    net, _ = load_model(default_model_path())
    _, xs_pix, _, _ = load_split()
    xs_pix = xs_pix[:samples]
    L = len(net.layers)
    settings = [((k,) * L, (net.a,) * L) for k in bits]
    xs = [arith.quantize_pixels(xs_pix, net.a, net.a) for _ in settings]
    return net, settings, xs


def flow_speed(cfg, sim, net, settings, xs):
    """Run the real verify flow (driver + FastTransport) and measure simulated cycles/s."""
    arrays = net_to_arrays(net)
    job = []
    for i, ((wb, ab), x) in enumerate(zip(settings, xs)):
        arrays[f"x_{i}"] = x
        job.append({"wbits": list(wb), "abits": list(ab), "x": f"x_{i}"})
    sb = build(cfg, sim)
    res, _ = run_job(sb, "anyprec.sim.flows:verify", {"precisions": job}, arrays=arrays)
    return {"cycles": res["sim_cycles"], "seconds": res["flow_seconds"],
            "hash": res["response_hash"],
            "cycles_per_second": res["sim_cycles"] / res["flow_seconds"]}


def _fastest(runs):
    """The run with the fewest seconds, with every run's seconds in ``runs_seconds``."""
    best = min(runs, key=lambda r: r["seconds"])
    best["runs_seconds"] = [r["seconds"] for r in runs]
    return best


def compare(samples=100, bits=(1, 8), cfg=None, sims=("verilator", "icarus"), repeats=3):
    """Cycles per second of the verify flow on each simulator and of the bare run.

    The bare run and the Verilator flow last well under a second each, so one run is at
    the mercy of whatever else the machine does: each is run ``repeats`` times and the
    fastest counts (all times are recorded). Icarus, about 100 times slower, runs once.
    """
    cfg = cfg or AnyprecConfig()
    net, settings, xs = _digits_workload(samples, bits)
    frames = workload_frames(net, cfg, settings, xs)
    bares = [bare_verilator(cfg, frames) for _ in range(max(1, repeats))]
    bare = _fastest(bares)
    bare["cycles_per_second"] = bare["cycles"] / bare["seconds"]
    out = {"config": cfg.to_dict(), "workload": {"samples": samples, "wbits": list(bits),
                                                   "frames": len(frames)},
           "bare_verilator": bare, "flows": {}}
    for sim in sims:
        n = max(1, repeats) if sim == "verilator" else 1
        runs = [flow_speed(cfg, sim, net, settings, xs) for _ in range(n)]
        f = _fastest(runs)
        f["ratio_to_bare"] = f["cycles_per_second"] / bare["cycles_per_second"]
        f["same_responses_as_bare"] = all(r["hash"] == bare["hash"] for r in runs)
        out["flows"][sim] = f
    out["tools"] = tool_versions("verilator")
    return out
