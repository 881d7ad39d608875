"""Compile and run exported GarNets with g++ against hls4ml's ``nnet_garnet.h``.

:func:`harness_source`, :func:`build_harness` and :func:`run_harness` compile a small program
against the hls4ml wheel's ``templates/vivado`` folder (``nnet_utils/nnet_garnet.h``) and its
``ap_types`` (:func:`hls4ml_include_dirs`, :func:`gxx_flags`)
and run it on test vectors, so that the numba reference can be compared with the firmware's C++
bit for bit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from calo.errors import FixedPointError
from calo.fpga.export import write_hls_header, write_test_vectors
from calo.fpga.reference import FixedGarNet

__all__ = ["build_harness", "gxx_flags", "harness_source", "hls4ml_include_dirs", "run_harness"]


def hls4ml_include_dirs() -> list[Path]:
    """Include folders of the installed hls4ml wheel, as hls4ml's firmware layout needs them.

    An exported header includes ``"nnet_utils/nnet_garnet.h"``, as the ``firmware/`` folder of
    an hls4ml project does (``firmware/nnet_utils/``, ``firmware/ap_types/``). The wheel ships
    that layout under ``hls4ml/templates/vivado``, so the folders are that one (for
    ``nnet_utils/...``) and its ``ap_types`` (``ap_fixed.h``, ``hls_math.h``, ``hls_stream.h``),
    the two ``-I`` flags of the README's g++ line (:func:`gxx_flags`).

    Raises
    ------
    FixedPointError
        If hls4ml is not installed or its templates are missing.

    Examples
    --------
    >>> [p.name for p in hls4ml_include_dirs()]  # doctest: +SKIP
    ['vivado', 'ap_types']
    """
    try:
        import hls4ml
    except ImportError:
        raise FixedPointError(
            "hls4ml is not installed; install calo with the fpga extra (pip install -e '.[fpga]')"
        ) from None
    base = Path(os.path.dirname(hls4ml.__file__)) / "templates" / "vivado"
    dirs = [base, base / "ap_types"]
    for f in (base / "nnet_utils" / "nnet_garnet.h", base / "ap_types" / "ap_fixed.h"):
        if not f.is_file():
            raise FixedPointError(f"hls4ml installation has no file {f}")
    return dirs


def gxx_flags(opt: str = "-O2") -> list[str]:
    """The g++ flags that build an exported header: C++11 and :func:`hls4ml_include_dirs`.

    The README's g++ line spells the same flags with ``$HLS4ML`` for the wheel's folder.

    Examples
    --------
    >>> flags = gxx_flags()  # doctest: +SKIP
    >>> flags[:2], [f.rsplit("/", 2)[-2:] for f in flags[2:]]  # doctest: +SKIP
    (['-std=c++11', '-O2'], [['templates', 'vivado'], ['vivado', 'ap_types']])
    """
    return ["-std=c++11", opt, *(f"-I{d}" for d in hls4ml_include_dirs())]


def harness_source(
    headers: Sequence[tuple[str, str | None]] = (("calo_garnet.h", None),),
    name: str = "calo_garnet",
) -> str:
    """C++ main that runs exported models on test vectors.

    ``headers`` lists ``(header file, namespace or None)``; the program's first argument picks
    one by index. Usage: ``harness <index> in.txt out.txt [repeat]``. ``in.txt`` is written by
    :func:`write_test_vectors`; the events are read into memory first, then run ``repeat``
    times (timed with std::chrono, excluding file I/O; events/s printed on stderr); the outputs
    of the last pass are written as hexadecimal doubles, one event per line.

    Examples
    --------
    >>> "int main" in harness_source()
    True
    """
    inc = "\n".join(f'#include "{h}"' for h, _ in headers)
    cases = []
    for i, (_, ns) in enumerate(headers):
        p = f"{ns}::" if ns else ""
        cases.append(
            f"    if (which == {i}) return run<{p}input_t, {p}nvtx_t, {p}result_t, "
            f"{p}{name}_n_in, {p}{name}_n_out>({p}{name}, argc, argv);"
        )
    body = "\n".join(cases)
    return f"""// Written by calo.fpga.export: test harness for nnet_garnet.h
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
{inc}

template <class In, class Nv, class Res, unsigned NIN, unsigned NOUT, class F>
int run(F func, int argc, char** argv) {{
    int repeat = argc > 4 ? atoi(argv[4]) : 1;
    FILE* fin = fopen(argv[2], "r");
    if (!fin) {{ fprintf(stderr, "cannot open %s\\n", argv[2]); return 2; }}
    long nev; unsigned nin;
    if (fscanf(fin, "%ld %u", &nev, &nin) != 2 || nin != NIN) {{
        fprintf(stderr, "bad header in %s\\n", argv[2]); return 2; }}
    std::vector<In> x((size_t)nev * NIN);
    std::vector<Nv> nv((size_t)nev);
    char buf[64];
    for (long e = 0; e < nev; ++e) {{
        unsigned n; if (fscanf(fin, "%u", &n) != 1) return 3;
        nv[e] = n;
        for (unsigned i = 0; i < NIN; ++i) {{
            if (fscanf(fin, "%63s", buf) != 1) return 3;
            x[(size_t)e * NIN + i] = strtod(buf, 0);  // exact: the values are input_t values
        }}
    }}
    fclose(fin);
    std::vector<Res> res((size_t)nev * NOUT);
    auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < repeat; ++r) {{
        for (long e = 0; e < nev; ++e) {{
            Res* out = &res[(size_t)e * NOUT];
            for (unsigned o = 0; o < NOUT; ++o) out[o] = 0;
            Nv n1[1] = {{nv[e]}};
            func(&x[(size_t)e * NIN], n1, out);
        }}
    }}
    auto t1 = std::chrono::steady_clock::now();
    double sec = std::chrono::duration<double>(t1 - t0).count();
    fprintf(stderr, "events %ld seconds %.9f events_per_s %.3f\\n", nev * repeat, sec,
            nev * repeat / sec);
    FILE* fout = fopen(argv[3], "w");
    for (long e = 0; e < nev; ++e) {{
        for (unsigned o = 0; o < NOUT; ++o)
            fprintf(fout, o ? " %a" : "%a", res[(size_t)e * NOUT + o].to_double());
        fprintf(fout, "\\n");
    }}
    fclose(fout);
    return 0;
}}

int main(int argc, char** argv) {{
    if (argc < 4) {{
        fprintf(stderr, "usage: %s index in.txt out.txt [repeat]\\n", argv[0]); return 2; }}
    int which = atoi(argv[1]);
{body}
    fprintf(stderr, "no model with index %d\\n", which);
    return 2;
}}
"""


def build_harness(
    model: FixedGarNet, workdir: str | Path, opt: str = "-O2", name: str = "calo_garnet"
) -> Path:
    """Write header and harness into ``workdir`` and compile them with g++; return the binary.

    Raises
    ------
    FixedPointError
        If g++ is missing or compilation fails (the compiler's message is included).

    Examples
    --------
    Needs g++ and hls4ml; compiling takes several seconds, so the example is not run by the
    doctests (tests/fpga runs the harness).

    >>> import numpy as np, tempfile
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> model = FixedGarNet([GarNetWeights.random(np.random.default_rng(0), 4, 4, 8, 8)],
    ...                     GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> exe = build_harness(model, tempfile.mkdtemp(), opt="-O0")  # doctest: +SKIP
    >>> exe.name, sorted(p.name for p in exe.parent.iterdir())  # doctest: +SKIP
    ('harness', ['calo_garnet.h', 'harness', 'harness.cpp'])
    """
    gxx = shutil.which("g++")
    if gxx is None:
        raise FixedPointError("g++ is not installed: it is needed to build the C++ harness")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_hls_header(model, None, workdir / f"{name}.h", name=name)
    (workdir / "harness.cpp").write_text(harness_source(((f"{name}.h", None),), name))
    exe = workdir / "harness"
    cmd = [gxx, *gxx_flags(opt), "-w"]
    cmd += [str(workdir / "harness.cpp"), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise FixedPointError(f"g++ failed to build the GarNet harness:\n{res.stderr[-3000:]}")
    return exe


def run_harness(
    exe: str | Path,
    model: FixedGarNet,
    X_raw: NDArray[np.int64],
    n: NDArray[np.int64],
    workdir: str | Path,
    repeat: int = 1,
    index: int = 0,
) -> tuple[NDArray[np.int64], float]:
    """Run a compiled harness on raw inputs; return raw outputs (shaped like the reference's)
    and the measured events/s of the compute loop (file I/O excluded). ``index`` picks the
    model in a harness built from several headers.

    Examples
    --------
    Needs g++ and hls4ml (:func:`build_harness`), so the example is not run by the doctests.
    The harness reproduces the numba reference bit for bit:

    >>> import numpy as np, tempfile
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> rng = np.random.default_rng(0)
    >>> model = FixedGarNet([GarNetWeights.random(rng, 4, 4, 8, 8)],
    ...                     GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> X_raw = model.quantize_inputs(rng.normal(0, 0.5, size=(3, 16, 4)))
    >>> n = np.array([16, 5, 9])
    >>> workdir = tempfile.mkdtemp()
    >>> exe = build_harness(model, workdir, opt="-O0")  # doctest: +SKIP
    >>> raw, rate = run_harness(exe, model, X_raw, n, workdir)  # doctest: +SKIP
    >>> raw.shape, bool((raw == model.run_raw(X_raw, n)[0]).all()), rate > 0  # doctest: +SKIP
    ((3, 8), True, True)
    """
    workdir = Path(workdir)
    inp = write_test_vectors(workdir / "vectors.txt", model, X_raw, n)
    outp = workdir / "outputs.txt"
    res = subprocess.run(
        [str(exe), str(index), str(inp), str(outp), str(repeat)], capture_output=True, text=True
    )
    if res.returncode != 0:
        raise FixedPointError(f"harness {exe} failed (exit {res.returncode}): {res.stderr}")
    rate = float(res.stderr.split("events_per_s")[1].split()[0])
    t = model.types["output_t"]
    rows = [ln.split() for ln in outp.read_text().splitlines()]
    vals = np.array([[float.fromhex(v) for v in r] for r in rows])
    raw = np.rint(np.ldexp(vals, t.frac)).astype(np.int64)
    if model.config.collapse != "mean":
        raw = raw.reshape(raw.shape[0], model.config.n_vertices, model.n_out)
    return raw, rate
