"""Blob graph: a 2-D PCA of a layer, points coloured by class, H0 clusters outlined.

HOLE (section 3.4) projects the activations with PCA, colours each point by
its true class and draws a boundary around each H0 component at a chosen
death threshold (the best stage by default), coloured by cluster: a convex
hull or an alpha shape. Points of clusters below the minimum size are
outliers (marked with a cross); points whose class is not the majority of
their cluster are ringed.

The PCA is fitted on the clean activations of the layer and applied to every
perturbation, so the pictures of one layer share their axes.

Alpha shape: the union of the Delaunay triangles of a cluster whose
circumradius is at most ``radius``, outlined by its outer boundary loops
(holes are not drawn). The default radius is twice the 90th percentile of
the nearest-neighbour distance in the projection.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from bokeh.models import ColumnDataSource, CustomJSHover, HoverTool, Legend, LegendItem
from bokeh.plotting import figure
from scipy.spatial import ConvexHull, Delaunay, QhullError, cKDTree

from holejax._checks import as_cloud, check_choice
from holejax.report._style import class_palette, cluster_palette, id_mapper

__all__ = [
    "BOUNDARIES",
    "Boundaries",
    "BlobData",
    "pca_2d",
    "convex_hull",
    "alpha_shape",
    "default_alpha_radius",
    "cluster_boundaries",
    "blob_data",
    "blob_columns",
    "blob_figure",
]

BOUNDARIES = ("convex", "alpha")


class Boundaries(NamedTuple):
    """Polygons around clusters.

    Attributes:
        cluster: ``(polygon,)`` cluster id of each polygon.
        xs, ys: lists of ``(vertex,)`` float32 arrays, one per polygon.
    """

    cluster: np.ndarray
    xs: list[np.ndarray]
    ys: list[np.ndarray]


class BlobData(NamedTuple):
    """What the blob graph draws for one cloud.

    Attributes:
        xy: ``(sample, 2)`` float32 projection.
        labels, clusters: ``(sample,)`` class and cluster ids (-1: outlier).
        outlier, mismatch: ``(sample,)`` bool marks.
        boundaries: ``{"convex": Boundaries, "alpha": Boundaries}``.
        radius: the alpha-shape radius used.
    """

    xy: np.ndarray
    labels: np.ndarray
    clusters: np.ndarray
    outlier: np.ndarray
    mismatch: np.ndarray
    boundaries: dict[str, Boundaries]
    radius: float


def pca_2d(X: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Project ``X`` onto the first two principal axes of ``reference`` (default ``X``).

    Axes are signed so that each has a positive largest-magnitude loading.

    Args:
        X: ``(sample, unit)`` activations.
        reference: ``(sample', unit)`` activations the axes are fitted on.

    Returns:
        ``(sample, 2)`` float32 (second column zero for one unit).

    Example:
        >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.1]])
        >>> np.abs(pca_2d(X)[:, 0]).round(2).tolist()
        [2.0, 0.0, 2.0]
    """
    X = as_cloud(X, "X").astype(np.float64)
    R = X if reference is None else as_cloud(reference, "reference").astype(np.float64)
    if R.shape[1] != X.shape[1]:
        raise ValueError(f"reference has {R.shape[1]} units but X has {X.shape[1]}; pass the same layer.")
    mu = R.mean(axis=0)
    Rc = R - mu
    n, d = Rc.shape
    k = min(2, d, n)
    if d <= n:
        w, V = np.linalg.eigh(Rc.T @ Rc)
        V = V[:, ::-1][:, :k]
    else:
        w, U = np.linalg.eigh(Rc @ Rc.T)
        w, U = w[::-1][:k], U[:, ::-1][:, :k]
        V = Rc.T @ U / np.sqrt(np.maximum(w, 1e-300))
    signs = np.sign(V[np.abs(V).argmax(axis=0), np.arange(V.shape[1])])
    V = V * np.where(signs == 0, 1.0, signs)
    out = np.zeros((X.shape[0], 2))
    out[:, :k] = (X - mu) @ V
    return out.astype(np.float32)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull vertices ``(vertex, 2)`` of 2-D points.

    Fewer than 3 points, or collinear points, give the segment between the extremes.

    Example:
        >>> convex_hull(np.array([[0, 0], [1, 0], [0, 1], [0.2, 0.2]])).tolist()
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    """
    P = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(P) >= 3:
        try:
            return P[ConvexHull(P).vertices]
        except QhullError:
            pass
    if len(P) == 0:
        return np.zeros((0, 2))
    c = P - P.mean(axis=0)
    axis = np.linalg.svd(c, full_matrices=False)[2][0] if len(P) > 1 else np.array([1.0, 0.0])
    t = c @ axis
    return P[[int(t.argmin()), int(t.argmax())]]


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def alpha_shape(points: np.ndarray, radius: float) -> list[np.ndarray]:
    """Outer boundary loops of the alpha shape of 2-D points (Delaunay triangles, circumradius <= radius).

    Args:
        points: ``(point, 2)``.
        radius: largest circumradius kept.

    Returns:
        list of ``(vertex, 2)`` counter-clockwise polygons (empty if no triangle is kept).

    Example:
        >>> sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
        >>> [p.shape for p in alpha_shape(sq, 1.0)], alpha_shape(sq, 0.1)
        ([(4, 2)], [])
    """
    P = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(P) < 3:
        return []
    try:
        tri = Delaunay(P).simplices
    except QhullError:
        return []
    A, B, C = P[tri[:, 0]], P[tri[:, 1]], P[tri[:, 2]]
    cross = (B[:, 0] - A[:, 0]) * (C[:, 1] - A[:, 1]) - (B[:, 1] - A[:, 1]) * (C[:, 0] - A[:, 0])
    a = np.linalg.norm(B - C, axis=1)
    b = np.linalg.norm(A - C, axis=1)
    c = np.linalg.norm(A - B, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        R = a * b * c / (2.0 * np.abs(cross))
    keep = (np.abs(cross) > 0) & (R <= radius)
    tri = tri[keep]
    flip = cross[keep] < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    if not len(tri):
        return []
    directed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    present = {tuple(e) for e in directed.tolist()}
    nxt: dict[int, list[int]] = {}
    for u, v in directed.tolist():
        if (v, u) not in present:
            nxt.setdefault(u, []).append(v)
    loops = []
    while nxt:
        start = next(iter(nxt))
        loop = [start]
        cur = start
        while True:
            v = nxt[cur].pop()
            if not nxt[cur]:
                del nxt[cur]
            if v == start or v not in nxt:
                break
            loop.append(v)
            cur = v
        poly = P[loop]
        if len(poly) >= 3 and _signed_area(poly) > 0:
            loops.append(poly)
    return loops


def default_alpha_radius(xy: np.ndarray) -> float:
    """Twice the 90th percentile of the nearest-neighbour distance of 2-D points.

    Example:
        >>> default_alpha_radius(np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]))
        3.6
    """
    P = np.asarray(xy, dtype=np.float64)
    if len(P) < 2:
        return 1.0
    d, _ = cKDTree(P).query(P, k=2)
    nn = d[:, 1]
    nn = nn[nn > 0]
    return round(2.0 * float(np.percentile(nn, 90)), 12) if nn.size else 1.0


def cluster_boundaries(
    xy: np.ndarray, clusters: np.ndarray, kind: str = "convex", radius: float | None = None
) -> Boundaries:
    """One or more polygons around each cluster id >= 0.

    Args:
        xy: ``(sample, 2)``; clusters: ``(sample,)`` ids (-1 ignored).
        kind: ``"convex"`` (hull) or ``"alpha"`` (alpha shape with ``radius``).

    Example:
        >>> xy = np.array([[0, 0], [1, 0], [0, 1], [5, 5]], dtype=float)
        >>> b = cluster_boundaries(xy, np.array([0, 0, 0, -1]))
        >>> b.cluster.tolist(), len(b.xs[0])
        ([0], 3)
    """
    check_choice(kind, "boundary", BOUNDARIES)
    xy = np.asarray(xy, dtype=np.float64)
    clusters = np.asarray(clusters, dtype=np.int64)
    if kind == "alpha" and radius is None:
        radius = default_alpha_radius(xy)
    ids, xs, ys = [], [], []
    for c in np.unique(clusters[clusters >= 0]):
        pts = xy[clusters == c]
        polys = [convex_hull(pts)] if kind == "convex" else alpha_shape(pts, radius)
        for poly in polys:
            if len(poly):
                ids.append(int(c))
                xs.append(poly[:, 0].astype(np.float32))
                ys.append(poly[:, 1].astype(np.float32))
    return Boundaries(np.asarray(ids, dtype=np.int32), xs, ys)


def blob_data(
    xy: np.ndarray, labels: np.ndarray, clusters: np.ndarray, *, radius: float | None = None
) -> BlobData:
    """Marks and both kinds of boundaries for a projected cloud.

    Args:
        xy: ``(sample, 2)`` projection (:func:`pca_2d`).
        labels: ``(sample,)`` class ids; clusters: ``(sample,)`` H0 cluster ids at
            the chosen threshold, -1 for small clusters (outliers).
        radius: alpha-shape radius (default :func:`default_alpha_radius`).

    Example:
        >>> xy = np.array([[0, 0], [1, 0], [0, 1], [5, 5]], dtype=float)
        >>> bd = blob_data(xy, np.array([0, 0, 1, 1]), np.array([0, 0, 0, -1]))
        >>> bd.outlier.tolist(), bd.mismatch.tolist()
        ([False, False, False, True], [False, False, True, False])
    """
    xy = np.asarray(xy, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    clusters = np.asarray(clusters, dtype=np.int64)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] != labels.shape[0] or clusters.shape != labels.shape:
        raise ValueError(
            f"xy must be (sample, 2) and labels, clusters (sample,) of one length; got "
            f"{xy.shape}, {labels.shape}, {clusters.shape}."
        )
    outlier = clusters < 0
    mismatch = np.zeros(labels.shape, dtype=bool)
    for c in np.unique(clusters[clusters >= 0]):
        members = clusters == c
        major = np.bincount(labels[members]).argmax()
        mismatch |= members & (labels != major)
    radius = default_alpha_radius(xy) if radius is None else float(radius)
    bounds = {kind: cluster_boundaries(xy, clusters, kind, radius) for kind in BOUNDARIES}
    return BlobData(xy, labels, clusters, outlier, mismatch, bounds, radius)


def blob_columns(bd: BlobData, kind: str = "convex", display: np.ndarray | None = None) -> dict[str, dict[str, object]]:
    """The per-view data of the blob sources; ``display`` picks the points drawn (default: all)."""
    check_choice(kind, "boundary", BOUNDARIES)
    idx = np.arange(len(bd.labels)) if display is None else np.asarray(display)
    b = bd.boundaries[kind]
    return {
        "blob.xy": {"x": bd.xy[idx, 0], "y": bd.xy[idx, 1]},
        "blob.marks": {
            "cluster": bd.clusters[idx].astype(np.int16),
            "out": bd.outlier[idx].astype(np.uint8),
            "mis": bd.mismatch[idx].astype(np.uint8),
        },
        "blob.hulls": {"xs": b.xs, "ys": b.ys, "cluster": b.cluster},
    }


def blob_figure(
    bd: BlobData,
    *,
    boundary: str = "convex",
    label_names: list[str] | tuple[str, ...] | None = None,
    n_cluster_colors: int | None = None,
    sample_ids: np.ndarray | None = None,
    display: np.ndarray | None = None,
    title: str = "Blob graph (PCA)",
    width: int = 520,
    height: int = 480,
) -> figure:
    """Scatter the projection by class with cluster boundaries and outlier marks.

    Args:
        bd: from :func:`blob_data`.
        boundary: ``"convex"`` or ``"alpha"``.
        label_names: class names (legend and tooltips).
        n_cluster_colors: size of the cluster palette (default: max id + 1).
        sample_ids: ``(sample,)`` ids for tooltips (default ``0..n-1``).
        display: indices of the points to draw (display-only downsampling).

    Returns:
        a Bokeh figure named ``blob.figure``; sources ``blob.points`` (columns of
        ``blob.xy`` and ``blob.marks`` plus sample, label) and ``blob.hulls``.

    Example:
        >>> xy = np.array([[0, 0], [1, 0], [0, 1], [5, 5]], dtype=float)
        >>> fig = blob_figure(blob_data(xy, np.array([0, 0, 1, 1]), np.array([0, 0, 0, -1])))
        >>> fig.select_one({"name": "blob.points"}).data["out"].tolist()
        [0, 0, 0, 1]
    """
    cols = blob_columns(bd, boundary, display)
    idx = np.arange(len(bd.labels)) if display is None else np.asarray(display)
    n_classes = int(bd.labels.max()) + 1 if label_names is None else len(label_names)
    names = [str(i) for i in range(n_classes)] if label_names is None else [str(v) for v in label_names]
    if n_cluster_colors is None:
        n_cluster_colors = int(bd.clusters.max()) + 1
    cmap = id_mapper(cluster_palette(n_cluster_colors))
    lmap = id_mapper(class_palette(n_classes))
    ids = np.arange(len(bd.labels)) if sample_ids is None else np.asarray(sample_ids)
    points = {**cols["blob.xy"], **cols["blob.marks"],
              "sample": ids[idx].astype(np.int64), "label": bd.labels[idx].astype(np.int16),
              "label_name": [names[c] if 0 <= c < len(names) else str(c) for c in bd.labels[idx].tolist()]}
    pt_src = ColumnDataSource(points, name="blob.points")
    hull_src = ColumnDataSource(cols["blob.hulls"], name="blob.hulls")
    fig = figure(width=width, height=height, title=title, name="blob.figure",
                 tools="pan,wheel_zoom,box_zoom,reset", match_aspect=True)
    fig.xaxis.axis_label = "PC 1"
    fig.yaxis.axis_label = "PC 2"
    fig.patches("xs", "ys", source=hull_src, fill_alpha=0.12, line_width=2,
                fill_color={"field": "cluster", "transform": cmap},
                line_color={"field": "cluster", "transform": cmap})
    pts = fig.scatter("x", "y", source=pt_src, size=6, line_color=None, fill_alpha=0.85,
                      fill_color={"field": "label", "transform": lmap})
    fig.scatter("x", "y", source=pt_src, marker="x", size=9, line_color="black", line_width=1.5,
                line_alpha="out")
    fig.scatter("x", "y", source=pt_src, marker="circle", size=11, fill_color=None, line_color="black",
                line_width=1, line_alpha="mis")
    cluster_fmt = CustomJSHover(code="return value < 0 ? 'outlier (small cluster)' : String(value)")
    fig.add_tools(HoverTool(
        renderers=[pts],
        tooltips=[("sample", "@sample"), ("label", "@label_name"), ("cluster", "@cluster{custom}")],
        formatters={"@cluster": cluster_fmt},
    ))
    if n_classes <= 20:
        palette = class_palette(n_classes)
        items = []
        for c in range(n_classes):
            r = fig.scatter([np.nan], [np.nan], size=8, fill_color=palette[c], line_color=None)
            items.append(LegendItem(label=names[c], renderers=[r]))
        fig.add_layout(Legend(items=items, label_text_font_size="8pt", spacing=0, padding=4), "right")
    return fig
