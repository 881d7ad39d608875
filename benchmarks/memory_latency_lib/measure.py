"""The measurement process: a server that imports the libraries once and forks one child per
configuration, and what the child measures (forward latency, training step, peak memory above
the idle baseline; the kNN methods)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import json
import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .events import make_events
from .models import LAYER_IN, LAYER_OUT, build, register_pyg_knn

#: the benchmarks folder: the script that serves (memory_latency.py --serve) and knn.py
BENCH = Path(__file__).resolve().parents[1]

ALLOCATOR_VARS = (
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_ARENA_MAX",
    "GLIBC_TUNABLES",
    "LD_PRELOAD",
)

KNN_METHODS = ("calo kdtree", "calo torch", "cdist+topk", "scipy cKDTree", "torch-cluster")


def _load_knn_bench() -> Any:
    """``benchmarks/knn.py`` as a module (its input maker, methods, timer and checks)."""
    name = "calo_bench_knn"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / "knn.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _Peak:
    """Peak memory of a block above the baseline just before it (bytes)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.peak: int | None = None

    def __enter__(self) -> _Peak:
        import torch

        gc.collect()
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            _trim()
            self.base = _status_kb("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = _status_kb("VmHWM") - self.base


def _stats(times: list[float], cpu: list[float]) -> dict[str, Any]:
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {
        "runs": len(times),
        "median_s": statistics.median(times),
        "q25_s": q[0],
        "q75_s": q[2],
        "min_s": min(times),
        "max_s": max(times),
        "median_cpu_s": statistics.median(cpu),
    }


def _profiler_peak(fn: Callable[[], Any]) -> int:
    """Peak of the bytes torch holds during ``fn()``, from torch.profiler's memory records."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cur = peak = 0
    for e in sorted(prof.profiler.function_events, key=lambda e: e.time_range.start):
        cur += e.self_cpu_memory_usage
        peak = max(peak, cur)
    return peak


def _is_oom(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or "out of memory" in text or "can't allocate" in text


def measure(cfg: dict[str, Any], out: Path) -> None:
    """Measure one configuration; the record is rewritten to ``out`` after every phase."""
    import torch

    t_start = time.perf_counter()
    device, cap = cfg["device"], cfg["cap_s"]
    rec: dict[str, Any] = {"status": "running"}

    def save() -> None:
        out.write_text(json.dumps(rec))

    torch.set_num_threads(cfg["threads"])
    if device == "cpu" and cfg.get("mem_limit_gb"):
        limit = _status_kb("VmSize") + int(cfg["mem_limit_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    torch.manual_seed(0)
    module = build(cfg["kind"], cfg["name"]).to(device)
    rec["parameters"] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    features = 7 if cfg["kind"] == "model" else LAYER_IN
    n, nb = cfg["n"], cfg["batch"]
    x, batch = make_events(cfg["data"], n, nb, features, seed=1000 + n + nb)
    x, batch = x.to(device), batch.to(device)
    target = torch.rand(x.shape[0], 2 if cfg["kind"] == "model" else LAYER_OUT, device=device)
    opt = torch.optim.Adam(module.parameters(), lr=1e-4)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def forward() -> None:
        with torch.no_grad():
            module(x, batch)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(module(x, batch), target)
        loss.backward()
        opt.step()

    # tiny warm-up of both phases: numba kernels, first-call paths and the code pages of the
    # backward kernels (resident file pages count in VmHWM), not at the measured size
    xs, bs = make_events(cfg["data"], 64, 2, features, seed=1)
    xs, bs = xs.to(device), bs.to(device)
    module.eval()
    with torch.no_grad():
        module(xs, bs)
    module.train()
    module(xs, bs).square().mean().backward()
    module.zero_grad(set_to_none=True)
    del xs, bs

    def phase(name: str, fn: Callable[[], None], deadline: float, repeats: int) -> bool:
        """Warm-up run (measures memory), then ``repeats`` timed runs if they fit."""
        res: dict[str, Any] = {"status": "running"}
        rec[name] = res
        save()
        try:
            with _Peak(device) as pk:
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                sync()
                res["first_s"] = time.perf_counter() - t0
                res["first_cpu_s"] = time.process_time() - c0
            res["peak_bytes"] = pk.peak
            save()
            left = deadline - time.perf_counter()
            if res["first_s"] * repeats > left:
                res["status"] = "over_time"
                res["note"] = (
                    f"{repeats} runs of {res['first_s']:.2f} s do not fit the "
                    f"{left:.0f} s left of the cap"
                )
                return True
            times, cpu = [], []
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                sync()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            res.update(_stats(times, cpu))
            res["status"] = "ok"
            return True
        except Exception as e:
            if not _is_oom(e):
                raise
            res["status"] = "oom"
            res["note"] = str(e).splitlines()[0][:200]
            return False
        finally:
            save()

    module.eval()
    ok = phase("forward", forward, t_start + 0.45 * cap, cfg["repeats"])
    if ok:
        module.train()
        ok = phase("train", train_step, t_start + 0.9 * cap, cfg["train_repeats"])
    else:
        rec["train"] = {"status": "oom", "note": "forward already out of memory"}
    module.eval()
    for name, fn in (("forward", forward), ("train", train_step)):
        first = (rec.get(name) or {}).get("first_s")
        if device != "cpu" or not ok or first is None:
            continue
        if n < cfg.get("profile_min_n", 0):
            rec[name]["profiler_note"] = "not profiled below --profile-min-n"
            continue
        if name == "train":
            module.train()
        left = t_start + cap - time.perf_counter()
        if 3 * first < left:
            try:
                _trim()
                rec[name]["profiler_peak_bytes"] = _profiler_peak(fn)
            except Exception as e:  # the cross-check must not lose the measurement
                if not _is_oom(e):
                    raise
                rec[name]["profiler_note"] = "out of memory under the profiler"
        else:
            rec[name]["profiler_note"] = "skipped: not enough time left in the cap"
        save()
    statuses = {rec["forward"]["status"], rec.get("train", {}).get("status")}
    rec["status"] = "oom" if "oom" in statuses else "over_time" if "over_time" in statuses else "ok"
    save()


def measure_knn(cfg: dict[str, Any], out: Path) -> None:
    """One kNN method on one input (benchmarks/knn.py's inputs, methods, timer and check)."""
    import torch

    from calo.nn import knn

    kb = _load_knn_bench()
    torch.set_num_threads(cfg["threads"])
    n, events, dev = cfg["n"], cfg["batch"], cfg["device"]
    rec: dict[str, Any] = {"status": "running"}
    x, b = kb.make_input(n, events, dev, seed=n + events)
    fn = kb.methods(n, events, dev, cfg["max_brute_n"])[cfg["name"]]
    if fn is None:
        rec.update(status="not_run", note="O(N^2) method above --max-brute-n on CPU")
    else:
        timing = kb.timed(fn, x, b, cfg["repeats"], dev)
        if isinstance(timing, dict):
            rec.update(timing)
        else:  # older benchmarks/knn.py: (median wall, median CPU)
            rec.update(median_s=timing[0], median_cpu_s=timing[1])
        rec["status"] = "ok"
        out.write_text(json.dumps(rec))
        idx = fn(x, b)
        if cfg["name"] == "torch-cluster":
            idx = kb.tc_to_idx(idx, x.shape[0])
        ref = knn(x, kb.K, b, backend="kdtree" if dev == "cpu" else "torch")[1]
        rec["agrees"] = kb.check(idx, x, ref.double().sort(1).values)
    out.write_text(json.dumps(rec))


def serve() -> None:
    """Read one JSON job per line on stdin, run it in a forked child, answer one JSON line."""
    import numpy as np
    import torch  # noqa: F401

    import calo.models
    import calo.nn
    import calo.sim  # noqa: F401
    from calo.nn._knn_kdtree import knn_kdtree

    register_pyg_knn()
    _load_knn_bench()
    import scipy.spatial  # noqa: F401  (cKDTree in the kNN comparison)

    # load the numba kernels from their cache (pure numpy: no torch thread pool before fork)
    knn_kdtree(np.random.default_rng(0).random((64, 4)), np.array([0, 64]), 4, num_threads=1)
    # Move everything imported so far out of the collector's reach: a full collection of the
    # libraries' objects takes about a second in a forked child (and copies every page it
    # touches), which would otherwise land inside timed runs.
    gc.collect()
    gc.freeze()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        out = Path(job["out"])
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                if job["cfg"]["kind"] == "knn":
                    measure_knn(job["cfg"], out)
                else:
                    measure(job["cfg"], out)
            except BaseException:
                code = 1
                with contextlib.suppress(Exception):
                    rec = json.loads(out.read_text()) if out.exists() else {}
                    rec.update(status="error", error=traceback.format_exc()[-2000:])
                    out.write_text(json.dumps(rec))
            finally:
                sys.stdout.flush()
                os._exit(code)
        timed_out, status = False, 0
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.perf_counter() - t0 > job["timeout_s"]:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        answer = {"wall_s": time.perf_counter() - t0, "timed_out": timed_out}
        answer.update(signal=sig, exit_code=code)
        print(json.dumps(answer), flush=True)


class Server:
    """A ``memory_latency.py --serve`` process with its own environment (allocator settings)."""

    def __init__(self, env_extra: dict[str, str]) -> None:
        env = dict(os.environ)
        for var in ALLOCATOR_VARS:
            if var.startswith("MALLOC"):
                env.pop(var, None)
        env.update(env_extra)
        self.env = {v: env[v] for v in ALLOCATOR_VARS if v in env}
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "memory_latency.py"), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = self._read(600)
        if not ready or not ready.get("ready"):
            raise RuntimeError("the benchmark server did not start")

    def _read(self, timeout: float) -> dict[str, Any] | None:
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def run(self, cfg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rec.json"
            self.proc.stdin.write(json.dumps({"cfg": cfg, "out": str(out), "timeout_s": timeout_s}))
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            answer = self._read(timeout_s + 120)
            if answer is None:
                raise RuntimeError("the benchmark server stopped answering")
            rec = json.loads(out.read_text()) if out.exists() else {}
        rec["wall_s"] = round(answer["wall_s"], 3)
        if answer["timed_out"]:
            rec["status"] = "over_time"
            rec["note"] = f"killed at the {timeout_s:.0f} s cap"
            for phase in ("forward", "train"):
                if rec.get(phase, {}).get("status") == "running":
                    rec[phase]["status"] = "over_time"
        elif answer["signal"] is not None:
            rec["status"] = "oom" if answer["signal"] == signal.SIGKILL else "error"
            rec["note"] = f"process ended by signal {answer['signal']}"
        return rec

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(60)
