"""The whole e/pi model as an hls4ml project, built through hls4ml's own Python API.

:func:`to_hls4ml` turns a :class:`calo.fpga.qat.QGarNetModel` (GarNetStack, Dense head,
regression and classification outputs) into an hls4ml ``ModelGraph``. hls4ml 1.3 reaches its
``GarNetStack`` layer only from its Keras converter, and calo does not depend on Keras, so the
model is handed to hls4ml as the converter's intermediate form: the list of layer dictionaries
that hls4ml's Keras handlers produce (``parse_garnet_layer`` for the stack, the Dense and
Activation handlers for the head), given to ``hls4ml.model.graph.ModelGraph.from_layer_list``,
the constructor every hls4ml converter ends in. From there everything is hls4ml's: the layer
classes (``GarNetStack`` contracts the input transforms and sizes each weight array from its
values), the optimizer flows, the Vivado backend's templates (``garnet_templates.py``,
``nnet::dense``, ``nnet::relu``), the writer and ``build_lib.sh``. Nothing of hls4ml's
templates is copied here.

The project has two inputs, ``x [V_max * 4]`` (the padded hits, ``input_t`` of the stack's
:class:`~calo.fpga.garnet.GarNetFixedConfig`) and ``nvtx [1]`` (the number of hits,
``ap_uint<nvtx_width>``), and the outputs ``regression`` and ``classification`` (the logit),
with ``stack_output=True`` also the GarNetStack's output ``garnet_stack``. After
``hls_model.compile()`` (g++ only), ``hls_model.predict(hls4ml_inputs(X, n))`` equals
:func:`reference_outputs` (the model in eval mode with the stack and the head quantized) bit
for bit; :func:`check_weights` verifies that every array hls4ml writes holds the values calo
computes with.

Examples
--------
>>> import numpy as np, torch
>>> from calo.fpga.garnet import GarNetFixedConfig
>>> from calo.fpga.qat import QGarNetModel, QGarNetStack
>>> cfg = GarNetFixedConfig(n_vertices=16, reuse_factor=4)
>>> model = QGarNetModel(QGarNetStack(sublayers=((2, 3, 4),), config=cfg), head=(4,))
>>> [layer["class_name"] for layer in hls4ml_layers(model)[0]]
['InputLayer', 'InputLayer', 'GarNetStack', 'Dense', 'Activation', 'Dense', 'Dense']
>>> hls_model = to_hls4ml(model, "hls_prj", stack_output=True)  # doctest: +SKIP
>>> hls_model.compile()  # doctest: +SKIP
>>> X, n = np.zeros((3, 16, 4)), np.array([0, 1, 16])
>>> out = hls_model.predict(hls4ml_inputs(X, n))  # doctest: +SKIP
>>> ref = reference_outputs(model, X, n)
>>> sorted(ref)
['classification', 'garnet_stack', 'regression']
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from calo.errors import ConfigError, FixedPointError
from calo.fpga.fixed import FixedType, quantize
from calo.fpga.garnet import GarNetFixedConfig
from calo.fpga.qat import QGarNetModel, fake_quantize

__all__ = [
    "HLS4ML_OUTPUTS",
    "check_weights",
    "export_hls4ml",
    "hls4ml_config",
    "hls4ml_inputs",
    "hls4ml_layers",
    "predict_outputs",
    "reference_outputs",
    "to_hls4ml",
]

#: Names of the project's outputs, in the order of ``hls_model.predict`` (the stack's output
#: only with ``stack_output=True``).
HLS4ML_OUTPUTS = ("garnet_stack", "regression", "classification")

_INPUT, _NVTX, _STACK = "x", "nvtx", "garnet_stack"


def _check_supported(cfg: GarNetFixedConfig) -> None:
    """Raise ConfigError for settings of calo's stack that hls4ml's GarNetStack cannot take."""
    bad = []
    if (cfg.distance_width, cfg.distance_nint) != (12, 4):
        bad.append(
            f"distance_t ap_fixed<{cfg.distance_width},{cfg.distance_nint}> (hls4ml's template "
            "fixes ap_fixed<12,4,AP_TRN,AP_SAT>)"
        )
    if cfg.weight_t is not None:
        bad.append(f"weight_t={cfg.weight_t} (hls4ml sizes each GarNet array from its values)")
    if cfg.weight_frac != 10:
        bad.append(f"weight_frac={cfg.weight_frac} (hls4ml's GarNet arrays have 10)")
    if cfg.collapse != "mean" or cfg.mean_by_nvert:
        bad.append("collapse other than 'mean' by V_max")
    if bad:
        raise ConfigError("hls4ml's GarNetStack cannot express " + "; ".join(bad))


def _f64(t: torch.Tensor) -> NDArray[np.float64]:
    return t.detach().cpu().to(torch.float64).numpy().copy()


def _dense_arrays(model: QGarNetModel, lin: torch.nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``[n_in, n_out]`` and biases as the values of ``weight_t``/``bias_t`` (exact, so
    that hls4ml prints them without rounding)."""
    t = model.head_types
    with torch.no_grad():
        w = fake_quantize(lin.weight.detach().cpu().to(torch.float64).T, t["weight_t"])
        b = fake_quantize(lin.bias.detach().cpu().to(torch.float64), t["bias_t"])
    return np.ascontiguousarray(_f64(w)), _f64(b)


def hls4ml_layers(
    model: QGarNetModel, stack_output: bool = False
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """hls4ml's layer list of the model: ``(layers, input names, output names)``.

    Each dictionary is what hls4ml's Keras handlers produce for the layer (``class_name``,
    ``inputs``, sizes and ``*_data`` weight arrays; the GarNetStack's keys are those of
    ``hls4ml.converters.keras.graph.parse_garnet_layer``, its kernels in Keras' layout), ready
    for ``ModelGraph.from_layer_list``. The Dense weights are given as the values of the
    head's ``weight_t`` and ``bias_t`` (exact decimals for hls4ml's writer).

    Raises
    ------
    ConfigError
        If the stack uses settings hls4ml's GarNetStack cannot express.

    Examples
    --------
    >>> from calo.fpga.qat import QGarNetModel
    >>> layers, inputs, outputs = hls4ml_layers(QGarNetModel())
    >>> inputs, outputs
    (['x', 'nvtx'], ['regression', 'classification'])
    >>> g = layers[2]
    >>> g["n_in_features"], g["n_aggregators"], g["n_propagate"], g["n_out_features"]
    ([4, 8, 8], [4, 4, 8], [8, 8, 16], [8, 8, 16])
    """
    stack = model.stack
    cfg = stack.config
    _check_supported(cfg)
    V = cfg.n_vertices
    layers: list[dict[str, Any]] = [
        {"name": _INPUT, "class_name": "InputLayer", "input_shape": [V, stack.n_in]},
        {"name": _NVTX, "class_name": "InputLayer", "input_shape": [1]},
    ]
    subs = stack.sublayer_dims
    garnet: dict[str, Any] = {
        "name": _STACK,
        "class_name": "GarNetStack",
        "inputs": [_INPUT, _NVTX],
        "data_format": "channels_last",
        "input_format": "xn",
        "n_vertices": V,
        "collapse": "mean",
        "mean_by_nvert": False,
        "n_sublayers": len(subs),
        "n_aggregators": [a for a, _, _ in subs],
        "n_propagate": [p for _, p, _ in subs],
        "n_out_features": [o for _, _, o in subs],
        "n_in_features": [stack.n_in] + [o for _, _, o in subs[:-1]],
    }
    for il, w in enumerate(stack.garnet_weights()):
        for key, attr in (("FLR", "flr"), ("S", "s"), ("Fout", "fout")):
            garnet[f"{key}{il}_kernel_data"] = getattr(w, f"{attr}_kernel")
            garnet[f"{key}{il}_bias_data"] = getattr(w, f"{attr}_bias")
    layers.append(garnet)
    prev, n_in = _STACK, stack.n_out
    for i, lin in enumerate(model.dense_layers()):
        w, b = _dense_arrays(model, lin)
        name = f"dense{i}"
        layers.append(
            {
                "name": name,
                "class_name": "Dense",
                "inputs": [prev],
                "data_format": "channels_last",
                "n_in": n_in,
                "n_out": lin.out_features,
                "weight_data": w,
                "bias_data": b,
            }
        )
        layers.append(
            {"name": f"relu{i}", "class_name": "Activation", "activation": "relu", "inputs": [name]}
        )
        prev, n_in = f"relu{i}", lin.out_features
    for name, lin in (("regression", model.regression), ("classification", model.classification)):
        w, b = _dense_arrays(model, lin)
        layers.append(
            {
                "name": name,
                "class_name": "Dense",
                "inputs": [prev],
                "data_format": "channels_last",
                "n_in": n_in,
                "n_out": 1,
                "weight_data": w,
                "bias_data": b,
            }
        )
    outputs = (["garnet_stack"] if stack_output else []) + ["regression", "classification"]
    return layers, [_INPUT, _NVTX], outputs


def hls4ml_config(
    model: QGarNetModel,
    output_dir: str | Path,
    project_name: str = "calo_garnet",
    backend: str = "Vivado",
    **backend_options: Any,
) -> dict[str, Any]:
    """hls4ml's conversion configuration: ``hls4ml.utils.config.create_config`` plus the
    ``HLSConfig`` with every type calo computes with.

    ``Model``: ``ap_fixed<16,6>``, reuse factor 1, latency strategy. ``LayerName``: the input
    ``x`` in ``input_t``, ``nvtx`` in ``ap_uint<nvtx_width>``; the GarNetStack with the reuse
    factor R, ``result`` = ``output_t`` and its internal types (``edge_weight``,
    ``edge_weight_aggr``, ``aggr``, ``norm``); each Dense layer ``weight``, ``bias``,
    ``accum``, ``result`` and each ReLU ``result`` from the head's
    :class:`~calo.fpga.qat.HeadFixedConfig`. ``backend_options`` go to ``create_config``
    (``part``, ``clock_period``, ...).

    Examples
    --------
    >>> from calo.fpga.qat import QGarNetModel
    >>> c = hls4ml_config(QGarNetModel(), "prj")
    >>> c["HLSConfig"]["LayerName"]["garnet_stack"]["ReuseFactor"], c["ProjectName"]
    (32, 'calo_garnet')
    >>> c["HLSConfig"]["LayerName"]["dense0"]["Precision"]["accum"]
    'ap_fixed<24,10>'
    """
    from hls4ml.utils.config import create_config

    stack = model.stack
    cfg = stack.config
    types = cfg.types()
    config = create_config(
        output_dir=str(output_dir), project_name=project_name, backend=backend, **backend_options
    )
    head = model.head_fixed
    dense = {"weight": head.weight_t, "bias": head.bias_t, "accum": head.accum_t}
    names: dict[str, Any] = {
        _INPUT: {"Precision": {"result": str(types["input_t"])}},
        _NVTX: {"Precision": {"result": f"ap_uint<{cfg.nvtx_width}>"}},
        _STACK: {
            "ReuseFactor": cfg.reuse_factor,
            "Precision": {
                "result": str(types["output_t"]),
                "edge_weight": str(types["edge_weight_t"]),
                "edge_weight_aggr": str(types["edge_weight_aggr_t"]),
                "aggr": str(types["aggr_t"]),
                "norm": str(types["norm_t"]),
            },
        },
    }
    for i in range(len(model.head_dims)):
        names[f"dense{i}"] = {
            "ReuseFactor": 1,
            "Precision": {**dense, "result": head.result_t},
        }
        names[f"relu{i}"] = {"Precision": {"result": head.relu_t}}
    for name in ("regression", "classification"):
        names[name] = {"ReuseFactor": 1, "Precision": {**dense, "result": head.result_t}}
    config["HLSConfig"] = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": names,
    }
    return config


def to_hls4ml(
    model: QGarNetModel,
    output_dir: str | Path,
    project_name: str = "calo_garnet",
    backend: str = "Vivado",
    stack_output: bool = False,
    write: bool = True,
    **backend_options: Any,
) -> Any:
    """The hls4ml ``ModelGraph`` of the whole model, written to ``output_dir``.

    Built with ``ModelGraph.from_layer_list(hls4ml_config(...), *hls4ml_layers(...))``; the
    weights hls4ml holds are checked against calo's (:func:`check_weights`). Call
    ``compile()`` on the result to build it with g++, then ``predict(hls4ml_inputs(X, n))``;
    ``build()`` runs the HLS tool. The head is written in fixed point whether or not the model
    was trained with ``quantize_head``; only :func:`reference_outputs` (the quantized model)
    is bit for bit the project.

    Parameters
    ----------
    model:
        The e/pi model (its stack needs hls4ml's defaults for ``distance_t`` and the weights'
        fractional bits, collapse ``mean`` by V_max).
    output_dir, project_name, backend:
        hls4ml's project folder, top function name and backend (``Vivado``, ``Vitis``).
    stack_output:
        Also output the GarNetStack's result (``garnet_stack``, first of the outputs).
    write:
        Write the project now (``compile()`` writes it anyway).
    **backend_options:
        Passed to hls4ml's ``create_config`` (``part``, ``clock_period``, ...).

    Raises
    ------
    ConfigError
        If hls4ml is missing or cannot express the stack's settings.
    FixedPointError
        If an array hls4ml writes would not hold calo's values.

    Examples
    --------
    >>> from calo.fpga.qat import QGarNetModel
    >>> hls_model = to_hls4ml(QGarNetModel(), "prj", write=False)  # doctest: +SKIP
    >>> [v.name for v in hls_model.get_output_variables()]  # doctest: +SKIP
    ['layer8_out', 'layer9_out']
    """
    try:
        from hls4ml.model.graph import ModelGraph
    except ImportError:
        raise ConfigError(
            "hls4ml is not installed; install calo with the fpga extra (pip install -e '.[fpga]')"
        ) from None
    if not project_name.isidentifier():
        raise ConfigError(f"project_name must be a C++ identifier, got {project_name!r}")
    layers, inputs, outputs = hls4ml_layers(model, stack_output=stack_output)
    config = hls4ml_config(model, output_dir, project_name, backend, **backend_options)
    hls_model = ModelGraph.from_layer_list(config, layers, inputs=inputs, outputs=outputs)
    check_weights(hls_model, model)
    if write:
        hls_model.write()
    return hls_model


def _hls_type(precision: Any) -> FixedType:
    """calo's FixedType of an hls4ml FixedPrecisionType."""
    from hls4ml.backends.fpga.fpga_types import APTypeConverter

    return FixedType.parse(APTypeConverter().convert(precision).definition_cpp())


def _held_raw(var: Any) -> NDArray[np.int64]:
    """Raw values the C++ holds for an hls4ml weight variable: the decimals hls4ml's writer
    prints (``var``'s own formatting), read as doubles and assigned to the array's type."""
    text = np.array([float(s) for s in var], dtype=np.float64)
    return np.asarray(quantize(text, _hls_type(var.type.precision)), dtype=np.int64)


def check_weights(hls_model: Any, model: QGarNetModel) -> int:
    """Check that every weight array of the hls4ml project holds calo's values; returns the
    number of arrays checked.

    For each array the decimals hls4ml's writer prints are assigned to the array's type as the
    C++ does, and compared with calo's raw integers: the GarNetStack's
    (:meth:`~calo.fpga.qat.QGarNetStack.quantized_sublayers`: ``aggregator_distance`` = ``w_d,
    b_d``, ``input_transform`` = ``w_in, b_in``, ``output_transform`` biases = ``b_out``, each
    type included) and the head's weights and biases in ``weight_t``/``bias_t``.

    Raises
    ------
    FixedPointError
        Naming the first array and index that differ.
    """
    nodes = {layer.name: layer for layer in hls_model.get_layers()}
    checked = 0

    def compare(what: str, var: Any, raw: ArrayLike, t: FixedType) -> None:
        nonlocal checked
        held = _held_raw(var)
        ht = _hls_type(var.type.precision)
        exp = np.asarray(raw, dtype=np.int64).reshape(-1)
        if ht != t:
            raise FixedPointError(f"hls4ml array {what} has type {ht}, calo computes with {t}")
        if held.shape != exp.shape or not np.array_equal(held, exp):
            bad = int(np.flatnonzero(held != exp)[0]) if held.shape == exp.shape else -1
            raise FixedPointError(
                f"hls4ml array {what} would hold other values than calo's (first at flat index "
                f"{bad}: {held[bad] if bad >= 0 else held.shape} vs "
                f"{exp[bad] if bad >= 0 else exp.shape})"
            )
        checked += 1

    garnet = nodes[_STACK]
    names = {
        "aggregator_distance_{il}_weights": "w_d",
        "aggregator_distance_{il}_biases": "b_d",
        "input_transform_{il}_weights": "w_in",
        "input_transform_{il}_biases": "b_in",
        "output_transform_{il}_biases": "b_out",
    }
    for il, q in enumerate(model.stack.quantized_sublayers()):
        for pattern, key in names.items():
            wname = pattern.format(il=il)
            compare(f"{_STACK}.{wname}", garnet.weights[wname], getattr(q, key), q.types[key])
    t = model.head_types
    lins = [(f"dense{i}", lin) for i, lin in enumerate(model.dense_layers())]
    lins += [("regression", model.regression), ("classification", model.classification)]
    for name, lin in lins:
        w, b = _dense_arrays(model, lin)
        node = nodes[name]
        compare(f"{name}.weight", node.weights["weight"], quantize(w, t["weight_t"]), t["weight_t"])
        compare(f"{name}.bias", node.weights["bias"], quantize(b, t["bias_t"]), t["bias_t"])
    return checked


def hls4ml_inputs(X: ArrayLike, n: ArrayLike) -> list[NDArray[np.float64]]:
    """The two inputs of ``hls_model.predict``: hits ``[B, V*F]`` and counts ``[B, 1]``, as
    C-contiguous float64 (hls4ml's bridge converts doubles to ``input_t`` and
    ``ap_uint``).

    Examples
    --------
    >>> [a.shape for a in hls4ml_inputs(np.zeros((3, 16, 4)), [0, 1, 16])]
    [(3, 64), (3, 1)]
    """
    Xa = np.asarray(X, dtype=np.float64)
    na = np.asarray(n, dtype=np.float64).reshape(-1, 1)
    if Xa.ndim != 3 or na.shape[0] != Xa.shape[0]:
        raise ConfigError(f"expected X [B, V, F] and n [B], got {Xa.shape} and {na.shape}")
    return [np.ascontiguousarray(Xa.reshape(Xa.shape[0], -1)), np.ascontiguousarray(na)]


def predict_outputs(hls_model: Any, X: ArrayLike, n: ArrayLike) -> dict[str, NDArray]:
    """``hls_model.predict`` on events ``X [B, V, F]``, ``n [B]``, as a dictionary by output
    name (``regression`` and ``classification`` ``[B]``, ``garnet_stack [B, F_out]`` when the
    project has it)."""
    out = hls_model.predict(hls4ml_inputs(X, n))
    out = out if isinstance(out, list) else [out]
    names = HLS4ML_OUTPUTS[-len(out) :]
    B = np.asarray(n).reshape(-1).shape[0]
    res = {}
    for name, o in zip(names, out, strict=True):
        o = np.asarray(o, dtype=np.float64).reshape(B, -1)
        res[name] = o[:, 0] if name != _STACK else o
    return res


def reference_outputs(model: QGarNetModel, X: ArrayLike, n: ArrayLike) -> dict[str, NDArray]:
    """calo's outputs of the hls4ml project: the model in eval mode with the stack and the
    head quantized (a copy; ``model`` is left as it is), ``garnet_stack [B, F_out]``,
    ``regression [B]`` and ``classification [B]`` (logits), float64.

    Examples
    --------
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> from calo.fpga.qat import QGarNetModel, QGarNetStack
    >>> cfg = GarNetFixedConfig(n_vertices=16, reuse_factor=4)
    >>> m = QGarNetModel(QGarNetStack(config=cfg), quantize_head=False)
    >>> r = reference_outputs(m, np.zeros((2, 16, 4)), [0, 3])
    >>> r["garnet_stack"].shape, r["regression"].shape, m.quantize_head
    ((2, 16), (2,), False)
    """
    ref = copy.deepcopy(model).eval()
    ref.quantize_head = True
    ref.set_quantized(True)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64))
    nt = torch.as_tensor(np.asarray(n, dtype=np.int64).reshape(-1))
    with torch.no_grad():
        z = ref.stack(Xt, nt)
        reg, logit = ref.forward_head(z)
    return {
        "garnet_stack": _f64(z),
        "regression": _f64(reg),
        "classification": _f64(logit),
    }


def export_hls4ml(
    model: QGarNetModel,
    out: str | Path,
    features: Any = None,
    events: int = 100,
    data: str | Path | list[str] | None = None,
    seed: int = 0,
    name: str = "calo_garnet",
    source: str = "",
    compile: bool = False,
    stack_output: bool = False,
) -> dict[str, Any]:
    """Write the hls4ml project of ``model`` into ``out`` (what ``calo-export --format
    hls4ml`` does), with test events and calo's expected outputs.

    Files: hls4ml's project (``firmware/``, ``<name>_bridge.cpp``, ``build_lib.sh``,
    ``build_prj.tcl``, ...; :func:`to_hls4ml`), ``calo_test_events.npz`` (``X [B, V, F]``,
    ``n [B]`` and :func:`reference_outputs`: ``garnet_stack``, ``regression``,
    ``classification``), and ``calo_hls4ml.json`` (source, types, outputs, how to predict).
    The project's outputs are ``regression`` and ``classification``, with ``stack_output``
    the GarNetStack's output ``garnet_stack`` first.
    The test events start with ``n = 0, 1, V/R, V`` hits
    (:func:`calo.fpga.export.with_edge_cases`), then ``events`` toy events or the first
    ``events`` of ``data`` (calo-simulate e/pi files, featurised with ``features``). With
    ``compile`` the project is built with g++ and ``predict`` is compared with calo's outputs
    on the test events (``bit_exact`` and the number of differing values per output).

    Raises
    ------
    ConfigError
        For fewer than one event, an invalid name, or a stack hls4ml cannot express.
    FixedPointError
        If hls4ml would hold other weights than calo's.

    Examples
    --------
    >>> import tempfile
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> from calo.fpga.qat import QGarNetModel, QGarNetStack
    >>> cfg = GarNetFixedConfig(n_vertices=16, reuse_factor=4)
    >>> m = QGarNetModel(QGarNetStack(sublayers=((2, 3, 4),), config=cfg), head=(4,))
    >>> s = export_hls4ml(m, Path(tempfile.mkdtemp()) / "prj", events=4)
    >>> s["events"], s["edge_events"], s["bit_exact"], s["weights_checked"]
    (8, [0, 1, 4, 16], None, 11)
    """
    import json

    from calo.fpga.data import FPGAFeatures, load_e_pi
    from calo.fpga.events import toy_events
    from calo.fpga.export import edge_case_counts, with_edge_cases

    if events < 1:
        raise ConfigError(f"events must be at least 1, got {events}")
    out = Path(out)
    cfg = model.stack.config
    V = cfg.n_vertices
    hls_model = to_hls4ml(model, out, project_name=name, stack_output=stack_output)
    if data is not None:
        files = [str(data)] if isinstance(data, str | Path) else [str(f) for f in data]
        sample = load_e_pi(files, v_max=V, max_events=events, features=features or FPGAFeatures())
        X, n = sample.X.double().numpy(), sample.n.numpy()
    else:
        X, n = toy_events(np.random.default_rng(seed), events, V, min(16, V), V)
    X, n = with_edge_cases(X, n, cfg)
    ref = reference_outputs(model, X, n)
    np.savez(out / "calo_test_events.npz", X=X, n=n, **ref)
    summary: dict[str, Any] = {
        "out": str(out),
        "project_name": name,
        "files": ["firmware/", f"{name}_bridge.cpp", "calo_test_events.npz", "calo_hls4ml.json"],
        "events": len(n),
        "edge_events": edge_case_counts(cfg),
        "weights_checked": check_weights(hls_model, model),
        "bit_exact": None,
        "differing_values": None,
    }
    if compile:
        hls_model.compile()
        got = predict_outputs(hls_model, X, n)
        diff = {k: int(np.count_nonzero(got[k] != ref[k])) for k in got}
        summary["differing_values"] = diff
        summary["bit_exact"] = not any(diff.values())
    doc = {
        "format": "calo-hls4ml-project",
        "version": 1,
        "source": source,
        "trained_with_quantized_head": bool(model.quantize_head),
        "stack_config": asdict(cfg),
        "stack_types": {k: str(v) for k, v in model.stack.types.items()},
        "head_types": {k: str(v) for k, v in model.head_types.items()},
        "inputs": {"x": [V, model.stack.n_in], "nvtx": [1]},
        "outputs": list(HLS4ML_OUTPUTS[0 if stack_output else 1 :]),
        "energy_scale": model.energy_scale,
        "features": None if features is None else asdict(features),
        "usage": "hls4ml.converters.link_existing_project(DIR) or calo.fpga.hls4ml_project."
        "to_hls4ml(model, DIR); compile(); predict([X.reshape(B, -1), n.reshape(B, 1)]) -> "
        "[(garnet_stack,) regression, classification logit]",
        **{k: summary[k] for k in ("events", "edge_events", "bit_exact", "differing_values")},
    }
    (out / "calo_hls4ml.json").write_text(json.dumps(doc, indent=1, default=str))
    return summary
