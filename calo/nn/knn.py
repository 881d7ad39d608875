"""k nearest neighbours within the events of a ragged batch.

For points :math:`x_i \\in \\mathbb{R}^S` grouped into events by a sorted ``batch`` vector,
:func:`knn` returns for every point :math:`i` the indices of the :math:`k` points :math:`j` of
the same event with the smallest squared distance

.. math::  d^2_{ij} = \\lVert x_i - x_j \\rVert^2 ,

the point itself first (it is always included, also when other points coincide with it), the
others nearest first. An event with fewer than ``k`` points leaves the missing slots as index
``-1`` and distance ``inf``. The indices are integers and carry no gradient; the distances are
differentiable with respect to ``x`` (GravNet learns its space through them): the ``"kdtree"``
backend returns its own float64 distances with the analytic gradient attached, the others
recompute them in torch from the indices (:func:`gather_dist2`).

Backends
--------
``"kdtree"``
    calo's KD-tree (numba, ``calo.nn._knn_kdtree``): one tree per event, every point searched
    depth first within a radius guessed from the points answered just before it, widened to a
    guaranteed bound (the k-th distance is 1-Lipschitz) when fewer than k points lie inside;
    runs of points in parallel over ``torch.get_num_threads()`` threads; distances in float64
    (rounded once to the dtype of ``x``), ties broken by the lower index. Exact; the default on
    CPU.
``"scipy"``
    scipy's :class:`scipy.spatial.cKDTree`, one tree per event (a reference; slower).
``"torch"``
    chunked brute force in torch (``|q|^2 - 2 q.x + |x|^2`` by matrix product, then ``topk``),
    on events grouped into blocks so that no temporary exceeds ``max_block`` elements; the default
    on CUDA. Works on any device.
``"torch_cluster"``
    :func:`torch_cluster.knn` when that package is importable (used only when asked for).
``"dense"``
    one block of all pairwise squared distances of the batch, ``[N, N]``, pairs of different
    events set to ``inf``, then ``torch.topk``: plain tensor operations with no Python loop and
    no shape that depends on the values, so that ``torch.export`` and the ONNX exporter turn it
    into a graph (Sub, Mul, ReduceSum or MatMul, Where, TopK) that runs for any number of hits
    and events. Cost and memory O(N^2) for the whole batch (feed one event, or a few, per
    call); see docs/deployment.md. Distances are summed coordinate by coordinate
    (``sum_s (x_is - x_js)^2``) for up to 8 coordinates, by the expansion of ``"torch"``
    beyond; the point itself is placed first before ``topk``. Exact.
``"auto"``
    ``"torch"`` for CUDA tensors, ``"kdtree"`` otherwise; ``"dense"`` while the model is being
    exported (:func:`is_exporting`).

Ties: the point itself is column 0 also when other points coincide with it; among points at the
same distance the order, and at the k-th distance the choice, is backend dependent (the returned
distances are the same for every backend). The KD-tree backends order by the distance
computed in float64, the ``"torch"`` backend by the expansion above in the input dtype, so the recomputed
``dist2`` can be out of order by a rounding error between near-equal neighbours.

Examples
--------
>>> import torch
>>> from calo.nn import knn, knn_graph
>>> x = torch.tensor([[0.0], [1.0], [3.0], [10.0], [11.0]])
>>> batch = torch.tensor([0, 0, 0, 1, 1])
>>> idx, d2 = knn(x, 3, batch)
>>> idx.tolist()
[[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 4, -1], [4, 3, -1]]
>>> d2[3].tolist()
[0.0, 1.0, inf]
>>> knn_graph(x, 2, batch, loop=False).tolist()
[[1, 2, 0, 2, 1, 0, 4, 3], [0, 0, 1, 1, 2, 2, 3, 4]]
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from calo.errors import ConfigError, DataError
from calo.nn._knn_kdtree import knn_kdtree

__all__ = ["batch_to_ptr", "event_ids", "gather_dist2", "is_exporting", "knn", "knn_graph"]

Backend = Literal["auto", "kdtree", "scipy", "torch", "torch_cluster", "dense"]
_BACKENDS = ("auto", "kdtree", "scipy", "torch", "torch_cluster", "dense")

#: coordinates up to which the ``"dense"`` backend sums squared differences (beyond: matmul)
_DENSE_DIRECT_MAX_S = 8


def is_exporting() -> bool:
    """Whether the code runs inside ``torch.export`` / the ONNX exporter or a TorchScript trace.

    The layers then take their traceable paths: the ``"dense"`` kNN, torch gathers instead of
    the numba kernels, event sums into buffers of ``N`` rows instead of ``B``, and no check
    that reads tensor values (the exported graph trusts its inputs).

    Examples
    --------
    >>> is_exporting()
    False
    """
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and compiler.is_exporting():
        return True
    return bool(torch.jit.is_tracing())


def event_ids(batch: Tensor) -> Tensor:
    """Compact event index ``[N]`` (0, 1, 2, ... with no gaps) of a sorted batch vector.

    ``ev_i`` counts the changes of ``batch`` before ``i``, so ``ev < N`` and a buffer of ``N``
    rows indexed by ``ev`` holds every event: per-event sums and counts need no data-dependent
    number of events ``B`` (the form the exported graph uses). Built from tensor operations only
    (no check of sortedness: :func:`batch_to_ptr` does that outside export).

    Examples
    --------
    >>> event_ids(torch.tensor([0, 0, 2, 2, 3])).tolist()
    [0, 0, 1, 1, 2]
    """
    change = (batch[1:] != batch[:-1]).to(torch.long)
    return torch.cat([torch.zeros(1, dtype=torch.long, device=batch.device), change.cumsum(0)])


def batch_to_ptr(batch: Tensor | None, num_points: int) -> Tensor:
    """Return the event boundaries ``ptr [B + 1]`` of a sorted batch vector.

    Parameters
    ----------
    batch:
        ``[N]`` integer event index of every point, non-decreasing (as torch_geometric batches
        are); ``None`` means one event.
    num_points:
        ``N``, the number of points.

    Returns
    -------
    Tensor
        ``[B + 1]`` int64 on the CPU; event ``b`` holds points ``ptr[b]:ptr[b + 1]``, with
        ``B = batch.max() + 1`` (events without points are empty ranges).

    Raises
    ------
    calo.errors.DataError
        If ``batch`` is not one-dimensional of length ``N``, not integer, negative or not sorted.

    Examples
    --------
    >>> batch_to_ptr(torch.tensor([0, 0, 2]), 3).tolist()
    [0, 2, 2, 3]
    """
    if batch is None:
        return torch.tensor([0, num_points], dtype=torch.long)
    if batch.dim() != 1 or batch.numel() != num_points:
        raise DataError(
            f"batch must have shape [N] = [{num_points}], got {list(batch.shape)}; "
            "pass the event index of every point (torch_geometric's Batch.batch)"
        )
    if batch.dtype.is_floating_point or batch.dtype == torch.bool:
        raise DataError(f"batch must be an integer tensor, got {batch.dtype}")
    if num_points == 0:
        return torch.zeros(1, dtype=torch.long)
    # numpy: a few microseconds instead of tens for torch's small-tensor dispatch
    b = batch.detach().to("cpu", torch.long).numpy()
    if (b[1:] < b[:-1]).any():
        raise DataError(
            "batch must be sorted (non-decreasing), as torch_geometric batches are; "
            "sort the points by event first"
        )
    if b[0] < 0:
        raise DataError(f"batch must be non-negative, got minimum {int(b[0])}")
    counts = np.bincount(b, minlength=int(b[-1]) + 1)
    ptr = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return torch.from_numpy(ptr)


def gather_dist2(x: Tensor, idx: Tensor, y: Tensor | None = None) -> Tensor:
    """Squared distances ``||y_i - x_{idx[i, m]}||^2`` recomputed from neighbour indices.

    Differentiable with respect to ``x`` and ``y``; slots with ``idx == -1`` get ``inf`` (and no
    gradient).

    Parameters
    ----------
    x:
        ``[N, S]`` points the indices refer to.
    idx:
        ``[M, k]`` int64 neighbour indices into ``x``, ``-1`` for missing.
    y:
        ``[M, S]`` query points; ``None`` means ``x`` (then ``M = N``).

    Returns
    -------
    Tensor
        ``[M, k]`` squared distances in the dtype of ``x``.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    >>> gather_dist2(x, torch.tensor([[0, 1], [1, -1]])).tolist()
    [[0.0, 25.0], [0.0, inf]]
    """
    y = x if y is None else y
    valid = idx >= 0
    diff = x[idx.clamp(min=0)] - y.unsqueeze(1)
    d2 = diff.pow(2).sum(-1)
    return torch.where(valid, d2, torch.full_like(d2, float("inf")))


def _check_inputs(x: Tensor, k: int) -> None:
    if not isinstance(x, Tensor):
        raise DataError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise DataError(
            f"x must have shape [N, S] (points x coordinates), got {list(x.shape)}; "
            "use x.view(-1, 1) for one coordinate"
        )
    if not x.dtype.is_floating_point:
        raise DataError(f"x must be a floating-point tensor, got {x.dtype}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")


def _resolve_backend(backend: str, x: Tensor) -> str:
    if backend not in _BACKENDS:
        raise ConfigError(f"unknown knn backend {backend!r}; choose one of {list(_BACKENDS)}")
    if is_exporting():
        if backend not in ("auto", "dense"):
            raise ConfigError(
                f"knn backend {backend!r} cannot be exported (it leaves torch); "
                "use backend='auto' or 'dense'"
            )
        return "dense"
    if backend == "auto":
        return "torch" if x.device.type != "cpu" else "kdtree"
    return backend


def _pairwise_dist2(x: Tensor) -> Tensor:
    """``[N, N]`` squared distances: coordinate by coordinate for few, by matmul for many."""
    if x.shape[1] <= _DENSE_DIRECT_MAX_S:
        d = torch.zeros((x.shape[0], x.shape[0]), dtype=x.dtype, device=x.device)
        for s in range(x.shape[1]):
            c = x[:, s]
            d = d + (c.unsqueeze(1) - c.unsqueeze(0)).pow(2)
        return d
    xc = x - x.mean(0, keepdim=True)  # smaller |x|^2, smaller rounding error of the expansion
    sq = xc.pow(2).sum(1)
    d = sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (xc @ xc.T)
    return d.clamp(min=0.0)


def _knn_dense(x: Tensor, k: int, batch: Tensor | None) -> Tensor:
    """Neighbour indices [N, k] (int64, -1 missing) from one masked [N, N] distance block.

    Traceable with a dynamic ``N``: ``k`` columns of ``inf`` are appended so that ``topk``
    always has ``k`` candidates (events with fewer than ``k`` points, ``N < k``).
    """
    xd = x.detach()
    n = xd.shape[0]
    inf = float("inf")
    d = _pairwise_dist2(xd)
    ar = torch.arange(n, device=x.device)
    # the point itself first, whatever coincides with it
    d = torch.where(ar.unsqueeze(1) == ar.unsqueeze(0), torch.full_like(d, -1.0), d)
    if batch is not None:
        same = batch.unsqueeze(1) == batch.unsqueeze(0)
        d = torch.where(same, d, torch.full_like(d, inf))
    d = torch.cat([d, torch.full((n, k), inf, dtype=d.dtype, device=d.device)], dim=1)
    vals, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
    return torch.where(torch.isinf(vals), torch.full_like(idx, -1), idx)


def _knn_scipy(x: Tensor, k: int, ptr: Tensor) -> np.ndarray:
    """Neighbour indices [N, k] (int64, -1 missing) with one cKDTree per event."""
    from scipy.spatial import cKDTree

    xn = x.detach().cpu().numpy()
    if not np.isfinite(xn).all():
        raise DataError("x contains NaN or inf; the kNN is undefined for non-finite points")
    n_total = xn.shape[0]
    out = np.full((n_total, k), -1, dtype=np.int64)
    workers = max(1, torch.get_num_threads())
    p = ptr.tolist()
    for b in range(len(p) - 1):
        lo, hi = p[b], p[b + 1]
        n = hi - lo
        if n == 0:
            continue
        kk = min(k, n)
        pts = xn[lo:hi]
        tree = cKDTree(pts, leafsize=16, balanced_tree=False, compact_nodes=False)
        _, nb = tree.query(pts, k=kk, workers=workers if n > 2048 else 1)
        if kk == 1:
            nb = nb.reshape(n, 1)
        out[lo:hi, :kk] = nb + lo
    return out


def _knn_torch(x: Tensor, k: int, ptr: Tensor, max_block: int) -> Tensor:
    """Neighbour indices [N, k] (int64, -1 missing) by chunked brute force in torch."""
    xd = x.detach()
    if not bool(torch.isfinite(xd).all()):
        raise DataError("x contains NaN or inf; the kNN is undefined for non-finite points")
    n_total = xd.shape[0]
    out = torch.full((n_total, k), -1, dtype=torch.long, device=x.device)
    sq = xd.pow(2).sum(-1)
    p = ptr.tolist()
    n_ev = len(p) - 1
    inf = float("inf")
    b = 0
    while b < n_ev:
        # group consecutive whole events while the masked [rows, cols] block stays small
        e = b + 1
        while e < n_ev and (p[e + 1] - p[b]) ** 2 <= max_block:
            e += 1
        lo, hi = p[b], p[e]
        cols = hi - lo
        if cols == 0:
            b = e
            continue
        xc, sqc = xd[lo:hi], sq[lo:hi]
        multi = e - b > 1
        if multi:
            ev_local = torch.repeat_interleave(
                torch.arange(e - b, device=x.device),
                torch.tensor([p[i + 1] - p[i] for i in range(b, e)], device=x.device),
            )
        rows = max(1, max_block // cols)
        kk = min(k, cols)
        for r0 in range(lo, hi, rows):
            r1 = min(hi, r0 + rows)
            d = torch.addmm(sqc.unsqueeze(0), xd[r0:r1], xc.t(), beta=1.0, alpha=-2.0)
            d.add_(sq[r0:r1].unsqueeze(1))
            # the point itself is always a neighbour, whatever the rounding of the expansion
            diag = torch.arange(r1 - r0, device=x.device)
            d[diag, diag + (r0 - lo)] = -1.0
            if multi:
                same = ev_local[r0 - lo : r1 - lo].unsqueeze(1) == ev_local.unsqueeze(0)
                d.masked_fill_(~same, inf)
            vals, nb = torch.topk(d, kk, dim=1, largest=False, sorted=True)
            nb = nb + lo
            if multi:
                nb = torch.where(torch.isinf(vals), torch.full_like(nb, -1), nb)
            out[r0:r1, :kk] = nb
        b = e
    return out


def _knn_torch_cluster(x: Tensor, k: int, batch: Tensor | None) -> Tensor:
    try:
        import torch_cluster
    except ImportError as err:
        raise ImportError(
            "backend='torch_cluster' needs the torch-cluster package; use backend='auto'"
        ) from err
    n_total = x.shape[0]
    row, col = torch_cluster.knn(x.detach(), x.detach(), k, batch, batch)
    order = torch.sort(row, stable=True).indices
    row, col = row[order], col[order]
    counts = torch.bincount(row, minlength=n_total)
    slot = torch.arange(row.numel(), device=x.device) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    out = torch.full((n_total, k), -1, dtype=torch.long, device=x.device)
    out[row, slot] = col
    return out


def _self_first(idx: Tensor) -> Tensor:
    """Make column 0 the point itself, keeping the order of the other candidates.

    The backends return candidates nearest first; only rows where the point has exact twins
    (distance 0) can have it elsewhere or, with ``k`` or more twins, not at all; then it replaces
    the last (farthest) valid candidate, which is also at distance 0.
    """
    n_total, k = idx.shape
    self_idx = torch.arange(n_total, device=idx.device)
    bad = (idx[:, 0] != self_idx).nonzero().squeeze(1)
    if bad.numel() == 0:
        return idx
    sub = idx[bad]
    me = bad.unsqueeze(1)
    missing = ~(sub == me).any(1)
    if bool(missing.any()):
        last = ((sub >= 0).sum(1, keepdim=True) - 1).clamp(min=0)
        sub = torch.where(missing.unsqueeze(1), sub.scatter(1, last, me), sub)
    pos = torch.arange(k, device=idx.device).expand_as(sub)
    key = torch.where(sub == me, torch.full_like(pos, -1), pos)
    sub = torch.gather(sub, 1, torch.argsort(key, dim=1))
    idx = idx.clone()
    idx[bad] = sub
    return idx


class _Dist2(torch.autograd.Function):
    """Squared distances already computed (by the KD-tree), with the gradient of
    ``||x_i - x_{idx[i, m]}||^2`` with respect to ``x``; saves the [N, k, S] gather in the forward.
    """

    @staticmethod
    def forward(ctx, x: Tensor, idx: Tensor, d2: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, idx)
        return d2

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        x, idx = ctx.saved_tensors
        valid = idx >= 0
        nb = idx.clamp(min=0)
        g = torch.where(valid, grad, torch.zeros_like(grad)) * 2.0  # [N, k]
        contrib = g.unsqueeze(-1) * (x.unsqueeze(1) - x[nb])  # [N, k, S]: d/dx_i
        gx = contrib.sum(1)
        gx = gx.index_add(0, nb.reshape(-1), -contrib.reshape(-1, x.shape[1]))
        return gx, None, None


def knn(
    x: Tensor,
    k: int,
    batch: Tensor | None = None,
    *,
    backend: Backend = "auto",
    max_block: int = 1 << 24,
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest points of the same event for every point (itself included).

    Parameters
    ----------
    x:
        ``[N, S]`` floating-point coordinates.
    k:
        Number of neighbours per point (the point itself counts as one).
    batch:
        ``[N]`` sorted event index of every point, or ``None`` for a single event.
    backend:
        ``"auto"`` (default), ``"kdtree"``, ``"scipy"``, ``"torch"``, ``"torch_cluster"`` or
        ``"dense"``; see the module docstring.
    max_block:
        Largest distance block (rows x columns) the ``"torch"`` backend builds at once; bounds
        its temporary memory to about ``12 * max_block`` bytes for float32.

    Returns
    -------
    idx:
        ``[N, k]`` int64 neighbour indices into ``x``; column 0 is the point itself, the others
        are nearest first; ``-1`` where the event has fewer than ``k`` points.
    dist2:
        ``[N, k]`` squared Euclidean distances in the dtype of ``x`` (``inf`` for missing
        neighbours), differentiable with respect to ``x``.

    Raises
    ------
    calo.errors.DataError
        If ``x`` is not an ``[N, S]`` floating-point tensor, contains NaN/inf, or ``batch`` is
        malformed, unsorted or on another device.
    calo.errors.ConfigError
        If ``k < 1``, ``max_block < 1`` or ``backend`` is unknown.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    >>> idx, d2 = knn(x, 2)
    >>> idx.tolist(), d2.tolist()
    ([[0, 1], [1, 0], [2, 1]], [[0.0, 1.0], [0.0, 1.0], [0.0, 41.0]])
    """
    _check_inputs(x, k)
    n_total = x.shape[0]
    which = _resolve_backend(backend, x)
    if which == "dense" and is_exporting():
        # the graph trusts its inputs: no check that reads values, no numpy
        idx = _knn_dense(x, k, batch)
        return idx, gather_dist2(x, idx)
    ptr = batch_to_ptr(batch, n_total)
    if batch is not None and batch.device != x.device:
        raise DataError(f"batch is on {batch.device} but x is on {x.device}")
    if max_block < 1:
        raise ConfigError(f"max_block must be positive, got {max_block}")
    if n_total == 0:
        return (
            torch.empty((0, k), dtype=torch.long, device=x.device),
            torch.empty((0, k), dtype=x.dtype, device=x.device),
        )
    if which == "kdtree":
        xc = x.detach().cpu()
        if xc.dtype not in (torch.float32, torch.float64):
            xc = xc.float()  # float16 and bfloat16 are exact in float32
        xn = xc.numpy()
        if not np.isfinite(xn).all():
            raise DataError("x contains NaN or inf; the kNN is undefined for non-finite points")
        nb, d2 = knn_kdtree(
            xn,
            ptr.numpy(),
            k,
            num_threads=torch.get_num_threads(),
            dist_dtype=np.float32 if x.dtype == torch.float32 else np.float64,
        )
        idx = torch.from_numpy(nb).to(x.device)
        d2 = torch.from_numpy(d2).to(device=x.device, dtype=x.dtype)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return idx, d2
        return idx, _Dist2.apply(x, idx, d2)
    elif which == "scipy":
        idx = torch.from_numpy(_knn_scipy(x, k, ptr)).to(x.device)
    elif which == "torch":
        idx = _knn_torch(x, k, ptr, max_block)
    elif which == "dense":
        if not bool(torch.isfinite(x.detach()).all()):
            raise DataError("x contains NaN or inf; the kNN is undefined for non-finite points")
        idx = _knn_dense(x, k, batch)
        return idx, gather_dist2(x, idx)
    else:
        idx = _knn_torch_cluster(x, k, batch)
    idx = _self_first(idx)
    return idx, gather_dist2(x, idx)


def knn_graph(
    x: Tensor,
    k: int,
    batch: Tensor | None = None,
    loop: bool = True,
    *,
    backend: Backend = "auto",
) -> Tensor:
    """k-nearest-neighbour graph as a torch_geometric ``edge_index``.

    Every point ``i`` receives edges ``j -> i`` from its ``k`` nearest points of the same event
    (``flow="source_to_target"``: row 0 is the neighbour ``j``, row 1 the centre ``i``), edges
    grouped by centre, nearest first. With ``loop=True`` the point itself is one of the ``k``;
    with ``loop=False`` it is excluded and ``k`` other points are used.

    Parameters
    ----------
    x:
        ``[N, S]`` coordinates.
    k:
        Number of incoming edges per point (fewer in events with too few points).
    batch:
        ``[N]`` sorted event index, or ``None`` for one event.
    loop:
        Whether the self-loop ``i -> i`` counts as one of the ``k`` edges.
    backend:
        As for :func:`knn`.

    Returns
    -------
    Tensor
        ``[2, E]`` int64 edge index, ``E <= N k``.

    Examples
    --------
    >>> x = torch.tensor([[0.0], [1.0], [3.0]])
    >>> knn_graph(x, 2).tolist()
    [[0, 1, 1, 0, 2, 1], [0, 0, 1, 1, 2, 2]]
    """
    _check_inputs(x, k)
    idx, _ = knn(x.detach(), k if loop else k + 1, batch, backend=backend)
    if not loop:
        idx = idx[:, 1:]
    centre = torch.arange(x.shape[0], device=x.device).unsqueeze(1).expand_as(idx)
    valid = idx >= 0
    return torch.stack([idx[valid], centre[valid]], 0)
