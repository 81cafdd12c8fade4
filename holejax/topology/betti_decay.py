"""Betti-number decay across depth (Suresh et al.): cubical homology of feature maps.

Each sample's feature map at a layer, ``(channel, height, width)`` for a
convolution (or any ``(...)`` grid of values), is a voxel image. Its
cubical complex (gudhi ``CubicalComplex`` on the top-dimensional cells)
filtered by activation gives persistence diagrams in degrees ``0 .. d-1``;
the Betti numbers of the thresholded map at a grid of thresholds are the
bars alive there. Per layer:

* ``curves``: mean Betti numbers over the samples, ``(dim, threshold)``;
* ``Omega`` (topological complexity): the mean over samples and thresholds
  of the total Betti number ``sum_k beta_k``, a count of features;
* ``Omega`` per voxel: the same divided by the number of values of one
  sample's feature map (``channel * height * width``), so that layers of
  different sizes compare (conv2 of a network may hold twice the voxels of
  conv1 and so, at equal structure, twice the features);
* ``theta`` (decay rate): the slope of ``Omega`` against depth, measured in
  layers: a polynomial of degree ``degree`` is fitted to ``Omega`` against the
  layer positions (default ``0, 1, ...``) and ``theta`` is its mean slope
  ``(p(last) - p(first)) / (last - first)`` -- for a line, its slope: the
  change of ``Omega`` per layer. Negative theta means the complexity decays
  with depth.

Which ``Omega``: Suresh et al. rank models by ``Omega`` as a count of Betti
features per image and fit its decay across layers; they note it is
invariant to input resolution only *up to a scale factor*, i.e. it is not
normalised by the map's size. That is holejax's default (``omega="count"``)
so that theta and the ranking reproduce the paper's numbers;
``omega="per_voxel"`` fits theta to the size-normalised series instead,
which is the fairer comparison between layers of different sizes.

holejax's reading of the paper: values are min-max normalised per sample to
``[0, 1]`` (so thresholds mean the same in every layer) and the filtration
is by superlevel sets ``{x >= t}`` (strong activations first) unless
``superlevel=False``. The paper's summary does not spell out these choices;
they are parameters here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import gudhi
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from holejax._checks import check_choice
from holejax._executables import stored_jit
from holejax.store import layer_names
from holejax.topology._inputs import mapping_layers

__all__ = [
    "BettiDecay",
    "DecayFit",
    "OMEGAS",
    "cubical_diagrams",
    "betti_numbers",
    "betti_curves",
    "decay_rate",
    "betti_decay",
]


def _check_thresholds(thresholds: Any) -> np.ndarray:
    arr = np.asarray(thresholds, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D array (threshold,); got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError("thresholds must be finite.")
    return arr


def _normalise(values: np.ndarray, normalize: bool) -> np.ndarray:
    if not normalize:
        return values
    lo, hi = values.min(), values.max()
    if hi > lo:
        return (values - lo) / (hi - lo)
    return np.zeros_like(values)


def _check_map(fmap: Any, argument: str) -> np.ndarray:
    arr = np.asarray(fmap)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise TypeError(f"{argument} must be numeric; got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if arr.ndim < 1 or arr.size == 0:
        raise ValueError(f"{argument} must be a non-empty grid of values (channel, height, width); got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{argument} holds NaN or Inf; fix the activations first.")
    return arr


def cubical_diagrams(fmap: Any, *, superlevel: bool = True, normalize: bool = True) -> tuple[np.ndarray, ...]:
    """Persistence diagrams of one feature map's cubical complex (gudhi).

    Args:
        fmap: ``(channel, height, width)`` (or any grid) of activation values.
        superlevel: filter by superlevel sets ``{x >= t}``; else sublevel ``{x <= t}``.
        normalize: min-max scale to ``[0, 1]`` first (a constant map becomes 0).

    Returns:
        One ``(k, 2)`` diagram per degree ``0 .. fmap.ndim - 1``, **in
        threshold units**: a bar ``[b, d]`` is alive at threshold ``t`` when
        the set at ``t`` contains it: ``d < t <= b`` for superlevel sets
        (bars run downwards; ``d = -inf`` for essential classes) and
        ``b <= t < d`` for sublevel sets.

    Example:
        >>> img = np.array([[1.0, 0.0, 1.0]])        # two bright pixels
        >>> h0, h1 = cubical_diagrams(img)
        >>> sorted(h0.tolist())
        [[1.0, -inf], [1.0, 0.0]]
    """
    arr = _normalise(_check_map(fmap, "fmap"), normalize)
    values = -arr if superlevel else arr
    complex_ = gudhi.CubicalComplex(top_dimensional_cells=values)
    complex_.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    out = []
    for k in range(arr.ndim):
        dgm = np.asarray(complex_.persistence_intervals_in_dimension(k), dtype=np.float64).reshape(-1, 2)
        out.append(-dgm + 0.0 if superlevel else dgm)  # + 0.0 turns -0.0 into 0.0
    return tuple(out)


@stored_jit
def _alive(dgm: jax.Array, thresholds: jax.Array, superlevel: bool) -> jax.Array:
    b, d = dgm[:, 0:1], dgm[:, 1:2]
    t = thresholds[None, :]
    up = (d < t) & (t <= b)
    down = (b <= t) & (t < d)
    return jnp.sum(jnp.where(superlevel, up, down), axis=0)


def betti_numbers(dgm: Any, thresholds: Any, *, superlevel: bool = True) -> jax.Array:
    """Number of bars of a diagram alive at each threshold (a Betti curve).

    Args:
        dgm: ``(k, 2)`` diagram in threshold units as :func:`cubical_diagrams`
            returns; pad with ``[nan, nan]`` rows (never alive) to batch.
        thresholds: ``(threshold,)``.
        superlevel: the filtration direction the diagram came from.

    Returns:
        ``(threshold,)`` int jax.Array. Traceable: ``jax.vmap`` it over
        diagrams padded with NaN rows.

    Example:
        >>> dgm = [[1.0, -np.inf], [0.8, 0.2]]
        >>> np.asarray(betti_numbers(dgm, [0.1, 0.5, 0.9])).tolist()
        [1, 2, 1]
    """
    dtype = jnp.result_type(float)
    if isinstance(dgm, jax.core.Tracer) or isinstance(thresholds, jax.core.Tracer):
        return _alive(jnp.asarray(dgm, dtype), jnp.asarray(thresholds, dtype), bool(superlevel))
    arr = np.asarray(dgm, dtype=np.float64)
    if arr.size == 0:
        arr = np.zeros((0, 2))
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"dgm must have shape (k, 2); got shape {arr.shape}.")
    return _alive(jnp.asarray(arr, dtype), jnp.asarray(_check_thresholds(thresholds), dtype), bool(superlevel))


def betti_curves(
    feature_maps: Any, thresholds: Any, *, superlevel: bool = True, normalize: bool = True
) -> np.ndarray:
    """Betti curves of every sample's feature map.

    Args:
        feature_maps: ``(sample, channel, height, width)`` (or ``(sample, ...)``).
        thresholds: ``(threshold,)``, in ``[0, 1]`` when ``normalize``.
        superlevel, normalize: see :func:`cubical_diagrams`.

    Returns:
        ``(sample, dim, threshold)`` int array, ``dim = feature_maps.ndim - 1``.
        The diagrams of all samples are padded and counted in one ``jax.vmap``.

    Example:
        >>> maps = np.zeros((2, 1, 5, 5)); maps[0, 0, 2, 2] = 1.0; maps[1, 0, ::4, ::4] = 1.0
        >>> betti_curves(maps, [0.5])[:, 0, 0].tolist()   # beta_0 at 0.5: one and four blobs
        [1, 4]
    """
    maps = _check_map(feature_maps, "feature_maps")
    if maps.ndim < 2:
        raise ValueError(f"feature_maps must have shape (sample, ...); got shape {maps.shape}.")
    thresholds = _check_thresholds(thresholds)
    dims = maps.ndim - 1
    per_sample = [cubical_diagrams(m, superlevel=superlevel, normalize=normalize) for m in maps]
    k = max([len(d) for dg in per_sample for d in dg] + [1])
    k = 1 << (k - 1).bit_length()  # pad to a power of two: one compilation serves many layers
    padded = np.full((len(maps), dims, k, 2), np.nan)
    for i, dg in enumerate(per_sample):
        for j, d in enumerate(dg):
            padded[i, j, : len(d)] = d
    dtype = jnp.result_type(float)
    count = jax.vmap(jax.vmap(_alive, in_axes=(0, None, None)), in_axes=(0, None, None))
    # NaN rows compare False everywhere, so padding is never alive
    out = count(jnp.asarray(padded, dtype), jnp.asarray(thresholds, dtype), bool(superlevel))
    return np.asarray(out, dtype=np.int64)


class DecayFit(NamedTuple):
    """Polynomial fit of complexity against depth; see :func:`decay_rate`."""

    theta: float
    coefficients: np.ndarray
    depth: np.ndarray
    fitted: np.ndarray


def decay_rate(omega: Any, depth: Any = None, degree: int = 1) -> DecayFit:
    """Decay rate ``theta`` of the complexity ``omega`` across layers by a polynomial fit.

    Args:
        omega: ``(layer,)`` complexities.
        depth: ``(layer,)`` layer positions (default ``0, 1, ...``: one unit per layer).
        degree: polynomial degree, ``< layer`` count.

    Returns:
        ``DecayFit(theta, coefficients (highest power first), depth (layer,),
        fitted (layer,))`` with ``theta = (p(depth[-1]) - p(depth[0])) /
        (depth[-1] - depth[0])``, the mean slope per unit of depth (a line's slope).

    Example:
        >>> round(decay_rate([4.0, 3.0, 2.0, 1.0]).theta, 6)
        -1.0
    """
    y = np.asarray(omega, dtype=np.float64)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"omega must be 1-D with at least 2 layers; got shape {y.shape}.")
    if not np.isfinite(y).all():
        raise ValueError("omega holds NaN or Inf.")
    x = np.arange(y.size, dtype=np.float64) if depth is None else np.asarray(depth, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"depth must have the shape of omega {y.shape}; got {x.shape}.")
    if not np.isfinite(x).all() or x[-1] == x[0]:
        raise ValueError("depth must be finite, with the last layer at another position than the first.")
    if int(degree) != degree or not 1 <= degree < y.size:
        raise ValueError(f"degree must be an integer in [1, {y.size - 1}] for {y.size} layers; got {degree!r}.")
    coefficients = np.polyfit(x, y, int(degree))
    theta = float((np.polyval(coefficients, x[-1]) - np.polyval(coefficients, x[0])) / (x[-1] - x[0]))
    return DecayFit(theta, coefficients, x, np.polyval(coefficients, x))


OMEGAS = ("count", "per_voxel")
"""What theta is fitted to: the paper's feature count, or the count per voxel."""


class BettiDecay(NamedTuple):
    """Betti-number decay of a network.

    Attributes:
        layers: layer names (the ``layer`` dim).
        thresholds: ``(threshold,)``.
        curves: ``(layer, dim, threshold)`` mean Betti numbers over samples
            (``dim`` = degrees 0..2; missing degrees of lower-dimensional maps are 0).
        omega: ``(layer,)`` topological complexity, the mean total Betti number
            (the paper's Omega).
        omega_per_voxel: ``(layer,)`` ``omega`` divided by ``voxels``.
        voxels: ``(layer,)`` values in one sample's feature map.
        theta: decay rate, fitted to the series named by ``omega_kind``
            (see module docstring).
        fit: the :class:`DecayFit` behind ``theta``.
        omega_kind: ``"count"`` or ``"per_voxel"``.
    """

    layers: tuple[str, ...]
    thresholds: np.ndarray
    curves: np.ndarray
    omega: np.ndarray
    omega_per_voxel: np.ndarray
    voxels: np.ndarray
    theta: float
    fit: DecayFit
    omega_kind: str = "count"

    def to_xarray(self):
        """``xarray.Dataset``: ``betti (layer, dim, threshold)``, ``omega``, ``omega_per_voxel``,
        ``voxels`` and ``omega_fit`` (layer)."""
        return xr.Dataset(
            {
                "betti": (("layer", "dim", "threshold"), self.curves),
                "omega": (("layer",), self.omega),
                "omega_per_voxel": (("layer",), self.omega_per_voxel),
                "voxels": (("layer",), self.voxels),
                "omega_fit": (("layer",), self.fit.fitted),
            },
            coords={"layer": list(self.layers), "dim": np.arange(self.curves.shape[1]), "threshold": self.thresholds},
            attrs={"theta": self.theta, "omega_kind": self.omega_kind},
        )


def _feature_maps(activations: Any, layers: Sequence[str] | None, perturbation: str) -> list[tuple[str, np.ndarray]]:
    if hasattr(activations, "data_vars"):  # an activation store: reshape with the stored shape
        names = layer_names(activations) if layers is None else list(layers)
        out = []
        for name in names:
            if name not in activations.data_vars:
                raise KeyError(f"layer {name!r} is not in the store; it holds {list(activations.data_vars)}.")
            var = activations[name]
            if "perturbation" in var.dims:
                var = var.sel(perturbation=perturbation)
            shape = tuple(int(s) for s in var.attrs.get("shape", ()))
            values = np.asarray(var.values)
            if var.attrs.get("pooling", "flatten") not in ("flatten", "none") or int(np.prod(shape)) != values.shape[1]:
                raise ValueError(
                    f"layer {name!r} was stored with pooling {var.attrs.get('pooling')!r}; Betti decay needs "
                    "the unpooled feature maps. Export it with pooling='flatten'."
                )
            out.append((name, values.reshape((values.shape[0],) + shape)))
        return out
    if isinstance(activations, Mapping):
        return mapping_layers(activations, layers, "feature_maps")
    raise TypeError(
        "feature_maps must be a mapping {layer: (sample, channel, height, width) array} or an "
        f"activation store; got {type(activations).__name__}."
    )


def betti_decay(
    feature_maps: Any,
    thresholds: Any = None,
    *,
    degree: int = 1,
    superlevel: bool = True,
    normalize: bool = True,
    layers: Sequence[str] | None = None,
    perturbation: str = "clean",
    depth: Any = None,
    omega: str = "count",
) -> BettiDecay:
    """Betti curves, Omega per layer and the decay rate theta of a network.

    Args:
        feature_maps: ``{layer: (sample, channel, height, width)}`` in depth
            order, or an activation store exported with ``pooling="flatten"``
            (the per-sample shape is read from the layer's attrs). Axis order
            does not matter: ``(height, width, channel)`` (Flax) gives the same
            cubical homology as ``(channel, height, width)`` (PyTorch).
        thresholds: ``(threshold,)``; default 19 values ``0.05 .. 0.95``.
        degree: polynomial degree of the fit behind theta.
        superlevel, normalize: see :func:`cubical_diagrams`.
        layers: layers to use, in depth order (default: all, in the order of the
            mapping or the store; pass it for a store whose variables are not in
            depth order).
        perturbation: which perturbation of a store to read.
        depth: ``(layer,)`` layer positions for the fit (default ``0, 1, ...``).
        omega: the series theta is fitted to: ``"count"`` (default, the
            paper's Omega) or ``"per_voxel"`` (normalised by the map's size).

    Returns:
        :class:`BettiDecay`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> maps = {"early": rng.random((4, 2, 8, 8)), "late": np.ones((4, 2, 8, 8))}
        >>> res = betti_decay(maps)
        >>> bool(res.omega[1] < res.omega[0]), res.theta < 0
        (True, True)
    """
    check_choice(omega, "omega", OMEGAS)
    thresholds = np.linspace(0.05, 0.95, 19) if thresholds is None else _check_thresholds(thresholds)
    pairs = _feature_maps(feature_maps, layers, perturbation)
    if len(pairs) < 2:
        raise ValueError(f"betti_decay needs at least 2 layers to fit a decay; got {len(pairs)}.")
    names, curves, counts, voxels = [], [], [], []
    for name, maps in pairs:
        if maps.ndim < 2:
            raise ValueError(f"feature_maps[{name!r}] must have shape (sample, ...); got {maps.shape}.")
        if maps.ndim - 1 > 3:
            raise ValueError(f"feature_maps[{name!r}] has {maps.ndim - 1} grid axes; at most 3 are supported.")
        c = betti_curves(maps, thresholds, superlevel=superlevel, normalize=normalize).mean(axis=0)
        full = np.zeros((3, thresholds.size))
        full[: c.shape[0]] = c
        names.append(name)
        curves.append(full)
        counts.append(float(full.sum(axis=0).mean()))
        voxels.append(int(np.prod(maps.shape[1:])))
    count_arr, voxel_arr = np.array(counts), np.array(voxels)
    per_voxel = count_arr / voxel_arr
    fit = decay_rate(count_arr if omega == "count" else per_voxel, depth, degree)
    return BettiDecay(
        tuple(names), thresholds, np.stack(curves), count_arr, per_voxel, voxel_arr, fit.theta, fit, omega
    )
