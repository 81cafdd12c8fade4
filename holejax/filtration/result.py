"""The H0 result and what is read off it: merge tree, clusters, Betti-0 curve, diagram.

H0 of a Vietoris-Rips filtration is carried by the minimum spanning tree
(MST): every point is born at 0 and the ``n - 1`` MST edge weights are the
deaths. Kruskal's merge order over the MST edges is the single-linkage merge
tree, stored as a scipy-compatible linkage matrix.

Every engine hands its spanning-tree edges to one builder,
:func:`merge_tree`: the edges are sorted by ``(length, smaller index, larger
index)`` and merged in that order by a union-find (path halving, randomized
linking: expected ``O(n alpha(n))`` steps) in a ``lax.fori_loop`` that runs
under ``jax.jit`` and ``jax.vmap``; the cluster ids of each merge are then
read off the recorded roots by one sort. The key is a total order, so ties
are broken the same way by every engine and the same tree always gives
bit-identical output. Host engines, whose spanning forests may leave parts
unconnected, go through :func:`forest_merge_tree`: :func:`complete_forest`
joins the parts by ``+inf`` edges, and the builder runs compiled for edge
lists padded to a power of two (a few programs serve every ``n``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from holejax._checks import check_h0_result, check_threshold, check_thresholds
from holejax._executables import stored_jit

__all__ = [
    "H0Result",
    "betti0_curve",
    "clusters_at",
    "complete_forest",
    "dendrogram_linkage",
    "forest_merge_tree",
    "h0_diagram",
    "merge_tree",
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
            indices), in the same Kruskal merge order as ``deaths``: sorted
            by ``(length, i, j)``, the same order in every engine.
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


def _get(a: jax.Array, i: jax.Array) -> jax.Array:
    return lax.dynamic_index_in_dim(a, i, 0, keepdims=False)


def _put(a: jax.Array, i: jax.Array, value: jax.Array) -> jax.Array:
    return lax.dynamic_update_index_in_dim(a, value, i, 0)


def _find_roots(parent: jax.Array, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(parent, root of x, root of y)``, halving both paths to the roots on the way.

    One loop walks both paths (a halving step on a root changes nothing).
    Each next node is read back after the writes, so every read of the old
    array precedes its update and XLA updates it in place.
    """

    def halve(p, z):
        return _put(p, z, _get(p, _get(p, z)))

    def not_roots(state):
        p, a, b = state
        return (_get(p, a) != a) | (_get(p, b) != b)

    def step(state):
        p, a, b = state
        p = halve(halve(p, a), b)
        return p, _get(p, a), _get(p, b)

    return lax.while_loop(not_roots, step, (parent, x, y))


def _priority(x: jax.Array) -> jax.Array:
    """A fixed pseudo-random order of the nodes (a bijection of uint32) for linking roots."""
    return x.astype(jnp.uint32) * jnp.uint32(2654435761)


def _cluster_ids(ra: jax.Array, rb: jax.Array, top: jax.Array, n) -> tuple[jax.Array, jax.Array]:
    """Cluster ids of the roots merged at each step, from the roots alone.

    A root's cluster is ``n + j`` for the last step ``j`` before this one whose
    merge it rooted, or the sample itself when there is none: one sort of
    the ``(node, step)`` events and a running maximum, no sequential loop.
    """
    m = ra.shape[0]
    step = jnp.arange(m, dtype=jnp.int32)
    node = jnp.concatenate([top, ra, rb])
    time = jnp.tile(step, 3)
    made = jnp.concatenate([jnp.ones((m,), jnp.int32), jnp.zeros((2 * m,), jnp.int32)])
    # by node, then step; at one step the roots' queries come before the merge they make
    perm = jnp.lexsort((made, time, node))
    node, time, made = node[perm], time[perm], made[perm]
    last = lax.cummax(jnp.where(made == 1, jnp.arange(3 * m, dtype=jnp.int32), -1))
    safe = jnp.maximum(last, 0)
    found = (last >= 0) & (node[safe] == node)
    ids = jnp.zeros((3 * m,), jnp.int32).at[perm].set(jnp.where(found, n + time[safe], node))
    return ids[m : 2 * m], ids[2 * m :]


def _kruskal_rows(lo: jax.Array, hi: jax.Array, w: jax.Array, n) -> H0Result:
    """Kruskal merges of the first ``n - 1`` edges in ``(w, lo, hi)`` order.

    ``len(lo) + 1`` nodes; ``n`` (an int, or a traced scalar for padded
    edge lists) is the number of samples, so cluster ids start at ``n``.
    Padding edges must sort after every real one; the rows they would fill
    (from ``n - 1`` on) are meaningless.

    The loop runs the union-find alone: path halving, and roots linked by a
    fixed pseudo-random priority (randomized linking), so no array is read
    and written at different places in one step and XLA keeps every update
    in place. It records each step's two roots, the new root and the merged
    size; the cluster ids come afterwards from :func:`_cluster_ids`.
    """
    m = lo.shape[0]
    dt = w.dtype
    if m == 0:  # one sample: no merges
        return H0Result(w, jnp.zeros((0, 2), jnp.int32), jnp.zeros((0, 4), dt))
    order = jnp.lexsort((hi, lo, w))
    lo, hi, w = lo[order], hi[order], w[order]

    def merge(i, state):
        parent, size, steps = state
        parent, ra, rb = _find_roots(parent, _get(lo, i), _get(hi, i))
        a_on_top = _priority(ra) > _priority(rb)
        top, below = jnp.where(a_on_top, ra, rb), jnp.where(a_on_top, rb, ra)
        parent = _put(parent, below, top)
        size = _put(size, top, _get(size, ra) + _get(size, rb))
        return parent, size, _put(steps, i, jnp.stack([ra, rb, top, _get(size, top)]))

    iota = jnp.arange(m + 1, dtype=jnp.int32)
    state = (iota, jnp.ones((m + 1,), jnp.int32), jnp.zeros((m, 4), jnp.int32))
    _, _, steps = lax.fori_loop(0, n - 1, merge, state)
    ca, cb = _cluster_ids(steps[:, 0], steps[:, 1], steps[:, 2], n)
    linkage = jnp.stack(
        [jnp.minimum(ca, cb).astype(dt), jnp.maximum(ca, cb).astype(dt), w, steps[:, 3].astype(dt)], axis=1
    )
    return H0Result(w, jnp.stack([lo, hi], axis=1), linkage)


def merge_tree(lo: ArrayLike, hi: ArrayLike, w: ArrayLike, n: int) -> H0Result:
    """Single-linkage merge tree of a spanning tree: Kruskal's merges of its edges (jit / vmap safe).

    Args:
        lo, hi: ``(edge,)`` int endpoints of the ``n - 1`` tree edges, in
            either order.
        w: ``(edge,)`` float lengths; ``+inf`` for edges joining parts that
            never connect.
        n: number of samples (a Python int).

    Returns:
        :class:`H0Result` of jax arrays: edges ``[lo, hi]`` with ``lo < hi``
        sorted by ``(w, lo, hi)``, ``deaths`` their lengths and ``linkage``
        the scipy-compatible merges, in the dtype of ``w``.

    Example:
        >>> r = merge_tree(jnp.array([2, 0]), jnp.array([1, 1]), jnp.array([1.0, 2.0]), 3)
        >>> r.edges.tolist(), r.linkage.tolist()
        ([[1, 2], [0, 1]], [[1.0, 2.0, 1.0, 2.0], [0.0, 3.0, 2.0, 3.0]])
    """
    lo, hi = jnp.asarray(lo, jnp.int32), jnp.asarray(hi, jnp.int32)
    w = jnp.asarray(w)
    if not jnp.issubdtype(w.dtype, jnp.floating):
        w = w.astype(jnp.result_type(float))
    if lo.shape != (n - 1,) or hi.shape != (n - 1,) or w.shape != (n - 1,):
        raise ValueError(
            f"lo, hi and w must each have shape (n - 1,) = ({n - 1},) for n={n} samples; "
            f"got {lo.shape}, {hi.shape} and {w.shape}. Pass the n - 1 edges of one spanning tree "
            "(jax.vmap over a batch)."
        )
    return _kruskal_rows(jnp.minimum(lo, hi), jnp.maximum(lo, hi), w, n)


def complete_forest(
    lo: ArrayLike, hi: ArrayLike, w: ArrayLike, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A spanning forest's edges plus ``+inf`` edges joining its parts into one tree (host).

    Each part but the first (ordered by smallest sample) is joined to the
    first through its smallest sample, so the result has ``n - 1`` edges.

    Args:
        lo, hi: ``(edge,)`` int endpoints, in either order.
        w: ``(edge,)`` lengths.
        n: number of samples.

    Returns:
        ``(lo, hi, w)``: int64 endpoints with ``lo < hi`` and float lengths,
        each ``(n - 1,)``.

    Raises:
        ValueError: the edges hold a cycle (more than a forest's edges).

    Example:
        >>> [a.tolist() for a in complete_forest([1], [0], [2.0], 4)]
        [[0, 0, 0], [1, 2, 3], [2.0, inf, inf]]
    """
    u = np.asarray(lo, np.int64).ravel()
    v = np.asarray(hi, np.int64).ravel()
    w = np.asarray(w).ravel()
    dtype = w.dtype if np.issubdtype(w.dtype, np.floating) else np.float64
    lo, hi, w = np.minimum(u, v), np.maximum(u, v), w.astype(dtype)
    graph = coo_matrix((np.ones(len(lo), np.int8), (lo, hi)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    if len(lo) != n - count:
        raise ValueError(
            f"expected the edges of a spanning forest of {n} samples; got {len(lo)} edges "
            f"in {count} parts, so they hold a cycle. Pass tree or forest edges."
        )
    if count > 1:
        _, first = np.unique(labels, return_index=True)
        roots = np.sort(first)
        lo = np.concatenate([lo, np.full(count - 1, roots[0], np.int64)])
        hi = np.concatenate([hi, roots[1:].astype(np.int64)])
        w = np.concatenate([w, np.full(count - 1, np.inf, dtype)])
    return lo, hi, w


_kruskal_padded = stored_jit(_kruskal_rows)

# edge lists are padded to a power of two at least this long: one program per size class
_MIN_PADDED_EDGES = 63


def forest_merge_tree(lo: ArrayLike, hi: ArrayLike, w: ArrayLike, n: int) -> H0Result:
    """:func:`merge_tree` of a spanning forest given on the host, as numpy arrays.

    The forest is completed by :func:`complete_forest` (parts that never
    connect merge at ``+inf``), and the edges are padded to ``2**k - 1``
    with edges that sort after every real one and are never merged, so one
    compiled program serves every ``n`` of a size class.

    Args:
        lo, hi: ``(edge,)`` int endpoints of a spanning forest, in either order.
        w: ``(edge,)`` lengths.
        n: number of samples.

    Returns:
        :class:`H0Result` of numpy arrays: ``deaths`` in the dtype jax gives
        ``w``, ``edges`` int64, ``linkage`` float64.

    Example:
        >>> forest_merge_tree([0], [1], [2.0], 3).linkage.tolist()
        [[0.0, 1.0, 2.0, 2.0], [2.0, 3.0, inf, 3.0]]
    """
    lo, hi, w = complete_forest(lo, hi, w, n)
    w = w.astype(jax.dtypes.canonicalize_dtype(w.dtype))
    padded = max(_MIN_PADDED_EDGES, (1 << max(n - 1, 1).bit_length()) - 1)
    last = padded  # the padding edges [last, last] sort after every real edge, lo <= n - 2
    pad = padded - (n - 1)
    lo = np.concatenate([lo, np.full(pad, last)]).astype(np.int32)
    hi = np.concatenate([hi, np.full(pad, last)]).astype(np.int32)
    w = np.concatenate([w, np.full(pad, np.inf, w.dtype)])
    deaths, edges, linkage = jax.device_get(tuple(_kruskal_padded(lo, hi, w, np.int32(n))))
    m = n - 1
    return H0Result(np.asarray(deaths[:m]), np.asarray(edges[:m], np.int64),
                    np.asarray(linkage[:m], np.float64))

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
