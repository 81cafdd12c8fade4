"""holejax adapter for Flax: Linen ``(module, variables)`` pairs and NNX modules.

Registered in the entry-point group ``holejax.adapters`` as ``flax``;
``hj.export_activations`` finds it by itself. Importing this package does not
import flax or jax; the adapter only touches them for Flax models.
"""

from holejax_flax.adapter import FlaxAdapter

__all__ = ["ADAPTER", "FlaxAdapter"]

ADAPTER = FlaxAdapter()
