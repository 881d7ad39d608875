"""Exact kNN of every point among the points of its event: a KD-tree searched point by point (numba).

One KD-tree per event (median splits on the widest coordinate, leaves of at most ``leaf_size``
points stored contiguously, coordinates stored per dimension in tree order). Every point ``q`` is
a query, taken in tree order:

1. bound: the ``k``-th nearest distance is 1-Lipschitz in the query position, so for any point
   ``p`` already answered ``r_k(q) <= r_k(p) + |q - p|``; the smallest such bound over the last
   ``window`` queries of the same event (its neighbours in tree order, usually in the same leaf)
   is a guaranteed radius (the first query of an event starts with none). In 4-D it is loose
   (about 2.4 times the squared k-th distance on uniform points), so the search first tries the
   much tighter guess ``1.1 r_k(p)`` and then ``1.4 r_k(p)``: if ``k`` points turn up within the
   guess the result is exact (every point closer than the k-th lies within it); otherwise (about
   1 query in 4 to 8) the search goes on with the next radius, inserting only the points beyond
   the previous one;
2. search: depth first from the root, the nearer child first, skipping nodes whose box lies beyond
   the current radius; the distances to the points of a leaf are computed in one vectorised loop,
   those within the radius are inserted into a sorted list of the ``k`` best by (distance, index),
   and once the list is full its last distance becomes the radius.

Distances are computed in float64 from the input coordinates (stored as float32 when the input is
float32, which changes no value), so the result is exact for float32 and float64 input; ties are
broken by the lower index. The point itself is moved to column 0.
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


@numba.njit(cache=True, inline="always")
def _insert(topd, topp, perm, cnt, kk, d2, pp):  # pragma: no cover - compiled
    """Insert (d2, tree position pp) into the sorted list topd/topp[:cnt] (by distance, then
    original index); returns the new count. The caller guarantees d2 <= topd[kk - 1] if full."""
    pj = perm[pp]
    if cnt == kk:
        if d2 == topd[kk - 1] and pj > perm[topp[kk - 1]]:
            return cnt
        pos = kk - 1
    else:
        pos = cnt
        cnt += 1
    while pos > 0 and topd[pos - 1] > d2:
        topd[pos] = topd[pos - 1]
        topp[pos] = topp[pos - 1]
        pos -= 1
    while pos > 0 and topd[pos - 1] == d2 and perm[topp[pos - 1]] > pj:  # ties: lower index first
        topd[pos] = topd[pos - 1]
        topp[pos] = topp[pos - 1]
        pos -= 1
    topd[pos] = d2
    topp[pos] = pp
    return cnt


@numba.njit(cache=True, nogil=True)
def _query(
    pt,
    perm,
    lo_a,
    hi_a,
    left_a,
    right_a,
    bmin,
    bmax,
    bfl,
    leaves,
    k,
    chunks,
    out,
    outd,
    window,
    spec,
    spec2,
):  # pragma: no cover - compiled
    """Write the rows of ``out``/``outd`` for the query ranges ``chunks`` ([C, 4]: root, event
    start, first and last + 1 tree position). ``pt`` [S, N] holds the points in tree order,
    ``bfl`` [2, nodes * 4] the boxes flattened (used when S = 4). Returns how many searches went
    past a guessed radius."""
    s = pt.shape[0]
    n = pt.shape[1]
    nfail = 0
    kr = np.empty(n)  # square root of the k-th distance of the answered queries
    max_leaf = 1
    for li in range(leaves.shape[0]):
        max_leaf = max(max_leaf, hi_a[leaves[li]] - lo_a[leaves[li]])
    dbuf = np.empty(max_leaf)
    cbuf = np.empty(max_leaf, np.int64)
    stk = np.empty(256, np.int64)
    stkd = np.empty(256)
    topd = np.empty(k)
    topp = np.empty(k, np.int64)
    p0 = pt[0]
    p1 = pt[1 % s]
    p2 = pt[2 % s]
    p3 = pt[3 % s]
    for ci in range(chunks.shape[0]):
        root = chunks[ci, 0]
        kk = min(k, hi_a[root] - lo_a[root])
        qa = chunks[ci, 2]
        for q in range(qa, chunks[ci, 3]):
            q0 = np.float64(p0[q])
            q1 = np.float64(p1[q])
            q2 = np.float64(p2[q])
            q3 = np.float64(p3[q])
            # 1. guaranteed radius from the recent queries (Lipschitz bound, with a margin for
            #    rounding; none for the first query of a chunk) and the guesses tried before it
            bound = np.inf
            bref = np.inf
            for j in range(max(qa, q - window), q):
                if s == 4:
                    a0 = np.float64(p0[j]) - q0
                    a1 = np.float64(p1[j]) - q1
                    a2 = np.float64(p2[j]) - q2
                    a3 = np.float64(p3[j]) - q3
                    d2 = (a0 * a0 + a1 * a1) + (a2 * a2 + a3 * a3)
                else:
                    d2 = 0.0
                    for c in range(s):
                        t = np.float64(pt[c, j]) - np.float64(pt[c, q])
                        d2 += t * t
                b = kr[j] + np.sqrt(d2)
                if b < bound:
                    bound = b
                    bref = kr[j]
            safe = bound * bound * (1.0 + 1e-9)
            lowcut = -1.0
            cnt = 0
            for attempt in range(3):
                if attempt == 0:
                    thr = min(safe, spec * spec * bref * bref)
                elif attempt == 1:
                    thr = min(safe, spec2 * spec2 * bref * bref)
                else:
                    thr = safe
                # 2. depth-first search, nearer child first
                top = 1
                stk[0] = root
                stkd[0] = 0.0
                while top > 0:
                    top -= 1
                    node = stk[top]
                    if stkd[top] > thr:
                        continue
                    lft = left_a[node]
                    if lft < 0:
                        jlo = lo_a[node]
                        m = hi_a[node] - jlo
                        if s == 4:
                            x0 = p0[jlo : jlo + m]
                            x1 = p1[jlo : jlo + m]
                            x2 = p2[jlo : jlo + m]
                            x3 = p3[jlo : jlo + m]
                            for jj in range(m):  # vectorised
                                a0 = np.float64(x0[jj]) - q0
                                a1 = np.float64(x1[jj]) - q1
                                a2 = np.float64(x2[jj]) - q2
                                a3 = np.float64(x3[jj]) - q3
                                dbuf[jj] = (a0 * a0 + a1 * a1) + (a2 * a2 + a3 * a3)
                            mn = np.inf
                            for jj in range(m):  # vectorised; most leaves have no point inside
                                mn = min(mn, dbuf[jj])
                            if mn > thr:
                                continue
                        else:
                            for jj in range(m):
                                d2 = 0.0
                                for c in range(s):
                                    t = np.float64(pt[c, jlo + jj]) - np.float64(pt[c, q])
                                    d2 += t * t
                                dbuf[jj] = d2
                        # branch-free compaction of the points within the radius, then insertion
                        nc = 0
                        for jj in range(m):
                            cbuf[nc] = jj
                            nc += (dbuf[jj] <= thr) & (dbuf[jj] > lowcut)
                        for t in range(nc):
                            jj = cbuf[t]
                            d2 = dbuf[jj]
                            if d2 > thr or d2 <= lowcut:
                                continue
                            cnt = _insert(topd, topp, perm, cnt, kk, d2, jlo + jj)
                            if cnt == kk and topd[kk - 1] < thr:
                                thr = topd[kk - 1]
                    else:
                        rgt = right_a[node]
                        dl = 0.0
                        dr = 0.0
                        if s == 4:
                            bl = 4 * lft
                            br = 4 * rgt
                            g = max(bfl[0, bl] - q0, q0 - bfl[1, bl], 0.0)
                            dl += g * g
                            g = max(bfl[0, bl + 1] - q1, q1 - bfl[1, bl + 1], 0.0)
                            dl += g * g
                            g = max(bfl[0, bl + 2] - q2, q2 - bfl[1, bl + 2], 0.0)
                            dl += g * g
                            g = max(bfl[0, bl + 3] - q3, q3 - bfl[1, bl + 3], 0.0)
                            dl += g * g
                            g = max(bfl[0, br] - q0, q0 - bfl[1, br], 0.0)
                            dr += g * g
                            g = max(bfl[0, br + 1] - q1, q1 - bfl[1, br + 1], 0.0)
                            dr += g * g
                            g = max(bfl[0, br + 2] - q2, q2 - bfl[1, br + 2], 0.0)
                            dr += g * g
                            g = max(bfl[0, br + 3] - q3, q3 - bfl[1, br + 3], 0.0)
                            dr += g * g
                        else:
                            for c in range(s):
                                v = np.float64(pt[c, q])
                                g = max(bmin[lft, c] - v, v - bmax[lft, c], 0.0)
                                dl += g * g
                                g = max(bmin[rgt, c] - v, v - bmax[rgt, c], 0.0)
                                dr += g * g
                        # push the farther child first so that the nearer one is searched first
                        if dl <= dr:
                            if dr <= thr:
                                stk[top] = rgt
                                stkd[top] = dr
                                top += 1
                            if dl <= thr:
                                stk[top] = lft
                                stkd[top] = dl
                                top += 1
                        else:
                            if dl <= thr:
                                stk[top] = lft
                                stkd[top] = dl
                                top += 1
                            if dr <= thr:
                                stk[top] = rgt
                                stkd[top] = dr
                                top += 1
                if cnt == kk or thr >= safe:
                    break
                nfail += 1
                lowcut = thr  # every point within it is in the list already
            kr[q] = np.sqrt(topd[kk - 1])
            # the point itself first (it can tie with exact twins, or be crowded out by k of them)
            pos = 0
            if topp[0] != q:
                pos = kk - 1
                for t in range(1, kk):
                    if topp[t] == q:
                        pos = t
                        break
            while pos > 0:
                topp[pos] = topp[pos - 1]
                topd[pos] = topd[pos - 1]
                pos -= 1
            topp[0] = q
            topd[0] = 0.0
            row = perm[q]
            for t in range(kk):
                out[row, t] = perm[topp[t]]
                outd[row, t] = topd[t]
            for t in range(kk, k):  # events with fewer than k points
                out[row, t] = -1
                outd[row, t] = np.inf
    return nfail


@numba.njit(cache=True, nogil=True)
def _prepare(pts, ptr, leaf_size, piece):  # pragma: no cover - compiled
    """Build the trees; return them with the points in tree order ([S, N]), the flattened boxes
    and the query runs ([C, 4]: root, event start, first, last + 1) of at most ``piece`` points."""
    perm, lo_a, hi_a, left_a, right_a, _, bmin, bmax, roots, leaves = _build(pts, ptr, leaf_size)
    n, s = pts.shape
    pt = np.empty((s, n), pts.dtype)
    for i in range(n):
        p = perm[i]
        for c in range(s):
            pt[c, i] = pts[p, c]
    n_nodes = 0
    for li in range(leaves.shape[0]):
        n_nodes = max(n_nodes, leaves[li] + 1)
    bfl = np.empty((2, 4 * n_nodes if s == 4 else 4))
    if s == 4:
        for nd in range(n_nodes):
            for c in range(4):
                bfl[0, 4 * nd + c] = bmin[nd, c]
                bfl[1, 4 * nd + c] = bmax[nd, c]
    n_chunks = 0
    for e in range(roots.shape[0]):
        if roots[e] >= 0:
            n_chunks += (ptr[e + 1] - ptr[e] + piece - 1) // piece
    chunks = np.empty((n_chunks, 4), np.int64)
    c = 0
    for e in range(roots.shape[0]):
        if roots[e] >= 0:
            for a in range(ptr[e], ptr[e + 1], piece):
                chunks[c, 0] = roots[e]
                chunks[c, 1] = ptr[e]
                chunks[c, 2] = a
                chunks[c, 3] = min(a + piece, ptr[e + 1])
                c += 1
    return pt, perm, lo_a, hi_a, left_a, right_a, bmin, bmax, bfl, leaves, chunks


@numba.njit(cache=True, nogil=True)
def _knn_serial(pts, ptr, k, leaf_size, window, spec, spec2, proto):  # pragma: no cover
    """The whole one-thread search in one compiled call (no per-call Python overhead); the
    distances are returned in the dtype of ``proto``."""
    n = pts.shape[0]
    out = np.empty((n, k), np.int64)  # every row is written by _query
    outd = np.empty((n, k), proto.dtype)
    pt, perm, lo_a, hi_a, left_a, right_a, bmin, bmax, bfl, leaves, chunks = _prepare(
        pts, ptr, leaf_size, max(1, n)
    )
    _query(
        pt,
        perm,
        lo_a,
        hi_a,
        left_a,
        right_a,
        bmin,
        bmax,
        bfl,
        leaves,
        k,
        chunks,
        out,
        outd,
        window,
        spec,
        spec2,
    )
    return out, outd


def knn_kdtree(
    pts: np.ndarray,
    ptr: np.ndarray,
    k: int,
    leaf_size: int = 32,
    num_threads: int = 1,
    window: int = 8,
    min_points_per_thread: int = 2048,
    speculate: tuple[float, float] = (1.1, 1.4),
    dist_dtype: type = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``[N, k]`` (int64, ``-1`` where the event has fewer than ``k`` points) and their
    squared distances ``[N, k]`` (``dist_dtype``, ``inf`` for missing).

    Column 0 is the point itself; the others are ordered by (distance, index).

    Parameters
    ----------
    pts:
        ``[N, S]`` float32 or float64 coordinates, finite (other dtypes are converted to float64).
    ptr:
        ``[B + 1]`` event boundaries.
    k:
        Neighbours per point, the point itself included.
    leaf_size:
        Largest number of points in a leaf.
    num_threads:
        Threads of the query; each takes runs of at least ``min_points_per_thread`` points in
        tree order (one thread below ``2 * min_points_per_thread`` points).
    window:
        How many preceding queries (in tree order) bound the search radius of the next one.
    min_points_per_thread:
        Smallest run of queries given to a thread.
    speculate:
        Factors ``(a, b)``: the search first tries the radius ``a * r_k(p)`` and then
        ``b * r_k(p)``, ``p`` the preceding query with the best bound, before the guaranteed
        bound (the result is exact whatever they are; they only change the time).
    dist_dtype:
        dtype of the returned distances (float64 or float32): they are computed in float64 and
        rounded once when stored.

    Examples
    --------
    >>> x = np.array([[0.0], [1.0], [3.0]])
    >>> idx, d2 = knn_kdtree(x, np.array([0, 3]), 2)
    >>> idx.tolist(), d2.tolist()
    ([[0, 1], [1, 0], [2, 1]], [[0.0, 1.0], [0.0, 1.0], [0.0, 4.0]])
    """
    dtype = np.float32 if pts.dtype == np.float32 else np.float64
    pts = np.ascontiguousarray(pts, dtype=dtype)
    ptr = np.ascontiguousarray(ptr, dtype=np.int64)
    n = pts.shape[0]
    if n == 0:
        return np.full((0, k), -1, dtype=np.int64), np.full((0, k), np.inf, dtype=dist_dtype)
    # threads only pay off with enough work; the numba kernel releases the GIL
    workers = max(1, min(num_threads, n // max(1, min_points_per_thread)))
    if workers == 1:
        proto = np.empty(0, dtype=dist_dtype)
        return _knn_serial(pts, ptr, k, leaf_size, window, *speculate, proto)
    piece = max(min_points_per_thread, n // (4 * workers))
    *tree, chunks = _prepare(pts, ptr, leaf_size, piece)
    out = np.empty((n, k), dtype=np.int64)  # every row is written by _query
    outd = np.empty((n, k), dtype=dist_dtype)
    bounds = np.linspace(0, len(chunks), min(len(chunks), 4 * workers) + 1).astype(np.int64)
    with ThreadPoolExecutor(workers) as pool:
        jobs = [
            pool.submit(_query, *tree, k, chunks[lo:hi], out, outd, window, *speculate)
            for lo, hi in itertools.pairwise(bounds)
            if hi > lo
        ]
        for job in jobs:
            job.result()
    return out, outd
