"""Compression of Flax models on their parameter trees: L1 pruning, INT8 and k-bit weight quantization.

``apply_compression(model, perturbation)`` returns a new model and never
changes the one passed in:

* Linen: ``model = (module, variables)`` (or ``(module, variables,
  apply_kwargs)``) -> the same tuple with new ``variables``; only the
  ``params`` collection changes.
* NNX: an ``nnx.Module`` -> a new module (``nnx.split`` / ``nnx.merge``);
  only ``nnx.Param`` leaves change.

Compressed weights are the ``kernel`` leaves (Dense, Conv, DenseGeneral,
Einsum kernels); biases and normalisation parameters are kept. The
arithmetic is :mod:`holejax.perturb.compression` (numpy), written apart from
the PyTorch adapter's so the two check each other:

==========================  ===================================================
``global_l1_prune(a)``      the ``round(a * N)`` smallest-|w| of all N kernel
                            entries set to 0
``layerwise_l1_prune(a)``   ``round(a * n)`` smallest per kernel
``int8_dynamic()``          2-D (Dense) kernels on PyTorch's dynamic-INT8 weight
                            grid (per-tensor symmetric qint8, ``scale = max|w| /
                            127.5``), de-quantized. Weight-only: PyTorch also
                            quantizes each Linear layer's *input* per batch at
                            run time, which this tree transform cannot do, so
                            Flax outputs differ from PyTorch's by that rounding
``quantize(bits, scheme)``  every kernel fake-quantized per tensor
==========================  ===================================================
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from holejax.perturb import compression as cmp
from holejax.perturb import from_name

__all__ = ["apply_compression", "compress_params", "kernel_paths"]

Transform = Callable[[list[np.ndarray]], list[np.ndarray]]


def _path_names(path: tuple) -> tuple[str, ...]:
    names = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
    return tuple(names)


def _is_kernel(path: tuple, leaf: Any) -> bool:
    names = [n for n in _path_names(path) if n != "value"]
    return bool(names) and names[-1] == "kernel" and hasattr(leaf, "shape") and len(leaf.shape) >= 2


def kernel_paths(params: Any) -> list[str]:
    """Dotted paths of the compressible kernel leaves of a parameter tree, in tree order.

    Example:
        >>> kernel_paths({"Dense_0": {"kernel": np.ones((3, 2)), "bias": np.ones(2)}})
        ['Dense_0.kernel']
    """
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return [".".join(n for n in _path_names(p) if n != "value") for p, leaf in leaves if _is_kernel(p, leaf)]


def _transform_for(p: Any) -> tuple[Transform, Callable[[tuple, Any], bool]]:
    if p.method in ("global_l1_prune", "layerwise_l1_prune"):
        scope = "global" if p.method == "global_l1_prune" else "layerwise"

        def prune(ws: list[np.ndarray]) -> list[np.ndarray]:
            masks = cmp.l1_prune_masks(ws, p.get("amount"), scope)
            return [np.where(m, w, np.zeros((), w.dtype)) for w, m in zip(ws, masks)]

        return prune, _is_kernel
    if p.method == "quantize":

        def quant(ws: list[np.ndarray]) -> list[np.ndarray]:
            out = []
            for w in ws:
                q = cmp.quantize_array(w, *cmp.quantize_qparams(w, p.get("bits"), p.get("scheme")))
                out.append(q.astype(w.dtype))
            return out

        return quant, _is_kernel
    if p.method == "int8_dynamic":

        def int8(ws: list[np.ndarray]) -> list[np.ndarray]:
            return [cmp.quantize_array(w, *cmp.int8_weight_qparams(w)).astype(w.dtype) for w in ws]

        return int8, lambda path, leaf: _is_kernel(path, leaf) and len(leaf.shape) == 2
    raise ValueError(f"{p.name}: no Flax implementation for method {p.method!r}.")  # pragma: no cover


def compress_params(params: Any, perturbation: Any) -> Any:
    """Apply a compression perturbation to a parameter tree (a new tree; the input is unchanged).

    Args:
        params: any pytree whose compressible leaves sit under the key ``kernel``
            (Linen ``variables["params"]``, an NNX ``nnx.State`` of params).
        perturbation: a compression Perturbation or its name.

    Returns:
        A tree of the same structure; changed leaves are new arrays of the
        same kind (jax or numpy) and dtype, the others are the original leaves.

    Example:
        >>> import numpy as np, holejax as hj
        >>> tree = {"Dense_0": {"kernel": np.arange(1.0, 11.0).reshape(5, 2), "bias": np.zeros(2)}}
        >>> out = compress_params(tree, hj.global_l1_prune(0.3))
        >>> np.asarray(out["Dense_0"]["kernel"]).ravel().tolist()
        [0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    """
    p = _check_perturbation(perturbation)
    transform, select = _transform_for(p)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    chosen = [i for i, (path, leaf) in enumerate(leaves) if select(path, leaf)]
    if not chosen:
        raise ValueError(
            f"{p.name}: the parameter tree has no {'2-D Dense ' if p.method == 'int8_dynamic' else ''}"
            "'kernel' leaf to compress; expected Flax Dense/Conv parameters."
        )
    new_values = transform([np.asarray(leaves[i][1]) for i in chosen])
    out = [leaf for _, leaf in leaves]
    for i, value in zip(chosen, new_values):
        old = leaves[i][1]
        out[i] = jnp.asarray(value, dtype=old.dtype) if isinstance(old, jax.Array) else value.astype(old.dtype)
    return jax.tree_util.tree_unflatten(treedef, out)


def _check_perturbation(perturbation: Any) -> Any:
    p = from_name(perturbation)
    if p.kind != "compression":
        raise ValueError(
            f"perturbation {p.name!r} is not a compression (its kind is {p.kind!r}); input noise is "
            "applied to the inputs with perturbation.apply(x, key)."
        )
    return p


def apply_compression(model: Any, perturbation: Any) -> Any:
    """A compressed copy of a Flax model (Linen ``(module, variables)`` or an NNX module).

    Args:
        model: ``(module, variables)``, ``(module, variables, apply_kwargs)``
            or an ``nnx.Module``; left unchanged.
        perturbation: a compression Perturbation or its name.

    Returns:
        The same kind of model with compressed kernels.

    Example:
        >>> import jax, numpy as np, flax.linen as nn, holejax as hj
        >>> net = nn.Dense(4)
        >>> variables = net.init(jax.random.key(0), np.ones((1, 5), np.float32))
        >>> _, small = apply_compression((net, variables), hj.quantize(bits=2))
        >>> len(np.unique(np.asarray(small["params"]["kernel"]))) <= 3
        True
    """
    p = _check_perturbation(perturbation)
    linen = sys.modules.get("flax.linen")
    if linen is not None and isinstance(model, tuple) and len(model) in (2, 3) and isinstance(model[0], linen.Module):
        module, variables = model[0], model[1]
        if not isinstance(variables, Mapping) or "params" not in variables:
            raise TypeError(
                "model=(module, variables) needs the variables from module.init, with a 'params' "
                f"collection; got {type(variables).__name__} with keys {list(getattr(variables, 'keys', list)())}."
            )
        new_vars = {k: v for k, v in variables.items()}
        new_vars["params"] = compress_params(variables["params"], p)
        if type(variables) is not dict:  # FrozenDict in, FrozenDict out
            new_vars = type(variables)(new_vars)
        return (module, new_vars, *model[2:])
    if linen is not None and isinstance(model, linen.Module):
        raise TypeError(
            f"model is a bare Flax Linen module ({type(model).__name__}); pass model=(module, variables)."
        )
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(model, nnx.Module):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        return nnx.merge(graphdef, compress_params(params, p), rest)
    raise TypeError(
        "model must be a Flax model: (module, variables) for Linen or an nnx.Module; "
        f"got {type(model).__name__}."
    )
