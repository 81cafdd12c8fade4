"""The whole report as one Bokeh layout: views, selectors and the data behind them.

:func:`build_report` computes every view of every (perturbation, layer,
metric) once, keeps them as compact arrays in the document (see
``_switch.py``), draws the first view with the figure functions of the topic
modules, and returns a ``CustomJS`` that redraws the selected view in the
browser. It works offline: nothing is fetched when a selector changes.

User strings (layer, perturbation, metric and class names, the title) reach
the page only as text: select options, canvas labels, escaped tooltips, and
``html.escape``-d text in the header.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from bokeh.layouts import column, row
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    Div,
    LayoutDOM,
    LinearColorMapper,
    Range1d,
    RadioButtonGroup,
    Select,
    Span,
)

from holejax._checks import check_choice
from holejax.filtration import h0
from holejax.report._study import (
    STAGES,
    StudyAxes,
    distance_matrices,
    layer_cloud,
    metric_params,
    read_axes,
    summary_values,
)
from holejax.report._switch import SWITCH_JS, Table
from holejax.report.blob import BOUNDARIES, blob_columns, blob_data, blob_figure, pca_2d
from holejax.report.diagrams import death_display, diagram_columns, diagram_figures, display_ranks
from holejax.report.heatmap_dendrogram import ORDERS, heatmap_dendrogram, heatmap_dendrogram_columns, heatmap_dendrogram_figure
from holejax.report.sankey import RIBBON_JS, RIBBON_POINTS, sankey_columns, sankey_figure, sankey_layout
from holejax.report.summary import HOVER_COUNTS, summary_columns, summary_tabs
from holejax.report.topology_views import check_topology, topology_section

__all__ = ["Report", "build_report", "SUMMARY_TABS"]

# summary quantities drawn as figures (the others are listed in the stats panel)
SUMMARY_TABS = ("purity", "n_components", "bottleneck", "wasserstein")

# numbers of the stats panel read from the results (the panel adds accuracy and thresholds)
_STATS = ("purity", "best_n_clusters", "best_n_outliers", "n_components", "n_outliers", "bottleneck", "wasserstein")

# columns that are the same in every view: kept in the browser, never stored per view
_STATIC = {
    "hd.image": ("x", "y", "dw", "dh"),
    "blob.points": ("sample", "label", "label_name"),
    "dg.deaths": ("rank", "components", "birth"),
    "dg.ess": ("birth", "rank"),
    "sum.hl": ("x",),
}


class Report(NamedTuple):
    """A built report.

    Attributes:
        layout: the Bokeh layout (add it to a Document, or use :func:`write_report`).
        update: ``CustomJS`` that redraws the selected view; run it when the
            document is ready so the page and the selectors agree.
        axes: the perturbations, layers, metrics and labels reported.
        heatmap_size: bins per side of the heatmaps.
        topology_update: ``CustomJS`` of the topology section's selectors
            (None when the report has no topology section).
    """

    layout: LayoutDOM
    update: CustomJS
    axes: StudyAxes
    heatmap_size: int
    topology_update: CustomJS | None = None


def _positive_int(value: Any, argument: str, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}{' or None' if allow_none else ''}; got {value!r}.")
    return int(value)


def _select(study: xr.Dataset, name: str, axes: StudyAxes, *rest: str) -> np.ndarray:
    var = study[name].sel(perturbation=list(axes.perturbations), layer=list(axes.layers), metric=list(axes.metrics))
    return np.asarray(var.transpose("perturbation", "layer", "metric", *rest).values)


def _header(title: str, study: xr.Dataset, acts: xr.Dataset, axes: StudyAxes, accuracy: np.ndarray | None) -> Div:
    e = html.escape
    facts = [f"{len(axes.samples)} samples", f"{len(axes.layers)} layers", f"{len(axes.perturbations)} perturbations",
             f"{len(axes.metrics)} metrics"]
    model = acts.attrs.get("model_class")
    if model:
        facts.append(f"model {e(str(model))} ({e(str(acts.attrs.get('framework', '?')))})")
    parts = [f"<h2>{e(title)}</h2>", f"<p>{' · '.join(facts)}</p>"]
    if axes.has_labels:
        parts.append("<p>classes: " + ", ".join(e(n) for n in axes.label_names) + "</p>")
    if accuracy is not None and np.isfinite(accuracy).any():
        cells = "".join(f"<tr><td>{e(p)}</td><td>{a:.3f}</td></tr>" for p, a in zip(axes.perturbations, accuracy))
        parts.append(f"<table><tr><th>perturbation</th><th>accuracy</th></tr>{cells}</table>")
    parts.append(
        "<p>Select a layer, perturbation and metric. Heatmap: distances in RCM or dendrogram order, "
        "dendrogram of the H0 merge tree above, class (top) and cluster (bottom) strips. Blob graph: "
        "PCA, points by class, outlines around H0 clusters, crosses for outliers, rings for points "
        "outside their cluster's majority class. Large clouds are downsampled for display only.</p>"
    )
    return Div(text="".join(parts), name="header", width=1100)


class Views(NamedTuple):
    """The data of every view, packed per selector combination, and the first view's objects.

    Attributes:
        tables: ``{source name: [Table, ...]}``: the columns of each ``ColumnDataSource``.
        extra: ``{name: Table}``: scalars the switch callback reads (stats, colour ranges).
        first: the first view's ``hd``, ``sankey``, ``blob`` and ``dg`` objects, drawn in Python.
        sankey_geometry: per Sankey variant, the stage positions the browser draws ribbons with.
    """

    tables: dict[str, list[Table]]
    extra: dict[str, Table]
    first: dict[str, Any]
    sankey_geometry: list[dict | None]


class Sampling(NamedTuple):
    """Which samples the views draw (display only; the numbers use every sample)."""

    heatmap: np.ndarray
    heatmap_size: int
    display: np.ndarray
    ranks: np.ndarray


def _sampling(n: int, views: int, heatmap_size: int | None, heatmap_budget: int, max_points: int,
              max_heatmap_samples: int, seed: int) -> Sampling:
    """The heatmap subset and bins, and the points drawn per blob graph and diagram."""
    rng = np.random.default_rng(seed)
    hm_idx = np.arange(n) if n <= max_heatmap_samples else np.sort(rng.choice(n, max_heatmap_samples, replace=False))
    n_hm = len(hm_idx)
    if heatmap_size is None:
        fit = math.isqrt(max(1, heatmap_budget // (views * len(ORDERS))))
        heatmap_size = int(min(n_hm, 256, max(32, fit)))
    display = np.arange(n) if n <= max_points else np.sort(rng.choice(n, max_points, replace=False))
    return Sampling(hm_idx, min(heatmap_size, n_hm), display, display_ranks(n - 1, max_points))


def _empty_views(sizes: dict[str, int], with_summary: bool) -> Views:
    def T(*dims: str) -> Table:
        return Table(dims, sizes)

    tables = {
        "hd.image": [T("p", "l", "m", "order")], "hd.dendro": [T("p", "l", "m", "order")],
        "hd.strip": [T("p", "l", "m", "order")],
        "sk.nodes": [T("p", "l", "m", "sankey")], "sk.ribbons": [T("p", "l", "m", "sankey")],
        "blob.points": [T("p", "l"), T("p", "l", "m")], "blob.hulls": [T("p", "l", "m", "boundary")],
        "dg.deaths": [T("p", "l", "m")], "dg.ess": [T("p", "l", "m")],
    }
    if with_summary:
        tables["sum.hl"] = [T("p", "m")]
        tables["sum.cur"] = [T("p", "l", "m")]
    extra = {"sc.combo": T("p", "l", "m"), "sc.hd": T("p", "l", "m", "order")}
    return Views(tables, extra, {}, [None, None])


def _put(views: Views, name: str, which: int, index: dict, columns: dict) -> None:
    """Store the columns of source ``name`` (its ``which``-th table) at ``index``, less the static ones."""
    views.tables[name][which].put(index, {c: v for c, v in columns.items() if c not in _STATIC.get(name, ())})


def _put_heatmaps(views: Views, ix: dict, D: np.ndarray, link: np.ndarray, labels: np.ndarray,
                  clusters: np.ndarray, sample_ids: np.ndarray, sampling: Sampling, rcm_neighbors: int | None) -> None:
    """Heatmap-dendrograms of one cloud in every order."""
    for oi, order in enumerate(ORDERS):
        hd = heatmap_dendrogram(D, link, labels, clusters, order=order, size=sampling.heatmap_size,
                                n_neighbors=rcm_neighbors, sample_ids=sample_ids)
        for name, cols in heatmap_dendrogram_columns(hd).items():
            _put(views, name, 0, {**ix, "order": oi}, cols)
        views.extra["sc.hd"].put({**ix, "order": oi}, {"lo": np.array([hd.lo]), "hi": np.array([hd.hi])})
        views.first.setdefault("hd", hd)


def _put_sankeys(views: Views, ix: dict, stage_labels: np.ndarray, labels: np.ndarray) -> None:
    """The Sankey and the compact Sankey of one cloud."""
    for vi, compact in enumerate((False, True)):
        lay = sankey_layout(stage_labels, labels, compact=compact)
        views.sankey_geometry[vi] = {"stage_x": [float(x) for x in lay.stage_x], "node_width": lay.node_width,
                                     "points": RIBBON_POINTS}
        for name, cols in sankey_columns(lay).items():
            _put(views, name, 0, {**ix, "sankey": vi}, cols)
        views.first.setdefault("sankey", lay)


def _put_blob(views: Views, ix: dict, xy: np.ndarray, labels: np.ndarray, clusters: np.ndarray,
              display: np.ndarray, alpha_radius: float | None) -> None:
    """The blob graph's marks and outlines of one cloud, for every kind of boundary."""
    bd = blob_data(xy, labels, clusters, radius=alpha_radius)
    for bi, kind in enumerate(BOUNDARIES):
        cols = blob_columns(bd, kind, display)
        if bi == 0:
            _put(views, "blob.points", 1, ix, cols["blob.marks"])
        _put(views, "blob.hulls", 0, {**ix, "boundary": bi}, cols["blob.hulls"])
    views.first.setdefault("blob", bd)


def _put_diagram(views: Views, ix: dict, deaths: np.ndarray, ranks: np.ndarray) -> Any:
    """The persistence diagram, barcode and Betti-0 curve of one cloud; returns its display."""
    dd = death_display(deaths, ranks)
    for name, cols in diagram_columns(dd).items():
        _put(views, name, 0, ix, cols)
    views.first.setdefault("dg", dd)
    return dd


def _put_stats(views: Views, ix: dict, values: dict[str, np.ndarray], accuracy: np.ndarray | None,
               thresholds: np.ndarray, dd: Any) -> None:
    """The numbers of the stats panel of one cloud."""
    pi, li, mi = ix["p"], ix["l"], ix["m"]
    scal = {q: values[q][pi, li, mi] if q in values else np.nan for q in _STATS}
    scal["accuracy"] = accuracy[pi] if accuracy is not None else np.nan
    scal.update({f"th{k}": thresholds[k] for k in range(len(STAGES))})
    scal.update(n_infinite=dd.n_infinite, cap=dd.cap)
    views.extra["sc.combo"].put(ix, {k: np.array([v], dtype=np.float64) for k, v in scal.items()})


def _fill_views(study: xr.Dataset, acts: xr.Dataset, axes: StudyAxes, results: dict[str, Any],
                sampling: Sampling, views: Views, stage: int, rcm_neighbors: int | None,
                alpha_radius: float | None) -> None:
    """Compute every view of every (perturbation, layer, metric) into ``views``."""
    P = len(axes.perturbations)
    labels, n = axes.labels, len(axes.samples)
    hm_idx = sampling.heatmap
    act_perts = [str(v) for v in np.asarray(acts["perturbation"].values).tolist()]
    reference_pert = "clean" if "clean" in act_perts else axes.perturbations[0]
    for li, layer in enumerate(axes.layers):
        clouds = [layer_cloud(acts, layer, pert, axes.samples) for pert in axes.perturbations]
        reference = layer_cloud(acts, layer, reference_pert, axes.samples)
        xys = [pca_2d(X, reference) for X in clouds]
        for pi in range(P):
            _put(views, "blob.points", 0, {"p": pi, "l": li},
                 {"x": xys[pi][sampling.display, 0], "y": xys[pi][sampling.display, 1]})
        for mi, metric in enumerate(axes.metrics):
            D_all = distance_matrices(np.stack([X[hm_idx] for X in clouds]), metric, metric_params(study, metric))
            for pi in range(P):
                ix = {"p": pi, "l": li, "m": mi}
                S = results["stage_labels"][pi, li, mi]
                clusters = S[stage]
                # a displayed subset gets its own merge tree
                link = results["linkage"][pi, li, mi] if len(hm_idx) == n else np.asarray(h0(D_all[pi]).linkage, np.float64)
                _put_heatmaps(views, ix, D_all[pi], link, labels[hm_idx], clusters[hm_idx], axes.samples[hm_idx],
                              sampling, rcm_neighbors)
                _put_sankeys(views, ix, S, labels)
                _put_blob(views, ix, xys[pi], labels, clusters, sampling.display, alpha_radius)
                dd = _put_diagram(views, ix, results["deaths"][pi, li, mi], sampling.ranks)
                if results["shown"]:
                    cols = summary_columns(results["summary"], pi, li, mi)
                    _put(views, "sum.hl", 0, {"p": pi, "m": mi}, cols["sum.hl"])
                    _put(views, "sum.cur", 0, ix, cols["sum.cur"])
                _put_stats(views, ix, results["values"], results["accuracy"], results["thresholds"][pi, li, mi], dd)


def _read_results(study: xr.Dataset, axes: StudyAxes) -> dict[str, Any]:
    """The arrays the views draw, ``(perturbation, layer, metric, ...)`` in the report's order."""
    values = summary_values(study, axes)
    shown = {q: v for q, v in values.items() if q in SUMMARY_TABS} or values
    accuracy = None
    if "accuracy" in study.data_vars and study["accuracy"].dims == ("perturbation",):
        accuracy = np.asarray(study["accuracy"].sel(perturbation=list(axes.perturbations)).values, np.float64)
    return {
        "deaths": _select(study, "deaths", axes, "edge"),
        "linkage": _select(study, "linkage", axes, "edge", "linkage_col"),
        "stage_labels": _select(study, "stage_labels", axes, "stage", "sample"),
        "thresholds": _select(study, "stage_threshold", axes, "stage"),
        "values": values,
        "shown": shown,
        # the summary sources also carry the counts of the best threshold, for the hovers
        "summary": {**shown, **{q: values[q] for q in HOVER_COUNTS if q in values}},
        "accuracy": accuracy,
    }


def _first_views(views: Views, axes: StudyAxes, results: dict[str, Any], sampling: Sampling,
                 blob_stage: str, n_cluster_colors: int) -> tuple[list[LayoutDOM], Any, Any]:
    """The figures of the first view (the browser redraws them on selection); returns (views, blob, sankey)."""
    names = list(axes.label_names)
    first = views.first
    # the same titles the browser sets (SWITCH_JS), so the page does not reflow on load
    where = f"{axes.layers[0]} | {axes.metrics[0]} | {axes.perturbations[0]}"
    hd_view = heatmap_dendrogram_figure(first["hd"], label_names=names, n_cluster_colors=n_cluster_colors,
                                        title=f"Heatmap-dendrogram (RCM order)\n{where}")
    blob_fig = blob_figure(first["blob"], boundary=BOUNDARIES[0], label_names=names,
                           n_cluster_colors=n_cluster_colors, sample_ids=axes.samples, display=sampling.display,
                           title=f"Blob graph at the {blob_stage} threshold: {where}")
    sankey_fig = sankey_figure(first["sankey"], label_names=names, title=f"Sankey: {where}")
    out: list[LayoutDOM] = [row(hd_view, column(blob_fig, sankey_fig)), diagram_figures(first["dg"])]
    if results["shown"]:
        out.append(summary_tabs(results["summary"], axes.perturbations, axes.layers, axes.metrics,
                                tabs=list(results["shown"])))
    return out, blob_fig, sankey_fig


def _widgets(axes: StudyAxes) -> dict[str, Any]:
    def options(names_: tuple[str, ...]) -> list[tuple[str, str]]:
        return [(str(i), v) for i, v in enumerate(names_)]

    return {
        "layer": Select(title="layer", options=options(axes.layers), value="0", name="sel.layer", width=260),
        "perturbation": Select(title="perturbation", options=options(axes.perturbations), value="0",
                               name="sel.perturbation", width=260),
        "metric": Select(title="metric", options=options(axes.metrics), value="0", name="sel.metric", width=200),
        "order": RadioButtonGroup(labels=["RCM order", "dendrogram order"], active=0, name="sel.order"),
        "boundary": RadioButtonGroup(labels=["convex hulls", "alpha shapes"], active=0, name="sel.boundary"),
        "sankey": RadioButtonGroup(labels=["Sankey", "compact Sankey"], active=0, name="sel.sankey"),
    }


def _switch_callback(layout: LayoutDOM, views: Views, widgets: dict[str, Any], sizes: dict[str, int],
                     axes: StudyAxes, blob_stage: str, blob_fig: Any, sankey_fig: Any, stats: Div) -> CustomJS:
    """The ``CustomJS`` that redraws the selected view, wired to every selector."""
    models = layout.references()  # one traversal; Model.select walks the graph on every call
    by_name: dict[str, list] = {}
    for model in models:
        if model.name:
            by_name.setdefault(model.name, []).append(model)

    def one(name: str, kind: type = object) -> Any:
        found = [m for m in by_name.get(name, []) if isinstance(m, kind)]
        if len(found) != 1:
            raise RuntimeError(f"expected one {kind.__name__} named {name!r} in the report; found {len(found)}.")
        return found[0]

    targets = {
        "colorbar": one("hd.colorbar", LinearColorMapper),
        "cap_spans": [m for m in models if isinstance(m, Span) and (m.name or "").startswith("dg.cap.")],
        "diagram_x": one("dg.diagram.x", Range1d),
        "dendrogram": one("hd.dendrogram"),
        "blob": blob_fig,
        "sankey": sankey_fig,
        "diagram": one("dg.diagram"),
        "stats": stats,
    }
    update = CustomJS(
        args=dict(
            widgets=widgets,
            tables={name: [t.pack() for t in ts] for name, ts in views.tables.items()},
            extra={name: t.pack() for name, t in views.extra.items()},
            sources={name: one(name, ColumnDataSource) for name in views.tables},
            sizes=sizes,
            geom=views.sankey_geometry,
            names={"layers": list(axes.layers), "metrics": list(axes.metrics),
                   "perturbations": list(axes.perturbations), "blob_stage": blob_stage},
            targets=targets,
        ),
        code=SWITCH_JS.replace("__RIBBON_JS__", RIBBON_JS),
    )
    for name in ("layer", "perturbation", "metric"):
        widgets[name].js_on_change("value", update)
    for name in ("order", "boundary", "sankey"):
        widgets[name].js_on_change("active", update)
    return update


def build_report(
    study: xr.Dataset,
    acts: xr.Dataset,
    *,
    title: str | None = None,
    layers: Sequence[str] | None = None,
    perturbations: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    heatmap_size: int | None = None,
    heatmap_budget: int = 8 * 2**20,
    max_points: int = 2000,
    max_heatmap_samples: int = 3000,
    rcm_neighbors: int | None = 10,
    alpha_radius: float | None = None,
    blob_stage: str = "best",
    seed: int = 0,
    topology: xr.Dataset | None = None,
) -> Report:
    """Compute every view of a study and lay out the interactive report.

    Args:
        study: results Dataset (``hj.analyze`` / ``hj.open_results``).
        acts: the activation store it was computed from (distances for the
            heatmap and the PCA of the blob graph are recomputed from it).
        title: heading of the page (default: "holejax report").
        layers, perturbations, metrics: subsets to report (default: all).
        heatmap_size: heatmap bins per side; default: as many as fit
            ``heatmap_budget`` bytes over all views and both orders (32..256).
        heatmap_budget: bytes of heatmap images in the report when ``heatmap_size`` is None.
        max_points: most points drawn per blob graph and per diagram (display only).
        max_heatmap_samples: above this many samples the heatmap-dendrogram
            shows a random subset with its own merge tree (display only).
        rcm_neighbors: neighbours of the graph RCM orders (None: dense matrix).
        alpha_radius: alpha-shape radius in PCA units (default: per layer and
            perturbation, see :func:`holejax.report.blob.default_alpha_radius`).
        blob_stage: the Sankey stage whose clusters the blob graph and the
            dendrogram colours show (default "best", the threshold agreeing
            best with the labels).
        seed: for the display subsets.
        topology: optional Dataset from ``hj.topology_summary`` (or
            ``hj.open_results`` of its store); adds the topology section
            (landscapes, Betti decay, neural persistence) with its own layer,
            perturbation and degree selectors, over the topology Dataset's own
            layers and perturbations. Without it the report is unchanged.

    Returns:
        :class:`Report`.
    """
    axes = read_axes(study, acts, layers=layers, perturbations=perturbations, metrics=metrics)
    if topology is not None:
        check_topology(topology)
    heatmap_size = _positive_int(heatmap_size, "heatmap_size", 2, allow_none=True)
    heatmap_budget = _positive_int(heatmap_budget, "heatmap_budget", 1)
    max_points = _positive_int(max_points, "max_points", 10)
    max_heatmap_samples = _positive_int(max_heatmap_samples, "max_heatmap_samples", 2)
    check_choice(blob_stage, "blob_stage", STAGES)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None; got {type(title).__name__}.")
    title = "holejax report" if title is None else title

    P, L, M = len(axes.perturbations), len(axes.layers), len(axes.metrics)
    sizes = {"p": P, "l": L, "m": M, "order": len(ORDERS), "boundary": len(BOUNDARIES), "sankey": 2}
    sampling = _sampling(len(axes.samples), P * L * M, heatmap_size, heatmap_budget, max_points,
                         max_heatmap_samples, seed)
    results = _read_results(study, axes)
    stage = STAGES.index(blob_stage)
    n_cluster_colors = int(results["stage_labels"][:, :, :, stage, :].max()) + 1

    views = _empty_views(sizes, bool(results["shown"]))
    _fill_views(study, acts, axes, results, sampling, views, stage, rcm_neighbors, alpha_radius)
    figures, blob_fig, sankey_fig = _first_views(views, axes, results, sampling, blob_stage, n_cluster_colors)

    widgets = _widgets(axes)
    stats = Div(text="", name="stats", width=420)
    layout = column(
        _header(title, study, acts, axes, results["accuracy"]),
        row(widgets["layer"], widgets["perturbation"], widgets["metric"]),
        row(column(widgets["order"], widgets["boundary"], widgets["sankey"]), stats),
        *figures,
        name="report",
    )
    topology_update = None
    if topology is not None:
        section, topology_update = topology_section(topology)
        layout.children.append(section)
    update = _switch_callback(layout, views, widgets, sizes, axes, blob_stage, blob_fig, sankey_fig, stats)
    return Report(layout, update, axes, sampling.heatmap_size, topology_update)
