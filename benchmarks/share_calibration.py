"""The share calibration of a run's model, fitted on its training events, against the baseline.

calo-train fits the share calibration (:mod:`calo.reco.calibration`) after training and
reports the calibrated model next to the model in metrics.json; this benchmark does the same
for any run or checkpoint (also those trained before the calibration existed), with the
calibration's settings on the command line, and writes ``share_calibration.{json,md}`` plus
the fitted ``share_calibration_table.json`` (which calo-evaluate reads when it sits in a run
folder as ``share_calibration.json``). Two-shower events only.

Usage::

    python benchmarks/share_calibration.py RUN_OR_CHECKPOINT [--out DIR] [--set KEY=VALUE ...]

where ``KEY`` is a field of :class:`calo.reco.config.CalibrationConfig` (``energy_bins=1``
reproduces a table without the event energy, ``refine_iterations=0`` the calibration without
the profile refinement). The methods: ``model``, ``refined`` (the model after the profile
refinement alone) and ``calibrated`` (refinement and share calibration).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    """Fit on the run's training events, evaluate on its validation events."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="calo-train run folder or checkpoint")
    p.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="calibration setting (CalibrationConfig field)")  # fmt: skip
    a = p.parse_args(argv)

    import time

    import torch

    from calo.config import apply_overrides
    from calo.reco import CalibrationConfig, fit_share_calibration, model_split_features
    from calo.train.data import CaloDataModule
    from calo.train.evaluate import evaluate, load_model

    ckpt = a.run / "checkpoints" / "best.ckpt" if a.run.is_dir() else a.run
    model, cfg, norm, _ = load_model(ckpt)
    torch.set_num_threads(max(cfg.trainer.threads, 1))
    ccfg = apply_overrides(CalibrationConfig(), a.set)
    dm = CaloDataModule(cfg.data, normalization=norm)
    dm.setup("fit")
    start = time.perf_counter()
    split = model_split_features(model, dm.train_set.data, 128, "cpu", ccfg, cfg.baseline)
    calib = fit_share_calibration(*split, ccfg, cfg.baseline)
    fit_seconds = time.perf_counter() - start
    result = evaluate(model, dm.val_set.data, cfg.baseline, 128, cfg.shared_threshold,
                      calibration=calib)  # fmt: skip
    summ = result["methods"]
    base_rms = summ["baseline"]["response"]["rms"]
    res = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "checkpoint": str(ckpt),
        "model": cfg.model.name,
        "n_train": len(dm.train_set),
        "n_test": len(dm.val_set),
        "settings": ccfg.__dict__,
        "bins": list(calib.table.shape),
        "bins_calibrated": calib.n_calibrated,
        "fit_seconds": fit_seconds,
        "methods": {
            name: {
                "loss": m["loss"],
                "response": m["response"],
                "response_shared": m["response_shared"],
                "rms_ratio": base_rms / m["response"]["rms"],
                "overlap_rms": m["overlap_bins"]["all"]["rms"],
            }
            for name, m in summ.items()
        },
        "command": "python benchmarks/share_calibration.py " + " ".join(argv or sys.argv[1:]),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "share_calibration.json").write_text(json.dumps(res, indent=2))
    calib.save(a.out / "share_calibration_table.json")
    md = [
        "# Profile refinement and share calibration (fitted on the training events)",
        "",
        f"{res['date']}; {res['model']} checkpoint {ckpt}; fitted on {res['n_train']} training "
        f"events ({res['bins_calibrated']} of {'x'.join(map(str, res['bins']))} bins "
        f"(share x sharpness x energy) calibrated, after {ccfg.refine_iterations} iterations "
        f"of the profile refinement), evaluated on "
        f"{res['n_test']} validation events. RMS per overlap bin: 0-0.01-0.05-0.2-0.5-1.",
        "",
        "| method | loss | R mean | R rms | R width | shared rms | rms ratio baseline/method "
        "| RMS per overlap bin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in res["methods"].items():
        r = m["response"]
        bins = " / ".join(f"{v:.3f}" for v in m["overlap_rms"])
        md.append(
            f"| {name} | {m['loss']:.4f} | {r['mean']:.3f} | {r['rms']:.3f} | {r['width']:.3f} "
            f"| {m['response_shared']['rms']:.3f} | {m['rms_ratio']:.2f} | {bins} |"
        )
    md += ["", f"Command: `{res['command']}`", ""]
    (a.out / "share_calibration.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
