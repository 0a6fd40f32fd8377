"""The any-precision MLP: PyTorch training and the float fake-quantised forward pass.

One set of float weights serves every weight precision k = 1..N. Following the
Any-Precision DNN recipe (Yu et al., AAAI 2021), with anyprec's truncation-consistent
quantiser (docs/arithmetic.md section 3):

- **Weights.** Layer l has one scale ``s_N = mean|W_l| / 2^(N-1)``, recomputed from the
  float weights at every step (so ``s_1 = mean|W_l|``, the L2-optimal binary scale of
  XNOR-Net, and the clipping range ``2^N s_N = 2 mean|W_l|`` is the same at every k). The
  N-bit codes come from :func:`anyprec.golden.arith.quantize_weights`; the k-bit weights
  are :func:`anyprec.golden.arith.dequantize` of them, i.e. the top k planes. Gradients
  pass straight through (identity) to the float weights.
- **Activations.** Every layer input l has a fixed full-precision step ``sigma_l``. The
  network input is ``pixels / 16`` with ``sigma_0 = 1 / (2^A - 1)``; hidden inputs use
  ``sigma_l = act_range / (2^A - 1)`` (default ``act_range = 4``). A fixed step loses
  nothing: the batch-norm in front of every quantiser learns the affine map into its range.
  The quantiser is docs section 4 (round half up, clamp to ``0..2^a - 1``; the lower clamp
  is the ReLU), with a straight-through gradient inside the range and zero outside.
- **Switchable batch-norm.** Every layer, the last one included, is a bias-free linear map
  followed by one ``BatchNorm1d`` per weight precision k. Export folds each of them into
  the per-precision requantisation table (m, b, shift) of docs section 6.
- **Joint training.** Each step sums the cross-entropy of all N precisions at abits A,
  plus a distillation term (KL divergence to the detached k = N logits) for k < N, plus, to
  keep low activation precisions usable, the loss at each of the ``low_abits`` for one
  randomly chosen k. After training, the batch-norm statistics of every k are recomputed
  exactly over the whole training set at abits A (the precision the tables are tuned for).

:meth:`AnyPrecisionMLP.forward` mirrors the integer path of
:meth:`anyprec.golden.arith.IntNetwork.forward` layer by layer; it differs only by the
rounding of the folded requantisation constants (see ``anyprec.golden.export``).

Reproducibility: :func:`train` seeds torch, runs single-threaded with deterministic
algorithms, and shuffles with its own generator. With the same torch build on the same CPU
architecture the trained weights, and hence the exported files, are bit-identical run to
run; across CPU types or torch versions the floats may differ in the last bits, which can
change a few codes.
"""

import contextlib
import math
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from . import arith
from .data import N_CLASSES, N_FEATURES, PIXEL_MAX, load_split
from .errors import ShapeError

__all__ = ["AnyPrecisionMLP", "TrainSettings", "train", "fake_quant_activations",
           "quantize_input", "single_thread"]


def quantize_input(x, a, amax):
    """Quantise the real input ``pixels / 16`` to a-bit integers (as floats), docs section 4.

    Computed as ``floor(x * (2^A - 1) / 2^(A - a) + 1/2)`` rather than ``x / sigma_0``: for
    ``x = p / 16`` every step is exact in binary floating point, so the result equals
    :func:`anyprec.golden.arith.quantize_pixels` for every pixel, even at the exact ties.
    """
    unit = float(1 << (amax - a))
    q = torch.floor(x * float((1 << amax) - 1) / unit + 0.5)
    return torch.clamp(q, 0, (1 << a) - 1)


def fake_quant_activations(v, sigma, a, amax):
    """Docs section 4 quantiser ``clamp(floor(v / (sigma 2^(A-a)) + 1/2), 0, 2^a - 1)``.

    Returns the integer levels as floats. The same floating-point operations as
    :func:`anyprec.golden.arith.quantize_activations`, so in float64 the two agree bit for
    bit. The gradient is straight-through inside ``0..2^a - 1`` and zero outside it.
    """
    u = v / (sigma * float(1 << (amax - a)))
    q = u + (torch.floor(u + 0.5) - u).detach()
    return torch.clamp(q, 0, (1 << a) - 1)


class AnyPrecisionMLP(nn.Module):
    """A fully connected any-precision network with switchable batch-norm.

    Parameters
    ----------
    hidden : sequence of int
        Hidden layer widths (default ``(64, 64)``: a 64-64-64-10 network).
    n : int
        N, the stored weight precision.
    a : int
        A, the maximum activation precision.
    act_range : float
        Real range of the hidden activation quantisers: ``sigma_l = act_range / (2^A - 1)``.
    logit_step : float
        Real value of one integer logit step in the exported model (only the resolution of
        the integer logits; it does not change predictions beyond rounding).
    n_in, n_out : int
        Input features and classes.

    Members
    -------
    weights : ParameterList of (M_l, K_l) float weights.
    bns : ModuleList; ``bns[l][k - 1]`` the batch-norm of layer l at weight precision k.
    sigma : (L,) float64 buffer, the full-precision input step of every layer.
    """

    def __init__(self, hidden=(64, 64), *, n=8, a=8, act_range=4.0, logit_step=2.0 ** -12,
                 n_in=N_FEATURES, n_out=N_CLASSES):
        super().__init__()
        hidden = tuple(hidden)
        for name, value, lo, hi in (("n", n, 1, 16), ("a", a, 1, 16)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer from {lo} to {hi}, not {value!r}")
        for h in (*hidden, n_in, n_out):
            if isinstance(h, bool) or not isinstance(h, int) or h < 1:
                raise ValueError(f"layer widths must be positive integers, not {h!r}")
        if not act_range > 0 or not logit_step > 0:
            raise ValueError(f"act_range and logit_step must be positive, not "
                             f"{act_range!r} and {logit_step!r}")
        self.hparams = {"hidden": list(hidden), "n": n, "a": a, "act_range": float(act_range),
                        "logit_step": float(logit_step), "n_in": n_in, "n_out": n_out}
        self.n, self.a = n, a
        sizes = [n_in, *hidden, n_out]
        self.weights = nn.ParameterList()
        for k_in, m_out in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(m_out, k_in)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # nn.Linear's default
            self.weights.append(nn.Parameter(w))
        self.bns = nn.ModuleList(
            nn.ModuleList(nn.BatchNorm1d(m_out) for _ in range(n)) for m_out in sizes[1:])
        sig = [1.0 / ((1 << a) - 1)] + [act_range / ((1 << a) - 1)] * len(hidden)
        self.register_buffer("sigma", torch.tensor(sig, dtype=torch.float64))
        self.logit_step = float(logit_step)

    @property
    def num_layers(self):
        return len(self.weights)

    def weight_scale(self, layer):
        """The layer's scale s_N (a Python float), computed in float64 from the weights."""
        w = self.weights[layer].detach().to(torch.float64)
        return float(w.abs().mean()) / (1 << (self.n - 1))

    def codes(self, layer):
        """The layer's N-bit weight codes (numpy int64), via ``arith.quantize_weights``."""
        w = self.weights[layer].detach().to("cpu", torch.float64).numpy()
        return arith.quantize_weights(w, self.weight_scale(layer), self.n)

    def quantized_weight(self, layer, k):
        """The real k-bit weights ``s_k * lambda_k(top k planes)``, straight-through."""
        w = self.weights[layer]
        wq = arith.dequantize(self.codes(layer), self.n, k, self.weight_scale(layer))
        wq = torch.from_numpy(wq).to(w.dtype)
        return w + (wq - w).detach()

    def _per_layer(self, name, value, maximum):
        if isinstance(value, (int, np.integer)):
            value = [value] * self.num_layers
        value = list(value)
        if len(value) != self.num_layers:
            raise arith.PrecisionError(f"{name} needs one value per layer "
                                       f"({self.num_layers}), got {len(value)}")
        return [arith.check_precision(name, v, maximum) for v in value]

    def forward(self, x, wbits, abits, return_all=False):
        """The float fake-quantised forward pass, mirroring ``IntNetwork.forward``.

        Parameters
        ----------
        x : (B, n_in) float tensor
            Real inputs ``pixels / 16``.
        wbits, abits : int or one int per layer
            Weight precision of every layer and activation precision of every layer input.
        return_all : bool
            Also return the integer activation levels (as floats) entering every layer.

        Returns
        -------
        (B, n_out) real logits (the last batch-norm's output), and with ``return_all`` the
        list of per-layer input levels, each (B, K_l).
        """
        wbits = self._per_layer("wbits", wbits, self.n)
        abits = self._per_layer("abits", abits, self.a)
        if x.ndim != 2 or x.shape[1] != self.weights[0].shape[1]:
            raise ShapeError(f"input must be (batch, {self.weights[0].shape[1]}), "
                             f"not {tuple(x.shape)}")
        sigma = [float(s) for s in self.sigma]
        q = quantize_input(x, abits[0], self.a)
        levels = [q]
        for l in range(self.num_layers):
            k = wbits[l]
            xr = q * (sigma[l] * float(1 << (self.a - abits[l])))
            u = self.bns[l][k - 1](xr @ self.quantized_weight(l, k).t())
            if l + 1 < self.num_layers:
                q = fake_quant_activations(u, sigma[l + 1], abits[l + 1], self.a)
                levels.append(q)
        return (u, levels) if return_all else u

    def predict(self, x, wbits, abits):
        """Argmax class per sample (first maximum), in eval mode without gradients."""
        with torch.no_grad(), single_thread():
            was = self.training
            self.eval()
            try:
                return torch.argmax(self(x, wbits, abits), dim=1)
            finally:
                self.train(was)

    # --- checkpoints ------------------------------------------------------------------
    _BN_FIELDS = ("weight", "bias", "running_mean", "running_var")

    def checkpoint(self):
        """A dict of plain types and tensors that ``torch.load(weights_only=True)`` accepts.

        The N batch-norms of a layer are stacked into (N, M) tensors (one file member each
        instead of 5 N), which keeps the checkpoint small.
        """
        return {
            "format": "anyprec-float-mlp", "version": 1, "hparams": dict(self.hparams),
            "weights": [w.detach().clone() for w in self.weights],
            "bn": [{f: torch.stack([getattr(bn, f).detach() for bn in layer])
                    for f in self._BN_FIELDS} for layer in self.bns],
        }

    @classmethod
    def from_checkpoint(cls, ckpt):
        """Rebuild a model (in eval mode) from :meth:`checkpoint` output."""
        from .errors import ModelFileError
        if not isinstance(ckpt, dict) or ckpt.get("format") != "anyprec-float-mlp":
            raise ModelFileError("not an anyprec float checkpoint (format "
                                 f"{ckpt.get('format') if isinstance(ckpt, dict) else None!r})")
        if ckpt.get("version") != 1:
            raise ModelFileError(f"float checkpoint version {ckpt.get('version')!r} is not "
                                 "supported (expected 1)")
        try:
            hp = dict(ckpt["hparams"])
            model = cls(hp.pop("hidden"), **hp)
            if len(ckpt["weights"]) != model.num_layers or len(ckpt["bn"]) != model.num_layers:
                raise ValueError(f"expected {model.num_layers} layers")
            with torch.no_grad():
                for l in range(model.num_layers):
                    w = ckpt["weights"][l]
                    if w.shape != model.weights[l].shape:
                        raise ValueError(f"layer {l} weights are {tuple(w.shape)}, "
                                         f"expected {tuple(model.weights[l].shape)}")
                    model.weights[l].copy_(w)
                    for f in cls._BN_FIELDS:
                        stacked = ckpt["bn"][l][f]
                        want = (model.n, model.weights[l].shape[0])
                        if tuple(stacked.shape) != want:
                            raise ValueError(f"layer {l} batch-norm {f} is "
                                             f"{tuple(stacked.shape)}, expected {want}")
                        for k, bn in enumerate(model.bns[l]):
                            getattr(bn, f).copy_(stacked[k])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise ModelFileError(f"float checkpoint does not fit the model: "
                                 f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                                 ) from None
        model.eval()
        return model


class TrainSettings(dict):
    """Training hyper-parameters (a dict, so it goes into the model metadata as is)."""

    DEFAULTS = {"hidden": [64, 64], "epochs": 40, "seed": 0, "batch_size": 64, "lr": 0.01,
                "weight_decay": 0.0, "distill": 1.0, "low_abits": [4, 2],
                "low_abits_weight": 1.0, "act_range": 4.0, "n": 8, "a": 8}

    def __init__(self, **kw):
        unknown = sorted(set(kw) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
        super().__init__({**self.DEFAULTS, **kw})


@contextlib.contextmanager
def single_thread():
    """Run torch on one thread (restored afterwards).

    This network's tensors are tiny: extra threads only add synchronisation, and on a busy
    machine their spin-waits cost far more than the work.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _reproducible(seed):
    # Single thread + deterministic kernels: the float results do not depend on the
    # machine's core count or on scheduling. Restore the caller's settings afterwards.
    det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        with single_thread():
            yield
    finally:
        torch.use_deterministic_algorithms(det)


def _recalibrate_bn(model, x, abits):
    """Exact per-precision batch-norm statistics over the whole set ``x`` at ``abits``."""
    model.train()
    with torch.no_grad():
        for k in range(1, model.n + 1):
            for layer in model.bns:
                bn = layer[k - 1]
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average: one full batch = its exact stats
            model(x, k, abits)
            for layer in model.bns:
                layer[k - 1].momentum = 0.1
    model.eval()


def train(settings=None, progress=None):
    """Train an any-precision MLP on the digits training split.

    Parameters
    ----------
    settings : TrainSettings or dict, optional
        Hyper-parameters; missing ones take :attr:`TrainSettings.DEFAULTS`.
    progress : callable, optional
        Called after every epoch as ``progress(epoch, epochs, loss, seconds)``.

    Returns
    -------
    model : AnyPrecisionMLP
        The trained model in eval mode (float32).
    settings : TrainSettings
        The settings actually used.
    """
    s = TrainSettings(**(settings or {}))
    for name in ("epochs", "batch_size"):
        if isinstance(s[name], bool) or not isinstance(s[name], int) or s[name] < 1:
            raise ValueError(f"{name} must be a positive integer, not {s[name]!r}")
    x_train, _, y_train, _ = load_split()
    x = torch.from_numpy(x_train.astype(np.float32) / PIXEL_MAX)
    y = torch.from_numpy(np.array(y_train))
    with _reproducible(s["seed"]):
        model = AnyPrecisionMLP(s["hidden"], n=s["n"], a=s["a"], act_range=s["act_range"])
        gen = torch.Generator().manual_seed(s["seed"])
        opt = torch.optim.Adam(model.parameters(), lr=s["lr"],
                               weight_decay=s["weight_decay"])
        steps_per_epoch = math.ceil(len(x) / s["batch_size"])
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=s["lr"], total_steps=s["epochs"] * steps_per_epoch)
        n, amax = model.n, model.a
        for epoch in range(1, s["epochs"] + 1):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(len(x), generator=gen)
            total, count = 0.0, 0
            for i in range(0, len(x), s["batch_size"]):
                idx = perm[i:i + s["batch_size"]]
                if len(idx) < 2:  # batch-norm needs two samples
                    continue
                xb, yb = x[idx], y[idx]
                teacher = model(xb, n, amax)
                loss = F.cross_entropy(teacher, yb)
                soft = F.softmax(teacher.detach(), dim=1)
                for k in range(n - 1, 0, -1):
                    out = model(xb, k, amax)
                    loss = loss + F.cross_entropy(out, yb)
                    if s["distill"]:
                        loss = loss + s["distill"] * F.kl_div(
                            F.log_softmax(out, dim=1), soft, reduction="batchmean")
                for a_low in s["low_abits"]:
                    k = int(torch.randint(1, n + 1, (1,), generator=gen))
                    loss = loss + s["low_abits_weight"] * F.cross_entropy(
                        model(xb, k, a_low), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
                count += len(idx)
            if progress is not None:
                progress(epoch, s["epochs"], total / max(count, 1), time.perf_counter() - t0)
        _recalibrate_bn(model, x, amax)
    return model, s
