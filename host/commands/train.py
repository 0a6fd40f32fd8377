"""``anyprec train``: retrain the any-precision digits MLP reproducibly and export it."""

import time

from . import add_parser

ORDER = 11

#: Where ``anyprec train`` writes unless told otherwise (never over the shipped model).
DEFAULT_OUT = "build/golden"


def register(sub):
    p = add_parser(
        sub, "train",
        help="retrain the any-precision digits model (about 25 s) and export it",
        description="Train the any-precision MLP jointly at every weight precision 1..8 on\n"
                    "the digits training split, fold it to integers and write\n"
                    "<out>/digits_mlp.npz (the integer model, docs/model-format.md) and\n"
                    "<out>/digits_mlp.pt (the float checkpoint). Training is single-threaded\n"
                    "and deterministic: the same seed gives bit-identical files on the same\n"
                    "torch build and CPU type.",
        examples=[
            "anyprec train                               default model into build/golden/",
            "anyprec train --hidden 32 --epochs 10       a smaller, quicker model",
            "anyprec train --hidden none                 one layer (64-10): digits_linear.*",
            "anyprec train --seed 1 --out build/seed1",
            "anyprec train --out golden/checkpoints      replace the shipped checkpoint",
            "anyprec golden --model build/golden/digits_mlp.npz",
        ])
    p.add_argument("--hidden", metavar="SIZES", default="64,64",
                   help="hidden layer widths, comma separated (default 64,64); 'none' for "
                        "a one-layer classifier, written as digits_linear.npz/.pt")
    p.add_argument("--epochs", metavar="E", type=int, default=None,
                   help="training epochs (default 40)")
    p.add_argument("--seed", metavar="S", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                   help=f"output directory (default {DEFAULT_OUT})")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    p.set_defaults(func=run)


def _hidden(text):
    from ...golden.errors import ConfigError

    if str(text).strip().lower() == "none":
        return []
    try:
        sizes = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"--hidden must be comma-separated integers like '64,64' or "
                          f"'none', not {text!r}") from None
    for h in sizes:
        if not 1 <= h <= 4096:
            raise ConfigError(f"--hidden: layer width {h} is out of range 1..4096")
    return sizes


def _check_writable(out):
    """Raise ConfigError unless a file can be created (and removed) in directory ``out``."""
    import os
    from ...golden.atomic import temp_beside
    from ...golden.errors import ConfigError

    try:
        fd, probe = temp_beside(out / "anyprec-write-test")   # (as the export will)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot write to the directory "
                          f"({e.strerror or e})") from None


def run(args):
    from ...golden.errors import ConfigError

    hidden = _hidden(args.hidden)
    if args.epochs is not None and not 1 <= args.epochs <= 100000:
        raise ConfigError(f"--epochs must be from 1 to 100000, not {args.epochs}")
    if not 0 <= args.seed < 2 ** 63:
        raise ConfigError(f"--seed must be a non-negative integer below 2^63, not {args.seed}")

    from pathlib import Path
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    # Created before training, so an unusable path fails now, not after the run.
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create the directory "
                          f"({e.strerror or e})") from None
    # mkdir succeeds on an existing read-only directory: try a file, or the export would
    # fail only after the whole training run.
    _check_writable(out)
    stem = "digits_mlp" if hidden else "digits_linear"
    for path in (out / f"{stem}.npz", out / f"{stem}.pt"):
        if path.exists() and not path.is_file():
            raise ConfigError(f"--out {out}: {path.name} exists and is not a file")

    from ...golden.export import export
    from ...golden.model import train

    settings = {"hidden": hidden, "seed": args.seed}
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    start = time.perf_counter()

    def progress(epoch, epochs, loss, seconds):
        if not args.quiet:
            print(f"epoch {epoch:>{len(str(epochs))}}/{epochs}  loss {loss:8.4f}  "
                  f"{seconds:5.2f} s  (total {time.perf_counter() - start:6.1f} s)",
                  flush=True)

    print(f"training {'-'.join(map(str, [64, *hidden, 10]))} at wbits 1-8, seed {args.seed}",
          flush=True)
    model, used = train(settings, progress=progress)
    print(f"trained in {time.perf_counter() - start:.1f} s; folding and evaluating", flush=True)
    npz, pt, meta = export(model, used, args.out, stem=stem)
    rows = meta["accuracy"]
    abits = sorted({r["abits"] for r in rows}, reverse=True)
    acc = {(r["wbits"], r["abits"]): r["accuracy"] for r in rows}
    agree = {r["wbits"]: r["agreement"] for r in meta["agreement_float_int"]}
    print(f"integer-reference accuracy on the digits test split "
          f"({meta['split']['test_samples']} images), %")
    print("wbits " + "".join(f"{f'abits {a}':>10}" for a in abits)
          + f"  int=float (a={max(abits)})")
    for k in sorted({r["wbits"] for r in rows}):
        print(f"{k:>5} " + "".join(f"{100 * acc[(k, a)]:>10.2f}" for a in abits)
              + f"{100 * agree[k]:>15.2f}")
    print(f"wrote {npz} and {pt}")
    return 0
