"""Speed of the numba fixed-point GarNetStack reference vs the g++ -O2 build of nnet_garnet.h.

The paper's FPGA model (GarNetStack, aggregators (4, 4, 8), F_LR (8, 8, 16), F_out (8, 8, 16),
V_max = 128, R = 32, mean collapse, hls4ml's default types) runs on events from the simulation
(``--data sim``, the default: calo.sim electrons and charged pions of 10-100 GeV with background
hits, the 128 most energetic hits of each in the paper's 4 features, as
:func:`calo.fpga.data.load_e_pi` packs them) or on toy events with n uniform in 16..128
(``--data toy``). The weights are those of a trained checkpoint (``--checkpoint``, from
:func:`calo.fpga.train.save_checkpoint`), of a model trained here (``--weights trained``, the
default: 3,000 other simulated e/pi events, 20 float epochs and 2 quantization-aware ones, about
20 s) or random ones (``--weights random``; random distance weights send many more events to the
exact kernel, see below). Both are timed on in-memory events without file I/O, on one core (the numba
kernels are serial njit functions, no parallel=True, and numba's thread count is set to 1);
the outputs of both are also compared bit for bit. Each rate is the best of ``--repeats``
runs, by wall clock and by process CPU time (the machine may be shared: the 1-minute load
average is recorded before and after). The C++ CPU time of the compute loop is the child CPU
time of a run with ``--cpp-passes`` passes over the events minus that of a one-pass run.
Writes benchmarks/results/fpga_reference.{json,md}.

Usage: python benchmarks/fpga_reference.py [--data sim|toy] [--weights trained|random]
[--checkpoint fpga.ckpt]
[--events 20000] [--cpp-events 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from calo.fpga.events import toy_events
from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights, sublayer_dims
from calo.fpga.harness import build_harness, run_harness
from calo.fpga.reference import FixedGarNet

PAPER = sublayer_dims()  # (F_in, A, F_LR, F_out) per sublayer of the paper's stack


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _time(fn, repeats: int) -> tuple[float, float]:
    """Best wall and best process CPU seconds of ``fn()`` over ``repeats`` calls."""
    wall = cpu = np.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def _events(
    source: str, n_events: int, rng: np.random.Generator, tmp: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Padded events ``X [B, 128, 4]``, hit counts and a description of where they came from."""
    if source == "toy":
        X, n = toy_events(rng, n_events, 128, 16, 128)
        return X, n, "toy events, n uniform in 16..128"
    from calo.fpga.data import load_e_pi, simulate_e_pi

    path = Path(tmp) / "e_pi.root"
    simulate_e_pi(path, n_events=n_events, seed=2021)
    sample = load_e_pi(path, v_max=128)
    trunc = sample.truncation
    desc = (
        f"calo.sim e/pi events (10-100 GeV, ~30 background hits), 128 most energetic hits; {trunc}"
    )
    return sample.X.double().numpy(), sample.n.numpy().astype(np.int64), desc


def _train_paper_model(events: int = 3000, epochs: int = 20) -> FixedGarNet:
    """The paper's stack trained briefly on simulated e/pi events, as its FixedGarNet."""
    import torch

    from calo.fpga.data import load_e_pi, simulate_e_pi
    from calo.fpga.qat import QGarNetModel, QGarNetStack
    from calo.fpga.train import train_model

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        simulate_e_pi(Path(tmp) / "train.root", n_events=events, seed=7)
        sample = load_e_pi(Path(tmp) / "train.root", v_max=128)
    cfg = GarNetFixedConfig(n_vertices=128, reuse_factor=32)
    model = QGarNetModel(QGarNetStack(config=cfg, quantized=False))
    train_model(model, sample, epochs=epochs, lr=5e-3, batch_size=50)
    model.stack.set_quantized(True)
    train_model(model, sample, epochs=2, lr=1e-3, batch_size=50)
    return model.stack.to_reference()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--cpp-events", type=int, default=2000)
    ap.add_argument("--cpp-passes", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data", choices=("sim", "toy"), default="sim", help="event source")
    ap.add_argument("--weights", choices=("trained", "random"), default="trained")
    ap.add_argument("--checkpoint", help="a trained FPGA model to use instead (V_max 128, R 32)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    numba.set_num_threads(1)
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(2021)
    if args.checkpoint:
        from calo.fpga.train import load_checkpoint

        model = load_checkpoint(args.checkpoint)[0].stack.to_reference()
        if (model.config.n_vertices, model.config.reuse_factor) != (128, 32):
            raise SystemExit(f"{args.checkpoint}: not the paper's V_max = 128, R = 32 model")
        weights = f"trained ({args.checkpoint})"
    elif args.weights == "trained":
        model = _train_paper_model()
        weights = "trained (3,000 simulated e/pi events, 20 float + 2 quantization-aware epochs)"
    else:
        cfg = GarNetFixedConfig(n_vertices=128, reuse_factor=32)
        model = FixedGarNet([GarNetWeights.random(rng, *d) for d in PAPER], cfg)
        weights = "random"
    with tempfile.TemporaryDirectory() as tmp:
        X, n, events_desc = _events(args.data, args.events, rng, tmp)
    Xr = model.quantize_inputs(X)
    t0 = time.perf_counter()
    model.run_raw(Xr[:10], n[:10])  # compile
    compile_s = time.perf_counter() - t0
    model.run_raw(Xr[:10], n[:10], exact=True)
    model.run_raw(Xr[:10], n[:10], track_ranges=True)
    ref, rep = model.run_raw(Xr, n)
    exact_events = model.last_exact_events
    w, c = _time(lambda: model.run_raw(Xr, n), args.repeats)
    numba_rate, numba_cpu_rate = args.events / w, args.events / c
    w, c = _time(lambda: model.run_raw(Xr, n, exact=True), max(1, args.repeats // 2))
    exact_rate, exact_cpu_rate = args.events / w, args.events / c
    w, c = _time(lambda: model.run_raw(Xr, n, track_ranges=True), max(1, args.repeats // 2))
    tracked_rate, tracked_cpu_rate = args.events / w, args.events / c
    ref_exact, rep_exact = model.run_raw(Xr, n, exact=True)
    fast_equals_exact = bool(
        np.array_equal(ref, ref_exact) and np.array_equal(rep.counts, rep_exact.counts)
    )

    m = args.cpp_events
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_harness(model, tmp, opt="-O2")
        cpp_rates = []
        cpp_cpu = []
        for _ in range(args.repeats):
            c0 = _child_cpu()
            out, rate = run_harness(exe, model, Xr[:m], n[:m], tmp)
            c1 = _child_cpu()
            _, rate_k = run_harness(exe, model, Xr[:m], n[:m], tmp, repeat=args.cpp_passes)
            c2 = _child_cpu()
            cpp_rates += [rate, rate_k]
            extra = (c2 - c1) - (c1 - c0)
            if extra > 0:
                cpp_cpu.append((args.cpp_passes - 1) * m / extra)
    cpp_rate = max(cpp_rates)
    cpp_cpu_rate = max(cpp_cpu) if cpp_cpu else float("nan")
    mismatches = int((out != ref[:m]).sum())
    n_mean = float(n.mean())
    load_after = os.getloadavg()[0]
    result = {
        "benchmark": "fpga_reference",
        "command": "python benchmarks/fpga_reference.py "
        f"--events {args.events} --cpp-events {m} --cpp-passes {args.cpp_passes} "
        f"--repeats {args.repeats} --data {args.data}"
        + (f" --checkpoint {args.checkpoint}" if args.checkpoint else f" --weights {args.weights}"),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu(),
            "cores_visible": os.cpu_count(),
            "load_average_1min_before": load_before,
            "load_average_1min_after": load_after,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "numba_threads": numba.get_num_threads(),
            "numba_kernels": "serial njit (no parallel=True): one core",
            "gxx": os.popen("g++ -dumpfullversion").read().strip(),
        },
        "model": "GarNetStack A=(4,4,8) F_LR=(8,8,16) F_out=(8,8,16), V=128, R=32, collapse mean",
        "events": events_desc,
        "weights": weights,
        "events_numba": args.events,
        "events_cpp": m,
        "n_mean": n_mean,
        "macs_per_event_mean": 288 * n_mean + 1744,
        "numba_compile_s": compile_s,
        "numba_events_per_s": numba_rate,
        "numba_cpu_events_per_s": numba_cpu_rate,
        "numba_events_recomputed_by_exact_kernel": exact_events,
        "numba_exact_kernel_only_events_per_s": exact_rate,
        "numba_exact_kernel_only_cpu_events_per_s": exact_cpu_rate,
        "numba_tracked_ranges_events_per_s": tracked_rate,
        "numba_tracked_ranges_cpu_events_per_s": tracked_cpu_rate,
        "fast_equals_exact_kernel": fast_equals_exact,
        "cpp_O2_events_per_s": cpp_rate,
        "cpp_O2_cpu_events_per_s": cpp_cpu_rate,
        "speedup_numba_over_cpp": numba_rate / cpp_rate,
        "speedup_numba_over_cpp_cpu": numba_cpu_rate / cpp_cpu_rate,
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
        f"{result['date']}, {result['machine']['cpu']} ({os.cpu_count()} cores, shared; "
        f"1-min load average {load_before:.1f} before, {load_after:.1f} after), one core; "
        f"numpy {np.__version__}, numba {numba.__version__} (serial kernels, 1 thread), "
        f"g++ {result['machine']['gxx']}.",
        f"Paper's stack, V=128, R=32, {weights} weights; {events_desc}; mean n {n_mean:.1f}; "
        f"in-memory events, best of {args.repeats} runs. Command: `{result['command']}`.",
        "",
        "| implementation | events/s (wall) | events/s (CPU time) | target |",
        "|---|---|---|---|",
        f"| numba reference | {numba_rate:,.0f} | {numba_cpu_rate:,.0f} | >= 100,000 |",
        f"| numba reference, exact kernel only | {exact_rate:,.0f} | {exact_cpu_rate:,.0f} | |",
        f"| numba reference, value ranges tracked | {tracked_rate:,.0f} | "
        f"{tracked_cpu_rate:,.0f} | |",
        f"| nnet_garnet.h, g++ -O2 | {cpp_rate:,.0f} | {cpp_cpu_rate:,.0f} | |",
        f"| speed-up numba / C++ | {numba_rate / cpp_rate:.1f}x | "
        f"{numba_cpu_rate / cpp_cpu_rate:.1f}x | >= 10x |",
        "",
        f"The fast kernel sent {exact_events} of {args.events} events (a cast could have "
        "overflowed) to the exact kernel; fast path and exact kernel alone agree bit for bit "
        f"and in overflow counts: {fast_equals_exact}.",
        f"Bit mismatches with the C++: {mismatches} of {out.size} outputs ({m} events).",
        "",
    ]
    (outdir / "fpga_reference.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
