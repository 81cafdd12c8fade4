"""Small activation stores for the cluster tests."""

from __future__ import annotations

import numpy as np

from holejax.store import ActivationWriter, LayerSpec

N = 150
LAYERS = {"block.relu": (6,), "head": (6,)}  # one width: a local run batches them together
PERTURBATIONS = ["clean", "gaussian(sigma=0.5)"]
METRICS = ["euclidean", "cosine"]


def write_store(path, n=N, layers=LAYERS, perturbations=PERTURBATIONS, seed=0):
    """An activation store of three labelled blobs per layer, noisier under each perturbation."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), -(-n // 3))[:n]
    writer = ActivationWriter.create(
        path, [LayerSpec(name, shape) for name, shape in layers.items()], n_samples=n, labels=y,
        perturbations=perturbations, label_names=["a", "b", "c"],
    )
    for k, pert in enumerate(perturbations):
        batch = {}
        for i, (name, shape) in enumerate(layers.items()):
            d = int(np.prod(shape))
            centres = rng.normal(size=(3, d)) * (3 + i)
            batch[name] = (centres[y] + (1 + 0.5 * k) * rng.normal(size=(n, d))).astype(np.float32)
        writer.write_batch(pert, 0, batch)
    writer.finish()
    return path
