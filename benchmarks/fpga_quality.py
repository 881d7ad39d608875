"""Quality of the FPGA GarNet model, float and quantized, at V_max 128, 64, 32 and 16.

Task (Iiyama et al. 2021; docs/training.md, docs/fpga.md): electron vs charged pion classification
and energy regression on single-particle events (10-100 GeV) with about 30 background hits,
simulated with calo.sim (the settings of data/make_sample.sh); the V_max most energetic hits,
4 features relative to the seed (calo.fpga.data). Model: the paper's GarNetStack
(aggregators (4, 4, 8), F_LR (8, 8, 16), F_out (8, 8, 16), mean collapse) -> Dense(16, relu)
-> Dense(8, relu) -> regression + classification; reuse factor R = V_max / 4.

Every model is trained by calo-train's own stack (``calo.train.run.train`` with
``task=e_pi``, the same as ``calo-train --task e_pi``). Per V_max: a float run of ``--epochs``
epochs ("float", ``e_pi.qat_epochs=0``) and a run of ``--epochs`` float epochs followed by
``--qat-epochs`` epochs with the firmware's fixed-point arithmetic ("quantized",
quantization-aware with a straight-through estimator, hls4ml's default types). With
``--ternary`` also a quantized run with ternary F_LR/F_out kernels (the paper's quantized
model) at V_max 128. The test events are the runs' validation events. The Dense head runs in float32 in every model (``e_pi.quantize_head=false``;
only the GarNetStack is quantized; the quantized head is measured in docs/fpga.md). For every quantized model the stack outputs of the test events are compared bit
for bit with the numba reference calo.fpga.reference.FixedGarNet.

Metrics on the test events: ROC AUC of the electron probability; response E_pred / E_true:
mean and RMS about the mean.

Writes benchmarks/results/fpga_quality.{json,md}.

Usage: python benchmarks/fpga_quality.py [--train 16000] [--test 4000] [--epochs 15]
       [--qat-epochs 3] [--ternary] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from calo import __version__ as calo_version
from calo.fpga.data import FPGAFeatures, simulate_e_pi
from calo.fpga.garnet import GarNetFixedConfig
from calo.fpga.qat import QGarNetModel
from calo.train.e_pi import EPiDataModule
from calo.train.evaluate import load_model
from calo.train.run import resolve_config, train

PUBLISHED = {  # (model, V_max): (ROC AUC, response RMS), Iiyama et al. 2021, table 2
    ("continuous", 128): (0.98, 0.23),
    ("quantized", 128): (0.98, 0.24),
    ("quantized", 64): (0.96, 0.24),
    ("quantized", 32): (0.86, 0.37),
    ("quantized", 16): (0.64, 0.36),
}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _bit_compare(model: QGarNetModel, sample) -> dict[str, int]:
    """Stack outputs of the torch model vs FixedGarNet on the same events."""
    with torch.no_grad():
        ours = model.stack(sample.X, sample.n).numpy()
    ref = model.stack.to_reference()(sample.X.double().numpy(), sample.n.numpy())
    same = (ours == ref.output).all(axis=1)
    return {
        "events": len(same),
        "events_equal": int(same.sum()),
        "reference_overflows": int(ref.overflow.total()),
        "overflows_by_quantity": ref.overflow.as_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=16000)
    ap.add_argument("--test", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--qat-epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam, cosine decay over all epochs")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--v-max", type=int, nargs="+", default=[128, 64, 32, 16])
    ap.add_argument("--ternary", action="store_true", help="also a ternary model at V_max 128")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help="e/pi ROOT file to use instead of simulating")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t_start = time.perf_counter()

    n_total = args.train + args.test
    tmp = tempfile.TemporaryDirectory()
    path = args.data or str(Path(tmp.name) / "e_pi.root")
    if args.data is None:
        simulate_e_pi(path, n_total, seed=1000 + args.seed)
    t_data = time.perf_counter() - t_start
    print(f"{n_total} events ready in {t_data:.0f} s", flush=True)

    def run(v_max: int, name: str, *extra: str) -> dict:
        qat = 0 if name == "float" else args.qat_epochs
        overrides = [
            "task=e_pi",
            f"data.files=[{path}]",
            f"data.max_events={n_total}",
            f"data.val_fraction={args.test / n_total}",
            f"data.batch_size={args.batch_size}",
            f"optim.lr={args.lr}",
            f"e_pi.fixed.n_vertices={v_max}",
            f"e_pi.fixed.reuse_factor={max(v_max // 4, 1)}",
            f"e_pi.qat_epochs={qat}",
            "e_pi.quantize_head=false",  # the table's float head; the whole model: hls4ml_project
            f"trainer.max_epochs={args.epochs + qat}",
            f"trainer.seed={args.seed}",
            "trainer.max_time_minutes=0",
            "trainer.early_stopping_patience=0",
            "trainer.progress_bar=false",
            *extra,
        ]
        cfg = resolve_config(None, overrides, None)
        folder = Path(tmp.name) / f"{name}-{v_max}"
        t0 = time.perf_counter()
        metrics = train(cfg, folder, plots=False)
        seconds = time.perf_counter() - t0
        arithmetic = "float" if name == "float" else "quantized"
        m = metrics["methods"][arithmetic]
        row = dict(
            model=name,
            v_max=v_max,
            reuse_factor=max(v_max // 4, 1),
            train_seconds=seconds,
            truncation=metrics["data"]["truncation"],
            roc_auc=m["roc_auc"],
            response_mean=m["response"]["mean"],
            response_rms=m["response"]["rms"],
            response_width=m["response"]["width"],
            n_events=m["n_events"],
            overrides=overrides,
        )
        if name != "float":
            model, cfg, _, _ = load_model(folder / "checkpoints" / "best.ckpt")
            dm = EPiDataModule(cfg.data, cfg.e_pi)
            dm.setup()
            row["bit_exact"] = _bit_compare(model, dm.val_sample)
        print(row, flush=True)
        return row

    rows = []
    for v_max in args.v_max:
        torch.manual_seed(args.seed)
        rows.append(run(v_max, "float"))
        rows.append(run(v_max, "quantized"))
        if args.ternary and v_max == 128:
            rows.append(run(v_max, "quantized-ternary", "e_pi.ternary=true"))
    tmp.cleanup()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu(), "threads": 1, "python": platform.python_version()},
        "versions": {"calo": calo_version, "torch": torch.__version__, "numpy": np.__version__},
        "settings": vars(args),
        "features": asdict(FPGAFeatures()),
        "types": {k: str(v) for k, v in GarNetFixedConfig().types().items()},
        "total_seconds": time.perf_counter() - t_start,
    }
    (out / "fpga_quality.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    cmd = " ".join(["python benchmarks/fpga_quality.py", *sys.argv[1:]])
    lines = [
        "# FPGA GarNet quality: electron/pion ROC AUC and energy response",
        "",
        f"{meta['date']}, {meta['machine']['cpu']}, 1 thread, calo {calo_version}, "
        f"torch {torch.__version__}; {args.train} training / {args.test} test events "
        f"simulated with calo.sim (e/pi 10-100 GeV, ~30 background hits); "
        f"{meta['total_seconds'] / 60:.1f} min in all.",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        "Trained by calo-train (task e_pi). Float: float32 GarNetStack. Quantized: float "
        "epochs, then the last epochs with the firmware's "
        "fixed-point arithmetic (hls4ml default types for V_max and R = V_max/4); the Dense "
        "head is float32 in every row. 'bit-exact' counts test events whose 16 stack "
        "outputs equal calo.fpga.reference.FixedGarNet's bit for bit. Response = E_pred / "
        "E_true; RMS about its mean. Published: Iiyama et al. (2021) on their HGCAL-like "
        "detector (a different, harder sample), for orientation only.",
        "",
        "| model | V_max | R | ROC AUC | response mean | response RMS | bit-exact events "
        "| published AUC / RMS | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pub_key = ("continuous" if r["model"] == "float" else "quantized", r["v_max"])
        pub = PUBLISHED.get(pub_key) if r["model"] != "quantized-ternary" else None
        if r["model"] == "quantized-ternary":
            pub = PUBLISHED.get(("quantized", 128))
        bits = r.get("bit_exact")
        bit_txt = f"{bits['events_equal']}/{bits['events']}" if bits else "-"
        lines.append(
            f"| {r['model']} | {r['v_max']} | {r['reuse_factor']} | {r['roc_auc']:.4f} | "
            f"{r['response_mean']:.3f} | {r['response_rms']:.3f} | {bit_txt} | "
            f"{f'{pub[0]} / {pub[1]}' if pub else '-'} | {r['train_seconds']:.0f} |"
        )
    lines += [
        "",
        "Overflows the reference counted on the test events (saturated or wrapped casts per "
        "sublayer and quantity; hls4ml's default types):",
        "",
    ]
    for r in rows:
        if r.get("bit_exact"):
            d = r["bit_exact"]["overflows_by_quantity"]
            txt = ", ".join(f"{k}: {v}" for k, v in d.items()) or "none"
            lines.append(f"- {r['model']} V_max {r['v_max']}: {txt}")
    lines += ["", "Truncation to V_max (test and training events):", ""]
    for r in rows:
        if r["model"] == "float":
            lines.append(f"- V_max {r['v_max']}: {r['truncation']}")
    (out / "fpga_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
