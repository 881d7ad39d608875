"""Speed of the numba fixed-point GarNetStack reference vs the g++ -O2 build of nnet_garnet.h.

The paper's FPGA model (GarNetStack, aggregators (4, 4, 8), F_LR (8, 8, 16), F_out (8, 8, 16),
V_max = 128, R = 32, mean collapse, hls4ml's default types) runs on toy events with n uniform
in 16..128. Both are timed on in-memory events without file I/O, on one core; the outputs of
both are also compared bit for bit. Writes benchmarks/results/fpga_reference.{json,md}.

Usage: python benchmarks/fpga_reference.py [--events 20000] [--cpp-events 2000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from calo.fpga.events import toy_events
from calo.fpga.export import build_harness, run_harness
from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
from calo.fpga.reference import FixedGarNet

PAPER = [(4, 4, 8, 8), (8, 4, 8, 8), (8, 8, 16, 16)]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--cpp-events", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    numba.set_num_threads(1)
    rng = np.random.default_rng(2021)
    cfg = GarNetFixedConfig(n_vertices=128, reuse_factor=32)
    model = FixedGarNet([GarNetWeights.random(rng, *d) for d in PAPER], cfg)
    X, n = toy_events(rng, args.events, 128, 16, 128)
    Xr = model.quantize_inputs(X)
    model.run_raw(Xr[:10], n[:10])  # compile
    model.run_raw(Xr[:10], n[:10], track_ranges=True)
    best = np.inf
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ref, rep = model.run_raw(Xr, n)
        best = min(best, time.perf_counter() - t0)
    numba_rate = args.events / best
    t0 = time.perf_counter()
    model.run_raw(Xr, n, track_ranges=True)
    tracked_rate = args.events / (time.perf_counter() - t0)

    m = args.cpp_events
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_harness(model, tmp, opt="-O2")
        cpp_rates = []
        for _ in range(args.repeats):
            out, rate = run_harness(exe, model, Xr[:m], n[:m], tmp)
            cpp_rates.append(rate)
    cpp_rate = max(cpp_rates)
    mismatches = int((out != ref[:m]).sum())
    n_mean = float(n.mean())
    result = {
        "benchmark": "fpga_reference",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu(),
            "cores_visible": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "gxx": os.popen("g++ -dumpfullversion").read().strip(),
        },
        "model": "GarNetStack A=(4,4,8) F_LR=(8,8,16) F_out=(8,8,16), V=128, R=32, collapse mean",
        "events_numba": args.events,
        "events_cpp": m,
        "n_mean": n_mean,
        "macs_per_event_mean": 288 * n_mean + 1744,
        "numba_events_per_s": numba_rate,
        "numba_tracked_ranges_events_per_s": tracked_rate,
        "cpp_O2_events_per_s": cpp_rate,
        "speedup_numba_over_cpp": numba_rate / cpp_rate,
        "bit_mismatches": mismatches,
        "outputs_compared": int(out.size),
        "overflows_in_run": rep.total(),
        "targets": {"numba_events_per_s": 100000, "speedup": 10},
    }
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "fpga_reference.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Fixed-point GarNetStack reference speed",
        "",
        f"{result['date']}, {result['machine']['cpu']}, one core; numpy "
        f"{np.__version__}, numba {numba.__version__}, g++ {result['machine']['gxx']}.",
        f"Paper's stack, V=128, R=32, n uniform 16..128 (mean {n_mean:.1f}); in-memory events.",
        "",
        "| implementation | events/s | target |",
        "|---|---|---|",
        f"| numba reference | {numba_rate:,.0f} | >= 100,000 |",
        f"| numba reference, value ranges tracked | {tracked_rate:,.0f} | |",
        f"| nnet_garnet.h, g++ -O2 | {cpp_rate:,.0f} | |",
        f"| speed-up numba / C++ | {numba_rate / cpp_rate:.1f}x | >= 10x |",
        "",
        f"Bit mismatches: {mismatches} of {out.size} outputs ({m} events).",
        "",
    ]
    (outdir / "fpga_reference.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
