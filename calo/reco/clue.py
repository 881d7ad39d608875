"""CLUE: density-based, energy-weighted clustering (Rovere et al., Front. Big Data 3 (2020)
591315), in numba, giving the same clusters as the ``cluestering`` package 1.4.0.

For points :math:`x_i` with weights :math:`w_i` (hit energies), a cut-off distance
:math:`d_c`, a critical density :math:`\\rho_c` and an outlier factor :math:`o`
(the outlier distance is :math:`\\delta_o = o \\, d_c`), all in the units of the coordinates
(docs/condensation.md):

1. **Density.** :math:`\\rho_i = \\sum_{j : d_{ij} \\le d_c} \\kappa(d_{ij}, i, j) \\, w_j`,
   the point itself included. The default kernel is *flat*: :math:`\\kappa = 1` for
   :math:`j = i` and 0.5 otherwise; *exp* is :math:`A e^{-\\lambda d}` and *gaus*
   :math:`A \\exp(-(d - \\mu)^2 / 2\\sigma^2)`, for the point itself too.
2. **Nearest higher.** Among the points within :math:`\\delta_o` of i that are higher than
   i (larger :math:`\\rho`, or equal :math:`\\rho` and a larger index), the nearest one;
   :math:`\\delta_i` is its distance, or infinite if there is none.
3. **Seeds and outliers.** A seed has :math:`\\delta_i > d_c` and :math:`\\rho_i \\ge \\rho_c`;
   an outlier :math:`\\delta_i > \\delta_o` and :math:`\\rho_i < \\rho_c`. Seeds are numbered
   0, 1, ... in the order of their index.
4. **Followers.** Every other point takes the cluster of its nearest higher; a chain that
   ends at an outlier stays unassigned (-1), like the outlier.

The arithmetic is cluestering's: coordinates, weights and densities in float32, each squared
coordinate difference added in double and rounded to float32, so that a point exactly at
:math:`d_c` falls on the same side. Two choices of cluestering are not copied: it rescales
every coordinate to zero mean and unit variance before clustering (``read_data``), calo
clusters in the coordinates it is given (standardise them first to reproduce cluestering);
and of two higher points at exactly the same distance it takes the first met in its tile
scan, calo the lower index.

Neighbours come from a k-d tree (:class:`scipy.spatial.cKDTree`), then the steps above run
over the neighbour lists: :math:`O(N \\log N)` plus the number of neighbour pairs.

Examples
--------
>>> import numpy as np
>>> pts = np.array([[0.0, 0], [0.1, 0], [0.05, 0.1], [3, 3], [3.1, 3], [9, 9]])
>>> clue(pts, np.ones(6), dc=0.5, rho_c=1.5, outlier_factor=2.0).tolist()
[0, 0, 0, 1, 1, -1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
from scipy.spatial import cKDTree

from calo.errors import ConfigError, DataError

__all__ = ["KERNELS", "ClueResult", "Kernel", "clue", "clue_fields"]

#: Density kernels, as in cluestering: ``flat`` (one parameter, default 0.5), ``exp``
#: (rate, amplitude), ``gaus`` (mean, sigma, amplitude).
Kernel = Literal["flat", "exp", "gaus"]
KERNELS: dict[str, int] = {"flat": 1, "exp": 2, "gaus": 3}
_KERNEL_CODE = {"flat": 0, "exp": 1, "gaus": 2}
_FLT_MAX = np.float32(np.finfo(np.float32).max)


@dataclass(frozen=True)
class ClueResult:
    """Everything CLUE computes for one set of points.

    Attributes
    ----------
    labels:
        ``[N]`` cluster index (0..C-1, seeds numbered by index), -1 for outliers.
    is_seed:
        ``[N]`` true for the seeds.
    rho:
        ``[N]`` local density (float32).
    delta:
        ``[N]`` distance to the nearest higher point (float32 max where there is none).
    nearest_higher:
        ``[N]`` index of the nearest higher point, -1 where there is none.
    """

    labels: np.ndarray
    is_seed: np.ndarray
    rho: np.ndarray
    delta: np.ndarray
    nearest_higher: np.ndarray

    @property
    def n_clusters(self) -> int:
        """Number of clusters (seeds)."""
        return int(self.is_seed.sum())


@numba.njit(cache=True)
def _dist32(x: np.ndarray, i: int, j: int) -> np.float32:
    qsum = np.float32(0.0)
    for k in range(x.shape[1]):
        d = np.float32(abs(x[j, k] - x[i, k]))
        qsum = np.float32(np.float64(qsum) + np.float64(d) * np.float64(d))
    return np.float32(math.sqrt(np.float64(qsum)))


@numba.njit(cache=True)
def _kernel(code: int, p: np.ndarray, dist: np.float32, same: bool) -> np.float32:
    if code == 0:
        return np.float32(1.0) if same else np.float32(p[0])
    if code == 1:
        return np.float32(p[1] * math.exp(-p[0] * np.float64(dist)))
    return np.float32(p[2] * math.exp(-((np.float64(dist) - p[0]) ** 2) / (2.0 * p[1] ** 2)))


@numba.njit(cache=True)
def _clue_kernel(x, w, indptr, nbr, dc, rhoc, dm, code, params):  # pragma: no cover - numba
    n = x.shape[0]
    rho = np.zeros(n, dtype=np.float32)
    for i in range(n):
        r = np.float32(_kernel(code, params, np.float32(0.0), True) * w[i])
        for t in range(indptr[i], indptr[i + 1]):
            j = nbr[t]
            d = _dist32(x, i, j)
            if d <= dc:
                r = np.float32(r + np.float32(_kernel(code, params, d, False) * w[j]))
        rho[i] = r
    delta = np.full(n, np.float32(3.4028234663852886e38), dtype=np.float32)
    nh = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        for t in range(indptr[i], indptr[i + 1]):
            j = nbr[t]
            if rho[j] > rho[i] or (rho[j] == rho[i] and j > i):
                d = _dist32(x, i, j)
                if d <= dm and d < delta[i]:
                    delta[i] = d
                    nh[i] = j
    labels = np.full(n, -1, dtype=np.int64)
    seed = np.zeros(n, dtype=np.bool_)
    outlier = np.zeros(n, dtype=np.bool_)
    n_seeds = 0
    for i in range(n):
        if delta[i] > dc and rho[i] >= rhoc:
            seed[i] = True
            labels[i] = n_seeds
            n_seeds += 1
        elif delta[i] > dm and rho[i] < rhoc:
            outlier[i] = True
    # a nearest higher comes before its followers in decreasing (rho, index) order
    order = np.argsort(rho, kind="mergesort")[::-1]
    # among equal rho the larger index is higher: mergesort is stable, reversing it puts
    # larger indices first within a tie
    for t in range(n):
        i = order[t]
        if not seed[i] and not outlier[i] and nh[i] >= 0:
            labels[i] = labels[nh[i]]
    return labels, seed, rho, delta, nh


def _neighbours(x32: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists of the points within ``radius`` (a little more, for float32 rounding)."""
    n = x32.shape[0]
    r = radius * (1.0 + 1e-5) + 1e-30
    pairs = cKDTree(x32.astype(np.float64)).query_pairs(r, output_type="ndarray")
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    order = np.lexsort((dst, src))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst[order].astype(np.int64)


def _check(
    coords: np.ndarray,
    weights: np.ndarray,
    dc: float,
    rho_c: float,
    outlier_factor: float,
    kernel: str,
    kernel_params: tuple[float, ...] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not (np.isfinite(dc) and dc > 0):
        raise ConfigError(f"clue dc must be a finite number > 0, got {dc}")
    if not np.isfinite(rho_c):
        raise ConfigError(f"clue rho_c must be finite, got {rho_c}")
    if not (np.isfinite(outlier_factor) and outlier_factor > 0):
        raise ConfigError(f"clue outlier_factor must be a finite number > 0, got {outlier_factor}")
    if kernel not in KERNELS:
        raise ConfigError(f"clue kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
    params = (0.5,) if kernel_params is None and kernel == "flat" else kernel_params
    if params is None or len(params) != KERNELS[kernel]:
        raise ConfigError(
            f"clue kernel {kernel!r} takes {KERNELS[kernel]} parameter(s), got {kernel_params}"
        )
    x = np.asarray(coords)
    if x.ndim == 1:
        x = x[:, None]
    w = np.asarray(weights)
    if x.ndim != 2 or w.shape != (x.shape[0],):
        raise DataError(f"clue needs coords [N, D] and weights [N], got {x.shape} and {w.shape}")
    if not (np.isfinite(x).all() and np.isfinite(w).all()):
        raise DataError("clue coords and weights must be finite")
    return (
        np.ascontiguousarray(x, dtype=np.float32),
        np.ascontiguousarray(w, dtype=np.float32),
        np.asarray(params, dtype=np.float64),
    )


def clue_fields(
    coords: np.ndarray,
    weights: np.ndarray,
    dc: float,
    rho_c: float,
    outlier_factor: float = 2.0,
    *,
    kernel: Kernel = "flat",
    kernel_params: tuple[float, ...] | None = None,
) -> ClueResult:
    """Run CLUE on one set of points and return every intermediate field.

    Parameters are those of :func:`clue` (without ``batch``).

    Examples
    --------
    >>> import numpy as np
    >>> r = clue_fields(np.array([[0.0], [0.2], [5.0]]), np.array([1.0, 2.0, 1.0]), 0.5, 1.0)
    >>> r.rho.tolist(), r.nearest_higher.tolist(), r.labels.tolist(), r.n_clusters
    ([2.0, 2.5, 1.0], [1, -1, -1], [0, 0, 1], 2)
    """
    x, w, params = _check(coords, weights, dc, rho_c, outlier_factor, kernel, kernel_params)
    dc32 = np.float32(dc)
    dm32 = np.float32(np.float32(outlier_factor) * dc32)
    indptr, nbr = _neighbours(x, float(max(dc32, dm32)))
    labels, seed, rho, delta, nh = _clue_kernel(
        x, w, indptr, nbr, dc32, np.float32(rho_c), dm32, _KERNEL_CODE[kernel], params
    )
    return ClueResult(labels=labels, is_seed=seed, rho=rho, delta=delta, nearest_higher=nh)


def clue(
    coords: np.ndarray,
    weights: np.ndarray,
    dc: float,
    rho_c: float,
    outlier_factor: float = 2.0,
    *,
    batch: np.ndarray | None = None,
    kernel: Kernel = "flat",
    kernel_params: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Cluster index of every point by CLUE (see the module docstring), -1 for outliers.

    Parameters
    ----------
    coords:
        ``[N, D]`` point coordinates (``[N]`` for one dimension).
    weights:
        ``[N]`` point weights (hit energies).
    dc:
        Cut-off distance of the density, in the units of ``coords``.
    rho_c:
        Critical density: seeds need at least ``rho_c``, outliers have less.
    outlier_factor:
        The outlier distance in units of ``dc`` (cluestering's ``outlier``); the nearest
        higher is only searched within ``outlier_factor * dc``.
    batch:
        ``[N]`` event index; each event is clustered on its own and its clusters are
        numbered from 0 (``None``: one event).
    kernel, kernel_params:
        Density kernel and its parameters (``flat`` with 0.5 by default, as cluestering).

    Returns
    -------
    np.ndarray
        ``[N]`` int64 cluster index within the point's event, -1 for outliers.

    Raises
    ------
    ConfigError
        On a non-positive ``dc`` or ``outlier_factor`` or an unknown kernel.
    DataError
        On mismatched shapes or non-finite inputs.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [0.1], [0.0], [0.1]])
    >>> clue(x, np.ones(4), 0.5, 1.0, batch=np.array([0, 0, 1, 1])).tolist()
    [0, 0, 0, 0]
    """
    if batch is None:
        return clue_fields(
            coords, weights, dc, rho_c, outlier_factor, kernel=kernel, kernel_params=kernel_params
        ).labels
    b = np.asarray(batch)
    x = np.asarray(coords)
    w = np.asarray(weights)
    if b.shape != (x.shape[0],) or not np.issubdtype(b.dtype, np.integer):
        raise DataError(f"clue batch must be an integer array of shape [N], got {b.shape}")
    labels = np.full(b.shape, -1, dtype=np.int64)
    for event in np.unique(b):
        sel = b == event
        labels[sel] = clue_fields(
            x[sel], w[sel], dc, rho_c, outlier_factor, kernel=kernel, kernel_params=kernel_params
        ).labels
    return labels
