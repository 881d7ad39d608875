"""Configuration of the reconstruction: the classical baseline's shower profile and the share
calibration.

Each is a dataclass whose ``__post_init__`` checks its values (a
:class:`~calo.errors.ConfigError` names the key); :class:`calo.train.config.TrainConfig` nests
them as ``baseline`` and ``calibration``.

Examples
--------
>>> BaselineConfig().radius, CalibrationConfig().refine_iterations
(1.0, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

from calo.errors import ConfigError

__all__ = [
    "BaselineConfig",
    "CalibrationConfig",
    "ClueConfig",
    "CondensationConfig",
    "MatchingConfig",
]


@dataclass
class BaselineConfig:
    """Parameters of the classical baseline.

    Attributes
    ----------
    radius:
        Core radius R (cm) of the transverse profile.
    min_seed_distance:
        Minimum transverse distance (cm) between seeds.
    iterations:
        Number of sharing/update iterations.
    slope_damping:
        Ridge term (cm^2 of depth spread) that damps the fitted axis slope.

    Examples
    --------
    >>> BaselineConfig(radius=2.0).radius
    2.0
    """

    radius: float = 1.0
    min_seed_distance: float = 1.5
    iterations: int = 10
    slope_damping: float = 25.0

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ConfigError(f"baseline.radius must be > 0, got {self.radius}")
        if self.min_seed_distance < 0:
            raise ConfigError(
                f"baseline.min_seed_distance must be >= 0, got {self.min_seed_distance}"
            )
        if self.iterations < 0:
            raise ConfigError(f"baseline.iterations must be >= 0, got {self.iterations}")
        if self.slope_damping < 0:
            raise ConfigError(f"baseline.slope_damping must be >= 0, got {self.slope_damping}")


@dataclass
class CalibrationConfig:
    """The share calibration that calo-train fits after training (two-shower data only;
    :mod:`calo.reco.calibration`).

    Attributes
    ----------
    enabled:
        Fit it on the training events, write ``share_calibration.json`` into the run folder
        and report the calibrated model as the method ``"calibrated"`` next to the model and
        the baseline (calo-evaluate applies the run's calibration too).
    share_bins:
        Uniform bins of the smaller column's predicted share on [0, 0.5].
    sharpness_bins:
        Bins (quantiles of the training events) of the split's sharpness.
    energy_bins:
        Bins (quantiles) of the event energy; 0 chooses one per 800 training events, at
        most 8.
    min_events:
        Training events a bin needs to be calibrated.
    min_gain:
        Relative gain in the squared response error a bin's share must bring over the model's
        own split to replace it.
    refine_iterations:
        Iterations of the profile refinement before the share calibration, reported as the
        method ``"refined"`` (calo.reco.baseline.refine_fractions: the baseline's shower
        profile with the axes and amplitudes fitted to the model's split instead of grown
        from seeds, with ``baseline.radius`` and ``baseline.slope_damping``); 0 leaves it out.

    Examples
    --------
    >>> CalibrationConfig().enabled
    True
    >>> CalibrationConfig(share_bins=0)
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: calibration.share_bins must be >= 1, got 0
    """

    enabled: bool = True
    share_bins: int = 5
    sharpness_bins: int = 10
    energy_bins: int = 0
    min_events: int = 20
    min_gain: float = 0.05
    refine_iterations: int = 2

    def __post_init__(self) -> None:
        if self.refine_iterations < 0:
            raise ConfigError(
                f"calibration.refine_iterations must be >= 0, got {self.refine_iterations}"
            )
        for key in ("share_bins", "sharpness_bins", "min_events"):
            if getattr(self, key) < 1:
                raise ConfigError(f"calibration.{key} must be >= 1, got {getattr(self, key)}")
        if self.energy_bins < 0:
            raise ConfigError(f"calibration.energy_bins must be >= 0, got {self.energy_bins}")
        if not 0.0 <= self.min_gain < 1.0:
            raise ConfigError(f"calibration.min_gain must be in [0, 1), got {self.min_gain}")


@dataclass
class CondensationConfig:
    """Thresholds of the condensation clustering (:mod:`calo.reco.condensation`).

    Attributes
    ----------
    t_beta:
        A hit can become a condensation point only with beta above ``t_beta``.
    t_d:
        Hits within ``t_d`` of a condensation point (in the clustering space) join it.
    share_sigma:
        0 (default): a cluster's energy is the sum of its hits' energies. > 0: every clustered
        hit's energy is shared among the clusters of its event with weights
        :math:`\\exp(-d^2 / 2\\sigma^2)` of its distance d to their condensation points
        (:func:`calo.reco.condensation.shared_cluster_energies`); a model trained with the
        sharing loss (``condensation.sharing_weight`` > 0) learns to place shared hits so that
        these weights are their energy fractions.

    Examples
    --------
    >>> CondensationConfig(t_beta=1.0)
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: condensation.t_beta must be in [0, 1), got 1.0
    """

    t_beta: float = 0.3
    t_d: float = 0.5
    share_sigma: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.t_beta < 1.0:
            raise ConfigError(f"condensation.t_beta must be in [0, 1), got {self.t_beta}")
        if not self.t_d > 0:
            raise ConfigError(f"condensation.t_d must be > 0, got {self.t_d}")
        if not self.share_sigma >= 0:
            raise ConfigError(f"condensation.share_sigma must be >= 0, got {self.share_sigma}")


@dataclass
class ClueConfig:
    """Parameters of CLUE (:mod:`calo.reco.clue`); the task tunes them on training events.

    Attributes
    ----------
    dc:
        Cut-off distance of the local density (cm, in the hits' coordinates).
    rho_c:
        Critical density (GeV with energy weights): seeds need at least ``rho_c``.
    outlier_factor:
        Outlier distance in units of ``dc``.
    kernel:
        Density kernel: ``flat`` (0.5 for the neighbours, cluestering's default), ``exp``
        or ``gaus``.
    kernel_params:
        The kernel's parameters (empty: the flat kernel's 0.5).

    Examples
    --------
    >>> ClueConfig().outlier_factor
    2.0
    """

    dc: float = 1.0
    rho_c: float = 1.0
    outlier_factor: float = 2.0
    kernel: str = "flat"
    kernel_params: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.dc > 0:
            raise ConfigError(f"clue.dc must be > 0, got {self.dc}")
        if not self.outlier_factor > 0:
            raise ConfigError(f"clue.outlier_factor must be > 0, got {self.outlier_factor}")
        if self.kernel not in ("flat", "exp", "gaus"):
            raise ConfigError(f"clue.kernel must be flat, exp or gaus, got {self.kernel!r}")


@dataclass
class MatchingConfig:
    """How predicted clusters are matched to truth particles (:mod:`calo.reco.matching`).

    Attributes
    ----------
    iou_threshold:
        A cluster and a particle match when their energy-weighted IoU exceeds this.
    merge_fraction:
        A cluster merges a particle that is not its match when it holds more than this
        fraction of the particle's energy (and more than this fraction of another's).
    split_fraction:
        A particle is split when two or more clusters each hold more than this fraction
        of its energy.

    Examples
    --------
    >>> MatchingConfig().iou_threshold
    0.5
    """

    iou_threshold: float = 0.5
    merge_fraction: float = 0.5
    split_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_threshold < 1.0:
            raise ConfigError(f"matching.iou_threshold must be in [0, 1), got {self.iou_threshold}")
        if not 0.0 < self.merge_fraction < 1.0:
            raise ConfigError(
                f"matching.merge_fraction must be in (0, 1), got {self.merge_fraction}"
            )
        if not 0.0 < self.split_fraction < 0.5:
            raise ConfigError(
                f"matching.split_fraction must be in (0, 0.5), got {self.split_fraction}"
            )
