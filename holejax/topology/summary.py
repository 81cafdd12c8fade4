"""One results Dataset of the topological measures of a model, for the report and the results store.

:func:`topology_summary` runs, per ``(perturbation, layer)`` of an
activation store, the activation diagrams in degree 0 and 1 with their
summaries (total persistence, persistent entropy), landscapes and landscape
norms; Betti-number decay over the layers that hold feature maps; and, when
the weights are given, neural persistence of every weight matrix with the
bounds of Girrbach et al. The result is an ``xarray.Dataset`` that
``hj.write_results`` stores and ``hj.open_results`` reads back, and that
``hj.write_report(study, acts, path, topology=ds)`` draws.

:func:`topology_summary` reads top to bottom as its steps:

1. :func:`_check_request` checks every argument against the store;
2. :func:`_subsamples` draws the samples of the diagrams and of the Betti curves;
3. :func:`_layer_diagrams` computes the H0 and H1 diagrams of every
   ``(perturbation, layer)`` cloud;
4. :func:`_diagram_measures` turns them into summaries and landscapes, one
   batched call per degree;
5. :func:`_feature_map_layers` and :func:`_betti_measures` fit the
   Betti-number decay over the feature-map layers of each perturbation;
6. :func:`_neural_persistence_measures` reads the weights, when given;
7. :func:`_summary_dataset` assembles the ``xarray.Dataset``.

Nothing here crashes on a layer a measure does not apply to: such values are
NaN and the reason is recorded in ``attrs["skipped"]`` (``{what: reason}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import xarray as xr

from holejax._checks import check_choice, where
from holejax._executables import stored_jit
from holejax.store import as_activation_store, layer_names
from holejax.store.fingerprint import check_same_model
from holejax.topology.activation_landscapes import activation_diagrams
from holejax.topology.betti_decay import betti_curves, betti_decay
from holejax.topology.diagrams import as_diagram, persistent_entropy, total_persistence
from holejax.topology.landscapes import diagram_landscape_norm, landscape_grid, persistence_landscapes
from holejax.topology.neural_persistence import neural_persistence, weight_matrices

__all__ = ["TOPOLOGY_KIND", "topology_summary"]

# attrs["content"] of a topology summary (results stores also hold hj.analyze output)
TOPOLOGY_KIND = "topology"

# dims of the data variables of a topology summary
_DIMS = {
    "total_persistence": ("perturbation", "layer", "degree"),
    "persistent_entropy": ("perturbation", "layer", "degree"),
    "n_bars": ("perturbation", "layer", "degree"),
    "landscape_norm": ("perturbation", "layer", "degree"),
    "landscape": ("perturbation", "layer", "degree", "k", "grid"),
    "betti_omega": ("perturbation", "layer"),
    "betti_omega_fit": ("perturbation", "layer"),
    "betti_omega_per_voxel": ("perturbation", "layer"),
    "betti_curve": ("perturbation", "layer", "betti_dim", "threshold"),
    "betti_theta": ("perturbation",),
}

# data variable of the Dataset -> field of LayerPersistence
_NP_FIELDS = {"np_girrbach": "np", "np_normalized": "normalized", "np_lower": "lower",
              "np_upper": "upper", "np_upper_tight": "upper_tight", "weight_variance": "variance"}


class _Request(NamedTuple):
    """What :func:`topology_summary` computes, checked against the store.

    Attributes:
        perturbations, layers: names, in the order asked for.
        max_samples, betti_samples: subsample sizes of the diagrams and of the Betti curves.
        num_landscapes, resolution: landscape functions per diagram, grid points on ``[0, 1]``.
        thresholds: ``(threshold,)`` float64 of the Betti curves.
        seed: seed of both subsamples.
    """

    perturbations: list[str]
    layers: list[str]
    max_samples: int
    num_landscapes: int
    resolution: int
    betti_samples: int
    thresholds: np.ndarray
    seed: int


def _as_store(acts: Any) -> tuple[xr.Dataset, str | None]:
    """(xarray.Dataset, source path or None) from a store, its path, or a {layer: array} mapping."""
    if isinstance(acts, Mapping) and not isinstance(acts, xr.Dataset):
        if not acts:
            raise ValueError("acts is an empty mapping; pass {layer: (sample, ...) array} with at least one layer.")
        data, n = {}, None
        for name, value in acts.items():
            arr = np.asarray(value)
            if arr.ndim < 2:
                raise ValueError(f"acts[{name!r}] has shape {arr.shape}; expected (sample, unit) or (sample, ...).")
            if n is not None and arr.shape[0] != n:
                raise ValueError(f"acts[{name!r}] holds {arr.shape[0]} samples, other layers {n}; pass the same samples.")
            n = arr.shape[0]
            data[str(name)] = (("perturbation", "sample", f"{name}:unit"), arr.reshape(1, n, -1),
                               {"shape": list(arr.shape[1:]), "pooling": "flatten"})
        return xr.Dataset(data, coords={"perturbation": ["clean"], "sample": np.arange(n)}), None
    return as_activation_store(acts, accepted=", or a mapping {layer: (sample, ...) array}")


def _names(requested: Sequence[str] | None, available: list[str], argument: str) -> list[str]:
    if requested is None:
        return list(available)
    if isinstance(requested, str):
        raise TypeError(f"{argument} must be a list of names; got the str {requested!r}. Wrap it: [{requested!r}].")
    chosen = [str(r) for r in requested]
    if not chosen:
        raise ValueError(f"{argument} is empty; pass at least one of {available} or None for all.")
    for name in chosen:
        check_choice(name, argument, available)
    return chosen


def _count(value: Any, argument: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _grid_shape(var: Any) -> tuple[int, ...] | None:
    """The per-sample grid of a feature-map layer (2 or 3 axes), or None."""
    shape = tuple(int(s) for s in var.attrs.get("shape", ()))
    if var.attrs.get("pooling", "flatten") not in ("flatten", "none"):
        return None
    if len(shape) in (2, 3) and int(np.prod(shape)) == var.shape[-1]:
        return shape
    return None


def _feature_map_reason(var: Any) -> str:
    shape = [int(s) for s in var.attrs.get("shape", ())]
    pooling = var.attrs.get("pooling", "flatten")
    if pooling not in ("flatten", "none"):
        return f"stored with pooling {pooling!r}; Betti decay needs unpooled feature maps (pooling='flatten')"
    return f"not a feature map (per-sample shape {shape}); Betti decay needs (channel, height, width) grids"


def _bucket(n: int) -> int:
    """The next power of two >= n (>= 8): padded shapes, so few compilations serve many models."""
    return max(8, 1 << (max(1, int(n)) - 1).bit_length())


@stored_jit
def _summaries(d: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Total persistence and persistent entropy over a padded ``(batch, k, 2)`` stack."""
    return total_persistence(d), persistent_entropy(d)


def _diagram_summaries(dgms: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Total persistence and persistent entropy ``(batch,)`` of many diagrams in one padded call."""
    k = _bucket(max(len(d) for d in dgms))
    batch = np.zeros((_bucket(len(dgms)), k, 2))  # [0, 0] rows add nothing to either summary
    for i, d in enumerate(dgms):
        batch[i, : len(d)] = d
    tp, pe = _summaries(batch)
    return np.asarray(tp, np.float64)[: len(dgms)], np.asarray(pe, np.float64)[: len(dgms)]


def _check_request(
    store: xr.Dataset,
    weights: Any,
    layers: Sequence[str] | None,
    perturbations: Sequence[str] | None,
    max_samples: Any,
    num_landscapes: Any,
    resolution: Any,
    betti_samples: Any,
    thresholds: Any,
    seed: Any,
    check_fingerprint: bool,
) -> _Request:
    """Every name and option of :func:`topology_summary` checked against the store, before any work."""
    all_layers = layer_names(store)
    if not all_layers:
        raise ValueError("acts holds no layer variables (perturbation, sample, unit); export some layers first.")
    layer_list = _names(layers, all_layers, "layers")
    pert_list = _names(perturbations, [str(v) for v in store["perturbation"].values], "perturbations")
    max_samples = _count(max_samples, "max_samples", 4)
    num_landscapes = _count(num_landscapes, "num_landscapes", 1)
    resolution = _count(resolution, "resolution", 2)
    betti_samples = _count(betti_samples, "betti_samples", 1)
    seed = _count(seed, "seed", 0)
    if thresholds is None:
        thresholds = np.linspace(0.05, 0.95, 19)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.size == 0 or not np.isfinite(thresholds).all():
        raise ValueError(f"thresholds must be a non-empty finite 1-D array (threshold,); got shape {thresholds.shape}.")
    if weights is not None:
        weight_matrices(weights)  # rejects bad weights before any work
        if check_fingerprint:
            check_same_model(store.attrs.get("fingerprint"), weights)
    n = int(store.sizes["sample"])
    if n < 4:
        raise ValueError(f"acts holds {n} sample(s); the diagrams need at least 4.")
    return _Request(pert_list, layer_list, max_samples, num_landscapes, resolution, betti_samples, thresholds, seed)


def _subsamples(n: int, request: _Request) -> tuple[np.ndarray, np.ndarray]:
    """Sorted sample indices of the diagrams and of the Betti curves, the same in every layer and perturbation."""
    rng = np.random.default_rng(request.seed)
    keep = np.arange(n) if n <= request.max_samples else np.sort(rng.choice(n, request.max_samples, replace=False))
    keep_betti = (np.arange(n) if n <= request.betti_samples
                  else np.sort(rng.choice(n, request.betti_samples, replace=False)))
    return keep, keep_betti


def _layer_diagrams(
    store: xr.Dataset, request: _Request, keep: np.ndarray, n_threads: int
) -> tuple[list[tuple[tuple[int, int], tuple[np.ndarray, np.ndarray]]], dict[str, str]]:
    """The H0 and H1 diagrams ``[((perturbation index, layer index), (h0, h1)), ...]`` and the clouds skipped.

    A cloud without diagrams (NaN activations, a constant layer) is left out,
    its reason recorded under ``"diagrams (layer ..., perturbation ...)"``.
    """
    dgms, skipped = [], {}
    for pi, pert in enumerate(request.perturbations):
        for li, layer in enumerate(request.layers):
            X = np.asarray(store[layer].sel(perturbation=pert).values)[keep]
            X = X.reshape(X.shape[0], -1)
            try:
                h0, h1 = activation_diagrams(X, 1, layer=layer, n_threads=n_threads)
            except ValueError as err:  # NaN activations, a constant layer
                skipped[f"diagrams{where(layer, pert)}"] = str(err)
                continue
            dgms.append(((pi, li), (h0, h1)))
    return dgms, skipped


def _diagram_measures(
    dgms: list[tuple[tuple[int, int], tuple[np.ndarray, np.ndarray]]], request: _Request, grid: np.ndarray
) -> dict[str, np.ndarray]:
    """Summaries and landscapes of every diagram, NaN (0 bars) where a cloud has none.

    Returns ``{name: array}``: ``total_persistence``, ``persistent_entropy``,
    ``n_bars``, ``landscape_norm`` ``(P, L, degree)`` and ``landscape``
    ``(P, L, degree, k, grid)``; one batched call per degree covers all clouds.
    """
    P, L, K = len(request.perturbations), len(request.layers), request.num_landscapes
    out = {
        "total_persistence": np.full((P, L, 2), np.nan),
        "persistent_entropy": np.full((P, L, 2), np.nan),
        "n_bars": np.zeros((P, L, 2), dtype=np.int64),
        "landscape_norm": np.full((P, L, 2), np.nan),
        "landscape": np.full((P, L, 2, K, grid.size), np.nan),
    }
    if not dgms:
        return out
    for degree in (0, 1):
        batch = [as_diagram(d[degree], f"H{degree} diagram") for _, d in dgms]
        curves = np.asarray(persistence_landscapes(batch, grid, K), dtype=np.float64)
        norms = [diagram_landscape_norm(d) for d in batch]
        total, entropy = _diagram_summaries(batch)
        for j, ((pi, li), _) in enumerate(dgms):
            cell = (pi, li, degree)
            out["landscape"][cell], out["landscape_norm"][cell] = curves[j], norms[j]
            out["total_persistence"][cell], out["persistent_entropy"][cell] = total[j], entropy[j]
            out["n_bars"][cell] = int(np.isfinite(batch[j][:, 1]).sum())
    return out


def _feature_map_layers(store: xr.Dataset, layers: list[str]) -> tuple[list[str], dict[str, str]]:
    """The layers stored as unpooled feature maps (2 or 3 grid axes), and why the others are skipped."""
    grid_layers = [layer for layer in layers if _grid_shape(store[layer]) is not None]
    skipped = {}
    if not grid_layers:
        pooled = [n for n in layers if store[n].attrs.get("pooling", "flatten") not in ("flatten", "none")]
        skipped["betti_decay"] = "no layer holds feature maps (2 or 3 grid axes stored with pooling='flatten')" + (
            f"; layers {pooled} were stored pooled: export them with pooling='flatten'" if pooled else "")
    else:
        for layer in layers:
            if layer not in grid_layers:
                skipped[f"betti_decay (layer {layer!r})"] = _feature_map_reason(store[layer])
    if len(grid_layers) == 1:
        skipped["betti_theta"] = f"only one feature-map layer ({grid_layers[0]!r}); the decay fit needs 2"
    return grid_layers, skipped


def _betti_measures(
    store: xr.Dataset, request: _Request, grid_layers: list[str], keep: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Betti-number decay of each perturbation over ``grid_layers``, NaN elsewhere; and the clouds skipped.

    Returns ``{name: array}``: ``betti_omega``, ``betti_omega_fit``,
    ``betti_omega_per_voxel`` ``(P, L)``, ``betti_curve`` ``(P, L, betti_dim, threshold)``
    and ``betti_theta`` ``(P,)``. With a single usable feature-map layer
    there is no fit: its curves and ``Omega`` are still given.
    """
    layer_list, thresholds = request.layers, request.thresholds
    P, L = len(request.perturbations), len(layer_list)
    out = {
        "betti_omega": np.full((P, L), np.nan),
        "betti_omega_fit": np.full((P, L), np.nan),
        "betti_omega_per_voxel": np.full((P, L), np.nan),
        "betti_curve": np.full((P, L, 3, thresholds.size), np.nan),
        "betti_theta": np.full(P, np.nan),
    }
    omega, omega_fit, per_voxel, betti = (out[k] for k in ("betti_omega", "betti_omega_fit",
                                                             "betti_omega_per_voxel", "betti_curve"))
    skipped = {}
    depth = [layer_list.index(name) for name in grid_layers]
    for pi, pert in enumerate(request.perturbations):
        maps = {}
        for name in grid_layers:
            values = np.asarray(store[name].sel(perturbation=pert).values)[keep]
            maps[name] = values.reshape((values.shape[0],) + _grid_shape(store[name]))
        bad = [name for name, m in maps.items() if not np.isfinite(m).all()]
        for name in bad:
            skipped[f"betti_decay{where(name, pert)}"] = "activations hold NaN or Inf"
            maps.pop(name)
        if len(maps) >= 2:
            res = betti_decay(maps, thresholds, depth=[depth[grid_layers.index(k)] for k in maps])
            out["betti_theta"][pi] = res.theta
            for j, name in enumerate(res.layers):
                li = layer_list.index(name)
                omega[pi, li], omega_fit[pi, li] = res.omega[j], res.fit.fitted[j]
                per_voxel[pi, li] = res.omega_per_voxel[j]
                betti[pi, li] = res.curves[j]
        elif maps:
            name, m = next(iter(maps.items()))
            c = betti_curves(m, thresholds).mean(axis=0)
            li = layer_list.index(name)
            betti[pi, li] = 0.0
            betti[pi, li, : c.shape[0]] = c
            omega[pi, li] = float(betti[pi, li].sum(axis=0).mean())
            per_voxel[pi, li] = omega[pi, li] / np.prod(m.shape[1:])
    return out, skipped


def _neural_persistence_measures(weights: Any, p: float) -> tuple[dict[str, np.ndarray], list[str], dict[str, Any]]:
    """Neural persistence of every weight matrix: ``{name: (weight,) array}``, the matrix names, the network attrs."""
    net = neural_persistence(weights, p)
    data = {var: np.array([getattr(lay, field) for lay in net.layers], dtype=np.float64)
            for var, field in _NP_FIELDS.items()}
    attrs = {"np_mean_normalized": net.mean_normalized, "np_scale": net.scale, "np_p": net.p,
             "np_variance": net.variance}
    return data, [lay.name for lay in net.layers], attrs


def _summary_dataset(
    store: xr.Dataset,
    source: str | None,
    request: _Request,
    grid: np.ndarray,
    samples: tuple[np.ndarray, np.ndarray],
    grid_layers: list[str],
    measures: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    network: tuple[dict[str, np.ndarray], list[str], dict[str, Any]] | None,
    skipped: dict[str, str],
) -> xr.Dataset:
    """The Dataset of :func:`topology_summary` (its docstring lists the variables)."""
    keep, keep_betti = samples
    data: dict[str, Any] = {k: (_DIMS[k], v) for part in measures for k, v in part.items()}
    coords: dict[str, Any] = {
        "perturbation": request.perturbations, "layer": request.layers, "degree": [0, 1],
        "k": np.arange(1, request.num_landscapes + 1), "grid": grid, "threshold": request.thresholds,
        "betti_dim": [0, 1, 2],
    }
    attrs: dict[str, Any] = {
        "content": TOPOLOGY_KIND, "source": source or "", "max_samples": request.max_samples,
        "samples_used": int(keep.size), "betti_samples": int(keep_betti.size), "seed": request.seed,
        "num_landscapes": request.num_landscapes, "betti_layers": grid_layers,
        "label_names": list(store.attrs.get("label_names") or []),
        "framework": store.attrs.get("framework", ""), "model_class": store.attrs.get("model_class", ""),
        "activations_fingerprint": store.attrs.get("fingerprint", {}),
    }
    if network is not None:
        np_vars, weight_names, np_attrs = network
        data.update({k: (("weight",), v) for k, v in np_vars.items()})
        coords["weight"] = weight_names
        attrs.update(np_attrs)
    attrs["skipped"] = skipped
    return xr.Dataset(data, coords=coords, attrs=attrs)


def topology_summary(
    acts: Any,
    *,
    weights: Any = None,
    layers: Sequence[str] | None = None,
    perturbations: Sequence[str] | None = None,
    max_samples: int = 300,
    num_landscapes: int = 5,
    resolution: int = 101,
    betti_samples: int = 50,
    thresholds: Any = None,
    p: float = 2.0,
    seed: int = 0,
    n_threads: int = 1,
    client: Any = None,
    check_fingerprint: bool = True,
) -> Any:
    """Activation diagrams, landscapes, Betti decay and neural persistence of a model, as one Dataset.

    Per ``(perturbation, layer)``: the Vietoris-Rips diagrams in degree 0 and
    1 of the normalised activations (:func:`~holejax.topology.activation_diagrams`),
    their total persistence and persistent entropy (finite bars), the first
    ``num_landscapes`` landscape functions on ``[0, 1]`` and the landscape norm.
    Per perturbation, Betti-number decay (:func:`~holejax.topology.betti_decay`)
    over the layers stored as unpooled feature maps (2 or 3 grid axes); other
    layers get NaN. With ``weights``, neural persistence of every 2-D weight
    matrix (:func:`~holejax.topology.neural_persistence`).

    Args:
        acts: activation store (``hj.open_activations`` / ``hj.export_activations``),
            its path, or ``{layer: (sample, ...) array}`` (one perturbation, ``"clean"``).
        weights: optional parameter mapping: a PyTorch ``state_dict()`` or a Flax
            parameter tree (never imported here; arrays are read with ``np.asarray``).
        layers, perturbations: subsets, in order (default: all, in store order).
        max_samples: the diagrams and landscapes use one random subsample of at
            most this many samples, the same in every layer and perturbation
            (the H1 computation grows quickly with the sample count).
        num_landscapes: landscape functions per diagram (the ``k`` dim).
        resolution: grid points of the landscapes on ``[0, 1]`` (the ``grid`` dim).
        betti_samples: feature maps per layer in the Betti curves (a random
            subsample; ``Omega`` is a mean over samples).
        thresholds: ``(threshold,)`` of the Betti curves (default 19 values 0.05..0.95).
        p: neural-persistence exponent.
        seed: seed of both subsamples.
        n_threads: giotto-ph threads.
        client: a ``distributed.Client``: one task per perturbation on its Dask
            cluster, each reading its own chunks of ``acts`` (a store path or fsspec
            URL the workers can open); the result is the same Dataset
            (see :mod:`holejax.distributed`).
        check_fingerprint: refuse ``weights`` of another model than the one
            whose activations ``acts`` holds (their digest differs from the
            store's fingerprint); False skips the check.

    Returns:
        ``xarray.Dataset`` with coords ``perturbation``, ``layer``, ``degree``
        (0, 1), ``k``, ``grid``, ``threshold``, ``betti_dim`` (0, 1, 2) and
        ``weight`` (matrix names; only with ``weights``), and:

        - ``total_persistence``, ``persistent_entropy``, ``n_bars``,
          ``landscape_norm`` ``(perturbation, layer, degree)``;
        - ``landscape`` ``(perturbation, layer, degree, k, grid)``;
        - ``betti_omega``, ``betti_omega_fit``, ``betti_omega_per_voxel``
          ``(perturbation, layer)``,
          ``betti_curve`` ``(perturbation, layer, betti_dim, threshold)``,
          ``betti_theta`` ``(perturbation)``;
        - with weights: ``np_girrbach`` (``NP_p`` of Girrbach et al.,
          Definition 2.4, :attr:`LayerPersistence.np`), ``np_normalized``,
          ``np_lower``, ``np_upper`` (the paper's ``U``), ``np_upper_tight``
          and ``weight_variance`` (of the scaled weights) ``(weight)``.

        attrs: ``content="topology"``, ``source`` (the store path, if known),
        the parameters, ``samples_used``, ``betti_layers`` (the layers of the
        decay fit), ``np_mean_normalized`` / ``np_scale`` / ``np_p`` with
        weights, and ``skipped`` ``{what: reason}`` for every value left NaN.

    Raises:
        ValueError / TypeError: bad arguments, unknown layer or perturbation
            names, weights without 2-D matrices, before any work.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> t = rng.uniform(0, 2 * np.pi, 40)
        >>> acts = {"circle": np.c_[np.cos(t), np.sin(t)], "blob": rng.normal(size=(40, 2))}
        >>> ds = topology_summary(acts)
        >>> ds.landscape_norm.sel(degree=1).values.round(3).tolist()
        [[0.128, 0.003]]
        >>> sorted(ds.attrs["skipped"])
        ['betti_decay', 'neural_persistence']
    """
    if client is not None:  # every other argument goes to the cluster's tasks as given
        options = {k: v for k, v in locals().items() if k not in ("client", "check_fingerprint")}
        # imported here: holejax.distributed imports this module for its tasks (an import cycle)
        from holejax.distributed import topology_summary_on_cluster

        return topology_summary_on_cluster(client, **options)

    store, source = _as_store(acts)
    request = _check_request(store, weights, layers, perturbations, max_samples, num_landscapes, resolution,
                             betti_samples, thresholds, seed, check_fingerprint)
    keep, keep_betti = _subsamples(int(store.sizes["sample"]), request)
    grid = landscape_grid(0.0, 1.0, request.resolution)

    dgms, skipped = _layer_diagrams(store, request, keep, n_threads)
    diagram_vars = _diagram_measures(dgms, request, grid)

    grid_layers, not_maps = _feature_map_layers(store, request.layers)
    betti_vars, bad_maps = _betti_measures(store, request, grid_layers, keep_betti)
    skipped.update(not_maps)
    skipped.update(bad_maps)

    network = None
    if weights is None:
        skipped["neural_persistence"] = "no weights were given (pass weights=model.state_dict() or Flax params)"
    else:
        network = _neural_persistence_measures(weights, p)

    return _summary_dataset(store, source, request, grid, (keep, keep_betti), grid_layers,
                            (diagram_vars, betti_vars), network, skipped)
