"""Evaluation of a trained model next to the classical baseline, on the same events.

:func:`evaluate` runs a model and :func:`calo.reco.baseline.baseline_fractions` over a dataset
and collects, for both, the permutation-invariant loss and the response statistics of
:mod:`calo.train.metrics`. :func:`load_model` rebuilds a model from a calo checkpoint.

Examples
--------
>>> import torch
>>> from torch_geometric.data import Data
>>> from calo.models import ModelConfig, build_model
>>> from calo.models.config import GarNetModelConfig
>>> ev = Data(x=torch.randn(6, 7), pos=torch.randn(6, 3), energy=torch.rand(6) + 0.1,
...           y=torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3))
>>> model = build_model(ModelConfig(name="garnet", garnet=GarNetModelConfig(n_blocks=1)))
>>> result = evaluate(model, [ev, ev])
>>> sorted(result["methods"]), result["methods"]["model"]["n_events"]
(['baseline', 'model'], 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from calo.config import from_dict
from calo.errors import CheckpointError, ConfigError
from calo.models import build_model
from calo.reco import BaselineConfig, ShareCalibration, baseline_fractions
from calo.train.checkpoint import load_weights, read_checkpoint, resolve_checkpoint
from calo.train.config import TrainConfig
from calo.train.metrics import DEFAULT_ENERGY_BINS, ResponseAccumulator

__all__ = ["evaluate", "format_comparison", "load_model"]


def load_model(path: str | Path) -> tuple[nn.Module, TrainConfig, dict[str, Any], dict[str, Any]]:
    """Rebuild the model of a calo checkpoint or run folder (its best, else last checkpoint),
    loaded with ``weights_only=True``.

    The model is the task's: a fraction model of :func:`calo.models.build_model`, or for
    ``task=e_pi`` the :class:`calo.fpga.qat.QGarNetModel` in the arithmetic it was saved in,
    for ``task=condensation`` a :class:`calo.models.CondensationModel`.

    Returns
    -------
    model, config, normalization, history
        The model in eval mode on the CPU, the run's :class:`TrainConfig`, the feature
        normalisation dict and the per-epoch loss history.

    Examples
    --------
    >>> load_model("missing.ckpt")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    calo.errors.CheckpointError: ...
    """
    path = resolve_checkpoint(path)
    ckpt = read_checkpoint(path)
    meta = ckpt["calo"]
    try:
        cfg = from_dict(TrainConfig, meta["config"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint's configuration is invalid: {e}", file=path) from None
    if cfg.task == "e_pi":
        from dataclasses import replace

        from calo.train.e_pi import build_e_pi_model

        saved = meta["config"].get("e_pi") if isinstance(meta["config"], dict) else None
        if isinstance(saved, dict) and "quantize_head" not in saved:
            # a run from before the quantization-aware head: it trained, and keeps, a float head
            cfg = replace(cfg, e_pi=replace(cfg.e_pi, quantize_head=False))

        mode = meta.get("model_state") if isinstance(meta.get("model_state"), dict) else {}
        model = build_e_pi_model(cfg.e_pi, quantized=bool(mode.get("quantized", False)))
    elif cfg.task == "condensation":
        from calo.models import CondensationModel

        model = CondensationModel(cfg.model)
    else:
        model = build_model(cfg.model)
    state = {
        k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")
    }
    load_weights(model, state, path, f"the {cfg.model_name} model of its configuration")
    for k, v in model.state_dict().items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"weight {k} contains NaN or infinite values", file=path)
    model.eval()
    hist = meta.get("history") if isinstance(meta.get("history"), dict) else {}
    return model, cfg, dict(meta["normalization"]), dict(hist)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    events: Sequence[Data],
    baseline: BaselineConfig | None = None,
    batch_size: int = 32,
    shared_threshold: float = 0.1,
    edges: Sequence[float] = DEFAULT_ENERGY_BINS,
    device: str | torch.device = "cpu",
    keep_events: int = 0,
    calibration: ShareCalibration | None = None,
) -> dict[str, Any]:
    """Model and baseline metrics on the same events.

    Parameters
    ----------
    model:
        A model mapping a batch to fractions ``[N, K]`` (``None`` evaluates the baseline only).
    events:
        ``Data`` with normalised ``x`` and raw ``pos``, ``energy``, ``y`` (and optionally
        ``particle_energy`` for the energy bins).
    baseline:
        Baseline parameters.
    batch_size, device:
        How the model is run.
    shared_threshold, edges:
        See :mod:`calo.train.metrics`.
    keep_events:
        Also return the first ``keep_events`` events with both predictions (aligned to the
        truth) under ``"examples"``, for event displays.
    calibration:
        Also evaluate the model's fractions after this share calibration
        (:mod:`calo.reco.calibration`) as the method ``"calibrated"``, and after its
        profile refinement alone (where it has one) as ``"refined"``.

    Returns
    -------
    dict
        ``{"methods": {"model": ..., "baseline": ...[, "refined": ..., "calibrated": ...]},
        "examples": [...]}``; each
        summary as :meth:`~calo.train.metrics.ResponseAccumulator.summary`.

    Examples
    --------
    Two well separated showers, which the baseline alone (``model=None``) splits almost
    perfectly:

    >>> import torch
    >>> from torch_geometric.data import Data
    >>> pos = torch.tensor([[0.0, 0, 1], [1, 0, 2], [0, 1, 3], [20, 0, 1], [21, 0, 2], [20, 1, 3]])
    >>> ev = Data(x=torch.zeros(6, 7), pos=pos, energy=torch.tensor([4.0, 1, 0.5, 3, 1, 0.5]),
    ...           y=torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3))
    >>> result = evaluate(None, [ev, ev], keep_events=1)
    >>> base = result["methods"]["baseline"]
    >>> base["n_events"], base["n_showers"], round(base["response"]["mean"], 4)
    (2, 4, 1.0)
    >>> len(result["examples"]), sorted(result["examples"][0])
    (1, ['baseline', 'energy', 'pos', 'truth'])
    >>> result["examples"][0]["baseline"].round(3)[[0, 3]].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    accs = {"baseline": ResponseAccumulator(shared_threshold)}
    if model is not None:
        accs["model"] = ResponseAccumulator(shared_threshold)
        if calibration is not None:
            if calibration.refine_iterations:
                accs["refined"] = ResponseAccumulator(shared_threshold)
            accs["calibrated"] = ResponseAccumulator(shared_threshold)
        model = model.to(device).eval()
    examples: list[dict[str, Any]] = []
    for data in DataLoader(list(events), batch_size=batch_size, shuffle=False):
        energy_bins = getattr(data, "particle_energy", None)
        preds = {"baseline": baseline_fractions(data, baseline)}
        if model is not None:
            preds["model"] = model(data.to(device)).cpu()
            data = data.cpu()
            if calibration is not None:
                refined = calibration.refine(preds["model"], data.pos, data.energy, data.batch)
                if calibration.refine_iterations:
                    preds["refined"] = refined
                preds["calibrated"] = calibration.scale_shares(
                    refined, data.energy, data.batch, data.num_graphs
                )
        aligned = {
            name: accs[name].update(
                p, data.y, data.energy, data.batch, data.num_graphs, shower_energy=energy_bins
            )
            for name, p in preds.items()
        }
        for b in range(data.num_graphs):
            if len(examples) >= keep_events:
                break
            sel = data.batch == b
            examples.append(
                {
                    "pos": data.pos[sel].numpy(),
                    "energy": data.energy[sel].numpy(),
                    "truth": data.y[sel].numpy(),
                    **{name: a[sel].numpy() for name, a in aligned.items()},
                }
            )
    return {
        "methods": {name: acc.summary(tuple(edges)) for name, acc in accs.items()},
        "examples": examples,
    }


def _fmt(v: float) -> str:
    return "   nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:6.3f}"


def format_comparison(methods: dict[str, Any]) -> str:
    """Side-by-side text table of loss and response statistics of each method.

    Examples
    --------
    >>> s = {"loss": 0.1, "n_events": 2, "response": {"mean": 1.0, "rms": 0.1, "width": 0.1},
    ...      "response_shared": {"mean": 0.9, "rms": 0.2, "width": 0.2}}
    >>> print(format_comparison({"model": s}).splitlines()[0])
    method      events   loss  R mean  R rms R width | shared: mean    rms  width
    """
    lines = ["method      events   loss  R mean  R rms R width | shared: mean    rms  width"]
    for name, s in methods.items():
        r, rs = s["response"], s["response_shared"]
        lines.append(
            f"{name:<10} {s['n_events']:7d} {_fmt(s['loss'])} {_fmt(r['mean'])} {_fmt(r['rms'])} "
            f"{_fmt(r['width'])} |       {_fmt(rs['mean'])} {_fmt(rs['rms'])} {_fmt(rs['width'])}"
        )
    return "\n".join(lines)
