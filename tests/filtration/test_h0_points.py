"""h0_from_points: the row-by-row engine agrees with the dense one and with scipy."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest
from h0_helpers import cloud
from scipy.cluster import hierarchy
from scipy.spatial.distance import pdist, squareform

import holejax as hj
from holejax.filtration import h0, h0_from_points, h0_points_kernel


def _scipy_heights(X: np.ndarray, metric: str) -> np.ndarray:
    return hierarchy.linkage(pdist(np.asarray(X, np.float64), metric), "single")[:, 2]


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_matches_scipy_single_linkage(metric):
    X = (cloud(0, 40, 8) + 2.0).astype(np.float32)
    X[7] = X[3]  # a duplicate
    h = h0_from_points(X, metric)
    ref = _scipy_heights(X, metric)
    np.testing.assert_allclose(h.deaths, ref, rtol=2e-5, atol=1e-6)
    assert hierarchy.is_valid_linkage(h.linkage)
    np.testing.assert_array_equal(h.linkage[:, 2], h.deaths.astype(np.float64))


def test_agrees_with_dense_engine_on_the_same_metric():
    X = cloud(1, 40, 6).astype(np.float32)
    dense = h0(np.asarray(hj.pairwise_distances(X)))
    tiled = h0_from_points(X)
    np.testing.assert_allclose(tiled.deaths, dense.deaths, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        hierarchy.cophenet(tiled.linkage), hierarchy.cophenet(dense.linkage), rtol=1e-5, atol=1e-6
    )


def test_cosine_zero_rows_are_at_distance_one():
    X = np.zeros((40, 3), np.float32)
    X[:20] = cloud(2, 20, 3)
    h = h0_from_points(X, "cosine")
    # the 20 zero rows join at distance 0 to each other? no: 1 to everything
    assert np.sum(h.deaths == 1.0) == 20
    assert np.isfinite(h.deaths).all()


def test_kernel_under_jit_and_vmap():
    Xs = np.stack([cloud(s, 40, 4) for s in range(2)]).astype(np.float32)
    batched = jax.jit(jax.vmap(h0_points_kernel))(Xs)
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(batched.deaths[i]), h0_from_points(Xs[i]).deaths)


@pytest.mark.parametrize("k", [2, 6])
def test_geodesic_equals_h0_of_the_geodesic_matrix(k):
    X = np.concatenate([cloud(3, 20, 3), cloud(4, 20, 3) + 30]).astype(np.float32)
    X[11] = X[12]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # kNN graph components warning
        D = np.asarray(hj.pairwise_distances(X, "geodesic", k=k))
    dense = h0(D)
    geo = h0_from_points(X, "geodesic", k=k)
    assert np.array_equal(np.isinf(geo.deaths), np.isinf(dense.deaths))
    fin = np.isfinite(dense.deaths)
    assert np.isinf(geo.deaths).sum() >= 1  # the two blobs never connect
    np.testing.assert_allclose(geo.deaths[fin], dense.deaths[fin], rtol=1e-5, atol=1e-6)
    for t in [0.5, 2.0, 1e9]:
        a, b = hj.clusters_at(geo, t), hj.clusters_at(dense, t)
        np.testing.assert_array_equal(a, b)


def test_small_clouds():
    for n in (1, 2, 3):
        X = cloud(5, n, 3).astype(np.float32)
        h = h0_from_points(X)
        assert h.deaths.shape == (n - 1,) and h.linkage.shape == (n - 1, 4)
        if n > 1:
            np.testing.assert_allclose(h.deaths, _scipy_heights(X, "euclidean"), rtol=1e-5)
        g = h0_from_points(X, "geodesic", k=max(1, n - 1))
        assert g.deaths.shape == (n - 1,)


def test_bad_arguments():
    X = cloud(6, 10, 3)
    with pytest.raises(ValueError, match="metric='cosin' is not supported.*Did you mean 'cosine'"):
        h0_from_points(X, "cosin")
    with pytest.raises(ValueError, match="X must have rank 2"):
        h0_from_points(X[0])
    with pytest.raises(ValueError, match="X holds NaN or Inf at sample 4"):
        bad = X.copy()
        bad[4, 1] = np.nan
        h0_from_points(bad)
    with pytest.raises(ValueError, match="k must be a positive int"):
        h0_from_points(X, "geodesic", k=0)
    with pytest.raises(ValueError, match="k=10 must be at most n - 1 = 9"):
        h0_from_points(X, "geodesic", k=10)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_batched_from_points_equals_two_step(metric):
    from holejax.filtration import h0_batched, h0_batched_from_points

    Xs = np.stack([cloud(s, 40, 5) for s in range(3)]).astype(np.float32)
    fused = h0_batched_from_points(Xs, metric)
    two = h0_batched(np.asarray(hj.batched_pairwise_distances(Xs, metric)))
    for a, b in zip(fused, two):
        np.testing.assert_array_equal(a, b)
    # chunks (a small memory budget) give the same answer
    small = h0_batched_from_points(Xs, metric, memory_budget=3 * 40 * 40 * 4 * 2)
    np.testing.assert_array_equal(small.linkage, fused.linkage)
    with pytest.raises(ValueError, match="Xs must have rank 3"):
        h0_batched_from_points(Xs[0], metric)
