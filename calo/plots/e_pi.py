"""Figures of the electron/pion task (:mod:`calo.train.e_pi`).

* :func:`plot_roc`: pion efficiency against electron efficiency of the electron probability,
  one curve per arithmetic (quantized, float), with the ROC AUC in the legend;
* :func:`plot_e_pi_response`: mean energy response ``E_pred / E`` and its RMS and robust width
  in bins of the true energy.

Inputs are the ``methods`` of :func:`calo.train.e_pi.evaluate_e_pi`.

Examples
--------
>>> import tempfile
>>> m = {"float": {"roc_auc": 0.9, "roc": {"pion_efficiency": [0.0, 0.2, 1.0],
...                                        "electron_efficiency": [0.0, 0.9, 1.0]}}}
>>> plot_roc(m, tempfile.mkdtemp() + "/roc.png").suffix
'.png'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from calo.plots.performance import _plt, _save

__all__ = ["plot_e_pi_response", "plot_roc"]

_STYLE = {"quantized": ("C0", "o", "-"), "float": ("C1", "s", "--")}


def plot_roc(methods: Mapping[str, Any], path: str | Path) -> Path:
    """ROC curves (pion efficiency on a log scale against electron efficiency)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for name, s in methods.items():
        color, _, ls = _STYLE.get(name, ("C2", "^", ":"))
        fpr = np.asarray(s["roc"]["pion_efficiency"], dtype=float)
        tpr = np.asarray(s["roc"]["electron_efficiency"], dtype=float)
        keep = fpr > 0  # a log scale has no room for a zero mistag rate
        ax.plot(tpr[keep], fpr[keep], ls, color=color, drawstyle="steps-post",
                label=f"{name} (AUC {s['roc_auc']:.4f})")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("electron efficiency")
    ax.set_ylabel("pion efficiency (mistag rate)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return _save(plt, fig, path)


def plot_e_pi_response(methods: Mapping[str, Any], path: str | Path) -> Path:
    """Mean response and its spread vs true energy, one marker per arithmetic."""
    plt = _plt()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    for name, s in methods.items():
        color, marker, ls = _STYLE.get(name, ("C2", "^", ":"))
        b = s["response_bins"]
        x = 0.5 * (np.asarray(b["lo"], dtype=float) + np.asarray(b["hi"], dtype=float))
        ax0.plot(x, b["mean"], marker=marker, ls=ls, color=color, label=name)
        ax1.plot(x, b["rms"], marker=marker, ls=ls, color=color, label=f"{name} RMS")
        ax1.plot(x, b["width"], marker=marker, ls=":", color=color, alpha=0.6,
                 label=f"{name} robust width")  # fmt: skip
    ax0.axhline(1.0, color="grey", lw=0.8)
    ax0.set_ylabel("mean response E_pred / E")
    ax1.set_ylabel("response spread")
    for ax in (ax0, ax1):
        ax.set_xlabel("true energy (GeV)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(plt, fig, path)
