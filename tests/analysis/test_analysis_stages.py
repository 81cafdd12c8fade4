"""Sankey stages: distinct thresholds on ties and tiny clouds, the best stage, outliers, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

import holejax as hj
from holejax.analysis import group_small_clusters, persistent_components, stage_thresholds
from holejax.analysis.stages import distinct_deaths
from holejax.filtration import H0Result, clusters_at


def line_h0(x):
    """H0 of points on a line, from an exact distance matrix."""
    x = np.asarray(x, np.float64)
    return hj.h0(np.abs(x[:, None] - x[None, :]))


def test_five_stages_on_three_classes():
    x = np.r_[np.linspace(0, 1, 10), np.linspace(5, 6, 10), np.linspace(12, 13, 10)]
    y = np.repeat([0, 1, 2], 10)
    t, lab = hj.sankey_stages(line_h0(x), y, min_cluster_size=1)
    assert np.isnan(t[0]) and np.all(np.diff(t[1:]) > 0)
    np.testing.assert_array_equal(lab[0], y)
    assert t[1] == pytest.approx(1 / 9)  # first merge
    np.testing.assert_array_equal(lab[2], y)  # best: the three classes
    assert t[4] == pytest.approx(6.0)  # one component
    assert set(lab[4].tolist()) == {0}
    assert t[2] < t[3] < t[4]


@pytest.mark.parametrize("criterion", ["ari", "f1", "hole"])
def test_best_stage_is_the_brute_force_optimum(criterion):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 40)
    x = rng.normal(size=40) + 3 * y
    h = line_h0(x)
    t, lab = hj.sankey_stages(h, y, criterion=criterion, min_cluster_size=1, clusters_per_class=None)
    values, _ = distinct_deaths(h.deaths)

    def score(v):
        c = clusters_at(h, v)
        p, q = hj.purity(c, y), hj.inverse_purity(c, y)
        return {"ari": adjusted_rand_score(y, c), "f1": 2 * p * q / (p + q), "hole": 0.7 * p + 0.3 * q}[criterion]

    head = values[:-1]
    best = head[int(np.argmax([score(v) for v in head]))]
    np.testing.assert_array_equal(clusters_at(h, t[2]), clusters_at(h, best))
    assert t[2] == best or (best == values[0] and values[0] < t[2] < values[1])


@pytest.mark.parametrize("criterion", ["ari", "f1", "purity"])
@pytest.mark.parametrize("seed", [0, 1])
def test_default_best_stage_is_the_bounded_pooled_optimum(criterion, seed):
    # many far-off singletons: the unbounded optimum over raw clusters is made of them
    rng = np.random.default_rng(seed)
    y = np.r_[np.repeat([0, 1, 2], 20), rng.integers(0, 3, 25)]
    x = np.r_[rng.normal(size=60) * 0.3 + 6 * y[:60], rng.uniform(-40, 60, 25)]
    h = line_h0(x)
    t, lab = hj.sankey_stages(h, y, criterion=criterion, min_cluster_size=3)
    values, _ = distinct_deaths(h.deaths)

    def pooled(v):
        return group_small_clusters(clusters_at(h, v), 3)

    def score(c):
        p, q = hj.purity(c, y), hj.inverse_purity(c, y)
        return {"ari": adjusted_rand_score(y, c), "f1": 2 * p * q / (p + q), "purity": p}[criterion]

    head = [v for v in values[:-1] if pooled(v).max() + 1 <= 6]  # at most 2 x 3 classes clusters
    best = head[int(np.argmax([score(pooled(v)) for v in head]))]
    np.testing.assert_array_equal(lab[2], pooled(best))
    assert lab[2].max() + 1 <= 6


def test_hole_criterion_is_the_reference_rule_by_hand():
    # 8 points on a line with gaps 1..7: the merge heights are 1, 2, ..., 7.
    # Classes {0, 1, 3} and the rest. 0.7 * purity + 0.3 * inverse purity by hand:
    # t=1: {0,1} + singletons: 0.7 * 1 + 0.3 * (2 + 1) / 8 = 0.8125
    # t=2: {0,1,3} + singletons: 0.7 * 1 + 0.3 * (3 + 1) / 8 = 0.85   <- best
    # t=3: {0,1,3,6} + singletons: 0.7 * 7 / 8 + 0.3 * 4 / 8 = 0.7625, and lower after.
    # Levels strictly between best (2) and one (7): 3, 4, 5, 6; HOLE takes the upper middle, 5.
    x = np.cumsum(np.r_[0.0, np.arange(1.0, 8.0)])
    y = [0, 0, 0, 1, 1, 1, 1, 1]
    t, lab = hj.sankey_stages(line_h0(x), y, criterion="hole", min_cluster_size=1)
    assert t[1:].tolist() == [1.0, 2.0, 5.0, 7.0]
    assert lab[2].tolist() == [0, 0, 0, 1, 2, 3, 4, 5]
    # holejax's own rule on the same scores takes the lower middle
    assert stage_thresholds(np.arange(1.0, 8.0), [0.8125, 0.85, 0.7625, 0, 0, 0, 0]).tolist() == [1.0, 2.0, 4.0, 7.0]


def test_hole_criterion_ignores_pooling_and_the_bound():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 30)
    h = line_h0(rng.normal(size=30) + 2 * y)
    a, _ = hj.sankey_stages(h, y, criterion="hole")
    b, _ = hj.sankey_stages(h, y, criterion="hole", min_cluster_size=1, clusters_per_class=None)
    np.testing.assert_array_equal(a, b)


def test_near_equal_merge_heights_are_one_level():
    # two merges of equal height in float64 that float32 rounding set 2 ulps apart
    d = np.array([0.5, 1.4829762, 1.48297644, 2.0, np.inf])
    values, states = distinct_deaths(d)
    assert values.tolist() == [0.5, 1.48297644, 2.0] and states.tolist() == [1, 3, 4]
    values, states = distinct_deaths(d, rtol=0.0)
    assert len(values) == 4
    # chained: a run of near-equal heights is one level, the next real gap separates
    values, _ = distinct_deaths([1.0, 1.0 + 1e-7, 1.0 + 2e-7, 1.1])
    assert values.tolist() == [1.0 + 2e-7, 1.1]


def test_bound_keeps_the_fewest_when_none_fits():
    from holejax.analysis.stages import bound_clusters

    assert bound_clusters([0.1, 0.9, 0.2], [8, 8, 1], 3).tolist() == [0.1, 0.9, 0.2]
    assert bound_clusters([0.1, 0.9, 0.2], [5, 8, 1], 3).tolist() == [0.1, -np.inf, 0.2]
    with pytest.raises(ValueError, match="clusters_per_class must be a positive number"):
        hj.sankey_stages(line_h0([0, 1, 3]), [0, 1, 1], clusters_per_class=0)


def test_ties_still_give_distinct_thresholds():
    # a regular grid: every merge happens at the same height
    h = line_h0(np.arange(12.0))
    t, lab = hj.sankey_stages(h, np.arange(12) % 2, min_cluster_size=1)
    assert np.all(np.diff(t[1:]) > 0)
    assert lab.shape == (5, 12)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_tiny_clouds(n):
    h = line_h0(np.arange(n) ** 2)
    t, lab = hj.sankey_stages(h, np.arange(n) % 2)
    assert np.all(np.diff(t[1:]) > 0) and lab.shape == (5, n)


def test_duplicate_points_and_disconnected_clouds():
    h = line_h0([0.0, 0.0, 0.0, 1.0])
    t, _ = hj.sankey_stages(h, [0, 0, 0, 1], min_cluster_size=1)
    assert t[1] == 0.0 and np.all(np.diff(t[1:]) > 0)
    D = np.array([[0, 1, np.inf], [1, 0, np.inf], [np.inf, np.inf, 0]], np.float32)
    t, lab = hj.sankey_stages(hj.h0(D), [0, 0, 1], min_cluster_size=1)
    assert np.all(np.isfinite(t[1:])) and lab[4].tolist() == [0, 0, 1]  # never one component


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=0, max_size=12), st.data())
def test_stage_thresholds_always_strictly_increase(raw, data):
    values = np.unique(np.round(raw, 1))
    scores = data.draw(st.lists(st.floats(-1, 1), min_size=len(values), max_size=len(values)))
    t = stage_thresholds(values, scores)
    assert t.shape == (4,) and np.all(np.diff(t) > 0)
    if len(values) >= 1:
        assert t[0] == values[0]
    if len(values) >= 2:
        assert t[-1] == values[-1]


def test_small_clusters_become_outliers():
    x = np.r_[np.linspace(0, 1, 6), 50.0, np.linspace(100, 101, 6)]
    y = np.r_[np.zeros(6, int), 1, np.ones(6, int)]
    _, lab = hj.sankey_stages(line_h0(x), y, min_cluster_size=3)
    assert lab[2].tolist() == [0] * 6 + [-1] + [1] * 6
    np.testing.assert_array_equal(lab[1], lab[2])  # tied merges: the first merge already is the best
    _, lab = hj.sankey_stages(line_h0(np.r_[x[:6] ** 2, x[6:]]), y, min_cluster_size=3)
    assert set(lab[1].tolist()) <= {-1}  # one pair merged first: every cluster is small


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=30), st.integers(1, 5))
def test_group_small_clusters_properties(labels, size):
    lab = np.array(labels)
    out = group_small_clusters(lab, size)
    kept = out >= 0
    counts = {v: (lab == v).sum() for v in set(labels)}
    assert all((counts[v] >= size) == k for v, k in zip(labels, kept))
    # same partition on the kept samples, numbered by first appearance
    ids = out[kept]
    firsts = [ids.tolist().index(i) for i in range(ids.max() + 1)] if kept.any() else []
    assert firsts == sorted(firsts)
    assert adjusted_rand_score(lab[kept], ids) == pytest.approx(1.0) if kept.sum() > 1 else True


def test_persistent_components_ignore_far_outliers_for_the_scale():
    x = np.r_[np.linspace(0, 0.5, 5), np.linspace(10, 10.5, 5), np.linspace(20, 20.5, 5), 400.0]
    pc = persistent_components(line_h0(x), relative=0.5, min_cluster_size=3)
    assert pc.n_components == 3 and pc.n_outliers == 1
    assert pc.scale == pytest.approx(9.5)
    pc = persistent_components(line_h0(x), relative=1.0, min_cluster_size=3)
    assert pc.n_components == 1 and pc.n_outliers == 1


# -- bad input ------------------------------------------------------------------------
def test_sankey_needs_labels():
    with pytest.raises(ValueError, match="needs labels"):
        hj.sankey_stages(line_h0([0, 1, 3]), None)


def test_sankey_label_count():
    with pytest.raises(ValueError, match="labels has 2 entries but there are 3 samples"):
        hj.sankey_stages(line_h0([0, 1, 3]), [0, 1])


def test_sankey_bad_options():
    h = line_h0([0, 1, 3])
    with pytest.raises(ValueError, match="criterion='aria'.*Did you mean 'ari'"):
        hj.sankey_stages(h, [0, 1, 1], criterion="aria")
    with pytest.raises(ValueError, match="min_cluster_size must be an int >= 1"):
        hj.sankey_stages(h, [0, 1, 1], min_cluster_size=0)
    with pytest.raises(ValueError, match="relative must be a number in \\(0, 1\\]"):
        persistent_components(h, relative=0.0)


def test_sankey_rejects_batched_results():
    h = line_h0([0, 1, 3])
    batched = H0Result(*(np.stack([f, f]) for f in h))
    with pytest.raises(ValueError, match="one cloud"):
        hj.sankey_stages(batched, [0, 1, 1])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-20, 20, allow_nan=False).map(lambda v: round(v, 1)), min_size=1, max_size=30),
       st.booleans())
def test_cluster_labels_equal_clusters_at(points, disconnect):
    from holejax.analysis.stages import cluster_labels

    x = np.asarray(points)
    D = np.abs(x[:, None] - x[None, :])
    if disconnect and len(x) > 2:
        D[0, 1:] = D[1:, 0] = np.inf
    h = hj.h0(D)
    finite = np.unique(h.deaths[np.isfinite(h.deaths)])
    ts = np.r_[finite, -1.0, 0.0, 1e9]
    for t, lab in zip(ts, cluster_labels(h, ts)):
        np.testing.assert_array_equal(lab, clusters_at(h, t))
