"""The examples in calo.io's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "calo.io",
    "calo.io.schema",
    "calo.io.features",
    "calo.io.summary",
    "calo.io.reader",
    "calo.io.dataset",
    "calo.io.padded",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0
    assert result.failed == 0
