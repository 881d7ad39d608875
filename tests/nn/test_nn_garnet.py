"""GarNetConv: the maths per event, hls4ml's folded data flow, ragged == padded, errors."""

from __future__ import annotations

import pytest
import torch

from calo.errors import ConfigError, DataError
from calo.nn import GarNetConv


def reference_event(conv: GarNetConv, x: torch.Tensor, nu: float) -> torch.Tensor:
    """Per-hit output of one event, written with explicit loops over aggregators."""
    f = conv.lin_flr(x)  # [n, P]
    d = conv.lin_s(x)  # [n, A]
    w = {"exp_abs": torch.exp(-d.abs()), "gauss": torch.exp(-(d**2))}[conv.potential]
    means, maxes = [], []
    for a in range(conv.n_aggregators):
        m = w[:, a : a + 1] * f
        means.append(m.sum(0) / nu)
        maxes.append(m.max(0).values)
    ret_mean = torch.cat([w[:, a : a + 1] * means[a] for a in range(conv.n_aggregators)], 1)
    ret = [ret_mean]
    if "max" in conv.aggr:
        ret.append(torch.cat([w[:, a : a + 1] * maxes[a] for a in range(conv.n_aggregators)], 1))
    dense_in = torch.cat(ret if conv.simplified else [x, *ret, w], 1)
    return conv.lin_out(dense_in)


@pytest.mark.parametrize("potential", ["exp_abs", "gauss"])
@pytest.mark.parametrize(
    ("simplified", "aggr"), [(False, ("mean", "max")), (False, ("mean",)), (True, ("mean",))]
)
def test_formula_on_ragged_batch(ragged, potential, simplified, aggr):
    sizes = [7, 1, 20]
    x, batch = ragged(sizes, 5, dtype=torch.float64, seed=20)
    conv = GarNetConv(5, 6, 3, 4, potential=potential, aggr=aggr, simplified=simplified).double()
    with torch.no_grad():
        out = conv(x, batch)
        ref = torch.cat(
            [reference_event(conv, x[batch == b], float(n)) for b, n in enumerate(sizes)]
        )
    torch.testing.assert_close(out, ref)
    n_dense = (0 if simplified else 5 + 3) + len(aggr) * 3 * 4
    assert conv.lin_out.in_features == n_dense


def test_simplified_equals_hls4ml_folded_data_flow(rng):
    """docs/layers.md (folding the two transforms): W_in, b_in; per-hit and collapsed outputs."""
    V, n, F, A, P, n_out = 16, 11, 4, 4, 8, 8
    conv = GarNetConv(F, n_out, A, P, potential="gauss", simplified=True, mean_by="vmax").double()
    X = torch.from_numpy(rng.normal(size=(1, V, F)))
    nn_ = torch.tensor([n])
    with torch.no_grad():
        per_hit = conv(X, nn_)[0]
        conv.collapse = "mean"
        collapsed = conv(X, nn_)[0]
        x = X[0, :n]
        flr_w, flr_b = conv.lin_flr.weight.T, conv.lin_flr.bias  # [F, P], [P]
        fout_w = conv.lin_out.weight.T.reshape(A, P, n_out)  # rows (a, p)
        w_in = torch.einsum("xp,apo->oax", flr_w, fout_w)
        b_in = torch.einsum("p,apo->oa", flr_b, fout_w)
        d = conv.lin_s.bias + x @ conv.lin_s.weight.T  # [n, A]
        w = torch.exp(-(d**2))
        ewm = w.sum(0) / V  # normalised by V_max
        wfm = torch.einsum("va,vx->ax", w, x) / V
        aggr = ewm * b_in + torch.einsum("ax,oax->oa", wfm, w_in)  # [O, A]
        out = conv.lin_out.bias + w @ aggr.T  # [n, O]
        col = conv.lin_out.bias * n / V + (ewm * aggr).sum(1)
    torch.testing.assert_close(per_hit[:n], out)
    assert (per_hit[n:] == 0).all()
    torch.testing.assert_close(collapsed, col)


@pytest.mark.parametrize("collapse", [None, "mean", "sum", "max"])
@pytest.mark.parametrize(("mean_by", "v_max"), [("n", None), ("vmax", 32)])
def test_ragged_and_padded_agree(ragged, collapse, mean_by, v_max):
    sizes = [9, 1, 32, 4]
    x, batch = ragged(sizes, 4, seed=21)
    conv = GarNetConv(4, 5, 3, 6, collapse=collapse, mean_by=mean_by, v_max=v_max)
    V = 32
    X = torch.full((len(sizes), V, 4), 7.0)  # garbage beyond n must not matter
    start = 0
    for b, m in enumerate(sizes):
        X[b, :m] = x[start : start + m]
        start += m
    n = torch.tensor(sizes)
    out_r, out_p = conv(x, batch), conv(X, n)
    if collapse is None:
        mask = torch.arange(V) < n.unsqueeze(1)
        torch.testing.assert_close(out_p[mask], out_r)
        assert (out_p[~mask] == 0).all()
    else:
        assert out_p.shape == (len(sizes), 5)
        torch.testing.assert_close(out_p, out_r)
    # hits beyond n are ignored
    X2 = X.clone()
    X2[~(torch.arange(V) < n.unsqueeze(1))] = -3.0
    torch.testing.assert_close(conv(X2, n), out_p)


def test_padded_default_vmax_is_v(ragged):
    conv = GarNetConv(3, 2, 2, 2, mean_by="vmax", collapse="mean").double()
    X = torch.randn(2, 8, 3, dtype=torch.float64)
    n = torch.tensor([8, 3])
    conv.v_max = 8
    explicit = conv(X, n)
    conv.v_max = None
    torch.testing.assert_close(conv(X, n), explicit)
    conv.v_max = 16
    assert not torch.allclose(conv(X, n), explicit)


def test_collapse_values(ragged):
    x, batch = ragged([5, 3], 3, dtype=torch.float64, seed=22)
    per_hit = GarNetConv(3, 4, 2, 2).double()
    coll = {c: GarNetConv(3, 4, 2, 2, collapse=c).double() for c in ("mean", "sum", "max")}
    for m in coll.values():
        m.load_state_dict(per_hit.state_dict())
    with torch.no_grad():
        y = per_hit(x, batch)
        torch.testing.assert_close(coll["sum"](x, batch)[1], y[5:].sum(0))
        torch.testing.assert_close(coll["mean"](x, batch)[0], y[:5].mean(0))
        torch.testing.assert_close(coll["max"](x, batch)[1], y[5:].max(0).values)


def test_permutation_invariance_and_isolation(ragged):
    x, batch = ragged([10, 6], 4, seed=23)
    conv = GarNetConv(4, 3, 4, 5)
    out = conv(x, batch)
    perm = torch.cat([torch.randperm(10), 10 + torch.randperm(6)])
    torch.testing.assert_close(conv(x[perm], batch), out[perm])
    torch.testing.assert_close(conv(x[:10]), out[:10])


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"simplified": True, "potential": "gauss", "mean_by": "vmax", "v_max": 16}],
)
def test_gradcheck(ragged, kwargs):
    x, batch = ragged([4, 3], 3, dtype=torch.float64, seed=24)
    conv = GarNetConv(3, 2, 2, 3, **kwargs).double()
    assert torch.autograd.gradcheck(lambda t: conv(t, batch), (x.requires_grad_(),))
    X = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: conv(t, torch.tensor([4, 2])), (X,))


def test_repr_and_reset():
    conv = GarNetConv(4, 8, 4, 20)
    assert repr(conv) == (
        "GarNetConv(4, 8, n_aggregators=4, n_propagate=20, potential='exp_abs', "
        "aggr=('mean', 'max'), simplified=False, mean_by='n', v_max=None, collapse=None)"
    )
    w = conv.lin_out.weight.clone()
    conv.reset_parameters()
    assert not torch.equal(w, conv.lin_out.weight)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_aggregators": 0}, "n_aggregators"),
        ({"potential": "x"}, "unknown potential"),
        ({"aggr": ("max",)}, "aggr"),
        ({"simplified": True, "aggr": ("mean", "sum")}, "aggr"),
        ({"mean_by": "median"}, "mean_by"),
        ({"v_max": 0}, "v_max"),
        ({"collapse": "min"}, "collapse"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GarNetConv(3, 2, **{"n_aggregators": 2, "n_propagate": 2, **kwargs})


def test_bad_input():
    conv = GarNetConv(3, 2, 2, 2)
    with pytest.raises(DataError, match="got \\[5, 4\\]"):
        conv(torch.randn(5, 4))
    with pytest.raises(DataError, match=r"\[0, V\]"):
        conv(torch.randn(2, 4, 3), torch.tensor([5, 1]))
    with pytest.raises(DataError, match="integer tensor"):
        conv(torch.randn(2, 4, 3), torch.tensor([2.0, 1.0]))
    with pytest.raises(DataError, match="shape \\[B\\]"):
        conv(torch.randn(2, 4, 3), torch.tensor([2, 1, 1]))
    with pytest.raises(ConfigError, match="needs v_max"):
        GarNetConv(3, 2, 2, 2, mean_by="vmax")(torch.randn(4, 3))
    with pytest.raises(DataError, match="sorted"):
        conv(torch.randn(3, 3), torch.tensor([1, 0, 0]))
