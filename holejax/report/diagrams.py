"""Persistence diagram, barcode and Betti-0 curve of the H0 filtration.

In H0 every sample is born at 0, so the diagram is the column of deaths (the
MST edge lengths), plus one essential class that never dies. The barcode
sorts the bars by death (longest on top) and the Betti-0 curve counts the
components left after each merge. Infinite deaths (parts of a cloud that never
connect) are drawn on a dashed line at the cap, 1.1 x the largest finite death.

For display only, clouds with more than ``max_points`` deaths keep the
largest half of that budget and an evenly spaced sample of the rest; the
ranks kept depend only on the number of samples, so every view of a report
switches data of one length.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from bokeh.layouts import row
from bokeh.models import CDSView, ColumnDataSource, HoverTool, IndexFilter, Range1d, Slope, Span
from bokeh.plotting import figure

from holejax.report._study import finite_cap

__all__ = [
    "DeathDisplay",
    "display_ranks",
    "death_display",
    "diagram_columns",
    "persistence_diagram_figure",
    "barcode_figure",
    "betti0_figure",
    "diagram_figures",
]


class DeathDisplay(NamedTuple):
    """The deaths drawn for one cloud.

    Attributes:
        rank: ``(point,)`` rank of each drawn death among all deaths (ascending).
        death: ``(point,)`` float32 deaths, infinite ones replaced by ``cap``.
        n_infinite: how many deaths are infinite; cap: where they are drawn.
        n: number of samples (components at threshold 0).
    """

    rank: np.ndarray
    death: np.ndarray
    n_infinite: int
    cap: float
    n: int


def display_ranks(n_deaths: int, max_points: int | None = None) -> np.ndarray:
    """Ranks of the deaths to draw: all, or the top half of ``max_points`` plus a spread of the rest.

    Example:
        >>> display_ranks(10, 4).tolist()
        [0, 7, 8, 9]
    """
    if max_points is None or n_deaths <= max_points:
        return np.arange(n_deaths, dtype=np.int64)
    top = max(1, max_points // 2)
    rest = n_deaths - top
    spread = np.unique(np.linspace(0, rest - 1, max_points - top).round().astype(np.int64))
    return np.concatenate([spread, np.arange(rest, n_deaths, dtype=np.int64)])


def death_display(deaths: np.ndarray, ranks: np.ndarray | None = None) -> DeathDisplay:
    """Sort deaths, cap infinite ones and keep ``ranks`` (default: all).

    Args:
        deaths: ``(edge,)`` H0 deaths (``study.deaths`` of one view), any order.
        ranks: from :func:`display_ranks`.

    Example:
        >>> dd = death_display(np.array([2.0, np.inf, 1.0]))
        >>> dd.death.tolist(), dd.n_infinite, dd.cap, dd.n
        ([1.0, 2.0, 2.200000047683716], 1, 2.2, 4)
    """
    d = np.sort(np.asarray(deaths, dtype=np.float64).ravel())
    if np.isnan(d).any():
        raise ValueError("deaths hold NaN; expected finite values or +inf (parts that never connect).")
    cap = finite_cap(d)
    inf = ~np.isfinite(d)
    d[inf] = cap
    ranks = np.arange(d.size) if ranks is None else np.asarray(ranks, dtype=np.int64)
    return DeathDisplay(ranks.astype(np.int32), d[ranks].astype(np.float32), int(inf.sum()), cap, d.size + 1)


def diagram_columns(dd: DeathDisplay) -> dict[str, dict[str, object]]:
    """Data of the shared source ``dg.deaths`` (row 0 is the start of the Betti curve) and ``dg.ess``."""
    return {
        "dg.deaths": {
            "death": np.concatenate([[0.0], dd.death]).astype(np.float32),
            "rank": np.concatenate([[-1], dd.rank]).astype(np.int32),
            "components": (dd.n - 1 - np.concatenate([[-1], dd.rank])).astype(np.int32),
            "birth": np.zeros(dd.death.size + 1, np.float32),
        },
        "dg.ess": {"birth": [0.0], "death": [float(dd.cap)], "rank": [dd.n - 1]},
    }


def _sources(dd: DeathDisplay) -> tuple[ColumnDataSource, ColumnDataSource]:
    cols = diagram_columns(dd)
    return (ColumnDataSource(cols["dg.deaths"], name="dg.deaths"),
            ColumnDataSource(cols["dg.ess"], name="dg.ess"))


def _points_view(src: ColumnDataSource) -> CDSView:
    return CDSView(filter=IndexFilter(indices=list(range(1, len(src.data["death"])))))


def _cap_span(dd: DeathDisplay, dimension: str) -> Span:
    return Span(location=dd.cap, dimension=dimension, line_dash="dashed", line_color="#888888",
                name=f"dg.cap.{dimension}")


def persistence_diagram_figure(dd: DeathDisplay, sources=None, *, size: int = 300) -> figure:
    """H0 persistence diagram: (birth, death) points, the diagonal and the essential class at the cap.

    Example:
        >>> persistence_diagram_figure(death_display(np.array([0.5, 1.0]))).name
        'dg.diagram'
    """
    src, ess = _sources(dd) if sources is None else sources
    fig = figure(width=size, height=size, title="Persistence diagram (H0)", name="dg.diagram",
                 tools="pan,wheel_zoom,reset", toolbar_location=None,
                 x_range=Range1d(-0.05 * dd.cap, 0.5 * dd.cap, name="dg.diagram.x"))
    fig.xaxis.axis_label = "birth"
    fig.yaxis.axis_label = "death"
    fig.add_layout(Slope(gradient=1, y_intercept=0, line_color="#999999"))
    pts = fig.scatter("birth", "death", source=src, view=_points_view(src), size=6, fill_alpha=0.5,
                      line_color=None, fill_color="#1f77b4")
    fig.scatter("birth", "death", source=ess, marker="triangle", size=9, fill_color="#d62728", line_color=None)
    fig.add_layout(_cap_span(dd, "width"))
    fig.y_range.start = 0
    fig.add_tools(HoverTool(renderers=[pts], tooltips=[("death", "@death{0.0000}"), ("rank", "@rank")]))
    return fig


def barcode_figure(dd: DeathDisplay, sources=None, *, width: int = 300, height: int = 300) -> figure:
    """H0 barcode: one bar per death, sorted, the essential bar (to the cap) on top.

    Example:
        >>> barcode_figure(death_display(np.array([0.5, 1.0]))).name
        'dg.barcode'
    """
    src, ess = _sources(dd) if sources is None else sources
    fig = figure(width=width, height=height, title="Barcode (H0)", name="dg.barcode",
                 tools="pan,wheel_zoom,reset", toolbar_location=None)
    fig.xaxis.axis_label = "filtration value"
    fig.yaxis.axis_label = "bar (by death)"
    bars = fig.segment("birth", "rank", "death", "rank", source=src, view=_points_view(src),
                       line_color="#1f77b4", line_width=1.5)
    fig.segment("birth", "rank", "death", "rank", source=ess, line_color="#d62728", line_width=2)
    fig.add_layout(_cap_span(dd, "height"))
    fig.x_range.start = 0
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[("death", "@death{0.0000}"), ("rank", "@rank")]))
    return fig


def betti0_figure(dd: DeathDisplay, sources=None, *, width: int = 300, height: int = 300) -> figure:
    """Betti-0 curve: components left as the threshold grows (log scale).

    Example:
        >>> betti0_figure(death_display(np.array([0.5, 1.0]))).name
        'dg.betti'
    """
    src, _ = _sources(dd) if sources is None else sources
    fig = figure(width=width, height=height, title="Betti-0 curve", name="dg.betti",
                 tools="pan,wheel_zoom,reset", toolbar_location=None, y_axis_type="log")
    fig.xaxis.axis_label = "threshold"
    fig.yaxis.axis_label = "components"
    fig.step("death", "components", source=src, mode="after", line_width=2, line_color="#2ca02c")
    fig.add_layout(_cap_span(dd, "height"))
    fig.x_range.start = 0
    return fig


def diagram_figures(dd: DeathDisplay, *, size: int = 300) -> row:
    """The three figures side by side, sharing the sources ``dg.deaths`` and ``dg.ess``.

    Example:
        >>> view = diagram_figures(death_display(np.array([0.5, 1.0, 3.0])))
        >>> [f.name for f in view.children]
        ['dg.diagram', 'dg.barcode', 'dg.betti']
    """
    sources = _sources(dd)
    return row(
        persistence_diagram_figure(dd, sources, size=size),
        barcode_figure(dd, sources, width=size, height=size),
        betti0_figure(dd, sources, width=size, height=size),
        name="dg.view",
    )
