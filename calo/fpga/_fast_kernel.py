"""The fast kernel of :class:`~calo.fpga.reference.FixedGarNet`: the exact kernel's integer
expressions without overflow handling, vectorised over hits, in int32 where interval
arithmetic allows, with a flag on every event in which a cast could have overflowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from calo.fpga._codegen import Expr
from calo.fpga.fixed import FixedType, round_shift

if TYPE_CHECKING:
    from calo.fpga.reference import FixedGarNet

__all__ = ["generate_fast"]

#: Loops over the hits of a group up to this length are unrolled (measured faster).
_UNROLL = 16
#: Same for the features of the distance loop.
_UNROLL_F = 16


def _iv_mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    c = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return min(c), max(c)


def _iv_shift(a: tuple[int, int], sh: int) -> tuple[int, int]:
    """``a << sh`` (sh >= 0) or ``a >> -sh`` (floor)."""
    if sh >= 0:
        return a[0] << sh, a[1] << sh
    return a[0] >> -sh, a[1] >> -sh


class _FastGen:
    """Writes the fast numba kernel: the same arithmetic as :func:`_generate` without overflow
    handling, vectorised over hits, with flags that mark every event in which a cast could
    have left its type. Flagged events are recomputed by the exact kernel.

    Every expression carries an integer interval (from the type ranges and the actual
    weights), so casts that cannot overflow get no flag, and the whole kernel uses int32
    when no intermediate can exceed it.
    """

    def __init__(self, ity: str) -> None:
        self.lines: list[str] = []
        self.ity = ity  # "np.int32" or "np.int64"
        self.sign_bit = 31 if ity == "np.int32" else 63
        self.maxabs = 0
        self.flags: dict[tuple[object, ...], str] = {}

    def emit(self, ind: int, text: str) -> None:
        self.lines.append("    " * ind + text)

    def use(self, iv: tuple[int, int]) -> tuple[int, int]:
        self.maxabs = max(self.maxabs, abs(iv[0]), abs(iv[1]))
        return iv

    def I(self, expr: str) -> str:  # noqa: E743
        return f"{self.ity}({expr})"

    def flag(self, ind: int, dst: str, iv: tuple[int, int], t: FixedType) -> tuple[int, int]:
        """Flag ``dst`` (interval ``iv``) when outside ``t``; return the interval after the
        cast of an accepted event (``iv`` within ``t``'s range)."""
        lo, hi = t.range_raw
        if lo <= iv[0] and iv[1] <= hi:
            return iv
        if hi - lo + 1 == 1 << t.width:  # a power-of-two window: one add and one or
            key: tuple[object, ...] = ("w", lo, t.width)
            name = self.flags.setdefault(key, f"fl{len(self.flags)}")
            self.use((iv[0] - lo, iv[1] - lo))
            diff = self.I(f"{dst} - ({lo})")
            self.emit(ind, f"{name} = {self.I(f'{name} | {diff}')}")
        else:
            key = ("s", lo, hi)
            name = self.flags.setdefault(key, f"fl{len(self.flags)}")
            self.use((iv[0] - lo, iv[1] - lo))
            self.use((hi - iv[1], hi - iv[0]))
            a, b = self.I(f"{dst} - ({lo})"), self.I(f"{hi} - {dst}")
            self.emit(ind, f"{name} = {self.I(f'{name} | {a} | {b}')}")
        return max(iv[0], lo), min(iv[1], hi)

    def flag_tests(self) -> str:
        tests = []
        for key, name in self.flags.items():
            if key[0] == "w":
                tests.append(f"({name} >> {key[2]}) != 0")
            else:
                tests.append(f"{name} < 0")
        return " or ".join(tests) if tests else "False"

    def cast(
        self, ind: int, dst: str, expr: str, iv: tuple[int, int], sh: int, t: FixedType
    ) -> tuple[int, int]:
        """``dst = t(expr)`` without overflow handling (``expr`` has ``sh`` more fractional
        bits than ``t``), branch-free rounding; returns the interval of ``dst``."""
        self.use(iv)
        qm = t.code[3]
        I = self.I  # noqa: E741
        if sh > 0:
            self.use((iv[0] - (1 << sh), iv[1] + (1 << sh)))  # v + rounding bias
            self.emit(ind, f"_v = {I(expr)}")
            self.emit(ind, f"{dst} = {round_shift(Expr('_v', self.ity), sh, qm).text}")
            out = (iv[0] >> sh, (iv[1] >> sh) + (qm != 0))
        elif sh < 0:
            self.emit(ind, f"{dst} = {round_shift(Expr(f'({expr})', self.ity), sh, qm).text}")
            out = _iv_shift(iv, -sh)
        else:
            self.emit(ind, f"{dst} = {I(expr)}")
            out = iv
        self.use(out)
        return self.flag(ind, dst, out, t)

    def add_cast(
        self,
        ind: int,
        dst: str,
        a: str,
        fa: int,
        iva: tuple[int, int],
        b: str,
        fb: int,
        ivb: tuple[int, int],
        t: FixedType,
    ) -> tuple[int, int]:
        """``dst = t(a + b)``, composed exactly as :meth:`_Gen.add_cast`."""
        f = max(fa, fb)
        ea = a if f == fa else self.I(f"{a} << {f - fa}")
        eb = b if f == fb else self.I(f"{b} << {f - fb}")
        sa, sb = _iv_shift(iva, f - fa), _iv_shift(ivb, f - fb)
        self.use(sa)
        self.use(sb)
        s = (sa[0] + sb[0], sa[1] + sb[1])
        return self.cast(ind, dst, f"{ea} + {eb}", s, f - t.frac, t)

    def chain_iv(
        self,
        steps: int,
        fa: int,
        fb: int,
        ivb: tuple[int, int],
        t: FixedType,
        start: tuple[int, int] = (0, 0),
    ) -> tuple[tuple[int, int], tuple[int, int], bool]:
        """Intervals of an accumulator of type ``t`` (starting in ``start``) over up to
        ``steps`` ``add_cast`` steps with terms in ``ivb``: before a step, at any point, and
        whether a step can overflow."""
        lo, hi = t.range_raw
        f = max(fa, fb)
        acc = start
        before = start
        union = start
        over = False
        for k in range(steps):
            if k:
                before = (min(before[0], acc[0]), max(before[1], acc[1]))
            sa, sb = _iv_shift(acc, f - fa), _iv_shift(ivb, f - fb)
            s = (sa[0] + sb[0], sa[1] + sb[1])
            sh = f - t.frac
            r = _iv_shift(s, -sh)
            if sh > 0:
                r = (r[0], r[1] + 1)
            self.use(s)
            if r[0] < lo or r[1] > hi:
                over = True
            acc = (max(r[0], lo), min(r[1], hi))
            union = (min(union[0], acc[0]), max(union[1], acc[1]))
        return before, union, over


def generate_fast(model: FixedGarNet, ity: str) -> tuple[str, int]:
    """Source of the fast kernel and the largest magnitude of any intermediate value.

    Examples
    --------
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> from calo.fpga.reference import FixedGarNet
    >>> m = FixedGarNet([GarNetWeights.random(np.random.default_rng(0), 4, 4, 8, 8)],
    ...                 GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> src, maxabs = generate_fast(m, "np.int32")
    >>> src.splitlines()[0], maxabs < 2**31  # int32 suffices for these weights
    ('def fast(X, N, OUT, FLAG, TABLE, WD0, BD0, WINT0, BINT0, BOUTR0, BOUTA0):', True)
    """
    cfg = model.config
    fl = cfg.data_flow()
    V, R, U = fl.V, fl.R, fl.U
    log2u, log2r, log2v = fl.log2u, fl.log2r, fl.log2v
    dist, ew, ewa, aggr, norm, outt = fl.dist, fl.ew, fl.ewa, fl.aggr, fl.norm, fl.outt
    subs = model.sublayers
    nl = len(subs)
    collapse = cfg.collapse == "mean"
    lanes = 8
    smax = -(-R // lanes) * lanes
    mmax = U * smax
    g = _FastGen(ity)
    I = g.I  # noqa: E741
    tab = (min(0, int(model.table.min())), int(model.table.max()))

    def rng(a: NDArray[np.int64]) -> tuple[int, int]:
        return (int(a.min()), int(a.max())) if a.size else (0, 0)

    args = ["X", "N", "OUT", "FLAG", "TABLE"]
    for li in range(nl):
        args += [f"WD{li}", f"BD{li}", f"WINT{li}", f"BINT{li}", f"BOUTR{li}", f"BOUTA{li}"]
    g.emit(0, f"def fast({', '.join(args)}):")
    g.emit(1, "B = X.shape[0]")
    g.emit(1, f"MASK = np.zeros({mmax}, {ity}); D = np.zeros({mmax}, {ity})")
    g.emit(1, f"LE = np.zeros({smax}, {ity}); LW = np.zeros({smax}, {ity})")
    omax = max(s.n_out for s in subs)
    g.emit(1, f"ACC = np.zeros({omax}, {ity})")
    for li, s in enumerate(subs):
        A, F, O = s.n_aggregators, s.n_in, s.n_out  # noqa: E741
        g.emit(1, f"H{li}f = np.zeros({F * mmax}, {ity}); EW{li}f = np.zeros({A * mmax}, {ity})")
        g.emit(1, f"ewm{li} = np.zeros({A}, {ity}); wfm{li} = np.zeros(({A}, {F}), {ity})")
        g.emit(1, f"OB{li} = np.zeros(({A}, {O}), {ity})")
    if not collapse:
        g.emit(1, f"HOf = np.zeros({subs[-1].n_out * mmax}, {ity})")
    g.emit(1, "for b in range(B):")
    g.emit(2, "nv = N[b]")
    g.emit(2, f"ng = (nv + {U - 1}) >> {log2u}")
    g.emit(2, f"S = ((ng + {lanes - 1}) // {lanes}) * {lanes}")
    g.emit(2, f"M = S * {U}")
    g.emit(2, "bad = 0")
    # per-event views: [F, M] over the positions, [F, U, S] over (hit in group, group)
    views = [(f"H{li}", s.n_in) for li, s in enumerate(subs)]
    views += [(f"EW{li}", s.n_aggregators) for li, s in enumerate(subs)]
    if not collapse:
        views.append(("HO", subs[-1].n_out))
    for name, rows in views:
        g.emit(2, f"{name} = {name}f[: {rows} * M].reshape(({rows}, M))")
        g.emit(2, f"{name}g = {name}f[: {rows} * M].reshape(({rows}, {U}, S))")
    flag_init_at = len(g.lines)
    # hit v = gg * U + j lives at position j * S + gg: a group's hits are S apart
    g.emit(2, "for p in range(M):")
    g.emit(3, "MASK[p] = 0")
    for i in range(subs[0].n_in):
        g.emit(3, f"H0[{i}, p] = 0")
    g.emit(2, "for v in range(nv):")
    g.emit(3, f"j = v & {U - 1}; gg = v >> {log2u}")
    g.emit(3, "MASK[j * S + gg] = -1")
    for i in range(subs[0].n_in):
        g.emit(3, f"H0g[{i}, j, gg] = {I(f'X[b, v, {i}]')}")
    in_t = fl.data_t(0)
    lo_in, hi_in = in_t.range_raw
    hiv = (lo_in, hi_in)
    g.use(hiv)
    for li, s in enumerate(subs):
        A, F, O = s.n_aggregators, s.n_in, s.n_out  # noqa: E741
        wt = s.types
        data_t = fl.data_t(li)
        fd = data_t.frac
        last = li == nl - 1
        store = not (last and collapse)
        H, EW = f"H{li}", f"EW{li}"
        # ---- distances and edge weights, vectorised over hit positions p
        ivw = rng(s.w_d)
        ivbd = rng(model._static[f"BD{li}"])
        inc_iv = _iv_mul(hiv, ivw)
        sh_d = fd + wt["w_d"].frac - dist.frac
        g.emit(2, f"for a in range({A}):")
        g.emit(3, f"bd = BD{li}[a]")
        unroll_f = F <= _UNROLL_F
        if unroll_f:
            for i in range(F):
                g.emit(3, f"w{i} = WD{li}[a, {i}]")
            g.emit(3, "for p in range(M):")
            g.emit(4, "d = bd")
            d_iv = ivbd
            for i in range(F):
                inc_out = g.cast(4, "inc", f"{H}[{i}, p] * w{i}", inc_iv, sh_d, dist)
                d_iv = g.add_cast(4, "d", "d", dist.frac, d_iv, "inc", dist.frac, inc_out, dist)
            g.emit(4, "D[p] = d")
        else:
            g.emit(3, "for p in range(M):")
            g.emit(4, "D[p] = bd")
            g.emit(3, f"for i in range({F}):")
            g.emit(4, f"w = WD{li}[a, i]")
            g.emit(4, "for p in range(M):")
            inc_out = g.cast(5, "inc", f"{H}[i, p] * w", inc_iv, sh_d, dist)
            lo_d, hi_d = dist.range_raw
            d_iv = (min(ivbd[0], lo_d), max(ivbd[1], hi_d))
            g.cast(5, "d", "D[p] + inc", (d_iv[0] + inc_out[0], d_iv[1] + inc_out[1]), 0, dist)
            g.emit(5, "D[p] = d")
        g.emit(3, "for p in range(M):")
        g.emit(4, f"{EW}[a, p] = {I(f'TABLE[D[p] & {(1 << dist.width) - 1}] & MASK[p]')}")
        # ---- edge weight sums: U hits per group (S positions apart), then over the groups
        le_in, le_iv, _ = g.chain_iv(U, ewa.frac, ew.frac, tab, ewa)
        term = _iv_shift(le_iv, -log2u)
        _, acc_iv, acc_over = g.chain_iv(R, ewa.frac, ewa.frac, term, ewa)

        def estep(ind: int, j: int, ew_arr: str = EW, iv: tuple[int, int] = le_in) -> None:
            g.add_cast(ind, "t", "t", ewa.frac, iv, f"{ew_arr}g[a, {j}, gg]", ew.frac, tab, ewa)

        _group_sums(g, 3, U, log2u, R, ewa, "accE", term, acc_over, estep)
        if cfg.mean_by_nvert:
            if cfg.nvert_division == "integer":
                nexpr = f"({U} // nv) << {norm.frac}"
            else:
                nexpr = f"({U} << {norm.frac}) // nv"
            nrm_iv = g.cast(3, "nrm", nexpr, (0, U << norm.frac), 0, norm)
            e_iv = g.cast(
                3, "e", "accE * nrm", _iv_mul(acc_iv, nrm_iv), ewa.frac + norm.frac - ew.frac, ew
            )
        else:
            e_iv = g.cast(
                3, "e", I(f"accE >> {log2r}"), _iv_shift(acc_iv, -log2r), ewa.frac - ew.frac, ew
            )
        g.emit(3, f"ewm{li}[a] = e")
        # ---- weighted feature sums, the same way
        wi_iv = _iv_mul(hiv, tab)
        lw_in, lw_iv, _ = g.chain_iv(U, aggr.frac, fd, _wi_range(wi_iv, ew.frac, data_t), aggr)
        termw = _iv_shift(lw_iv, -log2u)
        _, accw_iv, accw_over = g.chain_iv(R, aggr.frac, aggr.frac, termw, aggr)
        g.emit(3, f"for i in range({F}):")

        def wstep(
            ind: int,
            j: int,
            h: str = H,
            ew_arr: str = EW,
            iv: tuple[int, int] = wi_iv,
            acc_iv: tuple[int, int] = lw_in,
            dt: FixedType = data_t,
        ) -> None:
            expr = f"{h}g[i, {j}, gg] * {ew_arr}g[a, {j}, gg]"
            wi_out = g.cast(ind, "inc", expr, iv, ew.frac, dt)
            g.add_cast(ind, "t", "t", aggr.frac, acc_iv, "inc", dt.frac, wi_out, aggr)

        _group_sums(g, 4, U, log2u, R, aggr, "accW", termw, accw_over, wstep)
        if cfg.mean_by_nvert:
            wfm_iv = g.cast(4, "wf", "accW * nrm", _iv_mul(accw_iv, nrm_iv), norm.frac, aggr)
        else:
            g.emit(4, f"wf = {I(f'accW >> {log2r}')}")
            wfm_iv = _iv_shift(accw_iv, -log2r)
        g.emit(4, f"wfm{li}[a, i] = wf")
        # ---- output base OB[a, o], vectorised over o
        ivbin, ivwin = rng(s.b_in), rng(s.w_in)
        g.emit(2, f"for a in range({A}):")
        g.emit(3, f"e = ewm{li}[a]")
        g.emit(3, f"for o in range({O}):")
        ob_iv = g.cast(
            4,
            "ob",
            f"e * BINT{li}[a, o]",
            _iv_mul(e_iv, ivbin),
            ew.frac + wt["b_in"].frac - aggr.frac,
            aggr,
        )
        g.emit(4, f"OB{li}[a, o] = ob")
        prod_iv = _iv_mul(wfm_iv, ivwin)
        ob_in, ob_all, _ = g.chain_iv(
            F, aggr.frac, aggr.frac + wt["w_in"].frac, prod_iv, aggr, start=ob_iv
        )
        g.emit(3, f"for i in range({F}):")
        g.emit(4, f"wv = wfm{li}[a, i]")
        g.emit(4, f"for o in range({O}):")
        ob_out = g.add_cast(
            5,
            "ob",
            f"OB{li}[a, o]",
            aggr.frac,
            ob_in,
            f"wv * WINT{li}[a, i, o]",
            aggr.frac + wt["w_in"].frac,
            prod_iv,
            aggr,
        )
        g.emit(5, f"OB{li}[a, o] = ob")
        ob_all = (min(ob_all[0], ob_out[0]), max(ob_all[1], ob_out[1]))
        # ---- outputs
        if store:
            dest = "HO" if last else f"H{li + 1}"
            ivbr = rng(model._static[f"BOUTR{li}"])
            g.emit(2, f"for o in range({O}):")
            g.emit(3, f"br = BOUTR{li}[o]")
            for a in range(A):
                g.emit(3, f"ob{a} = OB{li}[{a}, o]")
            g.emit(3, "for p in range(M):")
            g.emit(4, "acc = br")
            acc_iv = ivbr
            oinc = _iv_mul(tab, ob_all)
            for a in range(A):
                inc_o = g.cast(
                    4, "inc", f"{EW}[{a}, p] * ob{a}", oinc, ew.frac + aggr.frac - outt.frac, outt
                )
                acc_iv = g.add_cast(
                    4, "acc", "acc", outt.frac, acc_iv, "inc", outt.frac, inc_o, outt
                )
            g.emit(4, f"{dest}[o, p] = {I('acc & MASK[p]')}")
            hiv = outt.range_raw
        else:
            bt = wt["b_out"]
            g.emit(2, f"for o in range({O}):")
            if cfg.mean_by_nvert:
                g.emit(3, f"ACC[o] = BOUTR{li}[o]")
                acc_iv = rng(model._static[f"BOUTR{li}"])
            else:
                bb_iv = g.cast(
                    3,
                    "bb",
                    f"BOUTA{li}[o] * nv",
                    _iv_mul(rng(model._static[f"BOUTA{li}"]), (0, V)),
                    0,
                    aggr,
                )
                bn_iv = g.cast(
                    3, "bn", f"bb >> {log2v}", _iv_shift(bb_iv, -log2v), aggr.frac - bt.frac, bt
                )
                acc_iv = g.cast(3, "acc", "bn", bn_iv, bt.frac - outt.frac, outt)
                g.emit(3, "ACC[o] = acc")
            prod = _iv_mul(e_iv, ob_all)
            all_in, _, _ = g.chain_iv(A, outt.frac, ew.frac + aggr.frac, prod, outt, start=acc_iv)
            g.emit(2, f"for a in range({A}):")
            g.emit(3, f"e = ewm{li}[a]")
            g.emit(3, f"for o in range({O}):")
            g.add_cast(
                4,
                "acc",
                "ACC[o]",
                outt.frac,
                all_in,
                f"e * OB{li}[a, o]",
                ew.frac + aggr.frac,
                prod,
                outt,
            )
            g.emit(4, "ACC[o] = acc")
    # ---- accept or flag the event
    g.emit(2, f"if bad != 0 or {g.flag_tests()}:")
    g.emit(3, "FLAG[b] = 1")
    g.emit(3, "continue")
    if collapse:
        g.emit(2, f"for o in range({subs[-1].n_out}):")
        g.emit(3, "OUT[b, o] = ACC[o]")
    else:
        g.emit(2, "for v in range(nv):")
        g.emit(3, f"j = v & {U - 1}; gg = v >> {log2u}")
        g.emit(3, f"for o in range({subs[-1].n_out}):")
        g.emit(4, "OUT[b, v, o] = HOg[o, j, gg]")
    g.emit(1, "return 0")
    inits = [f"        {name} = {ity}(0)" for name in g.flags.values()]
    g.lines[flag_init_at:flag_init_at] = inits
    return "\n".join(g.lines) + "\n", g.maxabs


def _wi_range(iv: tuple[int, int], sh: int, t: FixedType) -> tuple[int, int]:
    """Interval of ``t(iv >> sh)`` for an accepted event (rounding up to one unit)."""
    lo, hi = t.range_raw
    r = _iv_shift(iv, -sh)
    return max(r[0], lo), min(r[1] + 1, hi)


def _group_sums(
    g: _FastGen,
    ind: int,
    U: int,
    log2u: int,
    R: int,
    t: FixedType,
    dst: str,
    term: tuple[int, int],
    over: bool,
    step: Callable[[int, int], object],
) -> None:
    """``dst`` = sum over the groups ``gg`` of ``t_gg >> log2u`` in type ``t``, where ``t_gg``
    accumulates the group's U hits (``step(ind, j)`` adds hit ``j`` to ``t``). The loop runs
    over the S (a multiple of the vector width) group slots; empty slots add zeros.

    When a partial sum over the groups could leave ``t``, the positive and negative terms are
    summed apart: if neither total leaves the range, no partial sum did (the event is flagged
    otherwise)."""
    I = g.I  # noqa: E741
    g.emit(ind, f"{dst} = {I(0)}")
    if over:
        g.use((R * min(term[0], 0), R * max(term[1], 0)))
        g.emit(ind, f"pos = {I(0)}; neg = {I(0)}")
    g.emit(ind, "for gg in range(S):")
    g.emit(ind + 1, f"t = {I(0)}")
    if U <= _UNROLL:
        for j in range(U):
            step(ind + 1, j)
    else:
        g.emit(ind + 1, f"for j in range({U}):")
        step(ind + 2, "j")  # type: ignore[arg-type]
    tt = I(f"t >> {log2u}")
    if not over:
        g.emit(ind + 1, f"{dst} = {I(f'{dst} + {tt}')}")
        return
    lo, hi = t.range_raw
    g.emit(ind + 1, f"tt = {tt}")
    g.emit(ind + 1, f"pos = {I('pos + (tt if tt > 0 else 0)')}")
    g.emit(ind + 1, f"neg = {I('neg + (tt if tt < 0 else 0)')}")
    g.emit(ind, f"{dst} = {I('pos + neg')}")
    g.emit(ind, f"if pos > {hi} or neg < {lo}:")
    g.emit(ind + 1, "bad = 1")
