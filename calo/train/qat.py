"""Quantization-aware fine-tuning as a Lightning callback: float epochs, then the firmware's
fixed point (the e/pi task of :mod:`calo.train.e_pi`).

A model takes part through ``pl_module.model.stack.set_quantized(bool)`` /
``.quantized`` (:class:`calo.fpga.qat.QGarNetStack`) and ``pl_module.loss(batch)``.

Examples
--------
>>> QuantizationAwareTraining(2, 10).state_dict()
{'qat_start': None, 'cost_ratio': None}
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, Timer
from torch import Tensor

__all__ = ["FloatPhaseEarlyStopping", "QuantizationAwareTraining", "reset_best_records"]


class QuantizationAwareTraining(Callback):
    """Float epochs, then the last ``qat_epochs`` epochs in the firmware's fixed point.

    The switch comes at epoch ``max_epochs - qat_epochs``, or earlier when

    * early stopping ends the float phase (the quantization-aware epochs still run), or
    * a time limit (``trainer.max_time_minutes``) would otherwise end the run first: before
      each epoch the remaining time is compared with the time the quantization-aware epochs
      need, estimated from the last float epoch and the cost of a fixed-point training step
      relative to a float one (both measured on this run's first batch).

    At the switch the best-checkpoint and early-stopping records are cleared, so that
    ``best.ckpt`` is the best quantization-aware epoch: the model to export. The epoch at
    which the switch came is kept in the checkpoint, so ``--resume`` continues either phase.

    Parameters
    ----------
    qat_epochs:
        Quantization-aware epochs (0: float training only).
    max_epochs:
        The run's ``trainer.max_epochs``.

    Examples
    --------
    >>> QuantizationAwareTraining(2, 10).state_dict()
    {'qat_start': None, 'cost_ratio': None}
    """

    def __init__(self, qat_epochs: int, max_epochs: int) -> None:
        self.qat_epochs = int(qat_epochs)
        self.max_epochs = int(max_epochs)
        self.qat_start: int | None = None
        self.cost_ratio: float | None = None
        self._early_stop = False
        self._epoch_t0 = 0.0
        self._last_epoch_s: float | None = None

    def state_dict(self) -> dict[str, Any]:
        """The switch epoch and the measured cost ratio (for ``--resume``)."""
        return {"qat_start": self.qat_start, "cost_ratio": self.cost_ratio}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.qat_start = state_dict.get("qat_start")
        self.cost_ratio = state_dict.get("cost_ratio")

    @staticmethod
    def _step_seconds(pl_module: Any, batch: Sequence[Tensor], quantized: bool) -> float:
        stack = pl_module.model.stack
        was = stack.quantized
        stack.set_quantized(quantized)
        t0 = time.perf_counter()
        with torch.enable_grad():
            pl_module.loss([t.to(pl_module.device) for t in batch])[0].backward()
        seconds = time.perf_counter() - t0
        pl_module.zero_grad(set_to_none=True)
        stack.set_quantized(was)
        return seconds

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Measure the cost of a fixed-point training step relative to a float one."""
        if self.qat_epochs == 0 or self.cost_ratio is not None or _timer(trainer) is None:
            return
        batch = next(iter(trainer.datamodule.train_dataloader()))
        self._step_seconds(pl_module, batch, False)  # warm-up
        t_float = min(self._step_seconds(pl_module, batch, False) for _ in range(3))
        t_fixed = min(self._step_seconds(pl_module, batch, True) for _ in range(2))
        self.cost_ratio = max(1.0, t_fixed / max(t_float, 1e-9))

    def _due(self, trainer: L.Trainer) -> bool:
        if self.qat_epochs == 0:
            return False
        if self._early_stop or trainer.current_epoch >= self.max_epochs - self.qat_epochs:
            return True
        timer = _timer(trainer)
        if timer is None or self._last_epoch_s is None or self.cost_ratio is None:
            return False
        remaining = timer.time_remaining("train")
        if remaining is None:
            return False
        # one more float epoch, then the quantization-aware ones, must fit in what is left
        need = self._last_epoch_s * (1.0 + self.qat_epochs * self.cost_ratio)
        return remaining < need

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Switch to fixed point when the quantization-aware phase is due."""
        self._epoch_t0 = time.perf_counter()
        # rank 0 decides, so that every process of a DDP run switches at the same epoch
        due = self.qat_start is None and trainer.strategy.broadcast(self._due(trainer), src=0)
        if due:
            self.qat_start = int(trainer.current_epoch)
            reset_best_records(trainer)
        pl_module.model.stack.set_quantized(self.qat_start is not None)

    def hand_over_early_stop(self, trainer: L.Trainer) -> None:
        """Early stopping in the float phase starts the quantization-aware one instead."""
        if self.qat_epochs and self.qat_start is None and trainer.should_stop:
            timer = _timer(trainer)
            out_of_time = timer is not None and (timer.time_remaining("train") or 0.0) <= 0.0
            if not out_of_time:
                trainer.should_stop = False
                self._early_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Time the epoch; stop after the last quantization-aware epoch."""
        self._last_epoch_s = time.perf_counter() - self._epoch_t0
        if self.qat_start is not None and (
            trainer.current_epoch >= self.qat_start + self.qat_epochs - 1
        ):
            trainer.should_stop = True

    def early_stopping(self, **kwargs: Any) -> EarlyStopping:
        """Early stopping that ends the float phase, not the run (arguments of Lightning's
        ``EarlyStopping``)."""
        return FloatPhaseEarlyStopping(self, **kwargs)


class FloatPhaseEarlyStopping(EarlyStopping):
    """Lightning's ``EarlyStopping``, except that in the float phase of a quantization-aware
    run it starts the quantization-aware epochs instead of stopping (see
    :class:`QuantizationAwareTraining`).

    Examples
    --------
    >>> es = QuantizationAwareTraining(2, 10).early_stopping(monitor="val_loss", patience=3)
    >>> type(es).__name__, es.patience
    ('FloatPhaseEarlyStopping', 3)
    """

    def __init__(self, qat: QuantizationAwareTraining, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.qat = qat

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning's check, then the hand-over to the quantization-aware phase."""
        super().on_train_epoch_end(trainer, pl_module)
        self.qat.hand_over_early_stop(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning's check, then the hand-over to the quantization-aware phase."""
        super().on_validation_end(trainer, pl_module)
        self.qat.hand_over_early_stop(trainer)


def reset_best_records(trainer: L.Trainer) -> None:
    """Forget the best checkpoint and the early-stopping record, so that only the epochs
    from now on compete for ``best.ckpt`` (the quantization-aware switch, and the epoch at
    which pruning reaches its final sparsity, :mod:`calo.train.pruning`)."""
    for cb in trainer.callbacks:
        if isinstance(cb, ModelCheckpoint):
            cb.best_k_models = {}
            cb.best_model_score = None
            cb.best_model_path = ""
            cb.kth_best_model_path = ""
            cb.kth_value = torch.tensor(math.inf if cb.mode == "min" else -math.inf)
        if isinstance(cb, EarlyStopping):
            cb.wait_count = 0
            cb.best_score = torch.tensor(math.inf if cb.mode == "min" else -math.inf)


def _timer(trainer: L.Trainer) -> Timer | None:
    for cb in trainer.callbacks:
        if isinstance(cb, Timer) and cb._duration is not None:
            return cb
    return None
