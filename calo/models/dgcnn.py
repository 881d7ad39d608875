"""The paper's DGCNN (EdgeConv) model for per-hit shower energy fractions.

Shapes: hits ``x [N, F]`` of B events (``batch [N]``) -> fractions ``[N, K]``.

.. math::

    h_0 = \\mathrm{Dense}(16)(x), \\qquad
    h'_i = \\max_{j \\in \\mathrm{kNN}_k(h_i)} \\mathrm{MLP}([h_i, h_j - h_i]) ,

with the k = 40 nearest neighbours recomputed in the current feature space before every
EdgeConv (within the hit's event, the hit itself included) and the edge MLP
[64, 64, 64] (ReLU), each EdgeConv followed by a BatchNorm over the hits (which the paper's
summary does not list: without it the model does not train). After each of the first
``n_blocks - 1`` EdgeConvs a global exchange
:math:`[h, \\bar h^{event}] \\to` Dense(64, relu); after the last one Dense(32, relu) ->
Dense(3) -> Dense(K) + softmax (docs/training.md). The convolution is
torch_geometric's :class:`~torch_geometric.nn.EdgeConv` on the graph of
:func:`calo.nn.knn_graph`.

Examples
--------
>>> import torch
>>> from calo.models import DGCNNModel
>>> from calo.models.config import EdgeConvModelConfig
>>> m = DGCNNModel(7, 3, EdgeConvModelConfig(n_blocks=2, k=3, edge_mlp=(8,)))
>>> m(torch.randn(10, 7), torch.tensor([0] * 5 + [1] * 5)).shape
torch.Size([10, 3])
"""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.nn import EdgeConv

from calo.models.common import FractionHead, concat_event_mean, unpack_input
from calo.models.config import EdgeConvModelConfig
from calo.nn import knn_graph

__all__ = ["DGCNNModel"]


class DGCNNModel(nn.Module):
    """Dynamic graph CNN of the paper's comparison with a K-shower softmax output.

    Parameters
    ----------
    in_features:
        Number of hit features F.
    n_showers:
        Number of output fractions K.
    config:
        Layer sizes (:class:`~calo.models.config.EdgeConvModelConfig`; paper defaults).

    Examples
    --------
    >>> m = DGCNNModel()
    >>> 85_000 < sum(p.numel() for p in m.parameters() if p.requires_grad) < 115_000
    True
    """

    def __init__(
        self, in_features: int = 7, n_showers: int = 2, config: EdgeConvModelConfig | None = None
    ) -> None:
        super().__init__()
        cfg = config or EdgeConvModelConfig()
        self.config = cfg
        self.in_features, self.n_showers = in_features, n_showers
        self.input = nn.Sequential(nn.Linear(in_features, cfg.input_dense), nn.ReLU())
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.exchange = nn.ModuleList()
        c = cfg.input_dense
        for b in range(cfg.n_blocks):
            layers: list[nn.Module] = []
            d_in = 2 * c
            for d in cfg.edge_mlp:
                layers += [nn.Linear(d_in, d), nn.ReLU()]
                d_in = d
            self.convs.append(EdgeConv(nn.Sequential(*layers), aggr="max"))
            c = d_in
            # without it the per-hit signal dies out through the blocks at initialisation (a
            # 16-fold smaller spread over hits after each block) and the model predicts one
            # constant split; DGCNN (Wang et al.) normalises its edge networks too
            self.norms.append(nn.BatchNorm1d(c))
            if b < cfg.n_blocks - 1:
                self.exchange.append(nn.Sequential(nn.Linear(2 * c, cfg.exchange), nn.ReLU()))
                c = cfg.exchange
        self.head = FractionHead(c, (cfg.head, cfg.bottleneck), ("relu", "linear"), n_showers)

    @property
    def feature_channels(self) -> int:
        """Width of :meth:`features` (the head's input)."""
        return self.config.edge_mlp[-1]  # the last block has no exchange layer

    def features(self, data_or_x: object, batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The backbone's per-hit features ``[N, feature_channels]`` and ``batch``: what the
        fraction head or a condensation head reads."""
        h, batch = unpack_input(data_or_x, batch)
        h = self.input(h)
        for b, conv in enumerate(self.convs):
            edge_index = knn_graph(h.detach(), self.config.k, batch, loop=True)
            h = self.norms[b](conv(h, edge_index))
            if b < len(self.exchange):
                h = self.exchange[b](concat_event_mean(h, batch))
        return h, batch

    def forward(self, data_or_x: object, batch: Tensor | None = None) -> Tensor:
        """Fractions ``[N, K]`` from a torch_geometric batch or from ``(x [N, F], batch [N])``."""
        return self.head(self.features(data_or_x, batch)[0])

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(in={self.in_features}, K={self.n_showers}, "
            f"blocks={c.n_blocks}, k={c.k}, edge_mlp={list(c.edge_mlp)}, exchange={c.exchange})"
        )
