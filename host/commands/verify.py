"""anyprec verify: run the model on the simulated hardware at every precision."""

import json
import sys

from . import (add_parser, add_config_args, add_sim_args, parse_bits,
               progress_printer, add_board_arg, add_target_arg, board_target_config)
from ...golden.errors import AnyprecError

ORDER = 40


def register(sub):
    p = add_parser(sub, "verify", "run the digits model on the simulated hardware and "
                   "compare with golden",
                   "Simulate the generated RTL with cocotb (Verilator or Icarus), run the "
                   "exported model on the digits test split at each precision through the host "
                   "driver, and compare every logit with the golden integer reference. Exits 1 "
                   "if any logit differs.",
                   ["anyprec verify                       # k = 1..8, whole test split",
                    "anyprec verify --bits 1,2,4 --samples 100 --sim icarus",
                    "anyprec verify --bits 8 --mixed 8-2-8 --mixed 4-4-8/8-4-8",
                    "anyprec verify --board icebreaker   # that board's design, iCE40 form",
                    "anyprec verify --json > report.json"])
    p.add_argument("--model", default=None, metavar="NPZ",
                   help="exported model (default: the shipped digits checkpoint)")
    p.add_argument("--bits", default=None,
                   help="uniform weight precisions (default: 1 to the build's N, 1-8)")
    p.add_argument("--abits", type=int, default=None,
                   help="activation precision of every layer (default: the model's A)")
    p.add_argument("--mixed", action="append", default=[], metavar="W-W-W[/A-A-A]",
                   help="extra per-layer setting, e.g. 8-2-8 (repeatable)")
    p.add_argument("--samples", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--json", action="store_true", help="print the JSON report only")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="accuracy and cycles plot (default anyprec-verify.png, or none "
                        "with --json; 'none' to skip)")
    add_board_arg(p, "simulate")
    add_target_arg(p)
    add_sim_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def table(report):
    """Readable table of a verify report."""
    rows = [("wbits", "abits", "hw acc %", "golden acc %", "mismatches", "cycles/inference")]
    for r in report["results"]:
        w = r["wbits"] if isinstance(r["wbits"], int) else "-".join(map(str, r["wbits"]))
        a = r["abits"] if isinstance(r["abits"], int) else "-".join(map(str, r["abits"]))
        rows.append((str(w), str(a), f"{100 * r['hw_accuracy']:.2f}",
                     f"{100 * r['golden_accuracy']:.2f}", str(r["mismatches"]),
                     f"{r['cycles_per_inference']:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows)


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    uni = [r for r in report["results"] if isinstance(r["wbits"], int)]
    if not uni:
        return None
    ks = [r["wbits"] for r in uni]
    fig, ax1 = plt.subplots(figsize=(6, 3.6))
    ax1.plot(ks, [100 * r["hw_accuracy"] for r in uni], "o-", label="hardware accuracy")
    ax1.plot(ks, [100 * r["golden_accuracy"] for r in uni], "x--", label="golden accuracy")
    ax1.set_xlabel("weight bits (all layers)")
    ax1.set_ylabel("test accuracy, %")
    lo = min(min(100 * r["hw_accuracy"], 100 * r["golden_accuracy"]) for r in uni)
    ax1.set_ylim(max(0.0, lo - 3.0), 100.5)
    ax2 = ax1.twinx()
    ax2.bar(ks, [r["cycles_per_inference"] for r in uni], alpha=0.25, color="gray",
            label="cycles / inference")
    ax2.set_ylabel("cycles / inference")
    ax1.set_zorder(ax2.get_zorder() + 1)
    ax1.patch.set_visible(False)
    ax1.legend(loc="lower right")
    sim = report["simulator"]
    cfg = report["config"]
    ax1.set_title(f"anyprec on {sim}: {cfg['rows']}x{cfg['cols']}, "
                  f"{report['results'][0]['samples']} digits")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise AnyprecError(f"cannot write the plot {path}: {e.strerror}") from None
    except RuntimeError as e:       # (a backend's own tool missing, e.g. LaTeX for .pgf)
        raise AnyprecError(f"cannot write the plot {path}: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        plt.close(fig)
    return path


def plot_path(path):
    """The plot's file name, checked before the run: a format matplotlib writes (no
    suffix: .png, which matplotlib would add), with the tools its backend needs, to a
    file that can be written (tried, and removed again if it did not exist)."""
    import os
    import shutil
    from pathlib import Path
    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase
    p = Path(path)
    if p.is_dir():
        # (not DIR.png beside it, which the missing suffix would otherwise give)
        raise AnyprecError(f"--plot {path}: is a directory")
    kinds = FigureCanvasBase.get_supported_filetypes()
    if not p.suffix:
        p = p.with_name(p.name + ".png")
    if p.suffix[1:].lower() not in kinds:
        raise AnyprecError(f"--plot {path}: cannot write a {p.suffix} plot; use one of "
                           + ", ".join(f".{k}" for k in sorted(kinds)))
    if p.suffix.lower() == ".pgf":
        tex = matplotlib.rcParams["pgf.texsystem"]
        if shutil.which(tex) is None:
            raise AnyprecError(f"--plot {path}: a .pgf plot needs {tex} (LaTeX), which is "
                               "not on PATH; use .png, .pdf or .svg")
    if p.is_dir() or not p.parent.is_dir():
        raise AnyprecError(f"--plot {path}: " + ("is a directory" if p.is_dir() else
                                                 f"no directory {p.parent}"))
    existed = p.exists()
    try:
        with open(p, "ab"):
            pass
    except OSError as e:
        raise AnyprecError(f"--plot {path}: cannot write it ({e.strerror})") from None
    if not existed:
        os.unlink(p)
    return str(p)


def model_for(args, cfg, progress):
    """--model, else the shipped digits MLP, or the shipped one-layer classifier on a
    device with fewer layer slots than the MLP has layers (as ``anyprec run`` does)."""
    if args.model is not None:
        return args.model
    from ...golden.export import DEFAULT_LINEAR_MODEL, DEFAULT_MODEL, load_model
    from .run import model_for_device
    net, _ = load_model(DEFAULT_MODEL)
    if model_for_device(args, net, cfg, progress) is net:
        return None
    return DEFAULT_LINEAR_MODEL


def run(args):
    from ...sim.verify import verify
    board, target, cfg = board_target_config(args)
    # (with --json only a plot asked for by name: it was never written with --json)
    if args.plot is None:
        args.plot = "none" if args.json else "anyprec-verify.png"
    if args.plot != "none":
        args.plot = plot_path(args.plot)
    bits = parse_bits(args.bits or f"1-{cfg.max_wbits}", cfg.max_wbits)
    progress = None if args.json else progress_printer("verify")
    report = verify(model_for(args, cfg, progress), bits=bits, abits=args.abits,
                    mixed=args.mixed, samples=args.samples, cfg=cfg, sim=args.sim,
                    transport=args.transport or "fast", progress=progress, target=target)
    if board is not None:
        report["board"] = board.name
    bad = sum(r["mismatches"] for r in report["results"])
    if args.json:
        print(json.dumps(report, indent=1))
        if args.plot != "none":
            plot(report, args.plot)
    else:
        n = report["results"][0]["samples"]
        form = ("" if target == "generic" else f"{target} form, ") + (
            f"{board.name}'s " if board is not None else "")
        print(f"anyprec verify: digits test split ({n} images) on {report['simulator']} "
              f"({report['transport']} transport), {form}{_describe(report['config'])}")
        print(table(report))
        total = n * len(report["results"])
        if bad:
            print(f"MISMATCH: {bad} of {total} inferences differ from golden")
        else:
            print(f"all {total} inferences match the golden reference bit for bit "
                  f"(logits and predictions)")
        if args.plot != "none":
            if plot(report, args.plot):
                print(f"plot: {args.plot}")
    return 1 if bad else 0


def _describe(cfg):
    from ...hw.config import AnyprecConfig
    return AnyprecConfig.from_dict(cfg).describe()
