"""Dense Prim's algorithm in ``lax.fori_loop``: the CPU kernel for H0.

One step adds the closest unvisited sample to the tree and lowers every
other sample's key with the new sample's row of the distance matrix: a
masked minimum over a vector that XLA vectorises, and under ``jax.vmap`` over
a whole batch of clouds at once. The matrix is read once, row by row, so the
kernel runs at memory speed (``O(n^2)`` work, ``O(n)`` extra memory).

Ties are deterministic: among equal keys the smallest sample index is taken
(``argmin``), and a key is only replaced by a strictly smaller distance, so
the earliest visited neighbour wins.

Infinite distances (parts that never connect) are handled by clamping to the
largest finite float while searching; visited samples sit at ``+inf`` so an
unreachable sample is still preferred over a visited one, and its weight is
reported as ``+inf``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

__all__ = ["prim_order", "prim_order_from_rows"]


def prim_order_from_rows(
    row: Callable[[jax.Array], jax.Array], n: int, dtype
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Prim's visiting order for a cloud whose distance rows come from ``row(j)``.

    Args:
        row: maps a sample index (int32 scalar) to its ``(sample,)`` row of distances.
        n: number of samples.
        dtype: float dtype of the rows.

    Returns:
        ``(order, pred, weights)``, each ``(sample,)``: ``order[k]`` is the
        ``k``-th visited sample (``order[0] == 0``), ``pred[k]`` the tree
        neighbour it was reached from, ``weights[k]`` the edge length
        (``+inf`` for a sample in another part; ``weights[0] == 0``).
    """
    big = jnp.asarray(jnp.finfo(dtype).max, dtype)
    inf = jnp.asarray(jnp.inf, dtype)
    iota = jnp.arange(n, dtype=jnp.int32)
    visited = iota == 0
    key = jnp.where(visited, inf, jnp.minimum(row(jnp.int32(0)), big))
    parent = jnp.zeros((n,), jnp.int32)
    order = jnp.zeros((n,), jnp.int32)
    pred = jnp.zeros((n,), jnp.int32)
    weights = jnp.zeros((n,), dtype)

    def step(k, state):
        key, parent, visited, order, pred, weights = state
        j = jnp.argmin(key).astype(jnp.int32)
        order = order.at[k].set(j)
        pred = pred.at[k].set(parent[j])
        weights = weights.at[k].set(key[j])
        visited = visited | (iota == j)
        r = jnp.minimum(row(j), big)
        parent = jnp.where((r < key) & ~visited, j, parent)
        key = jnp.where(visited, inf, jnp.minimum(key, r))
        return key, parent, visited, order, pred, weights

    state = (key, parent, visited, order, pred, weights)
    _, _, _, order, pred, weights = lax.fori_loop(1, n, step, state)
    weights = jnp.where(weights >= big, inf, weights)
    return order, pred, weights


def prim_order(D: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Prim's visiting order over a dense distance matrix (jit / vmap safe).

    Args:
        D: ``(sample, sample)`` symmetric non-negative distances; ``+inf``
            where two samples are never connected. The diagonal is not read.

    Returns:
        ``(order, pred, weights)``, each ``(sample,)``; see
        :func:`prim_order_from_rows`.

    Example:
        >>> D = jnp.array([[0.0, 2.0, 3.0], [2.0, 0.0, 1.0], [3.0, 1.0, 0.0]])
        >>> [a.tolist() for a in prim_order(D)]
        [[0, 1, 2], [0, 0, 1], [0.0, 2.0, 1.0]]
    """
    D = jnp.asarray(D)
    n = D.shape[0]
    return prim_order_from_rows(lambda j: lax.dynamic_index_in_dim(D, j, 0, False), n, D.dtype)
