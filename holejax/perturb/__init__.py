"""Perturbations: input noise (applied here, in JAX) and compression descriptors.

Every perturbation is a frozen :class:`Perturbation` with a stable readable
``name`` (the store's ``perturbation`` coordinate), a ``kind`` (``"clean"``,
``"input"`` or ``"compression"``) and JSON-safe ``params``. Input noise is
applied with explicit PRNG keys; compression is applied to a model by the
adapters' ``apply_compression(model, perturbation)``.

Example:
    >>> import numpy as np, holejax as hj
    >>> from holejax.perturb import sweep
    >>> [p.name for p in [hj.clean(), *sweep("gaussian", [0.1, 0.2])]]
    ['clean', 'gaussian(sigma=0.1)', 'gaussian(sigma=0.2)']
    >>> x = np.ones((2, 4), np.float32)
    >>> hj.uniform(a=0.5).apply_at(x, seed=0).shape
    (2, 4)
"""

from holejax.perturb.base import (
    KINDS,
    SEVERITY_PARAMETER,
    Perturbation,
    as_perturbations,
    clean,
    from_name,
    from_params,
    sweep,
)
from holejax.perturb.compression import (
    QUANT_SCHEMES,
    global_l1_prune,
    int8_dynamic,
    int8_weight_qparams,
    l1_prune_masks,
    layerwise_l1_prune,
    prune_count,
    quantize,
    quantize_array,
    quantize_qparams,
)
from holejax.perturb.noise import gaussian, poisson, salt_and_pepper, speckle, uniform

__all__ = [
    "KINDS",
    "QUANT_SCHEMES",
    "SEVERITY_PARAMETER",
    "Perturbation",
    "as_perturbations",
    "clean",
    "from_name",
    "from_params",
    "gaussian",
    "global_l1_prune",
    "int8_dynamic",
    "int8_weight_qparams",
    "l1_prune_masks",
    "layerwise_l1_prune",
    "poisson",
    "prune_count",
    "quantize",
    "quantize_array",
    "quantize_qparams",
    "salt_and_pepper",
    "speckle",
    "sweep",
    "uniform",
]
