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

    Examples
    --------
    >>> err = CaloError("bad value", file="a.yaml", entry=None)
    >>> str(err), err.message, err.where
    ('bad value [file a.yaml]', 'bad value', {'file': 'a.yaml'})
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
    """A data file, tree, branch or event is missing, malformed or not usable.

    Examples
    --------
    >>> from calo.io import read_data
    >>> try:
    ...     read_data("missing.root")
    ... except CaloError as err:
    ...     print(type(err).__name__, err)
    DataError file does not exist; check the path [file missing.root]
    """


class ConfigError(CaloError):
    """A configuration has an unknown key or an invalid value.

    Examples
    --------
    >>> from calo.config import apply_overrides
    >>> from calo.sim import SimConfig
    >>> apply_overrides(SimConfig(), ["seed"])
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: override 'seed' must look like key=value (for example model.k=16)
    """


class CheckpointError(CaloError):
    """A checkpoint is missing, malformed, or not written by calo.

    Examples
    --------
    >>> from calo.train.checkpoint import read_checkpoint
    >>> read_checkpoint("missing.ckpt")
    Traceback (most recent call last):
    ...
    calo.errors.CheckpointError: checkpoint file does not exist [file missing.ckpt]
    """


class FixedPointError(CaloError):
    """A fixed-point type or value is invalid (for example an unsupported width).

    Examples
    --------
    >>> from calo.fpga.fixed import parse_type
    >>> parse_type("ap_fixed<40,3>")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    calo.errors.FixedPointError: width 40 is not supported: ... allows 1..32 bits
    """
