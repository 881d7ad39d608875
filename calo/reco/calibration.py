"""Share calibration: the energy split of two showers a network cannot tell apart, fitted on
training events and applied without truth.

Trained with a permutation-invariant loss, a network splits two showers that lie on top of
each other about evenly (``benchmarks/overlap_study.py``): where it cannot see which shower is
which, no output column can learn to take the larger share, and the smaller shower gets far
too much energy. What the network does not know per event can still be learned over many
events: given how the network split an event, how much the smaller shower really carries.

Per two-shower event, from the model's fractions ``p [N, 2]`` and the hit energies ``E_i``
(clipped at 0; no truth):

* ``s``: the share of the event's energy that the smaller output column takes,
  :math:`\\min_c \\sum_i p_{ic} E_i / \\sum_i E_i` (0 to 0.5);
* ``h``: the sharpness of the split, :math:`\\sum_i |p_{i0} - p_{i1}| E_i / \\sum_i E_i`
  (1 for a crisp split, 0 when every hit is split evenly);
* ``E``: the event's energy :math:`\\sum_i E_i` in GeV (with two showers drawn independently,
  the smaller one's share depends on the sum: two showers near the lowest or highest energy
  have similar energies).

:func:`fit_share_calibration` bins the training events in ``s`` (uniform bins on [0, 0.5]),
``h`` and ``E`` (quantiles of the training events) and, in each bin with at least
``min_events`` events, picks from a grid the share ``c`` that minimises the mean squared
response error of both showers,

.. math::

    \\epsilon(c, \\tau) = \\min\\Big[\\big(\\tfrac{c}{\\tau} - 1\\big)^2
        + \\big(\\tfrac{1 - c}{1 - \\tau} - 1\\big)^2,\\;
        \\big(\\tfrac{c}{1 - \\tau} - 1\\big)^2 + \\big(\\tfrac{1 - c}{\\tau} - 1\\big)^2\\Big],

with :math:`\\tau` the true share of the smaller shower (each candidate matched to the truth
the better way, as the evaluation matches). A bin keeps the model's split unless the best
``c`` beats it by ``min_gain``. :meth:`ShareCalibration.apply` then scales the smaller
column's fractions of an event by ``c / s`` (clipped to [0, 1]; the other column takes the
rest), so hits keep the model's relative split and only the event's share moves.

**Profile refinement first** (``calibration.refine_iterations``, default 2). Before the
features are taken, the model's fractions go through
:func:`calo.reco.baseline.refine_fractions`: the baseline's transverse shower profile, with
each shower's axis and amplitude fitted to the model's split instead of grown from seeds,
re-shares the hits (expectation-maximisation steps). Where the showers are apart this
removes what a network gets wrong at the hit level (a small shower next to a large one that
the network cuts in two) and sharpens the core of the response; where they overlap it keeps
the model's event split, which the table then corrects. The table is fitted on the refined
fractions and applied to them, with the same profile settings (stored in the file).

The table is learned on the training events, so it carries their energy spectrum and mixture
of overlaps: on data generated otherwise, evaluate without it (``calo-evaluate
--no-calibration``) or fit it on such data (``benchmarks/share_calibration.py``).

Examples
--------
Events the model splits evenly whose smaller shower really carries a quarter of the energy:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> features = np.stack([np.full(400, 0.48), rng.uniform(0, 0.1, 400),
...                      rng.uniform(20, 80, 400)], axis=1)
>>> cal = fit_share_calibration(features, np.full(400, 0.25),
...                             CalibrationConfig(energy_bins=1))
>>> cal.lookup(features[:1]).round(3).tolist()
[0.25]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.utils import scatter

from calo.errors import DataError
from calo.reco.baseline import profile_refine
from calo.reco.config import BaselineConfig, CalibrationConfig
from calo.reco.shares import event_energy_shares

__all__ = [
    "ShareCalibration",
    "fit_share_calibration",
    "model_split_features",
    "share_error",
    "split_features",
]

FORMAT = "calo-share-calibration"
VERSION = 2
#: versions this calo reads (version 1 files have no profile refinement)
READABLE_VERSIONS = (1, 2)
#: candidate shares of the smaller shower
GRID = np.linspace(0.05, 0.5, 46)
#: training events per energy bin when ``energy_bins`` is 0 (auto), and its largest value
EVENTS_PER_ENERGY_BIN = 800
MAX_ENERGY_BINS = 8


def share_error(c: np.ndarray, true_share: np.ndarray) -> np.ndarray:
    """Squared response error of both showers when one column takes share ``c`` of the event
    energy and the smaller shower truly has ``true_share`` (the better matching).

    Examples
    --------
    >>> share_error(np.array([0.25, 0.5]), np.array([0.25, 0.25])).round(4).tolist()
    [0.0, 1.1111]
    """
    c, ts = np.asarray(c, float), np.asarray(true_share, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (c / ts - 1) ** 2 + ((1 - c) / (1 - ts) - 1) ** 2
        b = (c / (1 - ts) - 1) ** 2 + ((1 - c) / ts - 1) ** 2
    return np.minimum(a, b)


def split_features(
    fractions: Tensor, energy: Tensor, batch: Tensor, num_events: int | None = None
) -> tuple[Tensor, Tensor]:
    """Per event ``features [B, 3]`` (``s``, ``h``, ``E``; see the module) and the index
    ``[B]`` of the smaller output column, from two-column fractions and hit energies only.

    Examples
    --------
    >>> p = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.5, 0.5]])
    >>> f, col = split_features(p, torch.tensor([2.0, 1.0, 1.0]), torch.zeros(3, dtype=torch.long))
    >>> [round(v, 3) for v in f[0].tolist()], col.tolist()
    ([0.225, 0.55, 4.0], [1])
    """
    if fractions.dim() != 2 or fractions.shape[1] != 2:
        raise DataError(
            f"the share calibration needs [N, 2] fractions, got {tuple(fractions.shape)}"
        )
    every = torch.ones_like(energy).unsqueeze(1)  # every hit counts: no truth at inference
    sharp = (fractions[:, 0] - fractions[:, 1]).abs().unsqueeze(1)
    # one pass: the two columns' shares and the sharpness, all energy-weighted means per event
    means = event_energy_shares(torch.cat([fractions, sharp], dim=1), every, energy, batch,
                                num_events)  # fmt: skip
    share, h = means[:, :2], means[:, 2]
    col = share.argmin(dim=1)
    s = share.gather(1, col[:, None]).squeeze(1)
    e = scatter(energy.clamp(min=0), batch, dim=0, dim_size=share.shape[0])
    return torch.stack([s, h, e], dim=1), col


def _bin(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.clip(np.digitize(v, edges[1:-1]), 0, len(edges) - 2)


@dataclass
class ShareCalibration:
    """A fitted share calibration: bin edges of ``s``, ``h`` and ``E`` and the table of shares
    (NaN: keep the model's split), as :func:`fit_share_calibration` returns it, with the
    number of training events it was fitted on and of those left out (no signal, NaN), and
    the profile refinement applied before it (``refine_iterations`` steps with the profile's
    ``radius`` and ``slope_damping``, :class:`~calo.reco.config.BaselineConfig`; 0: none).

    Examples
    --------
    >>> cal = ShareCalibration([[0.0, 0.5], [0.0, 1.0], [0.0, 1e9]], np.array([[[0.3]]]), 100)
    >>> p = torch.tensor([[0.6, 0.4], [0.8, 0.2]])  # column 1 takes 0.3 of the energy ...
    >>> q = cal.apply(p, torch.ones(2), torch.zeros(2, dtype=torch.long))  # ... the table 0.3
    >>> q.double().round(decimals=3).tolist()
    [[0.6, 0.4], [0.8, 0.2]]
    >>> cal = ShareCalibration(cal.edges, np.array([[[0.15]]]), 100)  # half as much
    >>> cal.apply(p, torch.ones(2), torch.zeros(2, dtype=torch.long)).double().round(decimals=3)
    tensor([[0.8000, 0.2000],
            [0.9000, 0.1000]], dtype=torch.float64)
    """

    edges: list[list[float]]
    table: np.ndarray
    n_train: int
    n_skipped: int = 0
    refine_iterations: int = 0
    radius: float = BaselineConfig.radius
    slope_damping: float = BaselineConfig.slope_damping

    def __post_init__(self) -> None:
        self.table = np.asarray(self.table, dtype=float)
        shape = tuple(len(e) - 1 for e in self.edges)
        if len(self.edges) != 3 or self.table.shape != shape or min(shape, default=0) < 1:
            raise DataError(
                f"a share calibration needs 3 edge lists and a table of their bin counts; got "
                f"edges of {[len(e) for e in self.edges]} and a table of {self.table.shape}"
            )
        if any(np.any(np.diff(np.asarray(e, dtype=float)) < 0) for e in self.edges):
            raise DataError("a share calibration's bin edges must be increasing")
        if np.any(self.table[np.isfinite(self.table)] < 0) or np.any(self.table > 0.5):
            raise DataError("a share calibration's table must hold shares in [0, 0.5] or NaN")
        if self.refine_iterations < 0 or not self.radius > 0 or not self.slope_damping >= 0:
            raise DataError(
                "a share calibration's refinement needs iterations >= 0, radius > 0 and "
                f"slope_damping >= 0; got {self.refine_iterations}, {self.radius}, "
                f"{self.slope_damping}"
            )

    @property
    def profile(self) -> BaselineConfig:
        """The shower profile of the refinement."""
        return BaselineConfig(radius=self.radius, slope_damping=self.slope_damping)

    @property
    def n_calibrated(self) -> int:
        """Number of bins whose share replaces the model's."""
        return int(np.isfinite(self.table).sum())

    def lookup(self, features: np.ndarray) -> np.ndarray:
        """The calibrated share per event (NaN: keep the model's) for ``features [B, 3]``."""
        f = np.asarray(features, dtype=float)
        idx = tuple(_bin(f[:, j], np.asarray(self.edges[j])) for j in range(3))
        return self.table[idx]

    def refine(
        self, fractions: Tensor, pos: Tensor | None, energy: Tensor, batch: Tensor
    ) -> Tensor:
        """The profile refinement of ``fractions [N, K]`` (unchanged without one)."""
        if not self.refine_iterations:
            return fractions
        if pos is None:
            raise DataError("this share calibration refines with the profile: it needs pos")
        return profile_refine(fractions, pos, energy, batch, self.profile, self.refine_iterations)

    def apply(
        self,
        fractions: Tensor,
        energy: Tensor,
        batch: Tensor,
        num_events: int | None = None,
        pos: Tensor | None = None,
    ) -> Tensor:
        """Calibrated fractions ``[N, 2]``: the profile refinement (which needs the hit
        positions ``pos [N, 3]``), then each event's smaller column scaled to its share."""
        return self.scale_shares(self.refine(fractions, pos, energy, batch), energy, batch,
                                 num_events)  # fmt: skip

    def scale_shares(
        self, fractions: Tensor, energy: Tensor, batch: Tensor, num_events: int | None = None
    ) -> Tensor:
        """The table's step alone: each event's smaller column scaled to its share."""
        features, col = split_features(fractions, energy, batch, num_events)
        target = self.lookup(features.detach().cpu().numpy())
        s = features[:, 0].detach().cpu().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):  # s = 0: no energy, nothing to move
            factor = np.where(np.isfinite(target) & (s > 0), target / s, 1.0)
        f = torch.as_tensor(factor, dtype=fractions.dtype, device=fractions.device)[batch]
        c = col[batch]
        small = (fractions.gather(1, c[:, None]).squeeze(1) * f).clamp(0.0, 1.0)
        q = torch.stack([small, 1.0 - small], dim=1)
        return torch.where((c == 0)[:, None], q, q.flip(1))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN as ``None``)."""
        table = [None if not math.isfinite(v) else float(v) for v in self.table.ravel()]
        return {
            "format": FORMAT,
            "version": VERSION,
            "features": ["share", "sharpness", "energy_gev"],
            "edges": [list(map(float, e)) for e in self.edges],
            "shape": list(self.table.shape),
            "table": table,
            "n_train": self.n_train,
            "n_skipped": self.n_skipped,
            "bins_calibrated": self.n_calibrated,
            "refine": {
                "iterations": self.refine_iterations,
                "radius": self.radius,
                "slope_damping": self.slope_damping,
            },
        }

    @classmethod
    def from_dict(cls, d: Any, file: str | Path | None = None) -> ShareCalibration:
        """Inverse of :meth:`to_dict`; a :class:`~calo.errors.DataError` for anything else."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError("not a calo share calibration (format key missing)", file=file)
        version = d.get("version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise DataError(
                f"share calibration version {d.get('version')!r}, this calo reads "
                f"{' and '.join(map(str, READABLE_VERSIONS))}",
                file=file,
            )
        try:
            table = np.array([np.nan if v is None else v for v in d["table"]], dtype=float)
            refine = d["refine"] if version >= 2 else {"iterations": 0}
            counts = [d["n_train"], d.get("n_skipped", 0), refine["iterations"], *d["shape"]]
            if any(type(v) is not int for v in counts):
                raise DataError(f"counts must be integers, got {counts}")
            return cls(
                [list(map(float, e)) for e in d["edges"]],
                table.reshape(d["shape"]),
                d["n_train"],
                d.get("n_skipped", 0),
                refine["iterations"],
                float(refine.get("radius", cls.radius)),
                float(refine.get("slope_damping", cls.slope_damping)),
            )
        except (KeyError, TypeError, ValueError, OverflowError, DataError) as e:
            raise DataError(f"malformed share calibration: {e}", file=file) from None

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON (atomically)."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ShareCalibration:
        """Read a calibration written by :meth:`save`."""
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DataError("share calibration file not found", file=path) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read the share calibration: {e}", file=path) from None
        return cls.from_dict(d, file=path)


def fit_share_calibration(
    features: np.ndarray,
    true_share: np.ndarray,
    config: CalibrationConfig | None = None,
    profile: BaselineConfig | None = None,
) -> ShareCalibration:
    """Fit the table on training events' ``features [B, 3]`` and true smaller shares ``[B]``.

    The features must come from the model's fractions after ``config.refine_iterations``
    steps of the profile refinement with ``profile`` (:func:`model_split_features` with the
    same ``config`` and ``profile``), which the returned calibration records and repeats. Events without
    signal or with non-finite features are left out of the fit and counted in
    :attr:`ShareCalibration.n_skipped`.
    """
    cfg = config or CalibrationConfig()
    prof = profile or BaselineConfig()
    f = np.asarray(features, dtype=float)
    ts = np.asarray(true_share, dtype=float)
    if f.ndim != 2 or f.shape[1] != 3 or ts.shape != (len(f),):
        raise DataError(f"features must be [B, 3] and true_share [B]; got {f.shape}, {ts.shape}")
    ok = np.isfinite(f).all(axis=1) & np.isfinite(ts) & (ts > 0)
    f, ts = f[ok], ts[ok]
    if not len(f):
        raise DataError("no two-shower training event with signal to fit the share calibration")
    n_e = cfg.energy_bins or int(np.clip(len(f) // EVENTS_PER_ENERGY_BIN, 1, MAX_ENERGY_BINS))
    edges = [np.linspace(0.0, 0.5, cfg.share_bins + 1)]
    for j, n in ((1, cfg.sharpness_bins), (2, n_e)):
        q = np.quantile(f[:, j], np.linspace(0.0, 1.0, n + 1))
        edges.append(q)
    shape = tuple(len(e) - 1 for e in edges)
    key = np.ravel_multi_index(tuple(_bin(f[:, j], edges[j]) for j in range(3)), shape)
    table = np.full(int(np.prod(shape)), np.nan)
    for b in np.unique(key):
        m = key == b
        if m.sum() < cfg.min_events:
            continue
        own = share_error(f[m, 0], ts[m]).mean()
        costs = np.array([share_error(np.full(m.sum(), c), ts[m]).mean() for c in GRID])
        j = int(np.argmin(costs))
        if costs[j] < (1.0 - cfg.min_gain) * own:
            table[b] = GRID[j]
    return ShareCalibration(
        [list(map(float, e)) for e in edges],
        table.reshape(shape),
        len(f),
        int((~ok).sum()),
        cfg.refine_iterations,
        prof.radius,
        prof.slope_damping,
    )


@torch.no_grad()
def model_split_features(
    model: nn.Module,
    events: Sequence[Data] | Iterable[Data],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    config: CalibrationConfig | None = None,
    profile: BaselineConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over two-shower events: ``features [B, 3]`` of its fractions after
    ``config.refine_iterations`` steps of the profile refinement with ``profile`` (the same
    defaults as :func:`fit_share_calibration`, so that the fit records what was done), and the
    true smaller share ``[B]`` of each event's signal energy (NaN where it has no signal)."""
    iterations = (config or CalibrationConfig()).refine_iterations
    model = model.to(device).eval()
    feats, shares = [], []
    for data in DataLoader(list(events), batch_size=batch_size, shuffle=False):
        if data.y is None or data.y.dim() != 2 or data.y.shape[1] != 2:
            raise DataError("the share calibration needs events with two truth showers")
        p = model(data.to(device)).cpu()
        data = data.cpu()
        if iterations:
            if getattr(data, "pos", None) is None:
                raise DataError(
                    "the profile refinement needs the hits' positions (pos); set "
                    "calibration.refine_iterations=0 for events without them"
                )
            p = profile_refine(p, data.pos, data.energy, data.batch, profile, iterations)
        f, _ = split_features(p, data.energy, data.batch, data.num_graphs)
        t = event_energy_shares(data.y, data.y, data.energy, data.batch, data.num_graphs)
        feats.append(f.numpy())
        shares.append(t.min(dim=1).values.numpy())
    if not feats:
        raise DataError("no events to fit the share calibration on")
    return np.concatenate(feats).astype(float), np.concatenate(shares).astype(float)
