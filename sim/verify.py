"""Verify the accelerator against the golden model: the Python API behind ``anyprec verify``.

The network runs on the simulated RTL (cocotb, Icarus or Verilator) through the same host
driver a board uses; every logit is compared with ``golden.arith.IntNetwork.forward``.
"""

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..golden import arith
from ..golden.errors import AnyprecError, PrecisionError, ShapeError
from ..hw.config import AnyprecConfig
from .runner import build, run_job
from .tools import tool_versions
from .flows import net_to_arrays

__all__ = ["Setting", "parse_setting", "verify", "default_model_path", "matvec", "stream"]


def default_model_path():
    return Path(__file__).resolve().parent.parent / "golden" / "checkpoints" / "digits_mlp.npz"


@dataclass(frozen=True)
class Setting:
    """One precision setting: weight and activation bits per layer."""
    wbits: tuple
    abits: tuple

    @property
    def label(self):
        w = "-".join(map(str, self.wbits))
        a = "-".join(map(str, self.abits))
        return f"w{w} a{a}"

    @property
    def uniform_wbits(self):
        return self.wbits[0] if len(set(self.wbits)) == 1 else None


def parse_setting(text, n_layers, n, a, default_abits=None):
    """'8-2-8' (wbits per layer) or '8-2-8/8-4-8' (wbits/abits per layer) -> Setting."""
    try:
        if not re.fullmatch(r"[0-9]+(-[0-9]+)*(/[0-9]+(-[0-9]+)*)?", str(text)):
            raise ValueError    # ('8-2-8/' and non-ASCII digits, which int() takes)
        w, _, ab = str(text).partition("/")
        wb = [int(v) for v in w.split("-")]
        abl = [int(v) for v in ab.split("-")] if ab else [default_abits or a] * n_layers
    except ValueError:
        raise PrecisionError(f"a mixed setting looks like '8-2-8' or '8-2-8/8-4-8', "
                             f"not {text!r}") from None
    for name, vals, mx in (("wbits", wb, n), ("abits", abl, a)):
        if len(vals) != n_layers:
            raise PrecisionError(f"{text!r}: the model has {n_layers} "
                                 f"layer{'s' if n_layers != 1 else ''}, "
                                 f"got {len(vals)} {name} values")
        for v in vals:
            arith.check_precision(name, v, mx)
    return Setting(tuple(wb), tuple(abl))


def _load(model):
    from ..golden.data import check_digits_model
    from ..golden.export import load_model
    path = Path(model) if model else default_model_path()
    net, meta = load_model(path)
    check_digits_model(net, path)
    return path, net, meta


def verify(model=None, *, settings=None, bits=range(1, 9), abits=None, mixed=(),
           samples=None, cfg=None, sim=None, transport="fast", progress=None,
           target="generic"):
    """Run the model on the simulated hardware and compare every logit with golden.

    Parameters
    ----------
    model : path, optional
        Exported model (.npz); default the shipped digits checkpoint.
    bits : iterable of int
        Uniform weight precisions to run (all layers at k).
    abits : int, optional
        Activation precision of every layer (default: the model's A).
    mixed : iterable of str
        Extra per-layer settings, e.g. ``"8-2-8"``.
    samples : int, optional
        First n images of the test split (default: all).
    cfg : AnyprecConfig, optional
        Device build (default: ``AnyprecConfig()``).
    sim : "verilator" or "icarus"
    transport : "fast" or "axi"
    progress : callable(str), optional
    target : str
        Verilog target (``hw.config.TARGETS``): ``"ice40"`` simulates the form an iCE40
        board build carries, ``"ecp5"`` an ECP5 build's carry cells.

    Returns
    -------
    dict with config, target, simulator, model, tools and one result per setting.
    """
    path, net, meta = _load(model)
    cfg = cfg or AnyprecConfig()
    from ..host.driver import check_model
    check_model(net, cfg)          # a model that cannot fit fails here, before any build
    L = len(net.layers)
    a = abits if abits is not None else net.a
    arith.check_precision("abits", a, net.a)
    if settings is None:
        settings = [Setting((int(k),) * L, (a,) * L) for k in bits]
        settings += [parse_setting(t, L, net.n, net.a, a) for t in mixed]
    if not settings:
        raise PrecisionError("nothing to verify: give --bits or --mixed")
    if cfg.design == "parallel":
        for st in settings:
            if any(k != cfg.max_wbits for k in st.wbits):
                raise PrecisionError(
                    f"the bit-parallel baseline runs at {cfg.max_wbits}-bit weights only; "
                    f"{st.label} asks for fewer")

    from ..golden.data import load_split
    _, xs_pix, _, labels = load_split()
    if samples is not None:
        if not 1 <= samples <= len(labels):
            raise ShapeError(f"--samples must be from 1 to {len(labels)}, not {samples}")
        xs_pix, labels = xs_pix[:samples], labels[:samples]

    arrays = net_to_arrays(net)
    job_settings = []
    golden_logits = []
    for i, s in enumerate(settings):
        x = arith.quantize_pixels(xs_pix, s.abits[0], net.a)
        arrays[f"x_{i}"] = x
        job_settings.append({"wbits": list(s.wbits), "abits": list(s.abits), "x": f"x_{i}"})
        golden_logits.append(net.forward(x.T, list(s.wbits), list(s.abits)).T)

    t0 = time.monotonic()
    if progress:
        progress(f"building the {sim or 'default'} simulation model for {cfg.describe()}")
    sb = build(cfg, sim, target=target)
    t_build = time.monotonic() - t0
    res, out = run_job(sb, "anyprec.sim.flows:verify", {"precisions": job_settings},
                       arrays=arrays, transport=transport, progress=progress)
    t_run = time.monotonic() - t0 - t_build

    results = []
    for i, s in enumerate(settings):
        hw = out[f"logits_{i}"]
        gl = golden_logits[i]
        mism = int(np.any(hw != gl, axis=1).sum())
        cyc = res["settings"][i]["cycles"]
        entry = {
            "wbits": s.uniform_wbits if s.uniform_wbits is not None else list(s.wbits),
            "abits": s.abits[0] if len(set(s.abits)) == 1 else list(s.abits),
            "samples": int(len(labels)),
            "hw_accuracy": float(np.mean(np.argmax(hw, axis=1) == labels)),
            "golden_accuracy": float(np.mean(np.argmax(gl, axis=1) == labels)),
            "mismatches": mism,
            "cycles_per_inference": float(np.mean(cyc)),
            "cycles_min": int(np.min(cyc)), "cycles_max": int(np.max(cyc)),
        }
        results.append(entry)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {
        "config": cfg.to_dict(), "target": target, "simulator": sb.sim,
        "transport": transport,
        "model": {"path": str(path), "sha256": digest, "layers": [list(l.shape) for l in net.layers]},
        "dataset": "digits", "split": "test",
        "tools": tool_versions(sb.sim),
        "seconds": {"build": round(t_build, 2), "simulate": round(t_run, 2),
                    "load_model": round(res.get("load_seconds", 0.0), 3)},
        "results": results,
    }


def _check_codes(weights, n):
    w = np.asarray(weights)
    if w.ndim != 2:
        raise ShapeError(f"weights must be a 2-D M x K array, got shape {w.shape}")
    if w.dtype.kind not in "ui":
        raise ShapeError(f"weights must be unsigned integer codes, got dtype {w.dtype}")
    if w.size == 0:
        raise ShapeError("weights are empty")
    if w.min() < 0 or w.max() > (1 << n) - 1:
        raise ShapeError(f"weight codes must be {n}-bit (0..{(1 << n) - 1}), "
                         f"found {w.min()}..{w.max()}")
    return w.astype(np.int64)


def _check_x(x, k, a):
    x = np.asarray(x)
    if x.ndim != 1:
        raise ShapeError(f"x must be a 1-D vector of {k} activations, got shape {x.shape}")
    if x.dtype.kind not in "ui":
        raise ShapeError(f"x must be integers, got dtype {x.dtype}")
    if x.shape[0] != k:
        raise ShapeError(f"x has {x.shape[0]} activations but the weights have K = {k} columns")
    if x.size and (x.min() < 0 or x.max() > (1 << a) - 1):
        raise ShapeError(f"x must be unsigned {a}-bit values (0..{(1 << a) - 1}), "
                         f"found {x.min()}..{x.max()}")
    return x.astype(np.int64)


def fitting_config(m, k, cfg=None):
    """``cfg`` (default AnyprecConfig()) grown, if needed, so an M x K layer fits."""
    cfg = cfg or AnyprecConfig()
    if m > cfg.max_m or k > cfg.max_k:
        cfg = cfg.replace(max_m=max(m, cfg.max_m), max_k=max(k, cfg.max_k))
    return cfg


def matvec(weights, x, wbits, abits=None, *, cfg=None, sim=None, transport="fast",
           target="generic"):
    """One raw matvec on the simulated hardware: D = lambda_k(W_k) @ x (arithmetic.md 5).
    ``target`` as in :func:`verify`.

    Returns a dict with ``y`` (list of int), ``cycles``, ``config``, ``target``,
    ``golden`` (the golden D), ``match``, ``simulator`` and ``tools``.
    """
    cfg = cfg or AnyprecConfig()
    w = _check_codes(weights, cfg.max_wbits)
    m, k = w.shape
    if m > cfg.max_m or k > cfg.max_k:
        raise ShapeError(f"a {m} x {k} layer does not fit the build "
                         f"(max_m={cfg.max_m}, max_k={cfg.max_k})")
    wbits = arith.check_precision("wbits", wbits, cfg.max_wbits)
    if cfg.design == "parallel" and wbits != cfg.max_wbits:
        raise PrecisionError(f"the bit-parallel baseline runs at {cfg.max_wbits}-bit "
                             f"weights only, not {wbits}")
    abits = arith.check_precision("abits", cfg.max_abits if abits is None else abits,
                                  cfg.max_abits)
    xv = _check_x(x, k, abits)
    golden = arith.dot(w, xv, cfg.max_wbits, wbits)
    sb = build(cfg, sim, target=target)
    res, _ = run_job(sb, "anyprec.sim.flows:matvec_cases",
                     {"cases": [{"w": "W", "x": "x", "wbits": wbits, "abits": abits}]},
                     arrays={"W": w, "x": xv}, transport=transport)
    r = res["results"][0]
    return {"y": r["y"], "cycles": r["cycles"], "golden": [int(v) for v in golden],
            "match": r["y"] == [int(v) for v in golden], "wbits": wbits, "abits": abits,
            "config": cfg.to_dict(), "target": target, "simulator": sb.sim,
            "tools": tool_versions(sb.sim)}


def stream(model=None, *, abits=None, samples=None, cfg=None, sim=None, transport="fast",
           progress=None, target="generic"):
    """Progressive weight streaming on the simulated device (``target`` as in
    :func:`verify`).

    Loads the requantisation tables, checks that an inference is refused before any plane
    has arrived, then streams the planes MSB first (plane p of every layer) and after each
    plane runs the test images at p+1 bits. Every logit is compared with golden.
    """
    path, net, meta = _load(model)
    cfg = cfg or AnyprecConfig()
    from ..host.driver import check_model
    check_model(net, cfg)
    L = len(net.layers)
    a = abits if abits is not None else net.a
    arith.check_precision("abits", a, net.a)
    from ..golden.data import load_split
    _, xs_pix, _, labels = load_split()
    if samples is not None:
        if not 1 <= samples <= len(labels):
            raise ShapeError(f"--samples must be from 1 to {len(labels)}, not {samples}")
        xs_pix, labels = xs_pix[:samples], labels[:samples]
    x = arith.quantize_pixels(xs_pix, a, net.a)
    arrays = net_to_arrays(net)
    arrays["x"] = x
    if progress:
        progress(f"building the {sim or 'default'} simulation model for {cfg.describe()}")
    sb = build(cfg, sim, target=target)
    res, out = run_job(sb, "anyprec.sim.flows:stream", {"abits": [a] * L},
                       arrays=arrays, transport=transport, progress=progress)
    steps = []
    for st in res["steps"]:
        p = st["planes"]
        hw = out[f"logits_{p - 1}"]
        gl = net.forward(x.T, [p] * L, [a] * L).T
        steps.append({"planes": p, "wbits": p, "abits": a, "samples": int(len(labels)),
                      "hw_accuracy": float(np.mean(np.argmax(hw, axis=1) == labels)),
                      "golden_accuracy": float(np.mean(np.argmax(gl, axis=1) == labels)),
                      "mismatches": int(np.any(hw != gl, axis=1).sum()),
                      "cycles_per_inference": float(np.mean(st["cycles"])),
                      "plane_load_seconds": round(st["load_seconds"], 3)})
    return {"config": cfg.to_dict(), "target": target, "simulator": sb.sim,
            "transport": transport, "model": {"path": str(path)}, "tools": tool_versions(sb.sim),
            "refused_before_first_plane": res["refused_before_planes"] not in (None, False),
            "refusal": res["refused_before_planes"], "steps": steps}
