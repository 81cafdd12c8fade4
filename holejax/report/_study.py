"""What the report reads from a results Dataset and an activation store.

The report needs, per ``(perturbation, layer, metric)``: the H0 deaths and
merge tree (``deaths``, ``linkage``), the Sankey stages (``stage_threshold``,
``stage_labels``) and, for the heatmap and the blob graph, the activations the
results were computed from. :func:`read_axes` checks both Datasets once,
before anything is computed, and names what is missing and how to fix it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from holejax._checks import as_cloud, check_choice
from holejax.metrics import METRICS, batched_pairwise_distances
from holejax.metrics.registry import get_metric

__all__ = [
    "STAGES",
    "StudyAxes",
    "read_axes",
    "require_variables",
    "layer_cloud",
    "distance_matrices",
    "finite_cap",
    "metric_params",
    "parameter_value",
    "SUMMARY_QUANTITIES",
    "summary_values",
]

STAGES = ("labels", "first_merge", "best", "intermediate", "one")
_REQUIRED = {
    "deaths": ("perturbation", "layer", "metric", "edge"),
    "linkage": ("perturbation", "layer", "metric", "edge", "linkage_col"),
    "stage_threshold": ("perturbation", "layer", "metric", "stage"),
    "stage_labels": ("perturbation", "layer", "metric", "stage", "sample"),
}
# summary quantities, in display order, with their axis labels
SUMMARY_QUANTITIES = {
    "purity": "purity at the best threshold",
    "inverse_purity": "inverse purity",
    "best_n_clusters": "clusters at the best threshold",
    "best_n_outliers": "outliers at the best threshold",
    "n_components": "persistent components",
    "n_outliers": "outliers",
    "bottleneck": "bottleneck distance to clean",
    "wasserstein": "Wasserstein distance to clean",
    "ari": "adjusted Rand index",
    "nmi": "normalised mutual information",
}


class StudyAxes(NamedTuple):
    """The coordinates a report is drawn over.

    Attributes:
        perturbations, layers, metrics: names, in results order (user strings).
        samples: ``(sample,)`` sample coordinates of the results.
        labels: ``(sample,)`` int class ids (all 0 when the study has no labels).
        label_names: one display name per class id ``0..max(labels)``.
        has_labels: whether the study carried labels.
    """

    perturbations: tuple[str, ...]
    layers: tuple[str, ...]
    metrics: tuple[str, ...]
    samples: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    has_labels: bool


def _names(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in np.asarray(values).tolist())


def _subset(requested: Sequence[str] | None, available: tuple[str, ...], argument: str) -> tuple[str, ...]:
    if requested is None:
        return available
    if isinstance(requested, str):
        raise TypeError(f"{argument} must be a list of names; got the str {requested!r}. Wrap it: [{requested!r}].")
    chosen = tuple(str(r) for r in requested)
    if not chosen:
        raise ValueError(f"{argument} is empty; pass at least one of {list(available)} or None for all.")
    for name in chosen:
        check_choice(name, argument, available)
    return chosen


def require_variables(ds: xr.Dataset, required: dict, argument: str, producer: str) -> None:
    """Raise a ValueError naming ``argument`` unless ``ds`` holds every ``required`` variable with its dims.

    ``required`` maps variable names to dims tuples; ``producer`` names the
    function whose Dataset is expected (``"hj.analyze"``).
    """
    for name, dims in required.items():
        if name not in ds.data_vars:
            raise ValueError(
                f"{argument} has no variable {name!r}; expected a Dataset from {producer} "
                f"(variables: {sorted(map(str, ds.data_vars))})."
            )
        if tuple(ds[name].dims) != dims:
            raise ValueError(
                f"{argument}[{name!r}] has dims {tuple(ds[name].dims)}; expected {dims}. "
                f"Pass the Dataset {producer} returned, without transposing it."
            )


def read_axes(
    study: xr.Dataset,
    acts: xr.Dataset,
    *,
    layers: Sequence[str] | None = None,
    perturbations: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> StudyAxes:
    """Check a results Dataset against the activation store and read its axes.

    Args:
        study: results Dataset from ``hj.analyze`` (or ``hj.open_results``).
        acts: the activation store the results were computed from.
        layers, perturbations, metrics: subsets to report (default: all).

    Returns:
        :class:`StudyAxes`.

    Raises:
        TypeError: ``study``/``acts`` are not xarray Datasets.
        ValueError: a variable or coordinate is missing, has other dims, or
            the two Datasets disagree on layers, perturbations or samples.
    """
    for arg, ds in (("study", study), ("acts", acts)):
        if not isinstance(ds, xr.Dataset):
            raise TypeError(
                f"{arg} must be an xarray.Dataset; got {type(ds).__name__}. "
                f"Open it with hj.{'open_results' if arg == 'study' else 'open_activations'}(path)."
            )
    require_variables(study, _REQUIRED, "study", "hj.analyze")
    stages = _names(study["stage"].values)
    if stages != STAGES:
        raise ValueError(f"study stage coordinate is {list(stages)}; expected {list(STAGES)}.")
    all_perts = _names(study["perturbation"].values)
    all_layers = _names(study["layer"].values)
    all_metrics = _names(study["metric"].values)
    chosen_layers = _subset(layers, all_layers, "layers")
    chosen_perts = _subset(perturbations, all_perts, "perturbations")
    chosen_metrics = _subset(metrics, all_metrics, "metrics")

    for layer in chosen_layers:
        if layer not in acts.data_vars:
            raise ValueError(
                f"acts has no layer {layer!r} that the study reports (acts layers: "
                f"{sorted(map(str, acts.data_vars))}). Pass the activation store the results were "
                "computed from."
            )
    act_perts = set(_names(acts["perturbation"].values)) if "perturbation" in acts.coords else set()
    missing = [p for p in chosen_perts if p not in act_perts]
    if missing:
        raise ValueError(
            f"acts has no perturbation(s) {missing} that the study reports (acts has "
            f"{sorted(act_perts)}). Pass the activation store the results were computed from."
        )
    samples = np.asarray(study["sample"].values)
    act_samples = np.asarray(acts["sample"].values) if "sample" in acts.coords else np.array([])
    if not np.isin(samples, act_samples).all():
        raise ValueError(
            f"the study has {samples.size} samples, not all of them in acts (which has "
            f"{act_samples.size}). Pass the activation store the results were computed from."
        )
    if samples.size < 2:
        raise ValueError(f"the study has {samples.size} sample(s); a report needs at least 2.")

    has_labels = "label" in study.coords
    if has_labels:
        labels = np.asarray(study["label"].values).astype(np.int64)
    else:
        labels = np.zeros(samples.size, np.int64)
    if labels.min() < 0:
        raise ValueError(
            f"study labels hold negative class ids (min {labels.min()}); expected 0..C-1 with names "
            "in attrs['label_names']."
        )
    names = study.attrs.get("label_names") or acts.attrs.get("label_names") or []
    names = [str(v) for v in names]
    n_classes = int(labels.max()) + 1
    label_names = tuple(names[c] if c < len(names) else str(c) for c in range(n_classes))
    if not has_labels:
        label_names = ("(no labels)",)
    return StudyAxes(chosen_perts, chosen_layers, chosen_metrics, samples, labels, label_names, has_labels)


def layer_cloud(acts: xr.Dataset, layer: str, perturbation: str, samples: np.ndarray) -> np.ndarray:
    """The ``(sample, unit)`` activations of one layer under one perturbation.

    Example:
        >>> import numpy as np, xarray as xr
        >>> acts = xr.Dataset({"fc": (("perturbation", "sample", "fc:unit"), np.ones((1, 3, 2)))},
        ...                   coords={"perturbation": ["clean"], "sample": [0, 1, 2]})
        >>> layer_cloud(acts, "fc", "clean", np.array([0, 2])).shape
        (2, 2)
    """
    var = acts[layer].sel(perturbation=perturbation)
    if not np.array_equal(np.asarray(acts["sample"].values), samples):
        var = var.sel(sample=samples)
    return as_cloud(np.asarray(var.values), "acts", min_points=2, layer=layer, perturbation=perturbation)


def distance_matrices(clouds: np.ndarray, metric: str, params: dict[str, Any] | None = None) -> np.ndarray:
    """Distance matrices of clouds of one shape, recomputed for the heatmap.

    Args:
        clouds: ``(perturbation, sample, unit)`` activations of one layer.
        metric: a name from ``hj.METRICS``.
        params: the metric's parameters as the study used them.

    Returns:
        ``(perturbation, sample, sample)`` float32 numpy array.

    Example:
        >>> X = np.array([[[0.0, 0.0], [3.0, 4.0]]], np.float32)
        >>> distance_matrices(X, "euclidean")[0].round(3).tolist()
        [[0.0, 5.0], [5.0, 0.0]]
    """
    # the metric's data warnings (zero vectors, disconnected kNN graphs) were raised when the
    # study was analysed; the picture shows their effect (e.g. black = infinite distance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        D = batched_pairwise_distances(clouds, metric, **(params or {}))
    return np.asarray(D, dtype=np.float32)


_NONFINITE = {"inf": np.inf, "-inf": -np.inf, "nan": np.nan}


def parameter_value(value: Any, default: Any = None) -> Any:
    """A metric parameter as ``hj.analyze`` took it, from its form in the results' attrs.

    Results written to Zarr hold their attrs as JSON (``hj.write_results``):
    arrays become nested lists and non-finite floats the strings ``"inf"``,
    ``"-inf"``, ``"nan"``. Numeric lists come back as float arrays and, for
    parameters whose ``default`` is not a string, those strings as floats;
    everything else is returned as it is.

    Example:
        >>> parameter_value([[2.0, 0.0], [0.0, 1.0]]).shape, parameter_value("inf", 1.0), parameter_value("inf", "inf")
        ((2, 2), inf, 'inf')
    """
    if isinstance(value, str):
        return value if isinstance(default, str) else _NONFINITE.get(value, value)
    if isinstance(value, (list, tuple)):
        arr = np.asarray([parameter_value(v, default) for v in value])
        return arr if arr.dtype.kind in "biuf" else list(value)
    return value


def metric_params(study: xr.Dataset, metric: str) -> dict[str, Any]:
    """The parameters the study used for ``metric`` (attrs ``metric_params``, read by :func:`parameter_value`), or ``{}``."""
    table = study.attrs.get("metric_params") or {}
    params = table.get(metric, {}) if isinstance(table, dict) else {}
    if not isinstance(params, dict):
        return {}
    defaults = get_metric(metric).defaults if metric in METRICS else {}
    return {k: parameter_value(v, defaults.get(k)) for k, v in params.items()}


def finite_cap(values: np.ndarray, factor: float = 1.1) -> float:
    """Where to draw infinite values: ``factor`` x the largest finite one (1.0 if none).

    Example:
        >>> finite_cap(np.array([0.5, 2.0, np.inf]))
        2.2
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if finite.size else 0.0
    return round(top * factor, 12) if top > 0 else 1.0


def summary_values(study: xr.Dataset, axes: StudyAxes) -> dict[str, np.ndarray]:
    """Per-layer quantities present in the study, each ``(perturbation, layer, metric)`` float64.

    Missing quantities are left out; NaN marks values the study did not compute.
    """
    out = {}
    sel = dict(perturbation=list(axes.perturbations), layer=list(axes.layers), metric=list(axes.metrics))
    for name in SUMMARY_QUANTITIES:
        if name in study.data_vars and tuple(study[name].dims) == ("perturbation", "layer", "metric"):
            out[name] = np.asarray(
                study[name].sel(sel).transpose("perturbation", "layer", "metric").values, dtype=np.float64
            )
    return out
