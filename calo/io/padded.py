"""Fixed-size view of a batch for the FPGA models: ``X [B, V_max, F]`` and ``n [B]``.

Hits are ordered by energy (descending) and the first ``n_b = min(N_b, V_max)`` slots of event
``b`` hold its hits; the rest is zero. Events with more than ``V_max`` hits are truncated by an
explicit policy, and what that removed is counted in a :class:`TruncationReport`.

Examples
--------
>>> import torch
>>> from torch_geometric.data import Data
>>> d = Data(x=torch.tensor([[1.0], [3.0], [2.0]]), energy=torch.tensor([1.0, 3.0, 2.0]))
>>> X, n, rep = to_padded([d], v_max=2)
>>> X[0, :, 0].tolist(), n.tolist(), rep.hits_dropped, rep.energy_dropped
([3.0, 2.0], [2], 1, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch_geometric.data import Batch, Data

from calo.errors import ConfigError, DataError

__all__ = ["TruncationReport", "to_padded"]


@dataclass
class TruncationReport:
    """What :func:`to_padded` cut away.

    Attributes
    ----------
    events:
        Events in the batch.
    events_truncated:
        Events with more than ``V_max`` hits.
    hits_total, hits_dropped:
        Hits in the batch, and hits left out.
    energy_total, energy_dropped:
        Summed hit energy in the batch, and the part left out (GeV).

    Examples
    --------
    >>> TruncationReport(2, 1, 10, 2, 5.0, 1.0).energy_fraction_dropped
    0.2
    """

    events: int
    events_truncated: int
    hits_total: int
    hits_dropped: int
    energy_total: float
    energy_dropped: float

    @property
    def energy_fraction_dropped(self) -> float:
        """``energy_dropped / energy_total`` (0 for an empty batch)."""
        return self.energy_dropped / self.energy_total if self.energy_total > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"truncated {self.events_truncated}/{self.events} events: dropped "
            f"{self.hits_dropped}/{self.hits_total} hits, {self.energy_dropped:.4g} GeV "
            f"({100 * self.energy_fraction_dropped:.3g}% of the energy)"
        )


def to_padded(
    data_list_or_batch: Sequence[Data] | Batch | Data,
    v_max: int,
    features: Sequence[int] | Callable[[Data], torch.Tensor] | None = None,
    sort_by_energy: bool = True,
    truncation: Literal["keep_highest", "keep_first", "error"] = "keep_highest",
) -> tuple[torch.Tensor, torch.Tensor, TruncationReport]:
    """Pack events into ``X [B, V_max, F]`` and ``n [B]`` (number of valid hits).

    Parameters
    ----------
    data_list_or_batch:
        A list of ``Data``, a ``Batch`` (from the DataLoader) or one ``Data``; each needs ``x``
        and ``energy``.
    v_max:
        Slots per event.
    features:
        ``None``: all columns of ``x``; a sequence of column indices of ``x``; or a callable
        that takes the batch and returns per-hit features ``[N, F]`` (for example the FPGA
        paper's seed-relative coordinates).
    sort_by_energy:
        Order the hits of each event by energy, most energetic first (otherwise keep the
        stored order).
    truncation:
        For events with more than ``v_max`` hits: ``"keep_highest"`` keeps the ``v_max`` most
        energetic hits, ``"keep_first"`` the first ``v_max`` in stored order, ``"error"``
        raises :class:`calo.errors.DataError`.

    Returns
    -------
    (X, n, TruncationReport)
        ``X`` float32 ``[B, V_max, F]`` with zeros after the ``n[b]`` valid hits; ``n`` int64.

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> ds = [Data(x=torch.ones(3, 2), energy=torch.ones(3)), Data(x=torch.ones(1, 2),
    ...       energy=torch.ones(1))]
    >>> X, n, rep = to_padded(ds, v_max=4, features=[1])
    >>> X.shape, n.tolist(), rep.events_truncated
    (torch.Size([2, 4, 1]), [3, 1], 0)
    """
    if v_max < 1:
        raise ConfigError(f"v_max must be positive, got {v_max}")
    if truncation not in ("keep_highest", "keep_first", "error"):
        raise ConfigError(
            f"invalid truncation {truncation!r}: choose 'keep_highest', 'keep_first' or 'error'"
        )
    if isinstance(data_list_or_batch, Batch):
        batch = data_list_or_batch
    elif isinstance(data_list_or_batch, Data):
        batch = Batch.from_data_list([data_list_or_batch])
    else:
        batch = Batch.from_data_list(list(data_list_or_batch))
    n_ev = int(batch.num_graphs)
    if callable(features):
        feat = features(batch)
    elif features is None:
        feat = batch.x
    else:
        feat = batch.x[:, list(features)]
    energy = batch.energy.to(torch.float64)
    b = batch.batch
    n_hit = feat.shape[0]
    if feat.shape[0] != energy.shape[0]:
        raise DataError(f"features have {feat.shape[0]} rows but there are {n_hit} hits")
    counts = torch.bincount(b, minlength=n_ev)
    starts = torch.cumsum(counts, 0) - counts

    def rank_by(order: torch.Tensor) -> torch.Tensor:
        """Position of each hit within its event in the given global order (grouped by event)."""
        r = torch.empty(n_hit, dtype=torch.long)
        r[order] = torch.arange(n_hit) - starts[b[order]]
        return r

    stored = torch.arange(n_hit)
    if sort_by_energy or truncation == "keep_highest":
        # sort by (event, -energy); stable so equal energies keep stored order
        by_e = torch.sort(-energy, stable=True).indices
        by_e = by_e[torch.sort(b[by_e], stable=True).indices]
    over = counts > v_max
    if truncation == "error" and bool(over.any()):
        i = int(torch.nonzero(over)[0])
        raise DataError(
            f"event {i} of the batch has {int(counts[i])} hits, more than v_max={v_max}; raise "
            "v_max or use truncation='keep_highest'",
            entry=i,
        )
    keep_rank = rank_by(by_e) if truncation == "keep_highest" else rank_by(stored)
    keep = keep_rank < v_max
    # slot of each kept hit: its rank among the kept hits in the output order
    out_order = by_e if sort_by_energy else stored
    out_order = out_order[keep[out_order]]
    kept_counts = torch.bincount(b[out_order], minlength=n_ev)
    kept_starts = torch.cumsum(kept_counts, 0) - kept_counts
    slot = torch.arange(out_order.numel()) - kept_starts[b[out_order]]

    X = torch.zeros(n_ev, v_max, feat.shape[1], dtype=torch.float32)
    X[b[out_order], slot] = feat[out_order].to(torch.float32)
    report = TruncationReport(
        events=n_ev,
        events_truncated=int(over.sum()),
        hits_total=n_hit,
        hits_dropped=int((~keep).sum()),
        energy_total=float(energy.sum()),
        energy_dropped=float(energy[~keep].sum()),
    )
    return X, kept_counts.to(torch.int64), report
