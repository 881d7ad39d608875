"""Shower physics: energy bookkeeping, resolution, depth vs ln E, containment, pions vs electrons."""

from __future__ import annotations

import numpy as np
import pytest
from simhelp import per_event, single

from calo.geometry import SENSOR_MIP_GEV, Geometry
from calo.sim import generate_arrays, load_geometry
from calo.sim.showers import Showers, em_longitudinal, em_radial, hadron_showers, spots_for


@pytest.fixture(scope="module")
def geo() -> Geometry:
    return load_geometry("default")


def _layer_depth(geo: Geometry, unit: str) -> np.ndarray:
    per = geo.layer_x0 if unit == "x0" else geo.layer_lambda
    cum = np.concatenate([[0.0], np.cumsum(per)])
    return 0.5 * (cum[:-1] + cum[1:])


def _run(pdg: int, energy: float, n: int, seed: int = 1, *extra: str) -> dict:
    return generate_arrays(single(pdg, energy, *extra), n, seed=seed)


@pytest.mark.parametrize("energy", [10.0, 50.0])
def test_electron_response_and_stochastic_term(geo: Geometry, energy: float) -> None:
    d = _run(11, energy, 256)
    tot = per_event(d, d["energy"])
    # calibrated response: full containment within a few per mille
    assert tot.mean() / energy == pytest.approx(1.0, abs=0.015)
    # the expected stochastic term from the model: sigma^2 = a^2 sum_l x0_l E_l
    layer = geo.layer[d["cell_row"]]
    f_layer = np.bincount(layer, weights=d["energy"], minlength=geo.n_layers) / d["energy"].sum()
    a_expected = 0.15 * np.sqrt((f_layer * geo.layer_x0).sum())
    a_measured = tot.std(ddof=1) / tot.mean() * np.sqrt(energy)
    assert 0.15 < a_measured < 0.25  # Si/W-like a/sqrt(E)
    # 256 showers: relative error on a std is ~4.5 %, plus longitudinal leakage fluctuations
    assert a_measured == pytest.approx(a_expected, rel=0.15)
    # particle_deposited is the sum of the particle's cell deposits
    np.testing.assert_allclose(d["deposited"], tot, rtol=1e-10)


def test_resolution_scales_as_one_over_sqrt_e() -> None:
    res = {}
    for e in (5.0, 80.0):
        d = _run(11, e, 256, 2)
        tot = per_event(d, d["energy"])
        res[e] = tot.std(ddof=1) / tot.mean()
    # sqrt(80/5) = 4; allow for the slight growth of a with depth (deeper showers)
    assert res[5.0] / res[80.0] == pytest.approx(4.0, rel=0.2)


def test_visible_energy_is_sampling_fraction_times_deposit(geo: Geometry) -> None:
    cal = _run(11, 20.0, 64, 5)
    vis = _run(11, 20.0, 64, 5, "calibrated=false")
    # identical random numbers: every hit is its calibrated energy times its layer's fraction
    np.testing.assert_array_equal(vis["cell_row"], cal["cell_row"])
    np.testing.assert_allclose(
        vis["energy"], cal["energy"] * geo.layer_sampling[geo.layer[cal["cell_row"]]], rtol=1e-12
    )
    ratio = per_event(vis, vis["energy"]).mean() / 20.0
    assert geo.layer_sampling.min() < ratio < geo.layer_sampling.max()


def test_uniform_sampling_calorimeter_fraction() -> None:
    # 40 identical 1 X0 layers with sampling fraction 2 %: visible / E = 0.02 x containment
    n_layers = 40
    xs = np.arange(-14.5, 15.0, 1.0)
    gx, gy = np.meshgrid(xs, xs)
    cells = len(gx.ravel())
    geo = Geometry.from_arrays(
        x=np.tile(gx.ravel(), n_layers),
        y=np.tile(gy.ravel(), n_layers),
        z=np.repeat(np.arange(n_layers) + 0.5, cells),
        dx=np.ones(cells * n_layers),
        dy=np.ones(cells * n_layers),
        dz=np.ones(cells * n_layers),
        layer=np.repeat(np.arange(n_layers), cells),
        layer_x0=np.ones(n_layers),
        layer_lambda=np.full(n_layers, 0.035),
        layer_moliere=np.full(n_layers, 1.6),
        layer_sampling=np.full(n_layers, 0.02),
    )
    rng = np.random.default_rng(3)
    sh = Showers.single(np.full(300, 30.0), pdg=11, rng=rng)
    spots = spots_for(rng, geo, sh, 256, 0.15, 0.3)
    tot = np.bincount(spots.owner, weights=spots.energy, minlength=300)
    assert tot.mean() * 0.02 / 30.0 == pytest.approx(0.02, rel=0.01)
    # uniform 1 X0 layers: sigma/E = a / sqrt(E) exactly (plus a little leakage)
    assert tot.std(ddof=1) / tot.mean() * np.sqrt(30.0) == pytest.approx(0.15, rel=0.12)


def test_mean_depth_grows_with_ln_e(geo: Geometry) -> None:
    energies = np.array([5.0, 10.0, 20.0, 50.0, 100.0])
    t_layer = _layer_depth(geo, "x0")
    depth = []
    for i, e in enumerate(energies):
        d = _run(11, e, 128, 10 + i)
        tot = per_event(d, d["energy"])
        depth.append(np.mean(per_event(d, d["energy"] * t_layer[geo.layer[d["cell_row"]]]) / tot))
    depth = np.array(depth)
    slope, _ = np.polyfit(np.log(energies), depth, 1)
    # Grindhammer-Peters: T = ln(E/Ec) + C, so d<t>/d ln E is about 1
    alpha, beta, _ = em_longitudinal(energies, np.full(5, 11))
    expected = alpha / beta  # mean of the Gamma profile (centre of gravity)
    slope_expected, _ = np.polyfit(np.log(energies), expected, 1)
    assert slope == pytest.approx(slope_expected, rel=0.15)
    assert 0.8 < slope < 1.2
    # and the absolute depths agree with the parameterisation within the layer granularity
    np.testing.assert_allclose(depth, expected, atol=0.8)


def test_photons_start_deeper_than_electrons(geo: Geometry) -> None:
    t_layer = _layer_depth(geo, "x0")
    depth = {}
    for pdg in (11, 22):
        d = _run(pdg, 30.0, 256, 7)
        tot = per_event(d, d["energy"])
        depth[pdg] = np.mean(per_event(d, d["energy"] * t_layer[geo.layer[d["cell_row"]]]) / tot)
    # C_photon - C_electron = 1 X0
    assert depth[22] - depth[11] == pytest.approx(1.0, abs=0.35)


def test_em_transverse_containment(geo: Geometry) -> None:
    rng = np.random.default_rng(4)
    sh = Showers.single(np.full(300, 30.0), pdg=11, rng=rng)
    s = spots_for(rng, geo, sh, 256, 0.15, 0.3)
    inside1 = s.energy[s.r < 1.0].sum() / s.energy.sum()
    inside2 = s.energy[s.r < 2.0].sum() / s.energy.sum()
    assert 0.85 < inside1 < 0.95  # about 90 % within one Moliere radius
    assert inside2 > 0.94
    # core narrower than tail; core dominates near the maximum
    rc, rt, p = em_radial(np.array([0.5, 1.0, 2.0]), np.log(np.full(3, 30.0)))
    assert np.all(rc < rt) and p[1] > 0.8 and p[2] < p[1]


def test_pions_longer_wider_and_fluctuating(geo: Geometry) -> None:
    rng = np.random.default_rng(6)
    n = 300
    one = np.ones(n)
    e_sh = Showers.single(50.0 * one, pdg=11, rng=rng)
    e_sp = spots_for(rng, geo, e_sh, 256, 0.15, 0.3)
    comps, mip = hadron_showers(
        rng, geo, np.arange(n), 50.0 * one, 0 * one, 0 * one, 0 * one, 0 * one, one
    )
    p_sp = spots_for(rng, geo, comps, 256, 0.15, 0.3)
    lam = _layer_depth(geo, "lambda")

    def moments(s):
        w = s.energy
        depth = np.sum(w * lam[s.layer]) / w.sum()
        width = np.sqrt(np.sum(w * (s.x**2 + s.y**2)) / w.sum())
        tot = np.bincount(s.owner, weights=w, minlength=n)
        return depth, width, tot

    de, we, te = moments(e_sp)
    dp, wp, tp = moments(p_sp)
    assert dp > 3 * de  # hadronic showers scale with lambda_I >> X0
    assert wp > 1.8 * we
    # non-compensating (invisible energy) and much worse resolution
    assert 0.55 < tp.mean() / 50.0 < 0.85
    assert tp.std() / tp.mean() > 3 * te.std() / te.mean()
    # MIP track before the first interaction: on average the absorber + sensor MIP loss
    assert len(mip.energy) > n
    mean_mip = np.bincount(mip.layer, weights=mip.energy, minlength=20) / np.maximum(
        np.bincount(mip.layer, minlength=20), 1
    )
    expected = SENSOR_MIP_GEV / geo.layer_sampling
    assert mean_mip[0] == pytest.approx(expected[0], rel=0.1)
    assert mean_mip[4] == pytest.approx(expected[4], rel=0.1)
    # first interaction depth ~ exp(-t / lambda): about exp(-lambda_EM) of the pions cross layer 13
    crossing = len(np.unique(mip.owner[mip.layer == 13])) / n
    assert crossing == pytest.approx(np.exp(-geo.layer_lambda[:14].sum()), abs=0.06)


def test_pion_em_fraction_grows_with_energy(geo: Geometry) -> None:
    # mean pi0 fraction 1 - E^(k-1): more visible energy per GeV at high energy
    resp = {}
    for e in (10.0, 100.0):
        d = _run(211, e, 256, 8, "gun.energy.min=" + str(e))
        resp[e] = per_event(d, d["energy"]).mean() / e
    assert resp[100.0] > resp[10.0]
