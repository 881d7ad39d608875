"""Convert one awkward chunk of a hit tree to torch_geometric ``Data`` objects.

:func:`chunk_to_data` works in stages, vectorised over the chunk: flatten the hits and check
the branch lengths, types and values (whole numbers for integer roles, fractions in [0, 1],
cell sizes found); convert to calo's units (GeV, cm); flag bad events (or raise, as the
:class:`ReadPolicy` says); select the hits kept; build one tensor per field for the whole chunk;
split it into one ``Data`` per kept event (views, ``torch.split``). Only that last step loops,
over events, never over hits.

Examples
--------
>>> import awkward as ak
>>> arr = ak.Array({"x": [[0.0]], "y": [[0.0]], "z": [[10.0]], "e": [[2000.0]], "pid": [[0]]})
>>> s = Schema(x="x", y="y", z="z", energy="e", truth_index="pid", energy_unit="MeV",
...            length_unit="mm")
>>> d = chunk_to_data(arr, ChunkInfo("mem", "events", 0, 1), s)[0]
>>> d.energy.tolist(), d.pos.tolist(), d.hit_particle.tolist()
([2.0], [[0.0, 0.0, 1.0]], [0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import awkward as ak
import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from calo.errors import ConfigError, DataError
from calo.io.features import FeatureSpec, Normalization
from calo.io.plan import HIT_FLOAT_ROLES, Plan, make_plan
from calo.io.schema import Schema, how_to_set
from calo.io.source import classify_array
from calo.io.summary import STATUS_CODES, ReadSummary

__all__ = ["ChunkInfo", "ReadPolicy", "chunk_to_data", "pad_particles"]

_KEEP = 0
_REASON_CODES = STATUS_CODES
#: per-hit float columns (read as float32 and checked for NaN/inf)
_FLOAT_ROLES = HIT_FLOAT_ROLES
#: truth fractions may leave [0, 1] (and their sum 1) by this much (float rounding); such
#: values are clipped into [0, 1], anything further is a DataError
FRACTION_TOLERANCE = 1e-5


@dataclass
class ReadPolicy:
    """What to do with bad or oversized events; the fields are :func:`read_data`'s keywords.

    Parameters
    ----------
    max_events:
        Stop after this many kept events (``None``: all).
    max_hits:
        Hit limit per event (``None``: no limit); see ``on_too_many_hits``.
    require_truth:
        Raise if the tree has no truth branches; otherwise ``y`` has ``K = 0`` columns.
    on_nonfinite:
        NaN or infinite value in a hit: ``"skip"`` the event (counted) or ``"error"``.
    on_negative_energy:
        Negative hit energy: ``"skip"`` the event (counted), ``"clip"`` it to 0 (counted) or
        ``"error"``.
    on_too_many_hits:
        More than ``max_hits`` hits: ``"truncate"`` to the most energetic ``max_hits`` (counted),
        ``"skip"`` the event (counted) or ``"error"``.
    n_particles:
        Number of truth columns ``K``; ``None`` uses the largest in the data.
    step_size:
        Chunk size for uproot's ``iterate`` of a TTree or RNTuple (entries as int, or bytes as
        ``"100 MB"``).

    Examples
    --------
    >>> from calo.config import to_dict
    >>> to_dict(ReadPolicy(max_hits=128))["on_too_many_hits"]
    'truncate'
    """

    max_events: int | None = None
    max_hits: int | None = None
    require_truth: bool = True
    on_nonfinite: Literal["skip", "error"] = "skip"
    on_negative_energy: Literal["skip", "clip", "error"] = "skip"
    on_too_many_hits: Literal["truncate", "skip", "error"] = "truncate"
    n_particles: int | None = None
    step_size: int | str = "100 MB"

    def __post_init__(self) -> None:
        choices = {
            "on_nonfinite": ("skip", "error"),
            "on_negative_energy": ("skip", "clip", "error"),
            "on_too_many_hits": ("truncate", "skip", "error"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"invalid value {getattr(self, name)!r} for {name!r}: choose one of "
                    f"{list(allowed)}"
                )
        for name in ("max_events", "max_hits", "n_particles"):
            v = getattr(self, name)
            if v is not None and v < (0 if name == "n_particles" else 1):
                raise ConfigError(f"{name} must be positive, got {v}")


@dataclass(frozen=True)
class ChunkInfo:
    """Where a chunk comes from: file, tree and entry range ``[entry_start, entry_stop)``.

    Examples
    --------
    >>> ChunkInfo("a.root", "events", 0, 100).entry_stop
    100
    """

    file: str
    tree: str
    entry_start: int
    entry_stop: int


# ---------------------------------------------------------------------------------------------
# chunk conversion


def _counts(a: ak.Array) -> np.ndarray:
    return np.asarray(ak.num(a, axis=1), dtype=np.int64)


def _flat(a: ak.Array, dtype: Any) -> np.ndarray:
    return np.asarray(ak.flatten(a, axis=1), dtype=dtype)


def _check_lengths(
    arr: ak.Array, branches: list[str], info: ChunkInfo, what: str
) -> np.ndarray | None:
    """Common per-event lengths of the jagged ``branches``, or DataError at the first mismatch."""
    if not branches:
        return None
    ref = _counts(arr[branches[0]])
    for b in branches[1:]:
        c = _counts(arr[b])
        if not np.array_equal(c, ref):
            i = int(np.argmax(c != ref))
            raise DataError(
                f"{what} branches {branches[0]!r} and {b!r} have different lengths in this "
                f"event ({ref[i]} and {c[i]}); every {what} branch must have one value per "
                f"{what}: fix the file or the schema",
                file=info.file,
                tree=info.tree,
                branch=b,
                entry=info.entry_start + i,
            )
    return ref


def _first_bad(mask: np.ndarray, counts: np.ndarray) -> int:
    """Event index of the first true element of the per-hit ``mask``."""
    hit = int(np.argmax(mask))
    return int(np.searchsorted(np.cumsum(counts), hit, side="right"))


@dataclass
class _HitColumns:
    """Flat per-hit columns of a chunk (stage 1 of :func:`chunk_to_data`), in GeV and cm."""

    counts: np.ndarray  # [n_ev] hits per event
    pcounts: np.ndarray | None  # [n_ev] particles per event (None: no particle branches)
    cols: dict[str, np.ndarray]  # role -> [n_hit] (x, y, z, energy, dx, dy, dz, time, layer)
    frac: np.ndarray  # [n_hit, Kf] truth fractions
    truth_index: np.ndarray | None  # [n_hit] int64 when the schema names truth_index

    @property
    def n_hit(self) -> int:
        return int(self.counts.sum())


@dataclass
class _Selection:
    """Which events and hits a chunk keeps (stages 2-3 of :func:`chunk_to_data`)."""

    keep_ev: np.ndarray  # [n_ev] bool
    keep_hit: np.ndarray  # [n_hit] bool
    new_counts: np.ndarray  # [n_kept] hits per kept event
    energy: np.ndarray  # [n_hit] energies (negative ones set to 0 by on_negative_energy="clip")


def _chunk_plan(arr: ak.Array, info: ChunkInfo, schema: Schema, plan: Plan | None) -> Plan:
    """The branches of a chunk: ``plan`` if the caller has one, else from the chunk's fields."""
    if plan is not None:
        return plan
    return make_plan(schema, classify_array(arr), file=info.file)


def _integral(
    a: np.ndarray, branch: str, key: str, counts: np.ndarray | None, info: ChunkInfo
) -> np.ndarray:
    """``a`` (the values of schema key ``key``) as int64; a float ``a`` must hold whole numbers
    (DataError at the first that is not: ``a`` per hit if ``counts`` is given, else per
    event)."""
    if a.dtype.kind != "f":
        return a.astype(np.int64, copy=False)
    bad = ~np.isfinite(a) | (a != np.round(a))
    if bad.any():
        i = _first_bad(bad, counts) if counts is not None else int(np.argmax(bad))
        v = a[int(np.argmax(bad))].item()
        raise DataError(
            f"branch {branch!r} given for {key} is a float branch with the value {v!r}, not a "
            f"whole number; {key} needs integers: fix the file or name the right branch in "
            f"{how_to_set(key)}",
            file=info.file,
            tree=info.tree,
            branch=branch,
            entry=info.entry_start + i,
        )
    return a.astype(np.int64)


def _hit_columns(arr: ak.Array, info: ChunkInfo, schema: Schema, plan: Plan) -> _HitColumns:
    """Stage 1: check the per-event lengths of the jagged branches, flatten the hits, convert
    them to GeV and cm, find the cell sizes and check the truth."""
    hit_names = [plan.hit["x"], *[b for r, b in plan.hit.items() if r != "x"], *plan.fractions]
    counts = _check_lengths(arr, list(dict.fromkeys(hit_names)), info, "hit")
    assert counts is not None
    pcounts: np.ndarray | None
    if plan.particle_jagged:
        pcounts = _check_lengths(arr, [v[0] for v in plan.particle.values()], info, "particle")
    elif plan.particle:
        pcounts = np.full(len(arr), plan.n_stacked, dtype=np.int64)
    else:
        pcounts = None
    n_hit = int(counts.sum())
    escale, lscale = schema.energy_scale, schema.length_scale
    cols: dict[str, np.ndarray] = {}
    for role in _FLOAT_ROLES:
        if role in plan.hit:
            col = _flat(arr[plan.hit[role]], np.float32)
            scale = escale if role == "energy" else 1.0 if role == "time" else lscale
            cols[role] = col if scale == 1.0 else col * np.float32(scale)
    if "layer" in plan.hit:
        b = plan.hit["layer"]
        cols["layer"] = _integral(_flat(arr[b], None), b, "layer", counts, info)
    _cell_sizes(arr, cols, counts, info, schema, plan)
    frac = _truth_fractions(arr, plan, counts, info)
    tidx = None
    if "truth_index" in plan.hit:
        b = plan.hit["truth_index"]
        tidx = _integral(_flat(arr[b], None), b, "truth_index", counts, info)
        if plan.fractions:
            _check_index_agrees(tidx, frac, counts, info, plan)
        else:
            kf = int(tidx.max()) + 1 if n_hit and tidx.max() >= 0 else 0
            frac = np.zeros((n_hit, kf), dtype=np.float32)
            sig = tidx >= 0
            frac[np.nonzero(sig)[0], tidx[sig]] = 1.0
        tidx = np.where(tidx < 0, -1, tidx)
    return _HitColumns(counts, pcounts, cols, frac, tidx)


def _cell_sizes(
    arr: ak.Array,
    cols: dict[str, np.ndarray],
    counts: np.ndarray,
    info: ChunkInfo,
    schema: Schema,
    plan: Plan,
) -> None:
    """Fill ``cols`` dx, dy, dz (and layer) not read from per-hit branches: from the geometry,
    the per-layer table, the constant ``cell_size`` or 1 cm, in that order."""
    n_hit = int(counts.sum())
    need = [r for r in ("dx", "dy", "dz") if r not in cols]
    where = {"file": info.file, "tree": info.tree}
    if plan.geometry is not None and (need or "layer" not in cols):
        geo = plan.geometry
        if "cell_id" in plan.hit:
            b = plan.hit["cell_id"]
            ids = _integral(_flat(arr[b], None), b, "cell_id", counts, info)
            order = np.argsort(geo.id)
            pos = np.clip(np.searchsorted(geo.id, ids, sorter=order), 0, max(len(order) - 1, 0))
            row = order[pos] if len(order) else np.zeros(n_hit, np.int64)
            miss = (geo.id[row] != ids) if len(order) else np.ones(n_hit, bool)
            if miss.any():
                raise DataError(
                    f"cell id {int(ids[int(np.argmax(miss))])} is not in the geometry "
                    f"{schema.geometry} ({geo.n_cells} cells); check the geometry file or the "
                    f"cell_id branch",
                    **where,
                    branch=b,
                    entry=info.entry_start + _first_bad(miss, counts),
                )
        else:
            row = geo.locate(cols["x"], cols["y"], cols["z"])
            miss = row < 0
            if miss.any():
                h = int(np.argmax(miss))
                raise DataError(
                    f"hit at ({cols['x'][h]:g}, {cols['y'][h]:g}, {cols['z'][h]:g}) cm is in no "
                    f"cell of the geometry {schema.geometry}; check length_unit (the geometry is "
                    "in cm) and the geometry file, or name a cell_id branch",
                    **where,
                    branch=plan.hit["x"],
                    entry=info.entry_start + _first_bad(miss, counts),
                )
        for r in need:
            cols[r] = np.asarray(getattr(geo, r)[row], dtype=np.float32)
        if "layer" not in cols:
            cols["layer"] = np.asarray(geo.layer[row], dtype=np.int64)
        return
    if "layer" not in cols:
        cols["layer"] = np.zeros(n_hit, dtype=np.int64)
    if not need:
        return
    lscale = np.float32(schema.length_scale)
    if schema.cell_size_by_layer is not None:
        table = schema.cell_size_by_layer
        layers = np.array(sorted(table), dtype=np.int64)
        sizes = np.array([table[int(k)] for k in layers], dtype=np.float32) * lscale
        lay = cols["layer"]
        pos = np.clip(np.searchsorted(layers, lay), 0, len(layers) - 1)
        miss = layers[pos] != lay
        if miss.any():
            h = int(np.argmax(miss))
            raise DataError(
                f"layer {int(lay[h])} is not in cell_size_by_layer (layers {layers.tolist()}); "
                f"add its [dx, dy, dz] to cell_size_by_layer in the schema",
                **where,
                branch=plan.hit["layer"],
                entry=info.entry_start + _first_bad(miss, counts),
                layer=int(lay[h]),
            )
        for r in need:
            cols[r] = sizes[pos, ("dx", "dy", "dz").index(r)]
        return
    const = schema.cell_size if schema.cell_size is not None else (1.0, 1.0, 1.0)
    scale = lscale if schema.cell_size is not None else np.float32(1.0)
    for r in need:
        cols[r] = np.full(n_hit, np.float32(const[("dx", "dy", "dz").index(r)]) * scale)


def _truth_fractions(arr: ak.Array, plan: Plan, counts: np.ndarray, info: ChunkInfo) -> np.ndarray:
    """``[N, Kf]`` truth fractions from the fraction branches, checked to lie in [0, 1] with a
    per-hit sum of at most 1 (within :data:`FRACTION_TOLERANCE`; NaN is left to the
    non-finite policy)."""
    n_hit = int(counts.sum())
    frac = np.empty((n_hit, len(plan.fractions)), dtype=np.float32)
    for j, b in enumerate(plan.fractions):
        frac[:, j] = _flat(arr[b], np.float32)
        col = frac[:, j]
        with np.errstate(invalid="ignore"):
            bad = (col < -FRACTION_TOLERANCE) | (col > 1 + FRACTION_TOLERANCE)
        if bad.any():
            raise DataError(
                f"truth fraction {float(col[int(np.argmax(bad))])!r} is outside [0, 1]; "
                "truth_fractions must name branches of energy fractions (not energies, not "
                "percentages): fix the file or the schema",
                file=info.file,
                tree=info.tree,
                branch=b,
                entry=info.entry_start + _first_bad(bad, counts),
            )
    if plan.fractions:
        with np.errstate(invalid="ignore"):
            np.clip(frac, 0.0, 1.0, out=frac)
            total = frac.sum(axis=1)
            bad = total > 1 + FRACTION_TOLERANCE
        if bad.any():
            raise DataError(
                f"the truth fractions of a hit sum to {float(total[int(np.argmax(bad))]):.6g}, "
                f"more than 1; the branches {plan.fractions} must be fractions of the hit energy "
                "that sum to 1 at most: fix the file or the schema",
                file=info.file,
                tree=info.tree,
                branch=plan.fractions[0],
                entry=info.entry_start + _first_bad(bad, counts),
            )
    return frac


def _check_index_agrees(
    tidx: np.ndarray, frac: np.ndarray, counts: np.ndarray, info: ChunkInfo, plan: Plan
) -> None:
    """With both truth forms, each hit's index must point to a particle with a non-zero
    fraction (negative indices, noise, are not checked)."""
    sig = tidx >= 0
    kf = frac.shape[1]
    bad = sig & (tidx >= kf)
    ok = sig & ~bad
    rows = np.nonzero(ok)[0]
    zero = np.zeros_like(sig)
    zero[rows] = ~(frac[rows, tidx[rows]] > 0)
    bad |= zero
    if bad.any():
        h = int(np.argmax(bad))
        raise DataError(
            f"truth index {int(tidx[h])} of a hit points to a particle with no truth fraction "
            f"(fractions {frac[h].tolist()}); truth_index and truth_fractions disagree: fix the "
            "file, or name only one of them in the schema",
            file=info.file,
            tree=info.tree,
            branch=plan.hit["truth_index"],
            entry=info.entry_start + _first_bad(bad, counts),
        )


def _nonfinite_events(
    hits: _HitColumns, ev: np.ndarray, info: ChunkInfo, plan: Plan, policy: ReadPolicy
) -> np.ndarray:
    """``[n_ev]`` events with a NaN or infinite hit value or truth fraction (or a DataError at
    the first one, with ``on_nonfinite="error"``)."""
    counts, frac, n_hit = hits.counts, hits.frac, hits.n_hit
    bad_hit = np.zeros(n_hit, dtype=bool)
    for role in _FLOAT_ROLES:
        if role in hits.cols and hits.cols[role].dtype.kind == "f":
            col_bad = ~np.isfinite(hits.cols[role])
            if policy.on_nonfinite == "error" and col_bad.any():
                i = _first_bad(col_bad, counts)
                raise DataError(
                    "NaN or infinite value in this event; fix the file, or read with "
                    "on_nonfinite='skip' to skip such events (they are counted)",
                    file=info.file,
                    tree=info.tree,
                    branch=plan.hit.get(role, role),
                    entry=info.entry_start + i,
                )
            bad_hit |= col_bad
    if frac.shape[1]:
        fbad = ~np.isfinite(frac)
        if policy.on_nonfinite == "error" and fbad.any():
            h, j = np.argwhere(fbad)[0]
            i = _first_bad(np.arange(n_hit) == h, counts)
            raise DataError(
                "NaN or infinite truth fraction in this event; fix the file, or read with "
                "on_nonfinite='skip'",
                file=info.file,
                tree=info.tree,
                branch=plan.fractions[j] if plan.fractions else None,
                entry=info.entry_start + i,
            )
        bad_hit |= fbad.any(axis=1)
    bad_ev = np.zeros(len(counts), dtype=bool)
    bad_ev[ev[bad_hit]] = True
    return bad_ev


def _skip_reasons(
    hits: _HitColumns, ev: np.ndarray, info: ChunkInfo, plan: Plan, policy: ReadPolicy
) -> np.ndarray:
    """Stage 2: ``[n_ev]`` reason code of each event (``_KEEP`` for a good one, else the first
    reason in ``_REASON_CODES`` order), or a DataError where ``policy`` says so."""
    counts = hits.counts
    n_ev = len(counts)
    reason = np.zeros(n_ev, dtype=np.int8)

    def flag(code: int, event_mask: np.ndarray) -> None:
        reason[(reason == _KEEP) & event_mask] = code

    flag(_REASON_CODES["empty"], counts == 0)
    flag(_REASON_CODES["nonfinite"], _nonfinite_events(hits, ev, info, plan, policy))
    if policy.on_negative_energy != "clip":
        neg_ev = np.zeros(n_ev, dtype=bool)
        neg_ev[ev[hits.cols["energy"] < 0]] = True
        if policy.on_negative_energy == "error" and (neg_ev & (reason == _KEEP)).any():
            i = int(np.argmax(neg_ev & (reason == _KEEP)))
            raise DataError(
                "negative hit energy in this event; fix the file, or read with "
                "on_negative_energy='skip' (skip the event) or 'clip' (set it to 0)",
                file=info.file,
                tree=info.tree,
                branch=plan.hit["energy"],
                entry=info.entry_start + i,
            )
        flag(_REASON_CODES["negative_energy"], neg_ev)
    over = _over_max_hits(counts, policy)
    if policy.on_too_many_hits == "error" and (over & (reason == _KEEP)).any():
        i = int(np.argmax(over & (reason == _KEEP)))
        raise DataError(
            f"event has {counts[i]} hits, more than max_hits={policy.max_hits}; raise max_hits "
            "or read with on_too_many_hits='truncate' or 'skip'",
            file=info.file,
            tree=info.tree,
            branch=plan.hit["x"],
            entry=info.entry_start + i,
        )
    if policy.on_too_many_hits == "skip":
        flag(_REASON_CODES["too_many_hits"], over)
    return reason


def _over_max_hits(counts: np.ndarray, policy: ReadPolicy) -> np.ndarray:
    """``[n_ev]`` events with more than ``policy.max_hits`` hits."""
    if policy.max_hits is None:
        return np.zeros(len(counts), dtype=bool)
    return counts > policy.max_hits


def _count_events(
    reason: np.ndarray,
    counts: np.ndarray,
    info: ChunkInfo,
    summary: ReadSummary,
    limit: int | None,
) -> np.ndarray:
    """Stage 3a: apply ``limit`` to the kept events (later entries are marked not looked at,
    -1, in ``reason``), add the events read and skipped to ``summary``; ``[n_ev]`` kept."""
    n_look = len(reason)
    if limit is not None:
        kept_idx = np.nonzero(reason == _KEEP)[0]
        if len(kept_idx) > limit:
            n_look = int(kept_idx[limit - 1]) + 1 if limit > 0 else 0
            reason[n_look:] = -1  # not looked at
    summary.events_read += n_look
    summary.hits_read += int(counts[:n_look].sum())
    for name, code in _REASON_CODES.items():
        sel = np.nonzero(reason == code)[0]
        if len(sel):
            summary.add_skip(name, info.file, info.entry_start + int(sel[0]), len(sel))
            if len(summary.examples[name]) < 5:
                for s in sel[1 : 5 - len(summary.examples[name]) + 1]:
                    summary.examples[name].append((info.file, info.entry_start + int(s)))
    return reason == _KEEP


def _select_hits(
    hits: _HitColumns,
    ev: np.ndarray,
    keep_ev: np.ndarray,
    policy: ReadPolicy,
    summary: ReadSummary,
) -> _Selection:
    """Stage 3b: the hits of the kept events, negative energies clipped and events truncated
    to ``max_hits`` where ``policy`` says so (counted in ``summary``)."""
    counts, n_hit = hits.counts, hits.n_hit
    keep_hit = keep_ev[ev]
    energy = hits.cols["energy"]
    if policy.on_negative_energy == "clip":
        neg = energy < 0
        summary.hits_clipped += int((neg & keep_hit).sum())
        energy = np.where(neg, np.float32(0.0), energy)
    if policy.max_hits is not None and policy.on_too_many_hits == "truncate":
        trunc_ev = _over_max_hits(counts, policy) & keep_ev
        if trunc_ev.any():
            order = np.lexsort((-energy, ev))  # by event, then energy descending
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            rank = np.empty(n_hit, dtype=np.int64)
            rank[order] = np.arange(n_hit) - starts[ev[order]]
            drop = (rank >= policy.max_hits) & trunc_ev[ev]
            summary.events_truncated += int(trunc_ev.sum())
            summary.hits_dropped += int(drop.sum())
            keep_hit &= ~drop
    new_counts = np.bincount(ev[keep_hit], minlength=len(counts))[keep_ev]
    summary.events_kept += int(keep_ev.sum())
    summary.hits_kept += int(new_counts.sum())
    return _Selection(keep_ev, keep_hit, new_counts, energy)


def _hit_tensors(
    arr: ak.Array,
    hits: _HitColumns,
    chosen: _Selection,
    plan: Plan,
    features: FeatureSpec,
    normalization: Normalization | None,
    info: ChunkInfo,
) -> dict[str, Tensor]:
    """Stage 4a: the per-hit tensors of the whole chunk's kept hits (``y`` with ``Kf``
    columns)."""
    keep_hit, frac = chosen.keep_hit, hits.frac
    all_hits = bool(keep_hit.all())

    def sel(a: np.ndarray) -> np.ndarray:
        return a if all_hits else a[keep_hit]

    cols = {**hits.cols, "energy": chosen.energy}
    feat = torch.from_numpy(features.compute({k: sel(v) for k, v in cols.items()}))
    if normalization is not None:
        if tuple(normalization.names) != features.names:
            raise ConfigError(
                f"normalisation is for features {list(normalization.names)}, the reader makes "
                f"{list(features.names)}"
            )
        feat = normalization.apply(feat)
    if "noise" in plan.hit:
        b = plan.hit["noise"]
        noise = _integral(_flat(arr[b], None), b, "noise", hits.counts, info) != 0
    else:
        noise = frac.sum(axis=1) <= 0 if frac.shape[1] else np.zeros(hits.n_hit, dtype=bool)
    out = {
        "x": feat,
        "pos": torch.from_numpy(np.stack([sel(cols["x"]), sel(cols["y"]), sel(cols["z"])], 1)),
        "energy": torch.from_numpy(np.ascontiguousarray(sel(chosen.energy))),
        "y": torch.from_numpy(np.ascontiguousarray(sel(frac))),
        "noise": torch.from_numpy(np.ascontiguousarray(sel(noise))),
        "layer": torch.from_numpy(np.ascontiguousarray(sel(cols["layer"]))),
    }
    if hits.truth_index is not None:
        out["hit_particle"] = torch.from_numpy(np.ascontiguousarray(sel(hits.truth_index)))
    return out


def _n_columns(kf: int, pcounts: np.ndarray | None, info: ChunkInfo, policy: ReadPolicy) -> int:
    """Number K of truth columns: the larger of ``kf`` and the particles per event, or
    ``policy.n_particles`` (a DataError if the data has more)."""
    k = kf
    if pcounts is not None and len(pcounts):
        k = max(k, int(pcounts.max()))
    if policy.n_particles is None:
        return k
    if k > policy.n_particles:
        i = int(np.argmax(pcounts > policy.n_particles)) if pcounts is not None else 0
        raise DataError(
            f"the data has {k} particles (truth columns) but n_particles="
            f"{policy.n_particles}; raise n_particles or leave it None",
            file=info.file,
            tree=info.tree,
            entry=info.entry_start + i,
        )
    return policy.n_particles


def _particle_matrix(
    arr: ak.Array, plan: Plan, role: str, k: int, dtype: Any, info: ChunkInfo
) -> np.ndarray:
    """``[n_ev, k]`` of particle role ``role`` (jagged padded with 0, or stacked scalars)."""
    n_ev = len(arr)
    if k == 0 or role not in plan.particle:
        return np.zeros((n_ev, k), dtype=dtype)
    names = plan.particle[role]
    if plan.particle_jagged:
        raw = ak.to_numpy(ak.fill_none(ak.pad_none(arr[names[0]], k, axis=1, clip=True), 0))
        m = np.asarray(raw).reshape(n_ev, k)
    else:
        m = np.zeros((n_ev, k), dtype=np.float64 if dtype is not np.int64 else np.int64)
        for j, b in enumerate(names[:k]):
            m[:, j] = np.asarray(arr[b])
    if dtype is np.int64:
        for b in names:
            if b in plan.float_int:
                if plan.particle_jagged:
                    _integral(_flat(arr[b], None), b, f"particle_{role}", _counts(arr[b]), info)
                else:
                    _integral(np.asarray(arr[b]), b, f"particle_{role}", None, info)
        return m.astype(np.int64)
    return m.astype(dtype)


def _event_tensors(
    arr: ak.Array, info: ChunkInfo, plan: Plan, k: int, schema: Schema
) -> dict[str, Tensor]:
    """Stage 4b: per-event tensors of every event of the chunk (particles padded to ``k``)."""
    n_ev = len(arr)
    escale, lscale = schema.energy_scale, schema.length_scale

    def pmat(role: str, dtype: Any, scale: float = 1.0) -> np.ndarray:
        m = _particle_matrix(arr, plan, role, k, dtype, info)
        return m if scale == 1.0 else m * np.float32(scale)

    if "event_id" in plan.event:
        b = plan.event["event_id"]
        ev_id = _integral(np.asarray(arr[b]), b, "event_id", None, info)
    else:
        ev_id = info.entry_start + np.arange(n_ev, dtype=np.int64)
    if "weight" in plan.event:
        w = np.asarray(arr[plan.event["weight"]], dtype=np.float32)
    else:
        w = np.ones(n_ev, dtype=np.float32)
    p_xy = np.stack([pmat("x", np.float32, lscale), pmat("y", np.float32, lscale)], axis=-1)
    return {
        "particle_energy": torch.from_numpy(pmat("energy", np.float32, escale)),
        "particle_pdg": torch.from_numpy(pmat("pdg", np.int64)),
        "particle_deposited": torch.from_numpy(pmat("deposited", np.float32, escale)),
        "particle_xy": torch.from_numpy(np.ascontiguousarray(p_xy.reshape(n_ev, k, 2))),
        "event_id": torch.from_numpy(ev_id),
        "entry": torch.from_numpy(info.entry_start + np.arange(n_ev, dtype=np.int64)),
        "weight": torch.from_numpy(w),
    }


def _assemble(
    hit_t: dict[str, Tensor], event_t: dict[str, Tensor], chosen: _Selection
) -> list[Data]:
    """Stage 5: one ``Data`` per kept event (a loop over events; the tensors are views)."""
    sizes = chosen.new_counts.tolist()
    parts = {name: torch.split(t, sizes) for name, t in hit_t.items()}
    out: list[Data] = []
    for j, i in enumerate(np.nonzero(chosen.keep_ev)[0].tolist()):
        fields = {name: p[j] for name, p in parts.items()}
        fields.update({name: t[i : i + 1] for name, t in event_t.items()})
        out.append(_make_data(fields))
    return out


def chunk_to_data(
    arr: ak.Array,
    info: ChunkInfo,
    schema: Schema | None = None,
    policy: ReadPolicy | None = None,
    *,
    features: FeatureSpec | None = None,
    normalization: Normalization | None = None,
    summary: ReadSummary | None = None,
    limit: int | None = None,
    status: np.ndarray | None = None,
    _plan_: Plan | None = None,
) -> list[Data]:
    """Convert one awkward chunk (as yielded by :func:`calo.io.iterate_events`) to ``Data``.

    In stages: flatten the hits, check the branch lengths and values and convert units; flag
    bad events (or raise, as ``policy`` says); apply ``limit`` and count; select the hits kept
    (clipped, truncated); build the chunk's tensors; split them into one ``Data`` per kept
    event.

    Parameters
    ----------
    arr, info:
        The chunk and where it comes from (for error messages and event numbers).
    schema, policy:
        Branch names and units, and the bad-event policy (defaults ``Schema.calo()``,
        ``ReadPolicy()``).
    features, normalization:
        Columns of ``Data.x`` (default :class:`FeatureSpec`) and their normalisation
        (``None``: raw features).
    summary:
        Counts are added to it when given.
    limit:
        Convert at most this many kept events; later entries are not counted as read.
    status:
        An integer array of ``len(arr)`` that receives each entry's status: 0 kept, a code of
        :data:`calo.io.STATUS_CODES` for a skipped event, -1 for an entry not looked at
        (past ``limit``). Used by ``calo-predict`` to keep one output entry per input entry.

    Returns
    -------
    list[Data]
        Fields as in ``docs/data_format.md``; ``y`` has ``K`` columns, the larger of the
        number of truth branches (or largest truth index + 1) and of particles in the chunk.

    Examples
    --------
    >>> import awkward as ak
    >>> arr = ak.Array({"hit_x": [[0.0]], "hit_y": [[0.0]], "hit_z": [[0.0]],
    ...                 "hit_energy": [[2.0]], "hit_pid": [[0]]})
    >>> s = Schema(x="hit_x", y="hit_y", z="hit_z", energy="hit_energy", truth_index="hit_pid")
    >>> d = chunk_to_data(arr, ChunkInfo("mem", "events", 0, 1), s)[0]
    >>> d.energy.tolist(), d.y.tolist(), d.event_id.tolist(), d.entry.tolist()
    ([2.0], [[1.0]], [0], [0])
    """
    schema = schema or Schema.calo()
    policy = policy or ReadPolicy()
    features = features or FeatureSpec()
    summary = summary if summary is not None else ReadSummary()
    plan = _chunk_plan(arr, info, schema, _plan_)
    hits = _hit_columns(arr, info, schema, plan)
    ev = np.repeat(np.arange(len(arr)), hits.counts)  # event index of each hit
    reason = _skip_reasons(hits, ev, info, plan, policy)
    keep_ev = _count_events(reason, hits.counts, info, summary, limit)
    if status is not None:
        if len(status) != len(arr):
            raise ConfigError(f"status has {len(status)} entries, the chunk {len(arr)}")
        status[:] = reason
    chosen = _select_hits(hits, ev, keep_ev, policy, summary)
    hit_t = _hit_tensors(arr, hits, chosen, plan, features, normalization, info)
    k = _n_columns(hits.frac.shape[1], hits.pcounts, info, policy)
    if hit_t["y"].shape[1] < k:
        hit_t["y"] = torch.nn.functional.pad(hit_t["y"], (0, k - hit_t["y"].shape[1]))
    return _assemble(hit_t, _event_tensors(arr, info, plan, k, schema), chosen)


def _data_public(fields: dict[str, torch.Tensor]) -> Data:
    return Data(**fields)


def _data_fast(fields: dict[str, torch.Tensor]) -> Data:
    # A fresh Data has no cached attributes, so filling its store's mapping directly is what
    # Data(**fields) does, without ~8 us of attribute machinery per field.
    d = Data()
    d._store._mapping.update(fields)
    return d


def _choose_data_maker() -> Any:
    """Use the fast constructor only if it gives the same object as the public one."""
    probe = {"x": torch.zeros(2, 1), "pos": torch.ones(2, 3), "event_id": torch.zeros(1)}
    try:
        a, b = _data_fast(probe), _data_public(probe)
        same = (
            sorted(a.keys()) == sorted(b.keys())
            and all(a[k] is b[k] for k in probe)
            and a.num_nodes == b.num_nodes == 2
        )
    except Exception:
        same = False
    return _data_fast if same else _data_public


_make_data = _choose_data_maker()


def pad_particles(data: Data, k: int) -> Data:
    """Pad the truth columns ``y`` and the particle fields of ``data`` to ``k`` particles.

    Padding columns are 0 (no energy, PDG 0). ``data`` is changed in place and returned.

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> d = Data(y=torch.ones(2, 1), particle_energy=torch.ones(1, 1),
    ...          particle_pdg=torch.ones(1, 1, dtype=torch.long),
    ...          particle_deposited=torch.ones(1, 1), particle_xy=torch.ones(1, 1, 2))
    >>> pad_particles(d, 3).y.tolist()
    [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    """
    have = data.y.shape[1]
    if have > k:
        raise DataError(f"cannot pad {have} particles down to {k}")
    if have == k:
        return data
    f = torch.nn.functional.pad
    data.y = f(data.y, (0, k - have))
    data.particle_energy = f(data.particle_energy, (0, k - have))
    data.particle_pdg = f(data.particle_pdg, (0, k - have))
    data.particle_deposited = f(data.particle_deposited, (0, k - have))
    data.particle_xy = f(data.particle_xy, (0, 0, 0, k - have))
    return data
