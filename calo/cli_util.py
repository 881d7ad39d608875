"""Helpers shared by calo's command-line tools: error handling and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from calo.errors import CaloError


def run_cli(func: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a command's main so a :class:`CaloError` prints one line and exits with code 2."""

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
