"""Projection of a cloud onto its leading principal components.

HOLE's reference code computes Mahalanobis distances after projecting each
cloud onto its first 10 principal components
(:func:`holejax.metrics.presets.hole_metric_params`); the mahalanobis metrics
take that step with their ``components`` parameter. The kernel is jit-able
and vmap-able.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = ["principal_scores", "check_components"]


def principal_scores(X: ArrayLike, components: int) -> jax.Array:
    """Coordinates of the centred cloud on its ``components`` leading principal axes.

    The axes are the right singular vectors of the centred cloud with the
    largest singular values, so the scores are ``U[:, :c] * s[:c]`` of its
    thin SVD (the signs of the axes are arbitrary; distances do not see them).

    Args:
        X: ``(sample, unit)`` points.
        components: ``c``, ``1 <= c <= min(sample, unit)`` (static).

    Returns:
        ``(sample, components)`` scores, centred, columns in order of
        decreasing variance.

    Example:
        >>> X = jnp.array([[1.0, 0.0], [1.0, 2.0], [1.0, 4.0]])  # on a line: one component holds it all
        >>> Z = principal_scores(X, 1)
        >>> [round(abs(v), 3) for v in Z[:, 0].tolist()]
        [2.0, 0.0, 2.0]
    """
    X = jnp.asarray(X)
    Xc = X - jnp.mean(X, axis=0, keepdims=True)
    U, s, _ = jnp.linalg.svd(Xc, full_matrices=False)
    return U[:, :components] * s[:components]


def check_components(components, n: int, d: int) -> int | None:
    """Validate ``components`` for a cloud of ``n`` samples and ``d`` units.

    ``None`` means no projection. An integer is capped at ``min(d, n - 1)``:
    a centred cloud of ``n`` samples spans at most ``n - 1`` directions, so
    further components would carry no variance.

    Example:
        >>> check_components(10, 50, 4), check_components(10, 6, 64), check_components(None, 5, 5)
        (4, 5, None)
    """
    if components is None:
        return None
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or components < 1:
        raise ValueError(
            f"components must be None (no projection) or an integer >= 1 of principal components; got {components!r}."
        )
    return int(min(int(components), d, max(n - 1, 1)))
