"""Apply a trained fraction or condensation run to new files: one output entry per input entry,
in order.

A :class:`Predictor` holds a run's model, feature normalisation and (where the run has one)
share calibration; a :class:`CondensationPredictor` (what :meth:`Predictor.load` gives for a
``calo-train --task condensation`` run) clusters instead. It turns one awkward chunk of the input tree (as
:func:`calo.io.iterate_events` yields it) into output columns with exactly one entry per
input entry, in the same order, so the output tree is a ROOT friend of the input tree. The
file loop (:func:`iter_predictions`, :func:`predict_files`) streams a file chunk by chunk (memory is bounded by one chunk,
whatever the file's size) and writes each chunk's columns as it goes (:mod:`calo.predict.output`).

Each entry's ``status`` says what happened to it: 0 when the network ran on it, else the code
of :data:`calo.io.STATUS_CODES` of the reason it could not (see :data:`STATUS_DOC`). A skipped
entry keeps its place, with empty per-hit arrays and NaN per-shower values: nothing is
dropped, nothing is shifted. Events are read with no hit limit and no truth, so the per-hit
arrays of a processed entry have exactly its input hit count, in the input's hit order. An
event with a negative hit energy is skipped (status 3), not clipped: the network was trained
on non-negative energies and the energy-weighted sums assume them.

Output columns, in this order (``K`` = the run's number of showers; ``<m>`` = ``model`` for
the network alone and, after the run's post-processing, ``refined`` (the profile refinement)
and ``calibrated`` (refinement then share calibration), see :data:`METHODS`):

* ``status`` (int32): 0 processed; 1 empty (no hits), 2 a NaN or infinite hit value,
  3 a negative hit energy, 4 too many hits (never here: no hit limit), as
  :data:`calo.io.STATUS_CODES` and :data:`STATUS_DOC`;
* ``entry`` (int64): the entry number in the input file;
* ``frac_<m>_<k>`` for ``k = 0 .. K-1`` (var * float32, one value per input hit, in the
  input's hit order; empty for a skipped entry): the fraction of each hit's energy given to
  shower ``k``; one jagged branch per shower reads directly in ``TTree::Draw``
  (``hit_energy * frac_model_0``) and in uproot;
* ``shower_energy_<m>`` (K * float32, GeV): :math:`\\sum_i f_{ik} E_i`;
* ``shower_x_<m>``, ``shower_y_<m>``, ``shower_z_<m>`` (K * float32, cm, the input's
  positions): the energy-weighted position :math:`\\sum_i f_{ik} E_i x_i / \\sum_i f_{ik} E_i`
  (NaN for a shower of zero energy).

The per-shower values of a skipped entry are NaN. The sums are taken in float64 and stored
as float32.

A condensation run (:class:`CondensationPredictor`) writes, after ``status`` and ``entry``
(see :func:`condensation_column_names`):

* ``cluster`` (var * int32, per input hit in the input's order): the hit's cluster within its
  entry, -1 for noise, from :func:`calo.reco.condensation.condensation_clusters` with the
  run's ``condensation.clustering`` thresholds ``t_beta``, ``t_d``; clusters are numbered
  0, 1, ... in decreasing :math:`\beta` of their condensation points;
* ``beta`` (var * float32, per hit): the network's condensation weight;
* ``clue_cluster`` (var * int32, per hit; only with ``clue=True``): CLUE's cluster of the hit
  with the run's ``condensation.clue`` settings on its ``clue_space`` coordinates
  (:func:`calo.reco.clue.clue`), -1 for outliers;
* ``n_clusters`` (int32): the number of condensation clusters (the TTree's counter of the
  per-cluster branches);
* ``cluster_energy`` (var * float32, GeV, one per cluster): the sum of its hits' energies
  (with ``clustering.share_sigma`` > 0 their shares) times the energy correction the network
  predicts at the condensation point
  (:func:`calo.reco.condensation.shared_cluster_energies`, as ``calo-evaluate`` computes it);
* ``cluster_x``, ``cluster_y``, ``cluster_z`` (var * float32, cm): the energy-weighted
  position of its hits (uncorrected energies, shared as the energy; NaN for a cluster of
  zero energy);
* ``cluster_x_learned``, ``cluster_y_learned`` (var * float32, cm; only for a model with the
  position payload): the impact point the network predicts at the condensation point, the
  hit's position plus ``model.condensation.position_scale`` times the predicted offset.

A skipped entry has no hits and no clusters (``n_clusters`` 0).

Examples
--------
>>> sorted(STATUS_DOC)
[0, 1, 2, 3, 4]
>>> column_names(2, ("model",))[:4]
['status', 'entry', 'frac_model_0', 'frac_model_1']
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import numpy as np
import torch
from torch import nn

from calo.errors import ConfigError, DataError
from calo.io import (
    STATUS_CODES,
    ChunkInfo,
    FeatureSpec,
    Normalization,
    ReadPolicy,
    ReadSummary,
    Schema,
    chunk_to_data,
    iterate_events,
)
from calo.io.summary import SKIP_REASONS
from calo.predict.output import is_hit_column
from calo.reco import ShareCalibration
from calo.reco.clue import clue as clue_labels
from calo.reco.condensation import condensation_clusters, shared_cluster_energies
from calo.train.checkpoint import read_checkpoint, resolve_checkpoint
from calo.train.condensation_task import clue_coords
from calo.train.config import TrainConfig
from calo.train.data import SCHEMA_FILE
from calo.train.evaluate import load_model
from calo.train.run import CALIBRATION_FILE

__all__ = [
    "METHODS",
    "POSTPROCESS",
    "SCHEMA_FILE",
    "STATUS_DOC",
    "CondensationPredictor",
    "PredictResult",
    "Predictor",
    "column_names",
    "condensation_column_names",
    "iter_predictions",
    "output_paths",
    "predict",
    "predict_files",
    "resolve_schema",
]

#: Status of each output entry: 0 processed, the others from :data:`calo.io.STATUS_CODES`.
STATUS_DOC: dict[int, str] = {
    0: "ok: the network ran on the event",
    **{code: f"skipped, {name}: {SKIP_REASONS[name]}" for name, code in STATUS_CODES.items()},
}

#: The predictions an output can hold, in column order.
METHODS: tuple[str, ...] = ("model", "refined", "calibrated")

#: Choices of ``postprocess``: which of the run's post-processing steps are written.
POSTPROCESS: tuple[str, ...] = ("none", "refined", "calibrated", "all")

#: Schema fields that prediction does not read (truth, particles, per-event extras): set to
#: ``None`` so that a file without them, or with them broken, is still predicted.
_NOT_READ = (
    "truth_fractions",
    "truth_index",
    "noise",
    "event_id",
    "weight",
    "particle_energy",
    "particle_pdg",
    "particle_deposited",
    "particle_x",
    "particle_y",
)

Device = Literal["cpu", "cuda", "auto"] | str


def resolve_schema(run_dir: str | Path | None, schema: Schema | str | Path | None) -> Schema:
    """The schema to read input files with.

    ``schema`` when it is a :class:`~calo.io.Schema`, the YAML file it names when it is a
    path, else the run folder's ``schema.yaml`` (the schema it was trained with), else calo's
    own layout.

    Examples
    --------
    >>> resolve_schema(None, None).tree
    'events'
    """
    if isinstance(schema, Schema):
        return schema
    if schema is not None:
        if not Path(schema).is_file():
            raise ConfigError("schema file does not exist; check the path", file=schema)
        return Schema.from_yaml(schema)
    if run_dir is not None and (Path(run_dir) / SCHEMA_FILE).is_file():
        return Schema.from_yaml(Path(run_dir) / SCHEMA_FILE)
    return Schema.calo()


def _hits_only(schema: Schema) -> Schema:
    """``schema`` without the branches prediction does not need (truth, particles, ...)."""
    names = {f.name for f in dataclasses.fields(schema)}
    return dataclasses.replace(schema, **{n: None for n in _NOT_READ if n in names})


def column_names(k: int, methods: Sequence[str]) -> list[str]:
    """Output column names for ``k`` showers and the predictions ``methods``, in order.

    Examples
    --------
    >>> column_names(1, ("model", "calibrated"))  # doctest: +NORMALIZE_WHITESPACE
    ['status', 'entry', 'frac_model_0', 'frac_calibrated_0', 'shower_energy_model',
     'shower_x_model', 'shower_y_model', 'shower_z_model', 'shower_energy_calibrated',
     'shower_x_calibrated', 'shower_y_calibrated', 'shower_z_calibrated']
    """
    out = ["status", "entry"]
    out += [f"frac_{m}_{j}" for m in methods for j in range(k)]
    for m in methods:
        out += [f"shower_{q}_{m}" for q in ("energy", "x", "y", "z")]
    return out


def condensation_column_names(clue: bool = False, position: bool = False) -> list[str]:
    """Output column names of a condensation run, in order (module docstring).

    Parameters
    ----------
    clue:
        With CLUE's per-hit labels ``clue_cluster``.
    position:
        With the learned impact point ``cluster_{x,y}_learned`` (a model with the position
        payload).

    Examples
    --------
    >>> condensation_column_names()  # doctest: +NORMALIZE_WHITESPACE
    ['status', 'entry', 'cluster', 'beta', 'n_clusters', 'cluster_energy', 'cluster_x',
     'cluster_y', 'cluster_z']
    >>> condensation_column_names(clue=True, position=True)[4:6]
    ['clue_cluster', 'n_clusters']
    """
    out = ["status", "entry", "cluster", "beta"]
    out += ["clue_cluster"] if clue else []
    out += ["n_clusters", "cluster_energy", "cluster_x", "cluster_y", "cluster_z"]
    out += ["cluster_x_learned", "cluster_y_learned"] if position else []
    return out


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be cpu, cuda or auto, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} asked for, but torch sees no CUDA device; use --device cpu or auto"
        )
    return torch.device(device)


def _methods(postprocess: str, calibration: ShareCalibration | None) -> tuple[str, ...]:
    if postprocess not in POSTPROCESS:
        raise ConfigError(f"postprocess must be one of {list(POSTPROCESS)}, got {postprocess!r}")
    if postprocess == "none":
        return ("model",)
    if calibration is None:
        if postprocess == "all":
            return ("model",)
        raise ConfigError(
            f"postprocess={postprocess!r} needs the run's {CALIBRATION_FILE}, which it does "
            "not have (calo-train writes it with calibration.enabled=true); use "
            "--postprocess none"
        )
    has_refine = bool(calibration.refine_iterations)
    if postprocess == "refined":
        if not has_refine:
            raise ConfigError(
                "postprocess='refined': the run's share calibration has no profile refinement "
                "(refine_iterations=0); use --postprocess calibrated"
            )
        return ("model", "refined")
    if postprocess == "calibrated":
        return ("model", "calibrated")
    return ("model", "refined", "calibrated") if has_refine else ("model", "calibrated")


@dataclass
class Predictor:
    """A trained fraction run ready to predict: model, features, normalisation, calibration.

    Build it with :meth:`load` (which gives a :class:`CondensationPredictor` for a
    condensation run). :meth:`predict_chunk` turns one input chunk into output
    columns, one entry per input entry (see the module docstring for the columns).

    Attributes
    ----------
    model:
        The network, in eval mode on ``device``.
    config:
        The run's :class:`~calo.train.config.TrainConfig`.
    normalization, features:
        The feature normalisation of training and the features it names.
    calibration:
        The run's share calibration (``None`` when it has none or it is not asked for).
    methods:
        The predictions written: ``"model"`` and the post-processing steps.
    device:
        Where the network runs.
    batch_size:
        Events per forward pass (batches never span two chunks).
    checkpoint, run_dir:
        Where the model comes from.
    timings:
        Set it to ``{}`` to have :meth:`predict_chunk` add the seconds it spends converting
        chunks to ``Data`` (``"convert"``), in the network (``"network"``), in the
        post-processing and per-shower sums (``"postprocess"``) and assembling the columns
        (``"columns"``); ``None`` (default) measures nothing.
    """

    model: nn.Module
    config: TrainConfig
    normalization: Normalization
    features: FeatureSpec
    calibration: ShareCalibration | None
    methods: tuple[str, ...]
    device: torch.device
    batch_size: int
    checkpoint: Path
    run_dir: Path
    timings: dict[str, float] | None = None
    _t0: float = dataclasses.field(default=0.0, init=False, repr=False)

    @classmethod
    def load(
        cls,
        run: str | Path,
        *,
        device: Device = "auto",
        postprocess: str = "all",
        batch_size: int = 32,
        clue: bool = False,
    ) -> Predictor:
        """Load a calo-train run folder (its best, else last checkpoint) or a checkpoint.

        Parameters
        ----------
        run:
            Run folder or checkpoint of a fraction run (GravNet, GarNet, EdgeConv), or of a
            condensation run (``calo-train --task condensation``; a
            :class:`CondensationPredictor` is returned).
        device:
            ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        postprocess:
            ``"none"``, ``"refined"``, ``"calibrated"`` or ``"all"`` (every step the run's
            ``share_calibration.json`` has; none without one). A condensation run has no
            post-processing: ``"all"`` and ``"none"`` only.
        batch_size:
            Events per forward pass.
        clue:
            Condensation runs only: also write CLUE's clusters of every hit
            (``clue_cluster``) with the run's ``condensation.clue`` settings.

        Examples
        --------
        >>> Predictor.load("missing_run")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        calo.errors.CheckpointError: checkpoint or run folder does not exist [file missing_run]
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        dev = _pick_device(device)
        ckpt = resolve_checkpoint(run)
        cfg_dict = read_checkpoint(ckpt)["calo"].get("config")
        task = cfg_dict.get("task", "fractions") if isinstance(cfg_dict, dict) else "fractions"
        if task not in ("fractions", "condensation"):
            raise ConfigError(
                f"{ckpt} is a {task!r} run: calo-predict applies fraction models (GravNet, "
                "GarNet, EdgeConv) and condensation models; e/pi runs are evaluated with "
                "calo-evaluate"
            )
        if task == "fractions" and clue:
            raise ConfigError(
                "clue=True (--clue) writes CLUE's clusters next to a condensation run's; "
                f"{ckpt} is a fraction run"
            )
        if task == "condensation" and postprocess not in ("all", "none"):
            raise ConfigError(
                f"postprocess={postprocess!r}: {ckpt} is a condensation run, which has no "
                "share calibration; use --postprocess all or none"
            )
        model, cfg, norm, _ = load_model(ckpt)
        run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        normalization = Normalization.from_dict(norm)
        if task == "condensation":
            return CondensationPredictor(
                model=model.to(dev).eval(),
                config=cfg,
                normalization=normalization,
                features=FeatureSpec(normalization.names),
                calibration=None,
                methods=("model",),
                device=dev,
                batch_size=batch_size,
                checkpoint=ckpt,
                run_dir=run_dir,
                clue=clue,
            )
        cal_file = run_dir / CALIBRATION_FILE
        calibration = None
        if postprocess != "none" and cal_file.is_file():
            calibration = ShareCalibration.load(cal_file)
        methods = _methods(postprocess, calibration)
        return cls(
            model=model.to(dev).eval(),
            config=cfg,
            normalization=normalization,
            features=FeatureSpec(normalization.names),
            calibration=calibration,
            methods=methods,
            device=dev,
            batch_size=batch_size,
            checkpoint=ckpt,
            run_dir=run_dir,
        )

    @property
    def task(self) -> str:
        """The run's task: ``"fractions"`` (or ``"condensation"`` for the subclass)."""
        return "fractions"

    @property
    def n_showers(self) -> int | None:
        """Number ``K`` of showers the model predicts (``None`` for a condensation run)."""
        return int(self.config.model.n_showers)

    @property
    def columns(self) -> list[str]:
        """Output column names, in order."""
        return column_names(self.n_showers, self.methods)

    @property
    def policy(self) -> ReadPolicy:
        """How input events are read: no hit limit, no truth, bad events skipped (counted)."""
        return ReadPolicy(
            max_hits=None, require_truth=False, on_nonfinite="skip", on_negative_energy="skip"
        )

    def read_schema(self, schema: Schema) -> Schema:
        """The branches actually read: ``schema`` without truth, particle and event extras."""
        return _hits_only(schema)

    def _tick(self) -> None:
        if self.timings is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self._t0 = time.perf_counter()

    def _tock(self, stage: str) -> None:
        """Add the seconds since the last :meth:`_tick` (or ``_tock``) to ``stage``."""
        if self.timings is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self._t0
            self._t0 = now

    @torch.no_grad()
    def _fractions(self, events: list[Any]) -> dict[str, torch.Tensor]:
        """Each method's fractions ``[H, K]`` and the shower sums of the ``events``."""
        sizes = torch.tensor([d.num_nodes for d in events], dtype=torch.long)
        batch = torch.repeat_interleave(torch.arange(len(events)), sizes).to(self.device)
        x = torch.cat([d.x for d in events]).to(self.device)
        pos = torch.cat([d.pos for d in events]).to(self.device)
        energy = torch.cat([d.energy for d in events]).to(self.device)
        out = {"model": self.model(x, batch)}
        self._tock("network")
        if self.calibration is not None and len(self.methods) > 1:
            refined = self.calibration.refine(out["model"], pos, energy, batch)
            if "refined" in self.methods:
                out["refined"] = refined
            if "calibrated" in self.methods:
                out["calibrated"] = self.calibration.scale_shares(
                    refined, energy, batch, len(events)
                )
        e64, pos64 = energy.double(), pos.double()
        result: dict[str, torch.Tensor] = {}
        for m, frac in out.items():
            w = frac.double() * e64[:, None]  # [H, K]
            e_k = torch.zeros(len(events), w.shape[1], dtype=torch.float64, device=w.device)
            e_k.index_add_(0, batch, w)
            xyz = torch.zeros(len(events), w.shape[1], 3, dtype=torch.float64, device=w.device)
            xyz.index_add_(0, batch, w[:, :, None] * pos64[:, None, :])
            xyz = torch.where(e_k[:, :, None] > 0, xyz / e_k[:, :, None], torch.nan)
            result[f"frac_{m}"] = frac.float().cpu()
            result[f"shower_energy_{m}"] = e_k.float().cpu()
            result[f"shower_xyz_{m}"] = xyz.float().cpu()
        self._tock("postprocess")
        return result

    def predict_chunk(
        self,
        arr: ak.Array,
        info: ChunkInfo,
        schema: Schema,
        summary: ReadSummary | None = None,
    ) -> dict[str, Any]:
        """Output columns of one input chunk: one entry per entry of ``arr``, in order.

        Parameters
        ----------
        arr, info:
            A chunk and where it comes from, as :func:`calo.io.iterate_events` yields them
            (read with :meth:`read_schema`).
        schema:
            The schema the chunk was read with.
        summary:
            The read's counts are added to it.

        Returns
        -------
        dict
            Column name -> numpy array (``status``, ``entry``, ``shower_*`` of shape
            ``[n, K]``) or jagged awkward array (``frac_*``), in :attr:`columns` order.
        """
        n = len(arr)
        status = np.zeros(n, dtype=np.int8)
        self._tick()
        events = chunk_to_data(
            arr,
            info,
            schema,
            self.policy,
            features=self.features,
            normalization=self.normalization,
            summary=summary,
            status=status,
        )
        kept = np.nonzero(status == 0)[0]
        if len(kept) != len(events):
            raise DataError(
                f"the reader kept {len(events)} events but marked {len(kept)} entries as kept",
                file=info.file,
                entry=info.entry_start,
            )
        counts = np.zeros(n, dtype=np.int64)
        counts[kept] = [d.num_nodes for d in events]
        self._tock("convert")
        cols: dict[str, Any] = {
            "status": status.astype(np.int32),
            "entry": np.arange(info.entry_start, info.entry_start + n, dtype=np.int64),
        }
        cols.update(self._event_columns(events, kept, counts))
        self._tock("columns")
        return {name: cols[name] for name in self.columns}

    def _event_columns(
        self, events: list[Any], kept: np.ndarray, counts: np.ndarray
    ) -> dict[str, Any]:
        """The columns after ``status`` and ``entry`` of a chunk of ``len(counts)`` entries
        whose entries ``kept`` are the ``events`` (``counts``: hits per entry, 0 if skipped)."""
        n = len(counts)
        k = self.n_showers
        parts: dict[str, list[torch.Tensor]] = {}
        for start in range(0, len(events), self.batch_size):
            for name, t in self._fractions(events[start : start + self.batch_size]).items():
                parts.setdefault(name, []).append(t)
        cols: dict[str, Any] = {}
        per_shower: dict[str, np.ndarray] = {}
        for m in self.methods:
            if parts:
                frac = torch.cat(parts[f"frac_{m}"]).numpy()
                e_k = torch.cat(parts[f"shower_energy_{m}"]).numpy()
                xyz = torch.cat(parts[f"shower_xyz_{m}"]).numpy()
            else:
                frac = np.zeros((0, k), dtype=np.float32)
                e_k = np.zeros((0, k), dtype=np.float32)
                xyz = np.zeros((0, k, 3), dtype=np.float32)
            for j in range(k):
                cols[f"frac_{m}_{j}"] = ak.unflatten(np.ascontiguousarray(frac[:, j]), counts)
            full = np.full((n, k), np.nan, dtype=np.float32)
            full[kept] = e_k
            per_shower[f"shower_energy_{m}"] = full
            for c, q in enumerate("xyz"):
                full = np.full((n, k), np.nan, dtype=np.float32)
                full[kept] = xyz[:, :, c]
                per_shower[f"shower_{q}_{m}"] = full
        cols.update(per_shower)
        return cols

    def empty_columns(self) -> dict[str, Any]:
        """The columns of zero entries (their types make an empty output tree)."""
        cols: dict[str, Any] = {
            "status": np.zeros(0, dtype=np.int32),
            "entry": np.zeros(0, dtype=np.int64),
        }
        for name in self.columns[2:]:
            if name.startswith("frac_"):
                cols[name] = ak.unflatten(np.zeros(0, dtype=np.float32), np.zeros(0, np.int64))
            else:
                cols[name] = np.zeros((0, self.n_showers), dtype=np.float32)
        return cols


@dataclass
class CondensationPredictor(Predictor):
    """A trained condensation run ready to predict: per hit its cluster and beta, per cluster
    its energy and position (module docstring).

    Built by :meth:`Predictor.load` for a ``calo-train --task condensation`` run; it reads,
    streams and writes as :class:`Predictor` does (the same :meth:`predict_chunk`), only the
    columns after ``status`` and ``entry`` differ. The clustering is
    :func:`calo.reco.condensation.condensation_clusters` of the network's beta and coordinates
    with the run's ``condensation.clustering`` thresholds, event by event, as
    :func:`calo.train.condensation_task.evaluate_condensation` does.

    Attributes
    ----------
    clue:
        Also write CLUE's clusters (``clue_cluster``) with the run's ``condensation.clue``.
    """

    clue: bool = False

    @property
    def task(self) -> str:
        """``"condensation"``."""
        return "condensation"

    @property
    def n_showers(self) -> int | None:
        """``None``: a condensation run finds any number of clusters."""
        return None

    @property
    def has_position(self) -> bool:
        """Whether the model predicts the impact point (the position payload)."""
        return bool(self.config.model.condensation.position)

    @property
    def columns(self) -> list[str]:
        """Output column names, in order."""
        return condensation_column_names(self.clue, self.has_position)

    @torch.no_grad()
    def _clusters(self, events: list[Any]) -> dict[str, np.ndarray]:
        """Per hit ``cluster``, ``beta`` (and ``clue_cluster``) and per cluster its energy and
        positions of the ``events`` (the hits and clusters of all events one after the other),
        with ``n_clusters`` per event."""
        sizes = torch.tensor([d.num_nodes for d in events], dtype=torch.long)
        batch = torch.repeat_interleave(torch.arange(len(events)), sizes)
        x = torch.cat([d.x for d in events]).to(self.device)
        out = self.model(x, batch.to(self.device))
        self._tock("network")
        b = batch.numpy()
        pos = torch.cat([d.pos for d in events]).double().numpy()
        energy = torch.cat([d.energy for d in events]).double().numpy()
        beta = out.beta.double().cpu().numpy()
        c = self.config.condensation
        coords = out.coords.double().cpu().numpy()
        cl = condensation_clusters(beta, coords, b, c.clustering.t_beta, c.clustering.t_d)
        corr = out.correction.double().cpu().numpy()[cl.points]
        sigma = c.clustering.share_sigma  # energies and positions share the hits when > 0
        e_raw = shared_cluster_energies(cl, coords, energy, b, sigma)
        res = {
            "cluster": cl.labels.astype(np.int32),
            "beta": beta.astype(np.float32),
            "n_clusters": np.bincount(cl.event, minlength=len(events)).astype(np.int32),
            "cluster_energy": (e_raw * corr).astype(np.float32),
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            for j, q in enumerate("xyz"):
                ex = shared_cluster_energies(cl, coords, energy * pos[:, j], b, sigma)
                res[f"cluster_{q}"] = np.where(e_raw > 0, ex / e_raw, np.nan).astype(np.float32)
        if self.has_position and out.position is not None:
            scale = self.config.model.condensation.position_scale
            learned = pos[cl.points, :2] + scale * out.position.double().cpu().numpy()[cl.points]
            res["cluster_x_learned"] = learned[:, 0].astype(np.float32)
            res["cluster_y_learned"] = learned[:, 1].astype(np.float32)
        if self.clue:
            k = c.clue
            res["clue_cluster"] = clue_labels(
                clue_coords(pos, c.clue_space), energy,
                k.dc, k.rho_c, k.outlier_factor, batch=b, kernel=k.kernel,
                kernel_params=tuple(k.kernel_params) or None,
            ).astype(np.int32)  # fmt: skip
        self._tock("postprocess")
        return res

    def _event_columns(
        self, events: list[Any], kept: np.ndarray, counts: np.ndarray
    ) -> dict[str, Any]:
        """Per-hit, per-cluster and per-entry columns of a chunk (see :class:`Predictor`)."""
        n = len(counts)
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(events), self.batch_size):
            for name, v in self._clusters(events[start : start + self.batch_size]).items():
                parts.setdefault(name, []).append(v)
        empty = self.empty_columns()
        flat = {
            name: np.concatenate(parts[name]) if parts else ak.to_numpy(ak.flatten(empty[name]))
            for name in self.columns[2:]
            if name != "n_clusters"
        }
        n_clusters = np.zeros(n, dtype=np.int32)
        if parts:
            n_clusters[kept] = np.concatenate(parts["n_clusters"])
        cols: dict[str, Any] = {"n_clusters": n_clusters}
        for name, v in flat.items():
            per_entry = counts if is_hit_column(name) else n_clusters
            cols[name] = ak.unflatten(np.ascontiguousarray(v), per_entry)
        return cols

    def empty_columns(self) -> dict[str, Any]:
        """The columns of zero entries (their types make an empty output tree)."""
        cols: dict[str, Any] = {
            "status": np.zeros(0, dtype=np.int32),
            "entry": np.zeros(0, dtype=np.int64),
            "n_clusters": np.zeros(0, dtype=np.int32),
        }
        for name in self.columns[2:]:
            if name != "n_clusters":
                dtype = np.int32 if name in ("cluster", "clue_cluster") else np.float32
                cols[name] = ak.unflatten(np.zeros(0, dtype=dtype), np.zeros(0, np.int64))
        return {name: cols[name] for name in self.columns}


def n_entries(path: str | os.PathLike, tree: str) -> int | None:
    """Number of entries of ``tree`` in ``path`` (``None`` if it cannot be read here; the
    reader then raises the error that names the problem)."""
    import uproot

    try:
        with uproot.open(path) as f:
            return int(f[tree].num_entries)
    except Exception:
        return None


def iter_predictions(
    predictor: Predictor,
    path: str | os.PathLike,
    schema: Schema,
    *,
    step_size: int | str = "100 MB",
    summary: ReadSummary | None = None,
    progress: bool = True,
) -> Iterator[dict[str, Any]]:
    """Stream the output columns of one input file, chunk by chunk, in entry order.

    Parameters
    ----------
    predictor:
        The loaded run.
    path:
        One ROOT file.
    schema:
        The input's schema (the branches prediction does not need are not read).
    step_size:
        Entries (int) or memory (``"100 MB"``) per chunk.
    summary:
        The read's counts are added to it (its ``files`` gets ``path``).
    progress:
        Show a tqdm bar over the file's entries.
    """
    from tqdm.auto import tqdm

    read_schema = predictor.read_schema(schema)
    if summary is not None:
        summary.files.append(os.fspath(path))
    total = n_entries(path, schema.tree) if progress else None
    bar = tqdm(total=total, desc=Path(path).name, unit="entry", disable=not progress, leave=False)
    try:
        for arr, info in iterate_events(path, read_schema, step_size, report=True):
            cols = predictor.predict_chunk(arr, info, read_schema, summary)
            bar.update(len(arr))
            yield cols
    finally:
        bar.close()


@lru_cache(maxsize=2)
def cached_predictor(
    run: str, device: str, postprocess: str, batch_size: int, clue: bool = False
) -> Predictor:
    """:meth:`Predictor.load`, once per process for the same arguments (used by the tasks
    of a Dask cluster, which load the run in each worker)."""
    return Predictor.load(
        run, device=device, postprocess=postprocess, batch_size=batch_size, clue=clue
    )


def predict(
    run: str | Path | Predictor,
    files: str | os.PathLike | Sequence[str | os.PathLike],
    schema: Schema | str | Path | None = None,
    *,
    device: Device = "auto",
    batch_size: int = 32,
    step_size: int | str = "100 MB",
    postprocess: str = "all",
    clue: bool = False,
    summary: ReadSummary | None = None,
    progress: bool = False,
) -> ak.Array:
    """Predict the showers of every entry of ``files`` and return them (no file is written).

    Parameters
    ----------
    run:
        A run folder or checkpoint of a fraction or condensation run, or a loaded
        :class:`Predictor`.
    files:
        A ROOT file, a glob pattern or a list of them.
    schema:
        A :class:`~calo.io.Schema` or its YAML file; default the run's ``schema.yaml``, else
        calo's layout.
    device, batch_size, postprocess, clue:
        See :meth:`Predictor.load`.
    step_size:
        Entries (int) or memory (``"100 MB"``) per chunk.
    summary:
        The read's counts (events read, skipped by reason) are added to it.
    progress:
        Show a tqdm bar over each file's entries.

    Returns
    -------
    ak.Array
        One record per input entry, the files one after the other in order, with the fields
        of the output files (module docstring): ``status``, ``entry``, ``frac_<m>_<k>``
        (jagged, the input's hits), ``shower_energy_<m>``, ``shower_x_<m>`` ... (``K``
        values); for a condensation run ``cluster``, ``beta`` (per hit), ``n_clusters``,
        ``cluster_energy``, ``cluster_x`` ... (per cluster).

    Examples
    --------
    >>> pred = predict("runs/gravnet", "events.root")  # doctest: +SKIP
    >>> pred.fields[:3], pred.status.tolist()[:3]  # doctest: +SKIP
    (['status', 'entry', 'frac_model_0'], [0, 0, 0])
    """
    from calo.io import expand_paths
    from calo.predict.output import columns_to_array

    predictor = (
        run
        if isinstance(run, Predictor)
        else Predictor.load(
            run, device=device, postprocess=postprocess, batch_size=batch_size, clue=clue
        )
    )
    schema = resolve_schema(predictor.run_dir, schema)
    chunks = [
        columns_to_array(cols)
        for path in expand_paths(files)
        for cols in iter_predictions(
            predictor, path, schema, step_size=step_size, summary=summary, progress=progress
        )
    ]
    if not chunks:
        return columns_to_array(predictor.empty_columns())
    return ak.concatenate(chunks) if len(chunks) > 1 else chunks[0]


@dataclass
class PredictResult:
    """What :func:`predict_files` wrote.

    Attributes
    ----------
    outputs:
        One output file per input file, in order.
    entries:
        Entries written to each (= the input's entries).
    summaries:
        The read summary of each input file.
    summary:
        All of them merged.
    """

    outputs: list[Path]
    entries: list[int]
    summaries: list[ReadSummary]
    summary: ReadSummary


def output_paths(files: Sequence[str | os.PathLike], out_dir: str | Path) -> list[Path]:
    """``<out_dir>/<input stem>_pred.root`` for each input, refusing to overwrite an input
    and two inputs with the same stem (their outputs would overwrite each other).

    Examples
    --------
    >>> [p.name for p in output_paths(["a/x.root", "b/y.root"], "out")]
    ['x_pred.root', 'y_pred.root']
    >>> output_paths(["a/x.root", "b/x.root"], "out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: inputs a/x.root and b/x.root have the same name, ...
    """
    outs: list[Path] = []
    seen: dict[str, str] = {}
    inputs = {Path(f).resolve() for f in files}
    for f in files:
        stem = Path(f).stem
        if stem in seen:
            raise ConfigError(
                f"inputs {seen[stem]} and {os.fspath(f)} have the same name, so both would be "
                f"written to {stem}_pred.root; predict them into different --out folders"
            )
        seen[stem] = os.fspath(f)
        out = Path(out_dir) / f"{stem}_pred.root"
        if out.resolve() in inputs:
            raise ConfigError(
                f"the output {out} is one of the input files; refusing to overwrite an input: "
                "choose another --out folder",
                file=out,
            )
        outs.append(out)
    return outs


def _file_task(
    run: str,
    path: str,
    out: str,
    schema: Schema,
    options: dict[str, Any],
    threads: int | None,
) -> tuple[int, ReadSummary]:
    """Predict one file into ``out`` (a task of :func:`calo.parallel.map_tasks`)."""
    from calo.predict.output import OutputWriter

    if threads is not None:
        torch.set_num_threads(threads)
    predictor = cached_predictor(
        run, options["device"], options["postprocess"], options["batch_size"], options["clue"]
    )
    summary = ReadSummary()
    with OutputWriter(
        out, options["tree"] or schema.tree, predictor.empty_columns(), options["format"]
    ) as writer:
        for cols in iter_predictions(
            predictor,
            path,
            schema,
            step_size=options["step_size"],
            summary=summary,
            progress=options["progress"],
        ):
            writer.extend(cols)
    return writer.entries, summary


def _step_entries(path: str, schema: Schema, step_size: int | str) -> tuple[int, int]:
    """``(entries in the file, entries per chunk)``: ``step_size`` as a number of entries,
    as :meth:`uproot.TTree.iterate` turns a memory size into one, so that one task per chunk
    reads the chunks a serial run reads. The file, tree and branches are checked first by
    the reader (a :class:`~calo.errors.DataError` that names them)."""
    import uproot

    first = iterate_events(path, schema, 1)
    next(first, None)
    first.close()
    branches = list(dict.fromkeys(schema.hit_branches().values()))
    try:
        with uproot.open(path) as f:
            tree = f[schema.tree]
            n = int(tree.num_entries)
            if n == 0:
                return 0, 1
            if isinstance(step_size, int):
                step = step_size
            else:
                step = int(tree.num_entries_for(step_size, branches))
    except Exception as e:
        raise DataError(
            f"cannot size the chunks of the file ({type(e).__name__}: {e}); check the step "
            "size ('100 MB' or a number of entries) and the file",
            file=path,
            tree=schema.tree,
        ) from None
    if step < 1:
        raise ConfigError(f"step_size must be at least 1 entry, got {step_size!r}")
    return n, step


def _chunk_task(
    run: str,
    path: str,
    schema: Schema,
    start: int,
    stop: int,
    part: str,
    options: dict[str, Any],
    threads: int | None,
) -> tuple[int, ReadSummary]:
    """Predict entries ``[start, stop)`` of one file into the part file ``part`` (a task of
    :func:`calo.parallel.map_tasks`; the parts are joined in order afterwards)."""
    import uproot

    from calo.predict.output import OutputWriter

    if threads is not None:
        torch.set_num_threads(threads)
    predictor = cached_predictor(
        run, options["device"], options["postprocess"], options["batch_size"], options["clue"]
    )
    branches = list(dict.fromkeys(schema.hit_branches().values()))
    try:
        with uproot.open(path) as f:
            arr = f[schema.tree].arrays(branches, entry_start=start, entry_stop=stop)
    except Exception as e:
        raise DataError(
            f"cannot read entries {start} to {stop} ({type(e).__name__}: {e}); the file is "
            "truncated or corrupt: rewrite it",
            file=path,
            tree=schema.tree,
            entry=start,
        ) from None
    summary = ReadSummary()
    cols = predictor.predict_chunk(arr, ChunkInfo(path, schema.tree, start, stop), schema, summary)
    with OutputWriter(part, "part", predictor.empty_columns(), "ttree") as writer:
        writer.extend(cols)
    return writer.entries, summary


def _join_parts(parts: list[Path], out: Path, tree: str, template: dict[str, Any], fmt: str) -> int:
    """Write the part files of :func:`_chunk_task` one after the other into ``out`` (one part
    in memory at a time) and delete them; returns the entries written."""
    import uproot

    from calo.predict.output import HIT_COUNTER, OutputWriter, is_jagged_column

    with OutputWriter(out, tree, template, fmt) as writer:
        for part in parts:
            with uproot.open(part) as f:
                arr = f["part"].arrays()
            cols = {
                name: (arr[name] if is_jagged_column(name) else ak.to_numpy(arr[name]))
                for name in arr.fields
                if name != HIT_COUNTER
            }
            writer.extend(cols)
    for part in parts:
        part.unlink()
    return writer.entries


def predict_files(
    run: str | Path,
    files: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | Path,
    *,
    schema: Schema | str | Path | None = None,
    device: Device = "auto",
    batch_size: int = 32,
    step_size: int | str = "100 MB",
    postprocess: str = "all",
    clue: bool = False,
    fmt: str = "ttree",
    tree: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    split: str = "file",
    progress: bool = True,
) -> PredictResult:
    """Predict every input file into ``<out_dir>/<stem>_pred.root``, serially or on Dask.

    Each output has one entry per input entry, in order (a friend of the input tree, module
    docstring). ``<out_dir>/read_summary.json`` gets each file's read summary and their sum,
    ``<out_dir>/predict.json`` the run, the options and the status codes.

    Parameters
    ----------
    run:
        Run folder or checkpoint of a fraction or condensation run.
    files:
        ROOT files or glob patterns.
    out_dir:
        Output folder (created).
    schema, device, batch_size, step_size, postprocess, clue:
        As for :func:`predict`.
    fmt:
        ``"ttree"`` (default; a friend tree) or ``"rntuple"``.
    tree:
        Name of the output tree (default: the input tree's).
    workers, scheduler:
        One task per file on a local Dask cluster of ``workers`` single-threaded processes,
        or on the cluster at ``scheduler``; each worker loads the run itself. The outputs are
        those of a serial run.
    split:
        ``"file"``: one task per input file; ``"chunk"``: one task per chunk of
        ``step_size`` entries (to spread one large file over a cluster), each writing a part
        file ``<out_dir>/.parts-<stem>/`` that is then joined in order into the output. Both
        give the same output, bit for bit, serially or on a cluster.
    progress:
        Show tqdm bars (over entries serially, over tasks on a cluster).

    Examples
    --------
    >>> res = predict_files("runs/gravnet", ["a.root"], "pred")  # doctest: +SKIP
    >>> res.outputs, res.summary.skipped  # doctest: +SKIP
    ([PosixPath('pred/a_pred.root')], {})
    """
    import json

    import calo
    from calo.config import to_dict
    from calo.io import expand_paths
    from calo.parallel import dask_client, map_tasks
    from calo.predict.output import FORMATS

    if fmt not in FORMATS:
        raise ConfigError(f"output format must be one of {list(FORMATS)}, got {fmt!r}")
    predictor = cached_predictor(str(run), device, postprocess, batch_size, clue)
    schema = resolve_schema(predictor.run_dir, schema)
    paths = expand_paths(files)
    if not paths:
        raise DataError("no input files given")
    outs = output_paths(paths, out_dir)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError("--out must be a folder, not a file", file=out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if split not in ("file", "chunk"):
        raise ConfigError(f"split must be 'file' or 'chunk', got {split!r}")
    read_schema = predictor.read_schema(schema)
    # the chunks in entries, as the reader sizes them: file and chunk tasks read the same ones
    sizes = [_step_entries(p, read_schema, step_size) for p in paths]
    with dask_client(workers, scheduler) as client:
        options = {
            "device": device,
            "postprocess": postprocess,
            "batch_size": batch_size,
            "clue": clue,
            "step_size": step_size,
            "format": fmt,
            "tree": tree,
            "progress": progress and client is None and split == "file",
        }
        threads = 1 if client is not None else None
        if split == "file":
            args = [
                (str(run), p, str(o), schema, {**options, "step_size": step}, threads)
                for p, o, (_, step) in zip(paths, outs, sizes, strict=True)
            ]
            results = map_tasks(
                _file_task,
                args,
                client=client,
                progress=progress and (client is not None or len(paths) > 1),
                desc="calo-predict",
                unit="file",
            )
        else:
            chunk_args: list[tuple[Any, ...]] = []
            owner: list[int] = []
            for i, (p, o, (n, step)) in enumerate(zip(paths, outs, sizes, strict=True)):
                part_dir = o.parent / f".parts-{o.stem}"
                part_dir.mkdir(parents=True, exist_ok=True)
                for j, start in enumerate(range(0, n, step)):
                    part = str(part_dir / f"part-{j:06d}.root")
                    stop = min(start + step, n)
                    chunk_args.append(
                        (str(run), p, read_schema, start, stop, part, options, threads)
                    )
                    owner.append(i)
            done = map_tasks(
                _chunk_task,
                chunk_args,
                client=client,
                progress=progress,
                desc="calo-predict",
                unit="chunk",
            )
            results = []
            template = predictor.empty_columns()
            for i, (p, o) in enumerate(zip(paths, outs, strict=True)):
                mine = [k for k, w in enumerate(owner) if w == i]
                summary = ReadSummary(files=[p])
                for k in mine:
                    summary.merge(done[k][1])
                n = _join_parts(
                    [Path(chunk_args[k][5]) for k in mine], o, tree or schema.tree, template, fmt
                )
                (o.parent / f".parts-{o.stem}").rmdir()
                results.append((n, summary))
    entries = [r[0] for r in results]
    summaries = [r[1] for r in results]
    total = ReadSummary()
    for s in summaries:
        total.merge(s)
    per_file = [
        {"input": p, "output": str(o), "entries": n, **s.to_dict()}
        for p, o, n, s in zip(paths, outs, entries, summaries, strict=True)
    ]
    out_dir = Path(out_dir)
    (out_dir / "read_summary.json").write_text(
        json.dumps({"total": total.to_dict(), "files": per_file}, indent=1)
    )
    info = {
        "calo_version": calo.__version__,
        "run": str(run),
        "checkpoint": str(predictor.checkpoint),
        "task": predictor.task,
        "model": predictor.config.model.name,
        "n_showers": predictor.n_showers,
        "calibration": (
            str(predictor.run_dir / CALIBRATION_FILE) if predictor.calibration else None
        ),
        "methods": list(predictor.methods),
        "clustering": (
            to_dict(predictor.config.condensation) if predictor.task == "condensation" else None
        ),
        "columns": predictor.columns,
        "status_codes": {str(k): v for k, v in STATUS_DOC.items()},
        "schema": to_dict(schema),
        "options": {k: v for k, v in options.items() if k != "progress"},
        "workers": workers,
        "scheduler": scheduler,
        "split": split,
        "entries_per_chunk": [step for _, step in sizes],
        "inputs": paths,
        "outputs": [str(o) for o in outs],
    }
    (out_dir / "predict.json").write_text(json.dumps(info, indent=1, default=str))
    return PredictResult(outs, entries, summaries, total)
