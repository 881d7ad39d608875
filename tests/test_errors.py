"""Tests for calo.errors and the command-line error wrapper."""

from __future__ import annotations

from calo.cli_util import run_cli
from calo.errors import CaloError, DataError


def test_error_message_names_location():
    err = DataError("branch missing", file="a.root", branch="hit_x", entry=None)
    assert str(err) == "branch missing [file a.root, branch hit_x]"
    assert err.where == {"file": "a.root", "branch": "hit_x"}
    assert isinstance(err, CaloError)


def test_run_cli_prints_one_line_and_exits_2(capsys):
    @run_cli
    def main() -> int:
        raise DataError("no such file", file="x.root")

    assert main() == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: no such file [file x.root]"
    assert "Traceback" not in err


def test_run_cli_passes_return_code():
    assert run_cli(lambda: None)() == 0
    assert run_cli(lambda: 3)() == 3
