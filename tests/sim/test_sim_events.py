"""Events: truth fractions, noise flags, thresholds, overlap, background, seeding, config errors."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from scipy.stats import norm
from simhelp import per_event, single

from calo.config import apply_overrides
from calo.errors import ConfigError
from calo.sim import SimConfig, generate, generate_arrays, load_geometry


@pytest.fixture(scope="module")
def default_events() -> dict:
    return generate_arrays(SimConfig(), 200, seed=11)


def test_fractions_sum_to_one_on_signal_and_zero_on_noise(default_events: dict) -> None:
    d = default_events
    s = d["frac"].sum(axis=1)
    sig = ~d["noise"]
    np.testing.assert_allclose(s[sig], 1.0, rtol=1e-12)
    assert np.all(d["frac"][d["noise"]] == 0.0)
    assert np.all((d["frac"] >= 0) & (d["frac"] <= 1))
    np.testing.assert_array_equal(d["truth"][sig], np.argmax(d["frac"][sig], axis=1))
    assert np.all(d["truth"][d["noise"]] == -1)
    # two overlapping showers: some hits are genuinely shared
    shared = sig & (d["frac"].max(axis=1) < 0.9)
    assert shared.sum() > 0.02 * sig.sum()


def test_hits_above_threshold_and_noise_rate(default_events: dict) -> None:
    d = default_events
    cfg = SimConfig()
    assert np.all(d["energy"] > cfg.noise.threshold)
    # noise-only hits: cells without signal whose noise exceeds the threshold (3 sigma)
    n_cells = load_geometry("default").n_cells
    n_signal = (~d["noise"]).sum() / len(d["nhit"])
    expected = (n_cells - n_signal) * norm.sf(cfg.noise.threshold / cfg.noise.sigma)
    measured = d["noise"].sum() / len(d["nhit"])
    assert measured == pytest.approx(expected, rel=0.15)  # ~540 noise hits: 4 % Poisson error


def test_deposited_equals_sum_of_fractions_times_energy() -> None:
    cfg = apply_overrides(SimConfig(), ["noise.sigma=0", "noise.threshold=0"])
    d = generate_arrays(cfg, 50, seed=2)
    K = 2
    for k in range(K):
        got = per_event(d, d["frac"][:, k] * d["energy"])
        np.testing.assert_allclose(got, d["deposited"][k::K], rtol=1e-9)
    assert not d["noise"].any()


def test_truth_fractions_come_from_pre_noise_deposits() -> None:
    quiet = apply_overrides(SimConfig(), ["noise.sigma=0", "noise.threshold=0.0"])
    noisy = apply_overrides(SimConfig(), ["noise.sigma=0.05", "noise.threshold=0.0"])
    a = generate_arrays(quiet, 20, seed=4)
    b = generate_arrays(noisy, 20, seed=4)
    # noise is drawn after the showers: same signal cells, same fractions, different energies
    key_a = np.repeat(np.arange(20), a["nhit"]) * 10000 + a["cell_row"]
    key_b = np.repeat(np.arange(20), b["nhit"]) * 10000 + b["cell_row"]
    sig_b = ~b["noise"]
    common, ia, ib = np.intersect1d(key_a, key_b[sig_b], return_indices=True)
    assert len(common) > 0.4 * len(key_a)
    np.testing.assert_allclose(b["frac"][sig_b][ib], a["frac"][ia], rtol=1e-12)
    assert not np.allclose(b["energy"][sig_b][ib], a["energy"][ia])


def test_separation_distributions() -> None:
    for overrides, mean in (
        (["gun.separation=uniform", "gun.separation_max=8"], 4.0),
        (["gun.separation=exponential", "gun.separation_scale=2", "gun.separation_max=100"], 2.0),
    ):
        cfg = apply_overrides(SimConfig(), [*overrides, "gun.max_angle=0"])
        d = generate_arrays(cfg, 512, seed=1)
        dist = np.hypot(d["p_x"][1::2] - d["p_x"][0::2], d["p_y"][1::2] - d["p_y"][0::2])
        assert dist.mean() == pytest.approx(mean, rel=0.1)
        assert (dist < 1.0).mean() > 0.08  # heavy overlap is well represented


def test_directions_and_impacts() -> None:
    cfg = apply_overrides(
        SimConfig(), ["gun.max_angle=0.2", "gun.impact_half_width=3", "gun.separation_max=4"]
    )
    d = generate_arrays(cfg, 256, seed=5)
    norm2 = d["dirx"] ** 2 + d["diry"] ** 2 + d["dirz"] ** 2
    np.testing.assert_allclose(norm2, 1.0, rtol=1e-12)
    theta = np.arccos(d["dirz"])
    assert theta.max() <= 0.2 + 1e-12 and theta.max() > 0.15
    assert np.all(np.abs(d["p_x"][0::2]) <= 3) and np.all(
        np.hypot(d["p_x"][1::2], d["p_y"][1::2]) <= 3 * np.sqrt(2) + 4
    )


def test_inclined_shower_moves_with_depth() -> None:
    geo = load_geometry("default")
    cfg = single(11, 40.0, "gun.max_angle=0.5")
    d = generate_arrays(cfg, 256, seed=9)
    ev = np.repeat(np.arange(256), d["nhit"])
    z = geo.z[d["cell_row"]]
    x = geo.x[d["cell_row"]]
    front = z < 2.5
    back = (z > 6) & (z < 14)
    tx = d["dirx"] / d["dirz"]
    shift = np.zeros(256)
    for sel, sign in ((front, -1), (back, 1)):
        w = d["energy"] * sel
        shift += sign * np.bincount(ev, w * x, 256) / np.maximum(np.bincount(ev, w, 256), 1e-9)
    steep = np.abs(tx) > 0.3
    # the shower centroid moves along the particle direction
    assert np.corrcoef(shift[steep], tx[steep])[0, 1] > 0.8


def test_single_particle_samples_with_background() -> None:
    cfg = apply_overrides(
        SimConfig(),
        [
            "gun.n_particles=1",
            "gun.pdg=[11,211]",
            "gun.energy.min=10",
            "gun.energy.max=100",
            "background.mean_hits=30",
            "background.mean_showers=1",
        ],
    )
    d = generate_arrays(cfg, 256, seed=3)
    assert set(np.unique(d["pdg"]).tolist()) == {11, 211}
    assert d["p_energy"].min() >= 10 and d["p_energy"].max() <= 100
    assert d["frac"].shape[1] == 1
    np.testing.assert_allclose(d["frac"][~d["noise"], 0], 1.0)
    base = generate_arrays(
        apply_overrides(cfg, ["background.mean_hits=0", "background.mean_showers=0"]), 256, seed=3
    )
    extra = (d["noise"].sum() - base["noise"].sum()) / 256
    # 30 random deposits with exponential energy (mean 0.1 GeV) pass a 0.03 GeV cut with
    # probability exp(-0.3) = 0.74; soft showers add more noise-flagged (background) hits
    assert extra > 30 * np.exp(-0.3) * 0.8
    # background never changes the particle's own deposits
    np.testing.assert_allclose(d["deposited"], base["deposited"], rtol=0, atol=0)


def test_electrons_and_pions_differ_in_shape() -> None:
    geo = load_geometry("default")
    depth = {}
    for pdg in (11, 211):
        d = generate_arrays(single(pdg, 50.0), 128, seed=2)
        z = geo.z[d["cell_row"]]
        depth[pdg] = np.mean(per_event(d, d["energy"] * z) / per_event(d, d["energy"]))
    assert depth[211] > 2 * depth[11]


def test_same_seed_same_events_and_prefix_property() -> None:
    cfg = SimConfig()
    a = generate(cfg, 70, seed=5)
    b = generate(cfg, 70, seed=5)
    assert ak.array_equal(a, b)
    c = generate(cfg, 70, seed=6)
    assert not ak.array_equal(a.hit.energy, c.hit.energy)
    # event i depends only on (seed, i): a sub-range equals the slice
    part = generate(cfg, 10, seed=5, start=60)
    assert ak.array_equal(part, a[60:70])
    assert part.event.tolist() == list(range(60, 70))


def test_awkward_layout_matches_tree_format() -> None:
    ev = generate(SimConfig(), 5, seed=0)
    assert ev.fields == ["event", "hit", "particle"]
    assert ev.hit.fields == [
        "cell", "x", "y", "z", "dx", "dy", "dz", "layer", "energy", "noise", "frac_0", "frac_1", "truth",
    ]  # fmt: skip
    assert ev.particle.fields == ["pdg", "energy", "x", "y", "dirx", "diry", "dirz", "deposited"]
    geo = load_geometry("default")
    cell = ak.flatten(ev.hit.cell).to_numpy()
    np.testing.assert_array_equal(ak.flatten(ev.hit.x).to_numpy(), geo.x[cell].astype(np.float32))
    assert str(ak.flatten(ev.hit.energy).type.content) == "float32"
    assert str(ev.event.type.content) == "int64"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["gun.n_particles=0"], "n_particles"),
        (["gun.pdg=[13]"], "unsupported"),
        (["gun.energy.min=50", "gun.energy.max=10"], "min <= max"),
        (["noise.sigma=-1"], "noise.sigma"),
        (["gun.max_angle=2"], "max_angle"),
        (["shower.max_spots=2"], "max_spots"),
        (["gun.separation=gaussian"], "gun.separation.*gaussian.*expected one of"),
        (["gun.nparticles=2"], "unknown configuration key"),
        (["background.shower_energy_min=0"], "shower_energy_min"),
    ],
)
def test_config_errors(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        generate_arrays(apply_overrides(SimConfig(), overrides), 1)


def test_bad_call_arguments() -> None:
    with pytest.raises(ConfigError, match="seed"):
        generate_arrays(SimConfig(), 1, seed=-1)
    with pytest.raises(ConfigError, match="n_events"):
        generate_arrays(SimConfig(), -1)


def test_geometry_with_too_large_cell_ids_is_rejected(tmp_path) -> None:
    from calo.errors import DataError
    from calo.geometry import Geometry

    geo = Geometry.from_arrays(
        x=[0.0], y=[0.0], z=[5.0], dx=[30.0], dy=[30.0], dz=[10.0], layer=[0], id=[2**40]
    )
    path = geo.save(tmp_path / "big.npz")
    cfg = apply_overrides(SimConfig(), [f"geometry={path}"])
    with pytest.raises(DataError, match="int32") as err:
        generate_arrays(cfg, 1)
    assert "big.npz" in str(err.value)
