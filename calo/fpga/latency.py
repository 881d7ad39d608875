"""Latency, initiation interval and DSP model of hls4ml's GarNet / GarNetStack firmware.

The firmware (``nnet_garnet.h``) runs, per sublayer, one vertex loop of ``R`` (reuse factor)
iterations pipelined with II = 1; each iteration handles ``U = V/R`` hits in parallel. For a
stack of L sublayers the loops are: ``aggregate`` of sublayer 0 and ``distribute_aggregate``
of sublayers 1..L-1 (which also recomputes the previous sublayer's per-hit outputs); a single
layer without collapse adds the ``distribute`` loop. After each loop a short stage normalises
the sums (right shifts) and computes the aggregator outputs (``output_base``); the collapsed
output ends with one more multiply-accumulate stage. So, in clock cycles::

    latency = sum_loops (R + D_loop) + sum_sublayers D_norm + D_out + C_io
    II      = max_loops (R + D_loop + D_norm) + C_ii

with pipeline depths built from the operations on the critical path:

- ``m_w``: latency of a multiplication by a weight: 0 for ternary (quantized) weights (a
  sign flip or a zero, in LUTs), ``M_WEIGHT = 2`` for continuous ones (a multiplication by
  a constant, shallower than a general DSP pipeline);
- ``m_dsp``: a multiplication of two data values (features x edge weights, edge weights x
  aggregates), always a DSP;
- ``tree(k) = ceil(log2 k / adders_per_cycle)``: an adder tree of k terms;
- ``t_table``: the exp(-d^2) table read (a ROM);
- D_loop = m_w + tree(F_in + 1) [distance] + t_table + m_dsp [x w] + tree(U) + 1 [local sum
  over the U hits and the accumulator], plus m_dsp + tree(A_prev + 1) for a
  distribute_aggregate loop [previous sublayer's per-hit output];
- D_norm = m_w + tree(F_in + 1) [output_base]; D_out = m_dsp + tree(A + 1).

Constants: ``m_dsp = 3`` (a DSP48 with input and output registers at 200 MHz),
``adders_per_cycle = 2``, ``t_table = 2`` (registered ROM) are physical choices; ``C_io = 4``,
``C_ii = 2`` (loop entry/exit and DATAFLOW hand-over cycles) and ``M_WEIGHT = 2`` are fitted to
the published table of Iiyama et al. (2021), which the model reproduces within 4 % on every
row (see :func:`published_table`). The slopes are not fitted: latency grows by 3 R (three
vertex loops of the stack) and II by R, as in the published rows.

DSP estimate: the multiplications unrolled per pipeline step (U hits) plus the unrolled
output stages. Per hit and sublayer: ``A F_in`` multiplications by the distance kernel (it stays
continuous in the paper's quantized model, where only the F_LR and F_out kernels are ternary),
``A F_in`` products of features and edge weights (two data values: a DSP in every model) and,
in a ``distribute_aggregate`` loop, ``A_prev F_out_prev`` products of edge weights and the
previous sublayer's aggregates; after the last loop ``F_out A`` for the collapse. Continuous
transform kernels add ``F_out A (F_in + 1)`` per sublayer (``output_base`` with the contracted
input transform); ternary ones are sign flips in LUTs. This is a count of multiplications, not
a synthesis result: against the published designs it is 7 % low for the continuous model and
9-20 % low for the quantized ones (HLS also maps some wide adders to DSPs); the test checks it
within 25 %.

Examples
--------
>>> est = estimate_latency(n_vertices=128, reuse_factor=32, quantized=True)
>>> est.latency_cycles, est.ii_cycles, est.latency_ns
(148, 50, 740.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from calo.errors import ConfigError
from calo.fpga.garnet import sublayer_dims

__all__ = ["PAPER_STACK", "LatencyEstimate", "estimate_latency", "published_table"]

#: The paper's stack (:data:`~calo.fpga.garnet.PAPER_SUBLAYERS`): (F_in, aggregators, F_out).
PAPER_STACK: tuple[tuple[int, int, int], ...] = tuple((f, a, o) for f, a, _p, o in sublayer_dims())

M_DSP = 3
ADDERS_PER_CYCLE = 2
T_TABLE = 2
C_IO = 4  # fitted
M_WEIGHT = 2  # fitted: continuous weight multiplication (constant coefficient)
C_II = 2  # fitted


@dataclass(frozen=True)
class LatencyEstimate:
    """Result of :func:`estimate_latency`.

    Attributes
    ----------
    latency_cycles, ii_cycles:
        Latency and initiation interval in clock cycles.
    latency_ns, ii_ns:
        The same in nanoseconds at the given clock.
    dsp:
        Estimated DSP48 count.
    terms:
        The named contributions to the latency (cycles).

    Examples
    --------
    >>> est = estimate_latency(n_vertices=16, reuse_factor=4)
    >>> est.latency_cycles, est.ii_cycles, est.latency_ns, est.ii_ns, est.dsp
    (64, 22, 320.0, 110.0, 1280)
    >>> est.terms
    {'loop0': 13, 'norm0': 2, 'loop1': 18, 'norm1': 2, 'loop2': 18, 'norm2': 2, 'output': 5, 'io': 4}
    >>> sum(est.terms.values()) == est.latency_cycles
    True
    """

    latency_cycles: int
    ii_cycles: int
    latency_ns: float
    ii_ns: float
    dsp: int
    terms: dict[str, int]


def _tree(k: int) -> int:
    return math.ceil(math.log2(max(k, 1)) / ADDERS_PER_CYCLE)


def estimate_latency(
    n_vertices: int = 128,
    reuse_factor: int = 32,
    sublayers: Sequence[tuple[int, int, int]] = PAPER_STACK,
    quantized: bool = True,
    collapse: bool = True,
    clock_ns: float = 5.0,
) -> LatencyEstimate:
    """Estimate latency, II and DSPs of a GarNet layer (one sublayer) or stack.

    Parameters
    ----------
    n_vertices, reuse_factor:
        V_max and R (powers of two, R divides V).
    sublayers:
        ``(F_in, A, F_out)`` per sublayer.
    quantized:
        Ternary input/output transform weights (multiplications by weights cost no DSP and
        no latency) instead of continuous ones.
    collapse:
        Mean over hits at the end (otherwise a per-hit ``distribute`` loop; single layer).
    clock_ns:
        Clock period (5 ns = 200 MHz in the paper).

    Raises
    ------
    ConfigError
        For sizes that are not powers of two or a stack without collapse.

    Examples
    --------
    >>> estimate_latency(16, 4).latency_cycles
    64
    """
    V, R = int(n_vertices), int(reuse_factor)
    if V <= 0 or R <= 0 or V & (V - 1) or R & (R - 1) or V % R:
        raise ConfigError(f"n_vertices and reuse_factor must be powers of two, R | V: {V}, {R}")
    if not sublayers:
        raise ConfigError("need at least one sublayer")
    if len(sublayers) > 1 and not collapse:
        raise ConfigError("hls4ml's GarNetStack needs collapse")
    U = V // R
    m_w = 0 if quantized else M_WEIGHT
    terms: dict[str, int] = {}
    loops: list[int] = []
    norms: list[int] = []
    dsp = 0
    prev_a = None
    prev_o = None
    for li, (f_in, a, f_out) in enumerate(sublayers):
        d_loop = m_w + _tree(f_in + 1) + T_TABLE + M_DSP + _tree(U) + 1
        per_hit_dsp = 2 * a * f_in  # distance kernel, features x edge weights
        if prev_a is not None:
            d_loop += M_DSP + _tree(prev_a + 1)
            per_hit_dsp += prev_a * (prev_o or 0)
        d_norm = m_w + _tree(f_in + 1)
        loops.append(d_loop)
        norms.append(d_norm)
        terms[f"loop{li}"] = R + d_loop
        terms[f"norm{li}"] = d_norm
        dsp += U * per_hit_dsp
        if not quantized:
            dsp += f_out * a * (f_in + 1)  # output_base, weights continuous
        prev_a, prev_o = a, f_out
    last_a, last_o = sublayers[-1][1], sublayers[-1][2]
    if collapse:
        d_out = M_DSP + _tree(last_a + 1)
        dsp += last_o * last_a
    else:
        d_out = R + M_DSP + _tree(last_a + 1) + 1  # distribute loop
        dsp += U * last_o * last_a
    terms["output"] = d_out
    terms["io"] = C_IO
    latency = sum(R + d for d in loops) + sum(norms) + d_out + C_IO
    ii = max(R + dl + dn for dl, dn in zip(loops, norms, strict=True)) + C_II
    if not collapse:
        ii = max(ii, d_out + C_II)
    return LatencyEstimate(latency, ii, latency * clock_ns, ii * clock_ns, dsp, terms)


def published_table() -> list[dict[str, object]]:
    """The published rows (Iiyama et al. 2021, Table) next to this model's estimates.

    Examples
    --------
    >>> rows = published_table()
    >>> max(abs(r["latency_model"] / r["latency_paper"] - 1) for r in rows) < 0.1
    True
    """
    paper = [
        ("continuous", 128, 32, 155, 55, 3100),
        ("quantized", 128, 32, 148, 50, 1600),
        ("quantized", 64, 16, 99, 34, 1600),
        ("quantized", 32, 8, 75, 26, 1400),
        ("quantized", 16, 4, 63, 22, 1500),
    ]
    rows = []
    for kind, V, R, lat, ii, dsp in paper:
        est = estimate_latency(V, R, PAPER_STACK, quantized=kind == "quantized")
        rows.append(
            {
                "model": kind,
                "n_vertices": V,
                "reuse_factor": R,
                "latency_paper": lat,
                "latency_model": est.latency_cycles,
                "ii_paper": ii,
                "ii_model": est.ii_cycles,
                "dsp_paper": dsp,
                "dsp_model": est.dsp,
            }
        )
    return rows
