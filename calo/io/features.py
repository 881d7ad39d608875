"""Hit features and their normalisation; both belong to the dataset, not to the model.

A :class:`FeatureSpec` names the columns of ``Data.x`` (default: the paper's seven inputs);
a :class:`Normalization` maps each raw feature ``f`` to ``(f - offset) / scale``. It is fitted
from data (mean and standard deviation over all hits) or given, and it serialises to a plain
dict so that a checkpoint can carry it.

Available features (per hit; ``dx, dy, dz`` are cell sizes, ``E`` the energy in GeV):

=================== =====================================
name                value
=================== =====================================
``x``, ``y``, ``z`` cell centre (cm)
``transverse_size`` ``sqrt(dx * dy)`` (cm)
``depth``           ``dz`` (cm)
``dx``, ``dy``      transverse cell sizes (cm)
``log_energy``      ``log(E + 1)``
``energy``          ``E``
``layer``           layer index
``time``            hit time (ns; needs ``Schema.time``)
=================== =====================================

Examples
--------
>>> import numpy as np
>>> spec = FeatureSpec()
>>> spec.names[:3], spec.n_features
(('x', 'y', 'z'), 7)
>>> norm = Normalization.fit(np.array([[0.0, 1.0], [2.0, 3.0]]), ("x", "y"))
>>> norm.offset.tolist(), norm.scale.tolist()
([1.0, 2.0], [1.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from calo.errors import ConfigError

__all__ = ["AVAILABLE_FEATURES", "DEFAULT_FEATURES", "FeatureSpec", "Normalization"]

AVAILABLE_FEATURES: tuple[str, ...] = (
    "x",
    "y",
    "z",
    "transverse_size",
    "depth",
    "dx",
    "dy",
    "log_energy",
    "energy",
    "layer",
    "time",
)
"""Names a :class:`FeatureSpec` may use."""

DEFAULT_FEATURES: tuple[str, ...] = (
    "x",
    "y",
    "z",
    "transverse_size",
    "depth",
    "log_energy",
    "layer",
)
"""The paper's inputs: x, y, z, sensor transverse size, sensor depth, log(E+1), layer."""


@dataclass(frozen=True)
class FeatureSpec:
    """The ordered list of per-hit features that make up ``Data.x``.

    Parameters
    ----------
    names:
        Feature names, each one of :data:`AVAILABLE_FEATURES`.

    Examples
    --------
    >>> FeatureSpec(("x", "y", "log_energy")).index("log_energy")
    2
    """

    names: tuple[str, ...] = DEFAULT_FEATURES

    def __post_init__(self) -> None:
        names = tuple(self.names)
        bad = [n for n in names if n not in AVAILABLE_FEATURES]
        if bad:
            raise ConfigError(f"unknown feature(s) {bad}; choose from {list(AVAILABLE_FEATURES)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"feature names must be unique, got {list(names)}")
        if not names:
            raise ConfigError("a FeatureSpec needs at least one feature")
        object.__setattr__(self, "names", names)

    @property
    def n_features(self) -> int:
        """Number of features ``F`` (columns of ``Data.x``)."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Column of feature ``name`` in ``Data.x``."""
        return self.names.index(name)

    def compute(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Build the raw feature matrix ``[N, F]`` (float32) from flat per-hit columns.

        Parameters
        ----------
        cols:
            Flat arrays of length ``N`` keyed by role: ``x, y, z, dx, dy, dz, energy, layer``
            and, if the ``time`` feature is used, ``time``.

        Examples
        --------
        >>> import numpy as np
        >>> c = {k: np.array([1.0, 2.0]) for k in ("x", "y", "z", "dx", "dy", "dz", "layer")}
        >>> c["energy"] = np.array([0.0, np.e - 1])
        >>> FeatureSpec(("x", "log_energy")).compute(c).tolist()
        [[1.0, 0.0], [2.0, 1.0]]
        """
        n = len(cols["energy"])
        out = np.empty((n, self.n_features), dtype=np.float32)
        for j, name in enumerate(self.names):
            if name == "transverse_size":
                out[:, j] = np.sqrt(cols["dx"] * cols["dy"])
            elif name == "depth":
                out[:, j] = cols["dz"]
            elif name == "log_energy":
                out[:, j] = np.log1p(cols["energy"])
            elif name == "time":
                if "time" not in cols:
                    raise ConfigError(
                        "feature 'time' needs a time branch: set Schema.time to its name"
                    )
                out[:, j] = cols["time"]
            else:
                out[:, j] = cols[name]
        return out


@dataclass
class Normalization:
    """Per-feature affine normalisation ``x_norm = (x - offset) / scale``.

    Parameters
    ----------
    names:
        Feature names, in column order.
    offset, scale:
        Arrays of length ``F``; every scale must be finite and non-zero.

    Examples
    --------
    >>> import torch
    >>> n = Normalization(("x", "y"), [1.0, 0.0], [2.0, 1.0])
    >>> n.apply(torch.tensor([[3.0, 5.0]])).tolist()
    [[1.0, 5.0]]
    >>> Normalization.from_dict(n.to_dict()) == n
    True
    """

    names: tuple[str, ...]
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        self.offset = np.asarray(self.offset, dtype=np.float64).reshape(-1)
        self.scale = np.asarray(self.scale, dtype=np.float64).reshape(-1)
        f = len(self.names)
        if self.offset.shape != (f,) or self.scale.shape != (f,):
            raise ConfigError(
                f"normalisation for {f} features needs {f} offsets and scales, got "
                f"{self.offset.size} and {self.scale.size}"
            )
        if not (np.all(np.isfinite(self.offset)) and np.all(np.isfinite(self.scale))):
            raise ConfigError("normalisation offsets and scales must be finite")
        if np.any(self.scale == 0):
            raise ConfigError(f"normalisation scale is zero for {self.zero_scale_names()}")

    def zero_scale_names(self) -> list[str]:
        """Names of features whose scale is zero (for messages)."""
        return [n for n, s in zip(self.names, self.scale, strict=True) if s == 0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Normalization):
            return NotImplemented
        return (
            self.names == other.names
            and np.array_equal(self.offset, other.offset)
            and np.array_equal(self.scale, other.scale)
        )

    @classmethod
    def identity(cls, names: Sequence[str]) -> Normalization:
        """Offset 0 and scale 1 for every feature.

        Examples
        --------
        >>> Normalization.identity(("x",)).scale.tolist()
        [1.0]
        """
        return cls(tuple(names), np.zeros(len(names)), np.ones(len(names)))

    @classmethod
    def fit(cls, x: np.ndarray | torch.Tensor, names: Sequence[str]) -> Normalization:
        """Fit offset = mean and scale = standard deviation of each column of ``x [N, F]``.

        A constant column (standard deviation below 1e-12 of its magnitude) gets scale 1, so
        it maps to 0 instead of dividing by zero.

        Examples
        --------
        >>> import numpy as np
        >>> Normalization.fit(np.array([[1.0, 7.0], [3.0, 7.0]]), ("a", "b")).scale.tolist()
        [1.0, 1.0]
        """
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ConfigError(f"cannot fit {len(names)} features from an array of shape {x.shape}")
        if x.shape[0] == 0:
            raise ConfigError("cannot fit a normalisation from zero hits")
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        tiny = std <= 1e-12 * np.maximum(np.abs(mean), 1.0)
        std[tiny] = 1.0
        return cls(tuple(names), mean, std)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(x - offset) / scale`` for ``x [N, F]`` (float32)."""
        if x.shape[-1] != len(self.names):
            raise ConfigError(
                f"normalisation has {len(self.names)} features, data has {x.shape[-1]}"
            )
        off = torch.as_tensor(self.offset, dtype=torch.float32, device=x.device)
        sc = torch.as_tensor(self.scale, dtype=torch.float32, device=x.device)
        return (x - off) / sc

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`apply`: ``x * scale + offset``.

        Examples
        --------
        >>> import torch
        >>> n = Normalization(("x",), [1.0], [2.0])
        >>> n.invert(n.apply(torch.tensor([[5.0]]))).tolist()
        [[5.0]]
        """
        off = torch.as_tensor(self.offset, dtype=torch.float32, device=x.device)
        sc = torch.as_tensor(self.scale, dtype=torch.float32, device=x.device)
        return x * sc + off

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists of floats) for checkpoints and YAML."""
        return {
            "names": list(self.names),
            "offset": [float(v) for v in self.offset],
            "scale": [float(v) for v in self.scale],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        """Inverse of :meth:`to_dict`; a malformed mapping raises ConfigError."""
        try:
            return cls(tuple(data["names"]), data["offset"], data["scale"])
        except (KeyError, TypeError) as e:
            raise ConfigError(
                f"a normalisation mapping needs 'names', 'offset' and 'scale': {e}"
            ) from None
