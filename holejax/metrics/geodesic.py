"""k-nearest-neighbour graphs and geodesic (graph shortest-path) distances.

Geodesic distance approximates distance along the data manifold: connect
every sample to its ``k`` nearest neighbours (euclidean), weight each edge by
its euclidean length, and take shortest paths.

- :func:`knn` is a jit-able kernel: neighbour indices and exact edge lengths,
  computed over row blocks so memory stays ``O(block * n)``, never ``n x n``.
- :func:`knn_graph` turns it into an undirected edge list (:class:`KNNGraph`):
  the union of the directed kNN relations (default) or the mutual ones
  (``mutual=True``: an edge only where each end is among the other's ``k``
  nearest, the minimum of the two directed adjacencies).
  This is what the geodesic H0 needs: the minimum spanning tree of the kNN
  graph already gives the exact geodesic H0 deaths (single linkage only sees
  minimax path lengths), so all-pairs shortest paths are never needed there.
- :func:`geodesic_distances` runs all-pairs shortest paths with
  ``scipy.sparse.csgraph.shortest_path`` (Dijkstra) **on the host**: graph
  searches are not expressible as a jit-compiled XLA kernel of fixed cost, so
  this metric alone leaves the device.

Pairs in different graph components: ``disconnected="inf"`` (default) leaves
them ``inf`` and :func:`holejax.pairwise_distances` warns with the number of
components, suggesting a larger ``k``; ``disconnected="euclidean"`` fills them
with their euclidean distance (the rule of the HOLE reference code, see
:func:`holejax.metrics.presets.hole_metric_params`). With the fill, the graph
of :func:`knn_graph` also holds every pair in different components at its
euclidean length: its minimum spanning forest is then the H0 of the filled
matrix (a within-component pair never beats the kNN path it measures, a
cross-component pair is its own euclidean edge).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax import lax
from jax.typing import ArrayLike
from scipy.sparse.csgraph import connected_components, shortest_path

from holejax._executables import stored_jit
from holejax.metrics.euclidean import gram, scale_exponent, times_power_of_two
from holejax.metrics.host import aligned_empty
from holejax.metrics.padding import pad_to_bucket
from holejax.metrics.selection import row_smallest

__all__ = ["DISCONNECTED", "KNNGraph", "knn", "knn_graph", "geodesic_distances"]

DISCONNECTED = ("inf", "euclidean")
"""What geodesic distances between kNN-graph components are."""

# bytes of (block, n) squared distances one step of knn may hold
_KNN_BLOCK_BYTES = 1 << 25
# bytes of the float64 rows one shortest-path call returns: the sources go in blocks
# written straight into the output, so no n x n float64 matrix is ever held
_SOURCE_BLOCK_BYTES = 1 << 23


class KNNGraph(NamedTuple):
    """Undirected, euclidean-weighted kNN graph as an edge list (host numpy arrays).

    Attributes:
        rows: ``(edge,)`` int64, the smaller sample index of each edge.
        cols: ``(edge,)`` int64, the larger sample index (``rows < cols``).
        weights: ``(edge,)`` euclidean edge lengths, in the cloud's dtype;
            0 for duplicate points (kept as edges, not dropped).
        n_samples: number of vertices.

    Each undirected edge appears once; edges are sorted by ``(rows, cols)``.
    """

    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    n_samples: int

    def to_csr(self) -> sp.csr_matrix:
        """Symmetric ``(sample, sample)`` scipy CSR adjacency with both directions.

        Zero-length edges are stored as explicit zeros: ``scipy.sparse.csgraph``
        shortest paths and connected components treat them as edges, while
        ``minimum_spanning_tree`` ignores them; use the edge list for MSTs.
        """
        n = self.n_samples
        r = np.concatenate([self.rows, self.cols])
        c = np.concatenate([self.cols, self.rows])
        w = np.concatenate([self.weights, self.weights]).astype(np.float64)
        return sp.csr_matrix((w, (r, c)), shape=(n, n))

    def n_components(self) -> int:
        """Number of connected components of the graph."""
        return int(connected_components(self.to_csr(), directed=False)[0])


def knn(X: ArrayLike, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` nearest neighbours (euclidean, self excluded) of every sample.

    Candidates come from the matmul identity on centred points; the returned
    lengths are then recomputed exactly as ``|x_i - x_j|`` from differences,
    so they carry no cancellation error.

    Args:
        X: ``(sample, unit)`` points.
        k: neighbours per sample, ``1 <= k <= n - 1`` (static).

    Returns:
        ``indices`` ``(sample, k)`` int32 and ``distances`` ``(sample, k)``,
        each row ordered by increasing distance.

    Example:
        >>> idx, dist = knn(jnp.array([[0.0], [1.0], [3.0]]), 1)
        >>> idx[:, 0].tolist(), dist[:, 0].tolist()
        ([1, 0, 1], [1.0, 1.0, 2.0])
    """
    X = jnp.asarray(X)
    n, d = X.shape
    e = scale_exponent(X)  # exact scaling: the squares neither overflow nor underflow
    X = times_power_of_two(X, -e)
    X = X - jnp.mean(X, axis=0, keepdims=True)
    sq = jnp.sum(X * X, axis=1)
    block = int(max(1, min(n, _KNN_BLOCK_BYTES // max(1, 4 * n))))
    n_blocks = -(-n // block)
    starts = jnp.arange(n_blocks) * block
    Xp = jnp.pad(X, ((0, n_blocks * block - n), (0, 0)))

    def rows(start):
        R = lax.dynamic_slice_in_dim(Xp, start, block)
        r_idx = start + jnp.arange(block)
        D2 = (sq[None, :] + jnp.sum(R * R, axis=1)[:, None]) - 2 * gram(R, X)
        D2 = jnp.where(r_idx[:, None] == jnp.arange(n)[None, :], jnp.inf, D2)
        _, idx = row_smallest(D2, k)
        diff = R[:, None, :] - X[idx]
        dist = jnp.sqrt(jnp.sum(diff * diff, axis=-1))
        order = jnp.argsort(dist, axis=1, stable=True)
        return jnp.take_along_axis(idx, order, 1), jnp.take_along_axis(dist, order, 1)

    idx, dist = lax.map(rows, starts)
    return idx.reshape(-1, k)[:n].astype(jnp.int32), times_power_of_two(dist.reshape(-1, k)[:n], e)


_knn_jit = stored_jit(knn, static_argnames="k")


def knn_graph(X: ArrayLike, k: int = 10, mutual: bool = False, disconnected: str = "inf") -> KNNGraph:
    """Symmetric kNN graph of one cloud, weighted by euclidean edge length.

    Args:
        X: ``(sample, unit)`` points.
        k: neighbours per sample (default 10), ``1 <= k <= n - 1``.
        mutual: keep an edge only if each end is among the other's ``k``
            nearest (mutual kNN); default False keeps the union.
        disconnected: ``"inf"`` (default): the kNN edges only;
            ``"euclidean"``: also every pair in different components of that
            graph, at its euclidean length (see the module docstring).

    Returns:
        :class:`KNNGraph` edge list (host numpy arrays), each undirected edge
        once with ``rows < cols``. Use ``.to_csr()`` for a scipy adjacency.

    Raises:
        ValueError: bad ``X`` (see :func:`holejax.pairwise_distances`) or bad ``k``.

    Example:
        >>> import numpy as np
        >>> g = knn_graph(np.array([[0.0], [1.0], [3.0], [10.0]], dtype=np.float32), k=1)
        >>> g.rows.tolist(), g.cols.tolist(), g.weights.tolist()
        ([0, 1, 2], [1, 2, 3], [1.0, 2.0, 7.0])
    """
    from holejax.metrics.pairwise import prepare_cloud  # pairwise -> registry -> this module: a cycle at import

    arr, _, full = prepare_cloud(X, "geodesic", {"k": k, "mutual": mutual, "disconnected": disconnected})
    graph = _graph_from_cloud(arr, full["k"], full["mutual"])
    if full["disconnected"] == "euclidean":
        graph = _with_cross_component_edges(arr, graph)
    return graph


def _with_cross_component_edges(arr: np.ndarray, graph: KNNGraph) -> KNNGraph:
    """``graph`` plus every pair in different components at its euclidean length."""
    n = graph.n_samples
    _, comp = connected_components(graph.to_csr(), directed=False)
    lo, hi = np.triu_indices(n, 1)
    cross = comp[lo] != comp[hi]
    lo, hi = lo[cross], hi[cross]
    lengths = np.sqrt(np.sum((arr[lo].astype(np.float64) - arr[hi]) ** 2, axis=1)).astype(graph.weights.dtype)
    rows = np.concatenate([graph.rows, lo])
    cols = np.concatenate([graph.cols, hi])
    order = np.lexsort((cols, rows))
    return KNNGraph(rows[order], cols[order], np.concatenate([graph.weights, lengths])[order], n)


def _graph_from_cloud(arr: np.ndarray, k: int, mutual: bool) -> KNNGraph:
    n = arr.shape[0]
    # zero units change no euclidean distance: clouds of a few widths share one kNN program
    idx, dist = _knn_jit(pad_to_bucket(arr), k=k)  # the jit call transfers the host array
    idx = np.asarray(idx, dtype=np.int64)
    dist = np.asarray(dist)
    src = np.repeat(np.arange(n, dtype=np.int64), k)
    dst = idx.reshape(-1)
    w = dist.reshape(-1)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    key = lo * n + hi
    order = np.argsort(key, kind="stable")
    key, w = key[order], w[order]
    uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
    if mutual:
        keep = counts == 2
        uniq, first = uniq[keep], first[keep]
    return KNNGraph(uniq // n, uniq % n, w[first], n)


def geodesic_distances(
    X: ArrayLike, k: int = 10, mutual: bool = False, disconnected: str = "inf"
) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs shortest-path distances on the kNN graph (scipy Dijkstra, on the host).

    Dijkstra runs from blocks of ~8 MiB of sources at a time, each block's
    float64 rows written into the output in the cloud's dtype, so an ``n x n``
    float64 matrix is never held.

    Args:
        X: ``(sample, unit)`` points, already validated (``pairwise_distances``
            does this; call that for checked input).
        k: neighbours per sample.
        mutual: mutual kNN instead of the union.
        disconnected: ``"inf"`` or ``"euclidean"``: the distance of pairs in
            different components of the kNN graph.

    Returns:
        ``D`` ``(sample, sample)`` numpy array in the cloud's dtype (``inf``
        or the euclidean distance between components) and ``components``
        ``(sample,)`` int component ids.

    Example:
        >>> import numpy as np
        >>> D, comp = geodesic_distances(np.array([[0.0], [1.0], [3.0]], dtype=np.float32), k=1)
        >>> D[0].tolist(), comp.tolist()
        ([0.0, 1.0, 3.0], [0, 0, 0])
    """
    arr = np.asarray(X)
    n = arr.shape[0]
    graph = _graph_from_cloud(arr, k, mutual)
    adjacency = graph.to_csr()
    D = aligned_empty((n, n), arr.dtype)  # handed to XLA without a copy (holejax.metrics.host)
    D.fill(0)  # map every page in one sequential pass before Dijkstra's own allocations
    step = max(1, _SOURCE_BLOCK_BYTES // (8 * n))
    for lo in range(0, n, step):
        # the adjacency holds both directions of every edge, so a directed search sees the
        # undirected graph; directed=False would also scan scipy's transposed copy
        D[lo : lo + step] = shortest_path(
            adjacency, method="D", directed=True, indices=np.arange(lo, min(n, lo + step))
        )
    _, components = connected_components(adjacency, directed=False)
    if disconnected == "euclidean" and components.max() > 0:
        cross = components[:, None] != components[None, :]
        Xd = arr.astype(np.float64)
        Xd = Xd - Xd.mean(axis=0)  # centred: no cancellation in the matmul identity
        sq = np.sum(Xd * Xd, axis=1)
        E = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * Xd @ Xd.T, 0.0))
        D[cross] = E[cross]
    return D, components


def components_message(components: np.ndarray, where: str, params: dict) -> str | None:
    """Warning text when the kNN graph is disconnected and its components stay ``inf`` apart, else None."""
    n_comp = int(np.max(components)) + 1
    if n_comp == 1 or params.get("disconnected") == "euclidean":
        return None
    sizes = np.bincount(components)
    kind = "mutual kNN" if params.get("mutual") else "kNN"
    return (
        f"the {kind} graph (k={params['k']}) has {n_comp} connected components "
        f"(smallest: {int(sizes.min())} sample(s)){where}; geodesic distances between "
        f"components are inf. Pass a larger k"
        + (" or mutual=False" if params.get("mutual") else "")
        + " to connect them, or disconnected='euclidean' to fill them with euclidean distances."
    )
