"""Distance kernels: every metric HOLE uses, jit-compiled and vmapped over clouds.

Public entry points:

- :func:`pairwise_distances` ``(sample, unit) -> (sample, sample)``
- :func:`batched_pairwise_distances` ``(batch, sample, unit) -> (batch, sample, sample)``
- :data:`METRICS`, the tuple of metric names

Topic modules hold the single-cloud kernels (traceable, usable inside your own
``jit``/``vmap``): :mod:`~holejax.metrics.euclidean` (euclidean, sqeuclidean,
manhattan, chebyshev), :mod:`~holejax.metrics.cosine` (cosine, angular).

Example:
    >>> import numpy as np, holejax.metrics as hm
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> np.asarray(hm.pairwise_distances(X, "cosine")).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
"""

from holejax.metrics.batch import batched_pairwise_distances
from holejax.metrics.cosine import angular_distances, cosine_distances
from holejax.metrics.euclidean import (
    chebyshev_distances,
    euclidean_distances,
    manhattan_distances,
    sqeuclidean_distances,
)
from holejax.metrics.pairwise import pairwise_distances
from holejax.metrics.registry import METRICS

__all__ = [
    "METRICS",
    "pairwise_distances",
    "batched_pairwise_distances",
    "euclidean_distances",
    "sqeuclidean_distances",
    "manhattan_distances",
    "chebyshev_distances",
    "cosine_distances",
    "angular_distances",
]
