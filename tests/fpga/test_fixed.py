"""ap_fixed semantics: calo.fpga.fixed against the real ap_types headers (g++)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from calo.errors import FixedPointError
from calo.fpga.fixed import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedType,
    cast,
    cast_raw,
    fixed_add,
    fixed_mul,
    parse_type,
    quantize,
    to_float,
)

QS = list(ROUNDING_MODES)
OS = list(OVERFLOW_MODES)


def _random_types(rng: np.random.Generator, n: int) -> list[FixedType]:
    out = []
    for i in range(n):
        w = int(rng.integers(3, 25))
        it = int(rng.integers(-3, w + 4))
        out.append(FixedType(w, it, bool(rng.random() < 0.7), QS[i % len(QS)], OS[i % len(OS)]))
    return out


def _cpp_cast_program(pairs: list[tuple[FixedType, FixedType]], dsts: list[FixedType]) -> str:
    lines = [
        "#include <cstdio>",
        "#include <cstdlib>",
        '#include "ap_fixed.h"',
        "template <class S, class D> void cast_case(FILE* f) {",
        '  int n; if (fscanf(f, "%d", &n) != 1) exit(3);',
        "  for (int i = 0; i < n; ++i) {",
        '    char buf[64]; if (fscanf(f, "%63s", buf) != 1) exit(3);',
        "    S s = strtod(buf, 0);",  # exact: source raw fits in a double
        "    D d; d = s;",
        "    D e(s);",
        '    printf("%a %a\\n", d.to_double(), e.to_double());',
        "  }",
        "}",
        "template <class D> void double_case(FILE* f) {",
        '  int n; if (fscanf(f, "%d", &n) != 1) exit(3);',
        "  for (int i = 0; i < n; ++i) {",
        '    char buf[64]; if (fscanf(f, "%63s", buf) != 1) exit(3);',
        "    D d = strtod(buf, 0);",
        '    printf("%a\\n", d.to_double());',
        "  }",
        "}",
        "template <class A, class D> void arith_case(FILE* f) {",
        '  int n; if (fscanf(f, "%d", &n) != 1) exit(3);',
        "  for (int i = 0; i < n; ++i) {",
        "    char b1[64], b2[64], b3[64];",
        '    if (fscanf(f, "%63s %63s %63s", b1, b2, b3) != 3) exit(3);',
        "    A a = strtod(b1, 0), b = strtod(b2, 0); D c = strtod(b3, 0);",
        "    D p = a * b; D s = c; s += a * b; D t = c; t += b;",
        '    printf("%a %a %a\\n", p.to_double(), s.to_double(), t.to_double());',
        "  }",
        "}",
        "int main(int argc, char** argv) {",
        '  FILE* f = fopen(argv[1], "r");',
    ]
    for s, d in pairs:
        lines.append(f"  cast_case<{s.cpp()}, {d.cpp()} >(f);")
    for d in dsts:
        lines.append(f"  double_case<{d.cpp()} >(f);")
    for d in dsts:
        lines.append(f"  arith_case<{dsts[0].cpp()}, {d.cpp()} >(f);")
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def cpp_cases(compile_cpp, tmp_path_factory):
    """Run random values through g++-compiled ap_fixed casts; return inputs and outputs."""
    rng = np.random.default_rng(2024)
    srcs = _random_types(rng, 28)
    dsts = _random_types(rng, 28)
    # make sure every rounding x overflow combination appears as a target
    dsts += [FixedType(8, 3, s, q, o) for q in QS for o in OS for s in (True,)]
    dsts += [FixedType(6, 0, False, q, o) for q in ("TRN", "RND", "RND_CONV") for o in OS]
    # ap_private asserts (reads a bit beyond the MSB) when more than W_src - 1 bits are dropped;
    # pick for each target a source for which the header is defined
    pairs = []
    for i, d in enumerate(dsts):
        ok = [s for s in srcs if s.frac - d.frac <= s.width - 1]
        pairs.append((ok[i % len(ok)], d))
    arith_a = FixedType(9, 4, True, "RND", "SAT")
    dsts_arith = [arith_a, *dsts[:20]]
    n = 300
    text = []
    cast_inputs = []
    for s, _ in pairs:
        # a SAT_SYM variable never holds the most negative code (assignment maps it to -max)
        lo = -s.max_raw if (s.overflow == "SAT_SYM" and s.signed) else s.min_raw
        raw = rng.integers(lo, s.max_raw + 1, size=n)
        raw[:4] = [lo, s.max_raw, 0, lo + 1]  # include the extremes
        cast_inputs.append(raw)
        text.append(str(n))
        text += [float(v).hex() for v in to_float(raw, s)]
    dbl_inputs = []
    for d in dsts:
        x = rng.normal(0, 2.0 ** (d.integer - 1), size=n)
        # exact ties of the target LSB and values far out of range
        k = rng.integers(-(2**12), 2**12, size=40)
        x[:40] = np.ldexp(k + 0.5, -d.frac)
        x[40:50] = rng.normal(0, 2.0 ** (d.integer + 6), size=10)
        dbl_inputs.append(x)
        text.append(str(n))
        text += [float(v).hex() for v in x]
    arith_inputs = []
    for d in dsts_arith:
        a = rng.integers(arith_a.min_raw, arith_a.max_raw + 1, size=(n, 2))
        c = quantize(rng.normal(0, 2.0 ** (d.integer - 2), size=n), d)
        arith_inputs.append((a, c))
        text.append(str(n))
        for i in range(n):
            fa = to_float(a[i], arith_a)
            text.append(f"{fa[0].hex()} {fa[1].hex()} {float(to_float(c[i], d)).hex()}")
    src = _cpp_cast_program(pairs, dsts)
    src = src.replace(
        "\n".join(f"  arith_case<{dsts[0].cpp()}, {d.cpp()} >(f);" for d in dsts),
        "\n".join(f"  arith_case<{arith_a.cpp()}, {d.cpp()} >(f);" for d in dsts_arith),
    )
    exe = compile_cpp(src, opt="-O0")
    inp = tmp_path_factory.mktemp("fixed") / "in.txt"
    inp.write_text("\n".join(text) + "\n")
    out = subprocess.run([str(exe), str(inp)], capture_output=True, text=True, check=True)
    vals = out.stdout.split("\n")
    return {
        "pairs": pairs,
        "dsts": dsts,
        "arith": (arith_a, dsts_arith),
        "cast_inputs": cast_inputs,
        "dbl_inputs": dbl_inputs,
        "arith_inputs": arith_inputs,
        "lines": vals,
        "n": n,
    }


def _raw_from_hex(tokens: list[str], t: FixedType) -> np.ndarray:
    return np.array([float.fromhex(v) * 2.0**t.frac for v in tokens]).astype(np.int64)


@pytest.mark.slow
def test_cast_matches_ap_fixed_bit_for_bit(cpp_cases):
    lines, n = cpp_cases["lines"], cpp_cases["n"]
    pos = 0
    checked = 0
    for (s, d), raw in zip(cpp_cases["pairs"], cpp_cases["cast_inputs"], strict=True):
        toks = [ln.split() for ln in lines[pos : pos + n]]
        pos += n
        assign = _raw_from_hex([t[0] for t in toks], d)
        ctor = _raw_from_hex([t[1] for t in toks], d)
        ours = cast(raw, s, d)
        bad = np.nonzero(ours != assign)[0]
        assert bad.size == 0, (
            f"{s} -> {d}: value {to_float(raw[bad[0] : bad[0] + 1], s)} gives raw "
            f"{ours[bad[0]]}, ap_fixed {assign[bad[0]]}"
        )
        np.testing.assert_array_equal(ctor, assign)
        # the numba scalar kernel agrees with the numpy path
        w, f, sg, q, o = d.code
        k = np.array([cast_raw(int(v), s.frac - f, w, sg, q, o)[0] for v in raw[:50]])
        np.testing.assert_array_equal(k, ours[:50])
        checked += n
    assert checked == len(cpp_cases["pairs"]) * n


@pytest.mark.slow
def test_quantize_from_double_matches_ap_fixed(cpp_cases):
    lines, n = cpp_cases["lines"], cpp_cases["n"]
    pos = n * len(cpp_cases["pairs"])
    for d, x in zip(cpp_cases["dsts"], cpp_cases["dbl_inputs"], strict=True):
        ref = _raw_from_hex(lines[pos : pos + n], d)
        pos += n
        ours = quantize(x, d)
        bad = np.nonzero(ours != ref)[0]
        assert bad.size == 0, f"{x[bad[0]]!r} -> {d}: ours {ours[bad[0]]}, ap_fixed {ref[bad[0]]}"


@pytest.mark.slow
def test_product_and_accumulation_match_ap_fixed(cpp_cases):
    lines, n = cpp_cases["lines"], cpp_cases["n"]
    pos = n * (len(cpp_cases["pairs"]) + len(cpp_cases["dsts"]))
    a_t, dsts = cpp_cases["arith"]
    for d, (a, c) in zip(dsts, cpp_cases["arith_inputs"], strict=True):
        toks = [ln.split() for ln in lines[pos : pos + n]]
        pos += n
        prod, pt = fixed_mul(a[:, 0], a_t, a[:, 1], a_t)
        np.testing.assert_array_equal(cast(prod, pt, d), _raw_from_hex([t[0] for t in toks], d))
        s, st = fixed_add(c, d, prod, pt)
        np.testing.assert_array_equal(cast(s, st, d), _raw_from_hex([t[1] for t in toks], d))
        s2, st2 = fixed_add(c, d, a[:, 1], a_t)
        np.testing.assert_array_equal(cast(s2, st2, d), _raw_from_hex([t[2] for t in toks], d))


def test_parse_and_print_round_trip():
    for text in [
        "ap_fixed<16,6,AP_RND,AP_SAT>",
        "ap_ufixed<10,0>",
        "ap_fixed<12,4,AP_TRN,AP_SAT>",
        "ap_uint<10>",
        "ap_int<7>",
        "ap_fixed<18,8>",
    ]:
        assert str(parse_type(text)) == text
    t = parse_type("fixed<14, 5, RND, SAT>")
    assert (t.width, t.integer, t.signed, t.rounding, t.overflow) == (14, 5, True, "RND", "SAT")
    assert parse_type("ap_uint<10>") == FixedType(10, 10, signed=False)
    assert FixedType(8, 3).max_value == 3.96875 and FixedType(8, 3).min_value == -4.0


@pytest.mark.parametrize(
    "text",
    [
        "ap_fixed<16>",
        "float",
        "ap_fixed<a,3>",
        "ap_fixed<40,6>",
        "ap_fixed<8,3,AP_FOO>",
        "ap_fixed<8,3,AP_TRN,AP_WRAP_SM>",
        "ap_int<8,2>",
        "ap_fixed<8,3,AP_TRN,AP_SAT,2>",
    ],
)
def test_bad_type_strings_raise(text):
    with pytest.raises(FixedPointError):
        parse_type(text)


def test_quantize_rejects_nan_and_wrapping_inf():
    with pytest.raises(FixedPointError, match="NaN"):
        quantize([0.0, np.nan], FixedType(8, 3))
    with pytest.raises(FixedPointError, match="infinite"):
        quantize([np.inf], FixedType(8, 3))
    assert quantize([np.inf, -np.inf], FixedType(8, 3, overflow="SAT")).tolist() == [127, -128]


def test_overflow_flags_and_modes():
    t = FixedType(4, 2, overflow="SAT_SYM")
    raw, bad = quantize([-2.0, -1.75, 5.0, 0.5], t, return_overflow=True)
    assert raw.tolist() == [-7, -7, 7, 2] and bad.tolist() == [True, False, True, False]
    raw, bad = quantize([2.0, -2.25], FixedType(4, 2), return_overflow=True)  # wrap
    assert raw.tolist() == [-8, 7] and bad.tolist() == [True, True]
    assert quantize([9.0, -9.0, -0.1], FixedType(4, 2, overflow="SAT_ZERO")).tolist() == [0, 0, -1]
    assert quantize([-0.1], FixedType(4, 2, False, overflow="SAT")).tolist() == [0]
