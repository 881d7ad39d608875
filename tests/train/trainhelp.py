"""Helpers shared by the training tests: a tiny GravNet and the one-line-error check."""

from __future__ import annotations

import pytest

#: overrides of a GravNet small enough to train in seconds
TINY_GRAVNET = [
    "model.gravnet.n_blocks=1",
    "model.gravnet.dense=[16]",
    "model.gravnet.k=8",
    "model.gravnet.out_channels=16",
    "model.gravnet.head=16",
]


def one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *words: str) -> str:
    """Assert exit code 2 and one ``error:`` line on stderr holding ``words``; return it."""
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err
