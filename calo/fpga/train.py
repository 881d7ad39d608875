"""Train and evaluate the FPGA GarNet model (plain loop), and save / load its checkpoints.

The model is small (about 1.5k parameters) and trains in minutes on one CPU core, so a plain
Adam loop is used instead of the Lightning pipeline of :mod:`calo.train`. The recipe is the
usual one for quantization-aware training: train in float (``stack.quantized = False``),
then fine-tune with the firmware arithmetic switched on (:func:`train_model` on the same
model after ``stack.set_quantized(True)``).

Loss per event: binary cross-entropy of the classification logit against ``is_electron``
plus ``regression_weight * ((E_pred - E_true) / E_true)^2`` (energies in units of the
model's ``energy_scale``), so that the regression minimises the spread of the response
``E_pred / E_true``.

Metrics (:func:`evaluate_model`): ROC AUC of the electron probability (torchmetrics) and the
response ``E_pred / E_true``: its mean and RMS about the mean
(:func:`calo.train.metrics.spread_stats`).

Checkpoints (:func:`save_checkpoint`) are plain dicts of tensors and built-in types that
``torch.load(weights_only=True)`` reads: ``{"calo_fpga": {"format": 1, "hparams": ...,
"features": ..., "metadata": ...}, "state_dict": ...}``.

Examples
--------
>>> import numpy as np, torch, tempfile
>>> from calo.fpga.garnet import GarNetFixedConfig
>>> from calo.fpga.qat import QGarNetModel, QGarNetStack
>>> m = QGarNetModel(QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4)))
>>> p = save_checkpoint(m, tempfile.mkdtemp() + "/m.ckpt")
>>> m2, meta = load_checkpoint(p)
>>> m2.stack.config.n_vertices, sorted(meta)
(16, ['features', 'metadata'])
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from calo.errors import CheckpointError, ConfigError
from calo.fpga.data import FPGAFeatures, FPGASample
from calo.fpga.qat import QGarNetModel
from calo.train.metrics import spread_stats

__all__ = [
    "CHECKPOINT_FORMAT",
    "evaluate_model",
    "load_checkpoint",
    "loss_terms",
    "save_checkpoint",
    "train_model",
]

#: Version of the FPGA checkpoint layout.
CHECKPOINT_FORMAT = 1
_KEY = "calo_fpga"


def loss_terms(
    model: QGarNetModel, X: Tensor, n: Tensor, label: Tensor, energy: Tensor
) -> dict[str, Tensor]:
    """Classification and regression losses (means over the batch) of one batch.

    Examples
    --------
    >>> import torch
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> from calo.fpga.qat import QGarNetStack
    >>> m = QGarNetModel(QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4),
    ...                               quantized=False))
    >>> t = loss_terms(m, torch.zeros(2, 16, 4), torch.tensor([1, 2]), torch.tensor([0.0, 1.0]),
    ...                torch.tensor([10.0, 50.0]))
    >>> sorted(t)
    ['classification', 'regression']
    """
    reg, logit = model(X, n)
    target = energy / model.energy_scale
    cls = torch.nn.functional.binary_cross_entropy_with_logits(logit, label)
    rel = (reg - target) / target
    return {"classification": cls, "regression": (rel**2).mean()}


def train_model(
    model: QGarNetModel,
    train: FPGASample,
    epochs: int,
    lr: float = 2e-3,
    batch_size: int = 128,
    regression_weight: float = 1.0,
    seed: int = 0,
    time_limit_s: float | None = None,
    log: Any = None,
) -> list[dict[str, float]]:
    """Train ``model`` in its current mode (float or quantized) with Adam; return the
    per-epoch mean losses.

    Parameters
    ----------
    model:
        The model (trained in place).
    train:
        Training events.
    epochs, lr, batch_size:
        Adam settings; the learning rate follows a cosine decay to lr/10 over the epochs.
    regression_weight:
        Weight of the regression loss.
    seed:
        Seeds the shuffling (epoch e uses ``seed + e``).
    time_limit_s:
        Stop after the epoch that crosses this wall time (the history says how many ran).
    log:
        Callable taking one line of text per epoch (e.g. ``print``), or None.

    Raises
    ------
    ConfigError
        For non-positive epochs, learning rate or batch size.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from calo.io import TruncationReport
    >>> from calo.fpga.events import toy_events
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> from calo.fpga.qat import QGarNetStack
    >>> X, n = toy_events(np.random.default_rng(0), 16, 16, n_min=4)
    >>> train = FPGASample(torch.tensor(X, dtype=torch.float32), torch.tensor(n),
    ...                    torch.tensor([0.0, 1.0] * 8), torch.full((16,), 50.0),
    ...                    TruncationReport(16, 0, int(n.sum()), 0, 1.0, 0.0), FPGAFeatures())
    >>> _ = torch.manual_seed(0)
    >>> model = QGarNetModel(QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4),
    ...                                   quantized=False))
    >>> history = train_model(model, train, epochs=2, batch_size=8)  # float
    >>> _ = model.stack.set_quantized(True)
    >>> history += train_model(model, train, epochs=1, batch_size=8, lr=5e-4, log=print)
    epoch 0: classification ... regression ... (... s)
    >>> len(history), sorted(history[0]), model.training
    (3, ['classification', 'epoch', 'regression', 'seconds'], False)
    >>> history[-1]["regression"] < history[0]["regression"]
    True
    """
    if epochs < 1 or not lr > 0 or batch_size < 1:
        raise ConfigError(
            f"need epochs >= 1, lr > 0 and batch_size >= 1, got {epochs}, {lr}, {batch_size}"
        )
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=lr / 10)
    history = []
    t0 = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        g = torch.Generator().manual_seed(seed + epoch)
        perm = torch.randperm(len(train), generator=g)
        sums = {"classification": 0.0, "regression": 0.0}
        nb = 0
        for start in range(0, len(train), batch_size):
            idx = perm[start : start + batch_size]
            terms = loss_terms(
                model, train.X[idx], train.n[idx], train.is_electron[idx], train.energy[idx]
            )
            loss = terms["classification"] + regression_weight * terms["regression"]
            if not torch.isfinite(loss):
                raise ConfigError(
                    f"the loss became {float(loss)} in epoch {epoch}; lower the learning rate"
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            for k in sums:
                sums[k] += float(terms[k].detach())
            nb += 1
        sched.step()
        row = {k: v / nb for k, v in sums.items()}
        row["epoch"] = epoch
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if log is not None:
            log(
                f"epoch {epoch}: classification {row['classification']:.4f} "
                f"regression {row['regression']:.4f} ({row['seconds']:.0f} s)"
            )
        if time_limit_s is not None and row["seconds"] > time_limit_s:
            break
    model.eval()
    return history


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    from torchmetrics.functional.classification import binary_auroc

    return float(binary_auroc(torch.as_tensor(score), torch.as_tensor(label).long()))


@torch.no_grad()
def evaluate_model(
    model: QGarNetModel, sample: FPGASample, batch_size: int = 512
) -> dict[str, float]:
    """ROC AUC (electron vs pion) and response ``E_pred / E_true`` (mean, RMS) on a sample.

    Examples
    --------
    >>> import torch
    >>> from calo.io import TruncationReport
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> from calo.fpga.qat import QGarNetStack
    >>> m = QGarNetModel(QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4)))
    >>> s = FPGASample(torch.rand(6, 16, 4), torch.full((6,), 5), torch.tensor([0., 1.] * 3),
    ...                torch.full((6,), 20.0), TruncationReport(6, 0, 30, 0, 1.0, 0.0),
    ...                FPGAFeatures())
    >>> sorted(evaluate_model(m, s))
    ['n_events', 'response_mean', 'response_rms', 'response_width', 'roc_auc']
    """
    model.eval()
    e_pred, prob = [], []
    for start in range(0, len(sample), batch_size):
        sl = slice(start, start + batch_size)
        e, p = model.predict(sample.X[sl], sample.n[sl])
        e_pred.append(e)
        prob.append(p)
    e_all = torch.cat(e_pred).double().numpy()
    p_all = torch.cat(prob).double().numpy()
    resp = e_all / sample.energy.double().numpy()
    st = spread_stats(resp)
    return {
        "roc_auc": _auc(p_all, sample.is_electron.numpy()),
        "response_mean": st["mean"],
        "response_rms": st["rms"],
        "response_width": st["width"],
        "n_events": len(sample),
    }


def save_checkpoint(
    model: QGarNetModel,
    path: str | Path,
    features: FPGAFeatures | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` (hyperparameters, weights, feature scales, metadata) to ``path``.

    ``metadata`` must hold only built-in types (it is read back with
    ``torch.load(weights_only=True)``).

    Examples
    --------
    >>> import tempfile, torch
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> from calo.fpga.qat import QGarNetStack
    >>> m = QGarNetModel(QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4)))
    >>> path = save_checkpoint(m, tempfile.mkdtemp() + "/m.ckpt", metadata={"epochs": 3})
    >>> ckpt = torch.load(path, weights_only=True)
    >>> sorted(ckpt), ckpt["calo_fpga"]["format"], ckpt["calo_fpga"]["metadata"]
    (['calo_fpga', 'state_dict'], 1, {'epochs': 3})
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        _KEY: {
            "format": CHECKPOINT_FORMAT,
            "hparams": model.hparams(),
            "features": asdict(features or FPGAFeatures()),
            "metadata": dict(metadata or {}),
        },
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> tuple[QGarNetModel, dict[str, Any]]:
    """Load a checkpoint of :func:`save_checkpoint` (``weights_only=True``).

    Returns the model (in eval mode) and ``{"features": FPGAFeatures, "metadata": dict}``.

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, not a calo FPGA checkpoint (for example a
        ``calo-train`` checkpoint), of another format version, or its weights do not fit.

    Examples
    --------
    >>> import tempfile, torch
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> from calo.fpga.qat import QGarNetStack
    >>> m = QGarNetModel(QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4)))
    >>> path = save_checkpoint(m, tempfile.mkdtemp() + "/m.ckpt", metadata={"epochs": 3})
    >>> m2, info = load_checkpoint(path)
    >>> info["metadata"], info["features"], m2.training
    ({'epochs': 3}, FPGAFeatures(xy_scale=18.0, z_offset=0.0, z_scale=50.0, energy_scale=0.5), False)
    >>> all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    True
    >>> load_checkpoint("missing.ckpt")
    Traceback (most recent call last):
    ...
    calo.errors.CheckpointError: checkpoint file does not exist [file missing.ckpt]
    """
    from calo.train.checkpoint import read_checkpoint

    path = Path(path)
    ckpt = read_checkpoint(path, require_calo=False)
    meta = ckpt.get(_KEY)
    if not isinstance(meta, dict):
        hint = " (a calo-train checkpoint: export needs a QGarNetModel)" if "calo" in ckpt else ""
        raise CheckpointError(
            f"not a calo FPGA checkpoint: no {_KEY!r} entry{hint}; save one with "
            "calo.fpga.train.save_checkpoint",
            file=path,
        )
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"FPGA checkpoint format {meta.get('format')!r} is not supported "
            f"(expected {CHECKPOINT_FORMAT})",
            file=path,
        )
    try:
        model = QGarNetModel.from_hparams(meta["hparams"])
        features = FPGAFeatures(**meta.get("features", {}))
    except (ConfigError, KeyError, TypeError) as err:
        raise CheckpointError(f"malformed FPGA checkpoint: {err}", file=path) from None
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError("checkpoint has no state_dict", file=path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0][:300]
        raise CheckpointError(f"weights do not fit the model: {first}", file=path) from None
    for k, v in model.state_dict().items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"weight {k} contains NaN or infinite values", file=path)
    model.eval()
    return model, {"features": features, "metadata": dict(meta.get("metadata", {}))}
