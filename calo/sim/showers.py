"""Shower parameterisations: energy spots of electromagnetic and hadronic showers.

Electromagnetic showers (electrons, photons, and the pi0 part of pion showers) follow the
Grindhammer-Peters parameterisation (hep-ex/0001020) for a homogeneous medium of the absorber's
Z, applied to the effective medium of each layer:

- longitudinal: dE/dt = E (beta t)^(alpha-1) beta exp(-beta t) / Gamma(alpha), t in X0 along
  the axis; per shower ln T ~ N(ln(ln y + C), s_T), ln alpha ~ N(ln(0.21 + (0.492 + 2.38/Z) ln y),
  s_a) with correlation rho, y = E/E_c, C = -0.5 (e) / +0.5 (photon),
  s_T = 1/(-1.4 + 1.26 ln y), s_a = 1/(-0.58 + 0.86 ln y), rho = 0.705 - 0.023 ln y,
  beta = (alpha - 1)/T;
- radial, at tau = t/T, r in Moliere radii of the layer:
  f(r) = p 2r R_C^2/(r^2+R_C^2)^2 + (1-p) 2r R_T^2/(r^2+R_T^2)^2 with
  R_C = z1 + z2 tau, R_T = k1 (exp(k3 (tau - k2)) + exp(k4 (tau - k2))),
  p = p1 exp((p2 - tau)/p3 - exp((p2 - tau)/p3)) and the published coefficients (below).
  Both components have the closed-form inverse CDF r = R sqrt(u/(1-u)).

Charged pions: the first interaction happens at a depth drawn from exp(-t/lambda_I) (before it
the pion is a minimum-ionising track; beyond the calorimeter it punches through). The energy
splits into a pi0 part f_em E, f_em ~ N(1 - E^(k-1), s) clipped to [0, 1], showering as 1-4
photon sub-showers displaced transversely, and a hadronic part (1 - f_em) E of which a fraction
f_inv ~ N(mu, s) is invisible. The hadronic part has a Gamma profile in interaction lengths with
maximum T_h = 0.2 ln E + 0.7 and slope beta_h, and a radial core + halo of 0.08 and 0.35 times
the layer's effective interaction length.

Sampling fluctuations: a shower component of energy E is represented by n spatial spots of
nominal energy e = E/n; a spot in a layer of x0 radiation lengths deposits
Gamma(shape=e/q, scale=q) with q = a^2 x0, which gives the variance of a Poisson number of
energy quanta: sigma^2 = sum over layers of q_l E_l, i.e. sigma/E = a sqrt(x0)/sqrt(E) for
uniform layers, independently of n.

All functions work on many showers at once (numpy arrays, one entry per shower or spot).

Examples
--------
>>> import numpy as np
>>> from calo.geometry import Geometry
>>> geo = Geometry.default()
>>> rng = np.random.default_rng(0)
>>> spots = em_spots(rng, geo, Showers.single(np.array([20.0]), pdg=11), max_spots=256, stochastic=0.15)
>>> bool(0.8 < spots.energy.sum() / 20.0 < 1.2)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calo.geometry import ABSORBER_Z, CRITICAL_ENERGY_GEV, SENSOR_MIP_GEV, Geometry

__all__ = [
    "Showers",
    "Spots",
    "em_longitudinal",
    "em_radial",
    "em_spots",
    "hadron_showers",
    "spots_for",
]

# Grindhammer-Peters radial coefficients for the absorber's Z (E in GeV)
_Z = float(ABSORBER_Z)
_RC2 = 0.1162 - 0.000381 * _Z
_RT1 = 0.659 - 0.00309 * _Z
_RT2, _RT3 = 0.645, -2.59
_P1 = 2.632 - 0.00094 * _Z
_P2 = 0.401 + 0.00187 * _Z

PI0_OFFSET_CM = 1.5
"""Transverse spread (Gaussian sigma, cm) of pi0 sub-shower axes around the pion axis."""
PI0_DELAY_LAMBDA = 0.2
"""Mean extra depth (interaction lengths) at which pi0 sub-showers start after the first interaction."""
HAD_CORE, HAD_HALO, HAD_CORE_PROB = 0.08, 0.35, 0.5
"""Hadronic radial core and halo radii (in effective interaction lengths) and core probability."""


@dataclass
class Showers:
    """Shower components to turn into spots; every array has one entry per component.

    ``owner`` is an integer label carried to the spots (the caller's particle slot), ``kind``
    0 = electromagnetic, 1 = hadronic. ``start_z`` is the depth (cm) where the component
    starts, ``x0``/``y0`` the axis position at the front face, ``tx``/``ty`` the slopes dx/dz,
    dy/dz, ``cos`` the cosine of the polar angle, ``off_x``/``off_y`` a transverse offset (cm).
    ``alpha``, ``beta``, ``T`` are the longitudinal Gamma parameters (per X0 for EM, per
    lambda_I for hadronic), ``lnE`` the log of the component's energy (GeV) for the radial law.

    Examples
    --------
    >>> Showers.single(np.array([10.0, 20.0]), pdg=22).energy.tolist()
    [10.0, 20.0]
    """

    owner: np.ndarray
    kind: np.ndarray
    energy: np.ndarray
    start_z: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    cos: np.ndarray
    off_x: np.ndarray
    off_y: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    T: np.ndarray
    lnE: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.energy)

    def select(self, mask: np.ndarray) -> Showers:
        """The components where ``mask`` is true.

        Examples
        --------
        >>> s = Showers.single(np.array([1.0, 2.0]))
        >>> s.select(s.energy > 1.5).energy.tolist()
        [2.0]
        """
        return Showers(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})

    @staticmethod
    def concat(parts: list[Showers]) -> Showers:
        """Concatenate several component lists.

        Examples
        --------
        >>> len(Showers.concat([Showers.single(np.ones(2)), Showers.single(np.ones(3))]))
        5
        """
        return Showers(
            **{
                k: np.concatenate([getattr(p, k) for p in parts])
                for k in Showers.__dataclass_fields__
            }
        )

    @staticmethod
    def single(
        energy: np.ndarray,
        pdg: int = 11,
        rng: np.random.Generator | None = None,
        x: float = 0.0,
        y: float = 0.0,
        z_front: float = 0.0,
    ) -> Showers:
        """EM showers of ``energy`` (GeV) entering at (x, y) head-on; mean profile if no rng.

        Examples
        --------
        >>> len(Showers.single(np.array([5.0])))
        1
        """
        energy = np.asarray(energy, dtype=np.float64)
        n = len(energy)
        alpha, beta, T = em_longitudinal(energy, np.full(n, pdg), rng)
        zeros = np.zeros(n)
        return Showers(
            owner=np.arange(n),
            kind=np.zeros(n, dtype=np.int64),
            energy=energy,
            start_z=np.full(n, z_front),
            x0=np.full(n, x),
            y0=np.full(n, y),
            tx=zeros,
            ty=zeros,
            cos=np.ones(n),
            off_x=zeros,
            off_y=zeros,
            alpha=alpha,
            beta=beta,
            T=T,
            lnE=np.log(energy),
        )


@dataclass
class Spots:
    """Energy spots after cell lookup: ``owner``, ``cell`` (table row), ``energy`` (GeV) and,
    for inspection, ``layer``, ``x``, ``y`` and ``r`` (distance to the axis in the layer's
    Moliere radii for EM or interaction lengths for hadronic components). Spots that left the
    calorimeter are dropped.

    Examples
    --------
    >>> Spots.empty().energy.size
    0
    """

    owner: np.ndarray
    cell: np.ndarray
    energy: np.ndarray
    layer: np.ndarray
    x: np.ndarray
    y: np.ndarray
    r: np.ndarray

    @staticmethod
    def empty() -> Spots:
        """No spots (see the class example)."""
        i = np.zeros(0, dtype=np.int64)
        f = np.zeros(0)
        return Spots(i, i, f, i, f, f, f)

    @staticmethod
    def concat(parts: list[Spots]) -> Spots:
        """Concatenate several spot lists.

        Examples
        --------
        >>> Spots.concat([Spots.empty(), Spots.empty()]).cell.size
        0
        """
        if not parts:
            return Spots.empty()
        return Spots(
            **{
                k: np.concatenate([getattr(p, k) for p in parts])
                for k in Spots.__dataclass_fields__
            }
        )


def em_longitudinal(
    energy: np.ndarray, pdg: np.ndarray, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grindhammer-Peters Gamma parameters ``(alpha, beta [1/X0], T [X0])`` per shower.

    With ``rng`` the correlated log-normal fluctuations of T and alpha are drawn; without it
    the mean values exp(<ln T>), exp(<ln alpha>) are returned.

    Examples
    --------
    >>> import numpy as np
    >>> a, b, T = em_longitudinal(np.array([10.0]), np.array([11]))
    >>> round(float(T[0]), 2)  # ln(10 GeV / 7.97 MeV) - 0.5
    6.63
    """
    energy = np.asarray(energy, dtype=np.float64)
    lny = np.log(np.maximum(energy, 2.0 * CRITICAL_ENERGY_GEV * np.e) / CRITICAL_ENERGY_GEV)
    c = np.where(np.asarray(pdg) == 22, 0.5, -0.5)
    mean_lnT = np.log(np.maximum(lny + c, 0.5))
    mean_lna = np.log(0.21 + (0.492 + 2.38 / _Z) * lny)
    if rng is None:
        lnT, lna = mean_lnT, mean_lna
    else:
        s_t = 1.0 / np.maximum(-1.4 + 1.26 * lny, 1.0)
        s_a = 1.0 / np.maximum(-0.58 + 0.86 * lny, 1.0)
        rho = np.clip(0.705 - 0.023 * lny, 0.0, 1.0)
        g1 = rng.standard_normal(energy.shape)
        g2 = rng.standard_normal(energy.shape)
        lnT = mean_lnT + s_t * g1
        lna = mean_lna + s_a * (rho * g1 + np.sqrt(1.0 - rho**2) * g2)
    T = np.exp(lnT)
    alpha = np.maximum(np.exp(lna), 1.05)
    beta = (alpha - 1.0) / T
    return alpha, beta, T


def em_radial(tau: np.ndarray, lnE: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grindhammer-Peters radial parameters ``(R_C, R_T, p)`` in Moliere radii at ``tau = t/T``.

    Examples
    --------
    >>> import numpy as np
    >>> rc, rt, p = em_radial(np.array([1.0]), np.log(np.array([10.0])))
    >>> bool(rc[0] < rt[0]) and 0.5 < float(p[0]) < 1.0
    True
    """
    rc = 0.0251 + 0.00319 * lnE + _RC2 * tau
    rt = _RT1 * (np.exp(_RT3 * (tau - _RT2)) + np.exp((0.3585 + 0.0421 * lnE) * (tau - _RT2)))
    a = (_P2 - tau) / (1.313 - 0.0686 * lnE)
    p = np.clip(_P1 * np.exp(a - np.exp(a)), 0.0, 1.0)
    return rc, rt, p


class _DepthMap:
    """Piecewise-linear maps between depth z (cm) and cumulative X0 or lambda_I."""

    def __init__(self, geo: Geometry) -> None:
        self.z_knots = np.column_stack([geo.layer_z_lo, geo.layer_z_hi]).ravel()
        self.cum = {}
        for key, per_layer in (("x0", geo.layer_x0), ("lambda", geo.layer_lambda)):
            c = np.concatenate([[0.0], np.cumsum(per_layer)])
            self.cum[key] = np.column_stack([c[:-1], c[1:]]).ravel()
        self.z_front = float(geo.layer_z_lo[0])
        self.z_back = float(geo.layer_z_hi[-1])

    def depth(self, z: np.ndarray, unit: str) -> np.ndarray:
        return np.interp(z, self.z_knots, self.cum[unit])

    def z_of(self, depth: np.ndarray, unit: str) -> np.ndarray:
        """z where the cumulative depth is reached; +inf beyond the back."""
        cum = self.cum[unit]
        z = np.interp(depth, cum, self.z_knots)
        return np.where(depth >= cum[-1], np.inf, z)


_MAPS: dict[int, _DepthMap] = {}


def _depth_map(geo: Geometry) -> _DepthMap:
    m = _MAPS.get(id(geo))
    if m is None or getattr(m, "_geo", None) is not geo:
        m = _DepthMap(geo)
        m._geo = geo  # type: ignore[attr-defined]
        _MAPS.clear()
        _MAPS[id(geo)] = m
    return m


def spots_for(
    rng: np.random.Generator,
    geo: Geometry,
    showers: Showers,
    max_spots: int,
    stochastic_em: float,
    stochastic_had: float,
) -> Spots:
    """Sample the energy spots of EM (kind 0) and hadronic (kind 1) components.

    Examples
    --------
    >>> import numpy as np
    >>> from calo.geometry import Geometry
    >>> s = spots_for(np.random.default_rng(1), Geometry.default(), Showers.single(np.array([10.0])),
    ...               64, 0.15, 0.3)
    >>> bool(np.all(s.cell >= 0))
    True
    """
    if len(showers) == 0:
        return Spots.empty()
    dmap = _depth_map(geo)
    kind = showers.kind
    em = kind == 0
    n = len(showers)
    # spot counts: one spot per sampling quantum of a 1 X0 layer, capped
    quantum = np.where(em, stochastic_em, stochastic_had) ** 2
    counts = np.clip(np.ceil(showers.energy / quantum), 4, max_spots).astype(np.int64)
    counts[showers.energy <= 0] = 0
    comp = np.repeat(np.arange(n), counts)
    m = len(comp)
    alpha = showers.alpha[comp]
    u = rng.standard_gamma(alpha) / showers.beta[comp]  # depth from the start, X0 or lambda
    emr = em[comp]
    cos = showers.cos[comp]
    start = np.where(
        emr, dmap.depth(showers.start_z, "x0")[comp], dmap.depth(showers.start_z, "lambda")[comp]
    )
    cum = start + u * cos
    z = np.empty(m)
    z[emr] = dmap.z_of(cum[emr], "x0")
    z[~emr] = dmap.z_of(cum[~emr], "lambda")
    layer = geo.layer_of_z(z)
    inside = layer >= 0
    # radial
    lnE = showers.lnE[comp]
    rc, rt, p = em_radial(u / showers.T[comp], lnE)
    core = rng.random(m) < np.where(emr, p, HAD_CORE_PROB)
    radius = np.where(emr, np.where(core, rc, rt), np.where(core, HAD_CORE, HAD_HALO))
    v = rng.random(m)
    r_unit = radius * np.sqrt(v / (1.0 - v))
    lay = np.where(inside, layer, 0)
    scale = np.where(emr, geo.layer_moliere[lay], geo.layer_dz[lay] / geo.layer_lambda[lay])
    r_cm = r_unit * scale
    phi = rng.random(m) * (2.0 * np.pi)
    dz_front = np.where(inside, z, 0.0) - dmap.z_front
    x = showers.x0[comp] + showers.tx[comp] * dz_front + showers.off_x[comp] + r_cm * np.cos(phi)
    y = showers.y0[comp] + showers.ty[comp] * dz_front + showers.off_y[comp] + r_cm * np.sin(phi)
    # sampling fluctuations: Gamma(e/q, q), q = a^2 x0(layer)
    q = np.where(emr, stochastic_em, stochastic_had) ** 2 * geo.layer_x0[lay]
    nominal = (showers.energy / np.maximum(counts, 1))[comp]
    energy = rng.standard_gamma(nominal / q) * q
    # lookup only the spots inside the depth of the calorimeter
    cell = np.full(m, -1, dtype=np.int64)
    cell[inside] = geo.locate_layer(layer[inside], x[inside], y[inside])
    keep = cell >= 0
    return Spots(
        owner=showers.owner[comp][keep],
        cell=cell[keep],
        energy=energy[keep],
        layer=layer[keep],
        x=x[keep],
        y=y[keep],
        r=r_unit[keep],
    )


def em_spots(
    rng: np.random.Generator, geo: Geometry, showers: Showers, max_spots: int, stochastic: float
) -> Spots:
    """Spots of electromagnetic components only (see :func:`spots_for`).

    Examples
    --------
    >>> import numpy as np
    >>> from calo.geometry import Geometry
    >>> s = em_spots(np.random.default_rng(0), Geometry.default(), Showers.single(np.array([10.0])), 64, 0.15)
    >>> int(s.layer.max()) < 20
    True
    """
    return spots_for(rng, geo, showers.select(showers.kind == 0), max_spots, stochastic, stochastic)


def hadron_showers(
    rng: np.random.Generator,
    geo: Geometry,
    owner: np.ndarray,
    energy: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    tx: np.ndarray,
    ty: np.ndarray,
    cos: np.ndarray,
    em_fraction_k: float = 0.82,
    em_fraction_sigma: float = 0.12,
    invisible_mean: float = 0.30,
    invisible_sigma: float = 0.10,
    had_beta: float = 0.9,
) -> tuple[Showers, Spots]:
    """Components of charged-pion showers and the spots of their MIP tracks.

    Returns the EM (pi0) and hadronic components (to pass to :func:`spots_for`) and the
    minimum-ionising deposits of the track before the first interaction (already as spots).

    Examples
    --------
    >>> import numpy as np
    >>> from calo.geometry import Geometry
    >>> one = np.ones(1)
    >>> comps, mip = hadron_showers(np.random.default_rng(0), Geometry.default(), np.zeros(1, int),
    ...                             50.0 * one, 0 * one, 0 * one, 0 * one, 0 * one, one)
    >>> bool(comps.energy.sum() < 50.0)
    True
    """
    dmap = _depth_map(geo)
    n = len(energy)
    energy = np.asarray(energy, dtype=np.float64)
    # first interaction: exp(-t/lambda) along the axis
    t_int = rng.standard_exponential(n)
    z_int = dmap.z_of(dmap.depth(np.full(n, dmap.z_front), "lambda") + t_int * cos, "lambda")
    showering = np.isfinite(z_int)
    # MIP track through every layer in front of the interaction point
    z_end = np.where(showering, z_int, dmap.z_back)
    lay_idx = np.arange(geo.n_layers)
    mid = 0.5 * (geo.layer_z_lo + geo.layer_z_hi)
    crossed = mid[None, :] < z_end[:, None]
    pi, li = np.nonzero(crossed)
    mip_e = SENSOR_MIP_GEV / geo.layer_sampling[li] / cos[pi] * rng.gamma(4.0, 0.25, len(pi))
    dzf = mid[li] - dmap.z_front
    mx = x0[pi] + tx[pi] * dzf
    my = y0[pi] + ty[pi] * dzf
    mcell = geo.locate_layer(lay_idx[li], mx, my)
    ok = mcell >= 0
    mip = Spots(
        owner[pi][ok], mcell[ok], mip_e[ok], li[ok], mx[ok], my[ok], np.zeros(int(ok.sum()))
    )

    # energy sharing
    lnE = np.log(energy)
    f_em = np.clip(
        1.0 - energy ** (em_fraction_k - 1.0) + em_fraction_sigma * rng.standard_normal(n), 0, 1
    )
    f_inv = np.clip(invisible_mean + invisible_sigma * rng.standard_normal(n), 0.0, 0.9)
    e_had = (1.0 - f_em) * energy * (1.0 - f_inv)
    # pi0 sub-showers: 1 + Poisson(1), at most 4, Dirichlet(1) shares
    n_sub = np.minimum(1 + rng.poisson(1.0, n), 4)
    n_sub[~showering] = 0
    sub_owner = np.repeat(np.arange(n), n_sub)
    shares = rng.standard_exponential(len(sub_owner))
    tot = np.bincount(sub_owner, weights=shares, minlength=n)
    e_sub = (f_em * energy)[sub_owner] * shares / np.where(tot[sub_owner] > 0, tot[sub_owner], 1.0)
    delay = rng.standard_exponential(len(sub_owner)) * PI0_DELAY_LAMBDA
    z_sub = dmap.z_of(dmap.depth(z_int[sub_owner], "lambda") + delay * cos[sub_owner], "lambda")
    e_sub = np.maximum(e_sub, 1e-3)
    a_s, b_s, T_s = em_longitudinal(e_sub, np.full(len(e_sub), 22), rng)
    sub_ok = np.isfinite(z_sub)
    pi0 = Showers(
        owner=owner[sub_owner],
        kind=np.zeros(len(sub_owner), dtype=np.int64),
        energy=np.where(sub_ok, e_sub, 0.0),
        start_z=np.where(sub_ok, z_sub, dmap.z_back),
        x0=x0[sub_owner],
        y0=y0[sub_owner],
        tx=tx[sub_owner],
        ty=ty[sub_owner],
        cos=cos[sub_owner],
        off_x=PI0_OFFSET_CM * rng.standard_normal(len(sub_owner)),
        off_y=PI0_OFFSET_CM * rng.standard_normal(len(sub_owner)),
        alpha=a_s,
        beta=b_s,
        T=T_s,
        lnE=np.log(e_sub),
    )
    # hadronic part: Gamma in lambda_I, T_h = 0.2 ln E + 0.7, log-normal fluctuations
    T_h = (0.2 * lnE + 0.7) * np.exp(0.2 * rng.standard_normal(n))
    alpha_h = 1.0 + had_beta * T_h * np.exp(0.2 * rng.standard_normal(n))
    beta_h = (alpha_h - 1.0) / T_h
    had = Showers(
        owner=owner,
        kind=np.ones(n, dtype=np.int64),
        energy=np.where(showering, e_had, 0.0),
        start_z=np.where(showering, z_int, dmap.z_back),
        x0=x0,
        y0=y0,
        tx=tx,
        ty=ty,
        cos=cos,
        off_x=np.zeros(n),
        off_y=np.zeros(n),
        alpha=alpha_h,
        beta=beta_h,
        T=T_h,
        lnE=lnE,
    )
    return Showers.concat([pi0, had]), mip
