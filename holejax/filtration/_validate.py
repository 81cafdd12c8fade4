"""Checks for distance matrices handed to the H0 engine.

Rank, shape and dtype are checked on the host before tracing
(:func:`prepare_distance_matrices`); the data checks read a one-pass
:func:`summary` of the matrices, which :func:`holejax.h0` computes
for a batch alongside the trees, and raise from it on the host
(:func:`check_summary`). :func:`as_distance_matrices` does all three.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from holejax._checks import as_numeric_array
from holejax._executables import stored_jit

__all__ = ["as_distance_matrices", "check_summary", "prepare_distance_matrices", "summary"]

# relative tolerance for symmetry and the diagonal, against the largest finite entry
SYMMETRY_RTOL = 1e-4


# rows and columns compared entry by entry in the symmetry screen
_SYMMETRY_LINES = 16


@stored_jit
def summary(D: jax.Array) -> tuple[jax.Array, ...]:
    """One pass over ``D`` plus a few of its lines.

    The smallest entry of each matrix (NaN propagates) and the largest entry
    come from two sibling reductions XLA fuses into one read of the matrix.
    Symmetry is screened on ``_SYMMETRY_LINES`` evenly spaced rows, compared
    with the matching columns, and on the diagonal; no transpose is built.
    Traceable: callers may compute it inside their own compiled program.
    """
    n = D.shape[-1]
    smallest = jnp.min(D, axis=(-1, -2))
    largest = jnp.max(D, axis=(-1, -2))
    count = min(n, _SYMMETRY_LINES)
    lines = (jnp.arange(count) * (n - 1)) // max(count - 1, 1)
    rows = jnp.take(D, lines, axis=-2)
    cols = jnp.swapaxes(jnp.take(D, lines, axis=-1), -1, -2)
    scale = jnp.max(jnp.where(jnp.isfinite(rows), rows, 0))
    asym = ~jnp.all((rows == cols) | (jnp.abs(rows - cols) <= SYMMETRY_RTOL * scale))
    diag = jnp.max(jnp.abs(jnp.diagonal(D, axis1=-2, axis2=-1)))
    return smallest, largest, asym, diag



def _where(index: tuple[int, ...], batched: bool) -> str:
    if batched:
        return f"matrix {index[0]}, entry ({index[1]}, {index[2]})"
    return f"entry ({index[0]}, {index[1]})"


def as_distance_matrices(D: Any, argument: str = "D", *, batched: bool = False) -> jax.Array:
    """Validate one ``(sample, sample)`` (or a batch of) distance matrices.

    Checks: rank and squareness, a real dtype, no NaN (the first offending
    index is named), no negative entries, symmetry up to a relative
    ``1e-4`` of the largest finite entry, a zero diagonal. ``+inf`` is
    allowed (samples that never connect) as long as it is symmetric.

    The check costs one read of the matrix (a fused minimum and maximum, which
    also catches NaN and negative entries anywhere) plus 16 evenly spaced
    rows compared with their columns. So symmetry is screened, not proven:
    a matrix that is asymmetric as a whole (a directed kNN graph, a
    similarity, a transposed block) is caught, an isolated asymmetric entry
    off the screened lines is not. The offending entry is located on the host
    only when something is wrong.

    Args:
        D: array-like ``(sample, sample)``, or ``(..., sample, sample)``
            when ``batched``.
        argument: the caller's argument name, used in messages.
        batched: whether a leading batch axis is expected.

    Returns:
        A jax array, float32 unless the input was float64 (and x64 is on).

    Example:
        >>> as_distance_matrices([[0, 1], [1, 0]]).dtype
        dtype('float32')
    """
    out = prepare_distance_matrices(D, argument, batched=batched)
    if out.size == 0:
        return out
    check_summary(out, summary(out), argument, batched=batched)
    return out


def prepare_distance_matrices(D: Any, argument: str = "D", *, batched: bool = False) -> jax.Array:
    """The host-side part of :func:`as_distance_matrices`: rank, shape, dtype (no data pass).

    The data checks then need :func:`summary` of the result, which a caller
    may compute inside its own compiled program, and :func:`check_summary`.
    """
    if isinstance(D, jax.core.Tracer):
        raise TypeError(f"{argument} is a traced value; validation needs a concrete array.")
    arr = D if isinstance(D, jax.Array) else as_numeric_array(D, argument, "a distance matrix", numeric=False)
    dims = "(..., sample, sample)" if batched else "(sample, sample)"
    if arr.ndim < 2 or (arr.ndim != 2 and not batched):
        raise ValueError(
            f"{argument} must have shape {dims}; got shape {tuple(arr.shape)}. "
            "hj.h0 takes distance matrices with any leading batch axes."
        )
    if arr.shape[-1] != arr.shape[-2]:
        raise ValueError(
            f"{argument} must be square {dims}; got shape {tuple(arr.shape)}. "
            "Pass a distance matrix (hj.pairwise_distances(X)), or use "
            "hj.h0_from_points(X) for a point cloud."
        )
    if arr.shape[-1] < 1:
        raise ValueError(f"{argument} must hold at least 1 sample; got shape {tuple(arr.shape)}.")
    dtype = np.dtype(arr.dtype)
    if dtype.kind not in "fiub":
        raise TypeError(f"{argument} must hold real numbers; got dtype {dtype}.")
    if dtype != np.float64 and dtype != np.float32:
        arr = np.asarray(arr, np.float32)
    # device_put transfers the host matrix as it is; jnp.asarray would go through a conversion first
    return arr if isinstance(arr, jax.Array) else jax.device_put(arr)


def check_summary(out: jax.Array, summ: tuple, argument: str = "D", *, batched: bool = False) -> None:
    """Raise on NaN, negative, asymmetric or non-zero-diagonal matrices, given their :func:`summary`.

    ``summ`` may also hold one summary per matrix of a batch (leading axis);
    the entries are combined here. ``out`` is read on the host only to locate
    an offending entry.
    """
    smallest, largest, asym, diag = (np.asarray(v) for v in summ)
    asym, diag = bool(np.any(asym)), np.max(diag)
    largest = np.max(largest)
    if np.isnan(smallest).any():
        idx = tuple(int(i) for i in np.argwhere(np.isnan(np.asarray(out)))[0])
        raise ValueError(
            f"{argument} holds NaN at {_where(idx, batched)}. Distances must be numbers; "
            "check the points that produced them (hj.pairwise_distances rejects NaN points)."
        )
    if (smallest < 0).any():
        idx = tuple(int(i) for i in np.argwhere(np.asarray(out) < 0)[0])
        raise ValueError(
            f"{argument} must be non-negative; got {float(np.asarray(out)[idx])} at "
            f"{_where(idx, batched)}. Pass distances, not similarities or log-values."
        )
    if not np.isfinite(largest):  # +inf entries: the tolerance scales with the finite ones
        host = np.asarray(out)
        largest = np.max(np.where(np.isfinite(host), host, 0))
    tol = SYMMETRY_RTOL * max(float(largest), np.finfo(np.float32).tiny)
    if bool(asym):  # a screened line differs: locate the largest difference on the host
        host = np.asarray(out)
        Dt = np.swapaxes(host, -1, -2)
        both = np.isfinite(host) & np.isfinite(Dt)
        with np.errstate(invalid="ignore"):
            diff = np.where(both, np.abs(host - Dt), 0)
        diff = np.where(np.isinf(host) != np.isinf(Dt), np.inf, diff)
        if diff.max() > tol:
            idx = tuple(int(i) for i in np.unravel_index(np.argmax(diff), diff.shape))
            raise ValueError(
                f"{argument} must be symmetric; it differs from its transpose by "
                f"{float(diff[idx]):.3g} at {_where(idx, batched)} (tolerance {tol:.3g}). "
                "Symmetrise it, e.g. (D + D.T) / 2, or fix the metric."
            )
    if diag > tol:
        raise ValueError(
            f"{argument} must have a zero diagonal (distance of a sample to itself); "
            f"the largest diagonal entry is {float(diag):.3g}. Set it to 0, "
            "e.g. D[np.diag_indices(len(D))] = 0."
        )
