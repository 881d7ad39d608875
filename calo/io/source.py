"""ROOT files as calo sees them: open a file, find a TTree or an RNTuple, type its branches,
stream its entries.

A file may hold events as a TTree (``uproot``'s ``mktree``/``extend``, ROOT's ``TTree``) or
as an RNTuple (ROOT 6.34+, ``uproot``'s dict assignment ``f["events"] = {...}`` or
``mkrntuple``). Both are read the same way; :class:`Source` says which one was found. Every
failure is a :class:`calo.errors.DataError` that names the file and tree and says what to do.

Examples
--------
>>> import tempfile, pathlib, numpy as np, awkward as ak, uproot
>>> p = pathlib.Path(tempfile.mkdtemp()) / "r.root"
>>> with uproot.recreate(p) as f:
...     f["events"] = {"x": ak.Array([[1.0, 2.0], [3.0]]), "gen_energy0": np.array([5.0, 6.0])}
>>> with open_source(str(p), "events") as src:
...     src.format, src.num_entries, src.branches()["gen_energy0"].describe()
('RNTuple', 2, 'per-event scalar float64')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import awkward as ak
import uproot

from calo.errors import DataError
from calo.io.schema import how_to_set

__all__ = ["FORMATS", "BranchInfo", "Source", "classify", "list_trees", "open_file", "open_source"]

#: ROOT class name -> calo's name of the format
FORMATS: dict[str, str] = {"TTree": "TTree", "ROOT::RNTuple": "RNTuple"}

Kind = Literal["scalar", "jagged", "nested", "string", "record", "other", "unreadable"]


def why(e: BaseException) -> str:
    """One-line ``Type: message`` of an exception from uproot or the decompressors.

    Examples
    --------
    >>> why(ValueError("bad\\n  thing"))
    'ValueError: bad thing'
    """
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


@dataclass(frozen=True)
class BranchInfo:
    """What one branch (TTree) or field (RNTuple) holds per entry.

    Attributes
    ----------
    name:
        The branch name.
    kind:
        ``"scalar"`` (one number per event), ``"jagged"`` (a list of numbers per event: per hit
        or per particle), ``"nested"`` (lists of lists), ``"string"``, ``"record"`` (a
        structure; its fields are listed separately), ``"other"`` or ``"unreadable"``.
    dtype:
        The numbers' numpy dtype name (``"float32"``, ``"int64"``, ``"bool"``), else ``None``.
    type:
        awkward's type of one entry, or why the branch cannot be read.

    Examples
    --------
    >>> BranchInfo("hit_x", "jagged", "float32", "var * float32").describe()
    'jagged float32'
    """

    name: str
    kind: Kind
    dtype: str | None
    type: str

    @property
    def numeric(self) -> bool:
        """True for numbers or booleans (scalar or jagged)."""
        return self.kind in ("scalar", "jagged") and self.dtype is not None

    def describe(self) -> str:
        """Short description: ``per-event scalar float32``, ``jagged int32``, ``string``, ...

        Examples
        --------
        >>> BranchInfo("e", "scalar", "float64", "float64").describe()
        'per-event scalar float64'
        """
        if self.kind == "scalar":
            return f"per-event scalar {self.dtype}"
        if self.kind == "jagged":
            return f"jagged {self.dtype}"
        return f"{self.kind} ({self.type})"


def classify(name: str, t: Any) -> BranchInfo:
    """Classify the awkward type ``t`` of one entry of branch ``name``.

    Examples
    --------
    >>> import awkward as ak
    >>> a = ak.Array({"e": [1.0], "h": [[1, 2]], "s": ["a"], "v": [[[1]]]})
    >>> [classify(f, a[f].type.content).kind for f in a.fields]
    ['scalar', 'jagged', 'string', 'nested']
    """
    ts = str(t)
    if isinstance(t, ak.types.OptionType):
        t = t.content
    if t.parameter("__array__") in ("string", "bytestring"):
        return BranchInfo(name, "string", None, ts)
    if isinstance(t, ak.types.NumpyType):
        return BranchInfo(name, "scalar", t.primitive, ts)
    if isinstance(t, ak.types.ListType | ak.types.RegularType):
        inner = t.content
        if isinstance(inner, ak.types.OptionType):
            inner = inner.content
        if inner.parameter("__array__") in ("string", "bytestring"):
            return BranchInfo(name, "nested", None, ts)
        if isinstance(inner, ak.types.NumpyType):
            return BranchInfo(name, "jagged", inner.primitive, ts)
        if isinstance(inner, ak.types.RecordType):
            return BranchInfo(name, "record", None, ts)
        return BranchInfo(name, "nested", None, ts)
    if isinstance(t, ak.types.RecordType):
        return BranchInfo(name, "record", None, ts)
    return BranchInfo(name, "other", None, ts)


def classify_array(arr: ak.Array) -> dict[str, BranchInfo]:
    """:class:`BranchInfo` of every field of an awkward record array (a chunk).

    Examples
    --------
    >>> import awkward as ak
    >>> classify_array(ak.Array({"w": [1.0, 2.0]}))["w"].kind
    'scalar'
    """
    return {f: classify(f, arr[f].type.content) for f in arr.fields}


def open_file(path: str) -> Any:
    """Open ``path`` with uproot, or raise a DataError saying the file is missing or corrupt.

    Examples
    --------
    >>> open_file("missing.root")
    Traceback (most recent call last):
    ...
    calo.errors.DataError: file does not exist; check the path [file missing.root]
    """
    try:
        return uproot.open(path)
    except FileNotFoundError:
        raise DataError("file does not exist; check the path", file=path) from None
    except Exception as e:
        raise DataError(
            f"cannot open as a ROOT file ({why(e)}); the file is not ROOT, "
            "truncated or corrupt: rewrite or re-download it",
            file=path,
        ) from None


def list_trees(f: Any, path: str) -> dict[str, str]:
    """Name -> format (``"TTree"`` or ``"RNTuple"``) of the event containers in an open file,
    and ``"other:<class>"`` for other objects.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, uproot
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.root"
    >>> with uproot.recreate(p) as f:
    ...     _ = f.mktree("t", {"a": "float32"})
    ...     f["r"] = {"b": np.zeros(2)}
    >>> with uproot.open(p) as f:
    ...     list_trees(f, str(p))
    {'t': 'TTree', 'r': 'RNTuple'}
    """
    try:
        classnames = f.classnames()
    except Exception as e:
        raise DataError(
            f"cannot read the file's directory ({why(e)}); the file is truncated "
            "or corrupt: rewrite or re-download it",
            file=path,
        ) from None
    out: dict[str, str] = {}
    for key, cls in classnames.items():
        name = key.split(";")[0]
        out.setdefault(name, FORMATS.get(cls, f"other:{cls}"))
    return out


class Source:
    """One TTree or RNTuple of an open file: its format, entries, branch types and chunks.

    Use :func:`open_source` to get one (it closes the file when leaving a ``with`` block).

    Attributes
    ----------
    path, tree:
        The file and the tree (or RNTuple) name.
    format:
        ``"TTree"`` or ``"RNTuple"``.
    obj:
        uproot's object.
    """

    def __init__(self, file: Any, path: str, tree: str, fmt: str, obj: Any) -> None:
        self.file, self.path, self.tree, self.format, self.obj = file, path, tree, fmt, obj
        self._types: dict[str, BranchInfo] | None = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    @property
    def num_entries(self) -> int:
        """Number of entries (events)."""
        return int(self.obj.num_entries)

    def keys(self) -> list[str]:
        """Branch (or field) names, in the file's order."""
        return [str(k) for k in self.obj.keys()]

    def branches(self) -> dict[str, BranchInfo]:
        """:class:`BranchInfo` of every branch, from the types in the header alone (no entry
        is read)."""
        if self._types is None:
            types: dict[str, BranchInfo] = {}
            if self.format == "TTree":
                for n in self.keys():
                    try:
                        form = self.obj[n].interpretation.awkward_form(None)
                        types[n] = classify(n, form.type)
                    except Exception as e:
                        types[n] = BranchInfo(n, "unreadable", None, why(e))
            else:
                try:
                    form, _ = self.obj.to_akform()
                except Exception as e:
                    raise DataError(
                        f"cannot read the RNTuple's field types ({why(e)}); the file is "
                        "truncated or corrupt: rewrite or re-download it",
                        file=self.path,
                        tree=self.tree,
                    ) from None
                for n in form.fields:
                    types[n] = classify(n, form.content(n).type)
            self._types = types
        return self._types

    def arrays(self, names: list[str], start: int, stop: int) -> ak.Array:
        """Branches ``names`` of entries ``[start, stop)`` as one awkward array."""
        return self.obj.arrays(filter_name=names, entry_start=start, entry_stop=stop)

    def iterate(
        self, names: list[str], step_size: int | str
    ) -> Iterator[tuple[ak.Array, int, int]]:
        """Yield ``(chunk, entry_start, entry_stop)`` of the branches ``names``.

        A TTree streams through :meth:`uproot.TTree.iterate`; an RNTuple through uproot's
        RNTuple ``iterate`` (uproot >= 5.6 takes ``step_size`` in entries or bytes and
        ``report=True`` there too). An unreadable chunk is a DataError naming the first entry
        of the chunk.
        """
        names = list(dict.fromkeys(names))
        if self.format == "TTree":
            it = self.obj.iterate(names, step_size=step_size, report=True, library="ak")
        else:
            it = self.obj.iterate(filter_name=names, step_size=step_size, report=True, library="ak")
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
                    f"cannot read entries from {start} on ({why(e)}); the file "
                    "is truncated or corrupt: rewrite it, or read only the files that are intact",
                    file=self.path,
                    tree=self.tree,
                    entry=start,
                ) from None
            s, e = int(report.tree_entry_start), int(report.tree_entry_stop)
            start = e
            yield arr, s, e


def open_source(path: str, tree: str) -> Source:
    """Open TTree or RNTuple ``tree`` of file ``path``.

    Raises :class:`calo.errors.DataError` for a missing or corrupt file, and for a name that
    is not in the file or is not a TTree or RNTuple (listing the ones the file has).

    Examples
    --------
    >>> import tempfile, pathlib, uproot
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.root"
    >>> with uproot.recreate(p) as f:
    ...     _ = f.mktree("hits", {"a": "float32"})
    >>> open_source(str(p), "events")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    calo.errors.DataError: tree 'events' not found; the file has TTrees ['hits'] and RNTuples []...
    """
    f = open_file(path)
    try:
        found = list_trees(f, path)
        ttrees = sorted(k for k, v in found.items() if v == "TTree")
        rntuples = sorted(k for k, v in found.items() if v == "RNTuple")
        if tree not in found:
            raise DataError(
                f"tree {tree!r} not found; the file has TTrees {ttrees} and RNTuples "
                f"{rntuples} (all objects: {sorted(found)}). Set {how_to_set('tree')} to one "
                "of them (calo-inspect FILE lists them)",
                file=path,
                tree=tree,
            )
        fmt = found[tree]
        if fmt.startswith("other:"):
            raise DataError(
                f"object {tree!r} is a {fmt[6:]}, not a TTree or RNTuple; calo reads events "
                f"from TTrees {ttrees} or RNTuples {rntuples}. Set {how_to_set('tree')}",
                file=path,
                tree=tree,
            )
        try:
            obj = f[tree]
        except Exception as e:
            raise DataError(
                f"cannot read the {fmt} header ({why(e)}); the file is truncated or "
                "corrupt: rewrite or re-download it",
                file=path,
                tree=tree,
            ) from None
    except BaseException:
        f.close()
        raise
    return Source(f, path, tree, fmt, obj)
