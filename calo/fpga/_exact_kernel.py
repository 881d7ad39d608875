"""The exact kernel of :class:`~calo.fpga.reference.FixedGarNet`: every cast of nnet_garnet.h
with its rounding, its overflow handling and its overflow count (and value range).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from calo.fpga._codegen import Expr
from calo.fpga.fixed import FixedType, handle_overflow, round_shift
from calo.fpga.overflow import QUANTITY_INDEX

if TYPE_CHECKING:
    from calo.fpga.reference import FixedGarNet

__all__ = ["generate_exact"]


class _Gen:
    """Writes the source of a numba kernel specialised to one configuration."""

    def __init__(self, track: bool) -> None:
        self.lines: list[str] = []
        self.track = track

    def emit(self, ind: int, text: str) -> None:
        self.lines.append("    " * ind + text)

    def cast(self, ind: int, dst: str, expr: str, sh: int, t: FixedType, li: int, q: str) -> None:
        """``dst = t(expr)`` where ``expr`` has ``sh`` more fractional bits than ``t``."""
        qm, om = t.code[3:]
        if sh > 0 and qm != 0:
            self.emit(ind, f"_v = {expr}")
            v = Expr("_v")
        else:
            v = Expr(f"({expr})" if sh else expr)
        self.emit(ind, f"{dst} = {round_shift(v, sh, qm).text}")
        lo, hi = t.range_raw
        qi = QUANTITY_INDEX[q]
        if self.track:
            self.emit(ind, f"if {dst} > MX[{li}, {qi}]: MX[{li}, {qi}] = {dst}")
            self.emit(ind, f"if {dst} < MN[{li}, {qi}]: MN[{li}, {qi}] = {dst}")
        self.emit(ind, f"if {dst} < {lo} or {dst} > {hi}:")
        self.emit(ind + 1, f"CNT[{li}, {qi}] += 1")
        self.emit(ind + 1, f"{dst} = {handle_overflow(Expr(dst), om, lo, hi).text}")

    def add_cast(
        self, ind: int, dst: str, a: str, fa: int, b: str, fb: int, t: FixedType, li: int, q: str
    ) -> None:
        """``dst = t(a + b)`` with ``a``, ``b`` raw at ``fa``, ``fb`` fractional bits."""
        f = max(fa, fb)
        ea = a if f == fa else f"({a} << {f - fa})"
        eb = b if f == fb else f"({b} << {f - fb})"
        self.cast(ind, dst, f"{ea} + {eb}", f - t.frac, t, li, q)


def generate_exact(model: FixedGarNet, track: bool) -> str:
    """Source of the exact kernel (``track``: also record the range of every quantity).

    Examples
    --------
    >>> import numpy as np
    >>> from calo.fpga.garnet import GarNetFixedConfig, GarNetWeights
    >>> from calo.fpga.reference import FixedGarNet
    >>> m = FixedGarNet([GarNetWeights.random(np.random.default_rng(0), 4, 4, 8, 8)],
    ...                 GarNetFixedConfig(n_vertices=16, reuse_factor=4))
    >>> src = generate_exact(m, track=False)
    >>> src.splitlines()[0]
    'def kernel(X, N, IDX, OUT, CNT, MX, MN, TABLE, WD0, BD0, WIN0, BIN0, BOUTR0, BOUTA0):'
    >>> "CNT[0, 0] += 1" in src  # a distance that leaves distance_t is counted
    True
    """
    cfg = model.config
    fl = cfg.data_flow()
    V, U = fl.V, fl.U
    log2u, log2r, log2v = fl.log2u, fl.log2r, fl.log2v
    dist, ew, ewa, aggr, norm, outt = fl.dist, fl.ew, fl.ewa, fl.aggr, fl.norm, fl.outt
    subs = model.sublayers
    nl = len(subs)
    collapse = cfg.collapse == "mean"
    g = _Gen(track)
    args = ["X", "N", "IDX", "OUT", "CNT", "MX", "MN", "TABLE"]
    for li in range(nl):
        args += [f"WD{li}", f"BD{li}", f"WIN{li}", f"BIN{li}", f"BOUTR{li}", f"BOUTA{li}"]
    g.emit(0, f"def kernel({', '.join(args)}):")
    g.emit(1, "B = X.shape[0]")
    for li, s in enumerate(subs):
        A, F, O = s.n_aggregators, s.n_in, s.n_out  # noqa: E741
        g.emit(1, f"locE{li} = np.zeros({A}, np.int64); accE{li} = np.zeros({A}, np.int64)")
        g.emit(1, f"locW{li} = np.zeros(({A}, {F}), np.int64)")
        g.emit(1, f"accW{li} = np.zeros(({A}, {F}), np.int64)")
        g.emit(1, f"ewm{li} = np.zeros({A}, np.int64); wfm{li} = np.zeros(({A}, {F}), np.int64)")
        g.emit(1, f"OB{li} = np.zeros(({O}, {A}), np.int64)")
        g.emit(1, f"EW{li} = np.zeros(({V}, {A}), np.int64)")
        if li > 0:
            g.emit(1, f"H{li} = np.zeros(({V}, {F}), np.int64)")
    g.emit(1, "for bi in range(IDX.shape[0]):")
    g.emit(2, "b = IDX[bi]")
    g.emit(2, "nv = N[b]")
    for li, s in enumerate(subs):
        A, F, O = s.n_aggregators, s.n_in, s.n_out  # noqa: E741
        wt = s.types
        data_t = fl.data_t(li)
        src = "X[b, v, i]" if li == 0 else f"H{li}[v, i]"
        fd = data_t.frac
        last = li == nl - 1
        store = not (last and collapse)
        # ---- aggregate
        g.emit(2, f"for a in range({A}):")
        g.emit(3, f"accE{li}[a] = 0")
        g.emit(3, f"for i in range({F}):")
        g.emit(4, f"accW{li}[a, i] = 0")
        g.emit(2, f"for gg in range((nv + {U - 1}) // {U}):")
        g.emit(3, f"for a in range({A}):")
        g.emit(4, f"locE{li}[a] = 0")
        g.emit(4, f"for i in range({F}):")
        g.emit(5, f"locW{li}[a, i] = 0")
        g.emit(3, f"for v in range(gg * {U}, min(nv, gg * {U} + {U})):")
        g.emit(4, f"for a in range({A}):")
        g.emit(5, f"d = BD{li}[a]")
        g.emit(5, f"for i in range({F}):")
        g.cast(
            6, "inc", f"{src} * WD{li}[a, i]", fd + wt["w_d"].frac - dist.frac, dist, li, "distance"
        )
        g.cast(6, "d", "d + inc", 0, dist, li, "distance")
        g.emit(5, f"w = TABLE[d & {(1 << dist.width) - 1}]")
        if store:
            g.emit(5, f"EW{li}[v, a] = w")
        g.add_cast(5, "t", f"locE{li}[a]", ewa.frac, "w", ew.frac, ewa, li, "edge_weight_sum")
        g.emit(5, f"locE{li}[a] = t")
        g.emit(5, f"for i in range({F}):")
        g.cast(6, "inc", f"{src} * w", ew.frac, data_t, li, "weighted_input")
        g.add_cast(6, "t", f"locW{li}[a, i]", aggr.frac, "inc", fd, aggr, li, "feature_sum")
        g.emit(6, f"locW{li}[a, i] = t")
        g.emit(3, f"for a in range({A}):")
        g.add_cast(
            4,
            "t",
            f"accE{li}[a]",
            ewa.frac,
            f"(locE{li}[a] >> {log2u})",
            ewa.frac,
            ewa,
            li,
            "edge_weight_sum",
        )
        g.emit(4, f"accE{li}[a] = t")
        g.emit(4, f"for i in range({F}):")
        g.add_cast(
            5,
            "t",
            f"accW{li}[a, i]",
            aggr.frac,
            f"(locW{li}[a, i] >> {log2u})",
            aggr.frac,
            aggr,
            li,
            "feature_sum",
        )
        g.emit(5, f"accW{li}[a, i] = t")
        # ---- set_means_normalized
        if cfg.mean_by_nvert:
            if cfg.nvert_division == "integer":
                g.cast(2, "nrm", f"({U} // nv) << {norm.frac}", 0, norm, li, "norm")
            else:
                g.cast(2, "nrm", f"({U} << {norm.frac}) // nv", 0, norm, li, "norm")
            g.emit(2, f"for a in range({A}):")
            g.cast(
                3,
                "t",
                f"accE{li}[a] * nrm",
                ewa.frac + norm.frac - ew.frac,
                ew,
                li,
                "edge_weight_mean",
            )
            g.emit(3, f"ewm{li}[a] = t")
            g.emit(3, f"for i in range({F}):")
            g.cast(4, "t", f"accW{li}[a, i] * nrm", norm.frac, aggr, li, "feature_sum")
            g.emit(4, f"wfm{li}[a, i] = t")
        else:
            g.emit(2, f"for a in range({A}):")
            g.cast(
                3, "t", f"accE{li}[a] >> {log2r}", ewa.frac - ew.frac, ew, li, "edge_weight_mean"
            )
            g.emit(3, f"ewm{li}[a] = t")
            g.emit(3, f"for i in range({F}):")
            g.emit(4, f"wfm{li}[a, i] = accW{li}[a, i] >> {log2r}")
        # ---- output base
        g.emit(2, f"for o in range({O}):")
        g.emit(3, f"for a in range({A}):")
        g.cast(
            4,
            "ob",
            f"ewm{li}[a] * BIN{li}[o, a]",
            ew.frac + wt["b_in"].frac - aggr.frac,
            aggr,
            li,
            "aggregate",
        )
        g.emit(4, f"for i in range({F}):")
        g.add_cast(
            5,
            "ob",
            "ob",
            aggr.frac,
            f"wfm{li}[a, i] * WIN{li}[o, a, i]",
            aggr.frac + wt["w_in"].frac,
            aggr,
            li,
            "aggregate",
        )
        g.emit(4, f"OB{li}[o, a] = ob")
        # ---- outputs
        if store:
            dest = "OUT[b, v, o]" if last else f"H{li + 1}[v, o]"
            g.emit(2, "for v in range(nv):")
            g.emit(3, f"for o in range({O}):")
            g.emit(4, f"acc = BOUTR{li}[o]")
            g.emit(4, f"for a in range({A}):")
            g.cast(
                5,
                "inc",
                f"EW{li}[v, a] * OB{li}[o, a]",
                ew.frac + aggr.frac - outt.frac,
                outt,
                li,
                "output",
            )
            g.add_cast(5, "acc", "acc", outt.frac, "inc", outt.frac, outt, li, "output")
            g.emit(4, f"{dest} = acc")
        else:
            bt = wt["b_out"]
            g.emit(2, f"for o in range({O}):")
            if cfg.mean_by_nvert:
                g.emit(3, f"acc = BOUTR{li}[o]")
            else:
                g.cast(3, "bb", f"BOUTA{li}[o] * nv", 0, aggr, li, "output_bias_scaled")
                g.cast(3, "bn", f"bb >> {log2v}", aggr.frac - bt.frac, bt, li, "output_bias")
                g.cast(3, "acc", "bn", bt.frac - outt.frac, outt, li, "output")
            g.emit(3, f"for a in range({A}):")
            g.add_cast(
                4,
                "acc",
                "acc",
                outt.frac,
                f"ewm{li}[a] * OB{li}[o, a]",
                ew.frac + aggr.frac,
                outt,
                li,
                "output",
            )
            g.emit(3, "OUT[b, o] = acc")
    g.emit(1, "return 0")
    return "\n".join(g.lines) + "\n"
