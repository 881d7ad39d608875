"""The FPGA paper's electron/pion task in calo-train: training with quantization-aware
epochs, the run folder, checkpoints, resume, calo-evaluate and bit-exactness with the
numba reference of nnet_garnet.h."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from calo.config import apply_overrides
from calo.errors import CheckpointError, ConfigError
from calo.train.checkpoint import read_checkpoint
from calo.train.cli import evaluate_main, train_main
from calo.train.config import TrainConfig
from calo.train.e_pi import EPiDataModule
from calo.train.evaluate import load_model
from calo.train.qat import QuantizationAwareTraining
from calo.train.run import resolve_config, train

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_e_pi.root"

TINY = [
    "task=e_pi",
    f"data.files=[{SAMPLE}]",
    "data.max_events=200",
    "data.batch_size=20",
    "e_pi.fixed.n_vertices=16",
    "e_pi.fixed.reuse_factor=4",
    "e_pi.qat_epochs=1",
    "optim.lr=0.01",
    "trainer.progress_bar=false",
    "trainer.early_stopping_patience=0",
    "trainer.max_time_minutes=0",
]


def _cfg(*extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), [*TINY, *extra])


@pytest.fixture(scope="module")
def e_pi_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("e_pi") / "run"
    metrics = train(_cfg("trainer.max_epochs=4"), out, plots=True)
    return out, metrics


def test_task_and_model_on_the_command_line() -> None:
    cfg = resolve_config(None, ["task=e_pi"], None)
    assert cfg.task == "e_pi" and cfg.model_name == "qgarnet"
    assert TrainConfig().task == "fractions"
    with pytest.raises(ConfigError, match="task"):
        apply_overrides(TrainConfig(), ["task=segmentation"])
    with pytest.raises(ConfigError, match="qat_epochs"):
        apply_overrides(TrainConfig(), ["e_pi.qat_epochs=-2"])
    with pytest.raises(ConfigError, match="collapse=mean"):
        apply_overrides(TrainConfig(), ["e_pi.fixed.collapse=none"])


def test_e_pi_with_another_model_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main(["--task", "e_pi", "--model", "gravnet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "qgarnet" in err and "\n" not in err


def test_data_module_packs_and_splits_the_events() -> None:
    cfg = _cfg()
    dm = EPiDataModule(cfg.data, cfg.e_pi)
    dm.setup()
    assert len(dm.train_sample) + len(dm.val_sample) == 200
    assert len(dm.val_sample) == 40
    X, n, label, energy = next(iter(dm.train_dataloader()))
    assert X.shape == (20, 16, 4) and int(n.max()) <= 16
    assert set(label.tolist()) <= {0.0, 1.0} and bool((energy >= 10).all())
    assert "kept 200 events" in str(dm.read_summary)


def test_a_checkpoint_from_before_the_quantized_head_keeps_its_float_head(
    e_pi_run: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = e_pi_run
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", weights_only=False)
    assert load_model(out / "checkpoints" / "best.ckpt")[1].e_pi.quantize_head is True
    del ckpt["calo"]["config"]["e_pi"]["quantize_head"]
    torch.save(ckpt, tmp_path / "old.ckpt")
    model, cfg, _, _ = load_model(tmp_path / "old.ckpt")
    assert cfg.e_pi.quantize_head is False and model.quantize_head is False


@pytest.mark.slow
def test_training_runs_float_then_quantization_aware_epochs(e_pi_run: tuple[Path, dict]) -> None:
    out, metrics = e_pi_run
    assert metrics["task"] == "e_pi" and metrics["model"] == "qgarnet"
    assert metrics["qat_start_epoch"] == 3  # the last of 4 epochs
    assert metrics["trained_quantized"] is True
    hist = metrics["history"]
    assert hist["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert hist["train_loss"][2] < hist["train_loss"][0]
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(on_disk["methods"]) == {"quantized", "float"}
    for m in on_disk["methods"].values():
        assert m["n_events"] == 40 and 0.5 < m["roc_auc"] <= 1.0
        assert 0.0 < m["response"]["rms"] < 1.0
        assert len(m["roc"]["pion_efficiency"]) == len(m["roc"]["electron_efficiency"])
    for name in ("config.yaml", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                 "plots/roc.png", "plots/response.png", "plots/loss.png"):  # fmt: skip
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_best_checkpoint_is_a_quantization_aware_epoch(e_pi_run: tuple[Path, dict]) -> None:
    out, _ = e_pi_run
    best = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] >= 3  # chosen among the quantization-aware epochs only
    assert best["calo"]["model_state"] == {"quantized": True}
    model, cfg, _, _ = load_model(out / "checkpoints" / "best.ckpt")
    assert cfg.task == "e_pi" and model.stack.quantized
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, best["state_dict"]["model." + k])


@pytest.mark.slow
def test_trained_stack_equals_the_fixed_point_reference_bit_for_bit(
    e_pi_run: tuple[Path, dict],
) -> None:
    out, _ = e_pi_run
    model, cfg, _, _ = load_model(out / "checkpoints" / "best.ckpt")
    dm = EPiDataModule(cfg.data, cfg.e_pi)
    dm.setup()
    X, n = dm.val_sample.X, dm.val_sample.n
    with torch.no_grad():
        stack_out = model.stack(X, n).numpy()
    fixed = model.stack.to_reference()(X.double().numpy(), n.numpy())
    np.testing.assert_array_equal(stack_out, fixed.output)


@pytest.mark.slow
def test_evaluate_cli_on_an_e_pi_run(e_pi_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, metrics = e_pi_run
    assert evaluate_main([str(out), "--out", str(tmp_path / "ev"), "--data", str(SAMPLE)]) == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert ev["task"] == "e_pi" and ev["methods"]["quantized"]["n_events"] == 500
    assert (tmp_path / "ev" / "plots" / "roc.png").is_file()
    assert evaluate_main([str(out), "--out", str(tmp_path / "ev2"), "--no-plots"]) == 0
    ev2 = json.loads((tmp_path / "ev2" / "metrics.json").read_text())
    # the run's own validation events give the numbers calo-train printed
    assert ev2["methods"]["quantized"]["roc_auc"] == pytest.approx(
        metrics["methods"]["quantized"]["roc_auc"]
    )


@pytest.mark.slow
def test_resume_continues_the_quantization_aware_phase(
    e_pi_run: tuple[Path, dict], tmp_path: Path
) -> None:
    full_out, _ = e_pi_run
    out = tmp_path / "resumed"
    train(_cfg("trainer.max_epochs=4", "trainer.max_steps=20"), out, plots=False)  # 2 epochs
    metrics = train(_cfg("trainer.max_epochs=4"), out, resume=True, plots=False)
    assert metrics["history"]["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert metrics["qat_start_epoch"] == 3
    a = torch.load(full_out / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"]
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_early_stopping_in_the_float_phase_starts_the_quantization_aware_one(
    tmp_path: Path,
) -> None:
    # patience 1 with a learning rate too small to improve stops the float phase early
    cfg = _cfg(
        "trainer.max_epochs=30", "trainer.early_stopping_patience=1", "optim.lr=1e-9",
        "e_pi.qat_epochs=2",
    )  # fmt: skip
    metrics = train(cfg, tmp_path / "es", plots=False)
    start = metrics["qat_start_epoch"]
    assert start is not None and start < 28
    assert metrics["history"]["epoch"][-1] == start + 1  # two quantization-aware epochs ran
    assert metrics["trained_quantized"] is True


def test_qat_callback_state_round_trips() -> None:
    cb = QuantizationAwareTraining(2, 10)
    cb.qat_start, cb.cost_ratio = 7, 3.5
    other = QuantizationAwareTraining(2, 10)
    other.load_state_dict(cb.state_dict())
    assert (other.qat_start, other.cost_ratio) == (7, 3.5)


def test_old_fpga_checkpoint_names_its_replacement(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    old = tmp_path / "fpga.ckpt"
    torch.save({"calo_fpga": {"format": 1}, "state_dict": {}}, old)
    with pytest.raises(CheckpointError, match="calo-train --task e_pi"):
        read_checkpoint(old)
    assert evaluate_main([str(old)]) == 2
    assert "calo-train --task e_pi" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "calo.train.cli", "--out", str(out), "--no-plots", *TINY,
           "trainer.max_epochs=2", "trainer.strategy=ddp", "trainer.accelerator=cpu",
           "trainer.devices=2", "trainer.threads=1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ck = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    # 160 training events, 20 per batch and process, split over 2 processes: 4 steps per epoch
    assert ck["global_step"] == 2 * 4
    assert ck["calo"]["model_state"] == {"quantized": True}  # the last epoch ran in fixed point
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["qat_start_epoch"] == 1 and metrics["methods"]["quantized"]["n_events"] == 40
