"""Event displays: x-y and z-r views of the hits of one event.

Examples
--------
>>> from calo.sim import generate
>>> fig = plot_event(generate(n_events=1, seed=0)[0])
>>> len(fig.axes) >= 2
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calo.errors import ConfigError

__all__ = ["event_arrays", "plot_event"]


def event_arrays(event: Any) -> dict[str, np.ndarray]:
    """Hit arrays of one event: ``x, y, z, dx, dy, energy, noise, frac0`` and particle impacts.

    Accepts one record of the awkward array made by :func:`calo.sim.generate` (or read from
    the ROOT file with fields ``hit``/``particle``), or a torch_geometric ``Data`` with
    ``pos`` [N, 3], ``energy`` [N] and ``y`` [N, K] (and optionally ``noise``).

    Examples
    --------
    >>> from calo.sim import generate
    >>> sorted(event_arrays(generate(n_events=1, seed=0)[0]))[:3]
    ['dx', 'dy', 'energy']
    """
    if hasattr(event, "pos") and hasattr(event, "energy"):
        pos = np.asarray(event.pos.detach().cpu().numpy(), dtype=np.float64)
        energy = np.asarray(event.energy.detach().cpu().numpy(), dtype=np.float64)
        y = getattr(event, "y", None)
        frac = y.detach().cpu().numpy() if y is not None else np.zeros((len(energy), 1))
        noise = getattr(event, "noise", None)
        noise = noise.detach().cpu().numpy().astype(bool) if noise is not None else frac.sum(1) <= 0
        n = len(energy)
        size = np.full(n, np.nan)
        impacts = np.zeros((0, 2))
        pxy = getattr(event, "particle_xy", None)
        if pxy is not None:
            impacts = pxy.detach().cpu().numpy().reshape(-1, 2)
        return {
            "x": pos[:, 0],
            "y": pos[:, 1],
            "z": pos[:, 2],
            "dx": size,
            "dy": size,
            "energy": energy,
            "noise": noise,
            "frac0": frac[:, 0] if frac.shape[1] else np.zeros(n),
            "impacts": impacts,
        }
    hit = event["hit"]
    particle = event["particle"]

    def get(rec: Any, name: str) -> np.ndarray:
        return np.asarray(rec[name].to_numpy() if hasattr(rec[name], "to_numpy") else rec[name])

    n = len(get(hit, "energy"))
    return {
        "x": get(hit, "x").astype(np.float64),
        "y": get(hit, "y").astype(np.float64),
        "z": get(hit, "z").astype(np.float64),
        "dx": get(hit, "dx").astype(np.float64),
        "dy": get(hit, "dy").astype(np.float64),
        "energy": get(hit, "energy").astype(np.float64),
        "noise": get(hit, "noise").astype(bool),
        "frac0": get(hit, "frac_0").astype(np.float64) if "frac_0" in hit.fields else np.zeros(n),
        "impacts": np.column_stack([get(particle, "x"), get(particle, "y")]).astype(np.float64),
    }


def plot_event(
    event: Any,
    color: str = "fraction",
    title: str | None = None,
    figsize: tuple[float, float] = (11.0, 4.6),
    energy_range: tuple[float, float] | None = None,
) -> Any:
    """Draw one event in an x-y view (cells as boxes) and a z-r view (r from the centroid).

    Parameters
    ----------
    event:
        One event (awkward record with ``hit``/``particle`` or a torch_geometric ``Data``).
    color:
        ``"fraction"``: colour by the truth fraction of particle 0 (blue = particle 1,
        red = particle 0, grey = noise-only hits); ``"energy"``: colour by log10 energy.
    title:
        Figure title.
    figsize:
        Figure size in inches.
    energy_range:
        (min, max) energy for marker sizes and the energy colour scale; default from the event.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (two axes plus a colour bar).

    Examples
    --------
    >>> from calo.sim import generate
    >>> fig = plot_event(generate(n_events=1, seed=2)[0], color="energy")
    >>> fig.axes[0].get_xlabel()
    'x [cm]'
    """
    import matplotlib.pyplot as plt
    import mplhep
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    if color not in ("fraction", "energy"):
        raise ConfigError(f"color must be 'fraction' or 'energy', got {color!r}")
    a = event_arrays(event)
    e = np.clip(a["energy"], 1e-6, None)
    lo, hi = energy_range or (float(e.min()) if len(e) else 1e-3, float(e.max()) if len(e) else 1.0)
    lo = max(lo, 1e-4)
    hi = max(hi, lo * 1.0001)
    order = np.argsort(e)
    style = [mplhep.style.ROOT, {"font.size": 12, "axes.labelsize": 12, "axes.titlesize": 12}]
    with plt.style.context(style):
        fig, (ax_xy, ax_zr) = plt.subplots(1, 2, figsize=figsize, layout="constrained")
        if color == "fraction":
            cmap = plt.get_cmap("coolwarm")
            values = a["frac0"]
            norm = plt.Normalize(0.0, 1.0)
            label = "truth fraction of particle 0"
        else:
            cmap = plt.get_cmap("viridis")
            values = np.log10(e)
            norm = plt.Normalize(np.log10(lo), np.log10(hi))
            label = "log10(E / GeV)"
        rgba = cmap(norm(values))
        rgba[a["noise"]] = (0.55, 0.55, 0.55, 1.0)
        # x-y: cells as boxes, alpha by energy so that small deposits fade
        w = np.clip((np.log(e) - np.log(lo)) / (np.log(hi) - np.log(lo) + 1e-12), 0.0, 1.0)
        if np.all(np.isfinite(a["dx"])):
            rects = [
                Rectangle(
                    (a["x"][i] - a["dx"][i] / 2, a["y"][i] - a["dy"][i] / 2), a["dx"][i], a["dy"][i]
                )
                for i in order
            ]
            colors = rgba[order].copy()
            colors[:, 3] = 0.15 + 0.75 * w[order]
            ax_xy.add_collection(PatchCollection(rects, facecolors=colors, edgecolors="none"))
        else:
            ax_xy.scatter(a["x"][order], a["y"][order], c=rgba[order], s=5 + 120 * w[order])
        if len(a["impacts"]):
            ax_xy.scatter(
                a["impacts"][:, 0], a["impacts"][:, 1], marker="x", c="k", s=60, label="impacts"
            )
            for k, (px, py) in enumerate(a["impacts"]):
                ax_xy.annotate(
                    str(k), (px, py), xytext=(4, 4), textcoords="offset points", fontsize=10
                )
        ext = float(
            np.max(
                np.abs(np.concatenate([a["x"], a["y"], [1.0]]))
                + np.nan_to_num(np.concatenate([a["dx"], a["dy"], [0.0]])).max()
            )
        )
        ax_xy.set_xlim(-ext, ext)
        ax_xy.set_ylim(-ext, ext)
        ax_xy.set_aspect("equal")
        ax_xy.set_xlabel("x [cm]")
        ax_xy.set_ylabel("y [cm]")
        # z-r: r from the energy-weighted centroid of the event
        cx = np.average(a["x"], weights=e) if len(e) else 0.0
        cy = np.average(a["y"], weights=e) if len(e) else 0.0
        r = np.hypot(a["x"] - cx, a["y"] - cy)
        ax_zr.scatter(
            a["z"][order],
            r[order],
            c=rgba[order],
            s=4 + 150 * w[order],
            edgecolors="none",
            alpha=0.85,
        )
        ax_zr.set_xlabel("z [cm]")
        ax_zr.set_ylabel("r from centroid [cm]")
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=ax_zr, label=label)
        if title:
            fig.suptitle(title)
    return fig
