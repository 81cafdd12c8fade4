"""Sankey stages, small-cluster outliers and persistent components of one H0 merge tree.

HOLE draws a five-stage Sankey diagram (paper section 3.4.2):

=================  ==========================================================
``labels``         the true classes
``first_merge``    the clusters at the first death (smallest merge height)
``best``           the threshold whose clusters agree best with the labels
``intermediate``   a threshold between ``best`` and ``one``
``one``            the last finite merge: one component (if the cloud is connected)
=================  ==========================================================

Which threshold is ``best`` (the headline of ``hj.analyze``):

* Each candidate threshold is a level of the merge heights; heights that
  agree to the float32 kernels' rounding (within :data:`TIE_RTOL` of the
  largest finite death) are one level, so a threshold never separates two
  merges of equal height (:func:`distinct_deaths`).
* At each level, clusters with fewer than ``min_cluster_size`` samples are
  pooled into one "small/outliers" cluster, and the partition is scored
  against the labels with the pool counted as one (impure) cluster. Purity
  alone is maximal for singletons, so ``best`` maximises a score that
  penalises fragmentation: by default the adjusted Rand index
  (``criterion="ari"``); ``"f1"`` (harmonic mean of purity and inverse
  purity) and ``"purity"`` are offered. All ``n - 1`` thresholds are scored
  at once from the merge tree (:func:`holejax.analysis.merge_scores`).
* Only levels with at most ``max_clusters`` clusters of ``min_cluster_size``
  samples or more compete (``hj.analyze`` uses twice the number of classes);
  when none has so few, the levels with the fewest clusters do.
* The four thresholds are always strictly increasing
  (:func:`stage_thresholds` spreads them between the distinct levels when
  there are fewer than four; such stages then show the same partition).
* ``intermediate`` is the middle level strictly between ``best`` and
  ``one``; with an even number of them the lower middle one. The paper
  (section 3.4.2) calls the third and fourth stages "the most optimal
  thresholds" without fixing the fourth, and holejax keeps the lower middle.
* Without labels the best stage is the most persistent partition: the
  threshold followed by the widest gap to the next level (``"gap"``).

``criterion="hole"`` reproduces the HOLE reference code's rule exactly:
every cluster counts as it is (singletons included, no pooling of small
clusters and no bound on their number), the best level maximises ``0.7 *
purity + 0.3 * inverse purity`` (ties to the smaller threshold), and the
intermediate stage is the *upper* middle level between ``best`` and
``one``. Both use holejax's exact H0 (the minimum spanning tree of the full
distance matrix, as the reference's Sankey and visualiser paths compute it).

Clusters with fewer than ``min_cluster_size`` samples are grouped as
"small/outliers" with id ``-1`` in the stage labels; the remaining clusters
are numbered ``0..k-1`` by their smallest sample index.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from holejax._checks import as_labels, check_choice, check_h0_result
from holejax.analysis.scores import MergeScores, merge_scores

__all__ = [
    "CRITERIA",
    "STAGES",
    "PersistentComponents",
    "TIE_RTOL",
    "bound_clusters",
    "check_clusters_per_class",
    "choose_thresholds",
    "cluster_labels",
    "criterion_values",
    "default_min_cluster_size",
    "distinct_deaths",
    "group_small_clusters",
    "max_clusters_for",
    "persistent_components",
    "sankey_stages",
    "scoring_min_size",
    "stage_thresholds",
]

STAGES = ("labels", "first_merge", "best", "intermediate", "one")
CRITERIA = ("ari", "f1", "hole", "purity", "gap")

# merge heights closer than this fraction of the largest finite death are one level:
# 16 float32 units in the last place, the rounding of the distance kernels
TIE_RTOL = 2.0**-19


def default_min_cluster_size(n: int) -> int:
    """``max(2, ceil(n / 100))``: clusters under 1 % of the samples are outliers.

    Example:
        >>> default_min_cluster_size(1000), default_min_cluster_size(50)
        (10, 2)
    """
    return max(2, math.ceil(n / 100))


def check_min_cluster_size(value: Any, n: int) -> int:
    """``value`` (or the default for ``n`` samples) as an int >= 1."""
    if value is None:
        return default_min_cluster_size(n)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"min_cluster_size must be an int >= 1 (1 keeps every cluster) or None for "
            f"max(2, ceil(n / 100)); got {value!r}."
        )
    if value > n:
        raise ValueError(
            f"min_cluster_size={value} exceeds the {n} samples of a cloud, so every sample would be an outlier; "
            f"pass at most {n}, or None for max(2, ceil(n / 100))."
        )
    return int(value)


def distinct_deaths(deaths: Any, rtol: float = TIE_RTOL) -> tuple[np.ndarray, np.ndarray]:
    """The levels of the finite deaths and, for each, the merge-tree state it reaches.

    Deaths that agree to within ``rtol`` times the largest finite death are
    one level (chained: each to the next), so that a threshold never falls
    between two merges whose heights differ only by the float32 rounding of
    the distance kernels.

    Args:
        deaths: ``(edge,)`` ascending deaths (``+inf`` last).
        rtol: relative tolerance of a tie (0: exact equality only).

    Returns:
        ``(values, states)``: ``values`` ``(k,)`` float64 ascending, the
        largest death of each level; ``states[i]`` is the number of merges
        with death ``<= values[i]`` (the column of
        :class:`~holejax.analysis.MergeScores` that holds the partition at
        that threshold).

    Example:
        >>> v, s = distinct_deaths([1.0, 1.0, 2.0, float("inf")])
        >>> v.tolist(), s.tolist()
        ([1.0, 2.0], [2, 3])
        >>> v, s = distinct_deaths([1.4829762, 1.48297644, 2.0])
        >>> v.tolist(), s.tolist()
        ([1.48297644, 2.0], [2, 3])
    """
    d = np.asarray(deaths, np.float64)
    finite = d[np.isfinite(d)]
    if finite.size == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    tol = float(rtol) * float(np.abs(finite).max())
    last = np.flatnonzero(np.r_[np.diff(finite) > tol, True])
    return finite[last], last + 1


def criterion_values(
    criterion: str, values: np.ndarray, purity: Any = None, inverse_purity: Any = None, ari: Any = None
) -> np.ndarray:
    """Score of each candidate threshold (higher is better) under ``criterion``.

    ``purity``, ``inverse_purity`` and ``ari`` are the scores at the candidate
    thresholds; ``"gap"`` needs only ``values`` (the distance to the next
    candidate, the last one scoring 0).
    """
    if criterion == "gap":
        return np.r_[np.diff(values), 0.0] if len(values) else np.zeros(0)
    if criterion == "ari":
        return np.asarray(ari)
    if criterion == "purity":
        return np.asarray(purity)
    p, q = np.asarray(purity), np.asarray(inverse_purity)
    if criterion == "f1":
        return 2 * p * q / np.maximum(p + q, 1e-300)
    return 0.7 * p + 0.3 * q  # "hole"


def stage_thresholds(values: Any, scores: Any, *, middle: str = "lower") -> np.ndarray:
    """The four strictly increasing thresholds: first merge, best, intermediate, one.

    Args:
        values: ``(k,)`` ascending distinct finite deaths.
        scores: ``(k,)`` score of each (higher is better); ties go to the
            smaller threshold; ``-inf`` / NaN never win unless all do.
        middle: which of an even number of levels between best and one is
            the intermediate: ``"lower"`` (holejax) or ``"upper"`` (the HOLE
            reference code).

    Returns:
        ``(4,)`` float64. ``first = values[0]`` and ``one = values[-1]``; the
        best partition is the top-scoring value among all but the last (when
        it is the first value, the best threshold is placed a third of the way
        to the next death, which keeps it distinct and shows the same
        partition); the intermediate is the middle death strictly between
        best and last, or their midpoint when none lies between. With a single
        distinct death the thresholds are spread evenly above it.

    Example:
        >>> stage_thresholds([1.0, 2.0, 3.0, 4.0, 5.0], [0, 0.2, 0.9, 0.1, 0]).tolist()
        [1.0, 3.0, 4.0, 5.0]
        >>> gaps = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        >>> stage_thresholds(gaps, [0, 1, 0, 0, 0, 0, 0]).tolist()
        [1.0, 2.0, 4.0, 7.0]
        >>> stage_thresholds(gaps, [0, 1, 0, 0, 0, 0, 0], middle="upper").tolist()
        [1.0, 2.0, 5.0, 7.0]
        >>> stage_thresholds([1.0, 2.0, 3.0], [0, 1, 0]).tolist()
        [1.0, 2.0, 2.5, 3.0]
        >>> stage_thresholds([1.0, 4.0], [1, 0]).tolist()
        [1.0, 2.0, 3.0, 4.0]
        >>> stage_thresholds([2.0], [0]).tolist()
        [2.0, 2.00002, 2.00004, 2.00006]
    """
    check_choice(middle, "middle", ("lower", "upper"))
    u = np.asarray(values, np.float64)
    s = np.asarray(scores, np.float64)
    k = len(u)
    if k >= 2:
        head = s[:-1]
        best_i = int(np.argmax(np.where(np.isfinite(head), head, -np.inf)))
        best = u[best_i] if best_i > 0 else u[0] + (u[1] - u[0]) / 3
        between = np.arange(best_i + 1, k - 1)
        if between.size:
            pick = (between.size - 1) // 2 if middle == "lower" else between.size // 2
            inter = u[between[pick]]
        else:
            inter = 0.5 * (best + u[-1])
        return np.array([u[0], best, inter, u[-1]])
    base = float(u[0]) if k == 1 else 0.0
    step = max(abs(base), 1.0) * 1e-5
    return base + step * np.arange(4)


def cluster_labels(h: Any, thresholds: Any) -> np.ndarray:
    """Component ids at several thresholds at once, ``(threshold, sample)`` int64.

    The same partitions and numbering as ``hj.clusters_at`` (samples joined
    by merges of height ``<= t``, ids ``0..k-1`` in order of each component's
    smallest sample), read off the linkage matrix by pointer jumping: every
    node of the merge tree points to its parent while the parent's height is
    at most ``t`` (heights grow towards the root), and ``log2(n)`` rounds of
    ``up = up[up]`` take each sample to the root of its component for all
    thresholds together.

    Example:
        >>> import numpy as np, holejax as hj
        >>> x = np.array([0.0, 1.0, 5.0])
        >>> cluster_labels(hj.h0(np.abs(x[:, None] - x)), [0.5, 1.0, 4.0]).tolist()
        [[0, 1, 2], [0, 0, 1], [0, 0, 0]]
    """
    Z = np.asarray(h.linkage, np.float64)
    t = np.atleast_1d(np.asarray(thresholds, np.float64))
    n = Z.shape[0] + 1
    if n == 1:
        return np.zeros((len(t), 1), np.int64)
    nodes = 2 * n - 1
    parent = np.arange(nodes)
    children = Z[:, :2].astype(np.int64)
    parent[children[:, 0]] = n + np.arange(n - 1)
    parent[children[:, 1]] = n + np.arange(n - 1)
    height = np.r_[np.full(n, -np.inf), Z[:, 2]]
    up = np.where(height[parent][None, :] <= t[:, None], parent[None, :], np.arange(nodes)[None, :])
    rows = np.arange(len(t))[:, None]
    for _ in range(int(np.ceil(np.log2(nodes))) + 1):
        nxt = up[rows, up]
        if np.array_equal(nxt, up):
            break
        up = nxt
    roots = up[:, :n]
    out = np.empty((len(t), n), np.int64)
    for r in range(len(t)):
        _, first, inverse = np.unique(roots[r], return_index=True, return_inverse=True)
        rank = np.empty(len(first), np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        out[r] = rank[inverse]
    return out


def group_small_clusters(labels: Any, min_cluster_size: int) -> np.ndarray:
    """Send clusters with fewer than ``min_cluster_size`` samples to id ``-1``.

    The kept clusters are renumbered ``0..k-1`` in order of their smallest
    sample index.

    Example:
        >>> group_small_clusters([0, 0, 1, 2, 2, 2], 2).tolist()
        [0, 0, -1, 1, 1, 1]
    """
    lab = np.asarray(labels, np.int64)
    ids, first, counts = np.unique(lab, return_index=True, return_counts=True)
    kept = counts >= min_cluster_size
    new_id = np.full(len(ids), -1, np.int64)
    order = np.argsort(first[kept], kind="stable")
    new_id[np.flatnonzero(kept)[order]] = np.arange(kept.sum())
    return new_id[np.searchsorted(ids, lab)]


def _check_h(h: Any) -> tuple[np.ndarray, np.ndarray]:
    check_h0_result(h)
    deaths = np.asarray(h.deaths)
    linkage = np.asarray(h.linkage)
    if deaths.ndim != 1 or linkage.shape != (deaths.shape[0], 4):
        raise ValueError(
            f"h must be the H0Result of one cloud (deaths (edge,), linkage (edge, 4)); got deaths "
            f"{deaths.shape}, linkage {linkage.shape}. Index a batched result first, e.g. "
            "H0Result(*(f[i] for f in hb))."
        )
    return deaths, linkage


def check_clusters_per_class(value: Any) -> float | None:
    """``value`` as a positive float, or None (no bound on the number of clusters)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ValueError(
            "clusters_per_class must be a positive number (the best threshold may have at most "
            f"clusters_per_class x classes clusters) or None for no bound; got {value!r}."
        )
    return float(value)


def max_clusters_for(labels: Any, clusters_per_class: float | None) -> int | None:
    """The bound on the clusters of the best threshold: ``floor(clusters_per_class * classes)``, at least 1.

    Example:
        >>> max_clusters_for([0, 1, 1, 2], 2.0), max_clusters_for([0, 1], None)
        (6, None)
    """
    if clusters_per_class is None:
        return None
    return max(1, math.floor(clusters_per_class * len(np.unique(np.asarray(labels)))))


def scoring_min_size(criterion: str, min_cluster_size: int) -> int:
    """The cluster size below which the scored partitions pool clusters as outliers (1 for ``"hole"``)."""
    return 1 if criterion == "hole" else int(min_cluster_size)


def bound_clusters(scores: Any, n_clusters: Any, max_clusters: int | None) -> np.ndarray:
    """``scores`` with ``-inf`` where a candidate has more than ``max_clusters`` clusters.

    The last candidate (one component) is never a best threshold, so when no
    other candidate has at most ``max_clusters`` clusters, the other
    candidates with the fewest clusters stay.

    Example:
        >>> bound_clusters([0.9, 0.8, 0.5, 0.0], [9, 4, 2, 1], 4).tolist()
        [-inf, 0.8, 0.5, 0.0]
        >>> bound_clusters([0.9, 0.8, 0.0], [9, 7, 1], 4).tolist()
        [-inf, 0.8, 0.0]
    """
    s = np.asarray(scores, np.float64)
    if max_clusters is None or s.size < 2:
        return s
    c = np.asarray(n_clusters)
    allowed = c <= max_clusters
    if not allowed[:-1].any():
        allowed = c <= c[:-1].min()
    return np.where(allowed, s, -np.inf)


def choose_thresholds(
    deaths: Any, criterion: str, scores: MergeScores | None = None, max_clusters: int | None = None
) -> np.ndarray:
    """The four stage thresholds of one cloud under ``criterion`` (see the module docstring).

    Args:
        deaths: ``(edge,)`` ascending H0 deaths.
        criterion: one of :data:`CRITERIA`.
        scores: the cloud's :class:`~holejax.analysis.MergeScores` (arrays
            ``(sample,)``), scored with clusters under
            :func:`scoring_min_size` pooled; None without labels (``"gap"``).
        max_clusters: most clusters of the best threshold (None: no bound;
            ignored by ``"hole"``).

    Returns:
        ``(4,)`` float64: first merge, best, intermediate, one.

    Example:
        >>> import numpy as np, holejax as hj
        >>> x = np.array([0.0, 1.0, 3.0, 6.0, 10.0, 15.0, 21.0, 28.0])
        >>> h = hj.h0(np.abs(x[:, None] - x[None, :]))
        >>> y = [0, 0, 0, 1, 1, 1, 1, 1]
        >>> s = merge_scores(np.asarray(h.linkage)[None], y)
        >>> one = MergeScores(*(f[0] for f in s))
        >>> choose_thresholds(h.deaths, "hole", one).tolist()
        [1.0, 2.0, 5.0, 7.0]
    """
    values, states = distinct_deaths(deaths)
    if scores is None or criterion == "gap" or len(values) == 0:
        crit = criterion_values("gap", values)
    else:
        crit = criterion_values(
            criterion, values, scores.purity[states], scores.inverse_purity[states], scores.ari[states]
        )
    if scores is not None and criterion != "hole":
        crit = bound_clusters(crit, scores.n_clusters[states], max_clusters)
    return stage_thresholds(values, crit, middle="upper" if criterion == "hole" else "lower")


def sankey_stages(
    h: Any,
    labels: Any,
    *,
    criterion: str = "ari",
    min_cluster_size: int | None = None,
    clusters_per_class: float | None = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The five Sankey stages of one cloud: thresholds and the cluster ids at each.

    Args:
        h: ``hj.h0(D)`` of one cloud of ``n`` samples.
        labels: ``(sample,)`` int true classes (stage ``labels``).
        criterion: how ``best`` is chosen: ``"ari"`` (default), ``"f1"``,
            ``"purity"``, ``"gap"`` or ``"hole"`` (the HOLE reference code's
            rule; see the module docstring).
        min_cluster_size: clusters smaller than this become id ``-1`` and are
            scored as one outlier cluster (default ``max(2, ceil(n / 100))``;
            1 keeps all).
        clusters_per_class: the best threshold has at most
            ``clusters_per_class x classes`` clusters of ``min_cluster_size``
            or more (None: no bound).

    Returns:
        ``(thresholds, stage_labels)``: ``thresholds`` ``(stage=5,)`` float64
        with ``NaN`` for ``labels`` then four strictly increasing values;
        ``stage_labels`` ``(stage=5, sample)`` int64, row 0 the true labels.

    Example:
        >>> import numpy as np, holejax as hj
        >>> x = np.array([0.0, 0.1, 0.3, 5.0, 5.2, 9.0])
        >>> h = hj.h0(np.abs(x[:, None] - x[None, :]))
        >>> t, lab = hj.sankey_stages(h, [0, 0, 0, 1, 1, 1], min_cluster_size=1)
        >>> np.round(t, 2).tolist()
        [nan, 0.1, 3.8, 4.25, 4.7]
        >>> lab[2].tolist()
        [0, 0, 0, 1, 1, 1]
    """
    deaths, linkage = _check_h(h)
    n = deaths.shape[0] + 1
    if labels is None:
        raise ValueError(
            "sankey_stages needs labels, the true class of each sample (its first stage); got None."
        )
    y = as_labels(labels, n, "labels")
    check_choice(criterion, "criterion", CRITERIA)
    size = check_min_cluster_size(min_cluster_size, n)
    per_class = check_clusters_per_class(clusters_per_class)
    s = merge_scores(linkage[None], y, min_cluster_size=scoring_min_size(criterion, size))
    thresholds = choose_thresholds(deaths, criterion, MergeScores(*(f[0] for f in s)), max_clusters_for(y, per_class))
    stages = cluster_labels(h, thresholds)
    stages = np.stack([group_small_clusters(row, size) for row in stages])
    return np.r_[np.nan, thresholds], np.concatenate([y[None], stages])


class PersistentComponents(NamedTuple):
    """Components that persist past a relative threshold.

    Attributes:
        n_components: clusters of at least ``min_cluster_size`` samples at ``threshold``.
        n_outliers: samples in smaller clusters at ``threshold``.
        threshold: ``relative * scale``.
        scale: height of the last merge joining two clusters that both have
            at least ``min_cluster_size`` samples (the largest finite death when
            there is none), so far-away outliers do not set the scale.
    """

    n_components: int
    n_outliers: int
    threshold: float
    scale: float


def persistent_components(
    h: Any, relative: float = 0.5, min_cluster_size: int | None = None
) -> PersistentComponents:
    """Count the persistent components of one cloud and its small-cluster outliers.

    A component is persistent when it is still separate at ``relative *
    scale`` (its H0 bar outlives that fraction of the scale) and holds at
    least ``min_cluster_size`` samples; samples in smaller components there
    are outliers (HOLE section 3.5: small, long-lived clusters are outliers).

    Args:
        h: ``hj.h0(D)`` of one cloud.
        relative: fraction of the scale, in ``(0, 1]``.
        min_cluster_size: as in :func:`sankey_stages`.

    Example:
        >>> import numpy as np, holejax as hj
        >>> x = np.r_[np.linspace(0, 0.5, 5), np.linspace(10, 10.5, 5), 40.0]
        >>> persistent_components(hj.h0(np.abs(x[:, None] - x[None, :])), 0.5, 2)[:2]
        (2, 1)
    """
    deaths, linkage = _check_h(h)
    n = deaths.shape[0] + 1
    size = check_min_cluster_size(min_cluster_size, n)
    if not (isinstance(relative, (int, float)) and 0 < relative <= 1):
        raise ValueError(f"relative must be a number in (0, 1]; got {relative!r}.")
    scale = _scale(deaths, linkage, size)
    t = relative * scale
    lab = cluster_labels(h, [t])[0]
    counts = np.bincount(lab)
    return PersistentComponents(int((counts >= size).sum()), int(counts[counts < size].sum()), float(t), float(scale))


def _scale(deaths: np.ndarray, linkage: np.ndarray, size: int) -> float:
    n = deaths.shape[0] + 1
    finite = np.isfinite(deaths)
    if not finite.any():
        return 0.0
    if n < 2:
        return 0.0
    sizes = np.r_[np.ones(n), linkage[:, 3]]
    a = sizes[linkage[:, 0].astype(np.int64)]
    b = sizes[linkage[:, 1].astype(np.int64)]
    big = finite & (a >= size) & (b >= size)
    return float(deaths[big].max() if big.any() else deaths[finite].max())
