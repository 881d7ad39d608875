"""calo's numba CLUE: hand-made point sets, a brute-force reference, and the same clusters as
the ``cluestering`` package (1.4.0) of the CLUE authors."""

from __future__ import annotations

import numpy as np
import pytest

from calo.errors import ConfigError, DataError
from calo.reco.clue import clue, clue_fields


def test_hand_made_two_clusters_and_an_outlier() -> None:
    pts = np.array([[0.0, 0], [0.1, 0], [0.05, 0.1], [3, 3], [3.1, 3], [9, 9]])
    r = clue_fields(pts, np.ones(6), dc=0.5, rho_c=1.5, outlier_factor=2.0)
    # flat kernel: the point itself counts 1, each neighbour within dc 0.5
    assert r.rho.tolist() == [2.0, 2.0, 2.0, 1.5, 1.5, 1.0]
    # equal densities: the larger index is higher
    assert r.nearest_higher.tolist() == [1, 2, -1, 4, -1, -1]
    assert r.is_seed.tolist() == [False, False, True, False, True, False]
    assert r.labels.tolist() == [0, 0, 0, 1, 1, -1]


def test_weights_choose_the_seed_and_followers_of_an_outlier_stay_unassigned() -> None:
    x = np.array([[0.0], [0.3], [0.6], [10.0], [10.4]])
    w = np.array([1.0, 5.0, 1.0, 0.2, 0.1])
    r = clue_fields(x, w, dc=0.35, rho_c=2.0, outlier_factor=1.5)
    assert r.rho.tolist() == pytest.approx([3.5, 6.0, 3.5, 0.2, 0.1])
    assert r.labels.tolist() == [0, 0, 0, -1, -1]
    # point 4 follows point 3 (delta 0.4 <= 1.5 dc) but point 3 is an outlier
    assert r.nearest_higher[4] == 3 and not r.is_seed[3]


def _brute_force(x, w, dc, rhoc, factor):
    """The four steps of the module docstring, dense and in float64."""
    n = len(x)
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    k = np.where(np.eye(n, dtype=bool), 1.0, 0.5)
    rho = ((d <= dc) * k * w[None]).sum(1)
    dm = factor * dc
    higher = (rho[None] > rho[:, None]) | (
        (rho[None] == rho[:, None]) & (np.arange(n)[None] > np.arange(n)[:, None])
    )
    cand = np.where(higher & (d <= dm), d, np.inf)
    nh = np.where(np.isfinite(cand.min(1)), cand.argmin(1), -1)
    delta = cand.min(1)
    seed = (delta > dc) & (rho >= rhoc)
    out = (delta > dm) & (rho < rhoc)
    labels = np.full(n, -1)
    labels[seed] = np.arange(seed.sum())
    for i in np.lexsort((np.arange(n), rho))[::-1]:
        if not seed[i] and not out[i]:
            labels[i] = labels[nh[i]]
    return labels


def _blobs(rng, n, dim, weighted):
    centers = rng.normal(scale=5, size=(5, dim))
    x = centers[rng.integers(0, 5, n)] + rng.normal(size=(n, dim))
    w = rng.uniform(0.1, 2.0, n) if weighted else np.ones(n)
    return x, w


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_equals_a_dense_brute_force(rng, dim) -> None:
    for t in range(3):
        x, w = _blobs(rng, 300, dim, weighted=bool(t % 2))
        dc, rhoc, factor = 0.3 + 0.1 * t, 2.0 + t, 1.5 + 0.5 * t
        np.testing.assert_array_equal(
            clue(x, w, dc, rhoc, factor), _brute_force(x, w, dc, rhoc, factor)
        )


def test_events_are_clustered_separately() -> None:
    x = np.array([[0.0], [0.1], [0.0], [0.1], [5.0]])
    labels = clue(x, np.ones(5), 0.5, 1.0, batch=np.array([0, 0, 1, 1, 1]))
    assert labels.tolist() == [0, 0, 0, 0, 1]


def test_bad_settings_and_inputs_raise_calo_errors() -> None:
    x, w = np.zeros((3, 2)), np.ones(3)
    with pytest.raises(ConfigError, match="dc"):
        clue(x, w, 0.0, 1.0)
    with pytest.raises(ConfigError, match="kernel"):
        clue(x, w, 1.0, 1.0, kernel="box")
    with pytest.raises(ConfigError, match="parameter"):
        clue(x, w, 1.0, 1.0, kernel="exp")
    with pytest.raises(DataError, match="weights"):
        clue(x, np.ones(2), 1.0, 1.0)
    with pytest.raises(DataError, match="finite"):
        clue(x * np.nan, w, 1.0, 1.0)


# --- against cluestering 1.4.0 ------------------------------------------------------------------


def _cluestering(x, w, dc, rhoc, factor, ppbin=10, kernel=None):
    ref = pytest.importorskip("CLUEstering")
    c = ref.clusterer(dc, rhoc, factor, ppbin)
    c.read_data(np.vstack([x.T, w]).astype(np.float64))  # a copy: read_data works in place
    if kernel is not None:
        c.choose_kernel(*kernel)
    c.run_clue()
    return np.asarray(c.clust_prop.cluster_ids), np.asarray(c.clust_prop.is_seed, dtype=bool)


def _standardise(x):
    """cluestering's read_data: every coordinate to zero mean and unit variance, in float64."""
    x = x.T.copy().astype(np.float64)
    for d in range(len(x)):
        mean, std = np.mean(x[d]), np.std(x[d])
        x[d] -= mean
        if std != 0:
            x[d] /= std
    return x.T


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_same_clusters_as_cluestering_on_random_points(rng, dim) -> None:
    """Exactly the same labels (cluestering also numbers seeds by index). In 3 and more
    dimensions cluestering 1.4.0 visits some of its tiles twice (its global tile index is
    b0 + n b1 + n b2 + ..., not b0 + n b1 + n^2 b2), which counts neighbours twice; there
    the comparison runs with one tile (ppbin = N), where cluestering's search is complete."""
    for t in range(4):
        n = int(rng.integers(100, 1500))
        x, w = _blobs(rng, n, dim, weighted=bool(t % 2))
        dc, rhoc, factor = rng.uniform(0.05, 0.5), rng.uniform(1, 8), rng.uniform(1, 3)
        labels, seeds = _cluestering(x, w, dc, rhoc, factor, ppbin=10 if dim < 3 else n)
        r = clue_fields(_standardise(x), w, dc, rhoc, factor)
        np.testing.assert_array_equal(r.labels, labels)
        np.testing.assert_array_equal(r.is_seed, seeds)


def test_same_clusters_as_cluestering_on_hand_made_points() -> None:
    # a calorimeter-like layer: two showers and scattered noise on a jittered grid
    rng = np.random.default_rng(7)
    g = np.arange(-3.0, 3.01, 0.5)
    xx, yy = np.meshgrid(g, g)
    x = np.stack([xx.ravel(), yy.ravel()], 1) + rng.uniform(-0.01, 0.01, (g.size**2, 2))
    e = 10 * np.exp(-((x - [-1, -1]) ** 2).sum(1)) + 6 * np.exp(-((x - [1.5, 1]) ** 2).sum(1))
    e = e + rng.uniform(0, 0.05, len(e))
    for dc, rhoc, factor in [(0.2, 1.0, 2.0), (0.35, 3.0, 1.5), (0.6, 0.5, 3.0)]:
        labels, _ = _cluestering(x, e, dc, rhoc, factor)
        np.testing.assert_array_equal(clue(_standardise(x), e, dc, rhoc, factor), labels)


@pytest.mark.parametrize(
    ("kernel", "params"), [("exp", (2.0, 1.5)), ("gaus", (0.0, 0.3, 2.0)), ("flat", (0.3,))]
)
def test_same_clusters_as_cluestering_with_other_kernels(rng, kernel, params) -> None:
    x, w = _blobs(rng, 800, 2, weighted=True)
    labels, _ = _cluestering(x, w, 0.3, 3.0, 2.0, kernel=(kernel, list(params)))
    got = clue(_standardise(x), w, 0.3, 3.0, 2.0, kernel=kernel, kernel_params=params)
    np.testing.assert_array_equal(got, labels)
