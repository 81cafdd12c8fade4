"""``analyze``: H0 of every (perturbation, layer, metric) cloud of an activation store, scored and compared.

:func:`analyze` reads top to bottom as its steps:

1. :func:`check_request` checks every argument against the store;
2. :func:`layer_clouds` reads the clouds, grouped by width;
3. :func:`merge_trees` computes their H0 (:func:`holejax.h0_from_points`,
   one cloud and metric at a time, on one host thread per core): clouds of
   one metric whose widths pad to one width share compiled programs; the
   geodesic metric's kNN-graph MST gives the exact geodesic H0 without
   all-pairs shortest paths;
4. :func:`stages_and_scores` scores every threshold of every cloud against
   the labels in one :func:`~holejax.analysis.merge_scores` call, then picks
   each cloud's Sankey stages and reads the headline scores there;
5. :func:`distances_to_clean` compares every perturbed diagram with its clean
   twin (:func:`holejax.topology.h0_diagram_distances`);
6. :func:`results_dataset` assembles the ``xarray.Dataset``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from holejax import __version__
from holejax._checks import CloudError, as_labels, check_choice, close_matches, describe, first_nonfinite_row
from holejax.analysis.scores import MergeScores, compile_merge_scores, merge_scores, normalized_mutual_info
from holejax.analysis.stages import (
    CRITERIA,
    STAGES,
    TIE_RTOL,
    check_clusters_per_class,
    check_min_cluster_size,
    choose_thresholds,
    cluster_labels,
    group_small_clusters,
    max_clusters_for,
    persistent_components,
    scoring_min_size,
)
from holejax.filtration import H0Result, h0_from_points
from holejax.filtration.dense import parallel_map_programs
from holejax.metrics import METRICS
from holejax.metrics.padding import unit_bucket
from holejax.metrics.pairwise import check_float32_range, device_dtype
from holejax.store import as_activation_store, layer_names, unit_dim
from holejax.topology.diagrams import compile_h0_diagram_distances, h0_diagram_distances

__all__ = [
    "Request",
    "analyze",
    "check_request",
    "distances_to_clean",
    "layer_clouds",
    "later_programs",
    "merge_trees",
    "results_dataset",
    "stages_and_scores",
]

# seconds spent in each phase by the last analyze() call (read by benchmarks/bench_study.py)
last_timings: dict[str, float] = {}

# the per-cloud quantities of the results, (perturbation, layer, metric) float64
_SCALARS = ("purity", "inverse_purity", "ari", "nmi", "best_threshold", "persistence_threshold")
_COUNTS = ("best_n_clusters", "best_n_outliers", "n_components", "n_outliers")


class Request(NamedTuple):
    """What :func:`analyze` computes, checked against the store.

    Attributes:
        perturbations, layers, metrics: names, ``clean`` first when present.
        params: ``{metric: {param: value}}`` as given.
        labels: ``(sample,)`` int classes, or None.
        criterion: the stage rule (``"gap"`` without labels).
        min_cluster_size: clusters smaller than this are outliers.
        clusters_per_class: bound of the best threshold's clusters per class (None: none).
        max_clusters: that bound in clusters (None without labels or bound).
    """

    perturbations: list[str]
    layers: list[str]
    metrics: list[str]
    params: dict[str, dict]
    labels: np.ndarray | None
    criterion: str
    min_cluster_size: int
    clusters_per_class: float | None
    max_clusters: int | None


def _names(value: Any, argument: str, available: Sequence[str], what: str) -> list[str]:
    if value is None:
        return list(available)
    if isinstance(value, str) or not isinstance(value, Sequence):
        value = [value]
    out = []
    for item in value:
        name = getattr(item, "name", item)  # Perturbation objects
        if not isinstance(name, str):
            raise TypeError(f"{argument} must hold {what} names (str); got {type(item).__name__}.")
        if name not in available:
            hint = close_matches(name, available)
            did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(
                f"{argument}: {what} {name!r} is not in the store; available: {list(available)}.{did_you_mean}"
            )
        if name in out:
            raise ValueError(f"{argument}: {what} {name!r} is listed twice.")
        out.append(name)
    if not out:
        raise ValueError(f"{argument} is empty; pass at least one {what} or None for all.")
    return out


def _metric_params(metrics: list[str], metric_params: Any) -> dict[str, dict]:
    if metric_params is None:
        return {m: {} for m in metrics}
    if not isinstance(metric_params, Mapping):
        raise TypeError(
            "metric_params must map metric names to parameter dicts, e.g. "
            f"{{'geodesic': {{'k': 15}}}}; got {type(metric_params).__name__}."
        )
    for m in metric_params:
        if m not in metrics:
            raise ValueError(
                f"metric_params has an entry for {m!r}, which is not among metrics={metrics}; "
                "add it to metrics or remove the entry."
            )
        if not isinstance(metric_params[m], Mapping):
            raise TypeError(f"metric_params[{m!r}] must be a dict of parameters; got {metric_params[m]!r}.")
    return {m: dict(metric_params.get(m, {})) for m in metrics}


def check_request(
    acts: xr.Dataset,
    metrics: Any,
    layers: Any,
    perturbations: Any,
    labels: Any,
    criterion: str,
    min_cluster_size: Any,
    clusters_per_class: Any,
    metric_params: Any,
) -> Request:
    """Every name and option of :func:`analyze` checked against the store, before any work."""
    if not isinstance(metrics, (str, Sequence, np.ndarray)):
        raise TypeError(f"metrics must be a metric name or a list of them, e.g. ['euclidean', 'cosine']; got {describe(metrics)}.")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not metrics:
        raise ValueError("metrics is empty; pass at least one metric name, e.g. ['euclidean'].")
    for m in metrics:
        check_choice(m, "metric", METRICS)
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics lists a metric twice: {metrics}.")
    params = _metric_params(metrics, metric_params)
    check_choice(criterion, "criterion", CRITERIA)
    per_class = check_clusters_per_class(clusters_per_class)
    all_layers = layer_names(acts)
    if not all_layers:
        raise ValueError("acts holds no layer variables (perturbation, sample, unit); export some layers first.")
    layer_list = _names(layers, "layers", all_layers, "layer")
    store_perts = [str(p) for p in acts["perturbation"].values]
    pert_list = _names(perturbations, "perturbations", store_perts, "perturbation")
    if "clean" in store_perts:
        pert_list = ["clean"] + [p for p in pert_list if p != "clean"]
    n = int(acts.sizes["sample"])
    if n < 2:
        raise ValueError(f"acts holds {n} sample(s); H0 needs at least 2.")
    if labels is None and "label" in acts.coords:
        labels = acts["label"].values
    y = None if labels is None else as_labels(labels, n, "labels")
    if y is None:
        criterion = "gap"
    size = check_min_cluster_size(min_cluster_size, n)
    bound = None if y is None else max_clusters_for(y, per_class)
    return Request(pert_list, layer_list, metrics, params, y, criterion, size, per_class, bound)


def layer_clouds(acts: xr.Dataset, request: Request) -> dict[int, list[tuple[int, np.ndarray]]]:
    """``{width: [(layer index, (perturbation, sample, unit) float array), ...]}``, checked finite."""
    clouds: dict[int, list[tuple[int, np.ndarray]]] = {}
    for li, layer in enumerate(request.layers):
        var = acts[layer]
        if var.dims[:2] != ("perturbation", "sample") or var.ndim != 3:
            raise ValueError(f"layer {layer!r} has dims {var.dims}; expected ('perturbation', 'sample', {unit_dim(layer)!r}).")
        width = int(var.shape[2])
        if width == 0:
            raise ValueError(f"layer {layer!r} is empty (0 units); choose layers with at least one unit.")
        X = np.asarray(var.sel(perturbation=request.perturbations).values)
        if np.iscomplexobj(X) or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise TypeError(f"layer {layer!r} holds {X.dtype} activations; expected real numbers. Export real values.")
        if not np.issubdtype(X.dtype, np.floating) or X.dtype == np.float16:
            X = X.astype(np.float32)
        for pi, pert in enumerate(request.perturbations):
            bad = first_nonfinite_row(X[pi])
            if bad is not None:
                raise ValueError(
                    f"layer {layer!r}, perturbation {pert!r}: activations hold NaN or Inf at sample {bad}. "
                    "Fix the model/inputs or drop that perturbation."
                )
            if device_dtype(X) != X.dtype:  # float64 without x64: the kernels run in float32
                check_float32_range(X[pi], f"layer {layer!r}", f" (perturbation {pert!r})")
        clouds.setdefault(width, []).append((li, X))
    return clouds


def merge_trees(
    clouds: dict[int, list[tuple[int, np.ndarray]]],
    request: Request,
    n: int,
    memory_budget: int,
    method: str,
    prebuild: Sequence = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H0 of every cloud: ``deaths`` ``(P, L, M, edge)`` float32, ``edges`` ``(..., 2)``, ``linkage`` ``(..., 4)``.

    Every (cloud, metric) pair is one item of
    :func:`holejax.filtration.dense.parallel_map_programs`; the items of one
    metric whose widths pad to one width share their compiled programs, so in
    a fresh process each program is built once, while the other threads
    compute with the programs already built. ``prebuild`` (see
    :func:`later_programs`) builds the programs of the later steps meanwhile.
    """
    P, L, M, E = len(request.perturbations), len(request.layers), len(request.metrics), n - 1
    items, programs = [], []
    for members in clouds.values():
        for mi in range(M):
            for li, X in members:
                items += [(X[pi], pi, li, mi) for pi in range(P)]
                programs += [(mi, unit_bucket(X.shape[-1]))] * P

    def cloud_h0(item) -> tuple:
        X, pi, li, mi = item
        metric = request.metrics[mi]
        try:
            r = h0_from_points(X, metric, method=method, memory_budget=memory_budget, **request.params[metric])
        except CloudError as err:
            raise err.located(layer=request.layers[li], perturbation=request.perturbations[pi]) from None
        return r.deaths, r.edges, r.linkage

    deaths = np.full((P, L, M, E), np.nan, np.float32)
    edges = np.zeros((P, L, M, E, 2), np.int64)
    linkage = np.zeros((P, L, M, E, 4), np.float64)
    for (_, pi, li, mi), (d, e, z) in zip(items, parallel_map_programs(cloud_h0, items, programs, prebuild)):
        deaths[pi, li, mi], edges[pi, li, mi], linkage[pi, li, mi] = d, e, z
    return deaths, edges, linkage


def later_programs(request: Request, n: int, wasserstein_order: float) -> list:
    """Callables that build the compiled programs of :func:`stages_and_scores` and :func:`distances_to_clean`.

    :func:`merge_trees` runs them on its builder thread, so in a fresh process
    these programs compile (or load) while the trees are computed.
    """
    P, L, M = len(request.perturbations), len(request.layers), len(request.metrics)
    builds = []
    if request.labels is not None:
        classes = len(np.unique(request.labels))
        builds.append(lambda: compile_merge_scores(P * L * M, n, classes))
    if "clean" in request.perturbations and P > 1:
        pairs = (P - 1) * L * M
        builds.append(lambda: compile_h0_diagram_distances(pairs, n - 1, "bottleneck"))
        builds.append(lambda: compile_h0_diagram_distances(pairs, n - 1, "wasserstein", wasserstein_order))
    return builds


def stages_and_scores(
    deaths: np.ndarray, edges: np.ndarray, linkage: np.ndarray, request: Request, persistence: float
) -> dict[str, np.ndarray]:
    """Sankey stages, the headline scores at the best threshold and the persistent components of every cloud.

    Returns ``{name: array}``: ``stage_threshold`` ``(P, L, M, stage)``,
    ``stage_labels`` ``(P, L, M, stage, sample)`` and the per-cloud
    quantities of :data:`_SCALARS` and :data:`_COUNTS` ``(P, L, M)``.
    """
    P, L, M, E = deaths.shape
    n, y, size = E + 1, request.labels, request.min_cluster_size
    scored_size = scoring_min_size(request.criterion, size)
    clock = time.perf_counter()
    scores = None if y is None else merge_scores(linkage.reshape(P * L * M, E, 4), y, min_cluster_size=scored_size)
    last_timings["scores_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    out: dict[str, np.ndarray] = {
        "stage_threshold": np.full((P, L, M, len(STAGES)), np.nan),
        "stage_labels": np.zeros((P, L, M, len(STAGES), n), np.int64),
        **{k: np.full((P, L, M), np.nan) for k in _SCALARS},
        **{k: np.zeros((P, L, M), np.int64) for k in _COUNTS},
    }
    for flat, (pi, li, mi) in enumerate(np.ndindex(P, L, M)):
        cell = (pi, li, mi)
        h = H0Result(deaths[cell], edges[cell], linkage[cell])
        own = None if scores is None else MergeScores(*(f[flat] for f in scores))
        t4 = choose_thresholds(h.deaths, request.criterion, own, request.max_clusters)
        raw = cluster_labels(h, t4)
        grouped = np.stack([group_small_clusters(row, size) for row in raw])
        out["stage_threshold"][cell][1:] = t4
        out["stage_labels"][cell][0] = -1 if y is None else y
        out["stage_labels"][cell][1:] = grouped
        out["best_threshold"][cell] = t4[1]
        out["best_n_clusters"][cell] = int(grouped[1].max()) + 1
        out["best_n_outliers"][cell] = int((grouped[1] < 0).sum())
        if own is not None:
            state = int(np.searchsorted(np.asarray(h.deaths, np.float64), t4[1], side="right"))
            out["purity"][cell] = own.purity[state]
            out["inverse_purity"][cell] = own.inverse_purity[state]
            out["ari"][cell] = own.ari[state]
            out["nmi"][cell] = normalized_mutual_info(raw[1] if scored_size == 1 else grouped[1], y)
        pc = persistent_components(h, persistence, size)
        out["n_components"][cell], out["n_outliers"][cell] = pc.n_components, pc.n_outliers
        out["persistence_threshold"][cell] = pc.threshold
    last_timings["stages_s"] = time.perf_counter() - clock
    return out


def distances_to_clean(deaths: np.ndarray, perturbations: list[str], order: float) -> dict[str, np.ndarray]:
    """Bottleneck and Wasserstein distances ``(P, L, M)`` of each H0 diagram to its clean twin.

    0 for clean itself; NaN everywhere when there is no ``clean`` perturbation.
    """
    P, L, M, E = deaths.shape
    dist = {k: np.full((P, L, M), np.nan) for k in ("bottleneck", "wasserstein")}
    if "clean" not in perturbations:
        return dist
    for k in dist:
        dist[k][0] = 0.0
    if P > 1:
        a = np.broadcast_to(deaths[:1], deaths[1:].shape).reshape(-1, E)
        b = deaths[1:].reshape(-1, E)
        dist["bottleneck"][1:] = h0_diagram_distances(a, b, "bottleneck").reshape(P - 1, L, M)
        dist["wasserstein"][1:] = h0_diagram_distances(a, b, "wasserstein", order).reshape(P - 1, L, M)
    return dist


def results_dataset(
    acts: xr.Dataset,
    source: str | None,
    request: Request,
    trees: tuple[np.ndarray, np.ndarray, np.ndarray],
    stages: dict[str, np.ndarray],
    distances: dict[str, np.ndarray],
    accuracy: Mapping[str, float] | None,
    persistence: float,
    wasserstein_order: float,
) -> xr.Dataset:
    """The results Dataset of :func:`analyze` (its docstring lists the variables)."""
    deaths, edges, linkage = trees
    n = deaths.shape[-1] + 1
    plm = ("perturbation", "layer", "metric")
    data = {
        "deaths": (plm + ("edge",), deaths),
        "linkage": (plm + ("edge", "linkage_col"), linkage),
        "mst_edges": (plm + ("edge", "end"), edges),
        "stage_threshold": (plm + ("stage",), stages["stage_threshold"]),
        "stage_labels": (plm + ("stage", "sample"), stages["stage_labels"]),
        **{k: (plm, stages[k]) for k in _SCALARS + _COUNTS},
        **{k: (plm, v) for k, v in distances.items()},
    }
    if accuracy is not None:
        data["accuracy"] = (
            ("perturbation",),
            np.array([accuracy.get(p, np.nan) for p in request.perturbations], np.float64),
        )
    coords: dict[str, Any] = {
        "perturbation": request.perturbations,
        "layer": request.layers,
        "metric": request.metrics,
        "stage": list(STAGES),
        "edge": np.arange(n - 1),
        "sample": acts["sample"].values if "sample" in acts.coords else np.arange(n),
    }
    if request.labels is not None:
        coords["label"] = ("sample", request.labels)
    attrs = {
        "holejax_store": "results",
        "holejax_version": __version__,
        "label_names": list(acts.attrs.get("label_names") or []),
        "source": source or "",
        "metric_params": request.params,
        "criterion": request.criterion,
        "min_cluster_size": request.min_cluster_size,
        "clusters_per_class": request.clusters_per_class,
        "max_clusters": request.max_clusters,
        "tie_rtol": TIE_RTOL,
        "persistence": float(persistence),
        "wasserstein_order": float(wasserstein_order),
        "perturbation_params": acts.attrs.get("perturbation_params", {}),
        "framework": acts.attrs.get("framework", ""),
        "model_class": acts.attrs.get("model_class", ""),
        "activations_fingerprint": acts.attrs.get("fingerprint", {}),  # ties the results to their store
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def analyze(
    acts: Any,
    metrics: str | Sequence[str] = ("euclidean",),
    layers: Sequence[str] | None = None,
    perturbations: Sequence[Any] | None = None,
    *,
    labels: Any = None,
    criterion: str = "ari",
    min_cluster_size: int | None = None,
    clusters_per_class: float | None = 2.0,
    persistence: float = 0.5,
    wasserstein_order: float = 1.0,
    metric_params: Mapping[str, Mapping[str, Any]] | None = None,
    memory_budget: int = 2**31,
    h0_method: str = "auto",
    accuracy: Mapping[str, float] | None = None,
    client: Any = None,
) -> Any:
    """H0 merge trees, Sankey stages, label agreement and robustness for a whole store.

    The headline numbers (``purity``, ``inverse_purity``, ``ari``, ``nmi``) are
    read at each cloud's *best threshold*, defined so that singletons cannot
    dominate it:

    - candidate thresholds are the levels of the H0 deaths (merges whose
      heights agree to the float32 rounding of the kernels are one level);
    - at each level, clusters of fewer than ``min_cluster_size`` samples are
      outliers, pooled into one outlier cluster (id ``-1`` in
      ``stage_labels``) that the scores count as one impure cluster;
    - only levels with at most ``clusters_per_class x classes`` clusters of
      ``min_cluster_size`` or more samples compete (default: twice the
      number of classes; when no level has so few, those with the fewest do);
    - among them, the best level maximises ``criterion`` (default the
      adjusted Rand index of that partition with the labels).

    The scores are those of that partition, the one the Sankey and blob
    graph draw at the ``best`` stage: ``purity == hj.purity(stage_labels
    at best, labels)``. ``best_n_clusters`` and ``best_n_outliers`` say
    what it holds. ``min_cluster_size=1, clusters_per_class=None`` gives
    the unbounded rule over every cluster as it is, and
    ``criterion="hole"`` the HOLE reference code's rule (see
    :mod:`holejax.analysis.stages`).

    Args:
        acts: an activation store (``hj.open_activations(path)``, the result of
            ``hj.export_activations``) or its path.
        metrics: metric names (see ``hj.METRICS``); HOLE uses euclidean,
            cosine, mahalanobis, geodesic and the three density-normalised ones.
        layers: layer names (default: every layer of the store).
        perturbations: names or Perturbations (default: all in the store);
            ``clean`` is always analysed when the store has it, as the
            reference of the diagram distances.
        labels: ``(sample,)`` int classes; default the store's ``label``
            coordinate. Without labels, purity / inverse purity / ARI / NMI
            are NaN and the ``best`` stage is the most persistent partition
            (``criterion="gap"``).
        criterion: how the ``best`` stage is chosen: ``"ari"``, ``"f1"``,
            ``"purity"``, ``"gap"`` (the widest gap to the next level, no
            labels needed) or ``"hole"`` (see :mod:`holejax.analysis.stages`).
        min_cluster_size: clusters smaller than this are "small/outliers"
            (id -1 in ``stage_labels``, counted in ``best_n_outliers`` and
            ``n_outliers``); default ``max(2, ceil(n / 100))``.
        clusters_per_class: the best threshold has at most
            ``floor(clusters_per_class x classes)`` clusters of at least
            ``min_cluster_size`` samples; None: no bound.
        persistence: relative threshold of the persistent components
            (:func:`~holejax.analysis.persistent_components`).
        wasserstein_order: exponent of the Wasserstein distance.
        metric_params: ``{metric: {param: value}}``, e.g. ``{"geodesic": {"k": 15}}``.
        memory_budget: bytes the ``n x n`` matrices of one cloud's H0 call may
            use (see :func:`holejax.h0_from_points`); one call runs per host thread.
        h0_method: ``"auto"``, ``"prim"`` or ``"boruvka"`` (see ``hj.h0``).
        accuracy: ``{perturbation: accuracy}`` to record (``hj.robustness_study`` fills it).
        client: a ``distributed.Client``: the clouds are analysed on its Dask
            cluster, each task reading its own chunks of ``acts`` (a store path or
            fsspec URL the workers can open); the result is the same Dataset
            (see :mod:`holejax.distributed`).

    Returns:
        ``xarray.Dataset`` with coords ``perturbation``, ``layer``, ``metric``,
        ``sample``, ``label`` (when known), ``stage`` and ``edge``, and:

        - ``deaths`` ``(perturbation, layer, metric, edge)``; ``linkage``
          ``(..., edge, linkage_col=4)`` float64 (scipy); ``mst_edges``
          ``(..., edge, end=2)`` int64;
        - ``purity``, ``inverse_purity``, ``ari``, ``nmi`` at the best
          threshold, ``best_threshold``, ``best_n_clusters`` (clusters of at
          least ``min_cluster_size`` there), ``best_n_outliers`` (samples in
          smaller ones), and the persistent components ``n_components``,
          ``n_outliers`` at ``persistence_threshold``, all
          ``(perturbation, layer, metric)``;
        - ``stage_threshold`` ``(..., stage)`` (NaN for ``labels``) and
          ``stage_labels`` ``(..., stage, sample)`` int64;
        - ``bottleneck``, ``wasserstein`` ``(perturbation, layer, metric)``:
          distance of each H0 diagram to the clean one (0 for clean, NaN when
          the store has no clean activations);
        - ``accuracy`` ``(perturbation)`` when ``accuracy`` is given.

    Raises:
        ValueError / TypeError: unknown metric, layer or perturbation names
            (with the closest match), labels of the wrong length, empty
            layers, NaN / Inf activations, fewer than 2 samples.

    Example:
        >>> import numpy as np, xarray as xr, holejax as hj
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 10)
        >>> X = (rng.normal(size=(2, 30, 4)) + 4 * y[None, :, None]).astype(np.float32)
        >>> acts = xr.Dataset({"fc": (("perturbation", "sample", "fc:unit"), X)},
        ...                   coords={"perturbation": ["clean", "gaussian(sigma=0.1)"], "label": ("sample", y)})
        >>> res = hj.analyze(acts, metrics=["euclidean", "cosine"])
        >>> res.purity.sel(perturbation="clean", metric="euclidean").item()
        1.0
        >>> res.best_n_clusters.sel(perturbation="clean", metric="euclidean").item()
        3
        >>> res.stage.values.tolist()
        ['labels', 'first_merge', 'best', 'intermediate', 'one']
    """
    if client is not None:
        from holejax.distributed import analyze_on_cluster  # import cycle: holejax.distributed runs analyze in its tasks

        return analyze_on_cluster(
            client, acts, metrics, layers, perturbations, labels=labels, criterion=criterion,
            min_cluster_size=min_cluster_size, clusters_per_class=clusters_per_class, persistence=persistence,
            wasserstein_order=wasserstein_order, metric_params=metric_params, memory_budget=memory_budget,
            h0_method=h0_method, accuracy=accuracy,
        )
    acts, source = as_activation_store(acts)
    request = check_request(
        acts, metrics, layers, perturbations, labels, criterion, min_cluster_size, clusters_per_class, metric_params
    )
    if isinstance(persistence, bool) or not isinstance(persistence, (int, float)) or not 0 < persistence <= 1:
        raise ValueError(f"persistence must be a number in (0, 1]; got {persistence!r}.")
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}.")
    if accuracy is not None:
        unknown = [k for k in accuracy if k not in request.perturbations]
        if unknown:
            raise ValueError(f"accuracy names perturbations {unknown} that are not analysed ({request.perturbations}).")
    last_timings.clear()

    clock = time.perf_counter()
    clouds = layer_clouds(acts, request)
    n = int(acts.sizes["sample"])
    later = later_programs(request, n, wasserstein_order)
    trees = merge_trees(clouds, request, n, int(memory_budget), h0_method, later)
    last_timings["h0_s"] = time.perf_counter() - clock

    stages = stages_and_scores(*trees, request, persistence)

    clock = time.perf_counter()
    distances = distances_to_clean(trees[0], request.perturbations, wasserstein_order)
    last_timings["distances_s"] = time.perf_counter() - clock

    return results_dataset(acts, source, request, trees, stages, distances, accuracy, persistence, wasserstein_order)
