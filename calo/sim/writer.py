"""Write simulated events to a ROOT TTree with uproot, chunk by chunk (bounded memory).

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

__all__ = ["TREE_NAME", "write_root"]

TREE_NAME = "events"
"""Name of the TTree written by :func:`write_root`."""


def _branch_types(arr: ak.Array) -> dict[str, Any]:
    return {k: arr[k].type.content for k in arr.fields}


def write_root(
    path: str | Path,
    config: SimConfig | None = None,
    n_events: int = 1000,
    seed: int = 0,
    chunk_size: int = 1000,
    progress: bool = True,
    write_config: bool = True,
) -> dict[str, Any]:
    """Simulate ``n_events`` events and write them to the TTree ``events`` of ``path``.

    The tree is created from the first chunk's types and extended chunk by chunk (one ROOT
    basket per chunk), so memory stays bounded by ``chunk_size``. The content depends on
    (config, seed) only, never on ``chunk_size``. With ``write_config`` the resolved
    configuration is written next to the file as ``<name>.yaml`` (with the seed).

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
    """
    config = (config or SimConfig()).validate()
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
        for start in range(0, n_events, chunk_size):
            n = min(chunk_size, n_events - start)
            d = generate_arrays(config, n, seed, start=start, _cache=cache)
            arr = to_awkward(d, geo)
            if tree is None:
                tree = fout.mktree(TREE_NAME, _branch_types(arr))
            tree.extend({k: arr[k] for k in arr.fields})
            n_hits += int(d["nhit"].sum())
            n_noise += int(d["noise"].sum())
            bar.update(n)
    seconds = time.perf_counter() - t0
    config_path = None
    if write_config:
        config_path = save_yaml(config, path.with_suffix(".yaml"))
        with config_path.open("a") as fh:
            fh.write(
                f"# seed: {seed}\n# events: {n_events}\n# written by calo {calo_version} with "
                f"uproot {uproot.__version__}, numpy {np.__version__}\n"
            )
    return {
        "path": str(path),
        "config_path": str(config_path) if config_path else None,
        "events": n_events,
        "hits": n_hits,
        "noise_hits": n_noise,
        "seconds": seconds,
        "events_per_second": n_events / seconds if seconds > 0 else float("inf"),
    }
