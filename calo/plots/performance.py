"""Figures of a trained model's performance next to the classical baseline.

* :func:`plot_loss_curves`: training and validation loss per epoch;
* :func:`plot_response`: mean response and its spread (RMS and robust width) vs truth shower
  energy, on all hits and on shared hits, for every method;
* :func:`plot_response_vs_overlap`: the same in bins of the event's shower overlap (how far
  the hits can tell the showers apart);
* :func:`plot_event_display`: one event's hits coloured by the energy fraction of shower 0,
  truth vs each method, in the x-y (front) and z-r (side) views;
* :func:`save_performance_plots`: all of them as PNG files into a folder.

Inputs are the plain structures of :func:`calo.train.evaluate.evaluate` and the run history.

Examples
--------
>>> import tempfile
>>> h = {"epoch": [0.0, 1.0], "train_loss": [0.2, 0.1], "val_loss": [0.25, 0.15]}
>>> plot_loss_curves(h, tempfile.mkdtemp() + "/loss.png").suffix
'.png'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "plot_event_display",
    "plot_loss_curves",
    "plot_response",
    "plot_response_vs_overlap",
    "save_performance_plots",
]

_STYLE = {
    "model": ("C0", "o"),
    "baseline": ("C1", "s"),
    "refined": ("C3", "v"),
    "calibrated": ("C2", "^"),
}


def _save(plt: Any, fig: Any, path: str | Path, dpi: int = 110, layout: bool = True) -> Path:
    """Lay out (unless ``layout=False``), write ``fig`` to ``path`` (creating its folder), close it."""
    if layout:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curves(history: Mapping[str, Any], path: str | Path) -> Path:
    """Training and validation loss vs epoch; returns ``path``.

    Examples
    --------
    >>> import tempfile
    >>> plot_loss_curves({"epoch": [0], "train_loss": [0.3]},  # no validation loss yet
    ...                  tempfile.mkdtemp() + "/l.png").name
    'l.png'
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ep = np.asarray(history.get("epoch", []), dtype=float) + 1
    for key, label in (("train_loss", "training"), ("val_loss", "validation")):
        v = np.asarray(history.get(key, []), dtype=float)
        if v.size:
            ax.plot(ep[: v.size], v, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("energy-weighted fraction loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def plot_response(methods: Mapping[str, Any], path: str | Path) -> Path:
    """Response mean and spread vs truth shower energy, all and shared hits, per method.

    Examples
    --------
    >>> import tempfile
    >>> b = {"lo": [5.0], "hi": [10.0], "n": [3], "mean": [1.0], "rms": [0.1], "width": [0.08],
    ...      "median": [1.0]}
    >>> m = {"model": {"bins": {"all": b, "shared": b}}}
    >>> plot_response(m, tempfile.mkdtemp() + "/r.png").name
    'r.png'

    Bins without a positive spread (a file without truth energies) keep a linear axis:

    >>> z = {**b, "mean": [0.0], "rms": [0.0], "width": [0.0]}
    >>> plot_response({"model": {"bins": {"all": z, "shared": z}}},
    ...               tempfile.mkdtemp() + "/z.png").name
    'z.png'
    """
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True)
    for col, which in enumerate(("all", "shared")):
        spreads = []
        for name, summ in methods.items():
            b = summ["bins"][which]
            lo, hi = np.asarray(b["lo"], float), np.asarray(b["hi"], float)
            x, xerr = (lo + hi) / 2, (hi - lo) / 2
            mean = np.asarray(b["mean"], float)
            rms, width = np.asarray(b["rms"], float), np.asarray(b["width"], float)
            color, marker = _STYLE.get(name, ("C2", "^"))
            with np.errstate(invalid="ignore", divide="ignore"):
                spreads += [width / mean, rms / mean]
            axes[0, col].errorbar(x, mean, xerr=xerr, yerr=width, color=color, marker=marker,
                                  ls="none", label=name, capsize=2)  # fmt: skip
            with np.errstate(invalid="ignore", divide="ignore"):
                axes[1, col].plot(
                    x, width / mean, color=color, marker=marker, label=f"{name} width"
                )
                axes[1, col].plot(x, rms / mean, color=color, marker=marker, ls="--", mfc="none",
                                  label=f"{name} RMS")  # fmt: skip
        axes[0, col].axhline(1.0, color="grey", lw=0.8)
        axes[0, col].set_title("all hits" if which == "all" else "shared hits")
        axes[0, col].set_ylabel("response (mean, bar: robust width)")
        axes[1, col].set_ylabel("resolution (spread / mean)")
        axes[1, col].set_xlabel("truth shower energy [GeV]")
        values = np.concatenate(spreads) if spreads else np.zeros(0)
        if (np.isfinite(values) & (values > 0)).any():  # no positive spread (e.g. no truth
            axes[1, col].set_yscale("log")  # energies in the file): keep the linear axis
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
    axes[0, 0].legend()
    axes[1, 0].legend(fontsize=7)
    return _save(plt, fig, path)


def plot_response_vs_overlap(methods: Mapping[str, Any], path: str | Path) -> Path:
    """Response mean (bar: robust width) and RMS per bin of shower overlap, per method.

    The bins are those of ``summary["overlap_bins"]`` (:data:`calo.train.metrics.OVERLAP_BINS`),
    drawn side by side with their ranges as labels.

    Examples
    --------
    >>> import tempfile
    >>> b = {"lo": [0.0, 0.5], "hi": [0.5, 1.0], "n": [3, 2], "mean": [1.0, 1.2],
    ...      "rms": [0.1, 0.5], "width": [0.08, 0.3], "median": [1.0, 1.1]}
    >>> m = {"model": {"overlap_bins": {"all": b}}}
    >>> plot_response_vs_overlap(m, tempfile.mkdtemp() + "/o.png").name
    'o.png'
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    labels: list[str] = []
    for i, (name, summ) in enumerate(methods.items()):
        b = summ["overlap_bins"]["all"]
        x = np.arange(len(b["lo"])) + (i - (len(methods) - 1) / 2) * 0.12
        labels = [
            f"{lo:.2f}-{min(hi, 1.0):.2f}\n({n})"
            for lo, hi, n in zip(b["lo"], b["hi"], b["n"], strict=True)
        ]
        color, marker = _STYLE.get(name, ("C2", "^"))
        axes[0].errorbar(x, b["mean"], yerr=b["width"], color=color, marker=marker, ls="none",
                         label=name, capsize=2)  # fmt: skip
        axes[1].plot(x, b["rms"], color=color, marker=marker, label=name)
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[0].set_ylabel("response (mean, bar: robust width)")
    axes[1].set_ylabel("response RMS")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xticks(np.arange(len(labels)), labels, fontsize=7)
        ax.set_xlabel("shower overlap (showers in the bin)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    return _save(plt, fig, path)


def plot_event_display(event: Mapping[str, Any], path: str | Path) -> Path:
    """Hits of one event coloured by the fraction of shower 0: truth and every method.

    ``event`` has ``pos [N, 3]``, ``energy [N]``, ``truth [N, K]`` and one ``[N, K]`` array
    per method (aligned to the truth), as in ``evaluate(...)["examples"]``. Rows: truth and
    methods; columns: x-y view and z-r view (r = distance from the energy-weighted axis).

    Examples
    --------
    >>> import tempfile
    >>> ev = {"pos": np.random.default_rng(0).normal(size=(5, 3)), "energy": np.ones(5),
    ...       "truth": np.tile([1.0, 0.0], (5, 1)), "model": np.tile([0.5, 0.5], (5, 1))}
    >>> plot_event_display(ev, tempfile.mkdtemp() + "/e.png").name
    'e.png'
    """
    plt = _plt()
    pos, e = np.asarray(event["pos"], float), np.asarray(event["energy"], float)
    rows = ["truth"] + [k for k in event if k not in ("pos", "energy", "truth")]
    fig, axes = plt.subplots(len(rows), 2, figsize=(8, 3.2 * len(rows)), squeeze=False)
    w = np.clip(e, 0, None)
    cx, cy = np.average(pos[:, :2], axis=0, weights=w) if w.sum() > 0 else pos[:, :2].mean(0)
    r = np.hypot(pos[:, 0] - cx, pos[:, 1] - cy)
    size = 8 + 120 * np.sqrt(w / (w.max() if w.max() > 0 else 1))
    sc = None
    for i, name in enumerate(rows):
        f = np.asarray(event[name], float)[:, 0]
        sc = axes[i, 0].scatter(pos[:, 0], pos[:, 1], c=f, s=size, cmap="coolwarm", vmin=0, vmax=1,
                                edgecolors="k", linewidths=0.2)  # fmt: skip
        axes[i, 1].scatter(pos[:, 2], r, c=f, s=size, cmap="coolwarm", vmin=0, vmax=1,
                           edgecolors="k", linewidths=0.2)  # fmt: skip
        axes[i, 0].set_title(f"{name}: x-y")
        axes[i, 1].set_title(f"{name}: z-r")
        axes[i, 0].set_xlabel("x [cm]")
        axes[i, 0].set_ylabel("y [cm]")
        axes[i, 1].set_xlabel("z [cm]")
        axes[i, 1].set_ylabel("r [cm]")
    fig.tight_layout()
    if sc is not None:
        fig.colorbar(sc, ax=axes, label="fraction of shower 0", shrink=0.6)
    return _save(plt, fig, path, dpi=100, layout=False)


def save_performance_plots(
    folder: str | Path, result: Mapping[str, Any], history: Mapping[str, Any]
) -> list[Path]:
    """Write ``loss.png``, ``response.png``, ``response_overlap.png`` and ``event_<i>.png``.

    Examples
    --------
    >>> import tempfile
    >>> save_performance_plots(tempfile.mkdtemp(), {"methods": {}, "examples": []}, {})
    []
    """
    folder = Path(folder)
    paths: list[Path] = []
    if history.get("epoch"):
        paths.append(plot_loss_curves(history, folder / "loss.png"))
    if result.get("methods"):
        paths.append(plot_response(result["methods"], folder / "response.png"))
        if all("overlap_bins" in m for m in result["methods"].values()):
            paths.append(
                plot_response_vs_overlap(result["methods"], folder / "response_overlap.png")
            )
    for i, ev in enumerate(result.get("examples", [])):
        paths.append(plot_event_display(ev, folder / f"event_{i}.png"))
    return paths
