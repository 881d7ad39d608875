"""Exact kNN of every point among the points of its event: a KD-tree searched leaf by leaf (numba).

One KD-tree per event (median splits on the widest coordinate, leaves of at most ``leaf_size``
points stored contiguously). The points of a leaf are queried together, in parallel over leaves (threads
running the GIL-free numba kernel on blocks of leaves):

1. bound: for each query ``q`` of leaf ``Q`` the ``k``-th smallest squared distance ``r_q`` to the
   points of the smallest ancestor of ``Q`` holding at least ``k`` points (an upper bound of the
   true ``k``-th distance);
2. candidates: the leaves whose box lies within ``max_q r_q`` of ``Q``'s box (tree traversal);
3. exact: per query, the squared distances to the points of the candidate leaves whose box lies
   within ``r_q`` of ``q``, keeping those ``<= r_q`` (at least ``k`` of them), then the ``k``
   smallest by (distance, index).

Distances are computed in float64 from the input coordinates, so the result is exact for float32
and float64 input; ties are broken by the lower index.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

__all__ = ["knn_kdtree"]


@numba.njit(cache=True)
def _select(perm, lo, hi, nth, pts, dim):  # pragma: no cover - compiled
    """Reorder perm[lo:hi] so that perm[nth] has the nth coordinate ``dim`` (quickselect)."""
    left, right = lo, hi - 1
    while right > left:
        mid = (left + right) // 2
        pivot = pts[perm[mid], dim]
        i, j = left, right
        while i <= j:
            while pts[perm[i], dim] < pivot:
                i += 1
            while pts[perm[j], dim] > pivot:
                j -= 1
            if i <= j:
                t = perm[i]
                perm[i] = perm[j]
                perm[j] = t
                i += 1
                j -= 1
        if nth <= j:
            right = j
        elif nth >= i:
            left = i
        else:
            break


@numba.njit(cache=True)
def _build(pts, ptr, leaf_size):  # pragma: no cover - compiled
    """KD-trees of all events. Returns perm, node arrays and the leaf list."""
    n, s = pts.shape
    n_ev = ptr.shape[0] - 1
    max_nodes = 2 * (n // max(1, leaf_size // 2) + 2 * n_ev) + 2 * n_ev + 4
    perm = np.arange(n)
    lo_a = np.empty(max_nodes, np.int64)
    hi_a = np.empty(max_nodes, np.int64)
    left_a = np.full(max_nodes, -1, np.int64)
    right_a = np.full(max_nodes, -1, np.int64)
    parent_a = np.full(max_nodes, -1, np.int64)
    bmin = np.empty((max_nodes, s))
    bmax = np.empty((max_nodes, s))
    roots = np.full(n_ev, -1, np.int64)
    n_nodes = 0
    stack = np.empty(max_nodes, np.int64)
    for e in range(n_ev):
        if ptr[e + 1] == ptr[e]:
            continue
        roots[e] = n_nodes
        lo_a[n_nodes] = ptr[e]
        hi_a[n_nodes] = ptr[e + 1]
        n_nodes += 1
        top = 0
        stack[top] = roots[e]
        top += 1
        while top > 0:
            top -= 1
            node = stack[top]
            lo, hi = lo_a[node], hi_a[node]
            for d in range(s):
                bmin[node, d] = np.inf
                bmax[node, d] = -np.inf
            for i in range(lo, hi):
                p = perm[i]
                for d in range(s):
                    v = pts[p, d]
                    if v < bmin[node, d]:
                        bmin[node, d] = v
                    if v > bmax[node, d]:
                        bmax[node, d] = v
            if hi - lo <= leaf_size:
                continue
            dim = 0
            width = -1.0
            for d in range(s):
                w = bmax[node, d] - bmin[node, d]
                if w > width:
                    width = w
                    dim = d
            if width <= 0.0:
                continue  # all points coincide: keep one (large) leaf
            mid = (lo + hi) // 2
            _select(perm, lo, hi, mid, pts, dim)
            for child in range(2):
                c = n_nodes
                n_nodes += 1
                lo_a[c] = lo if child == 0 else mid
                hi_a[c] = mid if child == 0 else hi
                parent_a[c] = node
                if child == 0:
                    left_a[node] = c
                else:
                    right_a[node] = c
                stack[top] = c
                top += 1
    is_leaf = np.zeros(n_nodes, np.bool_)
    for i in range(n_nodes):
        is_leaf[i] = left_a[i] < 0
    leaves = np.flatnonzero(is_leaf)
    return perm, lo_a, hi_a, left_a, right_a, parent_a, bmin, bmax, roots, leaves


@numba.njit(cache=True)
def _box_box(bmin, bmax, a, b):  # pragma: no cover - compiled
    d2 = 0.0
    for d in range(bmin.shape[1]):
        gap = max(bmin[a, d] - bmax[b, d], bmin[b, d] - bmax[a, d], 0.0)
        d2 += gap * gap
    return d2


@numba.njit(cache=True, inline="always")
def _point_box(ps, q, bmin, bmax, b):  # pragma: no cover - compiled
    """Squared distance of point ps[q] to the box of node b (0 inside)."""
    d2 = 0.0
    for d in range(ps.shape[1]):
        v = ps[q, d]
        gap = max(bmin[b, d] - v, v - bmax[b, d], 0.0)
        d2 += gap * gap
    return d2


@numba.njit(cache=True)
def _kth_smallest(buf, m, kk):  # pragma: no cover - compiled
    """The kk-th smallest of buf[:m] (1-based), reordering buf in place (quickselect)."""
    left, right = 0, m - 1
    nth = kk - 1
    while right > left:
        pivot = buf[(left + right) // 2]
        i, j = left, right
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                t = buf[i]
                buf[i] = buf[j]
                buf[j] = t
                i += 1
                j -= 1
        if nth <= j:
            right = j
        elif nth >= i:
            left = i
        else:
            break
    return buf[nth]


@numba.njit(cache=True, inline="always")
def _dist2(ps, q, j, s):  # pragma: no cover - compiled
    if s == 4:  # the common case, unrolled
        a = ps[q, 0] - ps[j, 0]
        b = ps[q, 1] - ps[j, 1]
        c = ps[q, 2] - ps[j, 2]
        e = ps[q, 3] - ps[j, 3]
        return (a * a + b * b) + (c * c + e * e)
    d2 = 0.0
    for d in range(s):
        t = ps[q, d] - ps[j, d]
        d2 += t * t
    return d2


@numba.njit(cache=True, nogil=True)
def _query(
    ps,
    ptr,
    k,
    perm,
    lo_a,
    hi_a,
    left_a,
    right_a,
    parent_a,
    bmin,
    bmax,
    roots,
    leaves,
    l0,
    l1,
    out,
    outd,
    pt,
):  # pragma: no cover - compiled
    """Fill rows of out (indices) and outd (squared distances) for the points of leaves[l0:l1].

    ``ps`` are the points in tree order.
    """
    s = ps.shape[1]
    max_leaf = 1
    for li in range(leaves.shape[0]):
        max_leaf = max(max_leaf, hi_a[leaves[li]] - lo_a[leaves[li]])
    event_of_root = np.full(lo_a.shape[0], -1, np.int64)
    for e in range(roots.shape[0]):
        if roots[e] >= 0:
            event_of_root[roots[e]] = e
    for li in range(l0, l1):
        leaf = leaves[li]
        root = leaf
        while parent_a[root] >= 0:
            root = parent_a[root]
        e = event_of_root[root]
        n_ev = ptr[e + 1] - ptr[e]
        kk = min(k, n_ev)
        # 1. per-query bound from the smallest ancestor with >= k points
        anc = leaf
        while hi_a[anc] - lo_a[anc] < min(kk, n_ev) and parent_a[anc] >= 0:
            anc = parent_a[anc]
        alo, ahi = lo_a[anc], hi_a[anc]
        qlo, qhi = lo_a[leaf], hi_a[leaf]
        nq = qhi - qlo
        bound = np.empty(nq)
        dbuf = np.empty(ahi - alo)
        for qi in range(nq):
            q = qlo + qi
            for j in range(alo, ahi):
                dbuf[j - alo] = _dist2(ps, q, j, s)
            bound[qi] = _kth_smallest(dbuf, ahi - alo, kk)
        big = bound.max()
        # 2. candidate leaves within the largest bound of the leaf box
        cand = np.empty(leaves.shape[0], np.int64)
        nc = 0
        stack = np.empty(128, np.int64)
        top = 1
        stack[0] = root
        while top > 0:
            top -= 1
            node = stack[top]
            if _box_box(bmin, bmax, node, leaf) > big:
                continue
            if left_a[node] < 0:
                cand[nc] = node
                nc += 1
            else:
                stack[top] = left_a[node]
                stack[top + 1] = right_a[node]
                top += 2
        # 3. exact k nearest per query: candidate leaves nearest box first, a sorted top-k list
        #    (distance, original index) and a bound that shrinks as it fills; leaves visited in the
        #    order of their box distance to the query leaf
        bb = np.empty(nc)
        for c in range(nc):
            bb[c] = _box_box(bmin, bmax, cand[c], leaf)
        order = np.argsort(bb)  # shared by the queries of the leaf; bb bounds from below
        topd = np.empty(kk)
        topi = np.empty(kk, np.int64)
        dbuf2 = np.empty(max_leaf)
        for qi in range(nq):
            q = qlo + qi
            thr = bound[qi]
            cnt = 0
            q0 = ps[q, 0]
            q1 = ps[q, 1 % s]
            q2 = ps[q, 2 % s]
            q3 = ps[q, 3 % s]
            for oc in range(nc):
                c = order[oc]
                if bb[c] > thr:
                    break
                if _point_box(ps, q, bmin, bmax, cand[c]) > thr:
                    continue
                node = cand[c]
                jlo = lo_a[node]
                m = hi_a[node] - jlo
                if s == 4:  # vectorisable: coordinates stored per dimension (pt)
                    for jj in range(m):
                        a0 = pt[0, jlo + jj] - q0
                        a1 = pt[1, jlo + jj] - q1
                        a2 = pt[2, jlo + jj] - q2
                        a3 = pt[3, jlo + jj] - q3
                        dbuf2[jj] = (a0 * a0 + a1 * a1) + (a2 * a2 + a3 * a3)
                else:
                    for jj in range(m):
                        dbuf2[jj] = _dist2(ps, q, jlo + jj, s)
                for jj in range(m):
                    d2 = dbuf2[jj]
                    if d2 > thr:
                        continue
                    pj = perm[jlo + jj]
                    if cnt == kk:
                        if d2 == topd[kk - 1] and pj > topi[kk - 1]:
                            continue
                        pos = kk - 1
                    else:
                        pos = cnt
                        cnt += 1
                    while pos > 0 and (
                        topd[pos - 1] > d2 or (topd[pos - 1] == d2 and topi[pos - 1] > pj)
                    ):
                        topd[pos] = topd[pos - 1]
                        topi[pos] = topi[pos - 1]
                        pos -= 1
                    topd[pos] = d2
                    topi[pos] = pj
                    if cnt == kk and topd[kk - 1] < thr:
                        thr = topd[kk - 1]
            # the point itself first (it can tie with exact twins, or be crowded out by k of them)
            row = perm[q]
            pos = kk - 1
            for t in range(kk):
                if topi[t] == row:
                    pos = t
                    break
            while pos > 0:
                topi[pos] = topi[pos - 1]
                topd[pos] = topd[pos - 1]
                pos -= 1
            topi[0] = row
            topd[0] = 0.0
            for t in range(kk):
                out[row, t] = topi[t]
                outd[row, t] = topd[t]


def knn_kdtree(
    pts: np.ndarray, ptr: np.ndarray, k: int, leaf_size: int = 32, num_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``[N, k]`` (int64, ``-1`` where the event has fewer than ``k`` points) and their
    squared distances ``[N, k]`` (float64, ``inf`` for missing).

    Column 0 is the point itself; the others are ordered by (distance, index).

    Parameters
    ----------
    pts:
        ``[N, S]`` float32 or float64 coordinates, finite.
    ptr:
        ``[B + 1]`` event boundaries.
    k:
        Neighbours per point, the point itself included.
    leaf_size:
        Largest number of points in a leaf.
    num_threads:
        Threads of the parallel query.

    Examples
    --------
    >>> x = np.array([[0.0], [1.0], [3.0]])
    >>> idx, d2 = knn_kdtree(x, np.array([0, 3]), 2)
    >>> idx.tolist(), d2.tolist()
    ([[0, 1], [1, 0], [2, 1]], [[0.0, 1.0], [0.0, 1.0], [0.0, 4.0]])
    """
    pts = np.ascontiguousarray(pts, dtype=np.float64)
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    n = pts.shape[0]
    out = np.full((n, k), -1, dtype=np.int64)
    outd = np.full((n, k), np.inf)
    if n == 0:
        return out, outd
    tree = _build(pts, ptr, leaf_size)
    ps = np.ascontiguousarray(pts[tree[0]])
    pt = np.ascontiguousarray(ps.T)  # [S, N], for the vectorised distance loop
    n_leaves = tree[-1].shape[0]
    # threads only pay off with enough work; the numba kernel releases the GIL
    workers = max(1, min(num_threads, n // 2048, n_leaves))
    if workers == 1:
        _query(ps, ptr, k, *tree, 0, n_leaves, out, outd, pt)
        return out, outd
    bounds = np.linspace(0, n_leaves, 4 * workers + 1).astype(np.int64)
    with ThreadPoolExecutor(workers) as pool:
        jobs = [
            pool.submit(_query, ps, ptr, k, *tree, int(lo), int(hi), out, outd, pt)
            for lo, hi in itertools.pairwise(bounds)
            if hi > lo
        ]
        for job in jobs:
            job.result()
    return out, outd
