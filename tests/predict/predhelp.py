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
from calo.models import CondensationModel, build_model
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


def _write_checkpoint(out: Path, model: torch.nn.Module, cfg: TrainConfig, data: Path) -> None:
    """``out/checkpoints/last.ckpt`` in calo-train's format: ``model``'s weights, ``cfg`` and
    the normalisation fitted on the hits of ``data``."""
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


def make_run(
    out: Path, data: Path, name: str = "gravnet", calibration: bool = True, seed: int = 0
) -> Path:
    """A run folder in calo-train's layout with the seeded initial weights of ``name``."""
    cfg = apply_overrides(TrainConfig(), [f"model.name={name}", *TINY[name]])
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    _write_checkpoint(out, model, cfg, data)
    if calibration:
        # smaller share 0.2 in every bin of low sharpness: moves energy in most events
        table = np.array([[[0.2], [np.nan]]])
        cal = ShareCalibration(
            [[0.0, 0.5], [0.0, 0.5, 1.0], [0.0, 1e9]], table, 100, refine_iterations=2
        )
        cal.save(out / "share_calibration.json")
    return out


def make_condensation_run(
    out: Path,
    data: Path,
    name: str = "gravnet",
    position: bool = True,
    seed: int = 0,
    extra: tuple[str, ...] = (),
) -> Path:
    """A condensation run folder (``task=condensation``) in calo-train's layout with the seeded
    initial weights of a tiny ``name`` backbone and head (3-d clustering coordinates, the
    position payload with ``position``). The head's last layer is scaled by 30 (bias 0) so that
    beta spreads over (0, 1) and the coordinates over a few units: with t_beta=0.15, t_d=3 the
    initial weights give several clusters per event and some noise; CLUE's d_c=2 cm,
    rho_c=0.5 GeV give a few clusters on the two-shower events. ``extra``: more overrides."""
    cfg = apply_overrides(
        TrainConfig(),
        [
            "task=condensation",
            f"model.name={name}",
            *TINY[name],
            "model.condensation.hidden=[16]",
            "model.condensation.coord_dims=3",
            f"model.condensation.position={str(position).lower()}",
            "model.condensation.position_scale=2.0",
            "condensation.clustering.t_beta=0.15",
            "condensation.clustering.t_d=3.0",
            "condensation.clue.dc=2.0",
            "condensation.clue.rho_c=0.5",
            *extra,
        ],
    )
    torch.manual_seed(seed)
    model = CondensationModel(cfg.model)
    with torch.no_grad():
        model.head.net[-1].weight.mul_(30.0)
        model.head.net[-1].bias.zero_()
    _write_checkpoint(out, model, cfg, data)
    return out


def read_hits(path: Path) -> dict[str, ak.Array]:
    """The hit branches of a calo file as jagged arrays, keyed by field (``x``, ...)."""
    with uproot.open(path) as f:
        arr = f["events"].arrays([f"hit_{k}" for k in HIT_FIELDS])
    return {k: arr[f"hit_{k}"] for k in HIT_FIELDS}


def write_empty_hits(path: Path) -> Path:
    """A calo-layout hit file with no entries (float32 hit fields, int32 layer)."""
    empty = {k: ak.values_astype(ak.Array([[0.0]])[:0], np.float32) for k in
             ("x", "y", "z", "dx", "dy", "dz", "energy")}  # fmt: skip
    empty["layer"] = ak.values_astype(ak.Array([[0]])[:0], np.int32)
    return write_hits(path, empty)


def write_hits(path: Path, hits: dict[str, ak.Array], tree: str = "events") -> Path:
    """Write jagged hit arrays as a calo-layout tree (``hit_x``, ..., counter ``nhit``)."""
    rec = ak.zip(hits)
    with uproot.recreate(path) as f:
        f.mktree(tree, {"hit": rec.type})
        f[tree].extend({"hit": rec})
    return path
