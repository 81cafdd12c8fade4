"""How far a perturbed H0 diagram moved from the clean one: batched exact bottleneck and Wasserstein.

H0 diagrams of Rips filtrations have every birth at 0, so each finite point
``(0, d)`` lies on the death axis. With the usual L-infinity ground metric the
cost of matching ``(0, a)`` with ``(0, b)`` is ``|a - b|`` and the cost of
sending ``(0, a)`` to the diagonal is ``a / 2``. Matching points on a line
under a cost that is a convex function of the difference never needs
crossing pairs, so an optimal matching pairs the two sorted death lists in
order, skipping some points to the diagonal: an edit-distance dynamic
programme with ``match`` / ``skip`` moves. Each row of the programme is a
prefix minimum, so a row costs ``O(n)`` vector work and the whole distance
``O(n^2)``; :func:`h0_diagram_distances` runs it for a batch of diagram
pairs in one ``lax.scan`` whose rows carry the whole batch. It is exact, and checked against
``holejax.topology.diagram_distance`` and gudhi in the tests.

Infinite (essential) bars are matched among themselves (births all 0, cost
0); when two diagrams hold different numbers of them (a disconnected cloud
against a connected one) the distance is ``+inf``, as in gudhi.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from holejax._checks import check_choice

__all__ = ["DISTANCES", "h0_diagram_distances", "reference_diagram_distance"]

DISTANCES = ("bottleneck", "wasserstein")


# Rows of the programme are (edge + 1, batch): the batch is the minor axis so the
# prefix minimum along the rows vectorises across pairs.
def _prefix_min(X: jax.Array) -> jax.Array:
    return jax.lax.associative_scan(jnp.minimum, X, axis=0)


def _row_bottleneck(R: jax.Array, a_i: jax.Array, b: jax.Array, del_b: jax.Array) -> jax.Array:
    # X[j]: best cost of a[:i+1], b[:j] whose last move is "match (a_i, b_j)" or "skip a_i"
    skip_a = jnp.maximum(R, a_i / 2)
    match = jnp.maximum(R[:-1], jnp.abs(a_i - b))
    X = jnp.concatenate([skip_a[:1], jnp.minimum(match, skip_a[1:])])
    # then skip a run of b's: with b ascending the largest skipped cost is del_b[j]
    before = jnp.concatenate([jnp.full_like(X[:1], jnp.inf), _prefix_min(X)[:-1]])
    return jnp.minimum(X, jnp.maximum(before, del_b))


def _row_wasserstein(R: jax.Array, a_i: jax.Array, b: jax.Array, S: jax.Array, q: jax.Array) -> jax.Array:
    skip_a = R + (a_i / 2) ** q
    match = R[:-1] + jnp.abs(a_i - b) ** q
    X = jnp.concatenate([skip_a[:1], jnp.minimum(match, skip_a[1:])])
    return S + _prefix_min(X - S)


@functools.partial(jax.jit, static_argnames="kind")
def _batched(a: jax.Array, b: jax.Array, q: jax.Array, kind: str) -> jax.Array:
    """Distances of ``(edge, batch)`` sorted finite death lists (zero-padded), one per column."""
    zero = jnp.zeros_like(b[:1])
    if kind == "bottleneck":
        del_b = jnp.concatenate([zero, b / 2])

        def step(R, a_i):
            return _row_bottleneck(R, a_i, b, del_b), None

        R, _ = jax.lax.scan(step, del_b, a)
        return R[-1]
    S = jnp.concatenate([zero, jnp.cumsum((b / 2) ** q, axis=0)])

    def step_w(R, a_i):
        return _row_wasserstein(R, a_i, b, S, q), None

    R, _ = jax.lax.scan(step_w, S, a)
    return R[-1] ** (1.0 / q)


def h0_diagram_distances(
    deaths_a: Any, deaths_b: Any, kind: str = "bottleneck", order: float = 1.0
) -> np.ndarray:
    """Exact bottleneck / Wasserstein distances between batches of H0 diagrams.

    Args:
        deaths_a, deaths_b: ``(batch, edge)`` H0 deaths (births are 0; ``+inf``
            for bars that never die, beside the one essential bar every H0
            diagram has, which is implied). One diagram pair per row.
        kind: ``"bottleneck"`` or ``"wasserstein"``.
        order: Wasserstein exponent ``q >= 1``.

    Returns:
        ``(batch,)`` float64 distances with the L-infinity ground metric
        (gudhi's default), ``inf`` where the rows have different numbers of
        infinite deaths.

    Example:
        >>> import numpy as np
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
        A, B = A[None], B[None] if B.ndim == 1 else B
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
        _batched(
            jnp.asarray((a / scale).T, jnp.float32), jnp.asarray((b / scale).T, jnp.float32),
            jnp.asarray(order, jnp.float32), kind,
        ),
        np.float64,
    ) * scale[:, 0]
    return np.where(inf_a == inf_b, out, np.inf)


def reference_diagram_distance(dgm_a: Any, dgm_b: Any, kind: str = "bottleneck", order: float = 1.0) -> float:
    """General diagram distance (any births): ``holejax.topology.diagram_distance``.

    The one place that calls the general routine, for diagrams that are not
    H0 diagrams of Rips filtrations, and for cross-checks.
    """
    from holejax.topology import diagram_distance

    return float(diagram_distance(dgm_a, dgm_b, kind=kind, order=order))
