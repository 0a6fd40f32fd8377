"""``anyprec run``: the digits model on a real board over its serial port."""

import json
import math
import sys
import time

from . import add_parser, parse_bits

ORDER = 63


def register(sub):
    p = add_parser(
        sub, "run", help="run the digits model on a board over its serial port",
        description="Open the board's USB serial port, load the model (weight planes and\n"
                    "requantisation tables) through the host driver, infer the digits test\n"
                    "split at each weight precision and compare every logit with the golden\n"
                    "integer reference. Exits 1 if any logit differs. The board must run a\n"
                    "bitstream from 'anyprec build' with the same --baud.",
        examples=["anyprec run --port /dev/ttyUSB0",
                  "anyprec run --port /dev/ttyUSB1 --wbits 1,2,4,8 --samples 100",
                  "anyprec run --port COM3 --baud 1000000 --json",
                  "anyprec run --port /dev/ttyUSB0 --model build/golden/digits_mlp.npz"])
    p.add_argument("--port", required=True, help="serial port (/dev/ttyUSB0, COM3, or a "
                                                 "pyserial URL)")
    p.add_argument("--baud", type=int, default=115200, help="UART speed (default 115200)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="seconds to wait for each response (default 5)")
    p.add_argument("--model", default=None, metavar="NPZ",
                   help="exported model (default: the shipped digits MLP, or its one-layer "
                        "classifier on a device with fewer layer slots)")
    p.add_argument("--wbits", default=None,
                   help="weight precisions, e.g. '1-8' or '2,4,8' (default 1..N)")
    p.add_argument("--abits", type=int, default=None,
                   help="activation precision of every layer (default: the model's A)")
    p.add_argument("--samples", type=int, default=None,
                   help="first N test images (default: all 540)")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=run)


def evaluate(drv, net, wbits, abits, x, y, progress=None):
    """Load ``net`` through ``drv`` and infer every column of ``x`` at each weight
    precision, against :meth:`IntNetwork.forward`.

    Parameters
    ----------
    drv : Driver
    net : IntNetwork
    wbits : list of int
    abits : int
    x : (B, 64) integer pixels; y : (B,) labels

    Returns
    -------
    dict with ``load_seconds`` and ``results``: one
    ``{"wbits", "abits", "hw_accuracy", "golden_accuracy", "mismatches",
    "seconds_per_inference", "cycles_per_inference"}`` per precision.
    """
    import numpy as np
    from ...golden.arith import quantize_pixels

    t0 = time.monotonic()
    drv.load_model(net)
    load_s = time.monotonic() - t0
    xq = quantize_pixels(np.asarray(x).T, abits, net.a)        # (64, B)
    L = len(net.layers)
    results = []
    for k in wbits:
        drv.set_precision(k, abits)
        golden = net.forward(xq, k, abits)                      # (10, B)
        hw = np.zeros_like(golden)
        cycles = []
        t1 = time.monotonic()
        for s in range(xq.shape[1]):
            r = drv.infer(xq[:, s], L)
            hw[:, s] = r.values
            cycles.append(int(r.cycles))
            if progress and ((s + 1) % 50 == 0 or s + 1 == xq.shape[1]):
                progress(f"wbits {k}: {s + 1}/{xq.shape[1]}")
        seconds = time.monotonic() - t1
        results.append({
            "wbits": int(k), "abits": int(abits),
            "hw_accuracy": float(np.mean(np.argmax(hw, axis=0) == y)),
            "golden_accuracy": float(np.mean(np.argmax(golden, axis=0) == y)),
            "mismatches": int(np.sum(np.any(hw != golden, axis=0))),
            "seconds_per_inference": seconds / max(1, xq.shape[1]),
            "cycles_per_inference": float(np.mean(cycles)) if cycles else 0.0,
        })
    return {"load_seconds": load_s, "results": results}


def board_inputs(args):
    """The checked arguments shared by the board commands (``run``, ``stream --port``):
    ``(net, wbits, abits, x, y)``; ``wbits`` is None for a command without ``--wbits``."""
    from ...golden.data import check_digits_model, load_split
    from ...golden.errors import AnyprecError, PrecisionError
    from ...golden.export import DEFAULT_MODEL, load_model
    if args.samples is not None and args.samples < 1:
        raise AnyprecError(f"--samples must be positive, not {args.samples}")
    if not 0 < args.timeout < math.inf:     # (nan and inf too: a wait without end)
        raise AnyprecError(f"--timeout must be a positive number of seconds, "
                           f"not {args.timeout:g}")
    path = args.model if args.model else DEFAULT_MODEL
    net, _ = load_model(path)
    check_digits_model(net, path)
    wbits = None
    if hasattr(args, "wbits"):
        wbits = (parse_bits(args.wbits, net.n, "--wbits") if args.wbits
                 else list(range(1, net.n + 1)))
    abits = net.a if args.abits is None else args.abits
    if not 1 <= abits <= net.a:
        raise PrecisionError(f"--abits must be from 1 to {net.a}, not {abits}")
    _, x, _, y = load_split()
    if args.samples is not None:
        if args.samples > len(y):
            raise AnyprecError(f"--samples must be from 1 to {len(y)} (the digits test "
                               f"split), not {args.samples}")
        x, y = x[:args.samples], y[:args.samples]
    return net, wbits, abits, x, y


def model_for_device(args, net, cfg, progress=None):
    """Without ``--model``, a device with fewer layer slots than the shipped MLP (the
    iCEBreaker's one-slot build) runs the shipped one-layer digits classifier instead."""
    from ...golden.export import DEFAULT_LINEAR_MODEL, load_model
    from ..driver import layer_slots
    if args.model is not None or len(net.layers) <= cfg.layers:
        return net
    lin, _ = load_model(DEFAULT_LINEAR_MODEL)
    if len(lin.layers) > cfg.layers or lin.n != net.n or lin.a != net.a:
        return net          # driver.check_model then says what does not fit
    if progress:
        progress(f"the device has {layer_slots(cfg.layers)}, the digits MLP "
                 f"{len(net.layers)} layers: "
                 f"running the one-layer digits classifier ({DEFAULT_LINEAR_MODEL.name})")
    return lin


def run(args):
    from ..driver import Driver
    from ..serial import SerialTransport

    net, wbits, abits, x_test, y_test = board_inputs(args)

    def progress(msg):
        if not args.json:
            print(f"[run] {msg}", file=sys.stderr, flush=True)

    with SerialTransport(args.port, args.baud, timeout=args.timeout) as link:
        drv = Driver(link, timeout=args.timeout)
        info = drv.info()
        cfg = drv.config()
        progress(f"device on {args.port}: {cfg.describe()}")
        net = model_for_device(args, net, cfg, progress)
        report = evaluate(drv, net, wbits, abits, x_test, y_test, progress)
        report.update({"port": args.port, "baud": args.baud, "samples": int(len(y_test)),
                       "config": cfg.to_dict(), "model_layers": len(net.layers),
                       "bytes_sent": link.bytes_sent, "bytes_received": link.bytes_received})
    bad = sum(r["mismatches"] for r in report["results"])
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"loaded the model in {report['load_seconds']:.1f} s; {len(y_test)} test images")
        print(f"{'wbits':>5} {'abits':>5} {'board acc %':>12} {'golden acc %':>13} "
              f"{'mismatches':>10} {'ms/inference':>13}")
        for r in report["results"]:
            print(f"{r['wbits']:>5} {r['abits']:>5} {100 * r['hw_accuracy']:>12.2f} "
                  f"{100 * r['golden_accuracy']:>13.2f} {r['mismatches']:>10} "
                  f"{1e3 * r['seconds_per_inference']:>13.2f}")
        print("bit-exact: every logit matches the golden model" if bad == 0 else
              f"MISMATCH: {bad} inferences differ from the golden model")
    return 0 if bad == 0 else 1
