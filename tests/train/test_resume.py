"""A killed training resumes where it was: the latest checkpoint after every epoch and inside
epochs, mid-epoch resume to the same weights, logs kept whole."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from trainhelp import TINY_GRAVNET

from calo.train.checkpoint import AtomicCheckpointIO
from calo.train.cli import train_main
from calo.train.resume import LatestCheckpoint, ResumableDataLoader

TINY = [
    *TINY_GRAVNET,
    "trainer.progress_bar=false",
    "trainer.early_stopping_patience=0",
    "trainer.log_every_n_steps=1",
    "optim.lr=0.01",
    "calibration.enabled=false",
]


class _Tiny(L.LightningModule):
    """A linear model whose validation loss grows every epoch (so best.ckpt stays at epoch 0)
    and whose training steps take at least ``sleep`` seconds."""

    def __init__(self, sleep: float) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.sleep = sleep

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        time.sleep(self.sleep)
        return self.lin(batch).pow(2).mean()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val_loss", float(self.current_epoch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_latest_checkpoint_after_every_epoch_and_every_interval(tmp_path: Path) -> None:
    interval_minutes = 0.001  # 60 ms; a step sleeps 30 ms, an epoch of 10 steps >= 300 ms
    latest = LatestCheckpoint(tmp_path / "last.ckpt", minutes=interval_minutes)
    best = L.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path, filename="best", monitor="val_loss", mode="min"
    )
    data = torch.randn(40, 2)
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[best, latest],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
        accelerator="cpu",
    )
    trainer.fit(
        _Tiny(sleep=0.03),
        train_dataloaders=ResumableDataLoader(data, batch_size=4),
        val_dataloaders=ResumableDataLoader(data[:4], batch_size=4),
    )
    # the validation loss never improved after epoch 0, last.ckpt is still the latest state
    assert torch.load(tmp_path / "best.ckpt", weights_only=True)["global_step"] == 10
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 30
    epochs = [step for step, when, _ in latest.saved if when == "epoch"]
    assert epochs == [10, 20, 30]
    inside = [step for step, when, _ in latest.saved if when == "batch"]
    assert inside and all(step % 10 for step in inside)
    # at least one per epoch (an epoch lasts 5 intervals), never two closer than the interval
    assert {(step - 1) // 10 for step in inside} == {0, 1, 2}
    times = [t for _, _, t in latest.saved]
    for (_, when, t), t_prev in zip(latest.saved[1:], times, strict=False):
        if when == "batch":
            assert t - t_prev >= interval_minutes * 60


def _fit_tiny(folder: Path, loader_cls: type, ckpt: Path | None = None, **limits: int) -> Path:
    """Train _Tiny on 40 shuffled samples (10 batches per epoch); return last.ckpt."""
    from calo.train.data import EpochShuffleSampler

    torch.manual_seed(0)
    data = torch.randn(40, 2, generator=torch.Generator().manual_seed(1))
    latest = LatestCheckpoint(folder / "last.ckpt", minutes=10.0)
    trainer = L.Trainer(
        callbacks=[latest],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        plugins=[AtomicCheckpointIO()],
        accelerator="cpu",
        **limits,
    )
    loader = loader_cls(data, batch_size=4, sampler=EpochShuffleSampler(40, seed=5))
    trainer.fit(_Tiny(sleep=0.0), train_dataloaders=loader, ckpt_path=ckpt, weights_only=True)
    return folder / "last.ckpt"


def test_stopped_inside_an_epoch_resumes_there(tmp_path: Path) -> None:
    full = torch.load(_fit_tiny(tmp_path / "full", ResumableDataLoader, max_epochs=3),
                      weights_only=True)  # fmt: skip
    # max_steps stops inside the second epoch: the checkpoint is at that batch
    part = _fit_tiny(tmp_path / "part", ResumableDataLoader, max_epochs=3, max_steps=14)
    assert torch.load(part, weights_only=True)["global_step"] == 14
    resumed = torch.load(_fit_tiny(tmp_path / "part", ResumableDataLoader, part, max_epochs=3),
                         weights_only=True)  # fmt: skip
    assert resumed["global_step"] == full["global_step"] == 30
    for k, v in full["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k


def test_a_loader_that_cannot_resume_gets_epoch_checkpoints_only(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader

    with pytest.warns(UserWarning, match="cannot resume inside an epoch"):
        last = _fit_tiny(tmp_path, DataLoader, max_epochs=3, max_steps=14)
    assert torch.load(last, weights_only=True)["global_step"] == 10


# the training process of the kill test: prints each step, sleeps 50 ms after each, so that
# the test can kill it at a known step
_SLOW_TRAIN = """
import sys, time
from calo.train.module import FractionModule
step = FractionModule.training_step
def slow(self, batch, batch_idx):
    print(f"step {self.global_step}", flush=True)
    time.sleep(0.05)
    return step(self, batch, batch_idx)
FractionModule.training_step = slow
from calo.train.cli import train_main
raise SystemExit(train_main(sys.argv[1:]))
"""


def _steps(csv_path: Path) -> list[int]:
    with open(csv_path, newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("train_loss_step")]


@pytest.mark.slow
def test_killed_mid_epoch_resumes_to_the_same_weights(small_root: Path, tmp_path: Path) -> None:
    every, per_epoch, kill_at = 3, 16, 22  # 64 training events in batches of 4
    args = [*TINY, f"data.files=[{small_root}]", "data.batch_size=4", "trainer.max_epochs=3",
            "trainer.checkpoint_minutes=0", f"trainer.checkpoint_every_n_steps={every}",
            "--no-plots"]  # fmt: skip
    ref = tmp_path / "uninterrupted"
    assert train_main(["--out", str(ref), *args]) == 0

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_TRAIN, "--out", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == f"step {kill_at}":  # steps 0..21 are done, 22 is running
                os.kill(proc.pid, signal.SIGKILL)
                break
        else:
            pytest.fail("the training process ended before the kill")
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    step = last["global_step"]
    # the checkpoint is inside the second epoch, and at most one interval of work was lost
    assert step % per_epoch and step // per_epoch == 1
    assert kill_at - every <= step <= kill_at + 1

    assert train_main(["--out", str(out), "--resume", *args]) == 0
    a = torch.load(ref / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 3 * per_epoch
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    for sa, sb in zip(
        a["optimizer_states"][0]["state"].values(),
        b["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ha, hb = a["calo"]["history"], b["calo"]["history"]
    assert ha["val_loss"] == hb["val_loss"] and ha["epoch"] == hb["epoch"] == [0.0, 1.0, 2.0]
    # the epoch mean of the training loss is Lightning's logged metric, which a checkpoint does
    # not hold: in the interrupted epoch (1) it averages the batches after the resume only
    assert ha["train_loss"][0::2] == hb["train_loss"][0::2]
    # the log holds every step once, the killed attempt's rows included
    assert _steps(ref / "logs" / "metrics.csv") == list(range(3 * per_epoch))
    assert _steps(out / "logs" / "metrics.csv") == list(range(3 * per_epoch))

    # resuming the finished run trains nothing and keeps the log
    before = (out / "logs" / "metrics.csv").read_text()
    assert train_main(["--out", str(out), "--resume", *args]) == 0
    assert (out / "logs" / "metrics.csv").read_text() == before


def test_init_from_starts_a_new_run_from_another_runs_weights(
    small_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*TINY, f"data.files=[{small_root}]", "data.batch_size=8", "trainer.max_epochs=1",
            "--no-plots"]  # fmt: skip
    first = tmp_path / "first"
    assert train_main(["--out", str(first), *args]) == 0
    a = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    # a learning rate of 1e-12 leaves the weights where init_from put them
    tuned = tmp_path / "tuned"
    init = f"trainer.init_from={first / 'checkpoints' / 'last.ckpt'}"
    assert train_main(["--out", str(tuned), *args, init, "optim.lr=1e-12"]) == 0
    b = torch.load(tuned / "checkpoints" / "last.ckpt", weights_only=True)
    assert b["calo"]["normalization"] == a["calo"]["normalization"]
    assert len(b["calo"]["history"]["epoch"]) == 1  # a fresh history, not the first run's
    weights = {
        k: v for k, v in a["state_dict"].items() if "running" not in k and "batches" not in k
    }
    assert len(weights) > 10  # batch-norm statistics move with any learning rate; weights do not
    for k, v in weights.items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=1e-9, msg=k)
    # without init_from the same settings start elsewhere: the check above means something
    fresh = tmp_path / "fresh"
    assert train_main(["--out", str(fresh), *args, "optim.lr=1e-12"]) == 0
    c = torch.load(fresh / "checkpoints" / "last.ckpt", weights_only=True)
    assert any(not torch.allclose(c["state_dict"][k], v) for k, v in weights.items())
    # another model shape: a one-line CheckpointError naming the setting
    capsys.readouterr()
    rc = train_main(["--out", str(tmp_path / "bad"), *args, init, "model.gravnet.head=24"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "init_from" in err and "do not fit" in err
