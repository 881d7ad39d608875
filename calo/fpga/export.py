"""Export a fixed-point GarNet for hls4ml's ``nnet_garnet.h``: C++ header, test vectors, model.

:func:`write_hls_header` writes the weight arrays and config struct(s) in the form the header
takes, :func:`write_test_vectors` the inputs of a test bench; :func:`export_model` writes the
whole export of a trained checkpoint (what ``calo-export`` does) into a folder:

``model.json``
    The fixed-point configuration (:class:`~calo.fpga.garnet.GarNetFixedConfig` and its
    resolved types), per sublayer the quantized weight arrays as hls4ml's converter makes them
    (``w_d``, ``b_d``, ``w_in``, ``b_in``, ``b_out``: type, shape, raw integers and values),
    the float32 Dense head (it is not quantized) and the feature scales.
``model.npz``
    The same arrays: ``L<l>_<name>_raw`` (int64) and ``L<l>_<name>`` (float64 values),
    the float GarNet weights ``L<l>_float_<name>`` and the head ``head_<i>_weight``/``_bias``.
``<name>.h``
    The C++ header for hls4ml's ``nnet_garnet.h`` (:func:`write_hls_header`):
    weight arrays, ``struct config`` and a function ``<name>(x, nvtx, res)`` that calls
    ``nnet::garnet_stack`` (or ``nnet::garnet`` for one sublayer).
``test_vectors.txt`` / ``test_vectors.npz``
    Inputs for a test bench (:func:`write_test_vectors`) and, in the npz,
    ``expected_raw``: the stack outputs of the numba reference (raw ``output_t`` integers),
    equal bit for bit to the firmware's; ``expected_outputs.txt`` holds them as hexadecimal
    doubles, one event per line (the format of the g++ harness's output).

The test events are simulated toy events (:func:`calo.fpga.events.toy_events`) unless
``data`` names calo-simulate e/pi events. :mod:`calo.fpga.harness` compiles and runs the
header with g++.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from calo.errors import ConfigError
from calo.fpga.events import toy_events
from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
from calo.fpga.reference import FixedGarNet

__all__ = ["export_model", "hls_header_text", "write_hls_header", "write_test_vectors"]


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
        '#include "nnet_garnet.h"',
        "",
        f"namespace {namespace} {{" if namespace else "",
        f"typedef {ty['input_t'].cpp()} input_t;",
        f"typedef ap_uint<{cfg.nvtx_width}> nvtx_t;",
        f"typedef {ty['output_t'].cpp()} result_t;",
        "",
    ]
    arrays = []
    for li, s in enumerate(model.sublayers):
        for key, hname in (
            ("w_in", "input_transform_weights"),
            ("b_in", "input_transform_biases"),
            ("w_d", "aggregator_distance_weights"),
            ("b_d", "aggregator_distance_biases"),
            ("b_out", "output_transform_biases"),
        ):
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


# ---------------------------------------------------------------------- model export
def _array_entry(raw: np.ndarray, t: Any) -> dict[str, Any]:
    return {
        "type": str(t),
        "shape": list(raw.shape),
        "raw": raw.astype(np.int64).ravel().tolist(),
        "values": t.to_float(raw).ravel().tolist(),
    }


def _sublayer_entries(qsubs: Sequence[Any], floats: Sequence[Any], npz: dict[str, Any]) -> list:
    """model.json entries of the quantized sublayers; their arrays (and float weights) go to
    ``npz``."""
    subl = []
    for li, (q, fw) in enumerate(zip(qsubs, floats, strict=True)):
        arrays = {}
        for key in ("w_d", "b_d", "w_in", "b_in", "b_out"):
            raw = getattr(q, key)
            arrays[key] = _array_entry(raw, q.types[key])
            npz[f"L{li}_{key}_raw"] = raw
            npz[f"L{li}_{key}"] = q.values(key)
        for key in ("flr_kernel", "flr_bias", "s_kernel", "s_bias", "fout_kernel", "fout_bias"):
            npz[f"L{li}_float_{key}"] = getattr(fw, key)
        subl.append(
            {
                "n_in": q.n_in,
                "n_aggregators": q.n_aggregators,
                "n_propagate": q.n_propagate,
                "n_out": q.n_out,
                "arrays": arrays,
            }
        )
    return subl


def _head_entries(model: Any, npz: dict[str, Any]) -> list:
    """model.json entries of the float32 Dense head; its arrays go to ``npz``."""
    head = []
    linears = [m for m in model.head if hasattr(m, "weight")]
    linears += [model.regression, model.classification]
    names = [f"dense_{i}" for i in range(len(model.head_dims))] + ["regression", "classification"]
    for i, (lin, nm) in enumerate(zip(linears, names, strict=True)):
        w = lin.weight.detach().cpu().numpy().astype(np.float32)
        b = lin.bias.detach().cpu().numpy().astype(np.float32)
        npz[f"head_{i}_weight"], npz[f"head_{i}_bias"] = w, b
        act = (
            "relu"
            if i < len(model.head_dims)
            else ("sigmoid" if nm == "classification" else "linear")
        )
        head.append({"name": nm, "activation": act, "weight": w.tolist(), "bias": b.tolist()})
    return head


def export_model(
    checkpoint: str | Path,
    out: str | Path,
    events: int = 100,
    data: str | Path | None = None,
    seed: int = 0,
    name: str = "calo_garnet",
) -> dict[str, Any]:
    """Write the export of ``checkpoint`` into ``out`` (the files of the module docstring).

    Returns a summary: the files written, the number of test events and the overflows the
    reference counted on them.

    Raises
    ------
    CheckpointError
        For a missing, unreadable or foreign checkpoint.
    ConfigError
        For a bad number of events or an invalid C++ name.

    Examples
    --------
    The stack is the one of :mod:`calo.fpga.qat`'s example, so the two share the compiled
    numba kernel of the reference. ``calo-export`` (:mod:`calo.fpga.cli`) calls this.

    >>> import json, tempfile, torch
    >>> from pathlib import Path
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> from calo.fpga.qat import QGarNetModel, QGarNetStack
    >>> from calo.fpga.train import save_checkpoint
    >>> _ = torch.manual_seed(0)
    >>> stack = QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> folder = Path(tempfile.mkdtemp())
    >>> ckpt = save_checkpoint(QGarNetModel(stack), folder / "m.ckpt")
    >>> summary = export_model(ckpt, folder / "export", events=4)
    >>> summary["files"], summary["events"], summary["overflows"]
    (['model.json', 'model.npz', 'calo_garnet.h', 'test_vectors.txt', 'test_vectors.npz', 'expected_outputs.txt'], 4, {})
    >>> doc = json.loads((folder / "export" / "model.json").read_text())
    >>> doc["config"]["n_vertices"], doc["types"]["output_t"], len(doc["sublayers"])
    (16, 'ap_fixed<16,6>', 3)
    """
    from calo.fpga.train import load_checkpoint

    if events < 1:
        raise ConfigError(f"--events must be at least 1, got {events}")
    if not name.isidentifier():
        raise ConfigError(f"--name must be a C++ identifier, got {name!r}")
    model, meta = load_checkpoint(checkpoint)
    stack = model.stack
    cfg = stack.config
    qsubs = stack.quantized_sublayers()
    reference = FixedGarNet(qsubs, cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # ---- weights and types: JSON and npz
    npz: dict[str, np.ndarray] = {}
    subl = _sublayer_entries(qsubs, stack.garnet_weights(), npz)
    head = _head_entries(model, npz)
    doc = {
        "format": "calo-fpga-export",
        "version": 1,
        "checkpoint": str(checkpoint),
        "config": asdict(cfg),
        "types": {k: str(v) for k, v in stack.types.items()},
        "ternary": stack.ternary,
        "sublayers": subl,
        "head": {
            "dtype": "float32",
            "note": "the Dense head is not quantized; inputs are the stack's output_t values",
            "layers": head,
        },
        "energy_scale": model.energy_scale,
        "features": asdict(meta["features"]),
        "metadata": meta["metadata"],
    }
    (out / "model.json").write_text(json.dumps(doc, indent=1))
    np.savez(out / "model.npz", **npz)

    # ---- header
    header = write_hls_header(reference, None, out / f"{name}.h", name=name)

    # ---- test vectors
    V = cfg.n_vertices
    if data is not None:
        from calo.fpga.data import load_e_pi

        sample = load_e_pi(data, v_max=V, max_events=events, features=meta["features"])
        X, n = sample.X.double().numpy(), sample.n.numpy()
    else:
        X, n = toy_events(np.random.default_rng(seed), events, V, min(16, V), V)
    X_raw = reference.quantize_inputs(X)
    expected, report = reference.run_raw(X_raw, n)
    vec = write_test_vectors(out / "test_vectors.txt", reference, X_raw, n, expected)
    t_out = stack.types["output_t"]
    vals = t_out.to_float(expected)
    with (out / "expected_outputs.txt").open("w") as fh:
        for row in vals.reshape(vals.shape[0], -1):
            fh.write(" ".join(float(v).hex() for v in row) + "\n")
    files = ["model.json", "model.npz", header.name, vec.name, "test_vectors.npz"]
    files.append("expected_outputs.txt")
    return {
        "out": str(out),
        "files": files,
        "events": len(n),
        "overflows": report.as_dict(),
    }
