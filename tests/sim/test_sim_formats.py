"""calo-simulate's output formats (TTree, RNTuple) and split samples, serially and on Dask."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from calo.config import apply_overrides
from calo.sim import SimConfig
from calo.sim.cli import main
from calo.sim.writer import split_events, write_root, write_sample


def _arrays(*paths: str | Path) -> ak.Array:
    """The ``events`` of the files, concatenated in order."""
    parts = []
    for p in paths:
        with uproot.open(p) as f:
            parts.append(f["events"].arrays())
    return ak.concatenate(parts)


def _assert_same(a: ak.Array, b: ak.Array) -> None:
    assert a.fields == b.fields
    assert str(a.type) == str(b.type)
    for name in a.fields:
        np.testing.assert_array_equal(
            ak.flatten(a[name], axis=None), ak.flatten(b[name], axis=None)
        )
        if a[name].ndim > 1:
            np.testing.assert_array_equal(ak.num(a[name]), ak.num(b[name]))


def test_rntuple_holds_the_ttree_arrays(tmp_path: Path) -> None:
    tt, rn = tmp_path / "tt.root", tmp_path / "rn.root"
    write_root(tt, n_events=70, seed=4, chunk_size=30, progress=False)
    s = write_root(rn, n_events=70, seed=4, chunk_size=25, progress=False, format="rntuple")
    assert s["format"] == "rntuple" and "# format: rntuple" in Path(s["config_path"]).read_text()
    with uproot.open(tt) as f, uproot.open(rn) as g:
        assert f.classnames() == {"events;1": "TTree"}
        assert g.classnames() == {"events;1": "ROOT::RNTuple"}
        assert g["events"].num_entries == 70
    a, b = _arrays(tt), _arrays(rn)
    _assert_same(a, b)
    assert a.fields[:3] == ["event", "nhit", "hit_cell"] and "nparticle" in a.fields
    np.testing.assert_array_equal(b["nhit"], ak.num(b["hit_energy"]))
    assert a["event"].tolist() == list(range(70))
    assert float(ak.sum(b["hit_energy"])) == pytest.approx(float(ak.sum(a["hit_energy"])))


def test_rntuple_read_by_calo_as_the_ttree(tmp_path: Path) -> None:
    from calo.io import read_data

    tt, rn = tmp_path / "tt.root", tmp_path / "rn.root"
    write_root(tt, n_events=12, seed=5, progress=False)
    write_root(rn, n_events=12, seed=5, progress=False, format="rntuple")
    ref, ref_summary = read_data(tt)
    got, got_summary = read_data(rn)
    assert got_summary.formats == {str(rn): "RNTuple"}
    assert got_summary.events_kept == ref_summary.events_kept == 12
    for d, e in zip(got, ref, strict=True):
        assert d.x.tolist() == e.x.tolist() and d.y.tolist() == e.y.tolist()


def test_split_events() -> None:
    assert split_events(7, 3) == [(0, 3), (3, 2), (5, 2)]
    assert split_events(4, 4) == [(0, 1), (1, 1), (2, 1), (3, 1)]
    assert split_events(5, 1) == [(0, 5)]


def test_split_files_hold_the_events_of_one_file(tmp_path: Path) -> None:
    one = write_sample(tmp_path / "one.root", n_events=150, seed=7, progress=False)
    split = write_sample(tmp_path / "s.root", n_events=150, seed=7, n_files=3, chunk_size=40,
                         progress=False)  # fmt: skip
    assert [Path(p).name for p in split["paths"]] == ["s_000.root", "s_001.root", "s_002.root"]
    assert [f["events"] for f in split["files"]] == [50, 50, 50]
    assert [f["first_event"] for f in split["files"]] == [0, 50, 100]
    assert split["hits"] == one["hits"] and split["noise_hits"] == one["noise_hits"]
    _assert_same(_arrays(*one["paths"]), _arrays(*split["paths"]))
    assert _arrays(split["paths"][1])["event"].tolist() == list(range(50, 100))
    text = Path(split["config_path"]).read_text()
    assert Path(split["config_path"]).name == "s.yaml" and "# files: 3" in text
    assert not (tmp_path / "s_000.yaml").exists()


def test_cli_format_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.root"
    argv = ["--out", str(out), "--events", "7", "--files", "3", "--format", "rntuple",
            "--seed", "2", "--no-progress", "gun.n_particles=1"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "wrote 7 events (rntuple) to 3 files" in printed
    paths = [tmp_path / f"cli_{i:03d}.root" for i in range(3)]
    got = _arrays(*paths)
    assert got["event"].tolist() == list(range(7))
    assert set(ak.num(got["particle_energy"]).tolist()) == {1}
    ref = tmp_path / "ref.root"
    assert main(["--out", str(ref), "--events", "7", "--seed", "2", "--no-progress",
                 "gun.n_particles=1"]) == 0  # fmt: skip
    _assert_same(_arrays(ref), got)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--files", "0"], ["number of files must be >= 1"]),
        (["--files", "9"], ["cannot split 4 events into 9 files"]),
        (["--format", "parquet"], ["--format", "parquet"]),
        (["--workers", "2", "--scheduler", "tcp://x:1"], ["either --workers", "--scheduler"]),
        (["--workers", "0"], ["--workers must be at least 1"]),
    ],
)
def test_cli_split_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    rc = main(["--out", str(tmp_path / "e.root"), "--events", "4", "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and "\n" not in err, err
    for w in words:
        assert w in err, err
    assert not list(tmp_path.glob("*.root"))


@pytest.mark.slow
def test_dask_gives_the_serial_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed")
    common = ["--events", "90", "--files", "3", "--seed", "9", "--no-progress",
              "gun.n_particles=3"]  # fmt: skip
    assert main(["--out", str(tmp_path / "serial.root"), *common]) == 0
    assert main(["--out", str(tmp_path / "dask.root"), "--workers", "2", *common]) == 0
    assert "wrote 90 events (ttree) to 3 files" in capsys.readouterr().out
    for i in range(3):
        _assert_same(
            _arrays(tmp_path / f"serial_{i:03d}.root"), _arrays(tmp_path / f"dask_{i:03d}.root")
        )
    # and the same events as one file of the same configuration
    cfg = apply_overrides(SimConfig(), ["gun.n_particles=3"])
    ref = write_sample(tmp_path / "ref.root", cfg, 90, seed=9, progress=False)
    _assert_same(
        _arrays(*ref["paths"]), _arrays(*[tmp_path / f"dask_{i:03d}.root" for i in range(3)])
    )
