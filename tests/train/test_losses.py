"""The paper loss on hand-computed cases and its permutation-invariant form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calo.errors import ConfigError, DataError
from calo.train.losses import (
    align_predictions,
    best_assignment,
    energy_order_assignment,
    energy_ordered_loss,
    energy_share_loss,
    fraction_loss,
    pairwise_shower_loss,
    per_event_loss,
    permutation_invariant_loss,
)

# event A: E = [4, 9, 1] -> sqrt(E) = [2, 3, 1]
E_A = torch.tensor([4.0, 9.0, 1.0])
T_A = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
P_A = torch.tensor([[0.8, 0.2], [0.5, 0.5], [0.4, 0.6]])
# by hand: w0 = [2, 1.5, 0], L0 = 2 * 0.2^2 / 3.5; w1 = [0, 1.5, 1], L1 = 1 * 0.4^2 / 2.5
L_A = (0.08 / 3.5 + 0.16 / 2.5) / 2


def test_single_event_hand_computed() -> None:
    assert float(fraction_loss(P_A, T_A, E_A)) == pytest.approx(L_A, rel=1e-6)


def test_uniform_prediction_on_pure_hits() -> None:
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.full((2, 2), 0.5)
    assert float(fraction_loss(p, t, torch.tensor([4.0, 1.0]))) == pytest.approx(0.25)


def test_energy_weighting_uses_sqrt_e() -> None:
    # shower 0 on two hits, errors 0.1 (E=1) and 0.3 (E=100): weights 1 and 10
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    p = torch.tensor([[0.9, 0.1], [0.7, 0.3]])
    expected = (1 * 0.01 + 10 * 0.09) / 11  # shower 1 has no weight -> left out of the mean
    assert float(fraction_loss(p, t, torch.tensor([1.0, 100.0]))) == pytest.approx(expected)


def test_batch_is_mean_over_events_and_noise_hits_do_not_count() -> None:
    t_b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # last hit: noise only
    p_b = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    e_b = torch.tensor([1.0, 1.0, 50.0])
    l_b = (0.0 + 0.25) / 2
    pred, target = torch.cat([P_A, p_b]), torch.cat([T_A, t_b])
    energy, batch = torch.cat([E_A, e_b]), torch.tensor([0, 0, 0, 1, 1, 1])
    per_event = per_event_loss(pred, target, energy, batch)
    torch.testing.assert_close(per_event, torch.tensor([L_A, l_b]))
    assert float(fraction_loss(pred, target, energy, batch)) == pytest.approx((L_A + l_b) / 2)


def test_pairwise_cost_matrix() -> None:
    cost, valid = pairwise_shower_loss(P_A, T_A, E_A)
    # predicted column 1 against truth shower 0: weights [2, 1.5], errors 0.8, 0.0
    assert float(cost[0, 0, 1]) == pytest.approx(2 * 0.64 / 3.5)
    assert valid.tolist() == [[True, True]]


def test_swapped_labels_cost_nothing_after_permutation() -> None:
    swapped = P_A.flip(1)
    assert float(fraction_loss(swapped, T_A, E_A)) > L_A
    res = permutation_invariant_loss(swapped, T_A, E_A)
    assert float(res.loss) == pytest.approx(L_A, rel=1e-6)
    assert res.perm.tolist() == [[1, 0]]
    torch.testing.assert_close(align_predictions(swapped, res.perm), P_A)


def test_permutation_per_event_is_independent() -> None:
    pred = torch.cat([P_A, P_A.flip(1)])
    target, energy = torch.cat([T_A, T_A]), torch.cat([E_A, E_A])
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    res = permutation_invariant_loss(pred, target, energy, batch)
    assert res.perm.tolist() == [[0, 1], [1, 0]]
    torch.testing.assert_close(res.event_loss, torch.tensor([L_A, L_A]))


def test_three_showers_hungarian_matches_brute_force() -> None:
    import itertools

    g = torch.Generator().manual_seed(3)
    t = torch.softmax(3 * torch.randn(40, 3, generator=g), dim=1)
    p = torch.softmax(torch.randn(40, 3, generator=g), dim=1)
    e = torch.rand(40, generator=g) * 5
    res = permutation_invariant_loss(p, t, e)
    brute = min(
        float(per_event_loss(p[:, list(s)], t, e)[0]) for s in itertools.permutations(range(3))
    )
    assert float(res.loss) == pytest.approx(brute, rel=1e-6)
    for s in itertools.permutations(range(3)):
        shuffled = permutation_invariant_loss(p[:, list(s)], t, e)
        assert float(shuffled.loss) == pytest.approx(brute, rel=1e-6)


def test_permutation_invariant_loss_is_differentiable() -> None:
    p = P_A.flip(1).clone().requires_grad_(True)
    permutation_invariant_loss(p, T_A, E_A).loss.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_best_assignment_k2_tie_keeps_identity() -> None:
    cost = torch.ones(1, 2, 2)
    assert best_assignment(cost, torch.ones(1, 2, dtype=torch.bool)).tolist() == [[0, 1]]


def test_events_without_signal_are_ignored() -> None:
    t = torch.zeros(2, 2)
    p = torch.full((2, 2), 0.5, requires_grad=True)
    loss = fraction_loss(p, t, torch.ones(2))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert not math.isnan(float(permutation_invariant_loss(p, t, torch.ones(2)).loss))


def test_shape_errors() -> None:
    with pytest.raises(DataError, match="pred and target"):
        fraction_loss(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(3))
    with pytest.raises(DataError, match="energy"):
        fraction_loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(2))


def test_energy_weighting_hand_computed() -> None:
    # hit 2 is noise (no truth): it weighs nothing in either weighting
    p = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    e = torch.tensor([4.0, 1.0, 9.0])
    # paper: L_0 = (0.9 - 1)^2 over hit 0, L_1 = (0.7 - 1)^2 over hit 1 -> (0.01 + 0.09) / 2
    assert float(permutation_invariant_loss(p, t, e).loss) == pytest.approx(0.05)
    # energy: both showers over hits 0 and 1 with weights 2 and 1: (2 * 0.01 + 0.09) / 3 each
    res = permutation_invariant_loss(p, t, e, weighting="energy")
    assert float(res.loss) == pytest.approx(0.11 / 3)
    with pytest.raises(ConfigError, match="weighting"):
        permutation_invariant_loss(p, t, e, weighting="mse")


@pytest.mark.parametrize(("weighting", "unbiased"), [("energy", True), ("truth", False)])
def test_energy_weighting_minimiser_is_the_mean_truth_fraction(weighting, unbiased) -> None:
    """Two events with the same hits whose hit 0 has truth fraction 1.0 or 0.2 for shower 0:
    the best common prediction for hit 0 is the mean, 0.6, only without the truth weight."""
    e = torch.tensor([4.0, 1.0, 1.0] * 2)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.2, 0.8], [1.0, 0.0], [0.0, 1.0]])
    grid = torch.linspace(0.0, 1.0, 1001)
    losses = []
    for q in grid:
        p = t.clone()
        p[0] = p[3] = torch.stack([q, 1 - q])  # the same input, so the same prediction
        losses.append(float(fraction_loss(p, t, e, batch, weighting=weighting)))
    best = float(grid[int(np.argmin(losses))])
    assert (abs(best - 0.6) < 0.002) == unbiased, best


def test_energy_order_assignment_ranks_showers_by_truth_energy_per_event() -> None:
    # event 0: shower 1 has 9 + 1 GeV, shower 0 has 4 -> shower 1 takes column 0
    # event 1: three showers with 1, 6, 3 GeV -> ranks 2, 0, 1; event 2: shower 2 absent
    t = torch.tensor(
        [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 1.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.2, 0.8, 0.0],
            [1.0, 0.0, 0.0],
        ]
    )
    e = torch.tensor([4.0, 9.0, 1.0, 1.0, 6.0, 3.0, 10.0, 1.0])
    b = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    perm = energy_order_assignment(t, e, b)
    assert perm.tolist() == [[1, 0, 2], [2, 0, 1], [1, 0, 2]]


def test_energy_ordered_loss_is_the_loss_of_that_assignment_and_not_invariant() -> None:
    g = torch.Generator().manual_seed(5)
    t = torch.softmax(3 * torch.randn(30, 2, generator=g), dim=1)
    p = torch.softmax(torch.randn(30, 2, generator=g), dim=1).requires_grad_(True)
    e = torch.rand(30, generator=g) * 5
    b = torch.arange(30) // 10
    res = energy_ordered_loss(p, t, e, b)
    perm = energy_order_assignment(t, e, b)
    by_hand = per_event_loss(align_predictions(p, perm, b), t, e, b)
    assert torch.allclose(res.event_loss, by_hand)
    assert res.perm.tolist() == perm.tolist()
    # it is at least the permutation-invariant loss and changes when the columns are swapped
    pit = permutation_invariant_loss(p, t, e, b)
    assert (res.event_loss >= pit.event_loss - 1e-7).all()
    assert float(energy_ordered_loss(p.flip(1), t, e, b).loss) != pytest.approx(float(res.loss))
    # relabelling the truth showers (and nothing else) changes nothing
    assert float(energy_ordered_loss(p, t.flip(1), e, b).loss) == pytest.approx(float(res.loss))
    res.loss.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()


def test_energy_share_loss_hand_computed_per_event_and_ignores_noise() -> None:
    # event 0: shares 0.75 / 0.25, prediction gives 0.6 / 0.4 -> 2 * 0.15^2
    # event 1: one pure hit of each shower (1 / 1 GeV) predicted perfectly, plus a noise hit
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    p = torch.tensor([[0.8, 0.2], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    e = torch.tensor([3.0, 1.0, 1.0, 1.0, 50.0])
    b = torch.tensor([0, 0, 1, 1, 1])
    ident = torch.tensor([[0, 1], [0, 1]])
    # event 0: given 2.4 + 0 and 0.6 + 1 of 4 GeV
    expected = (2 * 0.15**2 + 0.0) / 2
    assert float(energy_share_loss(p, t, e, ident, b)) == pytest.approx(expected)
    # the assignment is applied: swapping the prediction's columns and the perm changes nothing
    swap = torch.tensor([[1, 0], [1, 0]])
    assert float(energy_share_loss(p.flip(1), t, e, swap, b)) == pytest.approx(expected)
    q = p.clone().requires_grad_(True)
    energy_share_loss(q, t, e, ident, b).backward()
    assert q.grad is not None and q.grad[4].abs().sum() == 0  # the noise hit gets no gradient
