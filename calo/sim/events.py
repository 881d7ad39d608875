"""Events: overlapping particles, summed per cell, noise, zero suppression and truth fractions.

Per event the gun shoots ``K = gun.n_particles`` particles (the first uniformly in a square
around the centre of the face, every other one at a distance d from it, d drawn from the
configured separation distribution, in a uniform direction), or with
``gun.multiplicity="poisson"`` a Poisson number of particles (clipped to
``[min_particles, max_particles]``) of which a chosen share overlaps an earlier one
(:class:`calo.sim.config.GunConfig`); the truth then has ``max_particles`` fraction columns,
0 for the particles an event does not have. Every particle's deposits are
summed per cell (``E_ik``); background deposits (random soft hits, soft photon showers) are
summed separately (``B_i``); every cell of the calorimeter gets Gaussian noise ``n_i``. A cell
becomes a hit when ``E_i = sum_k E_ik + B_i + n_i > threshold``. Its truth fractions are
``t_ik = E_ik / sum_k E_ik`` where ``sum_k E_ik > 0``; hits without particle energy are flagged
``noise`` with all fractions 0. ``particle_deposited`` is ``sum_i E_ik`` over all cells, before
noise and threshold.

Randomness: events are made in fixed blocks of :data:`BLOCK` events; block b uses
``numpy.random.SeedSequence(seed, spawn_key=(b,))``, so event i depends only on (seed, i, config)
and any way of cutting a range of events into chunks gives the same events. Each block spawns
three independent streams (particles and showers, background, noise), so changing the noise or
background settings leaves the particles' showers unchanged.

Examples
--------
>>> from calo.sim.config import GunConfig, SimConfig
>>> ev = generate(SimConfig(), 3, seed=1)
>>> ev.fields
['event', 'hit', 'particle']
>>> ev.event.tolist()
[0, 1, 2]
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from calo.errors import ConfigError, DataError
from calo.geometry import Geometry
from calo.sim.config import GunConfig, SimConfig
from calo.sim.showers import Showers, Spots, em_longitudinal, hadron_showers, spots_for

__all__ = ["BLOCK", "generate", "generate_arrays", "load_geometry", "to_awkward"]

BLOCK = 64
"""Events per random-number block (fixed: changing it changes the events of a seed)."""

_GEOMETRIES: dict[str, Geometry] = {}


def load_geometry(spec: str | Geometry) -> Geometry:
    """The geometry named by a config (``"default"`` or a file path), cached.

    Examples
    --------
    >>> load_geometry("default").n_cells
    2102
    """
    if isinstance(spec, Geometry):
        return spec
    geo = _GEOMETRIES.get(spec)
    if geo is None:
        geo = Geometry.default() if spec == "default" else Geometry.from_file(Path(spec))
        _GEOMETRIES[spec] = geo
    return geo


def _draw_energy(rng: np.random.Generator, cfg: SimConfig, n: int) -> np.ndarray:
    e = cfg.gun.energy
    u = rng.random(n)
    if e.distribution == "fixed":
        return np.full(n, e.min)
    if e.distribution == "log_uniform":
        return np.exp(np.log(e.min) + u * (np.log(e.max) - np.log(e.min)))
    return e.min + u * (e.max - e.min)


def _block(cfg: SimConfig, geo: Geometry, seed: int, b: int) -> dict[str, np.ndarray]:
    """Simulate the BLOCK events of block ``b`` into flat numpy arrays."""
    # independent streams: particles and showers, background, electronic noise
    ss_sig, ss_bg, ss_noise = np.random.SeedSequence(seed, spawn_key=(b,)).spawn(3)
    rng = np.random.default_rng(ss_sig)
    rng_bg = np.random.default_rng(ss_bg)
    rng_noise = np.random.default_rng(ss_noise)
    g = cfg.gun
    B = BLOCK
    K = g.max_count
    if g.multiplicity == "fixed":
        counts = np.full(B, K, dtype=np.int64)
    else:
        counts = np.clip(rng.poisson(g.mean_particles, B), g.min_particles, g.max_particles)
    P = int(counts.sum())
    # --- particles
    pdg = np.asarray(g.pdg, dtype=np.int64)[rng.integers(0, len(g.pdg), P)]
    energy = _draw_energy(rng, cfg, P)
    if g.multiplicity == "fixed":
        first = rng.uniform(-g.impact_half_width, g.impact_half_width, (B, 2))
        if g.separation == "uniform":
            dist = rng.uniform(0.0, g.separation_max, (B, K))
        else:
            dist = np.minimum(rng.exponential(g.separation_scale, (B, K)), g.separation_max)
        ang = rng.uniform(0.0, 2 * np.pi, (B, K))
        dist[:, 0] = 0.0
        px = (first[:, :1] + dist * np.cos(ang)).ravel()
        py = (first[:, 1:] + dist * np.sin(ang)).ravel()
    else:
        px, py = _place_overlapping(rng, g, counts)
    cos_t = 1.0 - rng.random(P) * (1.0 - np.cos(g.max_angle))
    sin_t = np.sqrt(1.0 - cos_t**2)
    phi = rng.uniform(0.0, 2 * np.pi, P)
    dirx, diry = sin_t * np.cos(phi), sin_t * np.sin(phi)
    tx, ty = dirx / cos_t, diry / cos_t
    z_front = float(geo.layer_z_lo[0])
    slot = np.arange(P)

    # --- shower components (owner = particle slot; background uses slot P + event)
    is_em = np.abs(pdg) != 211
    a, bta, T = em_longitudinal(energy[is_em], pdg[is_em], rng)
    em = Showers(
        owner=slot[is_em],
        kind=np.zeros(int(is_em.sum()), dtype=np.int64),
        energy=energy[is_em],
        start_z=np.full(int(is_em.sum()), z_front),
        x0=px[is_em],
        y0=py[is_em],
        tx=tx[is_em],
        ty=ty[is_em],
        cos=cos_t[is_em],
        off_x=np.zeros(int(is_em.sum())),
        off_y=np.zeros(int(is_em.sum())),
        alpha=a,
        beta=bta,
        T=T,
        lnE=np.log(energy[is_em]),
    )
    s = cfg.shower
    had, mip = hadron_showers(
        rng,
        geo,
        slot[~is_em],
        energy[~is_em],
        px[~is_em],
        py[~is_em],
        tx[~is_em],
        ty[~is_em],
        cos_t[~is_em],
        s.em_fraction_k,
        s.em_fraction_sigma,
        s.invisible_mean,
        s.invisible_sigma,
        s.had_beta,
    )
    s_spots = spots_for(
        rng, geo, Showers.concat([em, had]), s.max_spots, s.stochastic_em, s.stochastic_had
    )
    spots = [s_spots, mip]
    bg = cfg.background
    if bg.mean_showers > 0:
        n_bs = rng_bg.poisson(bg.mean_showers, B)
        ev = np.repeat(np.arange(B), n_bs)
        nb = len(ev)
        e_bs = rng_bg.uniform(bg.shower_energy_min, bg.shower_energy_max, nb)
        half = float(np.max(np.abs(geo.x) + geo.dx / 2))
        ab, bb, Tb = em_longitudinal(e_bs, np.full(nb, 22), rng_bg)
        zeros = np.zeros(nb)
        soft = Showers(
            owner=P + ev,
            kind=np.zeros(nb, dtype=np.int64),
            energy=e_bs,
            start_z=np.full(nb, z_front),
            x0=rng_bg.uniform(-half, half, nb),
            y0=rng_bg.uniform(-half, half, nb),
            tx=zeros,
            ty=zeros,
            cos=np.ones(nb),
            off_x=zeros,
            off_y=zeros,
            alpha=ab,
            beta=bb,
            T=Tb,
            lnE=np.log(e_bs),
        )
        spots.append(spots_for(rng_bg, geo, soft, s.max_spots, s.stochastic_em, s.stochastic_had))
    spots = Spots.concat(spots)

    # --- sum per cell: particle slots 0..P-1, background slots P..P+B-1
    N = geo.n_cells
    scale = 1.0 if cfg.calibrated else geo.layer_sampling[geo.layer]
    dep = np.bincount(spots.owner * N + spots.cell, weights=spots.energy, minlength=(P + B) * N)
    dep = dep.reshape(P + B, N)
    background = dep[P:]
    if bg.mean_hits > 0:
        n_bh = rng_bg.poisson(bg.mean_hits, B)
        ev = np.repeat(np.arange(B), n_bh)
        cells = rng_bg.integers(0, N, len(ev))
        np.add.at(background, (ev, cells), rng_bg.exponential(bg.hit_energy, len(ev)))
    if g.multiplicity == "fixed":
        per_particle = dep[:P].reshape(B, K, N) * scale
    else:  # particle p is column p - first[event] of its event; absent columns stay 0
        per_particle = np.zeros((B, K, N))
        ev_p = np.repeat(np.arange(B), counts)
        col_p = np.arange(P) - np.repeat(np.cumsum(counts) - counts, counts)
        per_particle[ev_p, col_p] = dep[:P] * scale
    background = background * scale
    signal = per_particle.sum(axis=1)
    reco = signal + background
    if cfg.noise.sigma > 0:
        reco = reco + rng_noise.normal(0.0, cfg.noise.sigma, (B, N))
    hit = reco > cfg.noise.threshold
    ev_i, cell_i = np.nonzero(hit)
    sig = signal[ev_i, cell_i]
    noise_flag = sig <= 0.0
    frac = per_particle[ev_i, :, cell_i] / np.where(noise_flag, 1.0, sig)[:, None]
    frac[noise_flag] = 0.0
    truth = np.where(noise_flag, -1, np.argmax(frac, axis=1))
    deposited = per_particle.sum(axis=2)[np.arange(K)[None, :] < counts[:, None]]
    return {
        "nhit": hit.sum(axis=1).astype(np.int64),
        "npart": counts,
        "cell_row": cell_i,
        "energy": reco[ev_i, cell_i],
        "noise": noise_flag,
        "frac": frac,
        "truth": truth,
        "pdg": pdg,
        "p_energy": energy,
        "p_x": px,
        "p_y": py,
        "dirx": dirx,
        "diry": diry,
        "dirz": cos_t,
        "deposited": deposited,
    }


def _place_overlapping(
    rng: np.random.Generator, g: GunConfig, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Impact points of the ``poisson`` multiplicity (see :class:`calo.sim.config.GunConfig`):
    each particle after the first overlaps a random earlier one with probability
    ``overlap_fraction``, else it lands at least ``overlap_distance`` from all earlier ones."""
    w, r = g.spread_half_width, g.overlap_distance
    xs, ys = [], []
    for n in counts:
        pts = np.empty((int(n), 2))
        pts[0] = rng.uniform(-w, w, 2)
        for j in range(1, int(n)):
            if rng.random() < g.overlap_fraction:
                host = pts[rng.integers(0, j)]
                rad = r * np.sqrt(rng.random())
                phi = rng.uniform(0.0, 2 * np.pi)
                pts[j] = host + rad * np.array([np.cos(phi), np.sin(phi)])
            else:
                for _ in range(100):
                    pts[j] = rng.uniform(-w, w, 2)
                    if np.min(np.hypot(*(pts[:j] - pts[j]).T)) >= r:
                        break
        xs.append(pts[:, 0])
        ys.append(pts[:, 1])
    return np.concatenate(xs), np.concatenate(ys)


def _slice_block(d: dict[str, np.ndarray], lo: int, hi: int) -> dict[str, np.ndarray]:
    """Events ``lo:hi`` of a block's arrays."""
    offs = np.concatenate([[0], np.cumsum(d["nhit"])])
    h0, h1 = offs[lo], offs[hi]
    poffs = np.concatenate([[0], np.cumsum(d["npart"])])
    p0, p1 = poffs[lo], poffs[hi]
    out = {"nhit": d["nhit"][lo:hi], "npart": d["npart"][lo:hi]}
    for k in ("cell_row", "energy", "noise", "frac", "truth"):
        out[k] = d[k][h0:h1]
    for k in ("pdg", "p_energy", "p_x", "p_y", "dirx", "diry", "dirz", "deposited"):
        out[k] = d[k][p0:p1]
    return out


def generate_arrays(
    config: SimConfig, n_events: int, seed: int = 0, start: int = 0, _cache: dict | None = None
) -> dict[str, np.ndarray]:
    """Flat numpy arrays of events ``start .. start + n_events - 1`` (see :func:`to_awkward`).

    Examples
    --------
    >>> from calo.sim.config import SimConfig
    >>> d = generate_arrays(SimConfig(), 2, seed=0)
    >>> d["nhit"].shape
    (2,)
    """
    config.validate()
    if n_events < 0 or start < 0:
        raise ConfigError(f"n_events and start must be >= 0, got {n_events}, {start}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    geo = load_geometry(config.geometry)
    if geo.id.min() < np.iinfo(np.int32).min or geo.id.max() > np.iinfo(np.int32).max:
        raise DataError(
            "cell ids must fit in int32 (branch hit_cell of docs/data_format.md); renumber the cells",
            file=geo.source,
        )
    K = config.gun.max_count
    pieces = []
    stop = start + n_events
    b = start // BLOCK
    while b * BLOCK < stop:
        if _cache is not None and _cache.get("b") == b:
            d = _cache["d"]
        else:
            d = _block(config, geo, int(seed), b)
            if _cache is not None:
                _cache.update(b=b, d=d)
        lo = max(start - b * BLOCK, 0)
        hi = min(stop - b * BLOCK, BLOCK)
        pieces.append(_slice_block(d, lo, hi))
        b += 1
    if not pieces:
        pieces.append(_slice_block(_block(config, geo, int(seed), 0), 0, 0))
    out = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    out["event"] = np.arange(start, stop, dtype=np.int64)
    out["cell"] = geo.id[out["cell_row"]]
    out["n_particles"] = np.array(K)
    return out


def to_awkward(d: dict[str, np.ndarray], geometry: Geometry | str = "default") -> ak.Array:
    """Build the event array (fields ``event``, ``hit``, ``particle``) from flat arrays.

    The record fields are the tree's branch names without the ``hit_``/``particle_`` prefix
    (see docs/data_format.md).

    Examples
    --------
    >>> from calo.sim.config import SimConfig
    >>> a = to_awkward(generate_arrays(SimConfig(), 2, seed=0))
    >>> a.hit.fields[:3]
    ['cell', 'x', 'y']
    """
    geo = load_geometry(geometry)
    row = d["cell_row"]
    K = int(d["n_particles"])
    f32 = np.float32
    hit = {
        "cell": d["cell"].astype(np.int32),
        "x": geo.x[row].astype(f32),
        "y": geo.y[row].astype(f32),
        "z": geo.z[row].astype(f32),
        "dx": geo.dx[row].astype(f32),
        "dy": geo.dy[row].astype(f32),
        "dz": geo.dz[row].astype(f32),
        "layer": geo.layer[row].astype(np.int32),
        "energy": d["energy"].astype(f32),
        "noise": d["noise"].astype(bool),
    }
    for k in range(K):
        hit[f"frac_{k}"] = d["frac"][:, k].astype(f32)
    hit["truth"] = d["truth"].astype(np.int32)
    particle = {
        "pdg": d["pdg"].astype(np.int32),
        "energy": d["p_energy"].astype(f32),
        "x": d["p_x"].astype(f32),
        "y": d["p_y"].astype(f32),
        "dirx": d["dirx"].astype(f32),
        "diry": d["diry"].astype(f32),
        "dirz": d["dirz"].astype(f32),
        "deposited": d["deposited"].astype(f32),
    }
    n_ev = len(d["nhit"])
    hits = ak.unflatten(ak.zip(hit), d["nhit"])
    npart = d["npart"] if "npart" in d else np.full(n_ev, K, dtype=np.int64)
    parts = ak.unflatten(ak.zip(particle), npart)
    return ak.zip(
        {"event": d["event"].astype(np.int64), "hit": hits, "particle": parts}, depth_limit=1
    )


def generate(
    config: SimConfig | None = None, n_events: int = 100, seed: int = 0, start: int = 0
) -> ak.Array:
    """Simulate ``n_events`` events (numbers ``start .. start + n_events - 1``).

    Parameters
    ----------
    config:
        The simulation configuration (default :class:`SimConfig`).
    n_events:
        Number of events.
    seed:
        Non-negative integer; event i depends only on (config, seed, i).
    start:
        Number of the first event (to make disjoint samples with one seed).

    Returns
    -------
    awkward.Array
        Records with ``event`` (int64), ``hit`` (jagged records: cell, x, y, z, dx, dy, dz,
        layer, energy, noise, frac_0..frac_{K-1}, truth) and ``particle`` (jagged records:
        pdg, energy, x, y, dirx, diry, dirz, deposited), as in docs/data_format.md.

    Examples
    --------
    >>> ev = generate(n_events=2, seed=3)
    >>> len(ev), bool(ak.all(ak.num(ev.particle) == 2))
    (2, True)
    """
    config = config or SimConfig()
    return to_awkward(generate_arrays(config, n_events, seed, start), config.geometry)
