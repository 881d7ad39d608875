"""Smoke test of benchmarks/memory_latency.py: tiny sizes, checks the files and fields, not speed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "memory_latency.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("calo_bench_memory_latency", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_tiny_run_writes_json_table_and_plots(bench, tmp_path: Path, monkeypatch) -> None:
    import torch_geometric.typing

    # the run may register torch-cluster's knn for PyG (when installed); undo that afterwards
    monkeypatch.setattr(torch_geometric.typing, "WITH_KNN", torch_geometric.typing.WITH_KNN)
    argv = [
        "--sizes", "48", "96",
        "--batches", "2",
        "--data", "toy",
        "--models", "gravnet", "garnet",
        "--layers", "garnet_conv",
        "--layer-batches", "2",
        "--repeats", "2",
        "--train-repeats", "2",
        "--knn-repeats", "1",
        "--knn-sizes", "48",
        "--malloc", "default", "mmap0",
        "--mmap0-batch", "2",
        "--mmap0-min-n", "96",
        "--profile-min-n", "96",
        "--max-brute-n", "40",
        # a smoke test of the files and fields, not of speed: the first configuration includes
        # numba's compilation, which on a loaded CI machine can exceed the 20 s default cap
        "--cap", "300",
        "--out", str(tmp_path),
    ]  # fmt: skip
    assert bench.main(argv) == 0

    res = json.loads((tmp_path / "memory_latency.json").read_text())
    assert res["benchmark"] == "memory_latency"
    assert {"cpu", "cpu_count", "load_average_start", "load_average_end"} <= set(res["machine"])
    assert res["versions"]["torch"] and res["versions"]["torch_geometric"]
    assert res["date"] and res["command"].startswith("python benchmarks/memory_latency.py")
    assert res["settings"]["threads"] == 1

    # every model and layer at every size with the default allocator, plus the mmap0 re-runs
    default = [r for r in res["results"] if r["allocator_name"] == "default"]
    mmap0 = [r for r in res["results"] if r["allocator_name"] == "mmap0"]
    assert {(r["name"], r["n"]) for r in default} >= {
        (m, n) for m in ("gravnet", "garnet", "garnet_conv") for n in (48, 96)
    }
    assert {(r["name"], r["n"]) for r in mmap0} == {("gravnet", 96), ("garnet", 96)}
    assert all(r["allocator"].get("MALLOC_MMAP_MAX_") == "0" for r in mmap0)
    assert all("MALLOC_MMAP_MAX_" not in r["allocator"] for r in default)
    for r in res["results"]:
        assert r["status"] == "ok", r
        assert r["threads"] == 1 and r["batch"] == 2
        assert r["parameters"] > 0
        for phase in ("forward", "train"):
            p = r[phase]
            assert p["runs"] == 2
            assert 0 < p["min_s"] <= p["median_s"] <= p["max_s"]
            assert p["median_cpu_s"] > 0
            assert p["peak_bytes"] is not None
        if r["n"] == 96:  # the torch.profiler cross-check
            assert r["forward"]["profiler_peak_bytes"] > 0
            assert r["train"]["profiler_peak_bytes"] > 0
    # the paper's models have about 100k parameters
    params = {r["name"]: r["parameters"] for r in default}
    assert all(80_000 < params[m] < 120_000 for m in ("gravnet", "garnet"))

    # kNN: every method at every size, the exact ones agreeing with calo's KD-tree
    knn = {(r["name"], r["n"]): r for r in res["knn"]}
    assert knn[("calo kdtree", 48)]["agrees"] and knn[("scipy cKDTree", 48)]["agrees"]
    assert knn[("cdist+topk", 48)]["status"] == "not_run"  # above --max-brute-n

    md = (tmp_path / "memory_latency.md").read_text()
    assert "| toy | 2 | 96 | calo GravNet |" in md
    assert "MALLOC_MMAP_MAX_=0" in md and "Ratios against the targets" in md
    for png in ("memory_latency.png", "memory_latency_layers.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_configuration_over_the_cap_is_recorded_not_dropped(bench) -> None:
    done = [
        {
            "kind": "model",
            "name": "dgcnn",
            "data": "toy",
            "device": "cpu",
            "allocator_name": "default",
            "n": 2048,
            "batch": 16,
            "status": "over_time",
            "forward": {"first_s": 9.0, "status": "over_time"},
            "train": {"first_s": 20.0, "status": "over_time"},
        }
    ]
    cfg = dict(done[0], n=8192)
    skip = bench._predicted_over(done, cfg, cap=25.0)
    assert skip["status"] == "skipped_over_time" and "predicted 116 s" in skip["note"]
    assert bench._predicted_over(done, dict(cfg, name="garnet"), cap=25.0) is None
