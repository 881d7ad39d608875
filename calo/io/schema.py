"""Branch schema: which branch of a ROOT tree plays which role for calo.

A :class:`Schema` maps the roles calo needs (hit position, energy, cell size, layer, truth,
noise flag, event weight, particle properties) to branch names. ``Schema()`` matches the tree
written by ``calo-simulate`` (see ``docs/data_format.md``); a tree written by another tool is
read by naming its branches.

Examples
--------
>>> s = Schema(tree="hits", x="rechit_x", y="rechit_y", z="rechit_z",
...            energy="rechit_energy", layer="rechit_layer", dx=None, dy=None, dz=None,
...            cell_size=(1.0, 1.0, 0.5), truth_fractions=None, truth_index="rechit_pid",
...            noise=None)
>>> s.truth_index, s.cell_size
('rechit_pid', (1.0, 1.0, 0.5))
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from calo.config import from_dict, load_yaml
from calo.errors import ConfigError, DataError

__all__ = ["Schema"]


def _natural_key(name: str) -> tuple[str, int, str]:
    """Sort ``hit_frac_10`` after ``hit_frac_9``: split off the last integer in the name."""
    m = re.search(r"(\d+)(?!.*\d)", name)
    if m is None:
        return (name, -1, "")
    return (name[: m.start()], int(m.group(1)), name[m.end() :])


@dataclass
class Schema:
    """Map calo's roles to the branch names of a ROOT tree.

    Every ``str | None`` field names a branch; ``None`` means the tree has no such branch and
    the documented fallback is used.

    Parameters
    ----------
    tree:
        Name of the tree (one entry per event).
    x, y, z:
        Per-hit cell centre (cm), jagged.
    energy:
        Per-hit energy (GeV), jagged.
    time:
        Optional per-hit time (ns); only needed for the ``time`` feature.
    layer:
        Per-hit layer index; ``None`` gives layer 0 for every hit.
    dx, dy, dz:
        Per-hit cell sizes (transverse x, transverse y, depth); ``None`` uses the matching
        constant of ``cell_size``.
    cell_size:
        Constant cell sizes ``(dx, dy, dz)`` used for the size branches that are ``None``.
    truth_fractions:
        Per-particle truth energy fraction branches: a glob pattern (``"hit_frac_*"``, sorted by
        the trailing number) or a list of branch names. ``None`` if the tree has none.
    truth_index:
        Per-hit index of the truth particle (``-1`` or any negative value for noise); turned into
        one-hot fractions. Used only when ``truth_fractions`` is ``None`` or matches no branch.
    noise:
        Per-hit boolean noise flag; ``None`` marks hits whose fractions are all zero as noise.
    event_id:
        Per-event event number; ``None`` uses the entry number in the file.
    weight:
        Per-event weight; ``None`` gives weight 1.
    particle_energy, particle_pdg, particle_deposited, particle_x, particle_y:
        Per-particle jagged branches; each ``None`` gives zeros.

    Examples
    --------
    >>> Schema().tree, Schema().truth_fractions
    ('events', 'hit_frac_*')
    """

    tree: str = "events"
    x: str = "hit_x"
    y: str = "hit_y"
    z: str = "hit_z"
    energy: str = "hit_energy"
    time: str | None = None
    layer: str | None = "hit_layer"
    dx: str | None = "hit_dx"
    dy: str | None = "hit_dy"
    dz: str | None = "hit_dz"
    cell_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    truth_fractions: str | list[str] | None = "hit_frac_*"
    truth_index: str | None = None
    noise: str | None = "hit_noise"
    event_id: str | None = "event"
    weight: str | None = None
    particle_energy: str | None = "particle_energy"
    particle_pdg: str | None = "particle_pdg"
    particle_deposited: str | None = "particle_deposited"
    particle_x: str | None = "particle_x"
    particle_y: str | None = "particle_y"

    def __post_init__(self) -> None:
        if len(self.cell_size) != 3:
            raise ConfigError(f"cell_size must have 3 values (dx, dy, dz), got {self.cell_size}")
        self.cell_size = tuple(float(v) for v in self.cell_size)  # type: ignore[assignment]
        if isinstance(self.truth_fractions, tuple):
            self.truth_fractions = list(self.truth_fractions)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> Schema:
        """Load a schema from a YAML mapping of field names to branch names.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.yaml"
        >>> _ = p.write_text("tree: hits\\ntruth_fractions: null\\ntruth_index: pid\\n")
        >>> Schema.from_yaml(p).truth_index
        'pid'
        """
        return load_yaml(cls, path, overrides)

    @classmethod
    def from_dict(cls, data: dict) -> Schema:
        """Build a schema from a mapping (unknown keys raise :class:`calo.errors.ConfigError`).

        Examples
        --------
        >>> Schema.from_dict({"tree": "t"}).tree
        't'
        """
        return from_dict(cls, data)

    # -- resolution against a tree -------------------------------------------------------------

    def hit_branches(self) -> dict[str, str]:
        """Role -> branch name of the named per-hit branches (fractions excluded).

        Examples
        --------
        >>> sorted(Schema().hit_branches())[:3]
        ['dx', 'dy', 'dz']
        """
        roles = ("x", "y", "z", "energy", "time", "layer", "dx", "dy", "dz", "noise")
        out = {r: getattr(self, r) for r in roles if getattr(self, r) is not None}
        if self.truth_index is not None:
            out["truth_index"] = self.truth_index
        return out

    def particle_branches(self) -> dict[str, str]:
        """Role -> branch name of the named per-particle branches.

        Examples
        --------
        >>> Schema().particle_branches()["energy"]
        'particle_energy'
        """
        roles = ("energy", "pdg", "deposited", "x", "y")
        out = {}
        for r in roles:
            b = getattr(self, f"particle_{r}")
            if b is not None:
                out[r] = b
        return out

    def event_branches(self) -> dict[str, str]:
        """Role -> branch name of the named per-event (scalar) branches.

        Examples
        --------
        >>> Schema().event_branches()
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
        >>> Schema().fraction_branches(["hit_x", "hit_frac_10", "hit_frac_2"])
        ['hit_frac_2', 'hit_frac_10']
        """
        tf = self.truth_fractions
        if tf is None:
            return []
        if isinstance(tf, str):
            if any(c in tf for c in "*?["):
                return sorted(fnmatch.filter(available, tf), key=_natural_key)
            tf = [tf]
        missing = [b for b in tf if b not in available]
        if missing:
            raise DataError(
                f"truth fraction branch(es) {missing} not found; the tree has {sorted(available)}. "
                "Set Schema.truth_fractions to the right names or a glob pattern",
                file=file,
                tree=self.tree,
                branch=missing[0],
            )
        return list(tf)
