"""Quantization-aware GarNetStack in PyTorch that computes exactly as hls4ml's firmware.

:class:`QGarNetStack` holds the float weights of a simplified GarNet stack (Keras layout,
:class:`~calo.fpga.garnet.GarNetWeights`) and runs in one of two modes:

- ``quantized=False``: the float maths of :func:`calo.nn.garnet.simplified_garnet_stack`
  (``exp(-d^2)``, means over ``V_max``), in float32.
- ``quantized=True``: the integer data flow of ``nnet_garnet.h`` (the one
  :class:`~calo.fpga.reference.FixedGarNet` emulates), with every value held exactly in
  float64 and every assignment to a typed variable done by a fake-quantizer. The weights are
  quantized as hls4ml's converter does (:func:`~calo.fpga.garnet.quantize_sublayers`: the
  contracted input transform ``W_in``, ``b_in``, each array in ``ap_fixed<iw+10, iw,
  AP_RND, AP_SAT>`` sized from its values), the edge weight is read from the exp(-d^2) table
  indexed by the raw bits of ``d`` (:func:`~calo.fpga.garnet.edge_weight_table`), sums are
  made per group of ``U = V/R`` hits and normalised by ``V_max`` with right shifts, and the
  casts follow the types of :class:`~calo.fpga.garnet.GarNetFixedConfig` with their rounding
  and overflow modes (saturation and wrap-around included).

Gradients use a straight-through estimator: every cast passes the gradient unchanged
(zero outside the range of a saturating type), a right shift by k scales it by ``2**-k``,
and the table read passes the derivative of ``exp(-d^2)`` at the quantized distance. In
evaluation (no gradient) the output equals ``FixedGarNet(model.quantized_sublayers(),
config)`` bit for bit; :meth:`QGarNetStack.to_reference` builds that reference.

With ``ternary=True`` (the paper's quantized model) the input and output transform kernels
(F_LR and F_out) are ternary in quantized mode and in the export: ``{-s, 0, s}`` per kernel
with ``s`` a power of two (:func:`ternarize`), so the contracted ``W_in`` holds small
integers times a power of two.

:class:`QGarNetModel` is the paper's FPGA model: the stack, then Dense(16, relu),
Dense(8, relu) and two outputs, an energy regression and a classification logit. With
``quantize_head=True`` (the default) the head is quantization-aware too: in quantized mode
each Dense layer computes as hls4ml's ``nnet::dense_latency`` does (weights in ``weight_t``,
biases in ``bias_t``, every product and the running sum in ``accum_t``, the result cast to
``result_t``) and each ReLU as ``nnet::relu`` (``max(x, 0)`` cast to its ``result_t``), with the
types of :class:`HeadFixedConfig` (calo's defaults: 10 integer bits in the sums, saturating
results; hls4ml's unconfigured ``ap_fixed<16,6>`` everywhere wraps on a trained head). Then the
whole model's output equals the compiled hls4ml project of
:func:`calo.fpga.hls4ml_project.to_hls4ml` bit for bit. With ``quantize_head=False`` the
head stays float32 and only the stack is quantized.

Examples
--------
>>> import numpy as np, torch
>>> from calo.fpga.garnet import GarNetFixedConfig
>>> from calo.fpga.events import toy_events
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> cfg = GarNetFixedConfig(n_vertices=16, reuse_factor=4)
>>> stack = QGarNetStack(config=cfg).eval()
>>> X, n = toy_events(np.random.default_rng(0), 8, 16)
>>> with torch.no_grad():
...     y = stack(torch.as_tensor(X), torch.as_tensor(n))
>>> ref = stack.to_reference()(X, n).output
>>> y.shape, bool((y.numpy() == ref).all())
(torch.Size([8, 16]), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from calo.errors import ConfigError, DataError
from calo.fpga.fixed import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedType,
    handle_overflow,
    quantize_scaled,
    round_shift,
    sticky_scaled,
)
from calo.fpga.garnet import (
    PAPER_N_IN,
    PAPER_SUBLAYERS,
    GarNetFixedConfig,
    GarNetWeights,
    QuantizedSublayer,
    contract,
    edge_weight_table,
    quantize_sublayers,
)
from calo.fpga.reference import FixedGarNet
from calo.nn.garnet import simplified_garnet_stack

__all__ = [
    "HLS4ML_DEFAULT_HEAD",
    "HeadFixedConfig",
    "QGarNetModel",
    "QGarNetStack",
    "dense_fixed",
    "fake_quantize",
    "relu_fixed",
    "ternarize",
]


# ---------------------------------------------------------------------- fake quantizers
def fake_quantize(x: Tensor, t: FixedType) -> Tensor:
    """Assign float64 values ``x`` to type ``t`` (``t v = x;`` in C++), straight-through.

    ``x`` must hold exact values (float64 is exact for the widths calo supports). The result
    is the value of ``t`` the assignment gives (rounding mode, then overflow mode: saturate,
    wrap, ...). The gradient is 1, except outside ``[min, max]`` of a saturating type,
    where it is 0.

    Examples
    --------
    >>> import torch
    >>> t = FixedType.parse("ap_fixed<8,3,AP_RND,AP_SAT>")
    >>> fake_quantize(torch.tensor([1.03, -5.0, 100.0], dtype=torch.float64), t).tolist()
    [1.03125, -4.0, 3.96875]
    >>> fake_quantize(torch.tensor([4.5], dtype=torch.float64), FixedType(8, 3)).tolist()  # wrap
    [-3.5]
    """
    scale = 2.0**t.frac
    y = x.detach() * scale
    lo, hi = t.range_raw
    if y.device.type == "cpu":  # the compiled loop of calo.fpga.fixed.quantize
        q = torch.from_numpy(quantize_scaled(y.numpy(), t)[0]).to(torch.float64)
    else:
        q = _assign_scaled(y, t)
    qv = q / scale
    if not x.requires_grad:
        return qv
    if t.overflow == "WRAP":
        return x + (qv - x).detach()
    base = x.clamp(lo / scale, hi / scale)
    return base + (qv - base).detach()


def _assign_scaled(y: Tensor, t: FixedType) -> Tensor:
    """Raw values (float64) of ``t`` assigned exact values ``y`` in LSB units, as tensor
    operations on any device: the rules of :mod:`calo.fpga.fixed` (``|y| < 2**50`` for a
    wrapping type)."""
    if t.overflow != "WRAP":
        y = y.clamp(-(2.0**40), 2.0**40)  # saturates (or zeroes) the same way
    lo, hi = t.range_raw
    q = round_shift(sticky_scaled(y).to(torch.int64), 2, ROUNDING_MODES[t.rounding])
    return handle_overflow(q, OVERFLOW_MODES[t.overflow], lo, hi).to(torch.float64)


def _shr(x: Tensor, frac: int, k: int) -> Tensor:
    """``raw >> k`` of values ``x`` with ``frac`` fractional bits (floor), straight-through."""
    if k == 0:
        return x
    qv = torch.floor(x.detach() * 2.0 ** (frac - k)) * 2.0**-frac
    if not x.requires_grad:
        return qv
    xs = x * 2.0**-k
    return xs + (qv - xs).detach()


def _accumulate(start: Tensor | None, terms: Tensor, dim: int, t: FixedType, frac: int) -> Tensor:
    """``acc = start; for k: acc = t(acc + terms[k])`` along ``dim`` (firmware order).

    ``frac`` is the largest number of fractional bits of the terms and the start. When the
    additions are exact (``frac <= t.frac``) and ``t`` wraps, the running casts equal one
    cast of the total (wrap-around is arithmetic modulo ``2**W``), which is computed directly.
    """
    if t.overflow == "WRAP" and frac <= t.frac:
        total = terms.sum(dim)
        if start is not None:
            total = total + start
        return fake_quantize(total, t)
    acc = start
    for k in range(terms.shape[dim]):
        term = terms.select(dim, k)
        acc = fake_quantize(term if acc is None else acc + term, t)
    if acc is None:
        raise ConfigError("cannot accumulate zero terms")
    return acc


def ternarize(w: Tensor, threshold: float = 0.7) -> Tensor:
    """Ternary weights in ``{-s, 0, s}``, straight-through (ternary weight networks).

    Weights with ``|w| > threshold * mean|w|`` become ``s * sign(w)``, the others 0; the
    scale ``s`` is the mean magnitude of the kept weights rounded to a power of two, so that a
    multiplication by a weight is a sign flip and a shift in the firmware, and the contracted
    transform ``W_in`` (a sum of products of two ternary kernels) is exactly representable.
    The gradient is passed straight through.

    Examples
    --------
    >>> import torch
    >>> ternarize(torch.tensor([-0.9, -0.2, 0.1, 0.7])).tolist()
    [-1.0, 0.0, 0.0, 1.0]
    """
    wd = w.detach()
    mag = wd.abs()
    keep = mag > threshold * mag.mean()
    if bool(keep.any()):
        scale = 2.0 ** torch.round(torch.log2(mag[keep].mean()))
        q = torch.where(keep, torch.sign(wd) * scale, torch.zeros_like(wd))
    else:
        q = torch.zeros_like(wd)
    if not w.requires_grad:
        return q
    return w + (q - w).detach()


# ---------------------------------------------------------------------- the stack
class QGarNetStack(nn.Module):
    r"""Simplified GarNet stack (hls4ml's GarNetStack) with quantization-aware training.

    Per sublayer (input ``x [B, V, F_in]``, valid hits ``v < n``), in float mode:

    .. math::

        d_{va} = x_v S + b_S, \quad w_{va} = e^{-d_{va}^2}, \quad
        h_{ap} = \frac{1}{V} \sum_{v<n} w_{va} (x_v F + b_F)_p, \quad
        y_{vo} = b_o + \sum_{a,p} w_{va} h_{ap} K_{(a p) o}

    and the stack output is the mean ``(1/V) sum_{v<n} y_v`` of the last sublayer. In
    quantized mode the same maths runs in the firmware's fixed-point arithmetic (see the
    module docstring).

    Parameters
    ----------
    n_in:
        Input features per hit (4 in the paper).
    sublayers:
        ``(aggregators, F_LR, F_out)`` per sublayer; default the paper's
        ``((4, 8, 8), (4, 8, 8), (8, 16, 16))``.
    config:
        Sizes, reuse factor and fixed-point types (default ``GarNetFixedConfig()``: V_max 128,
        R 32). It needs ``collapse="mean"`` and ``mean_by_nvert=False`` (normalisation by
        V_max with shifts, as in the paper).
    quantized:
        Start in quantized mode (switch with :meth:`set_quantized`).
    ternary:
        Ternary F_LR and F_out kernels in quantized mode and in :meth:`garnet_weights`.
    ternary_threshold:
        Threshold of :func:`ternarize`, relative to the mean magnitude of a kernel.

    Shapes
    ------
    ``forward(X [B, V, n_in], n [B]) -> [B, F_out of the last sublayer]`` (float64 in
    quantized mode, float32 otherwise); ``V`` must equal ``config.n_vertices``.

    Examples
    --------
    >>> stack = QGarNetStack()
    >>> stack
    QGarNetStack(n_in=4, sublayers=((4, 8, 8), (4, 8, 8), (8, 16, 16)), n_vertices=128, reuse_factor=32, quantized=True, ternary=False)
    >>> [w.n_out for w in stack.garnet_weights()]
    [8, 8, 16]
    """

    def __init__(
        self,
        n_in: int = PAPER_N_IN,
        sublayers: Sequence[Sequence[int]] = PAPER_SUBLAYERS,
        config: GarNetFixedConfig | None = None,
        quantized: bool = True,
        ternary: bool = False,
        ternary_threshold: float = 0.7,
    ) -> None:
        super().__init__()
        config = config or GarNetFixedConfig()
        if config.collapse != "mean":
            raise ConfigError(
                f"QGarNetStack needs collapse='mean' (a stack of nnet_garnet.h), got "
                f"{config.collapse!r}"
            )
        if config.mean_by_nvert:
            raise ConfigError(
                "QGarNetStack normalises by V_max with shifts as the paper's firmware does; "
                "mean_by_nvert=True is not supported"
            )
        subs = tuple(tuple(int(v) for v in s) for s in sublayers)
        if not subs or any(len(s) != 3 or min(s) < 1 for s in subs):
            raise ConfigError(
                f"sublayers must be a non-empty list of (aggregators, F_LR, F_out) with "
                f"positive sizes, got {sublayers!r}"
            )
        if n_in < 1:
            raise ConfigError(f"n_in must be positive, got {n_in}")
        if not 0.0 <= ternary_threshold < 2.0:
            raise ConfigError(f"ternary_threshold must be in [0, 2), got {ternary_threshold}")
        self.n_in = int(n_in)
        self.sublayer_dims = subs
        self.config = config
        self.quantized = bool(quantized)
        self.ternary = bool(ternary)
        self.ternary_threshold = float(ternary_threshold)
        self.types = config.types()
        self.layers = nn.ModuleList()
        f_in = self.n_in
        for a, p, o in subs:
            layer = nn.Module()
            layer.flr_kernel = nn.Parameter(torch.empty(f_in, p))
            layer.flr_bias = nn.Parameter(torch.empty(p))
            layer.s_kernel = nn.Parameter(torch.empty(f_in, a))
            layer.s_bias = nn.Parameter(torch.empty(a))
            layer.fout_kernel = nn.Parameter(torch.empty(a * p, o))
            layer.fout_bias = nn.Parameter(torch.empty(o))
            self.layers.append(layer)
            f_in = o
        self.register_buffer(
            "table",
            torch.as_tensor(self.types["edge_weight_t"].to_float(edge_weight_table(config))),
            persistent=False,
        )
        self.reset_parameters()

    @property
    def n_out(self) -> int:
        """Output features (F_out of the last sublayer)."""
        return self.sublayer_dims[-1][2]

    def reset_parameters(self) -> None:
        """Glorot-uniform kernels and zero biases (Keras' defaults)."""
        for layer in self.layers:
            for name in ("flr_kernel", "s_kernel", "fout_kernel"):
                nn.init.xavier_uniform_(getattr(layer, name))
            for name in ("flr_bias", "s_bias", "fout_bias"):
                nn.init.zeros_(getattr(layer, name))

    def set_quantized(self, quantized: bool = True) -> QGarNetStack:
        """Switch between quantized (firmware) and float arithmetic; returns ``self``."""
        self.quantized = bool(quantized)
        return self

    def extra_repr(self) -> str:
        return (
            f"n_in={self.n_in}, sublayers={self.sublayer_dims}, "
            f"n_vertices={self.config.n_vertices}, reuse_factor={self.config.reuse_factor}, "
            f"quantized={self.quantized}, ternary={self.ternary}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # ------------------------------------------------------------------ weights
    def _kernels(self, layer: nn.Module) -> tuple[Tensor, Tensor]:
        if self.ternary and self.quantized:
            return (
                ternarize(layer.flr_kernel, self.ternary_threshold),
                ternarize(layer.fout_kernel, self.ternary_threshold),
            )
        return layer.flr_kernel, layer.fout_kernel

    def garnet_weights(self) -> list[GarNetWeights]:
        """Float32 weights of each sublayer as the firmware takes them (ternarized kernels
        if ``ternary``), for :func:`~calo.fpga.garnet.quantize_sublayers` and the export.

        Examples
        --------
        >>> QGarNetStack(sublayers=((2, 3, 5),)).garnet_weights()[0].fout_kernel.shape
        (6, 5)
        """
        out = []
        with torch.no_grad():
            for layer in self.layers:
                if self.ternary:
                    flr = ternarize(layer.flr_kernel, self.ternary_threshold)
                    fout = ternarize(layer.fout_kernel, self.ternary_threshold)
                else:
                    flr, fout = layer.flr_kernel, layer.fout_kernel

                def f32(t: Tensor) -> np.ndarray:
                    return t.detach().cpu().to(torch.float32).numpy().copy()

                out.append(
                    GarNetWeights(
                        flr_kernel=f32(flr),
                        flr_bias=f32(layer.flr_bias),
                        s_kernel=f32(layer.s_kernel),
                        s_bias=f32(layer.s_bias),
                        fout_kernel=f32(fout),
                        fout_bias=f32(layer.fout_bias),
                    )
                )
        return out

    def quantized_sublayers(self) -> list[QuantizedSublayer]:
        """The sublayers as hls4ml's converter quantizes them (what the firmware holds)."""
        return quantize_sublayers(self.garnet_weights(), self.config)

    def to_reference(self) -> FixedGarNet:
        """The numba reference :class:`~calo.fpga.reference.FixedGarNet` of these weights.

        In eval mode ``model(X, n)`` equals ``model.to_reference()(X, n).output`` bit for bit.
        """
        return FixedGarNet(self.quantized_sublayers(), self.config)

    # ------------------------------------------------------------------ forward
    def _check(self, X: Tensor, n: Tensor) -> None:
        V = self.config.n_vertices
        if X.ndim != 3 or X.shape[1] != V or X.shape[2] != self.n_in:
            raise DataError(f"inputs must have shape [B, {V}, {self.n_in}], got {tuple(X.shape)}")
        if n.shape != (X.shape[0],):
            raise DataError(f"n must have shape [{X.shape[0]}], got {tuple(n.shape)}")
        bad = torch.nonzero((n < 0) | (n > V))
        if bad.numel():
            i = int(bad[0, 0])
            raise DataError(
                f"number of hits {int(n[i])} outside 0..{V}; pad or truncate events to V_max",
                entry=i,
            )

    def forward(self, X: Tensor, n: Tensor) -> Tensor:
        """Stack output ``[B, F_out]`` for padded hits ``X [B, V, F_in]`` and counts ``n``."""
        n = torch.as_tensor(n).to(device=X.device)
        self._check(X, n)
        if self.quantized:
            return self._forward_fixed(X, n)
        return self._forward_float(X, n)

    def _forward_float(self, X: Tensor, n: Tensor) -> Tensor:
        subs = [
            (l.flr_kernel.T, l.flr_bias, l.s_kernel.T, l.s_bias, l.fout_kernel.T, l.fout_bias)
            for l in self.layers  # noqa: E741
        ]
        return simplified_garnet_stack(X.to(torch.float32), n, subs, "vmax", "mean", "gauss")

    def _quantized_weights(self, qsubs: list[QuantizedSublayer]) -> list[dict[str, Tensor]]:
        """Per sublayer: quantized weight values (float64) with straight-through gradients."""
        out = []
        for layer, q in zip(self.layers, qsubs, strict=True):
            dev = layer.flr_kernel.device
            flr, fout = self._kernels(layer)
            f64 = torch.float64
            w_in, b_in = contract(flr.to(f64), layer.flr_bias.to(f64), fout.to(f64))
            latent = {
                "w_d": layer.s_kernel.to(f64).T,
                "b_d": layer.s_bias.to(f64),
                "w_in": w_in,
                "b_in": b_in,
                "b_out": layer.fout_bias.to(f64),
            }
            vals = {}
            for name, lat in latent.items():
                qv = torch.as_tensor(q.values(name), dtype=f64, device=dev)
                vals[name] = qv if not lat.requires_grad else lat + (qv - lat).detach()
            out.append(vals)
        return out

    def _forward_fixed(self, X: Tensor, n: Tensor) -> Tensor:
        fl = self.config.data_flow()
        V, R, U = fl.V, fl.R, fl.U
        log2u, log2r, log2v = fl.log2u, fl.log2r, fl.log2v
        dist, ew, ewa, aggr, outt = fl.dist, fl.ew, fl.ewa, fl.aggr, fl.outt
        f64 = torch.float64
        B = X.shape[0]
        mask = (torch.arange(V, device=X.device)[None, :] < n[:, None]).to(f64)[..., None]
        table = self.table.to(X.device)
        dmask = (1 << dist.width) - 1
        h = fake_quantize(X.to(f64), fl.data_t(0)) * mask
        qsubs = self.quantized_sublayers()
        weights = self._quantized_weights(qsubs)
        nl = len(self.layers)
        for li, (q, w) in enumerate(zip(qsubs, weights, strict=True)):
            data_t = fl.data_t(li)
            wt = q.types
            A, F, O = q.n_aggregators, q.n_in, q.n_out  # noqa: E741
            # distance: d = distance_t(b_d); d = distance_t(d + distance_t(x_i W_d[a, i]))
            d = fake_quantize(w["b_d"], dist).expand(B, V, A)
            for i in range(F):
                inc = fake_quantize(h[:, :, i : i + 1] * w["w_d"][:, i], dist)
                d = fake_quantize(d + inc, dist)
            code = torch.round(d.detach() * 2.0**dist.frac).to(torch.int64) & dmask
            e = table[code]
            if d.requires_grad:
                g = torch.exp(-(d**2))
                e = e + (g - g.detach())
            e = e * mask  # [B, V, A]; hits v >= n are not summed
            # sums over groups of U hits, shifted by log2 U, accumulated over the R groups
            eg = e.reshape(B, R, U, A)
            locE = _accumulate(None, eg, 2, ewa, ew.frac)
            accE = _accumulate(None, _shr(locE, ewa.frac, log2u), 1, ewa, ewa.frac)
            wi = fake_quantize(h[:, :, None, :] * e[..., None], data_t)  # [B, V, A, F]
            locW = _accumulate(None, wi.reshape(B, R, U, A, F), 2, aggr, data_t.frac)
            accW = _accumulate(None, _shr(locW, aggr.frac, log2u), 1, aggr, aggr.frac)
            # normalise by V_max: >> log2 R (after >> log2 U above)
            ewm = fake_quantize(_shr(accE, ewa.frac, log2r), ew)  # [B, A]
            wfm = _shr(accW, aggr.frac, log2r)  # [B, A, F]
            # aggregator outputs (contracted input transform)
            ob = fake_quantize(ewm[:, None, :] * w["b_in"][None], aggr)  # [B, O, A]
            for i in range(F):
                ob = fake_quantize(ob + wfm[:, None, :, i] * w["w_in"][None, :, :, i], aggr)
            if li < nl - 1:
                start = fake_quantize(w["b_out"], outt).expand(B, V, O)
                inc = fake_quantize(e[:, :, None, :] * ob[:, None, :, :], outt)  # [B,V,O,A]
                h = _accumulate(start, inc, 3, outt, outt.frac) * mask
            else:
                bt = wt["b_out"]
                bout_a = fake_quantize(w["b_out"], aggr)
                bb = fake_quantize(bout_a[None, :] * n.to(f64)[:, None], aggr)
                bn = fake_quantize(_shr(bb, aggr.frac, log2v), bt)
                acc = fake_quantize(bn, outt)
                terms = ewm[:, None, :] * ob  # [B, O, A]
                h = _accumulate(acc, terms, 2, outt, ew.frac + aggr.frac)
        return h

    # ------------------------------------------------------------------ serialisation
    def hparams(self) -> dict[str, Any]:
        """Constructor arguments as plain data (for checkpoints).

        Examples
        --------
        >>> QGarNetStack().hparams()["config"]["n_vertices"]
        128
        """
        return {
            "n_in": self.n_in,
            "sublayers": [list(s) for s in self.sublayer_dims],
            "config": asdict(self.config),
            "quantized": self.quantized,
            "ternary": self.ternary,
            "ternary_threshold": self.ternary_threshold,
        }


@dataclass
class HeadFixedConfig:
    """hls4ml types of the Dense head of :class:`QGarNetModel` (the same for every layer).

    Each field is an hls4ml precision string (``ap_fixed<W,I[,Q,O]>``). hls4ml's own default,
    ``ap_fixed<16,6>`` (truncation, wrap-around) for everything (:data:`HLS4ML_DEFAULT_HEAD`),
    wraps on a trained e/pi head: its pre-activations and logits reach |x| ~ 60 > 32, and a
    wrapped logit flips the class (docs/fpga.md, "The whole model in hls4ml"). calo's defaults
    therefore give the sums 10 integer bits and saturate the results: weights and biases
    ``ap_fixed<16,6,AP_RND,AP_SAT>`` (rounded once, at conversion), accumulators
    ``ap_fixed<24,10>``, Dense outputs ``ap_fixed<18,8,AP_RND,AP_SAT>``, ReLU outputs
    ``ap_ufixed<17,7,AP_RND,AP_SAT>``; every product stays within one DSP (27 x 18 bits).

    Attributes
    ----------
    weight_t, bias_t:
        Types of the Dense weights and biases (``Precision: {weight, bias}`` of a Dense layer).
    accum_t:
        Type of every product and of the running sum (``Precision: {accum}``).
    result_t:
        Type of a Dense layer's output (``Precision: {result}``; the two outputs included).
    relu_t:
        Type of a ReLU's output (``Precision: {result}`` of the activation layer).

    Examples
    --------
    >>> str(HeadFixedConfig(accum_t="ap_fixed<24,8,AP_RND,AP_SAT>").types()["accum_t"])
    'ap_fixed<24,8,AP_RND,AP_SAT>'
    >>> HeadFixedConfig(relu_t="float")
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: invalid fixed-point type in HeadFixedConfig.relu_t: 'float' ...
    """

    weight_t: str = "ap_fixed<16,6,AP_RND,AP_SAT>"
    bias_t: str = "ap_fixed<16,6,AP_RND,AP_SAT>"
    accum_t: str = "ap_fixed<24,10>"
    result_t: str = "ap_fixed<18,8,AP_RND,AP_SAT>"
    relu_t: str = "ap_ufixed<17,7,AP_RND,AP_SAT>"

    def __post_init__(self) -> None:
        self.types()

    def types(self) -> dict[str, FixedType]:
        """The parsed types by field name."""
        out = {}
        for f in fields(self):
            text = getattr(self, f.name)
            try:
                out[f.name] = FixedType.parse(str(text))
            except Exception as err:
                raise ConfigError(
                    f"invalid fixed-point type in HeadFixedConfig.{f.name}: {text!r} ({err})"
                ) from None
        return out


#: hls4ml's default types for every head quantity (what a project gets unconfigured).
HLS4ML_DEFAULT_HEAD = HeadFixedConfig(*(["ap_fixed<16,6>"] * 5))


def dense_fixed(h: Tensor, weight: Tensor, bias: Tensor, types: dict[str, FixedType]) -> Tensor:
    """One Dense layer as hls4ml's ``nnet::dense_latency`` computes it, straight-through.

    ``h [B, n_in]`` holds exact values of the input type; ``weight [n_out, n_in]`` and
    ``bias [n_out]`` are float (PyTorch's layout). In the C++: ``mult[i, j] = accum_t(h[i]
    w[i, j])``, ``acc[j] = accum_t(b[j])``, then ``acc[j] += mult[i, j]`` for ``i = 0..n_in-1``
    (each sum assigned to ``accum_t``) and ``res[j] = result_t(acc[j])``; the weights and biases
    are the values of ``weight_t`` and ``bias_t`` the float ones are assigned to.

    Examples
    --------
    >>> import torch
    >>> t = HLS4ML_DEFAULT_HEAD.types()
    >>> h = torch.tensor([[1.5, -2.0]], dtype=torch.float64)
    >>> dense_fixed(h, torch.tensor([[0.1, 0.2]]), torch.tensor([0.3]), t).tolist()
    [[0.05078125]]
    """
    f64 = torch.float64
    acc_t = types["accum_t"]
    w = fake_quantize(weight.to(f64).T, types["weight_t"])  # [n_in, n_out]
    b = fake_quantize(bias.to(f64), types["bias_t"])
    mult = fake_quantize(h[:, :, None] * w[None], acc_t)  # [B, n_in, n_out]
    start = fake_quantize(b, acc_t).expand(h.shape[0], w.shape[1])
    acc = _accumulate(start, mult, 1, acc_t, acc_t.frac)
    return fake_quantize(acc, types["result_t"])


def relu_fixed(h: Tensor, t: FixedType) -> Tensor:
    """hls4ml's ``nnet::relu``: ``res = data > 0 ? data : 0`` assigned to ``t``."""
    return fake_quantize(torch.relu(h), t)


class QGarNetModel(nn.Module):
    """The FPGA paper's model: :class:`QGarNetStack` -> Dense(16, relu) -> Dense(8, relu) ->
    energy regression (1) and classification logit (1).

    In quantized mode (``stack.quantized``) with ``quantize_head`` the head computes in
    hls4ml's fixed point (:func:`dense_fixed`, :func:`relu_fixed`, types of
    :class:`HeadFixedConfig`), so that the whole model equals the compiled hls4ml project
    (:func:`calo.fpga.hls4ml_project.to_hls4ml`) bit for bit; gradients pass straight through.
    Otherwise the head runs in float32. The regression output predicts
    ``E / energy_scale`` (``energy_scale`` in GeV); :meth:`predict` returns GeV and the
    electron probability.

    Parameters
    ----------
    stack:
        The GarNetStack (default: the paper's, V_max 128, R 32).
    head:
        Widths of the hidden Dense layers (relu).
    energy_scale:
        GeV per unit of the regression output.
    quantize_head:
        Quantize the head together with the stack (default ``True``).
    head_fixed:
        Fixed-point types of the head (default :class:`HeadFixedConfig`).

    Examples
    --------
    >>> import torch
    >>> m = QGarNetModel(QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4)))
    >>> reg, logit = m(torch.zeros(2, 16, 4), torch.tensor([0, 3]))
    >>> reg.shape, logit.shape, reg.dtype
    (torch.Size([2]), torch.Size([2]), torch.float64)
    >>> m.head_quantized, m.set_quantized(False).head_quantized
    (True, False)
    """

    def __init__(
        self,
        stack: QGarNetStack | None = None,
        head: Sequence[int] = (16, 8),
        energy_scale: float = 100.0,
        quantize_head: bool = True,
        head_fixed: HeadFixedConfig | None = None,
    ) -> None:
        super().__init__()
        self.stack = stack or QGarNetStack()
        if not head or any(int(h) < 1 for h in head):
            raise ConfigError(f"head must list positive layer widths, got {head!r}")
        if not energy_scale > 0:
            raise ConfigError(f"energy_scale must be positive, got {energy_scale}")
        self.head_dims = tuple(int(h) for h in head)
        self.energy_scale = float(energy_scale)
        self.quantize_head = bool(quantize_head)
        self.head_fixed = head_fixed or HeadFixedConfig()
        self.head_types = self.head_fixed.types()
        layers: list[nn.Module] = []
        f = self.stack.n_out
        for width in self.head_dims:
            layers += [nn.Linear(f, width), nn.ReLU()]
            f = width
        self.head = nn.Sequential(*layers)
        self.regression = nn.Linear(f, 1)
        self.classification = nn.Linear(f, 1)

    @property
    def head_quantized(self) -> bool:
        """Whether the head computes in fixed point now (``quantize_head`` and quantized mode)."""
        return self.quantize_head and self.stack.quantized

    def set_quantized(self, quantized: bool = True) -> QGarNetModel:
        """Switch the stack (and with ``quantize_head`` the head) to fixed point; ``self``."""
        self.stack.set_quantized(quantized)
        return self

    def dense_layers(self) -> list[nn.Linear]:
        """The hidden Dense layers of the head, in order."""
        return [m for m in self.head if isinstance(m, nn.Linear)]

    def forward_head(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(regression [B], logit [B])`` from the stack output ``z [B, F_out]``."""
        if not self.head_quantized:
            z = self.head(z.to(torch.float32))
            return self.regression(z).squeeze(-1), self.classification(z).squeeze(-1)
        t = self.head_types
        h = z.to(torch.float64)
        for lin in self.dense_layers():
            h = relu_fixed(dense_fixed(h, lin.weight, lin.bias, t), t["relu_t"])
        outs = [dense_fixed(h, o.weight, o.bias, t) for o in (self.regression, self.classification)]
        return outs[0].squeeze(-1), outs[1].squeeze(-1)

    def forward(self, X: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """``(regression [B], classification logit [B])`` for padded hits and counts
        (float64 when the head is quantized, float32 otherwise)."""
        return self.forward_head(self.stack(X, n))

    @torch.no_grad()
    def predict(self, X: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """Energy in GeV and electron probability ``[B]`` each (no gradient)."""
        reg, logit = self(X, n)
        return reg * self.energy_scale, torch.sigmoid(logit)

    def extra_repr(self) -> str:
        return f"head={self.head_dims}, quantize_head={self.quantize_head}"

    def hparams(self) -> dict[str, Any]:
        """Constructor arguments as plain data (for checkpoints)."""
        return {
            "stack": self.stack.hparams(),
            "head": list(self.head_dims),
            "energy_scale": self.energy_scale,
            "quantize_head": self.quantize_head,
            "head_fixed": asdict(self.head_fixed),
        }

    @classmethod
    def from_hparams(cls, hp: dict[str, Any]) -> QGarNetModel:
        """Rebuild (untrained) from :meth:`hparams`; raises ConfigError when malformed.

        Hyperparameters written before the head was quantization-aware (no
        ``quantize_head``) give a float head, as the model was trained.

        Examples
        --------
        >>> m = QGarNetModel.from_hparams(QGarNetModel().hparams())
        >>> m.stack.config.n_vertices, m.head_dims, m.quantize_head
        (128, (16, 8), True)
        """
        try:
            s = dict(hp["stack"])
            cfg = GarNetFixedConfig(**dict(s["config"]))
            stack = QGarNetStack(
                n_in=int(s["n_in"]),
                sublayers=[tuple(x) for x in s["sublayers"]],
                config=cfg,
                quantized=bool(s["quantized"]),
                ternary=bool(s["ternary"]),
                ternary_threshold=float(s["ternary_threshold"]),
            )
            return cls(
                stack,
                head=hp["head"],
                energy_scale=float(hp["energy_scale"]),
                quantize_head=bool(hp.get("quantize_head", False)),
                head_fixed=HeadFixedConfig(**dict(hp.get("head_fixed", {}))),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"malformed QGarNetModel hyperparameters: {err!r}") from None
