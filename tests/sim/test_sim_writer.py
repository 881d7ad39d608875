"""ROOT writing: branch names and counters, round trip, chunk-size independence, CLI, errors."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from calo.config import apply_overrides, load_yaml
from calo.errors import ConfigError
from calo.geometry import Geometry
from calo.sim import SimConfig, generate
from calo.sim.cli import main
from calo.sim.writer import write_root

DOCUMENTED = {
    "event": "int64_t",
    "nhit": "int32_t",
    "nparticle": "int32_t",
    "hit_cell": "int32_t[]",
    "hit_x": "float[]",
    "hit_y": "float[]",
    "hit_z": "float[]",
    "hit_dx": "float[]",
    "hit_dy": "float[]",
    "hit_dz": "float[]",
    "hit_layer": "int32_t[]",
    "hit_energy": "float[]",
    "hit_noise": "bool[]",
    "hit_frac_0": "float[]",
    "hit_frac_1": "float[]",
    "hit_truth": "int32_t[]",
    "particle_pdg": "int32_t[]",
    "particle_energy": "float[]",
    "particle_x": "float[]",
    "particle_y": "float[]",
    "particle_dirx": "float[]",
    "particle_diry": "float[]",
    "particle_dirz": "float[]",
    "particle_deposited": "float[]",
}


def _read(path: Path) -> ak.Array:
    return uproot.open(path)["events"].arrays()


def test_tree_has_documented_branches_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "ev.root"
    summary = write_root(path, n_events=40, seed=2, chunk_size=15, progress=False)
    tree = uproot.open(path)["events"]
    assert {b.name: b.typename for b in tree.branches} == DOCUMENTED
    assert tree.num_entries == 40
    arr = tree.arrays()
    ref = generate(SimConfig(), 40, seed=2)
    np.testing.assert_array_equal(arr["nhit"], ak.num(ref.hit))
    np.testing.assert_array_equal(arr["nparticle"], ak.num(ref.particle))
    for f in ref.hit.fields:
        assert ak.array_equal(arr[f"hit_{f}"], ref.hit[f]), f
    for f in ref.particle.fields:
        assert ak.array_equal(arr[f"particle_{f}"], ref.particle[f]), f
    np.testing.assert_array_equal(arr["event"], np.arange(40))
    assert summary["hits"] == int(ak.sum(arr["nhit"]))
    assert summary["noise_hits"] == int(ak.sum(arr["hit_noise"]))


def test_chunk_size_does_not_change_content(tmp_path: Path) -> None:
    a = tmp_path / "a.root"
    b = tmp_path / "b.root"
    write_root(a, n_events=150, seed=9, chunk_size=7, progress=False, write_config=False)
    write_root(b, n_events=150, seed=9, chunk_size=1000, progress=False, write_config=False)
    assert ak.array_equal(_read(a), _read(b))
    assert not (tmp_path / "a.yaml").exists()


def test_resolved_config_written_and_reloadable(tmp_path: Path) -> None:
    cfg = apply_overrides(SimConfig(), ["gun.n_particles=3", "noise.sigma=0.02"])
    path = tmp_path / "c.root"
    s = write_root(path, cfg, n_events=5, seed=1, progress=False)
    back = load_yaml(SimConfig, s["config_path"])
    assert back == cfg
    assert "# seed: 1" in Path(s["config_path"]).read_text()
    arr = _read(path)
    assert {"hit_frac_0", "hit_frac_1", "hit_frac_2"} <= set(arr.fields)
    assert np.all(arr["nparticle"] == 3)


def test_custom_geometry_file(tmp_path: Path) -> None:
    xs = np.arange(-9.0, 10.0, 2.0)
    gx, gy = (v.ravel() for v in np.meshgrid(xs, xs))
    n_layers = 30
    geo = Geometry.from_arrays(
        x=np.tile(gx, n_layers),
        y=np.tile(gy, n_layers),
        z=np.repeat(np.arange(n_layers) * 1.0 + 0.5, len(gx)),
        dx=np.full(len(gx) * n_layers, 2.0),
        dy=np.full(len(gx) * n_layers, 2.0),
        dz=np.ones(len(gx) * n_layers),
        layer=np.repeat(np.arange(n_layers), len(gx)),
        id=1000 + np.arange(len(gx) * n_layers),
    )
    gpath = geo.save(tmp_path / "grid.npz")
    path = tmp_path / "g.root"
    write_root(
        path, apply_overrides(SimConfig(), [f"geometry={gpath}"]), n_events=10, progress=False
    )
    arr = _read(path)
    cells = ak.flatten(arr["hit_cell"]).to_numpy()
    assert cells.min() >= 1000 and cells.max() < 1000 + geo.n_cells
    np.testing.assert_array_equal(ak.flatten(arr["hit_dx"]).to_numpy(), 2.0)


def test_writer_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.root"):
        write_root(tmp_path / "x.txt", n_events=1, progress=False)
    with pytest.raises(ConfigError, match="n_events"):
        write_root(tmp_path / "x.root", n_events=0, progress=False)
    with pytest.raises(ConfigError, match="chunk_size"):
        write_root(tmp_path / "x.root", n_events=1, chunk_size=0, progress=False)


def test_cli_writes_file_and_summary(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.root"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("gun:\n  n_particles: 1\n  pdg: [211]\n")
    rc = main(
        [
            "--out",
            str(out),
            "--events",
            "12",
            "--seed",
            "4",
            "--config",
            str(cfg),
            "--no-progress",
            "noise.sigma=0.02",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "wrote 12 events" in text and "events/s" in text
    arr = _read(out)
    assert np.all(arr["particle_pdg"] == 211) and "hit_frac_1" not in arr.fields
    assert load_yaml(SimConfig, out.with_suffix(".yaml")).noise.sigma == 0.02


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gun.pdg=[13]"], "unsupported"),
        (["bogus=1"], "unknown configuration key"),
        (["--config", "/nonexistent.yaml"], "does not exist"),
    ],
)
def test_cli_errors_exit_2(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    rc = main(["--out", str(tmp_path / "e.root"), "--events", "2", "--no-progress", *args])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
    assert not (tmp_path / "e.root").exists()


def test_sample_file_is_up_to_date() -> None:
    """data/sample_two_showers.root is what data/make_sample.sh makes with this code."""
    path = Path(__file__).parents[2] / "data" / "sample_two_showers.root"
    arr = _read(path)
    ref = generate(SimConfig(), 500, seed=1)
    assert len(arr) == 500
    assert ak.array_equal(arr["hit_energy"], ref.hit.energy)
    assert ak.array_equal(arr["hit_frac_0"], ref.hit.frac_0)
    assert ak.array_equal(arr["particle_deposited"], ref.particle.deposited)
    assert path.stat().st_size < 5_000_000


def test_e_pi_sample_file_is_up_to_date() -> None:
    """data/sample_e_pi.root is what data/make_sample.sh makes, with the FPGA task's settings."""
    from calo.fpga.data import E_PI_OVERRIDES

    path = Path(__file__).parents[2] / "data" / "sample_e_pi.root"
    script = (path.parent / "make_sample.sh").read_text()
    assert all(o in script for o in E_PI_OVERRIDES)  # the script and calo.fpga agree
    arr = _read(path)
    ref = generate(apply_overrides(SimConfig(), list(E_PI_OVERRIDES)), 500, seed=2)
    assert len(arr) == 500
    assert ak.array_equal(arr["hit_energy"], ref.hit.energy)
    assert ak.array_equal(arr["particle_pdg"], ref.particle.pdg)
    assert path.stat().st_size < 5_000_000
