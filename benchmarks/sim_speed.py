"""Simulation speed of the toy calorimeter on one core.

Measures events/s of ``calo.sim`` for the default two-shower configuration (electrons and
photons, 5-60 GeV) and for single electron/pion events with background (the FPGA sample), at
three levels: numpy arrays only (``generate_arrays``), the awkward event array
(``generate``), and the full ``write_root`` to a ROOT file. Start-up (imports, building the
geometry, the first block) is excluded. Numerical libraries are limited to one thread.
Writes ``benchmarks/results/sim_speed.json`` and ``.md`` with the machine, versions and date.

Target: >= 1,000 two-shower events per second on one core.

Usage::

    python benchmarks/sim_speed.py                    # 4096 events, best of 3
    python benchmarks/sim_speed.py --events 1024 --repeats 1 --out /tmp/bench
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import awkward as ak  # noqa: E402
import numpy as np  # noqa: E402
import uproot  # noqa: E402

import calo  # noqa: E402
from calo.config import apply_overrides  # noqa: E402
from calo.sim import SimConfig, generate, generate_arrays  # noqa: E402
from calo.sim.writer import write_root  # noqa: E402

CONFIGS = {
    "two showers (e/gamma, 5-60 GeV, default)": [],
    "single e/pi 10-100 GeV + 30 background hits": [
        "gun.n_particles=1",
        "gun.pdg=[11,211]",
        "gun.energy.min=10",
        "gun.energy.max=100",
        "background.mean_hits=30",
    ],
}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _best(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls; the CPU time of that call is kept in ``_cpu``."""
    times = []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = min(times)
    _cpu.append(cpu)
    return wall


# CPU seconds of each best call: on a shared machine, events per CPU-second is what one core
# delivers, whatever else runs (the simulation is single-threaded numpy)
_cpu: list[float] = []


def run(n_events: int, repeats: int, tmp: Path) -> list[dict]:
    rows = []
    for name, overrides in CONFIGS.items():
        cfg = apply_overrides(SimConfig(), overrides)
        generate_arrays(cfg, 64, seed=123)  # warm-up: geometry, caches
        d = generate_arrays(cfg, n_events, seed=1)
        t_arr = _best(lambda cfg=cfg: generate_arrays(cfg, n_events, seed=1), repeats)
        cpu_arr = _cpu[-1]
        t_ak = _best(lambda cfg=cfg: generate(cfg, n_events, seed=1), repeats)
        path = tmp / "bench.root"
        t_root = _best(
            lambda cfg=cfg, path=path: write_root(
                path,
                cfg,
                n_events=n_events,
                seed=1,
                chunk_size=1000,
                progress=False,
                write_config=False,
            ),
            repeats,
        )
        rows.append(
            {
                "config": name,
                "overrides": overrides,
                "events": n_events,
                "hits_per_event": float(d["nhit"].mean()),
                "noise_hits_per_event": float(d["noise"].sum() / n_events),
                "events_per_s_arrays": n_events / t_arr,
                "events_per_cpu_s_arrays": n_events / cpu_arr,
                "events_per_s_awkward": n_events / t_ak,
                "events_per_s_root": n_events / t_root,
                "root_bytes_per_event": path.stat().st_size / n_events,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.events, args.repeats, Path(tmp))
    meta = {
        "benchmark": "sim_speed",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu_name(),
            "cores_available": os.cpu_count(),
            "threads_used": 1,
            "platform": platform.platform(),
            "load_average_1min_before": load_before,
        },
        "versions": {
            "python": sys.version.split()[0],
            "calo": calo.__version__,
            "numpy": np.__version__,
            "awkward": ak.__version__,
            "uproot": uproot.__version__,
        },
        "command": "python benchmarks/sim_speed.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "target": ">= 1000 two-shower events/s on one core (arrays level)",
        "results": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim_speed.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = [
        "# Simulation speed (calo.sim, one core)",
        "",
        f"{meta['date']} on {meta['machine']['cpu']} ({meta['machine']['platform']}), "
        f"python {meta['versions']['python']}, numpy {meta['versions']['numpy']}, "
        f"awkward {meta['versions']['awkward']}, uproot {meta['versions']['uproot']}; "
        f"`{meta['command'].strip()}`, best of {args.repeats}, {args.events} events; "
        f"1-min load average before the run: {load_before} (shared machine: other jobs slow it).",
        "",
        "| configuration | hits/event | noise hits/event | events/s (numpy) | events per CPU-s (numpy) | events/s (awkward) | events/s (ROOT file) | bytes/event |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['hits_per_event']:.1f} | {r['noise_hits_per_event']:.2f} | "
            f"{r['events_per_s_arrays']:.0f} | {r['events_per_cpu_s_arrays']:.0f} | "
            f"{r['events_per_s_awkward']:.0f} | "
            f"{r['events_per_s_root']:.0f} | {r['root_bytes_per_event']:.0f} |"
        )
    lines += ["", f"Target: {meta['target']}.", ""]
    (out / "sim_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
