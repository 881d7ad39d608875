"""A small simulated two-shower ROOT file shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 simulated two-shower events (seeded)."""
    from calo.sim import SimConfig
    from calo.sim.writer import write_root

    path = tmp_path_factory.mktemp("train_data") / "small.root"
    write_root(path, config=SimConfig(), n_events=80, seed=11, progress=False, write_config=False)
    return path
