"""calo-export of fraction-task runs: a GarNet in hls4ml's form exports layer by layer, bit for
bit with the g++ build of nnet_garnet.h; every other model gets a one-line error that names
what blocks it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from calo.config import apply_overrides
from calo.fpga.cli import export_main
from calo.fpga.garnet import GarNetFixedConfig
from calo.fpga.harness import harness_source, run_harness
from calo.fpga.model_export import _layer_inputs, fraction_garnet_weights, garnet_blockers
from calo.fpga.reference import FixedGarNet, garnet_float
from calo.models.config import GarNetModelConfig, ModelConfig
from calo.train.config import TrainConfig
from calo.train.evaluate import load_model
from calo.train.run import train

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_two_showers.root"
HLS_FORM = [
    "model.name=garnet", "model.garnet.simplified=true", "model.garnet.potential=gauss",
    "model.garnet.mean_by=vmax", "model.garnet.v_max=128",
]  # fmt: skip
TINY = [
    f"data.files=[{SAMPLE}]", "data.max_events=120", "data.batch_size=20",
    "model.garnet.n_blocks=2", "model.garnet.input_dense=8", "model.garnet.out_channels=8",
    "model.garnet.propagate_dimensions=4", "model.garnet.head=8", "trainer.max_epochs=1",
    "trainer.progress_bar=false", "trainer.early_stopping_patience=0",
    "trainer.max_time_minutes=0", "calibration.enabled=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def garnet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("frac") / "garnet"
    train(apply_overrides(TrainConfig(), [*TINY, *HLS_FORM]), out, plots=False)
    return out


@pytest.fixture(scope="module")
def exported(garnet_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("frac_export")
    assert export_main([str(garnet_run), "--out", str(out), "--events", "12"]) == 0
    return out


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["model.name=gravnet"], ["model gravnet", "no hls4ml layer"]),
        (["model.name=edgeconv"], ["EdgeConv"]),
        (["model.name=garnet"], ["full form", "simplified=true", "potential exp_abs"]),
        ([*HLS_FORM, "model.garnet.potential=exp_abs"], ["potential exp_abs"]),
        ([*HLS_FORM, "model.garnet.v_max=100"], ["power of two"]),
    ],
)
def test_blockers_are_named(overrides: list[str], words: list[str]) -> None:
    text = "; ".join(garnet_blockers(apply_overrides(TrainConfig(), overrides).model))
    for w in words:
        assert w in text, text
    assert garnet_blockers(apply_overrides(TrainConfig(), HLS_FORM).model) == []
    # means by the hit count export with hls4ml's mean_by_nvert (not a blocker)
    nvert = apply_overrides(TrainConfig(), [*HLS_FORM, "model.garnet.mean_by=n"]).model
    assert garnet_blockers(nvert) == []


@pytest.mark.slow
def test_export_of_a_blocked_run_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "paper_garnet"
    train(apply_overrides(TrainConfig(), [*TINY, "model.name=garnet"]), run, plots=False)
    assert export_main([str(run), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot export to hls4ml's GarNet" in err and "simplified=true" in err
    assert not (tmp_path / "x").exists()


def test_hls_form_garnet_layer_is_hls4ml_float_maths() -> None:
    """A GarNetConv of the model in hls4ml's form computes the float GarNet of nnet_garnet.h
    (the reference's float path) on padded events."""
    cfg = GarNetModelConfig(n_blocks=1, simplified=True, potential="gauss", mean_by="vmax",
                            v_max=32, input_dense=6, out_channels=5, propagate_dimensions=3)  # fmt: skip
    from calo.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(name="garnet", garnet=cfg))
    rng = np.random.default_rng(1)
    X = rng.normal(0, 0.7, size=(4, 32, 6))
    n = np.array([32, 5, 17, 1])
    for b in range(4):
        X[b, n[b] :] = 0
    with torch.no_grad():
        ours = model.convs[0](torch.as_tensor(X, dtype=torch.float64).float(), torch.as_tensor(n))
    ref = garnet_float(fraction_garnet_weights(model), X, n, collapse="none")
    valid = np.arange(32)[None, :] < n[:, None]
    np.testing.assert_allclose(ours.numpy()[valid], ref[valid], atol=1e-5)


@pytest.mark.slow
def test_export_writes_every_garnet_layer(garnet_run: Path, exported: Path) -> None:
    doc = json.loads((exported / "model.json").read_text())
    assert [layer["function"] for layer in doc["layers"]] == ["calo_garnet_0", "calo_garnet_1"]
    assert doc["config"]["collapse"] == "none" and doc["config"]["n_vertices"] == 128
    assert doc["config"]["reuse_factor"] == 32 and "the head" in doc["not_exported"][-1]
    for b in range(2):
        vec = np.load(exported / f"layer{b}" / "test_vectors.npz")
        # 4 edge events (n = 0, 1, 4, 128) and the 12 validation events
        assert vec["x_raw"].shape == (16, 128, 8) and vec["expected_raw"].shape == (16, 128, 8)
        assert vec["n"][:4].tolist() == [0, 1, 4, 128]
    # the reference built from the model's weights gives the exported expected bits, and the
    # quantized layer stays close to the float layer it came from
    model, cfg, norm, _ = load_model(garnet_run)
    from calo.train.data import CaloDataModule

    dm = CaloDataModule(cfg.data, norm)
    dm.setup()
    inputs, counts = _layer_inputs(model, dm.val_set.data[:12], 128)
    counts = np.minimum(counts, 128)
    fixed_cfg = GarNetFixedConfig(**doc["config"])
    for b, w in enumerate(fraction_garnet_weights(model)):
        ref = FixedGarNet([w], fixed_cfg)
        vec = np.load(exported / f"layer{b}" / "test_vectors.npz")
        np.testing.assert_array_equal(vec["x_raw"][4:], ref.quantize_inputs(inputs[b]))
        got = ref(inputs[b], counts).output
        np.testing.assert_array_equal(ref.types["output_t"].to_float(vec["expected_raw"][4:]), got)
        flt = garnet_float([w], inputs[b], counts, collapse="none")
        valid = np.arange(128)[None, :] < counts[:, None]
        # post-training quantization with hls4ml's default types: close, not equal
        assert np.corrcoef(got[valid].ravel(), flt[valid].ravel())[0, 1] > 0.95
        assert np.abs(got - flt)[valid].mean() < 0.5 * np.abs(flt)[valid].mean()


@pytest.mark.slow
def test_exported_layers_compile_and_agree_bit_for_bit(exported: Path, compile_cpp) -> None:
    doc = json.loads((exported / "model.json").read_text())
    cfg = GarNetFixedConfig(**doc["config"])
    for layer in doc["layers"]:
        folder = exported / f"layer{layer['index']}"
        src = harness_source(((Path(layer["header"]).name, None),), name=layer["function"])
        exe = compile_cpp(src, extra_includes=(folder,))
        vec = np.load(folder / "test_vectors.npz")
        ref = FixedGarNet(_quantized(doc, layer), cfg)
        got, _ = run_harness(exe, ref, vec["x_raw"], vec["n"], folder / "harness_run")
        np.testing.assert_array_equal(got, vec["expected_raw"])


def _quantized(doc: dict, layer: dict) -> list:
    from calo.fpga.fixed import parse_type
    from calo.fpga.garnet import QuantizedSublayer

    s = layer["sublayer"]
    arrays = {
        k: np.array(e["raw"], dtype=np.int64).reshape(e["shape"]) for k, e in s["arrays"].items()
    }
    types = {k: parse_type(e["type"]) for k, e in s["arrays"].items()}
    return [QuantizedSublayer(types=types, n_propagate=s["n_propagate"], **arrays)]


def _tiny_events(counts: list[int], n_features: int = 7) -> list:
    from torch_geometric.data import Data

    g = torch.Generator().manual_seed(3)
    return [Data(x=torch.randn(k, n_features, generator=g)) for k in counts]


def test_mean_by_n_exports_with_hls4mls_mean_by_nvert_and_reports_the_pitfall(tmp_path) -> None:
    """mean_by=n is hls4ml's mean_by_nvert; the export's expected bits are the firmware's
    integer (V/R)/n arithmetic (the g++ comparison of that arithmetic is in test_bitexact)."""
    from calo.fpga.model_export import export_fraction_garnet
    from calo.models import build_model

    gcfg = GarNetModelConfig(n_blocks=1, simplified=True, potential="gauss", mean_by="n",
                             v_max=32, input_dense=6, out_channels=5, propagate_dimensions=3)  # fmt: skip
    mcfg = ModelConfig(name="garnet", garnet=gcfg)
    assert garnet_blockers(mcfg) == []
    torch.manual_seed(0)
    model = build_model(mcfg)
    events = _tiny_events([3, 8, 20, 40])  # V/R = 32/8 = 4: means are 0 for n = 8, 20, 32
    res = export_fraction_garnet(model, mcfg, tmp_path, events)
    assert res["mean_by_nvert"]["events_with_zero_means"] == 3
    assert res["mean_by_nvert"]["of_events"] == 4 and res["truncated_events"] == 1
    assert res["edge_events"] == [1, 4, 32]  # no n = 0 with mean_by_nvert
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["config"]["mean_by_nvert"] is True and doc["config"]["collapse"] == "none"
    assert "integers" in doc["mean_by_nvert"]["note"]
    vec = np.load(tmp_path / "layer0" / "test_vectors.npz")
    assert vec["n"].tolist() == [1, 4, 32, 3, 8, 20, 32]
    # the expected bits: integer (V/R)/n = 0 for n > 4, so every valid hit's output is the
    # output bias; for n = 3 (4 // 3 = 1: sums not divided) the hits differ
    w = fraction_garnet_weights(model)[0]
    ref = FixedGarNet([w], GarNetFixedConfig(**doc["config"]))
    bias = ref.types["output_t"].cast(ref.sublayers[0].b_out, ref.sublayers[0].types["b_out"])
    exp = vec["expected_raw"]
    for e, k in enumerate(vec["n"]):
        same = (exp[e, :k] == bias).all()
        assert same == (k > 4), (e, k)
