"""A small simulated two-shower ROOT file and an untrained run folder shared by the training
tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 simulated two-shower events (seeded)."""
    from calo.sim import SimConfig
    from calo.sim.writer import write_root

    path = tmp_path_factory.mktemp("train_data") / "small.root"
    write_root(path, config=SimConfig(), n_events=80, seed=11, progress=False, write_config=False)
    return path


@pytest.fixture
def run_folder(tmp_path: Path) -> Path:
    """A run folder with config.yaml and an (untrained) calo checkpoint, as calo-train writes."""
    import torch
    from trainhelp import TINY_GRAVNET

    from calo.config import apply_overrides, save_yaml, to_dict
    from calo.io import FeatureSpec, Normalization
    from calo.train.config import TrainConfig
    from calo.train.module import FractionModule

    cfg = apply_overrides(TrainConfig(), TINY_GRAVNET)
    cfg.model.in_features, cfg.model.n_showers = 7, 2
    norm = Normalization.identity(FeatureSpec().names).to_dict()
    module = FractionModule(to_dict(cfg), norm)
    ckpt: dict = {"state_dict": module.state_dict(), "global_step": 0}
    module.on_save_checkpoint(ckpt)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save(ckpt, run / "checkpoints" / "last.ckpt")
    save_yaml(cfg, run / "config.yaml")
    return run
