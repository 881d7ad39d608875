"""``python -m calo``: list calo's command-line tools, or run one (``python -m calo train ...``)."""

from __future__ import annotations

import importlib
import sys

from calo import __version__

COMMANDS: dict[str, tuple[str, str, str]] = {
    "inspect": ("calo.io.cli", "main", "list a ROOT file's trees and branches, write a schema"),
    "simulate": ("calo.sim.cli", "main", "simulate overlapping showers into a ROOT file"),
    "train": ("calo.train.cli", "train_main", "train GravNet, GarNet or EdgeConv"),
    "evaluate": ("calo.train.cli", "evaluate_main", "evaluate a run or checkpoint, write plots"),
    "predict": ("calo.predict.cli", "main", "apply a run to ROOT files (a friend tree)"),
    "export": ("calo.fpga.cli", "export_main", "export a calo-train run for hls4ml"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``python -m calo COMMAND [ARGS]`` to ``calo-COMMAND``; print help otherwise.

    Returns the exit code: the command's, 0 for the help and the version, 2 for an unknown
    command (with a message on stderr).

    Examples
    --------
    >>> main(["--help"])  # doctest: +ELLIPSIS
    calo ...: calorimeter clustering with GravNet and GarNet
    ...
      export     export a calo-train run for hls4ml
    <BLANKLINE>
    'python -m calo COMMAND --help' lists every option of a command.
    0
    >>> import contextlib, sys
    >>> with contextlib.redirect_stderr(sys.stdout):
    ...     main(["nope"])
    error: unknown command 'nope'; choose one of ['inspect', 'simulate', 'train', 'evaluate',
    'predict', 'export']
    2
    >>> with contextlib.redirect_stderr(sys.stdout):  # runs calo-export
    ...     main(["export", "missing.ckpt", "--out", "x"])
    error: checkpoint or run folder does not exist [file missing.ckpt]
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"calo {__version__}: calorimeter clustering with GravNet and GarNet\n")
        print("usage: python -m calo COMMAND [ARGS]   (or calo-COMMAND [ARGS])\n")
        print("commands:")
        for name, (_, _, text) in COMMANDS.items():
            print(f"  {name:<10} {text}")
        print("\n'python -m calo COMMAND --help' lists every option of a command.")
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    if argv[0] not in COMMANDS:
        print(
            f"error: unknown command {argv[0]!r}; choose one of {list(COMMANDS)}", file=sys.stderr
        )
        return 2
    module, func, _ = COMMANDS[argv[0]]
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
