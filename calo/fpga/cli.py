"""Command-line tool ``calo-export``: a trained FPGA GarNet checkpoint to firmware inputs.

``calo-export CHECKPOINT --out DIR [--events N] [--data FILE.root] [--seed S] [--name NAME]``
reads a checkpoint of :func:`calo.fpga.train.save_checkpoint` and writes into ``DIR``
what :func:`calo.fpga.export.export_model` writes: the quantized model (``model.json``,
``model.npz``), the C++ header for hls4ml's ``nnet_garnet.h``, test vectors and the outputs the
firmware must give on them. The test events are toy events unless ``--data`` names calo-simulate
e/pi events. Errors print one line and exit with code 2.

Examples
--------
>>> export_main(["/nonexistent.ckpt", "--out", "x"])
2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calo.cli_util import run_cli
from calo.errors import ConfigError

__all__ = ["export_main"]


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of exiting, so run_cli prints one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="calo-export",
        description="Export a trained FPGA GarNet checkpoint: quantized weights (JSON, npz), "
        "the C++ header for hls4ml's nnet_garnet.h, and test vectors.",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint of calo.fpga.train.save_checkpoint")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--events", type=int, default=100, help="test-vector events (default 100)")
    p.add_argument("--data", type=Path, help="calo-simulate e/pi ROOT file for the test vectors")
    p.add_argument("--seed", type=int, default=0, help="seed of the toy test events")
    p.add_argument("--name", default="calo_garnet", help="C++ function and header name")
    return p


@run_cli
def export_main(argv: list[str] | None = None) -> int:
    """Entry point of ``calo-export``; returns the exit code.

    Examples
    --------
    >>> export_main(["model.ckpt"])  # --out is required
    2
    """
    from calo.fpga.export import export_model

    args = _parser().parse_args(argv)
    res = export_model(args.checkpoint, args.out, args.events, args.data, args.seed, args.name)
    over = res["overflows"]
    print(
        f"wrote {', '.join(res['files'])} to {res['out']} ({res['events']} test events; "
        + (f"overflows on them: {over})" if over else "no overflow on them)")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(export_main())
