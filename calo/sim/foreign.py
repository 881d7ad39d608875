"""A file as another detector's software writes it: the walk-through of a foreign file.

:func:`write_foreign_file` writes two-shower events of a small calorimeter that is not calo's:
hexagonal cells whose sizes are in no branch (a per-layer table, :data:`FOREIGN_CELL_SIZES`),
energies in MeV, other branch names, truth as a per-hit particle index and per-event scalar
true energies, stored as an RNTuple (or a TTree). The README's and notebook 05's walk-through
(``calo-inspect`` -> schema -> ``calo-train`` -> ``calo-predict``) and the reader's tests use
it; :func:`foreign_schema` is the schema that reads it (as a mapping).

Examples
--------
>>> sorted(FOREIGN_CELL_SIZES)[:3], FOREIGN_CELL_SIZES[0]
([0, 1, 2], [0.6, 0.6, 0.8])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from calo.errors import ConfigError

__all__ = [
    "FOREIGN_CELL_SIZES",
    "FOREIGN_LAYERS",
    "foreign_events",
    "foreign_schema",
    "write_foreign_file",
]

#: cell sizes [dx, dy, dz] (cm) of the layers of :func:`write_foreign_file`: fine hexagons in
#: the 8 front layers, coarse ones behind (for ``Schema.cell_size_by_layer``)
FOREIGN_LAYERS = 14
FOREIGN_CELL_SIZES: dict[int, list[float]] = {
    ell: ([0.6, 0.6, 0.8] if ell < 8 else [1.2, 1.2, 1.6]) for ell in range(FOREIGN_LAYERS)
}
_FOREIGN_Z = np.concatenate(([0.0], np.cumsum([FOREIGN_CELL_SIZES[e][2] for e in range(14)])))


def _hex_axial(x: np.ndarray, y: np.ndarray, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """Axial indices (q, r) of the hexagonal cell (flat-topped lattice of ``pitch``) that
    contains each point."""
    size = pitch / np.sqrt(3.0)
    q = (2.0 / 3.0 * x) / size
    r = (-x / 3.0 + np.sqrt(3.0) / 3.0 * y) / size
    s = -q - r
    rq, rr, rs = np.round(q), np.round(r), np.round(s)
    dq, dr, ds = np.abs(rq - q), np.abs(rr - r), np.abs(rs - s)
    fix_q = (dq > dr) & (dq > ds)
    fix_r = ~fix_q & (dr > ds)
    rq = np.where(fix_q, -rr - rs, rq)
    rr = np.where(fix_r, -rq - rs, rr)
    return rq.astype(np.int64), rr.astype(np.int64)


def foreign_events(n_events: int = 20, seed: int = 0) -> dict[str, list]:
    """The events of :func:`write_foreign_file` as per-event lists (energies in MeV, cm)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in ("x", "y", "z", "energy", "layer", "pid")}
    out.update({"gen_energy0": [], "gen_energy1": [], "gen_pdg0": [], "gen_pdg1": []})
    pitch = np.array([FOREIGN_CELL_SIZES[e][0] for e in range(FOREIGN_LAYERS)])
    for _ in range(n_events):
        energies = rng.uniform(5.0, 40.0, 2) * 1000.0  # MeV
        pdgs = rng.choice([11, 22, 211], 2)
        impact = rng.uniform(-4.0, 4.0, (2, 2))
        ells, xs, ys, src, dep = [], [], [], [], []
        for s in range(2):
            profile = np.exp(-0.5 * ((np.arange(FOREIGN_LAYERS) - 5.0) / 3.0) ** 2)
            n = rng.poisson(30 * profile) + 1
            ell = np.repeat(np.arange(FOREIGN_LAYERS), n)
            width = 0.8 + 0.1 * ell
            ells.append(ell)
            xs.append(impact[s, 0] + rng.normal(0, 1, len(ell)) * width)
            ys.append(impact[s, 1] + rng.normal(0, 1, len(ell)) * width)
            src.append(np.full(len(ell), s))
            dep.append((0.05 * energies[s] * profile / n)[ell])
        n_noise = int(rng.integers(2, 8))
        ells.append(rng.integers(0, FOREIGN_LAYERS, n_noise))
        xs.append(rng.uniform(-12, 12, n_noise))
        ys.append(rng.uniform(-12, 12, n_noise))
        src.append(np.full(n_noise, 2))
        dep.append(rng.exponential(0.5, n_noise))
        ell, x, y = np.concatenate(ells), np.concatenate(xs), np.concatenate(ys)
        q, r = _hex_axial(x, y, 0.0 + pitch[ell]) if len(ell) else (x, y)
        key = (ell << 40) | ((q + 50_000) << 20) | (r + 50_000)
        uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
        per = np.zeros((len(uniq), 3))
        np.add.at(per, (inv.ravel(), np.concatenate(src)), np.concatenate(dep))
        shower = per[:, :2]
        pid = np.where(shower.sum(1) > 0, shower.argmax(1), -1)
        layer = ell[first]
        size = pitch[layer] / np.sqrt(3.0)
        qf, rf = q[first], r[first]
        out["x"].append((size * 1.5 * qf).astype(np.float32))
        out["y"].append((size * np.sqrt(3.0) * (rf + qf / 2.0)).astype(np.float32))
        out["z"].append(((_FOREIGN_Z[layer] + _FOREIGN_Z[layer + 1]) / 2).astype(np.float32))
        out["energy"].append(per.sum(1).astype(np.float32))
        out["layer"].append(layer.astype(np.int32))
        out["pid"].append(pid.astype(np.int32))
        for s in range(2):
            out[f"gen_energy{s}"].append(np.float32(energies[s]))
            out[f"gen_pdg{s}"].append(np.int32(pdgs[s]))
    return out


def write_foreign_file(
    path: str | Path,
    n_events: int = 20,
    seed: int = 0,
    fmt: str = "rntuple",
    tree: str = "events",
) -> Path:
    """Write a file as another detector's software might: the reader's test of a foreign file.

    Two showers per event in a 14-layer calorimeter with hexagonal cells (0.6 cm in the 8
    front layers, 1.2 cm behind; the sizes are in no branch, see :data:`FOREIGN_CELL_SIZES`),
    energies in MeV, positions in cm, and other branch names:

    * per hit (jagged): ``rechit_x``, ``rechit_y``, ``rechit_z`` (cm), ``rechit_energy``
      (MeV, float32), ``rechit_layer`` (int32), ``rechit_pid`` (int32: the shower that
      deposited most in the cell, 0 or 1; -1 for a noise-only hit);
    * per event (scalars): ``event_number`` (int64), ``gen_energy0``, ``gen_energy1``
      (MeV, float32: the two showers' true energies), ``gen_pdg0``, ``gen_pdg1`` (int32).

    Parameters
    ----------
    path:
        The file to write.
    n_events:
        Number of events.
    seed:
        Seed of the random numbers (same seed, same events).
    fmt:
        ``"rntuple"`` (as ROOT 6.34+ and uproot's dict assignment write) or ``"ttree"``.
    tree:
        Name of the RNTuple or TTree.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    The schema that reads it (what ``calo-inspect FILE --write-schema`` starts, edited):

    >>> import tempfile, pathlib
    >>> from calo.io import Schema, read_data
    >>> p = write_foreign_file(pathlib.Path(tempfile.mkdtemp()) / "foreign.root", n_events=3)
    >>> s = Schema(x="rechit_x", y="rechit_y", z="rechit_z", energy="rechit_energy",
    ...            layer="rechit_layer", truth_index="rechit_pid", event_id="event_number",
    ...            particle_energy="gen_energy*", particle_pdg="gen_pdg*",
    ...            cell_size_by_layer=FOREIGN_CELL_SIZES, energy_unit="MeV")
    >>> data, summary = read_data(p, s)
    >>> len(data), data[0].y.shape[1], str(summary).split(":")[0]
    (3, 2, 'read 3 events (...) from 1 file (RNTuple)')
    """
    if fmt not in ("rntuple", "ttree"):
        raise ConfigError(f"fmt must be 'rntuple' or 'ttree', got {fmt!r}")
    ev = foreign_events(n_events, seed)
    types = {"x": np.float32, "y": np.float32, "z": np.float32, "energy": np.float32}
    types.update({"layer": np.int32, "pid": np.int32})
    data: dict[str, Any] = {
        f"rechit_{k}": ak.values_astype(ak.Array(ev[k]), t) for k, t in types.items()
    }
    data["event_number"] = np.arange(n_events, dtype=np.int64) + 100
    for k in ("gen_energy0", "gen_energy1", "gen_pdg0", "gen_pdg1"):
        data[k] = np.array(ev[k])
    path = Path(path)
    with uproot.recreate(path) as f:
        if fmt == "rntuple":
            f.mkrntuple(tree, data)
        else:
            f.mktree(
                tree, {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
            )
            f[tree].extend(data)
    return path


def foreign_schema(**overrides: Any) -> dict[str, Any]:
    """The branch schema of :func:`write_foreign_file`'s files, as the mapping of a schema YAML
    (``calo.io.Schema(**foreign_schema())`` reads them; sim does not import io).

    Examples
    --------
    >>> foreign_schema()["energy_unit"], foreign_schema(tree="hits")["tree"]
    ('MeV', 'hits')
    """
    kw: dict[str, Any] = dict(
        x="rechit_x",
        y="rechit_y",
        z="rechit_z",
        energy="rechit_energy",
        layer="rechit_layer",
        truth_index="rechit_pid",
        event_id="event_number",
        particle_energy="gen_energy*",
        particle_pdg="gen_pdg*",
        cell_size_by_layer=FOREIGN_CELL_SIZES,
        energy_unit="MeV",
    )
    kw.update(overrides)
    return kw
