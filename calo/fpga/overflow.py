"""Overflow accounting of the fixed-point GarNet: what is counted and the per-run report.

Every cast of :class:`~calo.fpga.reference.FixedGarNet` counts how often its value fell outside
the target type (saturated, zeroed or wrapped), per sublayer and quantity (:data:`QUANTITIES`),
and can record the range of values seen, from which :meth:`OverflowReport.suggest_types`
proposes integer widths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from calo.errors import ConfigError
from calo.fpga.fixed import FixedType

__all__ = ["QUANTITIES", "QUANTITY_INDEX", "OverflowReport"]

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
#: Row of each quantity in the ``[L, Q]`` count arrays.
QUANTITY_INDEX: dict[str, int] = {name: i for i, (name, _) in enumerate(QUANTITIES)}


@dataclass
class OverflowReport:
    """Overflow counts and value ranges of one run, per sublayer and quantity.

    Attributes
    ----------
    counts:
        ``[L, Q]`` number of casts whose value was outside the target type (saturated,
        zeroed or wrapped according to the type's mode).
    static:
        Overflows of constant casts (biases assigned to the distance, output and aggregate
        types), by name, counted as often as ``nnet_garnet.h`` performs each cast: once per
        valid hit for the per-hit casts (``distance_bias``; ``output_bias_cast`` of per-hit
        outputs), once per event for the collapse's (``output_bias_aggr``, or
        ``output_bias_cast`` with ``mean_by_nvert``); casts the firmware never performs are
        not listed (:meth:`~calo.fpga.reference.FixedGarNet.static_overflows`).
    vmin, vmax:
        ``[L, Q]`` smallest / largest value (float) before overflow handling, NaN when the
        quantity was not reached or ranges were not tracked.
    types:
        ``[L]`` dicts quantity -> FixedType it is cast to.

    Examples
    --------
    >>> import numpy as np
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> from calo.fpga.reference import FixedGarNet
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
        >>> from calo.fpga.reference import FixedGarNet
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
