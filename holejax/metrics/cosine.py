"""Direction-only distance kernels: cosine (``1 - cos``, as HOLE) and angular (``arccos``).

Both kernels normalise the rows once (``O(n d)``) and take a single
``(n, d) @ (d, n)`` product; the clamp, the zero-vector rule and the zero
diagonal fuse into one elementwise pass over that product's output, so
cosine costs what the matmul costs: dividing the ``(n, n)`` gram matrix by
the outer product of the norms, or broadcasting ``(n, n, d)``, would add
several full passes over ``n x n`` memory.

Both are scale-free: each row is normalised after an exact power-of-two
rescaling (:func:`unit_rows`), so ``X * 1e-20`` and ``X * 1e20`` have the
same distances as ``X``.

Zero vectors (a dead layer, ReLU units that never fire for a sample) have no
direction. They are given cosine similarity 0 with every other point, so
their cosine distance is 1 and their angular distance pi/2 (the convention of
scikit-learn), and 0 to themselves; never NaN. :func:`holejax.pairwise_distances`
warns when a cloud holds such rows.

cosine distance is not a metric (no triangle inequality); angular distance
``arccos(cos) in [0, pi]`` is. Both are computed from chords between
mean-centred unit rows (see :func:`cosine_distances`), which keeps small
distances accurate in float32. Angles within ~1e-3 of pi (nearly opposite
rows; impossible for non-negative activations such as ReLU outputs) are only
resolved to about ``sqrt(eps)`` absolute, as with any cosine-based formula.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from holejax.metrics.euclidean import identity_sq, scale_exponent, symmetric_gram, times_power_of_two

__all__ = ["cosine_distances", "angular_distances", "unit_rows"]


def unit_rows(X: ArrayLike) -> jax.Array:
    """Rows scaled to unit length; zero rows stay zero.

    Each row is first brought to a largest entry in ``[0.5, 1)`` by an exact
    power of two (:func:`~holejax.metrics.euclidean.scale_exponent`), so
    its squared norm neither overflows nor underflows: rows near ``1e20`` or
    ``1e-20`` get the same direction as the row near 1.

    Args:
        X: ``(sample, unit)``.

    Returns:
        ``(sample, unit)``.

    Example:
        >>> unit_rows(jnp.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    X = jnp.asarray(X)
    X = times_power_of_two(X, -scale_exponent(X, axis=1))
    norms = jnp.sqrt(jnp.sum(X * X, axis=1, keepdims=True))
    return X / jnp.where(norms > 0, norms, jnp.ones((), X.dtype))


def _chord_sq(X: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Squared chords ``|u_i - u_j|^2`` in ``[0, 4]`` between unit rows, and where a zero row is involved.

    The matmul identity runs on unit rows centred on their mean: the shift
    cancels exactly in ``u_i - u_j`` but shrinks the terms of the identity, so
    nearly parallel rows (activations that all point one way) keep their
    relative precision instead of drowning in ``1 - cos`` cancellation.
    """
    X = jnp.asarray(X)
    zero = ~jnp.any(X != 0, axis=1)
    U = unit_rows(X)
    G = symmetric_gram(U - jnp.mean(U, axis=0, keepdims=True))
    sq = jnp.diagonal(G)
    C2 = jnp.minimum(identity_sq(G, sq, sq), 4)
    n = X.shape[0]
    off_diagonal = lax.broadcasted_iota(jnp.int32, (n, n), 0) != lax.broadcasted_iota(jnp.int32, (n, n), 1)
    return C2, (zero[:, None] | zero[None, :]) & off_diagonal


def _arcsin_unit(x: jax.Array) -> jax.Array:
    """``arcsin`` on ``[0, 1]``.

    XLA:CPU evaluates ``arcsin`` one element at a time, without vector
    instructions, so float32 uses the classic minimax polynomial of single
    precision math libraries (Cephes ``asinf``; max relative error 3e-7 on
    ``[0, 1]``), made of vectorisable multiply-adds, a square root and a select.
    Other dtypes keep ``jnp.arcsin`` for full precision.
    """
    if x.dtype != jnp.float32:
        return jnp.arcsin(x)
    big = x > 0.5
    z = jnp.where(big, 0.5 * (1 - x), x * x)
    s = jnp.where(big, jnp.sqrt(z), x)
    p = (((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z + 7.4953002686e-2) * z
    r = s + s * z * (p + 1.6666752422e-1)
    return jnp.where(big, jnp.float32(jnp.pi / 2) - 2 * r, r)


def cosine_distances(X: ArrayLike) -> jax.Array:
    """Cosine distances ``1 - cos(x_i, x_j)`` in ``[0, 2]`` of one cloud.

    Computed as half the squared chord ``|u_i - u_j|^2 / 2`` between unit rows
    (the same number, without the ``1 - cos`` cancellation).

    Args:
        X: ``(sample, unit)`` points.

    Returns:
        ``(sample, sample)`` distances, zero diagonal, symmetric.

    Example:
        >>> X = jnp.array([[1.0, 0.0], [0.0, 3.0], [-2.0, 0.0]])
        >>> cosine_distances(X).tolist()
        [[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]
    """
    C2, against_zero = _chord_sq(X)
    return jnp.where(against_zero, jnp.ones((), C2.dtype), C2 / 2)


def angular_distances(X: ArrayLike) -> jax.Array:
    """Angular distances ``arccos(cos(x_i, x_j))`` in ``[0, pi]`` (radians) of one cloud.

    Computed as ``2 arcsin(|u_i - u_j| / 2)`` from the chord between unit rows,
    which stays accurate for small angles where ``arccos`` is ill-conditioned.

    Args:
        X: ``(sample, unit)`` points.

    Returns:
        ``(sample, sample)`` distances, zero diagonal, symmetric; a metric on directions.

    Example:
        >>> X = jnp.array([[1.0, 0.0], [0.0, 3.0]])
        >>> [round(v, 4) for v in angular_distances(X)[0].tolist()]
        [0.0, 1.5708]
    """
    C2, against_zero = _chord_sq(X)
    A = 2 * _arcsin_unit(jnp.sqrt(C2) / 2)
    return jnp.where(against_zero, jnp.asarray(jnp.pi / 2, C2.dtype), A)
