"""anyprec stream: progressive weight streaming, accuracy as planes arrive."""

import json

from . import (add_parser, add_config_args, add_sim_args, progress_printer,
               add_board_arg, add_target_arg, board_target_config)

ORDER = 45


def register(sub):
    p = add_parser(sub, "stream", "stream weight planes MSB first and infer after each plane",
                   "Any-precision weights arrive plane by plane, most significant first. After "
                   "plane p of every layer the device already serves (p+1)-bit inferences: this "
                   "command shows accuracy rising as planes arrive, on the simulated RTL, and "
                   "checks that an inference is refused before the first plane. Exits 1 on any "
                   "mismatch with golden.",
                   ["anyprec stream",
                    "anyprec stream --samples 100 --sim icarus --json",
                    "anyprec stream --board icebreaker   # that board's design, simulated",
                    "anyprec stream --port /dev/ttyUSB0 --samples 50   # a real board"])
    p.add_argument("--port", default=None, metavar="DEV",
                   help="stream to a board on this serial port instead of the simulator")
    p.add_argument("--baud", type=int, default=None,
                   help="UART speed with --port (default 115200)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds to wait for each response with --port (default 5)")
    p.add_argument("--model", default=None, metavar="NPZ",
                   help="exported model (default: the shipped digits checkpoint)")
    p.add_argument("--abits", type=int, default=None, help="activation bits (default A)")
    p.add_argument("--samples", type=int, default=None, help="first N test images")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_board_arg(p, "simulate")
    add_target_arg(p)
    add_sim_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def stream_over(drv, net, abits, x, y, progress=None):
    """Progressive streaming through a synchronous :class:`Driver` (a board): the
    requantisation tables, an inference that must be refused before any plane, then plane
    p of every layer (MSB first) and every image at p+1 bits, against golden."""
    import time
    import numpy as np
    from ...golden.arith import quantize_pixels
    from ..errors import NotReadyError
    L = len(net.layers)
    xq = quantize_pixels(np.asarray(x).T, abits, net.a)            # (64, B)
    drv.configure(net)
    drv.load_requant(net)
    drv.set_precision([1] * L, abits)
    try:
        drv.infer(xq[:, 0], L)
        refused = False
    except NotReadyError:
        refused = True
    steps = []
    for p in range(net.n):
        t0 = time.monotonic()
        drv.load_planes(net, planes=[p])
        load_s = time.monotonic() - t0
        drv.set_precision([p + 1] * L, abits)
        golden = net.forward(xq, [p + 1] * L, [abits] * L)          # (10, B)
        hw = np.zeros_like(golden)
        cycles = []
        for s in range(xq.shape[1]):
            r = drv.infer(xq[:, s], L)
            hw[:, s] = r.values
            cycles.append(int(r.cycles))
        steps.append({"planes": p + 1, "wbits": p + 1, "abits": int(abits),
                      "samples": int(xq.shape[1]),
                      "hw_accuracy": float(np.mean(np.argmax(hw, axis=0) == y)),
                      "golden_accuracy": float(np.mean(np.argmax(golden, axis=0) == y)),
                      "mismatches": int(np.sum(np.any(hw != golden, axis=0))),
                      "cycles_per_inference": float(np.mean(cycles)),
                      "plane_load_seconds": round(load_s, 3)})
        if progress:
            progress(f"plane {p + 1}/{net.n} loaded; {xq.shape[1]} inferences at {p + 1} bits")
    return {"refused_before_first_plane": refused, "steps": steps}


def _run_port(args, progress):
    from ..driver import Driver
    from ..serial import SerialTransport
    from .run import board_inputs, model_for_device
    net, _, abits, x, y = board_inputs(args)
    with SerialTransport(args.port, args.baud, timeout=args.timeout) as link:
        drv = Driver(link, timeout=args.timeout)
        cfg = drv.config()
        if progress:
            progress(f"device on {args.port}: {cfg.describe()}")
        net = model_for_device(args, net, cfg, progress)
        r = stream_over(drv, net, abits, x, y, progress)
    r.update({"port": args.port, "baud": args.baud, "config": cfg.to_dict(),
              "simulator": f"board on {args.port}"})
    return r


def run(args):
    from ...golden.errors import ConfigError
    progress = None if args.json else progress_printer("stream")
    # The options of one path are refused on the other, not quietly ignored: a board's
    # configuration comes from the device itself (INFO), and the simulator has no UART.
    if args.port:
        given = [f"--{k[4:].replace('_', '-')}" for k, v in vars(args).items()
                 if k.startswith("cfg_") and v is not None]
        given += [f"--{k}" for k in ("sim", "transport", "board", "target")
                  if getattr(args, k) is not None]
        if given:
            raise ConfigError(f"{given[0]} configures the simulated "
                              "device; with --port the board's own configuration is used")
        args.baud = 115200 if args.baud is None else args.baud
        args.timeout = 5.0 if args.timeout is None else args.timeout
        r = _run_port(args, progress)
    else:
        from ...sim.verify import stream
        for flag in ("baud", "timeout"):
            if getattr(args, flag) is not None:
                raise ConfigError(f"--{flag} is for a board (--port); the simulated device "
                                  "has no serial link")
        from .verify import model_for
        board, target, cfg = board_target_config(args)
        if cfg.design == "parallel":
            # (refused before the simulation model is built: the device itself refuses
            # the first SET_RUN below 8 bits, after a minute of building)
            raise ConfigError("stream runs every precision as its planes arrive; the "
                              "bit-parallel baseline (--design parallel) runs 8-bit weights "
                              "only: use 'anyprec verify --design parallel --bits 8'")
        r = stream(model_for(args, cfg, progress), abits=args.abits, samples=args.samples,
                   cfg=cfg, sim=args.sim, transport=args.transport or "fast",
                   progress=progress, target=target)
        if board is not None:
            r["board"] = board.name
    bad = sum(s["mismatches"] for s in r["steps"]) + (0 if r["refused_before_first_plane"] else 1)
    if args.json:
        print(json.dumps(r, indent=1))
        return 1 if bad else 0
    where = "".join([f", {r['board']}'s build" if r.get("board") else "",
                     f", {r['target']} form" if r.get("target", "generic") != "generic"
                     else ""])
    print(f"progressive streaming on {r['simulator']}{where}: "
          f"{r['steps'][0]['samples']} digits, planes MSB first")
    print("before any plane: " + ("inference refused as documented (NOT_READY)"
                                  if r["refused_before_first_plane"]
                                  else "NOT REFUSED (bug)"))
    print(f"{'planes':>6} {'bits':>4} {'hw acc %':>9} {'golden %':>9} {'mismatch':>8} "
          f"{'cycles/inf':>10}")
    for s in r["steps"]:
        print(f"{s['planes']:>6} {s['wbits']:>4} {100 * s['hw_accuracy']:>9.2f} "
              f"{100 * s['golden_accuracy']:>9.2f} {s['mismatches']:>8} "
              f"{s['cycles_per_inference']:>10.0f}")
    return 1 if bad else 0
