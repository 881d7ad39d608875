"""Events with a variable number of particles (``gun.multiplicity=poisson``): counts, truth,
overlaps, seeding and the written tree."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from scipy.stats import poisson
from simhelp import per_event

from calo.config import apply_overrides
from calo.errors import ConfigError
from calo.sim import SimConfig, generate, generate_arrays

POISSON = ["gun.multiplicity=poisson", "gun.pdg=[11,22,211,-211]"]


def _cfg(*extra: str) -> SimConfig:
    return apply_overrides(SimConfig(), [*POISSON, *extra])


@pytest.fixture(scope="module")
def events() -> dict:
    return generate_arrays(_cfg(), 256, seed=7)


def test_counts_follow_the_clipped_poisson() -> None:
    d = generate_arrays(_cfg("gun.mean_particles=3", "gun.max_particles=6", "noise.sigma=0"), 640)
    n = d["npart"]
    assert n.min() >= 1 and n.max() <= 6
    # expected probabilities of clip(Poisson(3), 1, 6)
    p = poisson.pmf(np.arange(7), 3.0)
    p[1] += p[0]
    p[0] = 0.0
    p[6] = poisson.sf(5, 3.0)
    expected = 640 * p
    observed = np.bincount(n, minlength=7)
    # every bin within 4 Poisson standard deviations, and the mean within 3 standard errors
    assert np.all(np.abs(observed - expected) <= 4 * np.sqrt(expected) + 1)
    mean = float((np.arange(7) * p).sum())
    assert n.mean() == pytest.approx(mean, abs=3 * np.sqrt(3.0 / 640))
    assert len(d["pdg"]) == n.sum() == len(d["p_energy"]) == len(d["deposited"])


def test_fractions_and_truth_index_on_signal_and_noise(events: dict) -> None:
    d = events
    assert d["frac"].shape[1] == 10  # max_particles columns
    sig = ~d["noise"]
    np.testing.assert_allclose(d["frac"][sig].sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(d["frac"][d["noise"]] == 0.0)
    np.testing.assert_array_equal(d["truth"][sig], np.argmax(d["frac"][sig], axis=1))
    assert np.all(d["truth"][d["noise"]] == -1)
    # no hit belongs to a particle the event does not have
    npart_hit = np.repeat(d["npart"], d["nhit"])
    col = np.arange(10)[None, :]
    assert np.all(d["frac"][col >= npart_hit[:, None]] == 0.0)
    assert np.all(d["truth"] < npart_hit)
    # all four particle types are shot, in about equal shares
    ids, c = np.unique(d["pdg"], return_counts=True)
    assert ids.tolist() == [-211, 11, 22, 211]
    assert np.all(np.abs(c / c.sum() - 0.25) < 0.06)


def test_deposited_is_the_sum_of_fractions_times_energy() -> None:
    d = generate_arrays(_cfg("noise.sigma=0", "noise.threshold=0"), 40, seed=3)
    first = np.cumsum(d["npart"]) - d["npart"]
    for k in range(10):
        have = d["npart"] > k
        got = per_event(d, d["frac"][:, k] * d["energy"])
        np.testing.assert_allclose(got[have], d["deposited"][first[have] + k], rtol=1e-9)
        assert np.all(got[~have] == 0.0)


def _nearest_earlier(d: dict) -> np.ndarray:
    out = []
    start = 0
    for n in d["npart"]:
        x, y = d["p_x"][start : start + n], d["p_y"][start : start + n]
        for j in range(1, n):
            out.append(np.min(np.hypot(x[:j] - x[j], y[:j] - y[j])))
        start += n
    return np.asarray(out)


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_overlap_share(share: float) -> None:
    d = generate_arrays(_cfg(f"gun.overlap_fraction={share}", "gun.energy.max=6"), 192, seed=2)
    near = _nearest_earlier(d) < 2.0  # overlap_distance
    # a particle overlaps with probability `share`; the others land >= 2 cm from earlier ones
    assert near.mean() == pytest.approx(share, abs=4 * np.sqrt(0.25 / len(near)) + 0.01)
    if share == 0.0:  # every particle in the spread square
        assert np.all(np.abs(d["p_x"]) <= 10.0) and np.all(np.abs(d["p_y"]) <= 10.0)


def test_seed_reproducibility_and_prefix() -> None:
    cfg = _cfg()
    a = generate(cfg, 70, seed=5)
    assert ak.array_equal(a, generate(cfg, 70, seed=5))
    assert not ak.array_equal(a.particle.energy, generate(cfg, 70, seed=6).particle.energy)
    part = generate(cfg, 10, seed=5, start=60)  # crosses the 64-event block
    assert ak.array_equal(part, a[60:70])
    assert ak.num(a.particle).tolist() == [int(n) for n in ak.num(a.particle)]
    assert a.hit.fields[10:20] == [f"frac_{k}" for k in range(10)]


def test_written_tree_reads_with_padded_particles(tmp_path) -> None:
    from calo.io import HitDataset
    from calo.io.schema import Schema
    from calo.sim.writer import write_root

    path = tmp_path / "v.root"
    write_root(path, _cfg("gun.max_particles=5"), n_events=12, seed=1, progress=False)
    ds = HitDataset([str(path)], schema=Schema.calo(truth_index="hit_truth"), normalization=None)
    d = generate_arrays(_cfg("gun.max_particles=5"), 12, seed=1)
    for i, ev in enumerate(ds.data):
        assert ev.y.shape[1] == 5 and ev.particle_energy.shape == (1, 5)
        n = int(d["npart"][i])
        assert int((ev.particle_energy[0] > 0).sum()) == n
        assert int(ev.hit_particle.max()) < n
        noise = ev.hit_particle < 0
        assert bool((ev.noise == noise).all())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["gun.min_particles=0"], "min_particles"),
        (["gun.min_particles=5", "gun.max_particles=4"], "min <= max"),
        (["gun.mean_particles=0"], "mean_particles"),
        (["gun.overlap_fraction=1.5"], "overlap_fraction"),
        (["gun.overlap_distance=0"], "overlap_distance"),
        (["gun.multiplicity=gaussian"], "multiplicity"),
    ],
)
def test_config_errors(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        generate_arrays(_cfg(*overrides), 1)
