"""Magnitude pruning in calo-train (task e_pi): configuration, the schedule, the sparsity a
tiny training reaches, exact zeros in the checkpoints, metrics.json and calo-export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from calo.config import apply_overrides
from calo.errors import ConfigError
from calo.fpga.garnet import GarNetFixedConfig
from calo.fpga.qat import QGarNetModel, QGarNetStack
from calo.train.config import PruningConfig, TrainConfig
from calo.train.evaluate import load_model
from calo.train.pruning import (
    MagnitudePruning,
    apply_masks,
    model_dsp,
    pruning_targets,
    sparsity_report,
)
from calo.train.run import train

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_e_pi.root"

TINY = [
    "task=e_pi",
    f"data.files=[{SAMPLE}]",
    "data.max_events=200",
    "data.batch_size=20",
    "e_pi.fixed.n_vertices=16",
    "e_pi.fixed.reuse_factor=4",
    "optim.lr=0.01",
    "trainer.progress_bar=false",
    "trainer.early_stopping_patience=0",
    "trainer.max_time_minutes=0",
    "pruning.enabled=true",
]


def _cfg(*extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), [*TINY, *extra])


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """3 float epochs (pruned to 0.75 after epochs 0 and 1), then 1 quantization-aware."""
    out = tmp_path_factory.mktemp("pruned") / "run"
    cfg = _cfg(
        "trainer.max_epochs=4", "e_pi.qat_epochs=1", "pruning.amount=0.75",
        "pruning.ramp_epochs=2",
    )  # fmt: skip
    return out, train(cfg, out, plots=False)


@pytest.mark.parametrize(
    "override,message",
    [
        ("pruning.amount=1.0", "pruning.amount must be in"),
        ("pruning.amount=-0.1", "pruning.amount must be in"),
        ("pruning.ramp_epochs=0", "pruning.ramp_epochs must be >= 1"),
        ("pruning.start_epoch=-1", "pruning.start_epoch must be >= 0"),
        ("pruning.parameters=bias", "pruning.parameters"),
        ("pruning.scope=row", "pruning.scope"),
    ],
)
def test_bad_pruning_settings_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(TrainConfig(), ["task=e_pi", override])


def test_pruning_needs_the_e_pi_task() -> None:
    assert not TrainConfig().pruning.enabled
    with pytest.raises(ConfigError, match="needs task=e_pi"):
        apply_overrides(TrainConfig(), ["pruning.enabled=true"])
    assert apply_overrides(TrainConfig(), ["task=e_pi", "pruning.enabled=true"]).pruning.enabled


def test_cubic_schedule_and_increments() -> None:
    cfg = PruningConfig(enabled=True, amount=0.8, start_epoch=2, ramp_epochs=4)
    targets = [cfg.target(e) for e in range(8)]
    # s(e) = 0.8 (1 - (1 - (e - 1) / 4)^3) from epoch 2 on
    expected = [0, 0, 0.8 * (1 - 0.75**3), 0.8 * (1 - 0.5**3), 0.8 * (1 - 0.25**3), 0.8, 0.8, 0.8]
    np.testing.assert_allclose(targets, expected, rtol=0, atol=1e-12)
    cb = MagnitudePruning(cfg)
    left = 1.0
    for e in range(8):  # each increment prunes a fraction of what is left: the product is 1 - s
        left *= 1.0 - cb.increment(e)
        assert 1.0 - left == pytest.approx(targets[e], abs=1e-12)
    assert cb.increment(9) == 0.0 and cb.state_dict()["sparsity"] == 0.8


def test_masks_reach_kernels_the_stack_never_calls() -> None:
    """The GarNet kernels sit in containers the stack reads but never calls: the model's
    forward pre-hook recomputes kernel = kernel_orig * mask, so the optimiser cannot revive
    a pruned weight and the gradient reaches kernel_orig."""
    torch.manual_seed(0)
    model = QGarNetModel(QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4)))
    layer = model.stack.layers[0]
    prune.l1_unstructured(layer, "s_kernel", amount=0.5)
    model.register_forward_pre_hook(apply_masks)
    with torch.no_grad():
        layer.s_kernel_orig.add_(1.0)  # an optimiser step on the latent weights
    X, n = torch.randn(2, 16, 4), torch.tensor([5, 16])
    reg, logit = model(X, n)
    assert torch.equal(layer.s_kernel == 0, layer.s_kernel_mask == 0)
    assert torch.equal(layer.s_kernel[layer.s_kernel_mask == 1],
                       layer.s_kernel_orig[layer.s_kernel_mask == 1].detach())  # fmt: skip
    (reg.sum() + logit.sum()).backward()
    g = layer.s_kernel_orig.grad
    assert g is not None and torch.all(g[layer.s_kernel_mask == 0] == 0)
    assert torch.any(g[layer.s_kernel_mask == 1] != 0)


def test_targets_and_report() -> None:
    model = QGarNetModel()
    both = pruning_targets(model, "both")
    names = {f"{type(m).__name__}.{n}" for m, n in both}
    assert names == {"Module.s_kernel", "Module.flr_kernel", "Module.fout_kernel", "Linear.weight"}
    assert len(both) == 13  # 3 sublayers x 3 kernels, 2 hidden Dense + 2 outputs
    with torch.no_grad():
        model.stack.layers[2].fout_kernel[:10] = 0.0  # 10 rows of 16 outputs
    rep = sparsity_report(model, "garnet")
    assert rep["tensors"]["stack.layers.2.fout_kernel"]["zeros"] == 160
    assert rep["total"]["size"] == sum(p.numel() for m, n in both[:9] for p in [getattr(m, n)])


def test_training_reaches_the_sparsity_with_exact_zeros(pruned_run: tuple[Path, dict]) -> None:
    out, metrics = pruned_run
    p = metrics["pruning"]
    assert p["amount"] == 0.75 and p["sparsity_reached"] == 0.75 and p["final_epoch"] == 1
    assert metrics["qat_start_epoch"] == 3
    assert len(p["tensors"]) == 13
    for name, t in p["tensors"].items():  # every tensor, to the nearest whole weight
        assert abs(t["zeros"] - 0.75 * t["size"]) <= 1, name
    for ckpt in ("best.ckpt", "last.ckpt"):
        sd = torch.load(out / "checkpoints" / ckpt, weights_only=True)["state_dict"]
        assert not [k for k in sd if k.endswith(("_orig", "_mask"))]  # plain weights
        for name, t in p["tensors"].items():
            assert int((sd[f"model.{name}"] == 0).sum()) == t["zeros"], (ckpt, name)
    # the DSP estimate of metrics.json drops below the unpruned count
    d = p["dsp"]
    assert d["dsp"] < d["dense"] == 3280 and d["terms"]["head"] <= 100
    saved = json.loads((out / "metrics.json").read_text())["pruning"]
    assert saved["total"]["sparsity"] == pytest.approx(0.75, abs=0.01)


@pytest.mark.slow  # the export runs the numba reference (compiled on first use)
def test_pruned_run_exports_bit_for_bit(pruned_run: tuple[Path, dict], tmp_path: Path) -> None:
    """calo-export of the pruned run: the test vectors' expected outputs are the trained
    stack's, and the zeros of the distance kernel reach the header's arrays."""
    from calo.fpga.cli import export_main

    out, _ = pruned_run
    model = load_model(out / "checkpoints" / "best.ckpt")[0]
    assert model_dsp(model)["dsp"] < 3280
    assert export_main([str(out), "--out", str(tmp_path), "--events", "20"]) == 0
    doc = json.loads((tmp_path / "model.json").read_text())
    npz = np.load(tmp_path / "model.npz")
    vec = np.load(tmp_path / "test_vectors.npz")
    stack = model.stack
    X = stack.types["input_t"].to_float(vec["x_raw"])
    with torch.no_grad():
        ours = stack(torch.as_tensor(X), torch.as_tensor(vec["n"])).numpy()
    np.testing.assert_array_equal(stack.types["output_t"].to_float(vec["expected_raw"]), ours)
    for li, layer in enumerate(stack.layers):
        zero = (layer.s_kernel.detach().numpy() == 0).T
        np.testing.assert_array_equal(npz[f"L{li}_w_d_raw"][zero], 0)
    assert doc["dsp_estimate"]["dsp"] == model_dsp(model)["dsp"]


def test_quantization_aware_epochs_before_the_ramp_ends_jump_to_the_final_sparsity(
    tmp_path: Path,
) -> None:
    cfg = _cfg(
        "trainer.max_epochs=2", "e_pi.qat_epochs=1", "pruning.amount=0.6",
        "pruning.ramp_epochs=5", "pruning.scope=global", "pruning.parameters=head",
    )  # fmt: skip
    metrics = train(cfg, tmp_path / "run", plots=False)
    p = metrics["pruning"]
    assert p["final_epoch"] == 1 and p["sparsity_reached"] == 0.6
    assert p["total"]["sparsity"] == pytest.approx(0.6, abs=1 / p["total"]["size"])
    assert len(p["tensors"]) == 4 and p["scope"] == "global"


def test_resume_keeps_the_pruned_weights_zero(
    pruned_run: tuple[Path, dict], tmp_path: Path
) -> None:
    """Stopped after the ramp (2 epochs of 8 steps) and resumed: the checkpoint's plain weights
    are pruned again, and the run ends where the uninterrupted one ended."""
    full_out, full = pruned_run
    extra = ("e_pi.qat_epochs=1", "pruning.amount=0.75", "pruning.ramp_epochs=2")
    out = tmp_path / "resumed"
    train(_cfg("trainer.max_epochs=4", "trainer.max_steps=16", *extra), out, plots=False)
    metrics = train(_cfg("trainer.max_epochs=4", *extra), out, resume=True, plots=False)
    assert metrics["history"]["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert metrics["pruning"]["final_epoch"] == 1
    assert metrics["pruning"]["tensors"] == full["pruning"]["tensors"]
    a = torch.load(full_out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k] == 0, b[k] == 0) or "bias" in k, k
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
