"""Classical energy sharing without learning: seeds plus a transverse shower profile.

For an event with hits at positions :math:`(x_i, y_i, z_i)` and energies :math:`E_i`, and a known
number of showers M (the number of truth showers with signal; the network is likewise told K):

1. **Seeds.** The first seed is the most energetic hit; each further seed is the most energetic
   hit farther than ``min_seed_distance`` (transverse) from every earlier seed (if none is, the
   hit maximising :math:`E_i \\cdot \\min_s d_{is}`).
2. **Profile.** Each shower m has an axis :math:`c_m(z) = a_m + b_m (z - \\bar z)` in x-y and an
   amplitude :math:`A_m`. Its expected transverse energy density at distance r from the axis is
   the core term of the Grindhammer-Peters profile (REFERENCE.md section 3), normalised over
   the plane: :math:`f(r) = R^2 / (\\pi (r^2 + R^2)^2)`, R = ``radius``.
3. **Sharing.** :math:`p_{im} = A_m f(r_{im}) / \\sum_n A_n f(r_{in})`.
4. **Update** (expectation-maximisation, as in classical particle-flow clustering):
   :math:`A_m = \\sum_i p_{im} E_i`; the axis is the weighted least-squares line through the
   hits with weights :math:`p_{im} E_i` (slope damped by ``slope_damping`` and set to zero when
   the shower covers fewer than two depths). Steps 3-4 are repeated ``iterations`` times.

The result is a fraction matrix ``[N, K]`` with columns ``0..M-1`` filled, compared with the
truth by the same permutation-invariant metrics as the networks.

Examples
--------
>>> import numpy as np
>>> pos = np.array([[0.0, 0, 0], [0.5, 0, 0], [10, 0, 0], [10.5, 0, 0]])
>>> e = np.array([10.0, 2.0, 8.0, 1.0])
>>> p = share_energy(pos, e, n_showers=2)
>>> np.round(p[:, 0], 2).tolist()
[1.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["BaselineConfig", "baseline_fractions", "find_seeds", "share_energy"]


@dataclass
class BaselineConfig:
    """Parameters of the classical baseline.

    Attributes
    ----------
    radius:
        Core radius R (cm) of the transverse profile.
    min_seed_distance:
        Minimum transverse distance (cm) between seeds.
    iterations:
        Number of sharing/update iterations.
    slope_damping:
        Ridge term (cm^2 of depth spread) that damps the fitted axis slope.

    Examples
    --------
    >>> BaselineConfig(radius=2.0).radius
    2.0
    """

    radius: float = 1.0
    min_seed_distance: float = 1.5
    iterations: int = 10
    slope_damping: float = 25.0

    def __post_init__(self) -> None:
        from calo.errors import ConfigError

        if not self.radius > 0:
            raise ConfigError(f"baseline.radius must be > 0, got {self.radius}")
        if self.min_seed_distance < 0:
            raise ConfigError(
                f"baseline.min_seed_distance must be >= 0, got {self.min_seed_distance}"
            )
        if self.iterations < 0:
            raise ConfigError(f"baseline.iterations must be >= 0, got {self.iterations}")
        if self.slope_damping < 0:
            raise ConfigError(f"baseline.slope_damping must be >= 0, got {self.slope_damping}")


def find_seeds(xy: np.ndarray, energy: np.ndarray, n_seeds: int, min_distance: float) -> np.ndarray:
    """Indices of ``n_seeds`` seed hits (see the module docstring, step 1).

    Examples
    --------
    >>> xy = np.array([[0.0, 0], [1, 0], [9, 0]]); e = np.array([5.0, 4, 3])
    >>> find_seeds(xy, e, 2, 3.0).tolist()
    [0, 2]
    """
    order = np.argsort(-energy, kind="stable")
    seeds = [int(order[0])]
    while len(seeds) < n_seeds:
        d = np.min(np.linalg.norm(xy[:, None, :] - xy[seeds][None, :, :], axis=2), axis=1)
        far = order[d[order] > min_distance]
        if far.size:
            seeds.append(int(far[0]))
        else:
            score = energy * d
            score[seeds] = -np.inf
            seeds.append(int(np.argmax(score)))
    return np.asarray(seeds, dtype=np.int64)


def _fit_axis(xy: np.ndarray, dz: np.ndarray, w: np.ndarray, damping: float) -> np.ndarray:
    """Weighted least-squares line xy = a + b dz; returns [[a_x, a_y], [b_x, b_y]]."""
    sw = w.sum()
    if sw <= 0:
        return np.zeros((2, 2))
    mz = (w * dz).sum() / sw
    mxy = (w[:, None] * xy).sum(axis=0) / sw
    vz = (w * (dz - mz) ** 2).sum() / sw
    cov = (w[:, None] * (dz - mz)[:, None] * (xy - mxy)).sum(axis=0) / sw
    b = cov / (vz + damping) if vz > 1e-9 else np.zeros(2)
    a = mxy - b * mz
    return np.stack([a, b])


def share_energy(
    pos: np.ndarray,
    energy: np.ndarray,
    n_showers: int,
    config: BaselineConfig | None = None,
    n_columns: int | None = None,
) -> np.ndarray:
    """Energy fractions ``[N, n_columns]`` of one event by the classical algorithm.

    Parameters
    ----------
    pos:
        ``[N, 3]`` hit positions (cm).
    energy:
        ``[N]`` hit energies (GeV).
    n_showers:
        Number of showers M to find (>= 1).
    config:
        :class:`BaselineConfig` (defaults when ``None``).
    n_columns:
        Number of output columns K >= M (default M); columns M.. are zero.

    Examples
    --------
    >>> share_energy(np.zeros((1, 3)), np.ones(1), 1).tolist()
    [[1.0]]
    """
    cfg = config or BaselineConfig()
    pos = np.asarray(pos, dtype=np.float64)
    e = np.clip(np.asarray(energy, dtype=np.float64), 0.0, None)
    n = pos.shape[0]
    k_out = n_columns if n_columns is not None else n_showers
    out = np.zeros((n, k_out))
    if n == 0 or n_showers <= 0:
        return out
    m = min(n_showers, n)
    if m == 1:
        out[:, 0] = 1.0
        return out
    xy, z = pos[:, :2], pos[:, 2]
    ew = e if e.sum() > 0 else np.ones(n)
    zbar = (ew * z).sum() / ew.sum()
    dz = z - zbar
    seeds = find_seeds(xy, ew, m, cfg.min_seed_distance)
    axes = np.zeros((m, 2, 2))
    axes[:, 0, :] = xy[seeds]
    amp = ew[seeds].copy()
    r2c = cfg.radius**2

    def fractions() -> np.ndarray:
        centre = axes[:, 0, None, :] + axes[:, 1, None, :] * dz[None, :, None]  # [M, N, 2]
        r2 = ((xy[None] - centre) ** 2).sum(axis=2)  # [M, N]
        dens = amp[:, None] * r2c / (np.pi * (r2 + r2c) ** 2)
        tot = dens.sum(axis=0)
        frac = np.where(tot > 0, dens / np.where(tot > 0, tot, 1.0), 1.0 / m)
        return frac.T  # [N, M]

    frac = fractions()
    for _ in range(cfg.iterations):
        w = frac * ew[:, None]
        amp = np.maximum(w.sum(axis=0), 1e-12)
        for j in range(m):
            axes[j] = _fit_axis(xy, dz, w[:, j], cfg.slope_damping)
        frac = fractions()
    out[:, :m] = frac
    return out


def baseline_fractions(data: object, config: BaselineConfig | None = None) -> Tensor:
    """Baseline fractions ``[N, K]`` for a (batched) torch_geometric ``Data``.

    Uses ``pos``, ``energy``, ``y`` (only to count the showers with signal per event; the
    network's K is likewise fixed) and ``batch``.

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> d = Data(pos=torch.tensor([[0.0, 0, 0], [10, 0, 0]]), energy=torch.tensor([5.0, 4.0]),
    ...          y=torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> baseline_fractions(d).round(decimals=2).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    pos = data.pos.detach().cpu().numpy()
    energy = data.energy.detach().cpu().numpy()
    y = data.y.detach().cpu().numpy()
    batch = getattr(data, "batch", None)
    b = np.zeros(pos.shape[0], dtype=np.int64) if batch is None else batch.cpu().numpy()
    k = y.shape[1]
    out = np.zeros((pos.shape[0], k), dtype=np.float32)
    if pos.shape[0] == 0:
        return torch.from_numpy(out)
    bounds = np.flatnonzero(np.diff(b)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [b.size]])
    if not np.all(np.diff(b) >= 0):
        raise ValueError("baseline_fractions needs hits grouped by event (sorted batch vector)")
    for s, t in zip(starts, stops, strict=True):
        ns = int(((y[s:t] * energy[s:t, None]) > 0).any(axis=0).sum())
        out[s:t] = share_energy(pos[s:t], energy[s:t], max(ns, 1), config, n_columns=k)
    return torch.from_numpy(out).to(data.y.device)
