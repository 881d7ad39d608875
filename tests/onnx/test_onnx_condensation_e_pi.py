"""ONNX export of a condensation model and of the e/pi GarNet (float arithmetic): ONNX Runtime
equals torch on simulated events, on events with fewer hits than k (or no hits), in batches.

One small model per kind, exported once (module fixture; ``torch.export`` takes seconds,
hence ``slow``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from calo.config import apply_overrides
from calo.errors import DataError
from calo.models import CondensationModel, ModelConfig
from calo.models.onnx import (
    check_padded_inputs,
    export_e_pi_onnx,
    export_onnx,
    onnx_session,
)

pytest.importorskip("onnx", reason="ONNX export tests need onnx (pip install 'calo[onnx]')")
pytest.importorskip("onnxscript", reason="ONNX export tests need onnxscript")
pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime")

DATA = Path(__file__).resolve().parents[2] / "data"
K = 6
ATOL = 1e-5
V = 16
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def condensation(tmp_path_factory):
    """A tiny GravNet condensation model (3-d coordinates, position payload), exported."""
    cfg = apply_overrides(
        ModelConfig(),
        ["gravnet.n_blocks=1", "gravnet.dense=[16]", f"gravnet.k={K}", "gravnet.out_channels=16",
         "gravnet.head=16", "condensation.hidden=[16]", "condensation.coord_dims=3",
         "condensation.position=true"],
    )  # fmt: skip
    torch.manual_seed(2)
    model = CondensationModel(cfg)
    g = torch.Generator().manual_seed(3)
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    model.eval()
    path = tmp_path_factory.mktemp("cond") / "model.onnx"
    res = export_onnx(model, path)
    return model, res, onnx_session(path)


def _compare(ref: tuple, got: list) -> float:
    worst = 0.0
    for r, o in zip(ref, got, strict=True):
        assert o.shape == tuple(r.shape) and o.dtype == np.float32
        worst = max(worst, float(np.abs(o - r.numpy()).max(initial=0.0)))
    return worst


def test_condensation_outputs_equal_torch(condensation) -> None:
    from calo.io import HitDataset, Normalization

    model, res, sess = condensation
    assert res["verified"] and res["max_abs_diff"] <= ATOL
    assert [o.name for o in sess.get_outputs()] == ["beta", "coords", "correction", "position"]
    doc = json.loads(Path(res["json"]).read_text())
    assert [o["shape"] for o in doc["outputs"]] == [["N"], ["N", 3], ["N"], ["N", 2]]
    assert doc["knn"]["k"] == K and doc["model"] == "CondensationModel"
    data = HitDataset([str(DATA / "sample_two_showers.root")], max_events=4).data
    norm = Normalization.fit(torch.cat([d.x for d in data]), data[0].x.shape[1] * ("f",))
    xs = [norm.apply(d.x).float() for d in data]
    sizes = torch.tensor([x.shape[0] for x in xs])
    cases = [
        (xs[0], torch.zeros(xs[0].shape[0], dtype=torch.long)),  # one simulated event
        (torch.cat(xs), torch.repeat_interleave(torch.arange(4), sizes)),  # a batch of four
        (xs[1][: K - 1], torch.zeros(K - 1, dtype=torch.long)),  # fewer hits than k
        (torch.cat([xs[2][:2], xs[3]]), torch.repeat_interleave(torch.tensor([0, 1]),
                                                                torch.tensor([2, len(xs[3])]))),
    ]  # fmt: skip
    for x, batch in cases:
        with torch.no_grad():
            out = model(x, batch)
        got = sess.run(None, {"x": x.numpy(), "batch": batch.numpy()})
        assert _compare(tuple(out), got) <= ATOL


@pytest.fixture(scope="module")
def e_pi(tmp_path_factory):
    """A small e/pi GarNet (V = 16, two sublayers), trained-quantized flag set, exported."""
    from calo.fpga.garnet import GarNetFixedConfig
    from calo.fpga.qat import QGarNetModel, QGarNetStack

    torch.manual_seed(4)
    stack = QGarNetStack(
        sublayers=[(4, 4, 8), (4, 8, 8)],
        config=GarNetFixedConfig(n_vertices=V, reuse_factor=4),
        quantized=True,
    )
    model = QGarNetModel(stack, head=(8,)).eval()
    path = tmp_path_factory.mktemp("e_pi") / "model.onnx"
    res = export_e_pi_onnx(model, path, metadata={"source": "test"})
    return model, res, onnx_session(path)


def test_e_pi_float_graph_equals_torch_on_simulated_events(e_pi) -> None:
    from calo.fpga.data import load_e_pi

    model, res, sess = e_pi
    assert model.stack.quantized  # the caller's model is left as it was
    assert res["verified"] and res["max_abs_diff"] <= ATOL
    assert [i.name for i in sess.get_inputs()] == ["X", "n"]
    assert [o.name for o in sess.get_outputs()] == ["regression", "logit"]
    doc = json.loads(Path(res["json"]).read_text())
    assert doc["arithmetic"] == "float" and doc["trained_quantized"] is True
    assert doc["inputs"][0]["shape"] == ["B", V, 4] and doc["source"] == "test"
    assert doc["energy_scale"] == model.energy_scale
    sample = load_e_pi(DATA / "sample_e_pi.root", v_max=V, max_events=12)
    X, n = sample.X.float(), sample.n.long()
    model.stack.set_quantized(False)
    try:
        for sl in (slice(0, 1), slice(0, 12)):  # one event, a batch of twelve
            with torch.no_grad():
                ref = model(X[sl], n[sl])
            got = sess.run(None, {"X": X[sl].numpy(), "n": n[sl].numpy()})
            assert _compare(ref, got) <= ATOL
        # events with fewer hits, one hit, none: the padding rows are never read
        Xs = torch.randn(4, V, 4, generator=torch.Generator().manual_seed(9))
        ns = torch.tensor([3, 1, 0, V])
        with torch.no_grad():
            ref = model(Xs, ns)
        got = sess.run(None, {"X": Xs.numpy(), "n": ns.numpy()})
        assert _compare(ref, got) <= ATOL
        Xs[0, 3:] = 100.0
        assert _compare(ref, sess.run(None, {"X": Xs.numpy(), "n": ns.numpy()})) <= ATOL
    finally:
        model.stack.set_quantized(True)
    with pytest.raises(DataError, match=r"outside 0\.\.16"):
        check_padded_inputs(Xs.numpy(), np.array([3, 1, 0, 17]), V, 4)
