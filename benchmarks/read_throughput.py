"""Reading throughput: ROOT file -> list of torch_geometric Data with calo.io.read_data.

Writes a file in the calo-simulate format (with ``calo.sim.write_root`` when it exists, otherwise
a synthetic file of the same format with about 500 hits per event), reads it several times and
reports hits/s and events/s for the whole read (uproot + conversion) and for the uproot part
alone. Results go to ``benchmarks/results/read_throughput.json`` and ``.md`` with the machine,
the versions and the date.

Usage::

    python benchmarks/read_throughput.py                  # 2000 events, 3 repeats
    python benchmarks/read_throughput.py --events 500 --repeats 1 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import torch
import torch_geometric
import uproot

import calo
from calo.io import Schema, iterate_events, read_data


def write_synthetic(path: Path, n_events: int, mean_hits: int, seed: int = 0) -> str:
    """A calo-format tree: two particles per event, ~mean_hits hits, 20 layers."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(mean_hits, n_events).clip(1)
    n = int(counts.sum())
    k = 2
    frac = rng.random((n, k)).astype(np.float32)
    noise = rng.random(n) < 0.1
    frac[noise] = 0
    s = frac.sum(1, keepdims=True)
    frac = np.divide(frac, s, out=np.zeros_like(frac), where=s > 0)
    layer = rng.integers(0, 20, n).astype(np.int32)
    size = np.where(layer < 4, 1.0, np.where(layer < 12, 2.0, 5.0)).astype(np.float32)
    hit = {
        "cell": rng.integers(0, 2102, n).astype(np.int32),
        "x": rng.uniform(-15, 15, n).astype(np.float32),
        "y": rng.uniform(-15, 15, n).astype(np.float32),
        "z": (layer * 2.0 + 1.0).astype(np.float32),
        "dx": size,
        "dy": size,
        "dz": np.full(n, 2.0, np.float32),
        "layer": layer,
        "energy": rng.exponential(0.1, n).astype(np.float32),
        "noise": noise,
        "truth": np.where(noise, -1, frac.argmax(1)).astype(np.int32),
    }
    for j in range(k):
        hit[f"frac_{j}"] = np.ascontiguousarray(frac[:, j])
    pc = np.full(n_events, k)
    part = {
        "pdg": rng.choice([11, 22, 211, -211], 2 * n_events).astype(np.int32),
        "energy": rng.uniform(5, 60, 2 * n_events).astype(np.float32),
        "x": rng.uniform(-10, 10, 2 * n_events).astype(np.float32),
        "y": rng.uniform(-10, 10, 2 * n_events).astype(np.float32),
        "dirx": np.zeros(2 * n_events, np.float32),
        "diry": np.zeros(2 * n_events, np.float32),
        "dirz": np.ones(2 * n_events, np.float32),
        "deposited": rng.uniform(1, 50, 2 * n_events).astype(np.float32),
    }
    data = {
        "event": np.arange(n_events, dtype=np.int64),
        "hit": ak.zip({k_: ak.unflatten(v, counts) for k_, v in hit.items()}),
        "particle": ak.zip({k_: ak.unflatten(v, pc) for k_, v in part.items()}),
    }
    with uproot.recreate(path) as f:
        f.mktree(
            "events",
            {k_: (v.type if isinstance(v, ak.Array) else v.dtype) for k_, v in data.items()},
        )
        f["events"].extend(data)
    return f"synthetic calo-format file, Poisson({mean_hits}) hits/event, K=2"


def make_file(path: Path, n_events: int, mean_hits: int) -> str:
    try:
        from calo.sim import write_root  # type: ignore[attr-defined]
    except ImportError:
        return write_synthetic(path, n_events, mean_hits)
    write_root(path, n_events=n_events, seed=0)
    return "calo.sim.write_root (toy calorimeter, default configuration)"


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--mean-hits", type=int, default=500, help="for the synthetic file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--step-size", default="100 MB")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.root"
        source = make_file(path, args.events, args.mean_hits)
        size_mb = path.stat().st_size / 1e6
        branches = Schema()

        t_uproot, t_full = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            n_chunks = sum(1 for _ in iterate_events(path, branches, step_size=args.step_size))
            t_uproot.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            data, summary = read_data(path, branches, step_size=args.step_size)
            t_full.append(time.perf_counter() - t0)
            del data

    hits, events = summary.hits_kept, summary.events_kept
    best, best_u = min(t_full), min(t_uproot)
    result = {
        "benchmark": "read_throughput",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {
            "calo": calo.__version__,
            "uproot": uproot.__version__,
            "awkward": ak.__version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__,
        },
        "input": {
            "source": source,
            "events": events,
            "hits": hits,
            "hits_per_event": hits / max(events, 1),
            "file_mb": round(size_mb, 2),
            "step_size": args.step_size,
            "chunks": n_chunks,
        },
        "repeats": args.repeats,
        "seconds_read_data": t_full,
        "seconds_uproot_only": t_uproot,
        "hits_per_s": hits / best,
        "events_per_s": events / best,
        "uproot_only_hits_per_s": hits / best_u,
        "conversion_share": max(0.0, (best - best_u) / best),
        "command": "python benchmarks/read_throughput.py " + " ".join(argv or sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "read_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Reading throughput (ROOT -> list of Data, `calo.io.read_data`)",
        "",
        f"{result['date']}, {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"torch threads {result['machine']['torch_threads']}; uproot {uproot.__version__}, "
        f"awkward {ak.__version__}, torch {torch.__version__}, torch_geometric "
        f"{torch_geometric.__version__}",
        "",
        f"Input: {source}; {events} events, {hits} hits ({hits / max(events, 1):.0f}/event), "
        f"{size_mb:.1f} MB, step size {args.step_size}. Best of {args.repeats}.",
        "",
        "| stage | seconds | hits/s | events/s |",
        "|---|---|---|---|",
        f"| uproot only (iterate_events) | {best_u:.3f} | {hits / best_u:,.0f} | "
        f"{events / best_u:,.0f} |",
        f"| read_data (uproot + conversion to Data) | {best:.3f} | {hits / best:,.0f} | "
        f"{events / best:,.0f} |",
        "",
        f"Command: `{result['command'].strip()}`",
        "",
    ]
    (args.out / "read_throughput.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
