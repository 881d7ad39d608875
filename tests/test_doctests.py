"""The examples in the docstrings of every calo module run and print what they say.

This is the one place the docstring examples are tested: one test per module found by
:func:`pkgutil.walk_packages`, so a new module is covered without being listed here.
"""

from __future__ import annotations

import doctest
import importlib
import io
import os
import pkgutil
import sys

os.environ.setdefault("MPLBACKEND", "Agg")  # calo.plots draws figures

import pytest
import torch

import calo

OPTIONFLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS

#: Package namespaces without code of their own: they only re-export, so have no examples.
NO_EXAMPLES = {"calo", "calo.fpga", "calo.plots", "calo.train"}


def _modules() -> list[str]:
    def fail(name: str) -> None:
        raise ImportError(f"cannot import {name} to look for its submodules")

    found = pkgutil.walk_packages(calo.__path__, prefix="calo.", onerror=fail)
    return ["calo", *sorted(m.name for m in found)]


MODULES = _modules()

#: Modules whose examples take more than a few seconds (numba kernels compiled for several
#: fixed-point configurations, figures): run with ``--run-slow``.
SLOW_MODULES = {"calo.fpga.reference", "calo.fpga.cli", "calo.plots.performance"}


def test_every_package_is_found() -> None:
    for name in ("calo.fpga.reference", "calo.train.losses", "calo.models.gravnet", "calo.io"):
        assert name in MODULES
    assert SLOW_MODULES <= set(MODULES)


@pytest.mark.parametrize(
    "name",
    [pytest.param(m, marks=pytest.mark.slow) if m in SLOW_MODULES else m for m in MODULES],
)
def test_docstring_examples(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write relative paths write here
    torch.manual_seed(0)  # numpy examples seed their own default_rng
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report = io.StringIO()
    try:
        for test in finder.find(module, name):
            runner.run(test, out=report.write)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {name}:\n" + (
        report.getvalue()
    )
    if name in NO_EXAMPLES:
        return
    assert runner.tries > 0, f"{name} has no docstring examples"
