"""The whole e/pi model as an hls4ml project (calo.fpga.hls4ml_project) and the
quantization-aware Dense head (calo.fpga.qat): hls4ml's own API, g++, bit for bit."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from calo.errors import ConfigError
from calo.fpga.events import toy_events
from calo.fpga.export import with_edge_cases
from calo.fpga.fixed import FixedType, quantize
from calo.fpga.garnet import GarNetFixedConfig
from calo.fpga.hls4ml_project import (
    check_weights,
    export_hls4ml,
    hls4ml_layers,
    predict_outputs,
    reference_outputs,
    to_hls4ml,
)
from calo.fpga.qat import (
    HLS4ML_DEFAULT_HEAD,
    HeadFixedConfig,
    QGarNetModel,
    QGarNetStack,
    dense_fixed,
)

pytest.importorskip("hls4ml")

CFG = GarNetFixedConfig(n_vertices=16, reuse_factor=4)
#: every rounding and overflow family once: saturating and rounding accumulators, an unsigned
#: ReLU output, symmetric saturation of the weights
ODD_TYPES = HeadFixedConfig(
    weight_t="ap_fixed<8,2,AP_RND_ZERO,AP_SAT_SYM>",
    bias_t="ap_fixed<10,3,AP_RND,AP_SAT>",
    accum_t="ap_fixed<14,5,AP_RND_CONV,AP_SAT>",
    result_t="ap_fixed<12,4,AP_RND_INF,AP_SAT>",
    relu_t="ap_ufixed<9,3,AP_RND_MIN_INF,AP_SAT>",
)


def _model(seed: int, head_fixed: HeadFixedConfig | None = None, ternary: bool = False):
    torch.manual_seed(seed)
    stack = QGarNetStack(sublayers=((2, 3, 4), (3, 4, 6)), config=CFG, ternary=ternary)
    m = QGarNetModel(stack, head=(6, 4), head_fixed=head_fixed).eval()
    with torch.no_grad():  # large head weights: the default types' accumulators wrap
        for lin in [*m.dense_layers(), m.regression, m.classification]:
            lin.weight.mul_(4.0)
            lin.bias.uniform_(-1.0, 1.0)
    return m


def _events(n_events: int = 36):
    X, n = toy_events(np.random.default_rng(7), n_events, 16, 1, 16)
    return with_edge_cases(X, n, CFG)  # n = 0, 1, V/R, V first


# ---------------------------------------------------------------------- the quantized head
def _dense_latency_numpy(h, w, b, t):
    """nnet::dense_latency written out with calo.fpga.fixed, one element at a time."""
    wt, bt, at, rt = t["weight_t"], t["bias_t"], t["accum_t"], t["result_t"]
    wq = wt.to_float(quantize(w.T.astype(np.float64), wt))  # [n_in, n_out]
    bq = bt.to_float(quantize(b.astype(np.float64), bt))
    out = np.empty((h.shape[0], w.shape[0]))
    for e in range(h.shape[0]):
        acc = at.to_float(quantize(bq, at))
        for i in range(w.shape[1]):
            mult = at.to_float(quantize(h[e, i] * wq[i], at))
            acc = at.to_float(quantize(acc + mult, at))
        out[e] = rt.to_float(quantize(acc, rt))
    return out


@pytest.mark.parametrize(
    "types", [HLS4ML_DEFAULT_HEAD, HeadFixedConfig(), ODD_TYPES], ids=["hls4ml", "calo", "odd"]
)
def test_dense_fixed_is_nnet_dense_latency(types):
    rng = np.random.default_rng(3)
    t = types.types()
    h = t["relu_t"].to_float(quantize(rng.normal(0, 3, (12, 6)), t["relu_t"]))
    w = (rng.normal(0, 3, (5, 6))).astype(np.float32)
    b = rng.normal(0, 2, 5).astype(np.float32)
    got = dense_fixed(torch.as_tensor(h), torch.as_tensor(w), torch.as_tensor(b), t).numpy()
    np.testing.assert_array_equal(got, _dense_latency_numpy(h, w, b, t))
    if types == HLS4ML_DEFAULT_HEAD:  # the wrap-around is exercised, not only the easy range
        exact = h @ t["weight_t"].to_float(quantize(w.T.astype(np.float64), t["weight_t"]))
        assert np.abs(exact).max() > t["accum_t"].max_value


def test_quantized_head_switches_with_the_stack_and_passes_gradients():
    m = _model(0)
    m.train().set_quantized(True)
    X, n = _events(4)
    reg, logit = m(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(n))
    assert reg.dtype == torch.float64 and m.head_quantized
    (reg.sum() + logit.sum()).backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in m.head.parameters())
    assert float(m.stack.layers[0].s_kernel.grad.abs().sum()) > 0
    m.set_quantized(False)
    assert not m.head_quantized and m(torch.zeros(1, 16, 4), torch.tensor([2]))[0].dtype == (
        torch.float32
    )


def test_float_head_option_and_old_hyperparameters():
    m = QGarNetModel(QGarNetStack(config=CFG), quantize_head=False)
    assert not m.set_quantized(True).head_quantized
    hp = QGarNetModel(QGarNetStack(config=CFG)).hparams()
    assert QGarNetModel.from_hparams(hp).quantize_head
    del hp["quantize_head"], hp["head_fixed"]  # written before the head was quantized
    assert not QGarNetModel.from_hparams(hp).quantize_head
    with pytest.raises(ConfigError, match="relu_t"):
        HeadFixedConfig(relu_t="ap_fixed<4>>")


# ---------------------------------------------------------------------- the hls4ml graph
def test_graph_holds_calos_weights_and_types(tmp_path):
    m = _model(1, ODD_TYPES, ternary=True)
    hls_model = to_hls4ml(m, tmp_path / "prj", stack_output=True, write=False)
    assert check_weights(hls_model, m) == 2 * 5 + 4 * 2
    layers = {layer.name: layer for layer in hls_model.get_layers()}
    assert layers["garnet_stack"].class_name == "GarNetStack"
    assert [layers[k].class_name for k in ("dense0", "relu0", "classification")] == [
        "Dense",
        "Activation",
        "Dense",
    ]
    prec = layers["dense1"].get_attr("accum_t").precision
    assert (prec.width, prec.integer) == (14, 5)
    names = [v.name for v in hls_model.get_output_variables()]
    assert len(names) == 3


def test_stack_settings_hls4ml_cannot_express_are_named():
    cfg = GarNetFixedConfig(n_vertices=16, reuse_factor=4, distance_width=10, distance_nint=3)
    with pytest.raises(ConfigError, match="distance_t"):
        hls4ml_layers(QGarNetModel(QGarNetStack(config=cfg)))


# ---------------------------------------------------------------------- g++, bit for bit
@pytest.mark.slow
def test_compiled_project_predicts_calos_outputs_bit_for_bit(gxx, tmp_path):
    """Odd types everywhere in the head, ternary kernels in the stack."""
    m = _model(2, ODD_TYPES, ternary=True)
    hls_model = to_hls4ml(m, tmp_path / "prj", stack_output=True)
    hls_model.compile()
    X, n = _events()
    got = predict_outputs(hls_model, X, n)
    ref = reference_outputs(m, X, n)
    assert sorted(got) == ["classification", "garnet_stack", "regression"]
    for key in got:
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    # the stack's part is the numba reference too, and the edge events are in
    np.testing.assert_array_equal(ref["garnet_stack"], m.stack.to_reference()(X, n).output)
    assert n[:4].tolist() == [0, 1, 4, 16]
    assert np.unique(ref["regression"]).size > 10  # not a constant output


@pytest.mark.slow
def test_export_hls4ml_compiles_and_checks_the_default_types(gxx, tmp_path):
    """hls4ml's default types (wrapping accumulators), the export's own g++ check."""
    m = _model(3, HLS4ML_DEFAULT_HEAD)
    s = export_hls4ml(m, tmp_path / "prj", events=36, name="epi", compile=True, stack_output=True)
    assert s["differing_values"] == {"garnet_stack": 0, "regression": 0, "classification": 0}
    assert s["bit_exact"] is True
    doc = json.loads((tmp_path / "prj" / "calo_hls4ml.json").read_text())
    assert doc["outputs"] == ["garnet_stack", "regression", "classification"] and doc["bit_exact"]
    assert (tmp_path / "prj" / "firmware" / "epi.cpp").is_file()
    saved = np.load(tmp_path / "prj" / "calo_test_events.npz")
    assert saved["n"][:4].tolist() == [0, 1, 4, 16] and saved["regression"].shape == (40,)
    X, n = saved["X"], saved["n"]
    np.testing.assert_array_equal(saved["garnet_stack"], m.stack.to_reference()(X, n).output)


def test_cli_refuses_a_run_that_is_not_e_pi(monkeypatch, tmp_path, capsys):
    import calo.train.checkpoint
    import calo.train.evaluate
    from calo.fpga.cli import export_main

    monkeypatch.setattr(calo.train.checkpoint, "resolve_checkpoint", lambda p: tmp_path / "x.ckpt")
    fake = (None, SimpleNamespace(task="fractions"), {}, None)
    monkeypatch.setattr(calo.train.evaluate, "load_model", lambda p: fake)
    assert export_main(["run", "--format", "hls4ml", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "e/pi runs" in err[0] and "fractions" in err[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "hls4ml", "--per-hit"], "do not apply to --format hls4ml"),
        (["--format", "hls4ml", "--reuse-factor", "4"], "do not apply to --format hls4ml"),
        (["--compile"], "apply to --format hls4ml only"),
    ],
)
def test_cli_options_of_other_formats_are_errors(tmp_path, capsys, args, message):
    from calo.fpga.cli import export_main

    assert export_main(["run", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_fixed_type_of_hls4ml_matches_calos_parser():
    from hls4ml.model.types import FixedPrecisionType

    from calo.fpga.hls4ml_project import _hls_type

    p = FixedPrecisionType(14, 5, True, "AP_RND_CONV", "AP_SAT")
    assert _hls_type(p) == FixedType.parse("ap_fixed<14,5,AP_RND_CONV,AP_SAT>")
