"""Fixtures for the reader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from iotrees import make_events, write_calo_tree


@pytest.fixture
def events(rng: np.random.Generator) -> dict:
    return make_events(rng)


@pytest.fixture
def calo_file(tmp_path: Path, events: dict) -> Path:
    return write_calo_tree(tmp_path / "calo.root", events)
