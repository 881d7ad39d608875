"""Response statistics: mean, RMS, robust width and median, overall and in bins.

One copy for every evaluation in calo: the fraction task's response (``calo.train.metrics``),
the e/pi task's energy response and the matched clusters of :mod:`calo.reco.matching`.
The robust width is half the 16-84 % interval, which equals the standard deviation for a
Gaussian and ignores tails.

Examples
--------
>>> import numpy as np
>>> spread_stats(np.array([1.0, 1.0]))["rms"]
0.0
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["binned_stats", "spread_stats"]


def spread_stats(values: np.ndarray) -> dict[str, float]:
    """Mean, RMS, robust width (half the 16-84 % interval), median and count of the finite
    values.

    Examples
    --------
    >>> s = spread_stats(np.array([0.9, 1.0, 1.1, np.nan]))
    >>> round(s["mean"], 3), round(s["rms"], 4), round(s["width"], 3), s["n"]
    (1.0, 0.0816, 0.068, 3)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "rms": nan, "width": nan, "median": nan}
    q16, q50, q84 = np.quantile(v, [0.16, 0.5, 0.84])
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "rms": float(v.std()),
        "width": float(0.5 * (q84 - q16)),
        "median": float(q50),
    }


def binned_stats(
    x: np.ndarray, values: np.ndarray, edges: tuple[float, ...] | list[float]
) -> dict[str, list[float]]:
    """:func:`spread_stats` of ``values`` in bins ``[lo, hi)`` of ``x``.

    Examples
    --------
    >>> b = binned_stats(np.array([6.0, 7.0, 25.0]), np.array([1.0, 0.8, 1.2]), [5, 10, 30])
    >>> b["n"], [round(m, 2) for m in b["mean"]]
    ([2, 1], [0.9, 1.2])
    """
    xs = np.asarray(x, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    out: dict[str, list[float]] = {
        k: [] for k in ("lo", "hi", "n", "mean", "rms", "width", "median")
    }
    for lo, hi in itertools.pairwise(edges):
        s = spread_stats(v[(xs >= lo) & (xs < hi)])
        out["lo"].append(float(lo))
        out["hi"].append(float(hi))
        for key in ("n", "mean", "rms", "width", "median"):
            out[key].append(s[key])
    return out
