"""Shared pytest fixtures (seeded randomness, a headless matplotlib, one torch thread) and the
``slow`` marker's default.

``python -m pytest`` runs the fast tests only: tests marked ``slow`` (training, notebooks, DDP,
g++ builds, anything over a few seconds) are deselected unless ``--run-slow`` is given, as CI
does (``python -m pytest -q -n 2 --run-slow``). An explicit ``-m`` expression decides on its
own (``python -m pytest -m slow`` runs only the slow tests).
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (the full suite, as CI runs it)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the ``slow`` tests unless ``--run-slow`` or an ``-m`` expression is given."""
    if config.getoption("--run-slow") or config.getoption("-m"):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy random generator."""
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)
