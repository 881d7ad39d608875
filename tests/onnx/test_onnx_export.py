"""ONNX export of the fraction models: ONNX Runtime equals torch (with its kd-tree kNN).

Every model is exported once (module fixture; torch.export takes seconds, hence ``slow``) and
run in ONNX Runtime on simulated events of the sample file, on an event with fewer hits than
``k``, on batches of several events of different sizes and at sizes other than the traced one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from calo.config import apply_overrides
from calo.errors import ConfigError
from calo.models import ModelConfig, build_model
from calo.models.onnx import export_onnx, onnx_session

pytest.importorskip("onnx", reason="ONNX export tests need onnx (pip install 'calo[onnx]')")
pytest.importorskip("onnxscript", reason="ONNX export tests need onnxscript")
pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime")

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_two_showers.root"
K = 6
TINY = {
    "gravnet": ["gravnet.n_blocks=2", "gravnet.dense=[16]", f"gravnet.k={K}",
                "gravnet.out_channels=16", "gravnet.head=16"],
    "garnet": ["garnet.n_blocks=2", "garnet.input_dense=16", "garnet.out_channels=16"],
    "edgeconv": ["edgeconv.n_blocks=2", f"edgeconv.k={K}", "edgeconv.edge_mlp=[16, 16]",
                 "edgeconv.exchange=16"],
}  # fmt: skip
ATOL = 1e-5


def _model(name: str, n_showers: int = 2) -> torch.nn.Module:
    model = build_model(apply_overrides(ModelConfig(name=name, n_showers=n_showers), TINY[name]))
    # non-trivial BatchNorm statistics, as after training
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def sample_events() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised hits of simulated two-shower events: one event, and a batch of four."""
    from calo.io import HitDataset, Normalization

    data = HitDataset([str(SAMPLE)], max_events=5).data
    norm = Normalization.fit(torch.cat([d.x for d in data]), data[0].x.shape[1] * ("f",))
    xs = [norm.apply(d.x).float() for d in data]
    sizes = torch.tensor([x.shape[0] for x in xs[1:]])
    batch = torch.repeat_interleave(torch.arange(4), sizes)
    return [(xs[0], torch.zeros(xs[0].shape[0], dtype=torch.long)), (torch.cat(xs[1:]), batch)]


@pytest.fixture(scope="module", params=["gravnet", "garnet", "edgeconv"])
def exported(request, tmp_path_factory):
    model = _model(request.param)
    path = tmp_path_factory.mktemp(request.param) / "model.onnx"
    res = export_onnx(model, path, metadata={"feature_names": list("abcdefg")})
    return request.param, model, res, onnx_session(path)


def _compare(model, sess, x: torch.Tensor, batch: torch.Tensor) -> float:
    with torch.no_grad():
        ref = model(x, batch).numpy()  # torch with its default (kd-tree) kNN
    got = sess.run(None, {"x": x.numpy(), "batch": batch.numpy()})[0]
    assert got.shape == ref.shape and got.dtype == np.float32
    return float(np.abs(got - ref).max())


def _events(sizes: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(sizes), 7, generator=g)
    return x, torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


@pytest.mark.slow
def test_file_description_and_self_check(exported) -> None:
    name, _, res, sess = exported
    assert res["verified"] and res["max_abs_diff"] <= ATOL
    assert [i.name for i in sess.get_inputs()] == ["x", "batch"]
    assert [o.name for o in sess.get_outputs()] == ["fractions"]
    assert sess.get_inputs()[0].type == "tensor(float)"
    assert sess.get_inputs()[1].type == "tensor(int64)"
    # every size is free: only the feature and shower axes are fixed
    assert [isinstance(d, int) for d in sess.get_inputs()[0].shape] == [False, True]
    assert [isinstance(d, int) for d in sess.get_outputs()[0].shape] == [False, True]
    doc = json.loads(Path(res["json"]).read_text())
    assert doc["inputs"][0]["shape"] == ["N", 7] and doc["outputs"][0]["shape"] == ["N", 2]
    assert doc["feature_names"] == list("abcdefg")
    assert (doc["knn"] is None) == (name == "garnet")
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["calo"])
    assert meta["model"] == doc["model"]


@pytest.mark.slow
def test_simulated_events_single_and_batched(exported, sample_events) -> None:
    _, model, _, sess = exported
    for x, batch in sample_events:
        assert _compare(model, sess, x, batch) <= ATOL


@pytest.mark.slow
@pytest.mark.parametrize(
    "sizes",
    [[K - 1], [1], [2, 1], [K - 2, 300, 1, 40], [513]],
    ids=["fewer-than-k", "one-hit", "tiny-events", "mixed-batch", "larger-n"],
)
def test_dynamic_sizes_and_small_events(exported, sizes: list[int]) -> None:
    _, model, _, sess = exported
    x, batch = _events(sizes, seed=sum(sizes))
    assert _compare(model, sess, x, batch) <= ATOL


@pytest.mark.slow
def test_event_numbers_need_not_be_compact(exported) -> None:
    """torch_geometric batches number events from 0; gaps (empty events) change nothing."""
    _, model, _, sess = exported
    x, batch = _events([20, 30, 10], seed=4)
    gapped = torch.tensor([0, 2, 5]).repeat_interleave(torch.tensor([20, 30, 10]))
    got = sess.run(None, {"x": x.numpy(), "batch": gapped.numpy()})[0]
    with torch.no_grad():
        ref = model(x, batch).numpy()
    assert float(np.abs(got - ref).max()) <= ATOL


def test_only_fraction_models_are_exported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GravNet, GarNet or DGCNN"):
        export_onnx(torch.nn.Linear(7, 2), tmp_path / "m.onnx")
