"""Pruned weights in the export and in the DSP estimate: a model whose weights are set to
exact zeros by torch's magnitude pruning exports, compiles and agrees bit for bit; the DSP
estimate leaves out exactly the multiplications by zero weights (hand counts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from calo.errors import ConfigError
from calo.fpga.data import FPGAFeatures
from calo.fpga.fixed import parse_type
from calo.fpga.garnet import GarNetFixedConfig, QuantizedSublayer
from calo.fpga.harness import harness_source, run_harness
from calo.fpga.latency import estimate_latency, pruned_dsp
from calo.fpga.model_export import export_qgarnet
from calo.fpga.qat import QGarNetModel, QGarNetStack
from calo.fpga.reference import FixedGarNet

CFG = GarNetFixedConfig(n_vertices=16, reuse_factor=4)


def _pruned_model(amount: float, seed: int = 3) -> QGarNetModel:
    """A random paper-sized model (V 16, R 4) with every kernel and head weight pruned to
    ``amount`` by torch's l1_unstructured, made permanent."""
    torch.manual_seed(seed)
    model = QGarNetModel(QGarNetStack(config=CFG))
    with torch.no_grad():  # biases away from zero so that w_in/b_in carry them
        for layer in model.stack.layers:
            for name in ("flr_bias", "s_bias", "fout_bias"):
                getattr(layer, name).uniform_(-0.5, 0.5)
    pairs = [(layer, n) for layer in model.stack.layers for n in ("s_kernel", "flr_kernel",
             "fout_kernel")]  # fmt: skip
    pairs += [(m, "weight") for m in (*model.head[::2], model.regression, model.classification)]
    for module, name in pairs:
        prune.l1_unstructured(module, name, amount=amount)
        prune.remove(module, name)
    return model.eval()


def _sublayers_from_json(doc: dict) -> list[QuantizedSublayer]:
    subs = []
    for s in doc["sublayers"]:
        arrays, types = {}, {}
        for key, entry in s["arrays"].items():
            arrays[key] = np.array(entry["raw"], dtype=np.int64).reshape(entry["shape"])
            types[key] = parse_type(entry["type"])
            assert entry["zeros"] == int((arrays[key] == 0).sum())
        subs.append(QuantizedSublayer(types=types, n_propagate=s["n_propagate"], **arrays))
    return subs


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[QGarNetModel, object]:
    model = _pruned_model(0.8)
    out = tmp_path_factory.mktemp("pruned_export")
    export_qgarnet(model, out, FPGAFeatures(), events=60, seed=2)
    return model, out


@pytest.mark.slow  # the export runs the numba reference: its first compilation takes a minute
def test_pruned_weights_are_exact_zeros_in_the_export(exported) -> None:
    model, out = exported
    doc = json.loads((out / "model.json").read_text())
    npz = np.load(out / "model.npz")
    # the distance kernel is the pruned s_kernel transposed: its zeros reach the firmware
    for li, layer in enumerate(model.stack.layers):
        s_zero = (layer.s_kernel.detach().numpy() == 0).T
        assert s_zero.mean() == pytest.approx(0.8, abs=0.02)
        np.testing.assert_array_equal(npz[f"L{li}_w_d_raw"][s_zero], 0)
        assert doc["sublayers"][li]["arrays"]["w_d"]["zeros"] >= int(s_zero.sum())
    np.testing.assert_array_equal(
        npz["head_0_weight"] == 0, model.head[0].weight.detach().numpy() == 0
    )
    assert (npz["head_0_weight"] == 0).sum() == round(0.8 * 256)
    # model.json's DSP estimate is pruned_dsp of the exported arrays
    subs = _sublayers_from_json(doc)
    heads = [npz[f"head_{i}_weight"] for i in range(4)]
    c = pruned_dsp(subs, 16, 4, quantized=False, head_weights=heads)
    assert doc["dsp_estimate"]["dsp"] == c.dsp < doc["dsp_estimate"]["dense"] == 3280


@pytest.mark.slow
def test_pruned_export_agrees_with_the_torch_model_bit_for_bit(exported) -> None:
    model, out = exported
    doc = json.loads((out / "model.json").read_text())
    ref = FixedGarNet(_sublayers_from_json(doc), GarNetFixedConfig(**doc["config"]))
    vec = np.load(out / "test_vectors.npz")
    got, _ = ref.run_raw(vec["x_raw"], vec["n"])
    np.testing.assert_array_equal(got, vec["expected_raw"])
    X = ref.types["input_t"].to_float(vec["x_raw"])
    with torch.no_grad():
        ours = model.stack(torch.as_tensor(X), torch.as_tensor(vec["n"])).numpy()
    np.testing.assert_array_equal(ref.types["output_t"].to_float(got), ours)
    assert np.unique(got, axis=0).shape[0] > 30  # pruned, the events still differ


@pytest.mark.slow
def test_pruned_header_compiles_and_agrees_bit_for_bit(exported, compile_cpp) -> None:
    """g++ builds the pruned model's header with hls4ml's nnet_garnet.h; every output bit
    equals the reference's."""
    _model, out = exported
    doc = json.loads((out / "model.json").read_text())
    ref = FixedGarNet(_sublayers_from_json(doc), GarNetFixedConfig(**doc["config"]))
    exe = compile_cpp(harness_source((("calo_garnet.h", None),)), extra_includes=(out,))
    vec = np.load(out / "test_vectors.npz")
    got, _ = run_harness(exe, ref, vec["x_raw"], vec["n"], out / "harness_run")
    np.testing.assert_array_equal(got, vec["expected_raw"])


def test_dsp_estimate_against_a_hand_count() -> None:
    """One sublayer (A 2, F_in 3, F_LR 2, F_out 2), V 16, R 4 (U = 4 hits per step).

    Dense count: distance U*A*F_in = 24, edge U*A*F_in = 24, output_base
    F_out*A*(F_in+1) = 16 (12 w_in + 4 b_in), collapse F_out*A = 4: 68 (estimate_latency's).
    Zero 3 of the 6 distance weights (-3 U = -12) and the F_out kernel's first output column,
    so that output 0 of the contracted input transform vanishes: 6 of the 12 w_in entries and
    2 of the 4 b_in entries (-8): 48.
    """
    torch.manual_seed(0)
    stack = QGarNetStack(n_in=3, sublayers=((2, 2, 2),), config=CFG)
    with torch.no_grad():
        stack.layers[0].flr_bias.fill_(0.25)
        dense = pruned_dsp(stack.quantized_sublayers(), 16, 4, quantized=False)
        assert dense.dsp == dense.dense == 68
        assert dense.dense == estimate_latency(16, 4, ((3, 2, 2),), quantized=False).dsp
        stack.layers[0].s_kernel[:, 0] = 0.0  # 3 of the 6 distance weights
        stack.layers[0].fout_kernel[:, 0] = 0.0  # output 0 of the input transform
    c = pruned_dsp(stack.quantized_sublayers(), 16, 4, quantized=False)
    assert c.terms == {"distance": 12, "edge": 24, "output_base": 8, "collapse": 4, "head": 0}
    assert (c.dsp, c.dense, c.saved, c.zero_weights, c.weights) == (48, 68, 20, 11, 22)
    # ternary transform kernels cost no DSP; the distance kernel still does
    q = pruned_dsp(stack.quantized_sublayers(), 16, 4, quantized=True)
    assert q.terms["output_base"] == 0 and q.dsp == 12 + 24 + 4


def test_head_dsp_follows_hls4ml_multiplier_limit() -> None:
    """hls4ml's Dense: ceil(n_in n_out / R) - n_zeros // R multipliers per layer."""
    stack = QGarNetStack(n_in=3, sublayers=((2, 2, 2),), config=CFG)
    subs = stack.quantized_sublayers()
    w = np.ones((16, 2))  # 32 weights
    w.ravel()[:13] = 0.0  # 13 zeros
    base = pruned_dsp(subs, 16, 4, quantized=True).dsp
    assert pruned_dsp(subs, 16, 4, True, [w]).dsp - base == 19
    assert pruned_dsp(subs, 16, 4, True, [w], head_reuse_factor=4).dsp - base == 8 - 3
    assert pruned_dsp(subs, 16, 4, True, [np.ones((16, 2))]).terms["head"] == 32


def test_dsp_drops_with_sparsity() -> None:
    counts = [
        pruned_dsp(
            (m := _pruned_model(s)).stack.quantized_sublayers(),
            16,
            4,
            quantized=False,
            head_weights=[x.weight.detach().numpy() for x in (*m.head[::2], m.regression)],
        )
        for s in (0.0, 0.5, 0.75, 0.9)
    ]
    dsp = [c.dsp for c in counts]
    assert dsp == sorted(dsp, reverse=True) and len(set(dsp)) == 4
    assert {c.dense for c in counts} == {3272}  # 2880 stack + 392 head (no classification)
    # the distance term is U = 4 times the nonzero distance weights (s_kernel, transposed)
    for s, c in zip((0.0, 0.5, 0.75, 0.9), counts, strict=True):
        nonzero = sum(int((ly.s_kernel != 0).sum()) for ly in _pruned_model(s).stack.layers)
        assert c.terms["distance"] == 4 * nonzero
    assert [c.terms["distance"] for c in counts[:3]] == [448, 224, 112]


def test_pruned_dsp_rejects_bad_sizes() -> None:
    subs = QGarNetStack(n_in=3, sublayers=((2, 2, 2),), config=CFG).quantized_sublayers()
    with pytest.raises(ConfigError, match="divide"):
        pruned_dsp(subs, 16, 5, quantized=False)
    with pytest.raises(ConfigError, match="sublayer"):
        pruned_dsp([], 16, 4, quantized=False)
    with pytest.raises(ConfigError, match="head reuse"):
        pruned_dsp(subs, 16, 4, quantized=False, head_reuse_factor=0)
