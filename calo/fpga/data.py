"""Electron / charged-pion samples for the FPGA GarNet, in the paper's padded input format.

Iiyama et al. (2021) feed the GarNetStack up to ``V_max`` hits around the seed (the most
energetic hit), sorted by energy, with 4 features per hit::

    ((x - x_seed) / 18, (y - y_seed) / 18, (z - z_offset) / z_scale, E[GeV] * 0.5)

and the number of valid hits ``n``. The paper's HGCAL-like detector starts at z = 350 cm and
is about 200 cm deep (``z_offset = 350``, ``z_scale = 200``); calo's toy calorimeter spans
z = 0..42 cm, so :class:`FPGAFeatures` defaults to ``z_offset = 0``, ``z_scale = 50`` to keep
the same range (0..1). Events with more than ``V_max`` hits keep their ``V_max`` most
energetic hits (counted in the :class:`~calo.io.padded.TruncationReport`).

Samples come from ROOT files written by ``calo-simulate`` (``data/sample_e_pi.root``, or
:func:`simulate_e_pi`, the settings of ``data/make_sample.sh``): one electron (label 1) or
charged pion (label 0) of 10-100 GeV per event plus 30 random background hits on average.

Examples
--------
>>> import tempfile
>>> path = simulate_e_pi(tempfile.mkdtemp() + "/e_pi.root", n_events=4, seed=1)["path"]
>>> s = load_e_pi(path, v_max=32)  # or load_e_pi("data/sample_e_pi.root", v_max=32)
>>> s.X.shape, s.n.shape, s.is_electron.dtype
(torch.Size([4, 32, 4]), torch.Size([4]), torch.float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Batch, Data

from calo.config import apply_overrides
from calo.errors import ConfigError, DataError
from calo.io import FeatureSpec, TruncationReport, read_data, to_padded

__all__ = ["E_PI_OVERRIDES", "FPGAFeatures", "FPGASample", "load_e_pi", "simulate_e_pi"]

#: calo-simulate overrides of the e/pi sample (as in data/make_sample.sh).
E_PI_OVERRIDES: tuple[str, ...] = (
    "gun.n_particles=1",
    "gun.pdg=[11,211]",
    "gun.energy.min=10",
    "gun.energy.max=100",
    "background.mean_hits=30",
)


@dataclass(frozen=True)
class FPGAFeatures:
    """Scales of the paper's 4 hit features (see the module docstring).

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Batch, Data
    >>> d = Data(pos=torch.tensor([[1.0, 2.0, 5.0], [19.0, 2.0, 10.0]]),
    ...          energy=torch.tensor([4.0, 1.0]))
    >>> FPGAFeatures()(Batch.from_data_list([d])).tolist()
    [[0.0, 0.0, 0.10000000149011612, 2.0], [1.0, 0.0, 0.20000000298023224, 0.5]]
    """

    xy_scale: float = 18.0
    z_offset: float = 0.0
    z_scale: float = 50.0
    energy_scale: float = 0.5

    def __post_init__(self) -> None:
        if not (self.xy_scale > 0 and self.z_scale > 0 and self.energy_scale > 0):
            raise ConfigError(f"feature scales must be positive, got {self}")

    def __call__(self, batch: Batch) -> torch.Tensor:
        """Features ``[N, 4]`` of every hit of ``batch`` (needs ``pos``, ``energy``)."""
        pos, e, b = batch.pos.to(torch.float64), batch.energy.to(torch.float64), batch.batch
        n_ev = int(batch.num_graphs)
        emax = torch.full((n_ev,), -torch.inf, dtype=torch.float64)
        emax = emax.scatter_reduce(0, b, e, "amax")
        idx = torch.arange(e.numel())
        cand = torch.where(e == emax[b], idx, torch.full_like(idx, e.numel()))
        seed = torch.full((n_ev,), e.numel(), dtype=torch.long).scatter_reduce(0, b, cand, "amin")
        rel = pos[:, :2] - pos[seed[b], :2]
        out = torch.stack(
            [
                rel[:, 0] / self.xy_scale,
                rel[:, 1] / self.xy_scale,
                (pos[:, 2] - self.z_offset) / self.z_scale,
                e * self.energy_scale,
            ],
            dim=1,
        )
        return out.to(torch.float32)


@dataclass
class FPGASample:
    """Padded events for the FPGA model.

    Attributes
    ----------
    X:
        ``[B, V_max, 4]`` float32 features, zero after the ``n[b]`` valid hits.
    n:
        ``[B]`` int64 valid hits.
    is_electron:
        ``[B]`` float32 label, 1 for an electron, 0 for a charged pion.
    energy:
        ``[B]`` float32 true particle energy (GeV).
    truncation:
        What the padding to ``V_max`` dropped.
    features:
        The feature scales used.

    Examples
    --------
    >>> import torch
    >>> from calo.io import TruncationReport
    >>> X = torch.zeros(2, 4, 4)
    >>> X[0, :3, 3], X[1, :1, 3] = 1.0, 2.0
    >>> s = FPGASample(X, torch.tensor([3, 1]), torch.tensor([1.0, 0.0]),
    ...                torch.tensor([20.0, 35.0]), TruncationReport(2, 0, 4, 0, 5.0, 0.0),
    ...                FPGAFeatures())
    >>> len(s), s.X.shape, s.n.tolist(), s.is_electron.tolist()
    (2, torch.Size([2, 4, 4]), [3, 1], [1.0, 0.0])
    """

    X: torch.Tensor
    n: torch.Tensor
    is_electron: torch.Tensor
    energy: torch.Tensor
    truncation: TruncationReport
    features: FPGAFeatures
    read_summary: Any = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def subset(self, index: Sequence[int] | slice) -> FPGASample:
        """The events at ``index`` (the truncation report and read summary are shared).

        Examples
        --------
        >>> import torch
        >>> from calo.io import TruncationReport
        >>> s = FPGASample(torch.zeros(5, 4, 4), torch.arange(5), torch.ones(5), torch.ones(5),
        ...                TruncationReport(5, 0, 5, 0, 5.0, 0.0), FPGAFeatures())
        >>> s.subset([4, 1]).n.tolist()
        [4, 1]
        """
        idx = index if isinstance(index, slice) else torch.as_tensor(list(index), dtype=torch.long)
        return FPGASample(
            self.X[idx],
            self.n[idx],
            self.is_electron[idx],
            self.energy[idx],
            self.truncation,
            self.features,
            self.read_summary,
        )

    def split(self, n_first: int) -> tuple[FPGASample, FPGASample]:
        """The first ``n_first`` events and the rest (the truncation report is shared).

        Examples
        --------
        >>> import torch
        >>> from calo.io import TruncationReport
        >>> s = FPGASample(torch.zeros(5, 4, 4), torch.ones(5, dtype=torch.long), torch.ones(5),
        ...                torch.ones(5), TruncationReport(5, 0, 5, 0, 5.0, 0.0), FPGAFeatures())
        >>> [len(p) for p in s.split(3)]
        [3, 2]
        """
        if not 0 < n_first < len(self):
            raise ConfigError(f"cannot split {len(self)} events after {n_first}")
        return self.subset(slice(0, n_first)), self.subset(slice(n_first, None))


def _label(d: Data, i: int) -> tuple[float, float]:
    pdg = getattr(d, "particle_pdg", None)
    energy = getattr(d, "particle_energy", None)
    if pdg is None or energy is None or pdg.numel() < 1 or energy.numel() < 1:
        raise DataError(
            "event has no particle pdg/energy: the FPGA task needs single-particle events "
            "written by calo-simulate (gun.n_particles=1)",
            entry=i,
        )
    p = abs(int(pdg.reshape(-1)[0]))
    if p not in (11, 211):
        raise DataError(f"particle pdg {p} is neither an electron (11) nor a pion (211)", entry=i)
    return float(p == 11), float(energy.reshape(-1)[0])


def load_e_pi(
    source: str | Path | Sequence[str | Path] | Sequence[Data],
    v_max: int = 128,
    max_events: int | None = None,
    features: FPGAFeatures | None = None,
) -> FPGASample:
    """Read single-particle events and pack them for the FPGA model.

    Parameters
    ----------
    source:
        ROOT file(s) of ``calo-simulate`` e/pi events, or a list of ``Data`` read by
        :func:`calo.io.read_data`.
    v_max:
        Hits per event (most energetic kept).
    max_events:
        Read at most this many events.
    features:
        Feature scales (default :class:`FPGAFeatures`).

    Raises
    ------
    DataError
        If an event has no particle truth, or a particle other than e/pi.

    Examples
    --------
    >>> import tempfile
    >>> path = simulate_e_pi(tempfile.mkdtemp() + "/e_pi.root", n_events=4, seed=1)["path"]
    >>> s = load_e_pi(path, v_max=64, max_events=3)
    >>> s.n.tolist(), s.is_electron.tolist(), [round(e, 1) for e in s.energy.tolist()]
    ([64, 49, 64], [0.0, 0.0, 1.0], [94.9, 50.7, 43.9])
    >>> print(s.truncation)
    truncated 2/3 events: dropped 42/219 hits, 2.22 GeV (1.29% of the energy)
    >>> [round(v, 4) for v in s.X[0, 0].tolist()]  # the seed hit: at the origin in x-y
    [0.0, 0.0, 0.2167, 5.552]
    """
    features = features or FPGAFeatures()
    summary = None
    if isinstance(source, list | tuple) and source and isinstance(source[0], Data):
        data = list(source)[:max_events]
    else:
        data, summary = read_data(
            source,  # type: ignore[arg-type]
            max_events=max_events,
            features=FeatureSpec(("x", "y", "z", "energy")),
        )
    if not data:
        raise DataError(f"no events in {source!r}")
    labels = torch.tensor([_label(d, i) for i, d in enumerate(data)], dtype=torch.float32)
    X, n, rep = to_padded(data, v_max, features=features)
    return FPGASample(X, n, labels[:, 0].clone(), labels[:, 1].clone(), rep, features, summary)


def simulate_e_pi(path: str | Path, n_events: int, seed: int = 0) -> dict[str, Any]:
    """Write ``n_events`` e/pi events (the settings of ``data/make_sample.sh``) to ``path``.

    Returns the summary of :func:`calo.sim.writer.write_root` (with the configuration).

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> summary = simulate_e_pi(os.path.join(folder, "e_pi.root"), n_events=4, seed=1)
    >>> summary["events"], summary["hits"], summary["config"]["gun"]["pdg"]
    (4, 258, [11, 211])
    >>> sorted(os.listdir(folder))
    ['e_pi.root', 'e_pi.yaml']
    """
    from calo.sim import SimConfig
    from calo.sim.writer import write_root

    cfg = apply_overrides(SimConfig(), list(E_PI_OVERRIDES))
    summary = write_root(path, cfg, n_events=n_events, seed=seed, progress=False)
    summary["config"] = asdict(cfg)
    return summary
