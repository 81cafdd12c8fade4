"""The H0 result and what is read off it: merge tree, clusters, Betti-0 curve, diagram.

H0 of a Vietoris-Rips filtration is carried by the minimum spanning tree
(MST): every point is born at 0 and the ``n - 1`` MST edge weights are the
deaths. Kruskal's merge order over the MST edges is the single-linkage merge
tree, stored as a scipy-compatible linkage matrix.

The merge tree is built without a union-find loop. Prim's algorithm visits
every single-linkage cluster (at any threshold ``t``) as one contiguous run of
its visiting order, because it never leaves a cluster through an edge longer
than ``t`` while an edge of length ``<= t`` is still available inside it. So
the cophenetic (minimax) distance between the ``a``-th and ``b``-th visited
points is the largest Prim weight between positions ``a`` and ``b``, and the
merge tree is the Cartesian tree of the Prim weights. That tree is found with
vectorised "nearest larger element" searches over a sparse table
(``O(n log n)`` work, no data-dependent loop), so it runs under ``jax.jit``
and ``jax.vmap``.

Ties are broken by the position in the Prim order, which is itself
deterministic (first index among equal keys), so the same input always gives
bit-identical output.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from holejax._checks import check_h0_result, check_threshold, check_thresholds

__all__ = [
    "H0Result",
    "betti0_curve",
    "clusters_at",
    "dendrogram_linkage",
    "h0_diagram",
    "kruskal_host",
    "linkage_from_prim",
    "with_engine",
]


class _H0Fields(NamedTuple):
    deaths: ArrayLike
    edges: ArrayLike
    linkage: ArrayLike


class H0Result(_H0Fields):
    """H0 of one cloud (or a batch of clouds, with leading batch axes).

    Attributes:
        deaths: ``(edge,)`` = ``(n - 1,)`` death scales of the finite and
            disconnection bars in ascending order; ``+inf`` for parts of the
            cloud that never connect (infinite distances). Births are all 0.
        edges: ``(edge, 2)`` int MST edges ``[i, j]`` with ``i < j`` (sample
            indices), in the same Kruskal merge order as ``deaths``.
        linkage: ``(edge, 4)`` scipy-compatible single-linkage matrix: row
            ``k`` merges clusters ``linkage[k, 0] < linkage[k, 1]`` (ids below
            ``n`` are samples, id ``n + k`` is the cluster formed in row
            ``k``) at height ``linkage[k, 2] == deaths[k]`` into a cluster of
            ``linkage[k, 3]`` samples. Heights may be ``+inf`` when the cloud
            is disconnected; :func:`dendrogram_linkage` caps them for drawing.
        engine: which engine computed the tree (``"dense-prim"``,
            ``"dense-boruvka"``, ``"rows-prim"``, ``"tiled-boruvka"``,
            ``"knn-graph"``, ``"none"`` for one sample); ``None`` inside
            ``jax.jit`` / ``jax.vmap``. Not a tuple field: the result unpacks
            as ``deaths, edges, linkage``.

    :func:`holejax.h0` returns numpy arrays (``linkage`` in float64, as scipy
    requires); inside ``jax.jit`` / ``jax.vmap`` the fields are jax arrays and
    ``linkage`` has the dtype of the distances.
    """

    engine: str | None = None


def with_engine(r: tuple, engine: str | None) -> H0Result:
    """``H0Result(*r)`` naming the engine that computed it.

    Example:
        >>> with_engine((np.zeros(0), np.zeros((0, 2)), np.zeros((0, 4))), "none").engine
        'none'
    """
    out = H0Result(*r[:3])
    out.engine = engine
    return out


def _sparse_max_table(rank: jax.Array) -> jax.Array:
    """``(level, m)`` table with ``table[l, s] = max(rank[s : s + 2**l])`` (clipped at the end)."""
    m = rank.shape[0]
    levels = max(1, m.bit_length())  # 2**(levels - 1) <= m
    padded_width = 2 * m

    def level(prev, l):
        span = jnp.left_shift(1, l - 1)
        padded = jnp.concatenate([prev, jnp.full((padded_width - m,), -1, prev.dtype)])
        shifted = lax.dynamic_slice_in_dim(padded, jnp.minimum(span, m), m)
        nxt = jnp.maximum(prev, shifted)
        return nxt, nxt

    _, rest = lax.scan(level, rank, jnp.arange(1, levels))
    return jnp.concatenate([rank[None], rest], axis=0)


def _nearest_larger(rank: jax.Array, table: jax.Array) -> tuple[jax.Array, jax.Array]:
    """For each position, the nearest position to the left and right of larger rank.

    Returns ``(left, right)``: ``left[i]`` is the largest ``j < i`` with
    ``rank[j] > rank[i]`` or ``-1``; ``right[i]`` the smallest ``j > i`` with
    ``rank[j] > rank[i]`` or ``m``. Binary lifting over the sparse table:
    the windows ``[p, i)`` and ``(i, q]`` grow by halving spans while all of
    them stays smaller than ``rank[i]``.
    """
    m = rank.shape[0]
    levels = table.shape[0]
    idx = jnp.arange(m, dtype=rank.dtype)

    def grow(l, pq):
        p, q = pq
        level = levels - 1 - l
        row = table[level]
        span = jnp.left_shift(1, level)
        start = p - span
        ok = start >= 0
        p = jnp.where(ok & (row[jnp.where(ok, start, 0)] < rank), start, p)
        ok = q + span <= m - 1
        q = jnp.where(ok & (row[jnp.where(ok, q + 1, 0)] < rank), q + span, q)
        return p, q

    p, q = lax.fori_loop(0, levels, grow, (idx, idx))
    return p - 1, q + 1


def linkage_from_prim(order: ArrayLike, pred: ArrayLike, weights: ArrayLike) -> H0Result:
    """Kruskal merge order and linkage from a Prim visiting order (jit / vmap safe).

    Args:
        order: ``(sample,)`` int, the samples in the order Prim visited them.
        pred: ``(sample,)`` int, ``pred[k]`` is the tree neighbour through
            which ``order[k]`` was reached (``pred[0]`` is ignored).
        weights: ``(sample,)`` float, ``weights[k]`` is the length of that
            edge (``weights[0]`` is ignored); ``+inf`` where no edge exists.

    Returns:
        :class:`H0Result` of jax arrays; ``linkage`` has the dtype of ``weights``.

    Example:
        >>> r = linkage_from_prim(jnp.array([0, 1, 2]), jnp.array([0, 0, 1]),
        ...                       jnp.array([0.0, 2.0, 1.0]))
        >>> r.linkage.tolist()
        [[1.0, 2.0, 1.0, 2.0], [0.0, 3.0, 2.0, 3.0]]
    """
    order = jnp.asarray(order, jnp.int32)
    pred = jnp.asarray(pred, jnp.int32)
    weights = jnp.asarray(weights)
    n = order.shape[0]
    m = n - 1
    w = weights[1:]
    if m == 0:
        return H0Result(
            jnp.zeros((0,), w.dtype), jnp.zeros((0, 2), jnp.int32), jnp.zeros((0, 4), w.dtype)
        )
    perm = jnp.argsort(w, stable=True).astype(jnp.int32)  # Kruskal order of positions
    rank = jnp.zeros((m,), jnp.int32).at[perm].set(jnp.arange(m, dtype=jnp.int32))
    left, right = _nearest_larger(rank, _sparse_max_table(rank))
    # Cartesian-tree parent: the smaller-ranked of the two nearest larger elements
    rank_left = jnp.where(left >= 0, rank[jnp.maximum(left, 0)], m)
    rank_right = jnp.where(right < m, rank[jnp.minimum(right, m - 1)], m)
    parent = jnp.where(rank_left < rank_right, left, right)
    pos = jnp.arange(m, dtype=jnp.int32)
    # each node has at most one left and one right child: plain scatters
    left_child = jnp.full((m,), -1, jnp.int32).at[jnp.where(parent > pos, parent, m)].set(
        pos, mode="drop"
    )
    right_child = jnp.full((m,), -1, jnp.int32).at[
        jnp.where((parent < pos) & (parent >= 0), parent, m)
    ].set(pos, mode="drop")
    a = jnp.where(left_child >= 0, n + rank[jnp.maximum(left_child, 0)], order[:-1])
    b = jnp.where(right_child >= 0, n + rank[jnp.maximum(right_child, 0)], order[1:])
    size = right - left
    lo, hi = jnp.minimum(a, b)[perm], jnp.maximum(a, b)[perm]
    deaths = w[perm]
    dt = w.dtype
    linkage = jnp.stack([lo.astype(dt), hi.astype(dt), deaths, size[perm].astype(dt)], axis=1)
    u, v = pred[1:][perm], order[1:][perm]
    edges = jnp.stack([jnp.minimum(u, v), jnp.maximum(u, v)], axis=1)
    return H0Result(deaths, edges, linkage)


def _n_samples(h: H0Result) -> int:
    return int(np.shape(h.deaths)[-1]) + 1


def clusters_at(h: H0Result, threshold: float) -> np.ndarray:
    """Component ids of the samples when edges of length ``<= threshold`` are joined.

    Args:
        h: an :class:`H0Result` of one cloud (``(edge,)`` deaths) or a batch
            (``(..., edge)`` deaths).
        threshold: the scale ``t``; two samples share an id when the MST path
            between them has no edge longer than ``t``.

    Returns:
        ``(sample,)`` int64 ids ``0..k-1`` numbered in the order of each
        component's smallest sample index (``(..., sample)`` for a batch).
        Runs on the host (scipy connected components over the ``n - 1``
        tree edges); it is not traceable under ``jax.jit``.

    Example:
        >>> import holejax as hj
        >>> D = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0]], dtype=np.float32)
        >>> clusters_at(hj.h0(D), 2.0).tolist()
        [0, 0, 1]
    """
    check_h0_result(h)
    threshold = check_threshold(threshold)
    deaths = np.asarray(h.deaths)
    edges = np.asarray(h.edges)
    if deaths.ndim > 1:
        flat = zip(deaths.reshape(-1, deaths.shape[-1]), edges.reshape(-1, *edges.shape[-2:]))
        out = np.stack([clusters_at(H0Result(d, e, None), threshold) for d, e in flat])
        return out.reshape(deaths.shape[:-1] + out.shape[-1:])
    if deaths.ndim != 1:
        raise ValueError(f"h.deaths must have shape (..., edge); got shape {deaths.shape}.")
    n = deaths.shape[0] + 1
    if n == 1:
        return np.zeros(1, np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = deaths <= threshold
    e = edges[keep]
    graph = coo_matrix((np.ones(len(e), np.int8), (e[:, 0], e[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # renumber by each component's smallest sample index
    _, first = np.unique(labels, return_index=True)
    rename = np.empty(len(first), np.int64)
    rename[np.argsort(first, kind="stable")] = np.arange(len(first))
    # np.unique sorts label values, so rename is indexed by label value
    return rename[labels]


def betti0_curve(h: H0Result, thresholds: ArrayLike) -> np.ndarray | jax.Array:
    """Number of connected components at each threshold.

    Args:
        h: an :class:`H0Result` (one cloud, or a batch with a leading axis).
        thresholds: ``(threshold,)`` scales.

    Returns:
        ``(threshold,)`` int counts (``(batch, threshold)`` for a batch): ``n``
        minus the number of deaths ``<= t``. numpy for numpy results, jax
        inside ``jax.jit``.

    Example:
        >>> import holejax as hj
        >>> D = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0]], dtype=np.float32)
        >>> betti0_curve(hj.h0(D), [0.0, 1.0, 4.0]).tolist()
        [3, 2, 1]
    """
    check_h0_result(h)
    check_thresholds(thresholds)
    xp = jnp if isinstance(h.deaths, jax.Array) else np
    deaths = xp.asarray(h.deaths)
    t = xp.asarray(thresholds)
    n = deaths.shape[-1] + 1
    below = (deaths[..., None, :] <= t[..., :, None]).sum(axis=-1)
    return n - below


def h0_diagram(h: H0Result) -> np.ndarray | jax.Array:
    """The H0 persistence diagram, ripser/gudhi style.

    Args:
        h: an :class:`H0Result` (one cloud, or a batch with a leading axis).

    Returns:
        ``(sample, 2)`` rows ``[birth, death]``: one ``[0, death]`` per MST edge
        in ascending order, then the essential bar ``[0, inf]``
        (``(batch, sample, 2)`` for a batch).

    Example:
        >>> import holejax as hj
        >>> D = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0]], dtype=np.float32)
        >>> h0_diagram(hj.h0(D)).tolist()
        [[0.0, 1.0], [0.0, 4.0], [0.0, inf]]
    """
    check_h0_result(h)
    xp = jnp if isinstance(h.deaths, jax.Array) else np
    deaths = xp.asarray(h.deaths)
    inf = xp.full(deaths.shape[:-1] + (1,), np.inf, deaths.dtype)
    death = xp.concatenate([deaths, inf], axis=-1)
    return xp.stack([xp.zeros_like(death), death], axis=-1)


def dendrogram_linkage(h: H0Result, cap: float | None = None) -> np.ndarray:
    """The linkage matrix with infinite heights replaced by a finite cap, for drawing.

    A disconnected cloud (infinite distances) merges its parts at height
    ``+inf``; scipy's ``dendrogram`` cannot place that. This returns a float64
    copy whose infinite heights are ``cap`` (default: 1.1 x the largest
    finite height, or 1 when there is none). The merge structure is unchanged.

    Args:
        h: an :class:`H0Result` of one cloud.
        cap: the height to draw infinite merges at; must be >= every finite height.

    Returns:
        ``(edge, 4)`` float64 linkage, accepted by ``scipy.cluster.hierarchy``.

    Example:
        >>> import holejax as hj
        >>> D = np.array([[0, 1, np.inf], [1, 0, np.inf], [np.inf, np.inf, 0]], np.float32)
        >>> dendrogram_linkage(hj.h0(D))[:, 2].tolist()
        [1.0, 1.1]
    """
    check_h0_result(h)
    Z = np.array(h.linkage, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[-1] != 4:
        raise ValueError(f"h.linkage must have shape (edge, 4); got {Z.shape}.")
    heights = Z[:, 2]
    finite = heights[np.isfinite(heights)]
    top = float(finite.max()) if finite.size else 0.0
    if cap is None:
        cap = 1.1 * top if top > 0 else 1.0
    elif not cap >= top:
        raise ValueError(
            f"cap={cap!r} is below the largest finite merge height {top}; "
            "pass cap >= that height (or None for 1.1 x it)."
        )
    Z[~np.isfinite(heights), 2] = cap
    return Z


def kruskal_host(u: ArrayLike, v: ArrayLike, w: ArrayLike, n: int) -> H0Result:
    """Kruskal merge tree of a spanning forest given as edge lists, on the host.

    Forests with fewer than ``n - 1`` edges (disconnected graphs) are completed
    with ``+inf`` edges joining the parts, each part through its smallest sample.

    Args:
        u, v: ``(edge,)`` int endpoints.
        w: ``(edge,)`` lengths.
        n: number of samples.

    Returns:
        :class:`H0Result` of numpy arrays (edges sorted by ``(w, lo, hi)``).

    Example:
        >>> kruskal_host([0], [1], [2.0], 3).linkage.tolist()
        [[0.0, 1.0, 2.0, 2.0], [2.0, 3.0, inf, 3.0]]
    """
    u = np.asarray(u, np.int64).ravel()
    v = np.asarray(v, np.int64).ravel()
    w = np.asarray(w).ravel()
    dtype = w.dtype if np.issubdtype(w.dtype, np.floating) else np.float64
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    # the parts of the forest, each joined to the first one through its smallest sample by an inf edge
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(lo), np.int8), (lo, hi)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    if count > 1:
        _, first = np.unique(labels, return_index=True)
        roots = np.sort(first)
        lo = np.concatenate([lo, np.full(len(roots) - 1, roots[0])])
        hi = np.concatenate([hi, roots[1:].astype(np.int64)])
        w = np.concatenate([w.astype(dtype), np.full(len(roots) - 1, np.inf, dtype)])
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    if len(lo) != n - 1:
        raise ValueError(f"expected a spanning forest of {n} samples; got {len(lo)} edges with cycles.")
    order = np.lexsort((hi, lo, w))
    lo, hi, w = lo[order], hi[order], w[order].astype(dtype)
    label = list(range(n))  # union-find over cluster ids: label[root] = current cluster id
    size = [1] * n + [0] * (n - 1)
    rows = []
    for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist()), start=n):
        ra, rb = find(a), find(b)
        ca, cb = label[ra], label[rb]
        size[i] = size[ca] + size[cb]
        rows.append((ca, cb) if ca < cb else (cb, ca))
        parent[rb] = ra
        label[ra] = i
    Z = np.empty((n - 1, 4), np.float64)
    Z[:, :2] = np.asarray(rows, np.float64).reshape(-1, 2)
    Z[:, 2] = w
    Z[:, 3] = size[n:]
    return H0Result(w, np.stack([lo, hi], axis=1), Z)
