"""The numba reference against hls4ml's nnet_garnet.h compiled with g++: every output bit."""

from __future__ import annotations

import numpy as np
import pytest

from calo.fpga.events import toy_events
from calo.fpga.export import edge_case_counts, with_edge_cases, write_hls_header
from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights, sublayer_dims
from calo.fpga.harness import harness_source, run_harness
from calo.fpga.reference import FixedGarNet, MeanByNvertWarning

PAPER = sublayer_dims()  # (F_in, A, F_LR, F_out) per sublayer of the paper's stack

# name, sublayer dims, config, weight scale, input scale, (n_min, n_max), events
CASES = [
    (
        "single_v16_r4_mean",
        [(4, 4, 8, 8)],
        dict(n_vertices=16, reuse_factor=4),
        1.0,
        1.0,
        (0, 16),
        300,
    ),
    (
        "single_v32_r8_perhit",
        [(4, 4, 8, 8)],
        dict(n_vertices=32, reuse_factor=8, collapse="none"),
        1.0,
        1.0,
        (0, 32),
        150,
    ),
    (
        "single_v64_r64_perhit",
        [(4, 2, 4, 6)],
        dict(n_vertices=64, reuse_factor=64, collapse="none"),
        1.0,
        1.0,
        (1, 64),
        60,
    ),
    (
        "single_v128_r1_mean",
        [(4, 4, 8, 8)],
        dict(n_vertices=128, reuse_factor=1),
        1.0,
        1.0,
        (16, 128),
        100,
    ),
    (
        "single_v64_r16_nvert",
        [(4, 4, 8, 8)],
        dict(n_vertices=64, reuse_factor=16, mean_by_nvert=True),
        1.0,
        1.0,
        (1, 12),
        150,
    ),
    (
        "single_v128_r32_narrow",
        [(4, 4, 8, 8)],
        dict(
            n_vertices=128,
            reuse_factor=32,
            input_t="ap_fixed<10,3,AP_RND_CONV,AP_SAT>",
            output_t="ap_fixed<10,3,AP_RND,AP_SAT_SYM>",
            aggr_t="ap_fixed<12,3>",
            edge_weight_aggr_t="ap_ufixed<9,2>",
            edge_weight_t="ap_ufixed<8,0,AP_RND,AP_SAT>",
            norm_t="ap_ufixed<8,3>",
        ),
        4.0,
        3.0,
        (16, 128),
        100,
    ),
    ("stack_paper_v128_r32", PAPER, dict(), 1.0, 1.0, (16, 128), 100),
    (
        "stack_v64_r16_weight_t",
        PAPER,
        dict(
            n_vertices=64,
            reuse_factor=16,
            weight_t="ap_fixed<16,6,AP_RND,AP_SAT>",
            output_t="ap_fixed<12,4,AP_RND_CONV,AP_SAT>",
        ),
        2.0,
        1.0,
        (1, 64),
        100,
    ),
    (
        "stack_v16_r4_nvert",
        [(4, 4, 8, 8), (8, 4, 6, 5)],
        dict(n_vertices=16, reuse_factor=4, mean_by_nvert=True),
        1.0,
        1.0,
        (1, 16),
        200,
    ),
]


@pytest.fixture(scope="module")
def bitexact_runs(compile_cpp, tmp_path_factory):
    """Build one harness with every case (one namespace each); run it and the reference."""
    work = tmp_path_factory.mktemp("bitexact")
    rng = np.random.default_rng(77)
    prepared = []
    headers = []
    for i, (name, dims, kw, wscale, xscale, (nlo, nhi), nev) in enumerate(CASES):
        cfg_kw = dict(kw)
        with pytest.warns(MeanByNvertWarning) if cfg_kw.get("mean_by_nvert") else _nullctx():
            cfg = GarNetFixedConfig(**cfg_kw)
            ws = [GarNetWeights.random(rng, *d, scale=wscale) for d in dims]
            model = FixedGarNet(ws, cfg)
        X, n = toy_events(rng, nev, cfg.n_vertices, nlo, nhi)
        X, n = with_edge_cases(X, n, cfg)  # n = 0 (not with mean_by_nvert), 1, V/R, V first
        Xr = model.quantize_inputs(X * xscale)
        ref, rep = model.run_raw(Xr, n)
        write_hls_header(model, None, work / f"case{i}.h", namespace=f"case{i}")
        headers.append((f"case{i}.h", f"case{i}"))
        prepared.append((name, model, Xr, n, ref, rep))
    exe = compile_cpp(harness_source(headers), opt="-O0", extra_includes=(work,))
    results = {}
    for i, (name, model, Xr, n, ref, rep) in enumerate(prepared):
        out, _ = run_harness(exe, model, Xr, n, work / name, index=i)
        results[name] = (model, n, ref, out, rep)
    return results


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_reference_equals_nnet_garnet_bit_for_bit(bitexact_runs, name):
    _model, _n, ref, out, _ = bitexact_runs[name]
    assert out.shape == ref.shape
    diff = np.argwhere(out != ref)
    assert diff.size == 0, f"{name}: {len(diff)} of {out.size} outputs differ, first at {diff[0]}"
    # the edge events (n = 0, 1, V/R, V) are part of the comparison
    counts = edge_case_counts(_model.config)
    assert _n[: len(counts)].tolist() == counts and len(counts) >= 3
    # the comparison is not vacuous: outputs vary between events
    assert np.unique(ref.reshape(ref.shape[0], -1), axis=0).shape[0] > 0.25 * ref.shape[0]


@pytest.mark.slow
def test_cases_exercise_overflow_and_the_nvert_pitfall(bitexact_runs):
    _, _, _, _, rep = bitexact_runs["single_v128_r32_narrow"]
    d = rep.as_dict()
    # narrow types saturate / wrap in several places, and the C++ agreed bit for bit
    assert rep.total() > 100 and len(d) >= 3, d
    model, n, ref, _, _ = bitexact_runs["single_v64_r16_nvert"]
    # integer (V/R)/n is 0 for n > V/R = 4: then only the output bias survives
    big = n > 4
    assert big.any() and (~big).any()
    bias = model.types["output_t"].cast(model.sublayers[0].b_out, model.sublayers[0].types["b_out"])
    np.testing.assert_array_equal(ref[big], np.broadcast_to(bias, ref[big].shape))
    assert not (ref[~big] == bias).all(axis=1).all()
