"""The examples in the docstrings of the geometry, the simulation and the event display run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "calo.geometry",
    "calo.sim",
    "calo.sim.config",
    "calo.sim.showers",
    "calo.sim.events",
    "calo.sim.writer",
    "calo.sim.cli",
    "calo.plots.events",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write here
    result = doctest.testmod(
        importlib.import_module(name),
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
        verbose=False,
    )
    assert result.attempted > 0
    assert result.failed == 0
