"""Dense Prim's algorithm in a ``lax.scan``: the CPU kernel for H0.

One step adds the closest unvisited sample to the tree and lowers every
other sample's key with the new sample's row of the distance matrix: two
minimum reductions and one fused elementwise update over ``(sample,)``
vectors. The matrix is read once, row by row (``O(n^2)`` work, ``O(n)``
extra memory). The ``n - 1`` steps are sequential, so at small ``n`` the
fixed per-step cost of the XLA loop (a handful of kernel launches)
dominates; on CPU the batched entry points therefore run clouds one after
the other rather than vmapping the loop (see :mod:`.dense`).

Ties are deterministic: among equal keys the smallest sample index is taken
(``argmin``), and a key is only replaced by a strictly smaller distance, so
the earliest visited neighbour wins.

Keys are compared as the bit patterns of the float32 distances read as
unsigned integers: for non-negative floats (``+inf`` included) this order is
the numeric order, integer minimum reductions vectorise well on CPU, and a
visited sample is simply marked by the largest pattern ``0xFFFFFFFF`` (above
``+inf``), so no separate visited mask is read or written per step. A sample
that can only be reached through an infinite distance (another part of a
disconnected cloud) is still taken before any visited one, and its weight is
``+inf``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

__all__ = ["prim_edges", "prim_order", "prim_order_from_rows"]

_LANES = 16


def _key_types(dtype) -> tuple:
    """(float type, unsigned type of the same width) used for the keys of ``dtype``."""
    if jnp.dtype(dtype) == jnp.float64:
        return jnp.float64, jnp.uint64
    return jnp.float32, jnp.uint32


def _key_bits(row: jax.Array, ftype, utype) -> jax.Array:
    """Non-negative distances -> order-preserving unsigned keys (the sign of -0.0 dropped)."""
    bits = lax.bitcast_convert_type(row.astype(ftype), utype)
    return bits & jnp.array(jnp.iinfo(utype).max >> 1, utype)


def prim_order_from_rows(
    row: Callable[[jax.Array], jax.Array], n: int, dtype, *, track_parents: bool = True
) -> tuple[jax.Array, jax.Array | None, jax.Array]:
    """Prim's visiting order for a cloud whose distance rows come from ``row(j)``.

    Args:
        row: maps a sample index (int32 scalar) to its ``(sample,)`` row of
            non-negative distances.
        n: number of samples.
        dtype: float dtype of the rows and the returned weights.
        track_parents: also record through which tree neighbour each sample
            was reached (a second array updated in the same pass; measured
            cheaper than recovering the parents afterwards from the matrix).

    Returns:
        ``(order, pred, weights)``, each ``(sample,)``: ``order[k]`` is the
        ``k``-th visited sample (``order[0] == 0``), ``pred[k]`` the tree
        neighbour it was reached from (``None`` unless ``track_parents``),
        ``weights[k]`` the edge length (``+inf`` for a sample in another part;
        ``weights[0] == 0``).
    """
    ftype, utype = _key_types(dtype)
    visited = jnp.array(jnp.iinfo(utype).max, utype)  # all bits set: above every distance and +inf
    # keys are padded to a multiple of the vector width with visited entries, so the
    # minima below reduce (lanes, width) blocks column-wise first: vectorised on CPU
    n_pad = -(-n // _LANES) * _LANES
    iota = jnp.arange(n_pad, dtype=jnp.uint32)

    def keys(j):
        r = _key_bits(row(j), ftype, utype)
        return jnp.concatenate([r, jnp.full((n_pad - n,), visited, utype)]) if n_pad > n else r

    def vmin(x):
        return jnp.min(jnp.min(x.reshape(-1, _LANES), axis=0))

    key = jnp.where(iota == 0, visited, keys(jnp.int32(0)))
    parent = jnp.zeros((n_pad,), jnp.uint32)

    def step(carry, _):
        key, parent = carry
        m = vmin(key)
        j = vmin(jnp.where(key == m, iota, jnp.uint32(n_pad)))  # first index among ties
        r = keys(j.astype(jnp.int32))
        if track_parents:
            p = parent[j]
            parent = jnp.where(r < key, j, parent)
        else:
            p = j
        key = jnp.where((key == visited) | (iota == j), visited, jnp.minimum(key, r))
        return (key, parent), (j, p, m)

    if n > 1:
        _, (js, ps, ms) = lax.scan(step, (key, parent), None, length=n - 1)
    else:
        js = ps = jnp.zeros((0,), jnp.uint32)
        ms = jnp.zeros((0,), utype)
    zero = jnp.zeros((1,), jnp.uint32)
    order = jnp.concatenate([zero, js]).astype(jnp.int32)
    pred = jnp.concatenate([zero, ps]).astype(jnp.int32) if track_parents else None
    weights = lax.bitcast_convert_type(jnp.concatenate([zero.astype(utype), ms]), ftype)
    return order, pred, weights.astype(dtype)


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


def prim_edges(order: ArrayLike, pred: ArrayLike, weights: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The tree edges of a Prim visiting order (jit / vmap safe).

    Args:
        order, pred, weights: ``(sample,)`` each, as returned by
            :func:`prim_order_from_rows` (with ``track_parents``).

    Returns:
        ``(lo, hi, w)``, each ``(sample - 1,)``: the edge through which each
        sample after the first was reached, ``lo < hi``, and its length.

    Example:
        >>> D = jnp.array([[0.0, 2.0, 3.0], [2.0, 0.0, 1.0], [3.0, 1.0, 0.0]])
        >>> [a.tolist() for a in prim_edges(*prim_order(D))]
        [[0, 1], [1, 2], [2.0, 1.0]]
    """
    u, v = jnp.asarray(pred)[1:], jnp.asarray(order)[1:]
    return jnp.minimum(u, v), jnp.maximum(u, v), jnp.asarray(weights)[1:]
