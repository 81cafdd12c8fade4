"""Persistence landscapes on a grid, in JAX.

The tent of a bar ``(b, d)`` is ``max(0, min(t - b, d - t))`` (Bubenik 2015);
``lambda_k(t)`` is the k-th largest tent at ``t``. Infinite bars (the
essential class of H0) are left out. gudhi's ``representations.Landscape``
returns ``sqrt(2)`` times these values (it samples in rotated coordinates).

* :func:`persistence_landscape` / :func:`persistence_landscapes` -- one
  diagram, or many at once by one ``jax.vmap`` over diagrams padded with
  ``[0, 0]`` rows; both work inside ``jax.jit``.
* :func:`diagram_landscape_norm` -- the Hilbert-space norm
  ``sqrt(sum_k int lambda_k(t)^2 dt)`` of a diagram's landscape, integrated
  exactly (the landscape is piecewise linear); the default wherever holejax
  reports a landscape norm.
* :func:`landscape_norm`, :func:`landscape_distance` -- the same norm for
  landscapes sampled on a grid (averages, differences), by the trapezoid
  rule; its error shrinks with the grid step (a bar shorter than a few
  steps is under-counted).

The activation-landscape pipeline built on these lives in
:mod:`holejax.topology.activation_landscapes`; statistics and the PCA view in
:mod:`holejax.topology.landscape_stats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from holejax._executables import stored_jit
from holejax.topology.diagrams import as_diagram

__all__ = [
    "check_grid",
    "check_num_landscapes",
    "trapezoid_weights",
    "landscape_grid",
    "persistence_landscape",
    "persistence_landscapes",
    "landscape_norm",
    "landscape_distance",
    "diagram_landscape_norm",
]

# breakpoints evaluated per block in diagram_landscape_norm: (block, bar) float64 values
_BREAKPOINT_BLOCK_VALUES = 1 << 22


def landscape_grid(start: float = 0.0, stop: float = 1.0, resolution: int = 101) -> np.ndarray:
    """An evenly spaced grid ``(grid,)`` for landscapes.

    After :func:`normalize_activations` all filtration values lie in
    ``[0, 1]``, the default range. For the local variant distances reach 2.

    Example:
        >>> landscape_grid(0.0, 1.0, 5).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if int(resolution) != resolution or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2; got {resolution!r}.")
    if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
        raise ValueError(f"the grid needs finite start < stop; got start={start!r}, stop={stop!r}.")
    return np.linspace(float(start), float(stop), int(resolution))


def check_grid(grid: Any) -> np.ndarray:
    """``grid`` as a float64 array ``(grid,)``, checked 1-D, finite and strictly increasing (a tracer as is).

    Example:
        >>> check_grid([0, 0.5, 1]).tolist()
        [0.0, 0.5, 1.0]
    """
    if isinstance(grid, jax.core.Tracer):
        return grid
    arr = np.asarray(grid, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(
            f"grid must be 1-D with at least 2 values (grid,); got shape {arr.shape}. "
            "Use landscape_grid(start, stop, resolution)."
        )
    if not np.isfinite(arr).all() or not (np.diff(arr) > 0).all():
        raise ValueError("grid must hold finite, strictly increasing values; use landscape_grid(start, stop, resolution).")
    return arr


def check_num_landscapes(num_landscapes: int) -> int:
    """``num_landscapes`` as an int, checked >= 1."""
    if int(num_landscapes) != num_landscapes or num_landscapes < 1:
        raise ValueError(f"num_landscapes must be an integer >= 1; got {num_landscapes!r}.")
    return int(num_landscapes)


def trapezoid_weights(grid: jax.Array) -> jax.Array:
    """Weights ``w`` (grid,) with ``sum_g w_g f(t_g)`` the trapezoid rule on ``grid``.

    Example:
        >>> trapezoid_weights(jnp.array([0.0, 1.0, 3.0])).tolist()
        [0.5, 1.5, 1.0]
    """
    step = jnp.diff(grid)
    return jnp.concatenate([step[:1] / 2, (step[1:] + step[:-1]) / 2, step[-1:] / 2])


@stored_jit(static_argnames="num_landscapes")
def _landscape_kernel(dgm: jax.Array, grid: jax.Array, num_landscapes: int) -> jax.Array:
    birth, death = dgm[:, 0], dgm[:, 1]
    finite = jnp.isfinite(birth) & jnp.isfinite(death)
    mid = jnp.where(finite, (birth + death) / 2, 0.0)
    half = jnp.where(finite, (death - birth) / 2, 0.0)
    tents = jnp.maximum(half[None, :] - jnp.abs(grid[:, None] - mid[None, :]), 0.0)  # (grid, bar)
    missing = num_landscapes - tents.shape[1]
    if missing > 0:
        tents = jnp.pad(tents, ((0, 0), (0, missing)))
    top = jax.lax.top_k(tents, num_landscapes)[0]  # (grid, landscape), descending
    return top.T


def persistence_landscape(dgm: Any, grid: Any, num_landscapes: int = 5) -> jax.Array:
    """The first ``num_landscapes`` landscape functions of one diagram on ``grid``.

    Args:
        dgm: ``(k, 2)`` diagram; infinite bars are left out, rows ``[0, 0]``
            (padding) add nothing. ``k`` may be 0.
        grid: ``(grid,)`` increasing sample points.
        num_landscapes: how many functions ``lambda_1 >= lambda_2 >= ...``.

    Returns:
        ``(num_landscapes, grid)`` jax.Array. Traceable: inside ``jax.jit``
        or ``jax.vmap`` pass arrays; validation then is skipped.

    Example:
        >>> lam = persistence_landscape([[0.0, 2.0], [1.0, 2.0]], [0.0, 0.5, 1.0, 1.5, 2.0], 2)
        >>> np.asarray(lam).tolist()
        [[0.0, 0.5, 1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.5, 0.0]]
    """
    num_landscapes = check_num_landscapes(num_landscapes)
    if not isinstance(dgm, jax.core.Tracer):
        dgm = as_diagram(dgm, "dgm")
    grid = check_grid(grid)
    dtype = jnp.result_type(float)
    return _landscape_kernel(jnp.asarray(dgm, dtype), jnp.asarray(grid, dtype), num_landscapes)


def _pad_diagrams(dgms: Sequence[Any], argument: str) -> np.ndarray:
    checked = [as_diagram(d, f"{argument}[{i}]") for i, d in enumerate(dgms)]
    checked = [d[np.isfinite(d[:, 1])] for d in checked]
    k = max([len(d) for d in checked] + [1])
    out = np.zeros((len(checked), k, 2))
    for i, d in enumerate(checked):
        out[i, : len(d)] = d
    return out


def persistence_landscapes(dgms: Any, grid: Any, num_landscapes: int = 5) -> jax.Array:
    """Landscapes of many diagrams at once: one ``jax.vmap`` over padded diagrams.

    Args:
        dgms: a sequence of ``(k_i, 2)`` diagrams (padded here with ``[0, 0]``
            rows, infinite bars dropped), or a ``(batch, k, 2)`` array.
        grid: ``(grid,)``.
        num_landscapes: functions per diagram.

    Returns:
        ``(batch, num_landscapes, grid)`` jax.Array.

    Example:
        >>> lam = persistence_landscapes([[[0.0, 2.0]], []], [0.0, 1.0, 2.0], 1)
        >>> np.asarray(lam).tolist()
        [[[0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]]
    """
    num_landscapes = check_num_landscapes(num_landscapes)
    grid = check_grid(grid)
    if isinstance(dgms, jax.core.Tracer):
        batch = dgms
    elif isinstance(dgms, (np.ndarray, jax.Array)) and np.ndim(dgms) == 3:
        batch = _pad_diagrams(list(np.asarray(dgms)), "dgms")
    elif isinstance(dgms, Sequence) and not isinstance(dgms, str):
        if len(dgms) == 0:
            raise ValueError("dgms is empty; pass at least one diagram.")
        batch = _pad_diagrams(dgms, "dgms")
    else:
        raise TypeError(
            f"dgms must be a sequence of (k, 2) diagrams or a (batch, k, 2) array; got {type(dgms).__name__}."
        )
    dtype = jnp.result_type(float)
    kernel = jax.vmap(_landscape_kernel, in_axes=(0, None, None))
    return kernel(jnp.asarray(batch, dtype), jnp.asarray(grid, dtype), num_landscapes)


def landscape_norm(landscape: Any, grid: Any) -> jax.Array:
    """Norm ``sqrt(sum_k int lambda_k(t)^2 dt)`` by the trapezoid rule on ``grid``.

    Args:
        landscape: ``(..., num_landscapes, grid)``; leading axes (e.g. layer)
            are kept, so the norm of a whole activation landscape curve in the
            product space is ``sqrt(sum(landscape_norm(curve, grid)**2))``.
        grid: ``(grid,)``.

    Returns:
        ``(...)`` jax.Array. Traceable.

    Example:
        >>> grid = landscape_grid(0.0, 2.0, 201)
        >>> lam = persistence_landscape([[0.0, 2.0]], grid, 1)
        >>> round(float(landscape_norm(lam, grid)), 4)  # sqrt(2/3)
        0.8165
    """
    grid = check_grid(grid)
    lam = jnp.asarray(landscape)
    if lam.ndim < 2 or lam.shape[-1] != np.shape(grid)[0]:
        raise ValueError(
            f"landscape must have shape (..., num_landscapes, grid) with grid={np.shape(grid)[0]}; "
            f"got shape {lam.shape}."
        )
    weights = trapezoid_weights(jnp.asarray(grid, lam.dtype))
    return jnp.sqrt(jnp.sum(lam**2 * weights, axis=(-1, -2)))


def landscape_distance(a: Any, b: Any, grid: Any) -> jax.Array:
    """``landscape_norm(a - b, grid)`` for landscapes of the same shape.

    Example:
        >>> grid = [0.0, 1.0, 2.0]
        >>> float(landscape_distance([[0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]], grid))
        1.0
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got {a.shape} and {b.shape}.")
    return landscape_norm(a - b, grid)


def _landscape_breakpoints(birth: np.ndarray, death: np.ndarray) -> np.ndarray:
    """Every ``t`` where some ``lambda_k`` can change slope, sorted and unique.

    Tents change slope at ``b``, ``(b + d) / 2`` and ``d``; two tents can only
    swap order where the rising side of one meets the falling side of the
    other (parallel sides never cross), at ``(b_i + d_j) / 2`` with
    ``b_j <= b_i <= d_j <= d_i``. Between consecutive breakpoints every
    ``lambda_k`` is linear.
    """
    i, j = np.nonzero(
        (birth[None, :] <= birth[:, None]) & (birth[:, None] <= death[None, :]) & (death[None, :] <= death[:, None])
    )
    crossings = (birth[i] + death[j]) / 2
    return np.unique(np.concatenate([birth, death, (birth + death) / 2, crossings]))


def diagram_landscape_norm(dgm: Any, num_landscapes: int | None = None) -> float:
    """Exact norm ``sqrt(sum_k int lambda_k(t)^2 dt)`` of the landscape of one diagram.

    Every ``lambda_k`` is piecewise linear with breakpoints at the bars'
    births, deaths, midpoints and the crossings of two tents; on each piece
    ``[t0, t1]`` with end values ``a, c`` the integral of the square is
    ``(t1 - t0) (a^2 + a c + c^2) / 3``. Computed in float64 on the host;
    the cost grows with the number of crossing bars (quadratic in the worst
    case). Infinite bars are left out, as in :func:`persistence_landscape`.

    Args:
        dgm: ``(k, 2)`` diagram.
        num_landscapes: sum over ``lambda_1 .. lambda_num_landscapes`` only;
            default all of them (the norm of Wheeler, Bouza & Bubenik).

    Returns:
        The norm, a Python float (0 for a diagram without finite bars).

    Example:
        >>> round(diagram_landscape_norm([[0.0, 2.0]]), 6)  # sqrt(2/3)
        0.816497
        >>> round(diagram_landscape_norm([[0.0, 2.0], [0.0, 2.0]]), 6)  # two equal tents: sqrt(4/3)
        1.154701
    """
    arr = as_diagram(dgm, "dgm")
    arr = arr[np.isfinite(arr[:, 1]) & (arr[:, 1] > arr[:, 0])]
    if num_landscapes is not None:
        num_landscapes = check_num_landscapes(num_landscapes)
    if len(arr) == 0:
        return 0.0
    birth, death = arr[:, 0], arr[:, 1]
    mid, half = (birth + death) / 2, (death - birth) / 2
    t = _landscape_breakpoints(birth, death)
    keep = len(arr) if num_landscapes is None else min(num_landscapes, len(arr))
    block = max(2, _BREAKPOINT_BLOCK_VALUES // len(arr))
    total = 0.0
    for lo in range(0, len(t) - 1, block - 1):  # blocks share their last breakpoint
        tb = t[lo : lo + block]
        tents = np.maximum(half[None, :] - np.abs(tb[:, None] - mid[None, :]), 0.0)  # (block, bar)
        lam = -np.sort(-tents, axis=1)[:, :keep]  # lambda_1 .. lambda_keep at the breakpoints
        a, c = lam[:-1], lam[1:]
        total += float(np.sum(np.diff(tb)[:, None] * (a * a + a * c + c * c)) / 3)
    return float(np.sqrt(total))
