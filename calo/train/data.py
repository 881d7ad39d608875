"""Training data: the built-in simulated sample and a Lightning data module.

:func:`builtin_data_file` simulates two-shower events with :mod:`calo.sim` (fixed seed) into a
cache file once and returns its path. :class:`CaloDataModule` reads ROOT files with
:class:`calo.io.HitDataset`, splits them into training and validation events (seeded), fits the
feature normalisation on the training events (or applies a given one, e.g. from a checkpoint)
and serves torch_geometric batches.

Examples
--------
>>> from calo.train.config import DataConfig
>>> dm = CaloDataModule(DataConfig(files=["a.root"]))
>>> dm.config.batch_size
8
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import Sampler
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from calo.errors import ConfigError, DataError
from calo.fpga.data import E_PI_OVERRIDES
from calo.io.schema import Schema
from calo.train.config import DataConfig
from calo.train.resume import ResumableGraphLoader

__all__ = [
    "BUILTIN_SAMPLES",
    "CONDENSATION_OVERRIDES",
    "SCHEMA_FILE",
    "CaloDataModule",
    "EpochShuffleSampler",
    "builtin_data_file",
    "check_truth",
    "default_cache_dir",
    "load_schema",
    "split_indices",
]

#: the branch schema a run was trained with, in its run folder (``calo-evaluate --data`` and
#: ``calo-predict`` read new files with it by default)
SCHEMA_FILE = "schema.yaml"


def load_schema(path: str | Path = "") -> Schema:
    """The branch schema of ``data.schema``: the YAML file at ``path``, or calo's own layout
    for ``""``.

    A missing file, invalid YAML, an unknown key or a bad value raise one
    :class:`~calo.errors.ConfigError` line naming the file.

    Examples
    --------
    >>> load_schema("").x
    'hit_x'
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "s.yaml"
    >>> _ = p.write_text("preset: calo\\ntree: hits\\nx: rechit_x\\n")
    >>> load_schema(p).tree, load_schema(p).x
    ('hits', 'rechit_x')
    >>> load_schema("/no/such/schema.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: branch schema file does not exist; ... [file /no/such/schema.yaml]
    """
    if not str(path):
        return Schema.calo()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "branch schema file does not exist; give the YAML file of calo.io.Schema fields "
            "(--schema FILE.yaml or data.schema=FILE.yaml), or no schema for calo's own layout",
            file=path,
        )
    try:
        return Schema.from_yaml(path)
    except ConfigError as e:
        message = " ".join(e.message.split()).replace(f"configuration file {path} ", "file ")
        raise ConfigError(f"invalid branch schema: {message}", file=path, **e.where) from None


def default_cache_dir() -> Path:
    """``$CALO_CACHE`` if set, else ``~/.cache/calo``.

    Examples
    --------
    >>> default_cache_dir().name in ("calo", os.environ.get("CALO_CACHE", "calo").split("/")[-1])
    True
    """
    env = os.environ.get("CALO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "calo"


#: calo-simulate overrides of the condensation task's built-in sample: 1 to 10 electrons,
#: photons and charged pions of 5-60 GeV per event (Poisson mean 4), 30 % of them overlapping
#: an earlier particle within 2 cm, with the default noise
CONDENSATION_OVERRIDES: tuple[str, ...] = (
    "gun.multiplicity=poisson",
    "gun.mean_particles=4",
    "gun.min_particles=1",
    "gun.max_particles=10",
    "gun.pdg=[11,22,211,-211]",
    "gun.overlap_fraction=0.3",
)

#: file-name stem and calo-simulate overrides of each task's built-in sample
BUILTIN_SAMPLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "fractions": ("twoshower", ()),
    "e_pi": ("e_pi", E_PI_OVERRIDES),
    "condensation": ("multi", CONDENSATION_OVERRIDES),
}


def builtin_data_file(
    n_events: int, seed: int, cache_dir: str | Path = "", task: str = "fractions"
) -> Path:
    """Path of a task's built-in sample, simulated (atomically) if it is not cached.

    ``task="fractions"``: two-shower events of the default simulation; ``task="e_pi"``: one
    electron or charged pion of 10-100 GeV per event with background hits
    (:data:`calo.fpga.data.E_PI_OVERRIDES`); ``task="condensation"``: 1 to 10 particles per
    event (:data:`CONDENSATION_OVERRIDES`). The file name holds the event count, the seed and
    a hash of the simulation configuration, so a changed simulation never reuses a stale file.

    Examples
    --------
    >>> import tempfile
    >>> builtin_data_file(4, 1, tempfile.mkdtemp()).suffix
    '.root'
    >>> builtin_data_file(4, 1, tempfile.mkdtemp(), task="e_pi").name.startswith("e_pi_4ev")
    True
    >>> builtin_data_file(4, 1, tempfile.mkdtemp(), task="condensation").name[:9]
    'multi_4ev'
    """
    from calo import __version__
    from calo.config import apply_overrides, to_dict
    from calo.sim import SimConfig
    from calo.sim.writer import write_root

    if task not in BUILTIN_SAMPLES:
        raise DataError(f"no built-in sample for task {task!r}; choose {sorted(BUILTIN_SAMPLES)}")
    stem, overrides = BUILTIN_SAMPLES[task]
    cfg = apply_overrides(SimConfig(), list(overrides))
    tag = hashlib.sha1(
        json.dumps([to_dict(cfg), __version__], sort_keys=True, default=str).encode()
    ).hexdigest()[:10]
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    path = folder / f"{stem}_{n_events}ev_seed{seed}_{tag}.root"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.root")
    write_root(tmp, config=cfg, n_events=n_events, seed=seed, write_config=False)
    os.replace(tmp, path)
    return path


def check_truth(events: list[Data], source: str) -> None:
    """Raise :class:`~calo.errors.DataError` unless the events carry usable truth fractions.

    Examples
    --------
    >>> check_truth([Data(x=torch.zeros(1, 1))], "mem")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    calo.errors.DataError: ...
    """
    if not events:
        raise DataError("no events to train or evaluate on", file=source)
    for i, d in enumerate(events):
        for name in ("y", "energy", "pos"):
            if getattr(d, name, None) is None:
                raise DataError(
                    f"event has no {name!r}: training and evaluation need truth fractions "
                    "(hit_frac_*), hit energies and positions",
                    file=source,
                    entry=i,
                )
        if d.y.dim() != 2 or d.y.shape[0] != d.num_nodes:
            raise DataError(
                f"truth y has shape {tuple(d.y.shape)}, expected [N, K]", file=source, entry=i
            )
    if not any(bool((d.y > 0).any()) for d in events):
        raise DataError(
            "no hit has a nonzero truth fraction (hit_frac_* all zero): nothing to learn",
            file=source,
        )


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded random split of ``range(n)`` into training and validation indices.

    Examples
    --------
    >>> tr, va = split_indices(10, 0.2, 0)
    >>> len(tr), len(va), sorted(tr + va) == list(range(10))
    (8, 2, True)
    """
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[n_val:]), sorted(perm[:n_val])


class EpochShuffleSampler(Sampler[int]):
    """Shuffles ``range(n)`` with a permutation fixed by ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch, so the order of an epoch does not
    depend on what ran before it: a run resumed from a checkpoint sees the same batches as an
    uninterrupted one (from a checkpoint written inside an epoch, with
    :class:`calo.train.resume.ResumableLoaderMixin`, which skips the batches already trained).

    Examples
    --------
    >>> s = EpochShuffleSampler(5, seed=1)
    >>> a = list(s); s.set_epoch(1); b = list(s); s.set_epoch(0)
    >>> sorted(a) == list(range(5)), a == list(s), a != b
    (True, True, True)
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class CaloDataModule(L.LightningDataModule):
    """Lightning data module over ROOT files or the built-in sample.

    Parameters
    ----------
    config:
        :class:`~calo.train.config.DataConfig`.
    normalization:
        A :class:`calo.io.Normalization` dict to apply (``None``: fit on the training events).
    seed:
        Seed of the per-epoch shuffling (:class:`EpochShuffleSampler`).
    schema:
        The branch schema of the files; ``None`` loads ``config.schema`` (:func:`load_schema`).
    task:
        Whose built-in sample to read when ``config.files`` is empty (:func:`builtin_data_file`).

    Attributes
    ----------
    schema:
        The :class:`calo.io.Schema` every read uses.
    read_summary:
        The :class:`calo.io.ReadSummary` of the read (after :meth:`setup`).

    Examples
    --------
    >>> CaloDataModule(DataConfig()).normalization is None
    True
    >>> CaloDataModule(DataConfig()).schema.tree
    'events'
    """

    def __init__(
        self,
        config: DataConfig,
        normalization: Mapping[str, Any] | None = None,
        seed: int = 0,
        schema: Schema | None = None,
        task: str = "fractions",
    ) -> None:
        super().__init__()
        self.config = config
        self.task = task
        self.seed = seed
        self.schema = schema if schema is not None else load_schema(config.schema)
        self.normalization = dict(normalization) if normalization is not None else None
        self.train_set: Any = None
        self.val_set: Any = None
        self.n_features: int | None = None
        self.n_showers: int | None = None
        self.read_summary: Any = None

    def files(self) -> list[str]:
        """The input files (the built-in sample's path when ``config.files`` is empty)."""
        if self.config.files:
            return [str(f) for f in self.config.files]
        return [
            str(
                builtin_data_file(
                    self.config.n_events, self.config.sim_seed, self.config.cache_dir, self.task
                )
            )
        ]

    def prepare_data(self) -> None:
        """Simulate the built-in sample if needed (Lightning calls this on one process)."""
        if not self.config.files:
            self.files()

    def setup(self, stage: str | None = None) -> None:
        """Read, check, split and normalise the events."""
        if self.train_set is not None:
            return
        from calo.io import HitDataset, Normalization

        files = self.files()
        kw: dict[str, Any] = {}
        if self.config.max_events:
            kw["max_events"] = self.config.max_events
        raw = HitDataset(files, schema=self.schema, normalization=None, **kw)
        self.read_summary = raw.summary
        check_truth(raw.data, ", ".join(files))
        if len(raw) < 2:
            raise DataError(
                f"need at least 2 events to split, got {len(raw)}", file=", ".join(files)
            )
        tr, va = split_indices(len(raw), self.config.val_fraction, self.config.split_seed)
        norm: Any = (
            "fit" if self.normalization is None else Normalization.from_dict(self.normalization)
        )
        self.train_set = HitDataset([raw[i] for i in tr], normalization=norm, features=raw.features)
        self.normalization = self.train_set.normalization.to_dict()
        self.val_set = HitDataset(
            [raw[i] for i in va], normalization=self.train_set.normalization, features=raw.features
        )
        self.n_features = raw.features.n_features
        self.n_showers = raw.n_particles

    def train_dataloader(self) -> DataLoader:
        """Training batches, reshuffled every epoch by :class:`EpochShuffleSampler`, resumable
        within an epoch (:class:`calo.train.resume.ResumableGraphLoader`)."""
        return ResumableGraphLoader(
            self.train_set,
            batch_size=self.config.batch_size,
            sampler=EpochShuffleSampler(len(self.train_set), self.seed),
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        """Validation batches in file order."""
        return DataLoader(
            self.val_set,
            batch_size=self.config.batch_size,
            shuffle=False,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
        )
