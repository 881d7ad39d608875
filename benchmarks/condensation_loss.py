"""Benchmark calo's object condensation loss against the ``object_condensation`` package.

One event of N hits (10 % noise) and K particles, 3 clustering coordinates, float32 on the
CPU, one torch thread. Each method computes its loss terms and their sum and runs the
backward pass. Time: median and best wall time of several calls after a warm-up. Memory: the
peak resident set size of a fresh process that imports torch, builds the inputs, and runs one
forward+backward, minus its resident size just before the call (the increment is what the loss
itself needs; the absolute peak includes torch's own ~0.3-0.5 GB). Results go to
``benchmarks/results/condensation_loss.json`` and ``.md`` with the machine, versions and date.

Usage::

    nice python benchmarks/condensation_loss.py [--sizes 1000 5000 20000] [--particles 10 50]
                                                [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from knn import cpu_model  # benchmarks/knn.py, beside this script (run as a script)

import calo
from calo.train.condensation import condensation_loss

try:  # the reference; optional
    from object_condensation.pytorch.losses import condensation_loss as oc_loss
except ImportError:  # pragma: no cover - depends on the environment
    oc_loss = None

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("calo", "object_condensation")


def make_input(n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    particle = rng.integers(0, k, size=n)
    particle[rng.uniform(size=n) < 0.1] = -1
    particle[:k] = np.arange(k)
    beta = torch.tensor(rng.uniform(0.01, 0.99, size=n), dtype=torch.float32)
    x = torch.tensor(rng.normal(size=(n, 3)), dtype=torch.float32)
    return beta, x, torch.tensor(particle)


def step(method: str, beta: torch.Tensor, x: torch.Tensor, particle: torch.Tensor) -> float:
    """One forward + backward; returns the loss value."""
    beta = beta.clone().requires_grad_(True)
    x = x.clone().requires_grad_(True)
    if method == "calo":
        out = condensation_loss(beta, x, particle, q_min=0.1, normalization="object")
        loss = out["attractive"] + out["repulsive"] + out["beta"] + out["noise"]
    else:
        out = oc_loss(beta=beta, x=x, object_id=particle + 1, q_min=0.1)
        loss = out["attractive"] + out["repulsive"] + out["coward"] + out["noise"]
    loss.backward()
    return float(loss.detach())


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hwm_mb() -> float:
    """Peak resident size of this process image (VmHWM; unlike ru_maxrss, it does not
    carry over the parent's peak through fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(method: str, n: int, k: int) -> None:
    """Run in a fresh process: print the peak and the increment of resident memory (MB)."""
    torch.set_num_threads(1)
    beta, x, particle = make_input(n, k)
    before = rss_mb()
    step(method, beta, x, particle)
    peak = hwm_mb()
    print(json.dumps({"peak_mb": peak, "increment_mb": peak - before}))


def memory(method: str, n: int, k: int) -> dict:
    cmd = [sys.executable, __file__, "--child", method, str(n), str(k)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    rows = []
    for n in args.sizes:
        for k in args.particles:
            beta, x, particle = make_input(n, k)
            values = {}
            for method in METHODS:
                if method == "object_condensation" and oc_loss is None:
                    continue
                values[method] = step(method, beta, x, particle)  # warm-up
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    step(method, beta, x, particle)
                    times.append(time.perf_counter() - t0)
                row = {
                    "method": method,
                    "n": n,
                    "k": k,
                    "median_ms": 1e3 * statistics.median(times),
                    "best_ms": 1e3 * min(times),
                    **memory(method, n, k),
                    "loss": values[method],
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
            if len(values) == 2:
                rel = abs(values["calo"] - values["object_condensation"])
                rows[-1]["relative_difference_to_calo"] = rel / abs(values["calo"])
    return {
        "benchmark": "condensation_loss",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{cpu_model()} ({os.cpu_count()} cores)",
        "platform": platform.platform(),
        "load_average": os.getloadavg()[0],
        "threads": 1,
        "versions": {
            "python": sys.version.split()[0],
            "calo": getattr(calo, "__version__", "dev"),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "object_condensation": _version("object_condensation"),
        },
        "results": rows,
    }


def _version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # pragma: no cover - not installed
        return None


def to_markdown(res: dict) -> str:
    lines = [
        "# Object condensation loss: calo vs object_condensation (CPU, forward + backward)",
        "",
        f"{res['date']}; {res['machine']}; 1-minute load average {res['load_average']:.2f}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items() if v) + ".",
        "One event, 10 % noise hits, 3 clustering coordinates, float32, one thread; both with "
        'the per-object normalisation (calo\'s `normalization="object"`), so the losses agree. '
        "Time: median (best) wall time of the calls after a warm-up. Memory: peak resident "
        "size of a fresh process, and its increase over the call (torch itself takes the rest).",
        "",
        "| N hits | K particles | method | time ms | best ms | peak RSS MB | increase MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["results"]:
        lines.append(
            f"| {r['n']} | {r['k']} | {r['method']} | {r['median_ms']:.1f} | "
            f"{r['best_ms']:.1f} | {r['peak_mb']:.0f} | {r['increment_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1], int(argv[2]), int(argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    p.add_argument("--particles", type=int, nargs="+", default=[10, 50])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "condensation_loss.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "condensation_loss.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
