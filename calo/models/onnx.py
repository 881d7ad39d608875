"""ONNX export of calo's models for ONNX Runtime and Triton: the fraction models (GravNet,
GarNet, DGCNN), the condensation models and, in float arithmetic, the e/pi GarNet.

A fraction model's graph has two inputs and one output, every size dynamic:

========== ============== ======= ==========================================================
name       shape          dtype   meaning
========== ============== ======= ==========================================================
``x``      ``[N, F]``     float32 hit features, already normalised: ``(f - offset) / scale``
                                  with the run's normalisation (written beside the model)
``batch``  ``[N]``        int64   event index of every hit, sorted (non-decreasing)
``fractions`` ``[N, K]``  float32 energy fraction of every hit in each of the K showers
========== ============== ======= ==========================================================

``N`` (hits of all events together) and the number of events are free; any ``N >= 1`` runs,
events with fewer hits than ``k`` included. The kNN of GravNet and of the DGCNN is inside the
graph: one block of pairwise squared distances ``[N, N]``, pairs of different events masked
with ``inf``, then ``TopK`` (:func:`calo.nn.knn`, backend ``"dense"``); exact, but its cost
and memory grow as ``N^2`` per call, so feed one event (or a few) per call
(docs/deployment.md). Per-event means and maxima are ``ScatterElements`` into buffers of
``N`` rows. The model is traced by ``torch.export`` (``torch.onnx.export(..., dynamo=True)``,
which needs the ``onnx`` and ``onnxscript`` packages) from its own ``forward``: there is no
second implementation of the layers to keep in step.

A :class:`~calo.models.CondensationModel` (any backbone) has the same inputs and the outputs of
its :class:`~calo.models.CondensationOutput`: ``beta [N]``, ``coords [N, D]``,
``correction [N]`` and, with the position payload, ``position [N, 2]`` (all float32); the
clustering (:func:`calo.reco.condensation.condensation_clusters`) runs after the graph.

A model of padded events (:func:`export_onnx_padded`: the e/pi task's GarNet stack in float
arithmetic) takes ``X [B, V, F]`` (float32, the hits of each event padded to ``V``) and
``n [B]`` (int64, the valid hits of each event) and gives one ``[B]`` float32 output per
value its ``forward`` returns; ``B`` is free, ``V`` and ``F`` are fixed.

Examples
--------
>>> import tempfile, torch
>>> from calo.models import GarNetModel
>>> from calo.models.config import GarNetModelConfig
>>> model = GarNetModel(7, 2, GarNetModelConfig(n_blocks=1))
>>> with tempfile.TemporaryDirectory() as d:  # doctest: +SKIP
...     res = export_onnx(model, f"{d}/model.onnx")
>>> res["max_abs_diff"] < 1e-5  # doctest: +SKIP
True
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from calo.errors import ConfigError, DataError
from calo.models.condensation import CondensationModel
from calo.models.dgcnn import DGCNNModel
from calo.models.garnet import GarNetModel
from calo.models.gravnet import GravNetModel
from calo.nn.knn import batch_to_ptr

__all__ = [
    "CONDENSATION_OUTPUTS",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "PADDED_INPUT_NAMES",
    "check_inputs",
    "check_padded_inputs",
    "export_e_pi_onnx",
    "export_onnx",
    "export_onnx_padded",
    "onnx_session",
]

#: names of the graph's inputs, in order
INPUT_NAMES: tuple[str, str] = ("x", "batch")
#: names of the graph's outputs
OUTPUT_NAMES: tuple[str] = ("fractions",)
#: names of a condensation graph's outputs (``position`` only with the position payload)
CONDENSATION_OUTPUTS: tuple[str, ...] = ("beta", "coords", "correction", "position")
#: names of a padded graph's inputs, in order
PADDED_INPUT_NAMES: tuple[str, str] = ("X", "n")

_EXPORTABLE = (GravNetModel, GarNetModel, DGCNNModel, CondensationModel)


class _FractionGraph(nn.Module):
    """``(x [N, F], batch [N]) -> fractions [N, K]``: the signature the graph is traced with."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, batch: Tensor) -> Tensor:
        return self.model(x, batch)


class _CondensationGraph(nn.Module):
    """``(x, batch) -> (beta, coords, correction[, position])`` of a condensation model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, batch: Tensor) -> tuple[Tensor, ...]:
        return tuple(t for t in self.model(x, batch) if t is not None)


class _PaddedGraph(nn.Module):
    """``(X [B, V, F], n [B]) -> forward's outputs``, each ``[B]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, X: Tensor, n: Tensor) -> tuple[Tensor, ...]:
        out = self.model(X, n)
        return tuple(out) if isinstance(out, tuple | list) else (out,)


def _need(package: str) -> Any:
    try:
        return __import__(package)
    except ImportError as err:
        raise ImportError(
            f"ONNX export needs the {package} package: pip install 'calo[onnx]' "
            "(onnx, onnxscript, onnxruntime)"
        ) from err


def _events(sizes: list[int], in_features: int, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded hits of events with the given numbers of hits (features ~ N(0, 1))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(sizes), in_features, generator=g)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return x, batch


def _neighbours(model: nn.Module) -> int:
    """``k`` of the model's kNN layers (1 for GarNet, which has none)."""
    if isinstance(model, CondensationModel):
        model = model.backbone
    return int(getattr(model.config, "k", 1))


def _padded_events(
    counts: list[int], n_vertices: int, n_features: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Seeded padded events: ``X [B, V, F]`` (~ N(0, 1), padding rows included, so that a
    graph that read them would differ) and their hit counts ``n [B]``."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(len(counts), n_vertices, n_features, generator=g)
    return X, torch.tensor(counts, dtype=torch.long)


def onnx_session(path: str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session of an exported model, with ``threads`` intra-op threads.

    Examples
    --------
    >>> onnx_session("missing.onnx")  # doctest: +SKIP
    """
    ort = _need("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_inputs(x: Any, batch: Any, in_features: int) -> None:
    """Check inputs as the graph expects them (it checks nothing itself): ``x`` float32
    ``[N, F]`` with ``N >= 1``, ``batch`` int64 ``[N]``, non-negative and sorted.

    Raises
    ------
    calo.errors.DataError
        Naming what is wrong.

    Examples
    --------
    >>> import numpy as np
    >>> check_inputs(np.zeros((2, 3), np.float32), np.array([0, 1]), 3)
    >>> check_inputs(np.zeros((2, 3), np.float32), np.array([1, 0]), 3)
    Traceback (most recent call last):
    calo.errors.DataError: batch must be sorted (non-decreasing), as torch_geometric batches are; sort the points by event first
    """
    x, batch = np.asarray(x), np.asarray(batch)
    if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != in_features or x.shape[0] < 1:
        raise DataError(f"x must be float32 [N >= 1, {in_features}], got {x.dtype} {list(x.shape)}")
    if batch.dtype != np.int64:
        raise DataError(f"batch must be int64, got {batch.dtype}")
    batch_to_ptr(torch.from_numpy(batch), x.shape[0])


def check_padded_inputs(X: Any, n: Any, n_vertices: int, n_features: int) -> None:
    """Check the inputs of a padded graph (:func:`export_onnx_padded`; it checks nothing
    itself): ``X`` float32 ``[B, V, F]`` with ``B >= 1``, ``n`` int64 ``[B]`` in ``0..V``.

    Raises
    ------
    calo.errors.DataError
        Naming what is wrong (and the first bad event).

    Examples
    --------
    >>> import numpy as np
    >>> check_padded_inputs(np.zeros((2, 4, 3), np.float32), np.array([4, 0]), 4, 3)
    >>> check_padded_inputs(np.zeros((1, 4, 3), np.float32), np.array([5]), 4, 3)
    Traceback (most recent call last):
    calo.errors.DataError: n[0] = 5 is outside 0..4; pad or truncate the events to V = 4 hits [entry 0]
    """
    X, n = np.asarray(X), np.asarray(n)
    want = f"[B >= 1, {n_vertices}, {n_features}]"
    if X.dtype != np.float32 or X.shape[1:] != (n_vertices, n_features) or X.shape[0] < 1:
        raise DataError(f"X must be float32 {want}, got {X.dtype} {list(X.shape)}")
    if n.dtype != np.int64 or n.shape != (X.shape[0],):
        raise DataError(f"n must be int64 [{X.shape[0]}], got {n.dtype} {list(n.shape)}")
    bad = np.flatnonzero((n < 0) | (n > n_vertices))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"n[{i}] = {int(n[i])} is outside 0..{n_vertices}; pad or truncate the events to "
            f"V = {n_vertices} hits",
            entry=i,
        )


def _quiet_export(
    graph: nn.Module,
    example: tuple[Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: dict[str, dict[int, Any]],
) -> Any:
    """``torch.onnx.export(..., dynamo=True)`` without its warnings and log lines."""
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return torch.onnx.export(
                graph,
                example,
                dynamo=True,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)


def _save_and_verify(
    program: Any,
    path: Path,
    desc: dict[str, Any],
    graph: nn.Module,
    cases: list[tuple[Any, tuple[Tensor, ...]]],
    *,
    verify: bool,
    atol: float,
) -> dict[str, Any]:
    """Save the traced ``program`` with ``desc`` in its metadata, check it with onnx, run the
    ``cases`` (label, inputs) in ONNX Runtime against ``graph`` and write ``<path>.json``."""
    onnx = _need("onnx")
    proto = program.model_proto
    desc["opset"] = max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx"))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "calo", json.dumps(desc)
    onnx.save_model(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    json_path = path.with_name(path.name + ".json")
    summary: dict[str, Any] = {
        "path": str(path),
        "json": str(json_path),
        **{key: desc[key] for key in ("inputs", "outputs", "opset")},
        "verified": False,
        "max_abs_diff": None,
        "checked_sizes": [],
    }
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        verify = False
    if verify:
        sess = onnx_session(path)
        names = [i["name"] for i in desc["inputs"]]
        worst = 0.0
        with torch.no_grad():
            for _, inputs in cases:
                ref = graph(*inputs)
                ref = ref if isinstance(ref, tuple) else (ref,)
                got = sess.run(None, {k: t.numpy() for k, t in zip(names, inputs, strict=True)})
                for g, r in zip(got, ref, strict=True):
                    worst = max(worst, float(np.abs(g - r.numpy()).max(initial=0.0)))
        summary.update(verified=True, max_abs_diff=worst, checked_sizes=[c for c, _ in cases])
        if not worst <= atol:
            raise ConfigError(
                f"{path}: ONNX Runtime's outputs differ from torch's by {worst:.3g} "
                f"(> {atol:g}) on seeded events; the graph is not faithful, do not deploy it"
            )
    desc["verification"] = {key: summary[key] for key in ("verified", "max_abs_diff")}
    json_path.write_text(json.dumps(desc, indent=2) + "\n")
    return summary


def _output_desc(net: nn.Module) -> list[dict[str, Any]]:
    """The outputs of a fraction or condensation model's graph."""
    if not isinstance(net, CondensationModel):
        return [
            {
                "name": "fractions",
                "shape": ["N", int(net.n_showers)],
                "dtype": "float32",
                "doc": "energy fraction of each hit in each shower (rows sum to 1)",
            }
        ]
    head = net.head.config
    out = [
        {"name": "beta", "shape": ["N"], "dtype": "float32", "doc": "condensation weight"},
        {
            "name": "coords",
            "shape": ["N", int(head.coord_dims)],
            "dtype": "float32",
            "doc": "clustering coordinates",
        },
        {
            "name": "correction",
            "shape": ["N"],
            "dtype": "float32",
            "doc": "energy correction factor (cluster energy = sum of its hit energies times "
            "the correction of its condensation point)",
        },
    ]
    if head.position:
        out.append(
            {
                "name": "position",
                "shape": ["N", 2],
                "dtype": "float32",
                "doc": f"offset (x, y) of the particle's impact point from the hit, in units "
                f"of position_scale = {head.position_scale:g} cm",
            }
        )
    return out


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    metadata: Mapping[str, Any] | None = None,
    verify: bool = True,
    atol: float = 1e-5,
    seed: int = 0,
) -> dict[str, Any]:
    """Export a fraction or condensation model to ONNX, check the file and compare ONNX
    Runtime with torch.

    Parameters
    ----------
    model:
        A :class:`~calo.models.GravNetModel`, :class:`~calo.models.GarNetModel`,
        :class:`~calo.models.DGCNNModel` or :class:`~calo.models.CondensationModel`; it is
        copied, put in eval mode, on the CPU and in float32 (BatchNorm uses its running
        statistics) and left unchanged.
    path:
        The ``.onnx`` file to write; ``<path>.json`` gets the description (inputs, outputs,
        ``metadata``), which is also stored in the model's ``metadata_props`` under ``calo``.
    metadata:
        JSON-serialisable facts to ship with the model (feature names, normalisation, source).
    verify:
        Run the file in ONNX Runtime (when importable) on seeded events, the traced sizes and
        others (one event with fewer hits than ``k``, one hit, several events of different
        sizes) and compare every output with the torch model's.
    atol:
        Largest absolute difference of the outputs allowed by ``verify``.
    seed:
        Seed of the example and verification events.

    Returns
    -------
    dict
        ``path``, ``json``, ``inputs``/``outputs`` (name, shape, dtype), ``opset``,
        ``verified`` (whether ONNX Runtime ran), ``max_abs_diff`` and ``checked_sizes``.

    Raises
    ------
    calo.errors.ConfigError
        For a model that is not one of these (the e/pi task's padded model goes through
        :func:`export_onnx_padded`), or when ONNX Runtime's outputs differ from torch's by
        more than ``atol``.
    ImportError
        Without ``onnx`` or ``onnxscript``.

    Examples
    --------
    >>> export_onnx(nn.Linear(2, 2), "m.onnx")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    calo.errors.ConfigError: ...
    """
    if not isinstance(model, _EXPORTABLE):
        raise ConfigError(
            f"ONNX export takes a GravNet, GarNet or DGCNN fraction model or a condensation "
            f"model, got {type(model).__name__}"
        )
    _need("onnx")
    _need("onnxscript")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).to("cpu", torch.float32).eval()
    condensation = isinstance(net, CondensationModel)
    backbone = net.backbone if condensation else net
    f_in = int(backbone.in_features)
    k = _neighbours(net)
    graph = (_CondensationGraph(net) if condensation else _FractionGraph(net)).eval()
    outputs = _output_desc(net)
    # two events of unusual sizes, so that no size is specialised into the graph
    example = _events([37, 27], f_in, seed)
    n_dim = torch.export.Dim("N", min=1)
    program = _quiet_export(
        graph,
        example,
        INPUT_NAMES,
        [o["name"] for o in outputs],
        {"x": {0: n_dim}, "batch": {0: n_dim}},
    )
    desc: dict[str, Any] = {
        "format": "onnx",
        "model": type(model).__name__,
        "inputs": [
            {
                "name": "x",
                "shape": ["N", f_in],
                "dtype": "float32",
                "doc": "normalised hit features (f - offset) / scale",
            },
            {"name": "batch", "shape": ["N"], "dtype": "int64", "doc": "sorted event index"},
        ],
        "outputs": outputs,
        "knn": {"k": k, "form": "dense [N, N] distances + TopK", "cost": "O(N^2) per call"}
        if isinstance(backbone, GravNetModel | DGCNNModel)
        else None,
        **dict(metadata or {}),
    }
    sizes = [[37, 27], [max(1, k - 1)], [1], [150, max(1, k // 2), 60, 3]]
    cases = [(c, _events(c, f_in, seed + 1 + i)) for i, c in enumerate(sizes)]
    return _save_and_verify(program, path, desc, graph, cases, verify=verify, atol=atol)


def export_onnx_padded(
    model: nn.Module,
    path: str | Path,
    *,
    n_vertices: int,
    n_features: int,
    output_names: Sequence[str],
    output_docs: Sequence[str] | None = None,
    input_doc: str = "hits of each event, padded to V",
    metadata: Mapping[str, Any] | None = None,
    verify: bool = True,
    atol: float = 1e-5,
    seed: int = 0,
) -> dict[str, Any]:
    """Export a model of padded events, ``forward(X [B, V, F], n [B]) -> [B]`` values, to ONNX.

    This is the e/pi task's model (:class:`calo.fpga.qat.QGarNetModel`) in float arithmetic:
    put it in float mode first (``model.stack.set_quantized(False)``); its fixed-point
    arithmetic (exp table indexed by raw bits, ``ap_fixed`` rounding) is hls4ml's to build
    (``calo-export --format hls``), not ONNX's. Only ``B`` is free in the graph.

    A submodule's eager input check ``_check`` (QGarNetStack's raises on ``n`` outside
    ``0..V``, a branch on the data that ``torch.export`` cannot trace) is left out of the
    traced copy; :func:`check_padded_inputs` makes the same check before a call.

    Parameters
    ----------
    model:
        The model (copied, eval mode, CPU, float32; left unchanged).
    path:
        The ``.onnx`` file (``<path>.json`` beside it, as :func:`export_onnx`).
    n_vertices, n_features:
        ``V`` and ``F`` of the inputs.
    output_names, output_docs:
        A name (and a description) for each ``[B]`` value ``forward`` returns, in order.
    input_doc:
        What ``X`` holds (for the JSON).
    metadata, verify, atol, seed:
        As for :func:`export_onnx`; the verification events are batches of 3, 1 and 5 events
        with full, partly filled, one-hit and empty events (``n = 0``) whose padding rows are
        random (the graph must ignore them).

    Returns
    -------
    dict
        As :func:`export_onnx`; ``checked_sizes`` lists the ``n`` of each batch.

    Examples
    --------
    >>> class Sum(nn.Module):
    ...     def forward(self, X, n):
    ...         mask = torch.arange(X.shape[1])[None, :] < n[:, None]
    ...         return (X[..., 0] * mask).sum(1)
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:  # doctest: +SKIP
    ...     res = export_onnx_padded(Sum(), f"{d}/m.onnx", n_vertices=4, n_features=2,
    ...                              output_names=["total"])
    >>> res["max_abs_diff"]  # doctest: +SKIP
    0.0
    """
    _need("onnx")
    _need("onnxscript")
    if n_vertices < 1 or n_features < 1 or not output_names:
        raise ConfigError(
            f"need n_vertices >= 1, n_features >= 1 and output names, got {n_vertices}, "
            f"{n_features}, {list(output_names)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).to("cpu", torch.float32).eval()
    for sub in net.modules():
        if callable(getattr(sub, "_check", None)):
            sub._check = _no_check  # type: ignore[method-assign]
    graph = _PaddedGraph(net).eval()
    docs = list(output_docs or [""] * len(output_names))
    V, F = int(n_vertices), int(n_features)
    example = _padded_events([V, max(1, V // 3), 1], V, F, seed)
    b_dim = torch.export.Dim("B", min=1)
    program = _quiet_export(
        graph, example, PADDED_INPUT_NAMES, output_names, {"X": {0: b_dim}, "n": {0: b_dim}}
    )
    desc: dict[str, Any] = {
        "format": "onnx",
        "model": type(model).__name__,
        "inputs": [
            {"name": "X", "shape": ["B", V, F], "dtype": "float32", "doc": input_doc},
            {"name": "n", "shape": ["B"], "dtype": "int64", "doc": f"valid hits, 0..{V}"},
        ],
        "outputs": [
            {"name": name, "shape": ["B"], "dtype": "float32", "doc": doc}
            for name, doc in zip(output_names, docs, strict=True)
        ],
        "knn": None,
        **dict(metadata or {}),
    }
    counts = [[V, max(1, V // 3), 1], [2], [V, 0, V // 2, 3, V - 1]]
    cases = [(c, _padded_events(c, V, F, seed + 1 + i)) for i, c in enumerate(counts)]
    return _save_and_verify(program, path, desc, graph, cases, verify=verify, atol=atol)


def export_e_pi_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    metadata: Mapping[str, Any] | None = None,
    verify: bool = True,
    atol: float = 1e-5,
    seed: int = 0,
) -> dict[str, Any]:
    """Export the e/pi task's GarNet (:class:`calo.fpga.qat.QGarNetModel`) to ONNX, in float
    arithmetic.

    The graph is :func:`export_onnx_padded` of a copy of ``model`` switched to float arithmetic
    (``stack.set_quantized(False)``; the same weights, the ``float`` method of
    ``calo-evaluate``'s e/pi table): inputs ``X [B, V, 4]`` and ``n [B]``, outputs
    ``regression [B]`` (energy / ``energy_scale``) and ``logit [B]`` (electron
    classification logit). A run trained with quantization keeps its weights; its fixed-point
    arithmetic is not in the graph: that path is hls4ml's (``calo-export --format hls``). The
    JSON says which (``arithmetic``, ``trained_quantized``) and gives ``energy_scale``.

    Parameters
    ----------
    model:
        A QGarNetModel (left unchanged).
    path, metadata, verify, atol, seed:
        As for :func:`export_onnx_padded`.

    Examples
    --------
    >>> from calo.fpga.qat import QGarNetModel, QGarNetStack
    >>> from calo.fpga.garnet import GarNetFixedConfig
    >>> m = QGarNetModel(QGarNetStack(config=GarNetFixedConfig(n_vertices=16, reuse_factor=4)))
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:  # doctest: +SKIP
    ...     res = export_e_pi_onnx(m, f"{d}/model.onnx")
    >>> [o["name"] for o in res["outputs"]]  # doctest: +SKIP
    ['regression', 'logit']
    """
    net = copy.deepcopy(model)
    stack = net.stack
    trained_quantized = bool(stack.quantized)
    stack.set_quantized(False)
    meta = {
        **dict(metadata or {}),
        "arithmetic": "float",
        "trained_quantized": trained_quantized,
        "energy_scale": float(net.energy_scale),
        "fixed_point": "not in the graph: calo-export --format hls builds it for hls4ml",
    }
    return export_onnx_padded(
        net,
        path,
        n_vertices=int(stack.config.n_vertices),
        n_features=int(stack.n_in),
        output_names=("regression", "logit"),
        output_docs=(
            "energy / energy_scale (GeV = regression * energy_scale)",
            "electron classification logit (probability = sigmoid(logit))",
        ),
        input_doc="hit features as calo.fpga.data.load_e_pi packs them (x, y relative to "
        "the seed hit, z, energy, scaled by FPGAFeatures), most energetic first, zero-padded",
        metadata=meta,
        verify=verify,
        atol=atol,
        seed=seed,
    )


def _no_check(*args: Any, **kwargs: Any) -> None:
    """Stands in for an eager input check in the traced copy (:func:`export_onnx_padded`)."""
