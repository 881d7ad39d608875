"""Command-line tools ``calo-train`` and ``calo-evaluate``.

``calo-train [--config cfg.yaml] [--model gravnet|garnet|edgeconv] [--out runs/NAME] [--resume]
[--devices N|auto] [--accelerator auto|cpu|gpu] [--schema FILE.yaml] [key.sub=value ...]``
trains a model (by default a GravNet on the built-in simulated two-shower sample) and writes a
run folder (see :mod:`calo.train.run`).

``calo-evaluate RUN_OR_CHECKPOINT [--data FILE ...] [--schema FILE.yaml] [--out DIR]`` evaluates
a run next to the classical baseline and writes ``metrics.json``, ``read_summary.json`` and
plots.

Both print the read summary (events read, kept, skipped by reason). ``--schema`` names the
branch schema YAML (:class:`calo.io.Schema`) of files written by another tool; a run keeps the
schema it was trained with as ``schema.yaml``, which ``calo-evaluate --data`` uses by default.

Errors in the input (configuration, data, checkpoint) print one line and exit with code 2.

Examples
--------
>>> train_main(["--model", "nope"])
2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from calo.cli_util import ArgumentParser, run_cli
from calo.errors import ConfigError

__all__ = ["evaluate_main", "train_main"]


def _train_parser() -> ArgumentParser:
    from calo.config import fields_epilog
    from calo.train.config import TrainConfig

    p = ArgumentParser(
        prog="calo-train",
        description="Train GravNet/GarNet/DGCNN energy-fraction models (default: GravNet on the "
        "built-in simulated two-shower events), or with --task e_pi the FPGA paper's "
        "quantization-aware GarNet on electrons and pions, or with --task condensation any "
        "number of particles by object condensation on the --model backbone, against CLUE.",
        epilog=fields_epilog(TrainConfig(), "TrainConfig"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, help="YAML file with TrainConfig fields")
    p.add_argument(
        "--task",
        choices=("fractions", "e_pi", "condensation"),
        help="fractions (default): per-hit energy fractions of overlapping showers; e_pi: the "
        "FPGA paper's electron/pion classification and energy regression with the "
        "quantization-aware GarNet qgarnet; condensation: 1-10 particles per event by object "
        "condensation, compared with CLUE (same as task=...)",
    )
    p.add_argument(
        "--model",
        help="gravnet, garnet or edgeconv (same as model.name=...); qgarnet is --task e_pi",
    )
    p.add_argument("--out", type=Path, help="run folder (default runs/<model>-<date>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    p.add_argument("--devices", help="number of devices or auto (trainer.devices)")
    p.add_argument("--accelerator", help="auto, cpu or gpu (trainer.accelerator)")
    p.add_argument(
        "--schema",
        metavar="FILE.yaml",
        help="branch schema of data.files (calo.io.Schema fields in YAML) for trees written by "
        "another tool (data.schema; default calo's own layout); kept as RUN/schema.yaml",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("overrides", nargs="*", help="configuration overrides key.sub=value")
    return p


@run_cli
def train_main(argv: list[str] | None = None) -> int:
    """Entry point of ``calo-train``; returns the exit code.

    Examples
    --------
    >>> train_main(["model.unknown=1"])
    2
    """
    args = _train_parser().parse(argv)
    from calo.train.run import resolve_config, train

    overrides = list(args.overrides)
    if args.model == "qgarnet" or args.task == "e_pi":
        if args.model not in (None, "qgarnet"):
            raise ConfigError(f"--task e_pi trains the model qgarnet, not {args.model!r}")
        overrides.append("task=e_pi")
    elif args.model:
        overrides.append(f"model.name={args.model}")
    if args.task in ("fractions", "condensation"):
        overrides.append(f"task={args.task}")
    if args.devices:
        overrides.append(f"trainer.devices={args.devices}")
    if args.accelerator:
        overrides.append(f"trainer.accelerator={args.accelerator}")
    if args.schema is not None:
        overrides.append(f"data.schema={json.dumps(args.schema)}")
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out RUN_FOLDER (the run to continue)")
    cfg = resolve_config(args.config, overrides, args.out if args.resume else None)
    out = args.out or Path("runs") / f"{cfg.model_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    train(cfg, out, resume=args.resume, plots=not args.no_plots)
    return 0


def _evaluate_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="calo-evaluate",
        description="Evaluate a calo-train run or checkpoint next to the classical baseline.",
    )
    p.add_argument("run", help="run folder or checkpoint file")
    p.add_argument("--data", nargs="+", help="ROOT files (default: the run's validation events)")
    p.add_argument(
        "--schema",
        metavar="FILE.yaml",
        help="branch schema of the --data files (calo.io.Schema fields in YAML; default the "
        "run's schema.yaml, the one it was trained with)",
    )
    p.add_argument("--out", type=Path, help="output folder (default RUN/evaluation)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument(
        "--no-calibration",
        action="store_true",
        help="do not evaluate the run's profile refinement and share calibration "
        "(share_calibration.json) next to the model",
    )
    return p


@run_cli
def evaluate_main(argv: list[str] | None = None) -> int:
    """Entry point of ``calo-evaluate``; returns the exit code.

    Examples
    --------
    >>> evaluate_main(["/nonexistent/run"])
    2
    """
    args = _evaluate_parser().parse(argv)
    from calo.train.run import evaluate_run

    evaluate_run(
        args.run,
        args.data,
        args.out,
        plots=not args.no_plots,
        calibrate=not args.no_calibration,
        schema=args.schema,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(train_main())
