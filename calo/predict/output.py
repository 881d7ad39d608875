"""Write prediction columns to a ROOT file, chunk by chunk: a TTree (a friend of the input
tree) or an RNTuple.

The TTree holds one branch per column: ``status`` (``int32_t``), ``entry`` (``int64_t``),
the per-hit values (:func:`is_hit_column`: the fractions ``frac_<method>_<k>`` of a fraction
run, ``cluster``, ``beta``, ``clue_cluster`` of a condensation run; ``float[nhit_pred]`` or
``int[nhit_pred]``, all counted by the one branch ``nhit_pred``), the per-shower values
``shower_*`` (``float[K]``) of a fraction run and the per-cluster values ``cluster_*``
(:func:`is_cluster_column`, ``float[n_clusters]``, counted by ``n_clusters``) of a condensation
run. It is written with uproot's ``mktree`` and one ``extend`` per chunk, so one basket per
chunk; in ROOT::

    TFile in("events.root"), pred("events_pred.root");
    auto *t = in.Get<TTree>("events");
    t->AddFriend("events", &pred);        // or any alias: t->AddFriend("p=events", ...)
    t->Draw("hit_energy * frac_model_0"); // per hit, aligned with the input hits

An RNTuple holds the same fields (per-hit and per-cluster values as ``std::vector``,
``shower_*`` as ``std::array<float, K>``; no ``nhit_pred`` field, ``n_clusters`` a field of its
own). ROOT does not make an RNTuple a friend of a TTree:
join them by entry number.

The file is written as ``<name>.tmp`` and renamed when complete, so a run that fails leaves
no half-written output under the final name.

Examples
--------
>>> import tempfile, pathlib, numpy as np, awkward as ak, uproot
>>> p = pathlib.Path(tempfile.mkdtemp()) / "pred.root"
>>> cols = {"status": np.array([0, 1], np.int32), "entry": np.array([0, 1]),
...         "frac_model_0": ak.Array([[0.25, 1.0], []]),
...         "shower_energy_model": np.array([[2.0], [np.nan]], np.float32)}
>>> with OutputWriter(p, "events", cols) as out:
...     out.extend(cols)
>>> t = uproot.open(p)["events"]
>>> t.keys()
['status', 'entry', 'nhit_pred', 'frac_model_0', 'shower_energy_model']
>>> t["nhit_pred"].array().tolist(), t["frac_model_0"].array().tolist()
([2, 0], [[0.25, 1.0], []])
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import awkward as ak
import numpy as np
import uproot

from calo.errors import ConfigError, DataError

__all__ = [
    "CLUSTER_COUNTER",
    "FORMATS",
    "HIT_COUNTER",
    "OutputWriter",
    "columns_to_array",
    "is_cluster_column",
    "is_hit_column",
    "is_jagged_column",
]

#: Output formats.
FORMATS: tuple[str, ...] = ("ttree", "rntuple")

#: The TTree branch that counts the per-hit values of an entry (the input event's hits).
HIT_COUNTER = "nhit_pred"

#: The column (and TTree counter branch) that counts the per-cluster values of an entry.
CLUSTER_COUNTER = "n_clusters"

#: Per-hit columns of a condensation run (besides the fraction runs' ``frac_*``).
_HIT_NAMES = ("cluster", "beta", "clue_cluster")


def is_hit_column(name: str) -> bool:
    """Whether column ``name`` holds one value per input hit.

    Examples
    --------
    >>> [is_hit_column(c) for c in ("frac_model_0", "cluster", "cluster_energy", "status")]
    [True, True, False, False]
    """
    return name.startswith("frac_") or name in _HIT_NAMES


def is_cluster_column(name: str) -> bool:
    """Whether column ``name`` holds one value per predicted cluster (``cluster_*``).

    Examples
    --------
    >>> [is_cluster_column(c) for c in ("cluster_energy", "cluster", "n_clusters")]
    [True, False, False]
    """
    return name.startswith("cluster_")


def is_jagged_column(name: str) -> bool:
    """Whether column ``name`` is jagged (per hit or per cluster).

    Examples
    --------
    >>> is_jagged_column("beta"), is_jagged_column("shower_energy_model")
    (True, False)
    """
    return is_hit_column(name) or is_cluster_column(name)


def columns_to_array(cols: dict[str, Any]) -> ak.Array:
    """The columns as one awkward record per entry (fields in column order).

    Examples
    --------
    >>> a = columns_to_array({"status": np.array([0], np.int32), "frac_m_0": ak.Array([[1.0]]),
    ...                       "shower_energy_m": np.ones((1, 2), np.float32)})
    >>> str(a.type)
    '1 * {status: int32, frac_m_0: var * float64, shower_energy_m: 2 * float32}'
    """
    contents = {k: ak.to_layout(v) for k, v in cols.items()}
    n = len(next(iter(cols.values())))
    return ak.Array(ak.contents.RecordArray(list(contents.values()), list(contents), length=n))


def _ttree_data(cols: dict[str, Any]) -> dict[str, Any]:
    """Per-hit columns zipped into one record (one shared counter branch), per-cluster columns
    into another (counted by the branch ``n_clusters``, which replaces that column)."""
    hits = {k: v for k, v in cols.items() if is_hit_column(k)}
    clusters = {k: v for k, v in cols.items() if is_cluster_column(k)}
    out: dict[str, Any] = {}
    for k, v in cols.items():
        if is_hit_column(k):
            if "__hits__" not in out:
                out["__hits__"] = ak.zip(hits)
        elif is_cluster_column(k):
            if "__clusters__" not in out:
                out["__clusters__"] = ak.zip(clusters)
        elif not (k == CLUSTER_COUNTER and clusters):
            out[k] = v
    return out


def _counter(branch: str) -> str:
    return CLUSTER_COUNTER if branch == "__clusters__" else HIT_COUNTER


def _branch_type(v: Any) -> Any:
    if isinstance(v, ak.Array):
        return v.type
    v = np.asarray(v)
    return np.dtype((v.dtype, v.shape[1:])) if v.ndim > 1 else v.dtype


class OutputWriter:
    """An output file open for writing: :meth:`extend` with each chunk's columns, then close
    (or use it as a context manager, which removes the partial file on an error).

    Parameters
    ----------
    path:
        The output file (written as ``path.tmp``, renamed on close).
    tree:
        Name of the tree (or RNTuple).
    template:
        Columns (of any length, zero included) whose types define the tree.
    fmt:
        ``"ttree"`` or ``"rntuple"``.
    """

    def __init__(
        self, path: str | os.PathLike, tree: str, template: dict[str, Any], fmt: str = "ttree"
    ) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"output format must be one of {list(FORMATS)}, got {fmt!r}")
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.fmt = fmt
        self.entries = 0
        try:
            self._file = uproot.recreate(self.tmp)
        except OSError as e:
            raise DataError(f"cannot create the output file: {e}", file=self.tmp) from None
        if fmt == "ttree":
            types = {k: _branch_type(v) for k, v in _ttree_data(template).items()}
            self._obj = self._file.mktree(
                tree,
                types,
                field_name=lambda outer, inner: inner,
                counter_name=_counter,
            )
        else:
            self._obj = self._file.mkrntuple(tree, columns_to_array(template).layout.form)

    def extend(self, cols: dict[str, Any]) -> None:
        """Append one chunk's columns (entries in order)."""
        n = len(cols["status"])
        if n == 0:
            return
        if self.fmt == "ttree":
            self._obj.extend(_ttree_data(cols))
        else:
            self._obj.extend(columns_to_array(cols))
        self.entries += n

    def close(self, commit: bool = True) -> None:
        """Close the file; rename it to :attr:`path` (``commit``) or delete it."""
        self._file.close()
        if commit:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(commit=exc_type is None)
