"""Input noise: gaussian, uniform, salt-and-pepper, Poisson and speckle.

Every kernel is written for one sample and vmapped over the batch with one
PRNG key per sample (see :meth:`Perturbation.apply` and
:meth:`Perturbation.apply_at`). Each factory takes an optional
``clip=(low, high)`` that clips the noisy sample to the input range (for
images scaled to [0, 1]: ``clip=(0.0, 1.0)``).

Definitions (``x`` one sample, ``n`` the noise):

==================  ==========================================================
gaussian(sigma)     ``x + sigma * N(0, 1)``
uniform(a)          ``x + U(-a, a)``
salt_and_pepper(p)  each entry becomes ``high`` with probability p/2 and ``low``
                    with probability p/2; ``low``/``high`` default to the
                    sample's own minimum and maximum
poisson(lam)        ``Poisson(lam * (x - m)) / lam + m`` with ``m = min(0, min x)``:
                    shot noise whose variance grows with the signal; larger
                    ``lam`` (photons per unit) means *less* noise
speckle(sigma)      ``x + x * sigma * N(0, 1)`` (multiplicative)
==================  ==========================================================
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from holejax._executables import stored_jit
from holejax.perturb.base import Perturbation, check_clip, check_number, register_factory

__all__ = ["apply_noise", "gaussian", "poisson", "salt_and_pepper", "speckle", "uniform"]


def _args(clip: tuple[float, float] | None, **values: Any) -> tuple[tuple[str, Any], ...]:
    items = list(values.items())
    if clip is not None:
        items.append(("clip", clip))
    return tuple(items)


@register_factory("gaussian", "input")
def gaussian(sigma: float = 0.1, clip: tuple[float, float] | None = None) -> Perturbation:
    """Additive Gaussian noise ``x + sigma * N(0, 1)``.

    Args:
        sigma: standard deviation, ``>= 0``.
        clip: optional ``(low, high)`` input range to clip the result to.

    Example:
        >>> import numpy as np, holejax as hj, jax
        >>> p = hj.gaussian(sigma=0.5, clip=(0.0, 1.0))
        >>> p.name
        'gaussian(sigma=0.5, clip=(0.0, 1.0))'
        >>> y = p.apply(np.full((2, 3), 0.5, np.float32), jax.random.key(0))
        >>> bool(y.min() >= 0.0 and y.max() <= 1.0), y.dtype
        (True, dtype('float32'))
    """
    sigma = check_number(sigma, "sigma", "gaussian", low=0.0)
    return Perturbation("gaussian", _args(check_clip(clip, "gaussian"), sigma=sigma))


@register_factory("uniform", "input")
def uniform(a: float = 0.1, clip: tuple[float, float] | None = None) -> Perturbation:
    """Additive uniform noise ``x + U(-a, a)``.

    Example:
        >>> import holejax as hj
        >>> hj.uniform(a=0.2).name
        'uniform(a=0.2)'
    """
    a = check_number(a, "a", "uniform", low=0.0)
    return Perturbation("uniform", _args(check_clip(clip, "uniform"), a=a))


@register_factory("salt_and_pepper", "input")
def salt_and_pepper(
    p: float = 0.05,
    low: float | None = None,
    high: float | None = None,
    clip: tuple[float, float] | None = None,
) -> Perturbation:
    """Impulse noise: each entry is set to ``high`` (salt) or ``low`` (pepper), each with probability ``p/2``.

    Args:
        p: fraction of entries replaced, in ``[0, 1]``.
        low, high: pepper and salt values; by default the clip range when
            given, else each sample's own minimum and maximum.
        clip: optional ``(low, high)`` input range.

    Example:
        >>> import holejax as hj
        >>> hj.salt_and_pepper(p=0.1, clip=(0.0, 1.0)).name
        'salt_and_pepper(p=0.1, clip=(0.0, 1.0))'
    """
    p = check_number(p, "p", "salt_and_pepper", low=0.0, high=1.0)
    clip = check_clip(clip, "salt_and_pepper")
    values: dict[str, Any] = {"p": p}
    if low is not None:
        values["low"] = check_number(low, "low", "salt_and_pepper")
    if high is not None:
        values["high"] = check_number(high, "high", "salt_and_pepper")
    if low is not None and high is not None and values["low"] > values["high"]:
        raise ValueError(f"salt_and_pepper: expected low <= high; got low={low!r}, high={high!r}.")
    return Perturbation("salt_and_pepper", _args(clip, **values))


@register_factory("poisson", "input")
def poisson(lam: float = 30.0, clip: tuple[float, float] | None = None) -> Perturbation:
    """Signal-dependent shot noise ``Poisson(lam * (x - m)) / lam + m``, ``m = min(0, min x)``.

    ``lam`` is the number of events per unit of signal: the relative noise
    falls like ``1 / sqrt(lam * x)``, so *larger* ``lam`` means *less* noise.

    Example:
        >>> import holejax as hj
        >>> hj.poisson(lam=10).name
        'poisson(lam=10.0)'
    """
    lam = check_number(lam, "lam", "poisson", low=0.0, low_open=True)
    return Perturbation("poisson", _args(check_clip(clip, "poisson"), lam=lam))


@register_factory("speckle", "input")
def speckle(sigma: float = 0.1, clip: tuple[float, float] | None = None) -> Perturbation:
    """Multiplicative noise ``x + x * sigma * N(0, 1)``.

    Example:
        >>> import holejax as hj
        >>> hj.speckle(sigma=0.3).kind
        'input'
    """
    sigma = check_number(sigma, "sigma", "speckle", low=0.0)
    return Perturbation("speckle", _args(check_clip(clip, "speckle"), sigma=sigma))


# -- kernels -----------------------------------------------------------------
def _split_args(args: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Parameter names (static under jit) and their float values (traced, so sweeps compile once)."""
    names, values = [], []
    for k, v in args:
        if k == "clip":
            names += ["clip_low", "clip_high"]
            values += [float(v[0]), float(v[1])]
        else:
            names.append(k)
            values.append(float(v))
    return tuple(names), tuple(values)


def _noisy_sample(x: jax.Array, key: jax.Array, method: str, args: tuple[tuple[str, Any], ...]) -> jax.Array:
    """One sample ``(...)`` float -> its noisy version (``args`` as in :attr:`Perturbation.args`)."""
    names, values = _split_args(args)
    return _noisy_kernel(x, key, method, names, values)


def _noisy_kernel(
    x: jax.Array, key: jax.Array, method: str, names: tuple[str, ...], values: Any
) -> jax.Array:
    a = dict(zip(names, values))
    if method == "gaussian":
        y = x + a["sigma"] * jax.random.normal(key, x.shape, x.dtype)
    elif method == "uniform":
        y = x + (2.0 * jax.random.uniform(key, x.shape, x.dtype) - 1.0) * a["a"]
    elif method == "speckle":
        y = x + x * a["sigma"] * jax.random.normal(key, x.shape, x.dtype)
    elif method == "salt_and_pepper":
        low = a.get("low", a.get("clip_low"))
        high = a.get("high", a.get("clip_high"))
        low = jnp.min(x) if low is None else jnp.asarray(low, x.dtype)
        high = jnp.max(x) if high is None else jnp.asarray(high, x.dtype)
        u = jax.random.uniform(key, x.shape, x.dtype)
        y = jnp.where(u < a["p"] / 2.0, high, jnp.where(u < a["p"], low, x))
    elif method == "poisson":
        lam = a["lam"]
        m = jnp.minimum(jnp.min(x), 0.0)
        counts = jax.random.poisson(key, lam * (x - m), x.shape)
        y = counts.astype(x.dtype) / lam + m
    else:  # pragma: no cover - guarded by apply_noise
        raise AssertionError(method)
    if "clip_low" in a:
        y = jnp.clip(y, a["clip_low"], a["clip_high"])
    return y.astype(x.dtype)


@stored_jit(static_argnames=("method", "names"))
def _noisy_batch(
    x: jax.Array, keys: jax.Array, method: str, names: tuple[str, ...], values: Any
) -> jax.Array:
    return jax.vmap(_noisy_kernel, in_axes=(0, 0, None, None, None))(x, keys, method, names, values)


@stored_jit(static_argnames="batch")
def _fold_keys(key: jax.Array, batch: int, offset: jax.Array) -> jax.Array:
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, offset + jnp.arange(batch, dtype=jnp.uint32))


def _as_key(key: Any) -> jax.Array:
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    arr = np.asarray(key)
    if arr.shape == (2,) and arr.dtype == np.uint32:
        return jax.random.wrap_key_data(jnp.asarray(arr))
    raise TypeError(
        f"key must be a jax.random.key(...) (or a legacy PRNGKey of shape (2,) uint32); "
        f"got {type(key).__name__} with shape {getattr(arr, 'shape', None)}. "
        "Make one with jax.random.key(seed)."
    )


def apply_noise(
    perturbation: Perturbation,
    x: Any,
    *,
    key: Any = None,
    seed: int | None = None,
    start: int = 0,
) -> Any:
    """Apply an input perturbation to a batch ``(batch, ...)``; see :meth:`Perturbation.apply`.

    Pass either ``key`` (per-sample keys ``fold_in(key, i)``) or ``seed`` and
    ``start`` (per-sample keys from the seed, the name and the sample index).
    """
    if perturbation.kind == "compression":
        raise TypeError(
            f"{perturbation.name!r} compresses the model, not the inputs; apply it with "
            "apply_compression(model, perturbation) from holejax_torch.compress or holejax_flax.compress."
        )
    is_numpy = not isinstance(x, jax.Array)
    arr = np.asarray(x) if is_numpy else x
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(f"x must be a batch (batch, ...) with at least one sample; got shape {arr.shape}.")
    dtype = arr.dtype
    if not (np.issubdtype(dtype, np.number) or dtype == bool):
        raise TypeError(f"x must be numeric; got dtype {dtype}.")
    if perturbation.kind == "clean":
        return x
    if key is None:
        if seed is None:
            raise ValueError("pass either key=jax.random.key(...) or seed=<int> to apply a perturbation.")
        seed = int(check_number(seed, "seed", perturbation.name, integer=True))
        start = int(check_number(start, "start", perturbation.name, low=0, integer=True))
        base = jax.random.fold_in(jax.random.key(seed), perturbation.sample_key_seed())
        keys = _fold_keys(base, arr.shape[0], jnp.uint32(start))
    else:
        keys = _fold_keys(_as_key(key), arr.shape[0], jnp.uint32(0))
    work = jnp.asarray(arr, dtype=jnp.float32 if not np.issubdtype(dtype, np.floating) or dtype == np.float64 else dtype)
    names, values = _split_args(perturbation.args)
    y = _noisy_batch(work, keys, perturbation.method, names, jnp.asarray(values, work.dtype))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        y = jnp.clip(jnp.round(y), info.min, info.max)
    elif dtype == bool:
        y = y > 0.5
    if is_numpy:  # a fresh, writable array (np.asarray of a jax array is read-only)
        return np.array(y, dtype=dtype)
    return y.astype(dtype)
