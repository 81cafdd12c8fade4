"""Persistence diagrams: validation, distances and scalar summaries.

A persistence diagram is a ``(k, 2)`` array of ``[birth, death]`` rows with
finite births and ``death >= birth``; ``death = +inf`` marks an *essential*
(infinite) bar, such as the one component of H0 that never dies. ``k`` may be
0. Points on the diagonal (``birth == death``) are allowed and change nothing.

Infinite bars are handled explicitly, never silently:

* :func:`diagram_distance` with ``essential="match"`` (the default) matches
  the essential bars of the two diagrams among themselves by sorted birth (the
  optimal matching on a line) and adds their birth differences to the cost. If
  the two diagrams hold different numbers of essential bars the distance is
  ``+inf``, as in gudhi. ``essential="ignore"`` drops them first.
* :func:`total_persistence` and :func:`persistent_entropy` sum over finite
  bars only; essential bars would make both infinite.

The distances are exact: the bottleneck distance by a binary search over the
candidate values with a bipartite matching test (Hopcroft-Karp in scipy), the
Wasserstein distance by an optimal rectangular assignment equivalent to
the diagonal-augmented problem (scipy's ``linear_sum_assignment``). The summaries are written in JAX
and work under ``jax.jit`` and ``jax.vmap`` on diagrams padded with diagonal
rows such as ``[0, 0]``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.sparse import csr_matrix
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import maximum_bipartite_matching

from holejax._checks import check_choice

__all__ = [
    "as_diagram",
    "split_essential",
    "diagram_distance",
    "bottleneck_distance",
    "wasserstein_distance",
    "total_persistence",
    "persistent_entropy",
]


def as_diagram(dgm: Any, argument: str = "dgm") -> np.ndarray:
    """Validate a persistence diagram and return it as a float64 ``(k, 2)`` array.

    Args:
        dgm: array-like of shape ``(k, 2)`` holding ``[birth, death]`` rows. An
            empty array of any shape (``[]``, ``np.empty((0, 2))``) is the
            empty diagram.
        argument: name of the argument in the caller, used in messages.

    Returns:
        ``np.ndarray`` of shape ``(k, 2)``, dtype float64.

    Raises:
        ValueError: wrong shape, NaN, infinite birth, or ``death < birth``.

    Example:
        >>> as_diagram([[0, 1], [0, float("inf")]]).shape
        (2, 2)
        >>> as_diagram([]).shape
        (0, 2)
    """
    if isinstance(dgm, jax.core.Tracer):
        raise TypeError(
            f"{argument} is a traced JAX value; diagram distances run on concrete arrays. "
            "Call them outside jax.jit / jax.vmap."
        )
    arr = np.asarray(dgm)
    if arr.size == 0:
        return np.empty((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"{argument} must have shape (k, 2) with [birth, death] rows; got shape {arr.shape}. "
            "Pass one homology degree at a time, e.g. diagrams[1] from ripser-style output."
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{argument} must be numeric; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        row = int(np.argmax(np.isnan(arr).any(axis=1)))
        raise ValueError(f"{argument} holds NaN at row {row}; remove or fix that bar.")
    if not np.isfinite(arr[:, 0]).all():
        row = int(np.argmax(~np.isfinite(arr[:, 0])))
        raise ValueError(
            f"{argument} has an infinite birth at row {row} ({arr[row].tolist()}); births must be "
            "finite. Only deaths may be +inf (essential bars)."
        )
    if (arr[:, 1] < arr[:, 0]).any():
        row = int(np.argmax(arr[:, 1] < arr[:, 0]))
        raise ValueError(
            f"{argument} has death < birth at row {row} ({arr[row].tolist()}); expected "
            "death >= birth. For a superlevel-set filtration negate both columns first."
        )
    return arr


def split_essential(dgm: Any, argument: str = "dgm") -> tuple[np.ndarray, np.ndarray]:
    """Split a diagram into its finite bars and the births of its essential bars.

    Returns:
        ``(finite (k_finite, 2), essential_births (k_essential,))``, the latter sorted.

    Example:
        >>> fin, ess = split_essential([[0, 1], [0, float("inf")], [0.5, 2]])
        >>> fin.tolist(), ess.tolist()
        ([[0.0, 1.0], [0.5, 2.0]], [0.0])
    """
    arr = as_diagram(dgm, argument)
    inf = np.isinf(arr[:, 1])
    return arr[~inf], np.sort(arr[inf, 0])


def _check_order(order: float, internal_p: float) -> tuple[float, float]:
    order = float(order)
    internal_p = float(internal_p)
    if not (math.isfinite(order) and order >= 1.0):
        raise ValueError(
            f"order must be a finite number >= 1 (the Wasserstein exponent); got {order}. "
            "For order=inf use kind='bottleneck'."
        )
    if not (internal_p >= 1.0):  # also rejects NaN
        raise ValueError(f"internal_p must be >= 1 or inf (the ground L^p norm); got {internal_p}.")
    return order, internal_p


def _ground(fin_a: np.ndarray, fin_b: np.ndarray, internal_p: float):
    """Point-to-point costs (k_a, k_b) and distances to the diagonal (k_a,), (k_b,)."""
    diff = np.abs(fin_a[:, None, :] - fin_b[None, :, :])
    if math.isinf(internal_p):
        cost = diff.max(axis=-1)
        factor = 1.0
    else:
        cost = (diff**internal_p).sum(axis=-1) ** (1.0 / internal_p)
        factor = 2.0 ** (1.0 / internal_p)
    diag_a = factor * (fin_a[:, 1] - fin_a[:, 0]) / 2.0
    diag_b = factor * (fin_b[:, 1] - fin_b[:, 0]) / 2.0
    return cost, diag_a, diag_b


def _covers(edges: np.ndarray) -> bool:
    """True if the bipartite graph ``edges`` (rows, cols) has a matching covering every row."""
    rows = edges.shape[0]
    if rows == 0:
        return True
    if edges.shape[1] < rows or not edges.any(axis=1).all():
        return False
    match = maximum_bipartite_matching(csr_matrix(edges), perm_type="column")
    return int((match >= 0).sum()) == rows


def _covers_line(x: np.ndarray, y: np.ndarray, eps: float) -> bool:
    """True if every value of sorted ``x`` gets its own value of sorted ``y`` within ``eps``.

    The greedy assignment (each ``x`` in turn takes the least unused ``y >= x - eps``)
    is optimal for intervals of equal width; its index sequence is
    ``p_k = k + max_{m <= k} (lower_m - m)``.
    """
    if len(x) == 0:
        return True
    if len(x) > len(y):
        return False
    lower = np.searchsorted(y, x - eps, side="left")
    # settle rounding in x - eps: compare |x - y| <= eps exactly as the
    # candidate values are computed, so the bisection lands on one of them
    before = np.maximum(lower - 1, 0)
    lower = np.where((lower > 0) & (np.abs(x - y[before]) <= eps), before, lower)
    at = np.minimum(lower, len(y) - 1)
    lower = np.where((lower < len(y)) & (y[at] < x) & (np.abs(x - y[at]) > eps), lower + 1, lower)
    k = np.arange(len(x))
    picks = k + np.maximum.accumulate(lower - k)
    if picks[-1] >= len(y):
        return False
    return bool((np.abs(y[picks] - x) <= eps).all())


def _bottleneck_line(x: np.ndarray, y: np.ndarray, internal_p: float) -> float:
    """Exact bottleneck distance for diagrams whose bars all share one birth (e.g. H0).

    ``x`` (k_a,) and ``y`` (k_b,) are bar lengths; pairs cost ``|x_i - y_j|``.
    Bisection on the value with a greedy matching test, O((k_a + k_b) log) per step.
    """
    factor = 1.0 if math.isinf(internal_p) else 2.0 ** (1.0 / internal_p)
    x, y = np.sort(x), np.sort(y)
    diag_x, diag_y = factor * x / 2.0, factor * y / 2.0
    upper = float(max(diag_x.max(initial=0.0), diag_y.max(initial=0.0)))

    def feasible(eps: float) -> bool:
        # same Mendelsohn-Dulmage reduction as _bottleneck_finite
        return _covers_line(x[diag_x > eps], y, eps) and _covers_line(y[diag_y > eps], x, eps)

    # Bisection over the bit patterns of non-negative doubles, which are
    # ordered like the values: ends on the least feasible double.
    lo, hi = 0, int(np.float64(upper).view(np.int64))
    while lo < hi:
        mid = (lo + hi) // 2
        if feasible(float(np.int64(mid).view(np.float64))):
            hi = mid
        else:
            lo = mid + 1
    return float(np.int64(hi).view(np.float64))


def _bottleneck_finite(fin_a: np.ndarray, fin_b: np.ndarray, internal_p: float) -> float:
    if len(fin_a) == 0 and len(fin_b) == 0:
        return 0.0
    births = np.concatenate([fin_a[:, 0], fin_b[:, 0]])
    if (births == births[0]).all():
        return _bottleneck_line(fin_a[:, 1] - births[0], fin_b[:, 1] - births[0], internal_p)
    cost, diag_a, diag_b = _ground(fin_a, fin_b, internal_p)
    upper = float(max(diag_a.max(initial=0.0), diag_b.max(initial=0.0)))
    # an edge dearer than sending both ends to the diagonal is never needed
    useful = cost <= np.maximum(diag_a[:, None], diag_b[None, :])
    candidates = np.concatenate([cost[useful], diag_a, diag_b, [0.0]])
    candidates = np.unique(candidates[candidates <= upper])
    edge_cost = np.where(useful, cost, np.inf)

    def feasible(eps: float) -> bool:
        # A perfect matching of the diagonal-augmented graph exists iff some
        # matching among eps-close pairs covers every point farther than eps
        # from the diagonal; by the Mendelsohn-Dulmage theorem it suffices to
        # cover those points of each side separately.
        far_a, far_b = diag_a > eps, diag_b > eps
        return _covers(edge_cost[far_a] <= eps) and _covers((edge_cost[:, far_b] <= eps).T)

    lo, hi = 0, len(candidates) - 1  # feasible(candidates[hi]) holds: all to the diagonal
    while lo < hi:
        mid = (lo + hi) // 2
        if feasible(float(candidates[mid])):
            hi = mid
        else:
            lo = mid + 1
    return float(candidates[lo])


def _wasserstein_line(x: np.ndarray, y: np.ndarray, order: float, internal_p: float) -> float:
    """Exact Wasserstein cost**order for diagrams whose bars all share one birth (e.g. H0).

    The points lie on one vertical line, so matched pairs cost ``|x_i - y_j|**order``
    and, the cost being convex, some optimal matching is monotone in the
    sorted lengths ``x`` (k_a,) and ``y`` (k_b,). A dynamic programme over the
    sorted lists then gives the optimum in O(k_a k_b): ``f[i, j]``, the cost
    of the first ``i`` and ``j`` points, is the least of deleting ``x_i``,
    deleting ``y_j`` or pairing them; deleting runs of ``y`` is a prefix
    minimum, so each row is a few vector operations.
    """
    factor = 1.0 if math.isinf(internal_p) else 2.0 ** (1.0 / internal_p)
    x, y = np.sort(x), np.sort(y)
    del_x = (factor * x / 2.0) ** order
    del_y = (factor * y / 2.0) ** order
    prefix_y = np.concatenate([[0.0], np.cumsum(del_y)])
    row = prefix_y.copy()  # f[0, j]: the first j points of y deleted
    for i in range(len(x)):
        pair = row[:-1] + np.abs(x[i] - y) ** order
        g = row + del_x[i]
        g[1:] = np.minimum(g[1:], pair)
        row = prefix_y + np.minimum.accumulate(g - prefix_y)
    return float(row[-1])


def _wasserstein_finite(fin_a: np.ndarray, fin_b: np.ndarray, order: float, internal_p: float) -> float:
    """Sum of cost**order of an optimal matching (the Wasserstein distance to the power order)."""
    if len(fin_a) > len(fin_b):
        fin_a, fin_b = fin_b, fin_a
    births = np.concatenate([fin_a[:, 0], fin_b[:, 0]])
    if len(fin_a) and (births == births[0]).all():
        return _wasserstein_line(fin_a[:, 1] - births[0], fin_b[:, 1] - births[0], order, internal_p)
    ka, kb = len(fin_a), len(fin_b)
    cost, diag_a, diag_b = _ground(fin_a, fin_b, internal_p)
    diag_a_q, diag_b_q = diag_a**order, diag_b**order
    baseline = float(diag_b_q.sum())  # every point of b sent to the diagonal
    if ka == 0:
        return baseline
    # Rectangular assignment: each point a_i takes a point b_j (saving b_j's
    # diagonal cost) or its own diagonal copy; points of b left over go to
    # the diagonal. This is the diagonal-augmented problem with the
    # diagonal-to-diagonal block folded into the baseline.
    table = np.full((ka, kb + ka), np.inf)
    table[:, :kb] = cost**order - diag_b_q[None, :]
    table[:, kb:][np.diag_indices(ka)] = diag_a_q
    rows, cols = linear_sum_assignment(table)
    return max(baseline + float(table[rows, cols].sum()), 0.0)


def diagram_distance(
    dgm_a: Any,
    dgm_b: Any,
    kind: str = "bottleneck",
    order: float = 1.0,
    internal_p: float = math.inf,
    *,
    essential: str = "match",
) -> float:
    """Bottleneck or Wasserstein distance between two persistence diagrams.

    Points may be matched to each other or to the diagonal. The cost of
    matching two points is their ``internal_p`` distance in the plane; the
    cost of sending ``(b, d)`` to the diagonal is its distance to the diagonal,
    ``2**(1/internal_p) * (d - b) / 2`` (``(d - b) / 2`` for ``internal_p=inf``).
    The bottleneck distance is the least possible largest cost; the
    Wasserstein distance of order ``q`` is ``(least possible sum of cost**q)**(1/q)``.

    Infinite bars: with ``essential="match"`` the births of the essential bars
    of each diagram are sorted and matched in order (cost ``|b_a - b_b|``); if the
    two diagrams hold different numbers of essential bars the distance is
    ``+inf``. With ``essential="ignore"`` essential bars are dropped. This
    agrees with ``gudhi.bottleneck_distance`` and ``gudhi.wasserstein``.

    Args:
        dgm_a, dgm_b: diagrams of shape ``(k_a, 2)`` and ``(k_b, 2)``, ``[birth, death]``.
        kind: ``"bottleneck"`` or ``"wasserstein"``.
        order: Wasserstein exponent ``q >= 1`` (ignored for the bottleneck distance).
        internal_p: ground norm on the plane, ``>= 1`` or ``inf`` (the usual choice).
        essential: ``"match"`` or ``"ignore"``, see above.

    Returns:
        The distance as a Python float (``inf`` when essential parts cannot be matched).

    Example:
        >>> a = [[0.0, 1.0], [0.0, float("inf")]]
        >>> b = [[0.0, 1.5], [0.0, float("inf")]]
        >>> diagram_distance(a, b)
        0.5
        >>> diagram_distance(a, b, kind="wasserstein", order=2.0)
        0.5
        >>> diagram_distance(a, [[0.0, 1.0]])
        inf
    """
    check_choice(kind, "kind", ["bottleneck", "wasserstein"])
    check_choice(essential, "essential", ["match", "ignore"])
    order, internal_p = _check_order(order, internal_p)
    fin_a, ess_a = split_essential(dgm_a, "dgm_a")
    fin_b, ess_b = split_essential(dgm_b, "dgm_b")
    if essential == "match":
        if len(ess_a) != len(ess_b):
            return math.inf
        ess_cost = np.abs(ess_a - ess_b)
    else:
        ess_cost = np.empty(0)
    if kind == "bottleneck":
        return max(_bottleneck_finite(fin_a, fin_b, internal_p), float(ess_cost.max(initial=0.0)))
    total = _wasserstein_finite(fin_a, fin_b, order, internal_p) + float((ess_cost**order).sum())
    return float(total ** (1.0 / order))


def bottleneck_distance(dgm_a: Any, dgm_b: Any, *, essential: str = "match") -> float:
    """Bottleneck distance (ground norm L-inf); see :func:`diagram_distance`.

    Example:
        >>> bottleneck_distance([[0, 2]], [])
        1.0
    """
    return diagram_distance(dgm_a, dgm_b, "bottleneck", essential=essential)


def wasserstein_distance(
    dgm_a: Any, dgm_b: Any, order: float = 1.0, internal_p: float = math.inf, *, essential: str = "match"
) -> float:
    """Wasserstein distance of order ``order``; see :func:`diagram_distance`.

    Example:
        >>> wasserstein_distance([[0, 2], [0, 4]], [])
        3.0
    """
    return diagram_distance(dgm_a, dgm_b, "wasserstein", order, internal_p, essential=essential)


def _summary_input(dgm: Any, argument: str) -> jax.Array:
    if isinstance(dgm, jax.core.Tracer):
        if dgm.ndim < 2 or dgm.shape[-1] != 2:
            raise ValueError(f"{argument} must have shape (..., k, 2); got shape {dgm.shape}.")
        return dgm
    arr = np.asarray(dgm)
    if arr.size and arr.ndim == 3 and arr.shape[-1] == 2:
        for i in range(arr.shape[0]):
            as_diagram(arr[i], f"{argument}[{i}]")
        return jnp.asarray(arr, dtype=jnp.result_type(float))
    return jnp.asarray(as_diagram(arr, argument), dtype=jnp.result_type(float))


def _finite_lengths(dgm: jax.Array) -> jax.Array:
    lengths = dgm[..., 1] - dgm[..., 0]
    return jnp.where(jnp.isfinite(lengths), lengths, 0.0)


def total_persistence(dgm: Any, p: float = 1.0) -> jax.Array:
    """Total persistence ``sum over finite bars of (death - birth)**p``.

    Essential (infinite) bars are left out. Works under ``jax.jit`` and
    ``jax.vmap``; pad diagrams of different sizes with diagonal rows ``[0, 0]``.

    Args:
        dgm: ``(k, 2)`` diagram, or ``(batch, k, 2)`` for a batch.
        p: exponent, ``> 0``.

    Returns:
        Scalar ``jax.Array`` (or ``(batch,)``); 0 for an empty diagram.

    Example:
        >>> float(total_persistence([[0, 1], [0, 3], [0, float("inf")]], p=2))
        10.0
    """
    if not isinstance(p, jax.core.Tracer) and not float(p) > 0:
        raise ValueError(f"p must be > 0; got {p}.")
    lengths = _finite_lengths(_summary_input(dgm, "dgm"))
    positive = lengths > 0
    return jnp.sum(jnp.where(positive, jnp.where(positive, lengths, 1.0) ** p, 0.0), axis=-1)


def persistent_entropy(dgm: Any) -> jax.Array:
    """Persistent entropy ``-sum_i q_i log q_i`` with ``q_i = l_i / sum_j l_j`` over finite bars.

    ``l_i = death_i - birth_i``. Essential bars and zero-length bars are left
    out; the entropy of a diagram without positive finite bars is 0. Natural
    logarithm, as ``gudhi.representations.Entropy``. Works under ``jax.jit``
    and ``jax.vmap`` (pad with ``[0, 0]`` rows).

    Args:
        dgm: ``(k, 2)`` diagram, or ``(batch, k, 2)``.

    Returns:
        Scalar ``jax.Array`` (or ``(batch,)``).

    Example:
        >>> round(float(persistent_entropy([[0, 1], [0, 1]])), 6)  # log 2
        0.693147
    """
    lengths = _finite_lengths(_summary_input(dgm, "dgm"))
    total = jnp.sum(lengths, axis=-1, keepdims=True)
    q = lengths / jnp.where(total > 0, total, 1.0)
    positive = q > 0
    return -jnp.sum(jnp.where(positive, q * jnp.log(jnp.where(positive, q, 1.0)), 0.0), axis=-1)
