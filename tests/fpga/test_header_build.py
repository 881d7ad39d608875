"""The exported header builds with exactly the README's g++ lines and gives the expected bits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from calo.fpga.data import FPGAFeatures
from calo.fpga.export import hls_header_text
from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
from calo.fpga.model_export import export_qgarnet
from calo.fpga.qat import QGarNetModel, QGarNetStack

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_build_lines() -> str:
    """The README's bash block that holds the g++ line of the FPGA flow."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if "g++ " in b]
    assert len(found) == 1, "the README should show one g++ block"
    return found[0]


def test_header_includes_nnet_garnet_as_hls4ml_firmware_does():
    w = GarNetWeights.random(np.random.default_rng(0), 4, 4, 8, 8)
    text = hls_header_text(w, GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    assert '#include "nnet_utils/nnet_garnet.h"' in text
    assert '#include "nnet_garnet.h"' not in text
    lines = readme_build_lines()
    assert '-I"$HLS4ML/templates/vivado" -I"$HLS4ML/templates/vivado/ap_types"' in lines


@pytest.mark.slow  # a g++ -O2 build of nnet::garnet_stack: about a minute
def test_readme_g_plus_plus_lines_build_the_export_and_reproduce_its_bits(gxx, tmp_path):
    torch.manual_seed(0)
    stack = QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    export_qgarnet(QGarNetModel(stack), tmp_path / "e_pi_export", FPGAFeatures(), events=12)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        ["bash", "-e", "-c", readme_build_lines()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    got = [
        [float.fromhex(v) for v in ln.split()]
        for ln in (tmp_path / "bench_outputs.txt").read_text().splitlines()
    ]
    want = [
        [float.fromhex(v) for v in ln.split()]
        for ln in (tmp_path / "e_pi_export" / "expected_outputs.txt").read_text().splitlines()
    ]
    assert len(got) == 16 and len(got[0]) == 16  # 4 edge events (n = 0, 1, 4, 16) + 12
    assert got == want


def test_exported_vectors_start_with_0_1_v_over_r_and_v_hits(tmp_path):
    torch.manual_seed(0)
    stack = QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    res = export_qgarnet(QGarNetModel(stack), tmp_path, FPGAFeatures(), events=5, seed=2)
    vec = np.load(tmp_path / "test_vectors.npz")
    assert res["events"] == 9 and res["edge_events"] == [0, 1, 4, 16]
    assert vec["n"][:4].tolist() == [0, 1, 4, 16] and len(vec["n"]) == 9
    # an edge event's hits are real hits and its padding is zero
    assert (vec["x_raw"][1, 1:] == 0).all() and (vec["x_raw"][1, 0] != 0).any()
    assert (vec["x_raw"][0] == 0).all() and (vec["x_raw"][3] != 0).any(axis=1).sum() > 12
    # the reference's outputs for them are in the expected outputs
    exp = vec["expected_raw"]
    assert exp.shape == (9, 16)
    # an empty event: every aggregate is 0 and b_out n / V is 0, so the output is 0
    assert (exp[0] == 0).all() and not (exp[1] == 0).all()


def test_model_json_names_each_arrays_hls4ml_member_and_flattening(tmp_path):
    torch.manual_seed(1)
    stack = QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    export_qgarnet(QGarNetModel(stack), tmp_path, FPGAFeatures(), events=2)
    doc = json.loads((tmp_path / "model.json").read_text())
    header = (tmp_path / "calo_garnet.h").read_text()
    members = set()
    for li, sub in enumerate(doc["sublayers"]):
        dims = {"aggregator": sub["n_aggregators"], "in_feature": sub["n_in"]}
        dims["out_feature"] = sub["n_out"]
        for arr in sub["arrays"].values():
            member = arr["hls4ml_member"]
            members.add(member)
            assert arr["hls4ml_struct"] == f"config::sublayer_t<{li}>"
            assert arr["shape"] == [dims[a] for a in arr["axes"]]
            # the struct member is bound to the array the header writes, with these values
            var = f"{member}_{li}"
            assert f"(&{arr['hls4ml_struct']}::{member})[{len(arr['raw'])}] = {var};" in header
            m = re.search(rf"{var}\[(\d+)\] = \{{([^}}]*)\}}", header)
            assert int(m.group(1)) == len(arr["values"])
            assert [float(v) for v in m.group(2).split(",")] == arr["values"]
            # the flat index of nnet_garnet.h is the row-major index over the axes
            names = {"out_feature": "io", "aggregator": "ia", "in_feature": "ix"}
            idx = np.indices(arr["shape"]).reshape(len(arr["shape"]), -1)
            env = {"n_aggregators": dims["aggregator"], "n_in_features": dims["in_feature"]}
            env.update({names[a]: idx[i] for i, a in enumerate(arr["axes"])})
            flat = eval(arr["flat_index"], {}, env)  # our own formula
            np.testing.assert_array_equal(flat, np.arange(len(arr["raw"])))
    assert members == {
        "input_transform_weights",
        "input_transform_biases",
        "aggregator_distance_weights",
        "aggregator_distance_biases",
        "output_transform_biases",
    }
    assert doc["test_vectors"] == {"events": 6, "sample_events": 2, "edge_events": [0, 1, 4, 16]}
    assert doc["hls4ml"]["includes"] == "nnet_utils/nnet_garnet.h"


def test_per_hit_export_of_a_stack_is_an_error_that_says_why(tmp_path):
    from calo.errors import ConfigError

    stack = QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    with pytest.raises(ConfigError, match=r"garnet_stack without collapse .* does not compile"):
        export_qgarnet(QGarNetModel(stack), tmp_path, FPGAFeatures(), events=2, per_hit=True)
    assert not (tmp_path / "model.json").exists()
