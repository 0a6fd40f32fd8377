"""Simulation flows: async functions run inside the simulator by sim/tb.py.

Each flow drives the device through ``env.driver`` (the host driver on a cocotb
transport) and returns plain data; comparing with golden happens in the calling process.
Arrays arrive in ``env.arrays`` and leave through ``env.arrays_out``.
"""

import time

import numpy as np

from ..golden.arith import IntLayer, IntNetwork
from ..golden.errors import AnyprecError

__all__ = ["net_to_arrays", "arrays_to_net", "matvec_cases", "verify", "stream"]


def net_to_arrays(net, prefix="net"):
    """Flatten an IntNetwork into named arrays (for job files)."""
    out = {f"{prefix}_meta": np.array([len(net.layers), net.n, net.a])}
    for i, lay in enumerate(net.layers):
        for name in ("codes", "m", "b", "shift"):
            out[f"{prefix}_{i}_{name}"] = np.asarray(getattr(lay, name))
    return out


def arrays_to_net(arrays, prefix="net"):
    n_layers, n, a = (int(v) for v in arrays[f"{prefix}_meta"])
    layers = [IntLayer(**{name: arrays[f"{prefix}_{i}_{name}"]
                          for name in ("codes", "m", "b", "shift")}) for i in range(n_layers)]
    return IntNetwork(layers=layers, n=n, a=a)


def _single_layer(codes, cfg):
    """A one-layer network around raw weight codes (no requant tables needed: matvec)."""
    n = cfg.max_wbits
    m, _ = codes.shape
    z = np.zeros((n, m), dtype=np.int64)
    return IntNetwork(layers=[IntLayer(codes=codes, m=z, b=z, shift=np.zeros(n, np.int64))],
                      n=n, a=cfg.max_abits)


async def matvec_cases(env, cases):
    """Raw matvecs. ``cases``: list of {"w": array name, "x": array name, "wbits", "abits"}.

    Weights are (re)loaded whenever a case names a different weight array. Returns
    {"results": [{"y": [...], "cycles": c}, ...]}.
    """
    drv = env.driver
    cfg = await drv.config()
    loaded = None
    out = []
    for i, case in enumerate(cases):
        if case["w"] != loaded:
            net = _single_layer(env.arrays[case["w"]], cfg)
            await drv.configure(net)
            await drv.load_planes(net)
            loaded = case["w"]
        x = env.arrays[case["x"]]
        r = await drv.matvec(0, x, case["wbits"], case["abits"])
        out.append({"y": [int(v) for v in r.values], "cycles": int(r.cycles)})
        if (i + 1) % 10 == 0:
            env.progress(f"matvec {i + 1}/{len(cases)}")
    return {"results": out}


async def verify(env, precisions, progress_every=50):
    """Run the network in ``env.arrays`` on every input, at every precision setting.

    ``precisions``: list of {"wbits": [...per layer], "abits": [...], "x": array name}
    where the array holds the inputs (samples x K0) quantised at ``abits[0]``.
    Returns per-setting cycle counts; logits go to ``env.arrays_out["logits_<i>"]``.
    """
    from cocotb.utils import get_sim_time
    drv = env.driver
    net = arrays_to_net(env.arrays)
    t0 = time.monotonic()
    sim_t0 = get_sim_time(unit="ns")
    await drv.load_model(net)
    load_s = time.monotonic() - t0
    out = []
    for i, p in enumerate(precisions):
        await drv.set_precision(p["wbits"], p["abits"])
        xs = env.arrays[p["x"]]
        logits = np.zeros((len(xs), net.layers[-1].shape[0]), dtype=np.int64)
        cycles = []
        t1 = time.monotonic()
        for s, x in enumerate(xs):
            r = await drv.infer(x, len(net.layers))
            logits[s] = r.values
            cycles.append(int(r.cycles))
            if (s + 1) % progress_every == 0 or s + 1 == len(xs):
                env.progress(f"wbits {'-'.join(map(str, p['wbits']))} "
                             f"abits {'-'.join(map(str, p['abits']))}: {s + 1}/{len(xs)}")
        env.arrays_out[f"logits_{i}"] = logits
        out.append({"cycles": cycles, "seconds": time.monotonic() - t1})
    return {"settings": out, "load_seconds": load_s,
            "sim_cycles": int((get_sim_time(unit="ns") - sim_t0) / env.clock_ns),
            "flow_seconds": time.monotonic() - t0,
            "response_hash": f"{getattr(env.transport, 'hash', 0):016x}"}


async def stream(env, abits, x="x"):
    """Progressive weight streaming: after each plane p (MSB first) of every layer, run
    all inputs at wbits p+1. Before any plane arrives, an inference must be refused.

    Returns per-plane cycles and whether the early inference was refused with NOT_READY.
    """
    from ..host.errors import NotReadyError
    drv = env.driver
    net = arrays_to_net(env.arrays)
    L = len(net.layers)
    await drv.configure(net)
    await drv.load_requant(net)
    xs = env.arrays[x]
    refused = None
    await drv.set_precision([1] * L, abits)
    try:
        await drv.infer(xs[0], L)
        refused = False
    except NotReadyError as e:
        refused = str(e)
    steps = []
    for p in range(net.n):
        t0 = time.monotonic()
        await drv.load_planes(net, planes=[p])
        load_s = time.monotonic() - t0
        await drv.set_precision([p + 1] * L, abits)
        logits = np.zeros((len(xs), net.layers[-1].shape[0]), dtype=np.int64)
        cycles = []
        for s, xv in enumerate(xs):
            r = await drv.infer(xv, L)
            logits[s] = r.values
            cycles.append(int(r.cycles))
        env.arrays_out[f"logits_{p}"] = logits
        steps.append({"planes": p + 1, "cycles": cycles, "load_seconds": load_s})
        env.progress(f"plane {p + 1}/{net.n} loaded; {len(xs)} inferences at {p + 1} bits")
    return {"refused_before_planes": refused, "steps": steps}



async def idle_clock(env, cycles):
    """Let the clock run ``cycles`` cycles with no Python in the loop (tooling-speed floor)."""
    from cocotb.triggers import Timer
    t0 = time.monotonic()
    await Timer(cycles * env.clock_ns, unit="ns")
    return {"cycles": cycles, "seconds": time.monotonic() - t0}
