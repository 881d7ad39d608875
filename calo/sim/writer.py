"""Write simulated events to a ROOT TTree or RNTuple with uproot, chunk by chunk (bounded
memory).

Both formats hold the same columns under the same names (``event``, ``nhit``, ``hit_*``,
``nparticle``, ``particle_*``; docs/data_format.md): the TTree's jagged branches share the
counters ``nhit``/``nparticle``; the RNTuple has one collection field per jagged column and the
counters as plain int32 fields, so ``arrays()`` of either gives the same arrays.

Examples
--------
>>> import tempfile, os
>>> from calo.sim.config import SimConfig
>>> path = os.path.join(tempfile.mkdtemp(), "ev.root")
>>> summary = write_root(path, SimConfig(), n_events=10, seed=0, progress=False)
>>> summary["events"]
10
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from tqdm.auto import tqdm

from calo import __version__ as calo_version
from calo.config import save_yaml
from calo.errors import ConfigError, DataError
from calo.sim.config import SimConfig
from calo.sim.events import generate_arrays, load_geometry, to_awkward

__all__ = ["FORMATS", "TREE_NAME", "split_events", "write_root", "write_sample"]

TREE_NAME = "events"
"""Name of the TTree (or RNTuple) written by :func:`write_root`."""

FORMATS = ("ttree", "rntuple")
"""Output formats of :func:`write_root`."""


def _branch_types(arr: ak.Array) -> dict[str, Any]:
    return {k: arr[k].type.content for k in arr.fields}


def _flat_columns(arr: ak.Array) -> ak.Array:
    """The TTree's columns as flat RNTuple fields: ``event``, ``nhit``, ``hit_<f>``,
    ``nparticle``, ``particle_<f>`` (same names, types and order as the TTree's branches)."""
    cols: dict[str, Any] = {"event": arr["event"]}
    for group in ("hit", "particle"):
        cols[f"n{group}"] = ak.values_astype(ak.num(arr[group]), np.int32)
        for name in arr[group].fields:
            cols[f"{group}_{name}"] = arr[group][name]
    return ak.zip(cols, depth_limit=1)


def write_root(
    path: str | Path,
    config: SimConfig | None = None,
    n_events: int = 1000,
    seed: int = 0,
    chunk_size: int = 1000,
    progress: bool = True,
    write_config: bool = True,
    format: str = "ttree",
    start: int = 0,
) -> dict[str, Any]:
    """Simulate ``n_events`` events and write them to the TTree (or RNTuple) ``events`` of
    ``path``.

    The tree is created from the first chunk's types and extended chunk by chunk (one ROOT
    basket, or RNTuple cluster, per chunk), so memory stays bounded by ``chunk_size``. The
    content depends on (config, seed, start) only, never on ``chunk_size`` or the format.
    With ``write_config`` the resolved configuration is written next to the file as
    ``<name>.yaml`` (with the seed and the event range).

    Parameters
    ----------
    format:
        ``"ttree"`` (the default) or ``"rntuple"`` (ROOT's successor of the TTree, written with
        uproot's ``mkrntuple``); the same column names either way.
    start:
        Number of the first event: events ``start .. start + n_events - 1`` are written, the
        same events a single file of ``start + n_events`` events holds at those entries (how
        ``calo-simulate --files`` splits a sample).

    Returns
    -------
    dict
        ``events``, ``hits``, ``noise_hits``, ``seconds``, ``events_per_second``, ``path``,
        ``config_path``.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.root")
    >>> write_root(p, n_events=5, progress=False)["hits"] > 0
    True
    >>> import uproot
    >>> q = os.path.join(tempfile.mkdtemp(), "b.root")
    >>> _ = write_root(q, n_events=5, progress=False, format="rntuple", start=5)
    >>> uproot.open(q)["events"].arrays()["event"].tolist()
    [5, 6, 7, 8, 9]
    """
    config = (config or SimConfig()).validate()
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, got {format!r}")
    if start < 0:
        raise ConfigError(f"start must be >= 0, got {start}")
    if n_events < 1:
        raise ConfigError(f"n_events must be >= 1, got {n_events}")
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    path = Path(path)
    if path.suffix != ".root":
        raise ConfigError(f"output file must end in .root, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    geo = load_geometry(config.geometry)
    t0 = time.perf_counter()
    n_hits = 0
    n_noise = 0
    cache: dict = {}
    try:
        fout = uproot.recreate(path)
    except OSError as e:
        raise DataError(f"cannot create output file: {e}", file=str(path)) from None
    with fout, tqdm(total=n_events, unit="ev", disable=not progress, desc="simulate") as bar:
        tree = None
        for first in range(start, start + n_events, chunk_size):
            n = min(chunk_size, start + n_events - first)
            d = generate_arrays(config, n, seed, start=first, _cache=cache)
            arr = to_awkward(d, geo)
            if format == "rntuple":
                cols = _flat_columns(arr)
                if tree is None:
                    tree = fout.mkrntuple(TREE_NAME, cols)  # creates it and writes this chunk
                else:
                    tree.extend(cols)
            else:
                if tree is None:
                    tree = fout.mktree(TREE_NAME, _branch_types(arr))
                tree.extend({k: arr[k] for k in arr.fields})
            n_hits += int(d["nhit"].sum())
            n_noise += int(d["noise"].sum())
            bar.update(n)
    seconds = time.perf_counter() - t0
    config_path = None
    if write_config:
        config_path = _write_config(
            path.with_suffix(".yaml"),
            config,
            {"seed": seed, "events": n_events, "first event": start, "format": format},
        )
    return {
        "path": str(path),
        "format": format,
        "first_event": start,
        "config_path": str(config_path) if config_path else None,
        "events": n_events,
        "hits": n_hits,
        "noise_hits": n_noise,
        "seconds": seconds,
        "events_per_second": n_events / seconds if seconds > 0 else float("inf"),
    }


def _write_config(path: Path, config: SimConfig, notes: dict[str, Any]) -> Path:
    """The resolved configuration as YAML, with the run's settings as comments."""
    save_yaml(config, path)
    with path.open("a") as fh:
        for key, value in notes.items():
            fh.write(f"# {key}: {value}\n")
        fh.write(
            f"# written by calo {calo_version} with uproot {uproot.__version__}, "
            f"numpy {np.__version__}\n"
        )
    return path


def split_events(n_events: int, n_files: int) -> list[tuple[int, int]]:
    """``(first event, number of events)`` of each of ``n_files`` files, sizes differing by at
    most one, in order.

    Examples
    --------
    >>> split_events(10, 3)
    [(0, 4), (4, 3), (7, 3)]
    """
    if n_files < 1:
        raise ConfigError(f"the number of files must be >= 1, got {n_files}")
    if n_files > n_events:
        raise ConfigError(
            f"cannot split {n_events} events into {n_files} files: every file needs an event; "
            "give fewer --files or more --events"
        )
    base, extra = divmod(n_events, n_files)
    sizes = [base + (i < extra) for i in range(n_files)]  # the first files take the remainder
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    return list(zip(firsts, sizes, strict=True))


def _sample_paths(out: Path, n_files: int) -> list[Path]:
    if n_files == 1:
        return [out]
    digits = max(3, len(str(n_files - 1)))
    return [out.with_name(f"{out.stem}_{i:0{digits}d}{out.suffix}") for i in range(n_files)]


def _write_task(
    path: str, config: SimConfig, n_events: int, seed: int, start: int, chunk_size: int,
    format: str, progress: bool,
) -> dict[str, Any]:  # fmt: skip
    """One task of :func:`write_sample` (module level so that Dask can ship it)."""
    return write_root(path, config, n_events, seed, chunk_size, progress, False, format, start)


def write_sample(
    out: str | Path,
    config: SimConfig | None = None,
    n_events: int = 1000,
    seed: int = 0,
    n_files: int = 1,
    chunk_size: int = 1000,
    format: str = "ttree",
    client: Any | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Simulate ``n_events`` events into ``n_files`` files, serially or on a Dask cluster.

    One file is ``out`` itself; several are ``<stem>_000.root``, ``<stem>_001.root``, ... next
    to it, each written by one task (:func:`calo.parallel.map_tasks`), file i holding the
    consecutive events of :func:`split_events`. Event j depends only on (config, seed, j)
    (:mod:`calo.sim.events`), so the files together hold exactly the events of a single file
    of ``n_events`` events, whatever the number of files, the chunk size or where the tasks
    ran. The resolved configuration is written once as ``<stem>.yaml``.

    Parameters
    ----------
    client:
        A :class:`distributed.Client` (:func:`calo.parallel.dask_client`), or ``None`` to write
        the files one after the other here. The workers write the files themselves: on a
        remote cluster ``out`` must be on a file system they share.

    Returns
    -------
    dict
        ``paths``, ``config_path``, ``events``, ``hits``, ``noise_hits``, ``seconds``,
        ``events_per_second``, ``format`` and ``files`` (each file's :func:`write_root` summary).

    Examples
    --------
    >>> import tempfile, os, uproot
    >>> out = os.path.join(tempfile.mkdtemp(), "s.root")
    >>> s = write_sample(out, n_events=5, n_files=2, progress=False)
    >>> [os.path.basename(p) for p in s["paths"]]
    ['s_000.root', 's_001.root']
    >>> [uproot.open(p)["events"].arrays()["event"].tolist() for p in s["paths"]]
    [[0, 1, 2], [3, 4]]
    """
    from calo.parallel import map_tasks

    config = (config or SimConfig()).validate()
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}, got {format!r}")
    if n_events < 1:
        raise ConfigError(f"n_events must be >= 1, got {n_events}")
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    out = Path(out)
    if out.suffix != ".root":
        raise ConfigError(f"output file must end in .root, got {out}")
    parts = split_events(n_events, n_files)
    paths = _sample_paths(out.absolute(), n_files)
    one = n_files == 1
    tasks = [
        (str(p), config, n, seed, first, chunk_size, format, progress and one and client is None)
        for p, (first, n) in zip(paths, parts, strict=True)
    ]
    t0 = time.perf_counter()
    files = map_tasks(
        _write_task, tasks, client=client, progress=progress and not one, desc="simulate",
        unit="file",
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    config_path = _write_config(
        out.with_suffix(".yaml"),
        config,
        {"seed": seed, "events": n_events, "files": n_files, "format": format},
    )
    return {
        "paths": [f["path"] for f in files],
        "config_path": str(config_path),
        "format": format,
        "events": n_events,
        "hits": sum(f["hits"] for f in files),
        "noise_hits": sum(f["noise_hits"] for f in files),
        "seconds": seconds,
        "events_per_second": n_events / seconds if seconds > 0 else float("inf"),
        "files": files,
    }
