"""Behaviour of the numba reference: float agreement, overflow accounting, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from calo.errors import ConfigError, DataError
from calo.fpga.events import toy_events
from calo.fpga.fixed import FixedType
from calo.fpga.garnet import (
    GarNetFixedConfig,
    GarNetWeights,
    contract_transforms,
    converter_weight_type,
    edge_weight_table,
    sublayer_dims,
)
from calo.fpga.reference import FixedGarNet, MeanByNvertWarning, garnet_float

PAPER = sublayer_dims()  # (F_in, A, F_LR, F_out) per sublayer of the paper's stack


def test_default_types_follow_the_converter():
    t = GarNetFixedConfig(n_vertices=128, reuse_factor=32).types()
    assert str(t["aggr_t"]) == "ap_fixed<18,8>"
    assert str(t["edge_weight_aggr_t"]) == "ap_ufixed<15,5>"
    assert str(t["distance_t"]) == "ap_fixed<12,4,AP_TRN,AP_SAT>"
    assert str(t["norm_t"]) == "ap_ufixed<14,4>" and str(t["edge_weight_t"]) == "ap_ufixed<10,0>"
    # aggr_intw = max(log2 R, log2 V - log2 R) + 3
    assert GarNetFixedConfig(n_vertices=128, reuse_factor=2).types()["aggr_t"].integer == 9
    assert str(converter_weight_type(np.array([-0.4, 0.9]))) == "ap_fixed<11,1,AP_RND,AP_SAT>"
    assert str(converter_weight_type(np.array([-4.0, 0.9]))) == "ap_fixed<14,4,AP_RND,AP_SAT>"


def test_exp_table_values():
    cfg = GarNetFixedConfig()
    tab = edge_weight_table(cfg)
    d = np.arange(4096)
    d = np.where(d >= 2048, d - 4096, d) / 256.0
    expected = np.floor(np.exp(-(d**2)) * 1024)
    expected[0] = 1023  # saturated 1
    np.testing.assert_array_equal(tab, expected.astype(np.int64))


def test_contraction_equals_two_linear_maps(rng):
    w = GarNetWeights.random(rng, 4, 3, 5, 6)
    W, b = contract_transforms(w)
    x = rng.normal(size=4)
    agg = rng.normal(size=3)  # one weight per aggregator
    f = x @ w.flr_kernel + w.flr_bias
    fout = w.fout_kernel.reshape(3, 5, 6)
    direct = np.einsum("a,p,apo->oa", agg, f, fout)
    np.testing.assert_allclose(direct, np.einsum("a,oax,x->oa", agg, W, x) + agg * b)


@pytest.mark.slow
@pytest.mark.parametrize("dims,V,R", [([(4, 4, 8, 8)], 64, 16), (PAPER, 128, 32)])
def test_fixed_point_approximates_float(rng, dims, V, R):
    ws = [GarNetWeights.random(rng, *d) for d in dims]
    wide = GarNetFixedConfig(
        n_vertices=V,
        reuse_factor=R,
        input_t="ap_fixed<24,6,AP_RND,AP_SAT>",
        output_t="ap_fixed<28,8,AP_RND,AP_SAT>",
        aggr_t="ap_fixed<28,10>",
        edge_weight_t="ap_ufixed<18,0>",
        edge_weight_aggr_t="ap_ufixed<24,6>",
        distance_width=16,
        distance_nint=5,
        weight_frac=18,
    )
    X, n = toy_events(rng, 40, V)
    model = FixedGarNet(ws, wide)
    res = model(X, n)
    ref = garnet_float(ws, X, n)
    assert res.overflow.total() == 0
    # what remains is the exp table's resolution in d (2^-11) and the truncations
    err_wide = np.abs(res.output - ref).max()
    assert err_wide < 1e-2
    default = FixedGarNet(ws, GarNetFixedConfig(n_vertices=V, reuse_factor=R))(X, n)
    err_default = np.abs(default.output - ref).max()
    assert err_wide < err_default < 0.2  # the paper's types are coarser, yet close


@pytest.mark.slow
def test_per_hit_output_matches_float_and_pads_with_zero(rng):
    w = GarNetWeights.random(rng, 4, 4, 8, 8)
    cfg = GarNetFixedConfig(n_vertices=32, reuse_factor=8, collapse="none")
    X, n = toy_events(rng, 10, 32, 1, 32)
    res = FixedGarNet(w, cfg)(X, n)
    assert res.output.shape == (10, 32, 8)
    for b in range(10):
        assert (res.output_raw[b, n[b] :] == 0).all()
    np.testing.assert_allclose(res.output, garnet_float(w, X, n, collapse="none"), atol=0.08)


@pytest.mark.slow
def test_mean_by_nvert_pitfall_and_fixed_division(rng):
    w = GarNetWeights.random(rng, 4, 4, 8, 8)
    X, n = toy_events(rng, 30, 64, 8, 64)
    with pytest.warns(MeanByNvertWarning, match="0 for n > 4"):
        bad = FixedGarNet(w, GarNetFixedConfig(n_vertices=64, reuse_factor=16, mean_by_nvert=True))
    good = FixedGarNet(
        w,
        GarNetFixedConfig(
            n_vertices=64, reuse_factor=16, mean_by_nvert=True, nvert_division="fixed"
        ),
    )
    ref = garnet_float(w, X, n, mean_by_nvert=True)
    err_good = np.abs(good(X, n).output - ref).max()
    err_bad = np.abs(bad(X, n).output - ref).max()
    assert err_good < 0.1 < err_bad


@pytest.mark.slow
def test_overflow_counting_and_width_suggestion(rng):
    w = GarNetWeights.random(rng, 4, 4, 8, 8, scale=4.0)
    cfg = GarNetFixedConfig(n_vertices=32, reuse_factor=8, aggr_t="ap_fixed<11,2>")
    model = FixedGarNet(w, cfg)
    X, n = toy_events(rng, 50, 32)
    res = model(X * 3, n, track_ranges=True)
    counts = res.overflow.as_dict()
    assert counts.get("L0.aggregate", 0) > 0 or counts.get("L0.feature_sum", 0) > 0
    sugg = res.overflow.suggest_types()[0]
    assert sugg["aggregate"].integer > 2 and sugg["aggregate"].frac == 9
    cfg2 = GarNetFixedConfig(
        n_vertices=32,
        reuse_factor=8,
        aggr_t=str(max(sugg["aggregate"], sugg["feature_sum"], key=lambda t: t.integer)),
    )
    res2 = FixedGarNet(w, cfg2)(X * 3, n)
    d2 = res2.overflow.as_dict()
    assert "L0.aggregate" not in d2 and "L0.feature_sum" not in d2
    with pytest.raises(ConfigError, match="track_ranges"):
        model(X, n).overflow.suggest_types()


def test_bad_inputs_name_the_event(rng):
    w = GarNetWeights.random(rng, 4, 4, 8, 8)
    model = FixedGarNet(w, GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    X, n = toy_events(rng, 5, 16)
    n_bad = n.copy()
    n_bad[3] = 17
    with pytest.raises(DataError, match="entry 3"):
        model(X, n_bad)
    with pytest.raises(DataError, match="shape"):
        model(X[:, :8], n)
    raw = model.quantize_inputs(X)
    raw[2, 0, 0] = 1 << 20
    with pytest.raises(DataError, match="entry 2"):
        model(raw, n, raw=True)
    with pytest.warns(MeanByNvertWarning):
        nv = FixedGarNet(w, GarNetFixedConfig(n_vertices=16, reuse_factor=4, mean_by_nvert=True))
    n0 = n.copy()
    n0[1] = 0
    with pytest.raises(DataError, match="n = 0"):
        nv(X, n0)


def test_bad_configurations_raise(rng):
    with pytest.raises(ConfigError, match="power of two"):
        GarNetFixedConfig(n_vertices=100)
    with pytest.raises(ConfigError, match="reuse_factor"):
        GarNetFixedConfig(n_vertices=16, reuse_factor=32)
    with pytest.raises(ConfigError, match="type"):
        GarNetFixedConfig(aggr_t="ap_fixed<a,b>")
    ws = [GarNetWeights.random(rng, *d) for d in PAPER]
    with pytest.raises(ConfigError, match="collapse"):
        FixedGarNet(ws, GarNetFixedConfig(collapse="none"))
    with pytest.raises(ConfigError, match="sublayer 1 expects"):
        FixedGarNet([ws[0], ws[0]], GarNetFixedConfig())
    with pytest.raises(ConfigError, match="shape"):
        GarNetWeights(
            np.zeros((4, 8)),
            np.zeros(8),
            np.zeros((4, 4)),
            np.zeros(3),
            np.zeros((32, 8)),
            np.zeros(8),
        )
    assert FixedType(8, 3) != FixedType(8, 3, overflow="SAT")
