"""Latency model against the published table of Iiyama et al. (2021)."""

from __future__ import annotations

import itertools

import pytest

from calo.errors import ConfigError
from calo.fpga.latency import PAPER_STACK, estimate_latency, published_table


def test_reproduces_every_published_row_within_10_percent():
    rows = published_table()
    assert len(rows) == 5
    for r in rows:
        assert abs(r["latency_model"] / r["latency_paper"] - 1) < 0.10, r
        assert abs(r["ii_model"] / r["ii_paper"] - 1) < 0.10, r


def test_dsp_count_within_25_percent_of_the_published_designs():
    for r in published_table():
        assert 0.75 < r["dsp_model"] / r["dsp_paper"] < 1.25, r
    # ternary transform kernels save the output_base multiplications, not the data products
    q, c = (estimate_latency(128, 32, quantized=k) for k in (True, False))
    assert c.dsp - q.dsp == sum(o * a * (f + 1) for f, a, o in PAPER_STACK)


def test_scaling_with_reuse_factor_and_precision():
    q = [estimate_latency(4 * r, r, PAPER_STACK, quantized=True) for r in (4, 8, 16, 32)]
    # three vertex loops of R iterations: latency grows by 3 R, II by R
    assert [b.latency_cycles - a.latency_cycles for a, b in itertools.pairwise(q)] == [12, 24, 48]
    assert [b.ii_cycles - a.ii_cycles for a, b in itertools.pairwise(q)] == [4, 8, 16]
    c = estimate_latency(128, 32, quantized=False)
    assert c.latency_cycles > q[-1].latency_cycles and c.dsp > q[-1].dsp
    assert c.latency_ns == pytest.approx(5.0 * c.latency_cycles)
    # a single layer is much shorter than the stack, more hits in parallel need more DSPs
    single = estimate_latency(128, 32, [(4, 4, 8)])
    assert single.latency_cycles < q[-1].latency_cycles / 2
    assert estimate_latency(128, 16).dsp > estimate_latency(128, 32).dsp


@pytest.mark.parametrize("v,r", [(100, 4), (128, 3), (16, 32), (0, 1)])
def test_rejects_sizes_that_are_not_powers_of_two(v, r):
    with pytest.raises(ConfigError):
        estimate_latency(v, r)


def test_rejects_stack_without_collapse():
    with pytest.raises(ConfigError, match="collapse"):
        estimate_latency(128, 32, PAPER_STACK, collapse=False)
