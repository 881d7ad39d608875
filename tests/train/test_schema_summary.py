"""calo-train and calo-evaluate read files of another layout with a branch schema (--schema,
data.schema, the run's schema.yaml), and report every skipped event (read_summary.json)."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from trainhelp import TINY_GRAVNET, one_line_error

from calo.io import Schema
from calo.train.checkpoint import read_checkpoint
from calo.train.cli import evaluate_main, train_main

#: calo's branch -> the foreign file's branch (another tool's names, another tree)
RENAMED = {
    "hit_x": "rechit_x",
    "hit_y": "rechit_y",
    "hit_z": "rechit_z",
    "hit_dx": "rechit_sx",
    "hit_dy": "rechit_sy",
    "hit_dz": "rechit_sz",
    "hit_energy": "rechit_e",
    "hit_layer": "rechit_lay",
    "hit_noise": "rechit_isnoise",
    "hit_frac_0": "rechit_share0",
    "hit_frac_1": "rechit_share1",
    "particle_energy": "gen_e",
    "particle_pdg": "gen_pdg",
    "particle_deposited": "gen_dep",
    "particle_x": "gen_x",
    "particle_y": "gen_y",
}

SCHEMA_YAML = """\
tree: hits
x: rechit_x
y: rechit_y
z: rechit_z
dx: rechit_sx
dy: rechit_sy
dz: rechit_sz
energy: rechit_e
layer: rechit_lay
noise: rechit_isnoise
truth_fractions: rechit_share*
event_id: evt
particle_energy: gen_e
particle_pdg: gen_pdg
particle_deposited: gen_dep
particle_x: gen_x
particle_y: gen_y
"""

#: the entries made bad in the test files: one without hits, one with a NaN energy
EMPTY, NAN = 3, 5


def _with_bad_events(small_root: Path) -> dict[str, ak.Array]:
    """The events of ``small_root`` (calo's layout) with entry EMPTY emptied and a NaN energy
    in entry NAN, as one array per branch."""
    with uproot.open(small_root) as f:
        arrays = f["events"].arrays(library="ak")
    out: dict[str, ak.Array] = {"event": arrays["event"]}
    for name in arrays.fields:
        if not name.startswith(("hit_", "particle_")):
            continue
        values = arrays[name]
        if name.startswith("hit_"):
            lists = values.tolist()
            lists[EMPTY] = []
            if name == "hit_energy":
                lists[NAN][0] = float("nan")
            values = ak.values_astype(ak.Array(lists), values.layout.content.dtype)
        out[name] = values
    return out


def _write(path: Path, tree: str, arrays: dict[str, ak.Array], names: dict[str, str]) -> Path:
    """Write ``arrays`` as tree ``tree`` with branch names ``names[calo name]`` (hits and
    particles each under one counter, as calo-simulate writes them)."""
    hits = {names.get(k, k).split("_", 1)[1]: v for k, v in arrays.items() if k.startswith("hit_")}
    parts = {
        names.get(k, k).split("_", 1)[1]: v for k, v in arrays.items() if k.startswith("particle_")
    }
    hit_prefix = names.get("hit_x", "hit_x").split("_", 1)[0]
    part_prefix = names.get("particle_energy", "particle_energy").split("_", 1)[0]
    event = "evt" if names else "event"
    branches = {event: arrays["event"], hit_prefix: ak.zip(hits), part_prefix: ak.zip(parts)}
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: v.type.content for k, v in branches.items()}).extend(branches)
    return path


@pytest.fixture(scope="module")
def bad_calo_root(small_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small sample in calo's layout with an empty event and a NaN event."""
    folder = tmp_path_factory.mktemp("bad")
    return _write(folder / "bad.root", "events", _with_bad_events(small_root), {})


@pytest.fixture(scope="module")
def foreign(small_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same events as ``bad_calo_root`` in tree ``hits`` with other branch names, and the
    schema YAML that reads them."""
    folder = tmp_path_factory.mktemp("foreign")
    root = _write(folder / "foreign.root", "hits", _with_bad_events(small_root), RENAMED)
    schema = folder / "foreign_schema.yaml"
    schema.write_text(SCHEMA_YAML)
    return root, schema


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_foreign_file_has_other_branch_names(foreign: tuple[Path, Path]) -> None:
    with uproot.open(foreign[0]) as f:
        keys = set(f["hits"].keys())
    assert "rechit_e" in keys and "rechit_share1" in keys and "gen_e" in keys
    assert not any(k.startswith("hit_") for k in keys)


def test_evaluate_data_reports_skipped_events(
    run_folder: Path, bad_calo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ev = tmp_path / "ev"
    argv = [str(run_folder), "--data", str(bad_calo_root), "--out", str(ev), "--no-plots"]
    assert evaluate_main(argv) == 0
    out = capsys.readouterr().out
    assert "calo-evaluate: read 80 events" in out and "kept 78 events" in out
    assert "skipped 2" in out
    assert f"skipped 1 (no hits), e.g. {bad_calo_root} entry {EMPTY}" in out
    assert f"skipped 1 (NaN or infinite value), e.g. {bad_calo_root} entry {NAN}" in out
    summary = json.loads((ev / "read_summary.json").read_text())
    assert summary["events_read"] == 80 and summary["events_kept"] == 78
    assert summary["skipped"] == {"empty": 1, "nonfinite": 1}
    assert summary["examples"] == {
        "empty": [[str(bad_calo_root), EMPTY]],
        "nonfinite": [[str(bad_calo_root), NAN]],
    }
    data = _metrics(ev)["data"]
    assert (data["events_read"], data["events_kept"], data["events_skipped"]) == (80, 78, 2)
    assert data["skipped"] == {"empty": 1, "nonfinite": 1}
    assert data["schema"] == "calo's own layout"
    assert _metrics(ev)["methods"]["model"]["n_events"] == 78


def test_evaluate_validation_events_writes_read_summary(
    run_folder: Path, small_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from calo.config import apply_overrides, load_yaml, save_yaml
    from calo.train.config import TrainConfig

    # the run's own data: its validation events, read as in training
    cfg = apply_overrides(load_yaml(TrainConfig, run_folder / "config.yaml"),
                          [f"data.files=[{small_root}]"])  # fmt: skip
    save_yaml(cfg, run_folder / "config.yaml")
    ckpt_path = run_folder / "checkpoints" / "last.ckpt"
    import torch

    ckpt = torch.load(ckpt_path, weights_only=False)
    ckpt["calo"]["config"]["data"]["files"] = [str(small_root)]
    torch.save(ckpt, ckpt_path)
    assert evaluate_main([str(run_folder), "--out", str(tmp_path / "ev"), "--no-plots"]) == 0
    assert "read 80 events (" in capsys.readouterr().out
    summary = json.loads((tmp_path / "ev" / "read_summary.json").read_text())
    assert (summary["events_read"], summary["events_kept"], summary["skipped"]) == (80, 80, {})
    assert _metrics(tmp_path / "ev")["methods"]["model"]["n_events"] == 16  # 20% of 80


def test_evaluate_data_with_a_schema_gives_the_same_numbers(
    run_folder: Path,
    bad_calo_root: Path,
    foreign: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, schema = foreign
    common = ["--no-plots", "--no-calibration"]
    assert evaluate_main([str(run_folder), "--data", str(bad_calo_root),
                          "--out", str(tmp_path / "calo"), *common]) == 0  # fmt: skip
    assert evaluate_main([str(run_folder), "--data", str(root), "--schema", str(schema),
                          "--out", str(tmp_path / "foreign"), *common]) == 0  # fmt: skip
    assert f"skipped 1 (no hits), e.g. {root} entry {EMPTY}" in capsys.readouterr().out
    ref, got = _metrics(tmp_path / "calo"), _metrics(tmp_path / "foreign")
    assert got["data"]["schema"] == str(schema)
    assert got["data"]["skipped"] == {"empty": 1, "nonfinite": 1}
    for method in ("model", "baseline"):
        assert got["methods"][method]["n_events"] == 78
        assert got["methods"][method]["loss"] == pytest.approx(ref["methods"][method]["loss"])
        assert got["methods"][method]["response"]["rms"] == pytest.approx(
            ref["methods"][method]["response"]["rms"]
        )
    # a run folder's schema.yaml is the default for --data
    (run_folder / "schema.yaml").write_text(SCHEMA_YAML)
    assert evaluate_main([str(run_folder), "--data", str(root),
                          "--out", str(tmp_path / "default"), *common]) == 0  # fmt: skip
    default = _metrics(tmp_path / "default")
    assert default["data"]["schema"] == str(run_folder / "schema.yaml")
    assert default["methods"]["model"]["loss"] == pytest.approx(ref["methods"]["model"]["loss"])


def test_schema_errors_are_one_line(
    run_folder: Path, foreign: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = foreign
    missing = tmp_path / "missing.yaml"
    one_line_error(capsys, train_main(["--schema", str(missing), f"data.files=[{root}]",
                                       "--out", str(tmp_path / "r")]),
                   "schema file does not exist", str(missing))  # fmt: skip
    assert not (tmp_path / "r").exists()
    bogus = tmp_path / "bogus.yaml"
    bogus.write_text("tree: hits\nhit_energy: rechit_e\n")
    one_line_error(capsys, train_main(["--schema", str(bogus), "--out", str(tmp_path / "r")]),
                   "invalid branch schema", "unknown configuration key", "hit_energy",
                   str(bogus))  # fmt: skip
    one_line_error(capsys, train_main([f"data.schema={bogus}", "--out", str(tmp_path / "r")]),
                   "hit_energy", str(bogus))  # fmt: skip
    ev = [str(run_folder), "--data", str(root), "--no-plots"]
    one_line_error(capsys, evaluate_main([*ev, "--schema", str(missing)]), str(missing))
    one_line_error(capsys, evaluate_main([*ev, "--schema", str(bogus)]), "hit_energy")
    one_line_error(capsys, evaluate_main([str(run_folder), "--schema", str(bogus)]),
                   "--schema applies to --data files")  # fmt: skip
    # calo's own layout does not read the foreign tree: the error names the file and the tree
    one_line_error(capsys, evaluate_main(ev), str(root), "events")


@pytest.mark.slow
def test_train_with_a_schema_then_evaluate_with_the_runs_schema(
    foreign: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, schema = foreign
    run = tmp_path / "run"
    argv = [*TINY_GRAVNET, "--schema", str(schema), f"data.files=[{root}]", "--out", str(run),
            "--no-plots", "trainer.max_epochs=1", "trainer.progress_bar=false",
            "calibration.enabled=false"]  # fmt: skip
    assert train_main(argv) == 0
    out = capsys.readouterr().out
    assert "calo-train: read 80 events" in out and "skipped 2" in out
    # the run keeps the schema it read with, and the path in its configuration
    assert Schema.from_yaml(run / "schema.yaml") == Schema.from_yaml(schema)
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["calo"]["config"]["data"][
        "schema"
    ] == str(schema)
    summary = json.loads((run / "read_summary.json").read_text())
    assert summary["skipped"] == {"empty": 1, "nonfinite": 1}
    metrics = _metrics(run)
    assert metrics["data"]["events_skipped"] == 2
    assert metrics["data"]["n_train"] + metrics["data"]["n_val"] == 78
    # calo-evaluate --data without --schema reads with the run's schema.yaml
    schema.rename(schema.with_suffix(".moved"))  # the original path is not needed any more
    try:
        assert evaluate_main([str(run), "--data", str(root), "--out", str(tmp_path / "ev"),
                              "--no-plots"]) == 0  # fmt: skip
        ev = _metrics(tmp_path / "ev")
        assert ev["data"]["schema"] == str(run / "schema.yaml")
        assert ev["methods"]["model"]["n_events"] == 78
        assert np.isfinite(ev["methods"]["model"]["loss"])
        # and the run's own validation events too
        assert evaluate_main([str(run), "--out", str(tmp_path / "val"), "--no-plots"]) == 0
        assert (
            _metrics(tmp_path / "val")["methods"]["model"]["n_events"] == metrics["data"]["n_val"]
        )
    finally:
        schema.with_suffix(".moved").rename(schema)
