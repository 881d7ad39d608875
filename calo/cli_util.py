"""Helpers shared by calo's command-line tools: error handling and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from calo.errors import CaloError


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
