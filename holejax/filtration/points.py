"""``h0_from_points``: H0 of point clouds ``(..., sample, unit)``, one entry point for every size.

It picks one of the engines by the size of the clouds and the memory budget
and names it in the result (:attr:`H0Result.engine`):

- ``"dense"`` (:func:`.dense.dense_from_points`): each cloud's ``n x n``
  matrix is built and consumed inside one compiled program with its MST
  (Prim on CPU, Borůvka on accelerators). Every metric; the fastest while the
  matrices fit ``memory_budget`` and ``n`` is moderate.
- ``"tiled"`` (:func:`.tiled.boruvka_from_points`): Borůvka rounds over tiles
  of matrix products, ``O(n d)`` memory. Euclidean, squared euclidean and
  cosine; the large-n engine (50k-500k samples).
- ``"rows"`` (:func:`.tiled.h0_points_kernel`): Prim with each row computed
  from the points, ``O(n d)`` memory, one compiled program (never chosen by
  ``"auto"``; kept for traced use and for comparison).
- ``"geodesic"`` always runs on the host through the kNN graph's spanning
  forest (engine ``"knn-graph"``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from holejax._checks import as_cloud, as_numeric_array, check_choice
from holejax._executables import stored_jit
from holejax.filtration.dense import dense_from_points, parallel_map, to_host, unflatten
from holejax.filtration.result import H0Result, forest_merge_tree, with_engine
from holejax.filtration.tiled import TILED_METRICS, boruvka_from_points, geodesic_h0, h0_points_kernel
from holejax.metrics import METRICS
from holejax.metrics.pairwise import prepare_cloud, warn_flagged

__all__ = ["DENSE_MAX_SAMPLES", "ENGINES", "h0_from_points"]

ENGINES = ("auto", "dense", "tiled", "rows")

DENSE_MAX_SAMPLES = 8192
"""Above this many samples ``engine="auto"`` takes the tiled engine for the metrics it supports."""

# (n, n) buffers the dense engine holds per cloud (see holejax.metrics.batch)
_DENSE_FACTOR = 3


@stored_jit(static_argnames="metric")
def _rows_jit(X: jax.Array, metric: str) -> H0Result:
    return h0_points_kernel(X, metric)


def _stack(X: Any) -> np.ndarray:
    arr = as_numeric_array(X, "X", "a (sample, unit) cloud, or clouds of one shape stacked", numeric=False)
    if arr.ndim < 2:
        raise ValueError(
            f"X must have shape (..., sample, unit); got shape {arr.shape}. "
            "Pass one cloud as (sample, unit), or clouds of one shape stacked on leading axes."
        )
    return arr


def _choose(engine: str, metric: str, n: int, itemsize: int, memory_budget: int) -> str:
    fits = _DENSE_FACTOR * n * n * itemsize <= memory_budget
    if engine == "auto":
        if metric in TILED_METRICS and (n > DENSE_MAX_SAMPLES or not fits):
            return "tiled"
        engine = "dense"
    if engine in ("tiled", "rows") and metric not in TILED_METRICS:
        raise ValueError(
            f"engine={engine!r} computes {', '.join(TILED_METRICS)} from the points; "
            f"metric={metric!r} needs engine='dense' (or 'auto')."
        )
    if engine == "dense" and not fits:
        need = _DENSE_FACTOR * n * n * itemsize
        hint = " or engine='tiled'" if metric in TILED_METRICS else ""
        raise ValueError(
            f"metric={metric!r} needs its {n} x {n} distance matrices ({need} bytes with "
            f"temporaries) but memory_budget={memory_budget}; raise memory_budget{hint}."
        )
    return engine


def h0_from_points(
    X: Any,
    metric: str = "euclidean",
    *,
    engine: str = "auto",
    method: str = "auto",
    memory_budget: int = 2**31,
    **params: Any,
) -> H0Result:
    """H0 of point clouds ``(..., sample, unit)`` under a metric, by the engine that suits their size.

    Equal to ``hj.h0(hj.pairwise_distances(X, metric, **params))`` for each
    cloud, without handing ``n x n`` matrices back and forth.

    Args:
        X: ``(sample, unit)`` points, or clouds of one shape with leading
            batch axes ``(..., sample, unit)`` (e.g. perturbation x cloud).
        metric: any of :data:`holejax.METRICS`. Euclidean, squared euclidean
            and cosine run on every engine; the other metrics need their
            ``n x n`` matrices (the dense engine) and raise when those exceed
            ``memory_budget``, except geodesic, which always goes through the
            spanning forest of its kNN graph on the host (``O(n k)`` memory).
        engine: ``"auto"`` (dense while ``n <= DENSE_MAX_SAMPLES`` and the
            matrices fit ``memory_budget``, else tiled), ``"dense"``,
            ``"tiled"`` or ``"rows"`` (see :mod:`holejax.filtration.points`).
        method: MST of the dense engine, as in :func:`holejax.h0`.
        memory_budget: bytes one compiled call may hold for ``n x n``
            matrices and temporaries.
        **params: metric parameters, as in :func:`holejax.pairwise_distances`.

    Returns:
        :class:`H0Result` of numpy arrays with the leading axes of ``X``;
        ``engine`` says which engine ran (``"dense-prim"``,
        ``"dense-boruvka"``, ``"tiled-boruvka"``, ``"rows-prim"``,
        ``"knn-graph"``).

    Example:
        >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0]], dtype=np.float32)
        >>> h = h0_from_points(X)
        >>> h.deaths.tolist(), h.engine
        ([1.0, 5.0], 'dense-prim')
        >>> h0_from_points(X, engine="tiled").deaths.tolist()
        [1.0, 5.0]
        >>> h0_from_points(np.stack([X, 2 * X])).deaths.tolist()
        [[1.0, 5.0], [2.0, 10.0]]
    """
    check_choice(engine, "engine", ENGINES)
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}.")
    arr = _stack(X)
    lead = arr.shape[:-2]
    clouds = arr.reshape((math.prod(lead),) + arr.shape[-2:])  # not -1: a cloud may be empty
    if clouds.shape[0] == 0:
        raise ValueError(f"X holds no clouds (shape {arr.shape}); pass at least one (sample, unit) cloud.")
    prepared = []
    for b, cloud in enumerate(clouds):
        argument = "X" if not lead else f"X[{', '.join(map(str, np.unravel_index(b, lead)))}]"
        if cloud.shape[0] == 1:  # one sample: no edges, under any metric
            prepared.append(as_cloud(cloud, argument))
            continue
        a, spec, full = prepare_cloud(cloud, metric, params, argument=argument)
        prepared.append(a)
    stacked = np.stack(prepared)
    if stacked.shape[1] == 1:
        check_choice(metric, "metric", METRICS)
        one = forest_merge_tree([], [], np.zeros(0, stacked.dtype), 1)
        return _finish(with_engine(tuple(np.stack([f] * len(stacked)) for f in one), "none"), lead)
    batch, n, _ = stacked.shape
    if metric == "geodesic":
        parts = [geodesic_h0(x, full["k"], full["mutual"], full["disconnected"]) for x in stacked]
        out = with_engine(tuple(np.stack(f) for f in zip(*parts)), "knn-graph")
        return _finish(out, lead)
    chosen = _choose(engine, metric, n, stacked.dtype.itemsize, memory_budget)
    if chosen == "dense":
        out, flags = dense_from_points(stacked, metric, spec, full, method)
    else:
        if chosen == "tiled":
            parts = [boruvka_from_points(x, metric)[0] for x in stacked]
        else:
            parts = parallel_map(lambda x: to_host(_rows_jit(jnp.asarray(x), metric)), list(stacked))
        name = "tiled-boruvka" if chosen == "tiled" else "rows-prim"
        out = with_engine(tuple(np.stack(f) for f in zip(*parts)), name)
        flags = _point_engine_flags(stacked, metric, spec, out)
    for b, fl in enumerate(flags):
        warn_flagged(spec, fl, full, cloud=b if lead else None)
    return _finish(out, lead)


def _point_engine_flags(clouds: np.ndarray, metric: str, spec, out: H0Result) -> np.ndarray:
    """``(batch, sample, flag)`` flags of the tiled and rows engines, the columns of the metric's kernel.

    Cosine flags all-zero points. Squared euclidean flags the endpoints of
    tree edges whose squared length left the float range (inf, or below the
    smallest normal float between distinct points): only tree edges give
    deaths, so only theirs must be representable.
    """
    batch, n, _ = clouds.shape
    if not spec.flag_messages:
        return np.zeros((batch, n, 0), bool)
    if metric != "sqeuclidean":
        return ~np.any(clouds != 0, axis=2)[..., None]
    flags = np.zeros((batch, n, 1), bool)
    tiny = np.finfo(out.deaths.dtype).tiny
    for b in range(batch):
        edges, deaths = out.edges[b], out.deaths[b]
        distinct = np.any(clouds[b, edges[:, 0]] != clouds[b, edges[:, 1]], axis=1)
        lost = np.isinf(deaths) | (distinct & (deaths < tiny))
        flags[b, edges[lost].ravel(), 0] = True
    return flags


def _finish(out: H0Result, lead: tuple) -> H0Result:
    if lead:
        return unflatten(out, lead)
    return with_engine(tuple(x[0] for x in out), out.engine)

