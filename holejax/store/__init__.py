"""Activation and results stores: xarray Datasets in Zarr v3 (see schema.py)."""

from holejax.store.schema import LayerSpec, StoreError, layer_names, unit_dim, validate_activations
from holejax.store.zarr_ import ActivationWriter, as_activation_store, open_activations, open_results, write_results

__all__ = [
    "ActivationWriter",
    "LayerSpec",
    "StoreError",
    "as_activation_store",
    "layer_names",
    "open_activations",
    "open_results",
    "unit_dim",
    "validate_activations",
    "write_results",
]
