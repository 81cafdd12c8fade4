"""The demo MLP in Flax Linen, and a trainer (imports flax and optax)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["make_flax_mlp", "train_flax", "accuracy_flax"]


def make_flax_mlp(hidden: tuple[int, int] = (64, 32), classes: int = 10):
    """The Linen twin of :func:`holejax.demo.torch_models.make_mlp`.

    Submodules ``fc1``, ``act1``, ``fc2``, ``act2``, ``out``: the same layer
    paths as the PyTorch MLP, so both capture the same layers by name.
    """
    import flax.linen as nn  # optional framework: flax

    class ReLU(nn.Module):
        """ReLU as a submodule, so its output is captured like torch's nn.ReLU."""

        @nn.compact
        def __call__(self, x):
            return nn.relu(x)

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = x.reshape((x.shape[0], -1))
            x = ReLU(name="act1")(nn.Dense(hidden[0], name="fc1")(x))
            x = ReLU(name="act2")(nn.Dense(hidden[1], name="fc2")(x))
            return nn.Dense(classes, name="out")(x)

    return MLP()


def train_flax(module, X: np.ndarray, y: np.ndarray, epochs: int = 30, lr: float = 1e-2,
               batch_size: int = 64, seed: int = 0):
    """Train a Linen ``module`` with Adam; returns its variables."""
    import optax  # optional framework: installed with flax

    key = jax.random.PRNGKey(seed)
    variables = module.init(key, jnp.asarray(X[:1]))
    tx = optax.adam(lr)
    opt_state = tx.init(variables)

    def loss_fn(v, xb, yb):
        logits = module.apply(v, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def step(v, s, xb, yb):
        grads = jax.grad(loss_fn)(v, xb, yb)
        updates, s = tx.update(grads, s, v)
        return optax.apply_updates(v, updates), s

    rng = np.random.default_rng(seed)
    n = len(X) - len(X) % batch_size  # full batches only: one compiled shape
    for _ in range(epochs):
        order = rng.permutation(len(X))[:n].reshape(-1, batch_size)
        for idx in order:
            variables, opt_state = step(variables, opt_state, X[idx], y[idx])
    return variables


def accuracy_flax(module, variables, X: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose arg-max logit equals the label."""
    pred = np.asarray(module.apply(variables, X)).argmax(1)
    return float((pred == y).mean())
