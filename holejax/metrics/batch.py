"""``batched_pairwise_distances``: many clouds of one shape in one compiled call.

This module holds the library's one ``jax.vmap`` over clouds: the
single-cloud kernel of the metric is vmapped over a chunk of clouds and the
chunk is jit-compiled once. Chunks are sized so that the working memory of a
call (the chunk's ``n x n`` outputs plus the kernel's temporaries) stays under
``memory_budget``; the last chunk is padded to the same size so a whole batch
compiles once.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from holejax._executables import stored_jit
from holejax.distributed.sharding import round_to_devices, shard_batch
from holejax.metrics.host import adopt, aligned_empty
from holejax.metrics.padding import pad_inverse_covariance, pad_to_bucket, unit_bucket
from holejax.metrics.pairwise import cloud_distances, prepare_cloud, warn_flagged
from holejax.metrics.registry import MetricSpec, get_metric, split_params

__all__ = [
    "PADDED_METRICS",
    "batched_pairwise_distances",
    "cloud_distances_arguments",
    "clouds_per_chunk",
    "pad_units",
]

PADDED_METRICS = (
    "euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine", "angular",
    "density_euclidean", "density_cosine", "mahalanobis", "density_mahalanobis",
)
"""Metrics whose clouds are padded with zero units to a few widths (:func:`pad_units`).

A unit that is zero in every sample adds nothing to a difference, a norm or
an inner product (and has mean zero, so centring keeps it zero). Mahalanobis
estimates a covariance, which a zero unit would make singular: its kernels
take the number of real units as a traced argument and give the distances
of the unpadded cloud (:attr:`holejax.metrics.registry.MetricSpec.takes_units`).
"""

# (n, n) buffers a kernel holds at its peak per cloud: gram/difference, output, mask
_WORK_FACTOR = 3


def clouds_per_chunk(n: int, itemsize: int, memory_budget: int, batch: int) -> int:
    """How many ``n``-sample clouds one compiled call may hold under ``memory_budget`` bytes.

    Example:
        >>> clouds_per_chunk(1000, 4, 2**31, batch=500)
        178
    """
    per_cloud = _WORK_FACTOR * n * n * itemsize
    return int(max(1, min(batch, memory_budget // per_cloud)))


def pad_units(X: np.ndarray, metric: str) -> np.ndarray:
    """``X`` with zero units appended up to :func:`~holejax.metrics.padding.unit_bucket` for :data:`PADDED_METRICS`.

    Clouds of many widths then share a few compiled programs; the distances
    are the same (up to the order in which the products are summed). The
    Mahalanobis metrics also need the real width and a padded ``VI``:
    :func:`cloud_distances_arguments` prepares both.

    Example:
        >>> pad_units(np.ones((2, 3), np.float32), "cosine").shape
        (2, 64)
    """
    return pad_to_bucket(X) if metric in PADDED_METRICS else X


def cloud_distances_arguments(
    stacked: np.ndarray, metric: str, spec: MetricSpec, full: dict
) -> tuple[np.ndarray, tuple, dict]:
    """``(clouds, static, arrays)``: what :func:`cloud_distances` takes for validated clouds of one shape.

    Clouds of :data:`PADDED_METRICS` are padded with zero units
    (:func:`pad_units`); for a metric whose kernel ``takes_units``, ``arrays``
    also holds the real number of units (a traced int32 scalar) and a ``VI``
    padded with an identity block, so every width of a bucket shares one
    program. Array parameters are host numpy arrays in the clouds' dtype: the
    compiled call transfers them, and nothing is compiled to convert them.

    Args:
        stacked: ``(batch, sample, unit)`` clouds, validated
            (:func:`~holejax.metrics.pairwise.prepare_cloud`).
        metric, spec: the metric's name and :class:`~holejax.metrics.registry.MetricSpec`.
        full: its resolved parameters.

    Example:
        >>> spec = get_metric("mahalanobis")
        >>> full = {"covariance": "oas", "VI": None, "components": None}
        >>> clouds, static, arrays = cloud_distances_arguments(np.ones((2, 5, 3), np.float32), "mahalanobis", spec, full)
        >>> clouds.shape, static, {k: v.tolist() for k, v in arrays.items()}
        ((2, 5, 64), (('components', None), ('covariance', 'oas'), ('VI', None)), {'units': 3})
    """
    width = stacked.shape[-1]
    clouds = pad_units(stacked, metric)
    static, arrays = split_params(spec, full)
    arrays = {k: np.asarray(v, dtype=stacked.dtype) for k, v in arrays.items()}
    if spec.takes_units and metric in PADDED_METRICS:  # also when padded by 0 units: one program per bucket
        if "VI" in arrays:
            arrays["VI"] = pad_inverse_covariance(arrays["VI"], clouds.shape[-1])
        arrays["units"] = np.int32(width)
    return clouds, static, arrays


@stored_jit(static_argnames=("metric", "static"))
def _batched(Xs: jax.Array, metric: str, static: tuple, arrays: dict) -> tuple[jax.Array, jax.Array]:
    kernel = get_metric(metric).kernel
    return jax.vmap(lambda X: kernel(X, **dict(static), **arrays))(Xs)


def batched_pairwise_distances(
    Xs: ArrayLike | list,
    metric: str = "euclidean",
    memory_budget: int = 2**31,
    *,
    layer: str | None = None,
    perturbations: list[str] | None = None,
    **params: Any,
) -> jax.Array:
    """Distance matrices of many clouds of the same shape (e.g. one layer under many perturbations).

    Args:
        Xs: ``(batch, sample, unit)`` array, or a sequence of ``(sample, unit)``
            clouds of one shape.
        metric: one of :data:`holejax.metrics.METRICS`.
        memory_budget: bytes that one compiled call may use for its ``n x n``
            outputs and temporaries (default 2 GiB). The returned array itself
            holds ``batch * n * n`` values.
        layer, perturbations: where the clouds came from (``perturbations`` has
            one name per cloud); only used in messages.
        **params: metric parameters, as in :func:`holejax.pairwise_distances`.
            Data-dependent parameters (mahalanobis covariance, kNN scales) are
            computed per cloud.

    Returns:
        ``(batch, sample, sample)`` jax.Array, ``[b]`` equal to
        ``pairwise_distances(Xs[b], metric, **params)``.

    Raises:
        ValueError: as :func:`holejax.pairwise_distances` (naming the cloud),
            clouds of different shapes, an empty batch, a budget too small
            for one cloud.

    Example:
        >>> import numpy as np
        >>> Xs = np.stack([np.eye(3, dtype=np.float32), 2 * np.eye(3, dtype=np.float32)])
        >>> Ds = batched_pairwise_distances(Xs, "euclidean")
        >>> Ds.shape, round(float(Ds[1, 0, 1]) ** 2, 4)
        ((2, 3, 3), 8.0)
    """
    clouds = _as_clouds(Xs)
    if not isinstance(memory_budget, (int, np.integer)) or isinstance(memory_budget, bool) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}.")
    if perturbations is not None and len(perturbations) != len(clouds):
        raise ValueError(
            f"perturbations names {len(perturbations)} clouds but Xs holds {len(clouds)}; "
            "pass one name per cloud or None."
        )
    prepared = []
    for b, X in enumerate(clouds):
        pert = None if perturbations is None else perturbations[b]
        arr, spec, full = prepare_cloud(
            X, metric, params, argument=f"Xs[{b}]", layer=layer, perturbation=pert
        )
        if prepared and arr.shape != prepared[0].shape:
            raise ValueError(
                f"Xs[{b}] has shape {arr.shape} but Xs[0] has shape {prepared[0].shape}; "
                "batched clouds must share (sample, unit). Group clouds by shape, or call "
                "pairwise_distances per cloud."
            )
        prepared.append(arr)
    stacked = np.stack(prepared)
    batch, n, _ = stacked.shape
    itemsize = stacked.dtype.itemsize
    if n * n * itemsize > memory_budget:
        raise ValueError(
            f"memory_budget={memory_budget} bytes cannot hold even one {n} x {n} distance "
            f"matrix ({n * n * itemsize} bytes); raise memory_budget, or use "
            "holejax.h0_from_points, which never builds n x n."
        )

    if spec.host_kernel is not None:
        Ds_host, flags = aligned_empty((batch, n, n), stacked.dtype), []
        for b, X in enumerate(stacked):
            Ds_host[b], f = spec.host_kernel(X, **full)
            flags.append(f)
        Ds, flagged = adopt(Ds_host), np.stack(flags)
    else:
        static, arrays = split_params(spec, full)
        # cast on the host: no conversion program
        arrays = {k: np.asarray(v, dtype=stacked.dtype) for k, v in arrays.items()}
        chunk = round_to_devices(clouds_per_chunk(n, itemsize, memory_budget, batch))  # equal slices per device
        pieces, flag_pieces = [], []
        for start in range(0, batch, chunk):
            part = stacked[start : start + chunk]
            short = chunk - len(part)
            if short:  # pad with copies so every chunk has one shape (one compile)
                part = np.concatenate([part, np.repeat(part[-1:], short, axis=0)])
            # the jit call transfers the host array; with several devices, one slice of clouds per device
            D, f = _batched(shard_batch(part), metric, static, arrays)
            pieces.append(D[: chunk - short] if short else D)
            flag_pieces.append(np.asarray(f)[: chunk - short])
        Ds = pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)
        flagged = np.concatenate(flag_pieces)
    for b in range(batch):
        pert = None if perturbations is None else perturbations[b]
        warn_flagged(spec, flagged[b], full, layer=layer, perturbation=pert, cloud=b)
    return Ds


def _as_clouds(Xs: Any) -> list:
    if isinstance(Xs, (list, tuple)):
        clouds = list(Xs)
    else:
        Xs = np.asarray(Xs)
        if len(Xs.shape) != 3:
            raise ValueError(
                f"Xs must have rank 3 (batch, sample, unit) or be a list of (sample, unit) "
                f"clouds; got shape {tuple(Xs.shape)}. For one cloud use pairwise_distances."
            )
        clouds = [Xs[b] for b in range(Xs.shape[0])]
    if not clouds:
        raise ValueError("Xs holds no clouds; pass at least one (sample, unit) cloud.")
    return clouds
