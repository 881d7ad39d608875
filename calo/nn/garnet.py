"""GarNet convolution (Qasim et al. 2019; simplified form of Iiyama et al. 2021 / hls4ml).

For the hits ``j`` of one event with features :math:`x_j \\in \\mathbb{R}^{F_{in}}` and
``A`` aggregators:

.. math::
    f_j = W_f x_j + b_f \\in \\mathbb{R}^{F_{LR}}, \\qquad
    d_{ja} = (W_d x_j + b_d)_a, \\qquad w_{ja} = V(d_{ja}),

    \\bar f_a = \\frac{1}{\\nu} \\sum_j w_{ja} f_j, \\qquad
    \\hat f_a = \\max_j w_{ja} f_j, \\qquad
    r_j = [\\, w_{ja} \\bar f_a \\,]_{a} \\,\\|\\, [\\, w_{ja} \\hat f_a \\,]_{a},

    y_j = W_o\\,[\\, x_j \\,\\|\\, r_j \\,\\|\\, w_{j\\cdot} \\,] + b_o
    \\quad\\text{(full)}, \\qquad
    y_j = W_o\\, r_j + b_o = b_o + \\sum_a w_{ja} (W_o^{(a)} \\bar f_a)
    \\quad\\text{(simplified: mean only)} .

``nu`` is the number of hits of the event (``mean_by="n"``) or a fixed ``V_max``
(``mean_by="vmax"``, as hls4ml without ``mean_by_nvert``). The returned features are laid out
aggregator-major, index ``a * F_LR + p`` (hls4ml's ``Fout`` weight row order), mean block before
max block. ``V`` is ``exp(-|d|)`` (paper, default) or ``exp(-d^2)`` (hls4ml). With ``collapse``
the per-hit outputs are reduced per event by mean (normalised by ``nu``), sum or max. There is
no activation. Cost and memory are linear in the number of hits (no kNN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from calo.errors import ConfigError, DataError
from calo.nn.knn import batch_to_ptr, event_ids, is_exporting
from calo.nn.potentials import Potential, check_potential, potential_from_d

__all__ = ["GarNetConv", "simplified_garnet", "simplified_garnet_stack"]

Collapse = Literal["mean", "sum", "max"]


def _segment_max(src: Tensor, batch: Tensor, num_events: int) -> Tensor:
    """Max over the rows of each event: ``src [N, ...] -> [B, ...]`` (0 for empty events)."""
    shape = (num_events, *src.shape[1:])
    index = batch.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    out = src.new_zeros(shape).scatter_reduce(0, index, src, reduce="amax", include_self=False)
    return out


def _distribute(
    y: Tensor,
    f: Tensor,
    w: Tensor,
    batch: Tensor,
    nu: Tensor,
    num_events: int,
    weight: Tensor,
    blocks: Sequence[tuple[str, int]],
) -> Tensor:
    """``y + sum_a w_ja (M_a g_a)`` for each block ``(kind, start)``: ``g_a`` the mean (over
    ``nu``) or max over the event of the messages ``w_ja f_j``, ``M_a`` the columns
    ``start + a F_LR ... start + (a + 1) F_LR`` of the dense ``weight``.

    ``M_a`` is applied once per event to the aggregated ``g_a [B, F_LR]``, so only
    ``[N, F_LR]`` and ``[N, F_out]`` tensors are formed per hit (never the ``[N, A F_LR]``
    messages, returned features or dense input).
    """
    a_n, p = w.shape[1], f.shape[1]
    for a in range(a_n):
        wa = w[:, a : a + 1]
        msg = wa * f  # [N, F_LR]
        for kind, start in blocks:
            if kind == "mean":
                agg = f.new_zeros(num_events, p).index_add_(0, batch, msg) / nu.view(-1, 1)
            else:
                agg = _segment_max(msg, batch, num_events)
            cols = weight[:, start + a * p : start + (a + 1) * p]
            y = y + wa * (agg @ cols.T)[batch]
    return y


def simplified_garnet(
    x: Tensor,
    batch: Tensor,
    nu: Tensor,
    num_events: int,
    weights: Sequence[Tensor],
    potential: Potential = "gauss",
) -> Tensor:
    r"""hls4ml's simplified GarNet on ragged hits: the one float implementation in calo.

    .. math::
        y_j = b_o + \sum_a w_{ja} \, W_o^{(a)} \bar f_a, \qquad
        \bar f_a = \frac{1}{\nu} \sum_{k \in \text{event}(j)} w_{ka} (W_f x_k + b_f),
        \qquad w_{ja} = V((W_d x_j + b_d)_a)

    Used by :class:`GarNetConv` (``simplified=True``) and by the float forms of calo.fpga
    (:class:`~calo.fpga.qat.QGarNetStack` in float mode, :func:`~calo.fpga.reference.garnet_float`).

    Parameters
    ----------
    x, batch:
        Hits ``[N, F_in]`` and their sorted event index ``[N]``.
    nu:
        ``[B]`` normaliser of the aggregator mean per event (hits or ``V_max``).
    num_events:
        ``B``.
    weights:
        ``(W_f [F_LR, F_in], b_f [F_LR], W_d [A, F_in], b_d [A], W_o [F_out, A F_LR],
        b_o [F_out])`` in :class:`torch.nn.Linear`'s layout; column ``a F_LR + p`` of ``W_o``
        multiplies aggregator ``a``'s feature ``p``.
    potential:
        Edge-weight potential ``V`` (``"gauss"``: ``exp(-d^2)``, hls4ml's).

    Returns
    -------
    Tensor
        ``[N, F_out]`` per-hit outputs.

    Examples
    --------
    >>> import torch
    >>> x, batch = torch.randn(5, 3), torch.tensor([0, 0, 0, 1, 1])
    >>> ws = [torch.randn(4, 3), torch.randn(4), torch.randn(2, 3), torch.randn(2),
    ...       torch.randn(6, 8), torch.randn(6)]
    >>> simplified_garnet(x, batch, torch.tensor([3.0, 2.0]), 2, ws).shape
    torch.Size([5, 6])
    """
    w_f, b_f, w_d, b_d, w_o, b_o = weights
    f = torch.nn.functional.linear(x, w_f, b_f)
    w = potential_from_d(torch.nn.functional.linear(x, w_d, b_d), potential)
    y = b_o.expand(x.shape[0], -1)
    return _distribute(y, f, w, batch, nu, num_events, w_o, [("mean", 0)])


def _padded_hits(X: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
    """Mask ``[B, V]`` of the valid hits of padded events and their event index ``[N]``."""
    n_ev, v = X.shape[0], X.shape[1]
    mask = torch.arange(v, device=X.device).unsqueeze(0) < n.unsqueeze(1)  # [B, V]
    batch = torch.arange(n_ev, device=X.device).unsqueeze(1).expand(n_ev, v)[mask]
    return mask, batch


def simplified_garnet_stack(
    X: Tensor,
    n: Tensor,
    sublayers: Sequence[Sequence[Tensor]],
    mean_by: Literal["n", "vmax"] = "vmax",
    collapse: Literal["mean"] | None = "mean",
    potential: Potential = "gauss",
) -> Tensor:
    """A stack of :func:`simplified_garnet` layers on padded events (hls4ml's GarNetStack).

    Parameters
    ----------
    X, n:
        Padded hits ``[B, V, F_in]`` and valid hits per event ``[B]`` (hits ``v >= n`` are
        ignored).
    sublayers:
        Weights of each sublayer, as :func:`simplified_garnet` takes them.
    mean_by:
        ``"vmax"``: means divide by ``V`` (hls4ml's default), ``"n"``: by the event's hits.
    collapse:
        ``"mean"``: the mean over the hits of the last sublayer's output, ``[B, F_out]``;
        ``None``: per-hit outputs ``[B, V, F_out]``, zero beyond ``n``.
    potential:
        Edge-weight potential.

    Examples
    --------
    >>> import torch
    >>> ws = [torch.randn(4, 3), torch.randn(4), torch.randn(2, 3), torch.randn(2),
    ...       torch.randn(6, 8), torch.randn(6)]
    >>> simplified_garnet_stack(torch.randn(2, 8, 3), torch.tensor([8, 3]), [ws]).shape
    torch.Size([2, 6])
    """
    n_ev, v = X.shape[0], X.shape[1]
    mask, batch = _padded_hits(X, n)
    if mean_by == "n":
        nu = n.clamp(min=1).to(X.dtype)
    else:
        nu = torch.full((n_ev,), float(v), dtype=X.dtype, device=X.device)
    h = X[mask]
    for weights in sublayers:
        h = simplified_garnet(h, batch, nu, n_ev, weights, potential)
    if collapse == "mean":
        return h.new_zeros(n_ev, h.shape[1]).index_add_(0, batch, h) / nu.view(-1, 1)
    out = h.new_zeros(n_ev, v, h.shape[1])
    out[mask] = h
    return out


class GarNetConv(nn.Module):
    """GarNet layer: hits exchange information through ``A`` learned aggregators.

    Parameters
    ----------
    in_channels:
        ``F_in``, features per hit.
    out_channels:
        ``F_out``, output features per hit (or per event with ``collapse``).
    n_aggregators:
        ``A``.
    n_propagate:
        ``F_LR``, features sent to the aggregators.
    potential:
        ``"exp_abs"`` (``exp(-|d|)``, the paper, default) or ``"gauss"`` (``exp(-d^2)``,
        hls4ml); ``"exp10"`` is accepted too.
    aggr:
        ``("mean", "max")`` (paper, default) or ``("mean",)``; the simplified form needs
        ``("mean",)``.
    simplified:
        hls4ml's simplified GarNet: mean only, output dense on the returned features only.
    mean_by:
        ``"n"``: the aggregator mean (and the collapse mean) divide by the event's number of
        hits; ``"vmax"``: by the fixed ``v_max`` (hls4ml's default).
    v_max:
        ``V_max`` for ``mean_by="vmax"``; for padded input it defaults to ``X.shape[1]``.
    collapse:
        ``None`` (per-hit output), ``"mean"``, ``"sum"`` or ``"max"`` over the event's hits.
    recompute:
        In training (autograd on), keep only the layer's input for the backward pass and
        recompute the rest there (``torch.utils.checkpoint``): the layer then stores O(N F_in)
        instead of O(N (A F_LR + F_out)) per hit, for about one more forward pass of time.

    Shapes
    ------
    - ragged input: ``x [N, F_in]``, ``batch [N]`` (sorted) or ``None``; output ``[N, F_out]``,
      or ``[B, F_out]`` with ``collapse``
    - padded input: ``X [B, V, F_in]``, ``n [B]`` valid hits per event (hits ``v >= n`` are
      ignored); output ``[B, V, F_out]`` (zero beyond ``n``) or ``[B, F_out]`` with ``collapse``

    Examples
    --------
    >>> import torch
    >>> conv = GarNetConv(4, 8, n_aggregators=4, n_propagate=8, simplified=True,
    ...                   potential="gauss", mean_by="vmax", collapse="mean")
    >>> conv
    GarNetConv(4, 8, n_aggregators=4, n_propagate=8, potential='gauss', aggr=('mean',), simplified=True, mean_by='vmax', v_max=None, collapse='mean')
    >>> X, n = torch.randn(2, 16, 4), torch.tensor([16, 5])
    >>> conv(X, n).shape
    torch.Size([2, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_aggregators: int,
        n_propagate: int,
        potential: Potential = "exp_abs",
        aggr: Sequence[str] = ("mean", "max"),
        simplified: bool = False,
        mean_by: Literal["n", "vmax"] = "n",
        v_max: int | None = None,
        collapse: Collapse | None = None,
        recompute: bool = True,
    ) -> None:
        super().__init__()
        for name, v in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("n_aggregators", n_aggregators),
            ("n_propagate", n_propagate),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"GarNetConv: {name} must be a positive integer, got {v!r}")
        aggr = (aggr,) if isinstance(aggr, str) else tuple(aggr)
        if simplified and aggr == ("mean", "max"):
            aggr = ("mean",)
        if aggr not in (("mean",), ("mean", "max")):
            raise ConfigError(f"GarNetConv: aggr must be ('mean',) or ('mean', 'max'), got {aggr}")
        if simplified and aggr != ("mean",):
            raise ConfigError("GarNetConv: the simplified form aggregates by mean only")
        if mean_by not in ("n", "vmax"):
            raise ConfigError(f"GarNetConv: mean_by must be 'n' or 'vmax', got {mean_by!r}")
        if v_max is not None and (
            isinstance(v_max, bool) or not isinstance(v_max, int) or v_max < 1
        ):
            raise ConfigError(f"GarNetConv: v_max must be a positive integer, got {v_max!r}")
        if collapse not in (None, "mean", "sum", "max"):
            raise ConfigError(
                f"GarNetConv: collapse must be None, 'mean', 'sum' or 'max', got {collapse!r}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_aggregators = n_aggregators
        self.n_propagate = n_propagate
        self.potential = check_potential(potential)
        self.aggr = aggr
        self.simplified = simplified
        self.mean_by = mean_by
        self.v_max = v_max
        self.collapse = collapse
        self.recompute = recompute
        self.lin_flr = nn.Linear(in_channels, n_propagate)
        self.lin_s = nn.Linear(in_channels, n_aggregators)
        n_returned = len(aggr) * n_aggregators * n_propagate
        n_dense = n_returned if simplified else in_channels + n_returned + n_aggregators
        self.lin_out = nn.Linear(n_dense, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise all weights (PyTorch's default Linear initialisation).

        Examples
        --------
        >>> GarNetConv(3, 4, 2, 2).reset_parameters()
        """
        for lin in (self.lin_flr, self.lin_s, self.lin_out):
            lin.reset_parameters()

    def edge_weights(self, x: Tensor) -> Tensor:
        """``w [..., A] = V(W_d x + b_d)``, the hit-aggregator weights.

        Examples
        --------
        >>> GarNetConv(3, 4, 2, 2).edge_weights(torch.zeros(5, 3)).shape
        torch.Size([5, 2])
        """
        return potential_from_d(self.lin_s(x), self.potential)

    def _per_hit(self, x: Tensor, batch: Tensor, nu: Tensor, num_events: int) -> Tensor:
        """Per-hit output ``y [N, F_out]`` without the ``[N, A, F_LR]`` intermediates.

        The output dense layer is applied per aggregator: its columns ``M_a`` acting on the
        returned block ``w_ja f_a`` give ``w_ja (M_a f_a)``, so ``M_a`` is applied once per event
        to the aggregated ``f_a [B, F_LR]`` and only ``[N, F_LR]`` and ``[N, F_out]`` tensors are
        formed per hit (the ``[N, A F_LR]`` messages, returned features and dense input are not).
        """
        if self.simplified:
            lins = (self.lin_flr, self.lin_s, self.lin_out)
            weights = [t for lin in lins for t in (lin.weight, lin.bias)]
            return simplified_garnet(x, batch, nu, num_events, weights, self.potential)
        a_n, p, f_in = self.n_aggregators, self.n_propagate, self.in_channels
        f = self.lin_flr(x)  # [N, F_LR]
        w = self.edge_weights(x)  # [N, A]
        weight, bias = self.lin_out.weight, self.lin_out.bias
        y = torch.nn.functional.linear(x, weight[:, :f_in], bias)
        y = y + w @ weight[:, -a_n:].T
        blocks = [("mean", f_in)]
        if "max" in self.aggr:
            blocks.append(("max", f_in + a_n * p))
        return _distribute(y, f, w, batch, nu, num_events, weight, blocks)

    def _ragged(self, x: Tensor, batch: Tensor, counts: Tensor, nu: Tensor) -> Tensor:
        """Core on ragged hits; ``counts [B]`` hits per event, ``nu [B]`` mean normaliser."""
        num_events = counts.numel()
        if self.recompute and torch.is_grad_enabled():
            y = checkpoint(self._per_hit, x, batch, nu, num_events, use_reentrant=False)
        else:
            y = self._per_hit(x, batch, nu, num_events)
        if self.collapse is None:
            return y
        if self.collapse == "max":
            return _segment_max(y, batch, num_events)
        total = y.new_zeros(num_events, y.shape[1]).index_add_(0, batch, y)
        return total if self.collapse == "sum" else total / nu.view(-1, 1)

    def _normaliser(self, counts: Tensor, v_max: int | None, dtype: torch.dtype) -> Tensor:
        if self.mean_by == "n":
            return counts.clamp(min=1).to(dtype)
        if v_max is None:
            raise ConfigError(
                "GarNetConv(mean_by='vmax') on ragged input needs v_max; set v_max=... "
                "or use mean_by='n'"
            )
        return torch.full(counts.shape, float(v_max), dtype=dtype, device=counts.device)

    def forward(self, x: Tensor, batch_or_n: Tensor | None = None) -> Tensor:
        """Apply the layer to ragged ``(x [N, F], batch [N])`` or padded ``(X [B, V, F], n [B])``.

        Parameters
        ----------
        x:
            ``[N, F_in]`` hits of a ragged batch, or ``[B, V, F_in]`` padded events.
        batch_or_n:
            For ragged input the sorted event index ``[N]`` (``None``: one event); for padded
            input the number of valid hits ``n [B]`` (``None``: all ``V`` valid).

        Returns
        -------
        Tensor
            Ragged: ``[N, F_out]``; padded: ``[B, V, F_out]`` with zeros beyond ``n``;
            ``[B, F_out]`` with ``collapse``.

        Raises
        ------
        calo.errors.DataError
            On wrong shapes or ``n`` outside ``[0, V]``.
        calo.errors.ConfigError
            For ``mean_by="vmax"`` without ``v_max`` on ragged input.

        Examples
        --------
        >>> conv = GarNetConv(3, 2, n_aggregators=2, n_propagate=4)
        >>> conv(torch.randn(6, 3), torch.tensor([0, 0, 0, 1, 1, 1])).shape
        torch.Size([6, 2])
        """
        if x.dim() not in (2, 3) or x.shape[-1] != self.in_channels:
            raise DataError(
                f"GarNetConv expects x of shape [N, {self.in_channels}] (ragged) or "
                f"[B, V, {self.in_channels}] (padded), got {list(x.shape)}"
            )
        if x.dim() == 2 and is_exporting() and batch_or_n is not None:
            if self.collapse is not None:
                raise ConfigError(
                    "GarNetConv with collapse cannot be exported on ragged input: its number "
                    "of outputs (events) depends on the values of batch"
                )
            # no data-dependent number of events: per-event buffers of N rows, compact ids
            batch = event_ids(batch_or_n)
            ones = torch.ones_like(batch)
            counts = torch.zeros_like(batch).index_add(0, batch, ones)
            nu = self._normaliser(counts, self.v_max, x.dtype)
            return self._ragged(x, batch, counts, nu)
        if x.dim() == 2:
            n_hits = x.shape[0]
            ptr = batch_to_ptr(batch_or_n, n_hits).to(x.device)
            counts = ptr.diff()
            batch = (
                torch.zeros(n_hits, dtype=torch.long, device=x.device)
                if batch_or_n is None
                else batch_or_n.to(torch.long)
            )
            nu = self._normaliser(counts, self.v_max, x.dtype)
            return self._ragged(x, batch, counts, nu)
        n_ev, v = x.shape[0], x.shape[1]
        n = batch_or_n
        if n is None:
            n = torch.full((n_ev,), v, dtype=torch.long, device=x.device)
        if n.dim() != 1 or n.numel() != n_ev or n.dtype.is_floating_point:
            raise DataError(
                f"GarNetConv: n must be an integer tensor of shape [B] = [{n_ev}], "
                f"got {n.dtype} {list(n.shape)}"
            )
        n = n.to(device=x.device, dtype=torch.long)
        if bool(((n < 0) | (n > v)).any()):
            raise DataError(f"GarNetConv: n must lie in [0, V] = [0, {v}], got {n.tolist()}")
        mask, batch = _padded_hits(x, n)
        nu = self._normaliser(n, self.v_max if self.v_max is not None else v, x.dtype)
        y = self._ragged(x[mask], batch, n, nu)
        if self.collapse is not None:
            return y
        out = y.new_zeros(n_ev, v, self.out_channels)
        out[mask] = y
        return out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"n_aggregators={self.n_aggregators}, n_propagate={self.n_propagate}, "
            f"potential={self.potential!r}, aggr={self.aggr!r}, simplified={self.simplified}, "
            f"mean_by={self.mean_by!r}, v_max={self.v_max}, collapse={self.collapse!r})"
        )
