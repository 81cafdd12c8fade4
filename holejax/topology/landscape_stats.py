"""Statistics and views over groups of (activation) landscapes.

* :func:`landscape_permutation_test` -- permutation test between two groups
  of landscapes; the statistic is the distance between the group means in the
  product space of the layers (equation 1 of Wheeler, Bouza & Bubenik).
* :func:`landscape_pca` -- the PCA view of activation landscape curves
  (their Figure 3): coordinates per (curve, layer) to join by line segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from holejax._executables import stored_jit
from holejax.topology.activation_landscapes import ActivationLandscapes
from holejax.topology.landscapes import check_grid, trapezoid_weights

__all__ = ["PermutationTestResult", "LandscapePCA", "landscape_permutation_test", "landscape_pca"]


class PermutationTestResult(NamedTuple):
    """Result of :func:`landscape_permutation_test`.

    Attributes:
        statistic: distance between the two group means.
        p_value: ``(1 + #{null >= statistic}) / (1 + n_permutations)``.
        null: ``(n_permutations,)`` statistics of the relabelled groups.
    """

    statistic: float
    p_value: float
    null: np.ndarray


def _stack_group(group: Any, argument: str) -> np.ndarray:
    if isinstance(group, ActivationLandscapes):
        raise TypeError(
            f"{argument} is a single ActivationLandscapes; pass a list of them (one per seed / subsample)."
        )
    if isinstance(group, Sequence) and group and isinstance(group[0], ActivationLandscapes):
        arr = np.stack([np.asarray(g.landscapes) for g in group])
    else:
        arr = np.asarray(group, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(f"{argument} must have shape (member, ..., grid); got shape {arr.shape}.")
    if arr.shape[0] < 1:
        raise ValueError(f"{argument} has no members.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{argument} holds NaN or Inf.")
    return arr


@stored_jit
def _split_statistics(signs: jax.Array, data: jax.Array, weights: jax.Array) -> jax.Array:
    """Statistic of each split: ``signs`` (split, member) holds +1/n_a and -1/n_b."""
    diff = jnp.tensordot(signs, data, axes=1)  # (split, feature, grid)
    return jnp.sqrt(jnp.sum(diff**2 * weights, axis=(-1, -2)))


def landscape_permutation_test(
    group_a: Any,
    group_b: Any,
    grid: Any,
    n_permutations: int = 1000,
    *,
    seed: int = 0,
) -> PermutationTestResult:
    """Permutation test: do two groups of (activation) landscapes differ?

    The statistic is the distance between the group means in the product
    Hilbert space (equation 1 of the paper: summed over layers and landscape
    functions, integrated over the grid). The null distribution relabels the
    pooled members at random ``n_permutations`` times (drawn with numpy's
    generator from ``seed``; the statistics of each batch of 1024 relabellings
    are one jit-compiled contraction).

    Args:
        group_a: ``(member, ..., grid)`` array, e.g. ``(seed, layer, landscape, grid)``,
            or a list of :class:`ActivationLandscapes`.
        group_b: the same for the other group (same trailing shape).
        grid: ``(grid,)``.
        n_permutations: number of relabellings.
        seed: PRNG seed.

    Returns:
        :class:`PermutationTestResult`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=(8, 2, 11)); b = rng.normal(size=(8, 2, 11)) + 1.0
        >>> res = landscape_permutation_test(a, b, np.linspace(0, 1, 11), 200)
        >>> res.p_value < 0.05
        True
    """
    a = _stack_group(group_a, "group_a")
    b = _stack_group(group_b, "group_b")
    grid = check_grid(grid)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"group_a members have shape {a.shape[1:]} but group_b members {b.shape[1:]}; they must agree.")
    if a.shape[-1] != grid.shape[0]:
        raise ValueError(f"the last axis of the groups ({a.shape[-1]}) must match the grid ({grid.shape[0]}).")
    if int(n_permutations) != n_permutations or n_permutations < 1:
        raise ValueError(f"n_permutations must be an integer >= 1; got {n_permutations!r}.")
    dtype = jnp.result_type(float)
    n_a, n = a.shape[0], a.shape[0] + b.shape[0]
    data = jnp.asarray(np.concatenate([a, b]).reshape(n, -1, grid.shape[0]), dtype)
    weights = trapezoid_weights(jnp.asarray(grid, dtype))
    base = np.where(np.arange(n) < n_a, 1.0 / n_a, -1.0 / (n - n_a))
    observed = np.tensordot(base, np.concatenate([a, b]), axes=1)
    stat = float(np.sqrt(np.sum(observed**2 * np.asarray(weights, np.float64))))
    # relabellings drawn on the host, scored on the device in fixed-size batches
    rng = np.random.default_rng(seed)
    batch = min(int(n_permutations), 1024)
    null = []
    for start in range(0, int(n_permutations), batch):
        signs = rng.permuted(np.broadcast_to(base, (batch, n)), axis=1)
        null.append(np.asarray(_split_statistics(jnp.asarray(signs, dtype), data, weights)))
    null = np.concatenate(null)[: int(n_permutations)].astype(np.float64)
    # compare with a relative tolerance so relabellings equal to the observed split count
    p = (1 + int(np.sum(null >= stat * (1 - 1e-6)))) / (1 + len(null))
    return PermutationTestResult(stat, float(p), null)


class LandscapePCA(NamedTuple):
    """The PCA view of activation landscape curves.

    Attributes:
        coords: ``(curve, layer, component)`` coordinates; join consecutive
            layers of one curve with line segments to draw the curves.
        explained_variance_ratio: ``(component,)``.
        components: ``(component, landscape, grid)`` principal directions as
            landscape-shaped functions (unit norm in the landscape norm).
        mean: ``(landscape, grid)`` mean landscape of all points.
    """

    coords: np.ndarray
    explained_variance_ratio: np.ndarray
    components: np.ndarray
    mean: np.ndarray


def landscape_pca(landscapes: Any, grid: Any, n_components: int = 2) -> LandscapePCA:
    """PCA of the landscapes of all (curve, layer) pairs, in the landscape inner product.

    Each landscape ``(landscape, grid)`` is a point of the Hilbert space;
    weighting the samples by the square roots of the trapezoid weights makes
    Euclidean PCA on the flattened vectors PCA in the landscape norm.

    Args:
        landscapes: ``(curve, layer, landscape, grid)`` (curves = models,
            training stages, ...), ``(layer, landscape, grid)`` for one curve, or
            a list of :class:`ActivationLandscapes`.
        grid: ``(grid,)``.
        n_components: number of components.

    Returns:
        :class:`LandscapePCA`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> pca = landscape_pca(rng.random((3, 4, 2, 11)), np.linspace(0, 1, 11))
        >>> pca.coords.shape, pca.components.shape
        ((3, 4, 2), (2, 2, 11))
    """
    if isinstance(landscapes, Sequence) and landscapes and isinstance(landscapes[0], ActivationLandscapes):
        arr = np.stack([np.asarray(r.landscapes) for r in landscapes])
    else:
        arr = np.asarray(landscapes, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(
            f"landscapes must have shape (curve, layer, landscape, grid) or (layer, landscape, grid); got {arr.shape}."
        )
    grid = check_grid(grid)
    if arr.shape[-1] != grid.shape[0]:
        raise ValueError(f"the last axis of landscapes ({arr.shape[-1]}) must match the grid ({grid.shape[0]}).")
    if not np.isfinite(arr).all():
        raise ValueError("landscapes hold NaN or Inf.")
    curves, layers, count, size = arr.shape
    points = curves * layers
    if int(n_components) != n_components or not 1 <= n_components <= min(points, count * size):
        raise ValueError(
            f"n_components must be an integer in [1, {min(points, count * size)}] for {points} landscapes; "
            f"got {n_components!r}."
        )
    step = np.diff(grid)
    root_w = np.sqrt(np.concatenate([step[:1] / 2, (step[1:] + step[:-1]) / 2, step[-1:] / 2]))
    flat = (arr * root_w).reshape(points, count * size)
    mean = flat.mean(axis=0)
    centred = flat - mean
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    # fix signs so the largest-magnitude loading of each component is positive
    flip = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    vt = vt * flip[:, None]
    k = int(n_components)
    coords = centred @ vt[:k].T
    total = float((s**2).sum())
    ratio = (s[:k] ** 2) / total if total > 0 else np.zeros(k)
    components = vt[:k].reshape(k, count, size) / root_w
    return LandscapePCA(
        coords.reshape(curves, layers, k), ratio, components, (mean.reshape(count, size) / root_w)
    )
