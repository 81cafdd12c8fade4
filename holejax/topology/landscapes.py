"""Activation landscapes (Wheeler, Bouza & Bubenik): persistence landscapes per layer.

For each layer the activations ``(sample, unit)`` are normalised, the
Vietoris-Rips persistence diagram in degree 0 and 1 is computed by giotto-ph
on a holejax distance matrix, and the diagram becomes a persistence landscape
sampled on a grid. The sequence of landscapes over the layers is the
*activation landscape curve*; the norm of each landscape is the layer's
*topological complexity*.

Pieces, each usable on its own:

* :func:`normalize_activations` -- centre, scale so the largest pairwise
  distance is 1 (step 1 of the paper).
* :func:`local_distance_matrix` -- the local-homology variant: centre unless
  the layer ends in ReLU, rescale so the median norm is 1, project vectors of
  norm > 1 to the unit sphere, and set to 0 all distances among vectors whose
  norm is >= the median (i.e. >= 1 after rescaling).
* :func:`activation_diagrams` -- H0 and H1 diagrams of one layer.
* :func:`persistence_landscape` / :func:`persistence_landscapes` -- landscapes
  on a grid in JAX (``jit``; ``vmap`` over diagrams padded with ``[0, 0]``).
* :func:`landscape_norm`, :func:`landscape_distance` -- the Hilbert-space norm
  ``sqrt(sum_k int lambda_k(t)^2 dt)`` by the trapezoid rule on the grid.
* :func:`activation_landscapes` -- all of the above for every layer of a
  model, from a ``{layer: activations}`` mapping or an activation store.
* :func:`subsample_activation_landscapes`, :func:`average_landscapes` --
  averages over seeds or subsamples (section II.E of the paper).
* :func:`landscape_permutation_test` -- permutation test between two groups
  of landscapes; the statistic is the distance between the group means in
  the product space of the layers (equation 1 of the paper).
* :func:`landscape_pca` -- the PCA view of activation landscape curves.

Conventions. The tent of a bar ``(b, d)`` is ``max(0, min(t - b, d - t))``
(Bubenik 2015; the paper prints ``a + t``, a typo that agrees for ``b = 0``).
``lambda_k(t)`` is the k-th largest tent at ``t``. Infinite bars (the
essential class of H0) are left out of landscapes. gudhi's
``representations.Landscape`` returns ``sqrt(2)`` times these values.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from holejax._checks import as_cloud, where
from holejax.topology.diagrams import as_diagram

__all__ = [
    "ActivationLandscapes",
    "PermutationTestResult",
    "LandscapePCA",
    "landscape_grid",
    "normalize_activations",
    "local_distance_matrix",
    "activation_diagrams",
    "persistence_landscape",
    "persistence_landscapes",
    "landscape_norm",
    "landscape_distance",
    "activation_landscapes",
    "subsample_activation_landscapes",
    "average_landscapes",
    "landscape_permutation_test",
    "landscape_pca",
]


# ----------------------------------------------------------------------------- grid and kernels


def landscape_grid(start: float = 0.0, stop: float = 1.0, resolution: int = 101) -> np.ndarray:
    """An evenly spaced grid ``(grid,)`` for landscapes.

    After :func:`normalize_activations` all filtration values lie in
    ``[0, 1]``, the default range. For the local variant distances reach 2.

    Example:
        >>> landscape_grid(0.0, 1.0, 5).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if int(resolution) != resolution or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2; got {resolution!r}.")
    if not (np.isfinite(start) and np.isfinite(stop) and stop > start):
        raise ValueError(f"the grid needs finite start < stop; got start={start!r}, stop={stop!r}.")
    return np.linspace(float(start), float(stop), int(resolution))


def _check_grid(grid: Any) -> np.ndarray:
    if isinstance(grid, jax.core.Tracer):
        return grid
    arr = np.asarray(grid, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(
            f"grid must be 1-D with at least 2 values (grid,); got shape {arr.shape}. "
            "Use landscape_grid(start, stop, resolution)."
        )
    if not np.isfinite(arr).all() or not (np.diff(arr) > 0).all():
        raise ValueError("grid must hold finite, strictly increasing values; use landscape_grid(start, stop, resolution).")
    return arr


def _check_count(num_landscapes: int) -> int:
    if int(num_landscapes) != num_landscapes or num_landscapes < 1:
        raise ValueError(f"num_landscapes must be an integer >= 1; got {num_landscapes!r}.")
    return int(num_landscapes)


def _trapezoid_weights(grid: jax.Array) -> jax.Array:
    """Weights ``w`` (grid,) with ``sum_g w_g f(t_g)`` the trapezoid rule on ``grid``."""
    step = jnp.diff(grid)
    return jnp.concatenate([step[:1] / 2, (step[1:] + step[:-1]) / 2, step[-1:] / 2])


@functools.partial(jax.jit, static_argnames=("num_landscapes",))
def _landscape_kernel(dgm: jax.Array, grid: jax.Array, num_landscapes: int) -> jax.Array:
    birth, death = dgm[:, 0], dgm[:, 1]
    finite = jnp.isfinite(birth) & jnp.isfinite(death)
    mid = jnp.where(finite, (birth + death) / 2, 0.0)
    half = jnp.where(finite, (death - birth) / 2, 0.0)
    tents = jnp.maximum(half[None, :] - jnp.abs(grid[:, None] - mid[None, :]), 0.0)  # (grid, bar)
    missing = num_landscapes - tents.shape[1]
    if missing > 0:
        tents = jnp.pad(tents, ((0, 0), (0, missing)))
    top = jax.lax.top_k(tents, num_landscapes)[0]  # (grid, landscape), descending
    return top.T


def persistence_landscape(dgm: Any, grid: Any, num_landscapes: int = 5) -> jax.Array:
    """The first ``num_landscapes`` landscape functions of one diagram on ``grid``.

    Args:
        dgm: ``(k, 2)`` diagram; infinite bars are left out, rows ``[0, 0]``
            (padding) add nothing. ``k`` may be 0.
        grid: ``(grid,)`` increasing sample points.
        num_landscapes: how many functions ``lambda_1 >= lambda_2 >= ...``.

    Returns:
        ``(num_landscapes, grid)`` jax.Array. Traceable: inside ``jax.jit``
        or ``jax.vmap`` pass arrays; validation then is skipped.

    Example:
        >>> lam = persistence_landscape([[0.0, 2.0], [1.0, 2.0]], [0.0, 0.5, 1.0, 1.5, 2.0], 2)
        >>> np.asarray(lam).tolist()
        [[0.0, 0.5, 1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.5, 0.0]]
    """
    num_landscapes = _check_count(num_landscapes)
    if not isinstance(dgm, jax.core.Tracer):
        dgm = as_diagram(dgm, "dgm")
    grid = _check_grid(grid)
    dtype = jnp.result_type(float)
    return _landscape_kernel(jnp.asarray(dgm, dtype), jnp.asarray(grid, dtype), num_landscapes)


def _pad_diagrams(dgms: Sequence[Any], argument: str) -> np.ndarray:
    checked = [as_diagram(d, f"{argument}[{i}]") for i, d in enumerate(dgms)]
    checked = [d[np.isfinite(d[:, 1])] for d in checked]
    k = max([len(d) for d in checked] + [1])
    out = np.zeros((len(checked), k, 2))
    for i, d in enumerate(checked):
        out[i, : len(d)] = d
    return out


def persistence_landscapes(dgms: Any, grid: Any, num_landscapes: int = 5) -> jax.Array:
    """Landscapes of many diagrams at once: one ``jax.vmap`` over padded diagrams.

    Args:
        dgms: a sequence of ``(k_i, 2)`` diagrams (padded here with ``[0, 0]``
            rows, infinite bars dropped), or a ``(batch, k, 2)`` array.
        grid: ``(grid,)``.
        num_landscapes: functions per diagram.

    Returns:
        ``(batch, num_landscapes, grid)`` jax.Array.

    Example:
        >>> lam = persistence_landscapes([[[0.0, 2.0]], []], [0.0, 1.0, 2.0], 1)
        >>> np.asarray(lam).tolist()
        [[[0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]]
    """
    num_landscapes = _check_count(num_landscapes)
    grid = _check_grid(grid)
    if isinstance(dgms, jax.core.Tracer):
        batch = dgms
    elif isinstance(dgms, (np.ndarray, jax.Array)) and np.ndim(dgms) == 3:
        batch = _pad_diagrams(list(np.asarray(dgms)), "dgms")
    elif isinstance(dgms, Sequence) and not isinstance(dgms, str):
        if len(dgms) == 0:
            raise ValueError("dgms is empty; pass at least one diagram.")
        batch = _pad_diagrams(dgms, "dgms")
    else:
        raise TypeError(
            f"dgms must be a sequence of (k, 2) diagrams or a (batch, k, 2) array; got {type(dgms).__name__}."
        )
    dtype = jnp.result_type(float)
    kernel = jax.vmap(_landscape_kernel, in_axes=(0, None, None))
    return kernel(jnp.asarray(batch, dtype), jnp.asarray(grid, dtype), num_landscapes)


def landscape_norm(landscape: Any, grid: Any) -> jax.Array:
    """Norm ``sqrt(sum_k int lambda_k(t)^2 dt)`` by the trapezoid rule on ``grid``.

    Args:
        landscape: ``(..., num_landscapes, grid)``; leading axes (e.g. layer)
            are kept, so the norm of a whole activation landscape curve in the
            product space is ``sqrt(sum(landscape_norm(curve, grid)**2))``.
        grid: ``(grid,)``.

    Returns:
        ``(...)`` jax.Array. Traceable.

    Example:
        >>> grid = landscape_grid(0.0, 2.0, 201)
        >>> lam = persistence_landscape([[0.0, 2.0]], grid, 1)
        >>> round(float(landscape_norm(lam, grid)), 4)  # sqrt(2/3)
        0.8165
    """
    grid = _check_grid(grid)
    lam = jnp.asarray(landscape)
    if lam.ndim < 2 or lam.shape[-1] != np.shape(grid)[0]:
        raise ValueError(
            f"landscape must have shape (..., num_landscapes, grid) with grid={np.shape(grid)[0]}; "
            f"got shape {lam.shape}."
        )
    weights = _trapezoid_weights(jnp.asarray(grid, lam.dtype))
    return jnp.sqrt(jnp.sum(lam**2 * weights, axis=(-1, -2)))


def landscape_distance(a: Any, b: Any, grid: Any) -> jax.Array:
    """``landscape_norm(a - b, grid)`` for landscapes of the same shape.

    Example:
        >>> grid = [0.0, 1.0, 2.0]
        >>> float(landscape_distance([[0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]], grid))
        1.0
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got {a.shape} and {b.shape}.")
    return landscape_norm(a - b, grid)


# ----------------------------------------------------------------------------- activations -> diagrams


def _distances(X: np.ndarray, layer: str | None = None) -> np.ndarray:
    """Euclidean distance matrix (sample, sample) from the holejax kernels, as float64."""
    from holejax.metrics import pairwise_distances

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
    from gph import ripser_parallel

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
        norms: ``(layer,)`` topological complexity (landscape norm); for an
            average, the mean of the members' norms.
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
        import xarray as xr

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
        from holejax.store import layer_names

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
        names = list(activations) if layers is None else list(layers)
        missing = [n for n in names if n not in activations]
        if missing:
            raise KeyError(f"layers {missing} are not in activations; it holds {list(activations)}.")
        return [(str(n), np.asarray(activations[n])) for n in names]
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
    num_landscapes = _check_count(num_landscapes)
    grid = _check_grid(landscape_grid(0.0, 2.0, 201) if (grid is None and local) else
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
    norms = np.asarray(landscape_norm(lam, grid), dtype=np.float64)
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


# ----------------------------------------------------------------------------- statistics and views


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


@jax.jit
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
    grid = _check_grid(grid)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"group_a members have shape {a.shape[1:]} but group_b members {b.shape[1:]}; they must agree.")
    if a.shape[-1] != grid.shape[0]:
        raise ValueError(f"the last axis of the groups ({a.shape[-1]}) must match the grid ({grid.shape[0]}).")
    if int(n_permutations) != n_permutations or n_permutations < 1:
        raise ValueError(f"n_permutations must be an integer >= 1; got {n_permutations!r}.")
    dtype = jnp.result_type(float)
    n_a, n = a.shape[0], a.shape[0] + b.shape[0]
    data = jnp.asarray(np.concatenate([a, b]).reshape(n, -1, grid.shape[0]), dtype)
    weights = _trapezoid_weights(jnp.asarray(grid, dtype))
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
    grid = _check_grid(grid)
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
