"""H0 of dense distance matrices: ``h0`` for one cloud, ``h0_batched`` for many.

Both run one jit-compiled kernel: an MST (dense Prim on CPU, Borůvka on GPU)
followed by the vectorised Kruskal merge tree of :mod:`.result`. The batched
form is the single-cloud kernel under ``jax.vmap``, so a batch of clouds is
one XLA program whose inner loops are vectorised across the batch.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from holejax._checks import check_choice
from holejax.filtration._validate import as_distance_matrices
from holejax.filtration.boruvka import boruvka_h0
from holejax.filtration.prim import prim_order
from holejax.filtration.result import H0Result, linkage_from_prim

__all__ = ["METHODS", "h0", "h0_batched", "h0_kernel"]

METHODS = ("auto", "prim", "boruvka")


def _resolve(method: str) -> str:
    check_choice(method, "method", METHODS)
    if method == "auto":
        return "prim" if jax.default_backend() == "cpu" else "boruvka"
    return method


def h0_kernel(D: ArrayLike, method: str = "prim") -> H0Result:
    """H0 of one dense distance matrix as jax arrays (jit / vmap safe, no checks).

    Args:
        D: ``(sample, sample)`` distances (see :func:`h0`).
        method: ``"prim"`` or ``"boruvka"``.

    Returns:
        :class:`H0Result` of jax arrays; ``linkage`` in the dtype of ``D``.

    Example:
        >>> D = jnp.array([[0.0, 1.0, 5.0], [1.0, 0.0, 4.0], [5.0, 4.0, 0.0]])
        >>> jax.jit(h0_kernel)(D).deaths.tolist()
        [1.0, 4.0]
    """
    D = jnp.asarray(D)
    if method == "boruvka":
        return boruvka_h0(D)
    return linkage_from_prim(*prim_order(D))


@partial(jax.jit, static_argnames="method")
def _h0_jit(D: jax.Array, method: str) -> H0Result:
    return h0_kernel(D, method)


@partial(jax.jit, static_argnames="method")
def _h0_batched_jit(Ds: jax.Array, method: str) -> H0Result:
    return jax.vmap(partial(h0_kernel, method=method))(Ds)


def _to_host(r: H0Result) -> H0Result:
    deaths, edges, linkage = jax.device_get(tuple(r))
    return H0Result(
        np.asarray(deaths), np.asarray(edges, np.int64), np.asarray(linkage, np.float64)
    )


def h0(D: ArrayLike, method: str = "auto", *, check: bool = True) -> H0Result:
    """H0 persistence of the Rips filtration of one distance matrix.

    Args:
        D: ``(sample, sample)`` symmetric non-negative distances with a zero
            diagonal; ``+inf`` marks pairs that are never connected (their
            parts die at ``+inf``).
        method: ``"auto"`` (Prim on CPU, Borůvka on GPU/TPU), ``"prim"``
            (dense Prim in ``lax.fori_loop``) or ``"boruvka"`` (log n rounds
            of parallel nearest-component searches). All give the same deaths.
        check: validate ``D`` first (NaN, sign, symmetry, diagonal); one extra
            pass over the matrix. Turn off only for matrices known to be valid.

    Returns:
        :class:`H0Result` of numpy arrays: ``deaths (edge,)``, ``edges (edge, 2)``
        int64 and ``linkage (edge, 4)`` float64, ``edge = sample - 1``, in
        Kruskal merge order with deterministic ties. Under ``jax.jit`` or
        ``jax.vmap`` (a traced ``D``) the checks are skipped and jax arrays
        are returned.

    Example:
        >>> import numpy as np
        >>> D = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0]], dtype=np.float32)
        >>> h = h0(D)
        >>> h.deaths.tolist(), h.edges.tolist()
        ([1.0, 4.0], [[0, 1], [1, 2]])
    """
    method = _resolve(method)
    if isinstance(D, jax.core.Tracer):
        return h0_kernel(D, method)
    D = as_distance_matrices(D, "D") if check else jnp.asarray(D)
    return _to_host(_h0_jit(D, method))


def h0_batched(Ds: ArrayLike, method: str = "auto", *, check: bool = True) -> H0Result:
    """H0 of a batch of distance matrices, one vmapped jit-compiled program.

    Args:
        Ds: ``(batch, sample, sample)`` distance matrices (see :func:`h0`);
            in a study ``batch`` runs over (perturbation, layer, metric) clouds
            of equal sample count.
        method: as in :func:`h0`.
        check: as in :func:`h0`.

    Returns:
        :class:`H0Result` whose fields carry a leading ``batch`` axis.

    Example:
        >>> import numpy as np
        >>> Ds = np.array([[[0, 1], [1, 0]], [[0, 3], [3, 0]]], dtype=np.float32)
        >>> h0_batched(Ds).deaths.tolist()
        [[1.0], [3.0]]
    """
    method = _resolve(method)
    if isinstance(Ds, jax.core.Tracer):
        return jax.vmap(partial(h0_kernel, method=method))(Ds)
    Ds = as_distance_matrices(Ds, "Ds", batched=True) if check else jnp.asarray(Ds)
    return _to_host(_h0_batched_jit(Ds, method))
