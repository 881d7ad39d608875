"""Where a trained model loses against the classical baseline: showers on top of each other.

Runs a calo-train checkpoint and the classical baseline over the run's validation events (or
``--data`` files) and writes ``overlap_study.{json,md}``:

* the response of showers in bins of truth energy and of the distance between the two impact
  points (needs ``particle_xy``, which calo's simulation writes), model next to baseline;
* the share of the event's signal energy that each method gives the smaller shower, next to its
  true share, per distance bin (a permutation-invariant split of showers that cannot be told
  apart comes out close to one half);
* what-if: the overall response RMS if, within ``d`` cm, the model's split were replaced by a
  fixed share ``c`` for the smaller shower (the response of both showers recomputed from the
  true shares), for a few ``d`` and ``c``; an estimate of how much a better convention for
  indistinguishable showers could gain, not a result of any model.

Two-shower events only. Usage::

    python benchmarks/overlap_study.py RUN_OR_CHECKPOINT [--data F.root ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DIST_BINS = (0.0, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0)
ENERGY_BINS = ((5.0, 10.0), (10.0, 20.0), (20.0, 60.0))


def _collect(model, events, baseline_cfg) -> dict[str, np.ndarray]:
    """Per event: incident energies, distance, true and predicted energy shares, responses."""
    import torch
    from torch_geometric.loader import DataLoader

    from calo.reco import baseline_fractions, event_energy_shares
    from calo.train.losses import align_predictions, permutation_invariant_loss

    out: dict[str, list] = {k: [] for k in ("e", "dist", "true", "model", "baseline")}
    with torch.no_grad():
        for data in DataLoader(list(events), batch_size=64):
            if data.y.shape[1] != 2 or getattr(data, "particle_xy", None) is None:
                raise SystemExit("overlap_study needs two-shower events with particle_xy")
            nb = data.num_graphs
            shares = partial(event_energy_shares, target=data.y, energy=data.energy,
                             batch=data.batch, num_events=nb)  # fmt: skip
            out["true"].append(shares(data.y))
            for name, p in (
                ("model", model(data)),
                ("baseline", baseline_fractions(data, baseline_cfg)),
            ):
                res = permutation_invariant_loss(p, data.y, data.energy, data.batch, nb)
                a = align_predictions(p, res.perm, data.batch)
                out[name].append(shares(a))
            out["e"].append(data.particle_energy)
            out["dist"].append((data.particle_xy[:, 0] - data.particle_xy[:, 1]).norm(dim=1))
    arr = {k: torch.cat(v).double().numpy() for k, v in out.items()}
    keep = np.isfinite(arr["true"]).all(axis=1) & (arr["true"] > 0).all(axis=1)
    return {k: v[keep] for k, v in arr.items()}


def study(a: dict[str, np.ndarray]) -> dict:
    """The three tables of the module docstring from the arrays of :func:`_collect`."""
    from calo.train.metrics import spread_stats

    resp = {m: a[m] / a["true"] for m in ("model", "baseline")}  # [B, 2] responses
    ev = np.arange(len(a["e"]))
    small = np.argmin(a["e"], axis=1)
    in_range = (a["e"] >= 5.0).all(axis=1) & (a["e"] < 60.0).all(axis=1)
    bins = []
    for lo, hi in ENERGY_BINS:
        for d0, d1 in itertools.pairwise(DIST_BINS):
            near = (a["dist"] >= d0) & (a["dist"] < d1)
            sel = (a["e"] >= lo) & (a["e"] < hi) & near[:, None]
            row = {"e_lo": lo, "e_hi": hi, "d_lo": d0, "d_hi": d1}
            for m in resp:
                row[m] = spread_stats(resp[m][sel])
            bins.append(row)
    shares = []
    for d0, d1 in itertools.pairwise(DIST_BINS):
        sel = (a["dist"] >= d0) & (a["dist"] < d1)
        row = {"d_lo": d0, "d_hi": d1, "n": int(sel.sum()),
               "true": float(a["true"][ev, small][sel].mean())}  # fmt: skip
        for m in resp:
            row[m] = float(a[m][ev, small][sel].mean())
        shares.append(row)
    overall = {m: float(resp[m][in_range].std()) for m in resp}
    what_if = []
    for d in (1.0, 2.0, 3.0):
        for c in (0.25, 0.34, 0.5):
            r = resp["model"].copy()
            sel = a["dist"] < d
            ts = a["true"][ev, small]
            r[ev[sel], small[sel]] = c / ts[sel]
            r[ev[sel], 1 - small[sel]] = (1 - c) / (1 - ts[sel])
            rms = float(r[in_range].std())
            what_if.append({"d": d, "c": c, "rms": rms, "ratio": overall["baseline"] / rms})
    return {"bins": bins, "shares": shares, "overall_rms": overall, "what_if": what_if}


def _markdown(res: dict, source: str) -> str:
    o = res["overall_rms"]
    md = [
        "# Response against the distance between the two showers",
        "",
        f"{res['date']}; {source}; {res['n_events']} events. Response R = shower energy given "
        "/ true energy (signal hits, permutation invariant); showers with incident energy "
        f"5-60 GeV. Overall RMS: model {o['model']:.3f}, baseline {o['baseline']:.3f} "
        f"(ratio {o['baseline'] / o['model']:.2f}).",
        "",
        "| E (GeV) | distance (cm) | showers | model mean / RMS / width "
        "| baseline mean / RMS / width |",
        "|---|---|---|---|---|",
    ]
    for b in res["bins"]:
        m, s = b["model"], b["baseline"]
        if m["n"] == 0:
            continue
        md.append(
            f"| {b['e_lo']:g}-{b['e_hi']:g} | {b['d_lo']:g}-{b['d_hi']:g} | {m['n']} "
            f"| {m['mean']:.3f} / {m['rms']:.3f} / {m['width']:.3f} "
            f"| {s['mean']:.3f} / {s['rms']:.3f} / {s['width']:.3f} |"
        )
    md += ["", "Share of the event's signal energy given to the smaller shower:", "",
           "| distance (cm) | events | true | model | baseline |", "|---|---|---|---|---|"]  # fmt: skip
    for r in res["shares"]:
        md.append(
            f"| {r['d_lo']:g}-{r['d_hi']:g} | {r['n']} | {r['true']:.3f} | {r['model']:.3f} "
            f"| {r['baseline']:.3f} |"
        )
    md += ["", "What-if (an estimate, no model): the model's split replaced by a fixed share c "
           "for the smaller shower within d cm:", "",
           "| d (cm) | c | overall RMS | ratio baseline / that |", "|---|---|---|---|"]  # fmt: skip
    for w in res["what_if"]:
        md.append(f"| {w['d']:g} | {w['c']:.2f} | {w['rms']:.3f} | {w['ratio']:.2f} |")
    md += ["", f"Command: `{res['command']}`", ""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    """Run the study; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="calo-train run folder or checkpoint")
    p.add_argument("--data", nargs="+", default=None, help="ROOT files (default: the run's "
                   "validation events)")  # fmt: skip
    p.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    a = p.parse_args(argv)

    import torch

    from calo.train.data import CaloDataModule
    from calo.train.evaluate import load_model

    ckpt = a.run / "checkpoints" / "best.ckpt" if a.run.is_dir() else a.run
    model, cfg, norm, _ = load_model(ckpt)
    torch.set_num_threads(max(cfg.trainer.threads, 1))
    if a.data:
        from calo.io import HitDataset, Normalization

        events = list(HitDataset(a.data, normalization=Normalization.from_dict(norm)))
    else:
        dm = CaloDataModule(cfg.data, normalization=norm)
        dm.setup("validate")
        events = list(dm.val_set)
    res = study(_collect(model, events, cfg.baseline))
    res["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    res["n_events"] = len(events)
    res["command"] = "python benchmarks/overlap_study.py " + " ".join(argv or sys.argv[1:])
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "overlap_study.json").write_text(json.dumps(res, indent=2))
    md = _markdown(res, f"checkpoint {ckpt}")
    (a.out / "overlap_study.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
