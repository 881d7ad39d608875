"""Object condensation loss: any number of particles plus noise, in O(N K) memory.

Every hit i of an event carries a condensation weight :math:`\\beta_i \\in (0, 1)`, clustering
coordinates :math:`x_i` (a few dimensions) and, optionally, payload predictions. The truth says
which particle each hit belongs to, or that it is noise (``particle = -1``). With the charge

.. math::

    q_i = \\operatorname{arctanh}^2(\\min(\\beta_i, 1 - \\epsilon)) + q_{\\min}

(:data:`BETA_EPS` :math:`= \\epsilon = 10^{-4}`: :math:`\\beta` is clipped below 1 before
arctanh, so q stays below :math:`\\approx 24.52 + q_{\\min}` and finite; a clipped hit gets no
gradient through q) and the condensation point :math:`\\alpha_k` of particle k, the hit of k
with the largest :math:`\\beta` (largest q; on equal :math:`\\beta` the first hit), one event
with N hits, K particles and :math:`N_B` noise hits gives (docs/condensation.md)

.. math::

    L_{att} = \\frac{1}{N} \\sum_{i \\notin B} q_i q_{\\alpha_{k(i)}}
              \\lVert x_i - x_{\\alpha_{k(i)}} \\rVert^2, \\qquad
    L_{rep} = \\frac{1}{N} \\sum_i \\sum_{k \\ne k(i)} q_i q_{\\alpha_k}
              \\max(0, 1 - \\lVert x_i - x_{\\alpha_k} \\rVert),

    L_\\beta = \\frac{1}{K} \\sum_k (1 - \\beta_{\\alpha_k}), \\qquad
    L_{noise} = \\frac{1}{N_B} \\sum_{i \\in B} \\beta_i, \\qquad
    L_{pay} = \\frac{\\sum_i \\xi_i \\ell_i}{\\sum_i \\xi_i}, \\;
    \\xi_i = (1 - n_i) \\operatorname{arctanh}^2 \\beta_i,

and ``total`` :math:`= L_{att} + L_{rep} + L_\\beta + s_B L_{noise} + w_{pay} L_{pay}`. A term
whose normaliser is zero (no particle, no noise hit, no payload weight) is 0. A batch of
several events is the mean of the per-event losses over the events that have hits: each
event is normalised by its own N, K and :math:`N_B`, as in the paper.

``normalization="object"`` replaces the two potentials' :math:`1/N` by per-particle means,
the convention of the ``object_condensation`` package (1.1.0):
:math:`L_{att} = \\frac{1}{K} \\sum_k \\frac{1}{N_k} \\sum_{i \\in k} \\ldots` and
:math:`L_{rep} = \\frac{1}{K} \\sum_k \\frac{1}{N - N_k} \\sum_{i \\notin k} \\ldots`.

Memory. Nothing of size N x N is built: the attraction needs one distance per hit (to its own
particle's condensation point) and the repulsion one per (hit, particle of the same event)
pair, :math:`\\sum_b N_b K_b` pairs for a batch, listed without padding.

Examples
--------
>>> import torch
>>> beta = torch.tensor([0.9, 0.5, 0.8, 0.1])
>>> x = torch.tensor([[0.0], [0.5], [3.0], [0.2]])
>>> out = condensation_loss(beta, x, torch.tensor([0, 0, 1, -1]), q_min=0.1)
>>> round(float(out["beta"]), 4), round(float(out["noise"]), 4)
(0.15, 0.1)
>>> sorted(out)
['attractive', 'beta', 'noise', 'repulsive', 'total']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from calo.errors import ConfigError, DataError

__all__ = [
    "BETA_EPS",
    "NORMALIZATIONS",
    "Normalization",
    "ParticleIndex",
    "charge",
    "condensation_loss",
    "condensation_points",
    "energy_correction_loss",
    "index_particles",
    "sharing_loss",
]

#: beta is clipped to at most ``1 - BETA_EPS`` before arctanh (the loss and :func:`charge`).
BETA_EPS = 1e-4

#: How the attractive and repulsive potentials are normalised (see the module docstring).
Normalization = Literal["event", "object"]
NORMALIZATIONS: tuple[str, ...] = ("event", "object")


def charge(beta: Tensor, q_min: float, eps: float = BETA_EPS) -> Tensor:
    """The charge :math:`q = \\operatorname{arctanh}^2(\\min(\\beta, 1 - \\epsilon)) + q_{min}`.

    Examples
    --------
    >>> import torch
    >>> charge(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), q_min=0.1).round(decimals=3)
    tensor([ 0.1000,  0.4020, 24.6200], dtype=torch.float64)
    """
    b = beta.clamp(min=0.0, max=1.0 - eps)
    return torch.atanh(b) ** 2 + q_min


@dataclass(frozen=True)
class ParticleIndex:
    """The truth particles of a batch, numbered 0..K-1 without regard to their ids.

    Attributes
    ----------
    hit_object:
        ``[N]`` particle number of every hit, -1 for noise.
    object_event:
        ``[K]`` event of every particle; particles are ordered by event, then by id.
    object_count:
        ``[B]`` number of particles per event.
    hit_count:
        ``[B]`` number of hits per event.
    """

    hit_object: Tensor
    object_event: Tensor
    object_count: Tensor
    hit_count: Tensor

    @property
    def num_objects(self) -> int:
        """K, the number of particles in the batch."""
        return int(self.object_event.numel())


def _check(beta: Tensor, coords: Tensor, particle: Tensor, batch: Tensor | None) -> Tensor:
    n = beta.shape[0] if beta.dim() == 1 else -1
    if beta.dim() != 1:
        raise DataError(f"beta must have shape [N], got {tuple(beta.shape)}")
    if coords.dim() != 2 or coords.shape[0] != n:
        raise DataError(f"coords must have shape [N={n}, D], got {tuple(coords.shape)}")
    if particle.shape != (n,) or particle.dtype.is_floating_point or particle.dtype == torch.bool:
        raise DataError(
            f"particle must be an integer tensor of shape [N={n}] (-1 for noise), "
            f"got {particle.dtype} {tuple(particle.shape)}"
        )
    if n and int(particle.min()) < -1:
        raise DataError(f"particle ids must be >= 0, or -1 for noise; got {int(particle.min())}")
    if not torch.isfinite(beta).all() or not torch.isfinite(coords).all():
        raise DataError("beta and coords must be finite; check the network's output")
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=beta.device)
    if batch.shape != (n,) or batch.dtype.is_floating_point:
        raise DataError(f"batch must be an integer tensor of shape [N={n}], got {batch.shape}")
    if n and int(batch.min()) < 0:
        raise DataError(f"batch indices must be >= 0, got {int(batch.min())}")
    return batch.long()


def index_particles(
    particle: Tensor, batch: Tensor, num_events: int | None = None
) -> ParticleIndex:
    """Number the (event, particle id) pairs of a batch 0..K-1.

    The ids of one event are arbitrary non-negative integers (they need not be contiguous
    nor start at 0); the same id in two events is two particles.

    Examples
    --------
    >>> import torch
    >>> idx = index_particles(torch.tensor([7, -1, 3, 7, 3]), torch.tensor([0, 0, 0, 1, 1]))
    >>> idx.hit_object.tolist(), idx.object_event.tolist(), idx.object_count.tolist()
    ([1, -1, 0, 3, 2], [0, 0, 1, 1], [2, 2])
    """
    particle = particle.long()
    nb = (int(batch.max()) + 1 if batch.numel() else 0) if num_events is None else num_events
    valid = particle >= 0
    span = int(particle.max()) + 1 if valid.any() else 1
    key = batch[valid] * span + particle[valid]
    uniq, inv = torch.unique(key, return_inverse=True)
    hit_object = torch.full_like(particle, -1)
    hit_object[valid] = inv
    object_event = uniq // span
    return ParticleIndex(
        hit_object=hit_object,
        object_event=object_event,
        object_count=torch.bincount(object_event, minlength=nb),
        hit_count=torch.bincount(batch, minlength=nb),
    )


def condensation_points(beta: Tensor, hit_object: Tensor, num_objects: int) -> Tensor:
    """``[K]`` index of every particle's condensation point: its hit with the largest beta
    (the first such hit on a tie).

    Examples
    --------
    >>> import torch
    >>> condensation_points(torch.tensor([0.2, 0.9, 0.9, 0.4]), torch.tensor([0, 0, 0, 1]), 2)
    tensor([1, 3])
    """
    b = beta.detach()
    valid = hit_object >= 0
    obj = hit_object[valid]
    hits = torch.nonzero(valid).squeeze(1)
    best = torch.full((num_objects,), -torch.inf, dtype=b.dtype, device=b.device)
    best = best.scatter_reduce(0, obj, b[valid], reduce="amax")
    cand = torch.where(b[valid] == best[obj], hits, torch.full_like(hits, beta.shape[0]))
    first = torch.full((num_objects,), beta.shape[0], dtype=torch.long, device=b.device)
    return first.scatter_reduce(0, obj, cand, reduce="amin")


def _distance(diff: Tensor) -> Tensor:
    """Euclidean norm over the last axis with gradient 0 (not NaN) at zero distance."""
    d2 = (diff * diff).sum(dim=-1)
    pos = d2 > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, d2, torch.ones_like(d2))), 0.0)


def _event_pairs(idx: ParticleIndex, batch: Tensor) -> tuple[Tensor, Tensor]:
    """Every (hit, particle of the hit's event) pair, as two index lists."""
    dev = batch.device
    n = batch.numel()
    first_object = torch.cumsum(idx.object_count, 0) - idx.object_count  # [B]
    per_hit = idx.object_count[batch]  # [N]
    pair_hit = torch.repeat_interleave(torch.arange(n, device=dev), per_hit)
    start = torch.cumsum(per_hit, 0) - per_hit
    pos = torch.arange(pair_hit.numel(), device=dev) - start[pair_hit]
    return pair_hit, first_object[batch[pair_hit]] + pos


def _repulsive_pairs(idx: ParticleIndex, batch: Tensor) -> tuple[Tensor, Tensor]:
    """Every (hit, particle of the hit's event other than its own) pair, as two index lists."""
    pair_hit, pair_obj = _event_pairs(idx, batch)
    other = pair_obj != idx.hit_object[pair_hit]
    return pair_hit[other], pair_obj[other]


def _segment_sum(values: Tensor, index: Tensor, size: int) -> Tensor:
    out = torch.zeros(size, dtype=values.dtype, device=values.device)
    return out.index_add(0, index, values)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den > 0``, else 0."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), 0.0)


def condensation_loss(
    beta: Tensor,
    coords: Tensor,
    particle: Tensor,
    batch: Tensor | None = None,
    *,
    q_min: float = 0.1,
    s_b: float = 1.0,
    normalization: Normalization = "event",
    payload: Tensor | None = None,
    payload_weight: float = 1.0,
    num_events: int | None = None,
) -> dict[str, Tensor]:
    """Object condensation loss terms of a batch (see the module docstring for the formulas).

    Parameters
    ----------
    beta:
        ``[N]`` condensation weights in [0, 1] (a sigmoid output).
    coords:
        ``[N, D]`` clustering coordinates.
    particle:
        ``[N]`` integer truth particle id of every hit within its event, -1 for noise. Ids are
        arbitrary (renumbering them does not change the loss).
    batch:
        ``[N]`` event index of every hit (``None``: one event). Need not be sorted.
    q_min:
        Minimum charge :math:`q_{min} > 0`.
    s_b:
        Weight :math:`s_B` of the noise term in ``total``.
    normalization:
        ``"event"`` (the paper: potentials divided by the event's N) or ``"object"`` (per
        particle, as the ``object_condensation`` package).
    payload:
        Optional ``[N]`` per-hit payload losses :math:`\\ell_i` (for example
        :func:`energy_correction_loss`); averaged with weights :math:`\\xi_i`.
    payload_weight:
        Weight of the payload term in ``total``.
    num_events:
        Number of events B (default ``batch.max() + 1``); events without hits are left out.

    Returns
    -------
    dict of scalar tensors
        ``attractive``, ``repulsive``, ``beta``, ``noise``, ``payload`` (only if given) and
        ``total``, each the mean over the events that have hits.

    Raises
    ------
    DataError
        On wrong shapes or dtypes, ids below -1 or non-finite inputs.
    ConfigError
        On an unknown normalisation or ``q_min <= 0``.

    Examples
    --------
    Two particles far apart, each condensed on its own point: only the beta terms remain.

    >>> import torch
    >>> beta = torch.tensor([0.9, 0.9, 0.2])
    >>> x = torch.tensor([[0.0, 0.0], [5.0, 0.0], [9.0, 9.0]])
    >>> out = condensation_loss(beta, x, torch.tensor([0, 1, -1]), s_b=0.5)
    >>> [round(float(out[k]), 4) for k in ("attractive", "repulsive", "beta", "total")]
    [0.0, 0.0, 0.1, 0.2]
    """
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if not q_min > 0:
        raise ConfigError(f"q_min must be > 0, got {q_min}")
    batch = _check(beta, coords, particle, batch)
    n = beta.shape[0]
    if payload is not None and payload.shape != (n,):
        raise DataError(f"payload must have shape [N={n}], got {tuple(payload.shape)}")
    idx = index_particles(particle, batch, num_events)
    nb = idx.hit_count.numel()
    k_all = idx.num_objects
    dtype = coords.dtype
    hit_count = idx.hit_count.to(dtype)
    q = charge(beta, q_min)
    alpha = condensation_points(beta, idx.hit_object, k_all)  # [K]
    x_a, q_a = coords[alpha], q[alpha]
    signal = idx.hit_object >= 0
    obj = idx.hit_object[signal]

    # attraction: one distance per signal hit, to its own condensation point
    d2_own = ((coords[signal] - x_a[obj]) ** 2).sum(dim=1)
    att = q[signal] * q_a[obj] * d2_own
    # repulsion: one distance per (hit, other particle of the same event)
    pair_hit, pair_obj = _repulsive_pairs(idx, batch)
    d_rep = _distance(coords[pair_hit] - x_a[pair_obj])
    rep = q[pair_hit] * q_a[pair_obj] * torch.relu(1.0 - d_rep)

    if normalization == "event":
        l_att = _safe_div(_segment_sum(att, batch[signal], nb), hit_count)
        l_rep = _safe_div(_segment_sum(rep, batch[pair_hit], nb), hit_count)
    else:
        n_k = torch.bincount(obj, minlength=k_all).to(dtype)
        n_other = hit_count[idx.object_event] - n_k
        att_k = _safe_div(_segment_sum(att, obj, k_all), n_k)
        rep_k = _safe_div(_segment_sum(rep, pair_obj, k_all), n_other)
        count = idx.object_count.to(dtype)
        l_att = _safe_div(_segment_sum(att_k, idx.object_event, nb), count)
        l_rep = _safe_div(_segment_sum(rep_k, idx.object_event, nb), count)

    l_beta = _safe_div(
        _segment_sum(1.0 - beta[alpha], idx.object_event, nb), idx.object_count.to(dtype)
    )
    noise = ~signal
    n_noise = torch.bincount(batch[noise], minlength=nb).to(dtype)
    l_noise = _safe_div(_segment_sum(beta[noise], batch[noise], nb), n_noise)
    per_event = {"attractive": l_att, "repulsive": l_rep, "beta": l_beta, "noise": l_noise}
    if payload is not None:
        xi = torch.where(signal, torch.atanh(beta.clamp(0.0, 1.0 - BETA_EPS)) ** 2, 0.0)
        per_event["payload"] = _safe_div(
            _segment_sum(xi * payload, batch, nb), _segment_sum(xi, batch, nb)
        )

    present = idx.hit_count > 0
    n_present = present.sum().clamp(min=1).to(dtype)
    out = {k: (v * present).sum() / n_present for k, v in per_event.items()}
    total = out["attractive"] + out["repulsive"] + out["beta"] + s_b * out["noise"]
    if payload is not None:
        total = total + payload_weight * out["payload"]
    out["total"] = total
    return out


def energy_correction_loss(
    correction: Tensor,
    hit_energy: Tensor,
    particle: Tensor,
    true_energy: Tensor,
    batch: Tensor | None = None,
    fractions: Tensor | None = None,
) -> Tensor:
    """Per-hit payload loss of a learned energy correction factor.

    Hit i of particle k predicts the particle's energy as :math:`c_i S_k`, where
    :math:`S_k` is the summed energy of the hits the truth gives to k (at inference the
    predicted cluster's hits take their place) or, with ``fractions``, the particle's share
    :math:`S_k = \\sum_i y_{ik} E_i` of the hits' energies (at inference the shared cluster
    energy of :func:`calo.reco.condensation.shared_cluster_energies`); the loss is the
    squared relative error

    .. math::

        \\ell_i = \\left(\\frac{c_i S_{k(i)}}{E_{k(i)}} - 1\\right)^2,

    0 on noise hits and where :math:`E_k \\le 0`. Pass it as ``payload`` to
    :func:`condensation_loss`.

    Parameters
    ----------
    correction:
        ``[N]`` predicted correction factor :math:`c_i`.
    hit_energy:
        ``[N]`` deposited energy of every hit.
    particle:
        ``[N]`` truth particle id (-1 noise), as in :func:`condensation_loss`.
    true_energy:
        ``[N]`` true energy :math:`E_{k(i)}` of each hit's particle (ignored on noise).
    batch:
        ``[N]`` event index (``None``: one event).
    fractions:
        Optional ``[N, P]`` truth energy fractions :math:`y_{ik}`, column = particle id.

    Examples
    --------
    >>> import torch
    >>> loss = energy_correction_loss(
    ...     torch.tensor([1.25, 1.0, 2.0]), torch.tensor([3.0, 5.0, 1.0]),
    ...     torch.tensor([0, 0, -1]), torch.tensor([10.0, 10.0, 0.0]))
    >>> [round(v, 4) for v in loss.tolist()]
    [0.0, 0.04, 0.0]
    """
    batch = _check(correction, hit_energy.unsqueeze(1), particle, batch)
    if true_energy.shape != correction.shape:
        raise DataError(f"true_energy must have shape [N], got {tuple(true_energy.shape)}")
    idx = index_particles(particle, batch)
    signal = idx.hit_object >= 0
    obj = idx.hit_object[signal]
    if fractions is None:
        summed = _segment_sum(hit_energy[signal], obj, idx.num_objects)
    else:
        _check_fractions(fractions, particle)
        obj_id = torch.zeros(idx.num_objects, dtype=torch.long, device=particle.device)
        obj_id[obj] = particle[signal].long()
        by_event = torch.zeros(
            idx.hit_count.numel(), fractions.shape[1], dtype=hit_energy.dtype,
            device=hit_energy.device,
        ).index_add(0, batch, fractions.to(hit_energy.dtype) * hit_energy.unsqueeze(1))  # fmt: skip
        summed = by_event[idx.object_event, obj_id]
    out = torch.zeros_like(correction)
    e_true = true_energy[signal]
    ok = e_true > 0
    ratio = correction[signal] * summed[obj] / torch.where(ok, e_true, torch.ones_like(e_true))
    out[signal] = torch.where(ok, (ratio - 1.0) ** 2, 0.0)
    return out


def _check_fractions(fractions: Tensor, particle: Tensor) -> None:
    n = particle.shape[0]
    if fractions.dim() != 2 or fractions.shape[0] != n:
        raise DataError(f"fractions must have shape [N={n}, P], got {tuple(fractions.shape)}")
    if n and int(particle.max()) >= fractions.shape[1]:
        raise DataError(
            f"particle id {int(particle.max())} has no column in fractions of shape "
            f"{tuple(fractions.shape)}"
        )
    if not torch.isfinite(fractions).all():
        raise DataError("fractions must be finite")


def sharing_loss(
    beta: Tensor,
    coords: Tensor,
    particle: Tensor,
    fractions: Tensor,
    energy: Tensor,
    batch: Tensor | None = None,
    sigma: float = 0.3,
    num_events: int | None = None,
) -> Tensor:
    """Energy-sharing loss: the clustering space's softmax fractions against the truth.

    For every signal hit i and particle k of its event the predicted fraction is the softmax
    :math:`p_{ik} \\propto \\exp(-\\lVert x_i - x_{\\alpha_k} \\rVert^2 / 2\\sigma^2)`
    over the event's condensation points (:func:`condensation_points`), the fractions that
    :func:`calo.reco.condensation.sharing_fractions` uses at inference. The truth is
    :math:`t_{ik} = y_{ik} / \\sum_{k'} y_{ik'}` over the event's particles (the hit's share of
    background and noise left out). Per event

    .. math::

        L_{share} = \\frac{\\sum_{i \\notin B} E_i \\sum_k t_{ik}
                               (\\log t_{ik} - \\log p_{ik})}
                         {\\sum_{i \\notin B} E_i},

    the energy-weighted Kullback-Leibler divergence of the predicted from the true fractions
    (0 when they agree), averaged over the events with signal energy. Unlike a squared error
    its gradient with respect to the distances does not vanish where the softmax saturates: a
    shared hit that the attraction has pulled onto one condensation point (:math:`p \\approx 1`)
    is still pushed towards its place between them. Memory is O(N K): one distance per (hit,
    particle of its event) pair.

    Parameters
    ----------
    beta, coords, particle, batch, num_events:
        As in :func:`condensation_loss`.
    fractions:
        ``[N, P]`` truth energy fractions :math:`y_{ik}`; column = particle id.
    energy:
        ``[N]`` hit energies (the weights; negative ones count as 0).
    sigma:
        Width of the softmax, the ``share_sigma`` of the clustering.

    Examples
    --------
    A hit shared equally between two particles, placed halfway between their condensation
    points, costs nothing (the 0.002 is the other points' tails on the unshared hits); moved
    onto one of them, it costs about 0.5 log(0.5 / 0.004) times its share of the energy.

    >>> import torch
    >>> beta = torch.tensor([0.9, 0.1, 0.9])
    >>> y = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    >>> e = torch.tensor([1.0, 2.0, 1.0])
    >>> part = torch.tensor([0, 0, 1])
    >>> round(float(sharing_loss(beta, torch.tensor([[0.0], [0.5], [1.0]]), part, y, e)), 4)
    0.0019
    >>> round(float(sharing_loss(beta, torch.tensor([[0.0], [0.0], [1.0]]), part, y, e)), 3)
    1.046
    """
    if not sigma > 0:
        raise ConfigError(f"sigma must be > 0, got {sigma}")
    batch = _check(beta, coords, particle, batch)
    _check_fractions(fractions, particle)
    n = beta.shape[0]
    if energy.shape != (n,):
        raise DataError(f"energy must have shape [N={n}], got {tuple(energy.shape)}")
    idx = index_particles(particle, batch, num_events)
    nb = idx.hit_count.numel()
    alpha = condensation_points(beta, idx.hit_object, idx.num_objects)
    pair_hit, pair_obj = _event_pairs(idx, batch)
    keep = idx.hit_object[pair_hit] >= 0
    pair_hit, pair_obj = pair_hit[keep], pair_obj[keep]
    logit = -((coords[pair_hit] - coords[alpha[pair_obj]]) ** 2).sum(dim=1) / (2.0 * sigma**2)
    top = torch.full((n,), -torch.inf, dtype=logit.dtype, device=logit.device)
    top = top.scatter_reduce(0, pair_hit, logit.detach(), reduce="amax")
    shifted = logit - top[pair_hit]
    log_p = shifted - torch.log(_segment_sum(torch.exp(shifted), pair_hit, n))[pair_hit]
    t = fractions.to(logit.dtype)[pair_hit, particle[alpha[pair_obj]]].clamp(min=0.0)
    t = _safe_div(t, _segment_sum(t, pair_hit, n)[pair_hit])
    log_t = torch.log(torch.where(t > 0, t, torch.ones_like(t)))
    per_hit = _segment_sum(torch.where(t > 0, t * (log_t - log_p), 0.0), pair_hit, n)
    signal = idx.hit_object >= 0
    weight = torch.where(signal, energy.to(logit.dtype).clamp(min=0.0), 0.0)
    per_event = _safe_div(
        _segment_sum(weight * per_hit, batch, nb), _segment_sum(weight, batch, nb)
    )
    present = _segment_sum(weight, batch, nb) > 0
    return (per_event * present).sum() / present.sum().clamp(min=1)
