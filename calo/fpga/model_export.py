"""Trained models to the firmware's inputs: what ``calo-export`` writes for each model.

Two kinds of calo-train models reach hls4ml's GarNet (``nnet_garnet.h``):

* the FPGA paper's e/pi model (``calo-train --task e_pi``, :class:`calo.fpga.qat.QGarNetModel`):
  :func:`export_qgarnet` writes its quantized GarNetStack (weights, types, the C++ header for
  ``nnet::garnet_stack``), the Dense head's float weights (the whole model with its quantized
  head: :mod:`calo.fpga.hls4ml_project`) and test vectors with the reference's expected
  output bits;
* a fraction-task GarNet (``calo-train --model garnet``) whose GarNet layers are in the form
  hls4ml implements (:func:`garnet_blockers` says what else blocks it):
  :func:`export_fraction_garnet` quantizes each GarNet layer after training as hls4ml's
  converter does and writes, per layer, a single-layer ``nnet::garnet`` with per-hit output,
  and test vectors made of the inputs the layer sees on real events. The rest of that model
  (the input Dense, tanh and BatchNorm between the layers, the head) is not a GarNet and is
  listed in ``model.json`` as not exported.

Every written header compiles with g++ against the hls4ml wheel's ``nnet_garnet.h``
(:func:`calo.fpga.harness.build_harness`) and gives the expected outputs bit for bit.

Examples
--------
>>> from calo.models.config import GarNetModelConfig, ModelConfig
>>> garnet_blockers(ModelConfig(name="garnet"))[0]
"the GarNet layers are the paper's full form (mean and max aggregation, output dense on the hit's features, the returned features and the edge weights); hls4ml's GarNet is the simplified form: train with model.garnet.simplified=true"
>>> cfg = GarNetModelConfig(simplified=True, potential="gauss", mean_by="vmax")
>>> garnet_blockers(ModelConfig(name="garnet", garnet=cfg))
[]
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calo.errors import ConfigError, DataError
from calo.fpga.data import FPGAFeatures
from calo.fpga.export import (
    edge_case_counts,
    hls_array_doc,
    with_edge_cases,
    write_hls_header,
    write_test_vectors,
)
from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
from calo.fpga.latency import pruned_dsp
from calo.fpga.qat import QGarNetModel
from calo.fpga.reference import FixedGarNet, MeanByNvertWarning
from calo.models.config import ModelConfig

__all__ = [
    "export_fraction_garnet",
    "export_qgarnet",
    "fraction_garnet_weights",
    "garnet_blockers",
]


def _array_entry(raw: np.ndarray, t: Any, key: str, struct: str) -> dict[str, Any]:
    return {
        **hls_array_doc(key, raw.shape, struct),
        "type": str(t),
        "shape": list(raw.shape),
        "zeros": int(np.count_nonzero(raw == 0)),
        "raw": raw.astype(np.int64).ravel().tolist(),
        "values": t.to_float(raw).ravel().tolist(),
    }


def _check_args(events: int, name: str) -> None:
    if events < 1:
        raise ConfigError(f"--events must be at least 1, got {events}")
    if not name.isidentifier():
        raise ConfigError(f"--name must be a C++ identifier, got {name!r}")


def _sublayer_doc(reference: FixedGarNet, npz: dict[str, np.ndarray], prefix: str) -> list[dict]:
    """The quantized arrays of each sublayer (for model.json) and into ``npz``."""
    out = []
    stack = len(reference.sublayers) > 1
    for li, q in enumerate(reference.sublayers):
        arrays = {}
        struct = f"config::sublayer_t<{li}>" if stack else "config"
        for key in ("w_d", "b_d", "w_in", "b_in", "b_out"):
            raw = getattr(q, key)
            arrays[key] = _array_entry(raw, q.types[key], key, struct)
            npz[f"{prefix}L{li}_{key}_raw"] = raw
            npz[f"{prefix}L{li}_{key}"] = q.values(key)
        out.append(
            {
                "n_in": q.n_in,
                "n_aggregators": q.n_aggregators,
                "n_propagate": q.n_propagate,
                "n_out": q.n_out,
                "arrays": arrays,
            }
        )
    return out


def _vectors(
    out: Path, reference: FixedGarNet, X: np.ndarray, n: np.ndarray, prefix: str = ""
) -> tuple[list[str], Any]:
    """Test vectors (the edge events of :func:`with_edge_cases` first), the reference's
    expected raw outputs and their values as hex doubles."""
    X, n = with_edge_cases(X, n, reference.config)
    X_raw = reference.quantize_inputs(X)
    expected, report = reference.run_raw(X_raw, n)
    vec = write_test_vectors(out / f"{prefix}test_vectors.txt", reference, X_raw, n, expected)
    vals = reference.types["output_t"].to_float(expected)
    exp_path = out / f"{prefix}expected_outputs.txt"
    with exp_path.open("w") as fh:
        for row in vals.reshape(vals.shape[0], -1):
            fh.write(" ".join(float(v).hex() for v in row) + "\n")
    return [vec.name, vec.with_suffix(".npz").name, exp_path.name], report, len(n)


def export_qgarnet(
    model: QGarNetModel,
    out: str | Path,
    features: FPGAFeatures,
    events: int = 100,
    data: str | Path | None = None,
    seed: int = 0,
    name: str = "calo_garnet",
    source: str = "",
    per_hit: bool = False,
) -> dict[str, Any]:
    """Write the export of an e/pi model into ``out``.

    With ``per_hit`` the GarNet's per-hit outputs (``collapse = none``) are exported instead
    of their mean; only a single-sublayer GarNet can (``nnet::garnet``): hls4ml 1.3's
    ``nnet::garnet_stack`` without collapse keeps only the means of its last sublayer
    (``garnet_utils::Means``, no per-hit edge weights) and then runs ``distribute``, which
    reads per-hit edge weights, so it does not compile.

    Files: ``model.json`` (the fixed-point configuration and its resolved types, per sublayer
    the quantized arrays as hls4ml's converter makes them, ``w_d``, ``b_d``, ``w_in``,
    ``b_in``, ``b_out``, each with its number of zero entries (``zeros``: pruned or rounded
    to zero; the firmware's multiplications by them cost nothing), the hls4ml config struct
    and member it fills (``hls4ml_struct``, ``hls4ml_member``), its axes, the flat index ``nnet_garnet.h`` reads
    it with and its flattening (row-major over the axes; :data:`calo.fpga.export.HLS_ARRAYS`),
    type, shape, raw integers and values in that order; the float32 Dense head; the feature
    scales; the test vectors' edge events; ``dsp_estimate``, the DSPs with the
    multiplications by zero weights left out, :func:`calo.fpga.latency.pruned_dsp`), ``model.npz`` (the same arrays, ``L<l>_<name>_raw`` and ``L<l>_<name>``,
    the float GarNet weights ``L<l>_float_<name>``, the head ``head_<i>_weight``/``_bias``),
    ``<name>.h`` (the header for ``nnet::garnet_stack``), ``test_vectors.txt``/``.npz`` and
    ``expected_outputs.txt`` (the reference's outputs as hexadecimal doubles, one event per
    line). The test vectors start with events of ``n = 0, 1, V/R, V`` hits
    (:func:`calo.fpga.export.with_edge_cases`), then ``events`` test events: toy events
    (:func:`calo.fpga.events.toy_events`) unless ``data`` names calo-simulate e/pi events.

    Returns a summary: the folder, the files, the number of test events and the overflows
    the reference counted on them.

    Examples
    --------
    >>> import json, tempfile, torch
    >>> from pathlib import Path
    >>> from calo.fpga.qat import QGarNetStack
    >>> _ = torch.manual_seed(0)
    >>> stack = QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> folder = Path(tempfile.mkdtemp())
    >>> summary = export_qgarnet(QGarNetModel(stack), folder / "export", FPGAFeatures(), events=4)
    >>> summary["files"], summary["events"], summary["edge_events"], summary["overflows"]
    (['model.json', 'model.npz', 'calo_garnet.h', 'test_vectors.txt', 'test_vectors.npz', 'expected_outputs.txt'], 8, [0, 1, 4, 16], {})
    >>> doc = json.loads((folder / "export" / "model.json").read_text())
    >>> doc["config"]["n_vertices"], doc["types"]["output_t"], len(doc["sublayers"])
    (16, 'ap_fixed<16,6>', 3)
    >>> w_in = doc["sublayers"][1]["arrays"]["w_in"]
    >>> w_in["hls4ml_struct"], w_in["hls4ml_member"], w_in["shape"], w_in["axes"]
    ('config::sublayer_t<1>', 'input_transform_weights', [8, 4, 8], ['out_feature', 'aggregator', 'in_feature'])
    >>> w_in["flat_index"]
    '(io * n_aggregators + ia) * n_in_features + ix'
    """
    from calo.fpga.events import toy_events

    _check_args(events, name)
    stack = model.stack
    cfg = stack.config
    sublayers = stack.quantized_sublayers()
    if per_hit:
        if len(sublayers) > 1:
            raise ConfigError(
                f"--per-hit: a GarNetStack of {len(sublayers)} sublayers has no per-hit form "
                "in hls4ml 1.3: nnet::garnet_stack without collapse keeps only the means of its "
                "last sublayer (garnet_utils::Means, no per-hit edge weights) and its distribute "
                "step reads per-hit edge weights, so the header does not compile; export the "
                "collapsed stack (without --per-hit) or train a single GarNet layer"
            )
        cfg = replace(cfg, collapse="none")
    reference = FixedGarNet(sublayers, cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    npz: dict[str, np.ndarray] = {}
    subl = _sublayer_doc(reference, npz, "")
    for li, fw in enumerate(stack.garnet_weights()):
        for key in ("flr_kernel", "flr_bias", "s_kernel", "s_bias", "fout_kernel", "fout_bias"):
            npz[f"L{li}_float_{key}"] = getattr(fw, key)
    head = []
    linears = [m for m in model.head if hasattr(m, "weight")]
    linears += [model.regression, model.classification]
    names = [f"dense_{i}" for i in range(len(model.head_dims))] + ["regression", "classification"]
    for i, (lin, nm) in enumerate(zip(linears, names, strict=True)):
        w = lin.weight.detach().cpu().numpy().astype(np.float32)
        b = lin.bias.detach().cpu().numpy().astype(np.float32)
        npz[f"head_{i}_weight"], npz[f"head_{i}_bias"] = w, b
        act = (
            "relu" if i < len(model.head_dims) else ("sigmoid" if i == len(names) - 1 else "linear")
        )
        head.append({"name": nm, "activation": act, "weight": w.tolist(), "bias": b.tolist()})
    doc = {
        "format": "calo-fpga-export",
        "version": 1,
        "source": source,
        "config": asdict(cfg),
        "types": {k: str(v) for k, v in stack.types.items()},
        "ternary": stack.ternary,
        "sublayers": subl,
        "head": {
            "dtype": "float32",
            "note": "the Dense head's float weights; inputs are the stack's output_t values; the "
            "quantized head (e_pi.quantize_head) is exported whole by calo-export --format hls4ml",
            "layers": head,
        },
        "hls4ml": {
            "header": f"{name}.h",
            "includes": "nnet_utils/nnet_garnet.h",
            "function": "nnet::garnet_stack" if len(sublayers) > 1 else "nnet::garnet",
            "output": "per hit [n_vertices, n_out]" if per_hit else "mean over hits [n_out]",
        },
        "energy_scale": model.energy_scale,
        "features": asdict(features),
    }
    heads = [npz[f"head_{i}_weight"] for i in range(len(linears))]
    dsp = pruned_dsp(sublayers, cfg.n_vertices, cfg.reuse_factor, stack.ternary, heads,
                     collapse=not per_hit)  # fmt: skip
    doc["dsp_estimate"] = {
        "dsp": dsp.dsp,
        "dense": dsp.dense,
        "terms": dsp.terms,
        "zero_weights": dsp.zero_weights,
        "weights": dsp.weights,
        "note": "calo.fpga.latency.pruned_dsp: multiplications by zero weights left out",
    }
    np.savez(out / "model.npz", **npz)
    header = write_hls_header(reference, None, out / f"{name}.h", name=name)
    V = cfg.n_vertices
    if data is not None:
        from calo.fpga.data import load_e_pi

        sample = load_e_pi(data, v_max=V, max_events=events, features=features)
        X, n = sample.X.double().numpy(), sample.n.numpy()
    else:
        X, n = toy_events(np.random.default_rng(seed), events, V, min(16, V), V)
    vec_files, report, n_vectors = _vectors(out, reference, X, n)
    doc["test_vectors"] = {
        "events": n_vectors,
        "sample_events": len(n),
        "edge_events": edge_case_counts(cfg),
    }
    (out / "model.json").write_text(json.dumps(doc, indent=1))
    return {
        "out": str(out),
        "files": ["model.json", "model.npz", header.name, *vec_files],
        "events": n_vectors,
        "edge_events": edge_case_counts(cfg),
        "overflows": report.as_dict(),
    }


# ---------------------------------------------------------------- fraction-task GarNet
def garnet_blockers(model: ModelConfig) -> list[str]:
    """What keeps a fraction-task model from hls4ml's GarNet layer (empty: nothing).

    hls4ml's GarNet is the simplified form (mean aggregation only, output dense on the
    returned features), with the potential exp(-d^2) and sums normalised by a fixed V_max or,
    with ``mean_by_nvert``, by the hit count. ``model.garnet.mean_by=n`` is therefore not a
    blocker: it exports with ``mean_by_nvert``, whose firmware computes ``(V/R)/n`` as an
    integer (0 for more than V/R hits); the reference reproduces that arithmetic bit for bit
    and :func:`export_fraction_garnet` reports how many test events it affects.

    Examples
    --------
    >>> print(garnet_blockers(ModelConfig(name="gravnet"))[0])
    model gravnet: GravNet layers (neighbours by a kNN in a learned space) have no hls4ml layer; only GarNet models export
    """
    if model.name != "garnet":
        kind = {"gravnet": "GravNet", "edgeconv": "EdgeConv"}.get(model.name, model.name)
        return [
            f"model {model.name}: {kind} layers (neighbours by a kNN in a learned space) have "
            "no hls4ml layer; only GarNet models export"
        ]
    g = model.garnet
    out = []
    if not g.simplified:
        out.append(
            "the GarNet layers are the paper's full form (mean and max aggregation, output "
            "dense on the hit's features, the returned features and the edge weights); "
            "hls4ml's GarNet is the simplified form: train with model.garnet.simplified=true"
        )
    if g.potential != "gauss":
        out.append(
            f"potential {g.potential}: hls4ml's GarNet weighs by exp(-d^2) from a table: "
            "train with model.garnet.potential=gauss"
        )
    if g.v_max < 1 or g.v_max & (g.v_max - 1):
        out.append(f"model.garnet.v_max={g.v_max}: hls4ml's V_max must be a power of two")
    return out


def fraction_garnet_weights(model: nn.Module) -> list[GarNetWeights]:
    """The float weights of each GarNet layer of a fraction GarNet model, in hls4ml's layout.

    Examples
    --------
    >>> from calo.models import build_model
    >>> from calo.models.config import GarNetModelConfig
    >>> cfg = GarNetModelConfig(n_blocks=2, simplified=True, potential="gauss", mean_by="vmax")
    >>> w = fraction_garnet_weights(build_model(ModelConfig(name="garnet", garnet=cfg)))
    >>> [(x.n_in, x.n_aggregators, x.n_propagate, x.n_out) for x in w]
    [(32, 4, 20, 32), (32, 4, 20, 32)]
    """

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().double().numpy()

    out = []
    for conv in model.convs:
        out.append(
            GarNetWeights(
                flr_kernel=arr(conv.lin_flr.weight).T,
                flr_bias=arr(conv.lin_flr.bias),
                s_kernel=arr(conv.lin_s.weight).T,
                s_bias=arr(conv.lin_s.bias),
                fout_kernel=arr(conv.lin_out.weight).T,
                fout_bias=arr(conv.lin_out.bias),
            )
        )
    return out


@torch.no_grad()
def _layer_inputs(model: nn.Module, events: Sequence[Any], v_max: int) -> tuple[list, np.ndarray]:
    """Each GarNet layer's input on ``events``, padded to ``[B, V_max, F]``; hit counts."""
    from torch_geometric.data import Batch

    captured: list[torch.Tensor] = []
    hooks = [c.register_forward_pre_hook(lambda m, a: captured.append(a[0])) for c in model.convs]
    try:
        batch = Batch.from_data_list(list(events))
        model.eval()(batch)
    finally:
        for h in hooks:
            h.remove()
    counts = torch.bincount(batch.batch, minlength=batch.num_graphs)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    n = counts.clamp(max=v_max).numpy().astype(np.int64)
    padded = []
    for x in captured:
        X = np.zeros((batch.num_graphs, v_max, x.shape[1]))
        for b in range(batch.num_graphs):
            X[b, : n[b]] = x[ptr[b] : ptr[b] + n[b]].double().numpy()
        padded.append(X)
    return padded, counts.numpy()


def export_fraction_garnet(
    model: nn.Module,
    model_cfg: ModelConfig,
    out: str | Path,
    events: Sequence[Any],
    reuse_factor: int | None = None,
    name: str = "calo_garnet",
    source: str = "",
) -> dict[str, Any]:
    """Quantize each GarNet layer of a fraction GarNet after training and export it.

    Per layer ``b``: ``layer<b>/<name>_<b>.h`` (a single ``nnet::garnet`` layer with per-hit
    output, V_max = ``model.garnet.v_max``, hls4ml's default types and converter weight types),
    the layer's test vectors (its inputs on ``events``, the first V_max hits of each, quantized
    to ``input_t``) and the reference's expected per-hit outputs. ``model.json`` lists every
    layer with its arrays, and the parts of the model that are not GarNets and are not exported.

    Raises
    ------
    ConfigError
        Naming what blocks the export (:func:`garnet_blockers`), or for a bad reuse factor.
    """
    blockers = garnet_blockers(model_cfg)
    if blockers:
        raise ConfigError("cannot export to hls4ml's GarNet: " + "; ".join(blockers))
    if not events:
        raise DataError("no events for the test vectors")
    _check_args(len(events), name)
    g = model_cfg.garnet
    V = g.v_max
    R = reuse_factor if reuse_factor is not None else max(V // 4, 1)
    nvert = g.mean_by == "n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeanByNvertWarning)  # reported in the summary
        cfg = GarNetFixedConfig(n_vertices=V, reuse_factor=R, collapse="none", mean_by_nvert=nvert)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    inputs, counts = _layer_inputs(model, events, V)
    npz: dict[str, np.ndarray] = {}
    layers, files, overflows = [], ["model.json", "model.npz"], {}
    for b, (w, X) in enumerate(zip(fraction_garnet_weights(model), inputs, strict=True)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MeanByNvertWarning)
            reference = FixedGarNet([w], cfg)
        folder = out / f"layer{b}"
        folder.mkdir(exist_ok=True)
        header = write_hls_header(reference, None, folder / f"{name}_{b}.h", name=f"{name}_{b}")
        vec_files, report, n_vectors = _vectors(folder, reference, X, np.minimum(counts, V))
        files += [f"layer{b}/{f}" for f in (header.name, *vec_files)]
        if report.as_dict():
            overflows[f"layer{b}"] = report.as_dict()
        layers.append(
            {
                "index": b,
                "header": f"layer{b}/{header.name}",
                "function": f"{name}_{b}",
                "sublayer": _sublayer_doc(reference, npz, f"layer{b}_")[0],
            }
        )
    truncated = int((counts > V).sum())
    pitfall = None
    if nvert:
        pitfall = {
            "mean_by_nvert": True,
            "events_with_zero_means": int((np.minimum(counts, V) > V // R).sum()),
            "of_events": len(counts),
            "note": f"the model was trained with means by the hit count n; hls4ml's "
            f"mean_by_nvert multiplies the sums by ({V}/{R})/n = {V // R}/n computed in "
            f"integers, 0 for n > {V // R}, so the firmware's means (and the exported "
            "reference's expected outputs, equal to them bit for bit) are 0 for those events "
            "and truncated for the others; a larger reuse factor (smaller V/R) makes it worse",
        }
    doc = {
        "format": "calo-fpga-export",
        "version": 1,
        "source": source,
        "model": "garnet (fraction task)",
        "config": asdict(cfg),
        "types": {k: str(v) for k, v in reference.types.items()},
        "layers": layers,
        "not_exported": [
            "input Dense + tanh",
            "tanh and BatchNorm after every GarNet layer",
            "the head (Dense relu, Dense, Dense + softmax over showers)",
        ],
        "mean_by_nvert": pitfall,
        "test_events": {
            "events": len(events),
            "truncated_to_v_max": truncated,
            "edge_events": edge_case_counts(cfg),
        },
    }
    (out / "model.json").write_text(json.dumps(doc, indent=1))
    np.savez(out / "model.npz", **npz)
    return {
        "out": str(out),
        "files": files,
        "events": n_vectors,
        "edge_events": edge_case_counts(cfg),
        "truncated_events": truncated,
        "mean_by_nvert": pitfall,
        "overflows": overflows,
    }
