"""Compression of PyTorch modules: L1 magnitude pruning, dynamic INT8, k-bit weight quantization.

``apply_compression(model, perturbation)`` returns a compressed *copy*; the
model passed in is never modified. The conventions (which weights, how many
are pruned, the quantization grids) are those of
:mod:`holejax.perturb.compression`; the arithmetic here is PyTorch's own
(``torch.nn.utils.prune``, ``torch.ao.quantization.quantize_dynamic``,
``torch.fake_quantize_per_tensor_affine``), so the Flax adapter, which uses
numpy, is checked against an independent implementation.

==========================  ===================================================
``global_l1_prune(a)``      ``prune.global_unstructured`` with ``L1Unstructured``
                            over the ``weight`` of every Linear / Conv layer,
                            made permanent with ``prune.remove``
``layerwise_l1_prune(a)``   ``prune.l1_unstructured`` on each such weight
``int8_dynamic()``          ``quantize_dynamic(model, dtype=torch.qint8)``:
                            Linear (and recurrent) layers with int8 weights
                            and activations quantized per batch at run time
``quantize(bits, scheme)``  per-tensor fake quantization of every Linear /
                            Conv weight (biases stay float)
==========================  ===================================================
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

from holejax.perturb import from_name

__all__ = ["apply_compression", "prunable_weights"]


def _torch() -> Any:
    import torch  # optional framework: torch

    return torch


def prunable_weights(model: Any) -> list[tuple[str, Any]]:
    """``(module path, module)`` for every Linear / Conv (incl. transposed) layer, in module order.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
        >>> [name for name, _ in prunable_weights(net)]
        ['0', '2']
    """
    torch = _torch()
    kinds = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, kinds) and isinstance(getattr(m, "weight", None), torch.Tensor)
    ]


def _check(model: Any, perturbation: Any) -> Any:
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    p = from_name(perturbation)
    if p.kind != "compression":
        raise ValueError(
            f"perturbation {p.name!r} is not a compression (its kind is {p.kind!r}); input noise is "
            "applied to the inputs with perturbation.apply(x, key)."
        )
    return p


def _no_weights(p: Any, model: Any) -> ValueError:
    return ValueError(
        f"{p.name}: model {type(model).__name__} has no Linear or Conv layer to compress."
    )


def apply_compression(model: Any, perturbation: Any) -> Any:
    """A compressed copy of a PyTorch module.

    Args:
        model: a ``torch.nn.Module``; left unchanged.
        perturbation: a compression Perturbation or its name, e.g.
            ``hj.global_l1_prune(0.3)``, ``"quantize(bits=4, scheme=affine)"``.

    Returns:
        A new module in the same train/eval mode. Pruned weights are plain
        tensors with zeros (no pruning masks or hooks remain).

    Raises:
        ValueError: for non-compression perturbations, or a model with no
            Linear / Conv layer.

    Example:
        >>> import torch, holejax as hj
        >>> net = torch.nn.Sequential(torch.nn.Linear(10, 10))
        >>> small = apply_compression(net, hj.global_l1_prune(0.3))
        >>> int((small[0].weight == 0).sum()), int((net[0].weight == 0).sum())
        (30, 0)
    """
    p = _check(model, perturbation)
    torch = _torch()
    if p.method == "int8_dynamic":
        with warnings.catch_warnings():
            # torch.ao.quantization works but announces its move to torchao
            warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions", category=UserWarning)
            if not any(isinstance(m, torch.nn.Linear) for m in model.modules()):
                raise ValueError(f"{p.name}: model {type(model).__name__} has no Linear layer to quantize.")
            return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), dtype=torch.qint8, inplace=False)

    new = copy.deepcopy(model)
    layers = prunable_weights(new)
    if not layers:
        raise _no_weights(p, model)
    with torch.no_grad():
        if p.method == "global_l1_prune":
            from torch.nn.utils import prune  # optional framework: torch

            prune.global_unstructured(
                [(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured, amount=p.get("amount")
            )
            for _, m in layers:
                prune.remove(m, "weight")
        elif p.method == "layerwise_l1_prune":
            from torch.nn.utils import prune  # optional framework: torch

            for _, m in layers:
                prune.l1_unstructured(m, "weight", amount=p.get("amount"))
                prune.remove(m, "weight")
        elif p.method == "quantize":
            for _, m in layers:
                m.weight.copy_(_fake_quantize(m.weight.detach(), p.get("bits"), p.get("scheme")))
        else:  # pragma: no cover - every compression method is handled above
            raise ValueError(f"{p.name}: no PyTorch implementation for method {p.method!r}.")
    return new


def _fake_quantize(w: Any, bits: int, scheme: str) -> Any:
    """Per-tensor uniform fake quantization with torch's kernel (float32 scale)."""
    torch = _torch()
    w32 = w.to(torch.float32)
    if scheme == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        qmin = -qmax
        scale = w32.abs().max() / torch.tensor(float(qmax), dtype=torch.float32)
        zero_point = 0
    else:
        qmin, qmax = 0, 2**bits - 1
        lo = torch.clamp(w32.min(), max=0.0)
        hi = torch.clamp(w32.max(), min=0.0)
        scale = (hi - lo) / torch.tensor(float(qmax - qmin), dtype=torch.float32)
        zero_point = int(torch.clamp(qmin - torch.round(lo / scale), qmin, qmax)) if scale > 0 else 0
    scale_value = float(scale) if float(scale) > 0 else 1.0
    out = torch.fake_quantize_per_tensor_affine(w32, scale_value, zero_point, qmin, qmax)
    return out.to(w.dtype)
