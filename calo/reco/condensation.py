"""Condensation clustering: a network's beta and clustering coordinates to clusters.

Per event (docs/condensation.md): take the unassigned hit with the largest
:math:`\\beta` above :math:`t_\\beta` as a condensation point; it and every unassigned hit
within :math:`t_d` of it (:math:`\\lVert x_i - x_\\alpha \\rVert \\le t_d` in the clustering
space) form a cluster; repeat until no unassigned hit has :math:`\\beta > t_\\beta`. Hits left
over are noise (-1). Clusters are numbered 0, 1, ... within the event, in decreasing
:math:`\\beta` of their condensation points (on equal :math:`\\beta` the lower index first).

A k-d tree per event answers the radius queries: :math:`O(N \\log N)` plus the sizes of the
balls. A cluster's energy is the sum of its hits' energies times the energy correction the
network predicts at its condensation point (:func:`cluster_energies`).

Energy sharing (:func:`sharing_fractions`, :func:`shared_cluster_energies`). Where showers
overlap, one cell holds energy of several particles, and a hard assignment gives all of it to
one cluster. With a width :math:`\\sigma > 0` every clustered hit i is instead shared among the
clusters c of its event with the fractions

.. math::

    f_{ic} = \\frac{\\exp(-\\lVert x_i - x_{\\alpha_c} \\rVert^2 / 2\\sigma^2)}
                  {\\sum_{c'} \\exp(-\\lVert x_i - x_{\\alpha_{c'}} \\rVert^2 / 2\\sigma^2)},

a softmax over its distances to the condensation points; a cluster's energy is
:math:`\\sum_i f_{ic} E_i` times the correction. The sharing loss
(:func:`calo.train.condensation.sharing_loss`) trains the clustering coordinates so that these
fractions are the hits' true energy fractions. Hits left as noise are not shared.

Examples
--------
>>> import numpy as np
>>> beta = np.array([0.9, 0.2, 0.8, 0.1, 0.05])
>>> x = np.array([[0.0], [0.3], [2.0], [2.2], [9.0]])
>>> c = condensation_clusters(beta, x, t_beta=0.5, t_d=0.5)
>>> c.labels.tolist(), c.points.tolist()
([0, 0, 1, 1, -1], [0, 2])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from calo.errors import ConfigError, DataError

__all__ = [
    "Clusters",
    "cluster_energies",
    "condensation_clusters",
    "shared_cluster_energies",
    "sharing_fractions",
]


@dataclass(frozen=True)
class Clusters:
    """Clusters of a batch of events.

    Attributes
    ----------
    labels:
        ``[N]`` cluster index of every hit within its event, -1 for noise.
    points:
        ``[C]`` hit index (into the batch) of every cluster's condensation point, ordered by
        event, then by cluster index.
    event:
        ``[C]`` event of every cluster.
    """

    labels: np.ndarray
    points: np.ndarray
    event: np.ndarray

    @property
    def n_clusters(self) -> int:
        """C, the number of clusters in the batch."""
        return int(self.points.size)


def _as_batch(batch: np.ndarray | None, n: int) -> np.ndarray:
    if batch is None:
        return np.zeros(n, dtype=np.int64)
    b = np.asarray(batch)
    if b.shape != (n,) or not np.issubdtype(b.dtype, np.integer):
        raise DataError(f"batch must be an integer array of shape [N={n}], got {b.shape}")
    return b.astype(np.int64)


def condensation_clusters(
    beta: np.ndarray,
    coords: np.ndarray,
    batch: np.ndarray | None = None,
    t_beta: float = 0.3,
    t_d: float = 0.5,
) -> Clusters:
    """Cluster the hits of every event around condensation points.

    Parameters
    ----------
    beta:
        ``[N]`` condensation weights (numpy; pass ``tensor.detach().cpu().numpy()``).
    coords:
        ``[N, D]`` clustering coordinates.
    batch:
        ``[N]`` event index (``None``: one event); need not be sorted.
    t_beta, t_d:
        The thresholds (:class:`calo.reco.config.CondensationConfig`).

    Returns
    -------
    Clusters
        Per-hit labels (numbered within each event), condensation points and their events.

    Raises
    ------
    ConfigError
        On ``t_beta`` outside [0, 1) or ``t_d <= 0``.
    DataError
        On mismatched shapes or non-finite inputs.

    Examples
    --------
    Two events; the second hit of event 0 lies within t_d of the first condensation point,
    so it cannot start a cluster of its own.

    >>> import numpy as np
    >>> c = condensation_clusters(
    ...     np.array([0.9, 0.8, 0.7, 0.6]), np.array([[0.0], [0.4], [0.0], [3.0]]),
    ...     batch=np.array([0, 0, 1, 1]), t_beta=0.5, t_d=0.5)
    >>> c.labels.tolist(), c.points.tolist(), c.event.tolist()
    ([0, 0, 0, 1], [0, 2, 3], [0, 1, 1])
    """
    if not 0.0 <= t_beta < 1.0:
        raise ConfigError(f"t_beta must be in [0, 1), got {t_beta}")
    if not t_d > 0:
        raise ConfigError(f"t_d must be > 0, got {t_d}")
    b_arr = np.asarray(beta, dtype=np.float64)
    x = np.asarray(coords, dtype=np.float64)
    n = b_arr.shape[0] if b_arr.ndim == 1 else -1
    if b_arr.ndim != 1 or x.ndim != 2 or x.shape[0] != n:
        raise DataError(f"need beta [N] and coords [N, D], got {b_arr.shape} and {x.shape}")
    if not (np.isfinite(b_arr).all() and np.isfinite(x).all()):
        raise DataError("beta and coords must be finite")
    ev = _as_batch(batch, n)
    labels = np.full(n, -1, dtype=np.int64)
    points: list[int] = []
    events: list[int] = []
    for e in np.unique(ev):
        hits = np.flatnonzero(ev == e)
        cand = hits[b_arr[hits] > t_beta]
        if cand.size == 0:
            continue
        cand = cand[np.lexsort((cand, -b_arr[cand]))]  # decreasing beta, then index
        tree = cKDTree(x[hits])
        n_clusters = 0
        for alpha in cand:
            if labels[alpha] >= 0:
                continue
            ball = hits[tree.query_ball_point(x[alpha], t_d)]
            ball = ball[labels[ball] < 0]
            labels[ball] = n_clusters
            labels[alpha] = n_clusters
            points.append(int(alpha))
            events.append(int(e))
            n_clusters += 1
    return Clusters(
        labels=labels,
        points=np.asarray(points, dtype=np.int64),
        event=np.asarray(events, dtype=np.int64),
    )


def _corrected(energies: np.ndarray, correction: np.ndarray | None) -> np.ndarray:
    """``energies`` times the per-cluster ``correction`` (checked to have their shape)."""
    if correction is None:
        return energies
    corr = np.asarray(correction, dtype=np.float64)
    if corr.shape != energies.shape:
        raise DataError(f"correction must have shape [C={energies.size}], got {corr.shape}")
    return energies * corr


def cluster_energies(
    labels: np.ndarray,
    energy: np.ndarray,
    batch: np.ndarray | None = None,
    correction: np.ndarray | None = None,
) -> np.ndarray:
    """``[C]`` energy of every cluster: the sum of its hits' energies, times ``correction``.

    Parameters
    ----------
    labels:
        ``[N]`` cluster index within the event, -1 for noise (from
        :func:`condensation_clusters` or :func:`calo.reco.clue.clue`).
    energy:
        ``[N]`` hit energies.
    batch:
        ``[N]`` event index (``None``: one event).
    correction:
        Optional ``[C]`` correction factor per cluster (for condensation clusters the
        network's prediction at the condensation point: ``pred[clusters.points]``).

    Returns
    -------
    np.ndarray
        ``[C]`` energies ordered by event, then cluster index (the order of
        :attr:`Clusters.points`); C counts the labels 0..max of every event.

    Examples
    --------
    >>> import numpy as np
    >>> cluster_energies(np.array([0, 1, 0, -1]), np.array([1.0, 2.0, 3.0, 4.0]),
    ...                  correction=np.array([1.5, 1.0])).tolist()
    [6.0, 2.0]
    """
    lab = np.asarray(labels, dtype=np.int64)
    e = np.asarray(energy, dtype=np.float64)
    if e.shape != lab.shape or lab.ndim != 1:
        raise DataError(f"labels and energy must both have shape [N], got {lab.shape}, {e.shape}")
    ev = _as_batch(batch, lab.size)
    n_events = int(ev.max()) + 1 if ev.size else 0
    per_event = np.zeros(n_events, dtype=np.int64)
    np.maximum.at(per_event, ev, lab + 1)
    offset = np.cumsum(per_event) - per_event
    out = np.zeros(int(per_event.sum()))
    sel = lab >= 0
    np.add.at(out, offset[ev[sel]] + lab[sel], e[sel])
    return _corrected(out, correction)


def sharing_fractions(
    clusters: Clusters,
    coords: np.ndarray,
    batch: np.ndarray | None = None,
    sigma: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy fractions of every clustered hit among the clusters of its event.

    Parameters
    ----------
    clusters:
        The output of :func:`condensation_clusters` for the same hits.
    coords:
        ``[N, D]`` clustering coordinates.
    batch:
        ``[N]`` event index (``None``: one event).
    sigma:
        Width of the softmax (module docstring); 0 gives every hit wholly to its own cluster.

    Returns
    -------
    hit, row, fraction:
        Three ``[M]`` arrays, one entry per (clustered hit, cluster of its event) pair: the hit,
        the cluster's index into :attr:`Clusters.points` and the fraction; the fractions of a
        hit sum to 1. Noise hits (label -1) have no entry.

    Examples
    --------
    The middle hit lies halfway between the two condensation points and is shared equally.

    >>> import numpy as np
    >>> x = np.array([[0.0], [0.5], [1.0]])
    >>> c = Clusters(labels=np.array([0, 0, 1]), points=np.array([0, 2]), event=np.array([0, 0]))
    >>> hit, row, f = sharing_fractions(c, x, sigma=0.3)
    >>> hit.tolist(), row.tolist(), f.round(3).tolist()
    ([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], [0.996, 0.004, 0.5, 0.5, 0.004, 0.996])
    """
    if not sigma >= 0:
        raise ConfigError(f"share_sigma must be >= 0, got {sigma}")
    lab = np.asarray(clusters.labels, dtype=np.int64)
    x = np.asarray(coords, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != lab.size:
        raise DataError(f"coords must have shape [N={lab.size}, D], got {x.shape}")
    ev = _as_batch(batch, lab.size)
    n_events = int(ev.max()) + 1 if ev.size else 0
    per_event = np.bincount(clusters.event, minlength=n_events)
    first = np.cumsum(per_event) - per_event
    hits = np.flatnonzero(lab >= 0)
    if sigma == 0:
        return hits, first[ev[hits]] + lab[hits], np.ones(hits.size)
    count = per_event[ev[hits]]
    pair_hit = np.repeat(hits, count)
    start = np.cumsum(count) - count
    pair_row = first[ev[pair_hit]] + np.arange(pair_hit.size) - np.repeat(start, count)
    d2 = ((x[pair_hit] - x[clusters.points[pair_row]]) ** 2).sum(axis=1)
    logit = -d2 / (2.0 * sigma**2)
    top = np.full(lab.size, -np.inf)
    np.maximum.at(top, pair_hit, logit)
    w = np.exp(logit - top[pair_hit])
    norm = np.bincount(pair_hit, weights=w, minlength=lab.size)
    return pair_hit, pair_row, w / norm[pair_hit]


def shared_cluster_energies(
    clusters: Clusters,
    coords: np.ndarray,
    energy: np.ndarray,
    batch: np.ndarray | None = None,
    sigma: float = 0.0,
    correction: np.ndarray | None = None,
) -> np.ndarray:
    """``[C]`` cluster energies with every hit shared by :func:`sharing_fractions`, times
    ``correction``; with ``sigma = 0`` the same as :func:`cluster_energies`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [0.5], [1.0]])
    >>> c = Clusters(labels=np.array([0, 0, 1]), points=np.array([0, 2]), event=np.array([0, 0]))
    >>> shared_cluster_energies(c, x, np.array([1.0, 2.0, 1.0]), sigma=0.3).round(3).tolist()
    [2.0, 2.0]
    >>> shared_cluster_energies(c, x, np.array([1.0, 2.0, 1.0])).tolist()
    [3.0, 1.0]
    """
    e = np.asarray(energy, dtype=np.float64)
    if e.shape != clusters.labels.shape:
        raise DataError(f"energy must have shape [N={clusters.labels.size}], got {e.shape}")
    hit, row, frac = sharing_fractions(clusters, coords, batch, sigma)
    out = np.bincount(row, weights=e[hit] * frac, minlength=clusters.n_clusters)
    return _corrected(out, correction)
