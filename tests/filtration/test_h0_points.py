"""h0_from_points: every engine agrees with scipy and with the others; the tiled engine is exact."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest
from h0_helpers import cloud, dist32
from scipy.cluster import hierarchy
from scipy.spatial.distance import pdist, squareform

import holejax as hj
from holejax.filtration import h0, h0_from_points, h0_points_kernel, points
from holejax.filtration.tiled import boruvka_from_points

ENGINES = ["dense", "tiled", "rows"]


def _scipy_heights(X: np.ndarray, metric: str) -> np.ndarray:
    return hierarchy.linkage(pdist(np.asarray(X, np.float64), metric), "single")[:, 2]


def _assert_exact(h, X, metric="euclidean", rtol=2e-5):
    """Deaths equal scipy's (float64) single linkage; the tree's ultrametric equals scipy's."""
    Z = hierarchy.linkage(pdist(np.asarray(X, np.float64), metric), "single")
    np.testing.assert_allclose(h.deaths, Z[:, 2], rtol=rtol, atol=1e-6)
    assert hierarchy.is_valid_linkage(h.linkage)
    np.testing.assert_allclose(hierarchy.cophenet(h.linkage), hierarchy.cophenet(Z), rtol=rtol, atol=1e-6)
    np.testing.assert_array_equal(h.linkage[:, 2], h.deaths.astype(np.float64))
    assert np.all(h.edges[:, 0] < h.edges[:, 1])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_matches_scipy_single_linkage(metric, engine):
    X = (cloud(0, 40, 8) + 2.0).astype(np.float32)
    X[7] = X[3]  # a duplicate
    h = h0_from_points(X, metric, engine=engine)
    assert h.engine.startswith(engine)
    _assert_exact(h, X, metric)


# tiny tiles and few candidates: several row and column tiles and many rescans on small clouds
TILES = [dict(tile_rows=16, tile_cols=64, candidates=1), dict(tile_rows=32, tile_cols=128, candidates=4)]


@pytest.mark.parametrize("tiles", TILES)
def test_tiled_exact_with_duplicates_and_ties(tiles):
    rng = np.random.default_rng(3)
    lattice = rng.integers(0, 5, size=(150, 3)).astype(np.float32)  # many duplicates, all ties
    h, stats = boruvka_from_points(lattice, **tiles)
    _assert_exact(h, lattice, rtol=1e-6)
    assert stats["rounds"] >= 2 and stats["scanned"] >= 150
    # ties resolve to one tree whatever the tiles: the tree of dense Borůvka, same edge order
    again, _ = boruvka_from_points(lattice, **TILES[1 - TILES.index(tiles)])
    np.testing.assert_array_equal(h.linkage, again.linkage)
    dense = h0(dist32(lattice), method="boruvka")
    np.testing.assert_array_equal(h.edges, dense.edges)
    np.testing.assert_array_equal(h.linkage, dense.linkage)


@pytest.mark.parametrize("tiles", TILES)
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_tiled_exact_on_far_clusters_and_wide_clouds(tiles, metric):
    rng = np.random.default_rng(4)
    centres = rng.normal(scale=50, size=(4, 6))  # clusters far apart, offset from the origin
    X = (centres[rng.integers(0, 4, 120)] + rng.normal(size=(120, 6)) + 100).astype(np.float32)
    h, _ = boruvka_from_points(X, metric, **tiles)
    _assert_exact(h, X, metric, rtol=1e-4 if metric == "cosine" else 2e-5)
    wide = cloud(5, 30, 100).astype(np.float32)  # d > n
    _assert_exact(boruvka_from_points(wide, metric, **tiles)[0], wide, metric)


def test_tiled_agrees_with_dense_engine():
    X = cloud(1, 200, 6).astype(np.float32)
    dense = h0_from_points(X, engine="dense")
    tiled, stats = boruvka_from_points(X, tile_rows=64, tile_cols=64)
    np.testing.assert_allclose(tiled.deaths, dense.deaths, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        hierarchy.cophenet(tiled.linkage), hierarchy.cophenet(dense.linkage), rtol=1e-5, atol=1e-6
    )
    # a gaussian cloud needs about one pass over the tiles in all
    assert stats["scanned"] < 1.5 * 200


@pytest.mark.parametrize("engine", ["dense", "tiled"])
def test_cosine_zero_rows_are_at_distance_one(engine):
    X = np.zeros((40, 3), np.float32)
    X[:20] = cloud(2, 20, 3)
    with pytest.warns(RuntimeWarning, match="20 sample.s. are zero vectors"):
        h = h0_from_points(X, "cosine", engine=engine)
    # each zero row joins at cosine distance 1
    assert np.sum(h.deaths == 1.0) == 20
    assert np.isfinite(h.deaths).all()


def test_engine_choice_and_batch_axes(monkeypatch):
    Xs = np.stack([cloud(s, 30, 4) for s in range(6)]).astype(np.float32).reshape(2, 3, 30, 4)
    h = h0_from_points(Xs)
    assert h.engine == "dense-prim" and h.deaths.shape == (2, 3, 29) and h.linkage.shape == (2, 3, 29, 4)
    monkeypatch.setattr(points, "DENSE_MAX_SAMPLES", 20)  # above it: the tiled engine
    t = h0_from_points(Xs)
    assert t.engine == "tiled-boruvka" and t.edges.shape == (2, 3, 29, 2)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(t.deaths[i, j], h.deaths[i, j], rtol=1e-5)
            _assert_exact(H := h0_from_points(Xs[i, j], engine="tiled"), Xs[i, j])
            np.testing.assert_array_equal(H.linkage, t.linkage[i, j])
    # metrics the tiled engine cannot compute stay dense under auto, and say so when forced
    assert h0_from_points(Xs[0, 0], "manhattan").engine == "dense-prim"
    with pytest.raises(ValueError, match="engine='tiled' computes euclidean.*metric='manhattan' needs engine='dense'"):
        h0_from_points(Xs[0, 0], "manhattan", engine="tiled")
    with pytest.raises(ValueError, match="needs its 30 x 30 distance matrices.*memory_budget=100.*engine='tiled'"):
        h0_from_points(Xs[0, 0], engine="dense", memory_budget=100)
    assert h0_from_points(Xs[0, 0], memory_budget=100).engine == "tiled-boruvka"


def test_kernel_under_jit_and_vmap():
    Xs = np.stack([cloud(s, 40, 4) for s in range(2)]).astype(np.float32)
    batched = jax.jit(jax.vmap(h0_points_kernel))(Xs)
    rows = h0_from_points(Xs, engine="rows")
    assert rows.engine == "rows-prim"
    for i in range(2):
        np.testing.assert_array_equal(np.asarray(batched.deaths[i]), rows.deaths[i])


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
    with pytest.raises(ValueError, match=r"X must have shape \(..., sample, unit\); got shape \(3,\)"):
        h0_from_points(X[0])
    with pytest.raises(ValueError, match="X holds NaN or Inf at sample 4"):
        bad = X.copy()
        bad[4, 1] = np.nan
        h0_from_points(bad)
    with pytest.raises(ValueError, match="k must satisfy 1 <= k <= n - 1 = 9.*got k=0"):
        h0_from_points(X, "geodesic", k=0)
    with pytest.raises(ValueError, match="k must satisfy 1 <= k <= n - 1 = 9.*got k=10"):
        h0_from_points(X, "geodesic", k=10)
    with pytest.raises(ValueError, match="engine='tile' is not supported.*Did you mean 'tiled'"):
        h0_from_points(X, engine="tile")
    with pytest.raises(ValueError, match=r"X\[1\] holds NaN or Inf at sample 2"):
        bad = np.stack([X, X])
        bad[1, 2, 0] = np.inf
        h0_from_points(bad)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "manhattan", "density_cosine", "mahalanobis"])
def test_dense_engine_equals_two_step(metric):
    """Per cloud, h0 of pairwise_distances; padded units change nothing but the summation order."""
    from holejax.metrics.batch import PADDED_METRICS, pad_units

    Xs = np.stack([cloud(s, 40, 5) for s in range(3)]).astype(np.float32)
    fused = h0_from_points(Xs, metric, engine="dense")
    assert (pad_units(Xs, metric).shape[-1] == 64) == (metric in PADDED_METRICS)
    for b in range(3):
        two = h0(np.asarray(hj.pairwise_distances(Xs[b], metric)))
        np.testing.assert_allclose(fused.deaths[b], two.deaths, rtol=1e-5)
        np.testing.assert_allclose(hierarchy.cophenet(fused.linkage[b]), hierarchy.cophenet(two.linkage),
                                   rtol=1e-5)
        if metric != "mahalanobis":  # its padded clouds also need their real width (tests/metrics/test_padding.py)
            padded = h0(np.asarray(hj.pairwise_distances(pad_units(Xs[b], metric), metric)))
            np.testing.assert_array_equal(fused.linkage[b], padded.linkage)
