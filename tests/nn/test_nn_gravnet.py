"""GravNetConv: equivalence with torch_geometric's GravNetConv, the maths, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch_geometric.nn as pyg_nn

from calo.errors import ConfigError, DataError
from calo.nn import GravNetConv


def copy_into_pyg(conv: GravNetConv, ref: torch.nn.Module) -> None:
    with torch.no_grad():
        for name in ("lin_s", "lin_h", "lin_out1", "lin_out2"):
            ours, theirs = getattr(conv, name), getattr(ref, name)
            theirs.weight.copy_(ours.weight)
            if ours.bias is not None:
                theirs.bias.copy_(ours.bias)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torch_geometric(pyg_with_calo_knn, ragged, dtype):
    # events smaller than k included: PyG then has fewer edges, we have -1 slots
    x, batch = ragged([50, 5, 33, 1, 70], 7, dtype=dtype, seed=10)
    conv = GravNetConv(7, 12, space_dimensions=4, propagate_dimensions=6, k=8).to(dtype)
    ref = pyg_nn.GravNetConv(7, 12, space_dimensions=4, propagate_dimensions=6, k=8).to(dtype)
    copy_into_pyg(conv, ref)

    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    out, out_ref = conv(xa, batch), ref(xb, batch)
    tol = {"atol": 1e-12, "rtol": 1e-12} if dtype == torch.float64 else {}
    torch.testing.assert_close(out, out_ref, **tol)

    g = torch.randn(out.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    (out * g).sum().backward()
    (out_ref * g).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, **tol)
    for name in ("lin_s", "lin_h", "lin_out1", "lin_out2"):
        torch.testing.assert_close(
            getattr(conv, name).weight.grad, getattr(ref, name).weight.grad, **tol
        )
    # the learned space gets a gradient (through the distances)
    assert conv.lin_s.weight.grad.abs().sum() > 0


def dense_reference(conv: GravNetConv, x: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """The layer's formula evaluated per hit with loops and a full distance matrix."""
    s, h = conv.lin_s(x), conv.lin_h(x)
    rows = []
    for i in range(x.shape[0]):
        same = (batch == batch[i]).nonzero().squeeze(1)
        d2 = ((s[same] - s[i]) ** 2).sum(-1)
        order = torch.argsort(d2)[: conv.k]
        nb, dd = same[order], d2[order]
        d = dd.sqrt()
        v = {"exp10": torch.exp(-10 * dd), "gauss": torch.exp(-dd), "exp_abs": torch.exp(-d)}[
            conv.potential
        ]
        m = h[nb] * v.unsqueeze(1)
        parts = {"mean": m.mean(0), "max": m.max(0).values, "sum": m.sum(0)}
        rows.append(torch.cat([parts[a] for a in conv.aggr]))
    return conv.lin_out1(x) + conv.lin_out2(torch.stack(rows))


@pytest.mark.parametrize("potential", ["exp10", "gauss", "exp_abs"])
@pytest.mark.parametrize("aggr", [("mean", "max"), ("max",), ("sum", "mean")])
def test_formula(ragged, potential, aggr):
    x, batch = ragged([20, 3, 15], 5, dtype=torch.float64, seed=11)
    conv = GravNetConv(5, 4, 3, 6, k=6, potential=potential, aggr=aggr).double()
    with torch.no_grad():
        torch.testing.assert_close(conv(x, batch), dense_reference(conv, x, batch))
    assert conv.lin_out2.in_features == 6 * len(aggr)


def test_events_do_not_talk(ragged):
    x, batch = ragged([12, 9], 5, seed=12)
    conv = GravNetConv(5, 4, 2, 3, k=5)
    out = conv(x, batch)
    x2 = x.clone()
    x2[12:] += 100.0  # change the second event only
    torch.testing.assert_close(conv(x2, batch)[:12], out[:12])
    # the first event alone gives the same numbers
    torch.testing.assert_close(conv(x[:12]), out[:12])


@pytest.mark.parametrize("potential", ["exp10", "exp_abs"])
def test_gradcheck(potential, ragged):
    x, batch = ragged([6, 5], 3, dtype=torch.float64, seed=13)
    conv = GravNetConv(3, 2, 2, 3, k=4, potential=potential).double()
    assert torch.autograd.gradcheck(lambda t: conv(t, batch), (x.requires_grad_(),))


def test_repr_and_reset():
    conv = GravNetConv(7, 48, 4, 22, k=40, potential="gauss", aggr=("mean",))
    assert repr(conv) == (
        "GravNetConv(7, 48, space_dimensions=4, propagate_dimensions=22, k=40, "
        "potential='gauss', aggr=('mean',))"
    )
    w = conv.lin_s.weight.clone()
    conv.reset_parameters()
    assert not torch.equal(w, conv.lin_s.weight)
    bound = 1 / math.sqrt(7)
    assert conv.lin_s.weight.abs().max() <= bound


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be"),
        ({"space_dimensions": -1}, "space_dimensions"),
        ({"potential": "cauchy"}, "unknown potential"),
        ({"aggr": ("mean", "min")}, "aggr"),
        ({"aggr": ()}, "aggr"),
    ],
)
def test_bad_configuration(kwargs, message):
    args = {
        "in_channels": 3,
        "out_channels": 2,
        "space_dimensions": 2,
        "propagate_dimensions": 2,
        "k": 3,
    }
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        GravNetConv(**args)


def test_bad_input():
    conv = GravNetConv(3, 2, 2, 2, k=3)
    with pytest.raises(DataError, match=r"shape \[N, 3\]"):
        conv(torch.randn(5, 4))
    with pytest.raises(DataError, match=r"shape \[N, 3\]"):
        conv(torch.randn(2, 5, 3))
    with pytest.raises(DataError, match="sorted"):
        conv(torch.randn(3, 3), torch.tensor([1, 0, 1]))


@pytest.mark.parametrize("aggr", [("mean", "max"), ("sum",), ("max", "sum", "mean")])
def test_fused_cpu_kernel_matches_gathered_messages(ragged, aggr):
    # the CPU path never stores [N, k, F] messages; it must agree with the gathering path
    # (used on other devices) in value and in every gradient, also with events smaller than k
    x, batch = ragged([40, 3, 25], 6, dtype=torch.float64, seed=4)
    conv = GravNetConv(6, 5, space_dimensions=3, propagate_dimensions=4, k=7, aggr=aggr).double()
    s, h = conv.lin_s(x), conv.lin_h(x)
    from calo.nn import knn
    from calo.nn.potentials import potential_from_d2

    idx, d2 = knn(s, conv.k, batch)
    w = potential_from_d2(d2, conv.potential)
    valid = idx >= 0
    hf, wf = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    hg, wg = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    fused = conv._aggregate_fused(hf, idx, wf, valid)
    gathered = conv._aggregate_gather(hg, idx, wg, valid)
    torch.testing.assert_close(fused, gathered, atol=1e-12, rtol=1e-12)
    g = torch.randn(fused.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    (fused * g).sum().backward()
    (gathered * g).sum().backward()
    torch.testing.assert_close(hf.grad, hg.grad, atol=1e-12, rtol=1e-12)
    # missing neighbours (w = 0 at d2 = inf) pass no gradient on to the distances either way
    torch.testing.assert_close(wf.grad[valid], wg.grad[valid], atol=1e-12, rtol=1e-12)
    assert not wf.grad[~valid].any()
