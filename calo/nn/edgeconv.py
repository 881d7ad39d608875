"""Dynamic EdgeConv (Wang et al., DGCNN), the baseline of the GravNet paper.

The graph is rebuilt at every call from the k nearest neighbours of each hit in the current
feature space (within its event, the hit itself included, as torch_geometric's
``DynamicEdgeConv``), then torch_geometric's :class:`~torch_geometric.nn.conv.EdgeConv` applies

.. math::  y_i = \\max_{j \\in \\mathrm{kNN}_k(i)} h_\\Theta([\\, x_i \\,\\|\\, x_j - x_i \\,]) .

The graph comes from :func:`calo.nn.knn_graph`, so neither pyg-lib nor torch-cluster is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn
from torch_geometric.nn import EdgeConv

from calo.errors import ConfigError, DataError
from calo.nn.knn import Backend, knn_graph

__all__ = ["DynamicEdgeConv", "edge_mlp"]


def edge_mlp(
    in_channels: int,
    channels: Sequence[int] = (64, 64, 64),
    act: Callable[[], nn.Module] = nn.ReLU,
    last_act: bool = True,
) -> nn.Sequential:
    """The edge network ``h_Theta``: an MLP on ``[x_i, x_j - x_i]`` (``2 * in_channels`` inputs).

    Parameters
    ----------
    in_channels:
        Features per hit ``F``.
    channels:
        Widths of the layers (the paper's DGCNN uses ``(64, 64, 64)``).
    act:
        Factory of the activation placed after each layer.
    last_act:
        Whether the last layer also gets the activation.

    Examples
    --------
    >>> edge_mlp(3, (8, 4))
    Sequential(
      (0): Linear(in_features=6, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=4, bias=True)
      (3): ReLU()
    )
    """
    if not channels:
        raise ConfigError("edge_mlp needs at least one layer width")
    layers: list[nn.Module] = []
    width = 2 * in_channels
    for i, c in enumerate(channels):
        layers.append(nn.Linear(width, c))
        if last_act or i < len(channels) - 1:
            layers.append(act())
        width = c
    return nn.Sequential(*layers)


class DynamicEdgeConv(nn.Module):
    """EdgeConv on a kNN graph recomputed in feature space at every call.

    Parameters
    ----------
    nn:
        Edge network mapping ``[E, 2 F_in]`` to ``[E, F_out]`` (for example :func:`edge_mlp`).
    k:
        Neighbours per hit, the hit itself included.
    aggr:
        ``"max"`` (default), ``"mean"`` or ``"add"``.
    knn_backend:
        Backend of :func:`calo.nn.knn`.

    Shapes
    ------
    - input ``x``: ``[N, F_in]``; ``batch``: ``[N]`` sorted event index or ``None``
    - output: ``[N, F_out]``

    Examples
    --------
    >>> import torch
    >>> conv = DynamicEdgeConv(edge_mlp(16, (64, 64, 64)), k=40)
    >>> conv
    DynamicEdgeConv(nn=Sequential(6 modules), k=40, aggr='max')
    >>> conv(torch.randn(50, 16), torch.tensor([0] * 30 + [1] * 20)).shape
    torch.Size([50, 64])
    """

    def __init__(
        self,
        nn: Callable[[Tensor], Tensor],
        k: int,
        aggr: str = "max",
        knn_backend: Backend = "auto",
    ) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"DynamicEdgeConv: k must be a positive integer, got {k!r}")
        if aggr not in ("max", "mean", "add"):
            raise ConfigError(f"DynamicEdgeConv: aggr must be 'max', 'mean' or 'add', got {aggr!r}")
        self.conv = EdgeConv(nn, aggr=aggr)
        self.k = k
        self.aggr = aggr
        self.knn_backend = knn_backend

    @property
    def nn(self) -> Callable[[Tensor], Tensor]:
        """The edge network ``h_Theta``."""
        return self.conv.nn

    def reset_parameters(self) -> None:
        """Re-initialise the edge network.

        Examples
        --------
        >>> DynamicEdgeConv(edge_mlp(2, (4,)), k=3).reset_parameters()
        """
        self.conv.reset_parameters()

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        """Build the kNN graph of ``x`` per event and apply EdgeConv.

        Parameters
        ----------
        x:
            ``[N, F_in]`` hit features (also the kNN coordinates).
        batch:
            ``[N]`` sorted event index, or ``None`` for one event.

        Returns
        -------
        Tensor
            ``[N, F_out]``.

        Examples
        --------
        >>> import torch
        >>> conv = DynamicEdgeConv(edge_mlp(2, (4,)), k=3)
        >>> conv(torch.randn(7, 2)).shape
        torch.Size([7, 4])
        """
        if x.dim() != 2:
            raise DataError(f"DynamicEdgeConv expects x of shape [N, F], got {list(x.shape)}")
        edge_index = knn_graph(x, self.k, batch, loop=True, backend=self.knn_backend)
        return self.conv(x, edge_index)

    def __repr__(self) -> str:
        inner = self.conv.nn
        desc = (
            f"Sequential({len(inner)} modules)"
            if isinstance(inner, nn.Sequential)
            else inner.__class__.__name__
        )
        return f"{self.__class__.__name__}(nn={desc}, k={self.k}, aggr={self.aggr!r})"
