"""Pooling: turn each sample's layer output into one feature vector.

=============== ============================================================
``flatten``     every value, in the framework's memory order
``global_avg``  mean over the spatial axes; one value per channel. The
                channel axis is the first per-sample axis for PyTorch
                (``C, H, W``) and the last for Flax (``H, W, C``), so both
                give the same ``(channel,)`` vector.
``mean``        mean over the real tokens of a ``(token, feature)`` output
                (``mean_tokens`` is the same)
``cls``         the first real token (``first`` is the same)
``last``        the last real token: what a causal language model has read
                the whole text at
``max``         the maximum over the real tokens, per feature
``tokens``      every real token its own row (see below)
``none``        the output is already a vector (per-sample rank 1)
``auto``        ``global_avg`` for per-sample rank 3 (feature maps), ``mean``
                for token outputs, ``flatten`` otherwise
=============== ============================================================

*Real tokens* are those the attention mask marks: the batch's
``attention_mask`` entry, or the ``mask=`` of ``hj.export_activations``.
Without a mask every token is real.

The default (``pooling=None``) is ``mean`` for token outputs, ``global_avg``
for the feature maps of the stages a layer preset picks, and ``flatten``
for everything else. The mean over real tokens is the default because it
keeps every token's contribution and no padding: padding can be most of a
batch's token slots, and averaging it in moves the vectors by more than the
differences between texts. ``cls`` is only meaningful for models trained
with a pooled first token; ``last`` is the one for causal models.

A *token output* is a per-sample ``(token, feature)`` output (rank 2) of a
layer the preset picks (embeddings, transformer blocks), or one whose token
count equals the mask's (without a mask: the preset's token outputs').

``tokens`` writes one row per real token: the store's ``sample`` dimension
then counts tokens, with coordinates ``sample`` (the text a token belongs
to) and ``token`` (its position), and every row carries its text's label.
All layers of an export must then use ``tokens``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from holejax._checks import check_choice
from holejax.capture.layers import LayerInfo, glob_pattern

__all__ = ["POOLINGS", "TOKEN_POOLINGS", "pooled_shape", "pool", "resolve_pooling", "token_counts"]

POOLINGS = ("flatten", "global_avg", "mean", "mean_tokens", "cls", "first", "last", "max", "tokens", "none", "auto")
TOKEN_POOLINGS = ("mean", "mean_tokens", "cls", "first", "last", "max", "tokens")
"""Poolings over the token axis of a ``(token, feature)`` output; they use the mask."""


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
        >>> pooled_shape((12, 32), "mean")
        (32,)
    """
    shape = tuple(int(s) for s in shape)
    rank = len(shape)
    if pooling == "flatten":
        return (math.prod(shape),)
    if pooling == "none":
        if rank != 1:
            raise ValueError(
                f"pooling 'none' keeps the output as it is, but layer {name!r} has per-sample shape "
                f"{shape} (rank {rank}); use 'flatten', 'global_avg', 'mean' or 'cls'."
            )
        return shape
    if pooling == "global_avg":
        if rank < 2:
            raise ValueError(
                f"pooling 'global_avg' averages over spatial axes, but layer {name!r} has per-sample "
                f"shape {shape} with none; use 'flatten' for this layer."
            )
        return (shape[0],) if layout == "channels_first" else (shape[-1],)
    if pooling in TOKEN_POOLINGS:
        if rank != 2:
            raise ValueError(
                f"pooling {pooling!r} expects a per-sample (token, feature) output, but layer {name!r} "
                f"has shape {shape}; use 'flatten' or 'global_avg' for this layer."
            )
        return (shape[1],)
    check_choice(pooling, "pooling", POOLINGS[:-1])
    raise AssertionError("unreachable")


def _float(x: np.ndarray) -> type:
    return np.float64 if x.dtype == np.float64 else np.float32


def _token_mask(x: np.ndarray, mask: Any) -> np.ndarray:
    """``(sample, token)`` bool mask of the real tokens of ``x``; all True without a mask."""
    if mask is None:
        return np.ones(x.shape[:2], bool)
    m = np.asarray(mask) != 0
    if m.shape != x.shape[:2]:
        raise ValueError(
            f"the mask has shape {m.shape} but the layer output has {x.shape[:2]} (sample, token); "
            "the mask must mark each token of the output."
        )
    return m


def token_counts(mask: Any) -> np.ndarray:
    """Real tokens per sample of a ``(sample, token)`` mask.

    Example:
        >>> token_counts([[1, 1, 0], [1, 0, 0]]).tolist()
        [2, 1]
    """
    return (np.asarray(mask) != 0).sum(axis=1)


def pool(x: Any, pooling: str, layout: str = "channels_first", mask: Any = None) -> np.ndarray:
    """Pool a batch of layer outputs into ``(sample, unit)`` (``(real token, unit)`` for ``tokens``).

    Args:
        x: ``(sample, *shape)`` array.
        pooling: a concrete pooling (see the module docstring).
        layout: ``"channels_first"`` or ``"channels_last"``.
        mask: ``(sample, token)`` array, nonzero at real tokens; used by the
            token poolings only. None: every token is real.

    Returns:
        ``np.ndarray`` of shape ``(sample, unit)``, or ``(real token, unit)``
        for ``tokens`` (samples in order, each one's tokens in order).

    Raises:
        ValueError: a sample without real tokens, or a mask of another shape.

    Example:
        >>> x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
        >>> pool(x, "flatten").shape, pool(x, "cls")[0].tolist(), pool(x, "mean")[0].tolist()
        ((2, 12), [0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0])
        >>> m = [[1, 1, 0], [1, 0, 0]]
        >>> pool(x, "mean", mask=m)[0].tolist(), pool(x, "last", mask=m)[:, 0].tolist(), pool(x, "tokens", mask=m).shape
        ([2.0, 3.0, 4.0, 5.0], [4.0, 12.0], (3, 4))
    """
    x = np.asarray(x)
    n = x.shape[0]
    if pooling in ("flatten", "none"):
        return x.reshape(n, -1)
    if pooling == "global_avg":
        return x.mean(axis=_spatial_axes(x.ndim - 1, layout), dtype=_float(x))
    if pooling not in TOKEN_POOLINGS:
        check_choice(pooling, "pooling", POOLINGS[:-1])
    if mask is None and pooling in ("mean", "mean_tokens"):
        return x.mean(axis=1, dtype=_float(x))
    m = _token_mask(x, mask)
    counts = m.sum(axis=1)
    if pooling == "tokens":
        return x[m]
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ValueError(
            f"sample {int(empty[0])} of the batch has no real token in the mask (all zeros); every sample "
            "needs at least one, or pass mask=None to pool over all tokens."
        )
    if pooling in ("mean", "mean_tokens"):
        total = np.einsum("st,stu->su", m.astype(_float(x)), x, dtype=_float(x))
        return total / counts[:, None].astype(_float(x))
    if pooling in ("cls", "first"):
        return x[np.arange(n), np.argmax(m, axis=1)]
    if pooling == "last":
        return x[np.arange(n), m.shape[1] - 1 - np.argmax(m[:, ::-1], axis=1)]
    return np.where(m[:, :, None], x, -np.inf).max(axis=1).astype(x.dtype)  # max


def _concrete(pooling: str | None, info: LayerInfo, tokens: Collection[str], stages: Collection[str]) -> str:
    rank = None if info.shape is None else len(info.shape)
    if pooling is None or pooling == "auto":
        if rank == 2 and info.name in tokens:
            return "mean"
        if rank == 3 and (pooling == "auto" or info.name in stages):
            return "global_avg"
        return "flatten"
    check_choice(pooling, "pooling", POOLINGS)
    return pooling


def resolve_pooling(
    pooling: str | Mapping[str, str] | None,
    infos: Sequence[LayerInfo],
    tokens: Collection[str] = (),
    stages: Collection[str] = (),
) -> dict[str, str]:
    """The concrete pooling of each chosen layer, checked against its shape.

    Args:
        pooling: one pooling for every layer, a mapping from layer names or
            globs to poolings (the first matching key wins; layers no key
            matches get the default), or None for the default (module
            docstring).
        infos: the chosen layers.
        tokens: names of the token outputs (``mean`` by default).
        stages: names of the layers a preset picked (their feature maps
            get ``global_avg`` by default).

    Returns:
        ``{layer name: pooling}`` without ``"auto"``.

    Example:
        >>> rows = [LayerInfo("conv", "Conv2d", (4, 3, 3), "float32"), LayerInfo("fc", "Linear", (5,), "float32")]
        >>> resolve_pooling("auto", rows)
        {'conv': 'global_avg', 'fc': 'flatten'}
        >>> resolve_pooling({"c*": "global_avg"}, rows)
        {'conv': 'global_avg', 'fc': 'flatten'}
        >>> resolve_pooling(None, [LayerInfo("h.0", "Block", (7, 16), "float32")], tokens={"h.0"})
        {'h.0': 'mean'}
    """
    if pooling is None or isinstance(pooling, str):
        rules = [("*", pooling)]
    elif isinstance(pooling, Mapping):
        rules = [(str(k), v) for k, v in pooling.items()]
        for key, value in rules:
            if not isinstance(value, str):
                raise TypeError(f"pooling[{key!r}] must be a pooling name; got {value!r}.")
            check_choice(value, f"pooling[{key!r}]", POOLINGS)
        names = [i.name for i in infos]
        unused = [k for k, _ in rules if not any(glob_pattern(k).match(n) for n in names)]
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
        mode = next((v for k, v in rules if glob_pattern(k).match(info.name)), None)
        mode = _concrete(mode, info, tokens, stages)
        pooled_shape(info.shape, mode, info.layout, info.name)
        chosen[info.name] = mode
    modes = set(chosen.values())
    if "tokens" in modes and len(modes) > 1:
        others = sorted(n for n, m in chosen.items() if m != "tokens")
        raise ValueError(
            f"pooling 'tokens' writes one row per real token, so every layer of the export must use it; "
            f"layers {others} pool otherwise. Export them into another store, or pool every layer with 'tokens'."
        )
    return chosen
