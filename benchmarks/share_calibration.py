"""A share calibration for showers a model cannot tell apart, fitted on the training events.

Trained with a permutation-invariant loss, a network splits two showers that lie on top of each
other about evenly (``benchmarks/overlap_study.py``), which gives the smaller one far too much
energy. This benchmark fits, on a calo-train run's **training** events, a table that replaces
the event-level energy share of the model's smaller output column by the share that minimises
the squared response error of both showers (each candidate share matched to the truth showers
the better way, as the evaluation does), in 10 x 10 bins of

* ``s``: that column's predicted share of the event's signal energy, and
* ``h``: the sharpness of the split, ``sum_i |p_i0 - p_i1| E_i / sum_i E_i`` (1 for a crisp
  split, 0 for hits all split evenly), in deciles of the training events;

bins with fewer than 30 events, or where no constant share beats the model's own by 10 %, keep
the model's split. The calibration uses no truth at inference: on the **validation** events the
smaller column's fractions are scaled by ``s' / s`` (clipped to [0, 1], the other column takes
the rest), and both the model and the calibrated model are evaluated next to the classical
baseline with calo's metrics. Writes ``share_calibration.{json,md}``. Two-shower events only.

Usage::

    python benchmarks/share_calibration.py RUN_OR_CHECKPOINT [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_BINS = 10
GRID = np.linspace(0.05, 0.5, 46)


def _batches(model, events):
    """Yield ``(data, pred, s, h, smaller_column, true_smaller_share)`` per batch."""
    import torch
    from torch_geometric.loader import DataLoader

    from calo.train.losses import event_energy_shares

    with torch.no_grad():
        for data in DataLoader(list(events), batch_size=128):
            if data.y.shape[1] != 2:
                raise SystemExit("share_calibration needs two-shower events")
            p = model(data)
            args = (data.y, data.energy, data.batch, data.num_graphs)
            share = event_energy_shares(p, *args)
            col = share.argmin(dim=1)
            h = event_energy_shares((p[:, 0] - p[:, 1]).abs().unsqueeze(1), *args).squeeze(1)
            t = event_energy_shares(data.y, *args)
            s = share.gather(1, col[:, None]).squeeze(1)
            yield data, p, s.numpy(), h.numpy(), col, t.min(dim=1).values.numpy()


def _error(c: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Squared response error of both showers when a column takes share c (better matching)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (c / ts - 1) ** 2 + ((1 - c) / (1 - ts) - 1) ** 2
        b = (c / (1 - ts) - 1) ** 2 + ((1 - c) / ts - 1) ** 2
    return np.minimum(a, b)


def fit(s: np.ndarray, h: np.ndarray, ts: np.ndarray) -> dict:
    """The calibration table (NaN: keep the model's share) and its bin edges."""
    ok = np.isfinite(s) & np.isfinite(h) & (ts > 0)
    s, h, ts = s[ok], h[ok], ts[ok]
    s_edges = np.linspace(0.0, 0.5, N_BINS + 1)
    h_edges = np.quantile(h, np.linspace(0.0, 1.0, N_BINS + 1))
    si, hi = _index(s, s_edges), _index(h, h_edges)
    table = np.full((N_BINS, N_BINS), np.nan)
    for a in range(N_BINS):
        for b in range(N_BINS):
            m = (si == a) & (hi == b)
            if m.sum() < 30:
                continue
            own = _error(s[m], ts[m]).mean()
            costs = np.array([_error(np.full(m.sum(), c), ts[m]).mean() for c in GRID])
            j = int(np.argmin(costs))
            if costs[j] < 0.9 * own:
                table[a, b] = GRID[j]
    return {"s_edges": s_edges.tolist(), "h_edges": h_edges.tolist(), "table": table.tolist()}


def _index(v: np.ndarray, edges) -> np.ndarray:
    return np.clip(np.digitize(v, np.asarray(edges)[1:-1]), 0, N_BINS - 1)


def apply(calib: dict, p, data, s: np.ndarray, h: np.ndarray, col):
    """Calibrated fractions ``[N, 2]`` of one batch."""
    import torch

    table = np.asarray(calib["table"])
    target = table[_index(s, calib["s_edges"]), _index(h, calib["h_edges"])]
    factor = np.where(np.isfinite(target), target / np.maximum(s, 1e-12), 1.0)
    f = torch.as_tensor(factor, dtype=p.dtype)[data.batch]
    c = col[data.batch]
    small = (p.gather(1, c[:, None]).squeeze(1) * f).clamp(0.0, 1.0)
    q = torch.stack([small, 1.0 - small], dim=1)
    return torch.where((c == 0)[:, None], q, q.flip(1))


def main(argv: list[str] | None = None) -> int:
    """Fit on the run's training events, evaluate on its validation events."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="calo-train run folder or checkpoint")
    p.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    a = p.parse_args(argv)

    import torch

    from calo.train.baseline import baseline_fractions
    from calo.train.data import CaloDataModule
    from calo.train.evaluate import load_model
    from calo.train.metrics import ResponseAccumulator

    ckpt = a.run / "checkpoints" / "best.ckpt" if a.run.is_dir() else a.run
    model, cfg, norm, _ = load_model(ckpt)
    torch.set_num_threads(max(cfg.trainer.threads, 1))
    dm = CaloDataModule(cfg.data, normalization=norm)
    dm.setup("fit")
    parts = [(s, h, ts) for _, _, s, h, _, ts in _batches(model, dm.train_set)]
    calib = fit(*(np.concatenate(x) for x in zip(*parts, strict=True)))
    accs = {name: ResponseAccumulator() for name in ("baseline", "model", "calibrated")}
    for data, pred, s, h, col, _ in _batches(model, dm.val_set):
        preds = {
            "baseline": baseline_fractions(data, cfg.baseline),
            "model": pred,
            "calibrated": apply(calib, pred, data, s, h, col),
        }
        for name, q in preds.items():
            accs[name].update(q, data.y, data.energy, data.batch, data.num_graphs,
                              shower_energy=data.particle_energy)  # fmt: skip
    summ = {name: acc.summary() for name, acc in accs.items()}
    base_rms = summ["baseline"]["response"]["rms"]
    res = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "checkpoint": str(ckpt),
        "model": cfg.model.name,
        "n_train": len(dm.train_set),
        "n_test": len(dm.val_set),
        "calibration": calib,
        "bins_calibrated": int(np.isfinite(np.asarray(calib["table"])).sum()),
        "methods": {
            name: {
                "loss": m["loss"],
                "response": m["response"],
                "response_shared": m["response_shared"],
                "rms_ratio": base_rms / m["response"]["rms"],
                "overlap_rms": m["overlap_bins"]["all"]["rms"],
            }
            for name, m in summ.items()
        },
        "command": "python benchmarks/share_calibration.py " + " ".join(argv or sys.argv[1:]),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "share_calibration.json").write_text(json.dumps(res, indent=2))
    md = [
        "# Share calibration of indistinguishable showers (fitted on the training events)",
        "",
        f"{res['date']}; {res['model']} checkpoint {ckpt}; fitted on {res['n_train']} training "
        f"events ({res['bins_calibrated']} of {N_BINS * N_BINS} bins calibrated), evaluated on "
        f"{res['n_test']} validation events. RMS per overlap bin: 0-0.01-0.05-0.2-0.5-1.",
        "",
        "| method | loss | R mean | R rms | R width | shared rms | rms ratio baseline/method "
        "| RMS per overlap bin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in res["methods"].items():
        r = m["response"]
        bins = " / ".join(f"{v:.3f}" for v in m["overlap_rms"])
        md.append(
            f"| {name} | {m['loss']:.4f} | {r['mean']:.3f} | {r['rms']:.3f} | {r['width']:.3f} "
            f"| {m['response_shared']['rms']:.3f} | {m['rms_ratio']:.2f} | {bins} |"
        )
    md += ["", f"Command: `{res['command']}`", ""]
    (a.out / "share_calibration.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
