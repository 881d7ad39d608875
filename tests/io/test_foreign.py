"""A file from another detector: other names, MeV, per-layer hexagon sizes, numbered per-event
truth energies, TTree or RNTuple, a geometry file; and calo's own file in other units."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from iotrees import (
    FOREIGN_CELL_SIZES,
    foreign_events,
    foreign_schema,
    jag,
    make_events,
    write_calo_tree,
    write_foreign_file,
    write_tree,
)

from calo.errors import DataError
from calo.geometry import Geometry
from calo.io import Schema, file_format, iter_data, read_data

N = 12


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("foreign")
    return {
        fmt: write_foreign_file(d / f"{fmt}.root", n_events=N, seed=3, fmt=fmt)
        for fmt in ("rntuple", "ttree")
    }


def test_rntuple_and_ttree_give_equal_data(foreign: dict[str, Path]) -> None:
    a, sa = read_data(foreign["rntuple"], foreign_schema())
    b, sb = read_data(foreign["ttree"], foreign_schema(), step_size=5)
    assert file_format(foreign["rntuple"]) == "RNTuple" and file_format(foreign["ttree"]) == "TTree"
    assert sa.formats == {str(foreign["rntuple"]): "RNTuple"}
    assert "from 1 file (RNTuple)" in str(sa) and "from 1 file (TTree)" in str(sb)
    assert len(a) == len(b) == N and sa.events_kept == N
    for da, db in zip(a, b, strict=True):
        assert sorted(da.keys()) == sorted(db.keys())
        for key in da.keys():
            assert torch.equal(da[key], db[key]), key
    both, s = read_data([foreign["rntuple"], foreign["ttree"]], foreign_schema())
    assert len(both) == 2 * N and "from 2 files (1 RNTuple, 1 TTree)" in str(s)


def test_rntuple_streams_in_chunks(foreign: dict[str, Path]) -> None:
    whole, _ = read_data(foreign["rntuple"], foreign_schema())
    chunked = list(iter_data(foreign["rntuple"], foreign_schema(), step_size=5, n_particles=2))
    assert [int(d.entry) for d in chunked] == list(range(N))
    for a, b in zip(whole, chunked, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_units_sizes_and_scalar_truth(foreign: dict[str, Path]) -> None:
    ev = foreign_events(N, seed=3)
    data, _ = read_data(foreign["rntuple"], foreign_schema())
    for i, d in enumerate(data):
        np.testing.assert_allclose(d.energy.numpy(), ev["energy"][i] * 1e-3, rtol=1e-6)
        np.testing.assert_array_equal(d.pos[:, 0].numpy(), ev["x"][i])
        np.testing.assert_array_equal(d.layer.numpy(), ev["layer"][i])
        sizes = np.array([FOREIGN_CELL_SIZES[int(ell)] for ell in ev["layer"][i]], np.float32)
        np.testing.assert_allclose(d.x[:, 3].numpy(), np.sqrt(sizes[:, 0] * sizes[:, 1]))
        np.testing.assert_allclose(d.x[:, 4].numpy(), sizes[:, 2])
        e_true = [ev["gen_energy0"][i] * 1e-3, ev["gen_energy1"][i] * 1e-3]
        np.testing.assert_allclose(d.particle_energy.numpy(), [e_true], rtol=1e-6)
        assert d.particle_pdg.tolist() == [[ev["gen_pdg0"][i], ev["gen_pdg1"][i]]]
        assert d.hit_particle.tolist() == ev["pid"][i].tolist()
        assert torch.equal(d.noise, d.hit_particle < 0) and d.y.shape[1] == 2
        assert int(d.event_id) == 100 + i


def test_mev_read_as_gev_would_be_1000_times_larger(foreign: dict[str, Path]) -> None:
    mev, _ = read_data(foreign["rntuple"], foreign_schema(), max_events=1)
    gev, _ = read_data(foreign["rntuple"], foreign_schema(energy_unit="GeV"), max_events=1)
    torch.testing.assert_close(gev[0].energy, mev[0].energy * 1000, rtol=1e-5, atol=0)


def test_layer_missing_from_the_table(foreign: dict[str, Path]) -> None:
    table = {k: v for k, v in FOREIGN_CELL_SIZES.items() if k != 5}
    with pytest.raises(DataError, match=r"layer 5 is not in cell_size_by_layer") as err:
        read_data(foreign["rntuple"], foreign_schema(cell_size_by_layer=table))
    assert err.value.where["layer"] == 5 and err.value.where["entry"] == 0
    assert err.value.where["branch"] == "rechit_layer"


def test_calo_file_in_mm_and_mev(tmp_path: Path, rng) -> None:
    ev = make_events(rng, n_events=6)
    ref = write_calo_tree(tmp_path / "cm.root", ev)
    for k in ("x", "y", "z", "dx", "dy", "dz", "p_x", "p_y"):
        ev[k] = ev[k] * np.float32(10.0)
    for k in ("energy", "p_energy", "p_deposited"):
        ev[k] = ev[k] * np.float32(1000.0)
    p = write_calo_tree(tmp_path / "mm.root", ev)
    a, _ = read_data(ref)
    b, _ = read_data(p, Schema.calo(length_unit="mm", energy_unit="MeV"))
    for da, db in zip(a, b, strict=True):
        for key in ("x", "pos", "energy", "particle_energy", "particle_deposited", "particle_xy"):
            torch.testing.assert_close(da[key], db[key], rtol=1e-6, atol=1e-6)


def test_constant_cell_size_is_in_the_length_unit(tmp_path: Path) -> None:
    e = ak.Array([[1.0, 2.0]])
    p = write_tree(tmp_path / "c.root", {"hx": e, "hy": e, "hz": e, "he": e})
    s = Schema(x="hx", y="hy", z="hz", energy="he", cell_size=(20.0, 5.0, 3.0), length_unit="mm")
    data, _ = read_data(p, s, require_truth=False)
    np.testing.assert_allclose(data[0].x[:, 3].numpy(), 1.0)  # sqrt(2 cm * 0.5 cm)
    np.testing.assert_allclose(data[0].x[:, 4].numpy(), 0.3)
    data, _ = read_data(p, Schema(x="hx", y="hy", z="hz", energy="he"), require_truth=False)
    np.testing.assert_allclose(data[0].x[:, 3:5].numpy(), 1.0)  # no size given: 1 cm


def test_fractions_and_index_together(tmp_path: Path, rng) -> None:
    ev = make_events(rng, n_events=8)
    p = write_calo_tree(tmp_path / "both.root", ev)
    data, _ = read_data(p, Schema.calo(truth_index="hit_truth"))
    c = ev["counts"]
    for i, d in enumerate(data):
        sl = slice(int(c[:i].sum()), int(c[: i + 1].sum()))
        assert d.hit_particle.dtype == torch.int64
        np.testing.assert_array_equal(d.hit_particle.numpy(), ev["truth"][sl])
        np.testing.assert_array_equal(d.y.numpy(), ev["frac"][sl])  # fractions give y
    bad = dict(ev)
    bad["truth"] = ev["truth"].copy()
    h = int(c[:3].sum()) + int(np.nonzero(ev["truth"][c[:3].sum() :] >= 0)[0][0])
    k_zero = np.nonzero(ev["frac"][h] == 0)[0]
    bad["truth"][h] = k_zero[0] if len(k_zero) else 7
    p = write_calo_tree(tmp_path / "disagree.root", bad)
    with pytest.raises(DataError, match="truth_index and truth_fractions disagree") as err:
        read_data(p, Schema.calo(truth_index="hit_truth"))
    assert err.value.where["branch"] == "hit_truth"
    assert err.value.where["entry"] == int(np.searchsorted(np.cumsum(c), h, side="right"))


def test_geometry_by_cell_id_and_by_position(tmp_path: Path) -> None:
    geo = Geometry.from_arrays(
        x=[-1.0, 1.0, 0.0], y=[0.0, 0.0, 0.0], z=[0.5, 0.5, 1.5], dx=[2.0, 2.0, 4.0],
        dy=[2.0, 2.0, 4.0], dz=[1.0, 1.0, 1.0], layer=[0, 0, 1], id=[10, 11, 20],
    )  # fmt: skip
    g = geo.save(tmp_path / "geo.csv")
    hx = ak.Array([[-1.0, 1.0, 0.0], [1.0]])
    p = write_tree(
        tmp_path / "g.root",
        {
            "hx": hx, "hy": ak.zeros_like(hx), "hz": ak.Array([[0.5, 0.5, 1.5], [0.5]]),
            "he": ak.ones_like(hx), "cid": ak.Array([[10, 11, 20], [11]]),
        },
    )  # fmt: skip
    base = {"x": "hx", "y": "hy", "z": "hz", "energy": "he", "geometry": str(g)}
    for schema in (Schema(**base, cell_id="cid"), Schema(**base)):
        data, _ = read_data(p, schema, require_truth=False)
        assert data[0].layer.tolist() == [0, 0, 1] and data[1].layer.tolist() == [0]
        assert data[0].x[:, 3].tolist() == [2.0, 2.0, 4.0]
    with pytest.raises(DataError, match="is in no cell of the geometry") as err:
        read_data(p, Schema(**base, length_unit="m"), require_truth=False)
    assert err.value.where["entry"] == 0
    q = write_tree(
        tmp_path / "g2.root",
        {"hx": hx, "hy": hx, "hz": hx, "he": hx, "cid": ak.Array([[10, 11, 20], [99]])},
    )
    with pytest.raises(DataError, match="cell id 99 is not in the geometry") as err:
        read_data(q, Schema(**base, cell_id="cid"), require_truth=False)
    assert err.value.where == {"file": str(q), "tree": "events", "branch": "cid", "entry": 1}
    with pytest.raises(DataError, match=r"geometry file .* does not exist"):
        read_data(q, Schema(**{**base, "geometry": str(tmp_path / "no.csv")}), require_truth=False)


def test_single_scalar_particle_branch_is_one_particle(tmp_path: Path) -> None:
    e = ak.Array([[1.0], [2.0]])
    c = np.array([1, 1])
    p = write_tree(
        tmp_path / "one.root",
        {"hx": e, "hy": e, "hz": e, "he": e, "pid": jag(np.zeros(2, np.int32), c),
         "true_e": np.array([10.0, 20.0])},
    )  # fmt: skip
    s = Schema(x="hx", y="hy", z="hz", energy="he", truth_index="pid", particle_energy="true_e")
    data, _ = read_data(p, s)
    assert [d.particle_energy.tolist() for d in data] == [[[10.0]], [[20.0]]]


def test_chunks_converted_one_by_one_as_calo_predict_does(foreign: dict[str, Path]) -> None:
    """iterate_events yields the stored values; chunk_to_data converts units and sizes."""
    from calo.io import chunk_to_data, iterate_events

    whole, _ = read_data(foreign["rntuple"], foreign_schema())
    got = []
    for arr, info in iterate_events(foreign["rntuple"], foreign_schema(), step_size=5, report=True):
        assert float(ak.max(arr["rechit_energy"])) > 10  # MeV as stored
        status = np.full(len(arr), 99)
        got += chunk_to_data(arr, info, foreign_schema(), status=status)
        assert (status == 0).all()
    assert len(got) == len(whole)
    for a, b in zip(whole, got, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.particle_energy, b.particle_energy)
