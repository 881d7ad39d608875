"""Reading throughput: ROOT file -> list of torch_geometric Data with calo.io.read_data.

Writes two files in the calo-simulate format, one with the toy simulation (calo.sim's
``write_root``) and one synthetic with about 500 hits per event (the size of a busy event),
each as a TTree and as an RNTuple (``--format``), reads each several times and reports hits/s and events/s for the whole read (uproot +
conversion) and for the uproot part alone. Results go to ``benchmarks/results/read_throughput.json`` and ``.md`` with the machine,
the versions and the date.

Usage::

    python benchmarks/read_throughput.py                  # 2000 events each, 3 repeats
    python benchmarks/read_throughput.py --events 500 --repeats 1 --out /tmp/bench
    python benchmarks/read_throughput.py --format rntuple
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


def write_synthetic(
    path: Path, n_events: int, mean_hits: int, seed: int = 0, fmt: str = "ttree"
) -> str:
    """A calo-format tree (``fmt`` ttree or rntuple): two particles per event, ~mean_hits hits,
    20 layers."""
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
        if fmt == "rntuple":  # the TTree's branch names as flat fields
            flat = {"event": data["event"]}
            for rec in ("hit", "particle"):
                flat.update({f"{rec}_{k_}": data[rec][k_] for k_ in data[rec].fields})
            f.mkrntuple("events", flat)
        else:
            f.mktree(
                "events",
                {k_: (v.type if isinstance(v, ak.Array) else v.dtype) for k_, v in data.items()},
            )
            f["events"].extend(data)
    return f"synthetic calo-format file, Poisson({mean_hits}) hits/event, K=2"


def write_sim(path: Path, n_events: int, fmt: str = "ttree") -> str:
    """A file from the toy simulation (calo.sim's writer, default configuration, seed 0)."""
    try:
        from calo.sim import write_root  # type: ignore[attr-defined]
    except ImportError:
        from calo.sim.writer import write_root
    kw = {"format": fmt} if fmt != "ttree" else {}
    write_root(path, n_events=n_events, seed=0, progress=False, write_config=False, **kw)
    return "calo.sim write_root (toy calorimeter, default configuration, seed 0)"


def measure(path: Path, step_size: str, repeats: int) -> dict[str, object]:
    """Best-of-``repeats`` times of uproot alone and of read_data on ``path``."""
    t_uproot, t_full = [], []
    n_chunks = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n_chunks = sum(1 for _ in iterate_events(path, Schema.calo(), step_size=step_size))
        t_uproot.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        data, summary = read_data(path, Schema.calo(), step_size=step_size)
        t_full.append(time.perf_counter() - t0)
        del data
    hits, events = summary.hits_kept, summary.events_kept
    best, best_u = min(t_full), min(t_uproot)
    return {
        "events": events,
        "hits": hits,
        "hits_per_event": hits / max(events, 1),
        "file_mb": round(path.stat().st_size / 1e6, 2),
        "chunks": n_chunks,
        "seconds_read_data": t_full,
        "seconds_uproot_only": t_uproot,
        "hits_per_s": hits / best,
        "events_per_s": events / best,
        "uproot_only_hits_per_s": hits / best_u,
        "uproot_only_events_per_s": events / best_u,
    }


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
    ap.add_argument("--source", choices=["sim", "synthetic", "both"], default="both")
    ap.add_argument("--format", choices=["ttree", "rntuple", "both"], default="both")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    runs = []
    formats = ["ttree", "rntuple"] if args.format == "both" else [args.format]
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            name = {"ttree": "TTree", "rntuple": "RNTuple"}[fmt]
            if args.source in ("sim", "both"):
                path = Path(tmp) / f"sim_{fmt}.root"
                source = write_sim(path, args.events, fmt)
                m = measure(path, args.step_size, args.repeats)
                runs.append({"source": source, "format": name, **m})
            if args.source in ("synthetic", "both"):
                path = Path(tmp) / f"synthetic_{fmt}.root"
                source = write_synthetic(path, args.events, args.mean_hits, fmt=fmt)
                m = measure(path, args.step_size, args.repeats)
                runs.append({"source": source, "format": name, **m})

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
        "step_size": args.step_size,
        "repeats": args.repeats,
        "runs": runs,
        "command": " ".join(["python benchmarks/read_throughput.py", *(argv or sys.argv[1:])]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "read_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    md = [
        "# Reading throughput (ROOT file -> list of Data, `calo.io.read_data`)",
        "",
        f"{result['date']}; {m['cpu']}, {m['cores']} cores, torch threads "
        f"{m['torch_threads']}; Python {m['python']}, uproot {uproot.__version__}, awkward "
        f"{ak.__version__}, numpy {np.__version__}, torch {torch.__version__}, torch_geometric "
        f"{torch_geometric.__version__}. Step size {args.step_size}, best of {args.repeats}.",
        "",
        "| input | format | events | hits/event | MB | uproot only (hits/s) | read_data (hits/s) "
        "| read_data (events/s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        md.append(
            f"| {r['source']} | {r['format']} | {r['events']} | {r['hits_per_event']:.0f} | {r['file_mb']} | "
            f"{r['uproot_only_hits_per_s']:,.0f} | {r['hits_per_s']:,.0f} | "
            f"{r['events_per_s']:,.0f} |"
        )
    md += ["", f"Command: `{result['command']}`", ""]
    (args.out / "read_throughput.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
