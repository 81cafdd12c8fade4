"""holejax adapter for PyTorch: capture ``torch.nn.Module`` activations with forward hooks.

Registered in the entry-point group ``holejax.adapters`` as ``torch``;
``hj.export_activations`` finds it by itself. Importing this package does not
import torch; the adapter only touches torch for models that are already
torch modules.

Example:
    >>> import tempfile, numpy as np, torch, holejax as hj
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    >>> hj.list_layers(model, X).names
    ['0', '1', '2']
    >>> acts = hj.export_activations(
    ...     model, X, labels=np.arange(20) % 3, layers=["ReLU", "2"],
    ...     perturbations=[hj.gaussian(sigma=0.1)], store=tempfile.mkdtemp() + "/acts.zarr",
    ...     progress=False)
    >>> acts["1"].dims, acts["1"].shape
    (('perturbation', 'sample', '1:unit'), (2, 20, 8))
    >>> hj.predict(model, X).shape
    (20, 3)
"""

from holejax_torch.adapter import TorchAdapter

__all__ = ["ADAPTER", "TorchAdapter"]

ADAPTER = TorchAdapter()
