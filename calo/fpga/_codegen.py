"""Writing and compiling the generated numba kernels of :mod:`calo.fpga.reference`.

:class:`Expr` turns the rules of :mod:`calo.fpga.fixed` (:func:`~calo.fpga.fixed.round_shift`,
:func:`~calo.fpga.fixed.handle_overflow`), written with Python's operators, into kernel source:
applied to an :class:`Expr` instead of a number, a rule returns the text of its arithmetic.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np

__all__ = ["Expr", "compile_kernel"]


class Expr:
    """Source text of an integer expression in a generated kernel.

    Python's integer operators on an ``Expr`` (``+ - * >> << & |`` and comparisons) return the
    ``Expr`` of the operation, so a rule written for numbers writes itself into a kernel.
    ``ity`` (e.g. ``"np.int32"``) wraps every arithmetic result, which keeps a kernel in 32 bits.

    Examples
    --------
    >>> from calo.fpga.fixed import ROUNDING_MODES, round_shift
    >>> round_shift(Expr("v"), 3, ROUNDING_MODES["RND"]).text
    '((v + 4) >> 3)'
    >>> round_shift(Expr("v", "np.int32"), 3, ROUNDING_MODES["RND_CONV"]).text
    'np.int32(np.int32(v + np.int32(np.int32(np.int32(v >> 3) & 1) + 3)) >> 3)'
    """

    def __init__(self, text: str, ity: str = "") -> None:
        self.text = text
        self.ity = ity

    @staticmethod
    def _operand(o: Expr | int) -> str:
        if isinstance(o, Expr):
            return o.text
        return f"({int(o)})" if o < 0 else str(int(o))

    def _arith(self, op: str, other: Expr | int, reverse: bool = False) -> Expr:
        a, b = self.text, self._operand(other)
        if reverse:
            a, b = b, a
        text = f"{a} {op} {b}"
        return Expr(f"{self.ity}({text})" if self.ity else f"({text})", self.ity)

    def _cmp(self, op: str, other: Expr | int) -> Expr:
        return Expr(f"({self.text} {op} {self._operand(other)})", self.ity)

    def __add__(self, o: Expr | int) -> Expr:
        return self._arith("+", o)

    def __radd__(self, o: int) -> Expr:
        return self._arith("+", o, True)

    def __sub__(self, o: Expr | int) -> Expr:
        return self._arith("-", o)

    def __rsub__(self, o: int) -> Expr:
        return self._arith("-", o, True)

    def __mul__(self, o: Expr | int) -> Expr:
        return self._arith("*", o)

    def __rmul__(self, o: int) -> Expr:
        return self._arith("*", o, True)

    def __rshift__(self, o: int) -> Expr:
        return self if o == 0 else self._arith(">>", o)

    def __lshift__(self, o: int) -> Expr:
        return self if o == 0 else self._arith("<<", o)

    def __and__(self, o: Expr | int) -> Expr:
        return self._arith("&", o)

    def __rand__(self, o: int) -> Expr:
        return self._arith("&", o, True)

    def __or__(self, o: Expr | int) -> Expr:
        return self._arith("|", o)

    def __lt__(self, o: Expr | int) -> Expr:  # type: ignore[override]
        return self._cmp("<", o)

    def __gt__(self, o: Expr | int) -> Expr:  # type: ignore[override]
        return self._cmp(">", o)

    def __le__(self, o: Expr | int) -> Expr:  # type: ignore[override]
        return self._cmp("<=", o)

    def __ge__(self, o: Expr | int) -> Expr:  # type: ignore[override]
        return self._cmp(">=", o)

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


_KERNELS: dict[str, numba.core.registry.CPUDispatcher] = {}


def compile_kernel(source: str, name: str = "kernel") -> numba.core.registry.CPUDispatcher:
    """Compile the function ``name`` of generated ``source`` with numba (cached per source)."""
    key = hashlib.sha1(source.encode()).hexdigest()
    if key not in _KERNELS:
        ns: dict[str, object] = {"np": np}
        exec(compile(source, f"<calo.fpga {name} {key[:8]}>", "exec"), ns)
        # serial code: no parallel=True, so one call runs on one core whatever numba's
        # thread count is
        _KERNELS[key] = numba.njit(cache=False, boundscheck=False)(ns[name])
    return _KERNELS[key]
