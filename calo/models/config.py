"""Configuration dataclasses of the paper's three architectures.

Every size of :class:`~calo.models.GravNetModel`, :class:`~calo.models.GarNetModel` and
:class:`~calo.models.DGCNNModel` is a field here; the defaults are the paper's
(docs/training.md), about 100k trainable parameters each for 7 input features and 2 showers.
:class:`ModelConfig` selects one of them and carries the numbers of inputs and showers.

Examples
--------
>>> from calo.config import apply_overrides
>>> cfg = apply_overrides(ModelConfig(), ["name=garnet", "garnet.n_blocks=3"])
>>> cfg.name, cfg.garnet.n_blocks
('garnet', 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from calo.errors import ConfigError

__all__ = [
    "CondensationHeadConfig",
    "EdgeConvModelConfig",
    "GarNetModelConfig",
    "GravNetModelConfig",
    "ModelConfig",
]


def _positive(obj: object, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        values = v if isinstance(v, list | tuple) else [v]
        if len(values) == 0 or any(not isinstance(x, int) or x <= 0 for x in values):
            raise ConfigError(
                f"model.{type(obj).__name__}.{n} must be a positive integer (or a non-empty "
                f"list of them); got {v!r}"
            )


def _check_potential(obj: GravNetModelConfig | GarNetModelConfig) -> None:
    from calo.nn.potentials import check_potential

    try:
        check_potential(obj.potential)
    except ConfigError as err:
        raise ConfigError(f"model.{type(obj).__name__}.potential: {err}") from None


@dataclass
class GravNetModelConfig:
    """Sizes of the GravNet model.

    ``n_blocks`` x [concat per-event mean -> Dense(d, tanh) for d in ``dense`` ->
    GravNet(S=``space_dimensions``, F_LR=``propagate_dimensions``, F_out=``out_channels``,
    k=``k``) -> BatchNorm]; concat of the block outputs -> Dense(``head``, relu) ->
    Dense(``bottleneck``, relu) -> Dense(K, softmax). ``potential`` weights the messages:
    ``exp10`` = exp(-10 d^2) (the reference code and torch_geometric), ``gauss`` = exp(-d^2)
    (the paper), ``exp_abs`` = exp(-|d|) (see :mod:`calo.nn.potentials`).

    Examples
    --------
    >>> GravNetModelConfig().k
    40
    >>> GravNetModelConfig(potential="gauss").potential
    'gauss'
    """

    n_blocks: int = 4
    dense: tuple[int, ...] = (64, 64, 64)
    space_dimensions: int = 4
    propagate_dimensions: int = 22
    out_channels: int = 48
    k: int = 40
    head: int = 128
    bottleneck: int = 3
    potential: Literal["exp10", "gauss", "exp_abs"] = "exp10"

    def __post_init__(self) -> None:
        self.dense = tuple(self.dense)
        _positive(self, *(f.name for f in fields(self) if f.name != "potential"))
        _check_potential(self)


#: GarNetModelConfig fields that are not layer sizes
_GARNET_OPTIONS = ("potential", "simplified", "mean_by")


@dataclass
class GarNetModelConfig:
    """Sizes of the GarNet model.

    Dense(``input_dense``, tanh) -> ``n_blocks`` x [GarNet(``n_aggregators``,
    F_LR=``propagate_dimensions``, F_out=``out_channels``) + BatchNorm] -> concat ->
    Dense(``head``, relu) -> Dense(``bottleneck``) -> Dense(K, softmax). ``potential``:
    ``exp_abs`` = exp(-|d|) (the paper), ``gauss`` = exp(-d^2) (hls4ml) or ``exp10``.

    The GarNet layers are the paper's (mean and max aggregation, output dense on the hit's
    features, the returned features and the edge weights, means over the event's hits). The
    form hls4ml's GarNet layer implements, which ``calo-export`` can turn into firmware inputs,
    is ``simplified=true`` (mean only, output dense on the returned features) with
    ``potential=gauss`` and ``mean_by=vmax`` (sums divided by a fixed ``v_max``, the hits per
    event the firmware takes, a power of two).

    Examples
    --------
    >>> GarNetModelConfig().n_blocks
    11
    >>> GarNetModelConfig(potential="exp_abs").potential
    'exp_abs'
    """

    input_dense: int = 32
    n_blocks: int = 11
    n_aggregators: int = 4
    propagate_dimensions: int = 20
    out_channels: int = 32
    head: int = 48
    bottleneck: int = 3
    potential: Literal["exp10", "gauss", "exp_abs"] = "exp_abs"
    simplified: bool = False
    mean_by: Literal["n", "vmax"] = "n"
    v_max: int = 128

    def __post_init__(self) -> None:
        _positive(self, *(f.name for f in fields(self) if f.name not in _GARNET_OPTIONS))
        _check_potential(self)
        if self.mean_by not in ("n", "vmax"):
            raise ConfigError(f"model.garnet.mean_by must be n or vmax, got {self.mean_by!r}")


@dataclass
class EdgeConvModelConfig:
    """Sizes of the DGCNN (EdgeConv) model.

    Dense(``input_dense``) -> ``n_blocks`` EdgeConv (k=``k``, edge MLP ``edge_mlp`` on
    (x_i, x_j - x_i), max aggregation, kNN in feature space); after every block but the last,
    concat per-event mean -> Dense(``exchange``); then Dense(``head``) -> Dense(``bottleneck``)
    -> Dense(K, softmax).

    Examples
    --------
    >>> EdgeConvModelConfig().edge_mlp
    (64, 64, 64)
    """

    input_dense: int = 16
    n_blocks: int = 4
    k: int = 40
    edge_mlp: tuple[int, ...] = (64, 64, 64)
    exchange: int = 64
    head: int = 32
    bottleneck: int = 3

    def __post_init__(self) -> None:
        self.edge_mlp = tuple(self.edge_mlp)
        _positive(self, *(f.name for f in fields(self)))


@dataclass
class CondensationHeadConfig:
    """The object-condensation head on a backbone (:class:`~calo.models.CondensationModel`).

    The backbone's per-hit features -> Dense(d, relu) for d in ``hidden`` -> Dense(1 + D + 1
    [+ 2]): the condensation weight beta = sigmoid(.), ``coord_dims`` (D) clustering
    coordinates, the energy correction factor (``correction``: ``softplus`` or ``exp``, both
    1 at a zero output) and, with ``position``, a 2-d offset of the particle's impact point
    from the hit (x, y) in units of ``position_scale`` cm.

    Examples
    --------
    >>> CondensationHeadConfig().coord_dims
    2
    """

    coord_dims: int = 2
    hidden: tuple[int, ...] = (64, 64)
    correction: Literal["softplus", "exp"] = "softplus"
    position: bool = False
    position_scale: float = 1.0

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        _positive(self, "coord_dims", "hidden")
        if self.correction not in ("softplus", "exp"):
            raise ConfigError(
                f"model.condensation.correction must be softplus or exp, got {self.correction!r}"
            )
        if not self.position_scale > 0:
            raise ConfigError(
                f"model.condensation.position_scale must be > 0, got {self.position_scale}"
            )


@dataclass
class ModelConfig:
    """Which architecture, its sizes, and the numbers of input features and showers.

    Attributes
    ----------
    name:
        ``"gravnet"``, ``"garnet"`` or ``"edgeconv"`` (the DGCNN).
    in_features:
        Number of hit features F of ``Data.x`` (set from the data by the trainer).
    n_showers:
        Number of output fractions K (set from the data by the trainer).
    condensation:
        The condensation head that replaces the fraction head for ``task=condensation``.

    Examples
    --------
    >>> ModelConfig().name
    'gravnet'
    """

    name: Literal["gravnet", "garnet", "edgeconv"] = "gravnet"
    in_features: int = 7
    n_showers: int = 2
    gravnet: GravNetModelConfig = field(default_factory=GravNetModelConfig)
    garnet: GarNetModelConfig = field(default_factory=GarNetModelConfig)
    edgeconv: EdgeConvModelConfig = field(default_factory=EdgeConvModelConfig)
    condensation: CondensationHeadConfig = field(default_factory=CondensationHeadConfig)

    def __post_init__(self) -> None:
        if self.name not in ("gravnet", "garnet", "edgeconv"):
            raise ConfigError(f"model.name must be gravnet, garnet or edgeconv; got {self.name!r}")
        _positive(self, "in_features", "n_showers")
