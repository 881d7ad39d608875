"""Write prediction columns to a ROOT file, chunk by chunk: a TTree (a friend of the input
tree) or an RNTuple.

The TTree holds one branch per column: ``status`` (``int32_t``), ``entry`` (``int64_t``),
the per-hit fractions ``frac_<method>_<k>`` (``float[nhit_pred]``, all counted by the one
branch ``nhit_pred``) and the per-shower values ``shower_*`` (``float[K]``). It is written with
uproot's ``mktree`` and one ``extend`` per chunk, so one basket per chunk; in ROOT::

    TFile in("events.root"), pred("events_pred.root");
    auto *t = in.Get<TTree>("events");
    t->AddFriend("events", &pred);        // or any alias: t->AddFriend("p=events", ...)
    t->Draw("hit_energy * frac_model_0"); // per hit, aligned with the input hits

An RNTuple holds the same fields (``frac_*`` as ``std::vector<float>``, ``shower_*`` as
``std::array<float, K>``; no counter field). ROOT does not make an RNTuple a friend of a TTree:
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

__all__ = ["FORMATS", "HIT_COUNTER", "OutputWriter", "columns_to_array"]

#: Output formats.
FORMATS: tuple[str, ...] = ("ttree", "rntuple")

#: The TTree branch that counts the per-hit values of an entry (the input event's hits).
HIT_COUNTER = "nhit_pred"


def _is_hit(name: str) -> bool:
    return name.startswith("frac_")


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
    """Per-hit columns zipped into one record (one shared counter branch)."""
    hits = {k: v for k, v in cols.items() if _is_hit(k)}
    out: dict[str, Any] = {}
    for k, v in cols.items():
        if _is_hit(k):
            if "__hits__" not in out:
                out["__hits__"] = ak.zip(hits)
        else:
            out[k] = v
    return out


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
                counter_name=lambda counted: HIT_COUNTER,
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
