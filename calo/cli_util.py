"""Helpers shared by calo's command-line tools: argument parsing, error handling, exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from calo.errors import CaloError, ConfigError

__all__ = ["ArgumentParser", "run_cli"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse for calo's tools: a bad command line raises :class:`~calo.errors.ConfigError`
    (one line, through :func:`run_cli`) instead of printing the usage and exiting, and
    :meth:`parse` takes options anywhere among the positional ``key=value`` overrides.

    Examples
    --------
    >>> p = ArgumentParser(prog="demo")
    >>> _ = p.add_argument("--fast", action="store_true")
    >>> _ = p.add_argument("overrides", nargs="*")
    >>> args = p.parse(["a=1", "--fast", "b=2"])
    >>> args.fast, args.overrides
    (True, ['a=1', 'b=2'])
    >>> p.parse(["--slow"])
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: demo: unrecognized arguments: --slow
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        """Raise :class:`~calo.errors.ConfigError` with argparse's message."""
        raise ConfigError(f"{self.prog}: {message}")

    def parse(self, argv: list[str] | None = None) -> argparse.Namespace:
        """Parse ``argv`` (default ``sys.argv[1:]``) with options and positionals intermixed
        (:meth:`argparse.ArgumentParser.parse_intermixed_args`)."""
        return self.parse_intermixed_args(argv)


def run_cli(func: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a command's main so a :class:`CaloError` prints one line and exits with code 2.

    The message goes to stderr as ``error: <message>``; a KeyboardInterrupt returns 130 and
    a ``None`` return becomes 0.

    Examples
    --------
    >>> import contextlib, sys
    >>> from calo.errors import ConfigError
    >>> @run_cli
    ... def demo(argv):
    ...     if argv:
    ...         raise ConfigError(f"unknown option {argv[0]}")
    >>> demo([])
    0
    >>> with contextlib.redirect_stderr(sys.stdout):
    ...     demo(["--fast"])
    error: unknown option --fast
    2
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            rc = func(*args, **kwargs)
        except CaloError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return int(rc or 0)

    return wrapper
