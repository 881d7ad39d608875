"""Smoke tests of the benchmark scripts the README quotes: tiny settings, real runs.

Each script runs end to end on a few events and must write its JSON and markdown files with
the fields the README and notebook 04 read; the numbers are checked for being real
measurements (positive rates, agreement flags), never for speed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"calo_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _outputs(out: Path, stem: str) -> dict:
    assert (out / f"{stem}.md").read_text().startswith("# ")
    return json.loads((out / f"{stem}.json").read_text())


def test_sim_speed(tmp_path: Path) -> None:
    assert (
        _load("sim_speed").main(["--events", "64", "--repeats", "1", "--out", str(tmp_path)]) == 0
    )
    res = _outputs(tmp_path, "sim_speed")
    assert res["benchmark"] == "sim_speed" and res["machine"] and res["date"]
    for row in res["results"]:
        assert row["events"] == 64
        assert row["events_per_s_arrays"] > 0 and row["events_per_cpu_s_arrays"] > 0
        assert row["hits_per_event"] > 10  # real showers, not empty events


def test_read_throughput(tmp_path: Path) -> None:
    argv = ["--events", "40", "--mean-hits", "50", "--repeats", "1", "--out", str(tmp_path)]
    assert _load("read_throughput").main(argv) == 0
    res = _outputs(tmp_path, "read_throughput")
    assert {r["events"] for r in res["runs"]} == {40}
    for run in res["runs"]:
        assert run["hits"] > 40 and run["hits_per_s"] > 0 and run["uproot_only_hits_per_s"] > 0


def test_knn(tmp_path: Path) -> None:
    argv = ["--sizes", "300", "--events", "1", "--repeats", "1", "--threads", "1"]
    assert _load("knn").main([*argv, "--out", str(tmp_path)]) == 0
    res = _outputs(tmp_path, "knn")
    rows = {r["method"]: r for r in res["results"]}
    assert rows["calo kdtree"]["agrees"] and rows["cdist+topk"]["agrees"]
    assert all(r["best_cpu_s"] > 0 for r in rows.values() if "best_cpu_s" in r)


@pytest.mark.slow
def test_fpga_quality(tmp_path: Path) -> None:
    argv = ["--train", "120", "--test", "60", "--epochs", "1", "--qat-epochs", "1"]
    argv += ["--v-max", "16", "--batch-size", "40", "--out", str(tmp_path)]
    assert _load("fpga_quality").main(argv) == 0
    res = _outputs(tmp_path, "fpga_quality")
    rows = {r["model"]: r for r in res["rows"]}
    assert set(rows) == {"float", "quantized"}
    exact = rows["quantized"]["bit_exact"]  # test events whose outputs equal FixedGarNet's bits
    assert exact["events"] == exact["events_equal"] == 60
    assert 0 <= rows["float"]["roc_auc"] <= 1 and rows["float"]["n_events"] == 60


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("g++") is None, reason="g++ is needed for the nnet_garnet.h harness"
)
def test_fpga_reference_on_simulated_events(tmp_path: Path) -> None:
    argv = ["--events", "200", "--cpp-events", "20", "--cpp-passes", "2", "--repeats", "1"]
    argv += ["--data", "sim", "--weights", "random", "--out", str(tmp_path)]
    assert _load("fpga_reference").main(argv) == 0
    res = _outputs(tmp_path, "fpga_reference")
    assert res["events"].startswith("calo.sim e/pi events") and res["weights"] == "random"
    assert res["bit_mismatches"] == 0 and res["outputs_compared"] == 20 * 16
    assert res["fast_equals_exact_kernel"]
    assert res["numba_events_per_s"] > 0 and res["cpp_O2_events_per_s"] > 0
    assert 16 < res["n_mean"] <= 128  # simulated hit counts, truncated at V_max


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quality")
    argv = ["--events", "300", "--minutes", "0.2", "--epochs", "1", "--models", "gravnet"]
    argv += ["--work", str(out / "work"), "--out", str(out)]
    assert _load("quality").main(argv) == 0
    return out


@pytest.mark.slow
def test_quality(quality_run: Path) -> None:
    tmp_path = quality_run
    res = _outputs(tmp_path, "quality")
    (row,) = res["rows"]
    assert row["model"] == "gravnet" and row["epochs"] == 1 and row["n_test"] == 60
    assert row["parameters"] > 80_000  # the paper-sized model
    assert row["baseline_rms"] > 0 and row["response_rms"] > 0
    bins = row["bins"]  # the paper's 5-60 GeV bins of truth energy, model and baseline
    assert bins["lo"][0] == 5.0 and bins["hi"][-1] == 60.0
    assert sum(bins["n"]) > 0 and len(bins["model_rms"]) == len(bins["baseline_rms"])
    md = (tmp_path / "quality.md").read_text()
    assert "RMS ratio baseline/model |" in md
    # calo-train's profile refinement and share calibration of the same model get their rows
    assert row["calibrated"]["response_rms"] > 0 and row["refined"]["response_rms"] > 0
    assert "| gravnet + profile refinement |" in md
    assert "| gravnet + refinement + share calibration |" in md
    assert "bins of the event's shower overlap" in md and "| 0.50-1.00 |" in md


@pytest.mark.slow
def test_overlap_study(quality_run: Path, tmp_path: Path) -> None:
    run = quality_run / "work" / "gravnet-300ev"
    assert _load("overlap_study").main([str(run), "--out", str(tmp_path)]) == 0
    res = _outputs(tmp_path, "overlap_study")
    assert res["n_events"] == 60  # the run's validation events
    shares = res["shares"]
    assert sum(r["n"] for r in shares) <= 60 and all(0 < r["true"] <= 0.5 for r in shares if r["n"])
    # the what-if at c = true share would be perfect; here it is a finite, positive RMS
    assert all(w["rms"] > 0 and np.isfinite(w["rms"]) for w in res["what_if"])
    assert res["overall_rms"]["model"] > 0 and res["overall_rms"]["baseline"] > 0
    # --data: every event of the file (train and validation) through the run's normalisation
    data = quality_run / "work" / "two_showers_300ev_seed11.root"
    assert _load("overlap_study").main([str(run), "--data", str(data), "--out", str(tmp_path)]) == 0
    assert _outputs(tmp_path, "overlap_study")["n_events"] == 300


@pytest.mark.slow
def test_share_calibration(quality_run: Path, tmp_path: Path) -> None:
    bench = _load("share_calibration")
    run = quality_run / "work" / "gravnet-300ev"
    assert bench.main([str(run), "--out", str(tmp_path)]) == 0
    res = _outputs(tmp_path, "share_calibration")
    assert res["n_train"] == 240 and res["n_test"] == 60
    assert set(res["methods"]) == {"baseline", "model", "refined", "calibrated"}
    assert res["settings"]["refine_iterations"] == 2
    assert all(np.isfinite(m["response"]["rms"]) for m in res["methods"].values())


@pytest.mark.slow
def test_condensation_quality(tmp_path: Path) -> None:
    """The whole bar on 200 events: data, GravNet and its energy-sharing fine-tune, tuning on
    training events, test rows against CLUE, the truth limits, the verdict."""
    argv = ["--events", "200", "--minutes", "0.1", "--epochs", "1", "--tune-events", "20",
            "--models", "gravnet", "gravnet_share", "--work", str(tmp_path / "work"),
            "--out", str(tmp_path)]  # fmt: skip
    assert _load("condensation_quality").main(argv) == 0
    res = _outputs(tmp_path, "condensation_quality")
    rows = {r["method"]: r for r in res["rows"]}
    assert set(rows) == {"CLUE", "GravNet", "GravNet + energy sharing"}
    assert rows["GravNet + energy sharing"]["epochs"] == "1+1"
    for r in rows.values():
        assert 0 <= r["efficiency"] <= 1 and r["n_particles"] > 50
    limits = {r["method"]: r for r in res["truth_limits"]}
    hard, soft = limits["truth clusters, hard sums"], limits["truth clusters, true energy shares"]
    assert hard["efficiency"] == soft["efficiency"] == 1.0 and hard["fake_rate"] == 0.0
    # perfect sharing beats hard sums near other particles, on the same particles
    assert soft["near_n"] == hard["near_n"] > 0
    assert soft["near_resolution"] < hard["near_resolution"]
    md = (tmp_path / "condensation_quality.md").read_text()
    assert "GravNet + energy sharing:" in md and "What the truth allows" in md
