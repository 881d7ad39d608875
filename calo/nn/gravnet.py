"""GravNet convolution (Qasim et al., EPJC 79 (2019) 608), the torch_geometric 2.8 variant.

For hit features :math:`x_i \\in \\mathbb{R}^{F_{in}}`:

.. math::
    s_i = W_s x_i + b_s \\in \\mathbb{R}^S, \\qquad h_i = W_h x_i + b_h \\in \\mathbb{R}^{F_{LR}},

    m_{ij} = V(\\lVert s_i - s_j \\rVert)\\, h_j, \\quad j \\in \\mathrm{kNN}_k(i)
    \\text{ in } s \\text{ within the event, } i \\text{ itself included},

    y_i = W_1 x_i + W_2 [\\,\\mathrm{mean}_j\\, m_{ij} \\,\\|\\, \\max_j m_{ij}\\,] + b_2 .

``V`` is ``exp(-10 d^2)`` by default (as torch_geometric and the reference code), or ``exp(-d^2)``
(the paper) or ``exp(-|d|)``. The layer has no activation (the paper's model applies tanh
after it). Memory is O(N k F_LR): the neighbours are gathered into ``[N, k, F_LR]`` tensors, no
``[N, N]`` matrix is formed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from calo.nn.knn import Backend, knn
from calo.nn.potentials import Potential, check_potential, potential_from_d2

__all__ = ["GravNetConv"]

_AGGRS = ("mean", "max", "sum")


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
                raise ValueError(f"GravNetConv: {name} must be a positive integer, got {v!r}")
        aggr = (aggr,) if isinstance(aggr, str) else tuple(aggr)
        if not aggr or any(a not in _AGGRS for a in aggr) or len(set(aggr)) != len(aggr):
            raise ValueError(
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
            raise ValueError(
                f"GravNetConv expects x of shape [N, {self.in_channels}], got {list(x.shape)}"
            )
        s = self.lin_s(x)
        h = self.lin_h(x)
        idx, d2 = knn(s, self.k, batch, backend=self.knn_backend)
        w = potential_from_d2(d2, self.potential)  # [N, k], 0 for missing neighbours
        valid = idx >= 0
        msg = h[idx.clamp(min=0)] * w.unsqueeze(-1)  # [N, k, F_LR]
        parts = []
        for a in self.aggr:
            if a == "mean":
                count = valid.sum(1, keepdim=True).clamp(min=1).to(msg.dtype)
                parts.append(msg.sum(1) / count)
            elif a == "sum":
                parts.append(msg.sum(1))
            else:
                m = msg if bool(valid.all()) else msg.masked_fill(~valid.unsqueeze(-1), -torch.inf)
                parts.append(m.amax(1))
        agg = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        return self.lin_out1(x) + self.lin_out2(agg)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"space_dimensions={self.space_dimensions}, "
            f"propagate_dimensions={self.propagate_dimensions}, k={self.k}, "
            f"potential={self.potential!r}, aggr={self.aggr!r})"
        )
