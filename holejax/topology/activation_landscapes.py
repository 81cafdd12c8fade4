"""Activation landscapes (Wheeler, Bouza & Bubenik): persistence landscapes per layer.

For each layer the activations ``(sample, unit)`` are normalised, the
Vietoris-Rips persistence diagram in degree 0 and 1 is computed by giotto-ph
on a holejax distance matrix, and the diagram becomes a persistence landscape
sampled on a grid (:mod:`holejax.topology.landscapes`). The sequence of
landscapes over the layers is the *activation landscape curve*; the norm of
each landscape, integrated exactly from the diagram
(:func:`~holejax.topology.landscapes.diagram_landscape_norm`, all landscape
functions), is the layer's *topological complexity*.

* :func:`normalize_activations` -- centre, scale so the largest pairwise
  distance is 1 (step 1 of the paper).
* :func:`local_distance_matrix` -- the local-homology variant: centre unless
  the layer ends in ReLU, rescale so the median norm is 1, project vectors of
  norm > 1 to the unit sphere, and set to 0 all distances among vectors whose
  norm is >= the median (i.e. >= 1 after rescaling).
* :func:`activation_diagrams` -- H0 and H1 diagrams of one layer.
* :func:`activation_landscapes` -- all of the above for every layer of a
  model, from a ``{layer: activations}`` mapping or an activation store.
* :func:`subsample_activation_landscapes`, :func:`average_landscapes` --
  averages over seeds or subsamples (section II.E of the paper).

The paper prints the tent function as ``min(a + t, b - t)``; holejax uses
the standard ``min(t - a, b - t)`` (they agree for ``a = 0``, i.e. H0).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from gph import ripser_parallel

from holejax._checks import as_cloud, where
from holejax.metrics import pairwise_distances
from holejax.store import layer_names
from holejax.topology._inputs import mapping_layers
from holejax.topology.landscapes import (
    check_grid,
    check_num_landscapes,
    diagram_landscape_norm,
    landscape_grid,
    persistence_landscapes,
)

__all__ = [
    "ActivationLandscapes",
    "normalize_activations",
    "local_distance_matrix",
    "activation_diagrams",
    "activation_landscapes",
    "subsample_activation_landscapes",
    "average_landscapes",
]


def _distances(X: np.ndarray, layer: str | None = None) -> np.ndarray:
    """Euclidean distance matrix (sample, sample) from the holejax kernels, as float64."""
    D = np.asarray(pairwise_distances(X, "euclidean", layer=layer), dtype=np.float64)
    D = (D + D.T) / 2
    np.fill_diagonal(D, 0.0)
    return D


def normalize_activations(X: Any, *, layer: str | None = None) -> np.ndarray:
    """Centre the activations and scale them so the largest pairwise distance is 1.

    Args:
        X: ``(sample, unit)`` activations, at least 2 samples.
        layer: layer name, used in messages.

    Returns:
        ``(sample, unit)`` float64 numpy array.

    Raises:
        ValueError: wrong rank, NaN/Inf, or all samples equal (nothing to scale).

    Example:
        >>> Y = normalize_activations([[0.0, 0.0], [3.0, 4.0]])
        >>> Y.tolist()
        [[-0.3, -0.4], [0.3, 0.4]]
    """
    arr = as_cloud(X, "X", min_points=2, layer=layer).astype(np.float64)
    arr = arr - arr.mean(axis=0)
    diameter = float(_distances(arr, layer).max())
    if not diameter > 0:
        raise ValueError(
            f"all {arr.shape[0]} samples of X are equal{where(layer)}; the layer carries no "
            "geometry to normalise. Drop this layer or use more varied inputs."
        )
    return arr / diameter


def _is_relu_output(X: np.ndarray, relu: Any, layer: str | None) -> bool:
    if relu == "auto":
        return bool((X >= 0).all())
    if isinstance(relu, bool):
        return relu
    if isinstance(relu, Collection) and not isinstance(relu, str):
        return layer in relu
    raise TypeError(f"relu must be 'auto', a bool, or a collection of layer names; got {relu!r}.")


def local_distance_matrix(X: Any, *, relu: Any = "auto", layer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distance matrix of the local-homology variant (section II.D of the paper).

    1. Centre the activations unless the layer ends in ReLU.
    2. Rescale so the median norm is 1; replace vectors of norm > 1 by their
       unit vectors.
    3. Euclidean distances, with every distance between two vectors whose
       norm is >= the median (>= 1 after rescaling) set to 0.

    Args:
        X: ``(sample, unit)`` activations.
        relu: does the layer end in ReLU? ``"auto"`` (default) says yes when
            every activation is >= 0; or a bool; or a collection of layer
            names that end in ReLU (compared with ``layer``).
        layer: layer name, for ``relu`` and messages.

    Returns:
        ``(D (sample, sample) float64, norms (sample,))``, the norms after
        rescaling and before projection.

    Example:
        >>> D, norms = local_distance_matrix([[0.5, 0.0], [2.0, 0.0], [0.0, 3.0]], relu=True)
        >>> norms.tolist()
        [0.25, 1.0, 1.5]
        >>> np.round(D, 3).tolist()
        [[0.0, 0.75, 1.031], [0.75, 0.0, 0.0], [1.031, 0.0, 0.0]]
    """
    arr = as_cloud(X, "X", min_points=2, layer=layer).astype(np.float64)
    if not _is_relu_output(arr, relu, layer):
        arr = arr - arr.mean(axis=0)
    norms = np.linalg.norm(arr, axis=1)
    median = float(np.median(norms))
    if not median > 0:
        raise ValueError(
            f"the median norm of X is 0{where(layer)}: at least half the samples sit at the "
            "origin, so the local variant cannot rescale. Use the global variant (local=False)."
        )
    arr, norms = arr / median, norms / median
    outside = norms > 1
    arr[outside] /= norms[outside, None]
    D = _distances(arr, layer)
    far = norms >= 1
    D[np.ix_(far, far)] = 0.0
    return D, norms


def activation_diagrams(
    X: Any,
    maxdim: int = 1,
    *,
    local: bool = False,
    relu: Any = "auto",
    layer: str | None = None,
    n_threads: int = 1,
) -> tuple[np.ndarray, ...]:
    """Vietoris-Rips persistence diagrams of one layer's activations, degrees 0..maxdim.

    The distance matrix comes from :func:`normalize_activations` (or
    :func:`local_distance_matrix` when ``local=True``) and holejax's
    euclidean kernel; giotto-ph's ``ripser_parallel(D, metric="precomputed")``
    computes the diagrams.

    Args:
        X: ``(sample, unit)`` activations.
        maxdim: highest homology degree.
        local: use the local-homology variant.
        relu: see :func:`local_distance_matrix` (only used when ``local``).
        layer: layer name for ``relu`` and messages.
        n_threads: giotto-ph threads.

    Returns:
        ``maxdim + 1`` diagrams ``(k_j, 2)`` float64; H0 holds one ``[0, inf]`` bar.

    Example:
        >>> t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        >>> h0, h1 = activation_diagrams(np.c_[np.cos(t), np.sin(t)])
        >>> len(h1), bool(h1[0, 1] > h1[0, 0])
        (1, True)
    """
    if int(maxdim) != maxdim or maxdim < 0:
        raise ValueError(f"maxdim must be an integer >= 0; got {maxdim!r}.")
    if local:
        D, _ = local_distance_matrix(X, relu=relu, layer=layer)
    else:
        D = _distances(normalize_activations(X, layer=layer), layer)
    result = ripser_parallel(D, metric="precomputed", maxdim=int(maxdim), n_threads=n_threads)
    return tuple(np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in result["dgms"])


# ----------------------------------------------------------------------------- per-layer pipeline


class ActivationLandscapes(NamedTuple):
    """Activation landscapes of one model (or an average over several).

    Attributes:
        layers: layer names, in order (the ``layer`` dim).
        degree: homology degree of the landscapes.
        local: whether the local-homology variant was used.
        grid: ``(grid,)`` sample points.
        landscapes: ``(layer, landscape, grid)`` landscape functions.
        norms: ``(layer,)`` topological complexity: the exact norm of each
            layer's whole landscape (every ``lambda_k``, not only the sampled
            ones); for an average, the mean of the members' norms.
        diagrams: per layer, the ``(k, 2)`` diagram in ``degree`` (empty for averages).
        count: how many landscapes were averaged (1 for one model).
    """

    layers: tuple[str, ...]
    degree: int
    local: bool
    grid: np.ndarray
    landscapes: np.ndarray
    norms: np.ndarray
    diagrams: tuple[np.ndarray, ...]
    count: int = 1

    def to_xarray(self):
        """An ``xarray.Dataset``: ``landscape (layer, k, grid)`` (``k`` = 1, 2, ... the
        landscape function) and ``norm (layer)``, for plotting."""
        return xr.Dataset(
            {
                "landscape": (("layer", "k", "grid"), np.asarray(self.landscapes)),
                "norm": (("layer",), np.asarray(self.norms)),
            },
            coords={
                "layer": list(self.layers),
                "k": np.arange(1, np.shape(self.landscapes)[1] + 1),
                "grid": np.asarray(self.grid),
            },
            attrs={"degree": self.degree, "local": int(self.local), "count": self.count},
        )


def _layer_clouds(
    activations: Any, layers: Sequence[str] | None, perturbation: str
) -> list[tuple[str, np.ndarray]]:
    if hasattr(activations, "data_vars"):  # an activation store (xarray.Dataset)
        names = layer_names(activations) if layers is None else list(layers)
        missing = [n for n in names if n not in activations.data_vars]
        if missing:
            raise KeyError(f"layers {missing} are not in the store; it holds {list(activations.data_vars)}.")
        if "perturbation" in activations.coords:
            known = [str(p) for p in activations.coords["perturbation"].values]
            if perturbation not in known:
                raise KeyError(f"perturbation={perturbation!r} is not in the store; it holds {known}.")
            return [(n, np.asarray(activations[n].sel(perturbation=perturbation).values)) for n in names]
        return [(n, np.asarray(activations[n].values)) for n in names]
    if isinstance(activations, Mapping):
        return mapping_layers(activations, layers, "activations")
    raise TypeError(
        "activations must be a mapping {layer: (sample, unit) array} or an activation store "
        f"(xarray.Dataset from hj.open_activations); got {type(activations).__name__}."
    )


def activation_landscapes(
    activations: Any,
    degree: int = 1,
    *,
    grid: Any = None,
    num_landscapes: int = 5,
    local: bool = False,
    relu: Any = "auto",
    layers: Sequence[str] | None = None,
    perturbation: str = "clean",
    max_samples: int | None = None,
    seed: int = 0,
    n_threads: int = 1,
) -> ActivationLandscapes:
    """Activation landscapes of every layer: normalise, diagram in ``degree``, landscape.

    Args:
        activations: ``{layer: (sample, unit) array}`` (in layer order), or an
            activation store from ``hj.open_activations`` / ``hj.export_activations``.
        degree: homology degree (0 or 1 are the usual choices).
        grid: ``(grid,)``; default ``landscape_grid(0, 1, 101)``, or ``(0, 2, 201)``
            for the local variant.
        num_landscapes: landscape functions per layer.
        local: use the local-homology variant (:func:`local_distance_matrix`).
        relu: for ``local``: which layers end in ReLU (see there).
        layers: the layers to use, in depth order (default: all, in the order
            of the mapping or the store; pass it for a store whose variables
            are not in depth order).
        perturbation: which perturbation of a store to read.
        max_samples: if set and smaller than the sample count, a random
            subsample of this size (the same samples in every layer).
        seed: seed of that subsample.
        n_threads: giotto-ph threads.

    Returns:
        :class:`ActivationLandscapes`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> t = rng.uniform(0, 2 * np.pi, 40)
        >>> acts = {"circle": np.c_[np.cos(t), np.sin(t)], "blob": rng.normal(size=(40, 2))}
        >>> res = activation_landscapes(acts, degree=1)
        >>> res.landscapes.shape, bool(res.norms[0] > res.norms[1])
        ((2, 5, 101), True)
    """
    if int(degree) != degree or degree < 0:
        raise ValueError(f"degree must be an integer >= 0; got {degree!r}.")
    num_landscapes = check_num_landscapes(num_landscapes)
    grid = check_grid(landscape_grid(0.0, 2.0, 201) if (grid is None and local) else
                       landscape_grid() if grid is None else grid)
    clouds = _layer_clouds(activations, layers, perturbation)
    if not clouds:
        raise ValueError("no layers to analyse; activations is empty.")
    n = {X.shape[0] for _, X in clouds if np.ndim(X) >= 1}
    if len(n) > 1:
        raise ValueError(f"layers hold different sample counts {sorted(n)}; pass activations of the same samples.")
    keep = None
    if max_samples is not None:
        if int(max_samples) != max_samples or max_samples < 2:
            raise ValueError(f"max_samples must be an integer >= 2; got {max_samples!r}.")
        total = n.pop()
        if total > max_samples:
            keep = np.sort(np.random.default_rng(seed).choice(total, int(max_samples), replace=False))
    names, dgms = [], []
    for name, X in clouds:
        X = np.asarray(X)
        if X.ndim > 2:
            X = X.reshape(X.shape[0], -1)
        if keep is not None:
            X = X[keep]
        all_dgms = activation_diagrams(X, int(degree), local=local, relu=relu, layer=name, n_threads=n_threads)
        names.append(name)
        dgms.append(all_dgms[int(degree)])
    lam = np.asarray(persistence_landscapes(dgms, grid, num_landscapes), dtype=np.float64)
    norms = np.array([diagram_landscape_norm(d) for d in dgms], dtype=np.float64)
    return ActivationLandscapes(tuple(names), int(degree), bool(local), grid, lam, norms, tuple(dgms), 1)


def subsample_activation_landscapes(
    activations: Any,
    n_subsamples: int,
    subsample_size: int,
    degree: int = 1,
    *,
    seed: int = 0,
    **kwargs: Any,
) -> list[ActivationLandscapes]:
    """:func:`activation_landscapes` on ``n_subsamples`` random subsamples of the samples.

    Subsample ``i`` uses seed ``seed + i``. Average the result with
    :func:`average_landscapes` or compare groups with
    :func:`landscape_permutation_test`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> acts = {"a": rng.normal(size=(30, 3))}
        >>> runs = subsample_activation_landscapes(acts, 3, 20, degree=0)
        >>> len(runs), runs[0].landscapes.shape
        (3, (1, 5, 101))
    """
    if int(n_subsamples) != n_subsamples or n_subsamples < 1:
        raise ValueError(f"n_subsamples must be an integer >= 1; got {n_subsamples!r}.")
    return [
        activation_landscapes(activations, degree, max_samples=subsample_size, seed=seed + i, **kwargs)
        for i in range(int(n_subsamples))
    ]


def average_landscapes(results: Sequence[ActivationLandscapes]) -> ActivationLandscapes:
    """Mean activation landscape over seeds / subsamples (section II.E of the paper).

    All members must share layers, degree, variant and grid. ``norms`` of the
    result is the mean of the members' norms; ``landscape_norm(avg.landscapes,
    avg.grid)`` gives the norm of the mean landscape instead.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> runs = subsample_activation_landscapes({"a": rng.normal(size=(30, 3))}, 2, 20, degree=0)
        >>> average_landscapes(runs).count
        2
    """
    results = list(results)
    if not results:
        raise ValueError("results is empty; pass at least one ActivationLandscapes.")
    first = results[0]
    for i, r in enumerate(results[1:], start=1):
        if (r.layers, r.degree, r.local) != (first.layers, first.degree, first.local) or not (
            np.shape(r.grid) == np.shape(first.grid) and np.allclose(r.grid, first.grid)
        ) or np.shape(r.landscapes) != np.shape(first.landscapes):
            raise ValueError(
                f"results[{i}] does not match results[0] (layers, degree, local, grid and landscape "
                "count must agree); compute all members with the same settings."
            )
    total = sum(r.count for r in results)
    lam = sum(np.asarray(r.landscapes) * r.count for r in results) / total
    norms = sum(np.asarray(r.norms) * r.count for r in results) / total
    return ActivationLandscapes(first.layers, first.degree, first.local, first.grid, lam, norms, (), total)
