"""A torch ``Dataset`` of calorimeter events that carries its features and normalisation.

Examples
--------
>>> import torch
>>> from torch_geometric.data import Data
>>> events = [Data(x=torch.tensor([[float(i), 1.0]]), y=torch.ones(1, 2)) for i in range(3)]
>>> ds = HitDataset(events, normalization="fit", features=FeatureSpec(("x", "y")))
>>> len(ds), ds.n_particles, ds.normalization.offset.tolist()
(3, 2, [1.0, 1.0])
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from calo.errors import ConfigError, DataError
from calo.io.features import FeatureSpec, Normalization
from calo.io.reader import Paths, ReadPolicy, _read, pad_particles
from calo.io.schema import Schema
from calo.io.summary import ReadSummary

__all__ = ["HitDataset"]


class HitDataset(Dataset):
    """Events as torch_geometric ``Data``, read from ROOT files or given as a list.

    Batch it with ``torch_geometric.loader.DataLoader`` (no padding).

    Parameters
    ----------
    paths_or_data_list:
        ROOT file(s) / glob pattern(s), read with :func:`calo.io.read_data`, or a list of
        ``Data`` whose ``x`` holds raw (not normalised) features.
    schema:
        Branch names and units, for files (default ``Schema.calo()``, the calo-simulate tree).
    normalization:
        ``None`` keeps raw features; ``"fit"`` fits mean/std on this dataset's hits;
        a :class:`Normalization` (or its ``to_dict()``) is applied as given, for example the
        one of the training set on a validation set or the one stored in a checkpoint.
    features:
        The columns of ``x`` (default: the paper's seven).
    policy:
        Bad-event policy for files; its fields can also be given as keywords.
    **policy_kwargs:
        Fields of :class:`calo.io.ReadPolicy` (``max_events=``, ``max_hits=``, ...).

    Attributes
    ----------
    summary:
        The :class:`ReadSummary` of the read (for a list: its events, nothing skipped).
    normalization:
        The normalisation applied to ``x`` (identity when ``None`` was given).
    n_particles:
        Number of truth columns ``K`` of ``y``.
    features:
        The :class:`FeatureSpec` of ``x``.

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> from torch_geometric.loader import DataLoader
    >>> ds = HitDataset([Data(x=torch.zeros(2, 1), y=torch.zeros(2, 2)),
    ...                  Data(x=torch.zeros(3, 1), y=torch.zeros(3, 2))],
    ...                 features=FeatureSpec(("x",)))
    >>> next(iter(DataLoader(ds, batch_size=2))).batch.tolist()
    [0, 0, 1, 1, 1]
    """

    def __init__(
        self,
        paths_or_data_list: Paths | Sequence[Data],
        schema: Schema | None = None,
        normalization: Literal["fit"] | Normalization | Mapping[str, Any] | None = None,
        *,
        features: FeatureSpec | None = None,
        policy: ReadPolicy | None = None,
        **policy_kwargs: Any,
    ) -> None:
        super().__init__()
        self.features = features or FeatureSpec()
        if policy is not None and policy_kwargs:
            raise ConfigError("give either policy= or its fields as keywords, not both")
        if policy is None:
            try:
                policy = ReadPolicy(**policy_kwargs)
            except TypeError as e:
                raise ConfigError(f"unknown HitDataset option: {e}") from None
        if isinstance(normalization, Mapping):
            normalization = Normalization.from_dict(normalization)
        if isinstance(normalization, str) and normalization != "fit":
            raise ConfigError(
                f"normalization must be None, 'fit' or a Normalization, got {normalization!r}"
            )
        if isinstance(normalization, Normalization) and normalization.names != self.features.names:
            raise ConfigError(
                f"normalisation is for features {list(normalization.names)}, the dataset has "
                f"{list(self.features.names)}"
            )

        if _is_data_list(paths_or_data_list):
            data = [copy.copy(d) for d in paths_or_data_list]  # type: ignore[union-attr]
            self.summary = ReadSummary(
                events_read=len(data),
                events_kept=len(data),
                hits_read=sum(d.num_nodes for d in data),
                hits_kept=sum(d.num_nodes for d in data),
            )
            if data:
                f_have = {d.x.shape[1] for d in data}
                if f_have != {self.features.n_features}:
                    raise DataError(
                        f"the events have {sorted(f_have)} feature columns, the FeatureSpec "
                        f"{list(self.features.names)} has {self.features.n_features}"
                    )
                k = max(d.y.shape[1] for d in data)
                if any(d.y.shape[1] != k for d in data):
                    data = [pad_particles(d, k) for d in data]
            to_apply = normalization
        else:
            direct = normalization if isinstance(normalization, Normalization) else None
            data, self.summary = _read(
                paths_or_data_list,  # type: ignore[arg-type]
                schema or Schema.calo(),
                policy,
                self.features,
                direct,
            )
            to_apply = None if direct is not None else normalization

        if to_apply == "fit":
            if not data:
                raise DataError("cannot fit a normalisation on an empty dataset")
            to_apply = Normalization.fit(torch.cat([d.x for d in data]), self.features.names)
        if isinstance(to_apply, Normalization):
            for d in data:
                d.x = to_apply.apply(d.x)
        if normalization is None:
            self.normalization = Normalization.identity(self.features.names)
        elif isinstance(normalization, Normalization):
            self.normalization = normalization
        else:
            self.normalization = to_apply  # type: ignore[assignment]
        self.data: list[Data] = list(data)
        self.n_particles: int = self.data[0].y.shape[1] if self.data else 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx: int) -> Data:
        return self.data[idx]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} events, K={self.n_particles}, "
            f"features={list(self.features.names)})"
        )


def _is_data_list(obj: Any) -> bool:
    if isinstance(obj, str | bytes) or not isinstance(obj, Sequence):
        return False
    return len(obj) > 0 and all(isinstance(d, Data) for d in obj)
