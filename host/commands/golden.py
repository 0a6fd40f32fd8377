"""``anyprec golden``: integer-reference accuracy of a model on the digits test split."""

import json

from . import add_parser, parse_bits

ORDER = 10


def register(sub):
    p = add_parser(
        sub, "golden",
        help="integer-reference accuracy of a model on the digits test split",
        description="Run the integer reference model (docs/arithmetic.md section 7) on the\n"
                    "540-image digits test split at every requested weight and activation\n"
                    "precision (the same precision in every layer) and print the accuracy.",
        examples=[
            "anyprec golden                          shipped model, wbits 1-8 x abits 8,4,2",
            "anyprec golden --wbits 1,2,8 --abits 8  three rows at 8-bit activations",
            "anyprec golden --json                   machine-readable results",
            "anyprec golden --model build/golden/digits_mlp.npz --max-wbits 8",
        ])
    p.add_argument("--model", metavar="PATH", default=None,
                   help="model file (.npz, docs/model-format.md); default: the shipped "
                        "golden/checkpoints/digits_mlp.npz")
    p.add_argument("--wbits", metavar="BITS", default=None,
                   help="weight precisions, e.g. '1-8', '4' or '1,2,4' (default: 1..N)")
    p.add_argument("--abits", metavar="BITS", default=None,
                   help="activation precisions (default: A, 4 and 2; 8,4,2 for the "
                        "shipped model)")
    p.add_argument("--max-wbits", metavar="N", type=int, default=8,
                   help="the weight precision N the model must have been exported for "
                        "(the hardware build's max_wbits; default 8)")
    p.add_argument("--json", action="store_true",
                   help='print {"dataset", "samples", "results": [{"wbits", "abits", '
                        '"accuracy"}]} instead of a table (accuracy as a fraction)')
    p.set_defaults(func=run)


def run(args):
    from ...golden.arith import check_precision
    from ...golden.data import DATASET, check_digits_model, load_split
    from ...golden.errors import PrecisionError
    from ...golden.export import DEFAULT_MODEL, accuracy_table, default_abits, load_model

    n = check_precision("--max-wbits", args.max_wbits, 16)
    wbits = parse_bits(args.wbits, n, "--wbits") if args.wbits is not None else None
    abits = parse_bits(args.abits, 16, "--abits") if args.abits is not None else None
    path = args.model if args.model is not None else DEFAULT_MODEL
    net, meta = load_model(path, expect_n=n)
    if abits is None:
        abits = default_abits(net.a)
    for a in abits:
        if a > net.a:
            raise PrecisionError(f"--abits: {a} is out of range 1..{net.a} (the model's A)")
    check_digits_model(net, path)
    _, x_test, _, y_test = load_split()
    rows = accuracy_table(net, wbits, sorted(abits, reverse=True), x_test, y_test)
    if args.json:
        print(json.dumps({"dataset": DATASET, "samples": int(len(y_test)), "results": rows}))
        return 0
    _print_table(rows, path, net, len(y_test))
    return 0


def _print_table(rows, path, net, samples):
    abits = sorted({r["abits"] for r in rows}, reverse=True)
    wbits = sorted({r["wbits"] for r in rows})
    acc = {(r["wbits"], r["abits"]): r["accuracy"] for r in rows}
    sizes = [net.layers[0].shape[1]] + [layer.shape[0] for layer in net.layers]
    print(f"model {path} (N={net.n}, A={net.a}, layers {' -> '.join(map(str, sizes))})")
    print(f"integer-reference accuracy on the digits test split ({samples} images), %")
    print("wbits " + "".join(f"{f'abits {a}':>10}" for a in abits))
    for k in wbits:
        print(f"{k:>5} " + "".join(f"{100 * acc[(k, a)]:>10.2f}" for a in abits))
