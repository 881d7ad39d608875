"""Overflows of constant casts, counted as often as nnet_garnet.h performs each cast."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
from calo.fpga.reference import FixedGarNet

N = np.array([0, 3, 16, 5])  # 24 valid hits in 4 events


def weights(rng: np.random.Generator) -> list[GarNetWeights]:
    w0 = GarNetWeights.random(rng, 4, 4, 8, 8)
    w1 = GarNetWeights.random(rng, 8, 4, 8, 8)
    w0.s_bias[:] = [9.0, 0.0, 0.0, -9.5]  # two distance biases outside distance_t (+-8)
    w0.fout_bias[2] = 40.0  # outside output_t = ap_fixed<16,6> (+-32) and aggr_t (+-16)
    w1.fout_bias[5] = -40.0
    return [w0, w1]


def run(ws: list[GarNetWeights], **kw: object) -> dict[str, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = FixedGarNet(ws, GarNetFixedConfig(n_vertices=16, reuse_factor=4, **kw))
    X = np.random.default_rng(5).normal(0, 0.3, size=(len(N), 16, 4))
    if kw.get("mean_by_nvert"):
        X, n = X[1:], N[1:]  # n = 0 divides by zero there
    else:
        n = N
    return model(X, n).overflow.static


def test_stack_counts_per_hit_casts_per_hit_and_drops_casts_never_performed():
    static = run(weights(np.random.default_rng(0)))
    # hand count: L0 opens each of the 24 hits' distances with the 2 bad biases (48), and its
    # per-hit outputs (fed to L1) each start from the bad bias (24); L1 is the collapsed last
    # layer: the bias goes through aggr_t once per event (4) and is never cast to output_t
    assert static == {
        "L0.distance_bias": 48,
        "L0.output_bias_cast": 24,
        "L1.distance_bias": 0,
        "L1.output_bias_aggr": 4,
    }


def test_collapse_with_mean_by_nvert_casts_the_bias_to_output_t_once_per_event():
    static = run(weights(np.random.default_rng(0)), mean_by_nvert=True)
    # 24 hits in the 3 events with n > 0
    assert static == {
        "L0.distance_bias": 48,
        "L0.output_bias_cast": 24,
        "L1.distance_bias": 0,
        "L1.output_bias_cast": 3,
    }


@pytest.mark.parametrize(
    "collapse,key,count,absent",
    [
        ("none", "L0.output_bias_cast", 24, "L0.output_bias_aggr"),  # per hit: 24 hits
        ("mean", "L0.output_bias_aggr", 4, "L0.output_bias_cast"),  # per event: 4 events
    ],
)
def test_single_layer_output_bias(collapse, key, count, absent):
    static = run(weights(np.random.default_rng(0))[:1], collapse=collapse)
    assert static == {"L0.distance_bias": 48, key: count}
    assert absent not in static
