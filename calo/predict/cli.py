"""Command-line tool ``calo-predict``: apply a trained fraction or condensation run to ROOT files.

``calo-predict RUN_OR_CHECKPOINT FILES... --out DIR [--schema S.yaml] [--device cpu|cuda|auto]
[--batch-size B] [--step-size S] [--postprocess none|refined|calibrated|all] [--clue]
[--workers N | --scheduler ADDR] [--split file|chunk] [--format ttree|rntuple]
[--tree NAME] [--threads N]`` writes
``DIR/<input stem>_pred.root`` for each input: one entry per input entry, in order, so the
output is a friend of the input tree (:mod:`calo.predict.output`), plus
``DIR/read_summary.json`` and ``DIR/predict.json``.

Errors print one line and exit with code 2.

Examples
--------
>>> main(["/nonexistent/run", "a.root", "--out", "x"])
2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calo.cli_util import ArgumentParser, run_cli
from calo.errors import ConfigError

__all__ = ["main"]


def _step_size(s: str) -> int | str:
    """``1000`` -> 1000 entries; ``"100 MB"`` stays a memory size."""
    s = s.strip()
    return int(s) if s.isdigit() else s


def _parser() -> ArgumentParser:
    from calo.predict.core import POSTPROCESS, STATUS_DOC

    codes = "\n".join(f"  {k}  {v}" for k, v in STATUS_DOC.items())
    p = ArgumentParser(
        prog="calo-predict",
        description="Apply a calo-train fraction run (GravNet, GarNet, EdgeConv) or condensation "
        "run to ROOT files: DIR/<stem>_pred.root holds, for every input entry in order, its "
        "status and, for a fraction run, the per-hit fractions frac_<method>_<k> and the "
        "per-shower energy and energy-weighted position shower_{energy,x,y,z}_<method> "
        "(method: model, refined, calibrated); for a condensation run, per hit its cluster "
        "(-1 noise) and beta, per cluster (n_clusters of them) its corrected energy "
        "cluster_energy and energy-weighted position cluster_{x,y,z} (and the learned "
        "cluster_{x,y}_learned of a model with the position payload).",
        epilog=f"status codes:\n{codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run folder or checkpoint written by calo-train")
    p.add_argument("files", nargs="+", help="input ROOT files or glob patterns")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--schema",
        type=Path,
        help="YAML schema of the inputs (default: the run's schema.yaml, else calo's layout)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    p.add_argument("--batch-size", type=int, default=32, help="events per forward pass (32)")
    p.add_argument(
        "--step-size",
        type=_step_size,
        default="100 MB",
        help="entries (an integer) or memory ('100 MB', the default) per chunk read",
    )
    p.add_argument(
        "--postprocess",
        choices=POSTPROCESS,
        default="all",
        help="the run's post-processing to write next to the network's fractions: all "
        "(default: every step its share_calibration.json has), refined, calibrated or none",
    )
    p.add_argument(
        "--clue",
        action="store_true",
        help="condensation runs: also write CLUE's cluster of every hit (clue_cluster) with "
        "the run's condensation.clue settings",
    )
    p.add_argument("--workers", type=int, help="one task per file on N local Dask workers")
    p.add_argument("--scheduler", help="one task per file on the Dask cluster at this address")
    p.add_argument(
        "--split",
        choices=("file", "chunk"),
        default="file",
        help="tasks for --workers/--scheduler: one per input file (default), or one per chunk "
        "of --step-size entries, joined in order (to spread one large file); the output is "
        "the same",
    )
    p.add_argument(
        "--format",
        choices=("ttree", "rntuple"),
        default="ttree",
        help="ttree (default, a friend of the input tree) or rntuple",
    )
    p.add_argument("--tree", help="name of the output tree (default: the input tree's)")
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads of a serial run (default: torch's, one per core); Dask workers "
        "use one each",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


@run_cli
def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calo-predict``; returns the exit code.

    Examples
    --------
    >>> main(["run", "a.root", "--out", "x", "--workers", "1", "--scheduler", "tcp://h:1"])
    2
    """
    args = _parser().parse(argv)
    if args.workers is not None and args.scheduler is not None:
        raise ConfigError("give either --workers (a local cluster) or --scheduler, not both")
    from calo.predict.core import predict_files

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    res = predict_files(
        args.run,
        args.files,
        args.out,
        schema=args.schema,
        device=args.device,
        batch_size=args.batch_size,
        step_size=args.step_size,
        postprocess=args.postprocess,
        clue=args.clue,
        fmt=args.format,
        tree=args.tree,
        workers=args.workers,
        scheduler=args.scheduler,
        split=args.split,
        progress=not args.no_progress,
    )
    print(res.summary)
    for out, n in zip(res.outputs, res.entries, strict=True):
        print(f"wrote {out} ({n} entries)")
    print(f"read summary: {Path(args.out) / 'read_summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
