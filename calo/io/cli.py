"""``calo-inspect``: what a ROOT file holds, and a starting schema to read it with calo.

Usage::

    calo-inspect FILE [--tree NAME] [--write-schema OUT.yaml] [--entries N]

Lists the file's TTrees and RNTuples with their entry counts, then every branch of one of
them (``--tree``; default ``events`` or the largest) with its type (per-event scalar,
per-hit jagged, per-particle jagged; dtype), the median of its first entries and the schema
role guessed from its name. ``--write-schema`` writes that guess as a commented YAML file to
check and edit, then pass to the other commands with ``--schema OUT.yaml``; calo-inspect
tries it on the first events and says whether it reads them.

Examples
--------
>>> import tempfile, os
>>> import contextlib, sys
>>> with contextlib.redirect_stderr(sys.stdout):
...     main(["missing.root"])
error: file does not exist; check the path [file missing.root]
2
"""

from __future__ import annotations

import argparse

from calo.cli_util import ArgumentParser, run_cli
from calo.errors import CaloError
from calo.io.inspect import N_SAMPLE, inspect_file, write_schema

__all__ = ["main"]


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="calo-inspect",
        description=(
            "List the TTrees/RNTuples of a ROOT file and the branches of one, with their types "
            "and guessed calo roles; optionally write a starting schema YAML for --schema."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="ROOT file")
    p.add_argument(
        "--tree", default=None, help="TTree or RNTuple name (default: events or the largest)"
    )
    p.add_argument(
        "--write-schema", default=None, metavar="OUT.yaml", help="write a starting schema YAML"
    )
    p.add_argument(
        "--entries",
        type=int,
        default=N_SAMPLE,
        help=f"entries read to group branches and show medians (default {N_SAMPLE})",
    )
    return p


@run_cli
def main(argv: list[str] | None = None) -> int:
    """Run ``calo-inspect``; returns the exit code (2 on a calo error).

    Examples
    --------
    >>> main(["--entries", "3"])
    2
    """
    args = _parser().parse(argv)
    ins = inspect_file(args.file, args.tree, n_sample=max(0, args.entries))
    print(ins.report())
    if args.write_schema:
        out = write_schema(ins, args.write_schema)
        print(
            f"\nwrote a starting schema to {out}: check every line (units!), then use --schema {out}"
        )
        from calo.io.reader import read_data
        from calo.io.schema import Schema

        try:
            data, summary = read_data(
                args.file, Schema.from_yaml(out), max_events=5, require_truth=False
            )
        except CaloError as err:
            print(f"note: as written, the schema does not read the file yet: {err}")
        else:
            k = data[0].y.shape[1] if data else 0
            print(f"tried it: {summary.events_kept} of the first events read ({k} truth columns)")
    return 0
