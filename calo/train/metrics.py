"""Shower energy response and its spread, on all hits and on hits shared by showers.

Definitions (docs/training.md), per event and truth shower k, after the predicted
columns are matched to the truth showers with the permutation of lowest loss
(:func:`calo.train.losses.permutation_invariant_loss`):

* response on all hits :math:`R_k = \\sum_i p_{ik} E_i / \\sum_i t_{ik} E_i`, summed over the
  event's signal hits; noise-only hits (all truth fractions 0) are left out, as the truth gives
  them to no shower and the loss gives them zero weight (a shower with
  :math:`\\sum_i t_{ik} E_i = 0` has no response);
* **shared hits** of an event are the hits to which at least two showers contribute more than
  ``shared_threshold`` (default 0.1) of the energy, i.e. the second-largest truth fraction
  exceeds the threshold; the shared response :math:`R^{sh}_k` is the same ratio summed over the
  shared hits only (undefined when shower k has no energy on shared hits);
* the truth shower energy used for binning is the incident energy ``particle_energy`` when the
  batch has it, otherwise the truth energy in hits :math:`\\sum_i t_{ik} E_i`;
* the responses are also given in bins of the event's **shower overlap** from the truth
  (:func:`calo.train.losses.shower_overlap`: 0 for showers apart, 1 on top of each other),
  which separates what a method does on resolvable showers from what it does where the hits
  cannot tell the showers apart;
* spread: the RMS (standard deviation) and a robust width, half the 16-84 % interval; the
  relative resolution is spread / mean.

Examples
--------
>>> import torch
>>> acc = ResponseAccumulator()
>>> p = torch.tensor([[0.9, 0.1], [0.2, 0.8]]); t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> _ = acc.update(p, t, torch.tensor([10.0, 10.0]), torch.tensor([0, 0]))
>>> [round(float(r), 2) for r in acc.responses()["all"]]
[1.1, 0.9]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import scatter

from calo.reco.stats import binned_stats, spread_stats
from calo.train.losses import align_predictions, permutation_invariant_loss, shower_overlap

__all__ = [
    "DEFAULT_ENERGY_BINS",
    "OVERLAP_BINS",
    "ResponseAccumulator",
    "binned_stats",
    "shared_hit_mask",
    "shower_responses",
    "spread_stats",
]

#: Bin edges (GeV) of truth shower energy, 5-60 GeV as in the paper.
DEFAULT_ENERGY_BINS: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)

#: Bin edges of the event's truth shower overlap (:func:`calo.train.losses.shower_overlap`):
#: apart, touching, overlapping, mostly on top of each other. The last edge is just above 1
#: so that an overlap of exactly 1 falls in the last bin.
OVERLAP_BINS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.2, 0.5, 1.0 + 1e-9)


def shared_hit_mask(target: Tensor, threshold: float = 0.1) -> Tensor:
    """Hits to which at least two showers contribute more than ``threshold`` of the energy.

    Examples
    --------
    >>> import torch
    >>> shared_hit_mask(torch.tensor([[0.5, 0.5], [0.95, 0.05], [0.0, 0.0]])).tolist()
    [True, False, False]
    """
    return (target > threshold).sum(dim=1) >= 2


def shower_responses(
    pred: Tensor,
    target: Tensor,
    energy: Tensor,
    batch: Tensor | None = None,
    num_events: int | None = None,
    shared_threshold: float = 0.1,
) -> dict[str, Tensor]:
    """Per-event, per-shower responses of already aligned predictions.

    Parameters
    ----------
    pred, target:
        ``[N, K]`` fractions; column k of ``pred`` must belong to truth shower k
        (use :func:`calo.train.losses.align_predictions`).
    energy:
        ``[N]`` hit energies (GeV).
    batch:
        ``[N]`` event index.
    num_events:
        Number of events B.
    shared_threshold:
        See :func:`shared_hit_mask`.

    Returns
    -------
    dict
        ``all``, ``shared`` (``[B, K]``, NaN where undefined), ``truth_energy`` and
        ``truth_energy_shared`` (``[B, K]``, the denominators).

    Examples
    --------
    >>> import torch
    >>> r = shower_responses(torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0]]),
    ...                      torch.tensor([2.0]))
    >>> r["all"].tolist()
    [[0.5, nan]]
    """
    if batch is None:
        batch = torch.zeros(pred.shape[0], dtype=torch.long, device=pred.device)
    nb = num_events if num_events is not None else (int(batch.max()) + 1 if batch.numel() else 0)
    signal = (target > 0).any(dim=1).unsqueeze(1).to(pred.dtype)
    e = energy.unsqueeze(1) * signal
    shared = shared_hit_mask(target, shared_threshold).unsqueeze(1).to(pred.dtype)
    num = scatter(pred * e, batch, dim=0, dim_size=nb, reduce="sum")
    den = scatter(target * e, batch, dim=0, dim_size=nb, reduce="sum")
    num_s = scatter(pred * e * shared, batch, dim=0, dim_size=nb, reduce="sum")
    den_s = scatter(target * e * shared, batch, dim=0, dim_size=nb, reduce="sum")
    nan = torch.full_like(num, math.nan)
    return {
        "all": torch.where(den > 0, num / den.clamp(min=1e-30), nan),
        "shared": torch.where(den_s > 0, num_s / den_s.clamp(min=1e-30), nan),
        "truth_energy": den,
        "truth_energy_shared": den_s,
    }


class ResponseAccumulator:
    """Collects permutation-aligned responses and losses over many batches.

    Parameters
    ----------
    shared_threshold:
        Fraction above which a shower counts as contributing to a hit (shared hits).

    Examples
    --------
    >>> import torch
    >>> acc = ResponseAccumulator()
    >>> _ = acc.update(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([1.0]))
    >>> acc.summary()["loss"]
    0.0
    """

    def __init__(self, shared_threshold: float = 0.1) -> None:
        self.shared_threshold = shared_threshold
        self._all: list[np.ndarray] = []
        self._shared: list[np.ndarray] = []
        self._etrue: list[np.ndarray] = []
        self._loss: list[np.ndarray] = []
        self._overlap: list[np.ndarray] = []
        self._has: list[np.ndarray] = []

    @torch.no_grad()
    def update(
        self,
        pred: Tensor,
        target: Tensor,
        energy: Tensor,
        batch: Tensor | None = None,
        num_events: int | None = None,
        shower_energy: Tensor | None = None,
    ) -> Tensor:
        """Add a batch; returns the aligned predictions ``[N, K]``.

        ``shower_energy`` (``[B, K]``, e.g. ``data.particle_energy``) is the binning variable;
        without it the truth energy in hits is used.
        """
        pred, target, energy = pred.detach().float(), target.float(), energy.float()
        if batch is None:
            batch = torch.zeros(pred.shape[0], dtype=torch.long, device=pred.device)
        nb = num_events if num_events is not None else int(batch.max()) + 1
        res = permutation_invariant_loss(pred, target, energy, batch, nb)
        aligned = align_predictions(pred, res.perm, batch)
        r = shower_responses(aligned, target, energy, batch, nb, self.shared_threshold)
        etrue = r["truth_energy"] if shower_energy is None else shower_energy.float()
        if etrue.shape != r["all"].shape:
            etrue = r["truth_energy"]
        valid = r["truth_energy"] > 0
        self._all.append(r["all"][valid].cpu().numpy())
        self._shared.append(r["shared"][valid].cpu().numpy())
        self._etrue.append(etrue[valid].cpu().numpy())
        overlap = shower_overlap(target, energy, batch, nb).unsqueeze(1).expand_as(valid)
        self._overlap.append(overlap[valid].cpu().numpy())
        has = valid.any(dim=1)
        self._loss.append(res.event_loss[has].cpu().numpy())
        return aligned

    def responses(self) -> dict[str, np.ndarray]:
        """Flat arrays over all collected showers: ``all``, ``shared``, ``truth_energy`` and
        ``overlap`` (the shower overlap of the shower's event)."""

        def cat(xs: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(xs) if xs else np.zeros(0)

        return {
            "all": cat(self._all),
            "shared": cat(self._shared),
            "truth_energy": cat(self._etrue),
            "overlap": cat(self._overlap),
        }

    def event_losses(self) -> np.ndarray:
        """Permutation-invariant loss of every collected event with signal."""
        return np.concatenate(self._loss) if self._loss else np.zeros(0)

    def summary(
        self, edges: tuple[float, ...] | list[float] = DEFAULT_ENERGY_BINS
    ) -> dict[str, Any]:
        """JSON-ready metrics: loss and response statistics, overall and in bins.

        ``bins`` holds the statistics in bins of truth shower energy (``edges``),
        ``overlap_bins`` those in bins of the event's shower overlap (:data:`OVERLAP_BINS`).
        """
        r = self.responses()
        losses = self.event_losses()
        return {
            "n_events": int(losses.size),
            "n_showers": int(r["all"].size),
            "loss": float(losses.mean()) if losses.size else float("nan"),
            "shared_threshold": self.shared_threshold,
            "response": spread_stats(r["all"]),
            "response_shared": spread_stats(r["shared"]),
            "bins": {
                "edges": [float(e) for e in edges],
                "all": binned_stats(r["truth_energy"], r["all"], edges),
                "shared": binned_stats(r["truth_energy"], r["shared"], edges),
            },
            "overlap_bins": {
                "edges": list(OVERLAP_BINS),
                "all": binned_stats(r["overlap"], r["all"], OVERLAP_BINS),
            },
        }
