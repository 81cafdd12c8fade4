"""How far a perturbed H0 diagram moved from the clean one: batched exact bottleneck and Wasserstein.

H0 diagrams of Rips filtrations have every birth at 0, so each finite point
``(0, d)`` lies on the death axis. With the usual L-infinity ground metric the
cost of matching ``(0, a)`` with ``(0, b)`` is ``|a - b|`` and the cost of
sending ``(0, a)`` to the diagonal is ``a / 2``. Matching points on a line
under a cost that is a convex function of the difference never needs
crossing pairs, so an optimal matching pairs the two sorted death lists in
order, skipping some points to the diagonal: an edit-distance dynamic
programme with ``match`` / ``skip`` moves, ``O(n^2)`` per pair.
:func:`h0_diagram_distances` fills it by anti-diagonals (each needs only the
two before it, so a step is elementwise) for a whole batch of diagram pairs
in one ``lax.scan``. It is exact, and checked against
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


# Padding for out-of-range entries: finite (|PAD - PAD| = 0, never NaN) and far
# above every cost of the deaths, which are scaled to [0, 1] first.
_PAD = 1e18


@functools.partial(jax.jit, static_argnames=("kind", "order"))
def _batched(a: jax.Array, b: jax.Array, kind: str, order: float) -> jax.Array:
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
    if kind == "bottleneck":
        skip_a = a_i / 2
    else:
        skip_a = power(a_i / 2)
    first = jnp.concatenate([jnp.zeros((1, batch), a.dtype), jnp.full((m, batch), jnp.inf, a.dtype)])

    def step(carry, s):
        two_back, one_back = carry  # anti-diagonals s - 2 and s - 1, indexed by i
        b_j = jax.lax.dynamic_slice_in_dim(b_rev, 2 * m + 1 - s, m + 1, axis=0)
        diag = jnp.concatenate([inf, two_back[:-1]])  # D[i-1, j-1]
        up = jnp.concatenate([inf, one_back[:-1]])  # D[i-1, j]: skip a_i
        left = one_back  # D[i, j-1]: skip b_j
        if kind == "bottleneck":
            cell = jnp.minimum(
                jnp.minimum(jnp.maximum(diag, jnp.abs(a_i - b_j)), jnp.maximum(up, skip_a)),
                jnp.maximum(left, b_j / 2),
            )
        else:
            cell = jnp.minimum(
                jnp.minimum(diag + power(jnp.abs(a_i - b_j)), up + skip_a), left + power(b_j / 2)
            )
        return (one_back, cell), None

    start = (jnp.full((m + 1, batch), jnp.inf, a.dtype), first)
    (_, last), _ = jax.lax.scan(step, start, jnp.arange(1, 2 * m + 1))
    out = last[m]
    return out if kind == "bottleneck" else out ** (1.0 / order)


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
            kind, float(order),
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
