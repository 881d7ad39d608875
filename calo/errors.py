"""Exceptions of the calo package, and the rule for raising them.

The rule (also in CONTRIBUTING.md, section "Errors"): every exception calo raises because of
what its caller gave it is a :class:`CaloError`, so that a command-line tool prints the message
without a traceback and exits non-zero, and a notebook user catches them all with
``except CaloError``. Pick the class by what was wrong:

* :class:`ConfigError`: a setting, meaning how to compute: a configuration key or value, a
  constructor or keyword argument (a layer's ``k``, ``aggr``, a potential's name, a count that
  must be positive, an option string);
* :class:`DataError`: what is computed on: a file, tree, branch or event, or an array or tensor
  passed in (wrong shape or dtype, NaN, an unsorted event index, an inconsistent table);
* :class:`CheckpointError`: a checkpoint that is missing, unreadable or not calo's;
* :class:`FixedPointError`: a fixed-point type or value hls4ml's arithmetic cannot take.

The message says what was wrong, with the value received, and what to do; where it happened
goes in the keywords (``file=``, ``branch=``, ``entry=``). calo does not raise bare
``ValueError``, ``TypeError`` or ``RuntimeError``: a foreign exception met at a boundary
(``float("x")``, ``np.load``, ``json.loads``) is caught and re-raised as one of these classes
``from None``. A missing optional package is the exception: an ``ImportError`` naming the
package and the alternative, as Python code expects.

The classes deliberately do not also derive from ``ValueError``: calo catches ``ValueError``
at those boundaries to translate foreign errors, some of them around calls into calo's own
code (:func:`calo.config.from_dict` around a configuration dataclass, whose checks raise
:class:`ConfigError`; the QGarNet hyperparameter reader around the layer constructors). Were
calo's errors ValueErrors, such a handler would catch them and wrap them a second time, and
every new handler would have to remember to let them through. Code that caught ``ValueError``
from calo's layers catches :class:`CaloError` (or :class:`ConfigError` / :class:`DataError`).

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
    """A data file, tree, branch or event, or an array or tensor passed in, is missing,
    malformed or not usable (shape, dtype, non-finite values, unsorted event index).

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
    """A configuration or a setting has an unknown key or an invalid value (also a
    constructor or keyword argument that says how to compute, such as a layer's ``k``).

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
