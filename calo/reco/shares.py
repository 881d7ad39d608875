"""Per-event energy shares of hit-level fractions, and the checks of hit-level inputs.

A fraction matrix ``[N, K]`` shares each hit's energy among K showers; summed over an event's
hits with the hit energy as weight, it gives the share of the event's energy each shower takes.
The share calibration (:mod:`calo.reco.calibration`) works on these shares, and so do the
training losses (:mod:`calo.train.losses`), which also use the input checks defined here.

Examples
--------
>>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> event_energy_shares(t, t, torch.tensor([1.0, 3.0])).tolist()
[[0.25, 0.75]]
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from calo.errors import DataError

__all__ = ["check_hits", "count_events", "event_energy_shares", "signal_energy"]


def check_hits(pred: Tensor, target: Tensor, energy: Tensor, batch: Tensor | None) -> Tensor:
    """Check that ``pred`` and ``target`` are ``[N, K]``, ``energy`` is ``[N]`` and ``batch``
    (if given) is ``[N]``; return ``batch``, or all zeros (one event) for ``None``.

    Examples
    --------
    >>> check_hits(torch.ones(3, 2), torch.ones(3, 2), torch.ones(3), None).tolist()
    [0, 0, 0]
    """
    if pred.dim() != 2 or target.shape != pred.shape:
        raise DataError(
            f"pred and target must both be [N, K]; got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if energy.shape != (pred.shape[0],):
        raise DataError(f"energy must be [N] = [{pred.shape[0]}]; got {tuple(energy.shape)}")
    if batch is None:
        return torch.zeros(pred.shape[0], dtype=torch.long, device=pred.device)
    if batch.shape != (pred.shape[0],):
        raise DataError(f"batch must be [N] = [{pred.shape[0]}]; got {tuple(batch.shape)}")
    return batch


def signal_energy(target: Tensor, energy: Tensor) -> Tensor:
    """``[N]`` hit energies (clipped at 0) on signal hits, 0 on noise-only hits.

    Examples
    --------
    >>> signal_energy(torch.tensor([[1.0], [0.0]]), torch.tensor([2.0, 3.0])).tolist()
    [2.0, 0.0]
    """
    return energy.clamp(min=0) * (target > 0).any(dim=1)


def count_events(batch: Tensor, num_events: int | None) -> int:
    """``num_events`` if given, else the number of events in the sorted event index ``batch``.

    Examples
    --------
    >>> count_events(torch.tensor([0, 0, 2]), None), count_events(torch.tensor([0]), 4)
    (3, 4)
    """
    if num_events is not None:
        return num_events
    return int(batch.max()) + 1 if batch.numel() else 0


def event_energy_shares(
    fractions: Tensor,
    target: Tensor,
    energy: Tensor,
    batch: Tensor | None = None,
    num_events: int | None = None,
) -> Tensor:
    """Share of each event's signal energy that each column of ``fractions`` takes.

    ``[B, C]``: :math:`\\sum_i f_{ic} E_i / \\sum_i E_i` over the event's signal hits (those
    with a truth fraction above 0, as ``target`` says; energies clipped at 0); 0 for events
    without signal. ``fractions`` may be predictions, the truth itself or any per-hit quantity
    ``[N, C]`` to average with the energy as weight.

    Examples
    --------
    >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> event_energy_shares(t, t, torch.tensor([3.0, 1.0, 9.0])).tolist()
    [[0.75, 0.25]]
    """
    batch = check_hits(target, target, energy, batch)
    nb = count_events(batch, num_events)
    e = signal_energy(target, energy)
    total = scatter(e, batch, dim=0, dim_size=nb).clamp(min=torch.finfo(e.dtype).tiny)
    return scatter(fractions * e.unsqueeze(1), batch, dim=0, dim_size=nb) / total.unsqueeze(1)
