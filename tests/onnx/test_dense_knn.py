"""The export-friendly ``"dense"`` kNN gives the kd-tree's neighbours and distances."""

from __future__ import annotations

import pytest
import torch

from calo.nn import knn
from calo.nn.knn import event_ids, is_exporting


def _ragged(sizes: list[int], s: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(sizes), s, generator=g)
    return x, torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


@pytest.mark.parametrize("s", [4, 16])  # summed differences (S <= 8) and the matmul form
@pytest.mark.parametrize("sizes", [[200], [120, 3, 1, 57, 9]])
def test_dense_equals_kdtree(s: int, sizes: list[int]) -> None:
    x, batch = _ragged(sizes, s, seed=s + len(sizes))
    k = 10
    ref_idx, ref_d2 = knn(x, k, batch, backend="kdtree")
    idx, d2 = knn(x, k, batch, backend="dense")
    assert torch.equal(idx[:, 0], torch.arange(x.shape[0]))
    torch.testing.assert_close(d2, ref_d2, rtol=1e-5, atol=1e-6)
    # same neighbour sets (order may differ only between equal distances)
    assert torch.equal(idx.sort(1).values, ref_idx.sort(1).values)


def test_events_with_fewer_points_than_k_have_minus_one_and_inf() -> None:
    x, batch = _ragged([2, 5], 3, seed=1)
    idx, d2 = knn(x, 4, batch, backend="dense")
    assert idx[:2, 2:].eq(-1).all() and torch.isinf(d2[:2, 2:]).all()
    assert idx[:2, :2].ge(0).all() and torch.isfinite(d2[:2, :2]).all()
    assert idx[2:].ge(2).all()  # never a point of the other event
    ref_idx, ref_d2 = knn(x, 4, batch, backend="kdtree")
    assert torch.equal(idx.sort(1).values, ref_idx.sort(1).values)
    torch.testing.assert_close(d2, ref_d2)


def test_distances_are_differentiable() -> None:
    x, batch = _ragged([30, 20], 4, seed=2)
    x.requires_grad_(True)
    _, d2 = knn(x, 5, batch, backend="dense")
    d2.sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    knn(x2, 5, batch, backend="kdtree")[1].sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-5)


def test_event_ids_compact_and_not_exporting() -> None:
    assert event_ids(torch.tensor([3, 3, 7, 9, 9, 9])).tolist() == [0, 0, 1, 2, 2, 2]
    assert event_ids(torch.tensor([0])).tolist() == [0]
    assert not is_exporting()
