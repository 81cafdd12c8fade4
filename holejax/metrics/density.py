"""Density-normalised distances ``d_ij / sqrt(mu_i mu_j)``.

``mu_i`` is the local scale of sample ``i``: by default the mean distance to
its ``k`` nearest neighbours under the base metric (the definition of the
HOLE paper, section 3.3), or, with ``scale="kth"``, the distance to the
``k``-th nearest neighbour (what the HOLE reference code does). Dividing by
the geometric mean of the two scales makes dense and sparse regions
comparable, so a tight cluster far away from the others is not merged late
just because it is small.

Bases: euclidean, cosine and mahalanobis (named ``"density_euclidean"``,
``"density_cosine"``, ``"density_mahalanobis"`` in :data:`holejax.METRICS`).
Kernels are jit-able and vmap-able.

A sample with ``mu_i = 0`` (at least ``k`` exact duplicates, or ``k``
parallel rows under cosine) has no local scale; it gets the smallest positive
scale of the cloud instead (1 if every scale is 0), and
:func:`holejax.pairwise_distances` warns.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from holejax.metrics.cosine import cosine_distances
from holejax.metrics.euclidean import _zero_diagonal, euclidean_distances
from holejax.metrics.mahalanobis import mahalanobis_distances

__all__ = ["SCALES", "row_smallest", "local_scales", "density_normalise", "density_distances"]

SCALES = ("mean", "kth")


def _group_size(m: int, k: int) -> int:
    """Columns per group: the power of two nearest ``sqrt(m / k)``, at least 4.

    It balances the two selections of :func:`row_smallest`, over ``m / s``
    group minima and over ``k * s`` candidates.
    """
    return max(4, 2 ** round(math.log2(math.sqrt(m / k))))


def row_smallest(A: ArrayLike, k: int) -> jax.Array:
    """The ``k`` smallest values of every row, ascending.

    Equal to ``-lax.top_k(-A, k)[0]``, but selects from far fewer values on
    wide rows: the row is cut into groups of ``s`` consecutive columns, and
    only the ``k`` groups with the smallest minima can hold the ``k``
    smallest values (every value of another group is at least the minima of
    those ``k`` groups, so it is never needed). One pass computes the group
    minima; ``top_k`` then runs over ``m / s`` minima and over the ``k * s``
    values of the chosen groups instead of all ``m``. XLA's CPU ``top_k``
    slows down sharply on long rows (4000 columns: ~50 ms for 4000 rows,
    against ~9 ms this way; see benchmarks/README.md).

    Args:
        A: ``(row, column)`` values; no NaN (``inf`` is fine).
        k: values per row, ``1 <= k <= column`` (static).

    Returns:
        ``(row, k)`` values, each row ascending.

    Example:
        >>> A = jnp.array([[5.0, 1.0, 4.0, 2.0, 3.0, 0.5]])
        >>> row_smallest(A, 2).tolist()
        [[0.5, 1.0]]
    """
    A = jnp.asarray(A)
    rows, m = A.shape
    s = _group_size(m, k)
    groups = -(-m // s)
    if k * s + groups >= m // 2:  # too few columns for the groups to save work
        return -lax.top_k(-A, k)[0]
    inf = jnp.array(jnp.inf, A.dtype)
    minima = lax.reduce_window(A, inf, lax.min, (1, s), (1, s), padding=((0, 0), (0, groups * s - m)))
    _, chosen = lax.top_k(-minima, k)  # (row, k) group indices
    columns = (chosen[:, :, None] * s + jnp.arange(s)).reshape(rows, k * s)
    candidates = jnp.take_along_axis(A, columns, axis=1, mode="fill", fill_value=float("inf"))  # past the end: inf
    return -lax.top_k(-candidates, k)[0]


def local_scales(D: ArrayLike, k: int = 5, scale: str = "mean") -> jax.Array:
    """Local scale of every sample from its distance row (self excluded).

    Args:
        D: ``(sample, sample)`` distances with a zero diagonal.
        k: neighbours, ``1 <= k <= n - 1`` (static).
        scale: ``"mean"`` (mean of the ``k`` nearest distances) or ``"kth"``
            (the ``k``-th nearest distance).

    Returns:
        ``(sample,)`` scales, >= 0.

    Example:
        >>> D = jnp.array([[0.0, 1.0, 3.0], [1.0, 0.0, 2.0], [3.0, 2.0, 0.0]])
        >>> local_scales(D, k=2).tolist(), local_scales(D, k=2, scale="kth").tolist()
        ([2.0, 1.5, 2.5], [3.0, 2.0, 3.0])
    """
    D = jnp.asarray(D)
    n = D.shape[0]
    eye = lax.broadcasted_iota(jnp.int32, (n, n), 0) == lax.broadcasted_iota(jnp.int32, (n, n), 1)
    nearest = row_smallest(jnp.where(eye, jnp.inf, D), k)
    if scale == "kth":
        return nearest[:, -1]
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
    return _zero_diagonal(D * (inv[:, None] * inv[None, :])), zero


_BASES = {
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
        scale: ``"mean"`` (default, the paper) or ``"kth"`` (the reference code).
        covariance, VI: mahalanobis options (ignored by other bases).

    Returns:
        ``(sample, sample)`` distances, zero diagonal, symmetric.

    Example:
        >>> X = jnp.array([[0.0], [1.0], [10.0], [12.0]])
        >>> D = density_distances(X, k=1)
        >>> round(float(D[0, 1]), 3), round(float(D[2, 3]), 3)
        (1.0, 1.0)
    """
    D = _BASES[base](X, covariance=covariance, VI=VI)
    return density_normalise(D, local_scales(D, k, scale))[0]
