"""H0 of dense distance matrices: ``h0`` for one cloud, ``h0_batched`` for many.

Both run one jit-compiled kernel: an MST (dense Prim on CPU, Borůvka on GPU)
followed by the vectorised Kruskal merge tree of :mod:`.result`. The batched
form maps the single-cloud kernel over the batch in one place
(:func:`_over_batch`): ``jax.vmap`` for Borůvka, ``lax.map`` for Prim on CPU;
on CPU one range of the batch per core runs in a host thread, and with
several accelerators one slice per device (:func:`_run`).
:func:`h0_batched_from_points` also computes the distance matrices inside the
same compiled program.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from holejax._checks import check_choice
from holejax.filtration._validate import (
    _summary,
    as_distance_matrices,
    check_summary,
    prepare_distance_matrices,
)
from holejax.filtration.boruvka import boruvka_h0
from holejax.filtration.prim import prim_order, prim_order_from_rows
from holejax.filtration.result import H0Result, linkage_from_prim

__all__ = ["METHODS", "h0", "h0_batched", "h0_batched_from_points", "h0_kernel"]

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


def _over_batch(fn, xs, method: str):
    """The single-cloud ``fn`` over a leading batch axis, inside a traced program.

    Borůvka's rounds are wide parallel reductions: ``jax.vmap`` widens them
    further. Prim's steps are small and sequential: on CPU, running the
    clouds one after the other (``lax.map``) keeps each step a contiguous row
    read and a short reduction, which measured about twice as fast per element
    as the vmapped (gathered) form.
    """
    if method == "prim" and jax.default_backend() == "cpu":
        return lax.map(fn, xs)
    return jax.vmap(fn)(xs)


def _prim_at(Ds: jax.Array, i: jax.Array) -> H0Result:
    """Prim H0 of ``Ds[i]``, its rows read straight from the batch (no copy of the matrix)."""
    n = Ds.shape[-1]

    def row(j):
        return lax.dynamic_slice(Ds, (i, j, jnp.int32(0)), (1, 1, n)).reshape(n)

    return linkage_from_prim(*prim_order_from_rows(row, n, Ds.dtype))


def _over_range(one, xs: jax.Array, start: jax.Array, count: int, method: str):
    """``one(xs, i)`` for ``i`` in ``[start, start + count)``, stacked (``lax.map`` or ``vmap``)."""
    idx = start + jnp.arange(count, dtype=jnp.int32)
    if method == "prim" and jax.default_backend() == "cpu":
        return lax.map(lambda i: one(xs, i), idx)
    return jax.vmap(lambda i: one(xs, i))(idx)


@partial(jax.jit, static_argnames=("method", "count"))
def _h0_range_jit(Ds: jax.Array, start: jax.Array, method: str, count: int) -> H0Result:
    """H0 of ``Ds[start : start + count]``, read in place from the batch."""

    def one(Ds, i):
        if method == "prim":
            return _prim_at(Ds, i)
        return h0_kernel(lax.dynamic_index_in_dim(Ds, i, 0, False), method)

    return _over_range(one, Ds, start, count, method)


_MAX_WORKERS = 8
_POOL: list = []


def _cores(batch: int) -> int:
    """Host threads for a batch on CPU: one per core, at most one per cloud."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(batch, cores, _MAX_WORKERS))


def _pool() -> ThreadPoolExecutor:
    """One thread pool for the process (starting threads per call costs milliseconds)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="holejax-h0"))
    return _POOL[0]


def _run(run, xs) -> tuple:
    """``run(xs, start, count)`` over the whole batch axis of ``xs``; host numpy results.

    ``run`` returns device results for ``xs[start : start + count]`` with a
    leading ``count`` axis. On CPU the sequential Prim loop keeps one core
    busy, so the batch is cut into one contiguous range per core and the
    ranges run in host threads (XLA executes concurrent calls in parallel; two
    independent loops inside one program measured no faster than one after
    the other), the way the peers' benchmark runs two processes. All ranges
    have one length, so one compilation serves them: the last one starts
    early and its overlap with the previous range is dropped. With several
    accelerator devices the batch goes one slice per device instead.
    """
    batch = xs.shape[0]
    devices = jax.local_devices()
    if jax.default_backend() == "cpu":
        workers = _cores(batch)
        count = -(-batch // workers) if batch else 0
        if workers < 2:
            return jax.device_get(run(jnp.asarray(xs), np.int32(0), batch))
        xs = jnp.asarray(xs)  # one transfer, shared by the threads
        lows = range(0, batch, count)
        starts = [min(lo, batch - count) for lo in lows]
        outs = list(_pool().map(lambda s: jax.device_get(run(xs, np.int32(s), count)), starts))
        outs = [jax.tree.map(lambda a, skip=lo - s: a[skip:], o) for o, lo, s in zip(outs, lows, starts)]
        return jax.tree.map(lambda *parts: np.concatenate(parts), *outs)
    if len(devices) < 2 or batch < 2:
        return jax.device_get(run(jnp.asarray(xs), np.int32(0), batch))
    k = min(len(devices), batch)
    size = -(-batch // k)
    slices = []
    for lo in range(0, batch, size):
        part = np.asarray(xs[lo : lo + size])
        short = size - part.shape[0]
        if short:  # pad with copies of the last cloud: one shape, one compilation
            part = np.concatenate([part, np.repeat(part[-1:], short, axis=0)])
        slices.append((part, size - short))
    futures = [run(jax.device_put(p, dev), np.int32(0), size) for (p, _), dev in zip(slices, devices)]
    outs = [jax.tree.map(lambda a, m=length: np.asarray(a)[:m], jax.device_get(f))
            for f, (_, length) in zip(futures, slices)]
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outs)


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
            (dense Prim in a ``lax.scan``) or ``"boruvka"`` (log n rounds
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
        return _over_batch(partial(h0_kernel, method=method), Ds, method)
    summ = None
    if check:
        Ds = prepare_distance_matrices(Ds, "Ds", batched=True)
        if Ds.size:
            # dispatched asynchronously: the data checks' pass over Ds overlaps the
            # trees (one batched pass measured faster than one pass per matrix
            # inside the tree programs); the trees are dropped if it fails
            summ = _summary(Ds)
    out = _run(lambda xs, start, count: _h0_range_jit(xs, start, method, count), Ds)
    if summ is not None:
        check_summary(Ds, summ, "Ds", batched=True)
    return _to_host(out)


def _concat(parts: list[H0Result]) -> H0Result:
    if len(parts) == 1:
        return parts[0]
    return H0Result(*(np.concatenate(x) for x in zip(*parts)))


@partial(jax.jit, static_argnames=("metric", "static", "method", "count"))
def _fused_jit(Xs: jax.Array, start: jax.Array, metric: str, static: tuple, arrays: dict,
               method: str, count: int):
    """Distances and H0 of the clouds ``Xs[start : start + count]``, and the metric's flags."""
    from holejax.metrics.registry import get_metric

    kernel = get_metric(metric).kernel

    def one(Xs, i):
        D, flags = kernel(lax.dynamic_index_in_dim(Xs, i, 0, False), **dict(static), **arrays)
        return h0_kernel(D, method), flags

    # on CPU each cloud's matrix is built and consumed in one map step: one
    # (sample, sample) matrix alive at a time and plain 2-d matmuls, which XLA's
    # CPU dot runs several times faster than the batched dot a vmap would give
    return _over_range(one, Xs, start, count, method)


def h0_batched_from_points(
    Xs: ArrayLike, metric: str = "euclidean", method: str = "auto", *,
    memory_budget: int = 2**31, **params
) -> H0Result:
    """H0 of many point clouds, distances and MSTs in one compiled program.

    Equal to ``h0(hj.pairwise_distances(Xs[b], metric, **params))`` for every
    cloud ``b``, but the distance matrices never leave the compiled program
    (no host round trip, no re-validation): on CPU each cloud's matrix is
    built and consumed in one step of a loop, one range of the batch per core
    in a host thread, within chunks of clouds that fit ``memory_budget``.
    (``hj.batched_pairwise_distances`` computes the same metric with one
    batched matmul, whose rounding may differ in the last bit on large clouds.)

    Args:
        Xs: ``(batch, sample, unit)`` clouds of one shape, e.g. one layer under
            several perturbations.
        metric: any of :data:`holejax.METRICS`; ``"geodesic"`` (a host
            shortest-path metric) falls back to the two-step form.
        method: as in :func:`h0`.
        memory_budget: bytes one compiled call may hold for its ``n x n``
            matrices and temporaries.
        **params: metric parameters, as in :func:`holejax.pairwise_distances`.

    Returns:
        :class:`H0Result` with a leading ``batch`` axis (numpy arrays).

    Example:
        >>> import numpy as np
        >>> Xs = np.array([[[0.0], [1.0], [3.0]], [[0.0], [2.0], [7.0]]], np.float32)
        >>> np.round(h0_batched_from_points(Xs).deaths, 4).tolist()
        [[1.0, 2.0], [2.0, 5.0]]
    """
    from holejax.metrics import batched_pairwise_distances
    from holejax.metrics.batch import clouds_per_chunk
    from holejax.metrics.pairwise import prepare_cloud, warn_flagged
    from holejax.metrics.registry import split_params

    method = _resolve(method)
    arr = np.asarray(Xs) if not isinstance(Xs, (list, tuple)) else None
    if arr is not None and arr.ndim != 3:
        raise ValueError(
            f"Xs must have rank 3 (batch, sample, unit); got shape {arr.shape}. "
            "For one cloud use hj.h0_from_points or hj.h0(hj.pairwise_distances(X))."
        )
    clouds = list(Xs) if arr is None else list(arr)
    if not clouds:
        raise ValueError("Xs holds no clouds; pass at least one (sample, unit) cloud.")
    prepared = []
    for b, X in enumerate(clouds):
        a, spec, full = prepare_cloud(X, metric, params, argument=f"Xs[{b}]")
        if prepared and a.shape != prepared[0].shape:
            raise ValueError(
                f"Xs[{b}] has shape {a.shape} but Xs[0] has shape {prepared[0].shape}; "
                "batched clouds must share (sample, unit)."
            )
        prepared.append(a)
    if spec.host_kernel is not None:
        Ds = batched_pairwise_distances(prepared, metric, memory_budget, **params)
        return h0_batched(Ds, method, check=False)
    stacked = np.stack(prepared)
    batch, n, _ = stacked.shape
    static, arrays = split_params(spec, full)
    arrays = {k: jnp.asarray(v, dtype=stacked.dtype) for k, v in arrays.items()}
    chunk = clouds_per_chunk(n, stacked.dtype.itemsize, memory_budget, batch)
    parts, flags = [], []
    for lo in range(0, batch, chunk):
        part = stacked[lo : lo + chunk]
        short = chunk - len(part)
        if short:  # pad so every chunk has one shape (one compilation)
            part = np.concatenate([part, np.repeat(part[-1:], short, axis=0)])
        r, f = _run(
            lambda xs, start, count: _fused_jit(xs, start, metric, static, arrays, method, count), part
        )
        parts.append(H0Result(*(x[: len(x) - short] for x in _to_host(r))))
        flags.append(np.asarray(f)[: chunk - short])
    for b, fl in enumerate(np.concatenate(flags)):
        warn_flagged(spec, fl, full, cloud=b)
    return _concat(parts)
