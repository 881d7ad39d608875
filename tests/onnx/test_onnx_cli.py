"""calo-export --format onnx on tiny calo-train runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from trainhelp import TINY_GRAVNET

from calo.fpga.cli import export_main
from calo.train.evaluate import load_model
from calo.train.run import resolve_config, train

pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime")
pytest.importorskip("onnxscript", reason="ONNX export tests need onnxscript")

DATA = Path(__file__).resolve().parents[2] / "data"
pytestmark = pytest.mark.slow  # training, then export


def _train(tmp_path_factory, name: str, overrides: list[str]) -> Path:
    common = [
        "trainer.max_epochs=1", "trainer.progress_bar=false", "trainer.max_time_minutes=0",
        "trainer.early_stopping_patience=0", "trainer.seed=1",
    ]  # fmt: skip
    run = tmp_path_factory.mktemp("run") / name
    train(resolve_config(None, [*overrides, *common], None), run, plots=False)
    return run


@pytest.fixture(scope="module")
def gravnet_run(tmp_path_factory) -> Path:
    files = f"data.files=[{DATA / 'sample_two_showers.root'}]"
    return _train(
        tmp_path_factory,
        "gravnet",
        [*TINY_GRAVNET, files, "data.max_events=40", "data.batch_size=8"],
    )


def test_onnx_export_of_a_fraction_run(gravnet_run: Path, tmp_path: Path, capsys) -> None:
    from calo.io import HitDataset, Normalization
    from calo.models.onnx import onnx_session

    out = tmp_path / "onnx"
    assert export_main([str(gravnet_run), "--format", "onnx", "--out", str(out)]) == 0
    assert "model.onnx" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "model.onnx.json"]
    doc = json.loads((out / "model.onnx.json").read_text())
    model, cfg, norm_dict, _ = load_model(gravnet_run)
    assert [i["name"] for i in doc["inputs"]] == ["x", "batch"]
    assert doc["feature_names"] == list(norm_dict["names"]) and len(doc["feature_names"]) == 7
    assert doc["normalization"] == norm_dict and doc["model_name"] == "gravnet"
    assert doc["knn"]["k"] == cfg.model.gravnet.k
    # raw features -> the JSON's normalisation -> ONNX Runtime == the run's model in torch
    norm = Normalization.from_dict(doc["normalization"])
    events = HitDataset([str(DATA / "sample_two_showers.root")], max_events=3).data
    x = torch.cat([norm.apply(d.x) for d in events]).float()
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([d.num_nodes for d in events]))
    got = onnx_session(out / "model.onnx").run(None, {"x": x.numpy(), "batch": batch.numpy()})[0]
    with torch.no_grad():
        ref = model(x, batch).numpy()
    assert float(np.abs(got - ref).max()) <= 1e-5


def test_onnx_export_of_an_e_pi_run_in_float_arithmetic(tmp_path_factory, tmp_path) -> None:
    from calo.fpga.data import load_e_pi
    from calo.models.onnx import onnx_session

    run = _train(
        tmp_path_factory,
        "e_pi",
        [
            "task=e_pi", f"data.files=[{DATA / 'sample_e_pi.root'}]", "data.max_events=60",
            "data.batch_size=30", "e_pi.fixed.n_vertices=16", "e_pi.fixed.reuse_factor=4",
            "e_pi.qat_epochs=0", "e_pi.sublayers=[[4,4,8]]", "e_pi.head=[8]",
        ],
    )  # fmt: skip
    out = tmp_path / "o"
    assert export_main([str(run), "--format", "onnx", "--out", str(out)]) == 0
    doc = json.loads((out / "model.onnx.json").read_text())
    assert doc["task"] == "e_pi" and doc["arithmetic"] == "float"
    assert [o["name"] for o in doc["outputs"]] == ["regression", "logit"]
    model, _, _, _ = load_model(run)
    model.stack.set_quantized(False)
    sample = load_e_pi(DATA / "sample_e_pi.root", v_max=16, max_events=8)
    X, n = sample.X.float(), sample.n.long()
    got = onnx_session(out / "model.onnx").run(None, {"X": X.numpy(), "n": n.numpy()})
    with torch.no_grad():
        ref = model(X, n)
    for g, r in zip(got, ref, strict=True):
        assert float(np.abs(g - r.numpy()).max()) <= 1e-5


def test_onnx_export_of_a_condensation_run(tmp_path: Path) -> None:
    """A condensation run folder (seeded initial weights, calo-train's layout) exports with
    the outputs of its head and the run's normalisation."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "predict"))
    from predhelp import make_condensation_run

    run = make_condensation_run(tmp_path / "cond", DATA / "sample_two_showers.root")
    out = tmp_path / "o"
    assert export_main([str(run), "--format", "onnx", "--out", str(out)]) == 0
    doc = json.loads((out / "model.onnx.json").read_text())
    assert doc["task"] == "condensation" and doc["verification"]["max_abs_diff"] <= 1e-5
    names = ["beta", "coords", "correction", "position"]
    assert [o["name"] for o in doc["outputs"]] == names
    assert doc["normalization"] == load_model(run)[2]
