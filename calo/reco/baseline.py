"""Classical energy sharing without learning: seeds plus a transverse shower profile.

For an event with hits at positions :math:`(x_i, y_i, z_i)` and energies :math:`E_i`, and a known
number of showers M (the number of truth showers with signal; the network is likewise told K):

1. **Seeds.** The first seed is the most energetic hit; each further seed is the most energetic
   hit farther than ``min_seed_distance`` (transverse) from every earlier seed (if none is, the
   hit maximising :math:`E_i \\cdot \\min_s d_{is}`).
2. **Profile.** Each shower m has an axis :math:`c_m(z) = a_m + b_m (z - \\bar z)` in x-y and an
   amplitude :math:`A_m`. Its expected transverse energy density at distance r from the axis is
   the core term of the Grindhammer-Peters profile (docs/reconstruction.md), normalised over
   the plane: :math:`f(r) = R^2 / (\\pi (r^2 + R^2)^2)`, R = ``radius``.
3. **Sharing.** :math:`p_{im} = A_m f(r_{im}) / \\sum_n A_n f(r_{in})`.
4. **Update** (expectation-maximisation, as in classical particle-flow clustering):
   :math:`A_m = \\sum_i p_{im} E_i`; the axis is the weighted least-squares line through the
   hits with weights :math:`p_{im} E_i` (slope damped by ``slope_damping`` and set to zero when
   the shower covers fewer than two depths). Steps 3-4 are repeated ``iterations`` times.

The result is a fraction matrix ``[N, K]`` with columns ``0..M-1`` filled, compared with the
truth by the same permutation-invariant metrics as the networks.

:func:`refine_fractions` (:func:`profile_refine` for a batch) runs steps 4 and 3 from a
network's fractions instead of the seeds: the profile refinement that calo-train applies
before the share calibration (:mod:`calo.reco.calibration`).

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

import numpy as np
import torch
from torch import Tensor

from calo.errors import ConfigError, DataError
from calo.reco.config import BaselineConfig

__all__ = [
    "baseline_fractions",
    "find_seeds",
    "profile_refine",
    "refine_fractions",
    "share_energy",
]


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
        :class:`~calo.reco.config.BaselineConfig` (defaults when ``None``).
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
    xy, ew, dz = _event_geometry(pos, e)
    seeds = find_seeds(xy, ew, m, cfg.min_seed_distance)
    axes = np.zeros((m, 2, 2))
    axes[:, 0, :] = xy[seeds]
    out[:, :m] = _expectation_maximisation(
        xy, dz, ew, _profile_fractions(xy, dz, axes, ew[seeds], cfg.radius), cfg, cfg.iterations
    )
    return out


def _event_geometry(pos: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transverse positions, the energy weights (uniform for an event without energy) and the
    depth relative to the energy-weighted mean depth."""
    xy, z = pos[:, :2], pos[:, 2]
    ew = e if e.sum() > 0 else np.ones(pos.shape[0])
    return xy, ew, z - (ew * z).sum() / ew.sum()


def _profile_fractions(
    xy: np.ndarray, dz: np.ndarray, axes: np.ndarray, amp: np.ndarray, radius: float
) -> np.ndarray:
    """Step 3: fractions ``[N, M]`` of showers with ``axes [M, 2, 2]`` and amplitudes ``[M]``."""
    r2c = radius**2
    centre = axes[:, 0, None, :] + axes[:, 1, None, :] * dz[None, :, None]  # [M, N, 2]
    r2 = ((xy[None] - centre) ** 2).sum(axis=2)  # [M, N]
    dens = amp[:, None] * r2c / (np.pi * (r2 + r2c) ** 2)
    tot = dens.sum(axis=0)
    frac = np.where(tot > 0, dens / np.where(tot > 0, tot, 1.0), 1.0 / len(amp))
    return frac.T


def _expectation_maximisation(
    xy: np.ndarray,
    dz: np.ndarray,
    ew: np.ndarray,
    frac: np.ndarray,
    cfg: BaselineConfig,
    iterations: int,
) -> np.ndarray:
    """Steps 4 and 3, ``iterations`` times, from the fractions ``frac [N, M]``."""
    m = frac.shape[1]
    axes = np.zeros((m, 2, 2))
    for _ in range(iterations):
        w = frac * ew[:, None]
        amp = np.maximum(w.sum(axis=0), 1e-12)
        for j in range(m):
            axes[j] = _fit_axis(xy, dz, w[:, j], cfg.slope_damping)
        frac = _profile_fractions(xy, dz, axes, amp, cfg.radius)
    return frac


def refine_fractions(
    pos: np.ndarray,
    energy: np.ndarray,
    fractions: np.ndarray,
    config: BaselineConfig | None = None,
    iterations: int = 1,
) -> np.ndarray:
    """Profile refinement of one event's fractions ``[N, M]`` (of a network, for example).

    The sharing of the baseline with the network's split in place of the seeds: each
    shower's amplitude and axis come from the given fractions (step 4), the hits are then
    shared by the profile (step 3), ``iterations`` times, among the columns that carry
    energy; the other columns are set to zero. With fewer than two columns carrying energy
    there is nothing to share and the fractions come back unchanged.

    Examples
    --------
    Two showers 10 cm apart with a split that gives one hit of each to the other shower:

    >>> pos = np.array([[0.0, 0, 0], [0.5, 0, 0], [10, 0, 0], [10.5, 0, 0]])
    >>> e = np.array([10.0, 2.0, 8.0, 1.0])
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.7, 0.3]])
    >>> np.round(refine_fractions(pos, e, p, iterations=3)[:, 0], 2).tolist()
    [1.0, 1.0, 0.0, 0.0]
    """
    cfg = config or BaselineConfig()
    pos = np.asarray(pos, dtype=np.float64)
    e = np.clip(np.asarray(energy, dtype=np.float64), 0.0, None)
    frac = np.asarray(fractions, dtype=np.float64)
    if frac.ndim != 2 or frac.shape[0] != pos.shape[0] or pos.shape[1:] != (3,):
        raise DataError(
            f"refine_fractions needs pos [N, 3] and fractions [N, M]; got {pos.shape} and "
            f"{frac.shape}"
        )
    if iterations < 0:
        raise ConfigError(f"iterations must be >= 0, got {iterations}")
    out = frac.copy()
    if pos.shape[0] == 0 or iterations == 0:
        return out
    xy, ew, dz = _event_geometry(pos, e)
    active = (frac * ew[:, None]).sum(axis=0) > 0  # a column without energy has no shower
    if active.sum() >= 2:
        out[:, active] = _expectation_maximisation(xy, dz, ew, frac[:, active], cfg, iterations)
        out[:, ~active] = 0.0
    return out


def _event_slices(b: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each event's hits in a sorted batch vector ``b``."""
    if not np.all(np.diff(b) >= 0):
        raise DataError("the hits must be grouped by event (sorted batch vector)")
    bounds = np.flatnonzero(np.diff(b)) + 1
    starts = np.concatenate([[0], bounds]).astype(int)
    stops = np.concatenate([bounds, [b.size]]).astype(int)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def profile_refine(
    fractions: Tensor,
    pos: Tensor,
    energy: Tensor,
    batch: Tensor | None = None,
    config: BaselineConfig | None = None,
    iterations: int = 1,
) -> Tensor:
    """:func:`refine_fractions` for every event of a batch: ``[N, K]`` fractions, hit
    positions ``[N, 3]``, energies ``[N]`` and the sorted event index ``[N]``. The result has
    the dtype and device of ``fractions`` and no gradient (a post-processing step, in numpy).

    Examples
    --------
    >>> pos = torch.tensor([[0.0, 0, 0], [10, 0, 0], [0, 0, 0], [10, 0, 0]])
    >>> p = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.5, 0.5], [0.5, 0.5]])
    >>> q = profile_refine(p, pos, torch.ones(4), torch.tensor([0, 0, 1, 1]), iterations=3)
    >>> q[:2].round(decimals=2).tolist(), q[2:].tolist()  # an even split stays even
    ([[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]])
    """
    p = fractions.detach().cpu().double().numpy()
    x = pos.detach().cpu().double().numpy()
    e = energy.detach().cpu().double().numpy()
    b = np.zeros(x.shape[0], dtype=np.int64) if batch is None else batch.cpu().numpy()
    if not (p.shape[0] == x.shape[0] == e.shape[0] == b.shape[0]) or x.shape[1:] != (3,):
        raise DataError(
            f"profile_refine needs fractions [N, K], pos [N, 3], energy [N] and batch [N]; got "
            f"{p.shape}, {x.shape}, {e.shape} and {b.shape}"
        )
    out = p.copy()
    for s, t in _event_slices(b):  # no hits: one empty slice
        out[s:t] = refine_fractions(x[s:t], e[s:t], p[s:t], config, iterations)
    return torch.from_numpy(out).to(fractions.dtype).to(fractions.device)


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
    for s, t in _event_slices(b):
        ns = int(((y[s:t] * energy[s:t, None]) > 0).any(axis=0).sum())
        out[s:t] = share_energy(pos[s:t], energy[s:t], max(ns, 1), config, n_columns=k)
    return torch.from_numpy(out).to(data.y.device)
