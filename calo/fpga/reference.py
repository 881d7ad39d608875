"""Bit-exact numba reference of hls4ml's ``nnet_garnet.h`` (GarNet layer and GarNetStack).

:class:`FixedGarNet` runs a batch of padded events ``X [B, V, F_in]`` with ``n [B]`` valid hits
through the integer data flow of the firmware, cast by cast. Per sublayer and hit ``v < n``
(types of :class:`~calo.fpga.garnet.GarNetFixedConfig`; ``U = V/R`` hits per pipeline step)::

    d[a]      = distance_t(b_d[a]);  d[a] = distance_t(d[a] + distance_t(x[v, i] W_d[a, i]))  (i = 0..F-1)
    w[v, a]   = table[raw bits of d[a]]                                   (edge_weight_t)
    locE[a]  += w[v, a]                                                   (edge_weight_aggr_t)
    locW[a,i]+= data_t(x[v, i] w[v, a])                                   (aggr_t)
    every U hits: accE[a] += locE[a] >> log2 U;  accW[a,i] += locW[a,i] >> log2 U
    ewm[a]    = edge_weight_t(accE[a] >> log2 R);  wfm[a,i] = accW[a,i] >> log2 R
    aggr[o,a] = aggr_t(ewm[a] b_in[o,a]);  aggr[o,a] = aggr_t(aggr[o,a] + wfm[a,i] W_in[o,a,i])
    per hit:  y[v,o] = output_t(b_out[o]);  y[v,o] = output_t(y[v,o] + output_t(w[v,a] aggr[o,a]))
    collapse: y[o] = output_t(b_out_t(aggr_t(aggr_t(b_out[o]) n) >> log2 V))
              y[o] = output_t(y[o] + ewm[a] aggr[o,a])

with products and sums exact before each cast. In a stack the per-hit ``y`` of sublayer L
(``output_t``) is the input of sublayer L+1. With ``mean_by_nvert`` the ``>> log2 R`` becomes a
multiplication by ``norm_t((V/R)/n)``, an integer division in the header (0 for n > V/R).

Every cast counts how often its value fell outside the target type (saturated or wrapped,
per sublayer and quantity, see :data:`~calo.fpga.overflow.QUANTITIES`) and can record the range
of values seen, from which :meth:`~calo.fpga.overflow.OverflowReport.suggest_types` proposes
integer widths.

Two generated numba kernels share the work. The exact kernel applies every cast as written
above, with its overflow handling and counts. The fast kernel runs the same integer
expressions without overflow handling, vectorised over hits (a group's ``U`` hits are laid
out ``S`` positions apart, ``S`` a multiple of the SIMD width, so group sums are vector adds),
in int32 when interval arithmetic over the types and the actual weights shows that no
intermediate needs more; a cast that the intervals cannot prove safe sets a flag when its
value leaves the type. As long as no cast overflows, both kernels compute the same numbers,
so every flagged event (typically a few per ten thousand) is recomputed by the exact kernel
and the results and overflow counts are those of the exact kernel alone.

Examples
--------
>>> import numpy as np
>>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
>>> rng = np.random.default_rng(0)
>>> ws = [GarNetWeights.random(rng, 4, 4, 8, 8)]
>>> model = FixedGarNet(ws, GarNetFixedConfig(n_vertices=16, reuse_factor=4))
>>> X = rng.normal(0, 0.5, size=(3, 16, 4)); n = np.array([16, 5, 9])
>>> res = model(X, n)
>>> res.output.shape, res.overflow.total() >= 0
((3, 8), True)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from calo.errors import ConfigError, DataError
from calo.fpga._codegen import compile_kernel
from calo.fpga._exact_kernel import generate_exact
from calo.fpga._fast_kernel import generate_fast
from calo.fpga.fixed import FixedType, cast, quantize
from calo.fpga.garnet import (
    GarNetFixedConfig,
    GarNetWeights,
    QuantizedSublayer,
    edge_weight_table,
    quantize_sublayers,
)
from calo.fpga.overflow import QUANTITIES, OverflowReport

__all__ = [
    "FixedGarNet",
    "FixedResult",
    "MeanByNvertWarning",
    "garnet_float",
]

_I64_MAX = np.iinfo(np.int64).max
_I64_MIN = np.iinfo(np.int64).min


class MeanByNvertWarning(UserWarning):
    """hls4ml's mean_by_nvert divides integers: the mean is 0 for n > V/R.

    Issued by :class:`FixedGarNet` for ``mean_by_nvert=True`` with the default
    ``nvert_division="integer"``.

    Examples
    --------
    >>> import warnings, numpy as np
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> w = GarNetWeights.random(np.random.default_rng(0), 4, 4, 8, 8)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", MeanByNvertWarning)
    ...     FixedGarNet([w], GarNetFixedConfig(n_vertices=16, reuse_factor=4, mean_by_nvert=True))
    Traceback (most recent call last):
    ...
    calo.fpga.reference.MeanByNvertWarning: mean_by_nvert as in nnet_garnet.h computes (V/R)/n = 4/n in integers: the means are 0 for n > 4. Use nvert_division='fixed' for the intended arithmetic.
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", MeanByNvertWarning)
    ...     cfg = GarNetFixedConfig(n_vertices=16, reuse_factor=4, mean_by_nvert=True,
    ...                             nvert_division="fixed")
    ...     FixedGarNet([w], cfg).config.nvert_division
    'fixed'
    """


@dataclass
class FixedResult:
    """Output of :class:`FixedGarNet`.

    Attributes
    ----------
    output_raw:
        Raw ``output_t`` integers, ``[B, O]`` (collapse mean) or ``[B, V, O]`` (per hit,
        zero for padded hits).
    output:
        The same as floats.
    overflow:
        The :class:`OverflowReport` of the run.

    Examples
    --------
    >>> import numpy as np
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> rng = np.random.default_rng(0)
    >>> model = FixedGarNet([GarNetWeights.random(rng, 4, 4, 8, 8)],
    ...                     GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> res = model(rng.normal(0, 0.5, size=(2, 16, 4)), np.array([16, 3]))
    >>> res.output_raw.shape, res.output_raw.dtype, str(model.types["output_t"])
    ((2, 8), dtype('int64'), 'ap_fixed<16,6>')
    >>> bool((res.output == res.output_raw / 2**10).all()), res.overflow.total()
    (True, 0)
    """

    output_raw: NDArray[np.int64]
    output: NDArray[np.float64]
    overflow: OverflowReport


# ---------------------------------------------------------------------- the model
class FixedGarNet:
    """Integer emulation of hls4ml's GarNet (one layer) or GarNetStack (several sublayers).

    Parameters
    ----------
    weights:
        Float weights of the layer, or a sequence of sublayers (a stack), or already
        quantized sublayers (:class:`~calo.fpga.garnet.QuantizedSublayer`).
    config:
        Sizes, reuse factor and types.

    Raises
    ------
    ConfigError
        For a stack without collapse (nnet_garnet.h's garnet_stack needs per-hit edge
        weights of the last sublayer that it never stores), or products wider than 62 bits.

    Examples
    --------
    >>> import numpy as np
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> rng = np.random.default_rng(1)
    >>> dims = [(4, 4, 8, 8), (8, 4, 8, 8), (8, 8, 16, 16)]  # (F_in, A, F_LR, F_out)
    >>> stack = FixedGarNet([GarNetWeights.random(rng, *d) for d in dims], GarNetFixedConfig())
    >>> stack(rng.normal(0, 0.3, (2, 128, 4)), np.array([40, 128])).output.shape
    (2, 16)
    """

    def __init__(
        self,
        weights: GarNetWeights | Sequence[GarNetWeights] | Sequence[QuantizedSublayer],
        config: GarNetFixedConfig,
    ) -> None:
        if isinstance(weights, GarNetWeights | QuantizedSublayer):
            weights = [weights]
        weights = list(weights)
        if weights and all(isinstance(w, QuantizedSublayer) for w in weights):
            self.sublayers: list[QuantizedSublayer] = weights  # type: ignore[assignment]
        else:
            self.sublayers = quantize_sublayers(weights, config)  # type: ignore[arg-type]
        self.config = config
        self.types = config.types()
        if len(self.sublayers) > 1 and config.collapse != "mean":
            raise ConfigError(
                "a GarNetStack needs collapse='mean': nnet_garnet.h's garnet_stack without "
                "collapse reads per-hit edge weights the last sublayer does not keep"
            )
        if config.mean_by_nvert and config.nvert_division == "integer":
            warnings.warn(
                f"mean_by_nvert as in nnet_garnet.h computes (V/R)/n = "
                f"{config.n_vertices // config.reuse_factor}/n in integers: the means are 0 "
                f"for n > {config.n_vertices // config.reuse_factor}. Use "
                "nvert_division='fixed' for the intended arithmetic.",
                MeanByNvertWarning,
                stacklevel=2,
            )
        for li, s in enumerate(self.sublayers):
            widths = [
                self.types["aggr_t"].width + s.types["w_in"].width,
                self.types["edge_weight_t"].width + self.types["aggr_t"].width,
                (self.types["input_t"] if li == 0 else self.types["output_t"]).width
                + s.types["w_d"].width,
            ]
            if max(widths) > 62:
                raise ConfigError(f"sublayer {li}: products wider than 62 bits are not supported")
        self.table = edge_weight_table(config)
        self._static = self._static_casts()
        self._kernels: dict[bool, numba.core.registry.CPUDispatcher] = {}
        self._fast_kernel: tuple[numba.core.registry.CPUDispatcher, list[object]] | None = None
        #: Events of the last :meth:`run_raw` that went through the exact (checking) kernel.
        self.last_exact_events = 0

    @property
    def n_in(self) -> int:
        """Input features of the first sublayer."""
        return self.sublayers[0].n_in

    @property
    def n_out(self) -> int:
        """Output features of the last sublayer."""
        return self.sublayers[-1].n_out

    def quantity_types(self, li: int) -> dict[str, FixedType]:
        """The type each quantity of sublayer ``li`` is cast to."""
        data_t = self.types["input_t"] if li == 0 else self.types["output_t"]
        out = {}
        for name, tname in QUANTITIES:
            if tname == "data_t":
                out[name] = data_t
            elif tname == "b_out":
                out[name] = self.sublayers[li].types["b_out"]
            else:
                out[name] = self.types[tname]
        return out

    def _static_casts(self) -> dict[str, object]:
        """Cast the constant biases once; note how often the firmware performs each cast.

        ``out["overflow"]`` maps ``L<l>.<cast>`` to ``(overflowing entries, per)`` with
        ``per`` = ``"hit"`` (performed for every valid hit) or ``"event"`` (once per event),
        and holds only the casts ``nnet_garnet.h`` performs:

        - ``distance_bias``: ``distance_t distance = aggregator_distance_biases[ia]`` opens
          every hit's distance (``compute_weights_aggregates``), in every sublayer: per hit;
        - ``output_bias_cast`` (bias to ``output_t``): ``res_t acc = output_transform_biases[io]``
          opens every per-hit output (``compute_vertex_output``: a per-hit layer, or a stack
          sublayer whose outputs feed the next one): per hit; a collapsed last layer with
          ``mean_by_nvert`` starts its mean from the bias as it is (``set_output``): per
          event; without ``mean_by_nvert`` the collapse never casts the bias to ``output_t``;
        - ``output_bias_aggr`` (bias to ``aggr_t``): only ``OutputBiasNormalizer`` of a
          collapsed last layer without ``mean_by_nvert`` (``aggr_t bias = ...; bias *= nvtx``):
          per event.
        """
        out: dict[str, object] = {"overflow": {}}
        collapse = self.config.collapse == "mean"
        for li, s in enumerate(self.sublayers):
            bd, f1 = cast(s.b_d, s.types["b_d"], self.types["distance_t"], return_overflow=True)
            br, f2 = cast(s.b_out, s.types["b_out"], self.types["output_t"], return_overflow=True)
            ba, f3 = cast(s.b_out, s.types["b_out"], self.types["aggr_t"], return_overflow=True)
            out[f"BD{li}"], out[f"BOUTR{li}"], out[f"BOUTA{li}"] = bd, br, ba
            ovf = out["overflow"]
            ovf[f"L{li}.distance_bias"] = (int(f1.sum()), "hit")
            collapsed = collapse and li == len(self.sublayers) - 1
            if not collapsed:
                ovf[f"L{li}.output_bias_cast"] = (int(f2.sum()), "hit")
            elif self.config.mean_by_nvert:
                ovf[f"L{li}.output_bias_cast"] = (int(f2.sum()), "event")
            else:
                ovf[f"L{li}.output_bias_aggr"] = (int(f3.sum()), "event")
        return out

    def static_overflows(self, n: ArrayLike) -> dict[str, int]:
        """Overflows of the constant casts for events with hit counts ``n``, counted as often
        as the firmware performs each cast (see :meth:`_static_casts`).

        Examples
        --------
        >>> import numpy as np
        >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
        >>> w = GarNetWeights.random(np.random.default_rng(0), 4, 4, 8, 8)
        >>> w.s_bias[:] = [9.0, 0.0, -9.0, 0.0]  # two distance biases outside distance_t
        >>> m = FixedGarNet([w], GarNetFixedConfig(n_vertices=16, reuse_factor=4))
        >>> m.static_overflows([3, 0, 16])  # 2 overflowing casts for each of 19 hits
        {'L0.distance_bias': 38, 'L0.output_bias_aggr': 0}
        """
        nn = np.asarray(n, dtype=np.int64)
        hits, events = int(nn.sum()), int(nn.size)
        return {
            k: c * (hits if per == "hit" else events)
            for k, (c, per) in self._static["overflow"].items()
        }

    def source(self, track_ranges: bool = False) -> str:
        """Python source of the generated numba kernel (for inspection)."""
        return generate_exact(self, track_ranges)

    def _kernel(self, track: bool) -> numba.core.registry.CPUDispatcher:
        if track not in self._kernels:
            self._kernels[track] = compile_kernel(generate_exact(self, track))
        return self._kernels[track]

    def fast_source(self) -> str:
        """Python source of the generated fast kernel (for inspection)."""
        src, mx = generate_fast(self, "np.int32")
        return src if mx < 2**31 - 1 else generate_fast(self, "np.int64")[0]

    def _fast(self) -> tuple[numba.core.registry.CPUDispatcher, list[object]]:
        if self._fast_kernel is None:
            src = self.fast_source()
            ity = np.int32 if "np.int32(" in src else np.int64

            def arr(a: NDArray[np.int64]) -> NDArray[np.integer]:
                return np.ascontiguousarray(a, dtype=ity)

            args: list[object] = [arr(self.table)]
            for li, s in enumerate(self.sublayers):
                st = self._static
                args += [
                    arr(s.w_d),
                    arr(st[f"BD{li}"]),
                    arr(s.w_in.transpose(1, 2, 0)),
                    arr(s.b_in.T),
                    arr(st[f"BOUTR{li}"]),
                    arr(st[f"BOUTA{li}"]),
                ]
            self._fast_kernel = (compile_kernel(src, "fast"), args)
        return self._fast_kernel

    def quantize_inputs(self, X: ArrayLike) -> NDArray[np.int64]:
        """Raw ``input_t`` integers of float inputs ``X [B, V, F_in]``."""
        return quantize(np.asarray(X, dtype=np.float64), self.types["input_t"])

    def _check(self, X: NDArray[np.int64], n: NDArray[np.int64]) -> None:
        cfg = self.config
        if X.ndim != 3 or X.shape[1] != cfg.n_vertices or X.shape[2] != self.n_in:
            raise DataError(
                f"inputs must have shape [B, {cfg.n_vertices}, {self.n_in}], got {X.shape}"
            )
        if n.shape != (X.shape[0],):
            raise DataError(f"n must have shape [{X.shape[0]}], got {n.shape}")
        bad = np.nonzero((n < 0) | (n > cfg.n_vertices))[0]
        if bad.size:
            raise DataError(
                f"number of hits {int(n[bad[0]])} outside 0..{cfg.n_vertices} "
                f"({bad.size} event(s)); pad or truncate events to n_vertices",
                entry=int(bad[0]),
            )
        if cfg.mean_by_nvert:
            zero = np.nonzero(n == 0)[0]
            if zero.size:
                raise DataError(
                    "an event with n = 0 hits divides by zero with mean_by_nvert",
                    entry=int(zero[0]),
                )
        t = self.types["input_t"]
        lo = -t.max_raw if (t.signed and t.overflow == "SAT_SYM") else t.min_raw
        out = np.nonzero(((X < lo) | (X > t.max_raw)).any(axis=(1, 2)))[0]
        if out.size:
            raise DataError(
                f"raw inputs outside the range of {t} ({out.size} event(s)); "
                "quantize float inputs with quantize_inputs()",
                entry=int(out[0]),
            )

    def run_raw(
        self, X_raw: ArrayLike, n: ArrayLike, track_ranges: bool = False, exact: bool = False
    ) -> tuple[NDArray[np.int64], OverflowReport]:
        """Run on raw ``input_t`` integers ``X_raw [B, V, F_in]`` and hit counts ``n [B]``.

        Returns the raw output (``[B, O]`` or ``[B, V, O]``) and the overflow report.

        Events first go through a fast kernel (vectorised over hits, no overflow handling)
        that flags every event in which some cast could have left its type; flagged events,
        and all events when ``track_ranges`` or ``exact`` is set, are computed by the exact
        kernel, which applies and counts every saturation and wrap. Both give the same bits.
        """
        X = np.ascontiguousarray(X_raw, dtype=np.int64)
        nn = np.ascontiguousarray(n, dtype=np.int64)
        self._check(X, nn)
        nl = len(self.sublayers)
        nq = len(QUANTITIES)
        if self.config.collapse == "mean":
            out = np.zeros((X.shape[0], self.n_out), np.int64)
        else:
            out = np.zeros((X.shape[0], self.config.n_vertices, self.n_out), np.int64)
        cnt = np.zeros((nl, nq), np.int64)
        mx = np.full((nl, nq), _I64_MIN, np.int64)
        mn = np.full((nl, nq), _I64_MAX, np.int64)
        args: list[object] = [X, nn, out, cnt, mx, mn, self.table]
        for li, s in enumerate(self.sublayers):
            st = self._static
            args += [s.w_d, st[f"BD{li}"], s.w_in, s.b_in, st[f"BOUTR{li}"], st[f"BOUTA{li}"]]
        if track_ranges or exact:
            idx = np.arange(X.shape[0], dtype=np.int64)
        else:
            fast, fargs = self._fast()
            flag = np.zeros(X.shape[0], np.uint8)
            fast(X, nn, out, flag, *fargs)
            idx = np.flatnonzero(flag).astype(np.int64)
        self.last_exact_events = int(idx.size)
        if idx.size:
            self._kernel(track_ranges)(X, nn, idx, *args[2:])
        vmin = np.full((nl, nq), np.nan)
        vmax = np.full((nl, nq), np.nan)
        qtypes = [self.quantity_types(li) for li in range(nl)]
        if track_ranges:
            for li in range(nl):
                for qi, (name, _) in enumerate(QUANTITIES):
                    if mx[li, qi] >= mn[li, qi]:
                        f = qtypes[li][name].frac
                        vmin[li, qi] = np.ldexp(float(mn[li, qi]), -f)
                        vmax[li, qi] = np.ldexp(float(mx[li, qi]), -f)
        static = self.static_overflows(nn)
        return out, OverflowReport(cnt, static, vmin, vmax, qtypes)

    def __call__(
        self, X: ArrayLike, n: ArrayLike, raw: bool = False, track_ranges: bool = False
    ) -> FixedResult:
        """Run on float (``raw=False``, quantized to ``input_t`` first) or raw inputs."""
        Xr = np.asarray(X) if raw else self.quantize_inputs(X)
        out, rep = self.run_raw(Xr, n, track_ranges=track_ranges)
        return FixedResult(out, self.types["output_t"].to_float(out), rep)


# ---------------------------------------------------------------------- float reference
def garnet_float(
    weights: GarNetWeights | Sequence[GarNetWeights],
    X: ArrayLike,
    n: ArrayLike,
    collapse: str = "mean",
    mean_by_nvert: bool = False,
) -> NDArray[np.float64]:
    """Float64 simplified GarNet (layer or stack) on padded inputs ``X [B, V, F_in]``: the
    float maths of :func:`calo.nn.garnet.simplified_garnet_stack` (``exp(-d^2)``, means over
    V_max unless ``mean_by_nvert``) on the Keras-layout weights the firmware is made from.
    Returns ``[B, O]`` (collapse mean) or ``[B, V, O]``.

    Examples
    --------
    >>> import numpy as np
    >>> w = GarNetWeights.random(np.random.default_rng(0), 2, 2, 3, 1)
    >>> garnet_float(w, np.zeros((1, 4, 2)), [0]).shape
    (1, 1)
    """
    import torch

    from calo.nn.garnet import simplified_garnet_stack

    ws = [weights] if isinstance(weights, GarNetWeights) else list(weights)
    subs = [
        [
            torch.as_tensor(np.asarray(a, dtype=np.float64))
            for a in (
                w.flr_kernel.T,
                w.flr_bias,
                w.s_kernel.T,
                w.s_bias,
                w.fout_kernel.T,
                w.fout_bias,
            )
        ]
        for w in ws
    ]
    x = torch.as_tensor(np.asarray(X, dtype=np.float64))
    nn = torch.as_tensor(np.asarray(n), dtype=torch.long)
    with torch.no_grad():
        y = simplified_garnet_stack(
            x,
            nn,
            subs,
            mean_by="n" if mean_by_nvert else "vmax",
            collapse="mean" if collapse == "mean" else None,
        )
    return y.numpy()
