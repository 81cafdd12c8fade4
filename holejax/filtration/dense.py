"""H0 of dense distance matrices: :func:`h0` for ``(..., sample, sample)`` inputs.

One jit-compiled kernel: an MST (dense Prim on CPU, Borůvka on GPU)
followed by the Kruskal merge tree of :mod:`.result`. Leading
batch axes are flattened and the single-cloud kernel is mapped over them in
one place (:func:`_over_range`): ``jax.vmap`` for Borůvka, ``lax.map`` for
Prim on CPU; on CPU one range of the batch per core runs in a host thread,
and with several accelerators one slice per device (:func:`_run`).
:func:`dense_from_points` is the dense engine of :func:`holejax.h0_from_points`:
per cloud, one program for its distances and one for its tree.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from holejax._checks import as_numeric_array, check_choice
from holejax._executables import stored_jit
from holejax.filtration._validate import (
    as_distance_matrices,
    check_summary,
    prepare_distance_matrices,
    summary,
)
from holejax.filtration.boruvka import boruvka_h0
from holejax.filtration.prim import prim_edges, prim_order, prim_order_from_rows
from holejax.filtration.result import H0Result, merge_tree, with_engine
from holejax.metrics.batch import cloud_distances_arguments
from holejax.metrics.pairwise import cloud_distances

__all__ = [
    "METHODS", "dense_from_points", "h0", "h0_kernel", "parallel_map", "parallel_map_programs", "to_host", "unflatten",
]

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
    return merge_tree(*prim_edges(*prim_order(D)), D.shape[0])


@stored_jit(static_argnames="method")
def _h0_jit(D: jax.Array, method: str) -> H0Result:
    return h0_kernel(D, method)


def _prim_at(Ds: jax.Array, i: jax.Array) -> H0Result:
    """Prim H0 of ``Ds[i]``, its rows read straight from the batch (no copy of the matrix)."""
    n = Ds.shape[-1]

    def row(j):
        return lax.dynamic_slice(Ds, (i, j, jnp.int32(0)), (1, 1, n)).reshape(n)

    return merge_tree(*prim_edges(*prim_order_from_rows(row, n, Ds.dtype)), n)


def _over_range(one, xs: jax.Array, start: jax.Array, count: int, method: str):
    """``one(xs, i)`` for ``i`` in ``[start, start + count)``, stacked (``lax.map`` or ``vmap``).

    Borůvka's rounds are wide parallel reductions: ``jax.vmap`` widens them
    further. Prim's steps are small and sequential: on CPU, running the
    clouds one after the other (``lax.map``) keeps each step a contiguous row
    read and a short reduction, which measured about twice as fast per element
    as the vmapped (gathered) form.
    """
    idx = start + jnp.arange(count, dtype=jnp.int32)
    if method == "prim" and jax.default_backend() == "cpu":
        return lax.map(lambda i: one(xs, i), idx)
    return jax.vmap(lambda i: one(xs, i))(idx)


@stored_jit(static_argnames=("method", "count"))
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


def parallel_map(fn, items: list) -> list:
    """``[fn(x) for x in items]``, spread over one host thread per core on CPU.

    XLA runs concurrent calls in parallel, and a compiled loop keeps about
    one core busy, so independent calls (row tiles, ranges of a batch) are
    issued from host threads. On accelerators the calls are issued in order.
    """
    if jax.default_backend() != "cpu" or _cores(len(items)) < 2:
        return [fn(x) for x in items]
    return list(_pool().map(fn, items))


def parallel_map_programs(fn, items: list, programs: list, prebuild=()) -> list:
    """``[fn(x) for x in items]`` on host threads, where ``programs[i]`` names the compiled programs item ``i`` runs.

    The first item of a program builds what the program's other items reuse:
    with an empty cache JAX traces and lowers it (Python's lock held) and XLA
    compiles it (lock released); in a later process it is loaded from
    holejax's store of executables (:mod:`holejax._executables`). So one
    extra thread runs the programs' first items, one after the other, while
    one thread per core runs the items whose programs are built, and builds
    a program itself only when no built item is waiting. Compilation thus
    overlaps computation, several programs compile at once when nothing else
    can run, and no thread waits for a program another thread is building.
    Results keep the order of ``items``; the first exception is raised once
    the threads stop. On accelerators, or with one core, the items run in order.

    ``prebuild``: callables that build programs the caller runs after the map
    (e.g. :func:`holejax.analysis.scores.compile_merge_scores`); the builder
    thread runs them once no program is left to start building, and the map
    returns after them. They are skipped where the items run in order.

    Example:
        >>> parallel_map_programs(lambda x: x * x, [1, 2, 3, 4], ["a", "b", "a", "b"])
        [1, 4, 9, 16]
    """
    if len(items) != len(programs):
        raise ValueError(f"programs names {len(programs)} items; items holds {len(items)}.")
    workers = min(_cores(len(items)), _MAX_WORKERS - 1)  # and one builder
    if jax.default_backend() != "cpu" or workers < 2:
        return [fn(x) for x in items]
    waiting: dict = {}  # program -> indices of its items, the first item first
    for i, key in enumerate(programs):
        waiting.setdefault(key, []).append(i)
    unbuilt = list(waiting)  # programs whose first item has not started, in order of appearance
    ready: deque = deque()  # items whose program has run once
    state = {"building": 0, "error": None}
    results: list = [None] * len(items)
    cond = threading.Condition()

    def take(builder: bool):
        with cond:
            while state["error"] is None:
                if ready and not builder:
                    return ready.popleft(), None
                if unbuilt:
                    state["building"] += 1
                    key = unbuilt.pop(0)
                    return waiting[key].pop(0), key
                if builder or not state["building"]:
                    return None
                cond.wait()
            return None

    def fail(err: BaseException) -> None:  # stop every thread; raised by the caller
        with cond:
            state["error"] = state["error"] or err
            cond.notify_all()

    def work(builder: bool):
        while (task := take(builder)) is not None:
            i, key = task
            try:
                results[i] = fn(items[i])
            except BaseException as err:
                return fail(err)
            if key is not None:
                with cond:
                    state["building"] -= 1
                    ready.extend(waiting.pop(key))
                    cond.notify_all()
        if builder and state["error"] is None:
            try:
                for build in prebuild:
                    build()
            except BaseException as err:
                fail(err)

    for future in [_pool().submit(work, k == 0) for k in range(workers + 1)]:
        future.result()
    if state["error"] is not None:
        raise state["error"]
    return results


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


def to_host(r: H0Result, engine: str | None = None) -> H0Result:
    """A result of jax arrays as numpy arrays (``edges`` int64, ``linkage`` float64), naming ``engine``.

    Example:
        >>> D = jnp.array([[0.0, 1.0], [1.0, 0.0]])
        >>> h = to_host(h0_kernel(D), "dense-prim")
        >>> h.linkage.dtype, h.edges.dtype, h.engine
        (dtype('float64'), dtype('int64'), 'dense-prim')
    """
    deaths, edges, linkage = jax.device_get(tuple(r))
    return with_engine(
        (np.asarray(deaths), np.asarray(edges, np.int64), np.asarray(linkage, np.float64)), engine
    )


def h0(D: ArrayLike, method: str = "auto", *, check: bool = True) -> H0Result:
    """H0 persistence of the Rips filtration of distance matrices, with any leading batch axes.

    Args:
        D: ``(..., sample, sample)`` symmetric non-negative distances with a
            zero diagonal; ``+inf`` marks pairs that are never connected (their
            parts die at ``+inf``). Leading axes (e.g. perturbation, layer) are
            a batch: each matrix gets its own tree, all in one compiled program.
        method: ``"auto"`` (Prim on CPU, Borůvka on GPU/TPU), ``"prim"``
            (dense Prim in a ``lax.scan``) or ``"boruvka"`` (log n rounds
            of parallel nearest-component searches). All give the same deaths.
        check: validate ``D`` first (NaN, sign, symmetry, diagonal); one extra
            pass over the matrices. Turn off only for matrices known to be valid.

    Returns:
        :class:`H0Result` of numpy arrays: ``deaths (..., edge)``, ``edges
        (..., edge, 2)`` int64 and ``linkage (..., edge, 4)`` float64,
        ``edge = sample - 1``, in Kruskal merge order with deterministic ties;
        ``engine`` names the MST (``"dense-prim"`` or ``"dense-boruvka"``).
        Under ``jax.jit`` or ``jax.vmap`` (a traced ``D``) the checks are
        skipped and jax arrays are returned.

    Example:
        >>> import numpy as np
        >>> D = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0]], dtype=np.float32)
        >>> h = h0(D)
        >>> h.deaths.tolist(), h.edges.tolist(), h.engine
        ([1.0, 4.0], [[0, 1], [1, 2]], 'dense-prim')
        >>> h0(np.stack([D, 2 * D])[None]).deaths.tolist()
        [[[1.0, 4.0], [2.0, 8.0]]]
    """
    method = _resolve(method)
    if isinstance(D, jax.core.Tracer):
        kernel = partial(h0_kernel, method=method)
        for _ in range(D.ndim - 2):
            kernel = jax.vmap(kernel)
        return kernel(D)
    engine = f"dense-{method}"
    if not isinstance(D, jax.Array):
        D = as_numeric_array(D, "D", "a distance matrix", numeric=False)
    if np.ndim(D) == 2:
        D = as_distance_matrices(D, "D") if check else jnp.asarray(D)
        return to_host(_h0_jit(D, method), engine)
    Ds = prepare_distance_matrices(D, "D", batched=True)
    lead = Ds.shape[:-2]
    if math.prod(lead) == 0:
        raise ValueError(f"D holds no matrices (shape {Ds.shape}); pass at least one (sample, sample) matrix.")
    Ds = Ds.reshape((-1,) + Ds.shape[-2:])
    summ = None
    if check and Ds.size:
        # dispatched asynchronously: the data checks' pass over Ds overlaps the
        # trees (one batched pass measured faster than one pass per matrix
        # inside the tree programs); the trees are dropped if it fails
        summ = summary(Ds)
    out = _run(lambda xs, start, count: _h0_range_jit(xs, start, method, count), Ds)
    if summ is not None:
        check_summary(Ds, summ, "D", batched=True)
    return unflatten(to_host(out, engine), lead)


def unflatten(r: H0Result, lead: tuple) -> H0Result:
    """Results with one flat batch axis -> results with the ``lead`` batch axes.

    Example:
        >>> flat = h0(np.zeros((6, 2, 2), np.float32))
        >>> unflatten(flat, (2, 3)).linkage.shape
        (2, 3, 1, 4)
    """
    return with_engine(tuple(np.reshape(x, lead + x.shape[1:]) for x in r), r.engine)


def dense_from_points(
    stacked: np.ndarray, metric: str, spec, full: dict, method: str
) -> tuple[H0Result, np.ndarray]:
    """H0 of ``(batch, sample, unit)`` validated clouds by way of their ``n x n`` matrices.

    Each cloud's matrix is computed by one compiled program and its tree by
    another, and the pair runs per cloud, one cloud per core in host threads
    (on CPU; in order on accelerators), so at most one matrix per core is
    alive. The programs depend only on the cloud's shape: the tree program is
    shared by every metric and width, and clouds of the metrics in
    :data:`holejax.metrics.batch.PADDED_METRICS` are padded with zero units
    to a few widths, so a study of many layers compiles a few programs.
    Host metrics (geodesic) compute their matrices on the host. Returns the
    results (numpy, leading batch axis) and the metric's ``(batch, sample,
    flag)`` flags.
    """
    method = _resolve(method)
    padded, static, arrays = cloud_distances_arguments(stacked, metric, spec, full)

    def one(X):
        if spec.host_kernel is not None:
            D, flags = spec.host_kernel(X, **full)
        else:
            D, flags = cloud_distances(X, metric, static, arrays)  # the jit call transfers X
        return to_host(_h0_jit(D, method)), np.asarray(flags)

    outs = parallel_map(one, list(padded))
    result = with_engine(tuple(np.stack(f) for f in zip(*(r for r, _ in outs))), f"dense-{method}")
    return result, np.stack([f for _, f in outs])
