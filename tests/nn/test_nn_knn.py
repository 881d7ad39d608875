"""calo.nn.knn against brute force: ragged events, ties, tiny events, gradients, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from calo.errors import ConfigError, DataError
from calo.nn import _knn_kdtree as _kd
from calo.nn import batch_to_ptr, gather_dist2, knn, knn_graph
from calo.nn._knn_kdtree import knn_kdtree

BACKENDS = ["kdtree", "scipy", "torch", "dense"]


def brute_force(x: torch.Tensor, k: int, batch: torch.Tensor | None) -> np.ndarray:
    """Sorted squared distances [N, k] to the k nearest of the same event (float64, inf pad)."""
    xn = x.detach().double().numpy()
    b = np.zeros(len(xn), dtype=int) if batch is None else batch.numpy()
    out = np.full((len(xn), k), np.inf)
    for ev in np.unique(b):
        sel = np.flatnonzero(b == ev)
        d = ((xn[sel, None, :] - xn[None, sel, :]) ** 2).sum(-1)
        d.sort(axis=1)
        m = min(k, len(sel))
        out[sel, :m] = d[:, :m]
    return out


def check_against_brute_force(x, k, batch, idx, d2, rtol=1e-5, atol=1e-6):
    n = x.shape[0]
    ref = brute_force(x, k, batch)
    assert idx.shape == (n, k) and d2.shape == (n, k)
    assert idx.dtype == torch.int64 and d2.dtype == x.dtype
    # the point itself first
    assert torch.equal(idx[:, 0], torch.arange(n))
    # missing neighbours exactly where the event is too small
    missing = np.isinf(ref)
    assert np.array_equal((idx < 0).numpy(), missing)
    assert np.isinf(d2.detach().numpy()[missing]).all()
    # same event, no repeated neighbour
    b = torch.zeros(n, dtype=torch.long) if batch is None else batch
    valid = idx >= 0
    assert torch.equal(b[idx.clamp(min=0)][valid], b.unsqueeze(1).expand_as(idx)[valid])
    for row in idx.tolist():
        row = [j for j in row if j >= 0]
        assert len(set(row)) == len(row)
    # distances: the k smallest of the event, nearest first
    np.testing.assert_allclose(np.sort(d2.detach().double().numpy(), 1), ref, rtol=rtol, atol=atol)
    np.testing.assert_allclose(d2.detach().double().numpy(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ragged_batch_matches_brute_force(backend, dtype, ragged):
    x, batch = ragged([1, 3, 40, 257, 7, 120], 4, dtype=dtype, seed=1)
    idx, d2 = knn(x, 10, batch, backend=backend)
    check_against_brute_force(x, 10, batch, idx, d2)
    # dist2 is the squared distance to the returned index
    torch.testing.assert_close(d2, gather_dist2(x, idx))


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_event_and_k_larger_than_event(backend, ragged):
    x, _ = ragged([12], 3, seed=2)
    idx, d2 = knn(x, 20, None, backend=backend)
    check_against_brute_force(x, 20, None, idx, d2)
    assert (idx[:, 12:] == -1).all() and torch.isinf(d2[:, 12:]).all()
    assert (idx[:, :12] >= 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_point_events_and_empty_events(backend):
    x = torch.tensor([[0.0, 0.0], [5.0, 5.0], [5.0, 6.0]])
    batch = torch.tensor([0, 2, 2])  # event 1 is empty
    idx, d2 = knn(x, 2, batch, backend=backend)
    assert idx.tolist() == [[0, -1], [1, 2], [2, 1]]
    assert d2.tolist() == [[0.0, float("inf")], [0.0, 1.0], [0.0, 1.0]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_input(backend):
    idx, d2 = knn(torch.empty(0, 4), 5, torch.empty(0, dtype=torch.long), backend=backend)
    assert idx.shape == (0, 5) and d2.shape == (0, 5)
    assert knn_graph(torch.empty(0, 4), 5, backend=backend).shape == (2, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_on_a_grid(backend):
    # integer grid: many neighbours at exactly equal distances
    g = torch.arange(5, dtype=torch.float32)
    x = torch.cartesian_prod(g, g)
    idx, d2 = knn(x, 9, backend=backend)
    check_against_brute_force(x, 9, None, idx, d2, rtol=0, atol=0)
    # an interior point: itself, 4 at distance 1, 4 at distance 2
    i = 12
    assert d2[i].tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert set(idx[i, 1:5].tolist()) == {7, 11, 13, 17}


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_keep_the_point_itself_first(backend):
    # 6 copies of one point and 3 of another: with k = 4 a point has more twins than slots
    x = torch.tensor([[1.0, 2.0]] * 6 + [[3.0, 2.0]] * 3)
    idx, d2 = knn(x, 4, backend=backend)
    assert torch.equal(idx[:, 0], torch.arange(9))
    assert (d2[:6] == 0).all()
    assert (idx[:6] < 6).all()
    assert d2[6:].tolist() == [[0, 0, 0, 4]] * 3
    for row in idx.tolist():
        assert len(set(row)) == 4


def reference_with_index_ties(x: np.ndarray, ptr: list[int], k: int) -> np.ndarray:
    """Brute force ordered by (distance, index), the point itself moved to the front."""
    out = np.full((len(x), k), -1)
    for lo, hi in itertools.pairwise(ptr):
        for i in range(lo, hi):
            d2 = ((x[lo:hi] - x[i]) ** 2).sum(1)
            order = np.lexsort((np.arange(lo, hi), d2))[: min(k, hi - lo)] + lo
            if i not in order:
                order[-1] = i
            order = np.concatenate([[i], order[order != i]])
            out[i, : len(order)] = order
    return out


@pytest.mark.parametrize("leaf_size", [1, 2, 7, 32])
def test_kdtree_ties_broken_by_index(leaf_size):
    # a 3-D integer grid repeated twice: exact ties and exact twins across many leaves
    g = np.arange(4.0)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    x = np.concatenate([grid, grid[::-1], grid[:5]])
    ptr = [0, 64, 128, 133]
    got, got_d2 = knn_kdtree(x, np.array(ptr), 10, leaf_size=leaf_size)
    ref = reference_with_index_ties(x, ptr, 10)
    assert np.array_equal(got, ref)
    valid = ref >= 0
    exact = ((x[np.where(valid, ref, 0)] - x[:, None, :]) ** 2).sum(-1)
    assert np.array_equal(got_d2[valid], exact[valid])
    assert np.isinf(got_d2[~valid]).all()
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([64, 64, 5]))
    idx, d2 = knn(torch.from_numpy(x), 10, batch)
    assert np.array_equal(idx.numpy(), ref)
    assert torch.equal(d2, torch.from_numpy(got_d2))


def _ragged_points(sizes, s, rng, grid):
    """Events of the given sizes; on a coarse grid (exact arithmetic, many ties and twins)."""
    parts = [rng.integers(0, 6, (n, s)) / 8.0 if grid else rng.random((n, s)) for n in sizes]
    return np.concatenate(parts), np.concatenate([[0], np.cumsum(sizes)])


@pytest.mark.parametrize("s", [1, 3, 4, 5])
@pytest.mark.parametrize("window", [1, 8, 64])
@pytest.mark.parametrize("leaf_size", [1, 5, 32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kdtree_exact_on_ties_twins_and_small_events(s, window, leaf_size, dtype):
    # empty events, events smaller than, equal to and just above k, one with more twins than k
    rng = np.random.default_rng(10 * s + window + leaf_size)
    sizes = [0, 1, 7, 40, 0, 41, 260, 3]
    x, ptr = _ragged_points(sizes, s, rng, grid=True)
    x = x.astype(dtype)
    got, got_d2 = knn_kdtree(x, ptr, 40, leaf_size=leaf_size, window=window)
    ref = reference_with_index_ties(x.astype(np.float64), ptr.tolist(), 40)
    assert np.array_equal(got, ref)
    valid = ref >= 0
    exact = ((x[np.where(valid, ref, 0)].astype(np.float64) - x[:, None, :]) ** 2).sum(-1)
    assert np.array_equal(got_d2[valid], exact[valid])
    assert np.isinf(got_d2[~valid]).all()


@pytest.mark.parametrize("window", [1, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kdtree_random_points_match_brute_force(window, dtype):
    rng = np.random.default_rng(11)
    x, ptr = _ragged_points([900, 0, 35, 1200], 4, rng, grid=False)
    x = x.astype(dtype)
    got, got_d2 = knn_kdtree(x, ptr, 40, window=window)
    batch = torch.repeat_interleave(torch.arange(4), torch.from_numpy(np.diff(ptr)))
    ref = brute_force(torch.from_numpy(x), 40, batch)
    np.testing.assert_allclose(np.sort(got_d2, 1), ref, rtol=1e-12, atol=0)
    assert np.array_equal(got_d2, np.sort(got_d2, 1))  # nearest first
    assert np.array_equal(got[:, 0], np.arange(len(x)))
    valid = got >= 0
    exact = ((x[np.where(valid, got, 0)].astype(np.float64) - x[:, None, :]) ** 2).sum(-1)
    np.testing.assert_allclose(got_d2[valid], exact[valid], rtol=1e-12, atol=0)
    assert (batch.numpy()[np.where(valid, got, 0)] == batch.numpy()[:, None])[valid].all()


@pytest.mark.parametrize("speculate", [(0.3, 0.6), (1.0, 1.0), (1.1, 1.4), (3.0, 9.0)])
def test_kdtree_guessed_radii_never_change_the_result(speculate):
    # too small guesses make (almost) every search fall back to the guaranteed radius
    rng = np.random.default_rng(16)
    x, ptr = _ragged_points([700, 3, 0, 41, 500], 4, rng, grid=False)
    ref, ref_d2 = knn_kdtree(x, ptr, 40, speculate=(1e9, 1e9))  # guaranteed radius only
    got, got_d2 = knn_kdtree(x, ptr, 40, speculate=speculate)
    assert np.array_equal(got, ref) and np.array_equal(got_d2, ref_d2)
    grid, gptr = _ragged_points([300, 41, 7], 3, rng, grid=True)
    got, _ = knn_kdtree(grid, gptr, 40, speculate=speculate)
    assert np.array_equal(got, reference_with_index_ties(grid, gptr.tolist(), 40))


def test_kdtree_fallback_path_is_taken():
    x = np.random.default_rng(17).random((2000, 4))
    *tree, chunks = _kd._prepare(x, np.array([0, 2000]), 32, 2000)
    retries = []
    for spec in [(0.5, 0.5), (1.1, 1.4)]:
        out, outd = np.empty((2000, 40), np.int64), np.empty((2000, 40))
        retries.append(_kd._query(*tree, 40, chunks, out, outd, 8, *spec))
        assert np.array_equal(out, knn_kdtree(x, np.array([0, 2000]), 40)[0])
    assert retries[0] > 1900 and 0 < retries[1] < 1000


def test_kdtree_float32_storage_changes_nothing():
    # float32 input is searched in float32 storage; its float64 copy must give the same answer
    x = np.random.default_rng(12).random((3000, 4)).astype(np.float32)
    ptr = np.array([0, 1000, 3000])
    one, d_one = knn_kdtree(x, ptr, 40)
    two, d_two = knn_kdtree(x.astype(np.float64), ptr, 40)
    assert np.array_equal(one, two) and np.array_equal(d_one, d_two)


def test_kdtree_threads_split_events_into_runs():
    # small runs force events split over several threads; results must be identical
    x, ptr = _ragged_points([700, 5, 0, 900], 4, np.random.default_rng(13), grid=False)
    one, d_one = knn_kdtree(x, ptr, 40, num_threads=1)
    two, d_two = knn_kdtree(x, ptr, 40, num_threads=2, min_points_per_thread=64)
    assert np.array_equal(one, two) and np.array_equal(d_one, d_two)
    grid, gptr = _ragged_points([300, 41], 3, np.random.default_rng(14), grid=True)
    ref = reference_with_index_ties(grid, gptr.tolist(), 40)
    got, _ = knn_kdtree(grid, gptr, 40, num_threads=2, min_points_per_thread=16)
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_input(dtype, ragged):
    x, batch = ragged([30, 50], 4, seed=15)
    x = x.to(dtype)
    idx, d2 = knn(x, 8, batch)
    assert d2.dtype == dtype
    ref_idx, _ = knn(x.float(), 8, batch)
    assert torch.equal(idx, ref_idx)


def test_kdtree_threads_give_identical_results(ragged):
    x, batch = ragged([3000, 17], 4, seed=7)
    ptr = batch_to_ptr(batch, len(batch)).numpy()
    one, d_one = knn_kdtree(x.numpy(), ptr, 40, num_threads=1)
    two, d_two = knn_kdtree(x.numpy(), ptr, 40, num_threads=2)
    assert np.array_equal(one, two) and np.array_equal(d_one, d_two)
    d2 = gather_dist2(x, torch.from_numpy(one)).double().numpy()
    ref = brute_force(x, 40, batch)
    np.testing.assert_allclose(d2, ref, rtol=1e-5, atol=1e-6)


def test_torch_backend_chunked_equals_kdtree(ragged):
    # a tiny max_block forces row chunks and multi-event blocks with cross-event masking
    x, batch = ragged([3, 5, 2, 60, 1, 9, 33], 4, seed=3)
    ref_idx, ref_d2 = knn(x, 6, batch, backend="kdtree")
    for max_block in (1, 7, 64, 300, 1 << 20):
        idx, d2 = knn(x, 6, batch, backend="torch", max_block=max_block)
        torch.testing.assert_close(d2, ref_d2)
        assert torch.equal(idx, ref_idx)  # no ties in random data


def test_dist2_carries_gradients(ragged):
    x, batch = ragged([6, 9], 3, dtype=torch.float64, seed=4)
    idx, _ = knn(x, 5, batch)

    def f(inp):
        return gather_dist2(inp, idx)

    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(),))
    # and through knn itself (perturbations of 1e-6 do not change the neighbours)
    xr = x.clone().requires_grad_()
    _, d2 = knn(xr, 5, batch)
    d2.sum().backward()
    expected = torch.zeros_like(x)
    for i in range(x.shape[0]):
        for j in idx[i].tolist():
            expected[i] += 2 * (x[i] - x[j])
            expected[j] += 2 * (x[j] - x[i])
    torch.testing.assert_close(xr.grad, expected)
    assert torch.autograd.gradcheck(lambda t: knn(t, 5, batch)[1], (x.clone().requires_grad_(),))


def test_gradient_ignores_missing_neighbours():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True)
    _, d2 = knn(x, 3)
    d2[torch.isfinite(d2)].sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, torch.tensor([[-12.0, -16.0], [12.0, 16.0]]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("loop", [True, False])
def test_knn_graph_convention(backend, loop, ragged):
    x, batch = ragged([4, 30, 2], 2, seed=5)
    k = 5
    ei = knn_graph(x, k, batch, loop=loop, backend=backend)
    src, dst = ei
    ref = brute_force(x, k + (0 if loop else 1), batch)
    for i in range(x.shape[0]):
        nbrs = src[dst == i]
        # nearest first, within the event, self-loop only with loop=True
        assert (batch[nbrs] == batch[i]).all()
        assert (i in nbrs.tolist()) == loop
        d = ((x[nbrs] - x[i]) ** 2).sum(-1).double().numpy()
        expect = ref[i][np.isfinite(ref[i])]
        if not loop:
            expect = expect[1:]
        np.testing.assert_allclose(d, expect, rtol=1e-5, atol=1e-6)
    # edges grouped by centre
    assert (dst.diff() >= 0).all()


def test_batch_to_ptr():
    assert batch_to_ptr(None, 4).tolist() == [0, 4]
    assert batch_to_ptr(torch.tensor([1, 1, 3]), 3).tolist() == [0, 0, 2, 2, 3]


@pytest.mark.parametrize(
    ("x", "k", "batch", "message"),
    [
        (torch.zeros(5), 2, None, r"shape \[N, S\]"),
        (torch.zeros(5, 2, 1), 2, None, r"shape \[N, S\]"),
        (torch.zeros(5, 2, dtype=torch.long), 2, None, "floating-point"),
        (torch.zeros(5, 2), 0, None, "positive integer"),
        (torch.zeros(5, 2), 2.5, None, "positive integer"),
        (torch.zeros(3, 2), 2, torch.tensor([1, 0, 0]), "sorted"),
        (torch.zeros(3, 2), 2, torch.tensor([0, 0]), "shape"),
        (torch.zeros(3, 2), 2, torch.tensor([0.0, 0.0, 1.0]), "integer"),
        (torch.zeros(3, 2), 2, torch.tensor([-1, 0, 0]), "non-negative"),
        (torch.tensor([[0.0], [float("nan")]]), 1, None, "NaN"),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_raises(x, k, batch, message, backend):
    with pytest.raises(ConfigError if message == "positive integer" else DataError, match=message):
        knn(x, k, batch, backend=backend)


def test_unknown_backend():
    with pytest.raises(ConfigError, match="unknown knn backend"):
        knn(torch.zeros(3, 2), 2, backend="faiss")


def test_torch_cluster_backend(ragged):
    try:
        import torch_cluster  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="torch-cluster"):
            knn(torch.zeros(3, 2), 2, backend="torch_cluster")
        return
    x, batch = ragged([5, 40, 3], 4, seed=6)
    ref_idx, ref_d2 = knn(x, 8, batch, backend="kdtree")
    idx, d2 = knn(x, 8, batch, backend="torch_cluster")
    torch.testing.assert_close(d2, ref_d2)
    assert torch.equal(idx, ref_idx)
