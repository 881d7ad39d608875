"""The reference's fast kernel against its exact kernel: same bits and overflow counts.

The fast kernel skips overflow handling and flags events where a cast could have
overflowed; those are recomputed by the exact kernel (which the g++ tests compare with
nnet_garnet.h). Here every event also goes through the exact kernel alone, for many types,
rounding and overflow modes, and the results must agree, with some events taking each path.
"""

from __future__ import annotations

import re
import warnings
import zlib

import numpy as np
import pytest

from calo.fpga.events import toy_events
from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights, sublayer_dims
from calo.fpga.reference import FixedGarNet, MeanByNvertWarning

PAPER = sublayer_dims()  # (F_in, A, F_LR, F_out) per sublayer of the paper's stack
ROUNDINGS = ["TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV"]

# name, sublayer dims, config, weight scale, input scale, events
CASES = [
    ("paper", PAPER, dict(), 1.0, 1.0, 400),
    ("paper_hot", PAPER, dict(), 3.0, 2.0, 300),
    ("single_v16_r4", [(4, 4, 8, 8)], dict(n_vertices=16, reuse_factor=4), 1.0, 1.0, 300),
    (
        "single_v32_r8_perhit",
        [(4, 4, 8, 8)],
        dict(n_vertices=32, reuse_factor=8, collapse="none"),
        2.0,
        2.0,
        300,
    ),
    (
        "single_v64_r64_perhit",
        [(4, 2, 4, 6)],
        dict(n_vertices=64, reuse_factor=64, collapse="none"),
        1.0,
        1.0,
        100,
    ),
    ("single_v128_r1", [(4, 4, 8, 8)], dict(n_vertices=128, reuse_factor=1), 1.0, 1.0, 100),
    (
        "stack_v16_r4_nvert_fixed",
        [(4, 4, 8, 8), (8, 4, 6, 5)],
        dict(n_vertices=16, reuse_factor=4, mean_by_nvert=True, nvert_division="fixed"),
        1.0,
        1.0,
        300,
    ),
    (
        "stack_v64_r16_nvert_int",
        PAPER,
        dict(n_vertices=64, reuse_factor=16, mean_by_nvert=True),
        1.0,
        1.0,
        200,
    ),
    ("many_features", [(20, 3, 4, 5)], dict(n_vertices=16, reuse_factor=4), 0.5, 0.5, 200),
    (
        "wide_int64",
        [(4, 4, 8, 8)],
        dict(
            n_vertices=32,
            reuse_factor=8,
            input_t="ap_fixed<24,6,AP_RND,AP_SAT>",
            output_t="ap_fixed<28,8,AP_RND,AP_SAT>",
            aggr_t="ap_fixed<28,10>",
            edge_weight_t="ap_ufixed<18,0>",
            edge_weight_aggr_t="ap_ufixed<24,6>",
            weight_frac=18,
        ),
        1.0,
        1.0,
        100,
    ),
]
# narrow types with every rounding mode and several overflow modes
for k, q in enumerate(ROUNDINGS):
    om = ["SAT", "WRAP", "SAT_SYM", "SAT_ZERO"][k % 4]
    CASES.append(
        (
            f"narrow_{q}_{om}",
            [(4, 4, 8, 8), (8, 4, 6, 6)],
            dict(
                n_vertices=32,
                reuse_factor=8,
                input_t=f"ap_fixed<10,3,AP_{q},AP_{om}>",
                output_t=f"ap_fixed<11,4,AP_{q},AP_{om}>",
                aggr_t=f"ap_fixed<13,4,AP_{q}>",
                edge_weight_aggr_t=f"ap_ufixed<9,2,AP_{q}>",
                edge_weight_t=f"ap_ufixed<8,0,AP_{q},AP_{om}>",
            ),
            1.5,
            1.5,
            300,
        )
    )


QUICK = ("single_v16_r4",)  # the others compile kernels for tens of seconds each: slow


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c[0], marks=() if c[0] in QUICK else pytest.mark.slow) for c in CASES],
)
def test_fast_kernel_equals_exact_kernel(case):
    name, dims, kw, wscale, xscale, nev = case
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeanByNvertWarning)
        cfg = GarNetFixedConfig(**kw)
        model = FixedGarNet([GarNetWeights.random(rng, *d, scale=wscale) for d in dims], cfg)
    n_min = 1 if cfg.mean_by_nvert else 0
    X, n = toy_events(rng, nev, cfg.n_vertices, n_min)
    if model.n_in > 4:  # more features: repeat the four, scaled
        X = np.concatenate([X * (1 + 0.1 * k) for k in range(-(-model.n_in // 4))], axis=2)
        X = X[..., : model.n_in]
    # padded hits get junk: only the n valid hits may count
    X[np.arange(cfg.n_vertices)[None, :] >= n[:, None]] = rng.normal(0, 3, model.n_in)
    Xr = model.quantize_inputs(X * xscale)
    if name == "wide_int64":  # products wider than 31 bits: the fast kernel uses int64
        assert "np.int64(" in model.fast_source()
    exact, rep_exact = model.run_raw(Xr, n, exact=True)
    assert model.last_exact_events == nev
    fast, rep_fast = model.run_raw(Xr, n)
    n_exact = model.last_exact_events
    np.testing.assert_array_equal(fast, exact)
    np.testing.assert_array_equal(rep_fast.counts, rep_exact.counts)
    assert rep_fast.static == rep_exact.static
    # the fast kernel really ran: most events of the untouched configurations took it
    assert n_exact < nev, name
    if wscale == xscale == 1.0:
        assert n_exact <= 0.1 * nev, (name, n_exact)
    if rep_exact.counts.sum() > 0:
        assert n_exact > 0


def test_fast_kernel_uses_int32_for_the_paper_model():
    rng = np.random.default_rng(0)
    model = FixedGarNet([GarNetWeights.random(rng, *d) for d in PAPER], GarNetFixedConfig())
    src = model.fast_source()
    assert "np.int32(" in src and "np.int64(" not in src
    # casts that cannot overflow carry no check: the edge-weight sums of the paper model
    # (at most U * 1023 and R * 1023 in ap_ufixed<15,5>)
    lines = src.splitlines()
    sums = [k for k, line in enumerate(lines) if re.search(r"t = np.int32\(t \+ EW\dg\[", line)]
    assert len(sums) == 3 * 4
    assert not any(lines[k + 1].strip().startswith("fl") for k in sums)
