"""Persistence diagrams: validation, distances and scalar summaries.

A persistence diagram is a ``(k, 2)`` array of ``[birth, death]`` rows with
finite births and ``death >= birth``; ``death = +inf`` marks an *essential*
(infinite) bar, such as the one component of H0 that never dies. ``k`` may be
0. Points on the diagonal (``birth == death``) are allowed and change nothing.

Distances:

* :func:`diagram_distance` (and :func:`bottleneck_distance`,
  :func:`wasserstein_distance`) for any two diagrams: validation and the
  handling of essential bars here, the matching itself by gudhi
  (``gudhi.bottleneck_distance`` with ``e=0``, exact, and
  ``gudhi.wasserstein.wasserstein_distance``, an exact optimal transport by POT).
* :func:`h0_diagram_distances` for batches of H0 diagrams of Rips
  filtrations (every birth 0), the case HOLE's robustness study needs many
  times over: an exact dynamic programme in JAX, one compiled call per batch.

Essential bars are handled explicitly, never silently: with
``essential="match"`` (the default) the essential bars of the two diagrams
are matched among themselves by sorted birth (the optimal matching on a line)
and their birth differences add to the cost; different numbers of essential
bars give ``+inf``, as in gudhi. ``essential="ignore"`` drops them first.
:func:`total_persistence` and :func:`persistent_entropy` sum over finite bars
only; they are written in JAX and work under ``jax.jit`` and ``jax.vmap`` on
diagrams padded with diagonal rows such as ``[0, 0]``.
"""

from __future__ import annotations

import math
from typing import Any

import gudhi
import jax
import jax.numpy as jnp
import numpy as np

from holejax._checks import as_numeric_array, check_choice
from holejax._executables import stored_jit

__all__ = [
    "as_diagram",
    "split_essential",
    "DISTANCES",
    "diagram_distance",
    "h0_diagram_distances",
    "compile_h0_diagram_distances",
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
    arr = as_numeric_array(dgm, argument, "a (k, 2) diagram of [birth, death] rows", numeric=False)
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


DISTANCES = ("bottleneck", "wasserstein")
"""The two diagram distances, by name."""


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


def diagram_distance(
    dgm_a: Any,
    dgm_b: Any,
    kind: str = "bottleneck",
    order: float = 1.0,
    internal_p: float = math.inf,
    *,
    essential: str = "match",
) -> float:
    """Bottleneck or Wasserstein distance between two persistence diagrams (via gudhi).

    Points may be matched to each other or to the diagonal. The cost of
    matching two points is their ``internal_p`` distance in the plane; the
    cost of sending ``(b, d)`` to the diagonal is its distance to the diagonal,
    ``2**(1/internal_p) * (d - b) / 2`` (``(d - b) / 2`` for ``internal_p=inf``).
    The bottleneck distance is the least possible largest cost (ground norm
    L-infinity, as ``gudhi.bottleneck_distance``); the Wasserstein distance of
    order ``q`` is ``(least possible sum of cost**q)**(1/q)``.

    Infinite bars: with ``essential="match"`` the births of the essential bars
    of each diagram are sorted and matched in order (cost ``|b_a - b_b|``); if the
    two diagrams hold different numbers of essential bars the distance is
    ``+inf``. With ``essential="ignore"`` essential bars are dropped.

    For many H0 diagrams of Rips filtrations at once, :func:`h0_diagram_distances`
    gives the same values in one compiled call.

    Args:
        dgm_a, dgm_b: diagrams of shape ``(k_a, 2)`` and ``(k_b, 2)``, ``[birth, death]``.
        kind: ``"bottleneck"`` or ``"wasserstein"``.
        order: Wasserstein exponent ``q >= 1`` (ignored for the bottleneck distance).
        internal_p: ground norm on the plane for the Wasserstein distance,
            ``>= 1`` or ``inf`` (the usual choice). The bottleneck distance
            uses ``inf``.
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
    check_choice(kind, "kind", DISTANCES)
    check_choice(essential, "essential", ["match", "ignore"])
    order, internal_p = _check_order(order, internal_p)
    if kind == "bottleneck" and not math.isinf(internal_p):
        raise ValueError(
            f"internal_p={internal_p} applies to kind='wasserstein'; the bottleneck distance uses the "
            "L-infinity ground norm. Leave internal_p at inf."
        )
    fin_a, ess_a = split_essential(dgm_a, "dgm_a")
    fin_b, ess_b = split_essential(dgm_b, "dgm_b")
    if essential == "match":
        if len(ess_a) != len(ess_b):
            return math.inf
        ess_cost = np.abs(ess_a - ess_b)
    else:
        ess_cost = np.empty(0)
    if kind == "bottleneck":
        finite = float(gudhi.bottleneck_distance(fin_a, fin_b, 0.0)) if len(fin_a) + len(fin_b) else 0.0
        return max(finite, float(ess_cost.max(initial=0.0)))
    finite = 0.0
    if len(fin_a) + len(fin_b):
        from gudhi.wasserstein import wasserstein_distance  # imports POT, which loads torch where installed

        finite = float(wasserstein_distance(fin_a, fin_b, order=order, internal_p=internal_p)) ** order
    return float((finite + float((ess_cost**order).sum())) ** (1.0 / order))


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


# Padding for out-of-range entries of the H0 programme: finite (|PAD - PAD| = 0,
# never NaN) and far above every cost of the deaths, which are scaled to [0, 1] first.
_PAD = 1e18


@stored_jit(static_argnames=("kind", "order"))
def _h0_programme(a: jax.Array, b: jax.Array, kind: str, order: float) -> jax.Array:
    """Distances of ``(edge, batch)`` ascending finite death lists (zero-padded), one per column.

    The programme ``D[i, j]`` (best cost of the first ``i`` deaths of ``a``
    against the first ``j`` of ``b``) is filled one anti-diagonal ``i + j = s``
    at a time: each cell needs only the two previous anti-diagonals, so a
    step is a few elementwise operations over ``(edge + 1, batch)``.
    """
    if order == 1:
        power = lambda x: x  # noqa: E731
    elif order == 2:
        power = lambda x: x * x  # noqa: E731
    else:
        power = lambda x: x**order  # noqa: E731
    m, batch = a.shape
    inf = jnp.full((1, batch), jnp.inf, a.dtype)
    pad = jnp.full((m + 1, batch), _PAD, a.dtype)
    a_i = jnp.concatenate([pad[:1], a])  # a_i[i] = the i-th death (1-based) of a
    b_rev = jnp.concatenate([pad, b[::-1], pad])  # b_rev[2m + 1 - s + i] = the (s - i)-th death of b
    skip_a = a_i / 2 if kind == "bottleneck" else power(a_i / 2)
    first = jnp.concatenate([jnp.zeros((1, batch), a.dtype), jnp.full((m, batch), jnp.inf, a.dtype)])

    def step(carry, s):
        two_back, one_back = carry  # anti-diagonals s - 2 and s - 1, indexed by i
        b_j = jax.lax.dynamic_slice_in_dim(b_rev, 2 * m + 1 - s, m + 1, axis=0)
        diag = jnp.concatenate([inf, two_back[:-1]])  # D[i-1, j-1]: pair a_i with b_j
        up = jnp.concatenate([inf, one_back[:-1]])  # D[i-1, j]: a_i to the diagonal
        left = one_back  # D[i, j-1]: b_j to the diagonal
        if kind == "bottleneck":
            cell = jnp.minimum(
                jnp.minimum(jnp.maximum(diag, jnp.abs(a_i - b_j)), jnp.maximum(up, skip_a)),
                jnp.maximum(left, b_j / 2),
            )
        else:
            cell = jnp.minimum(jnp.minimum(diag + power(jnp.abs(a_i - b_j)), up + skip_a), left + power(b_j / 2))
        return (one_back, cell), None

    start = (jnp.full((m + 1, batch), jnp.inf, a.dtype), first)
    (_, last), _ = jax.lax.scan(step, start, jnp.arange(1, 2 * m + 1))
    out = last[m]
    return out if kind == "bottleneck" else out ** (1.0 / order)


def h0_diagram_distances(deaths_a: Any, deaths_b: Any, kind: str = "bottleneck", order: float = 1.0) -> np.ndarray:
    """Exact bottleneck / Wasserstein distances between batches of H0 diagrams.

    H0 diagrams of Rips filtrations have every birth at 0, so each finite point
    ``(0, d)`` lies on the death axis. With the L-infinity ground norm the cost
    of matching ``(0, a)`` with ``(0, b)`` is ``|a - b|`` and the cost of
    sending ``(0, a)`` to the diagonal is ``a / 2``. Matching points on a line
    under a cost that is a convex function of the difference never needs
    crossing pairs, so an optimal matching pairs the two sorted death lists
    in order, sending some points to the diagonal: an edit-distance dynamic
    programme, ``O(edge^2)`` per pair, filled by anti-diagonals for the whole
    batch in one ``lax.scan`` (float32 on deaths scaled to ``[0, 1]``).

    Infinite deaths (components that never merge, beside the one essential
    bar every H0 diagram has, which is implied) are matched among themselves
    at cost 0; rows with different numbers of them are ``+inf`` apart, as in
    :func:`diagram_distance` and gudhi.

    Args:
        deaths_a, deaths_b: ``(batch, edge)`` H0 deaths (``(edge,)`` for one
            pair). One diagram pair per row.
        kind: ``"bottleneck"`` or ``"wasserstein"``.
        order: Wasserstein exponent ``q >= 1``.

    Returns:
        ``(batch,)`` float64 distances.

    Example:
        >>> a = np.array([[1.0, 2.0, 4.0]])
        >>> b = np.array([[1.0, 2.5, 4.0]])
        >>> h0_diagram_distances(a, b).tolist(), h0_diagram_distances(a, b, "wasserstein").tolist()
        ([0.5], [0.5])
    """
    check_choice(kind, "kind", DISTANCES)
    if isinstance(order, bool) or not isinstance(order, (int, float)) or not order >= 1 or not np.isfinite(order):
        raise ValueError(f"order must be a finite number >= 1; got {order!r}.")
    A = np.asarray(deaths_a, np.float64)
    B = np.asarray(deaths_b, np.float64)
    if A.ndim == 1:
        A = A[None]
    if B.ndim == 1:
        B = B[None]
    if A.ndim != 2 or A.shape != B.shape:
        raise ValueError(
            f"deaths_a and deaths_b must both have shape (batch, edge); got {A.shape} and {B.shape}."
        )
    if np.isnan(A).any() or np.isnan(B).any() or (A < 0).any() or (B < 0).any():
        raise ValueError("deaths must be >= 0 and not NaN (H0 deaths of distance matrices).")
    if A.shape[1] == 0:
        return np.zeros(A.shape[0])
    inf_a, inf_b = np.isinf(A).sum(axis=1), np.isinf(B).sum(axis=1)
    # finite deaths, sorted, zero-padded at the front: (0, 0) lies on the diagonal and costs nothing
    a = np.sort(np.where(np.isfinite(A), A, 0.0), axis=1)
    b = np.sort(np.where(np.isfinite(B), B, 0.0), axis=1)
    scale = np.maximum(np.maximum(a[:, -1:], b[:, -1:]), 1e-300)  # unit scale for float32 accuracy
    out = np.asarray(
        _h0_programme(np.asarray((a / scale).T, np.float32), np.asarray((b / scale).T, np.float32), kind, float(order)),
        np.float64,
    ) * scale[:, 0]
    return np.where(inf_a == inf_b, out, np.inf)


def compile_h0_diagram_distances(batch: int, edge: int, kind: str = "bottleneck", order: float = 1.0) -> None:
    """Build the compiled programme of :func:`h0_diagram_distances` for ``(batch, edge)`` deaths.

    Nothing is computed: the programme is compiled (or loaded from holejax's
    store of executables), so that a later call with these shapes and
    arguments runs it at once. :func:`holejax.analyze` builds it on a host thread while
    the trees are computed.

    Example:
        >>> compile_h0_diagram_distances(batch=3, edge=4, kind="wasserstein", order=2.0)
    """
    check_choice(kind, "kind", DISTANCES)
    if batch < 1 or edge < 1:
        return  # h0_diagram_distances compiles nothing for these
    deaths = jax.ShapeDtypeStruct((edge, batch), np.float32)  # one column per pair
    _h0_programme.compiled(deaths, deaths, kind, float(order))


def _summary_input(dgm: Any, argument: str) -> jax.Array:
    if isinstance(dgm, jax.core.Tracer):
        if dgm.ndim < 2 or dgm.shape[-1] != 2:
            raise ValueError(f"{argument} must have shape (..., k, 2); got shape {dgm.shape}.")
        return dgm
    arr = as_numeric_array(dgm, argument, "a (..., k, 2) diagram of [birth, death] rows", numeric=False)
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
