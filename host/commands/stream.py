"""anyprec stream: progressive weight streaming, accuracy as planes arrive."""

import json

from . import add_parser, add_config_args, config_from_args, add_sim_args, progress_printer

ORDER = 45


def register(sub):
    p = add_parser(sub, "stream", "stream weight planes MSB first and infer after each plane",
                   "Any-precision weights arrive plane by plane, most significant first. After "
                   "plane p of every layer the device already serves (p+1)-bit inferences: this "
                   "command shows accuracy rising as planes arrive, on the simulated RTL, and "
                   "checks that an inference is refused before the first plane. Exits 1 on any "
                   "mismatch with golden.",
                   ["anyprec stream",
                    "anyprec stream --samples 100 --sim icarus --json"])
    p.add_argument("--model", default=None, metavar="NPZ",
                   help="exported model (default: the shipped digits checkpoint)")
    p.add_argument("--abits", type=int, default=None, help="activation bits (default A)")
    p.add_argument("--samples", type=int, default=None, help="first N test images")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_sim_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def run(args):
    from ...sim.verify import stream
    cfg = config_from_args(args)
    r = stream(args.model, abits=args.abits, samples=args.samples, cfg=cfg, sim=args.sim,
               transport=args.transport, progress=None if args.json else progress_printer("stream"))
    bad = sum(s["mismatches"] for s in r["steps"]) + (0 if r["refused_before_first_plane"] else 1)
    if args.json:
        print(json.dumps(r, indent=1))
        return 1 if bad else 0
    print(f"progressive streaming on {r['simulator']}: "
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
