"""Compression descriptors and the framework-free array arithmetic behind them.

The descriptors name what is done to a model; the adapters apply them:
``holejax_torch.compress.apply_compression`` with ``torch.nn.utils.prune``,
``torch.ao.quantization.quantize_dynamic`` and ``torch.fake_quantize_per_tensor_affine``;
``holejax_flax.compress.apply_compression`` with the numpy functions below on
parameter trees. The two are written independently and a test checks that
they agree weight for weight.

Conventions shared by both adapters:

* Pruning removes the ``round(amount * size)`` smallest-magnitude weights
  (Python's ``round``, as ``torch.nn.utils.prune``), over all prunable weights
  together (global) or per tensor (layer-wise). Prunable weights are the
  ``weight`` of Linear / Conv layers in PyTorch and the ``kernel`` leaves in
  Flax; biases and normalisation parameters are kept.
* ``quantize(bits, scheme)`` is post-training, per-tensor, weight-only
  uniform quantization, returned de-quantized (float weights on the integer
  grid). ``symmetric``: integers ``-(2^(b-1) - 1) .. 2^(b-1) - 1``, zero point
  0, scale ``max|w| / (2^(b-1) - 1)``, hence at most ``2^b - 1`` levels.
  ``affine``: integers ``0 .. 2^b - 1``, range ``[min(w, 0), max(w, 0)]`` so
  zero is exact, at most ``2^b`` levels. Values are ``rint(w * (1/scale))``
  in float32, as PyTorch's fake quantization.
* ``int8_dynamic()``: PyTorch's dynamic INT8 quantization of Linear layers
  (weights per-tensor symmetric qint8 with scale ``max|w| / 127.5``;
  activations quantized per batch at run time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from holejax.perturb.base import Perturbation, check_number, register_factory

__all__ = [
    "QUANT_SCHEMES",
    "global_l1_prune",
    "int8_dynamic",
    "int8_weight_qparams",
    "l1_prune_masks",
    "layerwise_l1_prune",
    "prune_count",
    "quantize",
    "quantize_array",
    "quantize_qparams",
]

QUANT_SCHEMES = ("symmetric", "affine")


@register_factory("global_l1_prune", "compression")
def global_l1_prune(amount: float = 0.3) -> Perturbation:
    """Global unstructured L1 magnitude pruning: zero the ``amount`` smallest weights of the whole model.

    Args:
        amount: fraction of prunable weights set to zero, ``0 < amount < 1``
            (HOLE studies 10-90 %, 30 % by default).

    Example:
        >>> import holejax as hj
        >>> hj.global_l1_prune().name, hj.global_l1_prune().kind
        ('global_l1_prune(amount=0.3)', 'compression')
    """
    amount = check_number(amount, "amount", "global_l1_prune", low=0.0, high=1.0, low_open=True, high_open=True)
    return Perturbation("global_l1_prune", (("amount", amount),))


@register_factory("layerwise_l1_prune", "compression")
def layerwise_l1_prune(amount: float = 0.2) -> Perturbation:
    """Layer-wise unstructured L1 magnitude pruning: zero the ``amount`` smallest weights of each layer.

    Example:
        >>> import holejax as hj
        >>> hj.layerwise_l1_prune(0.5).name
        'layerwise_l1_prune(amount=0.5)'
    """
    amount = check_number(amount, "amount", "layerwise_l1_prune", low=0.0, high=1.0, low_open=True, high_open=True)
    return Perturbation("layerwise_l1_prune", (("amount", amount),))


@register_factory("int8_dynamic", "compression")
def int8_dynamic() -> Perturbation:
    """Dynamic INT8 quantization of Linear/Dense layers (PyTorch's ``quantize_dynamic``).

    Example:
        >>> import holejax as hj
        >>> hj.int8_dynamic().name
        'int8_dynamic'
    """
    return Perturbation("int8_dynamic")


@register_factory("quantize", "compression")
def quantize(bits: int = 8, scheme: str = "symmetric") -> Perturbation:
    """Uniform post-training weight quantization to ``bits`` bits (per tensor, de-quantized).

    Args:
        bits: 2 to 16 (HOLE uses 8, 4 and 2).
        scheme: ``"symmetric"`` (zero point 0, ``2^bits - 1`` levels) or
            ``"affine"`` (zero point from the range, ``2^bits`` levels).

    Example:
        >>> import holejax as hj
        >>> hj.quantize(bits=4, scheme="affine").name
        'quantize(bits=4, scheme=affine)'
    """
    bits = int(check_number(bits, "bits", "quantize", low=2, high=16, integer=True))
    if scheme not in QUANT_SCHEMES:
        raise ValueError(f"quantize: scheme={scheme!r} is not supported; expected one of {list(QUANT_SCHEMES)}.")
    return Perturbation("quantize", (("bits", bits), ("scheme", scheme)))


# -- array arithmetic (numpy; the Flax adapter and the tests use it) ------------
def prune_count(amount: float, size: int) -> int:
    """Number of weights pruned: ``round(amount * size)`` with Python's rounding, as torch.

    Example:
        >>> prune_count(0.3, 10), prune_count(0.25, 10)
        (3, 2)
    """
    return int(round(float(amount) * int(size)))


def l1_prune_masks(weights: Sequence[Any], amount: float, scope: str = "global") -> list[np.ndarray]:
    """Keep-masks of unstructured L1 magnitude pruning.

    Args:
        weights: the prunable arrays (any shapes).
        amount: fraction pruned, ``0 < amount < 1``.
        scope: ``"global"`` (rank all weights together) or ``"layerwise"``
            (each array on its own).

    Returns:
        One boolean array per weight, same shape, ``False`` where pruned.
        Exactly ``round(amount * size)`` entries are pruned (per array, or in
        total for global); among equal magnitudes the earliest in flattened
        order goes first.

    Example:
        >>> m = l1_prune_masks([np.array([3.0, -1.0, 2.0, 0.5])], 0.5)
        >>> m[0].tolist()
        [True, False, True, False]
    """
    if scope not in ("global", "layerwise"):
        raise ValueError(f"scope={scope!r} is not supported; expected 'global' or 'layerwise'.")
    arrays = [np.asarray(w) for w in weights]
    if scope == "layerwise":
        return [l1_prune_masks([w], amount, "global")[0] for w in arrays]
    if not arrays:
        return []
    flat = np.concatenate([np.abs(w.astype(np.float64)).ravel() for w in arrays])
    k = prune_count(amount, flat.size)
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:k]] = False
    out, offset = [], 0
    for w in arrays:
        out.append(keep[offset : offset + w.size].reshape(w.shape))
        offset += w.size
    return out


def quantize_qparams(w: Any, bits: int, scheme: str) -> tuple[np.float32, int, int, int]:
    """``(scale, zero_point, qmin, qmax)`` of per-tensor uniform quantization (float32 scale)."""
    arr = np.asarray(w, dtype=np.float32)
    if scheme == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        qmin = -qmax
        amax = np.float32(np.max(np.abs(arr))) if arr.size else np.float32(0)
        scale = amax / np.float32(qmax)
        zero_point = 0
    elif scheme == "affine":
        qmin, qmax = 0, 2**bits - 1
        lo = np.float32(min(float(arr.min()), 0.0)) if arr.size else np.float32(0)
        hi = np.float32(max(float(arr.max()), 0.0)) if arr.size else np.float32(0)
        scale = (hi - lo) / np.float32(qmax - qmin)
        zero_point = int(np.clip(qmin - np.rint(lo / scale), qmin, qmax)) if scale > 0 else 0
    else:
        raise ValueError(f"scheme={scheme!r} is not supported; expected one of {list(QUANT_SCHEMES)}.")
    if not scale > 0:
        scale = np.float32(1.0)
    return np.float32(scale), zero_point, qmin, qmax


def int8_weight_qparams(w: Any) -> tuple[np.float32, int, int, int]:
    """``(scale, 0, -128, 127)`` of PyTorch's default dynamic-quantization weight observer.

    Per-tensor symmetric qint8: ``scale = max|w| / 127.5`` (float32).
    """
    arr = np.asarray(w, dtype=np.float32)
    amax = np.float32(np.max(np.abs(arr))) if arr.size else np.float32(0)
    scale = amax / np.float32(127.5)
    if not scale > 0:
        scale = np.float32(1.0)
    return np.float32(scale), 0, -128, 127


def quantize_array(w: Any, scale: float, zero_point: int, qmin: int, qmax: int) -> np.ndarray:
    """Fake-quantize: ``(clip(rint(w * (1/scale)) + zp, qmin, qmax) - zp) * scale`` in float32.

    Example:
        >>> s, z, lo, hi = quantize_qparams(np.array([-1.0, 0.2, 1.0]), 2, "symmetric")
        >>> quantize_array(np.array([-1.0, 0.2, 1.0]), s, z, lo, hi).tolist()
        [-1.0, 0.0, 1.0]
    """
    arr = np.asarray(w, dtype=np.float32)
    inv_scale = np.float32(1.0) / np.float32(scale)
    q = np.clip(np.rint(arr * inv_scale) + np.float32(zero_point), qmin, qmax)
    return ((q - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)
