"""calo-export of calo-train e/pi runs: train tiny -> export -> reference == torch model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from calo.errors import CheckpointError
from calo.fpga.cli import export_main
from calo.fpga.data import load_e_pi
from calo.fpga.fixed import parse_type
from calo.fpga.garnet import GarNetFixedConfig, QuantizedSublayer
from calo.fpga.harness import harness_source, run_harness
from calo.fpga.reference import FixedGarNet
from calo.train.evaluate import load_model
from calo.train.run import resolve_config, train

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_e_pi.root"

# every test here uses the module's trained model (training, then export): slow
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny e/pi run of calo-train (2 float epochs, 1 quantization-aware) on the sample."""
    overrides = [
        "task=e_pi", f"data.files=[{SAMPLE}]", "data.max_events=240", "data.val_fraction=0.2",
        "data.batch_size=50", "optim.lr=5e-3", "e_pi.fixed.n_vertices=16",
        "e_pi.fixed.reuse_factor=4", "e_pi.qat_epochs=1", "trainer.max_epochs=3",
        "trainer.max_time_minutes=0", "trainer.early_stopping_patience=0",
        "trainer.progress_bar=false", "trainer.seed=5",
    ]  # fmt: skip
    run = tmp_path_factory.mktemp("run") / "e_pi"
    train(resolve_config(None, overrides, None), run, plots=False)
    model = load_model(run / "checkpoints" / "best.ckpt")[0]
    return model, run


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    model, path = trained
    out = tmp_path_factory.mktemp("export")
    rc = export_main([str(path), "--out", str(out), "--events", "150", "--data", str(SAMPLE)])
    assert rc == 0
    return model, out


def test_run_checkpoint_loads_with_weights_only_and_gives_the_same_model(trained):
    model, run = trained
    raw = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert raw["calo"]["config"]["task"] == "e_pi"
    loaded, cfg, _, _ = load_model(run)
    assert loaded.stack.quantized and not loaded.training
    sample = load_e_pi(SAMPLE, v_max=16, max_events=30)
    with torch.no_grad():
        a = model(sample.X, sample.n)
        b = loaded(sample.X, sample.n)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert cfg.e_pi.xy_scale == sample.features.xy_scale


def _sublayers_from_json(doc):
    subs = []
    for s in doc["sublayers"]:
        arrays, types = {}, {}
        for key, entry in s["arrays"].items():
            arrays[key] = np.array(entry["raw"], dtype=np.int64).reshape(entry["shape"])
            types[key] = parse_type(entry["type"])
            np.testing.assert_array_equal(types[key].to_float(arrays[key]).ravel(), entry["values"])
        subs.append(QuantizedSublayer(types=types, n_propagate=s["n_propagate"], **arrays))
    return subs


def test_export_writes_weights_header_and_vectors(exported):
    model, out = exported
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "calo_garnet.h",
        "expected_outputs.txt",
        "model.json",
        "model.npz",
        "test_vectors.npz",
        "test_vectors.txt",
    ]
    doc = json.loads((out / "model.json").read_text())
    assert doc["types"]["aggr_t"] == "ap_fixed<15,5>" and doc["config"]["n_vertices"] == 16
    assert [s["n_out"] for s in doc["sublayers"]] == [8, 8, 16]
    assert doc["head"]["dtype"] == "float32" and len(doc["head"]["layers"]) == 4
    npz = np.load(out / "model.npz")
    subs = _sublayers_from_json(doc)
    for li, s in enumerate(subs):
        for key in ("w_d", "b_d", "w_in", "b_in", "b_out"):
            np.testing.assert_array_equal(npz[f"L{li}_{key}_raw"], getattr(s, key))
    np.testing.assert_array_equal(npz["head_0_weight"], model.head[0].weight.detach().numpy())
    header = (out / "calo_garnet.h").read_text()
    assert "nnet::garnet_stack<input_t, nvtx_t, result_t, config>" in header
    assert header.count("template <>") == 3
    lines = (out / "test_vectors.txt").read_text().splitlines()
    # 4 edge events (n = 0, 1, V/R = 4, V = 16) before the 150 simulated ones
    assert lines[0] == "154 64" and len(lines) == 155
    assert [int(ln.split()[0]) for ln in lines[1:5]] == [0, 1, 4, 16]
    assert len((out / "expected_outputs.txt").read_text().splitlines()) == 154


def test_exported_weights_reproduce_the_torch_model_bit_for_bit(exported):
    """End to end: FixedGarNet built only from the exported JSON equals the trained torch
    model in eval mode on the exported test vectors (simulated e/pi events)."""
    model, out = exported
    doc = json.loads((out / "model.json").read_text())
    cfg = GarNetFixedConfig(**doc["config"])
    ref = FixedGarNet(_sublayers_from_json(doc), cfg)
    vec = np.load(out / "test_vectors.npz")
    got, _ = ref.run_raw(vec["x_raw"], vec["n"])
    np.testing.assert_array_equal(got, vec["expected_raw"])
    X = ref.types["input_t"].to_float(vec["x_raw"])
    with torch.no_grad():
        ours = model.stack(torch.as_tensor(X), torch.as_tensor(vec["n"])).numpy()
    np.testing.assert_array_equal(ref.types["output_t"].to_float(got), ours)
    assert np.unique(got, axis=0).shape[0] > 100  # the events give different outputs
    hexrows = (out / "expected_outputs.txt").read_text().splitlines()
    vals = np.array([[float.fromhex(v) for v in r.split()] for r in hexrows])
    np.testing.assert_array_equal(vals, ours)


@pytest.mark.slow
def test_exported_header_compiles_and_agrees_with_the_export(exported, compile_cpp):
    """g++ builds the exported header with hls4ml's nnet_garnet.h; every output bit agrees."""
    _model, out = exported
    doc = json.loads((out / "model.json").read_text())
    ref = FixedGarNet(_sublayers_from_json(doc), GarNetFixedConfig(**doc["config"]))
    exe = compile_cpp(harness_source((("calo_garnet.h", None),)), extra_includes=(out,))
    vec = np.load(out / "test_vectors.npz")
    got, _ = run_harness(exe, ref, vec["x_raw"], vec["n"], out / "harness_run")
    np.testing.assert_array_equal(got, vec["expected_raw"])


def test_toy_vectors_by_default(trained, tmp_path):
    _, path = trained
    assert export_main([str(path), "--out", str(tmp_path), "--events", "7", "--seed", "3"]) == 0
    vec = np.load(tmp_path / "test_vectors.npz")
    assert vec["x_raw"].shape == (11, 16, 4) and vec["expected_raw"].shape == (11, 16)  # 4 edge + 7


@pytest.mark.parametrize(
    "kind,message",
    [
        ("missing", "does not exist"),
        ("garbage", "cannot read the checkpoint"),
        ("foreign", "not a calo checkpoint"),
        ("old_fpga", "calo-train --task e_pi"),
        ("version", "format 99 is not supported"),
        ("shapes", "weights do not fit"),
        ("nan", "NaN or infinite"),
    ],
)
def test_bad_checkpoints_print_one_line_and_exit_2(trained, tmp_path, capsys, kind, message):
    _model, run = trained
    good = run / "checkpoints" / "best.ckpt"
    bad = tmp_path / "bad.ckpt"
    if kind == "garbage":
        bad.write_bytes(b"not a checkpoint at all")
    elif kind == "foreign":
        torch.save({"w": torch.zeros(3)}, bad)
    elif kind == "old_fpga":  # the format of the former hand-written loop
        torch.save({"calo_fpga": {"format": 1}, "state_dict": {}}, bad)
    elif kind in ("version", "shapes", "nan"):
        ckpt = torch.load(good, weights_only=True)
        if kind == "version":
            ckpt["calo"]["format"] = 99
        elif kind == "shapes":
            ckpt["state_dict"]["model.head.0.weight"] = torch.zeros(3, 3)
        else:
            ckpt["state_dict"]["model.stack.layers.0.s_kernel"][0, 0] = float("nan")
        torch.save(ckpt, bad)
    rc = export_main([str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    if kind != "missing":
        with pytest.raises(CheckpointError):
            load_model(bad)


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "the following arguments are required: --out"),
        (["--out", "{tmp}", "--events", "0"], "--events must be at least 1"),
        (["--out", "{tmp}", "--name", "not-an-identifier"], "C++ identifier"),
    ],
)
def test_bad_arguments_exit_2(trained, tmp_path, capsys, args, message):
    _, path = trained
    argv = [str(path), *[a.format(tmp=tmp_path / "o") for a in args]]
    assert export_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_format_hls4ml_writes_the_whole_model_as_an_hls4ml_project(trained, tmp_path, capsys):
    """calo-export RUN --format hls4ml (the g++ build is tested in test_hls4ml_project.py)."""
    model, run = trained
    out = tmp_path / "prj"
    args = [str(run), "--format", "hls4ml", "--out", str(out), "--events", "5"]
    assert export_main([*args, "--data", str(SAMPLE), "--name", "epi"]) == 0
    assert "wrote the hls4ml project epi" in capsys.readouterr().out
    doc = json.loads((out / "calo_hls4ml.json").read_text())
    assert doc["trained_with_quantized_head"] and doc["bit_exact"] is None
    assert doc["outputs"] == ["regression", "classification"] and doc["events"] == 9
    assert (out / "firmware" / "epi.cpp").is_file() and (out / "build_lib.sh").is_file()
    saved = np.load(out / "calo_test_events.npz")
    with torch.no_grad():
        reg, logit = model.eval()(torch.as_tensor(saved["X"]), torch.as_tensor(saved["n"]))
    np.testing.assert_array_equal(saved["regression"], reg.numpy())
    np.testing.assert_array_equal(saved["classification"], logit.numpy())
