"""Blob graph: PCA against scikit-learn, hulls against scipy, alpha shapes, marks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import ConvexHull
from sklearn.decomposition import PCA

from holejax.report.blob import (
    alpha_shape,
    blob_columns,
    blob_data,
    blob_figure,
    cluster_boundaries,
    convex_hull,
    default_alpha_radius,
    pca_2d,
)


def polygon_area(poly):
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def inside(poly, pts):
    """Even-odd rule point-in-polygon."""
    x, y = pts[:, 0], pts[:, 1]
    res = np.zeros(len(pts), bool)
    j = len(poly) - 1
    for i in range(len(poly)):
        xi, yi, xj, yj = poly[i, 0], poly[i, 1], poly[j, 0], poly[j, 1]
        cross = ((yi > y) != (yj > y)) & (x < (xj - xi) * (y - yi) / (yj - yi + 1e-300) + xi)
        res ^= cross
        j = i
    return res


@pytest.mark.parametrize("shape", [(30, 5), (12, 40)])  # more samples than units, and fewer
def test_pca_matches_sklearn_up_to_sign(shape):
    X = np.random.default_rng(0).normal(size=shape) * np.linspace(3, 0.5, shape[1])
    ours = pca_2d(X)
    ref = PCA(n_components=2).fit_transform(X)
    for k in range(2):
        sign = np.sign(ours[:, k] @ ref[:, k])
        np.testing.assert_allclose(ours[:, k], sign * ref[:, k], rtol=1e-4, atol=1e-4)


def test_pca_uses_the_reference_axes():
    rng = np.random.default_rng(1)
    R = rng.normal(size=(50, 4)) * [5, 2, 1, 0.5]
    X = R + rng.normal(size=R.shape) * 0.1
    pca = PCA(n_components=2).fit(R)
    ref = pca.transform(X)
    ours = pca_2d(X, reference=R)
    for k in range(2):
        np.testing.assert_allclose(np.abs(ours[:, k]), np.abs(ref[:, k]), rtol=1e-4, atol=1e-4)
    assert pca_2d(np.arange(6.0).reshape(6, 1))[:, 1].tolist() == [0.0] * 6
    with pytest.raises(ValueError, match="reference has 3 units but X has 4"):
        pca_2d(X, reference=R[:, :3])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 40))
def test_convex_hull_matches_scipy(seed, n):
    P = np.random.default_rng(seed).normal(size=(n, 2))
    ours = convex_hull(P)
    ref = ConvexHull(P)
    assert polygon_area(ours) == pytest.approx(ref.volume)
    assert set(map(tuple, ours)) == set(map(tuple, P[ref.vertices]))


def test_degenerate_hulls_are_segments():
    line = np.array([[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]])
    np.testing.assert_array_equal(convex_hull(line), [[0.0, 0.0], [3.0, 3.0]])
    assert convex_hull(np.zeros((0, 2))).shape == (0, 2)
    assert alpha_shape(line, 10.0) == []


def test_alpha_shape_of_a_grid_and_of_an_annulus():
    g = np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0)), -1).reshape(-1, 2)
    polys = alpha_shape(g, 1.0)
    assert len(polys) == 1 and polygon_area(polys[0]) == pytest.approx(25.0)
    # a large radius gives the convex hull
    assert polygon_area(alpha_shape(g + 0.01 * np.random.default_rng(0).normal(size=g.shape), 1e6)[0]) == pytest.approx(
        ConvexHull(g).volume, rel=0.02)
    # annulus: only the outer loop (the regular 60-gon of radius 5) is kept; the clockwise hole loop is dropped
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    ring = np.concatenate([np.c_[np.cos(t), np.sin(t)] * r for r in (4.0, 4.5, 5.0)])
    polys = alpha_shape(ring, 0.6)
    assert len(polys) == 1 and len(polys[0]) == 60
    assert polygon_area(polys[0]) == pytest.approx(0.5 * 60 * 25 * np.sin(2 * np.pi / 60))


def test_alpha_shape_splits_far_groups_and_covers_their_points():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(40, 2))
    b = rng.normal(size=(40, 2)) + [30, 0]
    pts = np.concatenate([a, b])
    r = default_alpha_radius(pts)
    polys = alpha_shape(pts, r)
    assert len(polys) >= 2
    covered = np.zeros(len(pts), bool)
    for p in polys:
        covered |= inside(p, pts)
    assert covered.mean() > 0.6  # vertices sit on the boundary, the rest inside


def test_blob_data_marks_and_boundaries():
    rng = np.random.default_rng(3)
    xy = np.concatenate([rng.normal(size=(20, 2)), rng.normal(size=(20, 2)) + 10, [[50.0, 50.0]]])
    labels = np.array([0] * 19 + [1] + [1] * 20 + [2])
    clusters = np.array([0] * 20 + [1] * 20 + [-1])
    bd = blob_data(xy, labels, clusters)
    assert bd.outlier.tolist() == [False] * 40 + [True]
    assert np.flatnonzero(bd.mismatch).tolist() == [19]
    assert bd.boundaries["convex"].cluster.tolist() == [0, 1]
    assert set(bd.boundaries["alpha"].cluster.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="boundary='star' is not supported"):
        cluster_boundaries(xy, clusters, "star")
    with pytest.raises(ValueError, match="xy must be"):
        blob_data(xy[:5], labels, clusters)


def test_blob_figure_data():
    rng = np.random.default_rng(4)
    xy = rng.normal(size=(30, 2))
    labels = np.repeat([0, 1, 2], 10)
    clusters = np.where(np.arange(30) < 28, labels, -1)
    bd = blob_data(xy, labels, clusters)
    display = np.arange(0, 30, 2)
    fig = blob_figure(bd, boundary="alpha", label_names=["cat", "dog", "<b>x</b>"], sample_ids=np.arange(30) + 1000,
                      display=display)
    refs = {m.name: m for m in fig.references() if m.name}
    pts = refs["blob.points"].data
    assert pts["sample"].tolist() == (display + 1000).tolist()
    assert pts["label_name"][-1] == "<b>x</b>"  # raw in the model; the browser escapes tooltips
    np.testing.assert_array_equal(pts["out"], (clusters[display] < 0).astype(np.uint8))
    hulls = refs["blob.hulls"].data
    assert hulls["cluster"].tolist() == bd.boundaries["alpha"].cluster.tolist()
    assert blob_columns(bd, "convex")["blob.hulls"]["cluster"].tolist() == [0, 1, 2]
    legend_labels = [item.label.value for item in fig.legend[0].items]
    assert legend_labels == ["cat", "dog", "<b>x</b>"]
