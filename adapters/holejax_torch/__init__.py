"""holejax adapter for PyTorch: capture ``torch.nn.Module`` activations with forward hooks.

Registered in the entry-point group ``holejax.adapters`` as ``torch``;
``hj.export_activations`` finds it by itself. Importing this package does not
import torch; the adapter only touches torch for models that are already
torch modules.
"""

from holejax_torch.adapter import TorchAdapter

__all__ = ["ADAPTER", "TorchAdapter"]

ADAPTER = TorchAdapter()
