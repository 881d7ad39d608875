"""The paper's architectures for per-hit shower energy fractions, built from :mod:`calo.nn`.

:class:`GravNetModel`, :class:`GarNetModel` and :class:`DGCNNModel` map a torch_geometric
batch (``x [N, F]``, ``batch [N]``) to fractions ``[N, K]`` that sum to one per hit;
:func:`build_model` makes one from a :class:`ModelConfig`. :class:`CondensationModel` puts an
object-condensation head on the same backbones (their ``features`` method).

Examples
--------
>>> import torch
>>> from calo.models import ModelConfig, build_model
>>> model = build_model(ModelConfig(name="garnet", n_showers=3))
>>> model(torch.randn(6, 7), torch.tensor([0, 0, 0, 1, 1, 1])).shape
torch.Size([6, 3])
"""

from __future__ import annotations

from torch import nn

from calo.models.condensation import CondensationHead, CondensationModel, CondensationOutput
from calo.models.config import (
    CondensationHeadConfig,
    EdgeConvModelConfig,
    GarNetModelConfig,
    GravNetModelConfig,
    ModelConfig,
)
from calo.models.dgcnn import DGCNNModel
from calo.models.garnet import GarNetModel
from calo.models.gravnet import GravNetModel

__all__ = [
    "CondensationHead",
    "CondensationHeadConfig",
    "CondensationModel",
    "CondensationOutput",
    "DGCNNModel",
    "EdgeConvModelConfig",
    "GarNetModel",
    "GarNetModelConfig",
    "GravNetModel",
    "GravNetModelConfig",
    "ModelConfig",
    "build_model",
    "count_parameters",
]


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the architecture named by ``config.name`` with its sizes.

    Examples
    --------
    >>> type(build_model(ModelConfig(name="edgeconv"))).__name__
    'DGCNNModel'
    """
    if config.name == "gravnet":
        return GravNetModel(config.in_features, config.n_showers, config.gravnet)
    if config.name == "garnet":
        return GarNetModel(config.in_features, config.n_showers, config.garnet)
    return DGCNNModel(config.in_features, config.n_showers, config.edgeconv)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Examples
    --------
    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
