"""Every notebook under notebooks/ is stored clean and runs top to bottom on small settings.

How a notebook is run small: its first code cell is tagged ``parameters`` and holds every
setting that makes it slow, each with a small value chosen when the environment variable
``CALO_NOTEBOOK_SMALL`` is ``1``::

    SMALL = os.environ.get("CALO_NOTEBOOK_SMALL") == "1"
    N_EVENTS = 200 if SMALL else 3000

The test sets that variable for the kernel (with one thread per library, a temporary
``CALO_CACHE`` and the inline matplotlib backend), executes the notebook with nbclient in a
temporary working directory and fails on the first cell that raises. Notebooks are found by
globbing, so a new notebook is tested as soon as it exists; it only has to follow the same
conventions (a markdown cell first that says what it shows and how long it takes on a laptop
CPU, a ``parameters`` cell that reads ``CALO_NOTEBOOK_SMALL``, no stored outputs).

Run one notebook small by hand::

    CALO_NOTEBOOK_SMALL=1 jupyter execute notebooks/01_hits_to_point_clouds.ipynb
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SMALL_ENV = "CALO_NOTEBOOK_SMALL"
CELL_TIMEOUT_S = 600  # a guard against a hanging cell, not a speed target


def _read(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def _parameters_cells(nb) -> list:
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def test_the_notebooks_are_there() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {
        "01_hits_to_point_clouds.ipynb",
        "02_separate_overlapping_showers.ipynb",
        "03_garnet_on_fpga.ipynb",
        "04_memory_and_latency.ipynb",
        "05_your_own_detector.ipynb",
        "06_any_number_of_particles.ipynb",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_and_opens_with_what_and_how_long(path: Path) -> None:
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{path.name} must open with a markdown cell"
    text = first.source.lower()
    assert text.lstrip().startswith("#"), f"{path.name}: the first cell needs a title"
    assert "laptop" in text and re.search(r"\b(seconds?|minutes?)\b", text), (
        f"{path.name}: the first cell must say how long the notebook takes on a laptop CPU"
    )
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {i} has stored outputs; clear them"
            assert cell.execution_count is None, f"{path.name}: cell {i} has an execution count"
        assert "attachments" not in cell or not cell.attachments, f"{path.name}: cell {i}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_has_one_parameters_cell_with_small_settings(path: Path) -> None:
    nb = _read(path)
    params = _parameters_cells(nb)
    assert len(params) == 1, f"{path.name}: tag exactly one code cell 'parameters'"
    cell = params[0]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert cell.cell_type == "code" and cell is code[0], (
        f"{path.name}: the parameters cell must be the first code cell"
    )
    assert SMALL_ENV in cell.source, f"{path.name}: the parameters cell must read ${SMALL_ENV}"


def _check_cell():
    """A cell run before the notebook: the kernel must be this interpreter (the venv's)."""
    return nbformat.v4.new_code_cell(
        "import os as _os, sys as _sys\n"
        f"assert _sys.prefix == {sys.prefix!r}, ('kernel python3 runs ' + _sys.executable + "
        f"', not the interpreter of the tests ({sys.executable})')\n"
        f"assert _os.environ[{SMALL_ENV!r}] == '1'\n"
        "del _os, _sys"
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom_on_small_settings(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient.exceptions import CellExecutionError

    # the kernel inherits this process's environment
    monkeypatch.setenv(SMALL_ENV, "1")
    monkeypatch.setenv("CALO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.chdir(tmp_path)
    nb = _read(path)
    nb.cells.insert(0, _check_cell())
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    except CellExecutionError as e:
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # the traceback's terminal colours
        pytest.fail(f"{path.name} failed on small settings:\n{message[-4000:]}", pytrace=False)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{path.name} drew no figure"
    # every code cell ran, in order
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))


def test_kernel_python3_is_this_interpreter() -> None:
    """nbclient's kernel "python3" resolves to the interpreter running the tests (the venv's)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert os.path.samefile(cmd[0], sys.executable), (
        f"kernel python3 starts {cmd[0]}, not {sys.executable}"
    )
