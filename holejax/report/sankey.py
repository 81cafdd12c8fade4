"""Sankey diagram of the five HOLE stages, with Bezier ribbons, and its compact variant.

Stage 1 holds the true labels, stages 2-5 the H0 clusters at the first merge,
the threshold agreeing best with the labels, an intermediate threshold and
the single component (``hj.sankey_stages``). Clusters below the minimum size
carry id -1 and are drawn as one grey "small/outliers" node at the bottom of
their stage.

Ribbons are split by true class and coloured by it, so a class can be
followed through the stages; each ribbon is a band between two cubic Bezier
curves with horizontal tangents at both ends.

- ``compact=False``: one node per cluster, separated by gaps, coloured by its
  majority class; ribbons leaving a node are stacked by target node.
- ``compact=True``: no gaps, thin columns, and each cluster drawn as a
  stacked bar of its classes; ribbons leave and enter the segment of their
  class, so the picture reads as stacked bars joined by class flows.

Nodes are ordered within a stage by the mean position of their samples in
the previous stage (fewer crossings), outliers last.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from bokeh.models import ColumnDataSource, CustomJSHover, DataRange1d, FixedTicker, HoverTool
from bokeh.plotting import figure

from holejax.report._style import class_palette, id_mapper

__all__ = [
    "SankeyLayout",
    "sankey_layout",
    "ribbon_paths",
    "sankey_columns",
    "sankey_figure",
    "RIBBON_POINTS",
    "RIBBON_JS",
]

RIBBON_POINTS = 16
STAGE_NAMES = ("labels", "first merge", "best", "intermediate", "one")


class SankeyLayout(NamedTuple):
    """Geometry of a Sankey diagram (y grows downwards, in samples).

    Attributes:
        stage, cluster, label: ``(node,)`` stage index, cluster id (-1: small/
            outliers) and the class id the node is coloured by (-1: grey).
        size: ``(node,)`` samples drawn in the node; cluster_size: samples of
            its cluster; purity: ``(node,)`` majority-class share of the cluster.
        top, bottom, left, right: ``(node,)`` rectangle of each node.
        r_stage, r_label, r_count: ``(ribbon,)`` source stage, class and samples.
        r_y0, r_y1: ``(ribbon,)`` upper edge at the source and at the target.
        stage_x: ``(stage,)`` left edge of each stage column; node_width: column width.
        compact: which variant.
    """

    stage: np.ndarray
    cluster: np.ndarray
    label: np.ndarray
    size: np.ndarray
    cluster_size: np.ndarray
    purity: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    r_stage: np.ndarray
    r_label: np.ndarray
    r_count: np.ndarray
    r_y0: np.ndarray
    r_y1: np.ndarray
    stage_x: np.ndarray
    node_width: float
    compact: bool


def _group_offsets(keys: list[np.ndarray], counts: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum of ``counts`` within each ``group``, in lexicographic ``keys`` order."""
    idx = np.lexsort(keys[::-1])
    c = counts[idx]
    g = group[idx]
    cum = np.cumsum(c) - c
    starts = np.zeros(len(c), dtype=np.int64)
    if len(c):
        first = np.r_[True, g[1:] != g[:-1]]
        starts = np.maximum.accumulate(np.where(first, np.arange(len(c)), 0))
    out = np.empty(len(c), dtype=np.float64)
    out[idx] = cum - cum[starts]
    return out


def _stage_nodes(
    S: np.ndarray, y: np.ndarray, compact: bool, gap: float
) -> tuple[dict[str, list], np.ndarray, list[np.ndarray]]:
    """The nodes of every stage, stacked top to bottom in the barycentre order of their samples.

    Returns:
        ``(nodes, rank, tops)``: the node columns (``stage``, ``cluster``,
        ``label``, ``size``, ``csize``, ``purity``, ``top``, ``bottom``; one
        row per node, or per (node, class) segment when ``compact``), the node
        rank of each sample per stage ``(stage, sample)``, and per stage the
        top of each ranked node.
    """
    n_stages, n = S.shape
    n_classes = int(y.max()) + 1 if n else 1
    nodes = {k: [] for k in ("stage", "cluster", "label", "size", "csize", "purity", "top", "bottom")}
    rank = np.zeros((n_stages, n), dtype=np.int64)   # node rank of each sample per stage
    ntop = []                                        # per stage: top of each ranked node
    center = np.zeros(n)
    for s in range(n_stages):
        ids = S[s]
        uniq, inv = np.unique(ids, return_inverse=True)
        if s == 0:
            bary = np.zeros(len(uniq))
        else:
            bary = np.bincount(inv, weights=center, minlength=len(uniq)) / np.bincount(inv, minlength=len(uniq))
        order = np.lexsort((uniq, bary, uniq < 0))
        node_rank = np.empty(len(uniq), dtype=np.int64)
        node_rank[order] = np.arange(len(uniq))
        rank[s] = node_rank[inv]
        comp = np.zeros((len(uniq), n_classes), dtype=np.int64)
        np.add.at(comp, (inv, y), 1)
        tops = np.zeros(len(uniq))
        cursor = 0.0
        for r, u in enumerate(order):
            size = int(comp[u].sum())
            tops[r] = cursor
            purity = comp[u].max() / size
            major = int(comp[u].argmax()) if uniq[u] >= 0 or s == 0 else -1
            if compact:
                seg_top = cursor
                for c in np.flatnonzero(comp[u]):
                    for key, val in zip(nodes, (s, uniq[u], c, comp[u, c], size, purity, seg_top,
                                                seg_top + comp[u, c])):
                        nodes[key].append(val)
                    seg_top += comp[u, c]
            else:
                for key, val in zip(nodes, (s, uniq[u], major, size, size, purity, cursor, cursor + size)):
                    nodes[key].append(val)
            cursor += size + gap
        ntop.append(tops)
        center = tops[rank[s]] + 0.5 * np.bincount(rank[s], minlength=len(uniq))[rank[s]]
    return nodes, rank, ntop


def _ribbons(rank: np.ndarray, ntop: list[np.ndarray], y: np.ndarray, compact: bool) -> dict[str, np.ndarray]:
    """The ribbons between consecutive stages, one per (node, next node, class).

    Returns ``{name: (ribbon,) array}``: ``stage``, ``label``, ``count`` and
    the tops ``y0`` / ``y1`` at both ends, stacked within each node.
    """
    n_stages = rank.shape[0]
    rib = {k: [] for k in ("stage", "label", "count", "y0", "y1")}
    for s in range(n_stages - 1):
        a, b = rank[s], rank[s + 1]
        flows, counts = np.unique(np.stack([a, b, y], axis=1), axis=0, return_counts=True)
        fa, fb, fc = flows.T
        if compact:
            off_a = _group_offsets([fa, fc, fb], counts, fa)
            off_b = _group_offsets([fb, fc, fa], counts, fb)
        else:
            off_a = _group_offsets([fa, fb, fc], counts, fa)
            off_b = _group_offsets([fb, fa, fc], counts, fb)
        rib["stage"].append(np.full(len(counts), s))
        rib["label"].append(fc)
        rib["count"].append(counts)
        rib["y0"].append(ntop[s][fa] + off_a)
        rib["y1"].append(ntop[s + 1][fb] + off_b)
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in rib.items()}


def sankey_layout(
    stage_labels: np.ndarray, labels: np.ndarray, *, compact: bool = False, gap: float | None = None
) -> SankeyLayout:
    """Lay out the Sankey diagram of the stages of one cloud.

    Args:
        stage_labels: ``(stage, sample)`` int ids per stage (``study.stage_labels``).
        labels: ``(sample,)`` true class ids (ribbons are split and coloured by them).
        compact: the compact variant (see module docstring).
        gap: vertical space between nodes, in samples (default 3% of the
            samples, 0 when compact).

    Returns:
        :class:`SankeyLayout`.

    Example:
        >>> S = np.array([[0, 0, 1, 1], [0, 0, 1, -1], [0, 0, 0, 0]])
        >>> lay = sankey_layout(S, np.array([0, 0, 1, 1]), gap=0)
        >>> lay.size.tolist(), lay.r_count.tolist()
        ([2, 2, 2, 1, 1, 4], [2, 1, 1, 2, 1, 1])
    """
    S = np.asarray(stage_labels, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    if S.ndim != 2 or S.shape[1] != y.shape[0]:
        raise ValueError(
            f"stage_labels must have shape (stage, sample) with sample = len(labels) = {y.shape[0]}; "
            f"got {S.shape}."
        )
    n_stages, n = S.shape
    if gap is None:
        gap = 0.0 if compact else max(1.0, 0.03 * n)
    node_width = 0.05 if compact else 0.16
    stage_x = np.arange(n_stages, dtype=np.float64)
    nodes, rank, ntop = _stage_nodes(S, y, compact, gap)
    cat = _ribbons(rank, ntop, y, compact)
    stage_arr = np.asarray(nodes["stage"], dtype=np.int8)
    left = stage_x[stage_arr]
    return SankeyLayout(
        stage=stage_arr,
        cluster=np.asarray(nodes["cluster"], dtype=np.int32),
        label=np.asarray(nodes["label"], dtype=np.int16),
        size=np.asarray(nodes["size"], dtype=np.int32),
        cluster_size=np.asarray(nodes["csize"], dtype=np.int32),
        purity=np.asarray(nodes["purity"], dtype=np.float32),
        top=np.asarray(nodes["top"], dtype=np.float32),
        bottom=np.asarray(nodes["bottom"], dtype=np.float32),
        left=left.astype(np.float32),
        right=(left + node_width).astype(np.float32),
        r_stage=cat["stage"].astype(np.int8),
        r_label=cat["label"].astype(np.int16),
        r_count=cat["count"].astype(np.int32),
        r_y0=cat["y0"].astype(np.float32),
        r_y1=cat["y1"].astype(np.float32),
        stage_x=stage_x,
        node_width=node_width,
        compact=compact,
    )


def ribbon_paths(
    r_stage: np.ndarray, r_count: np.ndarray, r_y0: np.ndarray, r_y1: np.ndarray,
    stage_x: np.ndarray, node_width: float, points: int = RIBBON_POINTS,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Polygons of the ribbons: two cubic Bezier edges, ``2 * points`` vertices each.

    The browser runs the same formula (:data:`RIBBON_JS`) when it switches data.

    Returns:
        ``(xs, ys)``: lists of ``(2 * points,)`` float64 arrays, one per ribbon.

    Example:
        >>> xs, ys = ribbon_paths(np.array([0]), np.array([2]), np.array([0.0]), np.array([4.0]),
        ...                       np.array([0.0, 1.0]), 0.2, points=3)
        >>> xs[0].round(2).tolist(), ys[0].tolist()
        ([0.2, 0.6, 1.0, 1.0, 0.6, 0.2], [0.0, 2.0, 4.0, 6.0, 4.0, 2.0])
    """
    t = np.linspace(0.0, 1.0, points)
    u = 1.0 - t
    wa = u**3 + 3 * u * u * t
    wb = 1.0 - wa
    xs, ys = [], []
    for s, w, ya, yb in zip(np.asarray(r_stage), np.asarray(r_count, dtype=np.float64),
                            np.asarray(r_y0, dtype=np.float64), np.asarray(r_y1, dtype=np.float64)):
        x0 = stage_x[s] + node_width
        x1 = stage_x[s + 1]
        xm = 0.5 * (x0 + x1)
        bx = x0 * u**3 + 3 * xm * u * u * t + 3 * xm * u * t * t + x1 * t**3
        top = ya * wa + yb * wb
        bottom = (ya + w) * wa + (yb + w) * wb
        xs.append(np.concatenate([bx, bx[::-1]]))
        ys.append(np.concatenate([top, bottom[::-1]]))
    return xs, ys


# Mirrors ribbon_paths: d holds the compact ribbon columns of one view.
RIBBON_JS = """
function ribbon_paths(d, stage_x, node_width, K) {
  const xs = [], ys = [];
  for (let i = 0; i < d.r_stage.length; i++) {
    const s = d.r_stage[i], w = d.r_count[i], ya = d.r_y0[i], yb = d.r_y1[i];
    const x0 = stage_x[s] + node_width, x1 = stage_x[s + 1], xm = 0.5 * (x0 + x1);
    const px = new Float64Array(2 * K), py = new Float64Array(2 * K);
    for (let k = 0; k < K; k++) {
      const t = K > 1 ? k / (K - 1) : 0, u = 1 - t;
      const bx = x0 * u * u * u + 3 * xm * u * u * t + 3 * xm * u * t * t + x1 * t * t * t;
      const wa = u * u * u + 3 * u * u * t, wb = 1 - wa;
      px[k] = bx; py[k] = ya * wa + yb * wb;
      px[2 * K - 1 - k] = bx; py[2 * K - 1 - k] = (ya + w) * wa + (yb + w) * wb;
    }
    xs.push(px); ys.push(py);
  }
  return [xs, ys];
}
"""


def sankey_columns(lay: SankeyLayout) -> dict[str, dict[str, object]]:
    """The data of each source of :func:`sankey_figure`, by source name.

    ``sk.ribbons`` holds the compact columns (``r_*``); its ``xs``/``ys`` come
    from :func:`ribbon_paths`.
    """
    return {
        "sk.nodes": {
            "left": lay.left, "right": lay.right, "top": lay.top, "bottom": lay.bottom,
            "stage": lay.stage, "cluster": lay.cluster, "label": lay.label, "size": lay.size,
            "cluster_size": lay.cluster_size, "purity": lay.purity,
        },
        "sk.ribbons": {
            "r_stage": lay.r_stage, "r_label": lay.r_label, "r_count": lay.r_count,
            "r_y0": lay.r_y0, "r_y1": lay.r_y1,
        },
    }


def sankey_figure(
    lay: SankeyLayout,
    *,
    label_names: list[str] | tuple[str, ...] | None = None,
    title: str = "Sankey: labels to one component",
    width: int = 640,
    height: int = 430,
) -> figure:
    """Draw a :class:`SankeyLayout`: nodes as bars, ribbons as filled Bezier bands.

    Returns:
        a Bokeh figure named ``sk.figure`` with sources ``sk.nodes`` and ``sk.ribbons``.

    Example:
        >>> S = np.array([[0, 0, 1, 1], [0, 0, 1, -1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
        >>> fig = sankey_figure(sankey_layout(S, np.array([0, 0, 1, 1])), label_names=["cat", "dog"])
        >>> fig.select_one({"name": "sk.nodes"}).data["size"].tolist()[:2]
        [2, 2]
    """
    cols = sankey_columns(lay)
    n_classes = len(label_names) if label_names is not None else int(max(lay.label.max(initial=0), lay.r_label.max(initial=0))) + 1
    names = [str(i) for i in range(n_classes)] if label_names is None else [str(v) for v in label_names]
    lmap = id_mapper(class_palette(n_classes))
    ribbons = dict(cols["sk.ribbons"])
    ribbons["xs"], ribbons["ys"] = ribbon_paths(
        lay.r_stage, lay.r_count, lay.r_y0, lay.r_y1, lay.stage_x, lay.node_width
    )
    rib_src = ColumnDataSource(ribbons, name="sk.ribbons")
    node_src = ColumnDataSource(cols["sk.nodes"], name="sk.nodes")
    fig = figure(
        width=width, height=height, title=title, name="sk.figure", tools="pan,wheel_zoom,reset",
        toolbar_location="right", y_range=DataRange1d(flipped=True, range_padding=0.02),
        x_range=DataRange1d(range_padding=0.03),
    )
    fig.grid.visible = False
    fig.yaxis.visible = False
    fig.xaxis.ticker = FixedTicker(ticks=[float(x) for x in lay.stage_x])
    fig.xaxis.major_label_overrides = {float(x): STAGE_NAMES[i] for i, x in enumerate(lay.stage_x)}
    rib = fig.patches("xs", "ys", source=rib_src, line_color=None, fill_alpha=0.45,
                      fill_color={"field": "r_label", "transform": lmap},
                      hover_fill_alpha=0.8, hover_line_color="black")
    nodes = fig.quad(left="left", right="right", top="top", bottom="bottom", source=node_src,
                     fill_color={"field": "label", "transform": lmap}, line_color="white", line_width=0.5,
                     hover_line_color="black")
    name_fmt = CustomJSHover(args=dict(names=names),
                             code="return value >= 0 && value < names.length ? names[value] : 'mixed/outliers'")
    stage_fmt = CustomJSHover(args=dict(names=list(STAGE_NAMES)), code="return names[value]")
    cluster_fmt = CustomJSHover(code="return value < 0 ? 'small/outliers' : String(value)")
    fig.add_tools(HoverTool(
        renderers=[nodes],
        tooltips=[("stage", "@stage{custom}"), ("cluster", "@cluster{custom}"),
                  ("samples", "@size of @cluster_size"), ("class", "@label{custom}"),
                  ("cluster purity", "@purity{0.00}")],
        formatters={"@stage": stage_fmt, "@cluster": cluster_fmt, "@label": name_fmt},
    ))
    fig.add_tools(HoverTool(
        renderers=[rib],
        tooltips=[("from stage", "@r_stage{custom}"), ("class", "@r_label{custom}"), ("samples", "@r_count")],
        formatters={"@r_stage": stage_fmt, "@r_label": name_fmt},
    ))
    return fig
