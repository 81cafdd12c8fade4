"""Pooling: turn each sample's layer output into one feature vector.

=============== ============================================================
``flatten``     every value, in the framework's memory order (default)
``global_avg``  mean over the spatial axes; one value per channel. The
                channel axis is the first per-sample axis for PyTorch
                (``C, H, W``) and the last for Flax (``H, W, C``), so both
                give the same ``(channel,)`` vector.
``cls``         the first token of a ``(token, feature)`` output
``mean_tokens`` mean over the tokens of a ``(token, feature)`` output
``none``        the output is already a vector (per-sample rank 1)
``auto``        ``global_avg`` for per-sample rank 3 (feature maps),
                ``flatten`` otherwise; resolved before anything is written
=============== ============================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from holejax._checks import check_choice
from holejax.capture.layers import LayerInfo, _glob

__all__ = ["POOLINGS", "pooled_shape", "pool", "resolve_pooling"]

POOLINGS = ("flatten", "global_avg", "cls", "mean_tokens", "none", "auto")


def _spatial_axes(rank: int, layout: str) -> tuple[int, ...]:
    """Per-sample spatial axes, counted with the sample axis at 0."""
    return tuple(range(2, rank + 1)) if layout == "channels_first" else tuple(range(1, rank))


def pooled_shape(shape: Sequence[int], pooling: str, layout: str = "channels_first", name: str = "layer") -> tuple[int, ...]:
    """Per-sample shape after ``pooling``; checks the pooling fits the shape.

    Args:
        shape: per-sample output shape.
        pooling: a concrete pooling (not ``"auto"``).
        layout: ``"channels_first"`` or ``"channels_last"``.
        name: layer name, used in messages.

    Example:
        >>> pooled_shape((16, 8, 8), "global_avg"), pooled_shape((8, 8, 16), "global_avg", "channels_last")
        ((16,), (16,))
    """
    shape = tuple(int(s) for s in shape)
    rank = len(shape)
    if pooling == "flatten":
        return (math.prod(shape),)
    if pooling == "none":
        if rank != 1:
            raise ValueError(
                f"pooling 'none' keeps the output as it is, but layer {name!r} has per-sample shape "
                f"{shape} (rank {rank}); use 'flatten', 'global_avg', 'cls' or 'mean_tokens'."
            )
        return shape
    if pooling == "global_avg":
        if rank < 2:
            raise ValueError(
                f"pooling 'global_avg' averages over spatial axes, but layer {name!r} has per-sample "
                f"shape {shape} with none; use 'flatten' for this layer."
            )
        return (shape[0],) if layout == "channels_first" else (shape[-1],)
    if pooling in ("cls", "mean_tokens"):
        if rank != 2:
            raise ValueError(
                f"pooling {pooling!r} expects a per-sample (token, feature) output, but layer {name!r} "
                f"has shape {shape}; use 'flatten' or 'global_avg' for this layer."
            )
        return (shape[1],)
    check_choice(pooling, "pooling", POOLINGS[:-1])
    raise AssertionError("unreachable")


def pool(x: Any, pooling: str, layout: str = "channels_first") -> np.ndarray:
    """Pool a batch of layer outputs into ``(sample, unit)``.

    Args:
        x: ``(sample, *shape)`` array.
        pooling: a concrete pooling (see the module docstring).
        layout: ``"channels_first"`` or ``"channels_last"``.

    Returns:
        ``np.ndarray`` of shape ``(sample, unit)``.

    Example:
        >>> x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
        >>> pool(x, "flatten").shape, pool(x, "cls")[0].tolist(), pool(x, "mean_tokens")[0].tolist()
        ((2, 12), [0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0])
    """
    x = np.asarray(x)
    n = x.shape[0]
    if pooling in ("flatten", "none"):
        return x.reshape(n, -1)
    if pooling == "global_avg":
        return x.mean(axis=_spatial_axes(x.ndim - 1, layout), dtype=np.float64 if x.dtype == np.float64 else np.float32)
    if pooling == "cls":
        return x[:, 0, :]
    if pooling == "mean_tokens":
        return x.mean(axis=1, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    check_choice(pooling, "pooling", POOLINGS[:-1])
    raise AssertionError("unreachable")


def _concrete(pooling: str, info: LayerInfo) -> str:
    check_choice(pooling, "pooling", POOLINGS)
    if pooling == "auto":
        return "global_avg" if info.shape is not None and len(info.shape) == 3 else "flatten"
    return pooling


def resolve_pooling(pooling: str | Mapping[str, str], infos: Sequence[LayerInfo]) -> dict[str, str]:
    """The concrete pooling of each chosen layer, checked against its shape.

    Args:
        pooling: one pooling for every layer, or a mapping from layer names
            or globs to poolings; the first matching key wins, layers no key
            matches are flattened (add ``"*"`` to change that).
        infos: the chosen layers.

    Returns:
        ``{layer name: pooling}`` without ``"auto"``.

    Example:
        >>> rows = [LayerInfo("conv", "Conv2d", (4, 3, 3), "float32"), LayerInfo("fc", "Linear", (5,), "float32")]
        >>> resolve_pooling("auto", rows)
        {'conv': 'global_avg', 'fc': 'flatten'}
        >>> resolve_pooling({"c*": "global_avg"}, rows)
        {'conv': 'global_avg', 'fc': 'flatten'}
    """
    if isinstance(pooling, str):
        rules = [("*", pooling)]
    elif isinstance(pooling, Mapping):
        rules = [(str(k), v) for k, v in pooling.items()]
        for key, value in rules:
            if not isinstance(value, str):
                raise TypeError(f"pooling[{key!r}] must be a pooling name; got {value!r}.")
            check_choice(value, f"pooling[{key!r}]", POOLINGS)
        names = [i.name for i in infos]
        unused = [k for k, _ in rules if not any(_glob(k).match(n) for n in names)]
        if unused:
            raise ValueError(
                f"pooling keys {unused} match none of the captured layers {names}; "
                "use layer names or globs of captured layers."
            )
    else:
        raise TypeError(
            f"pooling must be a pooling name or a mapping of layer names/globs to names; got "
            f"{type(pooling).__name__}."
        )
    chosen = {}
    for info in infos:
        mode = next((v for k, v in rules if _glob(k).match(info.name)), "flatten")
        mode = _concrete(mode, info)
        pooled_shape(info.shape, mode, info.layout, info.name)
        chosen[info.name] = mode
    return chosen
