"""calo-export --format onnx on tiny calo-train runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from trainhelp import TINY_GRAVNET, one_line_error

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


def test_e_pi_run_is_a_one_line_error(tmp_path_factory, tmp_path: Path, capsys) -> None:
    run = _train(
        tmp_path_factory,
        "e_pi",
        [
            "task=e_pi", f"data.files=[{DATA / 'sample_e_pi.root'}]", "data.max_events=60",
            "data.batch_size=30", "e_pi.fixed.n_vertices=16", "e_pi.fixed.reuse_factor=4",
            "e_pi.qat_epochs=0",
        ],
    )  # fmt: skip
    capsys.readouterr()
    rc = export_main([str(run), "--format", "onnx", "--out", str(tmp_path / "o")])
    one_line_error(capsys, rc, "e/pi", "--format hls")
    assert not (tmp_path / "o" / "model.onnx").exists()
