"""Toy calorimeter simulation: shower parameterisations, event mixing and ROOT writing.

Examples
--------
>>> from calo.sim import SimConfig, generate
>>> ev = generate(SimConfig(), n_events=2, seed=0)
>>> len(ev)
2
"""

from calo.sim.config import (
    BackgroundConfig,
    EnergyConfig,
    GunConfig,
    NoiseConfig,
    ShowerConfig,
    SimConfig,
)
from calo.sim.events import generate, generate_arrays, load_geometry, to_awkward

__all__ = [
    "BackgroundConfig",
    "EnergyConfig",
    "GunConfig",
    "NoiseConfig",
    "ShowerConfig",
    "SimConfig",
    "generate",
    "generate_arrays",
    "load_geometry",
    "to_awkward",
]
