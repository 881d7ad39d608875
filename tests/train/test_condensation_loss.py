"""The object condensation loss: a hand computation, a literal reference, the
``object_condensation`` package, renumbering invariance and the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from calo.errors import ConfigError, DataError
from calo.train.condensation import (
    charge,
    condensation_loss,
    condensation_points,
    energy_correction_loss,
    index_particles,
    sharing_loss,
)

TERMS = ("attractive", "repulsive", "beta", "noise")


def _hand_event() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Five hits on a line; beta = tanh(a) so that arctanh(beta)^2 = a^2."""
    a = torch.tensor([2.0, 1.0, 1.0, 0.5, 0.5], dtype=torch.float64)
    x = torch.tensor([[0.0], [0.5], [1.2], [2.0], [0.8]], dtype=torch.float64)
    return torch.tanh(a), x, torch.tensor([0, 0, 1, 1, -1])


def test_hand_computation_of_a_five_hit_event() -> None:
    beta, x, particle = _hand_event()
    # q = a^2 + 0.1 = [4.1, 1.1, 1.1, 0.35, 0.35]; alpha_0 = hit 0 (x=0), alpha_1 = hit 2 (x=1.2)
    out = condensation_loss(beta, x, particle, q_min=0.1, s_b=2.0)
    att = (1.1 * 4.1 * 0.5**2 + 0.35 * 1.1 * 0.8**2) / 5  # hits 1 and 3 to their own alpha
    # hit 1 to alpha_1 (d=0.7); noise hit 4 to alpha_0 (d=0.8) and alpha_1 (d=0.4)
    rep = (1.1 * 1.1 * 0.3 + 0.35 * 4.1 * 0.2 + 0.35 * 1.1 * 0.6) / 5
    coward = ((1 - math.tanh(2.0)) + (1 - math.tanh(1.0))) / 2
    noise = math.tanh(0.5)
    assert float(out["attractive"]) == pytest.approx(att, rel=1e-12)
    assert float(out["repulsive"]) == pytest.approx(rep, rel=1e-12)
    assert float(out["beta"]) == pytest.approx(coward, rel=1e-12)
    assert float(out["noise"]) == pytest.approx(noise, rel=1e-12)
    assert float(out["total"]) == pytest.approx(att + rep + coward + 2.0 * noise, rel=1e-12)

    obj = condensation_loss(beta, x, particle, q_min=0.1, normalization="object")
    att_k = [(1.1 * 4.1 * 0.25) / 2, (0.35 * 1.1 * 0.64) / 2]  # / N_k
    rep_k = [(0.35 * 4.1 * 0.2) / 3, (1.1 * 1.1 * 0.3 + 0.35 * 1.1 * 0.6) / 3]  # / (N - N_k)
    assert float(obj["attractive"]) == pytest.approx(sum(att_k) / 2, rel=1e-12)
    assert float(obj["repulsive"]) == pytest.approx(sum(rep_k) / 2, rel=1e-12)


def _literal(beta, x, particle, batch, q_min, s_b):
    """The paper's formulas as written, event by event, with dense loops (small inputs)."""
    totals = {k: [] for k in TERMS}
    for b in torch.unique(batch):
        sel = batch == b
        be, xe, pe = beta[sel], x[sel], particle[sel]
        q = torch.atanh(be.clamp(max=1 - 1e-4)) ** 2 + q_min
        ids = sorted(set(pe.tolist()) - {-1})
        alphas = {}
        for k in ids:
            hits = [i for i in range(len(pe)) if int(pe[i]) == k]
            alphas[k] = max(hits, key=lambda i: (float(be[i].detach()), -i))
        att = rep = 0.0
        for i in range(len(pe)):
            for k in ids:
                a = alphas[k]
                d = torch.linalg.vector_norm(xe[i] - xe[a]) if i != a else xe.new_zeros(())
                if int(pe[i]) == k:
                    att = att + q[i] * q[a] * ((xe[i] - xe[a]) ** 2).sum()
                else:
                    rep = rep + q[i] * q[a] * torch.clamp(1 - d, min=0)
        n = len(pe)
        totals["attractive"].append(att / n)
        totals["repulsive"].append(rep / n)
        totals["beta"].append(sum(1 - be[alphas[k]] for k in ids) / len(ids) if ids else 0.0)
        noise = be[pe == -1]
        totals["noise"].append(noise.mean() if noise.numel() else 0.0)
    out = {k: sum(v) / len(v) for k, v in totals.items()}
    out["total"] = out["attractive"] + out["repulsive"] + out["beta"] + s_b * out["noise"]
    return out


def _random_batch(rng, n_events=3, n_hits=(15, 30), n_particles=(1, 5), dim=3, spread=0.6):
    betas, xs, parts, batches = [], [], [], []
    for b in range(n_events):
        n = int(rng.integers(*n_hits))
        k = int(rng.integers(*n_particles))
        ids = rng.choice(100, size=k, replace=False)  # arbitrary, non-contiguous ids
        p = rng.integers(-1, k, size=n)
        p[:k] = np.arange(k)  # every particle has a hit
        parts.append(np.where(p >= 0, ids[np.maximum(p, 0)], -1))
        xs.append(rng.normal(scale=spread, size=(n, dim)))
        betas.append(rng.uniform(0.01, 0.99, size=n))
        batches.append(np.full(n, b))
    return (
        torch.tensor(np.concatenate(betas), requires_grad=True),
        torch.tensor(np.concatenate(xs), requires_grad=True),
        torch.tensor(np.concatenate(parts)),
        torch.tensor(np.concatenate(batches)),
    )


def test_equals_the_literal_formulas_with_gradients(rng) -> None:
    beta, x, particle, batch = _random_batch(rng)
    ours = condensation_loss(beta, x, particle, batch, q_min=0.2, s_b=0.7)
    ref = _literal(beta, x, particle, batch, q_min=0.2, s_b=0.7)
    for key in (*TERMS, "total"):
        assert float(ours[key]) == pytest.approx(float(ref[key]), rel=1e-10, abs=1e-14)
    g_ours = torch.autograd.grad(ours["total"], (beta, x))
    g_ref = torch.autograd.grad(ref["total"], (beta, x))
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_invariant_under_renumbering_particles_and_reordering_hits(rng) -> None:
    beta, x, particle, batch = _random_batch(rng, n_events=2)
    ref = condensation_loss(beta, x, particle, batch)
    perm_ids = torch.tensor(rng.permutation(1000))
    renamed = torch.where(particle >= 0, perm_ids[particle.clamp(min=0)], -1)
    out = condensation_loss(beta, x, renamed, batch)
    for key in (*TERMS, "total"):
        assert float(out[key]) == pytest.approx(float(ref[key]), rel=1e-12)
    order = torch.tensor(rng.permutation(len(beta)))
    shuffled = condensation_loss(beta[order], x[order], particle[order], batch[order])
    for key in (*TERMS, "total"):
        assert float(shuffled[key]) == pytest.approx(float(ref[key]), rel=1e-12)


def test_same_ids_in_two_events_are_two_particles() -> None:
    idx = index_particles(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 1, 1]))
    assert idx.hit_object.tolist() == [0, 0, 1, 1]
    assert idx.object_count.tolist() == [1, 1]


def test_condensation_point_is_the_highest_beta_first_on_ties() -> None:
    alpha = condensation_points(
        torch.tensor([0.5, 0.7, 0.7, 0.1, 0.3]), torch.tensor([0, 0, 0, 1, -1]), 2
    )
    assert alpha.tolist() == [1, 3]


def test_events_without_noise_without_particles_and_empty_events() -> None:
    x = torch.tensor([[0.0, 0.0], [0.3, 0.0], [5.0, 5.0]], dtype=torch.float64)
    beta = torch.tensor([0.9, 0.4, 0.3], dtype=torch.float64)
    # event 0: one particle, no noise; event 1: noise only; event 2: no hits
    out = condensation_loss(
        beta, x, torch.tensor([4, 4, -1]), torch.tensor([0, 0, 1]), num_events=3
    )
    q = charge(beta, 0.1)
    att0 = float(q[0] * q[1] * 0.09) / 2
    assert float(out["attractive"]) == pytest.approx(att0 / 2)  # event 1 contributes 0
    assert float(out["repulsive"]) == 0.0
    assert float(out["beta"]) == pytest.approx((1 - 0.9) / 2)
    assert float(out["noise"]) == pytest.approx(0.3 / 2)
    only_noise = condensation_loss(beta, x, torch.tensor([-1, -1, -1]))
    assert float(only_noise["total"]) == pytest.approx(float(beta.mean()))


def test_beta_of_one_is_clipped_and_gives_finite_gradients() -> None:
    beta = torch.tensor([1.0, 0.999999, 0.5], requires_grad=True)
    x = torch.zeros(3, 2, requires_grad=True)  # coincident points: zero distances
    out = condensation_loss(beta, x, torch.tensor([0, 1, 1]))
    out["total"].backward()
    assert torch.isfinite(out["total"])
    assert torch.isfinite(beta.grad).all() and torch.isfinite(x.grad).all()


def test_payload_is_weighted_by_arctanh_squared() -> None:
    a = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    beta = torch.tanh(a)
    x = torch.zeros(3, 1, dtype=torch.float64)
    payload = torch.tensor([3.0, 1.0, 100.0], dtype=torch.float64)
    out = condensation_loss(beta, x, torch.tensor([0, 0, -1]), payload=payload, payload_weight=2)
    expected = (1.0 * 3.0 + 4.0 * 1.0) / (1.0 + 4.0)  # the noise hit has weight 0
    assert float(out["payload"]) == pytest.approx(expected, rel=1e-12)
    rest = out["attractive"] + out["repulsive"] + out["beta"] + out["noise"]
    assert float(out["total"]) == pytest.approx(float(rest) + 2 * expected)


def test_energy_correction_loss_by_hand() -> None:
    loss = energy_correction_loss(
        torch.tensor([1.0, 2.0, 0.5, 9.0]),
        torch.tensor([4.0, 6.0, 2.0, 1.0]),
        torch.tensor([1, 1, 0, -1]),
        torch.tensor([20.0, 20.0, 1.0, 0.0]),
    )
    # particle 1: S = 10, E = 20 -> ratios 0.5 and 1.0; particle 0: S = 2, E = 1 -> ratio 1.0
    torch.testing.assert_close(loss, torch.tensor([0.25, 0.0, 0.0, 0.0]))


def test_bad_inputs_raise_calo_errors() -> None:
    beta = torch.rand(4)
    x = torch.rand(4, 2)
    with pytest.raises(DataError, match="particle"):
        condensation_loss(beta, x, torch.zeros(4))
    with pytest.raises(DataError, match="coords"):
        condensation_loss(beta, x[:3], torch.zeros(4, dtype=torch.long))
    with pytest.raises(DataError, match="-1"):
        condensation_loss(beta, x, torch.tensor([0, -2, 0, 0]))
    with pytest.raises(DataError, match="finite"):
        condensation_loss(beta, x * torch.nan, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ConfigError, match="normalization"):
        condensation_loss(beta, x, torch.zeros(4, dtype=torch.long), normalization="hits")
    with pytest.raises(ConfigError, match="q_min"):
        condensation_loss(beta, x, torch.zeros(4, dtype=torch.long), q_min=0.0)


# --- against the object_condensation package (1.1.0) -------------------------------------------


def _oc_single(beta, x, particle, q_min):
    oc = pytest.importorskip("object_condensation.pytorch.losses")
    return oc.condensation_loss(beta=beta, x=x, object_id=particle + 1, q_min=q_min)


def test_equals_object_condensation_with_its_normalisation(rng) -> None:
    """Same values and gradients where the definitions agree: one event, per-object
    normalisation, at least one noise hit (the package's noise term is NaN without one),
    beta < 1 - 1e-4 (the package does not clip)."""
    for seed in range(3):
        beta, x, particle, _ = _random_batch(np.random.default_rng(seed), n_events=1)
        particle[0] = -1
        if seed == 2:  # condensation points in the potentials' reach of other hits
            x = (x.detach() * 0.3).requires_grad_(True)
        ours = condensation_loss(beta, x, particle, q_min=0.1, normalization="object")
        ref = _oc_single(beta, x, particle, q_min=0.1)
        names = {"attractive": "attractive", "repulsive": "repulsive", "beta": "coward"}
        names["noise"] = "noise"
        for mine, theirs in names.items():
            assert float(ours[mine]) == pytest.approx(float(ref[theirs]), rel=1e-7, abs=1e-12)
        w = (1.0, 0.7, 1.3, 0.4)
        l_ours = sum(wi * ours[k] for wi, k in zip(w, names, strict=True))
        l_ref = sum(wi * ref[names[k]] for wi, k in zip(w, names, strict=True))
        for a, b in zip(
            torch.autograd.grad(l_ours, (beta, x)),
            torch.autograd.grad(l_ref, (beta, x)),
            strict=True,
        ):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_batch_is_the_mean_of_object_condensation_per_event(rng) -> None:
    beta, x, particle, batch = _random_batch(rng, n_events=3)
    for b in range(3):
        particle[int(torch.nonzero(batch == b)[0])] = -1
    ours = condensation_loss(beta, x, particle, batch, normalization="object")
    per_event = [
        _oc_single(beta[batch == b], x[batch == b], particle[batch == b], 0.1) for b in range(3)
    ]
    ref = np.mean([float(r["attractive"]) for r in per_event])
    assert float(ours["attractive"]) == pytest.approx(ref, rel=1e-7)
    ref = np.mean([float(r["repulsive"]) for r in per_event])
    assert float(ours["repulsive"]) == pytest.approx(ref, rel=1e-7)


def test_documented_differences_from_object_condensation(rng) -> None:
    """docs/condensation.md: the default (paper) normalisation divides the potentials by
    the event's N, and an event without noise gives a noise term of 0 rather than NaN."""
    beta, x, particle, _ = _random_batch(rng, n_events=1)
    particle = particle.clamp(min=0)  # no noise
    ref = _oc_single(beta, x, particle, 0.1)
    assert math.isnan(float(ref["noise"]))
    ours = condensation_loss(beta, x, particle)
    assert float(ours["noise"]) == 0.0
    assert float(ours["attractive"]) != pytest.approx(float(ref["attractive"]))
    per_object = condensation_loss(beta, x, particle, normalization="object")
    assert float(per_object["attractive"]) == pytest.approx(float(ref["attractive"]), rel=1e-7)


# --- energy sharing -----------------------------------------------------------------------------


def _random_fractions(rng, particle: torch.Tensor) -> torch.Tensor:
    """``[N, 100]`` truth fractions: the hit's own particle the largest, a random share to one
    other particle id of any event (columns of absent particles must not count), 0 on noise."""
    n = particle.numel()
    y = torch.zeros(n, 100, dtype=torch.float64)
    ids = torch.unique(particle[particle >= 0])
    for i in range(n):
        if particle[i] >= 0:
            own = float(rng.uniform(0.5, 1.0))
            y[i, particle[i]] = own
            other = ids[int(rng.integers(len(ids)))]
            if other != particle[i]:
                y[i, other] = float(rng.uniform(0.0, 1.0 - own))
    return y


def _sharing_literal(beta, x, particle, batch, y, energy, sigma):
    """The sharing loss by its formula, one event and one hit at a time."""
    per_event = []
    for b in torch.unique(batch):
        sel = torch.nonzero(batch == b).squeeze(1)
        ids = sorted(set(particle[sel].tolist()) - {-1})
        if not ids:
            continue
        alphas = [sel[particle[sel] == k][torch.argmax(beta[sel][particle[sel] == k])] for k in ids]
        num, den = 0.0, 0.0
        for i in sel.tolist():
            if particle[i] < 0:
                continue
            d2 = torch.stack([((x[i] - x[a]) ** 2).sum() for a in alphas])
            p = torch.softmax(-d2 / (2 * sigma**2), dim=0)
            t = y[i, ids] / y[i, ids].sum()
            kl = sum(t[j] * torch.log(t[j] / p[j]) for j in range(len(ids)) if t[j] > 0)
            num = num + energy[i] * kl
            den = den + energy[i]
        per_event.append(num / den)
    return torch.stack(per_event).mean()


def test_sharing_loss_equals_its_formula_with_gradients(rng) -> None:
    beta, x, particle, batch = _random_batch(rng, n_particles=(2, 6), dim=2)
    y = _random_fractions(rng, particle)
    energy = torch.tensor(rng.uniform(0.0, 3.0, particle.numel()))
    ours = sharing_loss(beta, x, particle, y, energy, batch, sigma=0.4)
    ref = _sharing_literal(beta, x, particle, batch, y, energy, 0.4)
    assert float(ours) == pytest.approx(float(ref), rel=1e-10)
    assert float(ours) > 0.01  # the test means something
    g_ours = torch.autograd.grad(ours, x)[0]
    g_ref = torch.autograd.grad(ref, x)[0]
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-12)


def test_sharing_loss_is_invariant_under_renumbering_and_reordering(rng) -> None:
    beta, x, particle, batch = _random_batch(rng, n_events=2, n_particles=(2, 6), dim=2)
    y = _random_fractions(rng, particle)
    energy = torch.tensor(rng.uniform(0.1, 3.0, particle.numel()))
    ref = sharing_loss(beta, x, particle, y, energy, batch)
    perm = torch.tensor(rng.permutation(100))
    renamed = torch.where(particle >= 0, perm[particle.clamp(min=0)], -1)
    y_renamed = torch.zeros_like(y)
    y_renamed[:, perm] = y
    assert float(sharing_loss(beta, x, renamed, y_renamed, energy, batch)) == pytest.approx(
        float(ref), rel=1e-12
    )
    order = torch.tensor(rng.permutation(particle.numel()))
    shuffled = sharing_loss(
        beta[order], x[order], particle[order], y[order], energy[order], batch[order]
    )
    assert float(shuffled) == pytest.approx(float(ref), rel=1e-12)


def test_sharing_loss_is_zero_for_the_right_fractions_and_skips_empty_events() -> None:
    # two particles 1 apart on a line; the middle hit is 50/50 and sits halfway; sigma small
    # enough that the unshared hits get fractions 1 - 1e-87
    beta = torch.tensor([0.9, 0.1, 0.8, 0.5], dtype=torch.float64)
    x = torch.tensor([[0.0], [0.5], [1.0], [7.0]], dtype=torch.float64)
    particle = torch.tensor([0, 0, 1, -1])
    y = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    e = torch.tensor([1.0, 2.0, 1.0, 5.0], dtype=torch.float64)
    assert float(sharing_loss(beta, x, particle, y, e, sigma=0.05)) == pytest.approx(0, abs=1e-12)
    # a second event with only noise and a third with no hits do not change the mean
    batch = torch.tensor([0, 0, 0, 0, 1])
    out = sharing_loss(
        torch.cat([beta, beta[:1]]), torch.cat([x, x[:1]]), torch.cat([particle, particle[-1:]]),
        torch.cat([y, y[-1:]]), torch.cat([e, e[:1]]), batch, sigma=0.05, num_events=3,
    )  # fmt: skip
    assert float(out) == pytest.approx(0, abs=1e-12)
    # the middle hit moved 0.1 towards particle 0: logits -0.16 and -0.36 over 2 sigma^2, 40
    # apart, so p = (1, e^-40) (to 1e-17) and the KL divergence from (0.5, 0.5) is
    # 0.5 log(0.5) + 0.5 log(0.5 e^40) = 20 - log 2, times the hit's energy share 2/4
    x2 = torch.tensor([[0.0], [0.4], [1.0], [7.0]], dtype=torch.float64)
    want = 0.5 * (20 - math.log(2))
    assert float(sharing_loss(beta, x2, particle, y, e, sigma=0.05)) == pytest.approx(want)
    # the gradient does not vanish where the softmax saturates: it pulls the hit back
    x2.requires_grad_(True)
    (grad,) = torch.autograd.grad(sharing_loss(beta, x2, particle, y, e, sigma=0.05), x2)
    assert float(grad[1, 0]) < -1.0


def test_energy_correction_with_fractions_learns_the_particles_share() -> None:
    # hit 1 holds 6 GeV: 4 of particle 1 and 2 of particle 0 (hard truth: particle 1)
    y = torch.tensor([[0.0, 1.0], [1 / 3, 2 / 3], [1.0, 0.0], [0.0, 0.0]])
    loss = energy_correction_loss(
        torch.tensor([1.0, 2.5, 0.5, 9.0]),
        torch.tensor([4.0, 6.0, 2.0, 1.0]),
        torch.tensor([1, 1, 0, -1]),
        torch.tensor([16.0, 16.0, 2.0, 0.0]),
        fractions=y,
    )
    # particle 1: S = 4 + 4 = 8, E = 16 -> ratios 0.5 and 1.25; particle 0: S = 2 + 2 = 4,
    # E = 2 -> ratio 1.0
    torch.testing.assert_close(loss, torch.tensor([0.25, 0.0625, 0.0, 0.0]))


def test_sharing_bad_inputs_raise() -> None:
    beta, x = torch.rand(3), torch.rand(3, 2)
    part = torch.tensor([0, 1, -1])
    y, e = torch.ones(3, 2), torch.ones(3)
    with pytest.raises(ConfigError, match="sigma"):
        sharing_loss(beta, x, part, y, e, sigma=0.0)
    with pytest.raises(DataError, match="fractions"):
        sharing_loss(beta, x, part, torch.ones(2, 2), e)
    with pytest.raises(DataError, match="no column"):
        sharing_loss(beta, x, torch.tensor([0, 2, -1]), y, e)
    with pytest.raises(DataError, match="finite"):
        sharing_loss(beta, x, part, y * torch.nan, e)
    with pytest.raises(DataError, match="energy"):
        sharing_loss(beta, x, part, y, torch.ones(2))
