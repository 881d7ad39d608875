"""The one-way import flow of docs/architecture.md holds for every module of calo.

Every ``import calo.X`` and ``from calo.X import ...`` of every module is read from its source
(function-level imports included, docstring examples not), and the subpackage that imports is
checked against the subpackages it must not import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CALO = Path(__file__).resolve().parents[1] / "calo"

#: subpackage -> the calo subpackages it must never import (docs/architecture.md)
FORBIDDEN: dict[str, set[str]] = {
    "reco": {"train", "fpga", "models", "nn", "io", "sim", "geometry", "plots"},
    "nn": {"fpga", "models", "train", "reco", "io", "sim", "geometry", "plots"},
    "io": {"models", "train", "fpga", "reco", "nn"},
    "plots": {"geometry", "sim", "io", "nn", "models", "reco", "fpga", "train"},
}


def _subpackage(path: Path) -> str:
    """``calo/train/run.py`` -> ``train``; ``calo/geometry.py`` -> ``geometry``."""
    return path.relative_to(CALO).parts[0].removesuffix(".py")


def _imported_subpackages(path: Path) -> set[str]:
    """The calo subpackages (first component after ``calo.``) that ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "calo" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_the_reader_sees_imports_in_functions_and_ignores_docstrings(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_text(
        '"""\n>>> from calo.train import x\n"""\n'
        "import calo.nn.knn\n"
        "def f():\n    from calo.fpga.fixed import FixedType\n"
    )
    assert _imported_subpackages(mod) == {"nn", "fpga"}


@pytest.mark.parametrize("sub", sorted(FORBIDDEN))
def test_no_import_against_the_flow(sub: str) -> None:
    modules = sorted((CALO / sub).rglob("*.py")) if (CALO / sub).is_dir() else []
    bad = {
        str(m.relative_to(CALO.parent)): sorted(_imported_subpackages(m) & FORBIDDEN[sub])
        for m in modules
    }
    bad = {m: subs for m, subs in bad.items() if subs}
    assert not bad, f"calo.{sub} imports against docs/architecture.md: {bad}"


def test_fpga_library_modules_do_not_import_train() -> None:
    """Only the command (fpga/cli.py) reads calo-train's runs; the rest of fpga takes models."""
    bad = {
        str(m.relative_to(CALO.parent)): sorted(_imported_subpackages(m) & {"train", "reco"})
        for m in sorted((CALO / "fpga").rglob("*.py"))
        if m.name != "cli.py"
    }
    assert not {m: s for m, s in bad.items() if s}, bad
