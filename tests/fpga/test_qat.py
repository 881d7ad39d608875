"""The quantization-aware GarNetStack: bit for bit with the numba reference, gradients, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from calo.errors import ConfigError, DataError
from calo.fpga.data import load_e_pi
from calo.fpga.events import toy_events
from calo.fpga.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedType, quantize
from calo.fpga.garnet import GarNetFixedConfig
from calo.fpga.qat import QGarNetModel, QGarNetStack, _assign_scaled, fake_quantize, ternarize
from calo.fpga.reference import garnet_float

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_e_pi.root"

NARROW = dict(
    input_t="ap_fixed<10,3,AP_RND_CONV,AP_SAT>",
    output_t="ap_fixed<10,3,AP_RND,AP_SAT_SYM>",
    aggr_t="ap_fixed<12,3,AP_RND_ZERO,AP_SAT>",
    edge_weight_aggr_t="ap_ufixed<9,2>",
    edge_weight_t="ap_ufixed<8,0,AP_RND,AP_SAT>",
    distance_width=10,
    distance_nint=3,
)

# name, config, sublayers, ternary, weight scale (each case compiles numba kernels for tens of
# seconds, so the whole test is slow; the doctest of calo.fpga.qat keeps one bit-exact
# comparison in the default run)
SLOW = pytest.mark.slow
CASES = [
    ("paper_v128_r32", dict(n_vertices=128, reuse_factor=32), None, False, 1.0),
    pytest.param(
        "paper_v64_r16", dict(n_vertices=64, reuse_factor=16), None, False, 1.0, marks=SLOW
    ),
    pytest.param("paper_v32_r8", dict(n_vertices=32, reuse_factor=8), None, False, 1.0, marks=SLOW),
    ("paper_v16_r4", dict(n_vertices=16, reuse_factor=4), None, False, 1.0),
    pytest.param(
        "paper_v64_r1_ternary", dict(n_vertices=64, reuse_factor=1), None, True, 1.0, marks=SLOW
    ),
    ("narrow_v32_r8_saturating", dict(n_vertices=32, reuse_factor=8, **NARROW), None, False, 3.0),
    pytest.param(
        "single_v16_r16_weight_t",
        dict(n_vertices=16, reuse_factor=16, weight_t="ap_fixed<12,4,AP_RND,AP_SAT>"),
        [(3, 5, 6)],
        False,
        2.0,
        marks=SLOW,
    ),
]


@pytest.fixture(scope="module")
def sample_data():
    from calo.io import FeatureSpec, read_data

    data, _ = read_data(SAMPLE, features=FeatureSpec(("x", "y", "z", "energy")))
    return data


def _stack(cfg_kw, subs, ternary, scale, seed):
    torch.manual_seed(seed)
    kw = {} if subs is None else {"sublayers": subs}
    s = QGarNetStack(config=GarNetFixedConfig(**cfg_kw), ternary=ternary, **kw)
    with torch.no_grad():
        for layer in s.layers:
            for name, p in layer.named_parameters():
                if "bias" in name:
                    p.normal_(0.0, 0.1 * scale)
                else:
                    p.mul_(scale)
    return s.eval()


@pytest.mark.slow
@pytest.mark.parametrize("name,cfg_kw,subs,ternary,scale", CASES)
def test_eval_output_equals_fixed_garnet_bit_for_bit(
    sample_data, name, cfg_kw, subs, ternary, scale
):
    stack = _stack(cfg_kw, subs, ternary, scale, seed=len(name))
    V = stack.config.n_vertices
    rng = np.random.default_rng(7)
    Xt, nt = toy_events(rng, 150, V, 0, V)
    s = load_e_pi(sample_data[:250], v_max=V)
    X = np.concatenate([Xt, s.X.double().numpy()])
    n = np.concatenate([nt, s.n.numpy()])
    with torch.no_grad():
        ours = stack(torch.as_tensor(X), torch.as_tensor(n)).numpy()
    ref = stack.to_reference()(X, n)
    assert ours.shape == ref.output.shape == (400, stack.n_out)
    diff = np.argwhere(ours != ref.output)
    assert diff.size == 0, f"{len(diff)} outputs differ, first at {diff[0]}"
    # not vacuous: the outputs differ from event to event
    assert np.unique(ref.output_raw, axis=0).shape[0] > 200
    if name.startswith("narrow"):
        # saturation, rounding modes and wrap-around are exercised, and still agree
        assert ref.overflow.total() > 100, str(ref.overflow)
    if ternary:
        for w in stack.garnet_weights():
            for k in (w.flr_kernel, w.fout_kernel):
                vals = np.unique(np.abs(k))
                assert len(vals) == 2 and vals[0] == 0.0, vals  # {-s, 0, s}
                assert np.log2(vals[1]) == np.round(np.log2(vals[1]))  # s = 2**k


@pytest.mark.parametrize("rounding", list(ROUNDING_MODES))
@pytest.mark.parametrize("overflow", list(OVERFLOW_MODES))
def test_fake_quantize_equals_fixed_quantize(rng, rounding, overflow):
    for signed in (True, False):
        t = FixedType(7, 2, signed, rounding, overflow)
        x = np.concatenate([rng.normal(0, 3, 500), np.arange(-40, 40) / 8 + 1 / 64])
        got = fake_quantize(torch.as_tensor(x), t).numpy()
        np.testing.assert_array_equal(got, t.to_float(quantize(x, t)))


@pytest.mark.parametrize("overflow", list(OVERFLOW_MODES))
def test_tensor_form_of_the_rules_equals_fixed_quantize(rng, overflow):
    """fake_quantize off the CPU runs calo.fpga.fixed's rules as tensor operations."""
    x = np.concatenate([rng.normal(0, 3, 500), np.arange(-40, 40) / 8 + 1 / 64, [-1e9, 1e9]])
    for rounding in ROUNDING_MODES:
        for signed in (True, False):
            t = FixedType(7, 2, signed, rounding, overflow)
            got = _assign_scaled(torch.as_tensor(np.ldexp(x, t.frac)), t).numpy()
            np.testing.assert_array_equal(got, quantize(x, t))


def test_straight_through_gradients():
    x = torch.tensor([0.3, 5.0, -7.0], dtype=torch.float64, requires_grad=True)
    fake_quantize(x, FixedType(8, 3, overflow="SAT")).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 0.0]  # zero where saturated
    x.grad = None
    fake_quantize(x, FixedType(8, 3)).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]  # wrap: straight through
    w = torch.tensor([-1.5, -0.2, 0.7], requires_grad=True)
    t = ternarize(w)
    t.sum().backward()
    assert t.tolist() == [-1.0, 0.0, 1.0] and w.grad.tolist() == [1.0, 1.0, 1.0]


def test_every_parameter_gets_a_gradient_in_quantized_mode():
    cfg = GarNetFixedConfig(n_vertices=32, reuse_factor=8)
    m = QGarNetModel(QGarNetStack(config=cfg))
    X, n = toy_events(np.random.default_rng(3), 64, 32)
    reg, logit = m(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(n))
    (reg.square().sum() + logit.sum()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_float_mode_is_the_float_garnet():
    stack = QGarNetStack(config=GarNetFixedConfig(n_vertices=64, reuse_factor=16))
    stack.set_quantized(False)
    X, n = toy_events(np.random.default_rng(4), 50, 64)
    with torch.no_grad():
        ours = stack(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(n)).numpy()
    np.testing.assert_allclose(ours, garnet_float(stack.garnet_weights(), X, n), atol=1e-5)
    # and the quantized mode approximates it
    stack.set_quantized(True)
    with torch.no_grad():
        q = stack(torch.as_tensor(X), torch.as_tensor(n)).numpy()
    assert np.corrcoef(q.ravel(), ours.ravel())[0, 1] > 0.95
    assert np.abs(q - ours).mean() < 0.5 * np.abs(ours).mean()


@pytest.mark.slow
def test_quantization_aware_training_learns_e_pi(tmp_path):
    """calo-train's e/pi task, float then quantization-aware, learns the task; the trained
    stack still equals the reference bit for bit."""
    from calo.train.e_pi import EPiDataModule, build_e_pi_model, evaluate_e_pi
    from calo.train.evaluate import load_model
    from calo.train.run import resolve_config, train

    overrides = [
        "task=e_pi", f"data.files=[{SAMPLE}]", "data.val_fraction=0.2",
        "data.batch_size=50", "optim.lr=5e-3", "e_pi.fixed.n_vertices=32",
        "e_pi.fixed.reuse_factor=8", "e_pi.qat_epochs=1", "trainer.max_epochs=5",
        "trainer.max_time_minutes=0", "trainer.early_stopping_patience=0",
        "trainer.progress_bar=false", "trainer.seed=1",
    ]  # fmt: skip
    cfg = resolve_config(None, overrides, None)
    metrics = train(cfg, tmp_path / "run", plots=False)
    dm = EPiDataModule(cfg.data, cfg.e_pi)
    dm.setup()
    test = dm.val_sample
    torch.manual_seed(1)
    before = evaluate_e_pi(build_e_pi_model(cfg.e_pi), test)["methods"]["quantized"]
    after = metrics["methods"]["quantized"]
    hist = metrics["history"]
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert after["roc_auc"] > max(0.75, before["roc_auc"] + 0.1), (before, after)
    assert after["response"]["rms"] < 0.6
    m = load_model(tmp_path / "run")[0]
    with torch.no_grad():
        ours = m.stack(test.X, test.n).numpy()
    ref = m.stack.to_reference()(test.X.double().numpy(), test.n.numpy()).output
    np.testing.assert_array_equal(ours, ref)


def test_bad_inputs_and_configs_raise_calo_errors():
    stack = QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    with pytest.raises(DataError, match=r"shape \[B, 16, 4\]"):
        stack(torch.zeros(2, 8, 4), torch.tensor([1, 2]))
    with pytest.raises(DataError, match=r"outside 0\.\.16"):
        stack(torch.zeros(2, 16, 4), torch.tensor([1, 17]))
    with pytest.raises(DataError, match="n must have shape"):
        stack(torch.zeros(2, 16, 4), torch.tensor([1, 2, 3]))
    with pytest.raises(ConfigError, match="collapse='mean'"):
        QGarNetStack(config=GarNetFixedConfig(collapse="none"))
    with pytest.raises(ConfigError, match="mean_by_nvert"):
        QGarNetStack(config=GarNetFixedConfig(mean_by_nvert=True, nvert_division="fixed"))
    with pytest.raises(ConfigError, match="sublayers"):
        QGarNetStack(sublayers=[(4, 8)])
    with pytest.raises(ConfigError, match="ternary_threshold"):
        QGarNetStack(ternary_threshold=2.5)
    with pytest.raises(ConfigError, match="head"):
        QGarNetModel(head=(16, 0))
    with pytest.raises(ConfigError, match="malformed"):
        QGarNetModel.from_hparams({"stack": {}})
