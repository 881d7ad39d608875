"""``calo-simulate``: simulate events of the toy calorimeter into a ROOT file.

Usage::

    calo-simulate --out FILE.root --events N [--seed S] [--config cfg.yaml]
                  [--chunk-size C] [--no-progress] [key=value ...]

Overrides use the :class:`calo.sim.SimConfig` field names, e.g. ``gun.n_particles=1
gun.pdg=[11,211] background.mean_hits=20``. The resolved configuration is written next to
the output as ``FILE.yaml``.

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
from calo.sim.config import SimConfig
from calo.sim.writer import write_root

__all__ = ["main"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="calo-simulate",
        description="Simulate toy-calorimeter events (overlapping showers) into a ROOT TTree 'events'.",
        epilog=fields_epilog(SimConfig(), "SimConfig"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output ROOT file (.root)")
    p.add_argument("--events", type=int, required=True, help="number of events")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--config", default=None, help="YAML file with SimConfig fields")
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
    s = write_root(
        args.out,
        cfg,
        n_events=args.events,
        seed=args.seed,
        chunk_size=args.chunk_size,
        progress=not args.no_progress,
    )
    print(
        f"wrote {s['events']} events to {s['path']}: {s['hits']} hits "
        f"({s['hits'] / s['events']:.1f}/event, {s['noise_hits']} noise-only), "
        f"{s['seconds']:.2f} s, {s['events_per_second']:.0f} events/s; config {s['config_path']}"
    )
    return 0
