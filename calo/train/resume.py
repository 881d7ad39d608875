"""What lets a killed training run continue where it was: the latest checkpoint, a data loader
that resumes in the middle of an epoch, and a CSV log that keeps its rows across a resume.

:class:`LatestCheckpoint` writes ``checkpoints/last.ckpt`` at the end of every epoch (after
validation, whatever the validation loss did) and, inside an epoch, every
``trainer.checkpoint_minutes`` of training (and every ``trainer.checkpoint_every_n_steps``
optimiser steps, when set); Lightning's ``Trainer.save_checkpoint`` writes it through
:class:`calo.train.checkpoint.AtomicCheckpointIO`, so a kill leaves the previous file or the
new one. The checkpoint holds Lightning's loop state (epoch, batches done in the epoch, global
step), the optimiser, scheduler and callback states and the ``"calo"`` entry.

:class:`ResumableLoaderMixin` gives a ``DataLoader`` Lightning's stateful-loader interface
(``state_dict`` / ``load_state_dict``): it counts the batches it handed out in the current
epoch, and after a resume from a checkpoint written inside an epoch it skips that many batches
of the same epoch, so with :class:`calo.train.data.EpochShuffleSampler` (whose order depends
only on the seed and the epoch) the resumed run sees exactly the batches the killed run had
not trained on yet.

:class:`ResumableCSVLogger` is Lightning's ``CSVLogger`` that, on a resume, keeps the rows of
``logs/metrics.csv`` written before the checkpoint (Lightning's deletes the file when a new
run starts) and drops the rows of the steps after it, which the resumed run logs again.

Examples
--------
>>> import tempfile
>>> cb = LatestCheckpoint(tempfile.mkdtemp() + "/last.ckpt", minutes=10.0)
>>> cb.interval_seconds, cb.every_n_steps
(600.0, 0)
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader
from torch_geometric.loader import DataLoader as GraphDataLoader

__all__ = [
    "LatestCheckpoint",
    "ResumableCSVLogger",
    "ResumableDataLoader",
    "ResumableGraphLoader",
    "ResumableLoaderMixin",
]


class LatestCheckpoint(Checkpoint):
    """Writes the latest training state to one file: after every epoch, and within epochs
    every ``minutes`` of training (and every ``every_n_steps`` optimiser steps).

    A Lightning ``Checkpoint`` callback, so it runs after the LightningModule's
    ``on_train_epoch_end`` (the checkpoint holds the epoch's history) and after validation
    (best checkpoint and early stopping are up to date). The in-epoch checkpoint is skipped on
    the epoch's last batch, whose end-of-epoch checkpoint follows after validation. The
    loggers are flushed before each checkpoint, so the log on disk covers every step the
    checkpoint holds.

    When training stops inside an epoch (``max_steps``, ``max_time``), the checkpoint is
    written at the batch that stopped it, not as the end of the (incomplete) epoch, so that
    a resume with larger limits finishes that epoch. All of this needs a training loader that
    resumes inside an epoch (:class:`ResumableLoaderMixin`); with any other loader a resume
    from the middle of an epoch would train on other batches, so then ``last.ckpt`` is
    written at the ends of complete epochs only (with a warning when in-epoch checkpoints were
    asked for).

    Parameters
    ----------
    path:
        The checkpoint file (``RUN/checkpoints/last.ckpt``).
    minutes:
        Wall-clock interval of the in-epoch checkpoints (0: none by time).
    every_n_steps:
        Also write one every this many optimiser steps (0: none by steps).

    Examples
    --------
    >>> LatestCheckpoint("last.ckpt", minutes=0.5).interval_seconds
    30.0
    """

    def __init__(self, path: str | Path, minutes: float = 10.0, every_n_steps: int = 0) -> None:
        self.path = Path(path)
        self.interval_seconds = float(minutes) * 60.0
        self.every_n_steps = int(every_n_steps)
        self._last_time: float | None = None
        self._start = time.monotonic()
        self._flush = False
        self._in_epoch = True
        self._stopped_inside_epoch = False
        #: ``(global_step, "batch" | "epoch", seconds since training started)`` of every
        #: checkpoint written by this process
        self.saved: list[tuple[int, str, float]] = []

    @property
    def state_key(self) -> str:
        """Key of this callback's state in the checkpoint."""
        return "LatestCheckpoint"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the clock of the time-based checkpoints; check the loader can resume."""
        self._start = self._last_time = time.monotonic()
        self._in_epoch = _resumable(trainer.train_dataloader)
        if not self._in_epoch and (self.interval_seconds > 0 or self.every_n_steps):
            rank_zero_warn(
                "the training data loader cannot resume inside an epoch (it lacks "
                "state_dict/load_state_dict, see calo.train.resume.ResumableLoaderMixin); "
                f"{self.path.name} is written at the end of every epoch only"
            )

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Write the checkpoint when an interval (time or steps) has passed, or when this
        batch stops training inside the epoch."""
        if trainer.sanity_checking or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        stops = trainer.should_stop or 0 < trainer.max_steps <= trainer.global_step
        due = bool(self.every_n_steps) and trainer.global_step % self.every_n_steps == 0
        if self.interval_seconds > 0 and self._last_time is not None:
            due = due or time.monotonic() - self._last_time >= self.interval_seconds
        # every process must take the same decision: rank 0's clock decides
        due = trainer.strategy.broadcast(due or stops)
        if stops:
            self._stopped_inside_epoch = True
        if due and self._in_epoch:
            self._save(trainer, "batch")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the checkpoint at the end of every complete epoch."""
        if self._stopped_inside_epoch:  # written at the batch that stopped, or not at all
            self._stopped_inside_epoch = False
            return
        self._save(trainer, "epoch")

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Flush the loggers once after a checkpoint: Lightning logs a step's (and an epoch's)
        metrics after the hooks that wrote the checkpoint."""
        if self._flush:
            self._flush = False
            for logger in trainer.loggers:
                logger.save()

    def _save(self, trainer: L.Trainer, when: str) -> None:
        for logger in trainer.loggers:
            logger.save()
        trainer.save_checkpoint(self.path, weights_only=False)
        self._last_time = time.monotonic()
        self._flush = True
        self.saved.append((int(trainer.global_step), when, time.monotonic() - self._start))


def _resumable(loaders: Any) -> bool:
    """Whether every training loader has the stateful-loader interface."""
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    elif not isinstance(loaders, list | tuple):
        loaders = [loaders]
    return all(
        callable(getattr(dl, "state_dict", None)) and callable(getattr(dl, "load_state_dict", None))
        for dl in loaders
    )


class ResumableLoaderMixin:
    """Mixin for a ``torch.utils.data.DataLoader`` subclass: Lightning's stateful-loader
    interface, so that a resume in the middle of an epoch continues with the next batch.

    ``state_dict()`` is the sampler's epoch and the number of batches handed out in it;
    after ``load_state_dict``, the next iteration over the same epoch skips that many batches
    (they are read and dropped, so the skip works with any sampler, data-parallel ones
    included, provided the order depends on the epoch only, as with
    :class:`calo.train.data.EpochShuffleSampler`). An iteration over another epoch (a
    checkpoint written at the end of an epoch) skips nothing.

    Examples
    --------
    >>> a = ResumableDataLoader(list(range(10)), batch_size=3)
    >>> it = iter(a); _ = next(it); _ = next(it)
    >>> state = a.state_dict(); state
    {'epoch': None, 'batches': 2}
    >>> b = ResumableDataLoader(list(range(10)), batch_size=3); b.load_state_dict(state)
    >>> [t.tolist() for t in b]
    [[6, 7, 8], [9]]
    >>> [t.tolist() for t in b][0]  # the skip applies once
    [0, 1, 2]
    """

    _resume_state: dict[str, Any] | None = None
    _iter_epoch: int | None = None
    _iter_batches: int = 0

    def _sampler_epoch(self) -> int | None:
        epoch = getattr(getattr(self, "sampler", None), "epoch", None)
        return int(epoch) if epoch is not None else None

    def state_dict(self) -> dict[str, Any]:
        """The epoch being iterated and the batches handed out in it."""
        return {"epoch": self._iter_epoch, "batches": int(self._iter_batches)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Skip ``state_dict["batches"]`` batches of the next iteration if it is over the
        same epoch."""
        self._resume_state = dict(state_dict)

    def __iter__(self) -> Iterator[Any]:
        # a generator: the epoch is read at the first batch, after Lightning's set_epoch
        epoch = self._sampler_epoch()
        skip = 0
        state, self._resume_state = self._resume_state, None
        if state is not None and state.get("epoch") == epoch:
            skip = int(state.get("batches", 0))
        self._iter_epoch, self._iter_batches = epoch, 0
        it = super().__iter__()  # type: ignore[misc]
        for _ in range(skip):
            if next(it, None) is None:
                return
            self._iter_batches += 1
        for batch in it:
            self._iter_batches += 1
            yield batch


class ResumableDataLoader(ResumableLoaderMixin, DataLoader):
    """torch's ``DataLoader`` with :class:`ResumableLoaderMixin`.

    Examples
    --------
    >>> [t.tolist() for t in ResumableDataLoader([1, 2, 3], batch_size=2)]
    [[1, 2], [3]]
    """


class ResumableGraphLoader(ResumableLoaderMixin, GraphDataLoader):
    """torch_geometric's ``DataLoader`` with :class:`ResumableLoaderMixin` (the training
    batches of :class:`calo.train.data.CaloDataModule`).

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> events = [Data(x=torch.full((2, 1), float(i))) for i in range(5)]
    >>> loader = ResumableGraphLoader(events, batch_size=2)
    >>> loader.load_state_dict({"epoch": None, "batches": 2})
    >>> [b.x[:, 0].tolist() for b in loader]
    [[4.0, 4.0]]
    """


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer that keeps the rows of an earlier attempt of the run."""

    def __init__(self, log_dir: str, keep_before_step: int | None) -> None:
        self._keep_before_step = keep_before_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self._keep_before_step is None or not path.is_file():
            super()._check_log_dir_exists()
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            keys = sorted(reader.fieldnames or [])  # Lightning's writer keeps them sorted
            rows = [r for r in reader if _row_step(r) < self._keep_before_step]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        self.metrics_keys = keys


def _row_step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class ResumableCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger`` writing ``SAVE_DIR/NAME/metrics.csv`` that, when resuming,
    keeps the rows of the earlier attempt logged before the checkpoint's step.

    Parameters
    ----------
    save_dir, name:
        As ``CSVLogger`` (no version subfolder).
    keep_before_step:
        ``None``: a new run (an old ``metrics.csv`` is replaced, as Lightning does). Else the
        global step of the checkpoint the run resumes from: rows with a smaller step are kept,
        the others (logged after the checkpoint, and logged again by the resumed run) dropped;
        rows without a step are dropped.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); (d / "logs").mkdir()
    >>> _ = (d / "logs" / "metrics.csv").write_text("epoch,step,loss\\n0,0,1.0\\n0,5,0.5\\n")
    >>> log = ResumableCSVLogger(d, keep_before_step=3)
    >>> log.log_metrics({"loss": 0.4}, step=3); log.save()
    >>> print((d / "logs" / "metrics.csv").read_text().strip())
    epoch,loss,step
    0,1.0,0
    ,0.4,3
    """

    def __init__(
        self, save_dir: str | Path, name: str = "logs", keep_before_step: int | None = None
    ) -> None:
        super().__init__(save_dir, name=name, version="")
        self._keep_before_step = keep_before_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer (created on first use, keeping the earlier rows when resuming)."""
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self._keep_before_step)
        return self._experiment
