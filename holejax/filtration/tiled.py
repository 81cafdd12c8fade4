"""H0 straight from points for large clouds: the ``n x n`` matrix is never built.

Two engines share this module:

- **Tiled Borůvka** (:func:`boruvka_from_points`, the large-n engine). Each
  round every component picks its shortest edge to another component; the
  picked edges join the tree and a union-find merges the components on the
  host, so there are at most ``log2 n`` rounds. A point's nearest neighbours
  in other components are found tile by tile: a ``(rows, cols)`` tile of
  squared distances comes from one matrix product,
  ``|x|^2 + |y|^2 - 2 x . y``, masked where both points share a component,
  and each row keeps its ``candidates`` smallest entries. The winners are then
  recomputed exactly from coordinate differences, so the selection runs at
  matrix-product speed and the reported lengths carry no cancellation error.

  Few rounds need a full pass. A point's candidate list stays true as
  components grow (points outside its component only become fewer): the
  first listed candidate outside its component is its nearest one, and when
  every listed candidate has been merged in, the last listed length is a lower
  bound on the unlisted ones. A point is rescanned only when that bound does
  not rule it out for its component's shortest edge. Candidates are kept in
  ``(length, index)`` order (the top-k selection is stable), so equal lengths
  resolve exactly as in :mod:`.boruvka` and the tree does not depend on the
  tile shape. The first pass scans all
  points; on clouds without cluster structure the later rounds rescan almost
  none, on well-separated clusters about one more pass per doubling of the
  clusters' sizes once the components are whole clusters.

  Edges are ordered by ``(length, smaller index, larger index)``, the order of
  :mod:`.boruvka`, so ties (duplicate points, lattices) resolve to one
  deterministic tree. Memory is ``O(n d)`` for the points plus one tile.
  Not traceable (the rounds are a host loop).

- **Row-streamed Prim** (:func:`h0_points_kernel`, jit / vmap safe): Prim's
  steps, each computing the new sample's ``(sample,)`` row from the points
  (``O(n d)`` per step, ``n`` sequential steps).

Euclidean distances are taken on mean-centred points; cosine as
``|u_i - u_j|^2 / 2 = 1 - cos`` on unit rows, with zero rows at distance 1
from everything (the convention of :mod:`holejax.metrics.cosine`).

For ``metric="geodesic"`` (shortest paths in the symmetric kNN graph) the H0
is the minimum spanning forest of the kNN graph itself (:func:`geodesic_h0`):
the largest edge on the minimax path between two samples is the same in a
graph and in its shortest-path closure, so no all-pairs shortest paths are
needed. Parts of the graph that are not connected die at ``+inf``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from holejax._executables import stored_jit
from holejax.filtration.dense import parallel_map
from holejax.filtration.prim import prim_edges, prim_order_from_rows
from holejax.filtration.result import H0Result, forest_merge_tree, merge_tree
from holejax.metrics import knn_graph
from holejax.metrics.euclidean import scale_exponent, times_power_of_two

__all__ = ["TILED_METRICS", "boruvka_from_points", "geodesic_h0", "h0_points_kernel"]

TILED_METRICS = ("euclidean", "sqeuclidean", "cosine")
"""Metrics the point engines compute from coordinates."""

# rows of one tile, columns of one tile, candidates kept per point
TILE_ROWS = 256
TILE_COLS = 2048
CANDIDATES = 4
# a tile's columns are read in groups of _GROUPS adjacent columns: a row's
# smallest `candidates` entries lie in the groups with the smallest minima
_GROUPS = 16


def _row_function(X: jax.Array, metric: str):
    if metric in ("euclidean", "sqeuclidean"):
        e = scale_exponent(X)  # exact scaling: the squares neither overflow nor underflow
        Xc = times_power_of_two(X, -e)
        Xc = Xc - jnp.mean(Xc, axis=0)

        def row(j):
            diff = Xc - Xc[j]
            d2 = jnp.sum(diff * diff, axis=1)
            if metric == "sqeuclidean":
                return times_power_of_two(times_power_of_two(d2, e), e)
            return times_power_of_two(jnp.sqrt(d2), e)

        return row
    X = times_power_of_two(X, -scale_exponent(X, axis=1))  # directions only: each row scaled exactly
    norms = jnp.sqrt(jnp.sum(X * X, axis=1))
    zero = norms == 0
    U = X / jnp.where(zero, 1, norms)[:, None]

    def row(j):
        diff = U - U[j]
        half = 0.5 * jnp.sum(diff * diff, axis=1)
        return jnp.where(zero | zero[j], jnp.ones((), X.dtype), jnp.minimum(half, 2))

    return row


def h0_points_kernel(X: jax.Array, metric: str = "euclidean") -> H0Result:
    """H0 of one cloud by Prim with distances computed row by row (jit / vmap safe).

    Args:
        X: ``(sample, unit)`` points.
        metric: ``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"``.

    Returns:
        :class:`H0Result` of jax arrays.

    Example:
        >>> X = jnp.array([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0]])
        >>> h0_points_kernel(X).deaths.tolist()
        [1.0, 5.0]
    """
    X = jnp.asarray(X)
    n = X.shape[0]
    return merge_tree(*prim_edges(*prim_order_from_rows(_row_function(X, metric), n, X.dtype)), n)


# ---- tiled Borůvka -------------------------------------------------------------------


def _embed(X: np.ndarray, metric: str, n_pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points the tiles multiply, the points lengths are measured on, the zero rows.

    Returns ``(Y, E, zero)``, padded to ``n_pad`` rows: ``Y`` centred points
    (euclidean family; centring keeps the matrix-product identity from
    cancelling) or unit rows (cosine); ``E`` the points whose differences give
    the exact lengths (the input itself, or the unit rows); ``zero`` the mask
    of zero rows (cosine only).
    """
    n, d = X.shape
    Y = np.zeros((n_pad, d), X.dtype)
    zero = np.zeros((n_pad,), bool)
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64)).astype(X.dtype)
        zero[:n] = norms == 0
        Y[:n] = X / np.where(zero[:n], 1, norms)[:, None]
        return Y, Y, zero
    shift = X.mean(axis=0, dtype=np.float64)
    if np.array_equal(X, np.rint(X)):  # integer points (lattices, counts) stay integer:
        shift = np.rint(shift)          # exact products, so equal distances compare equal
    Y[:n] = X - shift.astype(X.dtype)
    E = np.zeros((n_pad, d), X.dtype)
    E[:n] = X
    return Y, E, zero


def _exact(E: jax.Array, zero: jax.Array, rows: jax.Array, cols: jax.Array, metric: str) -> jax.Array:
    """Exact lengths of the edges ``rows[i] - cols[i, k]`` from coordinate differences."""
    diff = E[cols] - E[rows][:, None, :]
    d2 = jnp.sum(diff * diff, axis=-1)
    if metric == "euclidean":
        return jnp.sqrt(d2)
    if metric == "sqeuclidean":
        return d2
    against_zero = zero[cols] | zero[rows][:, None]
    return jnp.where(against_zero, jnp.ones((), E.dtype), jnp.minimum(0.5 * d2, 2))


@stored_jit(static_argnames=("n", "metric", "candidates", "tile_cols"))
def _nearest_outside(Y, sq, E, zero, comp, rows, n: int, metric: str, candidates: int, tile_cols: int):
    """For each of ``rows``, its ``candidates`` nearest points in other components.

    Args:
        Y: ``(n_pad, unit)`` points the tiles multiply; ``sq`` their squared norms.
        E: ``(n_pad, unit)`` points the exact lengths are measured on.
        zero: ``(n_pad,)`` zero-row mask (cosine).
        comp: ``(n_pad,)`` int32 component of every point.
        rows: ``(tile_rows,)`` int32 points to scan.

    Returns:
        ``(cols, lengths)``, each ``(tile_rows, candidates)``: the first
        neighbours in the order of (squared distance from the tile products,
        index) (``-1`` / ``+inf`` where fewer points lie outside) and their
        exact lengths.
    """
    n_pad, _ = Y.shape
    t = rows.shape[0]
    width = tile_cols // _GROUPS
    R, rsq, rzero, rcomp = Y[rows], sq[rows], zero[rows], comp[rows]
    big = jnp.asarray(jnp.inf, Y.dtype)

    def tile(j, state):
        best, best_cols = state
        start = j * tile_cols
        C = lax.dynamic_slice_in_dim(Y, start, tile_cols)
        # (cols, rows): the group minima below then reduce a middle axis, vectorised over rows
        g = lax.dot_general(C, R, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST)
        d2 = lax.dynamic_slice_in_dim(sq, start, tile_cols)[:, None] + rsq[None, :] - 2 * g
        if metric == "cosine":  # zero rows: cosine distance 1, chord^2 2
            d2 = jnp.where(lax.dynamic_slice_in_dim(zero, start, tile_cols)[:, None] | rzero[None, :],
                           jnp.asarray(2, Y.dtype), d2)
        col = start + lax.broadcasted_iota(jnp.int32, (tile_cols, 1), 0)
        same = lax.dynamic_slice_in_dim(comp, start, tile_cols)[:, None] == rcomp[None, :]
        d2 = jnp.where(same | (col >= n), big, d2).reshape(width, _GROUPS, t)
        # the row's smallest entries in (value, column) order lie in the `candidates`
        # groups of _GROUPS adjacent columns whose minima come first in that order
        _, groups = lax.top_k(-jnp.min(d2, axis=1).T, candidates)
        groups = jnp.sort(groups, axis=1)  # (rows, candidates): the gathered columns then ascend
        sub = jnp.take_along_axis(d2, groups.T[:, None, :], axis=0)  # (candidates, _GROUPS, rows)
        sub = jnp.transpose(sub, (2, 0, 1)).reshape(t, -1)
        sub_cols = (start + groups[:, :, None] * _GROUPS
                    + jnp.arange(_GROUPS, dtype=jnp.int32)[None, None, :]).reshape(t, -1)
        vals = jnp.concatenate([best, -sub], axis=1)
        idx = jnp.concatenate([best_cols, sub_cols], axis=1)
        top, pos = lax.top_k(vals, candidates)  # stable: equal values keep column order
        return top, jnp.take_along_axis(idx, pos, axis=1)

    init = (jnp.full((t, candidates), -big), jnp.full((t, candidates), -1, jnp.int32))
    top, cols = lax.fori_loop(0, n_pad // tile_cols, tile, init)
    found = jnp.isfinite(top)
    cols = jnp.where(found, cols, -1)
    lengths = jnp.where(found, _exact(E, zero, rows, jnp.maximum(cols, 0), metric), big)
    return cols, lengths


def _sorted_candidates(cols: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of each row sorted by ``(exact length, index)``; missing ones last."""
    key = np.where(cols < 0, np.iinfo(np.int64).max, cols.astype(np.int64))
    order = np.lexsort((key, lengths), axis=1)
    return np.take_along_axis(cols, order, 1), np.take_along_axis(lengths, order, 1)


def _scan(embedded, comp_dev, points: np.ndarray, n: int, metric: str, candidates: int,
          tile_rows: int, tile_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted candidates of ``points``, tile by tile, one row tile per host thread."""
    Y, sq, E, zero = embedded
    blocks = []
    for lo in range(0, len(points), tile_rows):
        block = points[lo : lo + tile_rows]
        blocks.append(np.pad(block, (0, tile_rows - len(block)), mode="edge").astype(np.int32))

    def one(rows):
        cols, lengths = _nearest_outside(Y, sq, E, zero, comp_dev, rows, n, metric, candidates, tile_cols)
        return np.asarray(cols), np.asarray(lengths)

    outs = parallel_map(one, blocks)
    cols = np.concatenate([c for c, _ in outs])[: len(points)]
    lengths = np.concatenate([w for _, w in outs])[: len(points)]
    return _sorted_candidates(cols, lengths)


def _first_outside(comp: np.ndarray, cols: np.ndarray, lengths: np.ndarray):
    """Each point's first listed candidate outside its component, and the bound on the rest.

    The list holds a point's nearest points in ``(length, index)`` order among
    those outside its component when it was scanned; components only grow, so
    the first listed one still outside is its nearest outside, ties going to
    the smallest index. Returns ``(neighbour, length, bound)``: ``neighbour``
    is ``-1`` where every listed candidate has joined the component; then
    ``bound`` (the last listed length, ``+inf`` for a list that is not full,
    i.e. held every point outside) is a lower bound on the unlisted ones.
    """
    listed = cols >= 0
    outside = listed & (comp[np.maximum(cols, 0)] != comp[:, None])
    has = outside.any(axis=1)
    pos = np.argmax(outside, axis=1)
    ar = np.arange(len(comp))
    neighbour = np.where(has, cols[ar, pos], -1)
    length = np.where(has, lengths[ar, pos], np.inf)
    bound = np.where(listed[:, -1], lengths[:, -1], np.inf)
    return neighbour, length, bound


def _shortest_per_component(comp, points, neighbour, length):
    """Per component, the ``(length, lo, hi)``-smallest of the given edges ``points - neighbour``."""
    lo, hi = np.minimum(points, neighbour), np.maximum(points, neighbour)
    order = np.lexsort((hi, lo, length))
    c = comp[points][order]
    _, first = np.unique(c, return_index=True)
    pick = order[first]
    return c[first], lo[pick], hi[pick], length[pick]


def _merge(comp_count: int, owner, lo, hi, length, comp):
    """Join the picked edges (owner component -> other); returns accepted edges and new labels.

    The picked edges form a forest over the components when the lengths are
    consistent; a union-find in ``(length, lo, hi)`` order drops any edge that
    would close a cycle, so rounding can never create one.
    """
    a, b = comp[lo], comp[hi]
    key = np.minimum(a, b).astype(np.int64) * comp_count + np.maximum(a, b)
    _, keep = np.unique(key, return_index=True)  # a mutual pair picked the same edge twice
    lo, hi, length, a, b = lo[keep], hi[keep], length[keep], a[keep], b[keep]
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(comp_count, comp_count))
    count, labels = connected_components(graph, directed=False)
    if len(a) == comp_count - count:  # a forest: every edge joins two parts
        return lo, hi, length, count, labels
    parent = np.arange(comp_count)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    accepted = []
    for i in np.lexsort((hi, lo, length)).tolist():
        ra, rb = find(a[i]), find(b[i])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            accepted.append(i)
    accepted = np.asarray(accepted, np.int64)
    return lo[accepted], hi[accepted], length[accepted], count, labels


def _in_square_range(X: np.ndarray, metric: str) -> tuple[np.ndarray, float]:
    """``(X / s, s)`` for a power of two ``s`` that keeps squared lengths in range, or ``(X, 1)``.

    Clouds whose largest ``|x|`` lies in ``[2^-30, 2^30]`` are left as they are
    (integer points stay integer); others are scaled exactly by a power of two
    into ``[0.5, 1)``. Cosine lengths do not depend on scale and are never scaled.
    """
    big = float(np.max(np.abs(X))) if X.size else 0.0
    if metric == "cosine" or big == 0 or 2.0**-30 <= big <= 2.0**30:
        return X, 1.0
    s = float(np.ldexp(1.0, np.frexp(big)[1]))
    return X * X.dtype.type(1 / s), s


def boruvka_from_points(
    X: np.ndarray,
    metric: str = "euclidean",
    *,
    candidates: int = CANDIDATES,
    tile_rows: int = TILE_ROWS,
    tile_cols: int = TILE_COLS,
) -> tuple[H0Result, dict]:
    """H0 of one cloud by tiled Borůvka rounds (the large-n engine; host loop).

    Args:
        X: ``(sample, unit)`` float32 / float64 points (already validated).
        metric: one of :data:`TILED_METRICS`.
        candidates: nearest points kept per point from each scan (>= 1).
        tile_rows, tile_cols: tile shape; ``tile_cols`` is rounded up to a
            multiple of ``16 * candidates``. Small tiles exercise the tiling on
            small clouds (tests); the defaults suit large ones.

    Returns:
        ``(H0Result of numpy arrays, stats)``; ``stats`` counts the rounds and
        the points scanned (``scanned / n`` is the number of full passes).

    Example:
        >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0]], np.float32)
        >>> h, stats = boruvka_from_points(X)
        >>> h.deaths.tolist(), stats["rounds"]
        ([1.0, 5.0], 1)
    """
    n = X.shape[0]
    if n == 1:
        return forest_merge_tree([], [], np.zeros(0, X.dtype), 1), {"rounds": 0, "scanned": 0}
    step = _GROUPS * candidates
    tile_cols = -(-min(tile_cols, n) // step) * step
    tile_rows = max(1, min(tile_rows, n))
    n_pad = -(-n // tile_cols) * tile_cols
    X, scale = _in_square_range(X, metric)
    Y, E, zero = _embed(X, metric, n_pad)
    sq = np.einsum("ij,ij->i", Y, Y)
    embedded = tuple(jax.device_put(a) for a in (Y, sq, E, zero))
    comp = np.arange(n, dtype=np.int64)
    ncomp = n

    def comp_on_device(comp):
        return jax.device_put(np.concatenate([comp, np.full(n_pad - n, -1)]).astype(np.int32))

    everyone = np.arange(n)
    cols, lengths = _scan(embedded, comp_on_device(comp), everyone, n, metric, candidates,
                          tile_rows, tile_cols)
    tree = ([], [], [])
    rounds, scanned = 0, n
    while ncomp > 1:
        rounds += 1
        neighbour, length, bound = _first_outside(comp, cols, lengths)
        proven = neighbour >= 0
        best = np.full(ncomp, np.inf)
        np.minimum.at(best, comp[proven], length[proven])
        # a point not proven is rescanned unless its bound rules it out for its component
        rescan = np.flatnonzero(~proven & (bound <= best[comp]))
        if len(rescan):
            scanned += len(rescan)
            c, w = _scan(embedded, comp_on_device(comp), rescan, n, metric, candidates,
                         tile_rows, tile_cols)
            cols[rescan], lengths[rescan] = c, w
            neighbour[rescan], length[rescan] = c[:, 0], w[:, 0]
            proven[rescan] = c[:, 0] >= 0
        points = np.flatnonzero(proven)
        owner, lo, hi, w = _shortest_per_component(comp, points, neighbour[points], length[points])
        lo, hi, w, ncomp, labels = _merge(ncomp, owner, lo, hi, w, comp)
        for part, values in zip(tree, (lo, hi, w)):
            part.append(values)
        comp = labels[comp]
    lo, hi, w = (np.concatenate(part) for part in tree)
    w = w.astype(np.float64) * (scale * scale if metric == "sqeuclidean" else scale)
    with np.errstate(over="ignore"):  # squares past the float range: the caller's range check reports them
        w = w.astype(X.dtype)
    return forest_merge_tree(lo, hi, w, n), {"rounds": rounds, "scanned": scanned}


# ---- geodesic: the kNN graph's own spanning forest ------------------------------------


def geodesic_h0(X: np.ndarray, k: int, mutual: bool, disconnected: str = "inf") -> H0Result:
    """H0 under the geodesic metric: the minimum spanning forest of the kNN graph.

    Example:
        >>> X = np.array([[0.0], [1.0], [3.0], [10.0]], np.float32)
        >>> geodesic_h0(X, 1, False).deaths.tolist()
        [1.0, 2.0, 7.0]
    """
    n = X.shape[0]
    if n == 1:
        return forest_merge_tree([], [], np.zeros(0, X.dtype), 1)
    if k > n - 1:
        raise ValueError(f"k={k} must be at most n - 1 = {n - 1} (samples in X); pass a smaller k.")
    g = knn_graph(X, k=k, mutual=mutual, disconnected=disconnected)  # "euclidean": with the cross-component edges
    # scipy's spanning tree drops stored zeros: lift zero lengths (duplicate points)
    # to the smallest float64, below every positive float32/float64 length.
    tiny = np.nextafter(0.0, 1.0)
    w = np.where(g.weights > 0, g.weights.astype(np.float64), tiny)
    T = minimum_spanning_tree(coo_matrix((w, (g.rows, g.cols)), shape=(n, n))).tocoo()
    lengths = np.where(T.data == tiny, 0.0, T.data).astype(g.weights.dtype)
    return forest_merge_tree(T.row, T.col, lengths, n)
