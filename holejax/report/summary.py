"""Per-layer summaries: purity, components and diagram distances vs layer.

One line per (perturbation, metric): colour by perturbation, dash by metric;
the legend toggles all lines of a perturbation or a metric at once. The
selected (perturbation, metric) is drawn over them in black, with a marker at
the selected layer; its hover names the clusters and outliers of the best
threshold (``best_n_clusters``, ``best_n_outliers``) when the values hold them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, Legend, LegendItem, TabPanel, Tabs
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from holejax._checks import check_choice
from holejax.report._study import SUMMARY_QUANTITIES

__all__ = ["HOVER_COUNTS", "summary_columns", "summary_figure", "summary_tabs"]

# quantities shown in the hover of every summary line, when present
HOVER_COUNTS = {"best_n_clusters": "clusters at best", "best_n_outliers": "outliers at best"}

_DASHES = ("solid", "dashed", "dotted", "dotdash", "dashdot", [6, 2, 2, 2], [2, 4], [10, 4])


def _check_values(values: Mapping[str, np.ndarray], shape: tuple[int, int, int]) -> None:
    for name, arr in values.items():
        if np.shape(arr) != shape:
            raise ValueError(
                f"values[{name!r}] has shape {np.shape(arr)}; expected (perturbation, layer, metric) = {shape}."
            )


def summary_columns(values: Mapping[str, np.ndarray], p: int, l: int, m: int) -> dict[str, dict[str, object]]:
    """Data of ``sum.hl`` (the selected line) and ``sum.cur`` (the selected layer).

    Example:
        >>> v = {"purity": np.arange(8.0).reshape(2, 2, 2)}
        >>> summary_columns(v, 1, 0, 1)["sum.hl"]["purity"].tolist()
        [5.0, 7.0]
    """
    n_layers = next(iter(values.values())).shape[1] if values else 0
    hl = {"x": np.arange(n_layers, dtype=np.float32)}
    cur = {"x": np.asarray([l], dtype=np.float32)}
    for name, arr in values.items():
        hl[name] = np.asarray(arr[p, :, m], dtype=np.float32)
        cur[name] = np.asarray([arr[p, l, m]], dtype=np.float32)
    return {"sum.hl": hl, "sum.cur": cur}


def summary_figure(
    values: Mapping[str, np.ndarray],
    quantity: str,
    perturbations: Sequence[str],
    layers: Sequence[str],
    metrics: Sequence[str],
    *,
    current: tuple[int, int, int] = (0, 0, 0),
    sources: tuple[ColumnDataSource, ColumnDataSource] | None = None,
    width: int = 640,
    height: int = 300,
) -> figure:
    """One summary quantity vs layer.

    Args:
        values: ``{quantity: (perturbation, layer, metric) array}``.
        quantity: the key drawn.
        perturbations, layers, metrics: names (user strings; drawn as canvas text).
        current: selected (perturbation, layer, metric) indices.
        sources: shared ``sum.hl`` / ``sum.cur`` sources (built when None).

    Returns:
        a Bokeh figure named ``sum.<quantity>``.

    Example:
        >>> v = {"purity": np.ones((2, 3, 1))}
        >>> fig = summary_figure(v, "purity", ["clean", "noise"], ["a", "b", "c"], ["cosine"])
        >>> len(fig.renderers), fig.name  # 2 lines, the selection, its marker, 3 legend proxies
        (7, 'sum.purity')
    """
    check_choice(quantity, "quantity", list(values))
    shape = (len(perturbations), len(layers), len(metrics))
    _check_values(values, shape)
    if sources is None:
        cols = summary_columns(values, *current)
        sources = (ColumnDataSource(cols["sum.hl"], name="sum.hl"), ColumnDataSource(cols["sum.cur"], name="sum.cur"))
    hl, cur = sources
    arr = np.asarray(values[quantity], dtype=np.float64)
    fig = figure(width=width, height=height, name=f"sum.{quantity}",
                 title=f"{SUMMARY_QUANTITIES.get(quantity, quantity)} per layer",
                 tools="pan,wheel_zoom,reset", toolbar_location="above")
    fig.xaxis.ticker = FixedTicker(ticks=list(range(len(layers))))
    fig.xaxis.major_label_overrides = {i: str(name) for i, name in enumerate(layers)}
    fig.xaxis.major_label_orientation = 0.5
    fig.yaxis.axis_label = SUMMARY_QUANTITIES.get(quantity, quantity)
    x = np.arange(len(layers), dtype=np.float64)
    by_pert: dict[int, list] = {}
    by_metric: dict[int, list] = {}
    for p in range(shape[0]):
        for m in range(shape[2]):
            r = fig.line(x, arr[p, :, m], line_color=Category10_10[p % 10], line_dash=_DASHES[m % len(_DASHES)],
                         line_width=1.5, alpha=0.8)
            by_pert.setdefault(p, []).append(r)
            by_metric.setdefault(m, []).append(r)
    sel = fig.line("x", quantity, source=hl, line_color="black", line_width=3, alpha=0.6)
    fig.scatter("x", quantity, source=cur, size=12, marker="diamond", fill_color="black", line_color="white")
    tooltips = [("layer", "$index"), ("value", f"@{{{quantity}}}{{0.000}}")]
    tooltips += [(label, f"@{{{name}}}{{0}}") for name, label in HOVER_COUNTS.items() if name in values and name != quantity]
    fig.add_tools(HoverTool(renderers=[sel], tooltips=tooltips))
    # each legend entry toggles its lines; its swatch is the proxy glyph drawn last over them
    # (its colour, or grey with its dash)
    items = []
    for p, rs in by_pert.items():
        proxy = fig.line([np.nan], [np.nan], line_color=Category10_10[p % 10], line_width=2)
        items.append(LegendItem(label=f"perturbation: {perturbations[p]}", renderers=[*rs, proxy]))
    for m, rs in by_metric.items():
        proxy = fig.line([np.nan], [np.nan], line_color="#555555", line_dash=_DASHES[m % len(_DASHES)], line_width=2)
        items.append(LegendItem(label=f"metric: {metrics[m]}", renderers=[*rs, proxy]))
    legend = Legend(items=items, click_policy="hide", label_text_font_size="8pt", spacing=0, padding=4)
    fig.add_layout(legend, "right")
    return fig


def summary_tabs(
    values: Mapping[str, np.ndarray],
    perturbations: Sequence[str],
    layers: Sequence[str],
    metrics: Sequence[str],
    *,
    tabs: Sequence[str] | None = None,
    current: tuple[int, int, int] = (0, 0, 0),
    width: int = 900,
    height: int = 300,
) -> Tabs:
    """One tab per quantity of ``tabs`` (default: all of ``values``), sharing the ``sum.hl``/``sum.cur`` sources.

    Quantities of ``values`` without a tab still reach the sources (and the hovers).
    """
    tabs = list(values) if tabs is None else list(tabs)
    for q in tabs:
        check_choice(q, "tabs", list(values))
    cols = summary_columns(values, *current)
    sources = (ColumnDataSource(cols["sum.hl"], name="sum.hl"), ColumnDataSource(cols["sum.cur"], name="sum.cur"))
    panels = [
        TabPanel(child=summary_figure(values, q, perturbations, layers, metrics, current=current,
                                      sources=sources, width=width, height=height),
                 title=SUMMARY_QUANTITIES.get(q, q))
        for q in tabs
    ]
    return Tabs(tabs=panels, name="sum.view")
