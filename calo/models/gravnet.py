"""The paper's GravNet model for per-hit shower energy fractions.

Shapes: hits ``x [N, F]`` of B events (``batch [N]``) -> fractions ``[N, K]``.

Block b (``n_blocks`` of them), input ``h_{b-1}`` (``h_0 = x``):

.. math::

    u = [h_{b-1}, \\overline{h_{b-1}}^{event}] \\to 3 \\times \\mathrm{Dense}(64, \\tanh)
    \\to \\tanh(\\mathrm{GravNet}(S=4, F_{LR}=22, F_{out}=48, k=40)) \\to \\mathrm{BatchNorm} = h_b ,

then :math:`[h_1, \\dots, h_B] \\to` Dense(128, relu) :math:`\\to` Dense(3, relu) :math:`\\to`
Dense(K) + softmax over the K showers (docs/training.md). The GravNet layer is
:class:`calo.nn.GravNetConv` (kNN within each event in the learned space S).

Examples
--------
>>> import torch
>>> from calo.models import GravNetModel
>>> from calo.models.config import GravNetModelConfig
>>> m = GravNetModel(7, 2, GravNetModelConfig(n_blocks=1, dense=(8,), k=3))
>>> m(torch.randn(10, 7), torch.tensor([0] * 5 + [1] * 5)).shape
torch.Size([10, 2])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from calo.models.common import FractionHead, concat_event_mean, unpack_input
from calo.models.config import GravNetModelConfig
from calo.nn import GravNetConv

__all__ = ["GravNetModel"]


class GravNetModel(nn.Module):
    """GravNet architecture of Qasim et al. (2019) with a K-shower softmax output.

    Parameters
    ----------
    in_features:
        Number of hit features F.
    n_showers:
        Number of output fractions K.
    config:
        Layer sizes (:class:`~calo.models.config.GravNetModelConfig`; paper defaults).

    Examples
    --------
    >>> m = GravNetModel()
    >>> 85_000 < sum(p.numel() for p in m.parameters() if p.requires_grad) < 115_000
    True
    """

    def __init__(
        self, in_features: int = 7, n_showers: int = 2, config: GravNetModelConfig | None = None
    ) -> None:
        super().__init__()
        cfg = config or GravNetModelConfig()
        self.config = cfg
        self.in_features, self.n_showers = in_features, n_showers
        self.dense = nn.ModuleList()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c = in_features
        for _ in range(cfg.n_blocks):
            layers: list[nn.Module] = []
            d_in = 2 * c
            for d in cfg.dense:
                layers += [nn.Linear(d_in, d), nn.Tanh()]
                d_in = d
            self.dense.append(nn.Sequential(*layers))
            self.convs.append(
                GravNetConv(
                    d_in,
                    cfg.out_channels,
                    space_dimensions=cfg.space_dimensions,
                    propagate_dimensions=cfg.propagate_dimensions,
                    k=cfg.k,
                    potential=cfg.potential,
                )
            )
            self.norms.append(nn.BatchNorm1d(cfg.out_channels))
            c = cfg.out_channels
        self.head = FractionHead(
            cfg.n_blocks * cfg.out_channels, (cfg.head, cfg.bottleneck), ("relu", "relu"), n_showers
        )

    @property
    def feature_channels(self) -> int:
        """Width of :meth:`features` (the head's input)."""
        return self.config.n_blocks * self.config.out_channels

    def features(self, data_or_x: object, batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The backbone's per-hit features ``[N, feature_channels]`` (the concatenated block
        outputs) and ``batch``: what the fraction head or a condensation head reads."""
        h, batch = unpack_input(data_or_x, batch)
        outs = []
        for dense, conv, norm in zip(self.dense, self.convs, self.norms, strict=True):
            h = dense(concat_event_mean(h, batch))
            h = norm(torch.tanh(conv(h, batch)))
            outs.append(h)
        return torch.cat(outs, dim=1), batch

    def forward(self, data_or_x: object, batch: Tensor | None = None) -> Tensor:
        """Fractions ``[N, K]`` from a torch_geometric batch or from ``(x [N, F], batch [N])``."""
        return self.head(self.features(data_or_x, batch)[0])

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(in={self.in_features}, K={self.n_showers}, "
            f"blocks={c.n_blocks}, dense={list(c.dense)}, S={c.space_dimensions}, "
            f"F_LR={c.propagate_dimensions}, F_out={c.out_channels}, k={c.k})"
        )
