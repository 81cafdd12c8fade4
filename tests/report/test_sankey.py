"""Sankey layout: flows conserve samples and sit inside their nodes; ribbon geometry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holejax.report.sankey import ribbon_paths, sankey_columns, sankey_figure, sankey_layout


def random_stages(seed, n=40, n_classes=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    # nested partitions from fine to coarse, like thresholds of a merge tree
    fine = rng.integers(0, 12, n)
    mid = fine // 3
    S = np.stack([y, np.where(np.isin(fine, [0, 5]), -1, fine), mid, mid // 2, np.zeros(n, int)])
    return S, y


@pytest.mark.parametrize("compact", [False, True])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_flows_conserve_samples_and_stay_inside_nodes(compact, seed):
    S, y = random_stages(seed)
    lay = sankey_layout(S, y, compact=compact)
    n = len(y)
    for s in range(5):
        assert lay.size[lay.stage == s].sum() == n
        leaving = lay.r_stage == s
        entering = lay.r_stage == s - 1
        for c in np.unique(S[s]):
            node = (lay.stage == s) & (lay.cluster == c)
            top, bottom = lay.top[node].min(), lay.bottom[node].max()
            size = lay.size[node].sum()
            assert size == np.count_nonzero(S[s] == c)
            # coordinates are float32 (BokehJS has no float64 columns): tolerance scales with position
            assert bottom - top == pytest.approx(size, abs=4 * float(np.finfo(np.float32).eps) * max(abs(float(bottom)), 1.0))
            for side, sel, y_col in (("out", leaving, lay.r_y0), ("in", entering, lay.r_y1)):
                if not sel.any():
                    continue
                inside = sel & (y_col >= top - 1e-3) & (y_col + lay.r_count <= bottom + 1e-3)
                assert lay.r_count[inside].sum() == size, side
    # outliers come last within their stage
    for s in range(1, 5):
        tops = {c: lay.top[(lay.stage == s) & (lay.cluster == c)].min() for c in np.unique(S[s])}
        if -1 in tops:
            assert tops[-1] == max(tops.values())


def test_compact_ribbons_leave_their_class_segment():
    S, y = random_stages(3)
    lay = sankey_layout(S, y, compact=True)
    assert np.all(np.diff(np.sort(lay.top[lay.stage == 2])) > 0)  # no gaps, no overlap: distinct tops
    for i in np.flatnonzero(lay.r_stage == 1):
        seg = (lay.stage == 1) & (lay.label == lay.r_label[i])
        inside = (lay.top[seg] <= lay.r_y0[i] + 1e-3) & (lay.r_y0[i] + lay.r_count[i] <= lay.bottom[seg] + 1e-3)
        assert inside.any()


def test_full_variant_gaps_and_node_colours():
    S = np.array([[0, 0, 1, 1], [0, 0, 1, -1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    lay = sankey_layout(S, np.array([0, 0, 1, 1]), gap=2.0)
    stage1 = lay.stage == 1
    np.testing.assert_array_equal(lay.top[stage1], [0, 4, 7])
    np.testing.assert_array_equal(lay.label[stage1], [0, 1, -1])  # outlier node grey
    np.testing.assert_allclose(lay.purity[lay.stage == 2], [0.5])


def test_ribbon_paths_are_bezier_bands():
    xs, ys = ribbon_paths(np.array([1]), np.array([3]), np.array([2.0]), np.array([10.0]),
                          np.arange(5.0), 0.25, points=9)
    x, yv = xs[0], ys[0]
    assert len(x) == 18
    assert (x[0], yv[0]) == (1.25, 2.0) and (x[8], yv[8]) == (2.0, 10.0)  # top edge ends
    assert (x[9], yv[9]) == (2.0, 13.0) and (x[17], yv[17]) == (1.25, 5.0)  # bottom edge, reversed
    np.testing.assert_allclose(yv[9:][::-1] - yv[:9], 3.0)  # constant width
    assert np.all(np.diff(x[:9]) > 0) and np.all(np.diff(yv[:9]) > 0)  # monotone S-curve


def test_figure_sources_hold_the_layout():
    S, y = random_stages(1)
    lay = sankey_layout(S, y)
    fig = sankey_figure(lay, label_names=["a", "b", "c"])
    refs = {m.name: m for m in fig.references() if m.name}
    nodes, ribbons = refs["sk.nodes"], refs["sk.ribbons"]
    np.testing.assert_array_equal(nodes.data["size"], lay.size)
    assert len(ribbons.data["xs"]) == len(lay.r_count)
    assert set(sankey_columns(lay)["sk.ribbons"]) < set(ribbons.data)
    xs, _ = ribbon_paths(lay.r_stage, lay.r_count, lay.r_y0, lay.r_y1, lay.stage_x, lay.node_width)
    np.testing.assert_allclose(ribbons.data["xs"][0], xs[0])


def test_sankey_layout_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"stage_labels must have shape \(stage, sample\) with sample = len\(labels\) = 3"):
        sankey_layout(np.zeros((5, 4), int), np.zeros(3, int))
