"""The Lightning modules: :class:`CaloModule`, what every calo-train task shares, and
:class:`FractionModule`, one of the paper's models trained on the energy-fraction loss.

:class:`CaloModule` holds the resolved configuration, the per-epoch history, the optimiser
(Adam with an optional cosine schedule) and the plain-type ``"calo"`` checkpoint entry; a task
subclasses it with its model and :meth:`CaloModule.loss` (the electron/pion task of the FPGA
paper is :class:`calo.train.e_pi.EPiModule`).

The fraction module knows the model, the loss and the optimiser; the loop, devices, DDP, checkpointing
and progress bars are Lightning's. The training and validation loss is the paper's loss taken
with the best assignment of predicted columns to truth showers per event
(:func:`calo.train.losses.permutation_invariant_loss`), so the order in which a file lists the
particles does not matter. With ``loss.ordered_overlap`` < 1 the training loss matches the
columns to the showers ordered by energy in events whose showers overlap by more than that
(:func:`calo.train.losses.energy_ordered_loss`); the validation loss stays permutation invariant.

Examples
--------
>>> from calo.config import to_dict
>>> from calo.train.config import TrainConfig
>>> module = FractionModule(to_dict(TrainConfig()))
>>> type(module.model).__name__
'GravNetModel'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from calo.config import from_dict, to_dict
from calo.models import build_model
from calo.train.checkpoint import CHECKPOINT_FORMAT
from calo.train.config import TrainConfig
from calo.train.losses import (
    energy_ordered_loss,
    energy_share_loss,
    permutation_invariant_loss,
)

__all__ = ["CaloModule", "FractionModule"]


class CaloModule(L.LightningModule):
    """What every calo-train task's LightningModule shares.

    Subclasses set ``self.model`` (after ``super().__init__``) and implement :meth:`loss`.

    Parameters
    ----------
    config:
        The resolved :class:`~calo.train.config.TrainConfig` as a plain dict.
    normalization:
        The feature normalisation (``Normalization.to_dict()``) the model was trained with;
        stored in the checkpoint (empty for tasks with fixed feature scales).

    Attributes
    ----------
    history:
        Per-epoch ``epoch``, ``train_loss``, ``val_loss`` and ``lr`` (kept in checkpoints),
        plus the task's :attr:`extra_history` metrics.
    """

    #: validation metrics (logged by the task) recorded per epoch next to the losses
    extra_history: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any], normalization: Mapping[str, Any] | None = None):
        super().__init__()
        self.cfg: TrainConfig = from_dict(TrainConfig, dict(config))
        self.config_dict = to_dict(self.cfg)
        self.normalization = dict(normalization) if normalization is not None else {}
        self.model: torch.nn.Module
        self.history: dict[str, list[float]] = {
            k: [] for k in ("epoch", "train_loss", "val_loss", "lr", *self.extra_history)
        }

    def loss(self, batch: Any, train: bool = False) -> tuple[Tensor, int]:
        """The loss of one batch and its number of events (implemented by the task)."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Loss of one batch; logged per step and per epoch."""
        loss, n = self.loss(batch, train=True)
        self.log(
            "train_loss", loss, on_step=True, on_epoch=True, prog_bar=True,
            batch_size=n, sync_dist=True,
        )  # fmt: skip
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Validation loss of one batch (epoch mean logged as ``val_loss``)."""
        loss, n = self.loss(batch)
        self.log("val_loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        return loss

    def on_train_epoch_end(self) -> None:
        """Append the epoch's losses to :attr:`history` (after validation has run)."""
        m = self.trainer.callback_metrics
        get = lambda k: float(m[k]) if k in m else math.nan  # noqa: E731
        self.history["epoch"].append(float(self.current_epoch))
        self.history["train_loss"].append(get("train_loss_epoch"))
        self.history["val_loss"].append(get("val_loss"))
        opt = self.optimizers()
        opt = opt.optimizer if hasattr(opt, "optimizer") else opt
        self.history["lr"].append(float(opt.param_groups[0]["lr"]))
        for key in self.extra_history:
            self.history[key].append(get(key))

    def configure_optimizers(self) -> Any:
        """Adam, with an optional cosine schedule over ``trainer.max_epochs``."""
        o = self.cfg.optim
        opt = torch.optim.Adam(self.model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        if o.scheduler == "none":
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=self.cfg.trainer.max_epochs, eta_min=o.lr * o.min_lr_factor
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the plain-type ``"calo"`` entry (config, normalisation, history)."""
        from calo import __version__

        checkpoint["calo"] = {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "config": self.config_dict,
            "normalization": self.normalization,
            "history": {k: list(v) for k, v in self.history.items()},
            "model_state": self.model_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore :attr:`history` and the model's mode when resuming."""
        meta = checkpoint.get("calo", {})
        hist = meta.get("history")
        if isinstance(hist, dict):
            self.history = {k: list(v) for k, v in hist.items()}
        state = meta.get("model_state")
        if isinstance(state, dict):
            self.set_model_state(state)

    def model_state(self) -> dict[str, Any]:
        """Plain-type state of the model that is not in its weights (for example whether it
        computes in fixed point); stored in the checkpoint. None by default."""
        return {}

    def set_model_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`model_state` returned. Nothing by default."""


class FractionModule(CaloModule):
    """LightningModule around :func:`calo.models.build_model`: the energy-fraction task.

    Parameters
    ----------
    config, normalization:
        See :class:`CaloModule`.

    Examples
    --------
    >>> from calo.config import to_dict
    >>> FractionModule(to_dict(TrainConfig())).history["epoch"]
    []
    """

    def __init__(self, config: Mapping[str, Any], normalization: Mapping[str, Any] | None = None):
        super().__init__(config, normalization)
        self.model = build_model(self.cfg.model)

    def forward(self, data: Any) -> Tensor:
        """Fractions ``[N, K]`` of a torch_geometric batch."""
        return self.model(data)

    def loss(self, data: Any, train: bool = False) -> tuple[Tensor, int]:
        """The paper's loss of a batch (permutation invariant; see the module docstring)."""
        return self._loss(data, train), int(data.num_graphs)

    def _loss(self, data: Any, train: bool = False) -> Tensor:
        pred = self.model(data)
        args = (pred, data.y, data.energy, data.batch, data.num_graphs, self.cfg.loss.weighting)
        if not train:
            return permutation_invariant_loss(*args).loss
        if self.cfg.loss.ordered_overlap < 1.0:
            res = energy_ordered_loss(*args, min_overlap=self.cfg.loss.ordered_overlap)
        else:
            res = permutation_invariant_loss(*args)
        if self.cfg.loss.share_weight > 0.0:
            share = energy_share_loss(
                pred, data.y, data.energy, res.perm, data.batch, data.num_graphs
            )
            return res.loss + self.cfg.loss.share_weight * share
        return res.loss
