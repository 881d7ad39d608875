"""calo-train's step that fits the share calibration (:func:`calo.train.run._fit_calibration`)."""

from __future__ import annotations

from pathlib import Path

import torch

from calo.train.config import TrainConfig
from calo.train.run import _fit_calibration


def test_calo_train_skips_the_calibration_for_other_than_two_showers(tmp_path: Path) -> None:
    cfg = TrainConfig()
    cfg.model.n_showers = 3
    cal, info = _fit_calibration(torch.nn.Identity(), [], cfg, tmp_path, "cpu")
    assert cal is None and not info["fitted"] and "two-shower" in info["reason"]
    cfg = TrainConfig()
    cfg.calibration.enabled = False
    assert _fit_calibration(torch.nn.Identity(), [], cfg, tmp_path, "cpu")[0] is None
    assert not list(tmp_path.iterdir())
