"""Magnitude pruning of the FPGA GarNet model: AUC, response and DSP estimate against sparsity.

Task and model as benchmarks/fpga_quality.py (electron vs charged pion classification and
energy regression, the paper's GarNetStack and Dense head, quantization-aware for the last
epochs), at one V_max (default 64, R = V_max / 4). Every model is trained by calo-train's own
stack (``calo.train.run.train`` with ``task=e_pi``, as ``calo-train --task e_pi``), with the
same events, seed and schedule; the rows differ only in ``pruning.amount`` (0: pruning off).
Pruning (calo.train.pruning, docs/pruning.md): magnitude pruning of the head's weights and the
GarNet kernels (distance, F_LR, F_out), every tensor to the same sparsity, ramped up with
Zhu and Gupta's cubic schedule over ``--ramp-epochs`` float epochs from ``--start-epoch``,
final before the quantization-aware epochs; the best checkpoint is the best
quantization-aware epoch.

Per row, on the test events (the runs' validation events): ROC AUC of the electron
probability; response E_pred / E_true (mean and RMS about the mean); the sparsity reached
(latent weights, and the zero entries of the firmware's quantized arrays); the DSP estimate
with the multiplications by zero weights left out (calo.fpga.latency.pruned_dsp) next to
the unpruned count; whether the stack outputs equal calo.fpga.reference.FixedGarNet's bit
for bit; training time.

Writes benchmarks/results/pruning.{json,md}.

Usage: python benchmarks/pruning.py [--sparsity 0 0.5 0.75 0.9 0.95] [--train 12000]
       [--test 4000] [--epochs 12] [--qat-epochs 2] [--start-epoch 1] [--ramp-epochs 6]
       [--v-max 64]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from fpga_quality import _bit_compare, _cpu  # benchmarks/fpga_quality.py, beside this script

from calo import __version__ as calo_version
from calo.fpga.data import simulate_e_pi
from calo.train.e_pi import EPiDataModule
from calo.train.evaluate import load_model
from calo.train.pruning import model_dsp, sparsity_report
from calo.train.run import resolve_config, train


def _firmware_zeros(model) -> dict[str, int]:
    """Zero and all entries of the quantized GarNet arrays the header holds."""
    zeros = total = 0
    for q in model.stack.quantized_sublayers():
        for key in ("w_d", "b_d", "w_in", "b_in", "b_out"):
            raw = getattr(q, key)
            zeros += int((raw == 0).sum())
            total += int(raw.size)
    return {"zeros": zeros, "size": total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, nargs="+", default=[0.0, 0.5, 0.75, 0.9, 0.95])
    ap.add_argument("--train", type=int, default=12000)
    ap.add_argument("--test", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=12, help="float epochs")
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--start-epoch", type=int, default=1)
    ap.add_argument("--ramp-epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam, cosine decay over all epochs")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--v-max", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help="e/pi ROOT file to use instead of simulating")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    if args.start_epoch + args.ramp_epochs > args.epochs:
        ap.error("the ramp must end within the float epochs (start + ramp <= epochs)")
    torch.set_num_threads(1)
    t_start = time.perf_counter()

    n_total = args.train + args.test
    tmp = tempfile.TemporaryDirectory()
    path = args.data or str(Path(tmp.name) / "e_pi.root")
    if args.data is None:
        simulate_e_pi(path, n_total, seed=1000 + args.seed)
    print(f"{n_total} events ready in {time.perf_counter() - t_start:.0f} s", flush=True)

    v, r = args.v_max, max(args.v_max // 4, 1)
    rows = []
    for s in args.sparsity:
        overrides = [
            "task=e_pi",
            f"data.files=[{path}]",
            f"data.max_events={n_total}",
            f"data.val_fraction={args.test / n_total}",
            f"data.batch_size={args.batch_size}",
            f"optim.lr={args.lr}",
            f"e_pi.fixed.n_vertices={v}",
            f"e_pi.fixed.reuse_factor={r}",
            f"e_pi.qat_epochs={args.qat_epochs}",
            f"trainer.max_epochs={args.epochs + args.qat_epochs}",
            f"trainer.seed={args.seed}",
            "trainer.max_time_minutes=0",
            "trainer.early_stopping_patience=0",
            "trainer.progress_bar=false",
        ]
        if s > 0:
            overrides += [
                "pruning.enabled=true",
                f"pruning.amount={s}",
                f"pruning.start_epoch={args.start_epoch}",
                f"pruning.ramp_epochs={args.ramp_epochs}",
                "pruning.parameters=both",
            ]
        cfg = resolve_config(None, overrides, None)
        folder = Path(tmp.name) / f"s{s}"
        torch.manual_seed(args.seed)
        t0 = time.perf_counter()
        metrics = train(cfg, folder, plots=False)
        seconds = time.perf_counter() - t0
        m = metrics["methods"]["quantized"]
        model, cfg, _, _ = load_model(folder / "checkpoints" / "best.ckpt")
        dm = EPiDataModule(cfg.data, cfg.e_pi)
        dm.setup()
        dsp = model_dsp(model)
        sp = sparsity_report(model, "both")
        row = dict(
            sparsity_target=s,
            sparsity=sp["total"]["sparsity"],
            sparsity_per_tensor={k: t["sparsity"] for k, t in sp["tensors"].items()},
            firmware_zeros=_firmware_zeros(model),
            v_max=v,
            reuse_factor=r,
            roc_auc=m["roc_auc"],
            response_mean=m["response"]["mean"],
            response_rms=m["response"]["rms"],
            response_width=m["response"]["width"],
            n_events=m["n_events"],
            dsp=dsp["dsp"],
            dsp_dense=dsp["dense"],
            dsp_terms=dsp["terms"],
            train_seconds=seconds,
            epochs_run=metrics["epochs_run"],
            qat_start_epoch=metrics["qat_start_epoch"],
            final_sparsity_epoch=metrics.get("pruning", {}).get("final_epoch"),
            bit_exact=_bit_compare(model, dm.val_sample),
            overrides=overrides,
        )
        print({k: row[k] for k in ("sparsity", "roc_auc", "response_rms", "dsp")}, flush=True)
        rows.append(row)
    tmp.cleanup()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu(), "threads": 1, "python": platform.python_version()},
        "versions": {"calo": calo_version, "torch": torch.__version__, "numpy": np.__version__},
        "settings": vars(args),
        "total_seconds": time.perf_counter() - t_start,
    }
    (out / "pruning.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    cmd = " ".join(["python benchmarks/pruning.py", *sys.argv[1:]])
    lines = [
        "# Magnitude pruning of the FPGA GarNet model: AUC, response and DSPs",
        "",
        f"{meta['date']}, {meta['machine']['cpu']}, 1 thread, calo {calo_version}, "
        f"torch {torch.__version__}; {args.train} training / {args.test} test events "
        f"simulated with calo.sim (e/pi 10-100 GeV, ~30 background hits); V_max {v}, R {r}; "
        f"{args.epochs} float + {args.qat_epochs} quantization-aware epochs; "
        f"{meta['total_seconds'] / 60:.1f} min in all.",
        "",
        f"Command: `{cmd.strip()}`",
        "",
        "Trained by calo-train (task e_pi), quantization-aware for the last epochs (hls4ml's "
        "default types; Dense head float32), the best quantization-aware epoch evaluated. "
        f"Pruning: head weights and GarNet kernels, each tensor to the sparsity, cubic ramp "
        f"over epochs {args.start_epoch}-{args.start_epoch + args.ramp_epochs - 1}. "
        "'sparsity': zero fraction of the pruned tensors in the checkpoint; 'firmware zeros': "
        "zero entries of the quantized arrays the header holds (w_d, b_d, w_in, b_in, b_out; "
        "the input transform is contracted from the F_LR and F_out kernels, so its zeros "
        "follow theirs only in part). DSP: calo.fpga.latency.pruned_dsp, multiplications by "
        "zero weights left out (GarNetStack with continuous kernels + head at reuse 1); "
        "'unpruned' is the same design with every weight nonzero. 'bit-exact': test events "
        "whose stack outputs equal calo.fpga.reference.FixedGarNet's. Response = E_pred / "
        "E_true, RMS about its mean.",
        "",
        "| sparsity | firmware zeros | ROC AUC | response mean | response RMS | DSP "
        "(unpruned) | DSP stack distance / output_base / head | bit-exact | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        fz = row["firmware_zeros"]
        t = row["dsp_terms"]
        b = row["bit_exact"]
        lines.append(
            f"| {row['sparsity']:.3f} | {fz['zeros']}/{fz['size']} | {row['roc_auc']:.4f} | "
            f"{row['response_mean']:.3f} | {row['response_rms']:.3f} | {row['dsp']} "
            f"({row['dsp_dense']}) | {t['distance']} / {t['output_base']} / {t['head']} | "
            f"{b['events_equal']}/{b['events']} | {row['train_seconds']:.0f} |"
        )
    (out / "pruning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
