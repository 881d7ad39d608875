"""Fixed-point types with the semantics of Xilinx ``ap_fixed<W, I, Q, O>`` / ``ap_ufixed``.

A value of type ``ap_fixed<W, I>`` is stored as a W-bit two's-complement integer ``raw``
(unsigned for ``ap_ufixed``) and means ``raw * 2**-(W - I)``; ``F = W - I`` is the number of
fractional bits (it may be negative or larger than W). Assigning a value of another type (or a
double) first **quantizes** to the target's LSB with the rounding mode ``Q``, then handles
**overflow** with mode ``O``:

========== =========================================================================
rounding   meaning (for the bits dropped below the target LSB)
========== =========================================================================
TRN        floor, towards -inf (the default)
TRN_ZERO   towards zero
RND        to nearest, ties towards +inf
RND_ZERO   to nearest, ties towards zero
RND_MIN_INF to nearest, ties towards -inf
RND_INF    to nearest, ties away from zero
RND_CONV   to nearest, ties to even
========== =========================================================================

========== =========================================================================
overflow   meaning (value outside [min, max] after rounding)
========== =========================================================================
WRAP       keep the low W bits (modulo 2**W, the default)
SAT        clip to [min, max]
SAT_ZERO   set to zero
SAT_SYM    clip to [-max, max] for signed types (min is never produced)
========== =========================================================================

Products and sums are exact at full precision, as in C++ (``a * b`` has ``W1 + W2`` bits and
``I1 + I2`` integer bits); only the assignment to a typed variable rounds and overflows.
Everything here works on int64 raw integers, so widths are limited to 32 bits (products of two
such values then fit in int64).

Examples
--------
>>> t = FixedType.parse("ap_fixed<8,3,AP_RND,AP_SAT>")
>>> raw = t.quantize([1.03, -5.0, 100.0])
>>> raw.tolist(), t.to_float(raw).tolist()
([33, -128, 127], [1.03125, -4.0, 3.96875])
>>> str(t)
'ap_fixed<8,3,AP_RND,AP_SAT>'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba.extending import register_jitable
from numpy.typing import ArrayLike, NDArray

from calo.errors import FixedPointError

__all__ = [
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "FixedType",
    "cast",
    "cast_raw",
    "fixed_add",
    "fixed_mul",
    "handle_overflow",
    "parse_type",
    "quantize",
    "quantize_scaled",
    "raw_range",
    "round_shift",
    "sticky_scaled",
    "to_float",
]

#: Rounding (quantization) modes and their integer codes used by the numba kernels.
ROUNDING_MODES: dict[str, int] = {
    "TRN": 0,
    "TRN_ZERO": 1,
    "RND": 2,
    "RND_ZERO": 3,
    "RND_MIN_INF": 4,
    "RND_INF": 5,
    "RND_CONV": 6,
}
#: Overflow (saturation) modes and their integer codes used by the numba kernels.
OVERFLOW_MODES: dict[str, int] = {"WRAP": 0, "SAT": 1, "SAT_ZERO": 2, "SAT_SYM": 3}

MAX_WIDTH = 32

_Q_TRN, _Q_TRN_ZERO, _Q_RND, _Q_RND_ZERO, _Q_RND_MIN_INF, _Q_RND_INF, _Q_RND_CONV = range(7)
_O_WRAP, _O_SAT, _O_SAT_ZERO, _O_SAT_SYM = range(4)

_TYPE_RE = re.compile(
    r"^\s*(?:ap_)?(?P<kind>fixed|ufixed|int|uint)\s*<\s*(?P<args>[^<>]*)>\s*$", re.IGNORECASE
)


def _norm_mode(mode: str, table: dict[str, int], what: str) -> str:
    m = str(mode).strip().upper()
    if m.startswith("AP_"):
        m = m[3:]
    if m not in table:
        if m == "WRAP_SM":
            raise FixedPointError(
                "overflow mode AP_WRAP_SM (sign-magnitude wrap) is not supported; "
                "use WRAP, SAT, SAT_ZERO or SAT_SYM"
            )
        raise FixedPointError(f"unknown {what} mode {mode!r}; choose one of {sorted(table)}")
    return m


@dataclass(frozen=True)
class FixedType:
    """An ``ap_fixed<width, integer, rounding, overflow>`` (or ``ap_ufixed``) type.

    Parameters
    ----------
    width:
        Total number of bits W (1..32).
    integer:
        Number of integer bits I, sign bit included for signed types; may be negative or
        larger than ``width``. ``F = width - integer`` fractional bits.
    signed:
        ``True`` for ap_fixed (two's complement), ``False`` for ap_ufixed.
    rounding:
        One of :data:`ROUNDING_MODES` (an ``AP_`` prefix is accepted).
    overflow:
        One of :data:`OVERFLOW_MODES` (an ``AP_`` prefix is accepted).

    Examples
    --------
    >>> t = FixedType(10, 0, signed=False)
    >>> t.frac, t.max_value
    (10, 0.9990234375)
    >>> FixedType.parse("ap_uint<10>") == FixedType(10, 10, signed=False)
    True
    """

    width: int
    integer: int
    signed: bool = True
    rounding: str = "TRN"
    overflow: str = "WRAP"

    def __post_init__(self) -> None:
        if isinstance(self.width, bool) or not isinstance(self.width, int | np.integer):
            raise FixedPointError(f"width must be an integer, got {self.width!r}")
        if not 1 <= int(self.width) <= MAX_WIDTH:
            raise FixedPointError(
                f"width {self.width} is not supported: calo's fixed-point arithmetic works on "
                f"int64 raw values and allows 1..{MAX_WIDTH} bits"
            )
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "integer", int(self.integer))
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "rounding", _norm_mode(self.rounding, ROUNDING_MODES, "rounding"))
        object.__setattr__(self, "overflow", _norm_mode(self.overflow, OVERFLOW_MODES, "overflow"))

    # ------------------------------------------------------------------ properties
    @property
    def frac(self) -> int:
        """Number of fractional bits ``F = width - integer``."""
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        """Value of one raw unit, ``2**-F``."""
        return math.ldexp(1.0, -self.frac)

    @property
    def min_raw(self) -> int:
        """Smallest raw integer (``-2**(W-1)`` signed, 0 unsigned)."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_raw(self) -> int:
        """Largest raw integer (``2**(W-1) - 1`` signed, ``2**W - 1`` unsigned)."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min_value(self) -> float:
        """Smallest representable value."""
        return math.ldexp(float(self.min_raw), -self.frac)

    @property
    def max_value(self) -> float:
        """Largest representable value."""
        return math.ldexp(float(self.max_raw), -self.frac)

    @property
    def range_raw(self) -> tuple[int, int]:
        """Raw ``(lo, hi)`` an assignment leaves untouched (``lo = -max`` for SAT_SYM)."""
        return raw_range(self.width, self.signed, OVERFLOW_MODES[self.overflow])

    @property
    def code(self) -> tuple[int, int, int, int, int]:
        """``(width, frac, signed, rounding code, overflow code)`` for the numba kernels."""
        return (
            self.width,
            self.frac,
            int(self.signed),
            ROUNDING_MODES[self.rounding],
            OVERFLOW_MODES[self.overflow],
        )

    # ------------------------------------------------------------------ conversions
    def quantize(self, x: ArrayLike, return_overflow: bool = False) -> Any:
        """Raw integers of ``x`` (floats) assigned to this type; see :func:`quantize`."""
        return quantize(x, self, return_overflow=return_overflow)

    def to_float(self, raw: ArrayLike) -> NDArray[np.float64]:
        """Float values of raw integers of this type; see :func:`to_float`."""
        return to_float(raw, self)

    def cast(self, raw: ArrayLike, src: FixedType, return_overflow: bool = False) -> Any:
        """Assign raw values of type ``src`` to this type; see :func:`cast`."""
        return cast(raw, src, self, return_overflow=return_overflow)

    def replace(self, **kw: Any) -> FixedType:
        """Copy with some fields changed, e.g. ``t.replace(overflow="SAT")``."""
        d = {
            "width": self.width,
            "integer": self.integer,
            "signed": self.signed,
            "rounding": self.rounding,
            "overflow": self.overflow,
        }
        d.update(kw)
        return FixedType(**d)

    # ------------------------------------------------------------------ strings
    @classmethod
    def parse(cls, text: str) -> FixedType:
        """Parse an hls4ml / Vivado type string; see :func:`parse_type`."""
        return parse_type(text)

    def __str__(self) -> str:
        if self.integer == self.width and self.rounding == "TRN" and self.overflow == "WRAP":
            return f"ap_{'' if self.signed else 'u'}int<{self.width}>"
        base = f"ap_{'' if self.signed else 'u'}fixed<{self.width},{self.integer}"
        if self.rounding == "TRN" and self.overflow == "WRAP":
            return base + ">"
        return base + f",AP_{self.rounding},AP_{self.overflow}>"

    def cpp(self) -> str:
        """The C++ spelling (same as ``str``)."""
        return str(self)


def parse_type(text: str) -> FixedType:
    """Parse ``"ap_fixed<16,6,AP_RND,AP_SAT>"``, ``"ap_ufixed<10,0>"``, ``"ap_int<8>"``, ...

    Also accepts hls4ml's short forms ``fixed<16,6>``, ``ufixed<..>``, ``int<..>``, ``uint<..>``.

    Examples
    --------
    >>> parse_type("ap_ufixed<15,5>")
    FixedType(width=15, integer=5, signed=False, rounding='TRN', overflow='WRAP')
    >>> parse_type("ap_fixed<12,4,AP_TRN,AP_SAT>").overflow
    'SAT'
    """
    if isinstance(text, FixedType):
        return text
    m = _TYPE_RE.match(str(text))
    if m is None:
        raise FixedPointError(
            f"cannot parse fixed-point type {text!r}; expected e.g. 'ap_fixed<16,6,AP_RND,AP_SAT>'"
        )
    kind = m.group("kind").lower()
    args = [a.strip() for a in m.group("args").split(",") if a.strip()]
    try:
        width = int(args[0])
    except (IndexError, ValueError):
        raise FixedPointError(f"fixed-point type {text!r} has no valid width") from None
    signed = kind in ("fixed", "int")
    if kind in ("int", "uint"):
        if len(args) != 1:
            raise FixedPointError(f"integer type {text!r} takes exactly one parameter")
        return FixedType(width, width, signed)
    if len(args) < 2:
        raise FixedPointError(f"fixed-point type {text!r} needs a width and an integer width")
    try:
        integer = int(args[1])
    except ValueError:
        raise FixedPointError(f"fixed-point type {text!r} has no valid integer width") from None
    rounding = args[2] if len(args) > 2 else "TRN"
    overflow = args[3] if len(args) > 3 else "WRAP"
    if len(args) > 4 and int(args[4]) != 0:
        raise FixedPointError(f"saturation bits N != 0 in {text!r} are not supported")
    if len(args) > 5:
        raise FixedPointError(f"too many parameters in fixed-point type {text!r}")
    return FixedType(width, integer, signed, rounding, overflow)


# ---------------------------------------------------------------------- the two rules
# Every rounding and every overflow in calo.fpga goes through the two rules below. They use
# Python's integer operators only (+, -, *, >>, &, comparisons, |), so the same code runs on
# Python and numba integers, numpy and torch integer arrays, and on the expression objects that
# write the generated numba kernels (calo.fpga._codegen). Floats are first made integers that
# keep every bit the rounding looks at (:func:`sticky_scaled`).


@register_jitable(inline="always")
def round_shift(v: Any, sh: int, rounding: int) -> Any:
    """``v / 2**sh`` rounded to an integer with the rounding mode of code ``rounding``.

    ``v`` holds integers with ``sh`` more fractional bits than the target; ``sh <= 0`` shifts
    left (exact). The rounding is one addition before the floor shift: the result is
    ``(v + bias) >> sh`` with the mode's ``bias`` (``half = 2**(sh-1)``): TRN 0, TRN_ZERO
    ``2**sh - 1`` for negative ``v``, RND ``half``, RND_ZERO ``half - 1`` (``half`` for
    negative ``v``), RND_MIN_INF ``half - 1``, RND_INF ``half`` (``half - 1`` for negative
    ``v``), RND_CONV ``half - 1`` plus the lowest kept bit. ``|v|`` must stay below ``2**62``.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([-6, -5, -3, -2, 2, 3, 5, 6])  # /4: -1.5, -1.25, -0.75, -0.5, 0.5, ...
    >>> round_shift(v, 2, ROUNDING_MODES["RND_CONV"]).tolist()
    [-2, -1, -1, 0, 0, 1, 1, 2]
    >>> round_shift(v, 2, ROUNDING_MODES["TRN_ZERO"]).tolist()
    [-1, -1, 0, 0, 0, 0, 1, 1]
    >>> round_shift(3, -2, ROUNDING_MODES["RND"])
    12
    """
    if sh <= 0:
        return v << -sh
    half = 1 << (sh - 1)
    if rounding == _Q_TRN:
        return v >> sh
    if rounding == _Q_TRN_ZERO:
        bias = (v < 0) * (2 * half - 1)
    elif rounding == _Q_RND:
        bias = half
    elif rounding == _Q_RND_ZERO:
        bias = (v < 0) * 1 + (half - 1)
    elif rounding == _Q_RND_MIN_INF:
        bias = half - 1
    elif rounding == _Q_RND_INF:
        bias = (v < 0) * -1 + half
    else:  # RND_CONV: ties to the even neighbour
        bias = ((v >> sh) & 1) + (half - 1)
    return (v + bias) >> sh


@register_jitable(inline="always")
def raw_range(width: int, signed: int, overflow: int) -> tuple[int, int]:
    """Raw range ``(lo, hi)`` of a type that an assignment leaves untouched.

    ``-max`` is the lower end of a signed SAT_SYM type (the most negative code is never made).

    Examples
    --------
    >>> raw_range(8, 1, OVERFLOW_MODES["SAT_SYM"]), raw_range(8, 0, OVERFLOW_MODES["WRAP"])
    ((-127, 127), (0, 255))
    """
    if signed:
        hi = (1 << (width - 1)) - 1
        return (-hi if overflow == _O_SAT_SYM else -hi - 1), hi
    return 0, (1 << width) - 1


@register_jitable(inline="always")
def handle_overflow(r: Any, overflow: int, lo: int, hi: int) -> Any:
    """Apply overflow mode code ``overflow`` to rounded raw integers ``r`` outside ``[lo, hi]``.

    Values inside the range are returned unchanged. WRAP keeps the low bits (``(lo, hi)`` of a
    WRAP type span ``2**W`` codes), SAT and SAT_SYM clip, SAT_ZERO sets to zero.

    Examples
    --------
    >>> import numpy as np
    >>> r = np.array([-9, -8, 7, 8, 20])
    >>> handle_overflow(r, OVERFLOW_MODES["WRAP"], -8, 7).tolist()
    [7, -8, 7, -8, 4]
    >>> handle_overflow(r, OVERFLOW_MODES["SAT"], -8, 7).tolist()
    [-8, -8, 7, 7, 7]
    >>> handle_overflow(r, OVERFLOW_MODES["SAT_ZERO"], -8, 7).tolist()
    [0, -8, 7, 0, 0]
    """
    if overflow == _O_WRAP:
        return ((r - lo) & (hi - lo)) + lo
    if overflow == _O_SAT_ZERO:
        return r - r * ((r < lo) | (r > hi))
    return r + (lo - r) * (r < lo) + (hi - r) * (r > hi)


@register_jitable(inline="always")
def sticky_scaled(y: Any) -> Any:
    """An integer-valued float ``v`` with ``round_shift(v, 2, mode)`` = ``y`` rounded by mode.

    ``y`` holds exact values in units of the target LSB. ``v`` is ``2y`` rounded towards -inf,
    doubled, plus one when ``2y`` was not an integer: the floor of ``y`` and two more bits
    (half, sticky), all that any rounding mode looks at. Exact for ``|y| < 2**50``; numpy and
    torch arrays and numba floats alike (convert ``v`` to integers before :func:`round_shift`).

    Examples
    --------
    >>> import numpy as np
    >>> v = sticky_scaled(np.array([-2.5, -0.3, 0.5, 2.5, 2.75])).astype(np.int64)
    >>> v.tolist(), round_shift(v, 2, ROUNDING_MODES["RND_CONV"]).tolist()
    ([-10, -1, 2, 10, 11], [-2, 0, 0, 2, 3])
    """
    t = y * 2
    f = t // 1
    return f * 2 + (t != f)


@numba.njit(cache=False)
def _quantize_scaled(
    y: NDArray[np.float64],
    out: NDArray[np.int64],
    bad: NDArray[np.bool_],
    width: int,
    signed: int,
    rounding: int,
    overflow: int,
) -> None:
    """``out, bad = t(y)`` for exact values ``y`` in LSB units of ``t`` (1-d, no NaN).

    Far outside the range, a wrapping type keeps only the sign, the fraction and the low bits
    (all that wrapping uses); the other types are clipped to 2**40 (saturated or zeroed alike).
    """
    lo, hi = raw_range(width, signed, overflow)
    for i in range(y.shape[0]):
        v = y[i]
        far = abs(v) >= 2.0**50
        if overflow == _O_WRAP:
            if far:
                v = np.fmod(v, 2.0 ** (width + 1))
        else:
            v = min(max(v, -(2.0**40)), 2.0**40)
        r = round_shift(np.int64(sticky_scaled(v)), 2, rounding)
        bad[i] = r < lo or r > hi or far
        out[i] = handle_overflow(r, overflow, lo, hi)


def to_float(raw: ArrayLike, t: FixedType) -> NDArray[np.float64]:
    """Float64 values ``raw * 2**-F`` of raw integers of type ``t`` (exact for W <= 32).

    Examples
    --------
    >>> to_float([3, -1], FixedType(8, 6)).tolist()
    [0.75, -0.25]
    """
    return np.ldexp(np.asarray(raw, dtype=np.int64).astype(np.float64), -t.frac)


def quantize(x: ArrayLike, t: FixedType, return_overflow: bool = False) -> Any:
    """Raw integers of the float values ``x`` assigned to type ``t`` (``t v = x;`` in C++).

    The double is taken at its exact value, rounded to the LSB of ``t`` with ``t.rounding``,
    then ``t.overflow`` is applied, as the ``ap_fixed(double)`` constructor does.

    Parameters
    ----------
    x:
        Float values (any shape).
    t:
        Target type.
    return_overflow:
        Also return a boolean array, True where the rounded value was out of range.

    Returns
    -------
    numpy.ndarray of int64 (and the overflow mask if requested).

    Raises
    ------
    FixedPointError
        If ``x`` contains NaN, or infinities with a wrapping type.

    Examples
    --------
    >>> quantize([0.5, -0.5, 0.25], FixedType(4, 2, rounding="RND_CONV")).tolist()
    [2, -2, 1]
    """
    a = np.asarray(x, dtype=np.float64)
    if np.isnan(a).any():
        raise FixedPointError(f"cannot convert NaN to {t}")
    if np.isinf(a).any() and t.overflow == "WRAP":
        raise FixedPointError(f"cannot convert an infinite value to the wrapping type {t}")
    out, bad = quantize_scaled(np.ldexp(a, t.frac), t)
    return (out, bad) if return_overflow else out


def quantize_scaled(
    y: NDArray[np.float64], t: FixedType
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Raw integers and overflow mask of ``t(y * 2**-F)`` for exact values ``y`` in LSB units.

    The compiled loop behind :func:`quantize` and the torch fake-quantizer (NaN not checked).

    Examples
    --------
    >>> raw, bad = quantize_scaled(np.array([2.5, 300.0]), FixedType(8, 3, overflow="SAT"))
    >>> raw.tolist(), bad.tolist()
    ([2, 127], [False, True])
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    out = np.empty(y.shape, np.int64)
    bad = np.empty(y.shape, np.bool_)
    w, _f, signed, qm, om = t.code
    _quantize_scaled(y.reshape(-1), out.reshape(-1), bad.reshape(-1), w, signed, qm, om)
    return out, bad


def cast(raw: ArrayLike, src: FixedType, dst: FixedType, return_overflow: bool = False) -> Any:
    """Assign raw values of type ``src`` to type ``dst`` (``dst v = src_value;`` in C++).

    Parameters
    ----------
    raw:
        Raw integers of type ``src`` (an int64 array or anything convertible; values of a
        full-precision intermediate may be wider than ``src.width``, only ``src.frac`` is used).
    src, dst:
        Source and target types.
    return_overflow:
        Also return the boolean overflow mask.

    Examples
    --------
    >>> src = FixedType(16, 8)
    >>> cast([384, -384], src, FixedType(8, 6, rounding="RND")).tolist()  # 1.5, -1.5
    [6, -6]
    >>> cast([384, -385], src, FixedType(4, 1, overflow="SAT")).tolist()  # saturate
    [7, -8]
    >>> cast([384, -385], src, FixedType(4, 1)).tolist()  # wrap
    [-4, 3]
    """
    v = np.asarray(raw, dtype=np.int64)
    sh = src.frac - dst.frac
    if sh >= 63:
        v, sh = v >> (sh - 62), 62
    r = round_shift(v, sh, ROUNDING_MODES[dst.rounding])
    lo, hi = dst.range_raw
    out = handle_overflow(r, OVERFLOW_MODES[dst.overflow], lo, hi)
    return (out, (r < lo) | (r > hi)) if return_overflow else out


def fixed_mul(
    a: ArrayLike, ta: FixedType, b: ArrayLike, tb: FixedType
) -> tuple[NDArray[np.int64], FixedType]:
    """Exact product of raw values, with the full-precision C++ result type.

    Returns the raw product and ``ap_fixed<Wa+Wb, Ia+Ib>`` (unsigned if both are unsigned);
    the result type may be wider than 32 bits, in which case it is only a descriptor (use its
    ``frac`` with :func:`cast`).

    Examples
    --------
    >>> t = FixedType(8, 4)
    >>> raw, tp = fixed_mul([24], t, [-40], t)  # 1.5 * -2.5
    >>> to_float(raw, FixedType(16, 8)).tolist(), (tp.width, tp.integer)
    ([-3.75], (16, 8))
    """
    ra = np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
    return ra, _Desc(ta.width + tb.width, ta.integer + tb.integer, ta.signed or tb.signed)


def fixed_add(
    a: ArrayLike, ta: FixedType, b: ArrayLike, tb: FixedType
) -> tuple[NDArray[np.int64], FixedType]:
    """Exact sum of raw values aligned to the finer LSB, with the C++ ``plus`` result type.

    Examples
    --------
    >>> raw, tp = fixed_add([3], FixedType(8, 6), [1], FixedType(8, 4))  # 0.75 + 0.0625
    >>> raw.tolist(), tp.frac
    ([13], 4)
    """
    f = max(ta.frac, tb.frac)
    ra = (np.asarray(a, dtype=np.int64) << (f - ta.frac)) + (
        np.asarray(b, dtype=np.int64) << (f - tb.frac)
    )
    ia = ta.integer + int(tb.signed and not ta.signed)
    ib = tb.integer + int(ta.signed and not tb.signed)
    i = max(ia, ib) + 1
    return ra, _Desc(i + f, i, ta.signed or tb.signed)


def _Desc(width: int, integer: int, signed: bool) -> FixedType:
    """A FixedType descriptor of an intermediate that may exceed MAX_WIDTH (no checks)."""
    t = object.__new__(FixedType)
    object.__setattr__(t, "width", int(width))
    object.__setattr__(t, "integer", int(integer))
    object.__setattr__(t, "signed", bool(signed))
    object.__setattr__(t, "rounding", "TRN")
    object.__setattr__(t, "overflow", "WRAP")
    return t


# ---------------------------------------------------------------------- numba kernel
@numba.njit(inline="always", cache=False)
def cast_raw(v: int, sh: int, width: int, signed: int, qmode: int, omode: int) -> tuple[int, int]:
    """Numba scalar kernel: assign raw ``v`` with ``sh = F_src - F_dst`` to a type.

    Returns ``(raw, overflowed)``; ``overflowed`` is 1 when the rounded value was outside
    the target range (then saturated, zeroed or wrapped according to ``omode``). The same
    :func:`round_shift` and :func:`handle_overflow` as everywhere else, compiled by numba.

    Examples
    --------
    >>> cast_raw(384, 6, 8, 1, ROUNDING_MODES["RND"], OVERFLOW_MODES["SAT"])  # 1.5 -> F=2
    (6, 0)
    """
    r = round_shift(v, sh, qmode)
    lo, hi = raw_range(width, signed, omode)
    if r < lo or r > hi:
        return handle_overflow(r, omode, lo, hi), 1
    return r, 0
