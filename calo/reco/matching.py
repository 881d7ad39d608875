"""Matching predicted clusters to truth particles, and the metrics built on the matching.

Within one event, with hit energies :math:`E_i`, the energy-weighted intersection over union
of cluster c and particle p is (docs/condensation.md)

.. math::

    \\mathrm{IoU}_{cp} = \\frac{E(c \\cap p)}{E(c) + E(p) - E(c \\cap p)},

:math:`E(S) = \\sum_{i \\in S} E_i`, where :math:`E(c)` includes the noise hits the cluster
took and :math:`E(p)` the hits of p that no cluster took. Clusters and particles are paired
one to one so as to maximise the summed IoU (Hungarian assignment); a pair is a *match* when
its IoU exceeds the threshold (0.5 by default; above 0.5 a particle has at most one cluster
with such an IoU, so the assignment only matters below it). Then

* efficiency: matched particles / particles; fake rate: unmatched clusters / clusters;
* merged particle: a cluster holds more than ``merge_fraction`` of its energy and more than
  ``merge_fraction`` of another particle's; merge rate: merged particles / particles;
* split particle: two or more clusters each hold more than ``split_fraction`` of its energy;
  split rate: split particles / particles;
* response of a matched particle: :math:`E_{pred} / E_{true}` (the cluster's energy, with
  the learned correction if any, over the particle's true energy, or its deposited energy
  when no true energy is given), summarised by mean, RMS and robust width (half the 16-84 %
  interval) in bins of the true energy and of the distance to the nearest other particle of
  the event (between energy-weighted centroids of the particles' hits);
* number of clusters against the number of particles, per event.

Everything is plain numpy, for any clustering (condensation, CLUE, ...).

Examples
--------
>>> import numpy as np
>>> m = match_clusters(np.array([0, 0, 1, -1]), np.array([0, 0, 1, 1]), np.ones(4))
>>> m.particle_match.tolist(), m.particle_iou.tolist()
([0, -1], [1.0, 0.0])
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from calo.errors import DataError
from calo.reco.config import MatchingConfig
from calo.reco.stats import binned_stats, spread_stats

__all__ = [
    "MatchResult",
    "binned_stats",
    "match_clusters",
    "matching_summary",
    "spread_stats",
]


@dataclass(frozen=True)
class MatchResult:
    """Matching of a batch: one row per truth particle, per cluster and per event.

    Particles are ordered by event, then id; clusters by event, then label.

    Attributes
    ----------
    particle_event, particle_id:
        ``[P]`` event and truth id of every particle.
    particle_energy:
        ``[P]`` true energy (the deposited energy when none was given).
    particle_deposited:
        ``[P]`` summed energy of the particle's hits.
    particle_match:
        ``[P]`` index (into the cluster rows) of the matched cluster, -1 if none.
    particle_iou:
        ``[P]`` IoU with the matched cluster (0 if none).
    response:
        ``[P]`` matched cluster energy over particle energy (NaN if unmatched).
    merged, split:
        ``[P]`` the particle is merged / split (module docstring).
    nearest_distance:
        ``[P]`` distance to the nearest other particle of the event (inf if alone; NaN if
        no coordinates were given).
    cluster_event, cluster_label:
        ``[C]`` event and label of every cluster.
    cluster_energy:
        ``[C]`` energy of every cluster (given, or the sum of its hits).
    cluster_match:
        ``[C]`` index of the matched particle, -1 for a fake.
    n_pred, n_true:
        ``[B]`` clusters and particles per event.
    """

    particle_event: np.ndarray
    particle_id: np.ndarray
    particle_energy: np.ndarray
    particle_deposited: np.ndarray
    particle_match: np.ndarray
    particle_iou: np.ndarray
    response: np.ndarray
    merged: np.ndarray
    split: np.ndarray
    nearest_distance: np.ndarray
    cluster_event: np.ndarray
    cluster_label: np.ndarray
    cluster_energy: np.ndarray
    cluster_match: np.ndarray
    n_pred: np.ndarray
    n_true: np.ndarray
    config: MatchingConfig = field(default_factory=MatchingConfig)


def _event_match(lab, part, e, xyz, true_e, cfg):
    """Matching of one event (arrays restricted to the event)."""
    clusters = np.unique(lab[lab >= 0])
    particles = np.unique(part[part >= 0])
    ci = np.searchsorted(clusters, lab)
    pi = np.searchsorted(particles, part)
    n_c, n_p = clusters.size, particles.size
    e_c = np.zeros(n_c)
    e_p = np.zeros(n_p)
    inter = np.zeros((n_c, n_p))
    np.add.at(e_c, ci[lab >= 0], e[lab >= 0])
    np.add.at(e_p, pi[part >= 0], e[part >= 0])
    both = (lab >= 0) & (part >= 0)
    np.add.at(inter, (ci[both], pi[both]), e[both])
    union = e_c[:, None] + e_p[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    p_match = np.full(n_p, -1)
    c_match = np.full(n_c, -1)
    if n_c and n_p:
        rows, cols = linear_sum_assignment(iou, maximize=True)
        ok = iou[rows, cols] > cfg.iou_threshold
        p_match[cols[ok]] = rows[ok]
        c_match[rows[ok]] = cols[ok]
    p_iou = np.zeros(n_p)  # an event with particles but no cluster finds none of them
    if n_c:
        p_iou = np.where(p_match >= 0, iou[np.maximum(p_match, 0), np.arange(n_p)], 0.0)
    frac = np.divide(inter, e_p[None, :], out=np.zeros_like(inter), where=e_p[None, :] > 0)
    big = frac > cfg.merge_fraction  # [C, P]
    merged = (big & (big.sum(axis=1, keepdims=True) >= 2)).any(axis=0)
    split = (frac > cfg.split_fraction).sum(axis=0) >= 2
    t_e = np.zeros(n_p)
    if true_e is not None:
        np.maximum.at(t_e, pi[part >= 0], true_e[part >= 0])
    else:
        t_e = e_p
    dist = np.full(n_p, np.nan)
    if xyz is not None and n_p:
        cen = np.zeros((n_p, xyz.shape[1]))
        w = np.clip(e[part >= 0], 0, None)
        np.add.at(cen, pi[part >= 0], xyz[part >= 0] * w[:, None])
        cen /= np.maximum(np.bincount(pi[part >= 0], weights=w, minlength=n_p), 1e-300)[:, None]
        d = np.linalg.norm(cen[:, None] - cen[None], axis=2)
        np.fill_diagonal(d, np.inf)
        dist = d.min(axis=1) if n_p > 1 else np.full(n_p, np.inf)
    return clusters, particles, e_c, e_p, t_e, p_match, c_match, p_iou, merged, split, dist


def match_clusters(
    labels: np.ndarray,
    particle: np.ndarray,
    energy: np.ndarray,
    batch: np.ndarray | None = None,
    *,
    cluster_energy: np.ndarray | None = None,
    true_energy: np.ndarray | None = None,
    coords: np.ndarray | None = None,
    config: MatchingConfig | None = None,
) -> MatchResult:
    """Match the clusters of every event to its truth particles (module docstring).

    Parameters
    ----------
    labels:
        ``[N]`` predicted cluster index within the event, -1 for unclustered hits.
    particle:
        ``[N]`` truth particle id within the event, -1 for noise.
    energy:
        ``[N]`` hit energies (the IoU weights).
    batch:
        ``[N]`` event index (``None``: one event).
    cluster_energy:
        Optional ``[C]`` predicted cluster energies in the order of
        :func:`calo.reco.condensation.cluster_energies` (every label 0..max of each
        event); default: the sum of the cluster's hit energies.
    true_energy:
        Optional ``[N]`` true energy of each hit's particle (default: deposited energy).
    coords:
        Optional ``[N, D]`` hit positions for the distance to the nearest other particle.
    config:
        Thresholds (:class:`calo.reco.config.MatchingConfig`).

    Returns
    -------
    MatchResult

    Examples
    --------
    Particle 0 is found; cluster 1 takes particle 1's two hits and particle 2's one hit:
    particle 1 is matched (IoU 2/3), particle 2 is not, and both are merged.

    >>> import numpy as np
    >>> m = match_clusters(np.array([0, 0, 1, 1, 1]), np.array([0, 0, 1, 1, 2]), np.ones(5))
    >>> m.particle_match.tolist(), m.particle_iou.round(3).tolist()
    ([0, 1, -1], [1.0, 0.667, 0.0])
    >>> m.merged.tolist(), m.n_pred.tolist(), m.n_true.tolist()
    ([False, True, True], [2], [3])
    """
    cfg = config or MatchingConfig()
    lab = np.asarray(labels, dtype=np.int64)
    part = np.asarray(particle, dtype=np.int64)
    e = np.asarray(energy, dtype=np.float64)
    n = lab.size
    if lab.shape != (n,) or part.shape != (n,) or e.shape != (n,):
        raise DataError(
            f"labels, particle and energy must have shape [N], got {lab.shape}, "
            f"{part.shape}, {e.shape}"
        )
    if batch is None:
        ev = np.zeros(n, dtype=np.int64)
    else:
        ev = np.asarray(batch)
        if ev.shape != (n,) or not np.issubdtype(ev.dtype, np.integer):
            raise DataError(f"batch must be an integer array of shape [N={n}], got {ev.shape}")
    te = None if true_energy is None else np.asarray(true_energy, dtype=np.float64)
    xyz = None if coords is None else np.asarray(coords, dtype=np.float64).reshape(n, -1)
    n_events = int(ev.max()) + 1 if n else 0
    # cluster rows: every label 0..max of each event, as cluster_energies orders them
    per_event = np.zeros(n_events, dtype=np.int64)
    np.maximum.at(per_event, ev, lab + 1)
    c_offset = np.cumsum(per_event) - per_event
    n_rows = int(per_event.sum())
    if cluster_energy is not None:
        ce = np.asarray(cluster_energy, dtype=np.float64)
        if ce.shape != (n_rows,):
            raise DataError(f"cluster_energy must have shape [C={n_rows}], got {ce.shape}")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in MatchResult.__dataclass_fields__}
    c_match_all = np.full(n_rows, -1)
    c_energy = np.zeros(n_rows)
    c_event = np.repeat(np.arange(n_events), per_event)
    c_label = np.arange(n_rows) - np.repeat(c_offset, per_event)
    n_pred = np.zeros(n_events, dtype=np.int64)
    n_true = np.zeros(n_events, dtype=np.int64)
    p_offset = 0
    for b in range(n_events):
        sel = ev == b
        out = _event_match(
            lab[sel], part[sel], e[sel], None if xyz is None else xyz[sel],
            None if te is None else te[sel], cfg,
        )  # fmt: skip
        clusters, particles, e_c, _, t_e, p_match, c_match, p_iou, merged, split, dist = out
        c_rows = c_offset[b] + clusters
        c_energy[c_rows] = e_c if cluster_energy is None else ce[c_rows]
        c_match_all[c_rows] = np.where(c_match >= 0, p_offset + c_match, -1)
        matched_rows = np.full(particles.size, -1)
        if clusters.size:  # an event without clusters matches none of its particles
            matched_rows = np.where(p_match >= 0, c_rows[np.maximum(p_match, 0)], -1)
        n_pred[b], n_true[b] = clusters.size, particles.size
        rows["particle_event"].append(np.full(particles.size, b))
        rows["particle_id"].append(particles)
        rows["particle_energy"].append(t_e)
        rows["particle_deposited"].append(out[3])
        rows["particle_match"].append(matched_rows)
        rows["particle_iou"].append(p_iou)
        rows["merged"].append(merged)
        rows["split"].append(split)
        rows["nearest_distance"].append(dist)
        p_offset += particles.size

    def cat(key: str, dtype: type) -> np.ndarray:
        return np.concatenate(rows[key]).astype(dtype) if rows[key] else np.zeros(0, dtype)

    p_match_all = cat("particle_match", np.int64)
    p_energy = cat("particle_energy", np.float64)
    resp = np.full(p_match_all.size, np.nan)
    ok = (p_match_all >= 0) & (p_energy > 0)
    resp[ok] = c_energy[p_match_all[ok]] / p_energy[ok]
    return MatchResult(
        particle_event=cat("particle_event", np.int64),
        particle_id=cat("particle_id", np.int64),
        particle_energy=p_energy,
        particle_deposited=cat("particle_deposited", np.float64),
        particle_match=p_match_all,
        particle_iou=cat("particle_iou", np.float64),
        response=resp,
        merged=cat("merged", bool),
        split=cat("split", bool),
        nearest_distance=cat("nearest_distance", np.float64),
        cluster_event=c_event,
        cluster_label=c_label,
        cluster_energy=c_energy,
        cluster_match=c_match_all,
        n_pred=n_pred,
        n_true=n_true,
        config=cfg,
    )


def _rate(num: int, den: int) -> float:
    return float(num) / den if den else float("nan")


def matching_summary(
    m: MatchResult,
    energy_edges: tuple[float, ...] | list[float] = (0, 5, 10, 20, 40, 80, 160),
    distance_edges: tuple[float, ...] | list[float] = (0, 1, 2, 4, 8, 16, np.inf),
) -> dict[str, object]:
    """Efficiency, fake, merge and split rates, responses in bins, cluster counts.

    Only the labels present in an event count as its clusters.

    Returns
    -------
    dict
        ``n_particles``, ``n_clusters``, ``efficiency``, ``fake_rate``, ``merge_rate``,
        ``split_rate``, ``response`` (:func:`spread_stats` of all matched particles),
        ``response_vs_energy`` and ``response_vs_distance`` (:func:`binned_stats`),
        ``efficiency_vs_energy`` (a list per energy bin) and ``cluster_count``
        (mean and RMS of n_pred - n_true per event, fraction of events with n_pred == n_true).

    Examples
    --------
    >>> import numpy as np
    >>> m = match_clusters(np.array([0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, -1]), np.ones(5))
    >>> s = matching_summary(m)
    >>> s["efficiency"], round(s["fake_rate"], 3), s["cluster_count"]["exact_fraction"]
    (1.0, 0.333, 0.0)
    """
    n_clusters = int(m.n_pred.sum())
    n_part = int(m.particle_event.size)
    matched = m.particle_match >= 0
    n_fake = n_clusters - int(matched.sum())
    diff = (m.n_pred - m.n_true).astype(np.float64)
    eff_bins = []
    for lo, hi in itertools.pairwise(energy_edges):
        sel = (m.particle_energy >= lo) & (m.particle_energy < hi)
        eff_bins.append(_rate(int(matched[sel].sum()), int(sel.sum())))
    return {
        "n_particles": n_part,
        "n_clusters": n_clusters,
        "efficiency": _rate(int(matched.sum()), n_part),
        "fake_rate": _rate(n_fake, n_clusters),
        "merge_rate": _rate(int(m.merged.sum()), n_part),
        "split_rate": _rate(int(m.split.sum()), n_part),
        "response": spread_stats(m.response),
        "response_vs_energy": binned_stats(m.particle_energy, m.response, list(energy_edges)),
        "response_vs_distance": binned_stats(m.nearest_distance, m.response, list(distance_edges)),
        "efficiency_vs_energy": {"edges": [float(v) for v in energy_edges], "value": eff_bins},
        "cluster_count": {
            "mean_difference": float(diff.mean()) if diff.size else float("nan"),
            "rms_difference": float(np.sqrt((diff**2).mean())) if diff.size else float("nan"),
            "exact_fraction": float((diff == 0).mean()) if diff.size else float("nan"),
        },
    }
