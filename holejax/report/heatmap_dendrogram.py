"""Heatmap-dendrogram: the distance matrix in a seriation order, the H0 merge tree above it.

HOLE (section 3.4) reorders the pairwise distance matrix by Reverse
Cuthill-McKee (RCM) and draws the dendrogram of the H0 merge tree (single
linkage on the death thresholds) beside it, keeping the data in the RCM
order; each major cluster gets a colour. holejax offers that order and the
dendrogram's own leaf order, in which every cluster is a contiguous block.

RCM reduces the bandwidth of a sparse graph. On the dense distance matrix
every vertex has the same degree and the order says nothing, so
:func:`rcm_order` applies it to the symmetric k-nearest-neighbour graph of
the distances (``n_neighbors=None`` uses the dense matrix, as a literal
reading of the method would).

For display only, the matrix is averaged over ``size x size`` blocks of the
ordered samples and stored as 8-bit codes, and the dendrogram keeps its last
``max_leaves - 1`` merges: the clusters formed below them are drawn as leaves
placed at the mean position of their samples, starting at their own merge
height.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from bokeh.layouts import column
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    CustomJSHover,
    HoverTool,
    LinearColorMapper,
    Range1d,
)
from bokeh.plotting import figure
from scipy.cluster.hierarchy import leaves_list
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee

from holejax._checks import check_choice
from holejax.report._study import finite_cap
from holejax.report._style import INF_COLOR, class_palette, cluster_palette, heatmap_palette, id_mapper

__all__ = [
    "ORDERS",
    "DendrogramSegments",
    "LabelStrip",
    "HeatmapDendrogram",
    "rcm_order",
    "seriation_order",
    "bin_edges",
    "block_means",
    "quantize",
    "dendrogram_segments",
    "heatmap_dendrogram",
    "heatmap_dendrogram_columns",
    "heatmap_dendrogram_figure",
]

ORDERS = ("rcm", "dendrogram")
INF_CODE = 255


class DendrogramSegments(NamedTuple):
    """One row per drawn merge: a horizontal bar at ``h`` joining two vertical legs.

    Attributes:
        xl, xr: ``(merge,)`` positions of the two children (heatmap coordinates, 0..n).
        h: ``(merge,)`` merge heights (infinite heights drawn at the cap).
        yl, yr: ``(merge,)`` heights where the children's legs start.
        color, color_l, color_r: ``(merge,)`` cluster id of the bar and of each
            leg, -1 (grey) where the members span several clusters or none.
    """

    xl: np.ndarray
    xr: np.ndarray
    h: np.ndarray
    yl: np.ndarray
    yr: np.ndarray
    color: np.ndarray
    color_l: np.ndarray
    color_r: np.ndarray


class LabelStrip(NamedTuple):
    """Per display bin of the ordered samples: where it is and what it holds.

    Attributes:
        x, width: ``(bin,)`` centre and width in heatmap coordinates.
        first: ``(bin,)`` first sample id in the bin; count: samples in the bin.
        label, cluster: ``(bin,)`` the most common class id and cluster id.
    """

    x: np.ndarray
    width: np.ndarray
    first: np.ndarray
    count: np.ndarray
    label: np.ndarray
    cluster: np.ndarray


class HeatmapDendrogram(NamedTuple):
    """Everything the heatmap-dendrogram view draws for one cloud.

    Attributes:
        image: ``(size, size)`` uint8 codes of the block-mean distances
            (0..254 linear from ``lo`` to ``hi``; 255 = infinite).
        lo, hi: distance range of the codes.
        order: ``(sample,)`` the seriation order (positions -> sample index).
        edges: ``(size + 1,)`` bin edges over positions.
        segments: :class:`DendrogramSegments`.
        strip: :class:`LabelStrip`.
        n: number of samples; cap: height infinite merges are drawn at.
        method: ``"rcm"`` or ``"dendrogram"``.
    """

    image: np.ndarray
    lo: float
    hi: float
    order: np.ndarray
    edges: np.ndarray
    segments: DendrogramSegments
    strip: LabelStrip
    n: int
    cap: float
    method: str


def _check_linkage(linkage: np.ndarray, n: int | None = None) -> np.ndarray:
    Z = np.asarray(linkage, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != 4:
        raise ValueError(
            f"linkage must have shape (n - 1, 4) like scipy's; got {Z.shape}. Pass H0Result.linkage."
        )
    if n is not None and Z.shape[0] != n - 1:
        raise ValueError(f"linkage has {Z.shape[0]} merges; expected n - 1 = {n - 1} for {n} samples.")
    return Z


def rcm_order(D: np.ndarray, n_neighbors: int | None = 10) -> np.ndarray:
    """Reverse Cuthill-McKee order of the k-nearest-neighbour graph of a distance matrix.

    Args:
        D: ``(sample, sample)`` distances; infinite entries are never edges.
        n_neighbors: neighbours per sample in the symmetrised graph; None uses
            every finite off-diagonal entry (the dense matrix).

    Returns:
        ``(sample,)`` int64 permutation.

    Example:
        >>> X = np.array([0.0, 10.0, 1.0, 11.0, 2.0])
        >>> D = np.abs(X[:, None] - X[None, :])
        >>> o = rcm_order(D, n_neighbors=1)  # the two groups stay contiguous
        >>> sorted(o[:2].tolist()), sorted(o[2:].tolist())
        ([1, 3], [0, 2, 4])
    """
    D = np.asarray(D)
    n = D.shape[0]
    if D.ndim != 2 or D.shape[1] != n:
        raise ValueError(f"D must be a square (sample, sample) matrix; got shape {D.shape}.")
    if n == 1:
        return np.zeros(1, np.int64)
    finite = np.isfinite(D)
    np.fill_diagonal(finite, False)
    if n_neighbors is None:
        adj = finite
    else:
        if int(n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1 or None; got {n_neighbors}.")
        k = min(int(n_neighbors), n - 1)
        W = np.where(finite, D, np.inf)
        nn = np.argpartition(W, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(n), k)
        cols = nn.ravel()
        keep = np.isfinite(W[rows, cols])
        adj = np.zeros((n, n), dtype=bool)
        adj[rows[keep], cols[keep]] = True
        adj |= adj.T
    graph = csr_matrix(adj.astype(np.int8))
    return np.asarray(reverse_cuthill_mckee(graph, symmetric_mode=True), dtype=np.int64)


def seriation_order(
    D: np.ndarray | None, linkage: np.ndarray, method: str = "rcm", n_neighbors: int | None = 10
) -> np.ndarray:
    """The heatmap order: ``"rcm"`` (needs ``D``) or ``"dendrogram"`` (scipy's ``leaves_list`` of ``linkage``)."""
    check_choice(method, "order", ORDERS)
    if method == "dendrogram":
        return leaves_list(_check_linkage(linkage)).astype(np.int64)
    if D is None:
        raise ValueError("order='rcm' needs the distance matrix D; got None.")
    return rcm_order(D, n_neighbors)


def bin_edges(n: int, size: int) -> np.ndarray:
    """``min(size, n) + 1`` increasing bin edges over ``n`` positions.

    Example:
        >>> bin_edges(10, 4).tolist()
        [0, 2, 5, 7, 10]
    """
    s = max(1, min(int(size), int(n)))
    return (np.arange(s + 1, dtype=np.int64) * int(n)) // s


def block_means(D: np.ndarray, order: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean distance over each block of ordered samples (infinite if any entry is).

    Args:
        D: ``(sample, sample)`` distances.
        order: ``(sample,)`` permutation; edges: ``(bin + 1,)`` from :func:`bin_edges`.

    Returns:
        ``(bin, bin)`` float64.

    Example:
        >>> D = np.arange(16.0).reshape(4, 4)
        >>> block_means(D, np.arange(4), np.array([0, 2, 4])).tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """
    P = np.asarray(D, dtype=np.float64)[np.ix_(order, order)]
    starts = edges[:-1]
    counts = np.diff(edges).astype(np.float64)
    S = np.add.reduceat(np.add.reduceat(P, starts, axis=0), starts, axis=1)
    return S / np.outer(counts, counts)


def quantize(M: np.ndarray) -> tuple[np.ndarray, float, float]:
    """8-bit codes of a matrix: 0..254 linear over its finite range, 255 for infinite.

    Example:
        >>> codes, lo, hi = quantize(np.array([[0.0, 1.0], [np.inf, 0.5]]))
        >>> codes.tolist(), lo, hi
        ([[0, 254], [255, 127]], 0.0, 1.0)
    """
    M = np.asarray(M, dtype=np.float64)
    finite = np.isfinite(M)
    lo = float(M[finite].min()) if finite.any() else 0.0
    hi = float(M[finite].max()) if finite.any() else 1.0
    span = hi - lo if hi > lo else 1.0
    codes = np.where(finite, np.rint((np.where(finite, M, lo) - lo) / span * 254), INF_CODE)
    return codes.astype(np.uint8), lo, hi


def dendrogram_segments(
    linkage: np.ndarray,
    order: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    max_leaves: int | None = None,
    cap: float | None = None,
) -> DendrogramSegments:
    """Line segments of the merge tree drawn over the positions of ``order``.

    Args:
        linkage: ``(sample - 1, 4)`` scipy-compatible linkage (merge order ascending).
        order: ``(sample,)`` permutation; sample ``order[p]`` sits at position ``p + 0.5``.
        clusters: ``(sample,)`` cluster id per sample (-1: none) used for colours.
        max_leaves: draw only the last ``max_leaves - 1`` merges (default: all).
        cap: height for infinite merges (default 1.1 x the largest finite).

    Returns:
        :class:`DendrogramSegments` with one row per drawn merge, in merge order.

    Example:
        >>> Z = np.array([[0, 1, 1.0, 2], [2, 3, 3.0, 3]])
        >>> s = dendrogram_segments(Z, np.array([0, 1, 2]))
        >>> s.xl.tolist(), s.xr.tolist(), s.h.tolist()
        ([0.5, 2.5], [1.5, 1.0], [1.0, 3.0])
    """
    Z = _check_linkage(linkage)
    n = Z.shape[0] + 1
    order = np.asarray(order, dtype=np.int64)
    if order.shape != (n,):
        raise ValueError(f"order must have shape ({n},) to match linkage; got {order.shape}.")
    a = Z[:, 0].astype(np.int64)
    b = Z[:, 1].astype(np.int64)
    h = Z[:, 2].copy()
    cap = finite_cap(h) if cap is None else float(cap)
    h[~np.isfinite(h)] = cap
    total = 2 * n - 1
    pos = np.empty(n)
    pos[order] = np.arange(n) + 0.5
    psum = np.zeros(total)
    psum[:n] = pos
    cnt = np.ones(total)
    col = np.full(total, -1, dtype=np.int64)
    if clusters is not None:
        col[:n] = np.asarray(clusters, dtype=np.int64)
    height = np.zeros(total)
    height[n:] = h
    for i in range(n - 1):
        ai, bi = a[i], b[i]
        psum[n + i] = psum[ai] + psum[bi]
        cnt[n + i] = cnt[ai] + cnt[bi]
        col[n + i] = col[ai] if col[ai] == col[bi] else -1
    x = psum / cnt
    kept = n - 1 if max_leaves is None else int(np.clip(int(max_leaves) - 1, 1, n - 1))
    first = n - 1 - kept
    for i in range(first, n - 1):
        x[n + i] = 0.5 * (x[a[i]] + x[b[i]])
    rows = np.arange(first, n - 1)
    f32 = np.float32
    return DendrogramSegments(
        xl=x[a[rows]].astype(f32),
        xr=x[b[rows]].astype(f32),
        h=h[rows].astype(f32),
        yl=height[a[rows]].astype(f32),
        yr=height[b[rows]].astype(f32),
        color=col[n + rows].astype(np.int16),
        color_l=col[a[rows]].astype(np.int16),
        color_r=col[b[rows]].astype(np.int16),
    )


def _bin_modes(values: np.ndarray, order: np.ndarray, edges: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64)[order] + 1  # shift -1 to 0
    bins = np.repeat(np.arange(len(edges) - 1), np.diff(edges))
    counts = np.zeros((len(edges) - 1, int(v.max()) + 1), dtype=np.int64)
    np.add.at(counts, (bins, v), 1)
    return counts.argmax(axis=1) - 1


def heatmap_dendrogram(
    D: np.ndarray | None,
    linkage: np.ndarray,
    labels: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    order: str = "rcm",
    size: int = 256,
    max_leaves: int | None = None,
    n_neighbors: int | None = 10,
    sample_ids: np.ndarray | None = None,
) -> HeatmapDendrogram:
    """Compute the heatmap-dendrogram view of one cloud.

    Args:
        D: ``(sample, sample)`` distances.
        linkage: ``(sample - 1, 4)`` H0 merge tree (``H0Result.linkage``).
        labels: ``(sample,)`` class ids; clusters: ``(sample,)`` cluster ids
            (-1: small/outlier) giving the major-cluster colours.
        order: ``"rcm"`` or ``"dendrogram"``.
        size: display resolution (bins per side, at most ``sample``).
        max_leaves: leaves drawn in the dendrogram (default: ``size``).
        n_neighbors: neighbours of the graph RCM runs on (see :func:`rcm_order`).
        sample_ids: ``(sample,)`` ids shown in tooltips (default ``0..n-1``).

    Returns:
        :class:`HeatmapDendrogram`.

    Example:
        >>> from scipy.cluster.hierarchy import linkage as scipy_linkage
        >>> from scipy.spatial.distance import pdist, squareform
        >>> X = np.array([[0.0], [0.1], [5.0], [5.2]])
        >>> hd = heatmap_dendrogram(squareform(pdist(X)), scipy_linkage(X, "single"),
        ...                         np.array([0, 0, 1, 1]), order="dendrogram", size=2)
        >>> hd.image.shape, hd.strip.label.tolist()
        ((2, 2), [0, 1])
    """
    check_choice(order, "order", ORDERS)
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    Z = _check_linkage(linkage, n)
    if D is None or np.shape(D) != (n, n):
        raise ValueError(f"D must have shape ({n}, {n}) to match labels; got {np.shape(D)}.")
    clusters = np.full(n, -1, np.int64) if clusters is None else np.asarray(clusters, dtype=np.int64)
    if clusters.shape != (n,):
        raise ValueError(f"clusters must have shape ({n},); got {clusters.shape}.")
    ids = np.arange(n) if sample_ids is None else np.asarray(sample_ids)
    perm = seriation_order(D, Z, order, n_neighbors)
    edges = bin_edges(n, size)
    image, lo, hi = quantize(block_means(D, perm, edges))
    cap = finite_cap(Z[:, 2])
    segments = dendrogram_segments(
        Z, perm, clusters, max_leaves=len(edges) - 1 if max_leaves is None else max_leaves, cap=cap
    )
    widths = np.diff(edges)
    strip = LabelStrip(
        x=(edges[:-1] + 0.5 * widths).astype(np.float32),
        width=widths.astype(np.float32),
        first=ids[perm[edges[:-1]]].astype(np.int32),
        count=widths.astype(np.int32),
        label=_bin_modes(labels, perm, edges).astype(np.int16),
        cluster=_bin_modes(clusters, perm, edges).astype(np.int16),
    )
    return HeatmapDendrogram(image, lo, hi, perm, edges, segments, strip, n, cap, order)


def heatmap_dendrogram_columns(hd: HeatmapDendrogram) -> dict[str, dict[str, object]]:
    """The data of each source of :func:`heatmap_dendrogram_figure`, by source name."""
    seg = hd.segments
    st = hd.strip
    return {
        "hd.image": {"image": [hd.image], "x": [0.0], "y": [0.0], "dw": [float(hd.n)], "dh": [float(hd.n)]},
        "hd.dendro": {
            "xl": seg.xl, "xr": seg.xr, "h": seg.h, "yl": seg.yl, "yr": seg.yr,
            "c": seg.color, "cl": seg.color_l, "cr": seg.color_r,
        },
        "hd.strip": {
            "x": st.x, "width": st.width, "first": st.first, "count": st.count,
            "label": st.label, "cluster": st.cluster,
        },
    }


def heatmap_dendrogram_figure(
    hd: HeatmapDendrogram,
    *,
    label_names: list[str] | tuple[str, ...] | None = None,
    n_cluster_colors: int | None = None,
    title: str = "Heatmap-dendrogram",
    width: int = 460,
) -> column:
    """Dendrogram, class/cluster strips and heatmap stacked on one shared x axis.

    Args:
        hd: from :func:`heatmap_dendrogram`.
        label_names: class names for tooltips (default: the ids).
        n_cluster_colors: size of the cluster palette (default: max cluster id + 1).
        title: text above the dendrogram.
        width: pixel width of each panel.

    Returns:
        a Bokeh ``column``; its sources are named ``hd.image``, ``hd.dendro`` and
        ``hd.strip``, its figures ``hd.dendrogram``, ``hd.strips`` and ``hd.heatmap``,
        the colour bar's mapper ``hd.colorbar``.

    Example:
        >>> from scipy.cluster.hierarchy import linkage as scipy_linkage
        >>> X = np.array([[0.0], [0.1], [5.0], [5.2]])
        >>> hd = heatmap_dendrogram(np.abs(X - X.T), scipy_linkage(X, "single"), np.array([0, 0, 1, 1]))
        >>> [f.name for f in heatmap_dendrogram_figure(hd).children]
        ['hd.dendrogram', 'hd.strips', 'hd.heatmap']
    """
    cols = heatmap_dendrogram_columns(hd)
    n = float(hd.n)
    n_classes = int(hd.strip.label.max()) + 1 if label_names is None else len(label_names)
    names = [str(i) for i in range(n_classes)] if label_names is None else [str(v) for v in label_names]
    if n_cluster_colors is None:
        n_cluster_colors = max(int(hd.strip.cluster.max()), int(hd.segments.color.max(initial=-1))) + 1
    cmap = id_mapper(cluster_palette(n_cluster_colors))
    lmap = id_mapper(class_palette(n_classes))
    x_range = Range1d(0, n, bounds=(0, n))
    border = 60

    dendro_src = ColumnDataSource(cols["hd.dendro"], name="hd.dendro")
    dend = figure(
        width=width, height=170, x_range=x_range, title=title, name="hd.dendrogram",
        tools="xpan,xwheel_zoom,reset", toolbar_location=None, min_border_left=border,
    )
    dend.y_range.start = 0
    dend.xaxis.visible = False
    dend.yaxis.axis_label = "death"
    dend.xgrid.visible = False
    line = dict(source=dendro_src, line_width=1.2)
    dend.segment("xl", "h", "xr", "h", line_color={"field": "c", "transform": cmap}, **line)
    dend.segment("xl", "yl", "xl", "h", line_color={"field": "cl", "transform": cmap}, **line)
    dend.segment("xr", "yr", "xr", "h", line_color={"field": "cr", "transform": cmap}, **line)

    strip_src = ColumnDataSource(cols["hd.strip"], name="hd.strip")
    strip = figure(
        width=width, height=56, x_range=x_range, y_range=Range1d(-0.5, 1.5), name="hd.strips",
        tools="", toolbar_location=None, min_border_left=border, min_border_top=2, min_border_bottom=2,
    )
    strip.axis.visible = False
    strip.grid.visible = False
    strip.rect("x", 1, "width", 1, source=strip_src, line_color=None,
               fill_color={"field": "label", "transform": lmap})
    strip.rect("x", 0, "width", 1, source=strip_src, line_color=None,
               fill_color={"field": "cluster", "transform": cmap})
    label_fmt = CustomJSHover(args=dict(names=names), code="return value >= 0 && value < names.length ? names[value] : String(value)")
    strip.add_tools(HoverTool(
        tooltips=[("sample", "@first"), ("samples in bin", "@count"), ("label", "@label{custom}"),
                  ("cluster", "@cluster")],
        formatters={"@label": label_fmt},
    ))

    image_src = ColumnDataSource(cols["hd.image"], name="hd.image")
    heat = figure(
        width=width, height=width, x_range=x_range, y_range=Range1d(n, 0, bounds=(0, n)), name="hd.heatmap",
        tools="pan,wheel_zoom,reset", toolbar_location="below", min_border_left=border,
    )
    codes = LinearColorMapper(palette=heatmap_palette(), low=0, high=254, high_color=INF_COLOR)
    heat.image("image", x="x", y="y", dw="dw", dh="dh", source=image_src, color_mapper=codes)
    heat.grid.visible = False
    heat.xaxis.axis_label = "samples in the selected order"
    bar_mapper = LinearColorMapper(palette=heatmap_palette(), low=hd.lo, high=hd.hi, name="hd.colorbar")
    heat.add_layout(ColorBar(color_mapper=bar_mapper, orientation="horizontal", height=10,
                             title="mean distance (black: infinite)"), "below")
    value_fmt = CustomJSHover(
        args=dict(m=bar_mapper),
        code="return value >= 255 ? 'inf' : (m.low + value / 254 * (m.high - m.low)).toPrecision(4)",
    )
    heat.add_tools(HoverTool(tooltips=[("position", "($x{0}, $y{0})"), ("mean distance", "@image{custom}")],
                             formatters={"@image": value_fmt}))
    return column(dend, strip, heat, name="hd.view")
