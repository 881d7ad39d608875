"""GravNet convolution (Qasim et al., EPJC 79 (2019) 608), the torch_geometric 2.8 variant.

For hit features :math:`x_i \\in \\mathbb{R}^{F_{in}}`:

.. math::
    s_i = W_s x_i + b_s \\in \\mathbb{R}^S, \\qquad h_i = W_h x_i + b_h \\in \\mathbb{R}^{F_{LR}},

    m_{ij} = V(\\lVert s_i - s_j \\rVert)\\, h_j, \\quad j \\in \\mathrm{kNN}_k(i)
    \\text{ in } s \\text{ within the event, } i \\text{ itself included},

    y_i = W_1 x_i + W_2 [\\,\\mathrm{mean}_j\\, m_{ij} \\,\\|\\, \\max_j m_{ij}\\,] + b_2 .

``V`` is ``exp(-10 d^2)`` by default (as torch_geometric and the reference code), or ``exp(-d^2)``
(the paper) or ``exp(-|d|)``. The layer has no activation (the paper's model applies tanh
after it). No ``[N, N]`` matrix is formed. On CPU the messages are never stored either: a fused
kernel (numba) computes the sum and the max over the neighbours in one pass, and its backward
recomputes the messages from ``h``, ``w`` and the index of each maximum, so the layer's memory
is O(N (k + F_LR)) instead of the O(N k F_LR) of gathering ``[N, k, F_LR]`` messages (which is
what other devices, and torch_geometric, do).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import torch
from torch import Tensor, nn

from calo.errors import ConfigError, DataError
from calo.nn.knn import Backend, is_exporting, knn
from calo.nn.potentials import Potential, check_potential, potential_from_d2

__all__ = ["GravNetConv"]

_AGGRS = ("mean", "max", "sum")


@numba.njit(cache=True, nogil=True)
def _aggregate_forward(h, idx, w, want_max, out_sum, out_max, arg):  # pragma: no cover - numba
    """``out_sum[i] = sum_j w_ij h[idx_ij]`` and ``out_max[i] = max_j w_ij h[idx_ij]`` (+ argmax).

    Slots with ``idx < 0`` are skipped; column 0 (the hit itself) is always valid.
    """
    n, k = idx.shape
    f = h.shape[1]
    for i in range(n):
        nb0 = idx[i, 0]
        w0 = w[i, 0]
        for c in range(f):
            v = h[nb0, c] * w0
            out_sum[i, c] = v
            if want_max:
                out_max[i, c] = v
                arg[i, c] = 0
        for j in range(1, k):
            nb = idx[i, j]
            if nb < 0:
                continue
            wij = w[i, j]
            for c in range(f):
                v = h[nb, c] * wij
                out_sum[i, c] += v
                if want_max and v > out_max[i, c]:
                    out_max[i, c] = v
                    arg[i, c] = j


@numba.njit(cache=True, nogil=True)
def _aggregate_backward(h, idx, w, g_sum, g_max, arg, has_max, grad_h, grad_w):  # pragma: no cover
    """Gradients of :func:`_aggregate_forward` with respect to ``h`` and ``w`` (accumulated)."""
    n, k = idx.shape
    f = h.shape[1]
    for i in range(n):
        for j in range(k):
            nb = idx[i, j]
            if nb < 0:
                continue
            wij = w[i, j]
            acc = 0.0
            for c in range(f):
                gs = g_sum[i, c]
                acc += gs * h[nb, c]
                grad_h[nb, c] += wij * gs
            grad_w[i, j] += acc
        if has_max:
            for c in range(f):
                j = arg[i, c]
                nb = idx[i, j]
                gm = g_max[i, c]
                grad_w[i, j] += gm * h[nb, c]
                grad_h[nb, c] += w[i, j] * gm


class _FusedAggregate(torch.autograd.Function):
    """Sum and max of ``w_ij h[idx_ij]`` over ``j`` without storing the ``[N, k, F]`` messages."""

    @staticmethod
    def forward(ctx, h: Tensor, idx: Tensor, w: Tensor, want_max: bool) -> tuple[Tensor, Tensor]:
        h_np = h.detach().contiguous().numpy()
        idx_np = idx.contiguous().numpy()
        w_np = w.detach().contiguous().numpy()
        n, f = idx.shape[0], h.shape[1]
        out_sum = np.empty((n, f), dtype=h_np.dtype)
        out_max = np.empty((n, f) if want_max else (0, f), dtype=h_np.dtype)
        arg = np.empty((n, f) if want_max else (0, f), dtype=np.int32)
        _aggregate_forward(h_np, idx_np, w_np, want_max, out_sum, out_max, arg)
        arg_t = torch.from_numpy(arg)
        ctx.save_for_backward(h, idx, w, arg_t)
        ctx.want_max = want_max
        ctx.mark_non_differentiable(arg_t)
        return torch.from_numpy(out_sum), torch.from_numpy(out_max)

    @staticmethod
    def backward(ctx, g_sum: Tensor | None, g_max: Tensor | None):
        h, idx, w, arg = ctx.saved_tensors
        h_np = h.detach().contiguous().numpy()
        w_np = w.detach().contiguous().numpy()
        n, f = idx.shape[0], h.shape[1]
        gs = np.zeros((n, f), h_np.dtype) if g_sum is None else g_sum.contiguous().numpy()
        has_max = ctx.want_max and g_max is not None
        gm = g_max.contiguous().numpy() if has_max else np.zeros((0, f), h_np.dtype)
        grad_h = np.zeros_like(h_np)
        grad_w = np.zeros_like(w_np)
        _aggregate_backward(
            h_np, idx.contiguous().numpy(), w_np, gs, gm, arg.numpy(), has_max, grad_h, grad_w
        )
        return torch.from_numpy(grad_h), None, torch.from_numpy(grad_w), None


class GravNetConv(nn.Module):
    """GravNet layer: learned kNN space, distance-weighted message passing, dense output.

    Parameters
    ----------
    in_channels:
        ``F_in``, features per hit.
    out_channels:
        ``F_out``, output features per hit.
    space_dimensions:
        ``S``, dimension of the learned coordinate space ``s``.
    propagate_dimensions:
        ``F_LR``, features propagated between hits (``h``).
    k:
        Number of neighbours, the hit itself included.
    potential:
        ``"exp10"`` (default, ``exp(-10 d^2)``), ``"gauss"`` (``exp(-d^2)``) or ``"exp_abs"``
        (``exp(-|d|)``), ``d`` the Euclidean distance in ``s``.
    aggr:
        Aggregations over the neighbours, concatenated in this order; any non-empty subset of
        ``"mean"``, ``"max"``, ``"sum"``. Default ``("mean", "max")``.
    knn_backend:
        Backend of :func:`calo.nn.knn` (``"auto"`` picks a KD-tree on CPU, chunked brute force
        on CUDA).

    Shapes
    ------
    - input ``x``: ``[N, F_in]``; ``batch``: ``[N]`` sorted event index or ``None`` (one event)
    - output: ``[N, F_out]``

    Examples
    --------
    >>> import torch
    >>> conv = GravNetConv(7, 48, space_dimensions=4, propagate_dimensions=22, k=40)
    >>> conv
    GravNetConv(7, 48, space_dimensions=4, propagate_dimensions=22, k=40, potential='exp10', aggr=('mean', 'max'))
    >>> x, batch = torch.randn(100, 7), torch.tensor([0] * 60 + [1] * 40)
    >>> conv(x, batch).shape
    torch.Size([100, 48])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        space_dimensions: int,
        propagate_dimensions: int,
        k: int,
        potential: Potential = "exp10",
        aggr: Sequence[str] = ("mean", "max"),
        knn_backend: Backend = "auto",
    ) -> None:
        super().__init__()
        for name, v in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("space_dimensions", space_dimensions),
            ("propagate_dimensions", propagate_dimensions),
            ("k", k),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"GravNetConv: {name} must be a positive integer, got {v!r}")
        aggr = (aggr,) if isinstance(aggr, str) else tuple(aggr)
        if not aggr or any(a not in _AGGRS for a in aggr) or len(set(aggr)) != len(aggr):
            raise ConfigError(
                f"GravNetConv: aggr must be distinct names from {list(_AGGRS)}, got {aggr!r}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.space_dimensions = space_dimensions
        self.propagate_dimensions = propagate_dimensions
        self.k = k
        self.potential = check_potential(potential)
        self.aggr = aggr
        self.knn_backend = knn_backend
        self.lin_s = nn.Linear(in_channels, space_dimensions)
        self.lin_h = nn.Linear(in_channels, propagate_dimensions)
        self.lin_out1 = nn.Linear(in_channels, out_channels, bias=False)
        self.lin_out2 = nn.Linear(len(aggr) * propagate_dimensions, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise all weights (PyTorch's default Linear initialisation).

        Examples
        --------
        >>> GravNetConv(3, 4, 2, 2, k=2).reset_parameters()
        """
        for lin in (self.lin_s, self.lin_h, self.lin_out1, self.lin_out2):
            lin.reset_parameters()

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        """Apply the layer.

        Parameters
        ----------
        x:
            ``[N, F_in]`` hit features.
        batch:
            ``[N]`` sorted event index of every hit, or ``None`` for a single event.

        Returns
        -------
        Tensor
            ``[N, F_out]``.

        Examples
        --------
        >>> conv = GravNetConv(3, 2, space_dimensions=2, propagate_dimensions=4, k=2)
        >>> conv(torch.randn(5, 3)).shape
        torch.Size([5, 2])
        """
        if x.dim() != 2 or x.shape[1] != self.in_channels:
            raise DataError(
                f"GravNetConv expects x of shape [N, {self.in_channels}], got {list(x.shape)}"
            )
        s = self.lin_s(x)
        h = self.lin_h(x)
        idx, d2 = knn(s, self.k, batch, backend=self.knn_backend)
        w = potential_from_d2(d2, self.potential)  # [N, k], 0 for missing neighbours
        valid = idx >= 0
        if (
            x.device.type == "cpu"
            and h.dtype in (torch.float32, torch.float64)
            and not is_exporting()
        ):
            agg = self._aggregate_fused(h, idx, w.to(h.dtype), valid)
        else:
            agg = self._aggregate_gather(h, idx, w, valid)
        return self.lin_out1(x) + self.lin_out2(agg)

    def _aggregate_fused(self, h: Tensor, idx: Tensor, w: Tensor, valid: Tensor) -> Tensor:
        """Mean/max/sum of the messages on CPU by the fused kernel (no ``[N, k, F]`` tensor)."""
        total, mx = _FusedAggregate.apply(h, idx, w, "max" in self.aggr)
        parts = []
        for a in self.aggr:
            if a == "mean":
                count = valid.sum(1, keepdim=True).clamp(min=1).to(total.dtype)
                parts.append(total / count)
            elif a == "sum":
                parts.append(total)
            else:
                parts.append(mx)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def _aggregate_gather(self, h: Tensor, idx: Tensor, w: Tensor, valid: Tensor) -> Tensor:
        """The same by gathering the ``[N, k, F_LR]`` messages (any device; the exported graph)."""
        msg = h[idx.clamp(min=0)] * w.unsqueeze(-1)  # [N, k, F_LR]
        parts = []
        for a in self.aggr:
            if a == "mean":
                count = valid.sum(1, keepdim=True).clamp(min=1).to(msg.dtype)
                parts.append(msg.sum(1) / count)
            elif a == "sum":
                parts.append(msg.sum(1))
            else:
                whole = not is_exporting() and bool(valid.all())
                m = msg if whole else msg.masked_fill(~valid.unsqueeze(-1), -torch.inf)
                parts.append(m.amax(1))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"space_dimensions={self.space_dimensions}, "
            f"propagate_dimensions={self.propagate_dimensions}, k={self.k}, "
            f"potential={self.potential!r}, aggr={self.aggr!r})"
        )
