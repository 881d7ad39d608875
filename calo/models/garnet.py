"""The paper's GarNet model for per-hit shower energy fractions.

Shapes: hits ``x [N, F]`` of B events (``batch [N]``) -> fractions ``[N, K]``.

.. math::

    h_0 = \\mathrm{Dense}(32, \\tanh)(x), \\qquad
    h_b = \\mathrm{BatchNorm}(\\tanh(\\mathrm{GarNet}_b(h_{b-1}))), \\quad b = 1 \\dots 11 ,

each GarNet with 4 aggregators, F_LR = 20 and F_out = 32 (:class:`calo.nn.GarNetConv`, the
paper's potential exp(-|d|), mean and max aggregation, ragged events); then
:math:`[h_1, \\dots, h_{11}] \\to` Dense(48, relu) :math:`\\to` Dense(3) :math:`\\to` Dense(K) +
softmax over the K showers (docs/training.md).

Examples
--------
>>> import torch
>>> from calo.models import GarNetModel
>>> from calo.models.config import GarNetModelConfig
>>> m = GarNetModel(7, 2, GarNetModelConfig(n_blocks=2))
>>> m(torch.randn(10, 7), torch.tensor([0] * 5 + [1] * 5)).shape
torch.Size([10, 2])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from calo.models.common import FractionHead, unpack_input
from calo.models.config import GarNetModelConfig
from calo.nn import GarNetConv

__all__ = ["GarNetModel"]


class GarNetModel(nn.Module):
    """GarNet architecture of Qasim et al. (2019) with a K-shower softmax output.

    Parameters
    ----------
    in_features:
        Number of hit features F.
    n_showers:
        Number of output fractions K.
    config:
        Layer sizes (:class:`~calo.models.config.GarNetModelConfig`; paper defaults).

    Examples
    --------
    >>> m = GarNetModel()
    >>> 85_000 < sum(p.numel() for p in m.parameters() if p.requires_grad) < 115_000
    True
    """

    def __init__(
        self, in_features: int = 7, n_showers: int = 2, config: GarNetModelConfig | None = None
    ) -> None:
        super().__init__()
        cfg = config or GarNetModelConfig()
        self.config = cfg
        self.in_features, self.n_showers = in_features, n_showers
        self.input = nn.Sequential(nn.Linear(in_features, cfg.input_dense), nn.Tanh())
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c = cfg.input_dense
        for _ in range(cfg.n_blocks):
            self.convs.append(
                GarNetConv(
                    c,
                    cfg.out_channels,
                    n_aggregators=cfg.n_aggregators,
                    n_propagate=cfg.propagate_dimensions,
                    potential=cfg.potential,
                    aggr=("mean",) if cfg.simplified else ("mean", "max"),
                    simplified=cfg.simplified,
                    mean_by=cfg.mean_by,
                    v_max=cfg.v_max if cfg.mean_by == "vmax" else None,
                )
            )
            self.norms.append(nn.BatchNorm1d(cfg.out_channels))
            c = cfg.out_channels
        self.head = FractionHead(
            cfg.n_blocks * cfg.out_channels,
            (cfg.head, cfg.bottleneck),
            ("relu", "linear"),
            n_showers,
        )

    @property
    def feature_channels(self) -> int:
        """Width of :meth:`features` (the head's input)."""
        return self.config.n_blocks * self.config.out_channels

    def features(self, data_or_x: object, batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The backbone's per-hit features ``[N, feature_channels]`` (the concatenated block
        outputs) and ``batch``: what a condensation head reads (:meth:`forward` applies the
        fraction head block by block instead, without forming the concatenation)."""
        h, batch = unpack_input(data_or_x, batch)
        h = self.input(h)
        outs = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = norm(torch.tanh(conv(h, batch)))
            outs.append(h)
        return torch.cat(outs, dim=1), batch

    def forward(self, data_or_x: object, batch: Tensor | None = None) -> Tensor:
        """Fractions ``[N, K]`` from a torch_geometric batch or from ``(x [N, F], batch [N])``."""
        h, batch = unpack_input(data_or_x, batch)
        h = self.input(h)
        # The head's first Dense acts on the concatenated block outputs; it is applied block by
        # block (its weight split by columns) so the [N, n_blocks * F_out] concatenation is
        # never formed.
        first = self.head.net[0]
        width = self.config.out_channels
        z = first.bias
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = norm(torch.tanh(conv(h, batch)))
            z = z + h @ first.weight[:, i * width : (i + 1) * width].T
        return torch.softmax(self.head.net[1:](z), dim=1)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(in={self.in_features}, K={self.n_showers}, "
            f"blocks={c.n_blocks}, A={c.n_aggregators}, F_LR={c.propagate_dimensions}, "
            f"F_out={c.out_channels})"
        )
