"""Configuration of the toy calorimeter simulation: one dataclass per component.

Load with :func:`calo.config.load_yaml` (``load_yaml(SimConfig, "sim.yaml", overrides)``) or
override fields on the command line (``gun.n_particles=1 noise.sigma=0.005``).

Examples
--------
>>> from calo.config import apply_overrides
>>> cfg = apply_overrides(SimConfig(), ["gun.n_particles=1", "gun.pdg=[11,211]"])
>>> cfg.gun.n_particles, cfg.gun.pdg
(1, [11, 211])
>>> cfg.validate() is cfg
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from calo.errors import ConfigError

__all__ = [
    "ALLOWED_PDG",
    "BackgroundConfig",
    "EnergyConfig",
    "GunConfig",
    "NoiseConfig",
    "ShowerConfig",
    "SimConfig",
]

ALLOWED_PDG = (11, -11, 22, 211, -211)
"""PDG ids the simulation knows: electrons, positrons, photons, charged pions."""


@dataclass
class EnergyConfig:
    """Incident energy distribution (GeV).

    ``uniform`` in [min, max], ``log_uniform`` (uniform in ln E), or ``fixed`` (always min).

    Examples
    --------
    >>> EnergyConfig(min=10.0, max=100.0, distribution="log_uniform").max
    100.0
    """

    min: float = 5.0
    max: float = 60.0
    distribution: Literal["uniform", "log_uniform", "fixed"] = "uniform"


@dataclass
class GunConfig:
    """The particles of one event.

    Parameters
    ----------
    n_particles:
        Particles per event with ``multiplicity="fixed"`` (all events of a file have the same
        number).
    pdg:
        PDG ids drawn uniformly for every particle.
    energy:
        Incident energy distribution.
    impact_half_width:
        The first particle hits the front face uniformly in ``[-w, w]^2`` (cm).
    separation:
        Distribution of the distance between the first particle's impact point and every
        other one: ``uniform`` in ``[0, separation_max]`` or ``exponential`` with mean
        ``separation_scale`` (truncated at ``separation_max``).
    max_angle:
        Polar angle of incidence drawn uniformly in cos(theta) over ``[0, max_angle]`` (rad).
    multiplicity:
        ``fixed`` (``n_particles`` per event, placed with ``separation``) or ``poisson``: the
        number of particles of an event is Poisson with mean ``mean_particles``, clipped to
        ``[min_particles, max_particles]``, and the particles are placed with the overlap
        settings below (``separation`` is then unused). The file has ``max_particles``
        truth-fraction columns; the columns of absent particles are 0.
    mean_particles, min_particles, max_particles:
        The Poisson mean and the bounds of the number of particles (``poisson`` only).
    overlap_fraction:
        ``poisson`` only: every particle after the first overlaps, with this probability, a
        particle placed before it (chosen uniformly): its impact point lies uniformly in a disc
        of radius ``overlap_distance`` (cm) around that particle's. Otherwise it is placed
        uniformly in ``[-spread_half_width, spread_half_width]^2`` at least
        ``overlap_distance`` from every particle before it (up to 100 draws; the last is kept).
    overlap_distance:
        The overlap radius (cm); 2 cm is about two Moliere radii of the default detector.
    spread_half_width:
        Half width (cm) of the square in which non-overlapping particles land (``poisson``).

    Examples
    --------
    >>> GunConfig(n_particles=1).n_particles
    1
    >>> GunConfig(multiplicity="poisson").max_particles
    10
    """

    n_particles: int = 2
    pdg: list[int] = field(default_factory=lambda: [11, 22])
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    impact_half_width: float = 5.0
    separation: Literal["uniform", "exponential"] = "uniform"
    separation_max: float = 10.0
    separation_scale: float = 3.0
    max_angle: float = 0.05
    multiplicity: Literal["fixed", "poisson"] = "fixed"
    mean_particles: float = 4.0
    min_particles: int = 1
    max_particles: int = 10
    overlap_fraction: float = 0.3
    overlap_distance: float = 2.0
    spread_half_width: float = 10.0

    @property
    def max_count(self) -> int:
        """The most particles an event can have (the number of truth-fraction columns).

        Examples
        --------
        >>> GunConfig().max_count, GunConfig(multiplicity="poisson", max_particles=6).max_count
        (2, 6)
        """
        return self.n_particles if self.multiplicity == "fixed" else self.max_particles


@dataclass
class ShowerConfig:
    """Shower-model knobs (see :mod:`calo.sim.showers` for the formulas).

    Parameters
    ----------
    stochastic_em, stochastic_had:
        Sampling term a (GeV^1/2) of a layer with 1 X0 of absorber; a layer with x0 radiation
        lengths deposits energy in quanta of a^2 * x0 GeV, so sigma/E = a sqrt(x0)/sqrt(E).
    max_spots:
        Most spatial spots per shower component (speed vs. spatial smoothness); the
        sampling fluctuation does not depend on it.
    em_fraction_k:
        Mean pi0 fraction of a pion shower 1 - (E / 1 GeV)^(k - 1).
    em_fraction_sigma:
        Spread of the pi0 fraction.
    invisible_mean, invisible_sigma:
        Fraction of the non-pi0 hadronic energy lost as invisible (binding energy, neutrons).
    had_beta:
        Slope of the hadronic Gamma profile per interaction length.

    Examples
    --------
    >>> ShowerConfig().max_spots
    256
    """

    stochastic_em: float = 0.15
    stochastic_had: float = 0.30
    max_spots: int = 256
    em_fraction_k: float = 0.82
    em_fraction_sigma: float = 0.12
    invisible_mean: float = 0.30
    invisible_sigma: float = 0.10
    had_beta: float = 0.9


@dataclass
class NoiseConfig:
    """Per-cell Gaussian electronic noise and zero suppression (GeV, same scale as hits).

    Examples
    --------
    >>> NoiseConfig().threshold > NoiseConfig().sigma
    True
    """

    sigma: float = 0.01
    threshold: float = 0.03


@dataclass
class BackgroundConfig:
    """Pileup-like background: random soft hits and soft extra showers, per event.

    Background energy belongs to no particle: hits that only have background (and noise) are
    flagged ``hit_noise`` with all fractions 0.

    Parameters
    ----------
    mean_hits:
        Poisson mean of random background deposits per event, each in a uniformly chosen cell,
        with exponentially distributed energy of mean ``hit_energy`` (GeV).
    mean_showers:
        Poisson mean of soft extra photon showers per event, energy uniform in
        ``[shower_energy_min, shower_energy_max]`` and impact uniform on the face.

    Examples
    --------
    >>> BackgroundConfig(mean_hits=20.0).mean_hits
    20.0
    """

    mean_hits: float = 0.0
    hit_energy: float = 0.1
    mean_showers: float = 0.0
    shower_energy_min: float = 0.5
    shower_energy_max: float = 3.0


@dataclass
class SimConfig:
    """Everything :func:`calo.sim.generate` needs.

    ``geometry`` is ``"default"`` or the path of a geometry file (``.npz``/``.csv``).
    ``calibrated`` hit energies are sensor energies divided by the layer's sampling fraction
    (GeV of incident-equivalent energy); otherwise they are the visible sensor energies.

    Examples
    --------
    >>> SimConfig().gun.n_particles
    2
    """

    geometry: str = "default"
    gun: GunConfig = field(default_factory=GunConfig)
    shower: ShowerConfig = field(default_factory=ShowerConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    calibrated: bool = True

    def validate(self) -> SimConfig:
        """Check ranges; raise :class:`calo.errors.ConfigError` naming the bad key.

        Examples
        --------
        >>> SimConfig(gun=GunConfig(n_particles=0)).validate()
        Traceback (most recent call last):
        ...
        calo.errors.ConfigError: gun.n_particles must be >= 1, got 0
        """
        g = self.gun
        if g.n_particles < 1:
            raise ConfigError(f"gun.n_particles must be >= 1, got {g.n_particles}")
        if g.multiplicity == "poisson":
            if not 1 <= g.min_particles <= g.max_particles:
                raise ConfigError(
                    "gun.min_particles and gun.max_particles need 1 <= min <= max, got "
                    f"{g.min_particles}, {g.max_particles}"
                )
            if g.mean_particles <= 0:
                raise ConfigError(f"gun.mean_particles must be > 0, got {g.mean_particles}")
            if not 0 <= g.overlap_fraction <= 1:
                raise ConfigError(
                    f"gun.overlap_fraction must be in [0, 1], got {g.overlap_fraction}"
                )
            if g.overlap_distance <= 0 or g.spread_half_width < 0:
                raise ConfigError(
                    "gun.overlap_distance must be > 0 and gun.spread_half_width >= 0, got "
                    f"{g.overlap_distance}, {g.spread_half_width}"
                )
        if not g.pdg:
            raise ConfigError("gun.pdg must name at least one particle")
        bad = [p for p in g.pdg if p not in ALLOWED_PDG]
        if bad:
            raise ConfigError(f"gun.pdg has unsupported ids {bad}; choose from {list(ALLOWED_PDG)}")
        e = g.energy
        if not (0 < e.min) or (e.distribution != "fixed" and not e.min <= e.max):
            raise ConfigError(f"gun.energy needs 0 < min <= max, got min={e.min}, max={e.max}")
        if e.max > 1e4:
            raise ConfigError(
                f"gun.energy.max={e.max} GeV is beyond the parameterisation (<= 10 TeV)"
            )
        for key, val in (
            ("gun.impact_half_width", g.impact_half_width),
            ("gun.separation_max", g.separation_max),
            ("noise.sigma", self.noise.sigma),
            ("background.mean_hits", self.background.mean_hits),
            ("background.mean_showers", self.background.mean_showers),
        ):
            if val < 0:
                raise ConfigError(f"{key} must be >= 0, got {val}")
        for key, val in (
            ("gun.separation_scale", g.separation_scale),
            ("shower.stochastic_em", self.shower.stochastic_em),
            ("shower.stochastic_had", self.shower.stochastic_had),
            ("shower.had_beta", self.shower.had_beta),
            ("background.hit_energy", self.background.hit_energy),
        ):
            if val <= 0:
                raise ConfigError(f"{key} must be > 0, got {val}")
        if not 0 <= g.max_angle < 1.4:
            raise ConfigError(f"gun.max_angle must be in [0, 1.4) rad, got {g.max_angle}")
        if self.shower.max_spots < 8:
            raise ConfigError(f"shower.max_spots must be >= 8, got {self.shower.max_spots}")
        b = self.background
        if not 0 < b.shower_energy_min <= b.shower_energy_max:
            raise ConfigError("background needs 0 < shower_energy_min <= shower_energy_max")
        if self.noise.threshold < 0:
            raise ConfigError(f"noise.threshold must be >= 0, got {self.noise.threshold}")
        return self
