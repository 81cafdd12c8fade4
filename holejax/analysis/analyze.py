"""``analyze``: H0 of every (perturbation, layer, metric) cloud of an activation store, scored and compared.

The work is batched the way the kernels want it:

1. clouds of equal width (all perturbations of a layer, and layers of the
   same width) are stacked, and for each metric one compiled call
   (:func:`holejax.h0_from_points`: the batched distance kernel and
   the batched H0 kernel in one XLA program) handles the whole stack, in
   chunks that fit ``memory_budget``; the geodesic metric goes through
   :func:`holejax.h0_from_points`, whose kNN-graph MST gives the exact
   geodesic H0 without all-pairs shortest paths;
2. one :func:`~holejax.analysis.merge_scores` call scores every threshold of
   every cloud against the labels;
3. one :func:`~holejax.analysis.h0_diagram_distances` call per distance
   compares every perturbed diagram with its clean twin.

The per-cloud remainder (stage thresholds, cluster ids at five stages, NMI,
persistent components) is cheap numpy / scikit-learn work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from holejax._checks import CloudError, as_labels, check_choice, close_matches, first_nonfinite_row
from holejax.analysis.robustness import h0_diagram_distances
from holejax.analysis.scores import merge_scores, normalized_mutual_info
from holejax.analysis.stages import (
    CRITERIA,
    STAGES,
    check_min_cluster_size,
    cluster_labels,
    criterion_values,
    distinct_deaths,
    group_small_clusters,
    persistent_components,
    stage_thresholds,
)

__all__ = ["analyze"]

# metrics whose H0 is computed from the points (no n x n matrix)
_FROM_POINTS = ("geodesic",)

# seconds spent in each phase by the last analyze() call (read by benchmarks/bench_study.py)
last_timings: dict[str, float] = {}


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


def _h0_group(Xs: np.ndarray, metric: str, params: dict, memory_budget: int, method: str) -> tuple:
    """H0 (deaths, edges, linkage) of a stack ``(batch, sample, unit)`` of one width, one metric.

    Distances and MSTs run in one compiled call per chunk of clouds
    (``hj.h0_from_points``); the geodesic metric goes through the MST
    of each cloud's kNN graph (``hj.h0_from_points``), which gives the exact
    geodesic H0 without all-pairs shortest paths.
    """
    import holejax as hj

    if metric in _FROM_POINTS:
        rs = [hj.h0_from_points(X, metric, **params) for X in Xs]
    else:
        rs = [hj.h0_from_points(Xs, metric, method=method, memory_budget=memory_budget, **params)]
        return tuple(np.asarray(getattr(rs[0], f)) for f in ("deaths", "edges", "linkage"))
    return tuple(np.stack([np.asarray(getattr(r, f)) for r in rs]) for f in ("deaths", "edges", "linkage"))


def analyze(
    acts: Any,
    metrics: str | Sequence[str] = ("euclidean",),
    layers: Sequence[str] | None = None,
    perturbations: Sequence[Any] | None = None,
    *,
    labels: Any = None,
    criterion: str = "ari",
    min_cluster_size: int | None = None,
    persistence: float = 0.5,
    wasserstein_order: float = 1.0,
    metric_params: Mapping[str, Mapping[str, Any]] | None = None,
    memory_budget: int = 2**31,
    h0_method: str = "auto",
    accuracy: Mapping[str, float] | None = None,
) -> Any:
    """H0 merge trees, Sankey stages, label agreement and robustness for a whole store.

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
            ``"hole"``, ``"purity"`` or ``"gap"`` (see
            :mod:`holejax.analysis.stages`).
        min_cluster_size: clusters smaller than this are "small/outliers"
            (id -1 in ``stage_labels``, counted in ``n_outliers``); default
            ``max(2, ceil(n / 100))``.
        persistence: relative threshold of the persistent components
            (:func:`~holejax.analysis.persistent_components`).
        wasserstein_order: exponent of the Wasserstein distance.
        metric_params: ``{metric: {param: value}}``, e.g. ``{"geodesic": {"k": 15}}``.
        memory_budget: bytes one batched distance call may use.
        h0_method: ``"auto"``, ``"prim"`` or ``"boruvka"`` (see ``hj.h0``).
        accuracy: ``{perturbation: accuracy}`` to record (``hj.study`` fills it).

    Returns:
        ``xarray.Dataset`` with coords ``perturbation``, ``layer``, ``metric``,
        ``sample``, ``label`` (when known), ``stage`` and ``edge``, and:

        - ``deaths`` ``(perturbation, layer, metric, edge)``; ``linkage``
          ``(..., edge, linkage_col=4)`` float64 (scipy); ``mst_edges``
          ``(..., edge, end=2)`` int64;
        - ``purity``, ``inverse_purity``, ``ari``, ``nmi`` at the best
          threshold, ``best_threshold``, ``n_components``, ``n_outliers``,
          ``persistence_threshold`` ``(perturbation, layer, metric)``;
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
        >>> res.stage.values.tolist()
        ['labels', 'first_merge', 'best', 'intermediate', 'one']
    """
    import xarray as xr

    from holejax import __version__
    from holejax.metrics import METRICS
    from holejax.store import as_activation_store, layer_names, unit_dim

    acts, source = as_activation_store(acts)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not metrics:
        raise ValueError("metrics is empty; pass at least one metric name, e.g. ['euclidean'].")
    for m in metrics:
        check_choice(m, "metric", METRICS)
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics lists a metric twice: {metrics}.")
    params = _metric_params(metrics, metric_params)
    check_choice(criterion, "criterion", CRITERIA)
    if isinstance(persistence, bool) or not isinstance(persistence, (int, float)) or not 0 < persistence <= 1:
        raise ValueError(f"persistence must be a number in (0, 1]; got {persistence!r}.")
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}.")

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
    if y is None and criterion != "gap":
        criterion = "gap"
    size = check_min_cluster_size(min_cluster_size, n)
    if accuracy is not None:
        unknown = [k for k in accuracy if k not in pert_list]
        if unknown:
            raise ValueError(f"accuracy names perturbations {unknown} that are not analysed ({pert_list}).")

    P, L, M, E = len(pert_list), len(layer_list), len(metrics), n - 1
    clock = time.perf_counter()
    last_timings.clear()
    deaths = np.full((P, L, M, E), np.nan, np.float32)
    edges = np.zeros((P, L, M, E, 2), np.int64)
    linkage = np.zeros((P, L, M, E, 4), np.float64)

    # 1. clouds grouped by width; one batched distance + H0 call per (group, metric)
    clouds: dict[int, list[tuple[int, np.ndarray]]] = {}
    for li, layer in enumerate(layer_list):
        var = acts[layer]
        if var.dims[:2] != ("perturbation", "sample") or var.ndim != 3:
            raise ValueError(f"layer {layer!r} has dims {var.dims}; expected ('perturbation', 'sample', {unit_dim(layer)!r}).")
        width = int(var.shape[2])
        if width == 0:
            raise ValueError(f"layer {layer!r} is empty (0 units); choose layers with at least one unit.")
        X = np.asarray(var.sel(perturbation=pert_list).values)
        if not np.issubdtype(X.dtype, np.floating) or X.dtype == np.float16:
            X = X.astype(np.float32)
        for pi, pert in enumerate(pert_list):
            bad = first_nonfinite_row(X[pi])
            if bad is not None:
                raise ValueError(
                    f"layer {layer!r}, perturbation {pert!r}: activations hold NaN or Inf at sample {bad}. "
                    "Fix the model/inputs or drop that perturbation."
                )
        clouds.setdefault(width, []).append((li, X))
    for width, members in clouds.items():
        Xs = np.concatenate([X for _, X in members])
        for mi, metric in enumerate(metrics):
            try:
                d, e, z = _h0_group(Xs, metric, params[metric], int(memory_budget), h0_method)
            except CloudError as err:  # cloud b of the group is layer members[b // P], perturbation b % P
                if err.cloud is None:
                    raise
                layer = layer_list[members[err.cloud // P][0]]
                raise err.located(layer=layer, perturbation=pert_list[err.cloud % P]) from None
            for k, (li, _) in enumerate(members):
                rows = slice(k * P, (k + 1) * P)
                deaths[:, li, mi], edges[:, li, mi], linkage[:, li, mi] = d[rows], e[rows], z[rows]

    last_timings["h0_s"] = time.perf_counter() - clock

    # 2. every threshold of every cloud scored in one call
    clock = time.perf_counter()
    flat_link = linkage.reshape(P * L * M, E, 4)
    scores = merge_scores(flat_link, y) if y is not None else None
    last_timings["scores_s"] = time.perf_counter() - clock
    clock = time.perf_counter()

    # 3. per cloud: stages, best-threshold scores, persistent components
    from holejax.filtration import H0Result

    stage_t = np.full((P, L, M, len(STAGES)), np.nan)
    stage_lab = np.zeros((P, L, M, len(STAGES), n), np.int64)
    out = {k: np.full((P, L, M), np.nan) for k in ("purity", "inverse_purity", "ari", "nmi", "best_threshold", "persistence_threshold")}
    n_comp = np.zeros((P, L, M), np.int64)
    n_out = np.zeros((P, L, M), np.int64)
    for flat, (pi, li, mi) in enumerate(np.ndindex(P, L, M)):
        h = H0Result(deaths[pi, li, mi], edges[pi, li, mi], linkage[pi, li, mi])
        values, states = distinct_deaths(h.deaths)
        if scores is None or criterion == "gap" or len(values) == 0:
            crit = criterion_values("gap", values)
        else:
            crit = criterion_values(
                criterion, values, scores.purity[flat, states], scores.inverse_purity[flat, states], scores.ari[flat, states]
            )
        t4 = stage_thresholds(values, crit)
        raw = cluster_labels(h, t4)
        stage_t[pi, li, mi, 1:] = t4
        stage_lab[pi, li, mi, 0] = -1 if y is None else y
        for s in range(4):
            stage_lab[pi, li, mi, s + 1] = group_small_clusters(raw[s], size)
        best = t4[1]
        out["best_threshold"][pi, li, mi] = best
        if scores is not None:
            state = int(np.searchsorted(np.asarray(h.deaths, np.float64), best, side="right"))
            out["purity"][pi, li, mi] = scores.purity[flat, state]
            out["inverse_purity"][pi, li, mi] = scores.inverse_purity[flat, state]
            out["ari"][pi, li, mi] = scores.ari[flat, state]
            out["nmi"][pi, li, mi] = normalized_mutual_info(raw[1], y)
        pc = persistent_components(h, persistence, size)
        n_comp[pi, li, mi], n_out[pi, li, mi] = pc.n_components, pc.n_outliers
        out["persistence_threshold"][pi, li, mi] = pc.threshold

    last_timings["stages_s"] = time.perf_counter() - clock

    # 4. diagram distances of every perturbed cloud to its clean twin
    clock = time.perf_counter()
    dist = {k: np.full((P, L, M), np.nan) for k in ("bottleneck", "wasserstein")}
    if "clean" in pert_list:
        for k in dist:
            dist[k][0] = 0.0
        if P > 1:
            a = np.broadcast_to(deaths[:1], deaths[1:].shape).reshape(-1, E)
            b = deaths[1:].reshape(-1, E)
            dist["bottleneck"][1:] = h0_diagram_distances(a, b, "bottleneck").reshape(P - 1, L, M)
            dist["wasserstein"][1:] = h0_diagram_distances(a, b, "wasserstein", wasserstein_order).reshape(P - 1, L, M)

    last_timings["distances_s"] = time.perf_counter() - clock

    plm = ("perturbation", "layer", "metric")
    data = {
        "deaths": (plm + ("edge",), deaths),
        "linkage": (plm + ("edge", "linkage_col"), linkage),
        "mst_edges": (plm + ("edge", "end"), edges),
        "stage_threshold": (plm + ("stage",), stage_t),
        "stage_labels": (plm + ("stage", "sample"), stage_lab),
        "n_components": (plm, n_comp),
        "n_outliers": (plm, n_out),
        **{k: (plm, v) for k, v in out.items()},
        **{k: (plm, v) for k, v in dist.items()},
    }
    if accuracy is not None:
        data["accuracy"] = (("perturbation",), np.array([accuracy.get(p, np.nan) for p in pert_list], np.float64))
    coords: dict[str, Any] = {
        "perturbation": pert_list,
        "layer": layer_list,
        "metric": metrics,
        "stage": list(STAGES),
        "edge": np.arange(E),
        "sample": acts["sample"].values if "sample" in acts.coords else np.arange(n),
    }
    if y is not None:
        coords["label"] = ("sample", y)
    attrs = {
        "holejax_store": "results",
        "holejax_version": __version__,
        "label_names": list(acts.attrs.get("label_names") or []),
        "source": source or "",
        "metric_params": {m: {k: _json(v) for k, v in p.items()} for m, p in params.items()},
        "criterion": criterion,
        "min_cluster_size": size,
        "persistence": float(persistence),
        "wasserstein_order": float(wasserstein_order),
        "perturbation_params": acts.attrs.get("perturbation_params", {}),
        "framework": acts.attrs.get("framework", ""),
        "model_class": acts.attrs.get("model_class", ""),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _json(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return "array" + str(tuple(v.shape))
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
