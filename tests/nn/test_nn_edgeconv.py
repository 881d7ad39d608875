"""DynamicEdgeConv: the DGCNN formula, torch_geometric's DynamicEdgeConv, gradients, errors."""

from __future__ import annotations

import pytest
import torch
import torch_geometric.nn as pyg_nn

from calo.errors import ConfigError, DataError
from calo.nn import DynamicEdgeConv, edge_mlp


def test_formula(ragged):
    x, batch = ragged([15, 2, 9], 3, dtype=torch.float64, seed=30)
    conv = DynamicEdgeConv(edge_mlp(3, (8, 5)), k=4).double()
    with torch.no_grad():
        out = conv(x, batch)
        for i in range(x.shape[0]):
            same = (batch == batch[i]).nonzero().squeeze(1)
            d2 = ((x[same] - x[i]) ** 2).sum(-1)
            nb = same[torch.argsort(d2)[:4]]
            h = conv.nn(torch.cat([x[i].expand(len(nb), 3), x[nb] - x[i]], 1))
            torch.testing.assert_close(out[i], h.max(0).values)


@pytest.mark.parametrize("aggr", ["max", "mean"])
def test_matches_torch_geometric(pyg_with_calo_knn, ragged, aggr):
    x, batch = ragged([30, 3, 21], 6, seed=31)
    conv = DynamicEdgeConv(edge_mlp(6, (16, 16)), k=5, aggr=aggr)
    ref = pyg_nn.DynamicEdgeConv(conv.nn, k=5, aggr=aggr)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_ref = conv(xa, batch), ref(xb, batch)
    torch.testing.assert_close(out, out_ref)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)


def test_graph_is_recomputed_in_feature_space():
    conv = DynamicEdgeConv(edge_mlp(1, (1,), act=torch.nn.Identity), k=2, aggr="max")
    with torch.no_grad():
        conv.nn[0].weight.copy_(torch.tensor([[0.0, 1.0]]))  # h = x_j - x_i
        conv.nn[0].bias.zero_()
    x = torch.tensor([[0.0], [1.0], [5.0], [5.5]])
    # nearest other point: 1 -> 0, 0 -> 1, 2 -> 3, 3 -> 2; max(0, x_j - x_i)
    assert conv(x).squeeze(1).tolist() == [1.0, 0.0, 0.5, 0.0]
    x2 = torch.tensor([[0.0], [4.9], [5.0], [5.5]])
    assert conv(x2).squeeze(1).tolist() == pytest.approx([4.9, 0.1, 0.0, 0.0])


def test_gradcheck(ragged):
    x, batch = ragged([5, 4], 2, dtype=torch.float64, seed=32)
    conv = DynamicEdgeConv(edge_mlp(2, (3,), act=torch.nn.Tanh), k=3).double()
    assert torch.autograd.gradcheck(lambda t: conv(t, batch), (x.requires_grad_(),))


def test_edge_mlp_layout():
    mlp = edge_mlp(16, (64, 64, 64), last_act=False)
    assert [m.__class__.__name__ for m in mlp] == ["Linear", "ReLU"] * 2 + ["Linear"]
    assert mlp[0].in_features == 32
    with pytest.raises(ConfigError, match="at least one"):
        edge_mlp(3, ())


def test_repr_reset_and_errors():
    conv = DynamicEdgeConv(edge_mlp(2, (4,)), k=7, aggr="mean")
    assert repr(conv) == "DynamicEdgeConv(nn=Sequential(2 modules), k=7, aggr='mean')"
    w = conv.nn[0].weight.clone()
    conv.reset_parameters()
    assert not torch.equal(w, conv.nn[0].weight)
    with pytest.raises(ConfigError, match="k must be"):
        DynamicEdgeConv(edge_mlp(2, (4,)), k=0)
    with pytest.raises(ConfigError, match="aggr"):
        DynamicEdgeConv(edge_mlp(2, (4,)), k=2, aggr="min")
    with pytest.raises(DataError, match=r"shape \[N, F\]"):
        conv(torch.randn(3))
