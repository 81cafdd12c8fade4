"""The table of metrics: names, kernels, parameters and their host-side checks.

Every metric is described by a :class:`MetricSpec`. Its ``kernel`` takes one
cloud and returns ``(D, flagged)``: the ``(sample, sample)`` distances and a
``(sample,)`` bool mask of samples the caller should warn about (zero vectors
under cosine, zero local scale under density normalisation). Kernels are
jit-able and vmap-able; the one exception, geodesic, has a ``host_kernel``
because its shortest paths run in scipy on the host.

Parameters are validated on the host by ``check(params, n, d)`` before any
tracing. Hashable parameters become static arguments of the compiled call;
array parameters (a user-supplied inverse covariance) are traced.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import jax
import jax.numpy as jnp
import numpy as np

from holejax._cache import configure_compile_cache
from holejax._checks import check_choice
from holejax.metrics import cosine as _cos
from holejax.metrics import density as _den
from holejax.metrics import euclidean as _euc
from holejax.metrics import geodesic as _geo
from holejax.metrics import mahalanobis as _mah
from holejax.metrics import projection as _proj

__all__ = ["MetricSpec", "METRICS", "get_metric", "register", "check_k"]

configure_compile_cache()  # compiled programs persist across processes (holejax._cache)


FlagMessage = Union[str, Callable[[np.ndarray, str, dict], Union[str, None]]]


@dataclass(frozen=True)
class MetricSpec:
    """How to compute one metric.

    Attributes:
        name: the public name, e.g. ``"cosine"``.
        kernel: ``(X, **params) -> (D, flags)`` for one cloud, jit-able; ``flags``
            is ``(sample, len(flag_messages))``. None for host metrics.
        defaults: every accepted parameter with its default value.
        check: ``(params, n, d) -> params`` host-side validation; raises on bad values.
        check_cloud: ``(X, params) -> None`` host-side validation that needs the data.
        flag_messages: one warning per flag column: a format string (fields
            ``count``, ``first``, ``where``, ``metric``) used when any sample is
            flagged, or a callable ``(column, where, params) -> str | None``.
        host_kernel: ``(X: np.ndarray, **params) -> (D, flags)`` for metrics that
            leave the device (geodesic).
        array_params: names of parameters that are arrays (traced, not static).
        takes_units: the kernel accepts ``units``, the number of real units of
            a cloud padded with zero units (traced), and gives the distances
            of the unpadded cloud (see :mod:`holejax.metrics.padding`).
    """

    name: str
    kernel: Callable[..., tuple[jax.Array, jax.Array]] | None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict, int, int], dict] | None = None
    check_cloud: Callable[[np.ndarray, dict], None] | None = None
    flag_messages: tuple[FlagMessage, ...] = ()
    host_kernel: Callable[..., tuple[Any, Any]] | None = None
    array_params: tuple[str, ...] = ()
    takes_units: bool = False


_REGISTRY: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Add a metric to the table (module import time only)."""
    _REGISTRY[spec.name] = spec
    return spec


def get_metric(metric: str) -> MetricSpec:
    """The spec of ``metric``; ValueError with a close-match hint for unknown names.

    Example:
        >>> get_metric("cosine").name
        'cosine'
    """
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a metric name (str); got {type(metric).__name__}.")
    check_choice(metric, "metric", _REGISTRY)
    return _REGISTRY[metric]


def check_k(k: Any, n: int, argument: str = "k") -> int:
    """Validate a neighbour count: an integer with ``1 <= k <= n - 1``.

    Example:
        >>> check_k(5, 10)
        5
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{argument} must be an integer number of neighbours; got {k!r}.")
    k = int(k)
    if k < 1 or k > n - 1:
        raise ValueError(
            f"{argument} must satisfy 1 <= {argument} <= n - 1 = {n - 1} for a cloud of {n} "
            f"samples; got {argument}={k}. Choose a smaller {argument} or pass more samples."
        )
    return k


def resolve_params(spec: MetricSpec, params: Mapping[str, Any], n: int, d: int) -> dict:
    """Defaults filled in, unknown names rejected, values checked by the spec."""
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        accepted = ", ".join(sorted(spec.defaults)) or "none"
        raise TypeError(
            f"metric={spec.name!r} got unexpected parameter(s) {unknown}; "
            f"it accepts: {accepted}."
        )
    full = {**spec.defaults, **params}
    if spec.check is not None:
        full = spec.check(full, n, d)
    return full


def split_params(spec: MetricSpec, params: Mapping[str, Any]) -> tuple[tuple, dict]:
    """(static items as a sorted tuple, array params as a dict) for a compiled call."""
    static = tuple(sorted((k, v) for k, v in params.items() if k not in spec.array_params))
    arrays = {k: v for k, v in params.items() if k in spec.array_params and v is not None}
    static = static + tuple(
        sorted((k, None) for k, v in params.items() if k in spec.array_params and v is None)
    )
    return static, arrays


def _no_flags(D: jax.Array) -> jax.Array:
    return jnp.zeros((D.shape[0], 0), dtype=bool)


def _plain(fn: Callable[..., jax.Array]) -> Callable[..., tuple[jax.Array, jax.Array]]:
    def kernel(X, **params):
        D = fn(X, **params)
        return D, _no_flags(D)

    kernel.__name__ = fn.__name__
    return kernel


def _zero_rows(X: jax.Array) -> jax.Array:
    return ~jnp.any(X != 0, axis=1)


def _direction(fn: Callable[[jax.Array], jax.Array]) -> Callable[..., tuple[jax.Array, jax.Array]]:
    def kernel(X):
        return fn(X), _zero_rows(X)[:, None]

    kernel.__name__ = fn.__name__
    return kernel


def _mahalanobis(X, covariance="ledoit_wolf", VI=None, components=None, units=None):
    """Mahalanobis distances, after projecting onto ``components`` principal components if set.

    Padded units have zero variance, so they are never among the leading
    components, and the scores hold real units only.
    """
    if components is not None:
        X, units = _proj.principal_scores(X, components), None
    return _mah.mahalanobis_kernel(X, covariance, VI, units)


def _density(base: str) -> Callable[..., tuple[jax.Array, jax.Array]]:
    def kernel(X, k, scale, covariance="ledoit_wolf", VI=None, components=None, units=None):
        if base == "mahalanobis":  # with the flag of a singular covariance
            D, singular = _mahalanobis(X, covariance, VI, components, units)
        else:
            D = _den.BASE_DISTANCES[base](X, covariance=covariance, VI=VI)
        Dn, zero_scale = _den.density_normalise(D, _den.local_scales(D, k, scale))
        if base == "cosine":
            return Dn, jnp.stack([_zero_rows(X), zero_scale], axis=1)
        if base == "mahalanobis":
            return Dn, jnp.concatenate([singular, zero_scale[:, None]], axis=1)  # the error first
        return Dn, zero_scale[:, None]

    kernel.__name__ = f"density_{base}"
    return kernel


def _geodesic_host(X: np.ndarray, k: int, mutual: bool, disconnected: str) -> tuple[np.ndarray, np.ndarray]:
    D, components = _geo.geodesic_distances(X, k=k, mutual=mutual, disconnected=disconnected)
    return D, components[:, None]


# ---- parameter checks ---------------------------------------------------------


def _check_bool(value: Any, argument: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argument} must be True or False; got {value!r}.")
    return bool(value)


def _check_geodesic(params: dict, n: int, d: int) -> dict:
    return {
        "k": check_k(params["k"], n),
        "mutual": _check_bool(params["mutual"], "mutual"),
        "disconnected": check_choice(params["disconnected"], "disconnected", _geo.DISCONNECTED),
    }


def _check_mahalanobis(params: dict, n: int, d: int) -> dict:
    out = dict(params)
    out["covariance"] = check_choice(params["covariance"], "covariance", _mah.COVARIANCE_ESTIMATORS)
    out["components"] = _proj.check_components(params["components"], n, d)
    if params["VI"] is not None:
        if out["components"] is not None:
            raise ValueError(
                "VI is an inverse covariance of the units and cannot be combined with components "
                f"(a projection onto {out['components']} principal components); pass one of them."
            )
        out["VI"] = _mah.check_inverse_covariance(params["VI"], d)
    return out


def _check_mahalanobis_cloud(X: np.ndarray, params: dict) -> None:
    if params.get("VI") is None and params.get("covariance") == "empirical":
        _mah.check_empirical_conditioning(X, params.get("components"))


def _check_density(params: dict, n: int, d: int) -> dict:
    out = dict(params)
    out["k"] = check_k(params["k"], n)
    out["scale"] = check_choice(params["scale"], "scale", _den.SCALES)
    if "covariance" in params:
        out = {**out, **_check_mahalanobis(out, n, d)}
    return out


# ---- the table -------------------------------------------------------------------

_ZERO_VECTOR_MESSAGE = (
    "{count} sample(s) are zero vectors (first: sample {first}){where}; they have no "
    "direction, so {metric} places them at cosine similarity 0 from every other point. "
    "Drop or jitter them, or use a metric that sees magnitude (euclidean)."
)
_ZERO_SCALE_MESSAGE = (
    "{count} sample(s) have local scale 0 (first: sample {first}){where}: their k nearest "
    "neighbours under {metric} are all at distance 0 (duplicate points). They were given the "
    "smallest positive scale of the cloud; deduplicate the samples or pass a larger k."
)
_MAHALANOBIS_DEFAULTS = {"covariance": "ledoit_wolf", "VI": None, "components": None}

for _spec in [
    MetricSpec("euclidean", _plain(_euc.euclidean_distances)),
    MetricSpec("sqeuclidean", _euc.sqeuclidean_kernel, flag_messages=(_euc.sqeuclidean_range_failure,)),
    MetricSpec("manhattan", _plain(_euc.manhattan_distances)),
    MetricSpec("chebyshev", _plain(_euc.chebyshev_distances)),
]:
    register(_spec)

register(MetricSpec("cosine", _direction(_cos.cosine_distances), flag_messages=(_ZERO_VECTOR_MESSAGE,)))
register(MetricSpec("angular", _direction(_cos.angular_distances), flag_messages=(_ZERO_VECTOR_MESSAGE,)))
register(
    MetricSpec(
        "mahalanobis",
        _mahalanobis,
        defaults=_MAHALANOBIS_DEFAULTS,
        check=_check_mahalanobis,
        check_cloud=_check_mahalanobis_cloud,
        flag_messages=(_mah.covariance_failure,),
        array_params=("VI",),
        takes_units=True,
    )
)
register(
    MetricSpec(
        "geodesic",
        None,
        defaults={"k": 10, "mutual": False, "disconnected": "inf"},
        check=_check_geodesic,
        flag_messages=(_geo.components_message,),
        host_kernel=_geodesic_host,
    )
)
register(
    MetricSpec(
        "density_euclidean",
        _density("euclidean"),
        defaults={"k": 5, "scale": "mean"},
        check=_check_density,
        flag_messages=(_ZERO_SCALE_MESSAGE,),
    )
)
register(
    MetricSpec(
        "density_cosine",
        _density("cosine"),
        defaults={"k": 5, "scale": "mean"},
        check=_check_density,
        flag_messages=(_ZERO_VECTOR_MESSAGE, _ZERO_SCALE_MESSAGE),
    )
)
register(
    MetricSpec(
        "density_mahalanobis",
        _density("mahalanobis"),
        defaults={"k": 5, "scale": "mean", **_MAHALANOBIS_DEFAULTS},
        check=_check_density,
        check_cloud=_check_mahalanobis_cloud,
        flag_messages=(_mah.covariance_failure, _ZERO_SCALE_MESSAGE),
        array_params=("VI",),
        takes_units=True,
    )
)

METRICS: tuple[str, ...] = tuple(_REGISTRY)
"""Names accepted by ``metric=``, in the order reports list them."""
