"""Event displays coloured by cluster: truth particles and every clustering of one event.

Examples
--------
>>> import tempfile, numpy as np
>>> pos = np.random.default_rng(0).normal(size=(6, 3))
>>> labels = {"truth": np.array([0, 0, 1, 1, -1, 1]), "CLUE": np.array([0, 0, 0, 1, -1, 1])}
>>> cluster_display(pos, np.ones(6), labels, tempfile.mkdtemp() + "/c.png").name
'c.png'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from calo.plots.performance import _plt, _save

__all__ = ["cluster_colors", "cluster_display"]


def cluster_colors(labels: np.ndarray) -> np.ndarray:
    """RGBA colour per hit: one colour per label (a cycle of 20), light grey for -1 (noise).

    Examples
    --------
    >>> c = cluster_colors(np.array([0, -1, 0]))
    >>> c.shape, bool((c[0] == c[2]).all()), c[1].tolist()
    ((3, 4), True, [0.8, 0.8, 0.8, 0.6])
    """
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    labels = np.asarray(labels)
    out = np.array([cmap(int(lab) % 20) for lab in labels]).reshape(-1, 4)
    out[labels < 0] = (0.8, 0.8, 0.8, 0.6)
    return out


def cluster_display(
    pos: np.ndarray,
    energy: np.ndarray,
    labels: Mapping[str, np.ndarray],
    path: str | Path,
) -> Path:
    """One row per labelling (truth, model, CLUE, ...): the x-y and z-x views of the hits,
    marker area growing with the energy, colour by cluster (grey: noise / unclustered).

    Parameters
    ----------
    pos:
        ``[N, 3]`` hit positions (cm).
    energy:
        ``[N]`` hit energies.
    labels:
        Per name ``[N]`` cluster or particle index of every hit, -1 for none.
    path:
        PNG file to write.
    """
    plt = _plt()
    pos, e = np.asarray(pos, float), np.clip(np.asarray(energy, float), 0, None)
    size = 6 + 100 * np.sqrt(e / (e.max() if e.size and e.max() > 0 else 1))
    fig, axes = plt.subplots(len(labels), 2, figsize=(8, 3.2 * len(labels)), squeeze=False)
    for i, (name, lab) in enumerate(labels.items()):
        lab = np.asarray(lab)
        col = cluster_colors(lab)
        n = len(np.unique(lab[lab >= 0]))
        axes[i, 0].scatter(pos[:, 0], pos[:, 1], c=col, s=size, edgecolors="k", linewidths=0.2)
        axes[i, 1].scatter(pos[:, 2], pos[:, 0], c=col, s=size, edgecolors="k", linewidths=0.2)
        axes[i, 0].set_title(f"{name} ({n} clusters): x-y")
        axes[i, 1].set_title(f"{name}: z-x")
        axes[i, 0].set_xlabel("x [cm]")
        axes[i, 0].set_ylabel("y [cm]")
        axes[i, 1].set_xlabel("z [cm]")
        axes[i, 1].set_ylabel("x [cm]")
    return _save(plt, fig, path, dpi=100)
