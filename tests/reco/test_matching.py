"""Matching of clusters to truth particles and the metrics, on hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from calo.errors import ConfigError, DataError
from calo.reco.config import MatchingConfig
from calo.reco.matching import binned_stats, match_clusters, matching_summary, spread_stats


def test_energy_weighted_iou_by_hand() -> None:
    # particle 0: hits 0,1 (E 4, 1); particle 1: hits 2,3 (E 2, 2); noise hit 4 (E 1)
    # cluster 0: hits 0,4; cluster 1: hits 1,2,3
    labels = np.array([0, 1, 1, 1, 0])
    particle = np.array([0, 0, 1, 1, -1])
    energy = np.array([4.0, 1.0, 2.0, 2.0, 1.0])
    m = match_clusters(labels, particle, energy)
    # IoU(c0, p0) = 4 / (5 + 5 - 4) = 2/3; IoU(c1, p1) = 4 / (5 + 4 - 4) = 0.8
    assert m.particle_match.tolist() == [0, 1]
    np.testing.assert_allclose(m.particle_iou, [2 / 3, 0.8])
    np.testing.assert_allclose(m.response, [5 / 5, 5 / 4])  # cluster sums / deposited
    assert m.cluster_match.tolist() == [0, 1]
    assert not m.merged.any() and not m.split.any()


def test_threshold_and_fake_cluster() -> None:
    labels = np.array([0, 0, 1, 2])
    particle = np.array([0, 1, 1, 1])
    m = match_clusters(labels, particle, np.ones(4))
    # particle 0 (one hit) shares cluster 0 with a hit of particle 1: IoU 1/2, not > 0.5
    assert m.particle_match.tolist() == [-1, -1]
    s = matching_summary(m)
    assert s["efficiency"] == 0.0 and s["fake_rate"] == 1.0
    loose = match_clusters(labels, particle, np.ones(4), config=MatchingConfig(iou_threshold=0.3))
    assert loose.particle_match.tolist() == [0, 1]  # p1 best with c1 or c2 (IoU 1/3 each)
    # particle 1 has a third of its energy in each of clusters 0, 1, 2: split
    assert loose.split.tolist() == [False, True]


def test_merge_split_rates_and_true_energy() -> None:
    # cluster 0 holds all of particles 0 and 1: both merged; particle 2 split over 1 and 2
    labels = np.array([0, 0, 1, 2])
    particle = np.array([0, 1, 2, 2])
    energy = np.array([3.0, 1.0, 1.0, 1.0])
    m = match_clusters(labels, particle, energy, true_energy=np.array([4.0, 1.0, 2.5, 2.5]))
    assert m.merged.tolist() == [True, True, False]
    assert m.split.tolist() == [False, False, True]
    assert m.particle_match.tolist() == [0, -1, -1]  # IoU(c0,p0)=3/4; p2: 1/2 each
    np.testing.assert_allclose(m.response, [4.0 / 4.0, np.nan, np.nan])
    s = matching_summary(m)
    assert s["merge_rate"] == pytest.approx(2 / 3) and s["split_rate"] == pytest.approx(1 / 3)


def test_batch_cluster_energy_distance_and_counts() -> None:
    labels = np.array([0, 0, 1, 0, -1])
    particle = np.array([0, 0, 1, 5, 5])
    energy = np.ones(5)
    batch = np.array([0, 0, 0, 1, 1])
    coords = np.array([[0.0, 0], [0, 2], [3, 1], [7, 7], [9, 9]])
    m = match_clusters(
        labels, particle, energy, batch, cluster_energy=np.array([2.2, 0.9, 1.5]), coords=coords
    )
    assert m.particle_event.tolist() == [0, 0, 1] and m.particle_id.tolist() == [0, 1, 5]
    # event 0 centroids (0, 1) and (3, 1): distance 3; event 1 has one particle
    np.testing.assert_allclose(m.nearest_distance, [3.0, 3.0, np.inf])
    # particle 5 (E 2) has IoU 1/2 with the event-1 cluster: not matched
    np.testing.assert_allclose(m.response, [1.1, 0.9, np.nan])
    assert m.n_pred.tolist() == [2, 1] and m.n_true.tolist() == [2, 1]
    s = matching_summary(m, energy_edges=[0, 1.5, 3], distance_edges=[0, 5, np.inf])
    assert s["response_vs_energy"]["n"] == [1, 1]  # energies 2, 1 matched; 2 not
    assert s["response_vs_distance"]["n"] == [2, 0]
    assert s["efficiency_vs_energy"]["value"] == [1.0, 0.5]
    assert s["cluster_count"]["exact_fraction"] == 1.0


def test_spread_and_binned_stats() -> None:
    s = spread_stats(np.array([1.0, 2.0, 3.0, np.inf]))
    assert s["n"] == 3 and s["mean"] == 2.0 and s["median"] == 2.0
    b = binned_stats(np.array([0.5, 1.5, 1.7]), np.array([1.0, 2.0, 4.0]), [0, 1, 2, 3])
    assert b["n"] == [1, 2, 0] and b["mean"][1] == 3.0 and np.isnan(b["mean"][2])


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match="shape"):
        match_clusters(np.zeros(3, int), np.zeros(2, int), np.ones(3))
    with pytest.raises(DataError, match="cluster_energy"):
        match_clusters(np.zeros(2, int), np.zeros(2, int), np.ones(2), cluster_energy=np.ones(3))
    with pytest.raises(ConfigError, match="iou_threshold"):
        MatchingConfig(iou_threshold=1.5)
