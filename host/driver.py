"""The anyprec device driver, written sans-I/O.

Every high-level operation is a generator on :class:`DriverCore`: it yields request frames
(lists of words) and receives the matching response frames through ``.send()``; its return
value is the result. It never touches a link. Two thin runners execute the very same
generators:

* :class:`Driver` over a synchronous :class:`~anyprec.host.transport.Transport`
  (``transport.exchange(words) -> words``): serial port, in-process model;
* :class:`AsyncDriver` over an :class:`~anyprec.host.transport.AsyncTransport`
  (``await transport.exchange(words)``): cocotb AXI-Stream.

Typical use::

    drv = Driver(ModelTransport(ModelDevice(cfg)))
    drv.load_model(net)                       # INFO check, SET_LAYER, requant, planes
    drv.set_precision([8, 2, 8], [8, 4, 8])   # per-layer wbits / abits (SET_RUN)
    logits = drv.infer(x).values

Errors: a non-OK status raises the :class:`~anyprec.host.errors.DeviceError` subclass of
the status (the device state is unchanged; the driver reads STATUS once to explain
command-check failures precisely); a malformed response raises
:class:`~anyprec.host.errors.ProtocolError`; a model that does not fit the device raises
:class:`~anyprec.host.errors.ModelMismatchError` before anything is sent.

**Run-setting cache.** The driver remembers the run settings (wbits, abits, run M, run K)
it last saw on each layer (from SET_LAYER, SET_RUN and STATUS), and :meth:`Driver.set_run`
sends SET_RUN only when they change, so switching precision per inference costs nothing
when nothing changes. ``force=True`` always sends. The cache is dropped after a timeout or
a malformed response (the device state is then unknown) and refreshed by every STATUS read;
call :meth:`Driver.forget` if another host may have changed the device.
"""

from __future__ import annotations

import numpy as np

from ..golden import arith
from ..golden.errors import AnyprecError, ShapeError
from ..hw.config import AnyprecConfig
from . import protocol as P
from .errors import DeviceError, ModelMismatchError, ProtocolError
from .protocol import Opcode, Status

__all__ = ["DriverCore", "Driver", "AsyncDriver", "check_model", "plan_configure",
           "layer_slots"]


# --------------------------------------------------------------------------------------
# Model checks and memory planning (pure)
# --------------------------------------------------------------------------------------

def layer_slots(n):
    """``"1 layer slot"`` or ``"n layer slots"``, for messages."""
    return "1 layer slot" if n == 1 else f"{n} layer slots"


def check_model(net, cfg: AnyprecConfig) -> list[tuple[int, int]]:
    """Check that an integer network fits a device; return its layer shapes.

    Raises
    ------
    ModelMismatchError
        Different N or A, more layers than slots, a layer above max_m x max_k, or more
        weight memory than the device has.
    ShapeError
        A malformed model (codes not N-bit, requantisation tables of the wrong shape or
        range).
    """
    if not isinstance(net, arith.IntNetwork):
        raise ShapeError(f"expected an IntNetwork, not {type(net).__name__}")
    n, a = cfg.max_wbits, cfg.max_abits
    if net.n != n:
        raise ModelMismatchError(f"the model stores {net.n}-bit weights, the device "
                                 f"stores {n}-bit weights (max_wbits)")
    if net.a != a:
        raise ModelMismatchError(f"the model is built for {net.a}-bit activations, the "
                                 f"device for {a}-bit activations (max_abits); the "
                                 "requantisation depends on it")
    if not net.layers:
        raise ShapeError("the model has no layers")
    if len(net.layers) > cfg.layers:
        raise ModelMismatchError(f"the model has {len(net.layers)} layers, the device "
                                 f"only {layer_slots(cfg.layers)}")
    shapes = []
    for l, layer in enumerate(net.layers):
        codes = np.asarray(layer.codes)
        if codes.ndim != 2 or 0 in codes.shape:
            raise ShapeError(f"layer {l}: weight codes must be a non-empty (M, K) array, "
                             f"not shape {codes.shape}")
        m, k = codes.shape
        if m > cfg.max_m or k > cfg.max_k:
            raise ModelMismatchError(f"layer {l} is {m}x{k}, the device takes layers of "
                                     f"at most {cfg.max_m}x{cfg.max_k} (max_m x max_k)")
        try:
            arith.truncate(codes, n, n)  # range check of the codes
        except ShapeError as e:
            raise ShapeError(f"layer {l}: {e}") from None
        mm, bb, sh = (np.asarray(layer.m), np.asarray(layer.b), np.asarray(layer.shift))
        if mm.shape != (n, m) or bb.shape != (n, m) or sh.shape != (n,):
            raise ShapeError(f"layer {l}: requantisation tables must be m ({n}, {m}), "
                             f"b ({n}, {m}), shift ({n},), not {mm.shape}, {bb.shape}, "
                             f"{sh.shape}")
        for kk in range(n):
            try:
                P.pack_requant(mm[kk], bb[kk])
            except ShapeError as e:
                raise ShapeError(f"layer {l}, {kk + 1}-bit table: {e}") from None
            if not 0 <= int(sh[kk]) <= arith.SHIFT_MAX:
                raise ShapeError(f"layer {l}, {kk + 1}-bit table: shift must be 0.."
                                 f"{arith.SHIFT_MAX}, not {int(sh[kk])}")
        shapes.append((m, k))
    total = sum(P.span(m, k, cfg) for m, k in shapes)
    if total > cfg.depth_words:
        raise ModelMismatchError(f"the model needs {total} words of weight memory, the "
                                 f"device has {cfg.depth_words}")
    return shapes


def _overlap(r, s):
    return r[0] < s[1] and s[0] < r[1]


def plan_configure(shapes, cfg: AnyprecConfig, status: P.DeviceStatus):
    """SET_LAYER commands that configure ``shapes`` in the dense layout.

    Slots already configured on the device (``status``) may hold regions that the new
    layout overlaps, and the protocol cannot unconfigure a slot. The plan therefore
    orders the SET_LAYERs so that none conflicts, and when that is impossible first
    *parks* a blocking slot as a 1 x 1 layer in free memory after the new layout (slots
    beyond the model's layers stay parked).

    Returns
    -------
    list of (layer, M, K, base)

    Raises
    ------
    ModelMismatchError
        No free memory to park a blocking slot (reset the device).
    """
    bases = P.layout(shapes, cfg)
    new = {l: (b, b + P.span(m, k, cfg)) for l, ((m, k), b) in enumerate(zip(shapes, bases))}
    end = max(r[1] for r in new.values())
    cur = {i: (s.base, s.base + P.span(s.m, s.k, cfg))
           for i, s in enumerate(status.layers) if s.configured}
    tiny = P.span(1, 1, cfg)
    plan = []

    def park(slot):
        others = [r for i, r in cur.items() if i != slot] + list(new.values())
        for c in sorted({end} | {r[1] for r in others if r[1] >= end}):
            spot = (c, c + tiny)
            if spot[1] <= cfg.depth_words and not any(_overlap(spot, r) for r in others):
                plan.append((slot, 1, 1, c))
                cur[slot] = spot
                return
        b, e = cur[slot]
        raise ModelMismatchError(
            f"layer slot {slot} on the device holds weight memory [{b}, {e}), which the "
            f"new model needs, and there is no free memory to move it to; reset the device")

    for s in sorted(cur):
        if s >= len(shapes) and any(_overlap(cur[s], r) for r in new.values()):
            park(s)
    todo = list(range(len(shapes)))
    while todo:
        for l in todo:
            if not any(_overlap(new[l], r) for i, r in cur.items() if i != l):
                plan.append((l, *shapes[l], new[l][0]))
                cur[l] = new[l]
                todo.remove(l)
                break
        else:
            l = todo[0]
            park(next(i for i, r in sorted(cur.items()) if i != l and _overlap(new[l], r)))
    return plan


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _per_layer(name, value, n):
    if isinstance(value, (int, np.integer)):
        return [int(value)] * n
    value = list(value)
    if len(value) != n:
        raise ShapeError(f"{name} needs one value per layer ({n}), got {len(value)}")
    return value


# --------------------------------------------------------------------------------------
# The sans-I/O core
# --------------------------------------------------------------------------------------

# Statuses a command's own checks produce; the driver reads STATUS to explain them.
_EXPLAINED = {Status.BAD_LENGTH, Status.RANGE, Status.NOT_READY, Status.ORDER,
              Status.CONFLICT}


class DriverCore:
    """The driver's state and its operations as sans-I/O generators.

    Each ``op_*`` method returns a generator that yields request frames and expects the
    response frames via ``send``; a transport failure is delivered with ``throw``. The
    generator's return value is the operation's result. :class:`Driver` and
    :class:`AsyncDriver` run them.

    Members
    -------
    tag : int
        Tag of the next request (increments per request, modulo 256).
    device_info : DeviceInfo or None
        The last INFO response.
    config : AnyprecConfig or None
        The device configuration derived from it.
    n_layers : int or None
        Number of layers of the model configured by :meth:`op_configure`.
    """

    def __init__(self):
        self.tag = 0
        self.device_info = None
        self.config = None
        self.n_layers = None
        self._stored = {}  # slot -> (M, K) as last seen
        self._runs = {}    # slot -> (wbits, abits, run M, run K) as last seen

    def forget(self):
        """Drop the cached layer state (not INFO: the build cannot change under us)."""
        self._stored.clear()
        self._runs.clear()

    # --- plumbing ---------------------------------------------------------------------
    def _next_tag(self):
        tag, self.tag = self.tag, (self.tag + 1) & 0xFF
        return tag

    def _command(self, opcode, build, request, explain=None):
        """Send one request, check the response; return the response Frame.

        ``build(tag)`` makes the request frame; ``explain(status, arg, device_status)``
        may return a precise reason for a refused command.
        """
        tag = self._next_tag()
        frame = build(tag)
        try:
            words = yield frame
        except Exception:
            self.forget()  # the device may or may not have executed the command
            raise
        try:
            resp = P.decode_frame(words)
            code, arg = P.check_response(resp, opcode, tag)
        except ProtocolError as e:
            self.forget()
            raise ProtocolError(f"bad response to {request}: {e}") from None
        if code != Status.OK:
            detail = None
            if explain is not None and code in _EXPLAINED:
                try:
                    st = yield from self.op_status()
                except AnyprecError:
                    st = None  # keep the original refusal as the error to report
                if st is not None:
                    detail = explain(code, arg, st)
            raise DeviceError.from_status(code, arg, opcode, request=request, detail=detail)
        return resp

    def _ensure_config(self):
        if self.config is None:
            yield from self.op_info()
        return self.config

    def _stored_shape(self, layer):
        if layer not in self._stored:
            yield from self.op_status()
        return self._stored.get(layer)

    # --- INFO / STATUS ------------------------------------------------------------------
    def op_info(self):
        """INFO; caches and returns the :class:`DeviceInfo`."""
        frame = yield from self._command(Opcode.INFO, lambda t: P.info(tag=t), "INFO")
        try:
            info = P.parse_info(frame)
            cfg = info.to_config()
        except ProtocolError as e:
            raise ProtocolError(f"bad response to INFO: {e}") from None
        self.device_info, self.config = info, cfg
        return info

    def op_status(self):
        """STATUS; refreshes the layer cache and returns the :class:`DeviceStatus`."""
        frame = yield from self._command(Opcode.STATUS, lambda t: P.status(tag=t), "STATUS")
        slots = self.device_info.layers if self.device_info is not None else None
        try:
            st = P.parse_status(frame, slots)
        except ProtocolError as e:
            self.forget()
            raise ProtocolError(f"bad response to STATUS: {e}") from None
        self.forget()
        for i, s in enumerate(st.layers):
            if s.configured:
                self._stored[i] = (s.m, s.k)
                self._runs[i] = (s.run_wbits, s.run_abits, s.run_m, s.run_k)
        return st

    # --- configuration and loading -------------------------------------------------------
    def op_set_layer(self, layer, m, k, base):
        """SET_LAYER: slot ``layer`` holds an M x K layer at weight-memory word ``base``."""
        cfg = yield from self._ensure_config()

        def explain(code, arg, st):
            region = (base, base + P.span(m, k, cfg))
            if code == Status.RANGE:
                if layer >= cfg.layers:
                    return f"layer {layer} does not exist, the device has {cfg.layers} slots"
                if not (1 <= m <= cfg.max_m and 1 <= k <= cfg.max_k):
                    return (f"layer {layer}: {m}x{k} is outside 1x1 .. "
                            f"{cfg.max_m}x{cfg.max_k}")
                return (f"layer {layer}: region [{region[0]}, {region[1]}) ends beyond the "
                        f"{cfg.depth_words}-word weight memory")
            if code == Status.CONFLICT:
                for i, s in enumerate(st.layers):
                    other = (s.base, s.base + P.span(s.m, s.k, cfg))
                    if i != layer and s.configured and _overlap(region, other):
                        return (f"layer {layer}'s region [{region[0]}, {region[1]}) overlaps "
                                f"layer {i}'s region [{other[0]}, {other[1]})")
            return None

        yield from self._command(
            Opcode.SET_LAYER, lambda t: P.set_layer(layer, m, k, base, tag=t),
            f"SET_LAYER layer {layer} ({m}x{k} at word {base})", explain)
        self._stored[layer] = (m, k)
        self._runs[layer] = (cfg.max_wbits, cfg.max_abits, m, k)

    def op_configure(self, net):
        """Check ``net`` against INFO, then SET_LAYER every layer in the dense layout.

        Returns the list of base addresses. Slots holding memory the new layout needs are
        moved out of the way first (:func:`plan_configure`).
        """
        cfg = yield from self._ensure_config()
        shapes = check_model(net, cfg)
        st = yield from self.op_status()
        for layer, m, k, base in plan_configure(shapes, cfg, st):
            yield from self.op_set_layer(layer, m, k, base)
        self.n_layers = len(shapes)
        return P.layout(shapes, cfg)

    def op_load_plane(self, layer, codes, plane):
        """LOAD_PLANE: plane ``plane`` (0 = MSB) of the (M, K) N-bit ``codes`` of a layer."""
        cfg = yield from self._ensure_config()
        codes = np.asarray(codes)
        data = P.pack_plane(codes, cfg.max_wbits, plane, cfg)

        def explain(code, arg, st):
            if code == Status.RANGE:
                if layer >= cfg.layers:
                    return f"layer {layer} does not exist, the device has {cfg.layers} slots"
                return f"plane {plane} does not exist, the device stores {cfg.max_wbits}"
            s = st[layer]
            if code == Status.NOT_READY:
                return f"layer {layer} is not configured (SET_LAYER first)"
            if code == Status.BAD_LENGTH:
                return (f"sent a {codes.shape[0]}x{codes.shape[1]} plane, layer {layer} is "
                        f"configured as {s.m}x{s.k}")
            if code == Status.ORDER:
                if s.planes >= cfg.max_wbits:
                    return (f"layer {layer} already has all {cfg.max_wbits} planes; "
                            "SET_LAYER clears them to reload")
                return (f"layer {layer} has {_plural(s.planes, 'plane')} loaded, so the "
                        f"next must be plane {s.planes}, not {plane}")
            return None

        yield from self._command(
            Opcode.LOAD_PLANE, lambda t: P.load_plane(layer, plane, data, tag=t),
            f"LOAD_PLANE layer {layer} plane {plane}", explain)

    def op_load_plane_all(self, net, plane):
        """Plane ``plane`` of every layer of ``net`` (one step of progressive streaming)."""
        for l, layer in enumerate(net.layers):
            yield from self.op_load_plane(l, layer.codes, plane)

    def op_load_planes(self, net, planes=None, layers=None):
        """Planes of ``net``'s layers, layer by layer, each MSB first.

        ``planes`` defaults to all N, ``layers`` to every layer of ``net``.
        """
        cfg = yield from self._ensure_config()
        planes = range(cfg.max_wbits) if planes is None else planes
        layers = range(len(net.layers)) if layers is None else layers
        for l in layers:
            for p in planes:
                yield from self.op_load_plane(l, net.layers[l].codes, p)

    def op_load_requant(self, net, wbits=None):
        """LOAD_REQUANT of every layer of ``net`` for each weight precision in ``wbits``
        (default all 1..N; on the parallel design only N)."""
        cfg = yield from self._ensure_config()
        if wbits is None:
            wbits = ([cfg.max_wbits] if cfg.design == "parallel"
                     else range(1, cfg.max_wbits + 1))
        for l, layer in enumerate(net.layers):
            for k in wbits:
                yield from self._load_requant(l, k, int(layer.shift[k - 1]),
                                              np.asarray(layer.m[k - 1]),
                                              np.asarray(layer.b[k - 1]), cfg)

    def _load_requant(self, layer, k, shift, m, b, cfg):
        def explain(code, arg, st):
            if code == Status.RANGE:
                if layer >= cfg.layers:
                    return f"layer {layer} does not exist, the device has {cfg.layers} slots"
                if not 1 <= k <= cfg.max_wbits:
                    return f"wbits {k} is outside 1..{cfg.max_wbits}"
                return f"shift {shift} is above {arith.SHIFT_MAX}"
            if code == Status.NOT_READY:
                return f"layer {layer} is not configured (SET_LAYER first)"
            if code == Status.BAD_LENGTH:
                return f"sent {len(m)} rows, layer {layer} stores {st[layer].m}"
            return None

        yield from self._command(
            Opcode.LOAD_REQUANT, lambda t: P.load_requant(layer, k, shift, m, b, tag=t),
            f"LOAD_REQUANT layer {layer} wbits {k}", explain)

    def op_load_model(self, net):
        """Configure, then every requantisation table, then every plane of ``net``."""
        bases = yield from self.op_configure(net)
        yield from self.op_load_requant(net)
        yield from self.op_load_planes(net)
        return bases

    # --- run settings -----------------------------------------------------------------
    def op_set_run(self, layer, wbits, abits, m=None, k=None, force=False):
        """SET_RUN for one layer; ``m`` / ``k`` default to the stored size.

        Sends nothing when the cached run settings already match (unless ``force``).
        Returns True when a SET_RUN was sent.
        """
        cfg = yield from self._ensure_config()
        if m is None or k is None:
            stored = yield from self._stored_shape(layer)
            # An unconfigured layer has no size; 0 lets the device report NOT_READY.
            sm, sk = stored if stored is not None else (0, 0)
            m = sm if m is None else m
            k = sk if k is None else k
        want = (wbits, abits, m, k)
        if not force and self._runs.get(layer) == want:
            return False

        def explain(code, arg, st):
            if code == Status.RANGE:
                if layer >= cfg.layers:
                    return f"layer {layer} does not exist, the device has {cfg.layers} slots"
                if cfg.design == "parallel" and wbits != cfg.max_wbits:
                    return f"the parallel design only runs {cfg.max_wbits}-bit weights"
                if not 1 <= wbits <= cfg.max_wbits:
                    return f"wbits {wbits} is outside 1..{cfg.max_wbits}"
                if not 1 <= abits <= cfg.max_abits:
                    return f"abits {abits} is outside 1..{cfg.max_abits}"
                s = st[layer]
                return (f"run size {m}x{k} is outside 1x1 .. the stored {s.m}x{s.k} of "
                        f"layer {layer}")
            if code == Status.NOT_READY:
                return f"layer {layer} is not configured (SET_LAYER first)"
            return None

        yield from self._command(
            Opcode.SET_RUN, lambda t: P.set_run(layer, wbits, abits, m, k, tag=t),
            f"SET_RUN layer {layer} (wbits {wbits}, abits {abits}, {m}x{k})", explain)
        self._runs[layer] = want
        return True

    def _layer_count(self):
        if self.n_layers is not None:
            return self.n_layers
        st = yield from self.op_status()
        n = 0
        while n < len(st) and st[n].configured:
            n += 1
        return n

    def _count_for(self, *per_layer):
        # Layers addressed by per-layer settings: the length of any list given, else the
        # configured model (or the configured slots, from STATUS).
        for v in per_layer:
            if v is not None and not isinstance(v, (int, np.integer)):
                return len(v)
        return (yield from self._layer_count())

    def op_set_precision(self, wbits, abits, sizes=None, force=False):
        """SET_RUN every layer: ``wbits`` / ``abits`` are an int or one per layer,
        ``sizes`` an optional list of run (M, K) per layer (None: stored sizes)."""
        n = yield from self._count_for(wbits, abits, sizes)
        wbits = _per_layer("wbits", wbits, n)
        abits = _per_layer("abits", abits, n)
        sizes = [(None, None)] * n if sizes is None else _per_layer("sizes", sizes, n)
        sent = 0
        for l in range(n):
            sent += yield from self.op_set_run(l, wbits[l], abits[l], *sizes[l], force=force)
        return sent

    # --- compute ----------------------------------------------------------------------
    def _check_inputs(self, x, layer, what):
        # The device sees only whole words: a vector shorter than the run K by less than
        # one word would pass its length check with zero padding lanes, so the host checks
        # against the run size it knows.
        run = self._runs.get(layer)
        if x.ndim == 1 and run is not None and x.shape[0] != run[3]:
            raise ShapeError(f"{what}: got {x.shape[0]} inputs, layer {layer} runs "
                             f"{run[3]} (SET_RUN sets the run size)")

    def op_matvec(self, layer, x, wbits, abits):
        """MATVEC: raw dot products of the layer's run-M rows at (wbits, abits)."""
        cfg = yield from self._ensure_config()
        x = np.asarray(x)
        self._check_inputs(x, layer, f"MATVEC layer {layer}")

        def explain(code, arg, st):
            if code == Status.RANGE:
                if layer >= cfg.layers:
                    return f"layer {layer} does not exist, the device has {cfg.layers} slots"
                if cfg.design == "parallel" and wbits != cfg.max_wbits:
                    return f"the parallel design only runs {cfg.max_wbits}-bit weights"
                if not 1 <= wbits <= cfg.max_wbits:
                    return f"wbits {wbits} is outside 1..{cfg.max_wbits}"
                if not 1 <= abits <= cfg.max_abits:
                    return f"abits {abits} is outside 1..{cfg.max_abits}"
                return f"an activation is {int(x.max())}, above {(1 << abits) - 1} for abits {abits}"
            s = st[layer]
            if code == Status.NOT_READY:
                if not s.configured:
                    return f"layer {layer} is not configured"
                return (f"layer {layer} has {_plural(s.planes, 'plane')} loaded, "
                        f"needs {wbits}")
            if code == Status.BAD_LENGTH:
                return f"sent {len(x)} activations, layer {layer} runs {s.run_k} inputs"
            return None

        frame = yield from self._command(
            Opcode.MATVEC, lambda t: P.matvec(layer, wbits, abits, x, cfg, tag=t),
            f"MATVEC layer {layer} (wbits {wbits}, abits {abits})", explain)
        try:
            return P.parse_matvec(frame)
        except ProtocolError as e:
            raise ProtocolError(f"bad response to MATVEC: {e}") from None

    def op_infer(self, x, n_layers=None):
        """INFER over layers 0 .. n_layers-1 (default: the configured model's layers)."""
        cfg = yield from self._ensure_config()
        n = n_layers if n_layers is not None else (yield from self._layer_count())
        x = np.asarray(x)
        self._check_inputs(x, 0, "INFER")

        def explain(code, arg, st):
            if code == Status.RANGE:
                if not 1 <= n <= cfg.layers:
                    return f"{n} layers is outside 1..{cfg.layers}"
                a0 = st[0].run_abits
                return (f"an input is {int(x.max())}, above {(1 << a0) - 1} for layer 0's "
                        f"abits {a0}")
            s = st[arg]
            if code == Status.BAD_LENGTH:
                return f"sent {len(x)} inputs, layer 0 runs {s.run_k} inputs"
            if code == Status.NOT_READY:
                if not s.configured:
                    return f"layer {arg} is not configured"
                if s.planes < s.run_wbits:
                    return (f"layer {arg} has {_plural(s.planes, 'plane')} loaded, needs "
                            f"{s.run_wbits}")
                return f"layer {arg} has no requantisation table for {s.run_wbits}-bit weights"
            if code == Status.CONFLICT and arg + 1 < len(st):
                nxt = st[arg + 1]
                if not nxt.configured:
                    return f"layer {arg} feeds layer {arg + 1}, which is not configured"
                return (f"layer {arg} runs {_plural(s.run_m, 'row')} but layer {arg + 1} "
                        f"runs {_plural(nxt.run_k, 'input')}")
            return None

        frame = yield from self._command(
            Opcode.INFER, lambda t: P.infer(n, x, cfg, tag=t), f"INFER ({n} layers)", explain)
        try:
            return P.parse_infer(frame)
        except ProtocolError as e:
            raise ProtocolError(f"bad response to INFER: {e}") from None

    def op_forward(self, x, wbits, abits, sizes=None):
        """Set every layer's precision (and run size), then infer; like
        :meth:`anyprec.golden.arith.IntNetwork.forward`, ``x`` may be (K0,) or (K0, B).
        Returns the int64 logits."""
        yield from self.op_set_precision(wbits, abits, sizes)
        n = yield from self._count_for(wbits, abits, sizes)
        x = np.asarray(x)
        if x.ndim == 1:
            return (yield from self.op_infer(x, n)).values
        cols = []
        for b in range(x.shape[1]):
            cols.append((yield from self.op_infer(x[:, b], n)).values)
        return np.stack(cols, axis=1)


# --------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------

class Driver:
    """Synchronous driver: runs :class:`DriverCore` operations over a :class:`Transport`.

    Parameters
    ----------
    transport : Transport
        ``exchange(words, timeout=None) -> words``.
    timeout : float or None
        Passed to every exchange.

    Members
    -------
    core : DriverCore
        The state (tags, INFO, run-setting cache).
    """

    def __init__(self, transport, timeout=None):
        self.transport = transport
        self.timeout = timeout
        self.core = DriverCore()

    def run(self, gen):
        """Run one sans-I/O operation to completion and return its result."""
        try:
            request = next(gen)
            while True:
                try:
                    response = self.transport.exchange(request, timeout=self.timeout)
                except Exception as e:
                    request = gen.throw(e)
                else:
                    request = gen.send(response)
        except StopIteration as stop:
            return stop.value

    # Thin wrappers; see the DriverCore.op_* docstrings.
    def config(self) -> AnyprecConfig:
        """The device's configuration (reads INFO the first time)."""
        return self.run(self.core._ensure_config())

    def forget(self):
        """Drop the cached layer state (after another host touched the device)."""
        self.core.forget()

    def info(self) -> P.DeviceInfo:
        """Read INFO."""
        return self.run(self.core.op_info())

    def status(self) -> P.DeviceStatus:
        """Read STATUS."""
        return self.run(self.core.op_status())

    def set_layer(self, layer, m, k, base):
        """SET_LAYER one slot."""
        return self.run(self.core.op_set_layer(layer, m, k, base))

    def configure(self, net) -> list[int]:
        """Check ``net`` against INFO (ModelMismatchError), then SET_LAYER every layer in
        the dense layout; returns the base addresses."""
        return self.run(self.core.op_configure(net))

    def load_plane(self, layer, codes, plane):
        """LOAD_PLANE one plane of one layer."""
        return self.run(self.core.op_load_plane(layer, codes, plane))

    def load_planes(self, net, planes=None, layers=None):
        """Load planes (default all, MSB first) of every layer (or ``layers``)."""
        return self.run(self.core.op_load_planes(net, planes, layers))

    def stream_planes(self, net):
        """Progressive streaming: load plane 0 of every layer, then plane 1, ...

        A generator: after each plane of every layer is loaded it yields the number k of
        planes now loaded, so the caller can infer at up to k bits before the rest arrives::

            for k in drv.stream_planes(net):
                print(k, drv.forward(x, k, 8))

        Nothing is loaded unless it is iterated. Configure (and load the requantisation
        tables) first.
        """
        cfg = self.config()
        for p in range(cfg.max_wbits):
            self.run(self.core.op_load_plane_all(net, p))
            yield p + 1

    def load_requant(self, net, wbits=None):
        """Load the requantisation tables of every layer for every precision."""
        return self.run(self.core.op_load_requant(net, wbits))

    def load_model(self, net) -> list[int]:
        """configure + load_requant + load_planes; returns the base addresses."""
        return self.run(self.core.op_load_model(net))

    def set_run(self, layer, wbits, abits, m=None, k=None, force=False) -> bool:
        """SET_RUN one layer (skipped when unchanged unless ``force``); True if sent."""
        return self.run(self.core.op_set_run(layer, wbits, abits, m, k, force))

    def set_precision(self, wbits, abits, sizes=None, force=False) -> int:
        """SET_RUN every layer; returns the number of SET_RUN frames sent."""
        return self.run(self.core.op_set_precision(wbits, abits, sizes, force))

    def matvec(self, layer, x, wbits, abits) -> P.MatvecResult:
        """Raw dot products of one layer (MATVEC)."""
        return self.run(self.core.op_matvec(layer, x, wbits, abits))

    def infer(self, x, n_layers=None) -> P.InferResult:
        """INFER over the first ``n_layers`` layers at their run settings."""
        return self.run(self.core.op_infer(x, n_layers))

    def forward(self, x, wbits, abits, sizes=None) -> np.ndarray:
        """set_precision + infer, for (K0,) or (K0, B) inputs; returns the logits."""
        return self.run(self.core.op_forward(x, wbits, abits, sizes))


class AsyncDriver:
    """Asynchronous driver: the same :class:`DriverCore` operations over an
    :class:`AsyncTransport`. Every method of :class:`Driver` exists here as a coroutine
    (``stream_planes`` as an async generator)."""

    def __init__(self, transport, timeout=None):
        self.transport = transport
        self.timeout = timeout
        self.core = DriverCore()

    async def run(self, gen):
        """Run one sans-I/O operation to completion and return its result."""
        try:
            request = next(gen)
            while True:
                try:
                    response = await self.transport.exchange(request, timeout=self.timeout)
                except Exception as e:
                    request = gen.throw(e)
                else:
                    request = gen.send(response)
        except StopIteration as stop:
            return stop.value

    async def config(self) -> AnyprecConfig:
        """The device's configuration (reads INFO the first time)."""
        return await self.run(self.core._ensure_config())

    def forget(self):
        self.core.forget()

    async def info(self):
        return await self.run(self.core.op_info())

    async def status(self):
        return await self.run(self.core.op_status())

    async def set_layer(self, layer, m, k, base):
        return await self.run(self.core.op_set_layer(layer, m, k, base))

    async def configure(self, net):
        return await self.run(self.core.op_configure(net))

    async def load_plane(self, layer, codes, plane):
        return await self.run(self.core.op_load_plane(layer, codes, plane))

    async def load_planes(self, net, planes=None, layers=None):
        return await self.run(self.core.op_load_planes(net, planes, layers))

    async def stream_planes(self, net):
        cfg = await self.config()
        for p in range(cfg.max_wbits):
            await self.run(self.core.op_load_plane_all(net, p))
            yield p + 1

    async def load_requant(self, net, wbits=None):
        return await self.run(self.core.op_load_requant(net, wbits))

    async def load_model(self, net):
        return await self.run(self.core.op_load_model(net))

    async def set_run(self, layer, wbits, abits, m=None, k=None, force=False):
        return await self.run(self.core.op_set_run(layer, wbits, abits, m, k, force))

    async def set_precision(self, wbits, abits, sizes=None, force=False):
        return await self.run(self.core.op_set_precision(wbits, abits, sizes, force))

    async def matvec(self, layer, x, wbits, abits):
        return await self.run(self.core.op_matvec(layer, x, wbits, abits))

    async def infer(self, x, n_layers=None):
        return await self.run(self.core.op_infer(x, n_layers))

    async def forward(self, x, wbits, abits, sizes=None):
        return await self.run(self.core.op_forward(x, wbits, abits, sizes))
