"""Interactive standalone HTML reports of a study (Bokeh).

Figures are built by pure functions that return Bokeh models, one topic per
module; :func:`build_report` lays them out with selectors, and
:func:`write_report` writes one HTML file that opens offline.

- :mod:`~holejax.report.heatmap_dendrogram`: RCM / dendrogram-ordered
  distance heatmap with the H0 dendrogram
- :mod:`~holejax.report.sankey`: five-stage Sankey and its compact variant
- :mod:`~holejax.report.blob`: PCA blob graph with cluster boundaries
- :mod:`~holejax.report.diagrams`: persistence diagram, barcode, Betti-0 curve
- :mod:`~holejax.report.summary`: per-layer summaries across perturbations and metrics
- :mod:`~holejax.report.topology_views`: landscapes, Betti decay and neural
  persistence from ``hj.topology_summary`` (``write_report(..., topology=ds)``)
"""

from holejax.report.blob import blob_data, blob_figure, pca_2d
from holejax.report.diagrams import death_display, diagram_figures
from holejax.report.heatmap_dendrogram import heatmap_dendrogram, heatmap_dendrogram_figure
from holejax.report.html import report_html, write_report
from holejax.report.layout import Report, build_report
from holejax.report.sankey import sankey_figure, sankey_layout
from holejax.report.summary import summary_figure, summary_tabs
from holejax.report.topology_views import (
    betti_curve_figure,
    betti_decay_figure,
    landscape_figure,
    landscape_norm_figure,
    neural_persistence_figure,
    topology_section,
)

__all__ = [
    "Report",
    "betti_curve_figure",
    "betti_decay_figure",
    "blob_data",
    "blob_figure",
    "build_report",
    "death_display",
    "diagram_figures",
    "heatmap_dendrogram",
    "heatmap_dendrogram_figure",
    "landscape_figure",
    "landscape_norm_figure",
    "neural_persistence_figure",
    "pca_2d",
    "report_html",
    "sankey_figure",
    "sankey_layout",
    "summary_figure",
    "summary_tabs",
    "topology_section",
    "write_report",
]
