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

Usage::

    python benchmarks/memory_latency.py                  # default run, < 15 min on 2 CPU cores
    python benchmarks/memory_latency.py --quick --out /tmp/ml   # seconds: tiny sizes
    python benchmarks/memory_latency.py --device cuda    # the same on a GPU
    python benchmarks/memory_latency.py --sizes 128 2048 --batches 16 --data toy --repeats 30
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import gc
import importlib.util
import json
import math
import os
import platform
import resource
import select
import shlex
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

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (128, 512, 2048, 8192, 32768)
BATCHES = (1, 16)
MODELS = ("gravnet", "garnet", "dgcnn", "pyg_gravnet", "pyg_dgcnn")
LAYERS = ("gravnet_conv", "garnet_conv", "edgeconv", "pyg_gravnet_conv", "pyg_edgeconv")
LABELS = {
    "gravnet": "calo GravNet",
    "garnet": "calo GarNet",
    "dgcnn": "calo DGCNN",
    "pyg_gravnet": "PyG GravNet",
    "pyg_dgcnn": "PyG DGCNN",
    "gravnet_conv": "calo GravNetConv",
    "garnet_conv": "calo GarNetConv",
    "edgeconv": "calo DynamicEdgeConv",
    "pyg_gravnet_conv": "PyG GravNetConv",
    "pyg_edgeconv": "PyG DynamicEdgeConv",
}
PEERS = {"pyg_gravnet", "pyg_dgcnn", "pyg_gravnet_conv", "pyg_edgeconv"}
LAYER_IN, LAYER_OUT = 32, 64
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


# ----------------------------------------------------------------------------------------------
# pieces shared with benchmarks/knn.py


def _load_knn_bench() -> Any:
    """``benchmarks/knn.py`` as a module (its input maker, methods, timer and checks)."""
    name = "calo_bench_knn"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("knn.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------------------------
# PyG peers: torch-cluster's knn registered as the operator torch_geometric calls

_PYG_LIB: Any = None


def register_pyg_knn() -> str | None:
    """Make ``torch.ops.pyg.knn`` (what PyG 2.8's GravNetConv/DynamicEdgeConv call) available.

    torch_geometric 2.8 calls ``torch.ops.pyg.knn(x, y, ptr_x, ptr_y, k, cosine, num_workers)``
    and gates ``DynamicEdgeConv`` on ``torch_geometric.typing.WITH_KNN``; both come from pyg-lib,
    which has no wheels. torch-cluster's ``torch.ops.torch_cluster.knn`` has the same signature
    and output (``[2, E]``: row 0 the query ``y``, row 1 its neighbour in ``x``), so it is
    registered under that name. Returns how the operator is provided, or ``None`` when neither
    pyg-lib nor torch-cluster is importable.
    """
    global _PYG_LIB
    import torch
    import torch_geometric.typing as tgt

    if tgt.WITH_KNN:
        return "pyg-lib"
    try:
        import torch_cluster  # noqa: F401
    except ImportError:
        return None
    if _PYG_LIB is None:
        lib = torch.library.Library("pyg", "FRAGMENT")
        lib.define(
            "knn(Tensor x, Tensor y, Tensor? ptr_x, Tensor? ptr_y, int k, bool cosine, "
            "int num_workers) -> Tensor"
        )

        def _knn(x, y, ptr_x, ptr_y, k, cosine, num_workers):
            return torch.ops.torch_cluster.knn(x, y, ptr_x, ptr_y, k, cosine, num_workers)

        lib.impl("knn", _knn, "CompositeExplicitAutograd")
        _PYG_LIB = lib
    tgt.WITH_KNN = True
    return "torch-cluster"


def _pyg_models() -> tuple[type, type]:
    """The PyG-built GravNet and DGCNN models (same architecture and weights layout as calo's)."""
    import torch
    import torch_geometric.nn as gnn

    from calo.models import DGCNNModel, GravNetModel
    from calo.models.common import concat_event_mean, unpack_input

    class PygGravNetModel(GravNetModel):
        """calo's GravNet model with every GravNet layer replaced by PyG's GravNetConv."""

        def __init__(self, in_features: int = 7, n_showers: int = 2) -> None:
            super().__init__(in_features, n_showers)
            cfg = self.config
            for i, conv in enumerate(self.convs):
                self.convs[i] = gnn.GravNetConv(
                    conv.in_channels,
                    cfg.out_channels,
                    space_dimensions=cfg.space_dimensions,
                    propagate_dimensions=cfg.propagate_dimensions,
                    k=cfg.k,
                )

    class PygDGCNNModel(DGCNNModel):
        """calo's DGCNN model with PyG's DynamicEdgeConv (its own kNN) for every EdgeConv."""

        def __init__(self, in_features: int = 7, n_showers: int = 2) -> None:
            super().__init__(in_features, n_showers)
            self.dyn = torch.nn.ModuleList(
                gnn.DynamicEdgeConv(conv.nn, k=self.config.k, aggr="max") for conv in self.convs
            )
            del self.convs

        def forward(self, data_or_x: object, batch: torch.Tensor | None = None) -> torch.Tensor:
            h, batch = unpack_input(data_or_x, batch)
            h = self.input(h)
            for b, conv in enumerate(self.dyn):
                h = self.norms[b](conv(h, batch))
                if b < len(self.exchange):
                    h = self.exchange[b](concat_event_mean(h, batch))
            return self.head(h)

    return PygGravNetModel, PygDGCNNModel


def build(kind: str, name: str) -> Any:
    """The module to measure: a model (7 inputs, 2 showers) or a layer at matched widths."""
    from calo.models import ModelConfig, build_model
    from calo.nn import DynamicEdgeConv, GarNetConv, GravNetConv, edge_mlp

    if kind == "model":
        if name in ("gravnet", "garnet", "dgcnn"):
            return build_model(ModelConfig(name="edgeconv" if name == "dgcnn" else name))
        pyg_gravnet, pyg_dgcnn = _pyg_models()
        return pyg_gravnet() if name == "pyg_gravnet" else pyg_dgcnn()
    gv = dict(space_dimensions=4, propagate_dimensions=22, k=40)
    if name == "gravnet_conv":
        return GravNetConv(LAYER_IN, LAYER_OUT, **gv)
    if name == "garnet_conv":
        return GarNetConv(LAYER_IN, LAYER_OUT, n_aggregators=4, n_propagate=20)
    if name == "edgeconv":
        return DynamicEdgeConv(edge_mlp(LAYER_IN, (64, 64, LAYER_OUT)), k=40)
    import torch_geometric.nn as gnn

    if name == "pyg_gravnet_conv":
        return gnn.GravNetConv(LAYER_IN, LAYER_OUT, **gv)
    return gnn.DynamicEdgeConv(edge_mlp(LAYER_IN, (64, 64, LAYER_OUT)), k=40, aggr="max")


# ----------------------------------------------------------------------------------------------
# inputs


def make_events(data: str, n: int, batch: int, features: int, seed: int) -> tuple[Any, Any]:
    """``x [batch * n, features]`` (float32) and the sorted event index of ``batch`` events."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    if data == "uniform":
        x = rng.random((batch * n, features), dtype=np.float32)
    else:
        x = _toy_features(n, batch, rng, seed)
        if features != x.shape[1]:  # layers: tile the 7 paper features to the layer's width
            x = np.tile(x, (1, math.ceil(features / x.shape[1])))[:, :features]
    b = torch.arange(batch).repeat_interleave(n)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), b


def _toy_features(n: int, batch: int, rng: Any, seed: int) -> Any:
    import numpy as np

    from calo.sim import SimConfig, generate_arrays, load_geometry

    cfg = SimConfig()
    geo = load_geometry(cfg.geometry)
    d = generate_arrays(cfg, batch, seed=seed)
    ends = np.cumsum(d["nhit"])
    rows = []
    for b in range(batch):
        lo, hi = ends[b] - d["nhit"][b], ends[b]
        cell, energy = d["cell_row"][lo:hi], d["energy"][lo:hi]
        if cell.size > n:  # keep the most energetic n hits
            keep = np.argsort(-energy, kind="stable")[:n]
            cell, energy = cell[keep], energy[keep]
        m = n - cell.size
        pad = rng.integers(0, geo.n_cells, m)
        jitter = rng.random((m, 3)) - 0.5
        xs = np.concatenate([geo.x[cell], geo.x[pad] + jitter[:, 0] * geo.dx[pad]])
        ys = np.concatenate([geo.y[cell], geo.y[pad] + jitter[:, 1] * geo.dy[pad]])
        zs = np.concatenate([geo.z[cell], geo.z[pad] + jitter[:, 2] * geo.dz[pad]])
        cells = np.concatenate([cell, pad])
        e = np.concatenate(
            [energy, cfg.noise.threshold + rng.exponential(cfg.noise.sigma / 3.0, m)]
        )
        rows.append(
            np.stack(
                [
                    xs,
                    ys,
                    zs,
                    np.sqrt(geo.dx[cells] * geo.dy[cells]),
                    geo.dz[cells],
                    np.log1p(e),
                    geo.layer[cells].astype(np.float64),
                ],
                axis=1,
            )
        )
    x = np.concatenate(rows)
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std > 0, std, 1.0)


# ----------------------------------------------------------------------------------------------
# measurement inside one forked process


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


# ----------------------------------------------------------------------------------------------
# the server: imports once, forks one child per configuration


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
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
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


# ----------------------------------------------------------------------------------------------
# orchestration


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


def peer_check() -> dict[str, Any]:
    """calo's and PyG's GravNet layers with the same weights give the same output."""
    import torch
    import torch_geometric.nn as gnn

    from calo.nn import GravNetConv

    torch.manual_seed(0)
    ours = GravNetConv(LAYER_IN, LAYER_OUT, space_dimensions=4, propagate_dimensions=22, k=40)
    theirs = gnn.GravNetConv(LAYER_IN, LAYER_OUT, space_dimensions=4, propagate_dimensions=22, k=40)
    theirs.load_state_dict(ours.state_dict())
    x, b = make_events("uniform", 300, 2, LAYER_IN, seed=5)
    with torch.no_grad():
        diff = (ours(x, b) - theirs(x, b)).abs().max().item()
    out = {"layer": "GravNetConv, same weights, 2 x 300 uniform hits", "max_abs_diff": diff}
    x, b = make_events("toy", 300, 2, 7, seed=5)
    for name in ("gravnet", "dgcnn"):
        torch.manual_seed(0)
        a = build("model", name).eval()
        p = build("model", f"pyg_{name}").eval()
        p.load_state_dict(a.state_dict(), strict=False)
        if name == "dgcnn":  # PyG's DynamicEdgeConv wraps the same edge networks
            for conv, dyn in zip(a.convs, p.dyn, strict=True):
                dyn.nn.load_state_dict(conv.nn.state_dict())
        with torch.no_grad():
            out[f"{name}_model_max_abs_diff"] = (a(x, b) - p(x, b)).abs().max().item()
    return out


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


# ----------------------------------------------------------------------------------------------
# reporting


def _ms(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    if r.get("median_s") is not None:
        return f"{r['median_s'] * 1e3:.3g} [{r['q25_s'] * 1e3:.3g}-{r['q75_s'] * 1e3:.3g}]"
    if r.get("first_s") is not None:
        return f"({r['first_s'] * 1e3:.4g}, 1 run)"
    return "-"


def _mib(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f}"


def _lookup(res: dict[str, Any], **key: Any) -> dict[str, Any] | None:
    for r in res["results"]:
        if all(r.get(k) == v for k, v in key.items()):
            return r
    return None


def _value(r: dict[str, Any] | None, phase: str, what: str) -> float | None:
    """Median CPU time (``"time"``; the warm-up run's when no median fitted the cap) or peak."""
    if r is None or not r.get(phase):
        return None
    p = r[phase]
    if what == "time":
        v = p.get("median_cpu_s")
        return v if v is not None else p.get("first_cpu_s")
    return p.get("peak_bytes") if p.get("status") in ("ok", "over_time") else None


def ratio_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Target ratios per (data, batch, N) from the default-allocator records."""
    rows = []
    s = res["settings"]
    for data in s["data"]:
        for b in s["batches"]:
            for n in s["sizes"]:

                def get(name: str, data=data, b=b, n=n) -> dict[str, Any] | None:
                    return _lookup(
                        res,
                        kind="model",
                        name=name,
                        data=data,
                        batch=b,
                        n=n,
                        allocator_name="default",
                    )

                g, gp, ga, dg = get("gravnet"), get("pyg_gravnet"), get("garnet"), get("dgcnn")
                row: dict[str, Any] = {"data": data, "batch": b, "n": n}

                def ratio(a, c, phase, what):
                    va, vc = _value(a, phase, what), _value(c, phase, what)
                    return None if va is None or vc is None or vc == 0 else va / vc

                row["gravnet_vs_pyg_forward_time"] = ratio(g, gp, "forward", "time")
                row["gravnet_vs_pyg_train_time"] = ratio(g, gp, "train", "time")
                row["gravnet_vs_pyg_forward_mem"] = ratio(g, gp, "forward", "mem")
                row["gravnet_vs_pyg_train_mem"] = ratio(g, gp, "train", "mem")
                row["gravnet_vs_dgcnn_forward_time"] = ratio(g, dg, "forward", "time")
                row["gravnet_vs_dgcnn_forward_mem"] = ratio(g, dg, "forward", "mem")
                pd = get("pyg_dgcnn")
                row["gravnet_vs_pyg_dgcnn_forward_time"] = ratio(g, pd, "forward", "time")
                row["gravnet_vs_pyg_dgcnn_forward_mem"] = ratio(g, pd, "forward", "mem")
                row["garnet_vs_dgcnn_forward_mem"] = ratio(ga, dg, "forward", "mem")
                row["garnet_vs_dgcnn_train_mem"] = ratio(ga, dg, "train", "mem")
                rows.append(row)
    return rows


def to_markdown(res: dict[str, Any]) -> str:
    m, s = res["machine"], res["settings"]
    lines = [
        f"# Memory and latency ({s['device']}, {s['threads']} torch thread(s))",
        "",
        f"{res['date']}; {m['cpu']} ({m['cpu_count']} cores)"
        + (f", {m['gpu']}" if m["gpu"] else "")
        + f"; load average {m['load_average_start'][0]:.2f} at the start, "
        f"{m['load_average_end'][0]:.2f} at the end (the machine is shared: other jobs slow "
        f"every model alike); run took {res['wall_s']:.0f} s.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items() if v) + ".",
        f"Command: `{res['command']}` (commit {res['git_commit']}"
        + (
            f"; measured with uncommitted changes to {', '.join(res['git_uncommitted'])}"
            if res.get("git_uncommitted")
            else ""
        )
        + ").",
        "",
        f"Times in ms: median [quartiles] of {s['repeats']} forward runs and "
        f"{s['train_repeats']} training steps after a warm-up run; "
        "`(t, 1 run)` = only the warm-up run fitted the "
        f"{s['cap_s']:.0f} s cap per configuration. Forward = inference (eval, no_grad); train = "
        "forward + MSE + backward + Adam step. Memory in MiB: peak resident memory above the "
        "idle baseline of a fresh process per configuration (CPU) for the warm-up forward and "
        "the first training step; `prof.` = peak of torch's own allocations in one forward "
        "(training step) from torch.profiler, N >= "
        f"{s['profile_min_n']} (the difference to the resident peak is what the C allocator "
        "holds beyond torch's live tensors: fragmentation and freed memory not yet returned). "
        "Status `over_time`/`skipped_over_time`/`oom`: the configuration did not fit the time "
        "cap or the "
        f"{s['mem_limit_gb']} GiB memory limit (see the JSON for the reason).",
        "",
    ]
    if any(r["kind"] == "model" for r in res["results"]):
        lines += ["## Summary", "", *summary_markdown(res)]
    for alloc in s["malloc"]:
        allocs = [r for r in res["results"] if r["allocator_name"] == alloc]
        if not allocs:
            continue
        env = allocs[0]["allocator"]
        env_s = ", ".join(f"{k}={v}" for k, v in env.items()) or "glibc defaults"
        for kind in ("model", "layer"):
            rows = [r for r in allocs if r["kind"] == kind]
            if not rows:
                continue
            lines += [
                f"## {'Models' if kind == 'model' else 'Single layers'} (allocator: {env_s})",
                "",
                "| data | batch | N | model | params | forward ms | train ms | forward MiB "
                "| prof. | train MiB | prof. | status |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in rows:
                f, t = r.get("forward") or {}, r.get("train") or {}
                lines.append(
                    f"| {r['data']} | {r['batch']} | {r['n']} | {LABELS[r['name']]} | "
                    f"{r.get('parameters', '-')} | {_ms(f)} | {_ms(t)} | "
                    f"{_mib(f.get('peak_bytes'))} | {_mib(f.get('profiler_peak_bytes'))} | "
                    f"{_mib(t.get('peak_bytes'))} | {_mib(t.get('profiler_peak_bytes'))} | "
                    f"{r['status']} |"
                )
            lines.append("")
    lines += ratio_markdown(res)
    if res.get("knn"):
        lines += knn_markdown(res)
    if res.get("peer_check"):
        pc = res["peer_check"]
        lines += [
            f"PyG peers: torch_geometric's kNN operator provided by "
            f"{s['pyg_knn_operator']}; {pc['layer']}: max |calo - PyG| = "
            f"{pc['max_abs_diff']:.2e}; whole models with the same weights, 2 x 300 toy hits: "
            f"GravNet {pc['gravnet_model_max_abs_diff']:.2e}, DGCNN "
            f"{pc['dgcnn_model_max_abs_diff']:.2e} in the fractions (where they differ, the kNN in feature "
            "space can pick a different neighbour at near-ties, calo's KD-tree ordering by float64 "
            "distances, torch-cluster by float32).",
            "",
        ]
    return "\n".join(lines)


def _fmt_ms(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def summary_markdown(res: dict[str, Any], data: str | None = None) -> list[str]:
    """Compact tables (one per phase): CPU ms / peak MiB per model and size, one data kind."""
    s = res["settings"]
    data = data or s["data"][0]
    recs = [
        r
        for r in res["results"]
        if r["kind"] == "model" and r["allocator_name"] == "default" and r["data"] == data
    ]
    names = list(dict.fromkeys(r["name"] for r in recs))
    lines = []
    for phase, title in (("forward", "Forward (inference)"), ("train", "Training step")):
        lines += [
            f"{title}, {data} events: median CPU ms per run / peak MiB above baseline "
            "(`*`: one run only, the time cap stopped the repeats; `cap`: predicted or killed "
            "over the time cap; `oom`: over the memory limit)",
            "",
            "| batch | N | " + " | ".join(LABELS[n] for n in names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        for b in s["batches"]:
            for n in s["sizes"]:
                cells = []
                for name in names:
                    r = next(
                        (r for r in recs if (r["name"], r["batch"], r["n"]) == (name, b, n)), None
                    )
                    t, m = _value(r, phase, "time"), _value(r, phase, "mem")
                    if r is None:
                        cells.append("-")
                    elif t is None and m is None:
                        cells.append("oom" if "oom" in r["status"] else "cap")
                    else:
                        star = "*" if (r.get(phase) or {}).get("median_cpu_s") is None else ""
                        ts = "-" if t is None else f"{_fmt_ms(t * 1e3)}{star}"
                        cells.append(f"{ts} / {_mib(m)}")
                lines.append(f"| {b} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def ratio_markdown(res: dict[str, Any]) -> list[str]:
    rows = ratio_rows(res)
    lines = [
        "## Ratios against the targets of issue 6",
        "",
        "GravNet/PyG: calo's GravNet model over the PyG-built one (target <= 1, forward and "
        "train, time and memory). GravNet/DGCNN: over calo's DGCNN (target <= 1/8 = 0.125 for "
        "N >= 2048; also against the PyG-built DGCNN, whose kNN is faster than calo's KD-tree "
        "in the 16-64-dimensional feature space). GarNet/DGCNN memory (target <= 1/30 = 0.033). "
        "Time ratios use the median "
        "process CPU time per run (one thread, so other jobs on the shared cores do not enter; "
        "where only the warm-up run fitted the cap, that run's CPU time). `-`: one of the two "
        "has no value at that size.",
        "",
        "| data | batch | N | GravNet/PyG fwd t | train t | fwd mem | train mem "
        "| GravNet/DGCNN fwd t | fwd mem | (PyG DGCNN) fwd t | fwd mem "
        "| GarNet/DGCNN fwd mem | train mem |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['batch']} | {r['n']} | "
            + " | ".join(
                _r(r[k])
                for k in (
                    "gravnet_vs_pyg_forward_time",
                    "gravnet_vs_pyg_train_time",
                    "gravnet_vs_pyg_forward_mem",
                    "gravnet_vs_pyg_train_mem",
                    "gravnet_vs_dgcnn_forward_time",
                    "gravnet_vs_dgcnn_forward_mem",
                    "gravnet_vs_pyg_dgcnn_forward_time",
                    "gravnet_vs_pyg_dgcnn_forward_mem",
                    "garnet_vs_dgcnn_forward_mem",
                    "garnet_vs_dgcnn_train_mem",
                )
            )
            + " |"
        )
    lines.append("")
    s = res["settings"]
    if len(s["sizes"]) > 1:
        lo, hi = min(s["sizes"]), max(s["sizes"])
        lo = 2048 if 2048 in s["sizes"] and hi > 2048 else lo
        lines += [
            f"GarNet time growth: forward CPU time at N={hi} over N={lo} ({hi // lo} times the "
            "hits; the issue's target is <= 20 for 32768 over 2048):",
            "",
        ]
        for data in s["data"]:
            for b in s["batches"]:
                key = dict(kind="model", name="garnet", data=data, batch=b)
                a = _lookup(res, n=hi, allocator_name="default", **key)
                c = _lookup(res, n=lo, allocator_name="default", **key)
                ta, tc = _value(a, "forward", "time"), _value(c, "forward", "time")
                g = "-" if ta is None or tc is None else f"{ta / tc:.1f}"
                lines.append(f"- {data}, batch {b}: {g}")
        lines.append("")
    return lines


def knn_markdown(res: dict[str, Any]) -> list[str]:
    recs = res["knn"]
    names = [n for n in KNN_METHODS if any(r["name"] == n for r in recs)]
    lines = [
        "## kNN alone (k = 40, 4 dimensions, uniform points; median ms of wall (CPU) time)",
        "",
    ]
    if res.get("knn_run"):
        kr = res["knn_run"]
        lines += [
            f"From a separate run: `{kr['command']}`, {kr['date']}, load average "
            f"{kr['load_average_start'][0]:.2f} at the start.",
            "",
        ]
    lines += [
        "| events | N/event | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    keys = dict.fromkeys((r["batch"], r["n"]) for r in recs)
    for b, n in keys:
        cells = []
        for name in names:
            r = next((r for r in recs if (r["batch"], r["n"], r["name"]) == (b, n, name)), None)
            if r is None:
                cells.append("-")
            elif r.get("median_s") is not None:
                bad = "" if r.get("agrees", True) else " (wrong)"
                cpu = r.get("median_cpu_s")
                cpu_s = "" if cpu is None else f" ({cpu * 1e3:.3g})"
                cells.append(f"{r['median_s'] * 1e3:.3g}{cpu_s}{bad}")
            else:
                cells.append(r["status"])
        lines.append(f"| {b} | {n} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def plot(res: dict[str, Any], out: Path, prefix: str = "memory_latency") -> list[Path]:
    """Log-log plots of forward time, training-step time and peak memory vs N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = res["settings"]
    paths = []
    styles = {
        "gravnet": ("C0", "-", "o"),
        "garnet": ("C1", "-", "s"),
        "dgcnn": ("C3", "-", "^"),
        "pyg_gravnet": ("C0", "--", "o"),
        "pyg_dgcnn": ("C3", "--", "^"),
        "gravnet_conv": ("C0", "-", "o"),
        "garnet_conv": ("C1", "-", "s"),
        "edgeconv": ("C3", "-", "^"),
        "pyg_gravnet_conv": ("C0", "--", "o"),
        "pyg_edgeconv": ("C3", "--", "^"),
    }
    panels = (
        ("forward", "time", "forward, CPU ms per run"),
        ("train", "time", "training step, CPU ms"),
        ("forward", "mem", "peak memory, forward [MiB]"),
        ("train", "mem", "peak memory, training step [MiB]"),
    )
    for kind, stem in (("model", prefix), ("layer", f"{prefix}_layers")):
        recs = [r for r in res["results"] if r["kind"] == kind and r["allocator_name"] == "default"]
        if not recs:
            continue
        data = s["data"][0] if kind == "model" else s["layer_data"][0]
        batches = s["batches"] if kind == "model" else s["layer_batches"]
        fig, axes = plt.subplots(
            len(panels),
            len(batches),
            figsize=(5.2 * len(batches), 3.4 * len(panels)),
            squeeze=False,
        )
        for j, b in enumerate(batches):
            for i, (phase, what, ylabel) in enumerate(panels):
                ax = axes[i][j]
                for name in dict.fromkeys(r["name"] for r in recs):
                    pts, single = [], []
                    for r in recs:
                        if (r["name"], r["data"], r["batch"]) != (name, data, b):
                            continue
                        v = _value(r, phase, what)
                        if v is not None:
                            pts.append((r["n"], v * (1e3 if what == "time" else 2**-20)))
                            if what == "time" and r[phase].get("median_cpu_s") is None:
                                single.append(pts[-1])
                    if not pts:
                        continue
                    c, ls, mk = styles[name]
                    ax.plot(*zip(*sorted(pts), strict=True), color=c, ls=ls, marker=mk, ms=4)
                    ax.lines[-1].set_label(LABELS[name])
                    if single:  # only the warm-up run fitted the cap: hollow marker
                        ax.plot(*zip(*single, strict=True), ls="", marker=mk, ms=7, mfc="white")
                        ax.lines[-1].set_color(c)
                ax.set_xscale("log")
                ax.set_xticks(s["sizes"], [str(v) for v in s["sizes"]])
                ax.minorticks_off()
                ax.set_yscale("log")
                ax.grid(True, which="major", alpha=0.3)
                ax.set_ylabel(ylabel)
                if i == 0:
                    ax.set_title(f"{data} events, batch {b}")
                if i == len(panels) - 1:
                    ax.set_xlabel("hits per event N")
        axes[0][0].legend(fontsize=8, loc="upper left")
        fig.suptitle(
            f"{'Models' if kind == 'model' else 'Single layers'} on {s['device']}, "
            f"{s['threads']} thread(s), {res['machine']['cpu']}, {res['date'][:10]}\n"
            "hollow: one run only (time cap); missing: over the cap or out of memory",
            fontsize=9,
        )
        fig.tight_layout()
        path = out / f"{stem}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------------------


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
