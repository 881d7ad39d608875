"""calo-predict's core: the network's own fractions, one entry per input entry, post-processing
and the per-shower sums, the Python API equal to the files."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
from predhelp import make_run, read_hits
from torch_geometric.data import Batch

from calo.errors import ConfigError
from calo.io import STATUS_CODES, FeatureSpec, Normalization, ReadSummary, read_data
from calo.predict import Predictor, column_names, predict, predict_files
from calo.reco import ShareCalibration
from calo.train.evaluate import load_model


def _reference(run: Path, data: Path, batch_size: int = 7) -> tuple[list, torch.Tensor]:
    """The events as the reader makes them (normalised as in training) and model(batch)."""
    model, _, norm_dict, _ = load_model(run)
    norm = Normalization.from_dict(norm_dict)
    events, _ = read_data(
        data, require_truth=False, features=FeatureSpec(norm.names), normalization=norm
    )
    with torch.no_grad():
        frac = torch.cat(
            [
                model(Batch.from_data_list(events[i : i + batch_size]))
                for i in range(0, len(events), batch_size)
            ]
        )
    return events, frac


def _frac(pred: ak.Array, method: str, k: int = 2) -> np.ndarray:
    """``[H, K]`` fractions of ``method`` over all hits of all entries."""
    return np.stack([ak.to_numpy(ak.flatten(pred[f"frac_{method}_{j}"])) for j in range(k)], 1)


@pytest.mark.parametrize("name", ["gravnet", "garnet", "edgeconv"])
def test_fractions_are_the_networks_own_forward_pass(
    name: str, sim_file: Path, tmp_path: Path
) -> None:
    run = make_run(tmp_path / name, sim_file, name=name, calibration=False)
    pred = predict(run, sim_file, device="cpu", batch_size=16, step_size=25)
    events, ref = _reference(run, sim_file)
    assert len(pred) == 60 and pred.status.tolist() == [0] * 60
    assert pred.entry.tolist() == list(range(60))
    assert pred.fields == column_names(2, ("model",))  # no calibration: the network alone
    got = _frac(pred, "model")
    assert got.shape == (sum(d.num_nodes for d in events), 2)
    np.testing.assert_allclose(got, ref.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)


def test_per_shower_energy_and_position_are_the_energy_weighted_sums(
    run_dir: Path, sim_file: Path
) -> None:
    pred = predict(run_dir, sim_file, device="cpu")
    hits = read_hits(sim_file)
    for m in ("model", "refined", "calibrated"):
        for i in (0, 7, 59):
            e = ak.to_numpy(hits["energy"][i]).astype(np.float64)
            f = np.stack([ak.to_numpy(pred[f"frac_{m}_{j}"][i]) for j in range(2)], 1)
            w = f * e[:, None]
            np.testing.assert_allclose(pred[f"shower_energy_{m}"][i], w.sum(0), rtol=1e-6)
            for q in "xyz":
                pos = ak.to_numpy(hits[q][i]).astype(np.float64)
                want = (w * pos[:, None]).sum(0) / w.sum(0)
                np.testing.assert_allclose(pred[f"shower_{q}_{m}"][i], want, rtol=1e-5, atol=1e-4)


def test_postprocessing_is_the_runs_share_calibration(run_dir: Path, sim_file: Path) -> None:
    pred = predict(run_dir, sim_file, device="cpu", batch_size=60)
    assert pred.fields == column_names(2, ("model", "refined", "calibrated"))
    events, _ = _reference(run_dir, sim_file)
    batch = Batch.from_data_list(events)
    cal = ShareCalibration.load(run_dir / "share_calibration.json")
    model_frac = torch.from_numpy(_frac(pred, "model"))
    refined = cal.refine(model_frac, batch.pos, batch.energy, batch.batch)
    calibrated = cal.scale_shares(refined, batch.energy, batch.batch, batch.num_graphs)
    np.testing.assert_allclose(_frac(pred, "refined"), refined.numpy(), atol=1e-6)
    np.testing.assert_allclose(_frac(pred, "calibrated"), calibrated.numpy(), atol=1e-6)
    # the calibration moves energy: the three are not the same numbers
    assert np.abs(_frac(pred, "refined") - _frac(pred, "model")).max() > 1e-3
    assert np.abs(_frac(pred, "calibrated") - _frac(pred, "refined")).max() > 1e-3


@pytest.mark.parametrize(
    ("postprocess", "methods"),
    [("none", ("model",)), ("refined", ("model", "refined")),
     ("calibrated", ("model", "calibrated"))],
)  # fmt: skip
def test_postprocess_selects_the_columns(
    run_dir: Path, sim_file: Path, postprocess: str, methods: tuple[str, ...]
) -> None:
    pred = predict(run_dir, sim_file, device="cpu", postprocess=postprocess)
    assert pred.fields == column_names(2, methods)
    full = predict(run_dir, sim_file, device="cpu")
    for name in pred.fields:
        assert ak.all(ak.isclose(pred[name], full[name], rtol=0, atol=0, equal_nan=True))


def test_postprocess_without_a_calibration_is_an_error(sim_file: Path, tmp_path: Path) -> None:
    run = make_run(tmp_path / "nocal", sim_file, calibration=False)
    with pytest.raises(ConfigError, match=r"share_calibration\.json"):
        Predictor.load(run, postprocess="calibrated")


def test_skipped_events_keep_their_entry_with_a_status(
    run_dir: Path, sim_file: Path, bad_file: tuple[Path, list[int]]
) -> None:
    path, inserted = bad_file
    summary = ReadSummary()
    pred = predict(run_dir, path, device="cpu", step_size=9, summary=summary)
    assert len(pred) == 33 and pred.entry.tolist() == list(range(33))
    want = {5: STATUS_CODES["empty"], 11: STATUS_CODES["nonfinite"]}
    want[17] = STATUS_CODES["negative_energy"]
    assert {i: s for i, s in enumerate(pred.status.tolist()) if s} == want
    assert summary.skipped == {"empty": 1, "nonfinite": 1, "negative_energy": 1}
    assert summary.events_read == 33 and summary.events_kept == 30
    for i in inserted:
        assert len(pred.frac_model_0[i]) == 0 and len(pred.frac_calibrated_1[i]) == 0
        assert np.isnan(ak.to_numpy(pred.shower_energy_model[i])).all()
    # the other entries are the events of the file without them, in order
    good = [i for i in range(33) if i not in inserted]
    ref = predict(run_dir, sim_file, device="cpu")[:30]
    for name in pred.fields[2:]:
        a, b = pred[name][good], ref[name]
        assert ak.all(ak.isclose(a, b, rtol=0, atol=1e-6, equal_nan=True)), name


def test_output_is_a_friend_of_the_input_tree(
    run_dir: Path, bad_file: tuple[Path, list[int]], tmp_path: Path
) -> None:
    path, inserted = bad_file
    res = predict_files(run_dir, [path], tmp_path / "out", device="cpu", step_size=10,
                        progress=False)  # fmt: skip
    assert res.outputs == [tmp_path / "out" / "bad_pred.root"] and res.entries == [33]
    with uproot.open(path) as fin, uproot.open(res.outputs[0]) as fout:
        tin, tout = fin["events"], fout["events"]  # the input's tree name
        assert tout.num_entries == tin.num_entries == 33
        nhit_in = tin["nhit"].array(library="np")
        out = tout.arrays()
    status = ak.to_numpy(out.status)
    assert status.dtype == np.int32 and out.entry.type.content.primitive == "int64"
    ok = status == 0
    # every processed entry has one fraction per input hit; skipped entries have none
    for name in ("frac_model_0", "frac_model_1", "frac_refined_0", "frac_calibrated_1"):
        n = ak.to_numpy(ak.num(out[name]))
        assert (n[ok] == nhit_in[ok]).all() and (n[~ok] == 0).all()
    assert (ak.to_numpy(out.nhit_pred)[ok] == nhit_in[ok]).all()
    assert sorted(np.nonzero(~ok)[0].tolist()) == inserted
    assert ak.to_numpy(out.shower_energy_model).shape == (33, 2)
    # the read summary and the run information are written beside the outputs
    rs = json.loads((tmp_path / "out" / "read_summary.json").read_text())
    assert rs["total"]["skipped"] == {"empty": 1, "nonfinite": 1, "negative_energy": 1}
    assert rs["files"][0]["entries"] == 33 and rs["files"][0]["events_kept"] == 30
    info = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert info["methods"] == ["model", "refined", "calibrated"]
    assert info["status_codes"]["3"].startswith("skipped, negative_energy")


def test_the_python_api_returns_what_the_file_holds(
    run_dir: Path, sim_file: Path, tmp_path: Path
) -> None:
    pred = predict(run_dir, sim_file, device="cpu", step_size=17)
    res = predict_files(run_dir, sim_file, tmp_path, device="cpu", step_size=17, progress=False)
    with uproot.open(res.outputs[0]) as f:
        on_disk = f["events"].arrays()
    assert set(on_disk.fields) == {*pred.fields, "nhit_pred"}
    for name in pred.fields:
        assert ak.all(ak.isclose(pred[name], on_disk[name], rtol=0, atol=0, equal_nan=True))


def test_rntuple_output_holds_the_same_values(
    run_dir: Path, sim_file: Path, tmp_path: Path
) -> None:
    res = predict_files(run_dir, sim_file, tmp_path, device="cpu", fmt="rntuple", progress=False)
    pred = predict(run_dir, sim_file, device="cpu")
    with uproot.open(res.outputs[0]) as f:
        nt = f["events"]
        assert "RNTuple" in type(nt).__name__
        on_disk = nt.arrays()
    assert on_disk.fields == pred.fields
    for name in pred.fields:
        assert ak.all(ak.isclose(pred[name], on_disk[name], rtol=0, atol=0, equal_nan=True))


def test_memory_is_bounded_by_the_chunk(run_dir: Path, sim_file: Path) -> None:
    """Chunks of 8 entries give the same predictions as one chunk (streaming changes nothing)."""
    a = predict(run_dir, sim_file, device="cpu", step_size=8)
    b = predict(run_dir, sim_file, device="cpu", step_size=1000)
    for name in a.fields:
        assert ak.all(ak.isclose(a[name], b[name], rtol=0, atol=1e-6, equal_nan=True))


def test_a_file_without_entries_gives_an_empty_tree(run_dir: Path, tmp_path: Path) -> None:
    from predhelp import write_empty_hits

    path = write_empty_hits(tmp_path / "none.root")
    res = predict_files(run_dir, path, tmp_path / "o", device="cpu", progress=False)
    with uproot.open(res.outputs[0]) as f:
        assert f["events"].num_entries == 0 and "frac_model_0" in f["events"].keys()
    assert len(predict(run_dir, path, device="cpu")) == 0


def test_schema_comes_from_the_run_folder_or_the_option(
    run_dir: Path, sim_file: Path, tmp_path: Path
) -> None:
    """Another tree layout: read with --schema, or with the run's schema.yaml by default; the
    output tree takes the input tree's name."""
    import shutil

    hits = read_hits(sim_file)
    rec = ak.zip({f"rechit_{k}": v for k, v in hits.items()})
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f.mktree("hits", {k: rec[k].type for k in rec.fields})
        f["hits"].extend({k: rec[k] for k in rec.fields})
    schema = tmp_path / "s.yaml"
    schema.write_text(
        "tree: hits\n"
        + "".join(
            f"{k}: rechit_{k}\n" for k in ("x", "y", "z", "energy", "layer", "dx", "dy", "dz")
        )
    )
    want = predict(run_dir, sim_file, device="cpu")
    got = predict(run_dir, path, schema=schema, device="cpu")
    assert ak.all(ak.isclose(got.frac_model_0, want.frac_model_0, rtol=0, atol=1e-6))
    run2 = tmp_path / "run2"
    shutil.copytree(run_dir, run2)
    shutil.copy(schema, run2 / "schema.yaml")
    res = predict_files(run2, path, tmp_path / "o", device="cpu", progress=False)
    with uproot.open(res.outputs[0]) as f:
        assert f["hits"].num_entries == 60
        assert ak.all(ak.isclose(f["hits"]["frac_model_0"].array(), want.frac_model_0, atol=1e-6))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_predictions(run_dir: Path, sim_file: Path) -> None:
    cpu = predict(run_dir, sim_file, device="cpu")
    gpu = predict(run_dir, sim_file, device="cuda")
    for name in cpu.fields:
        assert ak.all(ak.isclose(cpu[name], gpu[name], rtol=1e-4, atol=1e-4, equal_nan=True))


def test_cuda_without_a_device_is_a_config_error(run_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA device"):
        Predictor.load(run_dir, device="cuda")
