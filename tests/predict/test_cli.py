"""calo-predict on the command line: outputs, one-line errors, Dask equal to serial."""

from __future__ import annotations

import shutil
from pathlib import Path

import awkward as ak
import pytest
import torch
import uproot

from calo.__main__ import main as calo_main
from calo.predict.cli import main


def one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *words: str) -> str:
    """Assert exit code 2 and one ``error:`` line on stderr holding ``words``; return it."""
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def _arrays(path: Path) -> ak.Array:
    with uproot.open(path) as f:
        return f["events"].arrays()


def test_cli_writes_one_output_per_input(
    run_dir: Path, sim_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    second = str(shutil.copy(sim_file, tmp_path / "other.root"))
    out = tmp_path / "pred"
    argv = [str(run_dir), str(sim_file), second, "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--step-size", "13", "--postprocess", "none", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "read 120 events" in text and "skipped 0" in text
    a, b = _arrays(out / "sim_pred.root"), _arrays(out / "other_pred.root")
    assert len(a) == len(b) == 60 and a.fields == ["status", "entry", "nhit_pred",
                                                   "frac_model_0", "frac_model_1",
                                                   "shower_energy_model", "shower_x_model",
                                                   "shower_y_model", "shower_z_model"]  # fmt: skip
    assert ak.all(a.frac_model_1 == b.frac_model_1)
    assert (out / "read_summary.json").is_file() and (out / "predict.json").is_file()
    # python -m calo predict is the same command
    assert calo_main(["predict", str(run_dir), str(sim_file), "--out", str(tmp_path / "m"),
                      "--device", "cpu", "--postprocess", "none", "--no-progress"]) == 0  # fmt: skip
    c = _arrays(tmp_path / "m" / "sim_pred.root")
    assert ak.all(ak.isclose(a.frac_model_0, c.frac_model_0, rtol=0, atol=1e-6))


def test_missing_run_is_one_line(sim_file: Path, tmp_path: Path, capsys) -> None:
    rc = main([str(tmp_path / "norun"), str(sim_file), "--out", str(tmp_path / "o")])
    one_line_error(capsys, rc, "checkpoint or run folder does not exist", "norun")


def test_missing_file_is_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:
    rc = main([str(run_dir), str(tmp_path / "nofile.root"), "--out", str(tmp_path / "o")])
    one_line_error(capsys, rc, "file does not exist", "nofile.root")


def test_e_pi_run_is_one_line(run_dir: Path, sim_file: Path, tmp_path: Path, capsys) -> None:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["calo"]["config"]["task"] = "e_pi"
    (tmp_path / "e_pi" / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, tmp_path / "e_pi" / "checkpoints" / "last.ckpt")
    rc = main([str(tmp_path / "e_pi"), str(sim_file), "--out", str(tmp_path / "o")])
    one_line_error(capsys, rc, "'e_pi' run", "fraction models", "calo-evaluate")


def test_refuses_to_overwrite_an_input(run_dir: Path, sim_file: Path, tmp_path: Path,
                                       capsys) -> None:  # fmt: skip
    a = str(shutil.copy(sim_file, tmp_path / "x.root"))
    b = str(shutil.copy(sim_file, tmp_path / "x_pred.root"))  # x.root's output name
    rc = main([str(run_dir), a, b, "--out", str(tmp_path)])
    one_line_error(capsys, rc, "refusing to overwrite an input", "x_pred.root")
    assert (tmp_path / "x_pred.root").read_bytes() == sim_file.read_bytes()


def test_refuses_two_inputs_with_the_same_name(run_dir: Path, sim_file: Path, tmp_path: Path,
                                               capsys) -> None:  # fmt: skip
    (tmp_path / "a").mkdir()
    a = str(shutil.copy(sim_file, tmp_path / "a" / "sim.root"))
    rc = main([str(run_dir), str(sim_file), a, "--out", str(tmp_path / "o")])
    one_line_error(capsys, rc, "same name", "sim_pred.root")


@pytest.mark.parametrize(
    ("extra", "words"),
    [(["--device", "tpu"], ["device must be cpu, cuda or auto"]),
     (["--batch-size", "0"], ["batch_size must be at least 1"]),
     (["--postprocess", "more"], ["invalid choice"]),
     (["--workers", "2", "--scheduler", "tcp://x:1"], ["not both"]),
     (["--threads", "0"], ["--threads must be at least 1"])],
)  # fmt: skip
def test_bad_options_are_one_line(run_dir: Path, sim_file: Path, tmp_path: Path, capsys,
                                  extra: list[str], words: list[str]) -> None:  # fmt: skip
    rc = main([str(run_dir), str(sim_file), "--out", str(tmp_path / "o"), *extra])
    one_line_error(capsys, rc, *words)


def test_out_that_is_a_file_is_one_line(run_dir: Path, sim_file: Path, tmp_path: Path,
                                        capsys) -> None:  # fmt: skip
    (tmp_path / "f").write_text("x")
    rc = main([str(run_dir), str(sim_file), "--out", str(tmp_path / "f")])
    one_line_error(capsys, rc, "--out must be a folder")


@pytest.mark.slow
def test_dask_with_two_workers_equals_serial_bit_for_bit(
    run_dir: Path, sim_file: Path, bad_file: tuple[Path, list[int]], tmp_path: Path
) -> None:
    files = [str(sim_file), str(bad_file[0])]
    common = ["--device", "cpu", "--step-size", "11", "--no-progress"]
    assert main([str(run_dir), *files, "--out", str(tmp_path / "serial"), *common]) == 0
    assert main([str(run_dir), *files, "--out", str(tmp_path / "dask"), "--workers", "2",
                 *common]) == 0  # fmt: skip
    # one task per chunk of 11 entries on the same two workers
    assert main([str(run_dir), *files, "--out", str(tmp_path / "chunks"), "--workers", "2",
                 "--split", "chunk", *common]) == 0  # fmt: skip
    for stem in ("sim", "bad"):
        a = _arrays(tmp_path / "serial" / f"{stem}_pred.root")
        for other in ("dask", "chunks"):
            b = _arrays(tmp_path / other / f"{stem}_pred.root")
            assert a.fields == b.fields and len(a) == len(b)
            for name in a.fields:
                assert ak.all(ak.isclose(a[name], b[name], rtol=0, atol=0, equal_nan=True)), name


@pytest.mark.slow
def test_a_run_trained_by_calo_train_predicts_its_own_fractions(
    sim_file: Path, tmp_path: Path
) -> None:
    """End to end with a real run: calo-train (one epoch), then calo-predict."""
    from calo.train.cli import train_main

    tiny = ["model.gravnet.n_blocks=1", "model.gravnet.dense=[16]", "model.gravnet.k=8",
            "model.gravnet.out_channels=16", "model.gravnet.head=16"]  # fmt: skip
    run = tmp_path / "run"
    assert train_main(["--out", str(run), "--no-plots", f"data.files=[{sim_file}]",
                       "trainer.max_epochs=1", "trainer.progress_bar=false", *tiny]) == 0  # fmt: skip
    assert main([str(run), str(sim_file), "--out", str(tmp_path / "o"), "--device", "cpu",
                 "--no-progress"]) == 0  # fmt: skip
    out = _arrays(tmp_path / "o" / "sim_pred.root")
    assert len(out) == 60 and set(out.status.tolist()) == {0}
    from test_predict import _frac, _reference

    _, ref = _reference(run, sim_file)
    got = _frac(out, "model")
    assert abs(got - ref.numpy()).max() < 1e-6
    has_cal = (run / "share_calibration.json").is_file()
    assert ("frac_calibrated_0" in out.fields) == has_cal


@pytest.mark.parametrize("fmt", ["ttree", "rntuple"])
def test_one_task_per_chunk_gives_the_same_file(
    run_dir: Path, bad_file: tuple[Path, list[int]], tmp_path: Path, fmt: str
) -> None:
    """--split chunk: parts of 7 entries joined in order equal the one-task-per-file output."""
    common = [str(run_dir), str(bad_file[0]), "--device", "cpu", "--step-size", "7"]
    common += ["--no-progress", "--format", fmt]
    assert main([*common, "--out", str(tmp_path / "file")]) == 0
    assert main([*common, "--out", str(tmp_path / "chunk"), "--split", "chunk"]) == 0
    a, b = (
        _arrays(tmp_path / "file" / "bad_pred.root"),
        _arrays(tmp_path / "chunk" / "bad_pred.root"),
    )
    assert len(a) == len(b) == 33 and a.fields == b.fields
    for name in a.fields:
        assert ak.all(ak.isclose(a[name], b[name], rtol=0, atol=0, equal_nan=True)), name
    assert sorted(p.name for p in (tmp_path / "chunk").iterdir()) == [
        "bad_pred.root", "predict.json", "read_summary.json"]  # fmt: skip
    import json

    rs = [json.loads((tmp_path / d / "read_summary.json").read_text()) for d in ("file", "chunk")]
    assert rs[0]["total"] == rs[1]["total"]
