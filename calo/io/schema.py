"""Branch schema: which branch of a ROOT tree or RNTuple plays which role for calo, in what units.

A :class:`Schema` names only what the file has: a role that is not given is absent, and its
documented fallback is used. ``x``, ``y``, ``z`` and ``energy`` are required. calo's own layout
(the tree written by ``calo-simulate``, ``docs/data_format.md``) is a preset:
``Schema.calo()`` in Python, ``preset: calo`` in a YAML file. Units are declared with
``energy_unit`` and ``length_unit`` and converted on read to calo's GeV and cm.

Examples
--------
>>> s = Schema(tree="hits", x="rechit_x", y="rechit_y", z="rechit_z", energy="rechit_energy",
...            truth_index="rechit_pid", energy_unit="MeV", length_unit="mm")
>>> s.truth_index, s.energy_scale, s.length_scale
('rechit_pid', 0.001, 0.1)
>>> Schema.calo().truth_fractions
'hit_frac_*'
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from calo.config import from_dict as _config_from_dict
from calo.config import to_dict as _config_to_dict
from calo.errors import ConfigError, DataError

__all__ = ["ENERGY_UNITS", "LENGTH_UNITS", "PRESETS", "Schema"]

ENERGY_UNITS: dict[str, float] = {"eV": 1e-9, "keV": 1e-6, "MeV": 1e-3, "GeV": 1.0, "TeV": 1e3}
"""Energy unit names and their factor to GeV (calo's energy unit)."""

LENGTH_UNITS: dict[str, float] = {"um": 1e-4, "mm": 0.1, "cm": 1.0, "m": 100.0}
"""Length unit names and their factor to cm (calo's length unit)."""

#: the per-particle roles (``particle_<role>`` fields of the schema)
PARTICLE_ROLES = ("energy", "pdg", "deposited", "x", "y")

#: what a YAML file or the command line must say to fix a schema key
_HOW = "the schema YAML given with --schema FILE.yaml (key {key}:) or Schema({key}=...) in Python"


def how_to_set(key: str) -> str:
    """Where a user sets schema key ``key``: in the YAML file and in Python.

    Examples
    --------
    >>> how_to_set("tree")
    'the schema YAML given with --schema FILE.yaml (key tree:) or Schema(tree=...) in Python'
    """
    return _HOW.format(key=key)


def _natural_key(name: str) -> tuple[str, int, str]:
    """Sort ``hit_frac_10`` after ``hit_frac_9``: split off the last integer in the name."""
    m = re.search(r"(\d+)(?!.*\d)", name)
    if m is None:
        return (name, -1, "")
    return (name[: m.start()], int(m.group(1)), name[m.end() :])


def is_pattern(name: str) -> bool:
    """True if ``name`` is a glob pattern (``*``, ``?`` or ``[``).

    Examples
    --------
    >>> is_pattern("gen_energy*"), is_pattern("gen_energy0")
    (True, False)
    """
    return any(c in name for c in "*?[")


def match_branches(spec: str | list[str], available: list[str]) -> list[str]:
    """Branch names that ``spec`` (a glob pattern or a list of names) selects, sorted by their
    trailing number for a pattern (``f_2`` before ``f_10``), in the given order for a list.

    Names of a list that are not in ``available`` are returned too; the caller reports them.

    Examples
    --------
    >>> match_branches("gen_energy*", ["gen_energy10", "gen_energy2", "gen_pdg0"])
    ['gen_energy2', 'gen_energy10']
    """
    if isinstance(spec, str):
        if is_pattern(spec):
            return sorted(fnmatch.filter(available, spec), key=_natural_key)
        return [spec]
    return list(spec)


def _unit_factor(value: str | float, table: dict[str, float], key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a unit name {list(table)} or a number, got {value!r}")
    if isinstance(value, int | float):
        if not value > 0:
            raise ConfigError(f"{key} factor must be positive, got {value}")
        return float(value)
    if value in table:
        return table[value]
    try:
        f = float(value)
    except ValueError:
        raise ConfigError(
            f"unknown {key} {value!r}: choose one of {list(table)} or give the factor to "
            f"{'GeV' if 'energy' in key else 'cm'} as a number"
        ) from None
    return _unit_factor(f, table, key)


def _layer_key(k: Any) -> int:
    try:
        return int(k)
    except (TypeError, ValueError):
        raise ConfigError(
            f"cell_size_by_layer keys must be layer numbers, got {k!r}: write "
            "cell_size_by_layer: {0: [dx, dy, dz], 1: [dx, dy, dz], ...}"
        ) from None


@dataclass
class Schema:
    """Map calo's roles to the branch names of a ROOT TTree or RNTuple, with their units.

    Every branch field left ``None`` means the file has no such branch; the fallback in
    brackets is used. Per-hit branches are jagged (one value per hit), per-event ones scalar.

    Parameters
    ----------
    tree:
        Name of the TTree or RNTuple (one entry per event).
    x, y, z:
        Per-hit cell centre (``length_unit``). Required.
    energy:
        Per-hit energy (``energy_unit``). Required.
    time:
        Per-hit time (ns); only needed for the ``time`` feature [absent].
    layer:
        Per-hit layer index, integer (a float branch must hold whole numbers) [the geometry's
        layer when ``geometry`` is given, else 0].
    dx, dy, dz:
        Per-hit cell sizes (transverse x, transverse y, depth; ``length_unit``) [from
        ``geometry``, ``cell_size_by_layer`` or ``cell_size``, in that order].
    cell_size:
        Constant cell sizes ``[dx, dy, dz]`` (``length_unit``) for the whole detector.
    cell_size_by_layer:
        Cell sizes per layer, ``{layer: [dx, dy, dz]}`` (``length_unit``); needs ``layer``.
        A hit in a layer missing from the table is a DataError.
    geometry:
        A geometry file (``.csv`` or ``.npz`` of :meth:`calo.geometry.Geometry.save`, cm)
        whose cells give the sizes (and the layer, if ``layer`` is not given): looked up by
        ``cell_id`` if given, else by the hit position. A relative path in a YAML file is
        relative to that file.
    cell_id:
        Per-hit cell id in ``geometry`` [cells found by position].
    truth_fractions:
        Per-hit truth energy fraction branches, one per particle: a glob pattern
        (``"hit_frac_*"``, sorted by the trailing number) or a list of names [absent].
    truth_index:
        Per-hit index of the truth particle, integer (negative for noise). Alone it gives
        one-hot fractions; with ``truth_fractions`` it is kept as ``Data.hit_particle`` and must
        point to a particle with a non-zero fraction [absent].
    noise:
        Per-hit noise flag (bool or integer) [hits whose fractions are all zero].
    event_id:
        Per-event event number, integer [the entry number in the file].
    weight:
        Per-event weight [1].
    particle_energy, particle_pdg, particle_deposited, particle_x, particle_y:
        Per-particle truth (energies in ``energy_unit``, positions in ``length_unit``): a
        jagged branch (one value per particle), a per-event scalar branch (one particle), or a
        glob pattern or list of per-event scalar branches, one per particle (``"gen_energy*"``
        matches ``gen_energy0``, ``gen_energy1``, ... sorted by number) [zeros].
    energy_unit:
        Unit of the energies in the file: one of ``eV keV MeV GeV TeV`` or the factor to GeV.
    length_unit:
        Unit of the lengths in the file: one of ``um mm cm m`` or the factor to cm.

    Examples
    --------
    >>> s = Schema(x="hx", y="hy", z="hz", energy="he")
    >>> s.tree, s.truth_fractions, s.layer
    ('events', None, None)
    >>> Schema(tree="t")
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: the schema must name the branches of x, y, z, energy (missing: x, y, z, energy): set them in the schema YAML given with --schema FILE.yaml (keys x:, y:, z:, energy:) or Schema(x=..., ...) in Python; for a file written by calo-simulate use preset: calo / Schema.calo()
    """

    tree: str = "events"
    x: str | None = None
    y: str | None = None
    z: str | None = None
    energy: str | None = None
    time: str | None = None
    layer: str | None = None
    dx: str | None = None
    dy: str | None = None
    dz: str | None = None
    cell_size: tuple[float, float, float] | None = None
    cell_size_by_layer: dict[int, list[float]] | None = None
    geometry: str | None = None
    cell_id: str | None = None
    truth_fractions: str | list[str] | None = None
    truth_index: str | None = None
    noise: str | None = None
    event_id: str | None = None
    weight: str | None = None
    particle_energy: str | list[str] | None = None
    particle_pdg: str | list[str] | None = None
    particle_deposited: str | list[str] | None = None
    particle_x: str | list[str] | None = None
    particle_y: str | list[str] | None = None
    energy_unit: str | float = "GeV"
    length_unit: str | float = "cm"

    def __post_init__(self) -> None:
        missing = [r for r in ("x", "y", "z", "energy") if not getattr(self, r)]
        if missing:
            raise ConfigError(
                f"the schema must name the branches of x, y, z, energy (missing: "
                f"{', '.join(missing)}): set them in the schema YAML given with --schema "
                "FILE.yaml (keys x:, y:, z:, energy:) or Schema(x=..., ...) in Python; for a "
                "file written by calo-simulate use preset: calo / Schema.calo()"
            )
        if not self.tree:
            raise ConfigError(f"the schema must name the tree: set {how_to_set('tree')}")
        if self.cell_size is not None:
            if len(self.cell_size) != 3:
                raise ConfigError(
                    f"cell_size must have 3 values [dx, dy, dz], got {list(self.cell_size)}"
                )
            self.cell_size = tuple(float(v) for v in self.cell_size)  # type: ignore[assignment]
        if self.cell_size_by_layer is not None:
            table: dict[int, list[float]] = {}
            for k, v in self.cell_size_by_layer.items():
                try:
                    layer = int(k)
                    sizes = [float(s) for s in v]
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"cell_size_by_layer must map a layer number to [dx, dy, dz], got "
                        f"{k!r}: {v!r}"
                    ) from None
                if len(sizes) != 3:
                    raise ConfigError(
                        f"cell_size_by_layer[{layer}] must have 3 values [dx, dy, dz], got {sizes}"
                    )
                table[layer] = sizes
            self.cell_size_by_layer = table
            if self.layer is None:
                raise ConfigError(
                    "cell_size_by_layer needs the per-hit layer branch: set " + how_to_set("layer")
                )
        given = [
            n
            for n in ("cell_size", "cell_size_by_layer", "geometry")
            if getattr(self, n) is not None
        ]
        if len(given) > 1:
            raise ConfigError(
                f"give one source of cell sizes, not {' and '.join(given)} (per-hit dx, dy, dz "
                "branches may be combined with any one of them)"
            )
        if self.cell_id is not None and self.geometry is None:
            raise ConfigError("cell_id needs a geometry file: set " + how_to_set("geometry"))
        if isinstance(self.geometry, Path):
            self.geometry = str(self.geometry)
        for name in ("truth_fractions", *(f"particle_{r}" for r in PARTICLE_ROLES)):
            v = getattr(self, name)
            if isinstance(v, tuple | list):
                if not v:
                    raise ConfigError(f"{name} is an empty list; give branch names or null")
                setattr(self, name, [str(b) for b in v])
        self.energy_scale  # noqa: B018  (checks the unit now)
        self.length_scale  # noqa: B018

    # -- presets and (de)serialisation -----------------------------------------------------------

    @classmethod
    def calo(cls, **overrides: Any) -> Schema:
        """The layout written by ``calo-simulate`` (``docs/data_format.md``); keywords change
        fields of it.

        Examples
        --------
        >>> Schema.calo().tree, Schema.calo(time="hit_t").time
        ('events', 'hit_t')
        """
        return dataclasses.replace(_CALO, **overrides)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Schema:
        """The preset ``name`` (one of :data:`PRESETS`), with fields changed by keywords.

        Examples
        --------
        >>> Schema.preset("calo") == Schema.calo()
        True
        """
        if name not in PRESETS:
            raise ConfigError(f"unknown schema preset {name!r}; choose one of {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Build a schema from a mapping of field names to values (unknown keys raise
        :class:`calo.errors.ConfigError`). A ``preset`` key starts from that preset; the other
        keys change its fields.

        Examples
        --------
        >>> Schema.from_dict({"preset": "calo", "energy_unit": "MeV"}).energy_scale
        0.001
        """
        data = dict(data or {})
        name = data.pop("preset", None)
        if name is not None:
            base = Schema.preset(str(name)).to_dict()
            data = {**base, **data}
        table = data.get("cell_size_by_layer")
        if isinstance(table, dict):  # YAML and JSON may give the layer numbers as strings
            data["cell_size_by_layer"] = {_layer_key(k): v for k, v in table.items()}
        return _config_from_dict(cls, data)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> Schema:
        """Load a schema from a YAML mapping of field names to branch names and units.

        ``preset: calo`` starts from calo's layout, the other keys change it; ``overrides``
        are ``key=value`` strings applied last (values parsed as YAML). A relative
        ``geometry`` path is taken relative to the YAML file.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.yaml"
        >>> _ = p.write_text("preset: calo\\ntree: hits\\ntruth_fractions: null\\n"
        ...                  "truth_index: pid\\n")
        >>> s = Schema.from_yaml(p, ["energy_unit=MeV"])
        >>> s.tree, s.x, s.truth_index, s.energy_unit
        ('hits', 'hit_x', 'pid', 'MeV')
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"schema file {path} does not exist; check the path")
        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            msg = " ".join(str(e).split())
            raise ConfigError(f"schema file {path} is not valid YAML: {msg}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"schema file {path} must hold a mapping (key: value) at the top")
        for item in overrides or []:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key=value (e.g. tree=hits)")
            key, value = item.split("=", 1)
            try:
                data[key.strip().lstrip("-").replace("-", "_")] = yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise ConfigError(f"invalid override {item!r}: {str(e).splitlines()[0]}") from None
        geo = data.get("geometry")
        if isinstance(geo, str) and not Path(geo).is_absolute():
            # absolute, so that the schema still finds it when saved elsewhere (a run folder)
            data["geometry"] = str((path.parent / geo).resolve())
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{e.message} (schema file {path})", **e.where) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (YAML- and JSON-serialisable).

        Examples
        --------
        >>> d = Schema.calo().to_dict()
        >>> d["x"], d["cell_size"], Schema.from_dict(d) == Schema.calo()
        ('hit_x', None, True)
        """
        d = _config_to_dict(self)
        if d["cell_size_by_layer"] is not None:
            d["cell_size_by_layer"] = {int(k): v for k, v in d["cell_size_by_layer"].items()}
        return d

    def to_yaml(self, path: str | Path | None = None, *, only_set: bool = True) -> str:
        """The schema as YAML text (fields left at their default omitted if ``only_set``),
        written to ``path`` when given.

        Examples
        --------
        >>> print(Schema(x="a", y="b", z="c", energy="e", energy_unit="MeV").to_yaml(), end="")
        x: a
        y: b
        z: c
        energy: e
        energy_unit: MeV
        """
        d = self.to_dict()
        if only_set:
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            d = {k: v for k, v in d.items() if v != defaults[k] or k in ("x", "y", "z", "energy")}
        text = yaml.safe_dump(d, sort_keys=False)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    # -- units -------------------------------------------------------------------------------------

    @property
    def energy_scale(self) -> float:
        """Factor from the file's energies to GeV.

        Examples
        --------
        >>> Schema(x="a", y="b", z="c", energy="e", energy_unit="keV").energy_scale
        1e-06
        """
        return _unit_factor(self.energy_unit, ENERGY_UNITS, "energy_unit")

    @property
    def length_scale(self) -> float:
        """Factor from the file's lengths to cm.

        Examples
        --------
        >>> Schema(x="a", y="b", z="c", energy="e", length_unit=0.5).length_scale
        0.5
        """
        return _unit_factor(self.length_unit, LENGTH_UNITS, "length_unit")

    # -- roles -----------------------------------------------------------------------------------

    def hit_branches(self) -> dict[str, str]:
        """Role -> branch name of the named per-hit branches (fractions excluded).

        Examples
        --------
        >>> sorted(Schema.calo().hit_branches())[:3]
        ['dx', 'dy', 'dz']
        """
        roles = ("x", "y", "z", "energy", "time", "layer", "dx", "dy", "dz", "noise")
        roles += ("truth_index", "cell_id")
        return {r: getattr(self, r) for r in roles if getattr(self, r) is not None}

    def particle_branches(self) -> dict[str, str | list[str]]:
        """Role -> branch name (or pattern / list of per-event branches) of the per-particle
        roles that are given.

        Examples
        --------
        >>> Schema.calo().particle_branches()["energy"]
        'particle_energy'
        """
        out: dict[str, str | list[str]] = {}
        for r in PARTICLE_ROLES:
            b = getattr(self, f"particle_{r}")
            if b is not None:
                out[r] = b
        return out

    def event_branches(self) -> dict[str, str]:
        """Role -> branch name of the named per-event (scalar) branches.

        Examples
        --------
        >>> Schema.calo().event_branches()
        {'event_id': 'event'}
        """
        out = {}
        if self.event_id is not None:
            out["event_id"] = self.event_id
        if self.weight is not None:
            out["weight"] = self.weight
        return out

    def fraction_branches(self, available: list[str], *, file: str | None = None) -> list[str]:
        """Resolve ``truth_fractions`` against the branch names ``available`` in a tree.

        A glob pattern matches zero or more branches (sorted by their trailing number); an
        explicit list must be present in full, otherwise :class:`calo.errors.DataError`.

        Examples
        --------
        >>> Schema.calo().fraction_branches(["hit_x", "hit_frac_10", "hit_frac_2"])
        ['hit_frac_2', 'hit_frac_10']
        """
        tf = self.truth_fractions
        if tf is None:
            return []
        names = match_branches(tf, available)
        missing = [b for b in names if b not in available]
        if missing:
            raise DataError(
                f"truth fraction branch(es) {missing} not found; the tree has {sorted(available)}. "
                f"Set {how_to_set('truth_fractions')} to the right names or a glob pattern",
                file=file,
                tree=self.tree,
                branch=missing[0],
            )
        return names


_CALO = Schema(
    tree="events",
    x="hit_x",
    y="hit_y",
    z="hit_z",
    energy="hit_energy",
    layer="hit_layer",
    dx="hit_dx",
    dy="hit_dy",
    dz="hit_dz",
    truth_fractions="hit_frac_*",
    noise="hit_noise",
    event_id="event",
    particle_energy="particle_energy",
    particle_pdg="particle_pdg",
    particle_deposited="particle_deposited",
    particle_x="particle_x",
    particle_y="particle_y",
)

PRESETS: dict[str, Schema] = {"calo": _CALO}
"""Named schemas: ``calo`` is the tree ``calo-simulate`` writes (``docs/data_format.md``)."""
