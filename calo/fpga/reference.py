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
per sublayer and quantity, see :data:`QUANTITIES`) and can record the range of values seen,
from which :meth:`OverflowReport.suggest_types` proposes integer widths.

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

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from calo.errors import ConfigError, DataError
from calo.fpga.fixed import FixedType, cast, quantize
from calo.fpga.garnet import (
    GarNetFixedConfig,
    GarNetWeights,
    QuantizedSublayer,
    edge_weight_table,
    quantize_sublayers,
)

__all__ = [
    "QUANTITIES",
    "FixedGarNet",
    "FixedResult",
    "MeanByNvertWarning",
    "OverflowReport",
    "garnet_float",
]

#: Quantities whose overflows are counted, with the type each one is cast to.
QUANTITIES: tuple[tuple[str, str], ...] = (
    ("distance", "distance_t"),
    ("edge_weight_sum", "edge_weight_aggr_t"),
    ("edge_weight_mean", "edge_weight_t"),
    ("weighted_input", "data_t"),
    ("feature_sum", "aggr_t"),
    ("aggregate", "aggr_t"),
    ("output", "output_t"),
    ("output_bias_scaled", "aggr_t"),
    ("output_bias", "b_out"),
    ("norm", "norm_t"),
)
_Q = {name: i for i, (name, _) in enumerate(QUANTITIES)}
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


# ---------------------------------------------------------------------- report
@dataclass
class OverflowReport:
    """Overflow counts and value ranges of one run, per sublayer and quantity.

    Attributes
    ----------
    counts:
        ``[L, Q]`` number of casts whose value was outside the target type (saturated,
        zeroed or wrapped according to the type's mode).
    static:
        Overflows of constant casts (weights assigned to the distance/output types), by name.
    vmin, vmax:
        ``[L, Q]`` smallest / largest value (float) before overflow handling, NaN when the
        quantity was not reached or ranges were not tracked.
    types:
        ``[L]`` dicts quantity -> FixedType it is cast to.

    Examples
    --------
    >>> import numpy as np
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> rng = np.random.default_rng(3)
    >>> model = FixedGarNet([GarNetWeights.random(rng, 4, 4, 8, 8)],
    ...                     GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> X_big = rng.normal(0, 8, size=(2, 16, 4))  # too large for the distance type
    >>> rep = model(X_big, np.full(2, 16), track_ranges=True).overflow
    >>> rep.total(), rep.as_dict(), rep.counts.shape
    (73, {'L0.distance': 72, 'L0.feature_sum': 1}, (1, 10))
    >>> print(rep)
    L0.distance: 72, L0.feature_sum: 1
    >>> X_small = rng.normal(0, 0.5, size=(2, 16, 4))
    >>> print(model(X_small, np.full(2, 16), track_ranges=True).overflow)
    no overflow
    """

    counts: NDArray[np.int64]
    static: dict[str, int]
    vmin: NDArray[np.float64]
    vmax: NDArray[np.float64]
    types: list[dict[str, FixedType]]

    def total(self) -> int:
        """All overflows of the run."""
        return int(self.counts.sum()) + sum(self.static.values())

    def as_dict(self) -> dict[str, int]:
        """Non-zero counts as ``{"L<l>.<quantity>": count}`` plus static ones."""
        out = {}
        for li in range(self.counts.shape[0]):
            for qi, (name, _) in enumerate(QUANTITIES):
                if self.counts[li, qi]:
                    out[f"L{li}.{name}"] = int(self.counts[li, qi])
        out.update({k: v for k, v in self.static.items() if v})
        return out

    def __str__(self) -> str:
        d = self.as_dict()
        if not d:
            return "no overflow"
        return ", ".join(f"{k}: {v}" for k, v in d.items())

    def suggest_types(self, margin_bits: int = 1) -> list[dict[str, FixedType]]:
        """Per sublayer and quantity: the current type with enough integer bits for the range
        seen (plus ``margin_bits``), fractional bits and modes unchanged.

        Quantities never reached are left out. Needs a run with ``track_ranges=True``.

        Examples
        --------
        >>> import numpy as np
        >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
        >>> rng = np.random.default_rng(3)
        >>> m = FixedGarNet([GarNetWeights.random(rng, 4, 4, 8, 8)],
        ...                 GarNetFixedConfig(n_vertices=16, reuse_factor=4))
        >>> rep = m(rng.normal(size=(4, 16, 4)), np.full(4, 16), track_ranges=True).overflow
        >>> "aggregate" in rep.suggest_types()[0]
        True
        """
        if np.isnan(self.vmax).all():
            raise ConfigError("no value ranges recorded: run the model with track_ranges=True")
        out = []
        for li, types in enumerate(self.types):
            sugg = {}
            for qi, (name, _) in enumerate(QUANTITIES):
                lo, hi = self.vmin[li, qi], self.vmax[li, qi]
                if np.isnan(lo) or name not in types:
                    continue
                t = types[name]
                mag = max(abs(lo), abs(hi), t.lsb)
                need = int(np.ceil(np.log2(mag + t.lsb)))
                if t.signed:
                    need += 1
                integer = max(need, 1 if t.signed else 0) + margin_bits
                width = integer + t.frac
                if width > 32:
                    raise ConfigError(
                        f"L{li}.{name} would need {width} bits (range {lo}..{hi}); "
                        "reduce the fractional bits"
                    )
                sugg[name] = t.replace(width=width, integer=integer)
            out.append(sugg)
        return out


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


# ---------------------------------------------------------------------- code generation
class _Gen:
    """Writes the source of a numba kernel specialised to one configuration."""

    def __init__(self, track: bool) -> None:
        self.lines: list[str] = []
        self.track = track

    def emit(self, ind: int, text: str) -> None:
        self.lines.append("    " * ind + text)

    def cast(self, ind: int, dst: str, expr: str, sh: int, t: FixedType, li: int, q: str) -> None:
        """``dst = t(expr)`` where ``expr`` has ``sh`` more fractional bits than ``t``."""
        w, _f, signed, qm, om = t.code
        if sh > 0:
            if qm == 0:
                self.emit(ind, f"{dst} = ({expr}) >> {sh}")
            else:
                half = 1 << (sh - 1)
                cond = {
                    1: "(_r != 0 and _v < 0)",
                    2: f"_r >= {half}",
                    3: f"(_r > {half} or (_r == {half} and _v < 0))",
                    4: f"_r > {half}",
                    5: f"(_r > {half} or (_r == {half} and _v >= 0))",
                    6: f"(_r > {half} or (_r == {half} and (_f & 1) == 1))",
                }[qm]
                self.emit(ind, f"_v = {expr}")
                self.emit(ind, f"_f = _v >> {sh}")
                self.emit(ind, f"_r = _v - (_f << {sh})")
                self.emit(ind, f"{dst} = (_f + 1) if {cond} else _f")
        elif sh < 0:
            self.emit(ind, f"{dst} = ({expr}) << {-sh}")
        else:
            self.emit(ind, f"{dst} = {expr}")
        if signed:
            hi = (1 << (w - 1)) - 1
            lo = -hi if om == 3 else -hi - 1
        else:
            hi, lo = (1 << w) - 1, 0
        qi = _Q[q]
        if self.track:
            self.emit(ind, f"if {dst} > MX[{li}, {qi}]: MX[{li}, {qi}] = {dst}")
            self.emit(ind, f"if {dst} < MN[{li}, {qi}]: MN[{li}, {qi}] = {dst}")
        self.emit(ind, f"if {dst} < {lo} or {dst} > {hi}:")
        self.emit(ind + 1, f"CNT[{li}, {qi}] += 1")
        if om == 0:
            wlo = -(1 << (w - 1)) if signed else 0
            self.emit(ind + 1, f"{dst} = (({dst} - ({wlo})) & {(1 << w) - 1}) + ({wlo})")
        elif om == 2:
            self.emit(ind + 1, f"{dst} = 0")
        else:
            self.emit(ind + 1, f"{dst} = {lo} if {dst} < {lo} else {hi}")

    def add_cast(
        self, ind: int, dst: str, a: str, fa: int, b: str, fb: int, t: FixedType, li: int, q: str
    ) -> None:
        """``dst = t(a + b)`` with ``a``, ``b`` raw at ``fa``, ``fb`` fractional bits."""
        f = max(fa, fb)
        ea = a if f == fa else f"({a} << {f - fa})"
        eb = b if f == fb else f"({b} << {f - fb})"
        self.cast(ind, dst, f"{ea} + {eb}", f - t.frac, t, li, q)


def _generate(model: FixedGarNet, track: bool) -> str:
    cfg = model.config
    ty = model.types
    V, U = cfg.n_vertices, cfg.n_vertices // cfg.reuse_factor
    log2u, log2r, log2v = (
        cfg.n_vertices_width - cfg.log2_reuse,
        cfg.log2_reuse,
        cfg.n_vertices_width,
    )
    dist, ew, ewa, aggr, norm, outt = (
        ty["distance_t"],
        ty["edge_weight_t"],
        ty["edge_weight_aggr_t"],
        ty["aggr_t"],
        ty["norm_t"],
        ty["output_t"],
    )
    subs = model.sublayers
    nl = len(subs)
    collapse = cfg.collapse == "mean"
    g = _Gen(track)
    args = ["X", "N", "IDX", "OUT", "CNT", "MX", "MN", "TABLE"]
    for li in range(nl):
        args += [f"WD{li}", f"BD{li}", f"WIN{li}", f"BIN{li}", f"BOUTR{li}", f"BOUTA{li}"]
    g.emit(0, f"def kernel({', '.join(args)}):")
    g.emit(1, "B = X.shape[0]")
    for li, s in enumerate(subs):
        A, F, O = s.n_aggregators, s.n_in, s.n_out  # noqa: E741
        g.emit(1, f"locE{li} = np.zeros({A}, np.int64); accE{li} = np.zeros({A}, np.int64)")
        g.emit(1, f"locW{li} = np.zeros(({A}, {F}), np.int64)")
        g.emit(1, f"accW{li} = np.zeros(({A}, {F}), np.int64)")
        g.emit(1, f"ewm{li} = np.zeros({A}, np.int64); wfm{li} = np.zeros(({A}, {F}), np.int64)")
        g.emit(1, f"OB{li} = np.zeros(({O}, {A}), np.int64)")
        g.emit(1, f"EW{li} = np.zeros(({V}, {A}), np.int64)")
        if li > 0:
            g.emit(1, f"H{li} = np.zeros(({V}, {F}), np.int64)")
    g.emit(1, "for bi in range(IDX.shape[0]):")
    g.emit(2, "b = IDX[bi]")
    g.emit(2, "nv = N[b]")
    for li, s in enumerate(subs):
        A, F, O = s.n_aggregators, s.n_in, s.n_out  # noqa: E741
        wt = s.types
        data_t = ty["input_t"] if li == 0 else outt
        src = "X[b, v, i]" if li == 0 else f"H{li}[v, i]"
        fd = data_t.frac
        last = li == nl - 1
        store = not (last and collapse)
        # ---- aggregate
        g.emit(2, f"for a in range({A}):")
        g.emit(3, f"accE{li}[a] = 0")
        g.emit(3, f"for i in range({F}):")
        g.emit(4, f"accW{li}[a, i] = 0")
        g.emit(2, f"for gg in range((nv + {U - 1}) // {U}):")
        g.emit(3, f"for a in range({A}):")
        g.emit(4, f"locE{li}[a] = 0")
        g.emit(4, f"for i in range({F}):")
        g.emit(5, f"locW{li}[a, i] = 0")
        g.emit(3, f"for v in range(gg * {U}, min(nv, gg * {U} + {U})):")
        g.emit(4, f"for a in range({A}):")
        g.emit(5, f"d = BD{li}[a]")
        g.emit(5, f"for i in range({F}):")
        g.cast(
            6, "inc", f"{src} * WD{li}[a, i]", fd + wt["w_d"].frac - dist.frac, dist, li, "distance"
        )
        g.cast(6, "d", "d + inc", 0, dist, li, "distance")
        g.emit(5, f"w = TABLE[d & {(1 << dist.width) - 1}]")
        if store:
            g.emit(5, f"EW{li}[v, a] = w")
        g.add_cast(5, "t", f"locE{li}[a]", ewa.frac, "w", ew.frac, ewa, li, "edge_weight_sum")
        g.emit(5, f"locE{li}[a] = t")
        g.emit(5, f"for i in range({F}):")
        g.cast(6, "inc", f"{src} * w", ew.frac, data_t, li, "weighted_input")
        g.add_cast(6, "t", f"locW{li}[a, i]", aggr.frac, "inc", fd, aggr, li, "feature_sum")
        g.emit(6, f"locW{li}[a, i] = t")
        g.emit(3, f"for a in range({A}):")
        g.add_cast(
            4,
            "t",
            f"accE{li}[a]",
            ewa.frac,
            f"(locE{li}[a] >> {log2u})",
            ewa.frac,
            ewa,
            li,
            "edge_weight_sum",
        )
        g.emit(4, f"accE{li}[a] = t")
        g.emit(4, f"for i in range({F}):")
        g.add_cast(
            5,
            "t",
            f"accW{li}[a, i]",
            aggr.frac,
            f"(locW{li}[a, i] >> {log2u})",
            aggr.frac,
            aggr,
            li,
            "feature_sum",
        )
        g.emit(5, f"accW{li}[a, i] = t")
        # ---- set_means_normalized
        if cfg.mean_by_nvert:
            if cfg.nvert_division == "integer":
                g.cast(2, "nrm", f"({U} // nv) << {norm.frac}", 0, norm, li, "norm")
            else:
                g.cast(2, "nrm", f"({U} << {norm.frac}) // nv", 0, norm, li, "norm")
            g.emit(2, f"for a in range({A}):")
            g.cast(
                3,
                "t",
                f"accE{li}[a] * nrm",
                ewa.frac + norm.frac - ew.frac,
                ew,
                li,
                "edge_weight_mean",
            )
            g.emit(3, f"ewm{li}[a] = t")
            g.emit(3, f"for i in range({F}):")
            g.cast(4, "t", f"accW{li}[a, i] * nrm", norm.frac, aggr, li, "feature_sum")
            g.emit(4, f"wfm{li}[a, i] = t")
        else:
            g.emit(2, f"for a in range({A}):")
            g.cast(
                3, "t", f"accE{li}[a] >> {log2r}", ewa.frac - ew.frac, ew, li, "edge_weight_mean"
            )
            g.emit(3, f"ewm{li}[a] = t")
            g.emit(3, f"for i in range({F}):")
            g.emit(4, f"wfm{li}[a, i] = accW{li}[a, i] >> {log2r}")
        # ---- output base
        g.emit(2, f"for o in range({O}):")
        g.emit(3, f"for a in range({A}):")
        g.cast(
            4,
            "ob",
            f"ewm{li}[a] * BIN{li}[o, a]",
            ew.frac + wt["b_in"].frac - aggr.frac,
            aggr,
            li,
            "aggregate",
        )
        g.emit(4, f"for i in range({F}):")
        g.add_cast(
            5,
            "ob",
            "ob",
            aggr.frac,
            f"wfm{li}[a, i] * WIN{li}[o, a, i]",
            aggr.frac + wt["w_in"].frac,
            aggr,
            li,
            "aggregate",
        )
        g.emit(4, f"OB{li}[o, a] = ob")
        # ---- outputs
        if store:
            dest = "OUT[b, v, o]" if last else f"H{li + 1}[v, o]"
            g.emit(2, "for v in range(nv):")
            g.emit(3, f"for o in range({O}):")
            g.emit(4, f"acc = BOUTR{li}[o]")
            g.emit(4, f"for a in range({A}):")
            g.cast(
                5,
                "inc",
                f"EW{li}[v, a] * OB{li}[o, a]",
                ew.frac + aggr.frac - outt.frac,
                outt,
                li,
                "output",
            )
            g.add_cast(5, "acc", "acc", outt.frac, "inc", outt.frac, outt, li, "output")
            g.emit(4, f"{dest} = acc")
        else:
            bt = wt["b_out"]
            g.emit(2, f"for o in range({O}):")
            if cfg.mean_by_nvert:
                g.emit(3, f"acc = BOUTR{li}[o]")
            else:
                g.cast(3, "bb", f"BOUTA{li}[o] * nv", 0, aggr, li, "output_bias_scaled")
                g.cast(3, "bn", f"bb >> {log2v}", aggr.frac - bt.frac, bt, li, "output_bias")
                g.cast(3, "acc", "bn", bt.frac - outt.frac, outt, li, "output")
            g.emit(3, f"for a in range({A}):")
            g.add_cast(
                4,
                "acc",
                "acc",
                outt.frac,
                f"ewm{li}[a] * OB{li}[o, a]",
                ew.frac + aggr.frac,
                outt,
                li,
                "output",
            )
            g.emit(3, "OUT[b, o] = acc")
    g.emit(1, "return 0")
    return "\n".join(g.lines) + "\n"


_KERNELS: dict[str, numba.core.registry.CPUDispatcher] = {}


def _compile(source: str, name: str = "kernel") -> numba.core.registry.CPUDispatcher:
    key = hashlib.sha1(source.encode()).hexdigest()
    if key not in _KERNELS:
        ns: dict[str, object] = {"np": np}
        exec(compile(source, f"<calo.fpga {name} {key[:8]}>", "exec"), ns)
        # serial code: no parallel=True, so one call runs on one core whatever numba's
        # thread count is
        _KERNELS[key] = numba.njit(cache=False, boundscheck=False)(ns[name])
    return _KERNELS[key]


# ---------------------------------------------------------------------- fast path
#: Loops over the hits of a group up to this length are unrolled (measured faster).
_UNROLL = 16
#: Same for the features of the distance loop.
_UNROLL_F = 16


def _type_range(t: FixedType) -> tuple[int, int]:
    """Raw range ``[lo, hi]`` a cast to ``t`` leaves untouched."""
    if t.signed:
        hi = (1 << (t.width - 1)) - 1
        return (-hi if t.overflow == "SAT_SYM" else -hi - 1), hi
    return 0, (1 << t.width) - 1


def _iv_mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    c = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return min(c), max(c)


def _iv_shift(a: tuple[int, int], sh: int) -> tuple[int, int]:
    """``a << sh`` (sh >= 0) or ``a >> -sh`` (floor)."""
    if sh >= 0:
        return a[0] << sh, a[1] << sh
    return a[0] >> -sh, a[1] >> -sh


class _FastGen:
    """Writes the fast numba kernel: the same arithmetic as :func:`_generate` without overflow
    handling, vectorised over hits, with flags that mark every event in which a cast could
    have left its type. Flagged events are recomputed by the exact kernel.

    Every expression carries an integer interval (from the type ranges and the actual
    weights), so casts that cannot overflow get no flag, and the whole kernel uses int32
    when no intermediate can exceed it.
    """

    def __init__(self, ity: str) -> None:
        self.lines: list[str] = []
        self.ity = ity  # "np.int32" or "np.int64"
        self.sign_bit = 31 if ity == "np.int32" else 63
        self.maxabs = 0
        self.flags: dict[tuple[object, ...], str] = {}

    def emit(self, ind: int, text: str) -> None:
        self.lines.append("    " * ind + text)

    def use(self, iv: tuple[int, int]) -> tuple[int, int]:
        self.maxabs = max(self.maxabs, abs(iv[0]), abs(iv[1]))
        return iv

    def I(self, expr: str) -> str:  # noqa: E743
        return f"{self.ity}({expr})"

    def flag(self, ind: int, dst: str, iv: tuple[int, int], t: FixedType) -> tuple[int, int]:
        """Flag ``dst`` (interval ``iv``) when outside ``t``; return the interval after the
        cast of an accepted event (``iv`` within ``t``'s range)."""
        lo, hi = _type_range(t)
        if lo <= iv[0] and iv[1] <= hi:
            return iv
        if hi - lo + 1 == 1 << t.width:  # a power-of-two window: one add and one or
            key: tuple[object, ...] = ("w", lo, t.width)
            name = self.flags.setdefault(key, f"fl{len(self.flags)}")
            self.use((iv[0] - lo, iv[1] - lo))
            diff = self.I(f"{dst} - ({lo})")
            self.emit(ind, f"{name} = {self.I(f'{name} | {diff}')}")
        else:
            key = ("s", lo, hi)
            name = self.flags.setdefault(key, f"fl{len(self.flags)}")
            self.use((iv[0] - lo, iv[1] - lo))
            self.use((hi - iv[1], hi - iv[0]))
            a, b = self.I(f"{dst} - ({lo})"), self.I(f"{hi} - {dst}")
            self.emit(ind, f"{name} = {self.I(f'{name} | {a} | {b}')}")
        return max(iv[0], lo), min(iv[1], hi)

    def flag_tests(self) -> str:
        tests = []
        for key, name in self.flags.items():
            if key[0] == "w":
                tests.append(f"({name} >> {key[2]}) != 0")
            else:
                tests.append(f"{name} < 0")
        return " or ".join(tests) if tests else "False"

    def cast(
        self, ind: int, dst: str, expr: str, iv: tuple[int, int], sh: int, t: FixedType
    ) -> tuple[int, int]:
        """``dst = t(expr)`` without overflow handling (``expr`` has ``sh`` more fractional
        bits than ``t``), branch-free rounding; returns the interval of ``dst``."""
        self.use(iv)
        qm = t.code[3]
        I = self.I  # noqa: E741
        if sh > 0:
            half, m = 1 << (sh - 1), (1 << sh) - 1
            self.use((iv[0] - (1 << sh), iv[1] + (1 << sh)))
            self.emit(ind, f"_v = {I(expr)}")
            sb = self.sign_bit
            add = {
                0: None,
                1: f"{I(f'_v >> {sb}')} & {m}",
                2: f"{half}",
                3: f"{half - 1} - {I(f'_v >> {sb}')}",
                4: f"{half - 1}",
                5: f"{half} + {I(f'_v >> {sb}')}",
                6: f"{half - 1} + {I(f'_v >> {sh}')} & 1",
            }[qm]
            if add is None:
                self.emit(ind, f"{dst} = {I(f'_v >> {sh}')}")
                out = (iv[0] >> sh, iv[1] >> sh)
            else:
                if qm == 6:
                    add = f"{half - 1} + ({I(f'_v >> {sh}')} & 1)"
                biased = I(f"_v + ({add})")
                self.emit(ind, f"{dst} = {I(f'{biased} >> {sh}')}")
                out = (iv[0] >> sh, (iv[1] >> sh) + 1)
        elif sh < 0:
            self.emit(ind, f"{dst} = {I(f'({expr}) << {-sh}')}")
            out = _iv_shift(iv, -sh)
        else:
            self.emit(ind, f"{dst} = {I(expr)}")
            out = iv
        self.use(out)
        return self.flag(ind, dst, out, t)

    def add_cast(
        self,
        ind: int,
        dst: str,
        a: str,
        fa: int,
        iva: tuple[int, int],
        b: str,
        fb: int,
        ivb: tuple[int, int],
        t: FixedType,
    ) -> tuple[int, int]:
        """``dst = t(a + b)``, composed exactly as :meth:`_Gen.add_cast`."""
        f = max(fa, fb)
        ea = a if f == fa else self.I(f"{a} << {f - fa}")
        eb = b if f == fb else self.I(f"{b} << {f - fb}")
        sa, sb = _iv_shift(iva, f - fa), _iv_shift(ivb, f - fb)
        self.use(sa)
        self.use(sb)
        s = (sa[0] + sb[0], sa[1] + sb[1])
        return self.cast(ind, dst, f"{ea} + {eb}", s, f - t.frac, t)

    def chain_iv(
        self,
        steps: int,
        fa: int,
        fb: int,
        ivb: tuple[int, int],
        t: FixedType,
        start: tuple[int, int] = (0, 0),
    ) -> tuple[tuple[int, int], tuple[int, int], bool]:
        """Intervals of an accumulator of type ``t`` (starting in ``start``) over up to
        ``steps`` ``add_cast`` steps with terms in ``ivb``: before a step, at any point, and
        whether a step can overflow."""
        lo, hi = _type_range(t)
        f = max(fa, fb)
        acc = start
        before = start
        union = start
        over = False
        for k in range(steps):
            if k:
                before = (min(before[0], acc[0]), max(before[1], acc[1]))
            sa, sb = _iv_shift(acc, f - fa), _iv_shift(ivb, f - fb)
            s = (sa[0] + sb[0], sa[1] + sb[1])
            sh = f - t.frac
            r = _iv_shift(s, -sh)
            if sh > 0:
                r = (r[0], r[1] + 1)
            self.use(s)
            if r[0] < lo or r[1] > hi:
                over = True
            acc = (max(r[0], lo), min(r[1], hi))
            union = (min(union[0], acc[0]), max(union[1], acc[1]))
        return before, union, over


def _generate_fast(model: FixedGarNet, ity: str) -> tuple[str, int]:
    """Source of the fast kernel and the largest magnitude of any intermediate value."""
    cfg = model.config
    ty = model.types
    V, R = cfg.n_vertices, cfg.reuse_factor
    U = V // R
    log2u, log2r, log2v = (
        cfg.n_vertices_width - cfg.log2_reuse,
        cfg.log2_reuse,
        cfg.n_vertices_width,
    )
    dist, ew, ewa, aggr, norm, outt = (
        ty["distance_t"],
        ty["edge_weight_t"],
        ty["edge_weight_aggr_t"],
        ty["aggr_t"],
        ty["norm_t"],
        ty["output_t"],
    )
    subs = model.sublayers
    nl = len(subs)
    collapse = cfg.collapse == "mean"
    lanes = 8
    smax = -(-R // lanes) * lanes
    mmax = U * smax
    g = _FastGen(ity)
    I = g.I  # noqa: E741
    tab = (min(0, int(model.table.min())), int(model.table.max()))

    def rng(a: NDArray[np.int64]) -> tuple[int, int]:
        return (int(a.min()), int(a.max())) if a.size else (0, 0)

    args = ["X", "N", "OUT", "FLAG", "TABLE"]
    for li in range(nl):
        args += [f"WD{li}", f"BD{li}", f"WINT{li}", f"BINT{li}", f"BOUTR{li}", f"BOUTA{li}"]
    g.emit(0, f"def fast({', '.join(args)}):")
    g.emit(1, "B = X.shape[0]")
    g.emit(1, f"MASK = np.zeros({mmax}, {ity}); D = np.zeros({mmax}, {ity})")
    g.emit(1, f"LE = np.zeros({smax}, {ity}); LW = np.zeros({smax}, {ity})")
    omax = max(s.n_out for s in subs)
    g.emit(1, f"ACC = np.zeros({omax}, {ity})")
    for li, s in enumerate(subs):
        A, F, O = s.n_aggregators, s.n_in, s.n_out  # noqa: E741
        g.emit(1, f"H{li}f = np.zeros({F * mmax}, {ity}); EW{li}f = np.zeros({A * mmax}, {ity})")
        g.emit(1, f"ewm{li} = np.zeros({A}, {ity}); wfm{li} = np.zeros(({A}, {F}), {ity})")
        g.emit(1, f"OB{li} = np.zeros(({A}, {O}), {ity})")
    if not collapse:
        g.emit(1, f"HOf = np.zeros({subs[-1].n_out * mmax}, {ity})")
    g.emit(1, "for b in range(B):")
    g.emit(2, "nv = N[b]")
    g.emit(2, f"ng = (nv + {U - 1}) >> {log2u}")
    g.emit(2, f"S = ((ng + {lanes - 1}) // {lanes}) * {lanes}")
    g.emit(2, f"M = S * {U}")
    g.emit(2, "bad = 0")
    # per-event views: [F, M] over the positions, [F, U, S] over (hit in group, group)
    views = [(f"H{li}", s.n_in) for li, s in enumerate(subs)]
    views += [(f"EW{li}", s.n_aggregators) for li, s in enumerate(subs)]
    if not collapse:
        views.append(("HO", subs[-1].n_out))
    for name, rows in views:
        g.emit(2, f"{name} = {name}f[: {rows} * M].reshape(({rows}, M))")
        g.emit(2, f"{name}g = {name}f[: {rows} * M].reshape(({rows}, {U}, S))")
    flag_init_at = len(g.lines)
    # hit v = gg * U + j lives at position j * S + gg: a group's hits are S apart
    g.emit(2, "for p in range(M):")
    g.emit(3, "MASK[p] = 0")
    for i in range(subs[0].n_in):
        g.emit(3, f"H0[{i}, p] = 0")
    g.emit(2, "for v in range(nv):")
    g.emit(3, f"j = v & {U - 1}; gg = v >> {log2u}")
    g.emit(3, "MASK[j * S + gg] = -1")
    for i in range(subs[0].n_in):
        g.emit(3, f"H0g[{i}, j, gg] = {I(f'X[b, v, {i}]')}")
    in_t = ty["input_t"]
    lo_in, hi_in = _type_range(in_t)
    hiv = (lo_in, hi_in)
    g.use(hiv)
    for li, s in enumerate(subs):
        A, F, O = s.n_aggregators, s.n_in, s.n_out  # noqa: E741
        wt = s.types
        data_t = in_t if li == 0 else outt
        fd = data_t.frac
        last = li == nl - 1
        store = not (last and collapse)
        H, EW = f"H{li}", f"EW{li}"
        # ---- distances and edge weights, vectorised over hit positions p
        ivw = rng(s.w_d)
        ivbd = rng(model._static[f"BD{li}"])
        inc_iv = _iv_mul(hiv, ivw)
        sh_d = fd + wt["w_d"].frac - dist.frac
        g.emit(2, f"for a in range({A}):")
        g.emit(3, f"bd = BD{li}[a]")
        unroll_f = F <= _UNROLL_F
        if unroll_f:
            for i in range(F):
                g.emit(3, f"w{i} = WD{li}[a, {i}]")
            g.emit(3, "for p in range(M):")
            g.emit(4, "d = bd")
            d_iv = ivbd
            for i in range(F):
                inc_out = g.cast(4, "inc", f"{H}[{i}, p] * w{i}", inc_iv, sh_d, dist)
                d_iv = g.add_cast(4, "d", "d", dist.frac, d_iv, "inc", dist.frac, inc_out, dist)
            g.emit(4, "D[p] = d")
        else:
            g.emit(3, "for p in range(M):")
            g.emit(4, "D[p] = bd")
            g.emit(3, f"for i in range({F}):")
            g.emit(4, f"w = WD{li}[a, i]")
            g.emit(4, "for p in range(M):")
            inc_out = g.cast(5, "inc", f"{H}[i, p] * w", inc_iv, sh_d, dist)
            lo_d, hi_d = _type_range(dist)
            d_iv = (min(ivbd[0], lo_d), max(ivbd[1], hi_d))
            g.cast(5, "d", "D[p] + inc", (d_iv[0] + inc_out[0], d_iv[1] + inc_out[1]), 0, dist)
            g.emit(5, "D[p] = d")
        g.emit(3, "for p in range(M):")
        g.emit(4, f"{EW}[a, p] = {I(f'TABLE[D[p] & {(1 << dist.width) - 1}] & MASK[p]')}")
        # ---- edge weight sums: U hits per group (S positions apart), then over the groups
        le_in, le_iv, _ = g.chain_iv(U, ewa.frac, ew.frac, tab, ewa)
        term = _iv_shift(le_iv, -log2u)
        _, acc_iv, acc_over = g.chain_iv(R, ewa.frac, ewa.frac, term, ewa)

        def estep(ind: int, j: int, ew_arr: str = EW, iv: tuple[int, int] = le_in) -> None:
            g.add_cast(ind, "t", "t", ewa.frac, iv, f"{ew_arr}g[a, {j}, gg]", ew.frac, tab, ewa)

        _group_sums(g, 3, U, log2u, R, ewa, "accE", term, acc_over, estep)
        if cfg.mean_by_nvert:
            if cfg.nvert_division == "integer":
                nexpr = f"({U} // nv) << {norm.frac}"
            else:
                nexpr = f"({U} << {norm.frac}) // nv"
            nrm_iv = g.cast(3, "nrm", nexpr, (0, U << norm.frac), 0, norm)
            e_iv = g.cast(
                3, "e", "accE * nrm", _iv_mul(acc_iv, nrm_iv), ewa.frac + norm.frac - ew.frac, ew
            )
        else:
            e_iv = g.cast(
                3, "e", I(f"accE >> {log2r}"), _iv_shift(acc_iv, -log2r), ewa.frac - ew.frac, ew
            )
        g.emit(3, f"ewm{li}[a] = e")
        # ---- weighted feature sums, the same way
        wi_iv = _iv_mul(hiv, tab)
        lw_in, lw_iv, _ = g.chain_iv(U, aggr.frac, fd, _wi_range(wi_iv, ew.frac, data_t), aggr)
        termw = _iv_shift(lw_iv, -log2u)
        _, accw_iv, accw_over = g.chain_iv(R, aggr.frac, aggr.frac, termw, aggr)
        g.emit(3, f"for i in range({F}):")

        def wstep(
            ind: int,
            j: int,
            h: str = H,
            ew_arr: str = EW,
            iv: tuple[int, int] = wi_iv,
            acc_iv: tuple[int, int] = lw_in,
            dt: FixedType = data_t,
        ) -> None:
            expr = f"{h}g[i, {j}, gg] * {ew_arr}g[a, {j}, gg]"
            wi_out = g.cast(ind, "inc", expr, iv, ew.frac, dt)
            g.add_cast(ind, "t", "t", aggr.frac, acc_iv, "inc", dt.frac, wi_out, aggr)

        _group_sums(g, 4, U, log2u, R, aggr, "accW", termw, accw_over, wstep)
        if cfg.mean_by_nvert:
            wfm_iv = g.cast(4, "wf", "accW * nrm", _iv_mul(accw_iv, nrm_iv), norm.frac, aggr)
        else:
            g.emit(4, f"wf = {I(f'accW >> {log2r}')}")
            wfm_iv = _iv_shift(accw_iv, -log2r)
        g.emit(4, f"wfm{li}[a, i] = wf")
        # ---- output base OB[a, o], vectorised over o
        ivbin, ivwin = rng(s.b_in), rng(s.w_in)
        g.emit(2, f"for a in range({A}):")
        g.emit(3, f"e = ewm{li}[a]")
        g.emit(3, f"for o in range({O}):")
        ob_iv = g.cast(
            4,
            "ob",
            f"e * BINT{li}[a, o]",
            _iv_mul(e_iv, ivbin),
            ew.frac + wt["b_in"].frac - aggr.frac,
            aggr,
        )
        g.emit(4, f"OB{li}[a, o] = ob")
        prod_iv = _iv_mul(wfm_iv, ivwin)
        ob_in, ob_all, _ = g.chain_iv(
            F, aggr.frac, aggr.frac + wt["w_in"].frac, prod_iv, aggr, start=ob_iv
        )
        g.emit(3, f"for i in range({F}):")
        g.emit(4, f"wv = wfm{li}[a, i]")
        g.emit(4, f"for o in range({O}):")
        ob_out = g.add_cast(
            5,
            "ob",
            f"OB{li}[a, o]",
            aggr.frac,
            ob_in,
            f"wv * WINT{li}[a, i, o]",
            aggr.frac + wt["w_in"].frac,
            prod_iv,
            aggr,
        )
        g.emit(5, f"OB{li}[a, o] = ob")
        ob_all = (min(ob_all[0], ob_out[0]), max(ob_all[1], ob_out[1]))
        # ---- outputs
        if store:
            dest = "HO" if last else f"H{li + 1}"
            ivbr = rng(model._static[f"BOUTR{li}"])
            g.emit(2, f"for o in range({O}):")
            g.emit(3, f"br = BOUTR{li}[o]")
            for a in range(A):
                g.emit(3, f"ob{a} = OB{li}[{a}, o]")
            g.emit(3, "for p in range(M):")
            g.emit(4, "acc = br")
            acc_iv = ivbr
            oinc = _iv_mul(tab, ob_all)
            for a in range(A):
                inc_o = g.cast(
                    4, "inc", f"{EW}[{a}, p] * ob{a}", oinc, ew.frac + aggr.frac - outt.frac, outt
                )
                acc_iv = g.add_cast(
                    4, "acc", "acc", outt.frac, acc_iv, "inc", outt.frac, inc_o, outt
                )
            g.emit(4, f"{dest}[o, p] = {I('acc & MASK[p]')}")
            hiv = _type_range(outt)
        else:
            bt = wt["b_out"]
            g.emit(2, f"for o in range({O}):")
            if cfg.mean_by_nvert:
                g.emit(3, f"ACC[o] = BOUTR{li}[o]")
                acc_iv = rng(model._static[f"BOUTR{li}"])
            else:
                bb_iv = g.cast(
                    3,
                    "bb",
                    f"BOUTA{li}[o] * nv",
                    _iv_mul(rng(model._static[f"BOUTA{li}"]), (0, V)),
                    0,
                    aggr,
                )
                bn_iv = g.cast(
                    3, "bn", f"bb >> {log2v}", _iv_shift(bb_iv, -log2v), aggr.frac - bt.frac, bt
                )
                acc_iv = g.cast(3, "acc", "bn", bn_iv, bt.frac - outt.frac, outt)
                g.emit(3, "ACC[o] = acc")
            prod = _iv_mul(e_iv, ob_all)
            all_in, _, _ = g.chain_iv(A, outt.frac, ew.frac + aggr.frac, prod, outt, start=acc_iv)
            g.emit(2, f"for a in range({A}):")
            g.emit(3, f"e = ewm{li}[a]")
            g.emit(3, f"for o in range({O}):")
            g.add_cast(
                4,
                "acc",
                "ACC[o]",
                outt.frac,
                all_in,
                f"e * OB{li}[a, o]",
                ew.frac + aggr.frac,
                prod,
                outt,
            )
            g.emit(4, "ACC[o] = acc")
    # ---- accept or flag the event
    g.emit(2, f"if bad != 0 or {g.flag_tests()}:")
    g.emit(3, "FLAG[b] = 1")
    g.emit(3, "continue")
    if collapse:
        g.emit(2, f"for o in range({subs[-1].n_out}):")
        g.emit(3, "OUT[b, o] = ACC[o]")
    else:
        g.emit(2, "for v in range(nv):")
        g.emit(3, f"j = v & {U - 1}; gg = v >> {log2u}")
        g.emit(3, f"for o in range({subs[-1].n_out}):")
        g.emit(4, "OUT[b, v, o] = HOg[o, j, gg]")
    g.emit(1, "return 0")
    inits = [f"        {name} = {ity}(0)" for name in g.flags.values()]
    g.lines[flag_init_at:flag_init_at] = inits
    return "\n".join(g.lines) + "\n", g.maxabs


def _wi_range(iv: tuple[int, int], sh: int, t: FixedType) -> tuple[int, int]:
    """Interval of ``t(iv >> sh)`` for an accepted event (rounding up to one unit)."""
    lo, hi = _type_range(t)
    r = _iv_shift(iv, -sh)
    return max(r[0], lo), min(r[1] + 1, hi)


def _group_sums(
    g: _FastGen,
    ind: int,
    U: int,
    log2u: int,
    R: int,
    t: FixedType,
    dst: str,
    term: tuple[int, int],
    over: bool,
    step: Callable[[int, int], object],
) -> None:
    """``dst`` = sum over the groups ``gg`` of ``t_gg >> log2u`` in type ``t``, where ``t_gg``
    accumulates the group's U hits (``step(ind, j)`` adds hit ``j`` to ``t``). The loop runs
    over the S (a multiple of the vector width) group slots; empty slots add zeros.

    When a partial sum over the groups could leave ``t``, the positive and negative terms are
    summed apart: if neither total leaves the range, no partial sum did (the event is flagged
    otherwise)."""
    I = g.I  # noqa: E741
    g.emit(ind, f"{dst} = {I(0)}")
    if over:
        g.use((R * min(term[0], 0), R * max(term[1], 0)))
        g.emit(ind, f"pos = {I(0)}; neg = {I(0)}")
    g.emit(ind, "for gg in range(S):")
    g.emit(ind + 1, f"t = {I(0)}")
    if U <= _UNROLL:
        for j in range(U):
            step(ind + 1, j)
    else:
        g.emit(ind + 1, f"for j in range({U}):")
        step(ind + 2, "j")  # type: ignore[arg-type]
    tt = I(f"t >> {log2u}")
    if not over:
        g.emit(ind + 1, f"{dst} = {I(f'{dst} + {tt}')}")
        return
    lo, hi = _type_range(t)
    g.emit(ind + 1, f"tt = {tt}")
    g.emit(ind + 1, f"pos = {I('pos + (tt if tt > 0 else 0)')}")
    g.emit(ind + 1, f"neg = {I('neg + (tt if tt < 0 else 0)')}")
    g.emit(ind, f"{dst} = {I('pos + neg')}")
    g.emit(ind, f"if pos > {hi} or neg < {lo}:")
    g.emit(ind + 1, "bad = 1")


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
        out: dict[str, object] = {"overflow": {}}
        for li, s in enumerate(self.sublayers):
            bd, f1 = cast(s.b_d, s.types["b_d"], self.types["distance_t"], return_overflow=True)
            br, f2 = cast(s.b_out, s.types["b_out"], self.types["output_t"], return_overflow=True)
            ba, f3 = cast(s.b_out, s.types["b_out"], self.types["aggr_t"], return_overflow=True)
            out[f"BD{li}"], out[f"BOUTR{li}"], out[f"BOUTA{li}"] = bd, br, ba
            out["overflow"][f"L{li}.distance_bias"] = int(f1.sum())
            out["overflow"][f"L{li}.output_bias_cast"] = int(f2.sum())
            out["overflow"][f"L{li}.output_bias_aggr"] = int(f3.sum())
        return out

    def source(self, track_ranges: bool = False) -> str:
        """Python source of the generated numba kernel (for inspection)."""
        return _generate(self, track_ranges)

    def _kernel(self, track: bool) -> numba.core.registry.CPUDispatcher:
        if track not in self._kernels:
            self._kernels[track] = _compile(_generate(self, track))
        return self._kernels[track]

    def fast_source(self) -> str:
        """Python source of the generated fast kernel (for inspection)."""
        src, mx = _generate_fast(self, "np.int32")
        return src if mx < 2**31 - 1 else _generate_fast(self, "np.int64")[0]

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
            self._fast_kernel = (_compile(src, "fast"), args)
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
        n_events = X.shape[0]
        static = {k: v * n_events for k, v in self._static["overflow"].items()}
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
    """Float64 simplified GarNet (layer or stack) with the uncontracted maths of
    :mod:`calo.fpga.garnet`, on padded inputs ``X [B, V, F_in]``; means over V_max unless
    ``mean_by_nvert``. Returns ``[B, O]`` (collapse mean) or ``[B, V, O]``.

    Examples
    --------
    >>> import numpy as np
    >>> w = GarNetWeights.random(np.random.default_rng(0), 2, 2, 3, 1)
    >>> garnet_float(w, np.zeros((1, 4, 2)), [0]).shape
    (1, 1)
    """
    ws = [weights] if isinstance(weights, GarNetWeights) else list(weights)
    x = np.asarray(X, dtype=np.float64)
    nn = np.asarray(n)
    _B, V, _ = x.shape
    mask = (np.arange(V)[None, :] < nn[:, None]).astype(np.float64)[..., None]
    denom = nn.astype(np.float64)[:, None, None] if mean_by_nvert else float(V)
    h = x
    for w in ws:
        f = h @ w.flr_kernel + w.flr_bias  # [B, V, P]
        d = h @ w.s_kernel + w.s_bias  # [B, V, A]
        ew = np.exp(-(d**2)) * mask
        agg = np.einsum("bva,bvp->bap", ew, f) / denom  # [B, A, P]
        fout = w.fout_kernel.reshape(w.n_aggregators, w.n_propagate, w.n_out)
        base = np.einsum("bap,apo->bao", agg, fout)
        h = (np.einsum("bva,bao->bvo", ew, base) + w.fout_bias) * mask
    if collapse == "mean":
        return h.sum(axis=1) / (nn.astype(np.float64)[:, None] if mean_by_nvert else float(V))
    return h
