"""``calo-simulate``: simulate events of the toy calorimeter into ROOT files.

Usage::

    calo-simulate --out FILE.root --events N [--seed S] [--config cfg.yaml]
                  [--format ttree|rntuple] [--files M] [--workers W | --scheduler ADDR]
                  [--chunk-size C] [--no-progress] [key=value ...]

Overrides use the :class:`calo.sim.SimConfig` field names, e.g. ``gun.n_particles=1
gun.pdg=[11,211] background.mean_hits=20``. The resolved configuration is written next to
the output as ``FILE.yaml``.

``--format rntuple`` writes an RNTuple instead of a TTree (same column names). ``--files M``
splits the sample into ``FILE_000.root`` ... (consecutive events, one task per file);
``--workers W`` runs the tasks on a local Dask cluster of W processes, ``--scheduler ADDR`` on
an existing one (:mod:`calo.parallel`). Event j depends only on (configuration, seed, j), so
the files hold the same events however they were split and wherever they were written.

Examples
--------
>>> import tempfile, os
>>> out = os.path.join(tempfile.mkdtemp(), "s.root")
>>> main(["--out", out, "--events", "4", "--no-progress"])  # doctest: +ELLIPSIS
wrote 4 events ...
0
"""

from __future__ import annotations

import argparse

from calo.cli_util import ArgumentParser, run_cli
from calo.config import apply_overrides, fields_epilog, load_yaml
from calo.parallel import dask_client
from calo.sim.config import SimConfig
from calo.sim.writer import FORMATS, write_sample

__all__ = ["main"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="calo-simulate",
        description="Simulate toy-calorimeter events (overlapping showers) into a ROOT TTree (or "
        "RNTuple) 'events', in one file or split into several, serially or on Dask.",
        epilog=fields_epilog(SimConfig(), "SimConfig"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output ROOT file (.root)")
    p.add_argument("--events", type=int, required=True, help="number of events")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--config", default=None, help="YAML file with SimConfig fields")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="ttree",
        help="ttree (default) or rntuple: ROOT's RNTuple, same column names",
    )
    p.add_argument(
        "--files",
        type=int,
        default=1,
        metavar="M",
        help="split the events into M files OUT_000.root ... (consecutive events; default 1: "
        "OUT itself)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="W",
        help="write the files on a local Dask cluster of W processes (pip install 'calo[dask]')",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="write the files on the Dask cluster at ADDR (tcp://host:8786); the workers "
        "must see OUT's folder",
    )
    p.add_argument("--chunk-size", type=int, default=1000, help="events per written chunk")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. gun.n_particles=1")
    return p


@run_cli
def main(argv: list[str] | None = None) -> int:
    """Run ``calo-simulate``; returns the exit code (2 on a calo error).

    Examples
    --------
    >>> main(["--out", "x.txt", "--events", "1"])
    2
    """
    args = _parser().parse(argv)
    if args.config:
        cfg = load_yaml(SimConfig, args.config, args.overrides)
    else:
        cfg = apply_overrides(SimConfig(), args.overrides)
    if args.workers is not None and args.files < args.workers:
        print(
            f"calo-simulate: --workers {args.workers} with --files {args.files}: one task per "
            f"file, so at most {args.files} worker(s) busy; give --files {args.workers} or more "
            "to use them all"
        )
    with dask_client(args.workers, args.scheduler) as client:
        s = write_sample(
            args.out,
            cfg,
            n_events=args.events,
            seed=args.seed,
            n_files=args.files,
            chunk_size=args.chunk_size,
            format=args.format,
            client=client,
            progress=not args.no_progress,
        )
    where = (
        s["paths"][0] if len(s["paths"]) == 1 else f"{len(s['paths'])} files {s['paths'][0]} ..."
    )
    print(
        f"wrote {s['events']} events ({s['format']}) to {where}: {s['hits']} hits "
        f"({s['hits'] / s['events']:.1f}/event, {s['noise_hits']} noise-only), "
        f"{s['seconds']:.2f} s, {s['events_per_second']:.0f} events/s; config {s['config_path']}"
    )
    return 0
