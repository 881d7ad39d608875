"""Memory and latency of calo's GravNet, GarNet and DGCNN models and layers (issue 6).

What is measured, for every model (calo's ``build_model`` defaults, about 100k parameters each,
and, when torch-cluster is importable, the same GravNet and DGCNN architectures built from
torch_geometric's ``GravNetConv`` and ``DynamicEdgeConv``) and every single layer at matched
widths (``F_in = 32``, ``F_out = 64``, internal sizes as in the models), on ``batch`` events of
``N`` hits each:

- forward latency (inference: ``eval()`` and ``torch.no_grad()``): median, quartiles, min and
  max over ``--repeats`` runs after one warm-up run at the same size;
- training-step time (``train()``: forward, MSE loss, backward, Adam step), same statistics;
- peak memory above the idle baseline. CPU: every configuration runs in its own process, forked
  from a server process that has only imported the libraries (so no configuration inherits
  another's heap, and the ~5 s of imports is paid once per allocator setting, not once per
  configuration); the baseline is the resident set after ``malloc_trim(0)`` just before the
  measured call, the peak is the kernel's high-water mark ``VmHWM`` (reset through
  ``/proc/self/clear_refs``) after it, for the warm-up forward and the first training step.
  Cross-check: the peak of the bytes torch itself holds during one forward, from
  ``torch.profiler`` (``profile_memory=True``). CUDA: ``torch.cuda.max_memory_allocated`` above
  the allocated bytes before the call.
- configurations that run out of memory (``--mem-limit-gb`` of address space on CPU, or a
  CUDA out-of-memory error) or out of time (``--cap`` seconds per configuration, or fewer than
  ``--repeats`` runs fit into it) are recorded with that status and whatever was measured
  before; a configuration whose predicted first forward plus training step (linear in the hits
  from the nearest smaller one of the same model) exceeds the cap is recorded as
  ``skipped_over_time`` without running.

Data: ``toy`` events are the toy calorimeter's two-shower events (``calo.sim`` defaults, about
100 hits each, the most energetic ``N`` kept when there are more) padded to ``N`` hits with
noise hits in uniformly chosen cells (position uniform within the cell, energy above the
zero-suppression threshold); the features are the paper's seven (x, y, z, transverse size,
depth, log(E+1), layer), standardised. ``uniform`` clouds are seven features uniform in [0, 1).

kNN alone (``k = 40`` in 4 dimensions, uniform points as in ``benchmarks/knn.py``, whose
methods are reused): calo's KD-tree, calo's chunked brute force, torch.cdist + topk, scipy's
cKDTree and torch-cluster when installed.

Every result carries the torch thread count and the allocator settings (``MALLOC_*``
environment variables, ``LD_PRELOAD``); the allocator variants (``--malloc default mmap0``)
re-run the model configurations selected by ``--mmap0-min-n`` with ``MALLOC_MMAP_MAX_=0``
(glibc then never returns large blocks to the kernel on free, so they are not zero-filled
again on the next allocation).

Writes ``memory_latency.json`` (machine, versions, date, load averages, settings, every
record), ``memory_latency.md`` and the plots ``memory_latency.png`` (models: forward latency,
training step and peak memory vs N, log-log, one line per model) and
``memory_latency_layers.png`` under ``--out`` (default ``benchmarks/results``).

This script holds the command line, the plan of configurations and the result document; the
models compared, the input events, the measurement process and the report are the modules of
``benchmarks/memory_latency_lib/``.

Usage::

    python benchmarks/memory_latency.py                  # default run, < 15 min on 2 CPU cores
    python benchmarks/memory_latency.py --quick --out /tmp/ml   # seconds: tiny sizes
    python benchmarks/memory_latency.py --device cuda    # the same on a GPU
    python benchmarks/memory_latency.py --sizes 128 2048 --batches 16 --data toy --repeats 30
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # the script's parts, in memory_latency_lib/ beside it
    sys.path.insert(0, str(BENCH))

from memory_latency_lib.measure import KNN_METHODS, Server, serve  # noqa: E402
from memory_latency_lib.models import (  # noqa: E402
    LAYER_IN,
    LAYER_OUT,
    LAYERS,
    MODELS,
    PEERS,
    peer_check,
    register_pyg_knn,
)
from memory_latency_lib.report import plot, to_markdown  # noqa: E402

RESULTS = BENCH / "results"
SIZES = (128, 512, 2048, 8192, 32768)
BATCHES = (1, 16)


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _versions() -> dict[str, str | None]:
    import numba
    import numpy
    import scipy
    import torch
    import torch_geometric

    try:
        import torch_cluster

        tc = torch_cluster.__version__
    except ImportError:
        tc = None
    try:
        from importlib.metadata import version

        calo_v = version("calo")
    except Exception:
        calo_v = None
    return {
        "python": sys.version.split()[0],
        "calo": calo_v,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "torch_cluster": tc,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "glibc": "-".join(platform.libc_ver()),
    }


def _git_dirty() -> list[str] | None:
    """Files of the package and the benchmarks that differ from the commit (they were measured)."""
    with contextlib.suppress(Exception):
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "calo", "benchmarks"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            check=True,
        ).stdout
        return [line[3:] for line in out.splitlines() if not line.startswith("??")]
    return None


def _git_commit() -> str | None:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            check=True,
        ).stdout.strip()
    return None


def _predicted_over(
    done: list[dict[str, Any]], cfg: dict[str, Any], cap: float
) -> dict[str, Any] | None:
    """A smaller configuration of the same series that predicts this one cannot fit the cap."""
    key = ("kind", "name", "data", "device", "allocator_name")
    hits = cfg["n"] * cfg["batch"]
    prev = [
        r
        for r in done
        if all(r[k] == cfg[k] for k in key) and r["n"] * r["batch"] < hits and r.get("forward")
    ]
    if not prev:
        return None
    p = max(prev, key=lambda r: r["n"] * r["batch"])
    fwd = p["forward"].get("first_s")
    if p["status"] in ("oom",) and fwd is None:
        return {"status": "skipped_oom", "note": f"{p['n']} x {p['batch']} already out of memory"}
    if fwd is None:
        return {
            "status": "skipped_over_time",
            "note": f"{p['n']} x {p['batch']} already over the cap",
        }
    train = p.get("train", {}).get("first_s") or 2 * fwd
    scale = hits / (p["n"] * p["batch"])
    predicted = (fwd + train) * scale
    if predicted > cap:
        return {
            "status": "skipped_over_time",
            "note": (
                f"predicted {predicted:.0f} s for one forward + one training step "
                f"(linear from {p['n']} x {p['batch']}) > {cap:.0f} s cap"
            ),
        }
    return None


def plan(args: argparse.Namespace, have_peers: bool) -> list[dict[str, Any]]:
    """The configurations to run, smallest first within each series."""
    base = {
        "device": args.device,
        "threads": args.threads,
        "repeats": args.repeats,
        "train_repeats": args.train_repeats,
        "cap_s": args.cap,
        "mem_limit_gb": args.mem_limit_gb,
        "profile_min_n": args.profile_min_n,
    }
    cfgs = []
    for alloc in args.malloc:
        models = [m for m in args.models if have_peers or m not in PEERS]
        layers = [m for m in args.layers if have_peers or m not in PEERS]
        series: list[tuple[str, str, str, int]] = []
        for data in args.data:
            for name in models:
                for b in args.batches:
                    series.append(("model", name, data, b))
        for data in args.layer_data:
            for name in layers:
                for b in args.layer_batches:
                    series.append(("layer", name, data, b))
        for kind, name, data, b in series:
            if alloc == "mmap0" and (
                kind != "model" or data != args.data[0] or b != args.mmap0_batch
            ):
                continue
            for n in args.sizes:
                if alloc == "mmap0" and n < args.mmap0_min_n:
                    continue
                cfgs.append(
                    dict(base, kind=kind, name=name, data=data, batch=b, n=n, allocator_name=alloc)
                )
    return cfgs


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every configuration and the kNN comparison; return the full result document."""
    import torch

    if args.threads is None:
        args.threads = 1
    started = time.perf_counter()
    load_start = list(os.getloadavg())
    pyg_knn = register_pyg_knn()
    have_peers = pyg_knn is not None
    cfgs = plan(args, have_peers)
    records: list[dict[str, Any]] = []
    knn_records: list[dict[str, Any]] = []
    servers: dict[str, Server] = {}
    envs = {"default": {}, "mmap0": {"MALLOC_MMAP_MAX_": "0"}}
    try:
        for alloc in args.malloc:
            servers[alloc] = Server(envs[alloc])
        for cfg in cfgs:
            srv = servers[cfg["allocator_name"]]
            tag = f"{cfg['allocator_name']:7s} {cfg['name']:17s} {cfg['data']:7s} "
            tag += f"N={cfg['n']:6d} x{cfg['batch']:3d}"
            skip = _predicted_over(records, cfg, args.cap)
            if skip is not None:
                rec = dict(skip)
            else:
                rec = srv.run(cfg, args.cap + 15)
            rec = {**cfg, "allocator": srv.env, **rec}
            records.append(rec)
            print(f"{tag} {_brief(rec)}", flush=True)
        if args.knn:
            srv = servers[args.malloc[0]]
            for events in args.batches:
                for n in args.knn_sizes or args.sizes:
                    for name in KNN_METHODS:
                        if name == "torch-cluster" and not have_peers:
                            continue
                        cfg = dict(
                            kind="knn",
                            name=name,
                            n=n,
                            batch=events,
                            device=args.device,
                            threads=args.threads,
                            repeats=args.knn_repeats,
                            max_brute_n=args.max_brute_n,
                        )
                        rec = {**cfg, "allocator": srv.env, **srv.run(cfg, args.cap)}
                        knn_records.append(rec)
                        ms = rec.get("median_s")
                        print(
                            f"knn {name:14s} N={n:6d} x{events:3d} {rec['status']} "
                            + (f"{ms * 1e3:.1f} ms" if ms else ""),
                            flush=True,
                        )
    finally:
        for srv in servers.values():
            with contextlib.suppress(Exception):
                srv.close()
    return {
        "benchmark": "memory_latency",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/memory_latency.py " + " ".join(map(shlex.quote, args.argv)),
        "git_commit": _git_commit(),
        "git_uncommitted": _git_dirty(),
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": {
            "cpu": _cpu_name(),
            "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
            "platform": platform.platform(),
            "memory_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
        },
        "versions": _versions(),
        "settings": {
            "device": args.device,
            "threads": args.threads,
            "repeats": args.repeats,
            "train_repeats": args.train_repeats,
            "cap_s": args.cap,
            "mem_limit_gb": args.mem_limit_gb,
            "sizes": list(args.sizes),
            "batches": list(args.batches),
            "data": list(args.data),
            "layer_data": list(args.layer_data),
            "layer_batches": list(args.layer_batches),
            "malloc": list(args.malloc),
            "mmap0_min_n": args.mmap0_min_n,
            "mmap0_batch": args.mmap0_batch,
            "knn_sizes": list(args.knn_sizes or args.sizes),
            "knn_repeats": args.knn_repeats,
            "profile_min_n": args.profile_min_n,
            "pyg_knn_operator": pyg_knn,
            "layer_widths": {"in": LAYER_IN, "out": LAYER_OUT},
            "training_step": "forward, MSE loss against a random target, backward, Adam step",
            "memory": (
                "CPU: VmHWM above VmRSS after malloc_trim, in a process forked per configuration; "
                "CUDA: max_memory_allocated above memory_allocated"
            ),
        },
        "peer_check": peer_check() if have_peers else None,
        "results": records,
        "knn": knn_records,
    }


def _brief(rec: dict[str, Any]) -> str:
    parts = [rec["status"]]
    for phase in ("forward", "train"):
        r = rec.get(phase) or {}
        t = r.get("median_s") or r.get("first_s")
        if t is not None:
            parts.append(f"{phase} {t * 1e3:.1f} ms")
        if r.get("peak_bytes") is not None:
            parts.append(f"{r['peak_bytes'] / 2**20:.1f} MiB")
    if rec.get("note"):
        parts.append(f"({rec['note']})")
    return " ".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="hits per event N")
    p.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), help="events")
    p.add_argument("--data", nargs="+", choices=["toy", "uniform"], default=["toy", "uniform"])
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--layers", nargs="*", choices=LAYERS, default=list(LAYERS))
    p.add_argument("--layer-data", nargs="*", choices=["toy", "uniform"], default=["uniform"])
    p.add_argument("--layer-batches", type=int, nargs="*", default=[16])
    p.add_argument("--repeats", type=int, default=20, help="timed forward runs after warm-up")
    p.add_argument("--train-repeats", type=int, default=10, help="timed training steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--cap", type=float, default=15.0, help="seconds per configuration")
    p.add_argument("--mem-limit-gb", type=float, default=8.0, help="address space per config")
    p.add_argument(
        "--malloc",
        nargs="+",
        choices=["default", "mmap0"],
        default=["default", "mmap0"],
        help="allocator settings: glibc defaults and MALLOC_MMAP_MAX_=0",
    )
    p.add_argument(
        "--mmap0-min-n",
        type=int,
        default=2048,
        help="MALLOC_MMAP_MAX_=0 re-runs: models, first data kind, N >= this",
    )
    p.add_argument("--mmap0-batch", type=int, default=16, help="batch of the re-runs")
    p.add_argument(
        "--profile-min-n",
        type=int,
        default=2048,
        help="torch.profiler memory cross-check for N >= this (it costs ~1 s per process)",
    )
    p.add_argument("--no-knn", dest="knn", action="store_false", help="skip the kNN comparison")
    p.add_argument("--knn-repeats", type=int, default=3)
    p.add_argument("--knn-sizes", type=int, nargs="*", default=None, help="default: --sizes")
    p.add_argument("--max-brute-n", type=int, default=8192, help="O(N^2) kNN methods up to this N")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes for a smoke test (N 64 and 256, batch 1 and 2, 3 repeats)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="only rewrite the markdown table and the plots from this result file",
    )
    p.add_argument(
        "--knn-into",
        type=Path,
        default=None,
        help="run only the kNN comparison and put it into this earlier memory_latency.json",
    )
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.sizes, args.batches, args.layer_batches = [64, 256], [1, 2], [2]
        args.repeats, args.train_repeats, args.knn_repeats, args.mmap0_min_n = 3, 3, 1, 256
        args.profile_min_n = 256
        args.mmap0_batch = 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve()
        return 0
    stem = "memory_latency" if args.device == "cpu" else "memory_latency_cuda"
    if args.from_json is not None:  # only redraw the table and the plots
        res = json.loads(args.from_json.read_text())
        out, stem = args.from_json.parent, args.from_json.stem
        (out / f"{stem}.md").write_text(to_markdown(res))
        plot(res, out, stem)
        return 0
    if args.knn_into is not None:
        # only the kNN comparison, written into an earlier result file (with its own command)
        base = json.loads(args.knn_into.read_text())
        args.models, args.layers, args.malloc = [], [], [args.malloc[0]]
        part = run(args)
        base["knn"] = part["knn"]
        base["knn_run"] = {
            "command": part["command"],
            "date": part["date"],
            "wall_s": part["wall_s"],
            "load_average_start": part["machine"]["load_average_start"],
            "load_average_end": part["machine"]["load_average_end"],
        }
        res = base
        args.out = args.knn_into.parent
        stem = args.knn_into.stem
    else:
        res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=1) + "\n")
    md = to_markdown(res)
    (args.out / f"{stem}.md").write_text(md)
    plot(res, args.out, stem)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
