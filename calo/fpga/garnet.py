"""Weights, fixed-point configuration and conversion of a simplified GarNet for hls4ml.

The simplified GarNet of hls4ml (one layer, or a stack of sublayers) computes, for an event
with ``n`` valid hits out of ``V`` (= ``n_vertices``, the padded size) and input ``x[v, :]``::

    f[v, p]  = sum_x x[v, x] FLR_k[x, p] + FLR_b[p]                  (F_LR propagated features)
    d[v, a]  = sum_x x[v, x] S_k[x, a] + S_b[a]                      (distance to aggregator a)
    w[v, a]  = exp(-d[v, a]**2)                                      (edge weight)
    h[a, p]  = (1/V) sum_{v<n} w[v, a] f[v, p]                       (aggregated features)
    y[v, o]  = Fout_b[o] + sum_{a,p} w[v, a] h[a, p] Fout_k[a*P + p, o]   (per-hit output)
    y[o]     = (1/V) sum_{v<n} y[v, o]                               (collapse "mean")

(with ``mean_by_nvert`` the ``1/V`` become ``1/n``). A stack feeds ``y[v, :]`` of sublayer L
to sublayer L+1 as its input. Because F_LR and F_out are linear, hls4ml's converter contracts
them (shapes in brackets)::

    W_in[o, a, x] = sum_p FLR_k[x, p] Fout_k[a*P + p, o]     [O, A, F_in]
    b_in[o, a]    = sum_p FLR_b[p] Fout_k[a*P + p, o]         [O, A]

so that only ``ewm[a] = (1/V) sum_v w[v, a]`` and ``wfm[a, x] = (1/V) sum_v w[v, a] x[v, x]``
are accumulated over hits. Each weight array gets the converter's type
``ap_fixed<iw+10, iw, AP_RND, AP_SAT>`` (``ap_ufixed`` when no value is negative) with ``iw``
the integer bits its largest magnitude needs; the internal types follow
:class:`GarNetFixedConfig`.

Examples
--------
>>> import numpy as np
>>> w = GarNetWeights.random(np.random.default_rng(0), n_in=4, n_aggregators=4,
...                          n_propagate=8, n_out=8)
>>> cfg = GarNetFixedConfig(n_vertices=128, reuse_factor=32)
>>> str(cfg.types()["aggr_t"]), str(cfg.types()["edge_weight_aggr_t"])
('ap_fixed<18,8>', 'ap_ufixed<15,5>')
>>> q = quantize_sublayers([w], cfg)[0]
>>> q.w_in.shape, q.b_in.shape
((8, 4, 4), (8, 4))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from calo.errors import ConfigError
from calo.fpga.fixed import FixedType, cast, parse_type, quantize

__all__ = [
    "PAPER_N_IN",
    "PAPER_SUBLAYERS",
    "DataFlow",
    "GarNetFixedConfig",
    "GarNetWeights",
    "QuantizedSublayer",
    "contract",
    "contract_transforms",
    "converter_weight_type",
    "edge_weight_table",
    "minimum_integer_width",
    "quantize_sublayers",
    "sublayer_dims",
]


#: The FPGA paper's GarNetStack (Iiyama et al. 2021): (aggregators, F_LR, F_out) per sublayer.
PAPER_SUBLAYERS: tuple[tuple[int, int, int], ...] = ((4, 8, 8), (4, 8, 8), (8, 16, 16))
#: Input features per hit of the paper's model.
PAPER_N_IN = 4


def sublayer_dims(
    sublayers: Sequence[Sequence[int]] = PAPER_SUBLAYERS, n_in: int = PAPER_N_IN
) -> list[tuple[int, int, int, int]]:
    """``(F_in, A, F_LR, F_out)`` per sublayer of a stack (each F_in is the previous F_out).

    Examples
    --------
    >>> sublayer_dims()  # the paper's stack
    [(4, 4, 8, 8), (8, 4, 8, 8), (8, 8, 16, 16)]
    """
    out = []
    for a, p, o in sublayers:
        out.append((n_in, a, p, o))
        n_in = o
    return out


@dataclass
class GarNetWeights:
    """Float weights of one simplified GarNet (sub)layer, in Keras' kernel layout.

    Parameters
    ----------
    flr_kernel:
        ``[F_in, P]`` input transform (F_LR) kernel.
    flr_bias:
        ``[P]`` input transform bias.
    s_kernel:
        ``[F_in, A]`` aggregator-distance kernel.
    s_bias:
        ``[A]`` aggregator-distance bias.
    fout_kernel:
        ``[A * P, O]`` output transform kernel; row ``a * P + p`` multiplies aggregator a's
        feature p.
    fout_bias:
        ``[O]`` output transform bias.

    Examples
    --------
    >>> import numpy as np
    >>> w = GarNetWeights.random(np.random.default_rng(1), 4, 4, 8, 8)
    >>> (w.n_in, w.n_aggregators, w.n_propagate, w.n_out)
    (4, 4, 8, 8)
    """

    flr_kernel: NDArray[np.floating]
    flr_bias: NDArray[np.floating]
    s_kernel: NDArray[np.floating]
    s_bias: NDArray[np.floating]
    fout_kernel: NDArray[np.floating]
    fout_bias: NDArray[np.floating]

    def __post_init__(self) -> None:
        for name in ("flr_kernel", "flr_bias", "s_kernel", "s_bias", "fout_kernel", "fout_bias"):
            arr = np.asarray(getattr(self, name))
            if not np.issubdtype(arr.dtype, np.floating):
                arr = arr.astype(np.float64)
            if not np.isfinite(arr).all():
                raise ConfigError(f"GarNet weight {name} contains NaN or infinite values")
            setattr(self, name, arr)
        f_in, p = self.flr_kernel.shape
        a = self.s_kernel.shape[1]
        checks = {
            "flr_bias": (self.flr_bias.shape, (p,)),
            "s_kernel": (self.s_kernel.shape, (f_in, a)),
            "s_bias": (self.s_bias.shape, (a,)),
            "fout_kernel": (self.fout_kernel.shape, (a * p, self.fout_bias.shape[0])),
        }
        for name, (got, want) in checks.items():
            if got != want:
                raise ConfigError(
                    f"GarNet weight {name} has shape {got}, expected {want} "
                    f"(F_in={f_in}, A={a}, P={p})"
                )

    @property
    def n_in(self) -> int:
        """Number of input features F_in."""
        return int(self.flr_kernel.shape[0])

    @property
    def n_propagate(self) -> int:
        """Number of propagated features P (F_LR)."""
        return int(self.flr_kernel.shape[1])

    @property
    def n_aggregators(self) -> int:
        """Number of aggregators A."""
        return int(self.s_kernel.shape[1])

    @property
    def n_out(self) -> int:
        """Number of output features O (F_out)."""
        return int(self.fout_bias.shape[0])

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        n_in: int,
        n_aggregators: int,
        n_propagate: int,
        n_out: int,
        scale: float = 1.0,
    ) -> GarNetWeights:
        """Glorot-uniform kernels and small biases, like a freshly initialised Keras layer.

        Examples
        --------
        >>> import numpy as np
        >>> GarNetWeights.random(np.random.default_rng(0), 3, 2, 5, 4).fout_kernel.shape
        (10, 4)
        """

        def glorot(fi: int, fo: int) -> NDArray[np.float64]:
            lim = scale * math.sqrt(6.0 / (fi + fo))
            return rng.uniform(-lim, lim, size=(fi, fo))

        return cls(
            flr_kernel=glorot(n_in, n_propagate),
            flr_bias=rng.normal(0, 0.1 * scale, n_propagate),
            s_kernel=glorot(n_in, n_aggregators),
            s_bias=rng.normal(0, 0.1 * scale, n_aggregators),
            fout_kernel=glorot(n_aggregators * n_propagate, n_out),
            fout_bias=rng.normal(0, 0.1 * scale, n_out),
        )


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


@dataclass
class GarNetFixedConfig:
    """hls4ml configuration of a GarNet layer or stack: sizes, reuse, fixed-point types.

    Types left as ``None`` get the defaults hls4ml's converter writes
    (``aggr_intw = max(log2 R, log2 V - log2 R) + 3``): ``edge_weight_t = ap_ufixed<10,0>``,
    ``edge_weight_aggr_t = ap_ufixed<aggr_intw+7, aggr_intw-3>``,
    ``aggr_t = ap_fixed<aggr_intw+10, aggr_intw>``, ``norm_t = ap_ufixed<14,4>``;
    ``distance_t`` is always ``ap_fixed<distance_width, distance_nint, AP_TRN, AP_SAT>``.
    Weight arrays get ``ap_fixed<iw+weight_frac, iw, AP_RND, AP_SAT>`` sized from their values
    unless ``weight_t`` forces one type for all.

    Parameters
    ----------
    n_vertices:
        V_max, a power of two.
    reuse_factor:
        R, a power of two dividing ``n_vertices``; V/R hits are processed in parallel.
    input_t, output_t:
        Types of the input features and of every (sub)layer output.
    nvtx_width:
        Width of the unsigned integer ``n`` input (``ap_uint<nvtx_width>``).
    collapse:
        ``"mean"`` (average over hits) or ``"none"`` (per-hit outputs; single layer only).
    mean_by_nvert:
        Normalise by n instead of V_max.
    nvert_division:
        With ``mean_by_nvert``: ``"integer"`` reproduces nnet_garnet.h, which computes
        ``(V/R)/n`` as an integer (0 for n > V/R: a pitfall, a warning is issued);
        ``"fixed"`` uses ``(V/R)/n`` truncated to ``norm_t`` (the intended arithmetic, not
        what the header does).

    Examples
    --------
    >>> cfg = GarNetFixedConfig(n_vertices=64, reuse_factor=16)
    >>> str(cfg.types()["aggr_t"])
    'ap_fixed<17,7>'
    """

    n_vertices: int = 128
    reuse_factor: int = 32
    input_t: str = "ap_fixed<14,5,AP_RND,AP_SAT>"
    output_t: str = "ap_fixed<16,6>"
    nvtx_width: int = 10
    distance_width: int = 12
    distance_nint: int = 4
    edge_weight_t: str | None = None
    edge_weight_aggr_t: str | None = None
    aggr_t: str | None = None
    norm_t: str | None = None
    weight_t: str | None = None
    weight_frac: int = 10
    collapse: Literal["mean", "none"] = "mean"
    mean_by_nvert: bool = False
    nvert_division: Literal["integer", "fixed"] = "integer"

    def __post_init__(self) -> None:
        if not _is_pow2(self.n_vertices):
            raise ConfigError(f"n_vertices must be a power of two, got {self.n_vertices}")
        if not _is_pow2(self.reuse_factor) or self.n_vertices % self.reuse_factor:
            raise ConfigError(
                f"reuse_factor must be a power of two dividing n_vertices={self.n_vertices}, "
                f"got {self.reuse_factor}"
            )
        if self.collapse not in ("mean", "none"):
            raise ConfigError(f"collapse must be 'mean' or 'none', got {self.collapse!r}")
        if self.nvert_division not in ("integer", "fixed"):
            raise ConfigError(
                f"nvert_division must be 'integer' or 'fixed', got {self.nvert_division!r}"
            )
        if not 1 <= self.nvtx_width <= 31 or (1 << self.nvtx_width) <= self.n_vertices:
            raise ConfigError(
                f"nvtx_width={self.nvtx_width} cannot hold n up to n_vertices={self.n_vertices}"
            )
        if not 4 <= self.distance_width <= 16:
            raise ConfigError(f"distance_width must be in 4..16, got {self.distance_width}")
        self.types()  # parse every type now so that a bad string fails early

    @property
    def log2_reuse(self) -> int:
        """log2 R."""
        return self.reuse_factor.bit_length() - 1

    @property
    def n_vertices_width(self) -> int:
        """log2 V."""
        return self.n_vertices.bit_length() - 1

    def types(self) -> dict[str, FixedType]:
        """Resolved internal types by hls4ml name (defaults filled in as the converter does)."""
        lr, lv = self.log2_reuse, self.n_vertices_width
        aggr_intw = max(lr, lv - lr) + 3
        defaults = {
            "edge_weight_t": FixedType(10, 0, signed=False),
            "edge_weight_aggr_t": FixedType(aggr_intw - 3 + 10, aggr_intw - 3, signed=False),
            "aggr_t": FixedType(aggr_intw + 10, aggr_intw),
            "norm_t": FixedType(14, 4, signed=False),
        }
        out: dict[str, FixedType] = {}
        try:
            out["input_t"] = parse_type(self.input_t)
            out["output_t"] = parse_type(self.output_t)
            out["distance_t"] = FixedType(
                self.distance_width, self.distance_nint, True, "TRN", "SAT"
            )
            for name, dflt in defaults.items():
                val = getattr(self, name)
                out[name] = dflt if val is None else parse_type(val)
            out["nvtx_t"] = FixedType(self.nvtx_width, self.nvtx_width, signed=False)
            if self.weight_t is not None:
                out["weight_t"] = parse_type(self.weight_t)
        except Exception as err:
            raise ConfigError(f"invalid fixed-point type in GarNetFixedConfig: {err}") from None
        return out

    def data_flow(self) -> DataFlow:
        """The :class:`DataFlow` (sizes, shifts, types) of this configuration."""
        lr, lv = self.log2_reuse, self.n_vertices_width
        V, R = self.n_vertices, self.reuse_factor
        return DataFlow(V, R, V // R, lv - lr, lr, lv, self.types())


@dataclass(frozen=True)
class DataFlow:
    """Sizes, shifts and internal types of nnet_garnet.h's data flow for one configuration.

    The one description that the numba kernels of :mod:`calo.fpga.reference` and the
    fixed-point forward of :class:`~calo.fpga.qat.QGarNetStack` follow: ``V`` hits padded,
    ``R`` pipeline steps of ``U = V/R`` hits; sums over a group are shifted right by
    ``log2u``, the normalisation by ``V_max`` is a further shift by ``log2r`` (``log2v`` in
    all, for the collapsed bias).

    Examples
    --------
    >>> f = GarNetFixedConfig(n_vertices=128, reuse_factor=32).data_flow()
    >>> f.U, f.log2u, f.log2r, f.log2v, str(f.ewa)
    (4, 2, 5, 7, 'ap_ufixed<15,5>')
    """

    V: int
    R: int
    U: int
    log2u: int
    log2r: int
    log2v: int
    types: dict[str, FixedType]

    @property
    def dist(self) -> FixedType:
        """``distance_t``."""
        return self.types["distance_t"]

    @property
    def ew(self) -> FixedType:
        """``edge_weight_t``."""
        return self.types["edge_weight_t"]

    @property
    def ewa(self) -> FixedType:
        """``edge_weight_aggr_t``."""
        return self.types["edge_weight_aggr_t"]

    @property
    def aggr(self) -> FixedType:
        """``aggr_t``."""
        return self.types["aggr_t"]

    @property
    def norm(self) -> FixedType:
        """``norm_t``."""
        return self.types["norm_t"]

    @property
    def outt(self) -> FixedType:
        """``output_t``."""
        return self.types["output_t"]

    def data_t(self, li: int) -> FixedType:
        """Type of the input of sublayer ``li`` (``input_t``, then ``output_t``)."""
        return self.types["input_t"] if li == 0 else self.types["output_t"]


@dataclass
class QuantizedSublayer:
    """Raw integer weights of one sublayer as nnet_garnet.h uses them, and their types.

    Arrays (raw int64): ``w_d [A, F_in]``, ``b_d [A]`` (aggregator distance),
    ``w_in [O, A, F_in]``, ``b_in [O, A]`` (contracted input transform), ``b_out [O]``.
    ``types`` maps ``"w_d", "b_d", "w_in", "b_in", "b_out"`` to their :class:`FixedType`;
    ``n_propagate`` is P of the float layer (contracted away; only written to the config).
    Made by :func:`quantize_sublayers`.

    Examples
    --------
    >>> import numpy as np
    >>> w = GarNetWeights.random(np.random.default_rng(0), 4, 4, 8, 8)
    >>> q = quantize_sublayers([w], GarNetFixedConfig(n_vertices=16, reuse_factor=4))[0]
    >>> q.n_in, q.n_aggregators, q.n_out, q.n_propagate, q.w_in.shape
    (4, 4, 8, 8, (8, 4, 4))
    >>> str(q.types["b_out"]), q.b_out[:2].tolist(), q.values("b_out")[:2].tolist()
    ('ap_fixed<11,1,AP_RND,AP_SAT>', [42, -27], [0.041015625, -0.0263671875])
    """

    w_d: NDArray[np.int64]
    b_d: NDArray[np.int64]
    w_in: NDArray[np.int64]
    b_in: NDArray[np.int64]
    b_out: NDArray[np.int64]
    types: dict[str, FixedType]
    n_propagate: int = 0

    @property
    def n_in(self) -> int:
        """F_in."""
        return int(self.w_d.shape[1])

    @property
    def n_aggregators(self) -> int:
        """A."""
        return int(self.w_d.shape[0])

    @property
    def n_out(self) -> int:
        """O."""
        return int(self.b_out.shape[0])

    def values(self, name: str) -> NDArray[np.float64]:
        """Float values of weight array ``name`` (e.g. ``"w_in"``)."""
        return self.types[name].to_float(getattr(self, name))


def minimum_integer_width(data: NDArray[np.floating], signed: bool = True) -> int:
    """Integer bits hls4ml gives a weight array: ``ceil(log2 max|x|)`` (+1 at exact powers
    of two, +1 for the sign), at least 0 (+ sign); 1 for an all-zero array.

    Examples
    --------
    >>> import numpy as np
    >>> minimum_integer_width(np.array([0.3, -1.7])), minimum_integer_width(np.array([2.0]))
    (2, 3)
    """
    maxdata = float(np.max(np.abs(data)))
    if maxdata == 0.0:
        return 1
    log2max = math.log2(maxdata)
    iw = max(0, math.ceil(log2max))
    if iw == math.floor(log2max):
        iw += 1
    return iw + 1 if signed else iw


def converter_weight_type(data: NDArray[np.floating], frac_width: int = 10) -> FixedType:
    """The type hls4ml's converter picks for a GarNet weight array.

    Examples
    --------
    >>> import numpy as np
    >>> str(converter_weight_type(np.array([0.2, -0.7, 1.5])))
    'ap_fixed<12,2,AP_RND,AP_SAT>'
    >>> str(converter_weight_type(np.array([0.2, 0.7])))
    'ap_ufixed<10,0,AP_RND,AP_SAT>'
    """
    signed = bool(np.min(data) < 0.0)
    iw = minimum_integer_width(data, signed=signed)
    return FixedType(iw + frac_width, iw, signed, "RND", "SAT")


def contract_transforms(w: GarNetWeights) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Contract F_LR into F_out: returns ``W_in [O, A, F_in]`` and ``b_in [O, A]``.

    The product is computed in the weights' own dtype (float32 weights give float32 values,
    as in hls4ml's converter); see :func:`contract`.

    Examples
    --------
    >>> import numpy as np
    >>> w = GarNetWeights.random(np.random.default_rng(0), 4, 2, 3, 5)
    >>> W, b = contract_transforms(w)
    >>> W.shape, b.shape
    ((5, 2, 4), (5, 2))
    """
    return contract(w.flr_kernel, w.flr_bias, w.fout_kernel)


def contract(flr_kernel: Any, flr_bias: Any, fout_kernel: Any) -> tuple[Any, Any]:
    """``W_in[o, a, x] = sum_p FLR_k[x, p] Fout_k[a*P + p, o]``, ``b_in[o, a] = sum_p
    FLR_b[p] Fout_k[a*P + p, o]`` (kernels in Keras' layout).

    On numpy arrays it is hls4ml's converter to the bit (``np.dot`` in the arrays' dtype, whose
    rounding decides the quantized weights); on torch tensors it is the differentiable
    equivalent the quantization-aware layer takes its gradients from.

    Examples
    --------
    >>> import numpy as np, torch
    >>> w = GarNetWeights.random(np.random.default_rng(0), 4, 2, 3, 5)
    >>> W, b = contract(w.flr_kernel, w.flr_bias, w.fout_kernel)
    >>> Wt, bt = contract(*(torch.as_tensor(a) for a in (w.flr_kernel, w.flr_bias, w.fout_kernel)))
    >>> W.shape, bool(np.allclose(W, Wt.numpy())), bool(np.allclose(b, bt.numpy()))
    ((5, 2, 4), True, True)
    """
    p = flr_kernel.shape[1]
    fout = fout_kernel.reshape(fout_kernel.shape[0] // p, p, fout_kernel.shape[1])  # [A, P, O]
    if isinstance(fout, np.ndarray):
        return np.dot(flr_kernel, fout).transpose(2, 1, 0), np.dot(flr_bias, fout).T
    import torch

    return torch.einsum("xp,apo->oax", flr_kernel, fout), torch.einsum("p,apo->oa", flr_bias, fout)


def quantize_sublayers(
    weights: Sequence[GarNetWeights], config: GarNetFixedConfig
) -> list[QuantizedSublayer]:
    """Quantize the float weights of each sublayer as hls4ml's converter does.

    Raises
    ------
    ConfigError
        If consecutive sublayers do not chain (F_out of L != F_in of L+1).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> w0, w1 = GarNetWeights.random(rng, 4, 4, 8, 8), GarNetWeights.random(rng, 8, 4, 8, 16)
    >>> cfg = GarNetFixedConfig(n_vertices=16, reuse_factor=4)
    >>> [(q.n_in, q.n_out) for q in quantize_sublayers([w0, w1], cfg)]
    [(4, 8), (8, 16)]
    >>> quantize_sublayers([w1, w0], cfg)
    Traceback (most recent call last):
    ...
    calo.errors.ConfigError: sublayer 1 expects 4 input features but sublayer 0 produces 16
    """
    if len(weights) == 0:
        raise ConfigError("a GarNet needs at least one (sub)layer of weights")
    for i in range(1, len(weights)):
        if weights[i].n_in != weights[i - 1].n_out:
            raise ConfigError(
                f"sublayer {i} expects {weights[i].n_in} input features but sublayer {i - 1} "
                f"produces {weights[i - 1].n_out}"
            )
    forced = config.types().get("weight_t")
    out = []
    for w in weights:
        w_in, b_in = contract_transforms(w)
        arrays = {
            "w_d": w.s_kernel.T,
            "b_d": w.s_bias,
            "w_in": w_in,
            "b_in": b_in,
            "b_out": w.fout_bias,
        }
        raw: dict[str, NDArray[np.int64]] = {}
        types: dict[str, FixedType] = {}
        for name, data in arrays.items():
            t = forced if forced is not None else converter_weight_type(data, config.weight_frac)
            types[name] = t
            raw[name] = quantize(np.ascontiguousarray(data, dtype=np.float64), t)
        out.append(QuantizedSublayer(types=types, n_propagate=w.n_propagate, **raw))
    return out


def edge_weight_table(config: GarNetFixedConfig) -> NDArray[np.int64]:
    """Raw ``edge_weight_t`` values of exp(-d^2) for every raw distance code, as the header.

    Entry ``i`` (``0 <= i < 2**distance_width``) belongs to the distance whose two's-complement
    bits are ``i``; it holds ``exp(-d*d)`` evaluated in double (``std::exp``), assigned to the
    full-precision product type ``ap_fixed<2W+1, 2I+1>`` and then to ``edge_weight_t``. Entry 0
    (d = 0, exp = 1, not representable in ``ap_ufixed<W,0>``) is the saturated 1, i.e.
    ``ap_ufixed<W_ew, 0, AP_TRN, AP_SAT>(1.)``.

    Examples
    --------
    >>> t = edge_weight_table(GarNetFixedConfig())
    >>> t.shape, int(t[0]), int(t[256]), int(t[2048])  # d = 0, d = 1, d = -8
    ((4096,), 1023, 376, 0)
    """
    types = config.types()
    dt, ew = types["distance_t"], types["edge_weight_t"]
    size = 1 << dt.width
    codes = np.arange(size, dtype=np.int64)
    d_raw = np.where(codes >= size // 2, codes - size, codes)
    d = np.ldexp(d_raw.astype(np.float64), -dt.frac)
    # -d * d has type ap_fixed<2W+1, 2I+1>; exp <= 1 so a 32-bit version with the same LSB
    # gives the same bits when that type is wider than calo's 32-bit limit
    pw = min(2 * dt.width + 1, 32)
    prod_t = FixedType(pw, pw - 2 * dt.frac)
    vals = np.array([math.exp(-(v * v)) for v in d])  # libm exp, as std::exp
    mid = quantize(vals, prod_t)
    table = cast(mid, prod_t, ew)
    one_t = FixedType(ew.width, 0, False, "TRN", "SAT")
    table[0] = cast(quantize([1.0], one_t), one_t, ew)[0]
    return table
