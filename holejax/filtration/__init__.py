"""H0 filtration: minimum spanning tree, Kruskal merge tree, clusters and diagrams.

H0 of a Vietoris-Rips filtration is the minimum spanning tree (MST): every
sample is born at 0 and the MST edge lengths are the deaths. This package
computes it

- from distance matrices ``(..., sample, sample)``: :func:`h0`, by dense
  Prim in a ``lax.scan`` on CPU or Borůvka on accelerators, leading axes
  batched in one compiled program;
- from points ``(..., sample, unit)``: :func:`h0_from_points`, which picks
  the dense engine (distances and tree in one program), tiled Borůvka for
  large clouds (memory ``O(n d)``, matrix-product speed) or, for the
  geodesic metric, the spanning forest of the kNN graph;

builds every engine's single-linkage merge tree with one Kruskal
union-find (:func:`merge_tree`) and reads off it :func:`clusters_at`,
:func:`betti0_curve`, :func:`h0_diagram`, and :func:`dendrogram_linkage`
for drawing disconnected clouds.

Example:
    >>> import numpy as np
    >>> from holejax.filtration import h0, clusters_at, h0_diagram
    >>> D = np.array([[0, 1, 5], [1, 0, 4], [5, 4, 0]], dtype=np.float32)
    >>> h = h0(D)
    >>> clusters_at(h, 1.5).tolist(), h0_diagram(h)[:, 1].tolist()
    ([0, 0, 1], [1.0, 4.0, inf])
"""

from holejax._cache import configure_compile_cache
from holejax.filtration.dense import METHODS, h0, h0_kernel
from holejax.filtration.points import ENGINES, h0_from_points
from holejax.filtration.result import (
    H0Result,
    betti0_curve,
    clusters_at,
    dendrogram_linkage,
    h0_diagram,
    merge_tree,
)
from holejax.filtration.tiled import TILED_METRICS, h0_points_kernel

configure_compile_cache()  # compiled programs persist across processes (holejax._cache)

__all__ = [
    "ENGINES",
    "METHODS",
    "TILED_METRICS",
    "H0Result",
    "betti0_curve",
    "clusters_at",
    "dendrogram_linkage",
    "h0",
    "h0_diagram",
    "h0_from_points",
    "h0_kernel",
    "h0_points_kernel",
    "merge_tree",
]
