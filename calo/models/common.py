"""Pieces shared by the architectures: input unpacking, per-event mean, the output head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from calo.nn.knn import event_ids, is_exporting

__all__ = ["FractionHead", "concat_event_mean", "event_mean", "unpack_input"]


def unpack_input(data_or_x: object, batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Return ``(x [N, F], batch [N])`` from a torch_geometric batch or from ``(x, batch)``.

    Examples
    --------
    >>> x, b = unpack_input(torch.zeros(3, 2))
    >>> b.tolist()
    [0, 0, 0]
    """
    if isinstance(data_or_x, Tensor):
        x = data_or_x
    else:
        x = data_or_x.x
        if batch is None:
            batch = getattr(data_or_x, "batch", None)
    if batch is None:
        batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    return x, batch


def event_mean(x: Tensor, batch: Tensor) -> Tensor:
    """Per-event mean of ``x [N, F]`` broadcast back to the hits, ``[N, F]``.

    Examples
    --------
    >>> event_mean(torch.tensor([[1.0], [3.0], [5.0]]), torch.tensor([0, 0, 1])).tolist()
    [[2.0], [2.0], [5.0]]
    """
    if is_exporting():
        # no data-dependent number of events in a graph: sums into a buffer of N rows
        ev = event_ids(batch)
        total = torch.zeros_like(x).index_add(0, ev, x)
        count = torch.zeros_like(x[:, :1]).index_add(0, ev, torch.ones_like(x[:, :1]))
        return (total / count.clamp(min=1))[ev]
    nb = int(batch.max()) + 1 if batch.numel() else 0
    return scatter(x, batch, dim=0, dim_size=nb, reduce="mean")[batch]


def concat_event_mean(x: Tensor, batch: Tensor) -> Tensor:
    """``[x, mean_event(x)]``, shape ``[N, 2F]`` (the paper's global exchange).

    Examples
    --------
    >>> concat_event_mean(torch.tensor([[1.0], [3.0]]), torch.tensor([0, 0])).tolist()
    [[1.0, 2.0], [3.0, 2.0]]
    """
    return torch.cat([x, event_mean(x, batch)], dim=1)


class FractionHead(nn.Module):
    """Dense layers ending in a softmax over K showers: ``[N, F] -> [N, K]``.

    Hidden layer i is Linear(widths[i]) followed by ``activations[i]`` (``"relu"``, ``"tanh"``
    or ``"linear"``); the last layer is Linear(K) + softmax over the shower axis.

    Examples
    --------
    >>> head = FractionHead(8, (4, 3), ("relu", "linear"), 2)
    >>> head(torch.randn(5, 8)).sum(dim=1).allclose(torch.ones(5))
    True
    """

    def __init__(
        self, in_channels: int, widths: Sequence[int], activations: Sequence[str], n_showers: int
    ) -> None:
        super().__init__()
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity}
        layers: list[nn.Module] = []
        c = in_channels
        for w, a in zip(widths, activations, strict=True):
            layers += [nn.Linear(c, w), acts[a]()]
            c = w
        layers.append(nn.Linear(c, n_showers))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Fractions ``[N, K]`` that sum to one per hit."""
        return torch.softmax(self.net(x), dim=1)
