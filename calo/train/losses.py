"""Energy-weighted fraction loss of the GravNet paper and its permutation-invariant form.

For event b, shower k and hits i of the event (docs/training.md)

.. math::

    L_{bk} = \\frac{\\sum_i w_{ik} (p_{ik} - t_{ik})^2}{\\sum_i w_{ik}}, \\qquad
    w_{ik} = t_{ik} \\sqrt{E_i},

the event loss is the mean of :math:`L_{bk}` over the showers the event has (a shower with
:math:`\\sum_i w_{ik} = 0`, for example a padding column, is left out) and the batch loss is the
mean over events. Noise-only hits have :math:`t_{ik} = 0` and so weight zero.

``weighting="energy"`` (an option, not the paper's) drops the truth fraction from the weight:
:math:`w_{ik} = \\sqrt{E_i}` on every signal hit of the event, for every shower. With it the
pointwise minimiser of the loss is the mean truth fraction; with the paper's weight it is not
(``tests/train/test_losses.py``). In the quality benchmark this did not change the response:
trained either way, a GravNet gives 5-10 GeV showers a mean response of about 1.5
(``benchmarks/results/quality_quick*``), so that bias has another cause.

The network's output columns carry no fixed meaning, so evaluation takes, per event, the
assignment of predicted columns to truth showers with the lowest loss
(:func:`permutation_invariant_loss`; for two showers this is the better of the identity and
the swap).

Examples
--------
>>> import torch
>>> p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> t = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
>>> e = torch.tensor([4.0, 1.0])
>>> float(fraction_loss(p, t, e))
1.0
>>> float(permutation_invariant_loss(p, t, e).loss)
0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torch_geometric.utils import scatter

from calo.errors import ConfigError
from calo.reco.shares import check_hits, count_events, event_energy_shares, signal_energy

#: Hit weights of the loss: the paper's ``t_ik sqrt(E_i)`` or ``sqrt(E_i)`` (see above).
Weighting = Literal["truth", "energy"]
WEIGHTINGS: tuple[str, ...] = ("truth", "energy")

__all__ = [
    "WEIGHTINGS",
    "PermutationResult",
    "Weighting",
    "align_predictions",
    "best_assignment",
    "energy_order_assignment",
    "energy_ordered_loss",
    "energy_share_loss",
    "fraction_loss",
    "pairwise_shower_loss",
    "per_event_loss",
    "permutation_invariant_loss",
    "shower_overlap",
]


def pairwise_shower_loss(
    pred: Tensor,
    target: Tensor,
    energy: Tensor,
    batch: Tensor | None = None,
    num_events: int | None = None,
    weighting: Weighting = "truth",
) -> tuple[Tensor, Tensor]:
    """Loss of every predicted column against every truth shower, per event.

    Parameters
    ----------
    pred, target:
        ``[N, K]`` predicted and true energy fractions.
    energy:
        ``[N]`` hit energies (GeV, raw; negative values are clipped to 0 in the weight).
    batch:
        ``[N]`` event index of every hit (``None``: one event).
    num_events:
        Number of events B (default ``batch.max() + 1``).
    weighting:
        ``"truth"``: the paper's ``w_ik = t_ik sqrt(E_i)``; ``"energy"``: ``w_ik = sqrt(E_i)``
        on every signal hit (see the module docstring). ``valid`` is the same for both.

    Returns
    -------
    cost, valid:
        ``cost[b, k, j] = sum_i w_ik (p_ij - t_ik)^2 / sum_i w_ik`` with shape ``[B, K, K]``
        (0 where the shower is absent) and ``valid [B, K]``, true where ``sum_i w_ik > 0``.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[0.75, 0.25]]); t = torch.tensor([[1.0, 0.0]])
    >>> cost, valid = pairwise_shower_loss(p, t, torch.tensor([1.0]))
    >>> cost[0, 0].tolist(), valid.tolist()
    ([0.0625, 0.5625], [[True, False]])
    """
    batch = check_hits(pred, target, energy, batch)
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    nb = count_events(batch, num_events)
    sqrt_e = energy.clamp(min=0).sqrt().unsqueeze(1)
    w = target * sqrt_e  # [N, K] weights of truth shower k
    valid = scatter(w, batch, dim=0, dim_size=nb, reduce="sum") > 0  # [B, K]
    if weighting == "energy":
        signal = (target > 0).any(dim=1, keepdim=True).to(target.dtype)
        w = (signal * sqrt_e).expand_as(target)
    diff2 = (pred.unsqueeze(1) - target.unsqueeze(2)) ** 2  # [N, K_truth, K_pred]
    num = scatter(w.unsqueeze(2) * diff2, batch, dim=0, dim_size=nb, reduce="sum")
    den = scatter(w, batch, dim=0, dim_size=nb, reduce="sum")  # [B, K]
    cost = num / den.clamp(min=torch.finfo(den.dtype).tiny).unsqueeze(2)
    cost = torch.where(valid.unsqueeze(2), cost, torch.zeros_like(cost))
    return cost, valid


def _event_mean(per_shower: Tensor, valid: Tensor) -> Tensor:
    n = valid.sum(dim=1)
    total = torch.where(valid, per_shower, torch.zeros_like(per_shower)).sum(dim=1)
    return total / n.clamp(min=1)


def per_event_loss(
    pred: Tensor,
    target: Tensor,
    energy: Tensor,
    batch: Tensor | None = None,
    num_events: int | None = None,
    weighting: Weighting = "truth",
) -> Tensor:
    """Paper loss per event, predicted column k compared with truth shower k.

    Returns ``[B]``: the mean over the event's present showers of ``L_bk`` (0 for an event
    with no signal hit).

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[0.5, 0.5], [1.0, 0.0]]); t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> per_event_loss(p, t, torch.tensor([1.0, 1.0]), torch.tensor([0, 1])).tolist()
    [0.25, 0.0]
    """
    cost, valid = pairwise_shower_loss(pred, target, energy, batch, num_events, weighting)
    diag = torch.diagonal(cost, dim1=1, dim2=2)  # [B, K]
    return _event_mean(diag, valid)


def fraction_loss(
    pred: Tensor,
    target: Tensor,
    energy: Tensor,
    batch: Tensor | None = None,
    num_events: int | None = None,
    weighting: Weighting = "truth",
) -> Tensor:
    """Training loss: :func:`per_event_loss` averaged over the events (differentiable).

    Events without any signal hit are left out of the mean.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[0.5, 0.5]]); t = torch.tensor([[1.0, 0.0]])
    >>> float(fraction_loss(p, t, torch.tensor([9.0])))
    0.25
    """
    cost, valid = pairwise_shower_loss(pred, target, energy, batch, num_events, weighting)
    ev = _event_mean(torch.diagonal(cost, dim1=1, dim2=2), valid)
    has = valid.any(dim=1)
    if not bool(has.any()):
        return pred.sum() * 0.0
    return ev[has].mean()


@dataclass
class PermutationResult:
    """Outcome of :func:`permutation_invariant_loss`.

    Attributes
    ----------
    loss:
        Scalar: mean over events (with signal) of the best per-event loss.
    event_loss:
        ``[B]`` best per-event loss.
    perm:
        ``[B, K]`` int64: truth shower k is matched to predicted column ``perm[b, k]``.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[0.1, 0.9], [0.8, 0.2]]); t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> r = permutation_invariant_loss(p, t, torch.tensor([1.0, 1.0]))
    >>> r
    PermutationResult(loss=tensor(0.0250), event_loss=tensor([0.0250]), perm=tensor([[1, 0]]))
    >>> p[:, r.perm[0]]  # the predicted columns in truth order
    tensor([[0.9000, 0.1000],
            [0.2000, 0.8000]])
    """

    loss: Tensor
    event_loss: Tensor
    perm: Tensor


def permutation_invariant_loss(
    pred: Tensor,
    target: Tensor,
    energy: Tensor,
    batch: Tensor | None = None,
    num_events: int | None = None,
    weighting: Weighting = "truth",
) -> PermutationResult:
    """Per-event minimum of the paper loss over assignments of predicted columns to showers.

    The minimum over all permutations of the mean over showers equals the minimum-cost
    assignment of the ``[K, K]`` cost matrix of :func:`pairwise_shower_loss`, solved exactly
    per event (Hungarian algorithm); for K = 2 this is the better of identity and swap.
    Absent showers (no signal hit) cost nothing, so their columns are free. The assignment is
    found without gradient; the returned loss is differentiable through the chosen entries, so
    it also serves as a training loss when the truth shower order carries no meaning.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[0.1, 0.9], [0.8, 0.2]]); t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> r = permutation_invariant_loss(p, t, torch.tensor([1.0, 1.0]))
    >>> r.perm.tolist(), round(float(r.loss), 4)
    ([[1, 0]], 0.025)
    >>> round(float(permutation_invariant_loss(p, t, torch.tensor([1.0, 1.0]),
    ...                                        weighting="energy").loss), 4)
    0.025
    """
    cost, valid = pairwise_shower_loss(pred, target, energy, batch, num_events, weighting)
    return _assigned(cost, valid, best_assignment(cost.detach(), valid))


def _assigned(cost: Tensor, valid: Tensor, perm: Tensor) -> PermutationResult:
    chosen = torch.gather(cost, 2, perm.unsqueeze(2)).squeeze(2)  # [B, K]
    ev = _event_mean(chosen, valid)
    has = valid.any(dim=1)
    loss = ev[has].mean() if bool(has.any()) else ev.new_zeros(())
    return PermutationResult(loss=loss, event_loss=ev, perm=perm)


def energy_order_assignment(
    target: Tensor, energy: Tensor, batch: Tensor | None = None, num_events: int | None = None
) -> Tensor:
    """Match predicted column j to the truth shower with the j-th largest energy in hits.

    Returns ``perm [B, K]`` as :func:`best_assignment` does (truth shower k -> predicted column
    ``perm[b, k]``): the rank of shower k by its truth energy in hits
    :math:`\\sum_i t_{ik} E_i`, largest first (ties keep the file's order).

    Examples
    --------
    >>> import torch
    >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> energy_order_assignment(t, torch.tensor([1.0, 2.0, 3.0])).tolist()
    [[1, 0]]
    """
    batch = check_hits(target, target, energy, batch)
    nb = count_events(batch, num_events)
    e_true = scatter(target * energy.clamp(min=0).unsqueeze(1), batch, dim=0, dim_size=nb)
    order = torch.argsort(-e_true, dim=1, stable=True)  # [B, K]: shower at each rank
    ranks = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, ranks)


def shower_overlap(
    target: Tensor, energy: Tensor, batch: Tensor | None = None, num_events: int | None = None
) -> Tensor:
    """How much the showers of each event overlap, from the truth: 0 apart, 1 on top of each other.

    :math:`O_b = \\sum_i (1 - \\max_k t_{ik}) E_i / E_{(2)}`, summed over the event's signal
    hits, where :math:`E_{(2)}` is the second-largest truth shower energy in hits: the share of
    the hit energy that does not go to each hit's main shower, relative to the smaller shower
    (for two showers, :math:`\\sum_i \\min(t_{i0}, t_{i1}) E_i / \\min(E_0, E_1)`). Returns
    ``[B]`` (0 for events with fewer than two showers). On calo's two-shower events the median
    is 0.71 for impact points less than 1 cm apart, 0.23 at 1-2 cm, 0.07 at 2-3 cm.

    Examples
    --------
    >>> import torch
    >>> t = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    >>> shower_overlap(t, torch.tensor([4.0, 2.0, 1.0])).tolist()
    [0.5]
    """
    batch = check_hits(target, target, energy, batch)
    nb = count_events(batch, num_events)
    e = signal_energy(target, energy)
    e_true = scatter(target * e.unsqueeze(1), batch, dim=0, dim_size=nb)  # [B, K]
    off_main = scatter((1.0 - target.max(dim=1).values) * e, batch, dim=0, dim_size=nb)
    if e_true.shape[1] < 2:
        return torch.zeros_like(off_main)
    second = e_true.topk(2, dim=1).values[:, 1]
    return torch.where(second > 0, off_main / second.clamp(min=1e-30), torch.zeros_like(second))


def energy_ordered_loss(
    pred: Tensor,
    target: Tensor,
    energy: Tensor,
    batch: Tensor | None = None,
    num_events: int | None = None,
    weighting: Weighting = "truth",
    min_overlap: float = -1.0,
) -> PermutationResult:
    """Paper loss with column j fixed to the j-th most energetic shower where showers overlap.

    A training loss (``loss.ordered_overlap``) for events whose showers overlap so much that
    the hits cannot tell them apart. There a permutation-invariant loss cannot say which column
    takes which share, and trained with it a GravNet splits such hits about evenly, which
    gives the smaller shower far too much energy (on 20,000 events, a mean response of 2.6 for
    5-10 GeV showers within 1 cm of a second one); with the columns ordered by truth energy the
    network is told that the leading shower takes the larger share. Events whose
    :func:`shower_overlap` is at most ``min_overlap`` keep the best assignment (default -1:
    every event is ordered). Evaluation stays permutation invariant.

    Measured (``benchmarks/results/quality_*_ordered``, 20,000 training events, CPU): with
    ``min_overlap=0.2`` a GravNet moved only part of the way (column 0 took 0.58 of the energy
    of events with overlap above 0.5, the leading shower has 0.67) and its response RMS did not
    improve (1.54x below the baseline's against 1.63x with the paper's loss at paper size,
    1.44x against 1.48x at calo-train's size); ordering every event (``min_overlap=0``) made
    the validation loss twice as high after 7 epochs (0.10 against 0.06), as the network must
    then also rank well separated showers of similar energy.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[0.1, 0.9], [0.8, 0.2]]); t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> r = energy_ordered_loss(p, t, torch.tensor([1.0, 3.0]))
    >>> r.perm.tolist(), round(float(r.loss), 4)
    ([[1, 0]], 0.025)
    >>> round(float(energy_ordered_loss(p, t, torch.tensor([3.0, 1.0])).loss), 4)
    0.725
    >>> round(float(energy_ordered_loss(p, t, torch.tensor([3.0, 1.0]), min_overlap=0.5).loss), 4)
    0.025
    """
    cost, valid = pairwise_shower_loss(pred, target, energy, batch, num_events, weighting)
    perm = energy_order_assignment(target, energy, batch, num_events)
    if min_overlap >= 0.0:
        ordered = shower_overlap(target, energy, batch, num_events) > min_overlap
        perm = torch.where(ordered.unsqueeze(1), perm, best_assignment(cost.detach(), valid))
    return _assigned(cost, valid, perm)


def energy_share_loss(
    pred: Tensor,
    target: Tensor,
    energy: Tensor,
    perm: Tensor,
    batch: Tensor | None = None,
    num_events: int | None = None,
) -> Tensor:
    """Event-level term: squared error of each shower's share of the event's signal energy.

    With :math:`s_{bk} = \\sum_i t_{ik} E_i / \\sum_i E_i` and :math:`\\hat s_{bk}` the same
    with the prediction matched to shower k by ``perm`` (for example the
    :func:`permutation_invariant_loss` assignment), returns the mean over events with signal of
    :math:`\\sum_k (\\hat s_{bk} - s_{bk})^2` (differentiable; ``loss.share_weight`` adds it
    to the training loss). Unlike the hit-level loss it rewards a split whose energy sums are
    right even where the hits cannot say which shower each belongs to: for two showers on top of
    each other an even split of every hit costs :math:`2 (s_1 - 1/2)^2`, the true shares
    nothing.

    Examples
    --------
    >>> import torch
    >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0]]); e = torch.tensor([3.0, 1.0])
    >>> perm = torch.tensor([[0, 1]])
    >>> float(energy_share_loss(torch.full((2, 2), 0.5), t, e, perm))
    0.125
    >>> float(energy_share_loss(t, t, e, perm))
    0.0
    """
    batch = check_hits(pred, target, energy, batch)
    true = event_energy_shares(target, target, energy, batch, num_events)
    given = event_energy_shares(
        align_predictions(pred, perm, batch), target, energy, batch, num_events
    )
    has = true.sum(dim=1) > 0
    if not bool(has.any()):
        return pred.sum() * 0.0
    return ((given - true) ** 2).sum(dim=1)[has].mean()


def best_assignment(cost: Tensor, valid: Tensor) -> Tensor:
    """Minimum-cost assignment per event of the ``[B, K, K]`` cost of :func:`pairwise_shower_loss`.

    Returns ``perm [B, K]`` (truth shower k -> predicted column ``perm[b, k]``). K = 2 is
    vectorised (identity or swap; ties keep the identity); larger K uses scipy's Hungarian solver.

    Examples
    --------
    >>> import torch
    >>> c = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    >>> best_assignment(c, torch.ones(1, 2, dtype=torch.bool)).tolist()
    [[1, 0]]
    """
    cost = torch.where(valid.unsqueeze(2), cost, torch.zeros_like(cost))
    nb, k = cost.shape[0], cost.shape[1]
    if k == 2:
        ident = cost[:, 0, 0] + cost[:, 1, 1]
        swap = cost[:, 0, 1] + cost[:, 1, 0]
        s = (swap < ident).long()
        return torch.stack([s, 1 - s], dim=1)
    c = cost.double().cpu().numpy()
    perm = np.empty((nb, k), dtype=np.int64)
    for b in range(nb):
        rows, cols = linear_sum_assignment(c[b])
        perm[b, rows] = cols
    return torch.as_tensor(perm, device=cost.device)


def align_predictions(pred: Tensor, perm: Tensor, batch: Tensor | None = None) -> Tensor:
    """Reorder predicted columns so that column k belongs to truth shower k.

    Parameters
    ----------
    pred:
        ``[N, K]`` predictions.
    perm:
        ``[B, K]`` from :func:`permutation_invariant_loss`.
    batch:
        ``[N]`` event index (``None``: one event).

    Examples
    --------
    >>> import torch
    >>> align_predictions(torch.tensor([[0.1, 0.9]]), torch.tensor([[1, 0]])).tolist()
    [[0.8999999761581421, 0.10000000149011612]]
    """
    if batch is None:
        batch = torch.zeros(pred.shape[0], dtype=torch.long, device=pred.device)
    return torch.gather(pred, 1, perm[batch])
