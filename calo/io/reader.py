"""Read ROOT hit trees (TTree or RNTuple) into torch_geometric ``Data`` objects, chunk by chunk.

Reading streams through uproot's ``iterate`` with a step size, so memory is bounded by one
chunk plus the events kept; each chunk is converted at once by :func:`calo.io.chunk_to_data`.
The schema is checked against each file's branch types before anything is read
(:mod:`calo.io.plan`).

Bad input has a defined behaviour (see :class:`ReadPolicy` and ``docs/data_format.md``): a
missing or unreadable file, tree or branch, or a branch that does not fit its role, raises
:class:`calo.errors.DataError` naming file, tree, branch and entry and saying what to do; bad
events are skipped and counted in a :class:`calo.io.ReadSummary` (or raise, by option).

Examples
--------
>>> import tempfile, pathlib, numpy as np, awkward as ak, uproot
>>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny.root"
>>> hits = ak.zip({"x": [[0.0, 1.0], [2.0]], "y": [[0.0, 0.0], [1.0]], "z": [[1.0, 2.0], [1.0]],
...                "energy": [[1.0, 2.0], [3.0]], "truth": [[0, 1], [0]]})
>>> with uproot.recreate(p) as f:
...     _ = f.mktree("events", {"hit": hits.type})
...     f["events"].extend({"hit": hits})
>>> s = Schema(x="hit_x", y="hit_y", z="hit_z", energy="hit_energy", truth_index="hit_truth")
>>> data, summary = read_data(p, s)
>>> len(data), data[0].y.tolist()
(2, [[1.0, 0.0], [0.0, 1.0]])
>>> print(summary)
read 2 events (3 hits) from 1 file (TTree): kept 2 events (3 hits), skipped 0
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import awkward as ak
from torch_geometric.data import Data

from calo.errors import DataError
from calo.io.convert import ChunkInfo, ReadPolicy, chunk_to_data, pad_particles
from calo.io.features import FeatureSpec, Normalization
from calo.io.plan import Plan, make_plan
from calo.io.schema import Schema
from calo.io.source import open_source
from calo.io.summary import ReadSummary

__all__ = [
    "ChunkInfo",
    "ReadPolicy",
    "chunk_to_data",
    "expand_paths",
    "file_format",
    "iter_data",
    "iterate_events",
    "pad_particles",
    "read_data",
]

PathLike = str | os.PathLike
Paths = PathLike | Sequence[PathLike]


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


def _iter_file(
    path: str,
    schema: Schema,
    step_size: str | int,
    require_truth: bool,
    summary: ReadSummary | None = None,
) -> Iterator[tuple[ak.Array, ChunkInfo, Plan]]:
    with open_source(path, schema.tree) as src:
        if summary is not None:
            summary.formats[path] = src.format
        plan = make_plan(
            schema, src.branches(), file=path, require_truth=require_truth, fmt=src.format
        )
        for arr, start, stop in src.iterate(plan.branches(), step_size):
            yield arr, ChunkInfo(path, schema.tree, start, stop), plan


def file_format(path: PathLike, tree: str = "events") -> str:
    """``"TTree"`` or ``"RNTuple"``: how ``tree`` is stored in file ``path``.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, uproot
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.root"
    >>> with uproot.recreate(p) as f:
    ...     f["events"] = {"a": np.zeros(3)}
    >>> file_format(p)
    'RNTuple'
    """
    with open_source(os.fspath(path), tree) as src:
        return src.format


def iterate_events(
    paths: Paths,
    schema: Schema | None = None,
    step_size: str | int = "100 MB",
    *,
    report: bool = False,
    require_truth: bool = False,
) -> Iterator[ak.Array] | Iterator[tuple[ak.Array, ChunkInfo]]:
    """Stream the schema's branches of one or more files (TTree or RNTuple) as awkward chunks.

    Parameters
    ----------
    paths:
        A file, a glob pattern or a list of them.
    schema:
        Branch names (default ``Schema.calo()``).
    step_size:
        Entries per chunk (int) or memory per chunk (``"100 MB"``).
    report:
        Also yield a :class:`ChunkInfo` (file, tree, entry range) with each chunk.
    require_truth:
        Raise if the tree has no truth branches.

    Yields
    ------
    ak.Array or (ak.Array, ChunkInfo)
        One record per event with the branch names as fields (values as stored: no unit
        conversion; :func:`calo.io.chunk_to_data` converts).

    Examples
    --------
    >>> import tempfile, pathlib, awkward as ak, uproot
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.root"
    >>> hits = ak.zip({"x": [[1.0], [2.0, 3.0]], "y": [[0.0], [0.0, 0.0]],
    ...                "z": [[0.0], [0.0, 0.0]], "energy": [[1.0], [1.0, 1.0]]})
    >>> with uproot.recreate(p) as f:
    ...     _ = f.mktree("events", {"hit": hits.type})
    ...     f["events"].extend({"hit": hits})
    >>> s = Schema(x="hit_x", y="hit_y", z="hit_z", energy="hit_energy")
    >>> [len(c) for c in iterate_events(p, s, step_size=1)]
    [1, 1]
    """
    schema = schema or Schema.calo()
    for path in expand_paths(paths):
        for arr, info, _ in _iter_file(path, schema, step_size, require_truth):
            yield (arr, info) if report else arr


# ---------------------------------------------------------------------------------------------
# reading


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
        Branch names and units (default ``Schema.calo()``, the ``calo-simulate`` tree).
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
    >>> s = Schema(x="hit_x", y="hit_y", z="hit_z", energy="hit_energy")
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
        paths, schema or Schema.calo(), policy, features or FeatureSpec(), normalization, progress
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
    >>> s = Schema(x="hit_x", y="hit_y", z="hit_z", energy="hit_energy")
    >>> summary = ReadSummary()
    >>> [d.num_nodes for d in iter_data(p, s, summary=summary, require_truth=False,
    ...                                 step_size=1)]
    [1, 2]
    >>> summary.skipped
    {'empty': 1}
    """
    pol = ReadPolicy(**policy)
    schema = schema or Schema.calo()
    features = features or FeatureSpec()
    summary = summary if summary is not None else ReadSummary()
    n_out = 0
    for path in expand_paths(paths):
        summary.files.append(path)
        for arr, info, plan in _iter_file(path, schema, pol.step_size, pol.require_truth, summary):
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
            for arr, info, plan in _iter_file(
                path, schema, policy.step_size, policy.require_truth, summary
            ):
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
