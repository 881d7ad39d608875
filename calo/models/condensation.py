"""Object condensation on any backbone: the fraction models' per-hit features, a new head.

One backbone/head structure: :class:`CondensationModel` builds the backbone named by
:class:`~calo.models.config.ModelConfig` (GravNet, GarNet or DGCNN, the same classes as the
fraction models), drops its fraction head and reads the backbone's per-hit features
(``backbone.features``) with a :class:`CondensationHead`. Per hit it gives

.. math::

    \\beta_i = \\sigma(z_{i,0}), \\quad x_i = z_{i,1..D}, \\quad
    c_i = \\operatorname{softplus}(z_{i,D+1} + \\ln(e - 1)) \\;\\text{or}\\; \\exp(z_{i,D+1}),

and, with ``position``, an offset :math:`z_{i,D+2..D+3}` of the particle's impact point from
the hit (docs/condensation.md). Both forms of :math:`c` are 1 at a zero output.

Examples
--------
>>> import torch
>>> from calo.models import ModelConfig
>>> from calo.models.config import GravNetModelConfig
>>> m = CondensationModel(ModelConfig(in_features=7, gravnet=GravNetModelConfig(n_blocks=1, k=3)))
>>> out = m(torch.randn(10, 7), torch.tensor([0] * 5 + [1] * 5))
>>> out.beta.shape, out.coords.shape, out.correction.shape, out.position is None
(torch.Size([10]), torch.Size([10, 2]), torch.Size([10]), True)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from calo.models.config import CondensationHeadConfig, ModelConfig

__all__ = ["CondensationHead", "CondensationModel", "CondensationOutput"]

_SOFTPLUS_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_ONE) = 1


class CondensationOutput(NamedTuple):
    """Per-hit outputs of a condensation model.

    Attributes
    ----------
    beta:
        ``[N]`` condensation weight in (0, 1).
    coords:
        ``[N, D]`` clustering coordinates.
    correction:
        ``[N]`` energy correction factor (> 0).
    position:
        ``[N, 2]`` offset of the particle's impact point from the hit (x, y), in units of
        ``position_scale`` cm, or ``None`` without the position payload.
    """

    beta: Tensor
    coords: Tensor
    correction: Tensor
    position: Tensor | None


class CondensationHead(nn.Module):
    """Dense layers from per-hit features to beta, coordinates and payload.

    Examples
    --------
    >>> head = CondensationHead(8, CondensationHeadConfig(coord_dims=3, position=True))
    >>> out = head(torch.randn(4, 8))
    >>> out.coords.shape, out.position.shape, bool(((out.beta > 0) & (out.beta < 1)).all())
    (torch.Size([4, 3]), torch.Size([4, 2]), True)
    """

    def __init__(self, in_channels: int, config: CondensationHeadConfig | None = None) -> None:
        super().__init__()
        cfg = config or CondensationHeadConfig()
        self.config = cfg
        layers: list[nn.Module] = []
        c = in_channels
        for w in cfg.hidden:
            layers += [nn.Linear(c, w), nn.ReLU()]
            c = w
        n_out = 1 + cfg.coord_dims + 1 + (2 if cfg.position else 0)
        layers.append(nn.Linear(c, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> CondensationOutput:
        """:class:`CondensationOutput` of features ``h [N, F]``."""
        z = self.net(h)
        d = self.config.coord_dims
        raw = z[:, 1 + d]
        if self.config.correction == "exp":
            correction = torch.exp(raw.clamp(max=10.0))
        else:
            correction = nn.functional.softplus(raw + _SOFTPLUS_ONE)
        position = z[:, 2 + d : 4 + d] if self.config.position else None
        return CondensationOutput(torch.sigmoid(z[:, 0]), z[:, 1 : 1 + d], correction, position)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(hidden={list(c.hidden)}, D={c.coord_dims}, "
            f"correction={c.correction}, position={c.position})"
        )


class CondensationModel(nn.Module):
    """A backbone of :mod:`calo.models` with a :class:`CondensationHead` instead of fractions.

    Parameters
    ----------
    config:
        The backbone (``name`` and its sizes, ``in_features``) and the head
        (``config.condensation``); ``n_showers`` is not used.

    Examples
    --------
    >>> m = CondensationModel(ModelConfig(name="edgeconv"))
    >>> type(m.backbone).__name__, m.backbone.head is None
    ('DGCNNModel', True)
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        from calo.models import build_model

        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        self.backbone = build_model(cfg)
        self.backbone.head = None  # the fraction head is not used
        self.head = CondensationHead(self.backbone.feature_channels, cfg.condensation)

    def forward(self, data_or_x: object, batch: Tensor | None = None) -> CondensationOutput:
        """:class:`CondensationOutput` of a torch_geometric batch or ``(x [N, F], batch [N])``."""
        h, _ = self.backbone.features(data_or_x, batch)
        return self.head(h)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backbone!r}, {self.head!r})"
