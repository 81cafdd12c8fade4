"""Mahalanobis distances with shrinkage covariance estimators, in JAX.

``d(x_i, x_j) = sqrt((x_i - x_j)^T S^{-1} (x_i - x_j))`` is computed by
whitening: with the Cholesky factor ``S = C C^T``, the points ``z = C^{-1} x``
(the inverse of the ``(unit, unit)`` factor, then one matmul) have euclidean distances equal to
the Mahalanobis distances, so the kernel ends in the same single matmul as
:func:`holejax.metrics.euclidean.euclidean_distances`.

Activations often have more units than samples (``d > n``); the empirical
covariance is then singular. The covariance estimators here follow
scikit-learn's definitions (and are tested against them):

- ``"ledoit_wolf"`` (default): Ledoit & Wolf's shrinkage towards
  ``mu I``, ``mu = trace(S) / d``, with the asymptotically optimal weight.
- ``"oas"``: Chen et al.'s oracle approximating shrinkage, same target.
- ``"empirical"``: the plain (biased, ``1/n``) covariance, for well-conditioned
  data only; :func:`holejax.pairwise_distances` rejects it when ``d >= n`` or
  the condition number is too large, and suggests a shrinkage estimator.

Scale: the cloud is rescaled by an exact power of two before its
covariance is estimated, so clouds near ``1e12`` or ``1e-20`` give the
distances of the same cloud near 1. A covariance that cannot be used
(singular in the working precision, e.g. Ledoit-Wolf on two samples, which
shrinks nothing) is never replaced by another matrix: the kernel flags it
and :func:`holejax.pairwise_distances` raises an error naming the cloud.

A user-supplied inverse covariance ``VI`` (as in ``scipy.spatial.distance``)
overrides the estimator.

Padded clouds: with ``units``, only the first ``units`` units of a cloud are
real and the others are zero in every sample (appended by
:func:`holejax.metrics.padding.pad_to_bucket`, so that clouds of many widths
share one compiled program; ``units`` is traced). The estimators then use
the real number of units wherever their formulas count units, and the
whitening puts a multiple of the identity on the padded diagonal block: the
distances are those of the unpadded cloud.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from holejax._checks import CloudError, as_numeric_array
from holejax._executables import stored_jit
from holejax.metrics.euclidean import euclidean_distances, scale_exponent, times_power_of_two

__all__ = [
    "ShrunkCovariance",
    "COVARIANCE_ESTIMATORS",
    "empirical_covariance",
    "ledoit_wolf",
    "oas",
    "estimate_covariance",
    "real_units",
    "whiten",
    "mahalanobis_distances",
    "mahalanobis_kernel",
    "covariance_failure",
    "cholesky_lower",
    "tril_inverse",
]

COVARIANCE_ESTIMATORS = ("ledoit_wolf", "oas", "empirical")

# largest condition number accepted for covariance="empirical", per dtype
MAX_CONDITION = {np.dtype(np.float32): 1e4, np.dtype(np.float64): 1e10}


class ShrunkCovariance(NamedTuple):
    """A covariance estimate.

    Attributes:
        covariance: ``(unit, unit)`` symmetric positive (semi-)definite matrix
            (zero in the rows and columns of padded units).
        shrinkage: scalar weight of the ``mu I`` target (0 for ``"empirical"``).
        location: ``(unit,)`` sample mean.
    """

    covariance: jax.Array
    shrinkage: jax.Array
    location: jax.Array


def _centre(X: ArrayLike) -> tuple[jax.Array, jax.Array]:
    X = jnp.asarray(X)
    loc = jnp.mean(X, axis=0)
    return X - loc, loc


def _scatter(Xc: jax.Array) -> jax.Array:
    """``Xc^T Xc`` contracting the sample axis in place (no transposed copy)."""
    return lax.dot_general(Xc, Xc, (((0,), (0,)), ((), ())), precision=lax.Precision.HIGHEST)


def real_units(d: int, units: ArrayLike | None) -> tuple[ArrayLike, jax.Array]:
    """``(count, mask)``: the number of real units and the ``(unit,)`` bool mask of them.

    ``units`` None means all ``d`` units are real; otherwise the first
    ``units`` are, and the others are zero padding.

    Example:
        >>> count, mask = real_units(4, 3)
        >>> int(count), mask.tolist()
        (3, [True, True, True, False])
    """
    if units is None:
        return d, jnp.ones((d,), dtype=bool)
    return units, jnp.arange(d) < units


def _shrink(emp: jax.Array, shrinkage: jax.Array, count: ArrayLike, mask: jax.Array) -> jax.Array:
    """``(1 - s) S + s mu I`` over the real units, ``mu`` their mean variance; zero on padded units."""
    mu = jnp.trace(emp) / count
    return (1 - shrinkage) * emp + jnp.diag(jnp.where(mask, shrinkage * mu, jnp.zeros((), emp.dtype)))


@stored_jit
def empirical_covariance(X: ArrayLike, units: ArrayLike | None = None) -> ShrunkCovariance:
    """Maximum-likelihood covariance ``Xc^T Xc / n`` (sklearn's ``empirical_covariance``).

    Args:
        X: ``(sample, unit)``.
        units: number of real units (traced); the others must be zero in
            every sample. None (default): all of them.

    Returns:
        :class:`ShrunkCovariance` with shrinkage 0.

    Example:
        >>> empirical_covariance(jnp.array([[0.0, 0.0], [2.0, 2.0]])).covariance.tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    del units  # zero units give zero rows and columns; nothing counts units
    Xc, loc = _centre(X)
    emp = _scatter(Xc) / Xc.shape[0]
    return ShrunkCovariance(emp, jnp.zeros((), emp.dtype), loc)


@stored_jit
def ledoit_wolf(X: ArrayLike, units: ArrayLike | None = None) -> ShrunkCovariance:
    """Ledoit-Wolf shrunk covariance (the formula of ``sklearn.covariance.ledoit_wolf``).

    Args:
        X: ``(sample, unit)``.
        units: number of real units (traced); the others must be zero in
            every sample. None (default): all of them.

    Returns:
        :class:`ShrunkCovariance`; shrinkage in ``[0, 1]``.

    Example:
        >>> X = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
        >>> round(float(ledoit_wolf(X).shrinkage), 4)
        0.8609
    """
    Xc, loc = _centre(X)
    n = Xc.shape[0]
    count, mask = real_units(Xc.shape[1], units)  # zero units add nothing to the sums below
    emp = _scatter(Xc) / n
    d = jnp.asarray(count, emp.dtype)
    sq_norms = jnp.sum(Xc * Xc, axis=1)
    trace_terms = jnp.sum(Xc * Xc, axis=0) / n
    mu = jnp.sum(trace_terms) / d
    beta_ = jnp.sum(sq_norms**2)  # sum of the entries of X2^T X2
    delta_ = jnp.sum(emp**2)  # sum of squared entries of X^T X, over n^2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * jnp.sum(trace_terms) + d * mu**2) / d
    beta = jnp.minimum(beta, delta)
    safe_delta = jnp.where(delta > 0, delta, jnp.ones((), delta.dtype))
    s = jnp.where((beta == 0) | (d == 1), jnp.zeros((), emp.dtype), beta / safe_delta)  # one unit: no shrinkage
    return ShrunkCovariance(_shrink(emp, s, count, mask), s, loc)


@stored_jit
def oas(X: ArrayLike, units: ArrayLike | None = None) -> ShrunkCovariance:
    """Oracle approximating shrinkage covariance (the formula of ``sklearn.covariance.oas``).

    Args:
        X: ``(sample, unit)``.
        units: number of real units (traced); the others must be zero in
            every sample. None (default): all of them.

    Returns:
        :class:`ShrunkCovariance`; shrinkage in ``[0, 1]``.

    Example:
        >>> X = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
        >>> round(float(oas(X).shrinkage), 4)
        0.9545
    """
    Xc, loc = _centre(X)
    n = Xc.shape[0]
    count, mask = real_units(Xc.shape[1], units)  # zero units add nothing to the sums below
    emp = _scatter(Xc) / n
    d = jnp.asarray(count, emp.dtype)
    alpha = jnp.sum(emp**2) / (d * d)  # the mean over the real d x d block
    mu = jnp.trace(emp) / d
    num = alpha + mu**2
    den = (n + 1) * (alpha - mu**2 / d)
    safe_den = jnp.where(den == 0, jnp.ones((), den.dtype), den)
    s = jnp.where(den == 0, jnp.ones((), emp.dtype), jnp.minimum(num / safe_den, 1))
    s = jnp.where(d == 1, jnp.zeros((), emp.dtype), s)  # one unit: no shrinkage
    return ShrunkCovariance(_shrink(emp, s, count, mask), s, loc)


_ESTIMATORS = {"ledoit_wolf": ledoit_wolf, "oas": oas, "empirical": empirical_covariance}


@stored_jit(static_argnames="covariance")
def estimate_covariance(
    X: ArrayLike, covariance: str = "ledoit_wolf", units: ArrayLike | None = None
) -> ShrunkCovariance:
    """Covariance of one cloud by the named estimator (one of :data:`COVARIANCE_ESTIMATORS`).

    ``units`` as in :func:`ledoit_wolf`.

    Example:
        >>> estimate_covariance(jnp.ones((3, 2)), "oas").covariance.shape
        (2, 2)
    """
    return _ESTIMATORS[covariance](X, units)


def _whitened(
    X: jax.Array, covariance: str, VI: ArrayLike | None, units: ArrayLike | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(Z, e, usable)``: ``2^e |z_i - z_j|`` are the Mahalanobis distances of ``X``.

    The cloud is first scaled by an exact power of two ``2^-e`` into
    ``max |x| < 1`` (:func:`~holejax.metrics.euclidean.scale_exponent`), so
    the covariance (a sum of squares) neither overflows nor underflows. An
    estimated covariance scales with the data and the distances do not, so
    ``e`` is 0 then; a user's ``VI`` has the units of the data, so ``e`` is the
    scale's. ``usable`` is False when the Cholesky factor of the estimated
    covariance is not finite or is numerically singular (its smallest squared
    pivot below ``eps`` times its largest; the inverse would be rounding
    noise), or when the factor of ``VI`` is not finite.

    With ``units`` (padded clouds), the padded diagonal block of the
    covariance is the mean real variance times the identity, and zero off the
    diagonal: the factor and its inverse are block diagonal, the padded
    coordinates (zero after centring) add nothing, and only the real pivots
    decide ``usable``. A ``VI`` is padded by the caller
    (:func:`holejax.metrics.padding.pad_inverse_covariance`).
    """
    d = X.shape[1]
    count, mask = real_units(d, units)
    e = scale_exponent(X)
    X = times_power_of_two(X, -e)
    # centre first: distances are translation invariant, and a large common offset
    # would otherwise cancel catastrophically after the whitening matmul
    X = X - jnp.mean(X, axis=0, keepdims=True)
    if VI is not None:
        # (x - y)^T VI (x - y) = |L^T (x - y)|^2 with VI = L L^T
        L = cholesky_lower(jnp.asarray(VI, X.dtype))
        return jnp.matmul(X, L, precision="highest"), e, jnp.all(jnp.isfinite(L))
    cov = estimate_covariance(X, covariance, units).covariance
    trace = jnp.trace(cov)
    padded_variance = jnp.where(mask, jnp.zeros((), X.dtype), trace / count)
    # all points equal: every distance is 0 whatever the matrix, so factorise the identity
    cov = jnp.where(trace > 0, cov + jnp.diag(padded_variance), jnp.eye(d, dtype=X.dtype))
    C = cholesky_lower(cov)
    # z = C^{-1} x, so |z_i - z_j|^2 = (x_i - x_j)^T (C C^T)^{-1} (x_i - x_j); inverting the
    # (unit, unit) factor once and multiplying beats a triangular solve against all samples
    C_inv = tril_inverse(C)
    Z = jnp.matmul(X, C_inv.T, precision="highest")
    return Z, jnp.zeros((), e.dtype), _factor_usable(C, mask) & jnp.all(jnp.isfinite(C_inv))


def _factor_usable(C: jax.Array, mask: jax.Array) -> jax.Array:
    """Whether a Cholesky factor is finite and its real pivots (``mask``) not numerically singular."""
    pivots = jnp.abs(jnp.diagonal(C))
    eps = jnp.finfo(C.dtype).eps
    finite = jnp.all(jnp.isfinite(C))
    smallest = jnp.min(jnp.where(mask, pivots, jnp.inf))
    largest = jnp.max(jnp.where(mask, pivots, jnp.zeros((), C.dtype)))
    return finite & (smallest**2 > eps * largest**2)


def whiten(X: ArrayLike, covariance: str = "ledoit_wolf", VI: ArrayLike | None = None) -> jax.Array:
    """Points whose euclidean distances are the Mahalanobis distances of ``X``.

    Args:
        X: ``(sample, unit)``.
        covariance: estimator used when ``VI`` is None.
        VI: optional ``(unit, unit)`` inverse covariance (symmetric positive definite).

    Returns:
        ``(sample, unit)`` whitened, mean-centred points. When every point is the same (zero
        covariance) the identity is used, so all distances are 0. NaN or
        meaningless where the covariance is singular; :func:`mahalanobis_kernel`
        reports that case.

    Example:
        >>> Z = whiten(jnp.array([[0.0, 0.0], [2.0, 0.0]]), VI=jnp.diag(jnp.array([4.0, 1.0])))
        >>> float(jnp.linalg.norm(Z[0] - Z[1]))
        4.0
    """
    Z, e, _ = _whitened(jnp.asarray(X), covariance, VI)
    return times_power_of_two(Z, e)


# ---- Cholesky factor and triangular inverse from matmuls -------------------------------
#
# jnp.linalg.cholesky / solve_triangular call LAPACK/BLAS on the CPU. That library runs
# its own thread pool beside XLA's; on a machine with few cores the two pools spin
# against each other and a factorisation can take many times its arithmetic. The blocked
# versions below do the O(d^3) work as XLA matmuls and only 64 x 64 diagonal blocks in
# small loops, so they stay inside XLA on every backend. The loop over blocks is a
# lax.fori_loop on full-width, masked panels: its body is compiled once whatever the
# width, where a Python loop would put one copy per block into the program.

_CHOL_BLOCK = 64


def _cholesky_small(A: jax.Array) -> jax.Array:
    """Unblocked (column by column) lower Cholesky factor of a small SPD block."""
    b = A.shape[0]
    idx = jnp.arange(b)

    def column(j, L):
        v = A[:, j] - L @ L[j]  # columns >= j of L are still 0
        pivot = jnp.sqrt(v[j])
        col = jnp.where(idx > j, v / pivot, jnp.zeros((), A.dtype))
        return L.at[:, j].set(jnp.where(idx == j, pivot, col))

    return lax.fori_loop(0, b, column, jnp.zeros_like(A))


def _tril_inverse_small(L: jax.Array) -> jax.Array:
    """Inverse of a small lower-triangular block by forward substitution, row by row."""
    b = L.shape[0]
    eye = jnp.eye(b, dtype=L.dtype)

    def row(i, X):
        return X.at[i].set((eye[i] - L[i] @ X) / L[i, i])  # rows >= i of X are still 0

    return lax.fori_loop(0, b, row, jnp.zeros_like(L))


def _whole_blocks(M: jax.Array) -> jax.Array:
    """``M`` extended by an identity block to a whole number of diagonal blocks.

    The identity block is its own factor and its own inverse, and leaves the
    leading ``(unit, unit)`` block of both unchanged.
    """
    d = M.shape[0]
    pad = -d % _CHOL_BLOCK
    if not pad:
        return M
    ones = jnp.concatenate([jnp.zeros((d,), M.dtype), jnp.ones((pad,), M.dtype)])
    return jnp.pad(M, ((0, pad), (0, pad))) + jnp.diag(ones)


def cholesky_lower(S: ArrayLike) -> jax.Array:
    """Lower Cholesky factor ``C`` (``S = C C^T``) of a symmetric positive definite matrix.

    Right-looking blocked algorithm: 64 x 64 diagonal blocks are factorised in
    a loop, everything else is matmuls. NaN where ``S`` is not positive definite.

    Args:
        S: ``(unit, unit)``.

    Returns:
        ``(unit, unit)`` lower triangular.

    Example:
        >>> cholesky_lower(jnp.array([[4.0, 2.0], [2.0, 5.0]])).tolist()
        [[2.0, 0.0], [1.0, 2.0]]
    """
    A = jnp.asarray(S)
    d = A.shape[0]
    if d <= _CHOL_BLOCK:
        return _cholesky_small(A)
    A = _whole_blocks(A)
    width, b = A.shape[0], _CHOL_BLOCK
    rows = jnp.arange(width)[:, None]

    def block(k, carry):
        A, L = carry
        s = k * b
        L11 = _cholesky_small(lax.dynamic_slice(A, (s, s), (b, b)))
        panel = jnp.matmul(lax.dynamic_slice(A, (0, s), (width, b)), _tril_inverse_small(L11).T, precision="highest")
        L21 = jnp.where(rows >= s + b, panel, jnp.zeros((), A.dtype))  # the rows below the block
        L = lax.dynamic_update_slice(L, lax.dynamic_update_slice(L21, L11, (s, 0)), (0, s))
        # the trailing update; rows and columns up to the block are zero in L21
        A = A - lax.dot_general(L21, L21, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST)
        return A, L

    _, L = lax.fori_loop(0, width // b, block, (A, jnp.zeros_like(A)))
    return L[:d, :d]


def tril_inverse(L: ArrayLike) -> jax.Array:
    """Inverse of a lower-triangular matrix, blocked: small loops on the diagonal, matmuls elsewhere.

    Args:
        L: ``(unit, unit)`` lower triangular with a non-zero diagonal.

    Returns:
        ``(unit, unit)`` lower triangular ``L^{-1}``.

    Example:
        >>> tril_inverse(jnp.array([[2.0, 0.0], [1.0, 4.0]])).tolist()
        [[0.5, 0.0], [-0.125, 0.25]]
    """
    L = jnp.asarray(L)
    d = L.shape[0]
    if d <= _CHOL_BLOCK:
        return _tril_inverse_small(L)
    L = _whole_blocks(L)
    width, b = L.shape[0], _CHOL_BLOCK
    cols = jnp.arange(width)[None, :]

    def block(k, X):
        s = k * b
        R = lax.dynamic_slice(L, (s, 0), (b, width))
        inv_kk = _tril_inverse_small(lax.dynamic_slice(R, (0, s), (b, b)))
        # X[s:s+b, :s] = -inv_kk @ L[s:s+b, :s] @ X[:s, :s]; rows from s on of X are still 0
        left = jnp.where(cols < s, R, jnp.zeros((), L.dtype))
        rows = -jnp.matmul(inv_kk, jnp.matmul(left, X, precision="highest"), precision="highest")
        return lax.dynamic_update_slice(X, lax.dynamic_update_slice(rows, inv_kk, (0, s)), (s, 0))

    return lax.fori_loop(0, width // b, block, jnp.zeros_like(L))[:d, :d]


def mahalanobis_kernel(
    X: ArrayLike,
    covariance: str = "ledoit_wolf",
    VI: ArrayLike | None = None,
    units: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Mahalanobis distances and whether the covariance could not be used.

    Args:
        X: ``(sample, unit)`` points.
        covariance, VI: as in :func:`mahalanobis_distances`; a ``VI`` of a
            padded cloud is padded with an identity block
            (:func:`holejax.metrics.padding.pad_inverse_covariance`).
        units: number of real units (traced); the others must be zero in
            every sample (a cloud padded so that many widths share one
            compiled program). None (default): all of them. The distances
            and the flag are those of the cloud without the padding.

    Returns:
        ``(D, singular)``: ``(sample, sample)`` distances and a ``(sample, 1)``
        bool column, all True when the covariance (or ``VI``) is singular in
        the working precision, in which case ``D`` is meaningless;
        :func:`holejax.pairwise_distances` turns that into an error
        (:func:`covariance_failure`).

    Example:
        >>> X = jnp.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
        >>> D, singular = mahalanobis_kernel(X)  # one direction only, and Ledoit-Wolf shrinks nothing
        >>> bool(singular.any())
        True
        >>> bool(mahalanobis_kernel(X, "oas")[1].any())
        False
    """
    X = jnp.asarray(X)
    Z, e, usable = _whitened(X, covariance, VI, units)
    D = times_power_of_two(euclidean_distances(Z), e)
    return D, jnp.broadcast_to(~usable, (X.shape[0], 1))


def mahalanobis_distances(
    X: ArrayLike, covariance: str = "ledoit_wolf", VI: ArrayLike | None = None
) -> jax.Array:
    """Mahalanobis distances of one cloud under its own (shrunk) covariance.

    Exact over the whole float range: the cloud is rescaled by a power of two
    before the covariance is estimated (:func:`whiten`).

    Args:
        X: ``(sample, unit)`` points.
        covariance: ``"ledoit_wolf"`` (default), ``"oas"`` or ``"empirical"``.
        VI: optional ``(unit, unit)`` inverse covariance; overrides ``covariance``.

    Returns:
        ``(sample, sample)`` distances, zero diagonal, symmetric. Meaningless
        if the covariance is singular, which :func:`holejax.pairwise_distances`
        reports as an error (use :func:`mahalanobis_kernel` to see the flag).

    Example:
        >>> X = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
        >>> D = mahalanobis_distances(X, VI=jnp.diag(jnp.array([0.25, 1.0])))
        >>> [round(v, 5) for v in D[0].tolist()]
        [0.0, 1.0, 1.0]
    """
    return mahalanobis_kernel(X, covariance, VI)[0]


def covariance_failure(column: np.ndarray, where: str, params: dict) -> None:
    """Raise :class:`~holejax._checks.CloudError` when the kernel flagged a singular covariance.

    A flag message of the metric table (see :mod:`holejax.metrics.registry`):
    ``column`` is the kernel's ``singular`` flag column.
    """
    if not np.any(column):
        return None
    if params.get("VI") is not None:
        raise CloudError(
            "the inverse covariance VI is numerically singular in the working precision for this "
            "cloud, so Mahalanobis distances cannot be computed",
            "Pass a better conditioned VI, or enable x64 (jax.enable_x64) and float64 input.",
        )
    estimator = params.get("covariance", "ledoit_wolf")
    raise CloudError(
        f"the {estimator!r} covariance of this cloud is singular (it could not be estimated "
        "from these samples), so Mahalanobis distances cannot be computed",
        "Use covariance='oas' (which always shrinks), pass more samples (at least 3, and "
        "more than units for 'empirical'), or pass an inverse covariance VI.",
    )


def check_inverse_covariance(VI, d: int) -> np.ndarray:
    """Host-side check that ``VI`` is a symmetric positive definite ``(d, d)`` matrix."""
    arr = as_numeric_array(VI, "VI", f"the ({d}, {d}) inverse covariance of the {d} units").astype(np.float64)
    if arr.shape != (d, d):
        raise ValueError(
            f"VI must be the ({d}, {d}) inverse covariance of the {d} units; got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ValueError("VI holds NaN or Inf; pass a finite inverse covariance.")
    if not np.allclose(arr, arr.T, rtol=1e-6, atol=1e-12 * max(1.0, float(np.abs(arr).max()))):
        raise ValueError("VI must be symmetric; got an asymmetric matrix. Pass (VI + VI.T) / 2.")
    try:
        np.linalg.cholesky(arr)
    except np.linalg.LinAlgError:
        raise ValueError(
            "VI must be positive definite; its Cholesky factorisation failed. Use a shrinkage "
            "estimate (covariance='ledoit_wolf') instead of inverting a singular covariance."
        ) from None
    return arr


def check_empirical_conditioning(X: np.ndarray, components: int | None = None) -> None:
    """Host-side check that the plain covariance of ``X`` can be inverted in its dtype.

    With ``components``, the covariance checked is that of the scores on the
    leading ``components`` principal axes
    (:func:`holejax.metrics.projection.principal_scores`): its singular
    values are the leading ``components`` of the centred cloud's.
    """
    n, d = X.shape
    if components is not None:
        d = components
    hint = "Use covariance='ledoit_wolf' or 'oas', which shrink towards a multiple of the identity."
    if d >= n:
        raise ValueError(
            f"covariance='empirical' needs more samples than units; got {n} samples and {d} "
            f"units, so the covariance is singular. {hint}"
        )
    Xc = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
    s = np.linalg.svd(Xc, compute_uv=False)[:d]
    limit = MAX_CONDITION[np.dtype(X.dtype)]
    cond = np.inf if s[-1] == 0 else float((s[0] / s[-1]) ** 2)
    if cond > limit:
        raise ValueError(
            f"covariance='empirical' is ill-conditioned (condition number {cond:.3g} > {limit:g} "
            f"for {np.dtype(X.dtype).name}; constant or collinear units?). {hint}"
        )

