"""A whole training run and the evaluation of a finished run, as library functions.

:func:`train` sets up Lightning (seeded, atomic checkpoints, early stopping, CPU or CUDA),
fits, then evaluates the best checkpoint next to the classical baseline on the validation
events and writes the run folder::

    OUT/config.yaml            resolved configuration
    OUT/schema.yaml            the branch schema the data was read with (data.schema, or calo's
                               own layout); calo-evaluate --data and calo-predict default to it
    OUT/read_summary.json      what the read of the data kept and skipped (and why)
    OUT/checkpoints/last.ckpt  latest state (for --resume): written after every epoch and every
                               trainer.checkpoint_minutes inside one; best.ckpt lowest
                               validation loss
    OUT/logs/metrics.csv       Lightning's CSV log (kept whole across a resume)
    OUT/share_calibration.json profile refinement and share calibration (two showers)
    OUT/metrics.json           model, refined, calibrated and baseline metrics, history, timing
    OUT/plots/*.png            loss curves, response vs energy, event displays

:func:`evaluate_run` re-evaluates a run folder or checkpoint, optionally on other files, and
writes ``metrics.json``, ``read_summary.json`` and plots into the evaluation folder.

Examples
--------
>>> from calo.train.config import TrainConfig
>>> cfg = resolve_config(None, ["model.name=garnet"], resume_dir=None)
>>> cfg.model.name
'garnet'
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from calo.config import apply_overrides, load_yaml, save_yaml, to_dict
from calo.errors import CheckpointError, ConfigError, DataError
from calo.io.schema import Schema
from calo.reco.calibration import (
    ShareCalibration,
    fit_share_calibration,
    model_split_features,
)
from calo.train.checkpoint import AtomicCheckpointIO, read_checkpoint, resolve_checkpoint
from calo.train.config import DataConfig, TrainConfig
from calo.train.data import SCHEMA_FILE, CaloDataModule, load_schema
from calo.train.evaluate import evaluate, format_comparison, load_model
from calo.train.module import CaloModule, FractionModule
from calo.train.resume import LatestCheckpoint, ResumableCSVLogger

#: the share calibration's file in a run folder (:mod:`calo.reco.calibration`)
CALIBRATION_FILE = "share_calibration.json"
#: the methods compared with the baseline: the network, and after its post-processing
COMPARED_METHODS = ("model", "refined", "calibrated")
#: what the read of the data kept and skipped, beside the results (:func:`report_read`)
READ_SUMMARY_FILE = "read_summary.json"

__all__ = [
    "CALIBRATION_FILE",
    "READ_SUMMARY_FILE",
    "compare",
    "evaluate_run",
    "evaluation_schema",
    "read_run_config",
    "report_read",
    "resolve_config",
    "train",
    "write_metrics",
    "write_results",
]


def resolve_config(
    config_path: str | Path | None, overrides: list[str] | None, resume_dir: Path | None
) -> TrainConfig:
    """The run configuration: the run folder's ``config.yaml`` when resuming, else the YAML
    file (or the defaults), with ``key=value`` overrides applied last.

    Examples
    --------
    >>> resolve_config(None, ["trainer.max_epochs=3"], None).trainer.max_epochs
    3
    """
    if resume_dir is not None and config_path is None:
        saved = Path(resume_dir) / "config.yaml"
        if not saved.is_file():
            raise CheckpointError(
                "cannot resume: the run folder has no config.yaml", file=resume_dir
            )
        return apply_overrides(read_run_config(saved), overrides)
    if config_path is not None:
        return apply_overrides(read_run_config(config_path), overrides)
    return apply_overrides(TrainConfig(), overrides)


def read_run_config(path: str | Path) -> TrainConfig:
    """A :class:`TrainConfig` YAML file (``--config`` or a run folder's ``config.yaml``), checked
    the same way for every command: an unknown key or a bad value raises
    :class:`~calo.errors.ConfigError` naming the file.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "config.yaml"
    >>> _ = p.write_text("optimiser:\\n  lr: 0.1\\n")
    >>> read_run_config(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: unknown configuration key(s) ['optimiser']; ... [file .../config.yaml]
    """
    path = Path(path)
    if path.is_file():  # load_yaml says when it is not
        _check_yaml(path)
    try:
        return load_yaml(TrainConfig, path)
    except ConfigError as e:
        message = " ".join(e.message.split())
        if str(path) in message or "file" in e.where:
            raise ConfigError(message, **e.where) from None
        raise ConfigError(message, file=path, **e.where) from None


def _check_yaml(path: Path) -> None:
    """A file that is not UTF-8 YAML: one ConfigError line with the place of the problem."""
    import yaml

    try:
        yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"configuration file is not UTF-8 text (byte {e.start}); give a YAML file", file=path
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(
            f"configuration file is not valid YAML: {problem}{where}", file=path
        ) from None
    except OSError as e:
        raise ConfigError(
            f"cannot read the configuration file ({e.strerror or e})", file=path
        ) from None


def _limit(v: float) -> int | float:
    return int(v) if v > 1 else float(v)


def compare(methods: dict[str, Any], name: str = "model") -> dict[str, bool]:
    """Whether method ``name``'s response spread (RMS and robust width, all and shared hits)
    and loss are smaller than the baseline's.

    Examples
    --------
    >>> s = lambda r: {"loss": r, "response": {"rms": r, "width": r},
    ...                "response_shared": {"rms": r, "width": r}}
    >>> compare({"model": s(0.1), "baseline": s(0.2)})["all"]
    True
    """
    m, b = methods[name], methods["baseline"]
    out = {
        "loss": m["loss"] < b["loss"],
        "rms": m["response"]["rms"] < b["response"]["rms"],
        "width": m["response"]["width"] < b["response"]["width"],
        "shared_rms": m["response_shared"]["rms"] < b["response_shared"]["rms"],
        "shared_width": m["response_shared"]["width"] < b["response_shared"]["width"],
    }
    out["all"] = all(out.values())
    return out


def _environment() -> dict[str, str]:
    import lightning
    import torch_geometric

    from calo import __version__

    return {
        "calo": __version__,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": str(__import__("os").cpu_count()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_results(
    out: Path,
    result: dict[str, Any],
    history: dict[str, Any],
    extra: dict[str, Any] | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Write ``metrics.json`` and the plots of an evaluation into ``out``; return the metrics.

    Examples
    --------
    >>> import tempfile
    >>> s = {"loss": 0.1, "n_events": 1, "response": {"rms": 0.1, "width": 0.1},
    ...      "response_shared": {"rms": 0.1, "width": 0.1}}
    >>> m = write_results(Path(tempfile.mkdtemp()), {"methods": {"baseline": s}}, {}, plots=False)
    >>> sorted(m)[:3]
    ['environment', 'history', 'methods']
    """
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {
        "methods": result["methods"],
        "history": history,
        "environment": _environment(),
        **(extra or {}),
    }
    methods = result["methods"]
    for name in COMPARED_METHODS:
        if name in methods:
            metrics[f"{name}_beats_baseline"] = compare(methods, name)
    base_rms = methods.get("baseline", {}).get("response", {}).get("rms")
    if base_rms is not None:
        metrics["rms_ratio"] = {
            name: base_rms / m["response"]["rms"] if m["response"]["rms"] else math.inf
            for name, m in methods.items()
            if name != "baseline"
        }

    write_metrics(out, metrics)
    if plots:
        from calo.plots.performance import save_performance_plots

        save_performance_plots(out / "plots", result, history)
    return metrics


def write_metrics(out: Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics`` to ``out/metrics.json`` (non-finite numbers as ``null``).

    Examples
    --------
    >>> import tempfile
    >>> p = write_metrics(Path(tempfile.mkdtemp()), {"a": [1.0, float("nan")]})
    >>> p.read_text().split()
    ['{', '"a":', '[', '1.0,', 'null', ']', '}']
    """

    def clean(o: Any) -> Any:
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    path.write_text(json.dumps(clean(metrics), indent=2))
    return path


def report_read(out: Path, summary: Any, command: str) -> dict[str, Any]:
    """Print the read summary, write it as ``out/read_summary.json`` and return the counts for
    the data section of ``metrics.json``.

    ``summary`` is a :class:`calo.io.ReadSummary`: events read, kept and skipped by reason
    (with up to five ``(file, entry)`` examples each), so that no skipped event goes unreported.

    Examples
    --------
    >>> import tempfile
    >>> from calo.io import ReadSummary
    >>> s = ReadSummary(files=["a.root"], events_read=3, events_kept=2, hits_read=9, hits_kept=7)
    >>> s.add_skip("empty", "a.root", 1)
    >>> out = Path(tempfile.mkdtemp())
    >>> counts = report_read(out, s, "calo-demo")
    calo-demo: read 3 events (9 hits) from 1 file: kept 2 events (7 hits), skipped 1
      skipped 1 (no hits), e.g. a.root entry 1
    >>> counts["events_skipped"], counts["skipped"]
    (1, {'empty': 1})
    >>> json.loads((out / READ_SUMMARY_FILE).read_text())["examples"]
    {'empty': [['a.root', 1]]}
    """
    print(f"{command}: {summary}")
    out.mkdir(parents=True, exist_ok=True)
    (out / READ_SUMMARY_FILE).write_text(json.dumps(summary.to_dict(), indent=2))
    return {
        "events_read": int(summary.events_read),
        "events_kept": int(summary.events_kept),
        "events_skipped": int(summary.n_skipped),
        "skipped": dict(summary.skipped),
        "read_summary": str(summary),
    }


def _setup_task(
    config: TrainConfig,
    normalization: dict[str, Any] | None,
    seed: int,
    schema: Schema | None = None,
) -> tuple[L.LightningDataModule, CaloModule, list[Any]]:
    """The data module (set up), the LightningModule and the extra callbacks of the task."""
    if config.task == "e_pi":
        from calo.train.e_pi import EPiDataModule, EPiModule
        from calo.train.qat import QuantizationAwareTraining

        edm = EPiDataModule(config.data, config.e_pi, seed=seed, schema=schema)
        edm.prepare_data()
        edm.setup("fit")
        qat = QuantizationAwareTraining(config.e_pi.qat_epochs, config.trainer.max_epochs)
        return edm, EPiModule(to_dict(config)), [qat]
    dm = CaloDataModule(config.data, normalization, seed=seed, schema=schema, task=config.task)
    dm.prepare_data()
    dm.setup("fit")
    config.model.in_features = int(dm.n_features)
    config.model.n_showers = int(dm.n_showers)
    if config.task == "condensation":
        from calo.train.condensation_task import CondensationModule

        return dm, CondensationModule(to_dict(config), dm.normalization), []
    return dm, FractionModule(to_dict(config), dm.normalization), []


def _load_initial_weights(module: Any, ckpt: dict[str, Any], path: str) -> None:
    """Start ``module`` from the weights of ``trainer.init_from``; a checkpoint of another
    task or model shape is a :class:`~calo.errors.CheckpointError` naming the difference."""
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(
            "trainer.init_from: the checkpoint's weights do not fit this run's model (same task "
            f"and model settings needed): {' '.join(first[:3])}",
            file=path,
        ) from None


def train(
    config: TrainConfig, out: str | Path, resume: bool = False, plots: bool = True
) -> dict[str, Any] | None:
    """Train, then evaluate the best checkpoint against the baseline and write the run folder.

    Parameters
    ----------
    config:
        The run configuration.
    out:
        Run folder.
    resume:
        Continue from ``OUT/checkpoints/last.ckpt``, the latest state (written at the end of
        every epoch and every ``trainer.checkpoint_minutes`` inside one): weights, optimiser,
        epoch and position in it, history and the rows of ``logs/metrics.csv`` restored. The
        data is read again with the run's ``schema.yaml``.
    plots:
        Draw the PNG figures.

    Returns
    -------
    dict or None
        The metrics written to ``metrics.json`` (``None`` on non-zero ranks of a DDP run).

    Examples
    --------
    >>> cfg = resolve_config(None, ["trainer.max_epochs=1"], None)
    >>> metrics = train(cfg, "runs/quick")  # doctest: +SKIP
    >>> metrics["model_beats_baseline"]["rms"]  # doctest: +SKIP
    True
    """
    wall_start = time.perf_counter()
    out = Path(out)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    normalization = None
    resume_step: int | None = None
    if resume:
        ckpt = read_checkpoint(last)
        normalization = ckpt["calo"]["normalization"]
        resume_step = int(ckpt.get("global_step", 0))
        del ckpt
    elif last.exists():
        raise ConfigError(
            f"run folder {out} already has a checkpoint; use --resume to continue it or choose "
            "another --out"
        )
    t = config.trainer
    init = None
    if t.init_from and not resume:  # a resumed run has its weights in last.ckpt
        init = read_checkpoint(t.init_from)
        normalization = init["calo"]["normalization"]
    _check_accelerator(t)
    saved_schema = out / SCHEMA_FILE
    schema = load_schema(saved_schema if resume and saved_schema.is_file() else config.data.schema)
    if t.threads:
        torch.set_num_threads(t.threads)
    L.seed_everything(t.seed, workers=True, verbose=False)
    dm, module, task_callbacks = _setup_task(config, normalization, t.seed, schema)
    if init is not None:
        _load_initial_weights(module, init, t.init_from)
        del init
    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="best",
            monitor="val_loss",
            mode="min",
            save_top_k=1,
            enable_version_counter=False,
        ),
        LatestCheckpoint(last, t.checkpoint_minutes, t.checkpoint_every_n_steps),
    ]
    if t.early_stopping_patience:
        stopper = task_callbacks[0].early_stopping if config.task == "e_pi" else EarlyStopping
        callbacks.append(stopper(monitor="val_loss", patience=t.early_stopping_patience))
    callbacks += task_callbacks
    pruning = None
    if config.pruning.enabled:  # after the QAT callback, which it follows at each epoch start
        from calo.train.pruning import MagnitudePruning

        pruning = MagnitudePruning(config.pruning)
        callbacks.append(pruning)
    trainer = _lightning_trainer(
        t,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        max_time={"minutes": t.max_time_minutes} if t.max_time_minutes else None,
        accelerator=t.accelerator,
        devices=t.lightning_devices(),
        strategy=t.strategy,
        precision=t.precision,
        callbacks=callbacks,
        logger=ResumableCSVLogger(out, name="logs", keep_before_step=resume_step),
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=_limit(t.limit_train_batches),
        limit_val_batches=_limit(t.limit_val_batches),
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
        deterministic=False,
    )
    read_counts: dict[str, Any] = {}
    if trainer.is_global_zero:
        save_yaml(config, out / "config.yaml")
        save_yaml(schema, out / SCHEMA_FILE)
        read_counts = report_read(out, dm.read_summary, "calo-train")
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None, weights_only=True)
    seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        return None
    best = ckpt_dir / "best.ckpt"
    model, _, _, _ = load_model(best if best.is_file() else last)
    history = {k: list(v) for k, v in module.history.items()}  # all epochs, not just the best
    device = module.device if module.device.type != "cpu" else "cpu"
    extra = {
        "model": config.model_name,
        "task": config.task,
        "checkpoint": str(best if best.is_file() else last),
        "train_seconds": seconds,
        "epochs_run": int(trainer.current_epoch),
    }
    if config.task == "e_pi":
        qat = task_callbacks[0]
        extra["qat_start_epoch"] = qat.qat_start
        if pruning is not None:
            from calo.train.pruning import model_dsp, sparsity_report

            extra["pruning"] = {
                **pruning.report(),
                **sparsity_report(model, config.pruning.parameters),
                "dsp": model_dsp(model),
            }
        extra["data"] = {**_e_pi_data_info(dm), **read_counts}
        return _finish_e_pi(model, dm.val_sample, config, out, history, extra, plots, wall_start)
    if config.task == "condensation":
        extra["data"] = {
            "files": dm.files(),
            "schema": str(out / SCHEMA_FILE),
            "n_train": len(dm.train_set),
            "n_val": len(dm.val_set),
            **read_counts,
        }
        if config.condensation.tune_events > 0:
            config, extra["tuning"] = _tune_condensation(
                model, dm.train_set.data, config, out, [best, last], device
            )
        return _finish_condensation(
            model, dm.val_set.data, config, out, history, extra, plots, wall_start, device
        )
    calibration, calib_info = _fit_calibration(model, dm.train_set.data, config, out, device)
    result = evaluate(
        model,
        dm.val_set.data,
        config.baseline,
        batch_size=config.data.batch_size,
        shared_threshold=config.shared_threshold,
        device=device,
        keep_events=4,
        calibration=calibration,
    )
    extra["wall_seconds_before_plots"] = time.perf_counter() - wall_start
    extra["calibration"] = calib_info
    extra["data"] = {
        "files": dm.files(),
        "schema": str(out / SCHEMA_FILE),
        "n_train": len(dm.train_set),
        "n_val": len(dm.val_set),
        **read_counts,
    }
    metrics = write_results(out, result, history, extra, plots=plots)
    print(f"\ncalo-train: {config.model.name} on {len(dm.val_set)} validation events")
    print(format_comparison(result["methods"]))
    _print_verdict(metrics)
    print(f"run folder: {out} (training {seconds:.0f} s)")
    return metrics


def _check_accelerator(t: Any) -> None:
    """A GPU asked for where PyTorch sees none: one :class:`~calo.errors.ConfigError` line,
    before any data is read."""
    if t.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "without CUDA"
        raise ConfigError(
            f"trainer.accelerator={t.accelerator} but PyTorch sees no CUDA GPU (torch "
            f"{torch.__version__}, built {built}); use --accelerator cpu (or auto), or run on "
            "a machine with a GPU and a CUDA build of PyTorch"
        )


def _lightning_trainer(t: Any, **kwargs: Any) -> L.Trainer:
    """``L.Trainer(**kwargs)``; an accelerator, device count, strategy or precision that
    Lightning refuses becomes one :class:`~calo.errors.ConfigError` line."""
    try:
        return L.Trainer(**kwargs)
    except (MisconfigurationException, ValueError) as e:
        raise ConfigError(
            f"Lightning refuses trainer.accelerator={t.accelerator}, trainer.devices={t.devices}, "
            f"trainer.strategy={t.strategy}, trainer.precision={t.precision}: "
            f"{' '.join(str(e).split())}"
        ) from None


def _e_pi_data_info(dm: Any) -> dict[str, Any]:
    return {
        "files": dm.files(),
        "n_train": len(dm.train_sample),
        "n_val": len(dm.val_sample),
        "truncation": str(dm.train_sample.truncation),
    }


def _finish_e_pi(
    model: torch.nn.Module,
    sample: Any,
    config: TrainConfig,
    out: Path,
    history: dict[str, Any],
    extra: dict[str, Any],
    plots: bool,
    wall_start: float | None = None,
) -> dict[str, Any]:
    """Evaluate an e/pi model (quantized and float arithmetic), write metrics.json and plots."""
    from calo.train.e_pi import evaluate_e_pi, format_e_pi, save_e_pi_plots

    result = evaluate_e_pi(model, sample, batch_size=max(config.data.batch_size, 256))
    metrics: dict[str, Any] = {
        "methods": result["methods"],
        "trained_quantized": result["trained_quantized"],
        "history": history,
        "environment": _environment(),
        **extra,
    }
    if wall_start is not None:
        metrics["wall_seconds_before_plots"] = time.perf_counter() - wall_start
    write_metrics(out, metrics)
    if plots:
        save_e_pi_plots(out / "plots", result, history)
    mode = "quantization-aware" if result["trained_quantized"] else "float (not quantization-aware)"
    print(f"\nqgarnet ({mode}) on {len(sample)} events")
    print(format_e_pi(result["methods"]))
    print(f"written to {out}")
    return metrics


def _tune_condensation(
    model: torch.nn.Module,
    events: Any,
    config: TrainConfig,
    out: Path,
    checkpoints: list[Path],
    device: Any = "cpu",
) -> tuple[TrainConfig, dict[str, Any]]:
    """CLUE's parameters and the clustering thresholds tuned on the first
    ``condensation.tune_events`` training events; the run's config.yaml and the configuration
    inside its checkpoints (what calo-evaluate and calo-predict load) get the tuned values.
    Returns the tuned config and, per section, the best values and the whole grid."""
    from dataclasses import replace

    from calo.train.condensation_task import condensation_outputs, tune_parameters, with_settings

    c = config.condensation
    subset = list(events)[: c.tune_events]
    outputs = condensation_outputs(model, subset, c, config.data.batch_size, device)
    info: dict[str, Any] = {"events": len(subset)}
    for section in ("clustering", "clue"):
        best, grid = tune_parameters(outputs, c, section)
        c = with_settings(c, section, best)
        info[section] = {"best": best, "grid": grid}
        print(f"tuned on {len(subset)} training events: {section} {best}")
    config = replace(config, condensation=c)
    save_yaml(config, out / "config.yaml")
    for path in checkpoints:
        if path.is_file():
            ckpt = read_checkpoint(path)
            ckpt["calo"]["config"] = to_dict(config)
            tmp = path.with_name(path.name + ".tmp")
            torch.save(ckpt, tmp)
            tmp.replace(path)
    return config, info


def _finish_condensation(
    model: torch.nn.Module,
    events: Any,
    config: TrainConfig,
    out: Path,
    history: dict[str, Any],
    extra: dict[str, Any],
    plots: bool,
    wall_start: float | None = None,
    device: Any = "cpu",
) -> dict[str, Any]:
    """Condensation clusters and CLUE clusters against the truth: metrics.json (methods
    ``model`` and ``clue``), the printed table and the event displays."""
    from calo.train.condensation_task import evaluate_condensation, format_condensation

    result = evaluate_condensation(
        model, events, config.condensation, batch_size=config.data.batch_size, device=device
    )
    metrics: dict[str, Any] = {
        "methods": result["methods"],
        "settings": {
            "clustering": to_dict(config.condensation.clustering),
            "clue": to_dict(config.condensation.clue),
            "clue_space": config.condensation.clue_space,
            "matching": to_dict(config.condensation.matching),
        },
        "history": history,
        "environment": _environment(),
        **extra,
    }
    if wall_start is not None:
        metrics["wall_seconds_before_plots"] = time.perf_counter() - wall_start
    write_metrics(out, metrics)
    if plots:
        _condensation_plots(out / "plots", result, history)
    print(f"\n{config.model.name} + condensation on {len(events)} events, against CLUE")
    print(format_condensation(result["methods"]))
    print(f"written to {out}")
    return metrics


def _condensation_plots(folder: Path, result: dict[str, Any], history: dict[str, Any]) -> None:
    """Event displays coloured by truth, model and CLUE clusters (first events)."""
    from calo.plots.clusters import cluster_display

    folder.mkdir(parents=True, exist_ok=True)
    batch = result["batch"]
    for ev in range(min(3, int(batch.max()) + 1 if batch.size else 0)):
        sel = batch == ev
        cluster_display(
            result["pos"][sel],
            result["energy"][sel],
            {
                "truth": result["particle"][sel],
                "model": result["labels"]["model"][sel],
                "CLUE": result["labels"]["clue"][sel],
            },
            folder / f"clusters_event{ev}.png",
        )


def _evaluate_condensation_run(
    model: torch.nn.Module,
    cfg: TrainConfig,
    ckpt: Path,
    history: dict[str, Any],
    files: list[str] | None,
    out: Path,
    plots: bool,
    schema: Schema,
    schema_source: str,
    normalization: dict[str, Any],
) -> dict[str, Any]:
    """calo-evaluate of a condensation run: its validation events, or all events of
    ``files``, clustered by the model and by CLUE (:func:`_finish_condensation`)."""
    from calo.io import HitDataset

    if files:
        ds = HitDataset(list(files), schema=schema, normalization=normalization)
        events, summary, used_files = ds.data, ds.summary, list(files)
    else:
        dm = CaloDataModule(cfg.data, normalization, schema=schema, task=cfg.task)
        dm.setup()
        events, summary, used_files = dm.val_set.data, dm.read_summary, dm.files()
    read_counts = report_read(out, summary, "calo-evaluate")
    extra = {
        "model": cfg.model_name,
        "task": cfg.task,
        "checkpoint": str(ckpt),
        "data": {"files": used_files, "schema": schema_source, **read_counts},
    }
    return _finish_condensation(model, events, cfg, out, history, extra, plots)


def _fit_calibration(
    model: torch.nn.Module, events: Any, config: TrainConfig, out: Path, device: Any
) -> tuple[ShareCalibration | None, dict[str, Any]]:
    """Fit the share calibration on the training events and write it into the run folder."""
    if not config.calibration.enabled:
        return None, {"fitted": False, "reason": "calibration.enabled is false"}
    if config.model.n_showers != 2:
        reason = f"needs two-shower data, the model predicts {config.model.n_showers} showers"
        print(f"calo-train: share calibration skipped: {reason}")
        return None, {"fitted": False, "reason": reason}
    start = time.perf_counter()
    features, true_share = model_split_features(
        model, events, config.data.batch_size, device, config.calibration, config.baseline
    )
    cal = fit_share_calibration(features, true_share, config.calibration, config.baseline)
    path = cal.save(out / CALIBRATION_FILE)
    if cal.n_skipped:
        print(f"calo-train: share calibration left out {cal.n_skipped} training events "
              "without signal energy")  # fmt: skip
    info = {
        "fitted": True,
        "file": str(path),
        "n_train": cal.n_train,
        "n_skipped": cal.n_skipped,
        "bins": list(cal.table.shape),
        "bins_calibrated": cal.n_calibrated,
        "refine_iterations": cal.refine_iterations,
        "seconds": time.perf_counter() - start,
    }
    return cal, info


def _print_verdict(metrics: dict[str, Any]) -> None:
    for name in COMPARED_METHODS:
        if f"{name}_beats_baseline" in metrics:
            ratio = metrics["rms_ratio"][name]
            print(
                f"{name} beats baseline: {metrics[f'{name}_beats_baseline']}; "
                f"response RMS {ratio:.2f}x below the baseline's"
            )


def evaluate_run(
    run_or_checkpoint: str | Path,
    files: list[str] | None = None,
    out: str | Path | None = None,
    plots: bool = True,
    calibrate: bool = True,
    schema: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a run folder or checkpoint against the baseline and write metrics and plots.

    Without ``files`` the run's own validation events are used (same data configuration and
    split); with ``files`` all their events, normalised with the checkpoint's normalisation.
    ``out`` defaults to ``<run>/evaluation``. With ``calibrate`` and a
    ``share_calibration.json`` in the run folder, the refined and the calibrated model are
    evaluated too. The read summary is printed and written as ``out/read_summary.json``.

    The branch schema (:func:`evaluation_schema`): ``schema`` (a YAML file, only with
    ``files``), else the run folder's ``schema.yaml``, else the checkpoint's ``data.schema``.

    Examples
    --------
    >>> metrics = evaluate_run("runs/quick", files=["other.root"])  # doctest: +SKIP
    >>> sorted(metrics["methods"])  # doctest: +SKIP
    ['baseline', 'model']
    """
    from calo.io import HitDataset

    ckpt = resolve_checkpoint(run_or_checkpoint)
    model, cfg, normalization, history = load_model(ckpt)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    _check_run_config(run_dir / "config.yaml", cfg)
    out = Path(out) if out is not None else run_dir / "evaluation"
    used, schema_source = evaluation_schema(run_dir, cfg, files, schema)
    if cfg.task == "e_pi":
        return _evaluate_e_pi_run(model, cfg, ckpt, history, files, out, plots, used,
                                  schema_source)  # fmt: skip
    if cfg.task == "condensation":
        return _evaluate_condensation_run(model, cfg, ckpt, history, files, out, plots, used,
                                          schema_source, normalization)  # fmt: skip
    if files:
        dm = CaloDataModule(DataConfig(files=list(files)), normalization, schema=used)
        ds = HitDataset(dm.files(), schema=used, normalization=normalization)
        summary = ds.summary
        from calo.train.data import check_truth

        check_truth(ds.data, ", ".join(files))
        events = ds.data
        if ds.n_particles != cfg.model.n_showers:
            raise DataError(
                f"the files have {ds.n_particles} truth showers per event, the model predicts "
                f"{cfg.model.n_showers}"
            )
    else:
        dm = CaloDataModule(cfg.data, normalization, schema=used)
        dm.setup()
        events = dm.val_set.data
        summary = dm.read_summary
    read_counts = report_read(out, summary, "calo-evaluate")
    cal_file = run_dir / CALIBRATION_FILE
    calibration = ShareCalibration.load(cal_file) if calibrate and cal_file.is_file() else None
    result = evaluate(
        model,
        events,
        cfg.baseline,
        cfg.data.batch_size,
        cfg.shared_threshold,
        keep_events=4,
        calibration=calibration,
    )
    metrics = write_results(
        out,
        result,
        history,
        {
            "model": cfg.model.name,
            "task": cfg.task,
            "checkpoint": str(ckpt),
            "calibration": str(cal_file) if calibration is not None else None,
            "data": {"files": files or dm.files(), "schema": schema_source, **read_counts},
        },
        plots=plots,
    )
    print(format_comparison(result["methods"]))
    _print_verdict(metrics)
    print(f"written to {out}")
    return metrics


def evaluation_schema(
    run_dir: Path, cfg: TrainConfig, files: list[str] | None, schema: str | Path | None = None
) -> tuple[Schema, str]:
    """The branch schema calo-evaluate reads with, and where it comes from.

    ``schema`` (``--schema``) applies to other ``files`` only: the run's validation events are
    always read as the run read them. Otherwise the run folder's ``schema.yaml`` (the schema
    the run was trained with), else the checkpoint's ``data.schema`` (a run written before
    ``schema.yaml`` existed), else calo's own layout.

    Examples
    --------
    >>> import tempfile
    >>> evaluation_schema(Path(tempfile.mkdtemp()), TrainConfig(), None)[1]
    "calo's own layout"
    >>> evaluation_schema(Path("."), TrainConfig(), None, "s.yaml")
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: --schema applies to --data files; without --data the run's validation events are read with the run's own schema (RUN/schema.yaml)
    """
    if schema is not None and str(schema):
        if not files:
            raise ConfigError(
                "--schema applies to --data files; without --data the run's validation events "
                "are read with the run's own schema (RUN/schema.yaml)"
            )
        return load_schema(schema), str(schema)
    saved = Path(run_dir) / SCHEMA_FILE
    if saved.is_file():
        return load_schema(saved), str(saved)
    if cfg.data.schema:
        return load_schema(cfg.data.schema), cfg.data.schema
    return load_schema(""), "calo's own layout"


def _check_run_config(path: Path, cfg: TrainConfig) -> None:
    """Check the run folder's ``config.yaml`` as ``--resume`` does (errors name the file) and
    say where it differs from the checkpoint's configuration, which is the one evaluated."""
    if not path.is_file():
        return
    differ = _differences(to_dict(read_run_config(path)), to_dict(cfg))
    if differ:
        more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
        print(
            f"calo-evaluate: {path} differs from the checkpoint's configuration in "
            f"{', '.join(differ[:5])}{more}; the checkpoint's is used"
        )


def _differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts.

    Examples
    --------
    >>> _differences({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 5}, "d": 3})
    ['a.c']
    """
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def _evaluate_e_pi_run(
    model: torch.nn.Module,
    cfg: TrainConfig,
    ckpt: Path,
    history: dict[str, Any],
    files: list[str] | None,
    out: Path,
    plots: bool,
    schema: Schema,
    schema_source: str,
) -> dict[str, Any]:
    """calo-evaluate of an e/pi run: its validation events, or all events of ``files``."""
    from calo.train.e_pi import EPiDataModule, read_e_pi

    if files:
        sample = read_e_pi(list(files), cfg.e_pi, schema)
        summary = sample.read_summary
        data: dict[str, Any] = {"files": list(files), "n_events": len(sample)}
    else:
        dm = EPiDataModule(cfg.data, cfg.e_pi, schema=schema)
        dm.setup()
        sample = dm.val_sample
        summary = dm.read_summary
        data = {"files": dm.files(), "n_val": len(sample)}
    data["schema"] = schema_source
    data.update(report_read(out, summary, "calo-evaluate"))
    data["truncation"] = str(sample.truncation)
    extra = {"model": cfg.model_name, "task": cfg.task, "checkpoint": str(ckpt), "data": data}
    return _finish_e_pi(model, sample, cfg, out, history, extra, plots)
