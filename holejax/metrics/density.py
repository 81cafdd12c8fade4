"""Density-normalised distances ``d_ij / sqrt(mu_i mu_j)``.

``mu_i`` is the local scale of sample ``i``, chosen by ``scale``:

- ``"mean"`` (default): the mean distance to its ``k`` nearest neighbours
  under the base metric, the definition of the HOLE paper (section 3.3);
- ``"kth"``: the distance to the ``k``-th nearest neighbour;
- ``"kth_floored"``: the ``k``-th neighbour distance raised to at least
  ``max(0.01, 0.1 * median_j r_j)`` (``r_j`` the ``k``-th neighbour distances
  of the cloud): the rule of the HOLE reference code
  (:func:`holejax.metrics.presets.hole_metric_params`).

Dividing by the geometric mean of the two scales makes dense and sparse
regions comparable, so a tight cluster far away from the others is not
merged late just because it is small.

Bases: euclidean, cosine and mahalanobis (named ``"density_euclidean"``,
``"density_cosine"``, ``"density_mahalanobis"`` in :data:`holejax.METRICS`).
Kernels are jit-able and vmap-able.

A sample with ``mu_i = 0`` (at least ``k`` exact duplicates, or ``k``
parallel rows under cosine) has no local scale; it gets the smallest positive
scale of the cloud instead (1 if every scale is 0), and
:func:`holejax.pairwise_distances` warns.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from holejax.metrics.cosine import cosine_distances
from holejax.metrics.euclidean import euclidean_distances, zero_diagonal
from holejax.metrics.mahalanobis import mahalanobis_distances
from holejax.metrics.selection import row_smallest

__all__ = ["SCALES", "BASE_DISTANCES", "local_scales", "density_normalise", "density_distances"]

SCALES = ("mean", "kth", "kth_floored")

# the floor of scale="kth_floored": max(FLOOR_ABSOLUTE, FLOOR_MEDIAN_FRACTION * median)
FLOOR_ABSOLUTE = 0.01
FLOOR_MEDIAN_FRACTION = 0.1


def local_scales(D: ArrayLike, k: int = 5, scale: str = "mean") -> jax.Array:
    """Local scale of every sample from its distance row (self excluded).

    Args:
        D: ``(sample, sample)`` distances with a zero diagonal.
        k: neighbours, ``1 <= k <= n - 1`` (static).
        scale: ``"mean"`` (mean of the ``k`` nearest distances), ``"kth"``
            (the ``k``-th nearest distance) or ``"kth_floored"`` (that,
            at least ``max(0.01, 0.1 * median)`` of the ``k``-th distances).

    Returns:
        ``(sample,)`` scales, >= 0.

    Example:
        >>> D = jnp.array([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]])
        >>> local_scales(D, k=2).tolist(), local_scales(D, k=2, scale="kth").tolist()
        ([2.0, 1.5, 2.5], [3.0, 2.0, 3.0])
        >>> [round(v, 6) for v in local_scales(D / 1000, k=1, scale="kth_floored").tolist()]  # 0.01 > 0.1 * 0.001
        [0.01, 0.01, 0.01]
    """
    D = jnp.asarray(D)
    n = D.shape[0]
    eye = lax.broadcasted_iota(jnp.int32, (n, n), 0) == lax.broadcasted_iota(jnp.int32, (n, n), 1)
    nearest, _ = row_smallest(jnp.where(eye, jnp.inf, D), k)
    if scale == "kth":
        return nearest[:, -1]
    if scale == "kth_floored":
        kth = nearest[:, -1]
        floor = jnp.maximum(FLOOR_ABSOLUTE, FLOOR_MEDIAN_FRACTION * jnp.median(kth))
        return jnp.maximum(kth, floor.astype(kth.dtype))
    return jnp.mean(nearest, axis=1)


def density_normalise(D: ArrayLike, mu: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """``D_ij / sqrt(mu_i mu_j)``, with zero scales replaced (see module docstring).

    Args:
        D: ``(sample, sample)`` base distances.
        mu: ``(sample,)`` local scales.

    Returns:
        ``(normalised (sample, sample), zero_scale (sample,) bool)``.

    Example:
        >>> Dn, zero = density_normalise(jnp.array([[0.0, 2.0], [2.0, 0.0]]), jnp.array([1.0, 4.0]))
        >>> Dn.tolist(), zero.tolist()
        ([[0.0, 1.0], [1.0, 0.0]], [False, False])
    """
    D = jnp.asarray(D)
    mu = jnp.asarray(mu, D.dtype)
    zero = ~(mu > 0)
    smallest = jnp.min(jnp.where(zero, jnp.inf, mu))
    fallback = jnp.where(jnp.isfinite(smallest), smallest, jnp.ones((), D.dtype))
    mu = jnp.where(zero, fallback, mu)
    inv = 1 / jnp.sqrt(mu)
    return zero_diagonal(D * (inv[:, None] * inv[None, :])), zero


BASE_DISTANCES = {  # base metric name -> (X, **mahalanobis options) -> (sample, sample) distances
    "euclidean": lambda X, **_: euclidean_distances(X),
    "cosine": lambda X, **_: cosine_distances(X),
    "mahalanobis": lambda X, covariance="ledoit_wolf", VI=None: mahalanobis_distances(X, covariance, VI),
}


def density_distances(
    X: ArrayLike,
    base: str = "euclidean",
    k: int = 5,
    scale: str = "mean",
    covariance: str = "ledoit_wolf",
    VI: ArrayLike | None = None,
) -> jax.Array:
    """Density-normalised distances of one cloud.

    Args:
        X: ``(sample, unit)`` points.
        base: ``"euclidean"``, ``"cosine"`` or ``"mahalanobis"`` (static).
        k: neighbours for the local scale (default 5; static).
        scale: ``"mean"`` (default, the paper), ``"kth"`` or ``"kth_floored"``
            (the HOLE reference code).
        covariance, VI: mahalanobis options (ignored by other bases).

    Returns:
        ``(sample, sample)`` distances, zero diagonal, symmetric.

    Example:
        >>> X = jnp.array([[0.0], [1.0], [10.0], [12.0]])
        >>> D = density_distances(X, k=1)
        >>> round(float(D[0, 1]), 3), round(float(D[2, 3]), 3)
        (1.0, 1.0)
    """
    D = BASE_DISTANCES[base](X, covariance=covariance, VI=VI)
    return density_normalise(D, local_scales(D, k, scale))[0]
