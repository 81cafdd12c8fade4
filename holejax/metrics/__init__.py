"""Distance kernels: every metric HOLE uses, jit-compiled and vmapped over clouds.

Public entry points:

- :func:`pairwise_distances` ``(sample, unit) -> (sample, sample)``
- :func:`batched_pairwise_distances` ``(batch, sample, unit) -> (batch, sample, sample)``
- :data:`METRICS`, the tuple of metric names
- :func:`knn_graph`, the euclidean kNN edge list behind the geodesic metric

Topic modules hold the single-cloud kernels (traceable, usable inside your own
``jit``/``vmap``): :mod:`~holejax.metrics.euclidean` (euclidean, sqeuclidean,
manhattan, chebyshev), :mod:`~holejax.metrics.cosine` (cosine, angular),
:mod:`~holejax.metrics.mahalanobis` (shrinkage covariances, whitening),
:mod:`~holejax.metrics.geodesic` (kNN graphs, shortest paths on the host),
:mod:`~holejax.metrics.density` (density normalisation), and
:mod:`~holejax.metrics.selection` (the ``k`` smallest entries of every row,
for nearest neighbours and local scales). The one ``vmap`` over clouds
lives in :mod:`~holejax.metrics.batch`; :mod:`~holejax.metrics.host` hands
host arrays to XLA without needless copies.

Example:
    >>> import numpy as np, holejax.metrics as hm
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> np.asarray(hm.pairwise_distances(X, "cosine")).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    >>> "geodesic" in hm.METRICS
    True
"""

from holejax.metrics.batch import batched_pairwise_distances
from holejax.metrics.cosine import angular_distances, cosine_distances
from holejax.metrics.density import density_distances, local_scales
from holejax.metrics.euclidean import (
    chebyshev_distances,
    euclidean_distances,
    manhattan_distances,
    sqeuclidean_distances,
)
from holejax.metrics.geodesic import KNNGraph, geodesic_distances, knn, knn_graph
from holejax.metrics.mahalanobis import (
    ShrunkCovariance,
    ledoit_wolf,
    mahalanobis_distances,
    oas,
    whiten,
)
from holejax.metrics.pairwise import pairwise_distances
from holejax.metrics.registry import METRICS

__all__ = [
    "METRICS",
    "pairwise_distances",
    "batched_pairwise_distances",
    "knn_graph",
    "KNNGraph",
    "knn",
    "euclidean_distances",
    "sqeuclidean_distances",
    "manhattan_distances",
    "chebyshev_distances",
    "cosine_distances",
    "angular_distances",
    "mahalanobis_distances",
    "ShrunkCovariance",
    "ledoit_wolf",
    "oas",
    "whiten",
    "geodesic_distances",
    "density_distances",
    "local_scales",
]
