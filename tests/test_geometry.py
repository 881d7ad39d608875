"""Geometry: the default calorimeter's layout and depth, lookup against brute force, files, errors."""

from __future__ import annotations

import numpy as np
import pytest

from calo.errors import DataError
from calo.geometry import (
    ABSORBER_LAMBDA_CM,
    ABSORBER_X0_CM,
    CELLS_PER_LAYER,
    CRITICAL_ENERGY_GEV,
    FACE_CM,
    Geometry,
)


@pytest.fixture(scope="module")
def geo() -> Geometry:
    return Geometry.default()


def brute_force(geo: Geometry, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    b = geo.bounds()
    inside = (
        (b[None, :, 0] <= x[:, None])
        & (x[:, None] < b[None, :, 1])
        & (b[None, :, 2] <= y[:, None])
        & (y[:, None] < b[None, :, 3])
        & (b[None, :, 4] <= z[:, None])
        & (z[:, None] < b[None, :, 5])
    )
    n_in = inside.sum(axis=1)
    assert n_in.max() <= 1, "brute force found a point inside two cells"
    return np.where(n_in == 1, inside.argmax(axis=1), -1)


def test_default_layout_matches_paper(geo: Geometry) -> None:
    assert geo.n_cells == 2102
    assert geo.cells_per_layer().tolist() == list(CELLS_PER_LAYER)
    # every layer tiles the 30 x 30 cm face exactly
    area = np.bincount(geo.layer, weights=geo.dx * geo.dy)
    np.testing.assert_allclose(area, FACE_CM**2, rtol=1e-12)
    b = geo.bounds()
    assert b[:, 0].min() == pytest.approx(-FACE_CM / 2) and b[:, 1].max() == pytest.approx(
        FACE_CM / 2
    )
    # finer near the centre: the cell at the centre is the smallest of its layer (front section)
    for ell in range(12):
        sel = geo.layer == ell
        central = geo.locate_layer(ell, np.array([0.01]), np.array([0.01]))[0]
        assert geo.dx[central] == geo.dx[sel].min() < geo.dx[sel].max()
    # finest in layers 2-3, coarse at the back
    assert geo.dx[geo.layer == 2].min() < geo.dx[geo.layer == 1].min()
    assert geo.dx[geo.layer == 19].min() >= 10.0


def test_default_depth_contains_em_showers(geo: Geometry) -> None:
    # EM section (layers 0-13): 28 X0, i.e. > T_max(100 GeV) + ~19 X0
    t_max_100 = np.log(100.0 / CRITICAL_ENERGY_GEV) - 0.5
    em_x0 = geo.layer_x0[:14].sum()
    assert em_x0 == pytest.approx(28.0, rel=1e-6)
    assert em_x0 > t_max_100 + 15
    assert geo.layer_lambda.sum() == pytest.approx(
        (4 * 1 + 8 * 2 + 2 * 4) * ABSORBER_X0_CM / ABSORBER_LAMBDA_CM + 6 * 5.0 / ABSORBER_LAMBDA_CM
    )
    # layers are contiguous and front to back
    np.testing.assert_allclose(geo.layer_z_lo[1:], geo.layer_z_hi[:-1])
    # sampling fraction falls as the absorber thickens
    assert np.all(np.diff(geo.layer_sampling) <= 0)


def test_locate_matches_brute_force_random(geo: Geometry, rng: np.random.Generator) -> None:
    n = 4000
    x = rng.uniform(-16, 16, n)
    y = rng.uniform(-16, 16, n)
    z = rng.uniform(-1, geo.layer_z_hi[-1] + 1, n)
    got = geo.locate(x, y, z)
    np.testing.assert_array_equal(got, brute_force(geo, x, y, z))
    assert 0.5 < (got >= 0).mean() < 1.0  # some points outside on purpose


def test_locate_matches_brute_force_on_boundaries(geo: Geometry, rng: np.random.Generator) -> None:
    b = geo.bounds()
    n = 3000
    pick = rng.integers(0, geo.n_cells, n)
    # points exactly on cell edges (x, y and z), and one ulp-ish below the upper edges
    x = np.where(rng.random(n) < 0.5, b[pick, 0], b[pick, 1])
    y = np.where(rng.random(n) < 0.5, b[pick, 2], rng.uniform(b[pick, 2], b[pick, 3]))
    z = np.where(rng.random(n) < 0.5, b[pick, 4], b[pick, 5])
    x_below = np.nextafter(b[pick, 1], -np.inf)
    xs = np.concatenate([x, x_below])
    ys = np.concatenate([y, y])
    zs = np.concatenate([z, np.nextafter(b[pick, 5], -np.inf)])
    got = geo.locate(xs, ys, zs)
    np.testing.assert_array_equal(got, brute_force(geo, xs, ys, zs))
    # just below the upper x edge is still the picked cell
    np.testing.assert_array_equal(got[n:], pick)
    # the upper outer face edge is outside (half-open cells)
    assert geo.locate(np.array([FACE_CM / 2]), np.array([0.0]), np.array([0.1]))[0] == -1
    assert geo.locate(np.array([-FACE_CM / 2]), np.array([0.0]), np.array([0.1]))[0] >= 0


def test_every_cell_centre_maps_to_itself(geo: Geometry) -> None:
    np.testing.assert_array_equal(geo.locate(geo.x, geo.y, geo.z), np.arange(geo.n_cells))


def test_layer_of_z_edges(geo: Geometry) -> None:
    z = np.array([geo.layer_z_lo[0], geo.layer_z_hi[0], geo.layer_z_hi[-1], -1e-9])
    assert geo.layer_of_z(z).tolist() == [0, 1, -1, -1]


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_file_round_trip(geo: Geometry, tmp_path, suffix: str, rng: np.random.Generator) -> None:
    path = geo.save(tmp_path / f"g{suffix}")
    back = Geometry.from_file(path)
    for k in ("id", "x", "y", "z", "dx", "dy", "dz", "layer"):
        np.testing.assert_array_equal(getattr(back, k), getattr(geo, k))
    for k in ("layer_x0", "layer_lambda", "layer_moliere", "layer_sampling"):
        np.testing.assert_allclose(getattr(back, k), getattr(geo, k), rtol=1e-15)
    x, y = rng.uniform(-15, 15, (2, 500))
    z = rng.uniform(0, 40, 500)
    np.testing.assert_array_equal(back.locate(x, y, z), geo.locate(x, y, z))


def _two_cells(**kw):
    base = dict(
        x=[-0.5, 0.5],
        y=[0.0, 0.0],
        z=[1.0, 1.0],
        dx=[1.0, 1.0],
        dy=[1.0, 1.0],
        dz=[2.0, 2.0],
        layer=[0, 0],
    )
    base.update(kw)
    return base


def test_custom_geometry_and_layer_properties() -> None:
    geo = Geometry.from_arrays(
        **_two_cells(),
        layer_x0=[3.0],
        layer_lambda=[0.1],
        layer_moliere=[1.2],
        layer_sampling=[0.5],
    )
    assert geo.layer_x0.tolist() == [3.0]
    assert geo.locate(
        np.array([-1.0, -0.5, 0.0, 0.999, 1.0]), np.zeros(5), np.ones(5)
    ).tolist() == [0, 0, 1, 1, -1]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(x=[-0.4, 0.5]), "overlap"),
        (dict(dx=[1.0, -1.0]), "positive"),
        (dict(id=[3, 3]), "more than once"),
        (dict(y=[0.0]), "entries"),
        (dict(z=[1.0, 1.5]), "share z and dz"),
        (dict(layer=[0, 2]), "no cells"),
        (dict(layer=[0, -1]), ">= 0"),
        (dict(x=[np.nan, 0.5]), "not finite"),
        (dict(layer=[0, 0.5]), "integers"),
    ],
)
def test_malformed_geometry_raises(kw: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        Geometry.from_arrays(**_two_cells(**kw))


def test_overlap_error_names_cells() -> None:
    with pytest.raises(DataError) as err:
        Geometry.from_arrays(**_two_cells(x=[-0.4, 0.5], id=[10, 11]))
    assert "cell id 11" in str(err.value) and "cell id 10" in str(err.value)


def test_layers_out_of_order_raise() -> None:
    kw = _two_cells(x=[0.0, 0.0], z=[5.0, 1.0], layer=[0, 1])
    with pytest.raises(DataError, match="overlaps or precedes"):
        Geometry.from_arrays(**kw)


def test_bad_layer_property_raises() -> None:
    with pytest.raises(DataError, match="layer property"):
        Geometry.from_arrays(**_two_cells(), layer_x0=[1.0, 2.0])
    with pytest.raises(DataError, match="sampling"):
        Geometry.from_arrays(**_two_cells(), layer_sampling=[1.5])


def test_bad_files_raise(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        Geometry.from_file(tmp_path / "none.csv")
    p = tmp_path / "g.txt"
    p.write_text("x")
    with pytest.raises(DataError, match="unknown geometry file type"):
        Geometry.from_file(p)
    p = tmp_path / "missing.csv"
    p.write_text("id,x,y,z\n0,0,0,0\n")
    with pytest.raises(DataError, match="lacks columns") as err:
        Geometry.from_file(p)
    assert str(p) in str(err.value)
    p = tmp_path / "text.csv"
    p.write_text("id,x,y,z,dx,dy,dz,layer\n0,0,0,1,1,1,1,0\n1,a,0,1,1,1,1,0\n")
    with pytest.raises(DataError, match="not numeric") as err:
        Geometry.from_file(p)
    assert "entry 1" in str(err.value)
    p = tmp_path / "props.csv"
    p.write_text("id,x,y,z,dx,dy,dz,layer,x0\n0,-0.5,0,1,1,1,2,0,1.0\n1,0.5,0,1,1,1,2,0,2.0\n")
    with pytest.raises(DataError, match="differs between cells"):
        Geometry.from_file(p)
    p = tmp_path / "bad.npz"
    np.savez(p, x=np.zeros(2))
    with pytest.raises(DataError, match="lacks arrays"):
        Geometry.from_file(p)
    p = tmp_path / "over.csv"
    p.write_text("id,x,y,z,dx,dy,dz,layer\n0,0,0,1,1,1,1,0\n1,0.2,0,1,1,1,1,0\n")
    with pytest.raises(DataError, match="overlap") as err:
        Geometry.from_file(p)
    assert "over.csv" in str(err.value)
