"""ONNX export of the fraction models (GravNet, GarNet, DGCNN) for ONNX Runtime and Triton.

The graph has two inputs and one output, every size dynamic:

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from calo.errors import ConfigError, DataError
from calo.models.dgcnn import DGCNNModel
from calo.models.garnet import GarNetModel
from calo.models.gravnet import GravNetModel
from calo.nn.knn import batch_to_ptr

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "check_inputs", "export_onnx", "onnx_session"]

#: names of the graph's inputs, in order
INPUT_NAMES: tuple[str, str] = ("x", "batch")
#: names of the graph's outputs
OUTPUT_NAMES: tuple[str] = ("fractions",)

_EXPORTABLE = (GravNetModel, GarNetModel, DGCNNModel)


class _FractionGraph(nn.Module):
    """``(x [N, F], batch [N]) -> fractions [N, K]``: the signature the graph is traced with."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, batch: Tensor) -> Tensor:
        return self.model(x, batch)


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
    return int(getattr(model.config, "k", 1))


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


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    metadata: Mapping[str, Any] | None = None,
    verify: bool = True,
    atol: float = 1e-5,
    seed: int = 0,
) -> dict[str, Any]:
    """Export a fraction model to ONNX, check the file and compare ONNX Runtime with torch.

    Parameters
    ----------
    model:
        A :class:`~calo.models.GravNetModel`, :class:`~calo.models.GarNetModel` or
        :class:`~calo.models.DGCNNModel`; it is copied, put in eval mode, on the CPU and in
        float32 (BatchNorm uses its running statistics) and left unchanged.
    path:
        The ``.onnx`` file to write; ``<path>.json`` gets the description (inputs, outputs,
        ``metadata``), which is also stored in the model's ``metadata_props`` under ``calo``.
    metadata:
        JSON-serialisable facts to ship with the model (feature names, normalisation, source).
    verify:
        Run the file in ONNX Runtime (when importable) on seeded events, the traced sizes and
        others (one event with fewer hits than ``k``, one hit, several events of different
        sizes) and compare with the torch model.
    atol:
        Largest absolute difference of the fractions allowed by ``verify``.
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
        For a model that is not one of the three fraction models (the e/pi task's padded
        QGarNetModel is not exported), or when ONNX Runtime's fractions differ from torch's by
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
            f"ONNX export takes a GravNet, GarNet or DGCNN fraction model, got "
            f"{type(model).__name__}"
        )
    onnx = _need("onnx")
    _need("onnxscript")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).to("cpu", torch.float32).eval()
    f_in, k_out = int(net.in_features), int(net.n_showers)
    k = _neighbours(net)
    graph = _FractionGraph(net).eval()
    # two events of unusual sizes, so that no size is specialised into the graph
    example = _events([37, 27], f_in, seed)
    n_dim = torch.export.Dim("N", min=1)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph,
                example,
                dynamo=True,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"x": {0: n_dim}, "batch": {0: n_dim}},
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    proto = program.model_proto
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
        "outputs": [
            {
                "name": "fractions",
                "shape": ["N", k_out],
                "dtype": "float32",
                "doc": "energy fraction of each hit in each shower (rows sum to 1)",
            }
        ],
        "knn": {"k": k, "form": "dense [N, N] distances + TopK", "cost": "O(N^2) per call"}
        if isinstance(net, GravNetModel | DGCNNModel)
        else None,
        "opset": max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")),
        **dict(metadata or {}),
    }
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
        cases = [
            [37, 27],
            [max(1, k - 1)],
            [1],
            [150, max(1, k // 2), 60, 3],
        ]
        sess = onnx_session(path)
        worst = 0.0
        with torch.no_grad():
            for i, sizes in enumerate(cases):
                x, batch = _events(sizes, f_in, seed + 1 + i)
                ref = net(x, batch).numpy()
                got = sess.run(None, {"x": x.numpy(), "batch": batch.numpy()})[0]
                worst = max(worst, float(abs(got - ref).max()))
        summary.update(verified=True, max_abs_diff=worst, checked_sizes=cases)
        if not worst <= atol:
            raise ConfigError(
                f"{path}: ONNX Runtime's fractions differ from torch's by {worst:.3g} "
                f"(> {atol:g}) on seeded events; the graph is not faithful, do not deploy it"
            )
    desc["verification"] = {key: summary[key] for key in ("verified", "max_abs_diff")}
    json_path.write_text(json.dumps(desc, indent=2) + "\n")
    return summary
