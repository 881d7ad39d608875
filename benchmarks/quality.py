"""Quality bar of the models issue: GravNet, EdgeConv and GarNet against the classical baseline.

Simulates a two-shower set (default 25,000 events: 20,000 train, 5,000 test with
``data.val_fraction=0.2``), trains each model with ``calo.train.run.train`` (the calo-train code
path) for a wall-time budget, evaluates the best checkpoint on the held-out events next to the
classical baseline, and writes ``benchmarks/results/quality.{json,md}``.

Each model trains in its own process (``--parallel`` runs them at the same time, each on one
torch thread), so a model's "time per epoch" is the wall time of its own process: on a shared
2-core machine it depends on what else runs; the JSON records the load average.

Usage::

    python benchmarks/quality.py                        # 25k events, 3 models, 40 min each
    python benchmarks/quality.py --minutes 85 --parallel --nice 19
    python benchmarks/quality.py --events 600 --minutes 0.3 --models gravnet --out /tmp/q
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# paper-sized models (about 100k parameters each) and the paper's optimiser settings, scaled to
# a batch that a CPU steps through quickly
MODEL_ARGS = {
    "gravnet": ["model.name=gravnet", "data.batch_size=16", "optim.lr=1e-3"],
    "edgeconv": ["model.name=edgeconv", "data.batch_size=16", "optim.lr=1e-3"],
    "garnet": ["model.name=garnet", "data.batch_size=32", "optim.lr=1e-3"],
}


def _simulate(path: Path, n_events: int, seed: int) -> None:
    from calo.sim import SimConfig
    from calo.sim.writer import write_root

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_root(path, SimConfig(), n_events=n_events, seed=seed, progress=True)


def _train_one(
    model: str,
    data: Path,
    minutes: float,
    epochs: int,
    run: Path,
    size: str = "paper",
    extra: list[str] | None = None,
) -> list[str]:
    args = [
        *MODEL_ARGS[model],
        f"data.files=[{data}]",
        "data.val_fraction=0.2",
        f"trainer.max_time_minutes={minutes}",
        f"trainer.max_epochs={epochs}",
        "trainer.early_stopping_patience=6",
        "trainer.threads=1",
        "trainer.progress_bar=false",
    ]
    if model == "gravnet" and size == "paper":  # the paper's 4 blocks with k = 40
        args += ["model.gravnet.n_blocks=4", "model.gravnet.k=40"]
    if model == "gravnet" and size == "quick":  # calo-train's default: 2 blocks, k = 16
        args += ["model.gravnet.n_blocks=2", "model.gravnet.k=16", "data.batch_size=8"]
    if model == "edgeconv" and size == "quick":  # the paper's DGCNN with k = 16 instead of 40
        args += ["model.edgeconv.k=16", "data.batch_size=8"]
    args += list(extra or [])  # last, so they win
    return [sys.executable, "-m", "calo", "train", "--out", str(run), "--no-plots", *args]


def _row(model: str, metrics: dict, n_params: int, size: str = "paper") -> dict:
    m = metrics["methods"]["model"]
    b = metrics["methods"]["baseline"]
    epochs = max(int(metrics["epochs_run"]), 1)
    return {
        "model": model if size == "paper" or model == "garnet" else f"{model} ({size})",
        "size": size,
        "parameters": n_params,
        **_summary(m),
        "baseline_loss": b["loss"],
        "baseline_mean": b["response"]["mean"],
        "baseline_rms": b["response"]["rms"],
        "baseline_width": b["response"]["width"],
        "baseline_shared_rms": b["response_shared"]["rms"],
        "baseline_shared_width": b["response_shared"]["width"],
        "bins": _bins(m, b),
        "overlap_bins": _bins(m, b, "overlap_bins"),
        "epochs": epochs,
        "train_seconds": metrics["train_seconds"],
        "seconds_per_epoch": metrics["train_seconds"] / epochs,
        "n_train": metrics["data"]["n_train"],
        "n_test": metrics["data"]["n_val"],
        "device": metrics["environment"]["cuda"]
        if metrics["environment"]["cuda"] != "none"
        else "cpu",
        **{
            name: _summary(metrics["methods"][name]) if name in metrics["methods"] else None
            for name in ("refined", "calibrated")
        },
    }


def _summary(m: dict) -> dict:
    """Loss and response statistics of one method (the model, refined or calibrated)."""
    r, s = m["response"], m["response_shared"]
    return {"loss": m["loss"], "response_mean": r["mean"], "response_rms": r["rms"],
            "response_width": r["width"], "shared_rms": s["rms"], "shared_width": s["width"]}  # fmt: skip


def _bins(m: dict, b: dict, key: str = "bins") -> dict | None:
    """Response mean, RMS and width of model and baseline in the bins ``m[key]`` (truth shower
    energy or shower overlap); None where the metrics have no such bins."""
    if key not in m or key not in b:
        return None
    mb, bb = m[key]["all"], b[key]["all"]
    out = {k: mb[k] for k in ("lo", "hi", "n")}
    for name, src in (("model", mb), ("baseline", bb)):
        for k in ("mean", "rms", "width"):
            out[f"{name}_{k}"] = src[k]
    return out


BIN_TABLES = {
    "bins": ("bins of truth shower energy (GeV)", "E (GeV)", "{lo:g}-{hi:g}"),
    "overlap_bins": (
        "bins of the event's shower overlap (calo.train.losses.shower_overlap: 0 apart, "
        "1 on top of each other)",
        "overlap",
        "{lo:.2f}-{hi:.2f}",
    ),
}


def _bins_table(rows: list[dict], key: str = "bins") -> str:
    """Markdown: per model, response in ``key`` bins next to the baseline's."""
    what, col, fmt = BIN_TABLES[key]
    out = []
    for r in rows:
        bins = r.get(key)
        if not bins:
            continue
        out.append(
            f"\n{r['model']}: response in {what}, model | baseline; "
            "RMS about the bin's mean, so a bias shows in the mean, not the spread.\n\n"
            f"| {col} | showers | mean | RMS | width | baseline mean | baseline RMS "
            "| baseline width | RMS ratio baseline/model |\n|---|---|---|---|---|---|---|---|---|"
        )
        for i, lo in enumerate(bins["lo"]):
            ratio = bins["baseline_rms"][i] / bins["model_rms"][i]
            label = fmt.format(lo=lo, hi=bins["hi"][i])
            out.append(
                f"| {label} | {bins['n'][i]} | {bins['model_mean'][i]:.3f} "
                f"| {bins['model_rms'][i]:.3f} | {bins['model_width'][i]:.3f} "
                f"| {bins['baseline_mean'][i]:.3f} | {bins['baseline_rms'][i]:.3f} "
                f"| {bins['baseline_width'][i]:.3f} | {ratio:.2f} |"
            )
    return "\n".join(out) + "\n" if out else ""


def _method_line(name: str, r: dict, m: dict, timing: str) -> str:
    """One table line: statistics ``m`` (keys of :func:`_summary`) of the run ``r``."""
    return (
        f"| {name} | {r['parameters']:,} | {m['loss']:.4f} | {m['response_mean']:.3f} "
        f"| {m['response_rms']:.3f} | {m['response_width']:.3f} | {m['shared_rms']:.3f} "
        f"| {m['shared_width']:.3f} | {r['baseline_rms'] / m['response_rms']:.2f} "
        f"| {timing} | {r['device']} |"
    )


def _table(rows: list[dict]) -> str:
    head = (
        "| model | parameters | loss | R mean | R rms | R width | shared rms | shared width "
        "| rms ratio baseline/model | epochs | s/epoch | device |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    if rows:
        b = rows[0]
        lines.append(
            f"| classical baseline | 0 | {b['baseline_loss']:.4f} | {b['baseline_mean']:.3f} "
            f"| {b['baseline_rms']:.3f} | {b['baseline_width']:.3f} "
            f"| {b['baseline_shared_rms']:.3f} | {b['baseline_shared_width']:.3f} | 1.00 | - | - | - |"
        )
    for r in rows:
        lines.append(
            _method_line(r["model"], r, r, f"{r['epochs']} | {r['seconds_per_epoch']:.0f}")
        )
        # calo-train's post-processing of the same model: the profile refinement alone, then
        # the share calibration after it (after the model itself for runs without refinement)
        labels = {"refined": "profile refinement", "calibrated": "share calibration"}
        if r.get("refined"):
            labels["calibrated"] = "refinement + share calibration"
        for key, label in labels.items():
            if r.get(key):
                lines.append(_method_line(f"{r['model']} + {label}", r, r[key], "- | -"))
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the quality benchmark; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=25_000, help="simulated two-shower events")
    p.add_argument("--seed", type=int, default=11, help="simulation seed")
    p.add_argument("--models", nargs="+", default=list(MODEL_ARGS), choices=list(MODEL_ARGS))
    p.add_argument("--minutes", type=float, default=40.0, help="training budget per model")
    p.add_argument("--epochs", type=int, default=200, help="epoch limit per model")
    p.add_argument("--parallel", action="store_true", help="train the models at the same time")
    p.add_argument("--nice", type=int, default=0, help="niceness of the training processes")
    p.add_argument(
        "--size",
        choices=("paper", "quick"),
        default="paper",
        help="model sizes: the paper's, or quick ones for a CPU: GravNet as calo-train's "
        "default (2 blocks, k = 16), EdgeConv with k = 16 (GarNet is the same in both)",
    )
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="calo-train overrides for every model, after the benchmark's own",
    )
    p.add_argument("--work", type=Path, default=Path("runs/quality"), help="data and run folders")
    p.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    a = p.parse_args(argv)

    from calo.config import load_yaml
    from calo.models import build_model, count_parameters
    from calo.train.config import TrainConfig

    data = a.work / f"two_showers_{a.events}ev_seed{a.seed}.root"
    _simulate(data, a.events, a.seed)
    start = time.time()
    procs: dict[str, subprocess.Popen] = {}
    tag = "" if a.size == "paper" else f"-{a.size}"
    runs = {m: a.work / f"{m}{tag if m != 'garnet' else ''}-{a.events}ev" for m in a.models}
    for model in a.models:
        if (runs[model] / "metrics.json").exists():  # finished earlier: collect, do not retrain
            print(f"{model}: using the finished run {runs[model]}", flush=True)
            continue
        cmd = _train_one(model, data, a.minutes, a.epochs, runs[model], a.size, a.set)
        if a.nice:
            cmd = ["nice", "-n", str(a.nice), *cmd]
        print("+", " ".join(cmd), flush=True)
        with open(a.work / f"{model}.log", "w") as log:  # the child keeps its own handle
            procs[model] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        if not a.parallel:
            procs[model].wait()
    rows, failed = [], {}
    for model in a.models:
        proc = procs.get(model)
        if (proc is not None and proc.wait() != 0) or not (runs[model] / "metrics.json").exists():
            failed[model] = f"no metrics.json (killed or failed), see {a.work / (model + '.log')}"
            continue
        metrics = json.loads((runs[model] / "metrics.json").read_text())
        cfg = load_yaml(TrainConfig, runs[model] / "config.yaml")
        n_params = count_parameters(build_model(cfg.model))
        rows.append(_row(model, metrics, n_params, a.size))
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_end": os.getloadavg(),
        "events": a.events,
        "seed": a.seed,
        "minutes_per_model": a.minutes,
        "parallel": a.parallel,
        "wall_seconds": time.time() - start,
        "command": "python benchmarks/quality.py " + " ".join(argv or sys.argv[1:]),
        "rows": rows,
        "failed": failed,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "quality.json").write_text(json.dumps(result, indent=2))
    md = (
        "# Quality: models vs the classical baseline (two-shower events)\n\n"
        f"{result['date']}; {result['machine']}; {a.events} simulated events (seed {a.seed}), "
        f"80% train / 20% test; training budget {a.minutes} min per model"
        f"{' (models in parallel)' if a.parallel else ''}; one torch thread each. "
        "R = sum p E / sum t E per shower on the test events (permutation invariant); "
        "width = robust width (see calo.train.metrics.spread_stats); shared = hits with both "
        "fractions above 0.1.\n\n"
        + _table(rows)
        + _bins_table(rows)
        + _bins_table(rows, "overlap_bins")
    )
    if failed:
        md += "\nFailed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()) + "\n"
    md += f"\nCommand: `{result['command']}`\n"
    (a.out / "quality.md").write_text(md)
    print(md)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
