"""ONNX Runtime against torch on the CPU: latency per event of the exported fraction models.

The paper-size GravNet and GarNet (:mod:`calo.models.config` defaults, 7 features, 2 showers,
random weights with BatchNorm in eval mode) are exported with
:func:`calo.models.onnx.export_onnx` and timed on one event of N hits (features ~ N(0, 1), as
normalised inputs are; float32, seeded) per call, with 1 and 2 threads:

* ``ort``: ONNX Runtime (CPU execution provider) on the exported graph, whose kNN is the dense
  ``[N, N]`` block + TopK;
* ``torch kdtree``: the same model in torch with calo's kd-tree kNN (the default on CPU);
* ``torch dense``: the same model in torch with the dense kNN backend (GravNet only), the
  exported graph's algorithm in torch;
* ``knn kdtree`` / ``knn dense``: the kNN alone (k = 40 in 4 dimensions, the paper's GravNet
  layer) times the model's number of GravNet layers, to show where the quadratic part takes
  over.

Each entry is the best (smallest) wall time of up to ``--repeats`` calls after a warm-up,
milliseconds (calls stop after ``--budget`` seconds per entry). Results go to
``benchmarks/results/onnx.json`` and ``onnx.md`` with the machine, versions, date and load.

Usage::

    python benchmarks/onnx_latency.py [--sizes 100 300 1000 3000 10000] [--threads 1 2]
                              [--models gravnet garnet] [--repeats 5] [--budget 4]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from knn import cpu_model  # benchmarks/knn.py, beside this script (run as a script)

import calo
from calo.models import ModelConfig, build_model
from calo.models.onnx import export_onnx, onnx_session
from calo.nn import knn

RESULTS = Path(__file__).resolve().parent / "results"
K_KNN, S_KNN = 40, 4


def best_ms(fn: Callable[[], object], repeats: int, budget: float) -> float:
    """Best wall time of up to ``repeats`` calls after one warm-up, milliseconds; a warm-up
    longer than ``budget`` is itself the measurement (the largest events take seconds)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first > budget:
        return 1e3 * first
    times = []
    stop = time.perf_counter() + budget
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > stop:
            break
    return 1e3 * min(times)


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name)).eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model


def run(args: argparse.Namespace) -> dict:
    load_start = list(os.getloadavg())
    rows = []
    exports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = _model(name)
            dense = copy.deepcopy(model)
            n_knn = 0
            for m in dense.modules():
                if hasattr(m, "knn_backend"):
                    m.knn_backend = "dense"
                    n_knn += 1
            t0 = time.perf_counter()
            res = export_onnx(model, Path(tmp) / f"{name}.onnx")
            exports[name] = {
                "export_s": round(time.perf_counter() - t0, 1),
                "max_abs_diff": res["max_abs_diff"],
                "opset": res["opset"],
                "onnx_bytes": (Path(tmp) / f"{name}.onnx").stat().st_size,
            }
            print(json.dumps({"model": name, **exports[name]}), flush=True)
            for threads in args.threads:
                torch.set_num_threads(threads)
                sess = onnx_session(Path(tmp) / f"{name}.onnx", threads=threads)
                for n in args.sizes:
                    g = torch.Generator().manual_seed(n)
                    x = torch.randn(n, model.in_features, generator=g)
                    batch = torch.zeros(n, dtype=torch.long)
                    feed = {"x": x.numpy(), "batch": batch.numpy()}
                    row = {"model": name, "threads": threads, "n": n}
                    with torch.no_grad():
                        row["ort_ms"] = best_ms(
                            lambda s=sess, f=feed: s.run(None, f), args.repeats, args.budget
                        )
                        row["torch_kdtree_ms"] = best_ms(
                            lambda m=model, x=x, b=batch: m(x, b), args.repeats, args.budget
                        )
                        if n_knn:
                            row["torch_dense_ms"] = best_ms(
                                lambda m=dense, x=x, b=batch: m(x, b), args.repeats, args.budget
                            )
                            pts = torch.rand(n, S_KNN, generator=g)
                            for backend in ("kdtree", "dense"):
                                row[f"knn_{backend}_ms"] = n_knn * best_ms(
                                    lambda p=pts, be=backend: knn(p, K_KNN, backend=be),
                                    args.repeats,
                                    args.budget,
                                )
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return {
        "benchmark": "onnx",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
        },
        "versions": {
            "python": sys.version.split()[0],
            "calo": getattr(calo, "__version__", "dev"),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "onnx": __import__("onnx").__version__,
            "onnxscript": __import__("onnxscript").__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
        },
        "k": K_KNN,
        "inputs": "one event of N hits per call, features ~ N(0, 1), float32",
        "repeats": args.repeats,
        "exports": exports,
        "results": rows,
    }


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def to_markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# ONNX Runtime against torch, latency per event (CPU)",
        "",
        f"{res['date']}; {m['cpu']} ({m['cpu_count']} cores); 1-minute load average "
        f"{m['load_average_start'][0]:.2f} at the start, {m['load_average_end'][0]:.2f} at "
        "the end.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".",
        "",
        "Best wall time of up to "
        f"{res['repeats']} calls after a warm-up, milliseconds per event (one event of N hits "
        "per call, paper-size models, random weights). ort: ONNX Runtime on the exported graph "
        "(kNN = dense [N, N] block + TopK); torch kdtree: the model in torch with calo's "
        "kd-tree kNN; torch dense: the same with the dense kNN; knn columns: the kNN alone "
        f"(k = {res['k']}, 4 dimensions) times the number of GravNet layers. "
        "On a shared machine, 2-thread times are unreliable.",
        "",
        "| model | threads | N | ort | torch kdtree | torch dense | ort / torch kdtree "
        "| knn kdtree | knn dense |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["results"]:
        ratio = r["ort_ms"] / r["torch_kdtree_ms"]
        lines.append(
            f"| {r['model']} | {r['threads']} | {r['n']} | {_fmt(r['ort_ms'])} | "
            f"{_fmt(r['torch_kdtree_ms'])} | {_fmt(r.get('torch_dense_ms'))} | {ratio:.2f} | "
            f"{_fmt(r.get('knn_kdtree_ms'))} | {_fmt(r.get('knn_dense_ms'))} |"
        )
    lines += ["", "Exports: " + "; ".join(
        f"{k}: {v['export_s']} s, opset {v['opset']}, {v['onnx_bytes'] / 1e6:.2f} MB, "
        f"max |ort - torch| {v['max_abs_diff']:.1e}"
        for k, v in res["exports"].items()
    ) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000, 10000])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--models", nargs="+", default=["gravnet", "garnet"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=float, default=4.0, help="seconds of repeats per entry")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--stem", default="onnx")
    args = p.parse_args(argv)
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{args.stem}.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
