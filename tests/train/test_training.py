"""End-to-end training, resume, DDP, evaluation and the command-line error paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from trainhelp import TINY_GRAVNET, one_line_error

from calo.config import apply_overrides, to_dict
from calo.errors import CheckpointError, ConfigError, DataError
from calo.reco.calibration import ShareCalibration
from calo.train.checkpoint import read_checkpoint
from calo.train.cli import evaluate_main, train_main
from calo.train.config import TrainConfig
from calo.train.data import check_truth
from calo.train.evaluate import load_model
from calo.train.run import train

TINY = [
    *TINY_GRAVNET,
    "data.batch_size=8",
    "trainer.progress_bar=false",
    "trainer.early_stopping_patience=0",
    "optim.lr=0.01",
    "optim.scheduler=none",
]


def _cfg(root: Path, *extra: str) -> TrainConfig:
    return apply_overrides(TrainConfig(), [*TINY, f"data.files=[{root}]", *extra])


@pytest.fixture(scope="module")
def trained(small_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run") / "full"
    metrics = train(_cfg(small_root, "trainer.max_epochs=4"), out, plots=True)
    return out, metrics


@pytest.mark.slow
def test_training_decreases_the_loss_and_writes_the_run_folder(trained: tuple[Path, dict]) -> None:
    out, metrics = trained
    hist = metrics["history"]
    assert hist["epoch"] == [0.0, 1.0, 2.0, 3.0]
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    on_disk = json.loads((out / "metrics.json").read_text())
    assert set(on_disk["methods"]) == {"model", "baseline", "refined", "calibrated"}
    assert on_disk["methods"]["model"]["n_events"] == on_disk["data"]["n_val"] == 16
    # the share calibration is fitted on the 64 training events and stored in the run folder
    cal = ShareCalibration.load(out / "share_calibration.json")
    assert on_disk["calibration"]["fitted"] and cal.n_train + cal.n_skipped == 64
    assert on_disk["calibration"]["bins_calibrated"] == cal.n_calibrated
    assert set(on_disk["rms_ratio"]) == {"model", "refined", "calibrated"}
    assert cal.refine_iterations == on_disk["calibration"]["refine_iterations"] == 2
    base_rms = on_disk["methods"]["baseline"]["response"]["rms"]
    assert on_disk["rms_ratio"]["model"] == pytest.approx(
        base_rms / on_disk["methods"]["model"]["response"]["rms"]
    )
    assert 0.0 < on_disk["methods"]["model"]["loss"] < 0.25  # a 50/50 split scores 0.25
    for name in ("config.yaml", "checkpoints/last.ckpt", "checkpoints/best.ckpt",
                 "plots/loss.png", "plots/response.png", "plots/response_overlap.png",
                 "plots/event_0.png"):  # fmt: skip
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_checkpoint_is_weights_only_safe_and_rebuilds_the_model(trained: tuple[Path, dict]) -> None:
    out, _ = trained
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["calo"]["config"]["model"]["gravnet"]["k"] == 8
    assert isinstance(ckpt["calo"]["normalization"], dict)
    model, cfg, _norm, hist = load_model(out / "checkpoints" / "last.ckpt")
    assert cfg.model.gravnet.n_blocks == 1 and len(hist["epoch"]) == 4
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ckpt["state_dict"]["model." + k])


@pytest.mark.slow
def test_resume_continues_to_the_same_state(small_root: Path, trained: tuple[Path, dict],
                                            tmp_path: Path) -> None:  # fmt: skip
    full_out, _ = trained
    out = tmp_path / "resumed"
    train(_cfg(small_root, "trainer.max_epochs=2"), out, plots=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(_cfg(small_root, "trainer.max_epochs=4"), out, plots=False)
    metrics = train(_cfg(small_root, "trainer.max_epochs=4"), out, resume=True, plots=False)
    assert metrics["history"]["epoch"] == [0.0, 1.0, 2.0, 3.0]
    a = torch.load(full_out / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(a["calo"]["history"]["val_loss"], b["calo"]["history"]["val_loss"],
                               rtol=1e-5)  # fmt: skip


@pytest.mark.slow
def test_evaluate_cli_writes_metrics_and_plots(trained: tuple[Path, dict], small_root: Path,
                                               tmp_path: Path) -> None:  # fmt: skip
    out, metrics = trained
    assert evaluate_main([str(out), "--out", str(tmp_path / "ev")]) == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    # same validation events, same best checkpoint: same numbers as at the end of training
    assert ev["methods"]["model"]["loss"] == pytest.approx(metrics["methods"]["model"]["loss"])
    assert ev["methods"]["baseline"]["loss"] == pytest.approx(
        metrics["methods"]["baseline"]["loss"]
    )
    # the run's share calibration (and its profile refinement) is applied again, to the same
    # numbers
    for name in ("refined", "calibrated"):
        assert ev["methods"][name]["response"]["rms"] == pytest.approx(
            metrics["methods"][name]["response"]["rms"]
        )
    assert ev["calibration"] == str(out / "share_calibration.json")
    assert (tmp_path / "ev" / "plots" / "response.png").is_file()
    assert evaluate_main([str(out), "--data", str(small_root), "--out", str(tmp_path / "e2"),
                          "--no-plots", "--no-calibration"]) == 0  # fmt: skip
    e2 = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    assert e2["methods"]["model"]["n_events"] == 80
    assert set(e2["methods"]) == {"model", "baseline"} and e2["calibration"] is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["model.nonsense=1"], ["unknown configuration key", "model.nonsense"]),
        (["optim.lr=-1"], ["optim.lr"]),
        (["loss.weighting=mse"], ["loss.weighting"]),
        (["loss.ordered_overlap=2"], ["loss.ordered_overlap"]),
        (["loss.share_weight=-1"], ["loss.share_weight"]),
        (["trainer.devices=two"], ["trainer.devices"]),
        (["--model", "resnet"], ["model.name"]),
        (["notakeyvalue"], ["key=value"]),
        (["--resume"], ["--resume needs --out"]),
    ],
)
def test_bad_train_configuration(capsys: pytest.CaptureFixture[str], args: list[str],
                                 words: list[str]) -> None:  # fmt: skip
    one_line_error(capsys, train_main(args), *words)


def test_bad_yaml_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  name: gravnet\n  gravnet:\n    k: -3\n")
    one_line_error(capsys, train_main(["--config", str(cfg)]), "k")
    cfg.write_text("optimiser:\n  lr: 0.1\n")
    one_line_error(capsys, train_main(["--config", str(cfg)]), "optimiser")


def test_resume_without_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(capsys, train_main(["--out", str(tmp_path), "--resume"]), "config.yaml")


@pytest.mark.slow
def test_bad_checkpoints(tmp_path: Path, trained: tuple[Path, dict],
                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    one_line_error(capsys, evaluate_main([str(foreign)]), "not a calo checkpoint", str(foreign))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a zip" * 10)
    one_line_error(capsys, evaluate_main([str(garbage)]), "not a PyTorch checkpoint", str(garbage))
    good = (trained[0] / "checkpoints" / "last.ckpt").read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good[: len(good) // 2])
    one_line_error(capsys, evaluate_main([str(truncated)]), "truncated")
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"calo": {"format": 1}, "obj": Path("x")}, unsafe)  # not weights_only-loadable
    one_line_error(capsys, evaluate_main([str(unsafe)]), "holds code that calo will not run")
    wrong = tmp_path / "wrong.ckpt"
    ck = torch.load(trained[0] / "checkpoints" / "last.ckpt", weights_only=True)
    ck["calo"]["config"]["model"]["gravnet"]["k"] = 4.5
    torch.save(ck, wrong)
    one_line_error(capsys, evaluate_main([str(wrong)]), "configuration is invalid")
    ck["calo"]["config"]["model"]["gravnet"]["k"] = 8
    ck["calo"]["config"]["model"]["gravnet"]["out_channels"] = 32
    torch.save(ck, wrong)
    one_line_error(capsys, evaluate_main([str(wrong)]), "weights do not fit")
    with pytest.raises(CheckpointError, match="no checkpoints"):
        load_model_dir = tmp_path / "empty_run"
        load_model_dir.mkdir()
        from calo.train.checkpoint import resolve_checkpoint

        resolve_checkpoint(load_model_dir)
    assert read_checkpoint(trained[0] / "checkpoints" / "best.ckpt")["calo"]["format"] == 1


@pytest.mark.slow
def test_data_without_truth(tmp_path: Path, small_root: Path, trained: tuple[Path, dict],
                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import uproot

    with uproot.open(small_root) as f:
        tree = f["events"]
        keep = [k for k in tree.keys() if not k.startswith("hit_frac") and k != "hit_truth"]
        arrays = tree.arrays([k for k in keep if not k.startswith("n")], library="ak")
    notruth = tmp_path / "notruth.root"
    import awkward as ak

    hits = {k[4:]: arrays[k] for k in arrays.fields if k.startswith("hit_")}
    parts = {k[9:]: arrays[k] for k in arrays.fields if k.startswith("particle_")}
    with uproot.recreate(notruth) as f:
        f["events"] = {"event": arrays["event"], "hit": ak.zip(hits), "particle": ak.zip(parts)}
    rc = evaluate_main([str(trained[0]), "--data", str(notruth), "--no-plots"])
    one_line_error(capsys, rc, "notruth.root")
    from torch_geometric.data import Data

    with pytest.raises(DataError, match="no 'y'"):
        check_truth([Data(x=torch.zeros(2, 7), pos=torch.zeros(2, 3), energy=torch.ones(2))], "f")
    zero = Data(
        x=torch.zeros(2, 7), pos=torch.zeros(2, 3), energy=torch.ones(2), y=torch.zeros(2, 2)
    )
    with pytest.raises(DataError, match="nonzero truth"):
        check_truth([zero], "f")


def test_config_round_trip_through_yaml(tmp_path: Path) -> None:
    from calo.config import load_yaml, save_yaml

    cfg = apply_overrides(TrainConfig(), ["model.name=edgeconv", "model.edgeconv.k=12"])
    save_yaml(cfg, tmp_path / "c.yaml")
    again = load_yaml(TrainConfig, tmp_path / "c.yaml", ["optim.lr=0.5"])
    assert to_dict(again)["model"] == to_dict(cfg)["model"] and again.optim.lr == 0.5


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(small_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "calo.train.cli", "--out", str(out), "--no-plots",
           *_cfg_args(small_root), "trainer.max_epochs=2", "trainer.strategy=ddp",
           "trainer.accelerator=cpu", "trainer.devices=2", "trainer.threads=1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size=2" in proc.stderr + proc.stdout or "distributed_backend=gloo" in proc.stderr
    ck = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    # 64 training events, 8 per batch and process, split over 2 processes: 4 steps per epoch
    assert ck["global_step"] == 2 * 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["methods"]["model"]["n_events"] == 16


def _cfg_args(root: Path) -> list[str]:
    return [*TINY, f"data.files=[{root}]"]


@pytest.mark.slow
def test_early_stopping_ends_training_when_the_validation_loss_stalls(
    small_root: Path, tmp_path: Path
) -> None:
    cfg = _cfg(small_root, "trainer.max_epochs=40", "trainer.early_stopping_patience=1",
               "optim.lr=0.05")  # fmt: skip
    metrics = train(cfg, tmp_path / "run", plots=False)
    val = metrics["history"]["val_loss"]
    assert 2 <= len(val) < 40, "early stopping never ended the run"
    # patience 1: every epoch but the last improved on the best before it, the last did not
    assert all(val[i] < min(val[:i]) for i in range(1, len(val) - 1)), val
    assert val[-1] >= min(val[:-1]), val


def _module_and_batch(root: Path, override: str) -> tuple[Any, Any]:
    """An untrained FractionModule with one override and a batch of 8 events of ``root``."""
    from torch_geometric.data import Batch

    from calo.io import read_data
    from calo.train.module import FractionModule

    events, _ = read_data(root, max_events=8)
    return FractionModule(to_dict(_cfg(root, override))).eval(), Batch.from_data_list(events)


def test_loss_weighting_reaches_the_training_loss(small_root: Path) -> None:
    from calo.train.losses import permutation_invariant_loss

    module, data = _module_and_batch(small_root, "loss.weighting=energy")
    with torch.no_grad():
        pred = module(data)
        got = float(module._loss(data))
        args = (pred, data.y, data.energy, data.batch, data.num_graphs)
        energy = float(permutation_invariant_loss(*args, weighting="energy").loss)
        paper = float(permutation_invariant_loss(*args).loss)
    assert got == pytest.approx(energy) and got != pytest.approx(paper)


def test_loss_ordered_overlap_reaches_the_training_loss_only(small_root: Path) -> None:
    from calo.train.losses import energy_ordered_loss, permutation_invariant_loss

    module, data = _module_and_batch(small_root, "loss.ordered_overlap=0")
    with torch.no_grad():
        pred = module(data)
        args = (pred, data.y, data.energy, data.batch, data.num_graphs)
        ordered = float(energy_ordered_loss(*args, min_overlap=0.0).loss)
        pit = float(permutation_invariant_loss(*args).loss)
        assert ordered > pit  # an untrained model gets some events' order wrong
        assert float(module._loss(data, train=True)) == pytest.approx(ordered)
        assert float(module._loss(data)) == pytest.approx(pit)  # validation stays invariant


def test_loss_share_weight_adds_the_share_term_to_the_training_loss_only(small_root: Path) -> None:
    from calo.train.losses import energy_share_loss, permutation_invariant_loss

    module, data = _module_and_batch(small_root, "loss.share_weight=2.5")
    with torch.no_grad():
        pred = module(data)
        args = (pred, data.y, data.energy, data.batch, data.num_graphs)
        pit = permutation_invariant_loss(*args)
        share = float(energy_share_loss(pred, data.y, data.energy, pit.perm, data.batch))
        assert share > 0
        assert float(module._loss(data, train=True)) == pytest.approx(float(pit.loss) + 2.5 * share)
        assert float(module._loss(data)) == pytest.approx(float(pit.loss))


@pytest.mark.slow
def test_evaluate_with_a_corrupt_share_calibration_says_so(trained: tuple[Path, dict],
                                                           tmp_path: Path, capsys) -> None:  # fmt: skip
    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run, ignore=shutil.ignore_patterns("plots", "evaluation*"))
    (run / "share_calibration.json").write_text(
        '{"format": "calo-share-calibration", "version": 1}'
    )
    rc = evaluate_main([str(run), "--out", str(tmp_path / "ev"), "--no-plots"])
    one_line_error(capsys, rc, "malformed share calibration", "share_calibration.json")
    # without it the run evaluates the model and the baseline only
    assert evaluate_main([str(run), "--out", str(tmp_path / "ev"), "--no-plots",
                          "--no-calibration"]) == 0  # fmt: skip
