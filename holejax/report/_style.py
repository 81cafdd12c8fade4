"""Colours shared by the report's figures.

Points, Sankey ribbons and label strips are coloured by class; blobs and the
dendrogram by H0 cluster, from a different palette so the two encodings can
be told apart. Colour columns hold integer ids that a ``LinearColorMapper``
turns into colours, so the browser can switch data without any colour strings.
"""

from __future__ import annotations

from bokeh.models import LinearColorMapper
from bokeh.palettes import Category10_10, Category20_20, Dark2_8, Turbo256, Viridis256, linear_palette

__all__ = [
    "GREY",
    "INF_COLOR",
    "class_palette",
    "cluster_palette",
    "id_mapper",
    "heatmap_palette",
]

GREY = "#b4b4b4"
INF_COLOR = "#000000"


def class_palette(n_classes: int) -> list[str]:
    """One colour per class id.

    Example:
        >>> len(class_palette(3)), class_palette(3)[0]
        (3, '#1f77b4')
    """
    n = max(1, int(n_classes))
    if n <= 10:
        return list(Category10_10[:n])
    if n <= 20:
        return list(Category20_20[:n])
    return (list(linear_palette(Turbo256, min(n, 256))) * (n // 256 + 1))[:n]


def cluster_palette(n_clusters: int) -> list[str]:
    """One colour per cluster id ``0..n_clusters-1`` (an 8-colour palette, cycled)."""
    n = max(1, int(n_clusters))
    base = list(Dark2_8)
    return [base[i % len(base)] for i in range(n)]


def id_mapper(palette: list[str], *, name: str | None = None) -> LinearColorMapper:
    """Map integer ids ``0..len(palette)-1`` to ``palette``; negative ids (outliers) grey."""
    return LinearColorMapper(
        palette=palette, low=-0.5, high=len(palette) - 0.5, low_color=GREY, high_color=GREY, name=name
    )


def heatmap_palette() -> list[str]:
    """255 colours for distance codes 0..254; code 255 (infinite distance) is drawn black."""
    return list(linear_palette(Viridis256, 255))
