"""Detector geometry as data: a table of box-shaped cells and a fast point-to-cell lookup.

A :class:`Geometry` holds one row per cell: ``id, x, y, z, dx, dy, dz, layer`` (centres and
full sizes in cm, layer 0 = front) as numpy arrays, plus four numbers per layer that the
shower simulation needs: the layer's thickness in radiation lengths (``layer_x0``), in nuclear
interaction lengths (``layer_lambda``), its effective Moliere radius in cm (``layer_moliere``)
and its sampling fraction (``layer_sampling``: visible sensor energy / total deposited energy).

All cells of a layer share the same ``z`` and ``dz``; layers do not overlap in z; cells of a
layer do not overlap in x-y (gaps are allowed). A point belongs to the cell whose half-open box
``[x - dx/2, x + dx/2) x [y - dy/2, y + dy/2) x [z - dz/2, z + dz/2)`` contains it, so every
point maps to at most one cell. Edges closer than ``EDGE_TOLERANCE_CM`` are merged (snapped)
when the lookup index is built; :meth:`Geometry.bounds` returns the snapped edges.

:meth:`Geometry.locate` is vectorised: per layer the distinct x and y edges form a grid of
elementary rectangles, each mapped to one cell (or -1), so a lookup is two binary searches and
one table read per point.

The default geometry (:meth:`Geometry.default`) is a tungsten/silicon sampling calorimeter
modelled on the toy calorimeter of the GravNet paper: 20 layers, 2,102 cells on a 30 x 30 cm
face, cells per layer 112, 172, 292, 292, 172, 172, 172, 172, 112, 112, 112, 112, 28, 28,
7, 7, 7, 7, 7, 7 (finest in the centre of layers 2-3, coarse at the back). Longitudinally:

========  ====================  ==========  =========
layers    absorber per layer    X0          lambda_I
========  ====================  ==========  =========
0-3       0.35 cm W (1 X0)      4 x 1.0     0.14
4-11      0.70 cm W (2 X0)      8 x 2.0     0.56
12-13     1.40 cm W (4 X0)      2 x 4.0     0.28
14-19     5.00 cm W (14.3 X0)   6 x 14.3    3.02
========  ====================  ==========  =========

so the first 14 layers hold 28 X0 (an electromagnetic section that contains 100 GeV electron
showers, shower maximum at about 9 X0) and the whole stack 4.0 lambda_I (a coarse hadronic
section for pions). Every layer also holds a 300 um silicon sensor and 2.2 mm of gap
(readout, air), which dilute the Moliere radius and set the sampling fraction.

Examples
--------
>>> import numpy as np
>>> geo = Geometry.default()
>>> geo.n_cells, geo.n_layers
(2102, 20)
>>> int(geo.locate(np.array([0.1]), np.array([0.1]), np.array([0.3]))[0]) >= 0
True
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calo.errors import ConfigError, DataError

__all__ = [
    "ABSORBER_LAMBDA_CM",
    "ABSORBER_MIP_DEDX_MEV_PER_CM",
    "ABSORBER_MOLIERE_CM",
    "ABSORBER_X0_CM",
    "ABSORBER_Z",
    "CELLS_PER_LAYER",
    "CRITICAL_ENERGY_GEV",
    "DEFAULT_ABSORBER_CM",
    "EDGE_TOLERANCE_CM",
    "FACE_CM",
    "GAP_CM",
    "SENSOR_CM",
    "SENSOR_MIP_GEV",
    "Geometry",
]

# --- materials (PDG review, "Atomic and nuclear properties of materials") ----------------
ABSORBER_Z = 74
"""Atomic number of the absorber (tungsten); enters the Grindhammer-Peters parameters."""
ABSORBER_X0_CM = 0.3504
"""Radiation length of tungsten (cm)."""
ABSORBER_MOLIERE_CM = 0.9327
"""Moliere radius of tungsten (cm)."""
ABSORBER_LAMBDA_CM = 9.946
"""Nuclear interaction length of tungsten (cm)."""
CRITICAL_ENERGY_GEV = 0.00797
"""Critical energy of tungsten (GeV)."""
ABSORBER_MIP_DEDX_MEV_PER_CM = 22.10
"""Minimum-ionising energy loss in tungsten (MeV/cm)."""
SENSOR_CM = 0.03
"""Silicon sensor thickness per layer (cm)."""
SENSOR_MIP_GEV = 0.03 * 3.876e-3
"""Energy a minimum-ionising particle leaves in one sensor (GeV): 300 um x 3.876 MeV/cm."""
GAP_CM = 0.22
"""Non-absorber, non-sensor depth per layer (readout board, air), cm; counted as empty."""

# --- default calorimeter -------------------------------------------------------------
FACE_CM = 30.0
"""Side of the square front face of the default geometry (cm)."""
CELLS_PER_LAYER = (
    112,
    172,
    292,
    292,
    172,
    172,
    172,
    172,
    112,
    112,
    112,
    112,
    28,
    28,
    7,
    7,
    7,
    7,
    7,
    7,
)
"""Cells per layer of the default geometry (as in the GravNet paper: 2,102 in all)."""
DEFAULT_ABSORBER_CM = (
    (ABSORBER_X0_CM,) * 4 + (2 * ABSORBER_X0_CM,) * 8 + (4 * ABSORBER_X0_CM,) * 2 + (5.0,) * 6
)
"""Tungsten thickness per layer of the default geometry (cm)."""

EDGE_TOLERANCE_CM = 1e-6
"""Cell edges closer than this are the same edge."""

_FIELDS = ("id", "x", "y", "z", "dx", "dy", "dz", "layer")
_LAYER_FIELDS = ("x0", "lambda_int", "moliere", "sampling")


def _square_rings(face: float, rings: list[tuple[float, float]]) -> list[tuple[float, ...]]:
    """Tile a square of side ``face`` with concentric square regions of uniform square cells.

    ``rings`` is a list of ``(outer_side, cell_size)`` from the inside out; region i covers the
    square of side ``outer_side_i`` minus region i-1. Returns ``(x, y, dx, dy)`` tuples.
    """
    cells: list[tuple[float, ...]] = []
    inner = 0.0
    for side, size in rings:
        n = round(side / size)
        centres = -side / 2 + size * (np.arange(n) + 0.5)
        for cy in centres:
            for cx in centres:
                if max(abs(cx), abs(cy)) < inner / 2:
                    continue
                cells.append((float(cx), float(cy), size, size))
        inner = side
    if abs(inner - face) > 1e-9:
        raise ConfigError("rings must end at the face size")
    return cells


def _seven_cells(face: float) -> list[tuple[float, ...]]:
    """Seven coarse cells: a central face/3 square, two side squares, two cells above and below."""
    s = face / 3
    cells = [(-s, 0.0, s, s), (0.0, 0.0, s, s), (s, 0.0, s, s)]
    for cy in (-s, s):
        for cx in (-face / 4, face / 4):
            cells.append((cx, cy, face / 2, s))
    return cells


# transverse layouts of the default geometry (outer side, cell size) from the inside out
_LAYOUTS = {
    112: [(6.0, 1.5), (30.0, 3.0)],
    172: [(6.0, 1.0), (18.0, 2.0), (30.0, 3.0)],
    292: [(6.0, 0.6), (18.0, 1.5), (30.0, 3.0)],
    28: [(6.0, 3.0), (30.0, 6.0)],
}


@dataclass(frozen=True)
class _LayerIndex:
    xs: np.ndarray  # sorted distinct x edges
    ys: np.ndarray  # sorted distinct y edges
    table: np.ndarray  # (len(ys) - 1, len(xs) - 1) cell index or -1


def _merge_edges(values: np.ndarray, tol: float) -> np.ndarray:
    """Sorted distinct values, merging runs closer than ``tol`` into their first member."""
    v = np.sort(values)
    keep = np.ones(len(v), dtype=bool)
    keep[1:] = np.diff(v) > tol
    return v[keep]


def _snap(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index of the edge in ``edges`` nearest to each value."""
    i = np.clip(np.searchsorted(edges, values), 1, len(edges) - 1)
    left = edges[i - 1]
    right = edges[i]
    return np.where(np.abs(values - left) <= np.abs(right - values), i - 1, i)


class Geometry:
    """A calorimeter as a table of box cells, with per-layer material numbers.

    Parameters
    ----------
    id, x, y, z, dx, dy, dz, layer:
        One entry per cell: integer id (unique), centre (cm), full size (cm), layer index.
        Layers must be numbered 0..L-1 from the front, all cells of a layer must share z and
        dz, and layers must be ordered in z without overlap.
    layer_x0, layer_lambda, layer_moliere, layer_sampling:
        Per layer (length L): thickness in radiation lengths, thickness in interaction
        lengths, effective Moliere radius (cm) and sampling fraction. When omitted they are
        computed for a tungsten/silicon layer of depth dz with a 300 um sensor and 2.2 mm gap
        (absorber = dz - 0.25 cm).
    name:
        A label (``"default"`` for :meth:`default`).

    Raises
    ------
    DataError
        On malformed arrays, overlapping cells, or inconsistent layers (the message names the
        cell ids or layer and, for files, the file).

    Examples
    --------
    >>> import numpy as np
    >>> geo = Geometry.from_arrays(
    ...     x=[-0.5, 0.5], y=[0.0, 0.0], z=[1.0, 1.0], dx=[1.0, 1.0], dy=[1.0, 1.0],
    ...     dz=[2.0, 2.0], layer=[0, 0])
    >>> geo.locate(np.array([-0.2, 0.2, 3.0]), np.zeros(3), np.ones(3)).tolist()
    [0, 1, -1]
    """

    def __init__(
        self,
        id: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        z: np.ndarray,
        dx: np.ndarray,
        dy: np.ndarray,
        dz: np.ndarray,
        layer: np.ndarray,
        *,
        layer_x0: np.ndarray | None = None,
        layer_lambda: np.ndarray | None = None,
        layer_moliere: np.ndarray | None = None,
        layer_sampling: np.ndarray | None = None,
        name: str = "custom",
        source: str | None = None,
    ) -> None:
        self.name = name
        self.source = source
        where = {"file": source}
        n = len(np.asarray(x))
        cols = {}
        for key, val in zip(_FIELDS, (id, x, y, z, dx, dy, dz, layer), strict=True):
            arr = np.asarray(val)
            if arr.ndim != 1 or len(arr) != n:
                raise DataError(
                    f"geometry column {key!r} must be 1-d with {n} entries, got shape {arr.shape}",
                    **where,
                )
            cols[key] = arr
        if n == 0:
            raise DataError("geometry has no cells", **where)
        for key in ("id", "layer"):
            a = cols[key]
            if not np.issubdtype(a.dtype, np.integer):
                af = a.astype(np.float64)
                if not np.all(np.isfinite(af)) or np.any(af != np.round(af)):
                    bad = int(np.flatnonzero(~np.isfinite(af) | (af != np.round(af)))[0])
                    raise DataError(
                        f"geometry column {key!r} must hold integers", entry=bad, **where
                    )
                a = af.astype(np.int64)
            cols[key] = a.astype(np.int64)
        for key in ("x", "y", "z", "dx", "dy", "dz"):
            a = cols[key].astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(a))
            if len(bad):
                raise DataError(
                    f"geometry column {key!r} is not finite", entry=int(bad[0]), **where
                )
            cols[key] = a
        for key in ("dx", "dy", "dz"):
            bad = np.flatnonzero(cols[key] <= 0)
            if len(bad):
                raise DataError(
                    f"cell size {key!r} must be positive, got {cols[key][bad[0]]}",
                    entry=int(bad[0]),
                    **where,
                )
        ids, counts = np.unique(cols["id"], return_counts=True)
        if np.any(counts > 1):
            raise DataError(f"cell id {int(ids[counts > 1][0])} appears more than once", **where)
        if np.any(cols["layer"] < 0):
            raise DataError(
                "layer indices must be >= 0", entry=int(np.argmin(cols["layer"])), **where
            )
        n_layers = int(cols["layer"].max()) + 1
        present = np.bincount(cols["layer"], minlength=n_layers)
        if np.any(present == 0):
            raise DataError(
                f"layers must be numbered 0..{n_layers - 1} without gaps; layer "
                f"{int(np.flatnonzero(present == 0)[0])} has no cells",
                **where,
            )
        self.id = cols["id"]
        self.x, self.y, self.z = cols["x"], cols["y"], cols["z"]
        self.dx, self.dy, self.dz = cols["dx"], cols["dy"], cols["dz"]
        self.layer = cols["layer"]
        self.n_cells = n
        self.n_layers = n_layers

        # layers: common z and dz, ordered, no overlap
        zc = np.empty(n_layers)
        dzc = np.empty(n_layers)
        for ell in range(n_layers):
            sel = np.flatnonzero(self.layer == ell)
            z0, dz0 = self.z[sel[0]], self.dz[sel[0]]
            bad = sel[
                (np.abs(self.z[sel] - z0) > EDGE_TOLERANCE_CM)
                | (np.abs(self.dz[sel] - dz0) > EDGE_TOLERANCE_CM)
            ]
            if len(bad):
                raise DataError(
                    f"cells of layer {ell} must share z and dz: cell id {int(self.id[bad[0]])} has "
                    f"z={self.z[bad[0]]}, dz={self.dz[bad[0]]}, cell id {int(self.id[sel[0]])} has "
                    f"z={z0}, dz={dz0}",
                    entry=int(bad[0]),
                    **where,
                )
            zc[ell], dzc[ell] = z0, dz0
        self.layer_z_lo = zc - dzc / 2
        self.layer_z_hi = zc + dzc / 2
        # snap touching layer faces together so that a depth belongs to exactly one layer
        touch = np.abs(self.layer_z_lo[1:] - self.layer_z_hi[:-1]) <= EDGE_TOLERANCE_CM
        self.layer_z_lo[1:][touch] = self.layer_z_hi[:-1][touch]
        self.layer_dz = dzc
        if n_layers > 1 and np.any(self.layer_z_lo[1:] < self.layer_z_hi[:-1] - EDGE_TOLERANCE_CM):
            ell = int(
                np.flatnonzero(self.layer_z_lo[1:] < self.layer_z_hi[:-1] - EDGE_TOLERANCE_CM)[0]
            )
            raise DataError(
                f"layer {ell + 1} (z from {self.layer_z_lo[ell + 1]:.4g} cm) overlaps or precedes "
                f"layer {ell} (z up to {self.layer_z_hi[ell]:.4g} cm); number layers front to back",
                **where,
            )

        absorber = np.clip(dzc - SENSOR_CM - GAP_CM, 1e-6, None)
        defaults = {
            "x0": absorber / ABSORBER_X0_CM,
            "lambda_int": absorber / ABSORBER_LAMBDA_CM,
            "moliere": ABSORBER_MOLIERE_CM * dzc / absorber,
            "sampling": SENSOR_MIP_GEV
            / (SENSOR_MIP_GEV + 1e-3 * ABSORBER_MIP_DEDX_MEV_PER_CM * absorber),
        }
        given = dict(
            zip(_LAYER_FIELDS, (layer_x0, layer_lambda, layer_moliere, layer_sampling), strict=True)
        )
        per_layer = {}
        for key, val in given.items():
            arr = defaults[key] if val is None else np.asarray(val, dtype=np.float64)
            if arr.shape != (n_layers,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise DataError(
                    f"layer property {key!r} must hold {n_layers} positive finite numbers, got {arr!r}",
                    **where,
                )
            per_layer[key] = arr
        if np.any(per_layer["sampling"] > 1):
            raise DataError("layer sampling fractions must be in (0, 1]", **where)
        self.layer_x0 = per_layer["x0"]
        self.layer_lambda = per_layer["lambda_int"]
        self.layer_moliere = per_layer["moliere"]
        self.layer_sampling = per_layer["sampling"]
        self._build_index()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        z: np.ndarray,
        dx: np.ndarray,
        dy: np.ndarray,
        dz: np.ndarray,
        layer: np.ndarray,
        id: np.ndarray | None = None,
        **kwargs: object,
    ) -> Geometry:
        """Build a geometry from cell columns; ``id`` defaults to ``0..N-1``.

        Other keyword arguments (``layer_x0``, ``layer_lambda``, ``layer_moliere``,
        ``layer_sampling``, ``name``) are passed to :class:`Geometry`.

        Examples
        --------
        >>> geo = Geometry.from_arrays(x=[0.0], y=[0.0], z=[0.5], dx=[2.0], dy=[2.0], dz=[1.0],
        ...                            layer=[0])
        >>> geo.n_cells
        1
        """
        if id is None:
            id = np.arange(len(np.asarray(x)))
        return cls(id, x, y, z, dx, dy, dz, layer, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def default(cls) -> Geometry:
        """The default 20-layer, 2,102-cell tungsten/silicon calorimeter (see module doc).

        Examples
        --------
        >>> Geometry.default().cells_per_layer().tolist()[:4]
        [112, 172, 292, 292]
        """
        rows = []
        z_front = 0.0
        for ell, (n_cells, absorber) in enumerate(
            zip(CELLS_PER_LAYER, DEFAULT_ABSORBER_CM, strict=True)
        ):
            dz = absorber + SENSOR_CM + GAP_CM
            cells = (
                _seven_cells(FACE_CM) if n_cells == 7 else _square_rings(FACE_CM, _LAYOUTS[n_cells])
            )
            assert len(cells) == n_cells
            for cx, cy, sx, sy in cells:
                rows.append((cx, cy, z_front + dz / 2, sx, sy, dz, ell))
            z_front += dz
        a = np.array(rows)
        geo = cls.from_arrays(
            *(a[:, i] for i in range(6)), layer=a[:, 6].astype(np.int64), name="default"
        )
        return geo

    @classmethod
    def from_file(cls, path: str | Path) -> Geometry:
        """Read a geometry written by :meth:`save` (``.npz`` or ``.csv``).

        A csv file has a header with at least ``id,x,y,z,dx,dy,dz,layer``; optional columns
        ``x0,lambda_int,moliere,sampling`` give the layer properties (repeated on every cell of
        the layer; they must agree within a layer). An npz file holds the same names as arrays
        (the layer properties as per-layer arrays ``layer_x0`` ... ``layer_sampling``).

        Examples
        --------
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "geo.csv")
        >>> _ = Geometry.default().save(p)
        >>> Geometry.from_file(p).n_cells
        2102
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"geometry file {path} does not exist", file=str(path))
        suffix = path.suffix.lower()
        if suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as f:
                    data = {k: f[k] for k in f.files}
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read geometry npz: {e}", file=str(path)) from None
            missing = [k for k in _FIELDS if k not in data]
            if missing:
                raise DataError(f"geometry npz lacks arrays {missing}", file=str(path))
            layer_kw = {
                f"layer_{k}" if k != "lambda_int" else "layer_lambda": data.get(f"layer_{k}")
                for k in _LAYER_FIELDS
            }
            name = str(data["name"]) if "name" in data else path.stem
            return cls(*(data[k] for k in _FIELDS), name=name, source=str(path), **layer_kw)
        if suffix == ".csv":
            return cls._from_csv(path)
        raise DataError(f"unknown geometry file type {suffix!r}; use .npz or .csv", file=str(path))

    @classmethod
    def _from_csv(cls, path: Path) -> Geometry:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise DataError("geometry csv is empty", file=str(path)) from None
            missing = [k for k in _FIELDS if k not in header]
            if missing:
                raise DataError(
                    f"geometry csv header lacks columns {missing} (have {header})", file=str(path)
                )
            rows = []
            for i, row in enumerate(reader):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"row has {len(row)} fields, header has {len(header)}",
                        file=str(path),
                        entry=i,
                    )
                try:
                    rows.append([float(c) for c in row])
                except ValueError:
                    raise DataError(f"row is not numeric: {row}", file=str(path), entry=i) from None
        if not rows:
            raise DataError("geometry csv has no cells", file=str(path))
        a = np.array(rows, dtype=np.float64)
        col = {h: a[:, j] for j, h in enumerate(header)}
        layer_kw: dict[str, np.ndarray | None] = {}
        layer = col["layer"]
        for k in _LAYER_FIELDS:
            kw = "layer_lambda" if k == "lambda_int" else f"layer_{k}"
            if k not in col:
                layer_kw[kw] = None
                continue
            if np.any(layer != np.round(layer)) or np.any(layer < 0):
                raise DataError("geometry column 'layer' must hold integers >= 0", file=str(path))
            li = layer.astype(np.int64)
            n_layers = int(li.max()) + 1
            vals = np.full(n_layers, np.nan)
            vals[li] = col[k]
            if np.any(np.abs(vals[li] - col[k]) > 1e-9 * np.maximum(1.0, np.abs(col[k]))):
                bad = int(
                    np.flatnonzero(
                        np.abs(vals[li] - col[k]) > 1e-9 * np.maximum(1.0, np.abs(col[k]))
                    )[0]
                )
                raise DataError(
                    f"column {k!r} differs between cells of layer {li[bad]}",
                    file=str(path),
                    entry=bad,
                )
            layer_kw[kw] = vals
        return cls(*(col[k] for k in _FIELDS), name=path.stem, source=str(path), **layer_kw)

    def save(self, path: str | Path) -> Path:
        """Write the geometry to ``path`` (``.npz`` or ``.csv``; see :meth:`from_file`).

        Examples
        --------
        >>> import tempfile, os
        >>> p = Geometry.default().save(os.path.join(tempfile.mkdtemp(), "g.npz"))
        >>> p.suffix
        '.npz'
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix.lower()
        if suffix == ".npz":
            np.savez(
                path,
                **{k: getattr(self, k) for k in _FIELDS},
                layer_x0=self.layer_x0,
                layer_lambda_int=self.layer_lambda,
                layer_moliere=self.layer_moliere,
                layer_sampling=self.layer_sampling,
                name=np.array(self.name),
            )
        elif suffix == ".csv":
            per_layer = (self.layer_x0, self.layer_lambda, self.layer_moliere, self.layer_sampling)
            with path.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(_FIELDS + _LAYER_FIELDS)
                for i in range(self.n_cells):
                    ell = self.layer[i]
                    w.writerow(
                        [int(self.id[i])]
                        + [
                            repr(float(getattr(self, k)[i]))
                            for k in ("x", "y", "z", "dx", "dy", "dz")
                        ]
                        + [int(ell)]
                        + [repr(float(p[ell])) for p in per_layer]
                    )
        else:
            raise DataError(
                f"unknown geometry file type {suffix!r}; use .npz or .csv", file=str(path)
            )
        return path

    # ------------------------------------------------------------------ lookup
    def _build_index(self) -> None:
        where = {"file": self.source}
        self._index: list[_LayerIndex] = []
        lo_x, hi_x = self.x - self.dx / 2, self.x + self.dx / 2
        lo_y, hi_y = self.y - self.dy / 2, self.y + self.dy / 2
        self._bounds = np.empty((self.n_cells, 4))
        for ell in range(self.n_layers):
            sel = np.flatnonzero(self.layer == ell)
            xs = _merge_edges(np.concatenate([lo_x[sel], hi_x[sel]]), EDGE_TOLERANCE_CM)
            ys = _merge_edges(np.concatenate([lo_y[sel], hi_y[sel]]), EDGE_TOLERANCE_CM)
            ix0, ix1 = _snap(lo_x[sel], xs), _snap(hi_x[sel], xs)
            iy0, iy1 = _snap(lo_y[sel], ys), _snap(hi_y[sel], ys)
            table = np.full((len(ys) - 1, len(xs) - 1), -1, dtype=np.int64)
            for c, a0, a1, b0, b1 in zip(sel, ix0, ix1, iy0, iy1, strict=True):
                block = table[b0:b1, a0:a1]
                taken = block[block >= 0]
                if len(taken):
                    other = int(taken[0])
                    raise DataError(
                        f"cells overlap in layer {ell}: cell id {int(self.id[c])} "
                        f"(x={self.x[c]:.4g}, y={self.y[c]:.4g}) and cell id {int(self.id[other])} "
                        f"(x={self.x[other]:.4g}, y={self.y[other]:.4g})",
                        entry=int(c),
                        **where,
                    )
                block[...] = c
            self._bounds[sel] = np.stack([xs[ix0], xs[ix1], ys[iy0], ys[iy1]], axis=1)
            self._index.append(_LayerIndex(xs, ys, table))

    def bounds(self) -> np.ndarray:
        """Snapped cell boxes as an array ``[N, 6]``: ``xlo, xhi, ylo, yhi, zlo, zhi`` (cm).

        Examples
        --------
        >>> Geometry.default().bounds().shape
        (2102, 6)
        """
        zlo = self.layer_z_lo[self.layer]
        zhi = self.layer_z_hi[self.layer]
        return np.column_stack([self._bounds, zlo, zhi])

    def locate_layer(self, layer: np.ndarray | int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Cell index (row of the table) containing transverse point (x, y) in ``layer``.

        ``layer`` is an int or an array like ``x``; entries outside ``0..L-1`` give -1.

        Examples
        --------
        >>> import numpy as np
        >>> geo = Geometry.default()
        >>> int(geo.layer[geo.locate_layer(0, np.array([0.1]), np.array([0.1]))[0]])
        0
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        lay = np.broadcast_to(np.asarray(layer, dtype=np.int64), x.shape)
        out = np.full(x.shape, -1, dtype=np.int64)
        if lay.size == 0:
            return out
        if lay.ndim == 0 or np.all(lay == lay.flat[0]):
            ell = int(lay.flat[0])
            if 0 <= ell < self.n_layers:
                out[...] = self._lookup(ell, x, y)
            return out
        for ell in range(self.n_layers):
            m = lay == ell
            if m.any():
                out[m] = self._lookup(ell, x[m], y[m])
        return out

    def _lookup(self, ell: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        idx = self._index[ell]
        ix = np.searchsorted(idx.xs, x, side="right") - 1
        iy = np.searchsorted(idx.ys, y, side="right") - 1
        ok = (ix >= 0) & (ix < len(idx.xs) - 1) & (iy >= 0) & (iy < len(idx.ys) - 1)
        out = np.full(x.shape, -1, dtype=np.int64)
        out[ok] = idx.table[iy[ok], ix[ok]]
        return out

    def layer_of_z(self, z: np.ndarray) -> np.ndarray:
        """Layer index containing depth ``z`` (half-open ``[z_lo, z_hi)``), -1 outside.

        Examples
        --------
        >>> import numpy as np
        >>> Geometry.default().layer_of_z(np.array([-1.0, 0.1, 1e3])).tolist()
        [-1, 0, -1]
        """
        z = np.asarray(z, dtype=np.float64)
        ell = np.searchsorted(self.layer_z_lo, z, side="right") - 1
        ok = (ell >= 0) & (z < self.layer_z_hi[np.clip(ell, 0, None)])
        return np.where(ok, ell, -1)

    def locate(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Cell index (row of the table) containing each point, -1 where none does.

        Parameters
        ----------
        x, y, z:
            Arrays of the same shape (cm).

        Returns
        -------
        numpy.ndarray
            int64 array of that shape.

        Examples
        --------
        >>> import numpy as np
        >>> geo = Geometry.default()
        >>> geo.locate(np.array([0.0, 20.0]), np.array([0.0, 0.0]), np.array([0.3, 0.3])).tolist()[1]
        -1
        """
        x, y, z = np.broadcast_arrays(
            np.asarray(x, dtype=np.float64),
            np.asarray(y, dtype=np.float64),
            np.asarray(z, dtype=np.float64),
        )
        ell = self.layer_of_z(z)
        out = self.locate_layer(ell, x, y)
        return np.where(ell >= 0, out, -1)

    def cells_per_layer(self) -> np.ndarray:
        """Number of cells in every layer.

        Examples
        --------
        >>> int(Geometry.default().cells_per_layer().sum())
        2102
        """
        return np.bincount(self.layer, minlength=self.n_layers)

    def __repr__(self) -> str:
        return (
            f"Geometry(name={self.name!r}, cells={self.n_cells}, layers={self.n_layers}, "
            f"depth={self.layer_x0.sum():.1f} X0 / {self.layer_lambda.sum():.2f} lambda_I)"
        )
