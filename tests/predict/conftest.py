"""Fixtures of the calo-predict tests; the helpers they use are in ``predhelp.py``."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from predhelp import make_run, read_hits, write_hits


@pytest.fixture(scope="session")
def sim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 simulated two-shower events (seeded)."""
    from calo.sim import SimConfig
    from calo.sim.writer import write_root

    path = tmp_path_factory.mktemp("predict_data") / "sim.root"
    write_root(path, config=SimConfig(), n_events=60, seed=5, progress=False, write_config=False)
    return path


@pytest.fixture(scope="session")
def bad_file(sim_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """The first 30 events of ``sim_file`` with an empty event at entry 5, a NaN at entry 11
    and a negative energy at entry 17 inserted; returns the file and the inserted entries."""
    hits = {k: ak.to_list(v[:30]) for k, v in read_hits(sim_file).items()}
    inserted = [5, 11, 17]
    bad_events = []
    for kind in ("empty", "nan", "negative"):
        ev = {k: list(v[0]) for k, v in hits.items()}
        if kind == "empty":
            ev = {k: [] for k in hits}
        elif kind == "nan":
            ev["x"][2] = float("nan")
        else:
            ev["energy"][1] = -0.5
        bad_events.append(ev)
    for pos, ev in zip(inserted, bad_events, strict=True):
        for k in hits:
            hits[k].insert(pos, ev[k])
    typed = {
        k: ak.values_astype(ak.Array(v), np.int32 if k == "layer" else np.float32)
        for k, v in hits.items()
    }
    path = tmp_path_factory.mktemp("predict_bad") / "bad.root"
    return write_hits(path, typed), inserted


@pytest.fixture(scope="session")
def run_dir(sim_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GravNet run folder with a share calibration (two refinement steps)."""
    return make_run(tmp_path_factory.mktemp("predict_run") / "gravnet", sim_file)
