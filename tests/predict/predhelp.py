"""Run folders and input files shared by the calo-predict tests (imported by name: a test
module that imported ``conftest`` could get another folder's conftest under pytest-xdist).

The fast tests use run folders in calo-train's layout (``checkpoints/last.ckpt`` with the
``"calo"`` entry, ``share_calibration.json``) whose models keep their seeded initial
weights: what calo-predict computes does not depend on training. One slow test trains a real
run with ``calo-train``.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import torch
import uproot

import calo
from calo.config import apply_overrides, to_dict
from calo.io import FeatureSpec, Normalization, read_data
from calo.models import build_model
from calo.reco import ShareCalibration
from calo.train.checkpoint import CHECKPOINT_FORMAT
from calo.train.config import TrainConfig

#: overrides of a tiny model per architecture
TINY = {
    "gravnet": [
        "model.gravnet.n_blocks=1",
        "model.gravnet.dense=[16]",
        "model.gravnet.k=8",
        "model.gravnet.out_channels=16",
        "model.gravnet.head=16",
    ],
    "garnet": ["model.garnet.n_blocks=2", "model.garnet.head=16"],
    "edgeconv": ["model.edgeconv.n_blocks=1", "model.edgeconv.k=8", "model.edgeconv.head=16"],
}

#: the hit branches a calo file needs for prediction (no truth, no particles)
HIT_FIELDS = ("x", "y", "z", "dx", "dy", "dz", "layer", "energy")


def make_run(
    out: Path, data: Path, name: str = "gravnet", calibration: bool = True, seed: int = 0
) -> Path:
    """A run folder in calo-train's layout with the seeded initial weights of ``name``."""
    cfg = apply_overrides(TrainConfig(), [f"model.name={name}", *TINY[name]])
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    events, _ = read_data(data, require_truth=False)
    norm = Normalization.fit(torch.cat([d.x for d in events]), FeatureSpec().names)
    ckpt = {
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "calo": {
            "format": CHECKPOINT_FORMAT,
            "version": calo.__version__,
            "config": to_dict(cfg),
            "normalization": norm.to_dict(),
            "history": {},
        },
    }
    (out / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, out / "checkpoints" / "last.ckpt")
    if calibration:
        # smaller share 0.2 in every bin of low sharpness: moves energy in most events
        table = np.array([[[0.2], [np.nan]]])
        cal = ShareCalibration(
            [[0.0, 0.5], [0.0, 0.5, 1.0], [0.0, 1e9]], table, 100, refine_iterations=2
        )
        cal.save(out / "share_calibration.json")
    return out


def read_hits(path: Path) -> dict[str, ak.Array]:
    """The hit branches of a calo file as jagged arrays, keyed by field (``x``, ...)."""
    with uproot.open(path) as f:
        arr = f["events"].arrays([f"hit_{k}" for k in HIT_FIELDS])
    return {k: arr[f"hit_{k}"] for k in HIT_FIELDS}


def write_hits(path: Path, hits: dict[str, ak.Array], tree: str = "events") -> Path:
    """Write jagged hit arrays as a calo-layout tree (``hit_x``, ..., counter ``nhit``)."""
    rec = ak.zip(hits)
    with uproot.recreate(path) as f:
        f.mktree(tree, {"hit": rec.type})
        f[tree].extend({"hit": rec})
    return path
