"""holejax adapter for Flax: Linen ``(module, variables)`` pairs and NNX modules.

Registered in the entry-point group ``holejax.adapters`` as ``flax``;
``hj.export_activations`` finds it by itself. Batches are applied as
``model(x)``, ``model(*x)`` for a tuple and ``model(**x)`` for a mapping
(Linen: ``module.apply(variables, ...)``). Importing this package does not
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

A mapping of arrays is passed as keyword arguments (a tuple, positionally),
here to an NNX module; ``attention_mask`` keeps padding out of the pooling:

    >>> from flax import nnx
    >>> class Tokens(nnx.Module):
    ...     def __init__(self):
    ...         self.embed = nnx.Embed(10, 8, rngs=nnx.Rngs(0))
    ...     def __call__(self, input_ids, attention_mask):
    ...         return self.embed(input_ids) * attention_mask[..., None]
    >>> ids = np.array([[3, 4, 0], [5, 6, 7]])
    >>> tokens = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int32)}
    >>> acts = hj.export_activations(Tokens(), tokens, layers=["embed"],
    ...                              store=tempfile.mkdtemp() + "/t.zarr", progress=False)
    >>> acts["embed"].shape, acts["embed"].attrs["pooling"]
    ((1, 2, 8), 'mean')
"""

from holejax_flax.adapter import FlaxAdapter

__all__ = ["ADAPTER", "FlaxAdapter"]

ADAPTER = FlaxAdapter()
