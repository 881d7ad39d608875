"""Look into a ROOT file from any tool: its trees, each branch's type and what calo could use
it for, and a starting schema YAML (the engine of ``calo-inspect``).

:func:`inspect_file` lists the TTrees and RNTuples with their entry counts and, for one of
them, every branch: per-event scalar, per-hit jagged or per-particle jagged (jagged branches
are grouped by their lengths in the first entries; the group with the most values per event
is the hits), with its dtype. It guesses a schema role for each branch from common names
(``x``, ``energy``, ``layer``, ``pid``, ``frac``, ``gen_energy0`` ...). :meth:`Inspection.schema_yaml`
writes that guess as YAML with a comment per role saying what it means and which unit to
check, for the user to edit and pass to ``--schema``.

Examples
--------
>>> import tempfile, pathlib, numpy as np, awkward as ak, uproot
>>> p = pathlib.Path(tempfile.mkdtemp()) / "f.root"
>>> with uproot.recreate(p) as f:
...     f["events"] = {"rechit_x": ak.Array([[1.0, 2.0], [3.0]]),
...                    "rechit_y": ak.Array([[1.0, 2.0], [3.0]]),
...                    "rechit_z": ak.Array([[1.0, 2.0], [3.0]]),
...                    "rechit_energy": ak.Array([[10.0, 20.0], [30.0]]),
...                    "gen_energy0": np.array([50.0, 60.0])}
>>> ins = inspect_file(p)
>>> ins.guess["energy"], ins.guess["particle_energy"]
('rechit_energy', 'gen_energy*')
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from calo.errors import DataError
from calo.io.schema import Schema
from calo.io.source import BranchInfo, list_trees, open_file, open_source

__all__ = ["BranchRow", "Inspection", "inspect_file"]

#: entries read to group the jagged branches by length and to show typical values
N_SAMPLE = 100

# last name token -> role, for per-hit branches
_HIT_TOKENS: dict[str, tuple[str, ...]] = {
    "x": ("x", "posx", "xpos", "cellx"),
    "y": ("y", "posy", "ypos", "celly"),
    "z": ("z", "posz", "zpos", "cellz"),
    "energy": ("energy", "e", "en", "edep", "energies", "adc_energy"),
    "time": ("time", "t", "toa"),
    "layer": ("layer", "lay", "layerid", "layer_id", "plane"),
    "dx": ("dx", "sizex", "size_x", "width_x"),
    "dy": ("dy", "sizey", "size_y", "width_y"),
    "dz": ("dz", "sizez", "size_z", "thickness", "depth"),
    "noise": ("noise", "isnoise", "is_noise"),
    "truth_index": (
        "pid", "truth", "index", "idx", "truthidx", "truth_index", "particle", "particleid",
        "simidx", "shower", "showerid", "cluster", "clusterid", "label", "trackid", "mcidx",
    ),
}  # fmt: skip
_PARTICLE_TOKENS: dict[str, tuple[str, ...]] = {
    "energy": ("energy", "e", "en", "true_energy", "energies"),
    "pdg": ("pdg", "pdgid", "pdg_id", "pid", "id", "type"),
    "deposited": ("deposited", "edep", "dep", "deposit"),
    "x": ("x", "posx", "impactx", "x0"),
    "y": ("y", "posy", "impacty", "y0"),
}
_PARTICLE_PREFIXES = ("gen", "particle", "true", "truth", "mc", "sim", "primary", "p", "part")
_EVENT_TOKENS: dict[str, tuple[str, ...]] = {
    "event_id": ("event", "evt", "eventnr", "event_number", "eventnumber", "evtnum", "event_id"),
    "weight": ("weight", "w", "evtweight", "event_weight", "eventweight"),
}

_MEANING: dict[str, str] = {
    "tree": "the TTree or RNTuple with one entry per event",
    "x": "per-hit cell centre x, in length_unit",
    "y": "per-hit cell centre y, in length_unit",
    "z": "per-hit cell centre z (depth), in length_unit",
    "energy": "per-hit energy, in energy_unit",
    "time": "per-hit time (ns); only for the 'time' feature",
    "layer": "per-hit layer number (integer; a float branch must hold whole numbers)",
    "dx": "per-hit cell size, transverse x, in length_unit",
    "dy": "per-hit cell size, transverse y, in length_unit",
    "dz": "per-hit cell size, depth, in length_unit",
    "noise": "per-hit noise flag (bool or integer)",
    "truth_fractions": "per-hit truth energy fraction branches, one per particle (glob or list)",
    "truth_index": "per-hit index of the particle that made the hit (negative = noise)",
    "event_id": "per-event event number (integer)",
    "weight": "per-event weight",
    "particle_energy": "per-particle true energy, in energy_unit",
    "particle_pdg": "per-particle PDG id",
    "particle_deposited": "per-particle energy deposited in the cells, in energy_unit",
    "particle_x": "per-particle impact point x, in length_unit",
    "particle_y": "per-particle impact point y, in length_unit",
}


@dataclass
class BranchRow:
    """One branch of the inspected tree.

    Attributes
    ----------
    info:
        Its :class:`~calo.io.source.BranchInfo` (kind, dtype, type).
    scope:
        ``"per-event scalar"``, ``"per-hit jagged"``, ``"per-particle jagged"``,
        ``"jagged"`` (another length) or the kind of a branch calo cannot use.
    role:
        The schema key guessed for it (``""`` if none).
    sample:
        Median of its values in the first entries (numbers only), else ``None``.
    """

    info: BranchInfo
    scope: str
    role: str = ""
    sample: float | None = None


@dataclass
class Inspection:
    """What :func:`inspect_file` found.

    Attributes
    ----------
    path:
        The file.
    trees:
        Name -> ``(format, entries)`` of every TTree and RNTuple in the file.
    tree, format, entries:
        The inspected one.
    rows:
        One :class:`BranchRow` per branch, in the file's order.
    guess:
        Schema key -> value guessed from the branch names (branch, glob pattern or list).
    """

    path: str
    trees: dict[str, tuple[str, int]]
    tree: str
    format: str
    entries: int
    rows: list[BranchRow] = field(default_factory=list)
    guess: dict[str, Any] = field(default_factory=dict)

    def report(self) -> str:
        """The listing ``calo-inspect`` prints: trees, then each branch, its type and role."""
        lines = [f"{self.path}:"]
        for name, (fmt, n) in self.trees.items():
            mark = "*" if name == self.tree else " "
            lines.append(f" {mark} {name:<20} {fmt:<8} {n} entries")
        lines.append("")
        lines.append(
            f"{self.format} {self.tree!r}: {self.entries} entries, {len(self.rows)} branches"
        )
        width = max([len(r.info.name) for r in self.rows] + [6])
        for r in self.rows:
            dtype = r.info.dtype or r.info.type
            typ = f"{r.scope} {dtype}" if r.info.numeric else r.scope
            role = f"-> {r.role}" if r.role else ""
            sample = f"median {r.sample:.4g}" if r.sample is not None else ""
            lines.append(f"  {r.info.name:<{width}}  {typ:<30} {sample:<18} {role}".rstrip())
        return "\n".join(lines)

    def schema_yaml(self) -> str:
        """A starting schema YAML: the guessed roles with a comment each, the others commented
        out, units at their defaults with a note to check them."""
        g = self.guess
        used = {r.info.name for r in self.rows if r.role}
        out = [
            f"# calo schema for {os.path.basename(self.path)} ({self.format} {self.tree!r}, "
            f"{self.entries} entries), written by calo-inspect.",
            "# The roles are GUESSED from the branch names: check every line, fix or delete it.",
            "# A key left out means the file has no such branch. Use: --schema THIS.yaml",
            "",
        ]

        def put(key: str, value: Any, note: str = "") -> None:
            out.append(f"# {key}: {_MEANING.get(key, '')}{note}")
            if value is None:
                out.append(f"# {key}: ")
            else:
                out.append(_yaml_line(key, value))

        calo = Schema.calo()
        names = {r.info.name for r in self.rows}
        if all(b in names for b in calo.hit_branches().values()):
            out += [
                "# This is the layout calo-simulate writes: 'preset: calo' alone says the same",
                "# (the keys below then change it).",
                "",
            ]
        put("tree", self.tree)
        for key in ("x", "y", "z", "energy"):
            if key in g:
                put(key, g[key])
            else:
                out.append(f"# {key}: {_MEANING[key]}  (REQUIRED: no branch found, name one)")
                out.append(f"{key}: null")
        for key in ("layer", "time", "noise"):
            put(key, g.get(key))
        sizes = [k for k in ("dx", "dy", "dz") if k in g]
        for key in sizes:
            put(key, g[key])
        if len(sizes) < 3:
            out += [
                "# cell sizes: no per-hit size branches found. Give ONE of (in length_unit):",
                "#   cell_size: [dx, dy, dz]                  one size for the whole detector",
                "#   cell_size_by_layer: {0: [dx, dy, dz], 1: [dx, dy, dz], ...}  (needs layer)",
                "#   geometry: cells.csv (calo.geometry.Geometry.save, cm), with cell_id: BRANCH",
                "#     or without it cells found by position",
                "# Without any, every cell is taken as 1 x 1 x 1 cm.",
                "# cell_size: [1.0, 1.0, 1.0]",
            ]
        truth = [k for k in ("truth_fractions", "truth_index") if k in g]
        if not truth:
            out.append(
                "# truth: none found. Name truth_fractions (per-hit fraction branches) or "
                "truth_index (per-hit particle index) to train; leave both out to predict only"
            )
        for key in ("truth_fractions", "truth_index"):
            put(key, g.get(key))
        for key in ("event_id", "weight"):
            put(key, g.get(key))
        for role in ("energy", "pdg", "deposited", "x", "y"):
            key = f"particle_{role}"
            note = ""
            if isinstance(g.get(key), str) and "*" in g[key]:
                note = " (numbered per-event branches, one per particle)"
            put(key, g.get(key), note)
        hit_e = self._median_of(g.get("energy"))
        part_e = self._median_of(g.get("particle_energy"))
        hint = []
        if hit_e is not None:
            hint.append(f"median hit energy {hit_e:.4g}")
        if part_e is not None:
            hint.append(f"median particle energy {part_e:.4g}")
        out += [
            "",
            "# UNITS: check them. calo works in GeV and cm; these say what the file holds.",
            "# energy_unit: eV, keV, MeV, GeV, TeV or the factor to GeV"
            + (f"  (first entries: {', '.join(hint)})" if hint else ""),
            "energy_unit: GeV",
            "# length_unit: um, mm, cm, m or the factor to cm",
            "length_unit: cm",
        ]
        unused = [r.info.name for r in self.rows if r.info.name not in used]
        if unused:
            out.append("")
            out.append(f"# branches not used: {', '.join(unused)}")
        return "\n".join(out) + "\n"

    def _median_of(self, spec: Any) -> float | None:
        if spec is None:
            return None
        names = [spec] if isinstance(spec, str) else list(spec)
        vals = [
            r.sample
            for r in self.rows
            if r.sample is not None and any(fnmatch.fnmatch(r.info.name, n) for n in names)
        ]
        return float(np.median(vals)) if vals else None


def _yaml_line(key: str, value: Any) -> str:
    import yaml

    return yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False).strip()[1:-1]


def _tokens(name: str) -> list[str]:
    """``rechit_x`` -> ``['rechit', 'x']``; ``hitEnergy`` -> ``['hit', 'energy']``."""
    s = re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
    return [t for t in re.split(r"[^a-z0-9]+", s) if t]


def _last(name: str) -> str:
    t = _tokens(name)
    return t[-1] if t else ""


def _strip_number(name: str) -> tuple[str, str] | None:
    """``gen_energy0`` -> (``gen_energy``, ``0``); None without a trailing number."""
    m = re.match(r"^(.*?[A-Za-z_])(\d+)$", name)
    return (m.group(1), m.group(2)) if m else None


def _group_jagged(
    src: Any, rows: list[BranchRow], n: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-event lengths of the numeric jagged branches and median values of every numeric
    branch, from the first ``n`` entries."""
    names = [r.info.name for r in rows if r.info.numeric]
    counts: dict[str, np.ndarray] = {}
    medians: dict[str, float] = {}
    if not names or n == 0:
        return counts, medians
    try:
        arr = src.arrays(names, 0, n)
    except Exception:
        return counts, medians
    for r in rows:
        b = r.info.name
        if b not in names:
            continue
        a = arr[b]
        if r.info.kind == "jagged":
            counts[b] = np.asarray(ak.num(a, axis=1), dtype=np.int64)
            flat = np.asarray(ak.flatten(a, axis=None))
        else:
            flat = np.asarray(a)
        if len(flat) and flat.dtype != np.bool_:
            medians[b] = float(np.median(flat.astype(np.float64)))
    return counts, medians


def _scopes(rows: list[BranchRow], counts: dict[str, np.ndarray]) -> None:
    """Set each row's scope: per-event scalar, per-hit jagged (the group of equal lengths with
    the most values), per-particle jagged (other groups), or the kind."""
    groups: dict[bytes, list[str]] = {}
    for b, c in counts.items():
        groups.setdefault(c.tobytes(), []).append(b)
    hit_key = None
    if groups:
        hit_key = max(groups, key=lambda k: (np.frombuffer(k, np.int64).sum(), len(groups[k])))
    for r in rows:
        k = r.info.kind
        if k == "scalar":
            r.scope = "per-event scalar"
        elif k == "jagged" and r.info.name in counts:
            same = counts[r.info.name].tobytes() == hit_key
            r.scope = "per-hit jagged" if same else "per-particle jagged"
        elif k == "jagged":
            r.scope = "jagged"
        else:
            r.scope = k


def _guess(rows: list[BranchRow], available: list[str]) -> dict[str, Any]:
    """Schema key -> branch (or pattern) guessed from the names and scopes."""
    g: dict[str, Any] = {}
    taken: set[str] = set()

    def take(key: str, value: Any, names: list[str]) -> None:
        if key not in g:
            g[key] = value
            taken.update(names)
            for r in rows:
                if r.info.name in names:
                    r.role = key

    hits = [r for r in rows if r.scope == "per-hit jagged"]
    # fractions: per-hit float branches with "frac" in the name, numbered
    fr = [r.info.name for r in hits if "frac" in r.info.name.lower()]
    if fr:
        bases = {(_strip_number(b) or (b, ""))[0] for b in fr}
        value: Any = f"{bases.pop()}*" if len(bases) == 1 and len(fr) > 1 else fr
        if isinstance(value, str) and sorted(fnmatch.filter(available, value)) != sorted(fr):
            value = fr
        take("truth_fractions", value, fr)
    for key, toks in _HIT_TOKENS.items():
        for r in hits:
            b = r.info.name
            if b in taken:
                continue
            tk = _tokens(b)
            last = tk[-1] if tk else ""
            full = "_".join(tk[1:]) if len(tk) > 1 else last
            if last in toks or full in toks:
                if key == "truth_index" and (r.info.dtype or "").startswith("float"):
                    continue
                if key in ("x", "y", "z", "energy", "dx", "dy", "dz") and r.info.dtype == "bool":
                    continue
                take(key, b, [b])
                break
    # per-event scalars
    scalars = [r for r in rows if r.scope == "per-event scalar" and r.info.name not in taken]
    numbered: dict[str, list[str]] = {}
    for r in scalars:
        sn = _strip_number(r.info.name)
        if sn:
            numbered.setdefault(sn[0], []).append(r.info.name)
    particles = [r for r in rows if r.scope == "per-particle jagged"]
    for role, toks in _PARTICLE_TOKENS.items():
        key = f"particle_{role}"
        for r in particles:  # jagged per-particle branches first
            tk = _tokens(r.info.name)
            if r.info.name not in taken and tk and tk[-1] in toks:
                take(key, r.info.name, [r.info.name])
                break
        if key in g:
            continue
        for base, names in numbered.items():
            tk = _tokens(base)
            if not tk or tk[-1] not in toks or any(n in taken for n in names):
                continue
            if len(tk) > 1 and tk[0] not in _PARTICLE_PREFIXES and role in ("x", "y"):
                continue
            pattern = f"{base}*"
            if sorted(fnmatch.filter(available, pattern)) != sorted(names):
                pattern = f"{base}[0-9]*"
            take(key, pattern, names)
            break
    for key, toks in _EVENT_TOKENS.items():
        for r in scalars:
            b = r.info.name
            if b in taken:
                continue
            tk = _tokens(b)
            if "_".join(tk) in toks or (tk and tk[-1] in toks and key == "weight"):
                if key == "event_id" and (r.info.dtype or "").startswith("float"):
                    continue
                take(key, b, [b])
                break
    return g


def _pick_tree(trees: dict[str, tuple[str, int]], path: str) -> str:
    if not trees:
        raise DataError(
            "the file holds no TTree or RNTuple; calo reads events from one of them", file=path
        )
    if "events" in trees:
        return "events"
    return max(trees, key=lambda k: trees[k][1])


def inspect_file(
    path: str | os.PathLike, tree: str | None = None, n_sample: int = N_SAMPLE
) -> Inspection:
    """List the trees of ``path`` and the branches of ``tree``, and guess a schema.

    Parameters
    ----------
    path:
        A ROOT file.
    tree:
        The TTree or RNTuple to look into; default ``events`` if there is one, else the one
        with the most entries.
    n_sample:
        Entries read to group the jagged branches and show typical values.

    Raises
    ------
    DataError
        For a missing or corrupt file, or a tree name not in it (the trees are listed).

    Examples
    --------
    >>> inspect_file("missing.root")
    Traceback (most recent call last):
    ...
    calo.errors.DataError: file does not exist; check the path [file missing.root]
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError("file does not exist; check the path", file=path)
    with open_file(path) as f:
        found = list_trees(f, path)
        trees: dict[str, tuple[str, int]] = {}
        for name, fmt in found.items():
            if fmt in ("TTree", "RNTuple"):
                try:
                    trees[name] = (fmt, int(f[name].num_entries))
                except Exception:
                    trees[name] = (fmt, -1)
    name = tree if tree is not None else _pick_tree(trees, path)
    with open_source(path, name) as src:
        types = src.branches()
        rows = [BranchRow(info, info.kind) for info in types.values()]
        n = min(n_sample, src.num_entries)
        counts, medians = _group_jagged(src, rows, n)
        _scopes(rows, counts)
        for r in rows:
            r.sample = medians.get(r.info.name)
        guess = _guess(rows, list(types))
        return Inspection(
            path, trees, name, src.format, src.num_entries, rows, {"tree": name, **guess}
        )


def starting_schema(ins: Inspection) -> Schema:
    """The guessed schema as a :class:`Schema` (a ConfigError if x, y, z or energy was not
    found).

    Examples
    --------
    >>> ins = Inspection("f.root", {}, "t", "TTree", 0, [], {"tree": "t", "x": "a", "y": "b",
    ...                  "z": "c", "energy": "e"})
    >>> starting_schema(ins).energy
    'e'
    """
    return Schema.from_dict(dict(ins.guess))


def write_schema(ins: Inspection, out: str | os.PathLike) -> Path:
    """Write :meth:`Inspection.schema_yaml` to ``out`` (parent folders created)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(ins.schema_yaml())
    return out
