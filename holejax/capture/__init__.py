"""Capture: run a model over inputs and stream chosen layer outputs into an activation store.

Framework code lives in the adapter packages (``holejax_torch``,
``holejax_flax``), found through the entry-point group ``holejax.adapters``;
this package only names, selects, pools and writes.

Example:
    >>> import numpy as np
    >>> from holejax.capture import LayerInfo, select_layers, pool
    >>> rows = [LayerInfo("conv", "Conv2d", (4, 2, 2), "float32"), LayerInfo("relu", "ReLU", (4, 2, 2), "float32")]
    >>> [r.name for r in select_layers(rows, "ReLU")]
    ['relu']
    >>> pool(np.ones((3, 4, 2, 2), np.float32), "global_avg").shape
    (3, 4)
"""

from holejax.capture.export import LayerTable, export_activations, list_layers, predict
from holejax.capture.inputs import ModelInput, as_model_input, as_source, iter_batches, n_samples_of, slice_samples
from holejax.capture.layers import PRESETS, LayerInfo, default_layers, format_layers, residual_layers, select_layers
from holejax.capture.pooling import POOLINGS, TOKEN_POOLINGS, pool, pooled_shape, resolve_pooling
from holejax.capture.registry import ENTRY_POINT_GROUP, Adapter, adapters, find_adapter

__all__ = [
    "ENTRY_POINT_GROUP",
    "Adapter",
    "LayerInfo",
    "LayerTable",
    "ModelInput",
    "POOLINGS",
    "PRESETS",
    "TOKEN_POOLINGS",
    "adapters",
    "as_model_input",
    "as_source",
    "default_layers",
    "export_activations",
    "find_adapter",
    "format_layers",
    "iter_batches",
    "list_layers",
    "n_samples_of",
    "pool",
    "pooled_shape",
    "predict",
    "residual_layers",
    "resolve_pooling",
    "select_layers",
    "slice_samples",
]
