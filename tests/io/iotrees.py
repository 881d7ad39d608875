"""Helpers for the reader tests: calo-format ROOT trees written with uproot from awkward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot


def make_events(
    rng: np.random.Generator, n_events: int = 20, k: int = 2, hits: tuple[int, int] = (5, 40)
) -> dict[str, np.ndarray | ak.Array]:
    """Random events in the calo-simulate format (docs/data_format.md), as flat-by-role arrays.

    Returns a dict with per-event ``counts`` and ``np_`` (particles), flat hit arrays and
    flat particle arrays, plus ``event`` numbers.
    """
    counts = rng.integers(hits[0], hits[1], size=n_events)
    n = int(counts.sum())
    npart = rng.integers(1, k + 1, size=n_events)
    npart[0] = k  # the file's K is reached
    ev_of_hit = np.repeat(np.arange(n_events), counts)
    frac = rng.random((n, k)).astype(np.float32)
    frac[np.arange(k)[None, :] >= npart[ev_of_hit][:, None]] = 0.0
    noise = rng.random(n) < 0.1
    frac[noise] = 0.0
    s = frac.sum(axis=1, keepdims=True)
    frac = np.divide(frac, s, out=np.zeros_like(frac), where=s > 0)
    truth = np.where(noise, -1, frac.argmax(axis=1)).astype(np.int32)
    pn = int(npart.sum())
    return {
        "counts": counts,
        "npart": npart,
        "event": (1000 + np.arange(n_events)).astype(np.int64),
        "cell": rng.integers(0, 2102, n).astype(np.int32),
        "x": rng.uniform(-15, 15, n).astype(np.float32),
        "y": rng.uniform(-15, 15, n).astype(np.float32),
        "z": rng.uniform(0, 40, n).astype(np.float32),
        "dx": rng.choice([1.0, 2.0, 4.0], n).astype(np.float32),
        "dy": rng.choice([1.0, 2.0, 4.0], n).astype(np.float32),
        "dz": rng.choice([0.5, 1.0], n).astype(np.float32),
        "layer": rng.integers(0, 20, n).astype(np.int32),
        "energy": rng.exponential(0.5, n).astype(np.float32),
        "noise": noise,
        "frac": frac,
        "truth": truth,
        "p_pdg": rng.choice([11, 22, 211, -211], pn).astype(np.int32),
        "p_energy": rng.uniform(5, 60, pn).astype(np.float32),
        "p_x": rng.uniform(-10, 10, pn).astype(np.float32),
        "p_y": rng.uniform(-10, 10, pn).astype(np.float32),
        "p_dirx": np.zeros(pn, np.float32),
        "p_diry": np.zeros(pn, np.float32),
        "p_dirz": np.ones(pn, np.float32),
        "p_deposited": rng.uniform(1, 50, pn).astype(np.float32),
    }


def jag(flat: np.ndarray, counts: np.ndarray) -> ak.Array:
    return ak.unflatten(flat, counts)


def write_calo_tree(path: Path, ev: dict, tree: str = "events") -> Path:
    """Write ``ev`` (from :func:`make_events`) as the calo-simulate TTree."""
    c, pc = ev["counts"], ev["npart"]
    hit = {
        k: jag(ev[k], c)
        for k in ("cell", "x", "y", "z", "dx", "dy", "dz", "layer", "energy", "noise", "truth")
    }
    for j in range(ev["frac"].shape[1]):
        hit[f"frac_{j}"] = jag(np.ascontiguousarray(ev["frac"][:, j]), c)
    part = {
        k: jag(ev[f"p_{k}"], pc)
        for k in ("pdg", "energy", "x", "y", "dirx", "diry", "dirz", "deposited")
    }
    data = {"event": ev["event"], "hit": ak.zip(hit), "particle": ak.zip(part)}
    with uproot.recreate(path) as f:
        f.mktree(
            tree, {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
        )
        f[tree].extend(data)
    return path


def write_tree(path: Path, branches: dict, tree: str = "events") -> Path:
    """Write arbitrary branches (numpy or awkward) to a TTree; each jagged one gets its own counter."""
    with uproot.recreate(path) as f:
        f.mktree(
            tree, {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()}
        )
        f[tree].extend(branches)
    return path


# the foreign file of the walk-through lives in the package (calo.sim.foreign); re-exported
# here for the reader's tests
from calo.sim.foreign import (  # noqa: E402
    FOREIGN_CELL_SIZES,
    FOREIGN_LAYERS,
    foreign_events,
    write_foreign_file,
)
from calo.sim.foreign import foreign_schema as _foreign_schema_mapping  # noqa: E402


def foreign_schema(**overrides: Any) -> Any:
    """The :class:`calo.io.Schema` of :func:`write_foreign_file`'s files."""
    from calo.io import Schema

    return Schema(**_foreign_schema_mapping(**overrides))


__all__ = [
    "FOREIGN_CELL_SIZES",
    "FOREIGN_LAYERS",
    "foreign_events",
    "foreign_schema",
    "jag",
    "make_events",
    "write_calo_tree",
    "write_foreign_file",
    "write_tree",
]
