"""The electron/pion task of the FPGA paper as a task of ``calo-train`` (``--task e_pi``).

Iiyama et al. (Front. Big Data 3 (2021) 598927) classify single electrons against charged
pions and regress their energy from up to V_max hits around the seed, with a small
GarNetStack that runs on an FPGA. Here that is one more task of the one training stack:

* data: :class:`EPiDataModule` reads single-particle ``calo-simulate`` events (by default a
  built-in sample simulated once, like the two-shower one) and packs each into the paper's
  padded input, V_max hits with 4 features (:func:`calo.fpga.data.load_e_pi`);
* model: :class:`calo.fpga.qat.QGarNetModel` (GarNetStack -> Dense head -> energy and
  classification logit), sized by :class:`~calo.train.config.EPiConfig`;
* loss per event: the binary cross-entropy of the logit against the label (1 electron,
  0 pion) plus ``regression_weight * ((E_pred - E) / E)^2``, so that the regression minimises
  the spread of the response ``E_pred / E``;
* quantization-aware fine-tuning: :class:`calo.train.qat.QuantizationAwareTraining` switches the stack
  (and, with ``e_pi.quantize_head``, the Dense head: hls4ml's ``nnet::dense`` and
  ``nnet::relu`` in ``e_pi.head_fixed`` types) to the firmware's fixed-point arithmetic for
  the last ``e_pi.qat_epochs`` epochs; the best
  checkpoint is then chosen among those epochs only, so it is the one to export;
* metrics (:func:`evaluate_e_pi`): ROC AUC of the electron probability and the response's
  mean, RMS and robust width, overall and in bins of the true energy, for the model as trained
  (``quantized``) and for the same weights in float arithmetic (``float``).

Everything else (run folder, checkpoints read with ``weights_only=True``, ``--resume``, DDP,
``calo-evaluate``) is the stack of :mod:`calo.train.run`; ``calo-export`` turns the run into
the firmware's inputs.

Examples
--------
>>> from calo.config import to_dict
>>> from calo.train.config import TrainConfig
>>> module = EPiModule(to_dict(TrainConfig(task="e_pi")))
>>> type(module.model).__name__, module.model.stack.quantized
('QGarNetModel', False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from calo.errors import DataError
from calo.fpga.data import FPGAFeatures, FPGASample, load_e_pi
from calo.fpga.qat import QGarNetModel, QGarNetStack
from calo.io.schema import Schema
from calo.train.config import DataConfig, EPiConfig
from calo.train.data import EpochShuffleSampler, builtin_data_file, load_schema, split_indices
from calo.train.metrics import binned_stats, spread_stats
from calo.train.module import CaloModule
from calo.train.resume import ResumableDataLoader

__all__ = [
    "EPiDataModule",
    "EPiModule",
    "build_e_pi_model",
    "e_pi_features",
    "evaluate_e_pi",
    "format_e_pi",
    "read_e_pi",
]

#: bins of the true particle energy (GeV) for the response of the e/pi task
E_PI_ENERGY_BINS: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 60.0, 80.0, 100.0)


def e_pi_features(config: EPiConfig) -> FPGAFeatures:
    """The hit-feature scales of the task's configuration.

    Examples
    --------
    >>> e_pi_features(EPiConfig(z_scale=200.0)).z_scale
    200.0
    """
    return FPGAFeatures(
        xy_scale=config.xy_scale,
        z_offset=config.z_offset,
        z_scale=config.z_scale,
        energy_scale=config.feature_energy_scale,
    )


def build_e_pi_model(config: EPiConfig, quantized: bool = False) -> QGarNetModel:
    """The task's model (float arithmetic unless ``quantized``), untrained.

    Examples
    --------
    >>> build_e_pi_model(EPiConfig()).head_dims
    (16, 8)
    """
    stack = QGarNetStack(
        n_in=4,
        sublayers=[tuple(s) for s in config.sublayers],
        config=config.fixed,
        quantized=quantized,
        ternary=config.ternary,
        ternary_threshold=config.ternary_threshold,
    )
    return QGarNetModel(
        stack,
        head=config.head,
        energy_scale=config.energy_scale,
        quantize_head=config.quantize_head,
        head_fixed=config.head_fixed,
    )


def _dataset(sample: FPGASample) -> TensorDataset:
    return TensorDataset(sample.X, sample.n, sample.is_electron, sample.energy)


def read_e_pi(
    files: Sequence[str], e_pi: EPiConfig, schema: Schema | None = None, max_events: int = 0
) -> FPGASample:
    """Read single-particle events with the branch ``schema`` and pack them for the FPGA model.

    :func:`calo.io.read_data` reads the hits' x, y, z and energy and the particle truth with
    ``schema`` (``None``: calo's own layout); :func:`calo.fpga.data.load_e_pi` packs them into
    V_max = ``e_pi.fixed.n_vertices`` hits. The sample's ``read_summary`` says what the read
    skipped.

    Examples
    --------
    >>> import tempfile
    >>> from calo.fpga.data import simulate_e_pi
    >>> path = simulate_e_pi(tempfile.mkdtemp() + "/e_pi.root", n_events=4, seed=1)["path"]
    >>> s = read_e_pi([path], EPiConfig(), max_events=3)
    >>> len(s), s.read_summary.events_kept
    (3, 3)
    """
    from dataclasses import replace

    from calo.io import FeatureSpec, read_data

    data, summary = read_data(
        list(files),
        schema if schema is not None else load_schema(""),
        max_events=max_events or None,
        features=FeatureSpec(("x", "y", "z", "energy")),
    )
    if not data:
        raise DataError(
            f"no events to train or evaluate on; {summary}".replace("\n", ";"),
            file=", ".join(files),
        )
    sample = load_e_pi(data, v_max=e_pi.fixed.n_vertices, features=e_pi_features(e_pi))
    return replace(sample, read_summary=summary)


class EPiDataModule(L.LightningDataModule):
    """Single-particle events in the paper's padded input, split into training and validation.

    Parameters
    ----------
    config:
        Files, batch size and split (:class:`~calo.train.config.DataConfig`); without files
        the built-in e/pi sample of ``config.n_events`` events (seed ``config.sim_seed``).
    e_pi:
        V_max (``e_pi.fixed.n_vertices``) and the feature scales.
    seed:
        Seed of the per-epoch shuffling.
    schema:
        The branch schema of the files; ``None`` loads ``config.schema``
        (:func:`calo.train.data.load_schema`).

    Examples
    --------
    >>> dm = EPiDataModule(DataConfig(files=["data/sample_e_pi.root"]), EPiConfig())
    >>> dm.files(), dm.schema.tree
    (['data/sample_e_pi.root'], 'events')
    """

    def __init__(
        self, config: DataConfig, e_pi: EPiConfig, seed: int = 0, schema: Schema | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.e_pi = e_pi
        self.seed = seed
        self.schema = schema if schema is not None else load_schema(config.schema)
        self.train_sample: FPGASample | None = None
        self.val_sample: FPGASample | None = None
        self.read_summary: Any = None

    def files(self) -> list[str]:
        """The input files (the built-in e/pi sample's path when ``config.files`` is empty)."""
        if self.config.files:
            return [str(f) for f in self.config.files]
        c = self.config
        return [str(builtin_data_file(c.n_events, c.sim_seed, c.cache_dir, task="e_pi"))]

    def prepare_data(self) -> None:
        """Simulate the built-in sample if needed (Lightning calls this on one process)."""
        self.files()

    def setup(self, stage: str | None = None) -> None:
        """Read, pack and split the events."""
        if self.train_sample is not None:
            return
        files = self.files()
        sample = read_e_pi(files, self.e_pi, self.schema, self.config.max_events)
        self.read_summary = sample.read_summary
        if len(sample) < 2:
            raise DataError(
                f"need at least 2 events to split, got {len(sample)}", file=", ".join(files)
            )
        tr, va = split_indices(len(sample), self.config.val_fraction, self.config.split_seed)
        self.train_sample, self.val_sample = sample.subset(tr), sample.subset(va)

    def _loader(self, sample: FPGASample, shuffle: bool) -> DataLoader:
        # the training loader resumes inside an epoch (calo.train.resume)
        cls = ResumableDataLoader if shuffle else DataLoader
        return cls(
            _dataset(sample),
            batch_size=self.config.batch_size,
            sampler=EpochShuffleSampler(len(sample), self.seed) if shuffle else None,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Training batches ``(X, n, is_electron, energy)``, reshuffled every epoch."""
        assert self.train_sample is not None
        return self._loader(self.train_sample, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in file order."""
        assert self.val_sample is not None
        return self._loader(self.val_sample, shuffle=False)


def loss_terms(
    model: QGarNetModel, X: Tensor, n: Tensor, label: Tensor, energy: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Classification and regression losses (batch means), the logit and the response.

    Examples
    --------
    >>> m = build_e_pi_model(EPiConfig())
    >>> cls, reg, logit, resp = loss_terms(m, torch.zeros(2, 128, 4), torch.tensor([1, 2]),
    ...                                    torch.tensor([0.0, 1.0]), torch.tensor([10.0, 50.0]))
    >>> cls.shape, logit.shape, resp.shape
    (torch.Size([]), torch.Size([2]), torch.Size([2]))
    """
    reg, logit = model(X, n)  # float64 when the head is quantized
    target = energy.to(reg.dtype) / model.energy_scale
    cls = torch.nn.functional.binary_cross_entropy_with_logits(logit, label.to(logit.dtype))
    response = reg / target
    return cls, ((response - 1.0) ** 2).mean(), logit, response


class EPiModule(CaloModule):
    """LightningModule of the e/pi task (see the module docstring).

    Logs ``val_loss``, ``val_auc`` (ROC AUC) and ``val_response_rms`` per epoch, all three
    kept in :attr:`history`.

    Examples
    --------
    >>> from calo.config import to_dict
    >>> from calo.train.config import TrainConfig
    >>> sorted(EPiModule(to_dict(TrainConfig(task="e_pi"))).history)
    ['epoch', 'lr', 'train_loss', 'val_auc', 'val_loss', 'val_response_rms']
    """

    extra_history = ("val_auc", "val_response_rms")

    def __init__(self, config: Mapping[str, Any], normalization: Mapping[str, Any] | None = None):
        from torchmetrics import MeanMetric
        from torchmetrics.classification import BinaryAUROC

        super().__init__(config, normalization)
        self.model = build_e_pi_model(self.cfg.e_pi)
        self.val_auroc = BinaryAUROC()
        self.val_response = MeanMetric()
        self.val_response_sq = MeanMetric()

    def forward(self, X: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """``(regression [B], logit [B])`` of padded hits ``X`` and valid-hit counts ``n``."""
        return self.model(X, n)

    def _terms(self, batch: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        X, n, label, energy = batch
        cls, reg, logit, response = loss_terms(self.model, X, n, label, energy)
        return cls + self.cfg.e_pi.regression_weight * reg, logit, response

    def loss(self, batch: Sequence[Tensor], train: bool = False) -> tuple[Tensor, int]:
        """Classification plus weighted regression loss of a batch."""
        return self._terms(batch)[0], int(batch[0].shape[0])

    def validation_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        """Validation loss, and the ROC AUC and response accumulated over the epoch."""
        loss, logit, response = self._terms(batch)
        n = int(batch[0].shape[0])
        self.log("val_loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        self.val_auroc.update(torch.sigmoid(logit), batch[2].long())
        self.val_response.update(response.detach())
        self.val_response_sq.update(response.detach() ** 2)
        return loss

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's ROC AUC and response RMS (synchronised across processes)."""
        mean, sq = self.val_response.compute(), self.val_response_sq.compute()
        self.log("val_auc", self.val_auroc.compute(), prog_bar=True, sync_dist=False)
        self.log("val_response_rms", torch.sqrt(torch.clamp(sq - mean**2, min=0.0)))
        for metric in (self.val_auroc, self.val_response, self.val_response_sq):
            metric.reset()

    def model_state(self) -> dict[str, Any]:
        """Whether the stack computes in fixed point (stored in the checkpoint)."""
        return {"quantized": bool(self.model.stack.quantized)}

    def set_model_state(self, state: Mapping[str, Any]) -> None:
        """Restore the stack's arithmetic from :meth:`model_state`."""
        self.model.stack.set_quantized(bool(state.get("quantized", False)))


@torch.no_grad()
def _predict(
    model: QGarNetModel, sample: FPGASample, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    e_pred, prob = [], []
    for start in range(0, len(sample), batch_size):
        sl = slice(start, start + batch_size)
        e, p = model.predict(sample.X[sl], sample.n[sl])
        e_pred.append(e)
        prob.append(p)
    return torch.cat(e_pred).double().numpy(), torch.cat(prob).double().numpy()


def _roc(prob: np.ndarray, label: np.ndarray) -> tuple[float, dict[str, list[float]]]:
    from torchmetrics.functional.classification import binary_auroc, binary_roc

    p, y = torch.as_tensor(prob), torch.as_tensor(label).long()
    fpr, tpr, _ = binary_roc(p, y)
    step = max(1, len(fpr) // 200)  # at most ~200 points of the curve in metrics.json
    keep = torch.cat([torch.arange(0, len(fpr), step), torch.tensor([len(fpr) - 1])]).unique()
    curve = {"pion_efficiency": fpr[keep].tolist(), "electron_efficiency": tpr[keep].tolist()}
    return float(binary_auroc(p, y)), curve


def _summary(prob: np.ndarray, e_pred: np.ndarray, sample: FPGASample) -> dict[str, Any]:
    label = sample.is_electron.numpy().astype(np.int64)
    energy = sample.energy.double().numpy()
    response = e_pred / energy
    auc, curve = _roc(prob, label)
    st = spread_stats(response)
    return {
        "n_events": len(sample),
        "roc_auc": auc,
        "accuracy": float(((prob > 0.5) == (label == 1)).mean()),
        "response": {k: st[k] for k in ("mean", "rms", "width", "median")},
        "response_electrons": spread_stats(response[label == 1]),
        "response_pions": spread_stats(response[label == 0]),
        "response_bins": binned_stats(energy, response, E_PI_ENERGY_BINS),
        "roc": curve,
    }


def evaluate_e_pi(model: QGarNetModel, sample: FPGASample, batch_size: int = 256) -> dict[str, Any]:
    """Metrics of the model as it is and of the same weights in the other arithmetic.

    Returns ``{"methods": {"quantized": ..., "float": ...}, "trained_quantized": bool}``; each
    summary holds ``roc_auc``, ``accuracy``, ``response`` (mean, RMS, robust width, median;
    :func:`calo.train.metrics.spread_stats`), the response of electrons and of pions, the
    response in bins of the true energy and the ROC curve (pion and electron efficiencies).

    Examples
    --------
    >>> import torch
    >>> from calo.io import TruncationReport
    >>> m = build_e_pi_model(EPiConfig())
    >>> s = FPGASample(torch.rand(6, 128, 4), torch.full((6,), 5), torch.tensor([0., 1.] * 3),
    ...                torch.full((6,), 20.0), TruncationReport(6, 0, 30, 0, 1.0, 0.0),
    ...                FPGAFeatures())
    >>> r = evaluate_e_pi(m, s)
    >>> sorted(r["methods"]), r["trained_quantized"], r["methods"]["float"]["n_events"]
    (['float', 'quantized'], False, 6)
    """
    model.eval()
    stack = model.stack
    was = stack.quantized
    methods = {}
    for name, quantized in (("quantized", True), ("float", False)):
        stack.set_quantized(quantized)
        e_pred, prob = _predict(model, sample, batch_size)
        methods[name] = _summary(prob, e_pred, sample)
    stack.set_quantized(was)
    return {"methods": methods, "trained_quantized": bool(was)}


def format_e_pi(methods: Mapping[str, Any]) -> str:
    """Text table of the e/pi metrics of each method.

    Examples
    --------
    >>> s = {"n_events": 3, "roc_auc": 0.9, "accuracy": 0.8,
    ...      "response": {"mean": 1.0, "rms": 0.2, "width": 0.1}}
    >>> print(format_e_pi({"quantized": s}))
    arithmetic  events  ROC AUC  accuracy  R mean  R rms R width
    quantized        3   0.9000     0.800   1.000  0.200   0.100
    """
    lines = ["arithmetic  events  ROC AUC  accuracy  R mean  R rms R width"]
    for name, s in methods.items():
        r = s["response"]
        lines.append(
            f"{name:<10} {s['n_events']:7d} {s['roc_auc']:8.4f} {s['accuracy']:9.3f} "
            f"{r['mean']:7.3f} {r['rms']:6.3f} {r['width']:7.3f}"
        )
    return "\n".join(lines)


def save_e_pi_plots(folder: str | Path, result: Mapping[str, Any], history: Any) -> list[Path]:
    """ROC curve, response vs energy and loss curves of an e/pi evaluation as PNG files."""
    from calo.plots.e_pi import plot_e_pi_response, plot_roc
    from calo.plots.performance import plot_loss_curves

    folder = Path(folder)
    paths = [
        plot_roc(result["methods"], folder / "roc.png"),
        plot_e_pi_response(result["methods"], folder / "response.png"),
    ]
    if history and history.get("epoch"):
        paths.append(plot_loss_curves(history, folder / "loss.png"))
    return paths
