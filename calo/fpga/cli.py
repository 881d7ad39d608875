"""Command-line tool ``calo-export``: a calo-train run to the firmware's inputs.

``calo-export RUN_OR_CHECKPOINT --out DIR [--events N] [--data FILE.root ...] [--seed S]
[--name NAME] [--reuse-factor R] [--per-hit]`` reads a run folder (its best checkpoint) or a checkpoint
that ``calo-train`` wrote and exports it (:mod:`calo.fpga.model_export`):

* an e/pi run (``calo-train --task e_pi``): the quantized GarNetStack (``model.json``,
  ``model.npz``, the header ``<name>.h`` for ``nnet::garnet_stack``), the Dense head's weights and
  test vectors with the expected output bits (toy events, or ``--data`` calo-simulate e/pi
  events);
* a fraction-task GarNet (``calo-train --model garnet`` with ``model.garnet.simplified=true
  model.garnet.potential=gauss``; ``model.garnet.mean_by=n`` exports with hls4ml's
  ``mean_by_nvert`` and a warning): every GarNet layer quantized as
  hls4ml's converter does, one ``nnet::garnet`` header each, with test vectors of the inputs
  each layer sees on the run's validation events (or ``--data`` files);
* anything else: a one-line error that names what hls4ml's GarNet cannot express.

``--format hls4ml [--compile]`` writes the whole e/pi model (GarNetStack, quantized Dense head,
regression and classification outputs) as an hls4ml project built through hls4ml's own API
(:func:`calo.fpga.hls4ml_project.export_hls4ml`), with test events and calo's expected
outputs; ``--compile`` builds it with g++ and checks ``predict`` against them bit for bit
(exit code 1 when they differ). Any other run is a one-line error.

``--format onnx`` instead writes ``model.onnx`` for ONNX Runtime and Triton
(:mod:`calo.models.onnx`) from a fraction run (GravNet, GarNet or DGCNN), a condensation run
(beta, clustering coordinates, energy correction) or an e/pi run (in float arithmetic; its
fixed-point form is the hls4ml project), and ``model.onnx.json`` with the input names, feature
names and the normalisation the inputs need.

Errors print one line and exit with code 2.

Examples
--------
>>> export_main(["/nonexistent.ckpt", "--out", "x"])
2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calo.cli_util import ArgumentParser, run_cli
from calo.errors import ConfigError

__all__ = ["export_hls4ml_run", "export_main", "export_onnx_run", "export_run"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="calo-export",
        description="Export a calo-train run (the e/pi task's quantized GarNet, or a fraction "
        "GarNet in hls4ml's form): quantized weights (JSON, npz), C++ headers for hls4ml's "
        "nnet_garnet.h, and test vectors with the expected output bits.",
    )
    p.add_argument("run", type=Path, help="run folder or checkpoint written by calo-train")
    p.add_argument(
        "--format",
        choices=("hls", "hls4ml", "onnx"),
        default="hls",
        help="hls: hls4ml GarNet inputs (default); hls4ml: the whole e/pi model as an hls4ml "
        "project; onnx: model.onnx of a fraction, condensation or e/pi model",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="--format hls4ml: build the project with g++ (hls_model.compile()) and check "
        "predict() against calo's outputs on the test events, bit for bit",
    )
    p.add_argument(
        "--stack-output",
        action="store_true",
        help="--format hls4ml: also output the GarNetStack's result (first output)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--events", type=int, default=100, help="test-vector events (default 100)")
    p.add_argument("--data", nargs="+", help="ROOT files for the test vectors")
    p.add_argument("--seed", type=int, default=0, help="seed of the toy test events (e/pi)")
    p.add_argument("--name", default="calo_garnet", help="C++ function and header name")
    p.add_argument(
        "--reuse-factor",
        type=int,
        help="reuse factor R of a fraction GarNet's layers (default V_max / 4); an e/pi run "
        "keeps the one it was trained with",
    )
    p.add_argument(
        "--per-hit",
        action="store_true",
        help="export per-hit outputs instead of their mean (a fraction GarNet's layers are "
        "always per hit; an e/pi GarNet only when it has one sublayer: hls4ml's garnet_stack "
        "has no per-hit form that compiles)",
    )
    return p


def export_run(
    run_or_checkpoint: str | Path,
    out: str | Path,
    events: int = 100,
    data: str | Path | list[str] | None = None,
    seed: int = 0,
    name: str = "calo_garnet",
    reuse_factor: int | None = None,
    per_hit: bool = False,
) -> dict[str, Any]:
    """Export the model of a calo-train run folder or checkpoint into ``out``.

    ``per_hit`` exports per-hit outputs (:func:`calo.fpga.model_export.export_qgarnet`; a
    fraction GarNet's layers are per hit anyway). A fraction GarNet trained with
    ``model.garnet.mean_by=n`` exports with hls4ml's ``mean_by_nvert`` (the summary's
    ``mean_by_nvert`` says how many test events its integer ``(V/R)/n`` zeroes).

    Returns the summary of :func:`calo.fpga.model_export.export_qgarnet` (e/pi runs) or
    :func:`calo.fpga.model_export.export_fraction_garnet` (fraction GarNets).

    Raises
    ------
    CheckpointError
        For a missing, unreadable or foreign checkpoint.
    ConfigError
        For a model hls4ml's GarNet cannot express (the message names what blocks it), a bad
        number of events or an invalid C++ name.

    Examples
    --------
    >>> export_run("/nonexistent", "out")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    calo.errors.CheckpointError: ...
    """
    from calo.fpga.model_export import export_fraction_garnet, export_qgarnet, garnet_blockers
    from calo.train.checkpoint import resolve_checkpoint
    from calo.train.evaluate import load_model

    ckpt = resolve_checkpoint(run_or_checkpoint)
    model, cfg, normalization, _ = load_model(ckpt)
    if cfg.task == "e_pi":
        from calo.train.e_pi import e_pi_features

        files = [data] if isinstance(data, str | Path) else data
        return export_qgarnet(
            model,
            out,
            e_pi_features(cfg.e_pi),
            events,
            files,
            seed,
            name,
            source=str(ckpt),
            per_hit=per_hit,
        )
    blockers = garnet_blockers(cfg.model)
    if blockers:
        raise ConfigError(f"{ckpt}: cannot export to hls4ml's GarNet: " + "; ".join(blockers))
    if events < 1:
        raise ConfigError(f"--events must be at least 1, got {events}")
    from calo.io import HitDataset
    from calo.train.data import CaloDataModule

    if data:
        files = [str(data)] if isinstance(data, str | Path) else [str(f) for f in data]
        sample = HitDataset(files, normalization=normalization, max_events=events).data
    else:
        dm = CaloDataModule(cfg.data, normalization)
        dm.setup()
        sample = dm.val_set.data[:events]
    return export_fraction_garnet(
        model, cfg.model, out, sample, reuse_factor, name, source=str(ckpt)
    )


def export_hls4ml_run(
    run_or_checkpoint: str | Path,
    out: str | Path,
    events: int = 100,
    data: str | Path | list[str] | None = None,
    seed: int = 0,
    name: str = "calo_garnet",
    compile: bool = False,
    stack_output: bool = False,
) -> dict[str, Any]:
    """Write the hls4ml project of an e/pi run's whole model into ``out``.

    Returns the summary of :func:`calo.fpga.hls4ml_project.export_hls4ml`.

    Raises
    ------
    CheckpointError
        For a missing, unreadable or foreign checkpoint.
    ConfigError
        For a run that is not an e/pi run, or a stack hls4ml cannot express.

    Examples
    --------
    >>> export_hls4ml_run("/nonexistent", "out")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    calo.errors.CheckpointError: ...
    """
    from calo.train.checkpoint import resolve_checkpoint
    from calo.train.evaluate import load_model

    ckpt = resolve_checkpoint(run_or_checkpoint)
    model, cfg, _, _ = load_model(ckpt)
    if cfg.task != "e_pi":
        raise ConfigError(
            f"{ckpt}: --format hls4ml exports e/pi runs (calo-train --task e_pi) only; this is a "
            f"{cfg.task} run (a simplified GarNet of it exports per layer with --format hls)"
        )
    from calo.fpga.hls4ml_project import export_hls4ml
    from calo.train.e_pi import e_pi_features

    return export_hls4ml(
        model,
        out,
        e_pi_features(cfg.e_pi),
        events,
        data,
        seed,
        name,
        source=str(ckpt),
        compile=compile,
        stack_output=stack_output,
    )


def export_onnx_run(run_or_checkpoint: str | Path, out: str | Path) -> dict[str, Any]:
    """Export a run's model to ``out/model.onnx`` (+ ``model.onnx.json``): a fraction or
    condensation run (:func:`calo.models.onnx.export_onnx`), or an e/pi run in float arithmetic
    (:func:`calo.models.onnx.export_e_pi_onnx`).

    The JSON carries the inputs and outputs, the feature names, the normalisation the features
    need before they enter the graph (``x = (f - offset) / scale``) and the checkpoint.

    Raises
    ------
    CheckpointError
        For a missing, unreadable or foreign checkpoint.
    ConfigError
        For a graph that ONNX Runtime does not run as torch does.

    Examples
    --------
    >>> export_onnx_run("/nonexistent", "out")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    calo.errors.CheckpointError: ...
    """
    from calo.models.onnx import export_onnx
    from calo.train.checkpoint import resolve_checkpoint
    from calo.train.evaluate import load_model

    ckpt = resolve_checkpoint(run_or_checkpoint)
    model, cfg, normalization, _ = load_model(ckpt)
    meta = {
        "task": cfg.task,
        "model_name": cfg.model.name,
        "feature_names": list(normalization.get("names", [])),
        "normalization": normalization,
        "source": str(ckpt),
    }
    if cfg.task == "e_pi":
        from calo.models.onnx import export_e_pi_onnx

        return export_e_pi_onnx(model, Path(out) / "model.onnx", metadata=meta)
    return export_onnx(model, Path(out) / "model.onnx", metadata=meta)


@run_cli
def export_main(argv: list[str] | None = None) -> int:
    """Entry point of ``calo-export``; returns the exit code.

    Examples
    --------
    >>> export_main(["run"])  # --out is required
    2
    """
    args = _parser().parse(argv)
    if args.format == "hls4ml" and (args.per_hit or args.reuse_factor is not None):
        raise ConfigError(
            "--per-hit and --reuse-factor do not apply to --format hls4ml (the project is the "
            "e/pi model as trained: collapsed stack, its own reuse factor)"
        )
    if args.format != "hls4ml" and (args.compile or args.stack_output):
        raise ConfigError("--compile and --stack-output apply to --format hls4ml only")
    if args.format == "hls4ml":
        res = export_hls4ml_run(
            args.run,
            args.out,
            args.events,
            args.data,
            args.seed,
            args.name,
            args.compile,
            args.stack_output,
        )
        print(
            f"wrote the hls4ml project {res['project_name']} to {res['out']} "
            f"({res['weights_checked']} weight arrays checked, {res['events']} test events)"
        )
        if res["bit_exact"] is None:
            return 0
        if res["bit_exact"]:
            print("compiled with g++: hls_model.predict() equals calo's outputs bit for bit")
            return 0
        print(
            f"compiled with g++: predict() differs from calo's outputs: {res['differing_values']}"
        )
        return 1
    if args.format == "onnx":
        res = export_onnx_run(args.run, args.out)
        print(
            f"wrote {res['path']} and {res['json']} (opset {res['opset']}; ONNX Runtime - "
            + (
                f"torch max |diff| {res['max_abs_diff']:.2g})"
                if res["verified"]
                else "not checked: onnxruntime missing)"
            )
        )
        return 0
    res = export_run(
        args.run,
        args.out,
        args.events,
        args.data,
        args.seed,
        args.name,
        args.reuse_factor,
        args.per_hit,
    )
    over = res["overflows"]
    print(
        f"wrote {', '.join(res['files'])} to {res['out']} ({res['events']} test events; "
        + (f"overflows on them: {over})" if over else "no overflow on them)")
    )
    if res.get("mean_by_nvert"):
        nv = res["mean_by_nvert"]
        print(
            f"warning: mean_by_nvert: the firmware's means are 0 on "
            f"{nv['events_with_zero_means']} of {nv['of_events']} test events "
            "(integer (V/R)/n; see model.json)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(export_main())
