"""calo-predict end to end: events/s, where the time goes, peak memory and Dask scaling.

For the default GravNet and GarNet (the paper's sizes), on toy two-shower events (calo.sim,
seed 0), in one run:

* **speed** (the run loaded before the clock): events/s of reading alone (uproot + conversion to ``Data``, normalised), of the
  network alone (forward passes on the events already read) and of ``predict_files`` end to
  end (read, network, post-processing, write);
* **breakdown**: the shares of the end-to-end time spent reading, in the network, in the
  post-processing (profile refinement, share calibration, per-shower sums, columns) and
  writing, from a profiled run of the same loop (``Predictor.timings``); goal: reading +
  post-processing + writing <= 25 % of the time;
* **memory**: peak RSS of ``predict_files`` in a fresh process on a file and on a file
  ``--large-factor`` times larger, with chunks of ``--memory-step`` entries; goal: the large
  file's peak <= 1.2x the small one's;
* **Dask**: ``--dask-files`` files on a local cluster of 1 and of 2 single-threaded workers,
  in a fresh process as ``calo-predict --workers`` runs (cluster started and every worker
  warmed before the clock), the outputs compared bit for bit; goal: >= 1.7x.

The models keep their seeded initial weights (no training: the speed does not depend on the
weights), in a run folder of calo-train's layout with a share calibration of two profile
refinement steps (calo-train's default), so the post-processing is the full one. Results go
to ``benchmarks/results/predict.json`` and ``.md`` with the machine, the versions and the date.

Usage::

    nice python benchmarks/predict.py                     # 300 events, about 8 minutes
    python benchmarks/predict.py --events 40 --models garnet --large-factor 2 \\
        --dask-files 2 --dask-events 10 --out /tmp/bench   # a smoke test
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
import torch_geometric
import uproot

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # machine() is shared with read_throughput.py
    sys.path.insert(0, str(BENCH))

from read_throughput import machine  # noqa: E402

import calo  # noqa: E402
from calo.config import to_dict  # noqa: E402
from calo.io import (  # noqa: E402
    FeatureSpec,
    Normalization,
    ReadSummary,
    chunk_to_data,
    iterate_events,
    read_data,
)
from calo.models import ModelConfig, build_model  # noqa: E402
from calo.predict import OutputWriter, predict_files, resolve_schema  # noqa: E402
from calo.predict.core import cached_predictor  # noqa: E402
from calo.reco import ShareCalibration  # noqa: E402
from calo.train.checkpoint import CHECKPOINT_FORMAT  # noqa: E402
from calo.train.config import TrainConfig  # noqa: E402

HIT_FIELDS = ("x", "y", "z", "dx", "dy", "dz", "layer", "energy")


def make_run(out: Path, name: str, data: Path, seed: int = 0) -> Path:
    """A run folder in calo-train's layout: the paper-size ``name`` model with its seeded
    initial weights, the normalisation fitted on ``data`` and a share calibration with two
    profile refinement steps."""
    cfg = TrainConfig()
    cfg.model = ModelConfig(name=name)
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    events, _ = read_data(data, require_truth=False)
    norm = Normalization.fit(torch.cat([d.x for d in events]), FeatureSpec().names)
    ckpt = {
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        "calo": {
            "format": CHECKPOINT_FORMAT,
            "version": calo.__version__,
            "config": to_dict(cfg),
            "normalization": norm.to_dict(),
            "history": {},
        },
    }
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out / "checkpoints" / "last.ckpt")
    table = np.array([[[0.2], [np.nan]]])
    cal = ShareCalibration(
        [[0.0, 0.5], [0.0, 0.5, 1.0], [0.0, 1e9]], table, 100, refine_iterations=2
    )
    cal.save(out / "share_calibration.json")
    return out


def write_files(tmp: Path, n_events: int, factor: int) -> tuple[Path, Path, Path, float]:
    """The calo.sim file of ``n_events``, its hit branches alone, and those repeated
    ``factor`` times; returns the three files and the mean hits per event."""
    from calo.sim.writer import write_root

    sim = tmp / "sim.root"
    write_root(sim, n_events=n_events, seed=0, progress=False, write_config=False)
    with uproot.open(sim) as f:
        arr = f["events"].arrays([f"hit_{k}" for k in HIT_FIELDS])
    hits = ak.zip({k: arr[f"hit_{k}"] for k in HIT_FIELDS})
    small, large = tmp / "small.root", tmp / "large.root"
    for path, reps in ((small, 1), (large, factor)):
        with uproot.recreate(path) as f:
            f.mktree("events", {"hit": hits.type})
            for _ in range(reps):
                f["events"].extend({"hit": hits})
    return sim, small, large, float(ak.mean(ak.num(hits)))


def _read(pred: Any, path: Path, schema: Any, step: int | str) -> tuple[float, list, int]:
    """Reading alone: uproot and the conversion to normalised ``Data``, as predict reads."""
    t0 = time.perf_counter()
    events: list = []
    n = 0
    for arr, info in iterate_events(path, schema, step, report=True):
        status = np.zeros(len(arr), dtype=np.int8)
        events += chunk_to_data(
            arr,
            info,
            schema,
            pred.policy,
            features=pred.features,
            normalization=pred.normalization,
            status=status,
        )
        n += len(arr)
    return time.perf_counter() - t0, events, n


def _network(pred: Any, events: list, batch_size: int) -> float:
    """The network alone, on events already read, in predict's batches."""
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(events), batch_size):
            group = events[i : i + batch_size]
            sizes = torch.tensor([d.num_nodes for d in group])
            batch = torch.repeat_interleave(torch.arange(len(group)), sizes)
            pred.model(torch.cat([d.x for d in group]), batch)
    return time.perf_counter() - t0


def _profiled(pred: Any, path: Path, schema: Any, step: int | str, out_path: Path) -> dict:
    """predict_files' loop for one file, stage by stage (``Predictor.timings``)."""
    pred.timings = {}
    t_uproot = t_write = 0.0
    t0 = time.perf_counter()
    out = OutputWriter(out_path, "events", pred.empty_columns())
    t_write += time.perf_counter() - t0
    it = iterate_events(path, schema, step, report=True)
    while True:
        ta = time.perf_counter()
        try:
            arr, info = next(it)
        except StopIteration:
            t_uproot += time.perf_counter() - ta
            break
        tb = time.perf_counter()
        cols = pred.predict_chunk(arr, info, schema, ReadSummary())
        tc = time.perf_counter()
        out.extend(cols)
        t_write += time.perf_counter() - tc
        t_uproot += tb - ta
    tc = time.perf_counter()
    out.close()
    t_write += time.perf_counter() - tc
    t_prof = time.perf_counter() - t0
    tm, pred.timings = pred.timings, None
    return {
        "total": t_prof,
        "read": t_uproot + tm.get("convert", 0.0),
        "network": tm.get("network", 0.0),
        "postprocess": tm.get("postprocess", 0.0) + tm.get("columns", 0.0),
        "write": t_write,
    }


def speed(
    name: str, run: Path, path: Path, batch_size: int, step: int | str, tmp: Path, repeats: int
) -> dict:
    """Reading alone, network alone, end to end and the profiled breakdown on ``path``,
    each the best of ``repeats`` (the machine is shared: the best is the least disturbed)."""
    # the run as predict_files loads it (once per process): loading is not timed
    pred = cached_predictor(str(run), "cpu", "all", batch_size)
    schema = pred.read_schema(resolve_schema(None, None))
    # warm-up: one batch through everything (first calls allocate, build caches)
    first = next(iterate_events(path, schema, batch_size, report=True))
    pred.predict_chunk(first[0], first[1], schema)
    t_read, t_net, t_e2e, prof = [], [], [], []
    for _ in range(repeats):
        t, events, n_entries = _read(pred, path, schema, step)
        t_read.append(t)
        t_net.append(_network(pred, events, batch_size))
        del events
        t0 = time.perf_counter()
        predict_files(
            run,
            path,
            tmp / f"e2e_{name}",
            device="cpu",
            batch_size=batch_size,
            step_size=step,
            progress=False,
        )
        t_e2e.append(time.perf_counter() - t0)
        prof.append(_profiled(pred, path, schema, step, tmp / f"prof_{name}.root"))
    best = min(prof, key=lambda p: p["total"])
    t_prof = best["total"]
    parts = {k: v for k, v in best.items() if k != "total"}
    t_read, t_net, t_e2e = min(t_read), min(t_net), min(t_e2e)
    share = {k: v / t_prof for k, v in parts.items()}
    return {
        "model": name,
        "parameters": sum(p.numel() for p in pred.model.parameters()),
        "events": n_entries,
        "methods": list(pred.methods),
        "seconds": {
            "read_alone": t_read,
            "network_alone": t_net,
            "end_to_end": t_e2e,
            "profiled": t_prof,
            **{f"profiled_{k}": v for k, v in parts.items()},
        },
        "events_per_s": {
            "read_alone": n_entries / t_read,
            "network_alone": n_entries / t_net,
            "end_to_end": n_entries / t_e2e,
        },
        "share": share,
        "share_read_post_write": share["read"] + share["postprocess"] + share["write"],
    }


def _memory_child(run: str, path: str, out: str, step: int, batch_size: int, threads: int) -> None:
    """In a fresh process: load the run, then predict ``path``; print the resident memory
    after loading and the peak RSS of the process (KiB)."""
    import psutil

    torch.set_num_threads(threads)
    cached_predictor(run, "cpu", "all", batch_size)  # the one predict_files uses
    loaded = psutil.Process().memory_info().rss // 1024
    predict_files(
        run, path, out, device="cpu", batch_size=batch_size, step_size=step, progress=False
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"loaded_kib": loaded, "peak_kib": peak}))


def _in_child(flag: str, *args: Any) -> dict:
    """Run this script's ``flag`` part in a fresh process (as a command would run) and return
    the JSON it prints last."""
    cmd = [sys.executable, __file__, flag, *map(str, args)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent), *sys.path])}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{flag} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def memory(run: Path, path: Path, step: int, batch_size: int, threads: int, tmp: Path) -> dict:
    """Peak RSS of predict_files on ``path`` in a fresh process (``--_memory-child``)."""
    got = _in_child(
        "--_memory-child", run, path, tmp / f"mem_{path.stem}", step, batch_size, threads
    )
    with uproot.open(path) as f:
        n = f["events"].num_entries
    return {
        "file": path.name,
        "events": n,
        "file_mb": round(path.stat().st_size / 1e6, 2),
        "peak_mib": got["peak_kib"] / 1024,
        "loaded_mib": got["loaded_kib"] / 1024,
        "over_loaded_mib": (got["peak_kib"] - got["loaded_kib"]) / 1024,
    }


def _spin(n: int) -> float:
    """Seconds of a pure-Python loop of ``n`` steps (one core's worth of work)."""
    t0 = time.perf_counter()
    s = 0
    for i in range(n):
        s += i
    return time.perf_counter() - t0


def cpu_ceiling(n: int = 10_000_000) -> float:
    """Speed-up of the same CPU-bound loop in 2 processes over 1, now: what the machine gives
    two Dask workers at this moment (2.0 on two free cores; less when others share them)."""
    from multiprocessing import Pool

    with Pool(1) as p:
        t0 = time.perf_counter()
        p.map(_spin, [n, n])
        one = time.perf_counter() - t0
    with Pool(2) as p:
        t0 = time.perf_counter()
        p.map(_spin, [n, n])
        two = time.perf_counter() - t0
    return one / two


def _warm_worker(run: str, batch_size: int, path: str) -> None:
    """Load the run into a worker's cache (``cached_predictor``) and predict a few events of
    ``path`` (the first call compiles the numba kNN and allocates), one thread."""
    from calo.predict import predict
    from calo.predict.core import cached_predictor as load

    torch.set_num_threads(1)
    with uproot.open(path) as f:
        n = min(f["events"].num_entries, batch_size)
    pred = load(run, "cpu", "all", batch_size)
    predict(pred, path, step_size=n)


def dask_scaling(
    run: Path, src: Path, n_files: int, n_events: int, batch_size: int, tmp: Path, repeats: int
) -> dict:
    """``n_files`` files of ``n_events`` on 1 and 2 local single-threaded workers."""
    import distributed

    with uproot.open(src) as f:
        arr = f["events"].arrays([f"hit_{k}" for k in HIT_FIELDS], entry_stop=n_events)
    rec = ak.zip({k: arr[f"hit_{k}"] for k in HIT_FIELDS})
    files = []
    for i in range(n_files):
        p = tmp / f"dask_{i}.root"
        with uproot.recreate(p) as f:
            f.mktree("events", {"hit": rec.type})
            f["events"].extend({"hit": rec})
        files.append(str(p))
    rows = []
    outputs = {}
    import logging

    if __name__ != "__main__":  # imported (tests): send _warm_worker by value, not by name
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ceiling = cpu_ceiling()
    for workers in (1, 2):
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        try:
            client = distributed.Client(cluster)
            # every worker imports calo, loads the run and runs it once before the clock (as
            # a long run pays once per worker)
            client.run(_warm_worker, str(run), batch_size, files[0])
            client.close()
            out = tmp / f"dask_out_{workers}"
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                predict_files(
                    run,
                    files,
                    out,
                    device="cpu",
                    batch_size=batch_size,
                    scheduler=cluster.scheduler_address,
                    progress=False,
                )
                times.append(time.perf_counter() - t0)
        finally:
            cluster.close()
        outputs[workers] = out
        sec = min(times)
        rows.append(
            {
                "workers": workers,
                "seconds": sec,
                "all_seconds": times,
                "events_per_s": n_files * len(rec) / sec,
            }
        )
    identical = True
    for p in files:
        stem = Path(p).stem
        a = uproot.open(outputs[1] / f"{stem}_pred.root")["events"].arrays()
        b = uproot.open(outputs[2] / f"{stem}_pred.root")["events"].arrays()
        for name in a.fields:
            identical &= bool(ak.all(ak.isclose(a[name], b[name], rtol=0, atol=0, equal_nan=True)))
    return {
        "files": n_files,
        "events_per_file": len(rec),
        "rows": rows,
        "speedup": rows[0]["seconds"] / rows[1]["seconds"],
        "cpu_ceiling": ceiling,
        "cpu_ceiling_after": cpu_ceiling(),
        "identical": identical,
    }


def to_markdown(res: dict[str, Any]) -> str:
    m, v = res["machine"], res["versions"]
    md = [
        "# calo-predict: end-to-end speed, time breakdown, memory, Dask",
        "",
        f"{res['date']}; {m['cpu']}, {m['cores']} cores; "
        f"Python {m['python']}, calo {v['calo']}, torch {v['torch']}, torch_geometric "
        f"{v['torch_geometric']}, uproot {v['uproot']}, awkward {v['awkward']}. "
        f"1-min load average before the run: {res['load_average']:.2f} (shared machine). "
        f"CPU, torch threads {res['threads']} (as each Dask worker), batch size "
        f"{res['batch_size']}, chunks of {res['step_size']}, best of {res['repeats']}; untrained "
        "paper-size models (the speed does not depend on the weights) with a share "
        "calibration of two profile refinement steps.",
        "",
        f"## Speed ({res['events']} toy two-shower events, {res['hits_per_event']:.0f} hits/event)",
        "",
        "| model | parameters | read alone (ev/s) | network alone (ev/s) | end to end (ev/s) "
        "| read | network | post-processing | write | read+post+write (goal <= 25 %) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["speed"]:
        e, s = r["events_per_s"], r["share"]
        md.append(
            f"| {r['model']} | {r['parameters']:,} | {e['read_alone']:,.0f} | "
            f"{e['network_alone']:,.1f} | {e['end_to_end']:,.1f} | {s['read']:.1%} | "
            f"{s['network']:.1%} | {s['postprocess']:.1%} | {s['write']:.1%} | "
            f"{r['share_read_post_write']:.1%} |"
        )
    if res.get("memory"):
        mem = res["memory"]
        md += [
            "",
            f"## Peak memory (GravNet, fresh process, chunks of {mem['step']} entries)",
            "",
            "| file | events | MB | peak RSS (MiB) | RSS after loading (MiB) | peak - loaded "
            "(MiB) |",
            "|---|---|---|---|---|---|",
        ]
        for r in mem["rows"]:
            md.append(
                f"| {r['file']} | {r['events']} | {r['file_mb']} | {r['peak_mib']:.0f} | "
                f"{r['loaded_mib']:.0f} | {r['over_loaded_mib']:.0f} |"
            )
        md += ["", f"Large/small peak: {mem['ratio']:.2f} (goal <= 1.2)."]
    if res.get("dask"):
        d = res["dask"]
        md += [
            "",
            f"## Dask, one task per file ({d['files']} files x {d['events_per_file']} events, "
            "GravNet, cluster started and the run loaded in every worker before the clock)",
            "",
            "| workers (1 thread each) | seconds | events/s |",
            "|---|---|---|",
        ]
        for r in d["rows"]:
            md.append(f"| {r['workers']} | {r['seconds']:.1f} | {r['events_per_s']:.1f} |")
        md += [
            "",
            f"Speed-up 1 -> 2 workers: {d['speedup']:.2f}x (goal >= 1.7); outputs of 1 and 2 "
            f"workers identical bit for bit: {d['identical']}. What the machine gave two "
            "processes at the time (a pure-Python loop in 2 processes against 1): "
            f"{d['cpu_ceiling']:.2f}x before and {d['cpu_ceiling_after']:.2f}x after the "
            "measurement (2.0 on two free cores).",
        ]
    md += ["", f"Command: `{res['command']}`", ""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--_dask-child":
        run, src, n_files, n_events, bs, tmp, repeats = argv[1:8]
        res = dask_scaling(
            Path(run), Path(src), int(n_files), int(n_events), int(bs), Path(tmp), int(repeats)
        )
        print(json.dumps(res))
        return 0
    if argv and argv[0] == "--_memory-child":
        run, path, out, step, bs, threads = argv[1:7]
        _memory_child(run, path, out, int(step), int(bs), int(threads))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300, help="events of the speed/memory file")
    ap.add_argument("--models", nargs="+", default=["gravnet", "garnet"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--step-size", default="100 MB", help="chunks of the speed runs")
    ap.add_argument("--large-factor", type=int, default=10)
    ap.add_argument("--memory-step", type=int, help="entries per chunk (default --events)")
    ap.add_argument("--dask-files", type=int, default=4)
    ap.add_argument("--dask-events", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: as a worker)")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    args = ap.parse_args(argv)
    step: int | str = int(args.step_size) if args.step_size.isdigit() else args.step_size
    load = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sim, small, large, hpe = write_files(tmp, args.events, args.large_factor)
        runs = {name: make_run(tmp / f"run_{name}", name, sim) for name in args.models}
        rows = []
        for name, run in runs.items():
            print(f"speed: {name} ...", flush=True)
            rows.append(speed(name, run, small, args.batch_size, step, tmp, args.repeats))
        gravnet = runs.get("gravnet") or next(iter(runs.values()))
        mem = None
        if not args.no_memory:
            print("memory ...", flush=True)
            mstep = args.memory_step or args.events
            mrows = [
                memory(gravnet, p, mstep, args.batch_size, args.threads, tmp)
                for p in (small, large)
            ]
            mem = {
                "step": mstep,
                "rows": mrows,
                "ratio": mrows[1]["peak_mib"] / mrows[0]["peak_mib"],
            }
        dask = None
        if not args.no_dask:
            print("dask ...", flush=True)
            dask = _in_child(
                "--_dask-child",
                gravnet,
                small,
                args.dask_files,
                args.dask_events,
                args.batch_size,
                tmp,
                args.repeats,
            )
    res = {
        "benchmark": "predict",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": load,
        "versions": {
            "calo": calo.__version__,
            "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__,
            "uproot": uproot.__version__,
            "awkward": ak.__version__,
            "numpy": np.__version__,
        },
        "events": args.events,
        "hits_per_event": hpe,
        "batch_size": args.batch_size,
        "step_size": args.step_size,
        "threads": args.threads,
        "repeats": args.repeats,
        "speed": rows,
        "memory": mem,
        "dask": dask,
        "wall_s": time.perf_counter() - t_start,
        "command": " ".join(["python benchmarks/predict.py", *argv]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict.json").write_text(json.dumps(res, indent=2) + "\n")
    md = to_markdown(res)
    (args.out / "predict.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
