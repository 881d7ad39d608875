"""calo-predict on a condensation run: per hit its cluster and beta, per cluster its energy and
positions, equal to the clustering of the network's own output event by event; status codes,
friend alignment, the Python API equal to the file, CLUE beside it."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
from predhelp import make_condensation_run
from torch_geometric.data import Batch

from calo.errors import ConfigError
from calo.io import STATUS_CODES, FeatureSpec, Normalization, ReadSummary, read_data
from calo.predict import (
    CondensationPredictor,
    Predictor,
    condensation_column_names,
    predict,
    predict_files,
)
from calo.reco.clue import clue
from calo.reco.condensation import (
    cluster_energies,
    condensation_clusters,
    shared_cluster_energies,
)
from calo.train.evaluate import load_model


@pytest.fixture(scope="module")
def cond_run(sim_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GravNet condensation run with the position payload (seeded initial weights)."""
    return make_condensation_run(tmp_path_factory.mktemp("predict_cond") / "cond", sim_file)


@pytest.fixture(scope="module")
def cond_pred(cond_run: Path, sim_file: Path) -> ak.Array:
    """``predict`` of the whole simulated file with CLUE, in chunks of 25 entries."""
    return predict(cond_run, sim_file, device="cpu", batch_size=16, step_size=25, clue=True)


def _reference(run: Path, data: Path) -> list[dict[str, np.ndarray]]:
    """Per event: the model on that event alone, clustered as ``evaluate_condensation`` does
    (float64 beta and coordinates, the run's thresholds, energies times the correction of the
    condensation point), the energy-weighted positions, the learned impact points, CLUE."""
    model, cfg, norm_dict, _ = load_model(run)
    norm = Normalization.from_dict(norm_dict)
    events, _ = read_data(
        data, require_truth=False, features=FeatureSpec(norm.names), normalization=norm
    )
    c = cfg.condensation
    scale = cfg.model.condensation.position_scale
    refs = []
    for d in events:
        with torch.no_grad():
            out = model(Batch.from_data_list([d]))
        cl = condensation_clusters(
            out.beta.double().numpy(), out.coords.double().numpy(), None,
            c.clustering.t_beta, c.clustering.t_d,
        )  # fmt: skip
        e = d.energy.double().numpy()
        pos = d.pos.double().numpy()
        raw = cluster_energies(cl.labels, e)
        ref = {
            "raw_energy": raw,
            "cluster": cl.labels,
            "beta": out.beta.numpy(),
            "cluster_energy": cluster_energies(
                cl.labels, e, correction=out.correction.double().numpy()[cl.points]
            ),
            "cluster_x_learned": pos[cl.points, 0] + scale * out.position[cl.points, 0].numpy(),
            "cluster_y_learned": pos[cl.points, 1] + scale * out.position[cl.points, 1].numpy(),
        }
        ref["clue_cluster"] = clue(
            pos[:, :2], e, c.clue.dc, c.clue.rho_c, c.clue.outlier_factor, kernel=c.clue.kernel
        )
        for j, q in enumerate("xyz"):
            ref[f"cluster_{q}"] = cluster_energies(cl.labels, e * pos[:, j]) / raw
        refs.append(ref)
    return refs


def test_clusters_are_the_clustering_of_the_networks_own_output(
    cond_run: Path, cond_pred: ak.Array, sim_file: Path
) -> None:
    pred = cond_pred
    assert isinstance(Predictor.load(cond_run, device="cpu"), CondensationPredictor)
    assert pred.fields == condensation_column_names(clue=True, position=True)
    assert pred.status.tolist() == [0] * 60 and pred.entry.tolist() == list(range(60))
    refs = _reference(cond_run, sim_file)
    for i, ref in enumerate(refs):
        assert pred.cluster[i].tolist() == ref["cluster"].tolist(), i
        assert pred.clue_cluster[i].tolist() == ref["clue_cluster"].tolist(), i
        assert pred.n_clusters[i] == len(ref["cluster_energy"]) == ref["cluster"].max() + 1
        np.testing.assert_allclose(ak.to_numpy(pred.beta[i]), ref["beta"], rtol=0, atol=1e-6)
        for name in ("cluster_energy", "cluster_x", "cluster_y", "cluster_z",
                     "cluster_x_learned", "cluster_y_learned"):  # fmt: skip
            np.testing.assert_allclose(
                ak.to_numpy(pred[name][i]), ref[name], rtol=1e-5, atol=1e-4, err_msg=name
            )
    # the test means something: events with 0, 1 and 2 clusters, noise and clustered hits
    n = pred.n_clusters.to_numpy()
    assert {0, 1, 2} <= set(n.tolist())
    flat = ak.to_numpy(ak.flatten(pred.cluster))
    assert 0.2 < (flat == -1).mean() < 0.9
    # the learned correction changes the energy: not the plain sum of the cluster's hits
    raw = np.concatenate([r["raw_energy"] for r in refs])
    assert np.abs(ak.to_numpy(ak.flatten(pred.cluster_energy)) / raw - 1).max() > 0.01


def test_skipped_entries_keep_their_place_with_a_status(
    cond_run: Path, cond_pred: ak.Array, bad_file: tuple[Path, list[int]]
) -> None:
    path, inserted = bad_file
    summary = ReadSummary()
    pred = predict(cond_run, path, device="cpu", step_size=9, summary=summary, clue=True)
    assert len(pred) == 33 and pred.entry.tolist() == list(range(33))
    want = {5: STATUS_CODES["empty"], 11: STATUS_CODES["nonfinite"]}
    want[17] = STATUS_CODES["negative_energy"]
    assert {i: s for i, s in enumerate(pred.status.tolist()) if s} == want
    assert summary.skipped == {"empty": 1, "nonfinite": 1, "negative_energy": 1}
    for i in inserted:
        assert pred.n_clusters[i] == 0
        for name in ("cluster", "beta", "clue_cluster", "cluster_energy", "cluster_x_learned"):
            assert len(pred[name][i]) == 0, name
    # nothing shifted: the other entries are the first 30 events of the file
    good = [i for i in range(33) if i not in inserted]
    for name in pred.fields[2:]:
        a, b = pred[name][good], cond_pred[name][:30]
        assert ak.all(ak.isclose(a, b, rtol=0, atol=1e-6, equal_nan=True)), name


def test_output_is_a_friend_of_the_input_tree(
    cond_run: Path, bad_file: tuple[Path, list[int]], tmp_path: Path
) -> None:
    path, inserted = bad_file
    res = predict_files(cond_run, [path], tmp_path / "out", device="cpu", step_size=10,
                        progress=False)  # fmt: skip
    with uproot.open(path) as fin, uproot.open(res.outputs[0]) as fout:
        tin, tout = fin["events"], fout["events"]
        assert tout.num_entries == tin.num_entries == 33
        nhit_in = tin["nhit"].array(library="np")
        assert tout.keys() == ["status", "entry", "nhit_pred", "cluster", "beta", "n_clusters",
                               "cluster_energy", "cluster_x", "cluster_y", "cluster_z",
                               "cluster_x_learned", "cluster_y_learned"]  # fmt: skip
        assert tout["cluster"].interpretation.content.to_dtype.kind == "i"
        out = tout.arrays()
    ok = ak.to_numpy(out.status) == 0
    for name in ("cluster", "beta"):
        n = ak.to_numpy(ak.num(out[name]))
        assert (n[ok] == nhit_in[ok]).all() and (n[~ok] == 0).all()
    assert sorted(np.nonzero(~ok)[0].tolist()) == inserted
    n_clusters = ak.to_numpy(out.n_clusters)
    for name in ("cluster_energy", "cluster_x", "cluster_y_learned"):
        assert (ak.to_numpy(ak.num(out[name])) == n_clusters).all()
    # every hit label is a cluster of its entry or noise
    assert ak.all(ak.max(out.cluster, axis=1, initial=-1) == n_clusters - 1)
    info = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert info["task"] == "condensation" and info["n_showers"] is None
    assert info["clustering"]["clustering"] == {"t_beta": 0.15, "t_d": 3.0, "share_sigma": 0.0}


@pytest.mark.parametrize(("fmt", "split"), [("ttree", "chunk"), ("rntuple", "file")])
def test_the_python_api_returns_what_the_file_holds(
    cond_run: Path, cond_pred: ak.Array, sim_file: Path, tmp_path: Path, fmt: str, split: str
) -> None:
    res = predict_files(cond_run, sim_file, tmp_path, device="cpu", step_size=17, clue=True,
                        fmt=fmt, split=split, progress=False)  # fmt: skip
    with uproot.open(res.outputs[0]) as f:
        on_disk = f["events"].arrays()
    extra = {"nhit_pred"} if fmt == "ttree" else set()
    assert set(on_disk.fields) == {*cond_pred.fields, *extra}
    for name in cond_pred.fields:
        a, b = cond_pred[name], on_disk[name]
        assert a.type.content == b.type.content or fmt == "rntuple", name
        assert ak.all(ak.isclose(a, b, rtol=0, atol=0, equal_nan=True)), name


def test_without_position_payload_or_clue_the_columns_are_left_out(
    sim_file: Path, tmp_path: Path
) -> None:
    run = make_condensation_run(tmp_path / "nopos", sim_file, name="garnet", position=False)
    pred = predict(run, sim_file, device="cpu", step_size=30)
    assert pred.fields == condensation_column_names()
    assert len(pred) == 60 and ak.all(ak.num(pred.cluster_energy) == pred.n_clusters)


def test_fraction_options_are_refused(cond_run: Path, run_dir: Path) -> None:
    with pytest.raises(ConfigError, match="condensation run, which has no share calibration"):
        Predictor.load(cond_run, postprocess="calibrated")
    with pytest.raises(ConfigError, match="is a fraction run"):
        Predictor.load(run_dir, clue=True)


def test_cli_writes_the_clusters(
    cond_run: Path, sim_file: Path, tmp_path: Path, cond_pred: ak.Array
) -> None:
    from calo.predict.cli import main

    out = tmp_path / "pred"
    argv = [str(cond_run), str(sim_file), "--out", str(out), "--device", "cpu", "--clue"]
    assert main([*argv, "--no-progress"]) == 0
    with uproot.open(out / "sim_pred.root") as f:
        got = f["events"].arrays()
    assert ak.all(got.cluster == cond_pred.cluster)
    assert ak.all(got.clue_cluster == cond_pred.clue_cluster)


def test_empty_chunk_of_a_condensation_run(cond_run: Path, tmp_path: Path) -> None:
    from predhelp import write_empty_hits

    path = write_empty_hits(tmp_path / "none.root")
    res = predict_files(cond_run, path, tmp_path / "o", device="cpu", progress=False)
    with uproot.open(res.outputs[0]) as f:
        assert f["events"].num_entries == 0 and "cluster_energy" in f["events"].keys()
    assert predict(cond_run, path, device="cpu").fields == condensation_column_names(position=True)


def test_a_fraction_run_is_still_a_fraction_run(run_dir: Path, sim_file: Path) -> None:
    """The shared code path leaves the fraction output as it was."""
    predictor = Predictor.load(run_dir, device="cpu")
    assert type(predictor) is Predictor and predictor.task == "fractions"
    assert predictor.n_showers == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_clusters(cond_run: Path, sim_file: Path, cond_pred: ak.Array) -> None:
    """On a GPU the network's float32 outputs differ in the last bits: beta agrees to 1e-4 and
    almost every hit keeps its cluster (a hit on a t_d boundary may move)."""
    gpu = predict(cond_run, sim_file, device="cuda", clue=True)
    assert gpu.fields == cond_pred.fields
    assert ak.all(ak.isclose(gpu.beta, cond_pred.beta, rtol=0, atol=1e-4))
    same = ak.to_numpy(ak.flatten(gpu.cluster == cond_pred.cluster))
    assert same.mean() > 0.99
    assert ak.all(gpu.clue_cluster == cond_pred.clue_cluster)  # CLUE does not use the network


def test_energy_sharing_run_writes_shared_energies_and_positions(
    sim_file: Path, tmp_path: Path
) -> None:
    """With clustering.share_sigma > 0 the file's cluster energies and positions are those of
    ``shared_cluster_energies`` on the network's own output, and differ from the hard sums."""
    run = make_condensation_run(
        tmp_path / "shared", sim_file, position=False,
        extra=("condensation.clustering.share_sigma=2.0",),
    )  # fmt: skip
    pred = predict(run, sim_file, device="cpu", batch_size=16, step_size=25)
    model, cfg, norm_dict, _ = load_model(run)
    norm = Normalization.from_dict(norm_dict)
    events, _ = read_data(
        sim_file, require_truth=False, features=FeatureSpec(norm.names), normalization=norm
    )
    c = cfg.condensation.clustering
    assert c.share_sigma == 2.0
    moved = 0.0
    for i, d in enumerate(events):
        with torch.no_grad():
            out = model(Batch.from_data_list([d]))
        x = out.coords.double().numpy()
        cl = condensation_clusters(out.beta.double().numpy(), x, None, c.t_beta, c.t_d)
        e = d.energy.double().numpy()
        corr = out.correction.double().numpy()[cl.points]
        want = shared_cluster_energies(cl, x, e, None, 2.0, corr)
        got = ak.to_numpy(pred.cluster_energy[i])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
        raw = shared_cluster_energies(cl, x, e, None, 2.0)
        pos_x = shared_cluster_energies(cl, x, e * d.pos[:, 0].double().numpy(), None, 2.0)
        np.testing.assert_allclose(
            ak.to_numpy(pred.cluster_x[i]), pos_x / raw, rtol=1e-5, atol=1e-4
        )
        if cl.n_clusters:
            moved = max(
                moved, float(np.abs(want - cluster_energies(cl.labels, e, None, corr)).max())
            )
    assert moved > 0.01  # the sharing moved energy between clusters: the check means something
