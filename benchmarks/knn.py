"""Benchmark calo's kNN against torch.cdist + topk, scipy's cKDTree and torch-cluster.

Points are uniform in the unit 4-cube (float32, seeded), ``k = 40`` neighbours of every point
within its event, the point itself included. Every method is timed on the same inputs over
several repeats (after one warm-up call), wall and process CPU time, median and best, with one
torch thread and with the default number of threads; the table gives the best CPU time. Results
go to ``benchmarks/results/knn.json`` and ``knn.md`` together with the machine, versions, date,
thread counts and the load average (other work on the machine slows every method alike).

torch-cluster has no wheel for this torch; build it outside the project venv and put it on the
path to include it::

    MAX_JOBS=1 pip install --no-build-isolation --no-deps --target /work/tc-site torch-cluster
    PYTHONPATH=/work/tc-site python benchmarks/knn.py

Usage::

    python benchmarks/knn.py [--sizes 500 2000 8000 30000] [--events 1 4] [--repeats 5]
                             [--device cpu|cuda] [--max-brute-n 8000] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy
import torch

import calo
from calo.nn import knn

try:  # optional comparison only
    import torch_cluster
except ImportError:  # pragma: no cover - depends on the machine
    torch_cluster = None

RESULTS = Path(__file__).resolve().parent / "results"
K = 40
S = 4


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_input(n: int, events: int, device: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n * events, S, generator=g)
    batch = torch.arange(events).repeat_interleave(n)
    return x.to(device), batch.to(device)


def event_slices(n: int, events: int) -> list[slice]:
    return [slice(e * n, (e + 1) * n) for e in range(events)]


def methods(
    n: int, events: int, device: str, max_brute_n: int
) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None]:
    """name -> function(x, batch) returning neighbour indices, or None if not run."""
    slices = event_slices(n, events)
    brute_ok = device != "cpu" or n <= max_brute_n

    def calo_backend(name: str):
        return lambda x, b: knn(x, K, b, backend=name)[0]

    def cdist_topk(x, b):
        out = []
        for s in slices:
            d = torch.cdist(x[s], x[s])
            out.append(torch.topk(d, K, dim=1, largest=False).indices + s.start)
        return torch.cat(out)

    def ckdtree(x, b):
        from scipy.spatial import cKDTree

        xn = x.cpu().numpy()
        workers = torch.get_num_threads()
        return torch.from_numpy(
            np.concatenate(
                [cKDTree(xn[s]).query(xn[s], K, workers=workers)[1] + s.start for s in slices]
            )
        )

    def tc(x, b):
        return torch_cluster.knn(x, x, K, b, b)

    out: dict[str, Callable | None] = {}
    if device == "cpu":
        out["calo kdtree"] = calo_backend("kdtree")
    out["calo torch"] = calo_backend("torch") if brute_ok else None
    out["cdist+topk"] = cdist_topk if brute_ok else None
    out["scipy cKDTree"] = ckdtree if device == "cpu" else None
    out["torch-cluster"] = tc if torch_cluster is not None else None
    return out


def timed(
    fn: Callable, x: torch.Tensor, b: torch.Tensor, repeats: int, device: str
) -> dict[str, float]:
    """Median and best (smallest) wall time and process CPU time (all threads) of ``fn(x, b)``,
    seconds. On a shared machine the best CPU time of one thread is the steadiest measure."""

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    fn(x, b)  # warm-up (numba compilation, CUDA context, caches)
    sync()
    walls, cpus = [], []
    budget = time.perf_counter() + 60.0
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(x, b)
        sync()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if time.perf_counter() > budget:
            break
    return {
        "median_s": statistics.median(walls),
        "median_cpu_s": statistics.median(cpus),
        "best_s": min(walls),
        "best_cpu_s": min(cpus),
    }


def check(idx: torch.Tensor, x: torch.Tensor, ref_d2: torch.Tensor) -> bool:
    """True if the neighbours have the reference's sorted squared distances."""
    idx = idx.reshape(-1, K) if idx.dim() == 2 and idx.shape[0] == x.shape[0] else None
    if idx is None:
        return False
    d2 = ((x[idx].double() - x.double().unsqueeze(1)) ** 2).sum(-1).sort(1).values
    return bool(torch.allclose(d2.cpu(), ref_d2.cpu(), rtol=1e-4, atol=1e-6))


def tc_to_idx(edge: torch.Tensor, n: int) -> torch.Tensor:
    row, col = edge
    order = torch.sort(row, stable=True).indices
    return col[order].view(n, K)


def run(args: argparse.Namespace) -> dict:
    default_threads = torch.get_num_threads()
    load_start = list(os.getloadavg())
    rows = []
    for threads in sorted({1, default_threads} if args.threads is None else set(args.threads)):
        torch.set_num_threads(threads)
        for events in args.events:
            for n in args.sizes:
                x, b = make_input(n, events, args.device, seed=n + events)
                ref = knn(x, K, b, backend="kdtree" if args.device == "cpu" else "torch")
                ref_d2 = ref[1].double().sort(1).values
                for name, fn in methods(n, events, args.device, args.max_brute_n).items():
                    row = {"method": name, "n_per_event": n, "events": events, "threads": threads}
                    if fn is None:
                        row.update(median_s=None, note="not run")
                    else:
                        row.update(timed(fn, x, b, args.repeats, args.device))
                        idx = fn(x, b)
                        if name == "torch-cluster":
                            idx = tc_to_idx(idx, x.shape[0])
                        row.update(agrees=check(idx, x, ref_d2))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    torch.set_num_threads(default_threads)
    return {
        "benchmark": "knn",
        "k": K,
        "space_dimensions": S,
        "distribution": "uniform in [0, 1)^4, float32",
        "device": args.device,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
            "platform": platform.platform(),
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
        },
        "versions": {
            "python": sys.version.split()[0],
            "calo": calo.__version__ if hasattr(calo, "__version__") else "dev",
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "numba": __import__("numba").__version__,
            "torch_cluster": getattr(torch_cluster, "__version__", None),
        },
        "default_threads": default_threads,
        "repeats": args.repeats,
        "results": rows,
    }


def to_markdown(res: dict) -> str:
    names = list(dict.fromkeys(r["method"] for r in res["results"]))
    lines = [
        f"# kNN benchmark ({res['device']}, k={res['k']}, S={res['space_dimensions']})",
        "",
        f"{res['date']}; {res['machine']['cpu']} ({res['machine']['cpu_count']} cores)"
        + (f", {res['machine']['gpu']}" if res["machine"]["gpu"] else "")
        + f"; 1-minute load average {res['machine'].get('load_average_start', [0])[0]:.2f} at "
        f"the start, {res['machine']['load_average_end'][0]:.2f} at the end.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items() if v) + ".",
        f"Best (smallest) process CPU time of up to {res['repeats']} calls after a warm-up, "
        f"milliseconds; points {res['distribution']}. CPU ratio = torch-cluster / calo kdtree "
        "best CPU time, the measure of the target (>= 2 meets it, one thread): it is what the "
        "search costs when other jobs share the cores. Wall ratio = the same with median wall "
        "times (on a busy machine the wall times, above all of 2-thread runs, are unreliable: "
        "preempted threads show up as multiples of the 4 ms scheduler tick).",
        "",
        "| threads | events | N/event | " + " | ".join(names) + " | CPU ratio | wall ratio |",
        "|---|---|---|" + "---|" * len(names) + "---|---|",
    ]
    keys = dict.fromkeys((r["threads"], r["events"], r["n_per_event"]) for r in res["results"])
    for key in keys:
        cells = []
        by = {
            r["method"]: r
            for r in res["results"]
            if (r["threads"], r["events"], r["n_per_event"]) == key
        }
        for name in names:
            r = by.get(name)
            if r is None or r["median_s"] is None:
                cells.append("-")
            else:
                mark = "" if r.get("agrees", True) else " (wrong)"
                t = r.get("best_cpu_s", r["median_s"])
                cells.append(f"{t * 1e3:.1f}{mark}")
        ratio = cpu_ratio = "-"
        a, c = by.get("torch-cluster"), by.get("calo kdtree") or by.get("calo torch")
        if a and c and a["median_s"] and c["median_s"]:
            ratio = f"{a['median_s'] / c['median_s']:.2f}"
            if c.get("best_cpu_s"):
                cpu_ratio = f"{a['best_cpu_s'] / c['best_cpu_s']:.2f}"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | "
            + " | ".join(cells)
            + f" | {cpu_ratio} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000, 30000])
    p.add_argument("--events", type=int, nargs="+", default=[1, 4])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--max-brute-n",
        type=int,
        default=8000,
        help="on CPU, skip the O(N^2) methods above this many points per event",
    )
    p.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="torch thread counts (default: 1 and all)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "knn" if args.device == "cpu" else "knn_cuda"
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
