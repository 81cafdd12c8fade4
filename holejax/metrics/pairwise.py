"""``pairwise_distances``: one cloud in, its distance matrix out.

The input is validated on the host (rank, size, NaN/Inf naming the sample,
metric name, parameters) before anything is traced; the distances come from
one jit-compiled kernel per (metric, static parameters, shape, dtype).
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike

from holejax._checks import CloudError, as_cloud, where
from holejax._executables import stored_jit
from holejax.metrics.density import BASE_DISTANCES, density_normalise, local_scales
from holejax.metrics.host import adopt, device_input
from holejax.metrics.registry import MetricSpec, get_metric, resolve_params, split_params

__all__ = ["DENSITY_BASES", "cloud_distances", "pairwise_distances"]


def device_dtype(arr: np.ndarray) -> np.dtype:
    """float64 when the input is float64 and x64 is enabled, else float32."""
    if arr.dtype == np.float64 and jax.dtypes.canonicalize_dtype(np.float64) == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def check_float32_range(arr: np.ndarray, argument: str = "X", suffix: str = "") -> None:
    """ValueError when a float64 cloud would overflow, or vanish, in float32.

    Without x64 the kernels run in float32: a cloud whose largest ``|x|`` is
    beyond ``3.4e38`` would become ``inf``, and one whose largest ``|x|`` is
    below ``1.2e-38`` would become all zeros (every distance 0).

    Example:
        >>> check_float32_range(np.array([[1e300, 0.0]]))
        Traceback (most recent call last):
        ...
        ValueError: X holds values up to 1e+300, outside the float32 range the kernels use without x64 (largest |x| must lie in [1.18e-38, 3.4e+38], or be 0). Enable x64 (jax.config.update('jax_enable_x64', True)) to keep float64, or rescale X.
    """
    big = float(np.max(np.abs(arr))) if arr.size else 0.0
    info = np.finfo(np.float32)
    if big > float(info.max) or 0 < big < float(info.tiny):
        raise ValueError(
            f"{argument} holds values up to {big:.3g}{suffix}, outside the float32 range the kernels use "
            f"without x64 (largest |x| must lie in [{info.tiny:.3g}, {info.max:.3g}], or be 0). Enable x64 "
            f"(jax.config.update('jax_enable_x64', True)) to keep float64, or rescale {argument}."
        )


def prepare_cloud(
    X: Any, metric: str, params: dict, *, argument: str = "X", layer=None, perturbation=None
) -> tuple[np.ndarray, MetricSpec, dict]:
    """Host-side checks shared by the single and batched entry points."""
    spec = get_metric(metric)
    arr = as_cloud(X, argument, min_points=2, layer=layer, perturbation=perturbation)
    dtype = device_dtype(arr)
    if dtype != arr.dtype:
        check_float32_range(arr, argument, where(layer, perturbation))
    arr = arr.astype(dtype, copy=False)
    full = resolve_params(spec, params, arr.shape[0], arr.shape[1])
    if dtype == np.float32:  # array parameters (VI) are cast to the cloud's dtype as well
        for name in spec.array_params:
            if full.get(name) is not None:
                check_float32_range(np.asarray(full[name]), name)
    if spec.check_cloud is not None:
        spec.check_cloud(arr, full)
    return arr, spec, full


def warn_flagged(spec: MetricSpec, flags: Any, params: dict, *, layer=None, perturbation=None, cloud=None) -> None:
    """Emit the spec's warnings for the flag columns the kernel raised.

    A flag message may raise :class:`~holejax._checks.CloudError` instead (a
    cloud the metric cannot use); it is re-raised with the cloud's location.
    """
    if not spec.flag_messages:
        return  # no flag columns: nothing to fetch from the device
    flags = np.asarray(flags)
    suffix = where(layer, perturbation)
    if cloud is not None:
        suffix = f" (cloud {cloud})" + suffix
    for column, message in zip(flags.T, spec.flag_messages):
        if callable(message):
            try:
                text = message(column, suffix, params)
            except CloudError as err:  # a cloud the metric cannot use: say which one
                raise err.located(layer=layer, perturbation=perturbation, cloud=cloud) from None
        elif column.any():
            text = message.format(
                count=int(column.sum()), first=int(np.argmax(column)), where=suffix, metric=spec.name
            )
        else:
            text = None
        if text:
            warnings.warn(text, RuntimeWarning, stacklevel=3)


@stored_jit(static_argnames=("metric", "static"))
def _kernel_program(X: jax.Array, metric: str, static: tuple, arrays: dict) -> tuple[jax.Array, jax.Array]:
    return get_metric(metric).kernel(X, **dict(static), **arrays)


@stored_jit(static_argnames=("k", "scale"))
def _density_program(D: jax.Array, k: int, scale: str) -> tuple[jax.Array, jax.Array]:
    return density_normalise(D, local_scales(D, k, scale))


# density-normalised metric -> its base metric
DENSITY_BASES = {f"density_{base}": base for base in BASE_DISTANCES}


def cloud_distances(X: ArrayLike, metric: str, static: tuple, arrays: dict) -> tuple[jax.Array, jax.Array]:
    """``(D, flags)`` of one prepared cloud: the metric's kernel as one compiled program per shape.

    A density-normalised metric runs its base metric's program, then one
    normalisation program shared by every base: a study of a metric and its
    density form compiles the base once. The flags are the base's columns,
    then the zero-scale column, as the metric's kernel gives them (a host
    array for density metrics).

    Args:
        X: ``(sample, unit)`` validated cloud (host or device array; the call transfers it).
        metric: a device metric of :data:`holejax.metrics.METRICS`.
        static, arrays: its parameters as split by
            :func:`holejax.metrics.registry.split_params` (arrays as host numpy arrays).

    Example:
        >>> X = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], np.float32)
        >>> D, flags = cloud_distances(X, "density_euclidean", (("k", 1), ("scale", "mean")), {})
        >>> np.round(np.asarray(D)[0], 4).tolist(), flags.shape
        ([0.0, 1.0, 2.0], (3, 1))
    """
    base = DENSITY_BASES.get(metric)
    if base is None:
        return _kernel_program(X, metric, static, arrays)
    params = dict(static)
    k, scale = params.pop("k"), params.pop("scale")
    D, flags = _kernel_program(X, base, tuple(params.items()), arrays)
    Dn, zero_scale = _density_program(D, k, scale)
    # flags joined on the host: bases with and without flag columns share the program
    return Dn, np.concatenate([np.asarray(flags), np.asarray(zero_scale)[:, None]], axis=1)


def pairwise_distances(
    X: ArrayLike,
    metric: str = "euclidean",
    *,
    layer: str | None = None,
    perturbation: str | None = None,
    **params: Any,
) -> jax.Array:
    """Distances between all samples of one point cloud.

    Args:
        X: ``(sample, unit)`` activations (numpy, jax or anything array-like).
            float64 stays float64 only when x64 is enabled (``jax.enable_x64``);
            otherwise computations run in float32.
        metric: one of :data:`holejax.metrics.METRICS`.
        layer, perturbation: where the cloud came from; only used in messages.
        **params: metric parameters, e.g. ``k`` for geodesic and density metrics,
            ``shrinkage`` for mahalanobis. Unknown names are rejected.

    Returns:
        ``(sample, sample)`` jax.Array: symmetric, zero diagonal, float32
        (float64 under x64 with float64 input). Geodesic distances between
        samples in different kNN-graph components are ``inf``.

    Raises:
        ValueError: NaN/Inf (names the sample), fewer than 2 samples, wrong
            rank, unknown metric (with a close match), bad parameter values.
        TypeError: unknown parameter names, non-numeric input.

    Example:
        >>> import numpy as np
        >>> X = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], dtype=np.float32)
        >>> np.asarray(pairwise_distances(X)).tolist()
        [[0.0, 5.0, 10.0], [5.0, 0.0, 5.0], [10.0, 5.0, 0.0]]
        >>> np.asarray(pairwise_distances(X, "manhattan"))[0].tolist()
        [0.0, 7.0, 14.0]
    """
    arr, spec, full = prepare_cloud(X, metric, params, layer=layer, perturbation=perturbation)
    if spec.host_kernel is not None:
        D, flagged = spec.host_kernel(arr, **full)
    else:
        static, arrays = split_params(spec, full)
        arrays = {k: np.asarray(v, dtype=arr.dtype) for k, v in arrays.items()}  # on the host: no conversion program
        D, flagged = cloud_distances(device_input(X, arr), metric, static, arrays)
    warn_flagged(spec, flagged, full, layer=layer, perturbation=perturbation)
    return D if isinstance(D, jax.Array) else adopt(D)
