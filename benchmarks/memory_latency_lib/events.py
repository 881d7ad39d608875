"""Input events of the benchmark: the toy calorimeter's two-shower events padded with noise
hits, or clouds of uniform features."""

from __future__ import annotations

import math
from typing import Any


def make_events(data: str, n: int, batch: int, features: int, seed: int) -> tuple[Any, Any]:
    """``x [batch * n, features]`` (float32) and the sorted event index of ``batch`` events."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    if data == "uniform":
        x = rng.random((batch * n, features), dtype=np.float32)
    else:
        x = _toy_features(n, batch, rng, seed)
        if features != x.shape[1]:  # layers: tile the 7 paper features to the layer's width
            x = np.tile(x, (1, math.ceil(features / x.shape[1])))[:, :features]
    b = torch.arange(batch).repeat_interleave(n)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), b


def _toy_features(n: int, batch: int, rng: Any, seed: int) -> Any:
    import numpy as np

    from calo.sim import SimConfig, generate_arrays, load_geometry

    cfg = SimConfig()
    geo = load_geometry(cfg.geometry)
    d = generate_arrays(cfg, batch, seed=seed)
    ends = np.cumsum(d["nhit"])
    rows = []
    for b in range(batch):
        lo, hi = ends[b] - d["nhit"][b], ends[b]
        cell, energy = d["cell_row"][lo:hi], d["energy"][lo:hi]
        if cell.size > n:  # keep the most energetic n hits
            keep = np.argsort(-energy, kind="stable")[:n]
            cell, energy = cell[keep], energy[keep]
        m = n - cell.size
        pad = rng.integers(0, geo.n_cells, m)
        jitter = rng.random((m, 3)) - 0.5
        xs = np.concatenate([geo.x[cell], geo.x[pad] + jitter[:, 0] * geo.dx[pad]])
        ys = np.concatenate([geo.y[cell], geo.y[pad] + jitter[:, 1] * geo.dy[pad]])
        zs = np.concatenate([geo.z[cell], geo.z[pad] + jitter[:, 2] * geo.dz[pad]])
        cells = np.concatenate([cell, pad])
        e = np.concatenate(
            [energy, cfg.noise.threshold + rng.exponential(cfg.noise.sigma / 3.0, m)]
        )
        rows.append(
            np.stack(
                [
                    xs,
                    ys,
                    zs,
                    np.sqrt(geo.dx[cells] * geo.dy[cells]),
                    geo.dz[cells],
                    np.log1p(e),
                    geo.layer[cells].astype(np.float64),
                ],
                axis=1,
            )
        )
    x = np.concatenate(rows)
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std > 0, std, 1.0)
