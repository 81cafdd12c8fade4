"""Metric parameters that reproduce the HOLE reference code.

holejax's defaults follow the HOLE paper (Athreya & Rosen, section 3.3). The
reference code that accompanies the paper differs in a few definitions;
:func:`hole_metric_params` gives the parameters under which holejax computes
the reference code's distances, for comparing numbers side by side:

- ``geodesic``: mutual kNN graph with ``k = 10`` (an edge only where each end
  is among the other's 10 nearest, the minimum of the two directed
  adjacencies), and pairs in different components of that graph at their
  euclidean distance instead of ``inf`` (``disconnected="euclidean"``);
- ``mahalanobis``: each cloud projected onto its first 10 principal
  components, then the plain covariance of the projected scores
  (``components=10, covariance="empirical"``; holejax's empirical covariance
  divides by ``n``, so with ``np.cov``'s ``n - 1`` every distance is
  ``sqrt((n - 1) / n)`` times these: the same H0, scaled);
- density normalisation: the local scale is the ``k``-th neighbour distance,
  floored at ``max(0.01, 0.1 * median)`` of those distances
  (``scale="kth_floored"``); ``k`` stays holejax's default (5), which the
  paper does not fix. ``density_mahalanobis`` also takes the projection.

The stage rule of the Sankey diagrams is chosen separately, by name:
``criterion=HOLE_STAGE_CRITERION`` (``"hole"``) in
:func:`holejax.analysis.stages` and :func:`holejax.analyze`.

Example:
    >>> import holejax as hj
    >>> params = hj.hole_metric_params(["euclidean", "geodesic"])
    >>> params
    {'euclidean': {}, 'geodesic': {'k': 10, 'mutual': True, 'disconnected': 'euclidean'}}
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from holejax._checks import check_choice

__all__ = ["HOLE_STAGE_CRITERION", "hole_metric_params"]

HOLE_STAGE_CRITERION = "hole"
"""The Sankey stage rule of the HOLE reference code, by its holejax name."""

_HOLE_PROJECTION = {"components": 10, "covariance": "empirical"}
_HOLE_DENSITY = {"scale": "kth_floored"}

_HOLE_METRIC_PARAMS: dict[str, dict] = {
    "euclidean": {},
    "cosine": {},
    "mahalanobis": dict(_HOLE_PROJECTION),
    "geodesic": {"k": 10, "mutual": True, "disconnected": "euclidean"},
    "density_euclidean": dict(_HOLE_DENSITY),
    "density_cosine": dict(_HOLE_DENSITY),
    "density_mahalanobis": {**_HOLE_DENSITY, **_HOLE_PROJECTION},
}


def hole_metric_params(metrics: Sequence[str] | None = None) -> dict[str, dict]:
    """Parameters under which holejax's metrics follow the HOLE reference code.

    Args:
        metrics: the metric names to return entries for (default: the seven
            metrics HOLE uses: euclidean, cosine, mahalanobis, geodesic and the
            three density-normalised ones). Metrics without a difference get
            an empty dict.

    Returns:
        ``{metric: {param: value}}``, a fresh copy, ready for
        ``hj.analyze(acts, metrics=list(params), metric_params=params)`` or
        ``hj.pairwise_distances(X, metric, **params[metric])``.

    Raises:
        ValueError: a metric HOLE does not use, with the accepted names.

    Example:
        >>> hole_metric_params(["mahalanobis"])
        {'mahalanobis': {'components': 10, 'covariance': 'empirical'}}
    """
    names = list(_HOLE_METRIC_PARAMS) if metrics is None else list(metrics)
    for name in names:
        check_choice(name, "metrics", _HOLE_METRIC_PARAMS)
    return {name: copy.deepcopy(_HOLE_METRIC_PARAMS[name]) for name in names}
