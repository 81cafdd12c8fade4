"""Borůvka's algorithm on a dense distance matrix: the accelerator kernel for H0.

Each round every component picks its shortest outgoing edge (one masked
row-minimum over the whole matrix, fully parallel), the picked edges are added
to the tree, and components are merged by pointer jumping. The number of
components at least halves per round, so there are at most ``ceil(log2 n)``
rounds; on a GPU each is a handful of large parallel kernels, which suits it
better than Prim's ``n`` small sequential steps.

Edges are totally ordered by ``(length, smaller index, larger index)``, so the
tree is unique and the result deterministic. The Kruskal merge tree is then
built from the tree edges by :func:`.result.merge_tree`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from holejax.filtration.result import H0Result, merge_tree

__all__ = ["boruvka_edges", "boruvka_h0"]


def boruvka_edges(D: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The minimum spanning tree of a dense distance matrix by Borůvka rounds.

    Args:
        D: ``(sample, sample)`` symmetric distances; ``+inf`` where never connected.

    Returns:
        ``(lo, hi, w)``, each ``(sample - 1,)``: tree edges ``lo < hi`` and
        their lengths (``+inf`` for edges joining parts that never connect),
        in the order the rounds found them.

    Example:
        >>> D = jnp.array([[0.0, 2.0, 3.0], [2.0, 0.0, 1.0], [3.0, 1.0, 0.0]])
        >>> [a.tolist() for a in boruvka_edges(D)]
        [[0, 1], [1, 2], [2.0, 1.0]]
    """
    D = jnp.asarray(D)
    n = D.shape[0]
    m = n - 1
    dt = D.dtype
    big = jnp.asarray(jnp.finfo(dt).max, dt)
    inf = jnp.asarray(jnp.inf, dt)
    iota = jnp.arange(n, dtype=jnp.int32)

    def round_(state):
        comp, lo, hi, w, count = state
        other = comp[None, :] != comp[:, None]
        Dm = jnp.where(other, jnp.minimum(D, big), inf)
        # per sample: nearest sample in another component; first index among ties
        # is the smallest (min, max) pair, matching the total edge order
        nb = jnp.argmin(Dm, axis=1).astype(jnp.int32)
        wv = jnp.take_along_axis(Dm, nb[:, None], axis=1)[:, 0]
        elo, ehi = jnp.minimum(iota, nb), jnp.maximum(iota, nb)
        # per component: the smallest (w, lo, hi) over its samples
        cw = jax.ops.segment_min(wv, comp, num_segments=n)
        tie = wv == cw[comp]
        clo = jax.ops.segment_min(jnp.where(tie, elo, n), comp, num_segments=n)
        tie &= elo == clo[comp]
        chi = jax.ops.segment_min(jnp.where(tie, ehi, n), comp, num_segments=n)
        is_root = comp == iota
        # the component on the far side of each root's chosen edge
        far_lo, far_hi = comp[jnp.minimum(clo, m)], comp[jnp.minimum(chi, m)]
        target = jnp.where(far_lo == iota, far_hi, far_lo)
        target = jnp.where(is_root, target, iota)
        # a mutual pair picked the same edge: keep it once (from the smaller root)
        mutual = target[target] == iota
        add = is_root & ~(mutual & (iota > target))
        target = jnp.where(mutual & (iota < target), iota, target)
        pos = count + jnp.cumsum(add) - 1
        pos = jnp.where(add, pos, m)
        lo = lo.at[pos].set(clo, mode="drop")
        hi = hi.at[pos].set(chi, mode="drop")
        w = w.at[pos].set(cw, mode="drop")
        count = count + jnp.sum(add, dtype=jnp.int32)
        # pointer jumping to the new roots
        target = lax.fori_loop(0, max(1, (n - 1).bit_length()), lambda _, t: t[t], target)
        return target[comp], lo, hi, w, count

    state = (
        iota,
        jnp.zeros((m,), jnp.int32),
        jnp.zeros((m,), jnp.int32),
        jnp.zeros((m,), dt),
        jnp.int32(0),
    )
    _, lo, hi, w, _ = lax.while_loop(lambda s: s[4] < m, round_, state)
    return lo, hi, jnp.where(w >= big, inf, w)


def boruvka_h0(D: ArrayLike) -> H0Result:
    """H0 of one dense distance matrix by Borůvka + Kruskal (jit / vmap safe).

    Example:
        >>> D = jnp.array([[0.0, 1.0, 5.0], [1.0, 0.0, 4.0], [5.0, 4.0, 0.0]])
        >>> boruvka_h0(D).deaths.tolist()
        [1.0, 4.0]
    """
    D = jnp.asarray(D)
    n = D.shape[0]
    if n == 1:
        empty = jnp.zeros((0,), jnp.int32)
        return merge_tree(empty, empty, jnp.zeros((0,), D.dtype), 1)
    return merge_tree(*boruvka_edges(D), n)
