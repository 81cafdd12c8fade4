"""holejax adapter for Flax: Linen ``(module, variables)`` pairs and NNX modules.

Registered in the entry-point group ``holejax.adapters`` as ``flax``;
``hj.export_activations`` finds it by itself. Importing this package does not
import flax or jax; the adapter only touches them for Flax models. Outputs of
plain functions (``nn.relu``) become layers when the model ``sow``s them.

Example:
    >>> import tempfile, jax, numpy as np, flax.linen as nn, holejax as hj
    >>> class MLP(nn.Module):
    ...     @nn.compact
    ...     def __call__(self, x):
    ...         x = nn.relu(nn.Dense(8, name="fc1")(x))
    ...         self.sow("intermediates", "act1", x)
    ...         return nn.Dense(3, name="out")(x)
    >>> X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    >>> model = (MLP(), MLP().init(jax.random.key(0), X[:1]))
    >>> hj.list_layers(model, X).names
    ['fc1', 'act1', 'out']
    >>> acts = hj.export_activations(model, X, layers=["act1", "out"],
    ...                              store=tempfile.mkdtemp() + "/acts.zarr", progress=False)
    >>> acts["act1"].shape
    (1, 20, 8)
    >>> hj.predict(model, X).shape
    (20, 3)
"""

from holejax_flax.adapter import FlaxAdapter

__all__ = ["ADAPTER", "FlaxAdapter"]

ADAPTER = FlaxAdapter()
