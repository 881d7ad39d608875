"""Resolve a :class:`~calo.io.Schema` against the branches a file has, before reading.

:func:`make_plan` checks once per file, from the branch types alone, that every branch the
schema names exists and fits its role: numbers (not strings, not booleans for a quantity),
one value per hit for a per-hit role (jagged), one value per event for a per-event role
(scalar). Each misfit is a :class:`calo.errors.DataError` naming file, tree and branch and
saying how to fix the schema. Checks that need the values (whole numbers in a float branch
given for an integer role, fractions in [0, 1]) run on each chunk in :mod:`calo.io.convert`.

Examples
--------
>>> import awkward as ak
>>> from calo.io.source import classify_array
>>> arr = ak.Array({"hx": [[1.0]], "hy": [[1.0]], "hz": [[1.0]], "he": [[1.0]], "w": [[1.0]]})
>>> s = Schema(x="hx", y="hy", z="hz", energy="he", weight="w")
>>> make_plan(s, classify_array(arr), file="f.root")
Traceback (most recent call last):
...
calo.errors.DataError: branch 'w' given for weight is jagged (var * float64: a list per event, per hit or per particle), but weight has one value per event: name a per-event scalar branch in the schema YAML given with --schema FILE.yaml (key weight:) or Schema(weight=...) in Python [file f.root, tree events, branch w]
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from calo.errors import DataError
from calo.io.schema import Schema, how_to_set, is_pattern, match_branches
from calo.io.source import BranchInfo

__all__ = ["Plan", "make_plan"]

#: per-hit roles holding a quantity (float); the others are integers or a flag
HIT_FLOAT_ROLES = ("x", "y", "z", "energy", "dx", "dy", "dz", "time")
HIT_INT_ROLES = ("layer", "truth_index", "cell_id")
PARTICLE_INT_ROLES = ("pdg",)

Value = Literal["float", "int", "flag"]


@dataclass
class Plan:
    """The branches of a schema as found in one file (or chunk).

    Attributes
    ----------
    hit:
        Role -> per-hit (jagged) branch.
    fractions:
        The truth fraction branches, in particle order.
    particle:
        Role -> ``[jagged branch]`` (``particle_jagged``) or the per-event scalar branches,
        one per particle.
    particle_jagged:
        True if the particle roles are jagged branches.
    event:
        Role (``event_id``, ``weight``) -> per-event scalar branch.
    float_int:
        Branches of integer roles stored as floats: their values are checked to be whole.
    format:
        ``"TTree"``, ``"RNTuple"`` or ``None`` (an in-memory chunk).
    geometry:
        The geometry of ``Schema.geometry``, loaded.
    """

    hit: dict[str, str]
    fractions: list[str]
    particle: dict[str, list[str]]
    particle_jagged: bool
    event: dict[str, str]
    float_int: set[str] = field(default_factory=set)
    format: str | None = None
    geometry: Any = None

    def branches(self) -> list[str]:
        """Every branch to read, once each."""
        out = [*self.hit.values(), *self.fractions, *self.event.values()]
        for names in self.particle.values():
            out.extend(names)
        return list(dict.fromkeys(out))

    @property
    def n_stacked(self) -> int:
        """Number of particles of scalar particle branches (0 if jagged or none)."""
        if self.particle_jagged or not self.particle:
            return 0
        return len(next(iter(self.particle.values())))


def _key(role: str, scope: str) -> str:
    return f"particle_{role}" if scope == "particle" else role


def _check(
    info: BranchInfo, role: str, scope: str, value: Value, where: dict[str, Any], plan_fi: set
) -> None:
    """Check that branch ``info`` fits ``role`` (``scope`` hit/event/particle/stacked)."""
    b, key = info.name, _key(role, scope)
    fix = how_to_set(key)
    if info.kind == "unreadable":
        raise DataError(
            f"branch {b!r} given for {role} cannot be read ({info.type}); the file is "
            f"truncated or corrupt (rewrite or re-download it), or the branch has a type uproot "
            f"cannot read (name another branch in {fix})",
            **where,
            branch=b,
        )
    if not info.numeric:
        raise DataError(
            f"branch {b!r} given for {role} holds {info.type} ({info.kind}), not numbers; "
            f"{role} needs a numeric branch: name one in {fix}",
            **where,
            branch=b,
        )
    if info.dtype == "bool" and value != "flag":
        raise DataError(
            f"branch {b!r} given for {role} is boolean ({info.type}); it would be read as 0/1. "
            f"{role} needs {'integers' if value == 'int' else 'numbers'}: name the right "
            f"branch in {fix}",
            **where,
            branch=b,
        )
    if scope == "hit" and info.kind != "jagged":
        raise DataError(
            f"branch {b!r} given for {role} is per-event ({info.type}: one value per event), "
            f"but {role} has one value per hit: name a per-hit (jagged) branch in {fix}",
            **where,
            branch=b,
        )
    if scope in ("event", "stacked") and info.kind != "scalar":
        what = (
            f"{role} has one value per event"
            if scope == "event"
            else f"a pattern or list for {key} selects one per-event scalar branch per particle"
        )
        raise DataError(
            f"branch {b!r} given for {role} is jagged ({info.type}: a list per event, per hit "
            f"or per particle), but {what}: name a per-event scalar branch in {fix}",
            **where,
            branch=b,
        )
    if value in ("int", "flag") and info.dtype is not None and info.dtype.startswith("float"):
        plan_fi.add(b)


def _missing(b: str, types: dict[str, BranchInfo], key: str, where: dict[str, Any]) -> DataError:
    records = sorted(n for n, i in types.items() if i.kind == "record")
    hint = ""
    if records:
        hint = (
            f" The fields {records} are records (structures); calo reads flat branches: write "
            "their members as separate branches (e.g. f['events'] = {'hit_x': ..., 'hit_y': "
            "...}, or mktree/extend with ak.zip, which uproot flattens to hit_x, hit_y)."
        )
    return DataError(
        f"branch {b!r} not found; the tree has branches {sorted(types)}. Set {how_to_set(key)} "
        f"to the right name, or leave the key out if the file has no such branch.{hint}",
        **where,
        branch=b,
    )


@functools.lru_cache(maxsize=8)
def _load_geometry(path: str, mtime: float) -> Any:
    from calo.geometry import Geometry

    return Geometry.from_file(path)


def load_geometry(path: str) -> Any:
    """The :class:`calo.geometry.Geometry` of file ``path`` (cached while the file is unchanged).

    Examples
    --------
    >>> load_geometry("missing.csv")
    Traceback (most recent call last):
    ...
    calo.errors.DataError: geometry file missing.csv does not exist; check Schema.geometry (key geometry: of the schema YAML) [file missing.csv]
    """
    if not os.path.isfile(path):
        raise DataError(
            f"geometry file {path} does not exist; check Schema.geometry (key geometry: of "
            "the schema YAML)",
            file=path,
        )
    return _load_geometry(path, os.path.getmtime(path))


def make_plan(
    schema: Schema,
    types: dict[str, BranchInfo],
    *,
    file: str | None = None,
    require_truth: bool = False,
    fmt: str | None = None,
) -> Plan:
    """Resolve ``schema`` against the branch ``types`` of a file (or chunk) and check them.

    Parameters
    ----------
    schema:
        The branch names and units.
    types:
        Branch name -> :class:`~calo.io.source.BranchInfo`, from
        :meth:`calo.io.source.Source.branches` or :func:`calo.io.source.classify_array`.
    file:
        For error messages.
    require_truth:
        Raise if the schema finds no truth branch.
    fmt:
        ``"TTree"`` or ``"RNTuple"``, kept in the plan.

    Examples
    --------
    >>> import awkward as ak
    >>> from calo.io.source import classify_array
    >>> arr = ak.Array({"hx": [[1.0]], "hy": [[1.0]], "hz": [[1.0]], "he": [[1.0]],
    ...                 "g0": [5.0], "g1": [7.0]})
    >>> s = Schema(x="hx", y="hy", z="hz", energy="he", particle_energy="g*")
    >>> make_plan(s, classify_array(arr)).particle
    {'energy': ['g0', 'g1']}
    """
    where: dict[str, Any] = {"file": file, "tree": schema.tree}
    available = list(types)
    fi: set[str] = set()

    hit = schema.hit_branches()
    for role, b in hit.items():
        if b not in types:
            raise _missing(b, types, role, where)
        value: Value = (
            "float" if role in HIT_FLOAT_ROLES else "int" if role in HIT_INT_ROLES else "flag"
        )
        _check(types[b], role, "hit", value, where, fi)

    fractions = schema.fraction_branches(available, file=file)
    for b in fractions:
        _check(types[b], "truth_fractions", "hit", "float", where, fi)

    event = schema.event_branches()
    for role, b in event.items():
        if b not in types:
            raise _missing(b, types, role, where)
        _check(types[b], role, "event", "int" if role == "event_id" else "float", where, fi)

    particle: dict[str, list[str]] = {}
    forms: dict[str, bool] = {}  # role -> jagged?
    for role, spec in schema.particle_branches().items():
        key = f"particle_{role}"
        value = "int" if role in PARTICLE_INT_ROLES else "float"
        names = match_branches(spec, available)
        if not names:
            raise DataError(
                f"{key} pattern {spec!r} matches no branch; the tree has {sorted(available)}. "
                f"Set {how_to_set(key)} to the right pattern, or leave the key out",
                **where,
            )
        for b in names:
            if b not in types:
                raise _missing(b, types, key, where)
        single = isinstance(spec, str) and not is_pattern(spec)
        if single and types[names[0]].kind == "jagged":
            _check(types[names[0]], role, "particle", value, where, fi)
            forms[role] = True
        else:
            for b in names:
                _check(types[b], role, "stacked", value, where, fi)
            forms[role] = False
        particle[role] = names
    if len(set(forms.values())) > 1:
        jag = sorted(r for r, j in forms.items() if j)
        sca = sorted(r for r, j in forms.items() if not j)
        raise DataError(
            f"particle roles {jag} are jagged branches but {sca} are per-event scalar branches; "
            "give every particle_* key in one form (all jagged, or all numbered per-event "
            "scalars such as gen_energy*)",
            **where,
        )
    jagged = bool(forms) and next(iter(forms.values()))
    if particle and not jagged:
        ks = {r: len(v) for r, v in particle.items()}
        if len(set(ks.values())) > 1:
            raise DataError(
                f"the per-event particle branches give different numbers of particles per role "
                f"({ks}: {particle}); every particle_* pattern must match one branch per particle",
                **where,
            )

    if require_truth and not fractions and "truth_index" not in hit:
        raise DataError(
            f"no truth branches: truth_fractions={schema.truth_fractions!r} matches none of "
            f"{sorted(available)} and truth_index is not set. Set truth_fractions: or "
            "truth_index: in the schema YAML (--schema FILE.yaml) or Schema(...) in Python, or "
            "read without truth (require_truth=False)",
            **where,
        )
    geometry = load_geometry(schema.geometry) if schema.geometry is not None else None
    return Plan(hit, fractions, particle, jagged, event, fi, fmt, geometry)
