"""Fixtures of the layer tests: ragged batches and torch_geometric's kNN call replaced by ours.

torch_geometric 2.8's GravNetConv and DynamicEdgeConv call ``torch.ops.pyg.knn`` (pyg-lib),
which has no wheel here; :func:`pyg_with_calo_knn` points that call, for the modules under test
only, at :func:`calo.nn.knn` so the PyG layers can serve as a reference.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch_geometric.nn.conv.edge_conv as pyg_edge_conv
import torch_geometric.nn.conv.gravnet_conv as pyg_gravnet_conv
import torch_geometric.typing

from calo.nn import knn


def _pyg_knn(x, y, ptr_x, ptr_y, k, cosine, num_workers):
    """pyg-lib's knn(x, y, ...) -> [2, E] (row 0: query in y, row 1: neighbour in x), via calo."""
    assert not cosine
    assert torch.equal(x, y), "only the non-bipartite case is needed"
    if ptr_x is None:
        batch = None
    else:
        batch = torch.repeat_interleave(torch.arange(ptr_x.numel() - 1), ptr_x.diff())
    idx, _ = knn(x, k, batch)
    centre = torch.arange(x.shape[0]).unsqueeze(1).expand_as(idx)
    valid = idx >= 0
    return torch.stack([centre[valid], idx[valid]])


class _TorchWithPygKnn:
    """The torch module, except that ``ops.pyg.knn`` is ours."""

    ops = SimpleNamespace(pyg=SimpleNamespace(knn=_pyg_knn))

    def __getattr__(self, name):
        return getattr(torch, name)


@pytest.fixture
def pyg_with_calo_knn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let torch_geometric's GravNetConv and DynamicEdgeConv run with calo's kNN."""
    monkeypatch.setattr(torch_geometric.typing, "WITH_KNN", True)
    monkeypatch.setattr(pyg_gravnet_conv, "torch", _TorchWithPygKnn())
    monkeypatch.setattr(pyg_edge_conv, "torch", _TorchWithPygKnn())


def _ragged(sizes: list[int], features: int, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(sizes), features, generator=g, dtype=dtype)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes, dtype=torch.long))
    return x, batch


@pytest.fixture
def ragged():
    """``ragged(sizes, features, dtype, seed) -> (x, batch)``: seeded random hits of events."""
    return _ragged
