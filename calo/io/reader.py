"""Read ROOT hit trees into torch_geometric ``Data`` objects, chunk by chunk.

Reading streams through :meth:`uproot.TTree.iterate` with a step size, so memory is bounded by
one chunk plus the events kept. Each chunk is converted at once: awkward -> flat numpy columns
plus per-event counts -> one tensor per field for the whole chunk -> per-event views
(``torch.split``). Only the final ``Data`` construction loops, over events, never over hits.

Bad input has a defined behaviour (see :class:`ReadPolicy`): a missing or unreadable file, tree
or branch raises :class:`calo.errors.DataError` naming file, tree, branch and entry and saying
what to do; bad events are skipped and counted in a :class:`calo.io.ReadSummary` (or raise,
by option).

Examples
--------
>>> import tempfile, pathlib, numpy as np, awkward as ak, uproot
>>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny.root"
>>> hits = ak.zip({"x": [[0.0, 1.0], [2.0]], "y": [[0.0, 0.0], [1.0]], "z": [[1.0, 2.0], [1.0]],
...                "energy": [[1.0, 2.0], [3.0]], "truth": [[0, 1], [0]]})
>>> with uproot.recreate(p) as f:
...     _ = f.mktree("events", {"hit": hits.type})
...     f["events"].extend({"hit": hits})
>>> s = Schema(layer=None, dx=None, dy=None, dz=None, truth_fractions=None,
...            truth_index="hit_truth", noise=None, event_id=None,
...            particle_energy=None, particle_pdg=None, particle_deposited=None,
...            particle_x=None, particle_y=None)
>>> data, summary = read_data(p, s)
>>> len(data), data[0].y.tolist()
(2, [[1.0, 0.0], [0.0, 1.0]])
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import awkward as ak
import numpy as np
import torch
import uproot
from torch import Tensor
from torch_geometric.data import Data

from calo.errors import ConfigError, DataError
from calo.io.features import FeatureSpec, Normalization
from calo.io.schema import Schema
from calo.io.summary import STATUS_CODES, ReadSummary

__all__ = [
    "ChunkInfo",
    "ReadPolicy",
    "chunk_to_data",
    "expand_paths",
    "iter_data",
    "iterate_events",
    "pad_particles",
    "read_data",
]

PathLike = str | os.PathLike
Paths = PathLike | Sequence[PathLike]

_KEEP = 0
_REASON_CODES = STATUS_CODES
#: per-hit float columns (read as float32 and checked for NaN/inf)
_FLOAT_ROLES = ("x", "y", "z", "energy", "dx", "dy", "dz", "time")


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
        Chunk size for :meth:`uproot.TTree.iterate` (entries as int, or bytes as ``"100 MB"``).

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
# files, trees, branches


def expand_paths(paths: Paths) -> list[str]:
    """Turn a path, a glob pattern or a list of them into a list of existing file names.

    Raises :class:`calo.errors.DataError` for a file that does not exist or a pattern that
    matches nothing.

    Examples
    --------
    >>> expand_paths([])
    []
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        s = os.fspath(p)
        if os.path.exists(s):
            out.append(s)
            continue
        if any(c in s for c in "*?["):
            matches = sorted(glob.glob(s))
            if not matches:
                raise DataError("no file matches this pattern; check the path", file=s)
            out.extend(matches)
            continue
        raise DataError("file does not exist; check the path", file=s)
    return out


def _why(e: BaseException) -> str:
    """One-line ``Type: message`` of an exception from uproot or the decompressors."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def _open(path: str) -> Any:
    try:
        return uproot.open(path)
    except FileNotFoundError:
        raise DataError("file does not exist; check the path", file=path) from None
    except Exception as e:
        raise DataError(
            f"cannot open as a ROOT file ({_why(e)}); the file is not ROOT, "
            "truncated or corrupt: rewrite or re-download it",
            file=path,
        ) from None


def _get_tree(f: Any, path: str, schema: Schema) -> Any:
    try:
        classnames = f.classnames()
    except Exception as e:
        raise DataError(
            f"cannot read the file's directory ({_why(e)}); the file is truncated "
            "or corrupt: rewrite or re-download it",
            file=path,
        ) from None
    names = {k.split(";")[0]: c for k, c in classnames.items()}
    trees = sorted(k for k, c in names.items() if c == "TTree")
    if schema.tree not in names:
        raise DataError(
            f"tree {schema.tree!r} not found; the file has trees {trees}"
            f" (all objects: {sorted(names)}). Set Schema.tree to one of them",
            file=path,
            tree=schema.tree,
        )
    if names[schema.tree] != "TTree":
        raise DataError(
            f"object {schema.tree!r} is a {names[schema.tree]}, not a TTree; calo reads TTrees "
            "(write them with uproot's mktree/extend, not by assigning a dict, which makes an "
            f"RNTuple). Trees in the file: {trees}",
            file=path,
            tree=schema.tree,
        )
    try:
        return f[schema.tree]
    except Exception as e:
        raise DataError(
            f"cannot read the tree header ({_why(e)}); the file is truncated or "
            "corrupt: rewrite or re-download it",
            file=path,
            tree=schema.tree,
        ) from None


@dataclass
class _Plan:
    hit: dict[str, str]
    fractions: list[str]
    particle: dict[str, str]
    event: dict[str, str]

    def branches(self) -> list[str]:
        out = [*self.hit.values(), *self.fractions, *self.particle.values(), *self.event.values()]
        return list(dict.fromkeys(out))


def _plan(tree: Any, schema: Schema, path: str, require_truth: bool) -> _Plan:
    available = list(tree.keys())
    hit = schema.hit_branches()
    fractions = schema.fraction_branches(available, file=path)
    if fractions:
        hit.pop("truth_index", None)
    particle = schema.particle_branches()
    event = schema.event_branches()
    for b in [*hit.values(), *particle.values(), *event.values()]:
        if b not in available:
            raise DataError(
                f"branch {b!r} not found; the tree has branches {sorted(available)}. "
                "Set the matching Schema field to the right name, or to None if the tree has "
                "no such branch",
                file=path,
                tree=schema.tree,
                branch=b,
            )
    if require_truth and not fractions and "truth_index" not in hit:
        raise DataError(
            f"no truth branches: truth_fractions={schema.truth_fractions!r} matches none of "
            f"{sorted(available)} and truth_index is not set. Set Schema.truth_fractions or "
            "Schema.truth_index, or read with require_truth=False",
            file=path,
            tree=schema.tree,
        )
    return _Plan(hit, fractions, particle, event)


def _iter_file(
    path: str, schema: Schema, step_size: str | int, require_truth: bool
) -> Iterator[tuple[ak.Array, ChunkInfo, _Plan]]:
    with _open(path) as f:
        tree = _get_tree(f, path, schema)
        plan = _plan(tree, schema, path, require_truth)
        it = tree.iterate(plan.branches(), step_size=step_size, report=True, library="ak")
        start = 0
        while True:
            try:
                arr, report = next(it)
            except StopIteration:
                return
            except DataError:
                raise
            except Exception as e:
                raise DataError(
                    f"cannot read entries from {start} on ({_why(e)}); the file "
                    "is truncated or corrupt: rewrite it, or read only the files that are intact",
                    file=path,
                    tree=schema.tree,
                    entry=start,
                ) from None
            info = ChunkInfo(path, schema.tree, report.tree_entry_start, report.tree_entry_stop)
            start = info.entry_stop
            yield arr, info, plan


def iterate_events(
    paths: Paths,
    schema: Schema | None = None,
    step_size: str | int = "100 MB",
    *,
    report: bool = False,
    require_truth: bool = False,
) -> Iterator[ak.Array] | Iterator[tuple[ak.Array, ChunkInfo]]:
    """Stream the schema's branches of one or more files as awkward chunks.

    Parameters
    ----------
    paths:
        A file, a glob pattern or a list of them.
    schema:
        Branch names (default ``Schema()``).
    step_size:
        Entries per chunk (int) or memory per chunk (``"100 MB"``).
    report:
        Also yield a :class:`ChunkInfo` (file, tree, entry range) with each chunk.
    require_truth:
        Raise if the tree has no truth branches.

    Yields
    ------
    ak.Array or (ak.Array, ChunkInfo)
        One record per event with the branch names as fields.

    Examples
    --------
    >>> import tempfile, pathlib, awkward as ak, uproot
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.root"
    >>> hits = ak.zip({"x": [[1.0], [2.0, 3.0]], "y": [[0.0], [0.0, 0.0]],
    ...                "z": [[0.0], [0.0, 0.0]], "energy": [[1.0], [1.0, 1.0]]})
    >>> with uproot.recreate(p) as f:
    ...     _ = f.mktree("events", {"hit": hits.type})
    ...     f["events"].extend({"hit": hits})
    >>> s = Schema(layer=None, dx=None, dy=None, dz=None, noise=None, event_id=None,
    ...            particle_energy=None, particle_pdg=None, particle_deposited=None,
    ...            particle_x=None, particle_y=None)
    >>> [len(c) for c in iterate_events(p, s, step_size=1)]
    [1, 1]
    """
    schema = schema or Schema()
    for path in expand_paths(paths):
        for arr, info, _ in _iter_file(path, schema, step_size, require_truth):
            yield (arr, info) if report else arr


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
                f"{what}: fix the file or the Schema",
                file=info.file,
                tree=info.tree,
                branch=b,
                entry=info.entry_start + i,
            )
    return ref


def _particle_matrix(arr: ak.Array, branch: str, k: int, dtype: Any) -> np.ndarray:
    if k == 0:
        return np.zeros((len(arr), 0), dtype=dtype)
    padded = ak.fill_none(ak.pad_none(arr[branch], k, axis=1, clip=True), 0)
    return np.asarray(ak.to_numpy(padded), dtype=dtype).reshape(len(arr), k)


def _first_bad(mask: np.ndarray, counts: np.ndarray) -> int:
    """Event index of the first true element of the per-hit ``mask``."""
    hit = int(np.argmax(mask))
    return int(np.searchsorted(np.cumsum(counts), hit, side="right"))


@dataclass
class _HitColumns:
    """Flat per-hit columns of a chunk (stage 1 of :func:`chunk_to_data`)."""

    counts: np.ndarray  # [n_ev] hits per event
    pcounts: np.ndarray | None  # [n_ev] particles per event (None: no particle branches)
    cols: dict[str, np.ndarray]  # role -> [n_hit] (x, y, z, energy, dx, dy, dz, time, layer)
    frac: np.ndarray  # [n_hit, Kf] truth fractions

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


def _chunk_plan(arr: ak.Array, info: ChunkInfo, schema: Schema, plan: _Plan | None) -> _Plan:
    """The branches of a chunk: ``plan`` if the caller has one, else from the schema."""
    if plan is not None:
        return plan
    fields = list(arr.fields)
    plan = _Plan(
        schema.hit_branches(),
        schema.fraction_branches(fields, file=info.file),
        schema.particle_branches(),
        schema.event_branches(),
    )
    if plan.fractions:
        plan.hit.pop("truth_index", None)
    return plan


def _hit_columns(arr: ak.Array, info: ChunkInfo, schema: Schema, plan: _Plan) -> _HitColumns:
    """Stage 1: check the per-event lengths of the jagged branches and flatten the hits."""
    hit_names = [plan.hit["x"], *[b for r, b in plan.hit.items() if r != "x"], *plan.fractions]
    counts = _check_lengths(arr, list(dict.fromkeys(hit_names)), info, "hit")
    assert counts is not None
    pcounts = _check_lengths(arr, list(plan.particle.values()), info, "particle")
    n_hit = int(counts.sum())
    cols: dict[str, np.ndarray] = {}
    for i, role in enumerate(("dx", "dy", "dz")):
        if role not in plan.hit:
            cols[role] = np.full(n_hit, schema.cell_size[i], dtype=np.float32)
    for role in _FLOAT_ROLES:
        if role in plan.hit:
            cols[role] = _flat(arr[plan.hit[role]], np.float32)
    cols["layer"] = (
        _flat(arr[plan.hit["layer"]], np.int64)
        if "layer" in plan.hit
        else np.zeros(n_hit, dtype=np.int64)
    )
    return _HitColumns(counts, pcounts, cols, _truth_fractions(arr, plan, n_hit))


def _truth_fractions(arr: ak.Array, plan: _Plan, n_hit: int) -> np.ndarray:
    """``[N, Kf]`` truth fractions from the fraction branches or the truth index (one-hot)."""
    if plan.fractions:
        frac = np.empty((n_hit, len(plan.fractions)), dtype=np.float32)
        for j, b in enumerate(plan.fractions):
            frac[:, j] = _flat(arr[b], np.float32)
        return frac
    if "truth_index" in plan.hit:
        tidx = _flat(arr[plan.hit["truth_index"]], np.int64)
        kf = int(tidx.max()) + 1 if n_hit and tidx.max() >= 0 else 0
        frac = np.zeros((n_hit, kf), dtype=np.float32)
        sig = tidx >= 0
        frac[np.nonzero(sig)[0], tidx[sig]] = 1.0
        return frac
    return np.zeros((n_hit, 0), dtype=np.float32)


def _nonfinite_events(
    hits: _HitColumns, ev: np.ndarray, info: ChunkInfo, plan: _Plan, policy: ReadPolicy
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
    hits: _HitColumns, ev: np.ndarray, info: ChunkInfo, plan: _Plan, policy: ReadPolicy
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
    plan: _Plan,
    features: FeatureSpec,
    normalization: Normalization | None,
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
        noise = _flat(arr[plan.hit["noise"]], bool)
    else:
        noise = frac.sum(axis=1) <= 0 if frac.shape[1] else np.zeros(hits.n_hit, dtype=bool)
    return {
        "x": feat,
        "pos": torch.from_numpy(np.stack([sel(cols["x"]), sel(cols["y"]), sel(cols["z"])], 1)),
        "energy": torch.from_numpy(np.ascontiguousarray(sel(chosen.energy))),
        "y": torch.from_numpy(np.ascontiguousarray(sel(frac))),
        "noise": torch.from_numpy(np.ascontiguousarray(sel(noise))),
        "layer": torch.from_numpy(np.ascontiguousarray(sel(cols["layer"]))),
    }


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


def _event_tensors(arr: ak.Array, info: ChunkInfo, plan: _Plan, k: int) -> dict[str, Tensor]:
    """Stage 4b: per-event tensors of every event of the chunk (particles padded to ``k``)."""
    n_ev = len(arr)

    def pmat(role: str, dtype: Any) -> np.ndarray:
        if role in plan.particle:
            return _particle_matrix(arr, plan.particle[role], k, dtype)
        return np.zeros((n_ev, k), dtype=dtype)

    if "event_id" in plan.event:
        ev_id = np.asarray(arr[plan.event["event_id"]], dtype=np.int64)
    else:
        ev_id = info.entry_start + np.arange(n_ev, dtype=np.int64)
    if "weight" in plan.event:
        w = np.asarray(arr[plan.event["weight"]], dtype=np.float32)
    else:
        w = np.ones(n_ev, dtype=np.float32)
    p_xy = np.stack([pmat("x", np.float32), pmat("y", np.float32)], axis=-1)
    return {
        "particle_energy": torch.from_numpy(pmat("energy", np.float32)),
        "particle_pdg": torch.from_numpy(pmat("pdg", np.int64)),
        "particle_deposited": torch.from_numpy(pmat("deposited", np.float32)),
        "particle_xy": torch.from_numpy(p_xy.reshape(n_ev, k, 2)),
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
    _plan_: _Plan | None = None,
) -> list[Data]:
    """Convert one awkward chunk (as yielded by :func:`iterate_events`) to ``Data`` objects.

    In stages: flatten the hits and check the branch lengths; flag bad events (or raise, as
    ``policy`` says); apply ``limit`` and count; select the hits kept (clipped, truncated);
    build the chunk's tensors; split them into one ``Data`` per kept event.

    Parameters
    ----------
    arr, info:
        The chunk and where it comes from (for error messages and event numbers).
    schema, policy:
        Branch names and bad-event policy (defaults ``Schema()``, ``ReadPolicy()``).
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
    >>> s = Schema(layer=None, dx=None, dy=None, dz=None, truth_fractions=None,
    ...            truth_index="hit_pid", noise=None, event_id=None, particle_energy=None,
    ...            particle_pdg=None, particle_deposited=None, particle_x=None, particle_y=None)
    >>> d = chunk_to_data(arr, ChunkInfo("mem", "events", 0, 1), s)[0]
    >>> d.energy.tolist(), d.y.tolist(), d.event_id.tolist(), d.entry.tolist()
    ([2.0], [[1.0]], [0], [0])
    """
    schema = schema or Schema()
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
    hit_t = _hit_tensors(arr, hits, chosen, plan, features, normalization)
    k = _n_columns(hits.frac.shape[1], hits.pcounts, info, policy)
    if hit_t["y"].shape[1] < k:
        hit_t["y"] = torch.nn.functional.pad(hit_t["y"], (0, k - hit_t["y"].shape[1]))
    return _assemble(hit_t, _event_tensors(arr, info, plan, k), chosen)


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


def read_data(
    paths: Paths,
    schema: Schema | None = None,
    *,
    max_events: int | None = None,
    max_hits: int | None = None,
    require_truth: bool = True,
    on_nonfinite: Literal["skip", "error"] = "skip",
    on_negative_energy: Literal["skip", "clip", "error"] = "skip",
    on_too_many_hits: Literal["truncate", "skip", "error"] = "truncate",
    n_particles: int | None = None,
    step_size: str | int = "100 MB",
    features: FeatureSpec | None = None,
    normalization: Normalization | None = None,
    progress: bool = False,
) -> tuple[list[Data], ReadSummary]:
    """Read ROOT files into a list of ``Data`` (one per kept event) and a summary.

    Parameters
    ----------
    paths:
        A file, a glob pattern or a list of them.
    schema:
        Branch names (default ``Schema()``, the ``calo-simulate`` tree).
    max_events, max_hits, require_truth, on_nonfinite, on_negative_energy, on_too_many_hits,
    n_particles, step_size:
        See :class:`ReadPolicy`.
    features, normalization:
        Columns of ``Data.x`` (default: the paper's seven) and their normalisation (default:
        none, raw features).
    progress:
        Show a tqdm bar over chunks.

    Returns
    -------
    (list[Data], ReadSummary)
        Every ``Data`` has the same number ``K`` of truth columns (the largest in the files
        unless ``n_particles`` is given).

    Examples
    --------
    >>> import tempfile, pathlib, awkward as ak, uproot
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.root"
    >>> hits = ak.zip({"x": [[1.0], [2.0, 3.0]], "y": [[0.0], [0.0, 0.0]],
    ...                "z": [[0.0], [0.0, 0.0]], "energy": [[1.0], [-1.0, 1.0]]})
    >>> with uproot.recreate(p) as f:
    ...     _ = f.mktree("events", {"hit": hits.type})
    ...     f["events"].extend({"hit": hits})
    >>> s = Schema(layer=None, dx=None, dy=None, dz=None, noise=None, event_id=None,
    ...            particle_energy=None, particle_pdg=None, particle_deposited=None,
    ...            particle_x=None, particle_y=None)
    >>> data, summary = read_data(p, s, require_truth=False)
    >>> len(data), summary.skipped
    (1, {'negative_energy': 1})
    """
    policy = ReadPolicy(
        max_events=max_events,
        max_hits=max_hits,
        require_truth=require_truth,
        on_nonfinite=on_nonfinite,
        on_negative_energy=on_negative_energy,
        on_too_many_hits=on_too_many_hits,
        n_particles=n_particles,
        step_size=step_size,
    )
    return _read(
        paths, schema or Schema(), policy, features or FeatureSpec(), normalization, progress
    )


def iter_data(
    paths: Paths,
    schema: Schema | None = None,
    *,
    summary: ReadSummary | None = None,
    features: FeatureSpec | None = None,
    normalization: Normalization | None = None,
    **policy: Any,
) -> Iterator[Data]:
    """Stream ``Data`` objects chunk by chunk, with memory bounded by one chunk.

    Unlike :func:`read_data`, the number of truth columns ``K`` is fixed per chunk, not per
    read: give ``n_particles`` when events from different chunks are batched together.

    Parameters
    ----------
    paths, schema, features, normalization:
        As for :func:`read_data`.
    summary:
        A :class:`ReadSummary` that the counts are added to while the stream is consumed.
    **policy:
        Fields of :class:`ReadPolicy` (``max_events=``, ``max_hits=``, ``step_size=``, ...).

    Examples
    --------
    >>> import tempfile, pathlib, awkward as ak, uproot
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.root"
    >>> hits = ak.zip({"x": [[1.0], [2.0, 3.0], []], "y": [[0.0], [0.0, 0.0], []],
    ...                "z": [[0.0], [0.0, 0.0], []], "energy": [[1.0], [1.0, 1.0], []]})
    >>> with uproot.recreate(p) as f:
    ...     _ = f.mktree("events", {"hit": hits.type})
    ...     f["events"].extend({"hit": hits})
    >>> s = Schema(layer=None, dx=None, dy=None, dz=None, noise=None, event_id=None,
    ...            particle_energy=None, particle_pdg=None, particle_deposited=None,
    ...            particle_x=None, particle_y=None)
    >>> summary = ReadSummary()
    >>> [d.num_nodes for d in iter_data(p, s, summary=summary, require_truth=False,
    ...                                 step_size=1)]
    [1, 2]
    >>> summary.skipped
    {'empty': 1}
    """
    pol = ReadPolicy(**policy)
    schema = schema or Schema()
    features = features or FeatureSpec()
    summary = summary if summary is not None else ReadSummary()
    n_out = 0
    for path in expand_paths(paths):
        summary.files.append(path)
        for arr, info, plan in _iter_file(path, schema, pol.step_size, pol.require_truth):
            left = None if pol.max_events is None else pol.max_events - n_out
            chunk = chunk_to_data(
                arr,
                info,
                schema,
                pol,
                features=features,
                normalization=normalization,
                summary=summary,
                limit=left,
                _plan_=plan,
            )
            n_out += len(chunk)
            yield from chunk
            if pol.max_events is not None and n_out >= pol.max_events:
                return


def _read(
    paths: Paths,
    schema: Schema,
    policy: ReadPolicy,
    features: FeatureSpec,
    normalization: Normalization | None,
    progress: bool = False,
) -> tuple[list[Data], ReadSummary]:
    files = expand_paths(paths)
    summary = ReadSummary(files=list(files))
    out: list[Data] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="event", desc="reading")
    try:
        for path in files:
            for arr, info, plan in _iter_file(path, schema, policy.step_size, policy.require_truth):
                left = None if policy.max_events is None else policy.max_events - len(out)
                chunk = chunk_to_data(
                    arr,
                    info,
                    schema,
                    policy,
                    features=features,
                    normalization=normalization,
                    summary=summary,
                    limit=left,
                    _plan_=plan,
                )
                out.extend(chunk)
                if bar is not None:
                    bar.update(len(chunk))
                if policy.max_events is not None and len(out) >= policy.max_events:
                    break
            if policy.max_events is not None and len(out) >= policy.max_events:
                break
    finally:
        if bar is not None:
            bar.close()
    if out:
        k = max(d.y.shape[1] for d in out)
        for d in out:
            pad_particles(d, k)
    return out, summary
