"""Helpers for the simulation tests: single-particle configurations and per-event sums."""

from __future__ import annotations

import numpy as np

from calo.config import apply_overrides
from calo.sim import SimConfig


def single(pdg: int, energy: float, *extra: str) -> SimConfig:
    """One particle of fixed energy, head-on at the centre, no noise, no threshold."""
    return apply_overrides(
        SimConfig(),
        [
            "gun.n_particles=1",
            f"gun.pdg=[{pdg}]",
            f"gun.energy.min={energy}",
            "gun.energy.distribution=fixed",
            "gun.max_angle=0",
            "gun.impact_half_width=0",
            "noise.sigma=0",
            "noise.threshold=0",
            *extra,
        ],
    )


def per_event(d: dict, values: np.ndarray) -> np.ndarray:
    """Sum ``values`` (one per hit) per event of the flat arrays ``d``."""
    ev = np.repeat(np.arange(len(d["nhit"])), d["nhit"])
    return np.bincount(ev, weights=values, minlength=len(d["nhit"]))
