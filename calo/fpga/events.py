"""Toy input events in the FPGA paper's format, for tests and benchmarks of calo.fpga.

Iiyama et al. (2021) feed GarNet up to V_max hits around the seed (the most energetic hit),
sorted by energy, with 4 features ``((x - x_seed)/18, (y - y_seed)/18, (z - 350)/200,
E[GeV] * 0.5)`` and the number of valid hits n. :func:`toy_events` draws events with that
layout from a simple shower picture (numpy only): a shower of 10-100 GeV deposits a
log-normal share of its energy per hit, transverse spread growing with depth, plus a few
soft pileup hits spread over the window. Padded hits are zero.

Examples
--------
>>> import numpy as np
>>> X, n = toy_events(np.random.default_rng(0), 5, 128)
>>> X.shape, n.dtype.kind, bool((X[0, n[0]:] == 0).all())
((5, 128, 4), 'i', True)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from calo.errors import ConfigError

__all__ = ["toy_events"]


def toy_events(
    rng: np.random.Generator,
    n_events: int,
    n_vertices: int = 128,
    n_min: int = 16,
    n_max: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Draw ``n_events`` padded events ``X [B, V, 4]`` and hit counts ``n [B]``.

    ``n`` is uniform in ``n_min..n_max`` (``n_max`` defaults to ``n_vertices``); hits are
    sorted by decreasing energy, the first one is the seed at the origin.

    Raises
    ------
    ConfigError
        If the range of n is empty or exceeds ``n_vertices``.

    Examples
    --------
    >>> import numpy as np
    >>> X, n = toy_events(np.random.default_rng(0), 3, 16, n_min=4, n_max=8)
    >>> X.shape, n.tolist()
    ((3, 16, 4), [8, 7, 6])
    >>> X[0, 0, :2].tolist(), bool((np.diff(X[0, :8, 3]) <= 0).all())  # seed first, sorted
    ([0.0, 0.0], True)
    >>> toy_events(np.random.default_rng(0), 3, 16, n_max=32)
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: need 0 <= n_min <= n_max <= n_vertices, got 16, 32
    """
    n_max = n_vertices if n_max is None else n_max
    if not 0 <= n_min <= n_max <= n_vertices:
        raise ConfigError(f"need 0 <= n_min <= n_max <= n_vertices, got {n_min}, {n_max}")
    X = np.zeros((n_events, n_vertices, 4))
    n = rng.integers(n_min, n_max + 1, size=n_events).astype(np.int64)
    for b in range(n_events):
        k = int(n[b])
        if k == 0:
            continue
        e0 = rng.uniform(10.0, 100.0)
        n_pu = rng.binomial(k, 0.15)
        n_sh = k - n_pu
        depth = rng.gamma(3.0, 0.15, size=n_sh).clip(0, 1)  # (z - 350)/200
        spread = 1.0 + 6.0 * depth  # cm
        xy = rng.normal(0.0, 1.0, size=(n_sh, 2)) * spread[:, None]
        share = rng.lognormal(0.0, 1.2, size=n_sh)
        e = e0 * 0.3 * share / share.sum()
        xy_pu = rng.uniform(-18.0, 18.0, size=(n_pu, 2))
        z_pu = rng.uniform(0.0, 1.0, size=n_pu)
        e_pu = rng.exponential(0.2, size=n_pu)
        feats = np.concatenate(
            [
                np.column_stack([xy / 18.0, depth, e * 0.5]),
                np.column_stack([xy_pu / 18.0, z_pu, e_pu * 0.5]),
            ]
        )
        order = np.argsort(-feats[:, 3], kind="stable")
        feats = feats[order]
        feats[:, :2] -= feats[0, :2]  # seed at the origin
        X[b, :k] = feats
    return X, n
