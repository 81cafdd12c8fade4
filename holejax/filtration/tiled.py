"""H0 straight from points for large clouds: the ``n x n`` matrix is never built.

Prim's algorithm only ever needs the distances from the sample it just added
to all others, so each step computes that one ``(sample,)`` row from the points
(``O(n d)`` work) and forgets it. Memory stays ``O(n d)``; the work is the same
``O(n^2 d)`` as building the matrix, but with no ``O(n^2)`` memory traffic.

Euclidean rows are taken as ``sqrt(sum((X - x_j)^2))`` on mean-centred points
(exact differences, no cancellation); cosine rows as
``|u_i - u_j|^2 / 2 = 1 - cos`` on unit rows, with zero rows at distance 1
from everything (the convention of :mod:`holejax.metrics.cosine`).

For ``metric="geodesic"`` (shortest paths in the symmetric kNN graph) the H0
is the minimum spanning forest of the kNN graph itself: the largest edge on
the minimax path between two samples is the same in a graph and in its
shortest-path closure, so no all-pairs shortest paths are needed. Parts of the
graph that are not connected die at ``+inf``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from holejax._checks import as_cloud, check_choice
from holejax.filtration.prim import prim_order_from_rows
from holejax.filtration.result import H0Result, kruskal_host, linkage_from_prim

__all__ = ["POINT_METRICS", "h0_from_points", "h0_points_kernel"]

POINT_METRICS = ("euclidean", "sqeuclidean", "cosine", "geodesic")


def _row_function(X: jax.Array, metric: str):
    if metric in ("euclidean", "sqeuclidean"):
        Xc = X - jnp.mean(X, axis=0)

        def row(j):
            diff = Xc - Xc[j]
            d2 = jnp.sum(diff * diff, axis=1)
            return d2 if metric == "sqeuclidean" else jnp.sqrt(d2)

        return row
    norms = jnp.sqrt(jnp.sum(X * X, axis=1))
    zero = norms == 0
    U = X / jnp.where(zero, 1, norms)[:, None]

    def row(j):
        diff = U - U[j]
        half = 0.5 * jnp.sum(diff * diff, axis=1)
        return jnp.where(zero | zero[j], jnp.ones((), X.dtype), jnp.minimum(half, 2))

    return row


def h0_points_kernel(X: jax.Array, metric: str = "euclidean") -> H0Result:
    """H0 of one cloud with distances computed row by row (jit / vmap safe).

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
    return linkage_from_prim(*prim_order_from_rows(_row_function(X, metric), X.shape[0], X.dtype))


@partial(jax.jit, static_argnames="metric")
def _points_jit(X: jax.Array, metric: str) -> H0Result:
    return h0_points_kernel(X, metric)


def _geodesic(X: np.ndarray, k: int, mutual: bool) -> H0Result:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    from holejax.metrics import knn_graph

    n = X.shape[0]
    if n == 1:
        return kruskal_host([], [], np.zeros(0, X.dtype), 1)
    if k > n - 1:
        raise ValueError(f"k={k} must be at most n - 1 = {n - 1} (samples in X); pass a smaller k.")
    g = knn_graph(X, k=k, mutual=mutual)
    # scipy's spanning tree drops stored zeros: lift zero lengths (duplicate points)
    # to the smallest float64, below every positive float32/float64 length.
    tiny = np.nextafter(0.0, 1.0)
    w = np.where(g.weights > 0, g.weights.astype(np.float64), tiny)
    T = minimum_spanning_tree(coo_matrix((w, (g.rows, g.cols)), shape=(n, n))).tocoo()
    lengths = np.where(T.data == tiny, 0.0, T.data).astype(g.weights.dtype)
    return kruskal_host(T.row, T.col, lengths, n)


def h0_from_points(
    X: Any, metric: str = "euclidean", *, k: int = 10, mutual: bool = False
) -> H0Result:
    """H0 of a point cloud without ever building the ``n x n`` distance matrix.

    Args:
        X: ``(sample, unit)`` points.
        metric: ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"`` (``1 - cos``)
            or ``"geodesic"`` (shortest paths in the symmetric kNN graph).
        k: neighbours per sample for ``"geodesic"``.
        mutual: for ``"geodesic"``, keep only mutual kNN edges.

    Returns:
        :class:`H0Result` of numpy arrays, as :func:`holejax.h0` would give on
        the full matrix of the same metric.

    Example:
        >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0]], dtype=np.float32)
        >>> h0_from_points(X).deaths.tolist()
        [1.0, 5.0]
    """
    check_choice(metric, "metric", POINT_METRICS)
    X = as_cloud(X, "X")
    if metric == "geodesic":
        if not (isinstance(k, (int, np.integer)) and k >= 1):
            raise ValueError(f"k must be a positive int (neighbours per sample); got {k!r}.")
        return _geodesic(X, int(k), bool(mutual))
    from holejax.filtration.dense import _to_host

    return _to_host(_points_jit(jnp.asarray(X), metric))
