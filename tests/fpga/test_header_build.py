"""The exported header builds with exactly the README's g++ lines and gives the expected bits."""

from __future__ import annotations

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
    assert len(got) == 12 and len(got[0]) == 16
    assert got == want
