"""Condensation clustering on hand-made events."""

from __future__ import annotations

import numpy as np
import pytest

from calo.errors import ConfigError, DataError
from calo.reco.condensation import (
    Clusters,
    cluster_energies,
    condensation_clusters,
    shared_cluster_energies,
    sharing_fractions,
)


def test_two_particles_and_noise() -> None:
    beta = np.array([0.95, 0.5, 0.4, 0.9, 0.6, 0.2, 0.1])
    x = np.array([[0, 0], [0.3, 0], [0, 0.45], [3, 3], [3.2, 3.1], [6, 6], [0, 0.2]])
    c = condensation_clusters(beta, x, t_beta=0.3, t_d=0.5)
    # hit 4 (beta 0.6) lies within t_d of hit 3 and joins it; hit 5 is far and below t_beta;
    # hit 6 is below t_beta but within t_d of hit 0
    assert c.labels.tolist() == [0, 0, 0, 1, 1, -1, 0]
    assert c.points.tolist() == [0, 3]
    assert c.event.tolist() == [0, 0]


def test_a_hit_already_taken_cannot_start_a_cluster_and_a_later_point_takes_the_rest() -> None:
    # on a line: points at 0 (0.9) and 0.8 (0.8); hit at 0.45 is nearer the second but is
    # taken by the first (within 0.5), the order being decreasing beta
    x = np.array([[0.0], [0.45], [0.8], [1.2]])
    c = condensation_clusters(np.array([0.9, 0.2, 0.8, 0.1]), x, t_beta=0.5, t_d=0.5)
    assert c.labels.tolist() == [0, 0, 1, 1]


def test_equal_beta_lower_index_first_and_threshold_is_strict() -> None:
    x = np.array([[0.0], [0.3], [5.0]])
    c = condensation_clusters(np.array([0.7, 0.7, 0.5]), x, t_beta=0.5, t_d=0.5)
    assert c.points.tolist() == [0]
    assert c.labels.tolist() == [0, 0, -1]  # beta 0.5 is not above t_beta 0.5


def test_distance_is_inclusive_and_clusters_per_event() -> None:
    x = np.array([[0.0], [0.5], [0.0], [0.5]])
    c = condensation_clusters(
        np.array([0.9, 0.1, 0.2, 0.8]), x, batch=np.array([1, 1, 0, 0]), t_beta=0.5, t_d=0.5
    )
    assert c.labels.tolist() == [0, 0, 0, 0]
    assert c.points.tolist() == [3, 0] and c.event.tolist() == [0, 1]


def test_no_hit_above_threshold_is_all_noise() -> None:
    c = condensation_clusters(np.array([0.1, 0.2]), np.zeros((2, 3)), t_beta=0.5)
    assert c.labels.tolist() == [-1, -1] and c.n_clusters == 0


def test_random_events_every_hit_above_threshold_is_clustered(rng) -> None:
    beta = rng.uniform(size=2000)
    x = rng.normal(scale=3, size=(2000, 3))
    batch = rng.integers(0, 4, size=2000)
    c = condensation_clusters(beta, x, batch, t_beta=0.3, t_d=0.7)
    assert (c.labels[beta > 0.3] >= 0).all()
    # every clustered hit lies within t_d of its condensation point, in its own event
    for k, (p, e) in enumerate(zip(c.points, c.event, strict=True)):
        label = k - int(np.searchsorted(c.event, e))
        members = (batch == e) & (c.labels == label)
        assert np.linalg.norm(x[members] - x[p], axis=1).max() <= 0.7
    # condensation points are never within t_d of an earlier point of the same event
    for e in range(4):
        pts = c.points[c.event == e]
        d = np.linalg.norm(x[pts][:, None] - x[pts][None], axis=2)
        assert (d[np.triu_indices(len(pts), 1)] > 0.7).all()


def test_cluster_energies_with_correction_per_event() -> None:
    labels = np.array([0, 1, 0, -1, 0])
    energy = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    batch = np.array([0, 0, 0, 0, 1])
    out = cluster_energies(labels, energy, batch, correction=np.array([2.0, 1.0, 0.5]))
    assert out.tolist() == [8.0, 2.0, 2.5]


def test_bad_inputs_raise_calo_errors() -> None:
    with pytest.raises(ConfigError, match="t_beta"):
        condensation_clusters(np.ones(2) * 0.5, np.zeros((2, 1)), t_beta=1.0)
    with pytest.raises(ConfigError, match="t_d"):
        condensation_clusters(np.ones(2) * 0.5, np.zeros((2, 1)), t_d=0.0)
    with pytest.raises(DataError, match="coords"):
        condensation_clusters(np.ones(2) * 0.5, np.zeros((3, 1)))
    with pytest.raises(DataError, match="correction"):
        cluster_energies(np.array([0, 1]), np.ones(2), correction=np.ones(3))


def _softmax_by_hand(x: np.ndarray, points: np.ndarray, sigma: float) -> np.ndarray:
    """``[N, C]`` fractions of every hit among the points, by the formula."""
    d2 = ((x[:, None, :] - x[points][None, :, :]) ** 2).sum(axis=2)
    w = np.exp(-d2 / (2 * sigma**2))
    return w / w.sum(axis=1, keepdims=True)


def test_sharing_fractions_are_the_softmax_of_the_distances_per_event(rng) -> None:
    # two events of 30 and 20 hits in 2-d; noise hits have no fractions
    x = rng.normal(0, 1.5, (50, 2))
    beta = rng.uniform(0, 1, 50)
    batch = np.repeat([0, 1], [30, 20])
    c = condensation_clusters(beta, x, batch, t_beta=0.6, t_d=1.0)
    assert np.bincount(c.event).min() >= 2  # the test means something: shared hits
    hit, row, f = sharing_fractions(c, x, batch, sigma=0.7)
    np.testing.assert_allclose(np.bincount(hit, weights=f, minlength=50)[c.labels >= 0], 1.0)
    assert set(hit.tolist()) == set(np.flatnonzero(c.labels >= 0).tolist())
    for e in (0, 1):
        rows = np.flatnonzero(c.event == e)
        want = _softmax_by_hand(x, c.points[rows], 0.7)
        for h, r, v in zip(hit, row, f, strict=True):
            if batch[h] == e:
                assert r in rows  # only the clusters of the hit's own event
                assert v == pytest.approx(want[h, r - rows[0]], rel=1e-12)
    # energies: the fractions times the hit energies, summed per cluster
    energy = rng.uniform(0.1, 2.0, 50)
    corr = rng.uniform(0.8, 1.2, c.n_clusters)
    want_e = np.bincount(row, weights=energy[hit] * f, minlength=c.n_clusters) * corr
    got = shared_cluster_energies(c, x, energy, batch, 0.7, corr)
    np.testing.assert_allclose(got, want_e)
    # sharing keeps the clustered energy and moves some of it between clusters
    assert got.sum() / corr.sum() != pytest.approx(0)
    hard = cluster_energies(c.labels, energy, batch, corr)
    np.testing.assert_allclose((got / corr).sum(), energy[c.labels >= 0].sum())
    assert np.abs(got - hard).max() > 1e-3


def test_sharing_with_sigma_zero_is_the_hard_sum_and_far_clusters_do_not_share(rng) -> None:
    x = np.concatenate([rng.normal(0, 0.1, (10, 2)), rng.normal(50, 0.1, (10, 2))])
    beta = np.r_[0.9, np.full(9, 0.1), 0.8, np.full(9, 0.1)]
    c = condensation_clusters(beta, x, t_beta=0.5, t_d=1.0)
    energy = rng.uniform(0.1, 2.0, 20)
    np.testing.assert_array_equal(
        shared_cluster_energies(c, x, energy), cluster_energies(c.labels, energy)
    )
    # clusters 50 units apart: the fractions underflow to exactly 0 and 1, no NaN
    np.testing.assert_allclose(
        shared_cluster_energies(c, x, energy, sigma=0.5), cluster_energies(c.labels, energy)
    )


def test_sharing_bad_inputs_raise() -> None:
    c = Clusters(labels=np.array([0, -1]), points=np.array([0]), event=np.array([0]))
    with pytest.raises(ConfigError, match="share_sigma"):
        sharing_fractions(c, np.zeros((2, 2)), sigma=-1.0)
    with pytest.raises(DataError, match="coords"):
        sharing_fractions(c, np.zeros((3, 2)), sigma=1.0)
    with pytest.raises(DataError, match="energy"):
        shared_cluster_energies(c, np.zeros((2, 2)), np.ones(3), sigma=1.0)
    with pytest.raises(DataError, match="correction"):
        shared_cluster_energies(c, np.zeros((2, 2)), np.ones(2), sigma=1.0, correction=np.ones(2))
    with pytest.raises(ConfigError, match="share_sigma"):
        from calo.reco.config import CondensationConfig

        CondensationConfig(share_sigma=-0.1)
