"""Euclidean-family distance kernels: euclidean, squared euclidean, manhattan, chebyshev.

Each kernel is written for one cloud ``(sample, unit) -> (sample, sample)``,
is traceable (``jax.jit`` / ``jax.vmap``) and returns an exactly symmetric
matrix with a zero diagonal. Batching over many clouds happens in one place,
:mod:`holejax.metrics.batch`.

Euclidean distances use the matmul identity
``|x_i - x_j|^2 = |x_i|^2 + |x_j|^2 - 2 x_i . x_j`` on mean-centred points
(centring removes the common offset that would otherwise cancel
catastrophically), clamped at 0 against rounding. One ``(n, d) @ (d, n)``
product does all the work, so the kernel runs at matmul speed.

Accuracy: the identity has an absolute error of about ``eps * (|x_i|^2 +
|x_j|^2)`` in ``d^2`` (norms after centring), so distances much smaller than
the spread of the cloud lose relative precision: in float32, two points
``1e-4`` of the cloud's radius apart carry an error comparable to their
distance. Exact duplicates still come out exactly 0. Enable x64
(``jax.enable_x64``) and pass float64 when such near-duplicates matter.

Manhattan and chebyshev have no such identity; they are computed over row
blocks of ``(block, sample, unit)`` differences reduced on the fly, so memory
stays ``O(block * n * d)`` instead of ``O(n^2 d)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

__all__ = [
    "euclidean_distances",
    "sqeuclidean_distances",
    "manhattan_distances",
    "chebyshev_distances",
    "gram",
]

# bytes of (block, n, d) differences that one step of the blocked kernels may hold
_BLOCK_BYTES = 1 << 24


def gram(A: ArrayLike, B: ArrayLike | None = None) -> jax.Array:
    """``A @ B.T`` at full float precision (no TF32 / bf16 passes on accelerators).

    Args:
        A: ``(sample, unit)``.
        B: ``(sample2, unit)``; ``A`` when omitted.

    Returns:
        ``(sample, sample2)`` inner products.

    Example:
        >>> gram(jnp.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
        [[5.0, 11.0], [11.0, 25.0]]
    """
    A = jnp.asarray(A)
    B = A if B is None else jnp.asarray(B)
    return lax.dot_general(
        A, B, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST
    )


def _zero_diagonal(D: jax.Array) -> jax.Array:
    n = D.shape[0]
    eye = lax.broadcasted_iota(jnp.int32, (n, n), 0) == lax.broadcasted_iota(jnp.int32, (n, n), 1)
    return jnp.where(eye, jnp.zeros((), D.dtype), D)


def sqeuclidean_distances(X: ArrayLike) -> jax.Array:
    """Squared euclidean distances of one cloud by the matmul identity.

    Args:
        X: ``(sample, unit)`` points, float32 or float64.

    Returns:
        ``(sample, sample)`` squared distances, >= 0, zero diagonal, symmetric.

    Example:
        >>> X = jnp.array([[0.0, 0.0], [3.0, 4.0]])
        >>> sqeuclidean_distances(X).tolist()
        [[0.0, 25.0], [25.0, 0.0]]
    """
    X = jnp.asarray(X)
    X = X - jnp.mean(X, axis=0, keepdims=True)
    G = gram(X)
    # squared norms from the gram diagonal, rounded like the off-diagonal terms, so
    # duplicate points (and the diagonal) come out exactly 0
    sq = jnp.diagonal(G)
    D2 = (sq[:, None] + sq[None, :]) - 2 * G
    return _zero_diagonal(jnp.maximum(D2, 0))


def euclidean_distances(X: ArrayLike) -> jax.Array:
    """Euclidean distances of one cloud (square root of :func:`sqeuclidean_distances`).

    Args:
        X: ``(sample, unit)`` points.

    Returns:
        ``(sample, sample)`` distances.

    Example:
        >>> X = jnp.array([[0.0, 0.0], [3.0, 4.0]])
        >>> euclidean_distances(X).tolist()
        [[0.0, 5.0], [5.0, 0.0]]
    """
    return jnp.sqrt(sqeuclidean_distances(X))


def _blocked_reduce(X: jax.Array, reduce) -> jax.Array:
    """Apply ``reduce(|x_i - x_j|)`` over the unit axis, one row block at a time."""
    n, d = X.shape
    itemsize = jnp.dtype(X.dtype).itemsize
    block = int(max(1, min(n, _BLOCK_BYTES // max(1, n * d * itemsize))))
    n_blocks = -(-n // block)
    pad = n_blocks * block - n
    Xp = jnp.pad(X, ((0, pad), (0, 0))).reshape(n_blocks, block, d)

    def rows(B):
        return reduce(jnp.abs(B[:, None, :] - X[None, :, :]), axis=-1)

    D = lax.map(rows, Xp).reshape(n_blocks * block, n)[:n]
    return _zero_diagonal(D)


def manhattan_distances(X: ArrayLike) -> jax.Array:
    """Manhattan (cityblock, L1) distances of one cloud.

    Args:
        X: ``(sample, unit)`` points.

    Returns:
        ``(sample, sample)`` distances.

    Example:
        >>> manhattan_distances(jnp.array([[0.0, 0.0], [3.0, -4.0]])).tolist()
        [[0.0, 7.0], [7.0, 0.0]]
    """
    return _blocked_reduce(jnp.asarray(X), jnp.sum)


def chebyshev_distances(X: ArrayLike) -> jax.Array:
    """Chebyshev (L-infinity) distances of one cloud.

    Args:
        X: ``(sample, unit)`` points.

    Returns:
        ``(sample, sample)`` distances.

    Example:
        >>> chebyshev_distances(jnp.array([[0.0, 0.0], [3.0, -4.0]])).tolist()
        [[0.0, 4.0], [4.0, 0.0]]
    """
    return _blocked_reduce(jnp.asarray(X), jnp.max)
