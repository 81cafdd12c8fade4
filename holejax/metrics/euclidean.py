"""Euclidean-family distance kernels: euclidean, squared euclidean, manhattan, chebyshev.

Each kernel is written for one cloud ``(sample, unit) -> (sample, sample)``,
is traceable (``jax.jit`` / ``jax.vmap``) and returns an exactly symmetric
matrix with a zero diagonal. Batching over many clouds happens in one place,
:mod:`holejax.metrics.batch`.

Euclidean distances use the matmul identity
``|x_i - x_j|^2 = |x_i|^2 + |x_j|^2 - 2 x_i . x_j`` on mean-centred points
(centring removes the common offset that would otherwise cancel
catastrophically), clamped at 0 against rounding. The ``(n, d) @ (d, n)``
product does all the work (only its upper triangle for wide clouds, see
:func:`symmetric_gram`), so the kernel runs at matmul speed; the rest fuses
into one elementwise pass over its output.

Scale: the points are first multiplied by a power of two that brings the
largest ``|x|`` of the cloud into ``[0.5, 1)`` (:func:`scale_exponent`),
and the distances are multiplied back. Powers of two scale exactly, so
nothing is lost for ordinary data, and the squares can neither overflow nor
underflow: clouds near ``1e20`` or ``1e-20`` (or 512 units near ``1e18``) get
the same relative accuracy as clouds near 1. Squared euclidean distances
beyond the float range (above ``3.4e38`` or below ``1.2e-38`` in float32)
cannot be returned: :func:`sqeuclidean_kernel` flags them and
:func:`holejax.pairwise_distances` raises an error suggesting ``euclidean``.

Accuracy: the identity has an absolute error of about ``eps * (|x_i|^2 +
|x_j|^2)`` in ``d^2`` (norms after centring), so distances much smaller than
the spread of the cloud lose relative precision: in float32, two points
``1e-4`` of the cloud's radius apart carry an error comparable to their
distance. Squared distances under that rounding floor are reported as 0
(:func:`identity_sq`), so exact duplicates come out exactly 0. Enable x64
(``jax.enable_x64``) and pass float64 when such near-duplicates matter.

Manhattan and chebyshev have no such identity; they fold one unit at a time
into a ``(block, sample)`` accumulator of ~4 MiB, so memory stays
``O(block * n)`` besides the output, never ``O(n^2 d)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from holejax._checks import CloudError

__all__ = [
    "euclidean_distances",
    "sqeuclidean_distances",
    "sqeuclidean_kernel",
    "sqeuclidean_range_failure",
    "manhattan_distances",
    "chebyshev_distances",
    "gram",
    "symmetric_gram",
    "identity_sq",
    "scale_exponent",
    "times_power_of_two",
    "zero_diagonal",
]

# bytes of the (block, n) accumulator that one step of the manhattan / chebyshev kernels holds
_BLOCK_BYTES = 1 << 22
# units folded into one fused pass over that accumulator
_UNROLL_UNITS = 16
# longest run of units one manhattan partial sum covers (bounds its rounding error)
_SUM_CHUNK_UNITS = 256


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


def zero_diagonal(D: ArrayLike) -> jax.Array:
    """``D`` with its diagonal set to 0 (traceable).

    Example:
        >>> zero_diagonal(jnp.ones((2, 2))).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
    """
    D = jnp.asarray(D)
    n = D.shape[0]
    eye = lax.broadcasted_iota(jnp.int32, (n, n), 0) == lax.broadcasted_iota(jnp.int32, (n, n), 1)
    return jnp.where(eye, jnp.zeros((), D.dtype), D)


# symmetric panels pay off once the matmul, not the n x n memory traffic, dominates
_PANEL_MIN_UNITS = 256
_PANEL_MIN_SAMPLES = 1024
_PANELS = 8
_REDUCE_PANEL_MIN_SAMPLES = 512
_REDUCE_PANELS = 4  # each panel is a lax.map loop: fewer panels keep compile time down

def symmetric_blocks(
    X: jax.Array, block: Callable[[jax.Array, jax.Array], jax.Array], panels: int = _PANELS
) -> jax.Array:
    """A symmetric ``(sample, sample)`` matrix from the upper-triangle row panels only.

    ``block(A, B)`` maps two sets of rows to their ``(len(A), len(B))`` block
    of a symmetric pairwise matrix. The rows are cut into ``panels`` panels;
    panel ``[a, b)`` is evaluated against rows ``[a, n)`` and written twice,
    as itself and transposed, so ``(panels + 1) / (2 panels)`` of the pairs
    are computed (56% for 8) and the result is exactly symmetric. The price
    is compile time (one ``block`` per panel), paid once per cloud shape.
    """
    n = X.shape[0]
    b = -(-n // panels)
    out = None
    for lo in range(0, n, b):
        panel = block(X[lo : lo + b], X[lo:])
        if out is None:
            out = jnp.zeros((n, n), panel.dtype)
        out = lax.dynamic_update_slice(out, panel, (lo, lo))
        out = lax.dynamic_update_slice(out, panel.T, (lo, lo))
    return out


def symmetric_gram(X: jax.Array) -> jax.Array:
    """The gram matrix ``X @ X.T``, exactly symmetric, from half the flops for wide clouds.

    For wide clouds (``unit >= 256`` and ``sample >= 1024``) only the upper
    triangle is multiplied (:func:`symmetric_blocks`): about 56% of the flops
    of the full product. This is what ``numpy``'s ``A @ A.T`` gets from BLAS
    ``syrk``; XLA's CPU dot has no symmetric variant. The price is compile
    time (one dot per panel), paid once per cloud shape. Narrow clouds are memory-bound and take one full product.

    Args:
        X: ``(sample, unit)``.

    Returns:
        ``(sample, sample)`` inner products.

    Example:
        >>> symmetric_gram(jnp.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
        [[5.0, 11.0], [11.0, 25.0]]
    """
    n, d = X.shape
    if d < _PANEL_MIN_UNITS or n < _PANEL_MIN_SAMPLES:
        return gram(X)
    return symmetric_blocks(X, gram)


def identity_sq(G: jax.Array, sq_r: jax.Array, sq_c: jax.Array) -> jax.Array:
    """``sq_i + sq_j - 2 G_ij``, with values under the identity's rounding floor set to 0.

    The floor is ``4 eps (sq_i + sq_j)``: below it the result is rounding noise
    of the matmul (its sign included), so reporting 0 loses nothing and makes
    duplicate points exactly 0 apart even when their products come from
    different matmul panels. Taking ``sq`` from the gram diagonal makes the
    diagonal itself exactly 0.
    """
    total = sq_r[:, None] + sq_c[None, :]
    D2 = total - 2 * G
    floor = (4 * jnp.finfo(G.dtype).eps) * total
    return jnp.where(D2 > floor, D2, jnp.zeros((), G.dtype))


def scale_exponent(X: ArrayLike, axis: int | None = None) -> jax.Array:
    """The exponent ``e`` with ``max |X| * 2^-e`` in ``[0.5, 1)``; 0 where ``X`` is all zeros.

    Multiplying by ``2^-e`` (:func:`times_power_of_two`) is exact, so kernels
    can square the scaled values without overflow or underflow and scale the
    result back without rounding.

    Args:
        X: any shape.
        axis: reduce over this axis only (``keepdims``), e.g. ``1`` for one
            exponent per row; ``None`` for one exponent for the whole array.

    Returns:
        int32 scalar (or ``keepdims`` array along ``axis``).

    Example:
        >>> scale_exponent(jnp.array([[3.0, -5.0], [0.0, 1e-3]])).tolist()
        3
        >>> scale_exponent(jnp.array([[3.0, -5.0], [0.0, 1e-3]]), axis=1).ravel().tolist()
        [3, -9]
    """
    X = jnp.asarray(X)
    biggest = jnp.max(jnp.abs(X), axis=axis, keepdims=axis is not None)
    return jnp.frexp(biggest)[1]  # biggest = m 2^e with m in [0.5, 1); e = 0 for 0


def times_power_of_two(Y: ArrayLike, e: ArrayLike) -> jax.Array:
    """``Y * 2^e``, exactly, as two multiplications by powers of two that are representable.

    ``2^e`` itself may not be (``2^128`` is not a float32), ``2^(e // 2)`` and
    ``2^(e - e // 2)`` are for every exponent of the dtype; zeros stay zero.
    The multiplications fuse into the elementwise pass around them.

    Example:
        >>> times_power_of_two(jnp.float32(3e38), -128).tolist()  # 2^-128 is not a normal float32
        0.8816207647323608
    """
    Y = jnp.asarray(Y)
    e = jnp.asarray(e, jnp.int32)
    half = e // 2
    one = jnp.ones((), Y.dtype)
    return Y * jnp.ldexp(one, half) * jnp.ldexp(one, e - half)


def _scaled_sqeuclidean(X: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Squared euclidean distances of ``X * 2^-e`` and the exponent ``e`` (:func:`scale_exponent`)."""
    e = scale_exponent(X)
    Xs = times_power_of_two(X, -e)
    G = symmetric_gram(Xs - jnp.mean(Xs, axis=0, keepdims=True))
    sq = jnp.diagonal(G)
    return identity_sq(G, sq, sq), e


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
    D2, e = _scaled_sqeuclidean(jnp.asarray(X))
    return times_power_of_two(times_power_of_two(D2, e), e)  # 2^(2e) alone may leave the float range


def sqeuclidean_kernel(X: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Squared euclidean distances and which rows left the float range.

    Squared distances of a cloud near ``1e20`` (``1e40``) overflow float32, and
    those of a cloud near ``1e-20`` underflow to 0; the distances themselves
    are fine. The flag says so, and :func:`holejax.pairwise_distances` raises
    (:func:`sqeuclidean_range_failure`) instead of returning ``inf`` or 0.

    Returns:
        ``(D, out_of_range)``: ``(sample, sample)`` as
        :func:`sqeuclidean_distances` and a ``(sample, 1)`` bool column, True
        for rows holding a squared distance that is ``inf`` or below the
        smallest normal float while the scaled one is not 0.

    Example:
        >>> D, out = sqeuclidean_kernel(jnp.array([[0.0], [3e20]]))
        >>> out.ravel().tolist()
        [True, True]
    """
    D2, e = _scaled_sqeuclidean(jnp.asarray(X))
    D = times_power_of_two(times_power_of_two(D2, e), e)
    lost = jnp.isinf(D) | ((D2 > 0) & (D < jnp.finfo(D.dtype).tiny))
    return D, jnp.any(lost, axis=1, keepdims=True)


def sqeuclidean_range_failure(column: np.ndarray, where: str, params: dict) -> None:
    """Raise :class:`~holejax._checks.CloudError` when :func:`sqeuclidean_kernel` flagged a row."""
    if not np.any(column):
        return None
    raise CloudError(
        "squared euclidean distances of this cloud leave the float range (they overflow to inf or "
        "underflow to 0)",
        "Use metric='euclidean' (the same merge order, so the same clusters), rescale the cloud, or enable "
        "x64 (jax.enable_x64) with float64 input.",
    )


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
    D2, e = _scaled_sqeuclidean(jnp.asarray(X))
    return times_power_of_two(jnp.sqrt(D2), e)


def _accumulate_units(
    A: jax.Array, B: jax.Array, step, init: jax.Array, chunk_units: int | None = None
) -> jax.Array:
    """Fold ``step(acc, |a_iu - b_ju|)`` over the units ``u``, for all rows of ``A`` and ``B``.

    The rows of ``A`` go in blocks whose ``(block, len(B))`` accumulator
    takes about 4 MiB. Within a block a ``fori_loop`` over units updates the
    accumulator with one column of differences at a time, unrolled 16 units
    deep so that XLA fuses 16 updates into one pass over it: the work is one
    pass over the accumulator per 16 units. Nothing of size
    ``block * unit * len(B)`` is ever built, since writing all the
    differences to memory and reading them back to reduce them would cost
    more memory traffic than the arithmetic it feeds.

    A running float sum over ``d`` units gathers rounding error in
    proportion to ``d`` (8e-6 relative at d = 16384 in float32). With
    ``chunk_units``, wider clouds are folded in chunks of at most that many
    units, each into a fresh accumulator added to the total, so no sum runs
    over more than ``chunk_units`` or ``d / chunk_units`` terms (at most 6e-7
    from d = 512 to 16384 with 256). Units are padded with zero columns to whole chunks,
    which adds ``|0 - 0| = 0``.

    Args:
        A: ``(sample_a, unit)``.
        B: ``(sample_b, unit)``.
        step: ``(acc, diff) -> acc`` on ``(block, sample_b)`` arrays; with
            ``chunk_units`` it must be addition (chunk sums are added).
        init: scalar starting value; its dtype is the accumulator's.
        chunk_units: longest run of units folded into one accumulator.

    Returns:
        ``(sample_a, sample_b)`` accumulators.
    """
    na, d = A.shape
    nb = B.shape[0]
    n_chunks = 1 if chunk_units is None else -(-d // chunk_units)
    width = -(-d // n_chunks)
    if n_chunks > 1:  # equal chunks of a whole number of unrolled passes
        width = -(-width // _UNROLL_UNITS) * _UNROLL_UNITS
        A = jnp.pad(A, ((0, 0), (0, n_chunks * width - d)))
        B = jnp.pad(B, ((0, 0), (0, n_chunks * width - d)))
    block = int(max(1, min(na, _BLOCK_BYTES // max(1, nb * init.dtype.itemsize))))
    n_blocks = -(-na // block)
    Ap = jnp.pad(A, ((0, n_blocks * block - na), (0, 0))).reshape(n_blocks, block, A.shape[1])
    BT = B.T

    def fold(R, first):
        def body(u, acc):
            a = lax.dynamic_index_in_dim(R, first + u, axis=1, keepdims=False)
            b = lax.dynamic_index_in_dim(BT, first + u, axis=0, keepdims=False)
            return step(acc, jnp.abs(a[:, None] - b[None, :]))

        acc = jnp.full((block, nb), init)
        return lax.fori_loop(0, width, body, acc, unroll=min(_UNROLL_UNITS, width))

    def rows(R):
        if n_chunks == 1:
            return fold(R, 0)
        return lax.fori_loop(1, n_chunks, lambda c, total: total + fold(R, c * width), fold(R, 0))

    return lax.map(rows, Ap).reshape(n_blocks * block, nb)[:na]


def _pairwise_fold(X: jax.Array, fold: Callable[[jax.Array, jax.Array], jax.Array]) -> jax.Array:
    """Pairwise ``fold(A, B)`` with a zero diagonal: upper-triangle panels for 512+ samples.

    These metrics cost ``O(n^2 d)`` elementwise work whatever ``d`` is, so
    computing each pair once (:func:`symmetric_blocks`) pays off already for
    moderate ``n``. The cloud is scaled by an exact power of two into
    ``max |x| < 1`` first and the result scaled back, so near the bottom of
    the float range no coordinate difference falls into the subnormals that
    XLA flushes to zero.
    """
    e = scale_exponent(X)  # exact scaling: no difference of a tiny cloud is flushed to zero
    X = times_power_of_two(X, -e)
    if X.shape[0] < _REDUCE_PANEL_MIN_SAMPLES:
        return times_power_of_two(zero_diagonal(fold(X, X)), e)
    return times_power_of_two(zero_diagonal(symmetric_blocks(X, fold, panels=_REDUCE_PANELS)), e)


def _sum_abs_differences(A: jax.Array, B: jax.Array) -> jax.Array:
    """``sum_u |a_iu - b_ju|`` for all rows of ``A`` and ``B``."""
    return _accumulate_units(A, B, jnp.add, jnp.zeros((), A.dtype), chunk_units=_SUM_CHUNK_UNITS)


def _max_abs_differences(A: jax.Array, B: jax.Array) -> jax.Array:
    """``max_u |a_iu - b_ju|`` for all rows of ``A`` and ``B``, as an integer max of float bits.

    IEEE order of non-negative floats equals the order of their bits read as
    signed integers, and an integer max vectorises without the NaN handling
    XLA adds to a float max.
    """
    ints = jnp.int32 if A.dtype == jnp.float32 else jnp.int64

    def step(acc, diff):
        return jnp.maximum(acc, lax.bitcast_convert_type(diff, ints))

    best = _accumulate_units(A, B, step, jnp.zeros((), ints))
    return lax.bitcast_convert_type(best, A.dtype)


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
    return _pairwise_fold(jnp.asarray(X), _sum_abs_differences)


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
    return _pairwise_fold(jnp.asarray(X), _max_abs_differences)
