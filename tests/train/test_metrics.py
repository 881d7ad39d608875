"""Response metrics: definitions, permutation invariance, binning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calo.train.metrics import (
    ResponseAccumulator,
    binned_stats,
    shared_hit_mask,
    shower_responses,
    spread_stats,
)


def _event() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # 4 hits: pure shower 0, pure shower 1, shared 50/50, shared 80/20
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.8, 0.2]])
    p = torch.tensor([[0.9, 0.1], [0.0, 1.0], [0.6, 0.4], [0.8, 0.2]])
    e = torch.tensor([10.0, 20.0, 4.0, 5.0])
    return p, t, e


def test_responses_hand_computed() -> None:
    p, t, e = _event()
    r = shower_responses(p, t, e)
    # shower 0: sum p E = 9 + 0 + 2.4 + 4 = 15.4; sum t E = 10 + 2 + 4 = 16
    # shower 1: 1 + 20 + 1.6 + 1 = 23.6; 20 + 2 + 1 = 23
    torch.testing.assert_close(r["all"], torch.tensor([[15.4 / 16, 23.6 / 23]]))
    # shared hits (both fractions > 0.1): hits 2 and 3
    torch.testing.assert_close(r["shared"], torch.tensor([[6.4 / 6, 2.6 / 3]]))


def test_shared_mask_threshold() -> None:
    t = torch.tensor([[0.5, 0.5], [0.91, 0.09], [0.85, 0.15], [0.0, 0.0], [0.2, 0.2]])
    assert shared_hit_mask(t).tolist() == [True, False, True, False, True]
    assert shared_hit_mask(t, 0.3).tolist() == [True, False, False, False, False]


def test_metrics_are_invariant_under_label_swap() -> None:
    g = torch.Generator().manual_seed(0)
    n, b = 200, 10
    batch = torch.arange(n) // (n // b)
    t = torch.softmax(4 * torch.randn(n, 2, generator=g), dim=1)
    p = torch.softmax(torch.log(t + 0.05) + 0.5 * torch.randn(n, 2, generator=g), dim=1)
    e = torch.rand(n, generator=g) * 3
    flip = (batch % 3 == 0).unsqueeze(1)  # swap the columns of every third event
    p_swapped = torch.where(flip, p.flip(1), p)
    a, c = ResponseAccumulator(), ResponseAccumulator()
    a.update(p, t, e, batch)
    c.update(p_swapped, t, e, batch)
    sa, sc = a.summary(), c.summary()
    assert sa["loss"] == pytest.approx(sc["loss"])
    for key in ("all", "shared"):
        np.testing.assert_allclose(a.responses()[key], c.responses()[key])
    assert sa["response"] == sc["response"]


def test_perfect_prediction_has_unit_response_and_zero_loss() -> None:
    _, t, e = _event()
    acc = ResponseAccumulator()
    acc.update(t.flip(1), t, e)  # perfect up to the label order
    s = acc.summary()
    assert s["loss"] == pytest.approx(0.0, abs=1e-12)
    assert s["response"]["mean"] == pytest.approx(1.0)
    assert s["response"]["rms"] == pytest.approx(0.0, abs=1e-6)


def test_binning_uses_the_incident_energy_when_given() -> None:
    p, t, e = _event()
    acc = ResponseAccumulator()
    acc.update(p, t, e, shower_energy=torch.tensor([[7.0, 42.0]]))
    s = acc.summary(edges=[5, 10, 40, 60])
    assert s["bins"]["all"]["n"] == [1, 0, 1]
    assert s["bins"]["all"]["mean"][0] == pytest.approx(15.4 / 16)


def test_spread_stats() -> None:
    rng = np.random.default_rng(5)
    v = rng.normal(1.0, 0.2, 200_000)
    s = spread_stats(np.concatenate([v, [np.nan]]))
    assert s["n"] == 200_000
    assert s["rms"] == pytest.approx(0.2, rel=0.01)
    assert s["width"] == pytest.approx(0.2 * 0.9945, rel=0.02)  # half the 16-84% interval
    tails = np.concatenate([v, np.full(4000, 10.0)])  # 2 % outliers: RMS explodes, width not
    st = spread_stats(tails)
    assert st["rms"] > 1.0 and st["width"] < 0.22
    assert spread_stats(np.array([]))["n"] == 0


def test_binned_stats_empty_bins_are_nan() -> None:
    b = binned_stats(np.array([6.0]), np.array([1.0]), [5, 10, 20])
    assert b["n"] == [1, 0] and np.isnan(b["mean"][1])


def test_noise_only_hits_do_not_enter_the_response() -> None:
    p, t, e = _event()
    base = shower_responses(p, t, e)["all"]
    p2 = torch.cat([p, torch.tensor([[1.0, 0.0]])])
    t2 = torch.cat([t, torch.zeros(1, 2)])
    e2 = torch.cat([e, torch.tensor([100.0])])
    torch.testing.assert_close(shower_responses(p2, t2, e2)["all"], base)


def test_overlap_bins_hold_each_event_showers() -> None:
    from calo.train.losses import shower_overlap

    p, t, e = _event()
    # event 0: the 4-hit event (overlap (2 + 1) / 16 GeV of the smaller shower); event 1: 0
    p2 = torch.cat([p, torch.tensor([[1.0, 0.0], [0.5, 0.5]])])
    t2 = torch.cat([t, torch.tensor([[1.0, 0.0], [0.0, 1.0]])])
    e2 = torch.cat([e, torch.tensor([3.0, 3.0])])
    b = torch.tensor([0, 0, 0, 0, 1, 1])
    assert shower_overlap(t2, e2, b).tolist() == pytest.approx([3.0 / 16.0, 0.0])
    acc = ResponseAccumulator()
    acc.update(p2, t2, e2, b)
    ob = acc.summary()["overlap_bins"]
    assert ob["all"]["n"] == [2, 0, 2, 0, 0]
    # event 1: shower 0 gets 3 + 1.5 of 3 GeV, shower 1 gets 1.5 of 3
    assert ob["all"]["mean"][0] == pytest.approx((1.5 + 0.5) / 2)
    assert ob["all"]["mean"][2] == pytest.approx((15.4 / 16 + 23.6 / 23) / 2)
