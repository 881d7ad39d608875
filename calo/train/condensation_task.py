"""The condensation task: any number of particles by object condensation, compared with CLUE.

``calo-train --task condensation`` trains :class:`calo.models.CondensationModel` (the
``model.name`` backbone with the condensation head of ``model.condensation``) on
:func:`calo.train.condensation.condensation_loss`, with the energy-correction payload
(:func:`calo.train.condensation.energy_correction_loss`) and optionally a position payload.
The truth particle of a hit is ``Data.hit_particle`` when the schema names one, else the
column of its largest truth fraction (-1 for noise: no fraction above 0), which is the
``hit_truth`` branch of ``calo-simulate``.

The evaluation (:func:`evaluate_condensation`) clusters the validation events twice:
condensation clustering of the network's beta and coordinates
(:func:`calo.reco.condensation.condensation_clusters`, cluster energies with the correction of
the condensation point) and CLUE on the hit positions weighted by the hit energies
(:func:`calo.reco.clue.clue`), and matches both to the truth
(:func:`calo.reco.matching.match_clusters`, :func:`~calo.reco.matching.matching_summary`):
methods ``model`` and ``clue`` of ``metrics.json``.

Examples
--------
>>> from calo.config import to_dict
>>> from calo.train.config import TrainConfig
>>> module = CondensationModule(to_dict(TrainConfig(task="condensation")))
>>> type(module.model).__name__
'CondensationModel'
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from calo.errors import DataError
from calo.models import CondensationModel
from calo.reco.clue import clue
from calo.reco.condensation import condensation_clusters, shared_cluster_energies
from calo.reco.matching import match_clusters, matching_summary
from calo.train.condensation import condensation_loss, energy_correction_loss, sharing_loss
from calo.train.config import CondensationTaskConfig
from calo.train.module import CaloModule

__all__ = [
    "METRIC_KEYS",
    "TUNING_GRIDS",
    "CondensationModule",
    "clue_coords",
    "condensation_outputs",
    "evaluate_condensation",
    "format_condensation",
    "hit_particles",
    "hit_targets",
    "score_condensation",
    "sharing_truth",
    "tune_parameters",
    "tuning_objective",
    "with_settings",
]

#: the summary numbers of each method that the table prints
METRIC_KEYS = ("efficiency", "fake_rate", "merge_rate", "split_rate")


def hit_particles(data: Any) -> Tensor:
    """``[N]`` truth particle of every hit (column of ``y``), -1 for noise.

    ``Data.hit_particle`` when present (the reader's copy of the schema's ``truth_index``
    branch), else the column of the largest truth fraction, -1 where no fraction is above 0 or
    ``Data.noise`` is set.

    Examples
    --------
    >>> d = Data(y=torch.tensor([[0.2, 0.8], [0.0, 0.0], [1.0, 0.0]]))
    >>> hit_particles(d).tolist()
    [1, -1, 0]
    >>> from torch_geometric.data import Batch
    >>> b = Batch.from_data_list([Data(hit_particle=torch.tensor([0, -1, 1]), num_nodes=3),
    ...                           Data(hit_particle=torch.tensor([-1, 0]), num_nodes=2)])
    >>> hit_particles(b).tolist()
    [0, -1, 1, -1, 0]
    """
    particle = getattr(data, "hit_particle", None)
    if particle is not None:
        return particle.long().clamp(min=-1)
    y = data.y
    if y is None or y.dim() != 2:
        raise DataError(
            "the condensation task needs per-hit truth: hit_frac_* branches or a truth_index branch in the schema"
        )
    best = y.max(dim=1)
    particle = torch.where(best.values > 0, best.indices, -1)
    noise = getattr(data, "noise", None)
    if noise is not None:
        particle = torch.where(noise.bool(), -1, particle)
    return particle


def sharing_truth(data: Any) -> Tensor:
    """``[N, P]`` truth energy fractions of the hits (``Data.y``, column = particle id), which
    energy sharing (``clustering.share_sigma`` > 0) trains on.

    Raises
    ------
    DataError
        When the events have no per-hit fractions, or name the hits' particles by a
        ``truth_index`` branch (whose ids need not be the fraction columns).

    Examples
    --------
    >>> sharing_truth(Data(y=torch.tensor([[0.25, 0.75]]))).tolist()
    [[0.25, 0.75]]
    """
    y = getattr(data, "y", None)
    if y is None or y.dim() != 2 or getattr(data, "hit_particle", None) is not None:
        raise DataError(
            "energy sharing (condensation.clustering.share_sigma > 0) needs per-hit truth "
            "fractions (hit_frac_* branches) and no truth_index branch in the schema; set "
            "condensation.clustering.share_sigma=0"
        )
    return y


def _event_of_hits(data: Any, particle: Tensor) -> Tensor:
    b = getattr(data, "batch", None)
    return b if b is not None else torch.zeros_like(particle)


def hit_targets(data: Any, particle: Tensor, target: str = "true") -> tuple[Tensor, Tensor | None]:
    """Per hit the energy (``[N]``) and the impact point (``[N, 2]`` or ``None``) of its
    particle; 0 on noise hits.

    ``target="true"`` takes ``particle_energy`` where it is > 0 and ``particle_deposited``
    elsewhere; ``"deposited"`` always the deposited energy.

    Examples
    --------
    >>> d = Data(y=torch.ones(2, 1), particle_energy=torch.tensor([[10.0]]),
    ...          particle_deposited=torch.tensor([[9.0]]), particle_xy=torch.zeros(1, 1, 2))
    >>> e, xy = hit_targets(d, torch.tensor([0, -1]))
    >>> e.tolist(), xy.shape
    ([10.0, 0.0], torch.Size([2, 2]))
    """
    n = particle.shape[0]
    ev = _event_of_hits(data, particle)
    k = particle.clamp(min=0)
    signal = particle >= 0
    dep = getattr(data, "particle_deposited", None)
    tru = getattr(data, "particle_energy", None)
    energy = torch.zeros(n, dtype=torch.float32, device=particle.device)
    if tru is not None and target == "true":
        energy = tru[ev, k].float()
    if dep is not None:
        energy = torch.where(energy > 0, energy, dep[ev, k].float())
    energy = torch.where(signal, energy, 0.0)
    xy = getattr(data, "particle_xy", None)
    pos = torch.where(signal[:, None], xy[ev, k].float(), 0.0) if xy is not None else None
    return energy, pos


class CondensationModule(CaloModule):
    """LightningModule of the condensation task (module docstring).

    Parameters
    ----------
    config, normalization:
        See :class:`calo.train.module.CaloModule`.

    Examples
    --------
    >>> from calo.config import to_dict
    >>> from calo.train.config import TrainConfig
    >>> m = CondensationModule(to_dict(TrainConfig(task="condensation")))
    >>> m.extra_history
    ('val_attractive', 'val_repulsive', 'val_beta', 'val_noise', 'val_payload')
    """

    extra_history = ("val_attractive", "val_repulsive", "val_beta", "val_noise", "val_payload")

    def __init__(self, config: Mapping[str, Any], normalization: Mapping[str, Any] | None = None):
        super().__init__(config, normalization)
        self.model = CondensationModel(self.cfg.model)
        if self.cfg.condensation.sharing_weight > 0:
            self.extra_history = (*self.extra_history, "val_sharing")
            self.history["val_sharing"] = []

    def forward(self, data: Any) -> Any:
        """:class:`calo.models.CondensationOutput` of a torch_geometric batch."""
        return self.model(data)

    def terms(self, data: Any) -> dict[str, Tensor]:
        """The loss terms of a batch (``total``, ``attractive``, ``repulsive``, ``beta``,
        ``noise``, ``payload``)."""
        c: CondensationTaskConfig = self.cfg.condensation
        out = self.model(data)
        particle = hit_particles(data)
        batch = _event_of_hits(data, particle)
        true_e, true_xy = hit_targets(data, particle, c.energy_target)
        sigma = c.clustering.share_sigma
        fractions = sharing_truth(data) if sigma > 0 else None
        payload = energy_correction_loss(
            out.correction, data.energy, particle, true_e, batch, fractions=fractions
        )
        if c.position_weight > 0 and out.position is not None and true_xy is not None:
            scale = self.cfg.model.condensation.position_scale
            pred = data.pos[:, :2] + scale * out.position
            d2 = ((pred - true_xy) ** 2).sum(dim=1) / scale**2
            payload = payload + c.position_weight * torch.where(particle >= 0, d2, 0.0)
        terms = condensation_loss(
            out.beta, out.coords, particle, batch,
            q_min=c.q_min, s_b=c.s_b, normalization=c.normalization, payload=payload,
            payload_weight=c.payload_weight, num_events=int(data.num_graphs),
        )  # fmt: skip
        if c.sharing_weight > 0:
            terms["sharing"] = sharing_loss(
                out.beta, out.coords, particle, fractions, data.energy, batch,
                sigma=sigma, num_events=int(data.num_graphs),
            )  # fmt: skip
            terms["total"] = terms["total"] + c.sharing_weight * terms["sharing"]
        return terms

    def loss(self, data: Any, train: bool = False) -> tuple[Tensor, int]:
        """The condensation loss of a batch and its number of events."""
        terms = self.terms(data)
        if not train:
            n = int(data.num_graphs)
            for key in ("attractive", "repulsive", "beta", "noise", "payload", "sharing"):
                if key in terms:
                    self.log(f"val_{key}", terms[key], batch_size=n, sync_dist=True)
        return terms["total"], int(data.num_graphs)


def clue_coords(pos: np.ndarray, space: str) -> np.ndarray:
    """The ``[N, 2]`` or ``[N, 3]`` float64 coordinates CLUE clusters in (``clue_space``:
    ``xy``, the hits projected on the front face, or ``xyz``) of ``[N, 3]`` hit positions.

    Examples
    --------
    >>> clue_coords(np.ones((4, 3), np.float32), "xy").shape
    (4, 2)
    """
    pos = np.asarray(pos, dtype=np.float64)
    return pos[:, :2] if space == "xy" else pos


OUTPUT_KEYS = ("beta", "coords", "corr", "particle", "energy", "true_e", "batch", "pos")


@torch.no_grad()
def condensation_outputs(
    model: torch.nn.Module | None,
    events: Sequence[Data],
    config: CondensationTaskConfig | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """The network's per-hit outputs and the hits' truth, concatenated over ``events``.

    Returns ``beta``, ``coords``, ``corr`` (absent when ``model`` is None: the truth and hits
    alone, enough for CLUE), ``particle`` (truth particle, -1 noise), ``energy``, ``true_e``
    (the energy of the hit's particle), ``batch`` (event number) and ``pos``: the input of
    :func:`score_condensation`, computed once and clustered with as many settings as wanted.
    """
    cfg = config or CondensationTaskConfig()
    if model is not None:
        model.eval().to(device)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in OUTPUT_KEYS}
    offset = 0
    for data in DataLoader(list(events), batch_size=batch_size, shuffle=False):
        data = data.to(device)
        if model is not None:
            out = model(data)
            chunks["beta"].append(out.beta.cpu().numpy())
            chunks["coords"].append(out.coords.cpu().numpy())
            chunks["corr"].append(out.correction.cpu().numpy())
        particle = hit_particles(data)
        true_e, _ = hit_targets(data, particle, cfg.energy_target)
        chunks["particle"].append(particle.cpu().numpy())
        chunks["energy"].append(data.energy.cpu().numpy())
        chunks["true_e"].append(true_e.cpu().numpy())
        chunks["batch"].append(data.batch.cpu().numpy() + offset)
        chunks["pos"].append(data.pos.cpu().numpy())
        offset += int(data.num_graphs)
    a = {k: np.concatenate(v) for k, v in chunks.items() if v}
    a["energy"] = a["energy"].astype(np.float64)
    a["true_e"] = np.where(a["particle"] >= 0, a["true_e"], 0.0).astype(np.float64)
    return a


def score_condensation(
    outputs: Mapping[str, np.ndarray],
    config: CondensationTaskConfig | None = None,
    methods: Sequence[str] = ("model", "clue"),
    distance_edges: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Cluster :func:`condensation_outputs` by condensation (``model``) and CLUE (``clue``)
    with ``config``'s settings and match both to the truth.

    ``distance_edges`` replaces the default bins of the distance to the nearest other particle
    (:func:`calo.reco.matching.matching_summary`). Returns the dict of
    :func:`evaluate_condensation`.
    """
    cfg = config or CondensationTaskConfig()
    a = outputs
    energy = a["energy"]
    labels: dict[str, np.ndarray] = {}
    energies: dict[str, np.ndarray | None] = {}
    if "model" in methods:
        cl = condensation_clusters(
            a["beta"].astype(np.float64), a["coords"].astype(np.float64), a["batch"],
            cfg.clustering.t_beta, cfg.clustering.t_d,
        )  # fmt: skip
        labels["model"] = cl.labels
        energies["model"] = shared_cluster_energies(
            cl, a["coords"].astype(np.float64), energy, a["batch"],
            cfg.clustering.share_sigma, a["corr"][cl.points],
        )  # fmt: skip
    if "clue" in methods:
        c = cfg.clue
        labels["clue"] = clue(
            clue_coords(a["pos"], cfg.clue_space), energy,
            c.dc, c.rho_c, c.outlier_factor, batch=a["batch"], kernel=c.kernel,
            kernel_params=tuple(c.kernel_params) or None,
        )  # fmt: skip
        energies["clue"] = None
    extra = {} if distance_edges is None else {"distance_edges": list(distance_edges)}
    summaries = {}
    for name, lab in labels.items():
        m = match_clusters(
            lab, a["particle"], energy, a["batch"], cluster_energy=energies[name],
            true_energy=a["true_e"], coords=a["pos"].astype(np.float64), config=cfg.matching,
        )  # fmt: skip
        summaries[name] = matching_summary(m, **extra)
    return {
        "methods": summaries,
        "labels": labels,
        "particle": a["particle"],
        "energy": energy,
        "batch": a["batch"],
        "pos": a["pos"],
    }


#: default tuning grids: CLUE's d_c (cm), rho_c (GeV) and outlier factor; the condensation
#: clustering's t_beta and t_d (:func:`tune_parameters`)
TUNING_GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "clue": {
        "dc": (0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
        "rho_c": (0.05, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
        "outlier_factor": (1.5, 2.0, 3.0, 5.0),
    },
    "clustering": {
        "t_beta": (0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9),
        "t_d": (0.2, 0.3, 0.5, 0.7, 1.0, 1.5),
    },
}


def tuning_objective(summary: Mapping[str, Any]) -> float:
    """The mean of efficiency and purity (1 - fake rate): what :func:`tune_parameters`
    maximises, so that neither can be bought with the other.

    Examples
    --------
    >>> tuning_objective({"efficiency": 0.8, "fake_rate": 0.2})
    0.8
    """
    return 0.5 * (float(summary["efficiency"]) + 1.0 - float(summary["fake_rate"]))


def with_settings(
    config: CondensationTaskConfig, section: str, values: Mapping[str, float]
) -> CondensationTaskConfig:
    """A copy of ``config`` with ``config.<section>`` (``clue`` or ``clustering``) fields set
    to ``values``, checked by the dataclasses as any config.

    Examples
    --------
    >>> with_settings(CondensationTaskConfig(), "clue", {"dc": 2.0}).clue.dc
    2.0
    """
    from dataclasses import replace

    return replace(config, **{section: replace(getattr(config, section), **values)})


def tune_parameters(
    outputs: Mapping[str, np.ndarray],
    config: CondensationTaskConfig,
    section: str,
    grid: Mapping[str, Sequence[float]] | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Grid search of CLUE's parameters (``section="clue"``) or of the condensation
    clustering's thresholds (``"clustering"``) on :func:`condensation_outputs` of *training*
    events, for the highest :func:`tuning_objective`.

    A grid search over a handful of values rather than an optimiser: every point needs a full
    clustering and matching, the objective is piecewise constant, and the grid, reported whole,
    shows how flat the optimum is.

    Returns
    -------
    best, rows
        The best values (first on ties, in grid order) and, per grid point, the values with
        its efficiency, fake rate and objective.

    Examples
    --------
    >>> import numpy as np
    >>> pos = np.array([[0, 0, 0], [0.3, 0, 0], [5, 0, 0], [5.3, 0, 0]], float)
    >>> out = {"pos": pos, "energy": np.ones(4), "true_e": np.full(4, 2.0),
    ...        "particle": np.array([0, 0, 1, 1]), "batch": np.zeros(4, int)}
    >>> best, rows = tune_parameters(out, CondensationTaskConfig(), "clue",
    ...                              {"dc": (0.5, 10.0), "rho_c": (0.5,)})
    >>> best, [r["efficiency"] for r in rows]
    ({'dc': 0.5, 'rho_c': 0.5}, [1.0, 0.0])
    """
    if section not in TUNING_GRIDS:
        raise ValueError(f"section must be one of {sorted(TUNING_GRIDS)}, got {section!r}")
    grid = dict(grid if grid is not None else TUNING_GRIDS[section])
    method = "clue" if section == "clue" else "model"
    rows = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, (float(v) for v in values), strict=True))
        cfg = with_settings(config, section, point)
        m = score_condensation(outputs, cfg, methods=(method,))["methods"][method]
        rows.append({**point, "efficiency": m["efficiency"], "fake_rate": m["fake_rate"],
                     "objective": tuning_objective(m)})  # fmt: skip
    best = max(rows, key=lambda r: r["objective"])
    return {k: best[k] for k in grid}, rows


def evaluate_condensation(
    model: torch.nn.Module,
    events: Sequence[Data],
    config: CondensationTaskConfig | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Condensation clusters of ``model`` and CLUE clusters against the truth.

    Parameters
    ----------
    model:
        A :class:`calo.models.CondensationModel` (put in eval mode here).
    events:
        Events with ``x``, ``pos``, ``energy`` and the truth (``y`` or ``hit_particle``).
    config:
        Clustering, CLUE and matching settings.

    Returns
    -------
    dict
        ``methods``: ``{"model": summary, "clue": summary}`` (:func:`matching_summary`:
        efficiency, fake, merge and split rates, response, ...); ``labels``: per method the
        per-hit cluster labels; ``particle``, ``energy``, ``batch``, ``pos``: the hits' truth,
        energies, events and positions (for displays).
    """
    outputs = condensation_outputs(model, events, config, batch_size, device)
    return score_condensation(outputs, config)


def format_condensation(methods: Mapping[str, Mapping[str, Any]]) -> str:
    """A text table of the methods' efficiency, fake, merge, split rates and response.

    Examples
    --------
    >>> row = {"efficiency": 0.9, "fake_rate": 0.1, "merge_rate": 0.05, "split_rate": 0.0,
    ...        "response": {"mean": 1.0, "rms": 0.1}, "n_particles": 10, "n_clusters": 10}
    >>> print(format_condensation({"model": row}))  # doctest: +NORMALIZE_WHITESPACE
    method  particles clusters efficiency fake merge split resp.mean resp.rms
    model          10       10      0.900 0.100 0.050 0.000 1.000 0.100
    """
    lines = [
        "method  particles clusters efficiency fake merge split resp.mean resp.rms",
    ]
    for name, s in methods.items():
        r = s.get("response") or {}
        lines.append(
            f"{name:<7} {s['n_particles']:>9} {s['n_clusters']:>8} {s['efficiency']:>10.3f} "
            f"{s['fake_rate']:.3f} {s['merge_rate']:.3f} {s['split_rate']:.3f} "
            f"{float(r.get('mean', np.nan)):.3f} {float(r.get('rms', np.nan)):.3f}"
        )
    return "\n".join(lines)
