"""The file formats of a GarNet export for hls4ml's ``nnet_garnet.h``: C++ header and test vectors.

:func:`hls_header_text` / :func:`write_hls_header` write the weight arrays and config struct(s)
in the form the header takes, with a function ``<name>(x, nvtx, res)`` that calls
``nnet::garnet_stack`` (or ``nnet::garnet`` for one layer); :func:`write_test_vectors` writes
the inputs of a test bench (text with exact hexadecimal doubles, and an ``.npz`` with the raw
integers and the expected outputs). What ``calo-export`` writes for a trained model, built from
these, is :mod:`calo.fpga.model_export`; :mod:`calo.fpga.harness` compiles and runs a header
with g++.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from calo.errors import ConfigError
from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
from calo.fpga.reference import FixedGarNet

__all__ = [
    "HLS_ARRAYS",
    "edge_case_counts",
    "hls_array_doc",
    "hls_header_text",
    "with_edge_cases",
    "write_hls_header",
    "write_test_vectors",
]


#: calo's name of each quantized array -> (the member of hls4ml's config struct it fills, the
#: axes of calo's array, the flat index nnet_garnet.h reads it with). The header writes each
#: array row-major (C order) over these axes, which is the order of those indices.
HLS_ARRAYS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "w_in": (
        "input_transform_weights",
        ("out_feature", "aggregator", "in_feature"),
        "(io * n_aggregators + ia) * n_in_features + ix",
    ),
    "b_in": ("input_transform_biases", ("out_feature", "aggregator"), "io * n_aggregators + ia"),
    "w_d": (
        "aggregator_distance_weights",
        ("aggregator", "in_feature"),
        "ia * n_in_features + ix",
    ),
    "b_d": ("aggregator_distance_biases", ("aggregator",), "ia"),
    "b_out": ("output_transform_biases", ("out_feature",), "io"),
}


def hls_array_doc(key: str, shape: Sequence[int], struct: str) -> dict[str, object]:
    """How one quantized array reaches hls4ml: the config struct and member it fills and its
    flattening (for ``model.json``).

    Examples
    --------
    >>> d = hls_array_doc("w_in", (8, 4, 4), "config::sublayer_t<0>")
    >>> d["hls4ml_member"], d["axes"], d["flat_index"]
    ('input_transform_weights', ['out_feature', 'aggregator', 'in_feature'], '(io * n_aggregators + ia) * n_in_features + ix')
    >>> d["flattening"]
    'row-major (C order) over [out_feature, aggregator, in_feature] = [8, 4, 4]: 128 values'
    """
    member, axes, index = HLS_ARRAYS[key]
    if len(axes) != len(shape):
        raise ConfigError(f"array {key} has shape {tuple(shape)}, expected axes {axes}")
    size = int(np.prod(shape))
    return {
        "hls4ml_struct": struct,
        "hls4ml_member": member,
        "axes": list(axes),
        "flat_index": index,
        "flattening": f"row-major (C order) over [{', '.join(axes)}] = "
        f"{list(int(k) for k in shape)}: {size} values",
    }


# ---------------------------------------------------------------------- header
def _fmt(values: NDArray[np.float64]) -> str:
    """Exact decimal spelling of already-quantized values (repr round-trips a double)."""
    return "{" + ", ".join(repr(float(v)) for v in np.ravel(values)) + "}"


def _resolve(
    model_or_weights: FixedGarNet | GarNetWeights | Sequence[GarNetWeights],
    config: GarNetFixedConfig | None,
) -> FixedGarNet:
    if isinstance(model_or_weights, FixedGarNet):
        return model_or_weights
    if config is None:
        raise ConfigError("write_hls_header needs a GarNetFixedConfig when given float weights")
    return FixedGarNet(model_or_weights, config)


def hls_header_text(
    model_or_weights: FixedGarNet | GarNetWeights | Sequence[GarNetWeights],
    config: GarNetFixedConfig | None = None,
    name: str = "calo_garnet",
    namespace: str | None = None,
) -> str:
    """C++ header with the weights and the config struct(s) nnet_garnet.h takes.

    With ``namespace`` everything but the includes is wrapped in ``namespace <namespace>``,
    so that several exported models can live in one program.

    Defines ``input_t``, ``nvtx_t`` (``ap_uint<nvtx_width>``), ``result_t`` (= ``output_t``),
    one weight array per quantity (already quantized, written exactly), and ``struct config``:
    a ``nnet::garnet_config`` for one layer (with a dummy ``output_transform_weights``), or a
    base struct plus one ``sublayer_t<L>`` specialisation per sublayer for a stack. Also a
    function ``{name}(x, nvtx, res)`` calling ``nnet::garnet`` / ``nnet::garnet_stack``.

    Examples
    --------
    >>> import numpy as np
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> w = GarNetWeights.random(np.random.default_rng(0), 4, 4, 8, 8)
    >>> text = hls_header_text(w, GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> "struct config : nnet::garnet_config" in text, "output_transform_weights" in text
    (True, True)
    """
    model = _resolve(model_or_weights, config)
    cfg, ty = model.config, model.types
    stack = len(model.sublayers) > 1
    guard = (name + ("_" + namespace if namespace else "")).upper() + "_H_"
    L = [
        f"#ifndef {guard}",
        f"#define {guard}",
        "// Written by calo.fpga.export: weights and configuration for hls4ml's nnet_garnet.h",
        '#include "ap_fixed.h"',
        '#include "ap_int.h"',
        '#include "nnet_utils/nnet_garnet.h"',
        "",
        f"namespace {namespace} {{" if namespace else "",
        f"typedef {ty['input_t'].cpp()} input_t;",
        f"typedef ap_uint<{cfg.nvtx_width}> nvtx_t;",
        f"typedef {ty['output_t'].cpp()} result_t;",
        "",
    ]
    arrays = []
    for li, s in enumerate(model.sublayers):
        for key, (hname, _axes, _index) in HLS_ARRAYS.items():
            vals = s.values(key)
            var = f"{hname}_{li}"
            L.append(f"static const {s.types[key].cpp()} {var}[{vals.size}] = {_fmt(vals)};")
            arrays.append((li, hname, s.types[key], var, vals.size))
    if not stack:
        L.append("static const ap_fixed<2,2> output_transform_weights_0[1] = {1};  // dummy")
    L.append("")
    common = [
        f"    static const unsigned n_vertices = {cfg.n_vertices};",
        f"    static const unsigned n_vertices_width = {cfg.n_vertices_width};",
        f"    static const unsigned n_in_features = {model.n_in};",
        f"    static const unsigned distance_width = {cfg.distance_width};",
        "    static const unsigned output_collapse = "
        + ("collapse_mean;" if cfg.collapse == "mean" else "no_collapse;"),
        f"    static const bool mean_by_nvert = {'true' if cfg.mean_by_nvert else 'false'};",
        f"    typedef {ty['norm_t'].cpp()} norm_t;",
        f"    typedef {ty['distance_t'].cpp()} distance_t;",
        f"    typedef {ty['edge_weight_t'].cpp()} edge_weight_t;",
        f"    typedef {ty['edge_weight_aggr_t'].cpp()} edge_weight_aggr_t;",
        f"    typedef {ty['aggr_t'].cpp()} aggr_t;",
        "    typedef result_t output_t;",
        f"    static const unsigned reuse_factor = {cfg.reuse_factor};",
        f"    static const unsigned log2_reuse_factor = {cfg.log2_reuse};",
    ]

    def members(li: int, owner: str) -> tuple[list[str], list[str]]:
        s = model.sublayers[li]
        body = [] if not stack else [f"    static const unsigned n_in_features = {s.n_in};"]
        body += [
            f"    static const unsigned n_propagate = {s.n_propagate or s.n_in};",
            f"    static const unsigned n_aggregators = {s.n_aggregators};",
            f"    static const unsigned n_out_features = {s.n_out};",
        ]
        defs = []
        for lj, hname, t, var, size in arrays:
            if lj != li:
                continue
            body.append(f"    typedef {t.cpp()} {hname}_t;")
            body.append(f"    static const {hname}_t (&{hname})[{size}];")
            defs.append(f"const {owner}::{hname}_t (&{owner}::{hname})[{size}] = {var};")
        return body, defs

    if not stack:
        body, defs = members(0, "config")
        L.append("struct config : nnet::garnet_config {")
        L += common + body
        L += [
            "    typedef ap_fixed<2,2> output_transform_weights_t;",
            "    static const output_transform_weights_t (&output_transform_weights)[1];",
            "    typedef config base_t;",
            "};",
        ]
        L += defs
        L.append(
            "const config::output_transform_weights_t "
            "(&config::output_transform_weights)[1] = output_transform_weights_0;"
        )
        call = "nnet::garnet"
    else:
        L.append("struct config_base : nnet::garnet_config {")
        L += common
        L += ["    static const bool is_stack = true;", "    typedef config_base base_t;", "};"]
        L += [
            "struct config : config_base {",
            f"    static const unsigned n_sublayers = {len(model.sublayers)};",
            "    template <int L> struct sublayer_t : config_base {};",
            "};",
        ]
        for li in range(len(model.sublayers) - 1, -1, -1):
            owner = f"config::sublayer_t<{li}>"
            body, defs = members(li, owner)
            nxt = li + 1 if li + 1 < len(model.sublayers) else 0
            L.append("template <>")
            L.append(f"struct {owner} : config_base {{")
            L += body
            L.append(f"    typedef config::sublayer_t<{nxt}> next_layer_t;")
            L.append("};")
            L += defs
        call = "nnet::garnet_stack"
    n_res = model.n_out * (1 if cfg.collapse == "mean" else cfg.n_vertices)
    L += [
        "",
        f"inline void {name}(input_t const x[{cfg.n_vertices * model.n_in}], "
        f"nvtx_t const nvtx[1], result_t res[{n_res}]) {{",
        f"    {call}<input_t, nvtx_t, result_t, config>(x, nvtx, res);",
        "}",
        f"static const unsigned {name}_n_in = {cfg.n_vertices * model.n_in};",
        f"static const unsigned {name}_n_out = {n_res};",
        f"}}  // namespace {namespace}" if namespace else "",
        f"#endif  // {guard}",
    ]
    return "\n".join(L) + "\n"


def write_hls_header(
    model_or_weights: FixedGarNet | GarNetWeights | Sequence[GarNetWeights],
    config: GarNetFixedConfig | None,
    path: str | Path,
    name: str = "calo_garnet",
    namespace: str | None = None,
) -> Path:
    """Write :func:`hls_header_text` to ``path`` and return it.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> w = GarNetWeights.random(np.random.default_rng(0), 4, 4, 8, 8)
    >>> p = write_hls_header(w, GarNetFixedConfig(), pathlib.Path(tempfile.mkdtemp()) / "g.h")
    >>> p.read_text().count("static const unsigned n_vertices = 128")
    1
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(hls_header_text(model_or_weights, config, name, namespace))
    return path


def write_test_vectors(
    path: str | Path,
    model: FixedGarNet,
    X_raw: NDArray[np.int64],
    n: NDArray[np.int64],
    expected_raw: NDArray[np.int64] | None = None,
) -> Path:
    """Write inputs for the harness (``path``, text) and an ``.npz`` next to it.

    The text file holds ``B n_in`` then per event ``n`` and the ``V * F_in`` input values as
    hexadecimal doubles (exact). The npz holds ``x_raw``, ``n`` and, if given, ``expected_raw``.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> rng = np.random.default_rng(0)
    >>> model = FixedGarNet([GarNetWeights.random(rng, 4, 4, 8, 8)],
    ...                     GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> X_raw = model.quantize_inputs(rng.normal(0, 0.5, size=(3, 16, 4)))
    >>> path = write_test_vectors(tempfile.mkdtemp() + "/tv.txt", model, X_raw,
    ...                           np.array([16, 5, 9]))
    >>> lines = path.read_text().splitlines()
    >>> lines[0], lines[2].split()[:3], len(lines[2].split())  # event 1: n, then 16 x 4 values
    ('3 64', ['5', '-0x1.7b00000000000p-1', '-0x1.bc00000000000p-2'], 65)
    >>> float.fromhex("-0x1.7b00000000000p-1"), int(X_raw[1, 0, 0]) / 2**9  # input_t: 9 frac bits
    (-0.740234375, -0.740234375)
    >>> sorted(np.load(path.with_suffix(".npz")).files)
    ['n', 'x_raw']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    X = np.asarray(X_raw, dtype=np.int64)
    vals = model.types["input_t"].to_float(X.reshape(X.shape[0], -1))
    with path.open("w") as fh:
        fh.write(f"{X.shape[0]} {vals.shape[1]}\n")
        for e in range(X.shape[0]):
            fh.write(f"{int(n[e])} " + " ".join(float(v).hex() for v in vals[e]) + "\n")
    extra = {} if expected_raw is None else {"expected_raw": np.asarray(expected_raw)}
    np.savez(path.with_suffix(".npz"), x_raw=X, n=np.asarray(n), **extra)
    return path


def edge_case_counts(config: GarNetFixedConfig) -> list[int]:
    """Hit counts every set of test vectors holds: ``0, 1, V/R, V`` (distinct, in order).

    With ``mean_by_nvert`` the firmware computes ``(V/R)/n`` in integers, a division by zero
    for ``n = 0`` (undefined behaviour in C++, SIGFPE on x86), so 0 is left out there.

    Examples
    --------
    >>> edge_case_counts(GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    [0, 1, 4, 16]
    >>> edge_case_counts(GarNetFixedConfig(n_vertices=16, reuse_factor=1))
    [0, 1, 16]
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     cfg = GarNetFixedConfig(n_vertices=16, reuse_factor=4, mean_by_nvert=True)
    >>> edge_case_counts(cfg)
    [1, 4, 16]
    """
    V, R = config.n_vertices, config.reuse_factor
    counts = [] if config.mean_by_nvert else [0]
    for k in (1, V // R, V):
        if k not in counts:
            counts.append(k)
    return counts


def with_edge_cases(
    X: NDArray[np.floating], n: NDArray[np.integer], config: GarNetFixedConfig
) -> tuple[NDArray[np.floating], NDArray[np.int64]]:
    """Prepend events with the hit counts of :func:`edge_case_counts` to ``(X, n)``.

    The hits of an edge event are the valid hits of the given events, in order (repeated when
    they are fewer than ``V``); its padding is zero. So every set of test vectors covers an
    empty event, a single hit, exactly one group of ``V/R`` hits and a full event, whatever the
    sample's hit counts.

    Examples
    --------
    >>> X = np.arange(2 * 4 * 1, dtype=float).reshape(2, 4, 1)
    >>> Xe, ne = with_edge_cases(X, np.array([3, 2]), GarNetFixedConfig(4, reuse_factor=2))
    >>> ne.tolist(), Xe[:3, :, 0].tolist()
    ([0, 1, 2, 4, 3, 2], [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    >>> Xe[3, :, 0].tolist()  # the full event: hits 0, 1, 2 of event 0, then hit 0 of event 1
    [0.0, 1.0, 2.0, 4.0]
    """
    X = np.asarray(X)
    n = np.asarray(n, dtype=np.int64)
    V = config.n_vertices
    if X.ndim != 3 or X.shape[1] != V or len(n) != len(X):
        raise ConfigError(
            f"with_edge_cases needs X of shape [B, {V}, F] and n of length B, got "
            f"{X.shape} and {n.shape}"
        )
    pool = np.concatenate([X[e, : min(int(k), V)] for e, k in enumerate(n)], axis=0)
    if len(pool) == 0:
        pool = np.zeros((1, X.shape[2]), dtype=X.dtype)
    pool = np.resize(pool, (V, X.shape[2]))  # repeats the hits when there are fewer than V
    counts = edge_case_counts(config)
    edge = np.zeros((len(counts), V, X.shape[2]), dtype=X.dtype)
    for i, k in enumerate(counts):
        edge[i, :k] = pool[:k]
    return np.concatenate([edge, X]), np.concatenate([np.asarray(counts, np.int64), n])


# ---------------------------------------------------------------------- model export
