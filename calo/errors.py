"""Exceptions of the calo package.

Every error raised on bad input is a :class:`CaloError`, so a command-line tool can print
the message without a traceback and exit non-zero, and a notebook user can catch them all.

Examples
--------
>>> from calo.errors import DataError
>>> try:
...     raise DataError("branch missing", file="a.root", branch="hit_x")
... except DataError as err:
...     print(err)
branch missing [file a.root, branch hit_x]
"""

from __future__ import annotations


class CaloError(Exception):
    """Base class of every error calo raises on bad input or configuration.

    Parameters
    ----------
    message:
        What was wrong and what to do about it.
    **where:
        Where it happened (for example ``file=``, ``tree=``, ``branch=``, ``entry=``); the
        non-empty ones are appended to the message and kept as attribute ``where``.
    """

    def __init__(self, message: str, **where: object) -> None:
        self.where = {k: v for k, v in where.items() if v is not None}
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        if not self.where:
            return self.message
        loc = ", ".join(f"{k} {v}" for k, v in self.where.items())
        return f"{self.message} [{loc}]"


class DataError(CaloError):
    """A data file, tree, branch or event is missing, malformed or not usable."""


class ConfigError(CaloError):
    """A configuration has an unknown key or an invalid value."""


class CheckpointError(CaloError):
    """A checkpoint is missing, malformed, or not written by calo."""


class FixedPointError(CaloError):
    """A fixed-point type or value is invalid (for example an unsupported width)."""
