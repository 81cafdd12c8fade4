"""kNN graphs and geodesic distances against scikit-learn and scipy.sparse.csgraph."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path
from sklearn.neighbors import kneighbors_graph

import holejax as hj
from holejax.metrics import geodesic as geo


def sklearn_graph(X, k, mutual=False):
    G = kneighbors_graph(X.astype(np.float64), k, mode="distance", include_self=False)
    if mutual:
        return G.minimum(G.T)  # an edge present one way only has a stored 0 on the other side
    return G.maximum(G.T)


def test_knn_matches_sklearn(cloud):
    X = cloud(80, 6)
    idx, dist = jax.jit(geo.knn, static_argnames="k")(X, k=7)
    G = kneighbors_graph(X.astype(np.float64), 7, mode="distance", include_self=False)
    for i in range(80):
        row = G.getrow(i)
        order = np.argsort(row.data)
        np.testing.assert_array_equal(np.asarray(idx[i]), row.indices[order])
        np.testing.assert_allclose(np.asarray(dist[i]), row.data[order], rtol=1e-6)


def test_knn_under_vmap(cloud):
    Xs = np.stack([cloud(40, 5, seed=s) for s in range(3)])
    idx, dist = jax.jit(jax.vmap(lambda X: geo.knn(X, 4)))(Xs)
    single = jax.jit(lambda X: geo.knn(X, 4))
    for b in range(3):
        i1, d1 = single(Xs[b])
        np.testing.assert_array_equal(np.asarray(idx[b]), np.asarray(i1))
        np.testing.assert_allclose(np.asarray(dist[b]), np.asarray(d1), rtol=1e-6)


def test_knn_on_wide_rows_breaks_ties_by_index():
    # 1000 samples select from rows of 1000 in groups; integer points and their negations
    # (mean exactly 0) keep every squared distance exact, so ties are exact: the lower index wins
    half = np.random.default_rng(5).integers(-3, 4, size=(500, 3)).astype(np.float32)
    X = np.concatenate([half, -half])
    D2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D2, np.inf)
    want = np.argsort(D2, axis=1, kind="stable")[:, :10]
    idx, dist = jax.jit(geo.knn, static_argnames="k")(X, k=10)
    np.testing.assert_array_equal(np.asarray(idx), want)
    np.testing.assert_allclose(np.asarray(dist), np.sqrt(np.take_along_axis(D2, want, axis=1)), rtol=1e-6)


@pytest.mark.parametrize("mutual", [False, True])
def test_knn_graph_matches_sklearn(mutual, cloud):
    X = cloud(70, 5, seed=2)
    g = hj.metrics.knn_graph(X, k=5, mutual=mutual)
    assert (g.rows < g.cols).all() and g.n_samples == 70
    ref = sp.triu(sklearn_graph(X, 5, mutual), k=1).tocoo()
    ref.eliminate_zeros()
    ours = sp.coo_matrix((g.weights, (g.rows, g.cols)), shape=(70, 70)).tocsr()
    assert set(zip(g.rows.tolist(), g.cols.tolist())) == set(zip(ref.row.tolist(), ref.col.tolist()))
    np.testing.assert_allclose(ours[ref.row, ref.col].A1, ref.data, rtol=1e-6)
    np.testing.assert_array_equal(g.to_csr().toarray(), g.to_csr().toarray().T)


@pytest.mark.parametrize("k", [3, 10])
def test_geodesic_matches_csgraph_shortest_path(k, cloud, assert_rel):
    X = cloud(90, 3, seed=1)
    ref = shortest_path(sklearn_graph(X, k), method="D", directed=False)
    assert np.isfinite(ref).all()
    D = hj.pairwise_distances(X, "geodesic", k=k)
    assert D.dtype == np.float32
    assert_rel(D, ref, 1e-5, f"k={k}")
    with jax.enable_x64(True):
        D64 = hj.pairwise_distances(X.astype(np.float64), "geodesic", k=k)
        assert D64.dtype == np.float64
        assert_rel(D64, ref, 1e-10, f"k={k} float64")


def test_geodesic_on_a_curve_follows_the_curve():
    t = np.linspace(0, 1.5 * np.pi, 60)
    X = np.stack([np.cos(t), np.sin(t)], axis=1).astype(np.float32)
    D = np.asarray(hj.pairwise_distances(X, "geodesic", k=2))
    # about the arc length 1.5 pi from one end to the other (k=2 adds one short cut
    # at each end, hence the loose tolerance), not the straight line sqrt(2)
    np.testing.assert_allclose(D[0, -1], 1.5 * np.pi, rtol=1e-3)
    assert D[0, -1] > 3 * np.linalg.norm(X[0] - X[-1])


def test_disconnected_graph_gives_inf_and_names_components(cloud):
    X = np.concatenate([cloud(20, 2, seed=0), cloud(15, 2, seed=1) + 100.0, cloud(10, 2, seed=2) - 100.0])
    with pytest.warns(RuntimeWarning, match=r"graph \(k=3\) has 3 connected components.*larger k"):
        D = np.asarray(hj.pairwise_distances(X, "geodesic", k=3, layer="fc1"))
    assert np.isinf(D[0, 25]) and np.isinf(D[25, 40]) and np.isfinite(D[:20, :20]).all()
    assert hj.metrics.knn_graph(X, k=3).n_components() == 3
    with pytest.warns(RuntimeWarning, match=r"mutual kNN graph.*or mutual=False"):
        hj.pairwise_distances(X, "geodesic", k=3, mutual=True)


def test_duplicate_points_are_joined_at_zero(cloud):
    X = cloud(30, 3)
    X[5] = X[4]
    g = hj.metrics.knn_graph(X, k=3)
    zero = (g.weights == 0)
    assert zero.sum() == 1 and (g.rows[zero], g.cols[zero]) == ([4], [5])
    D = np.asarray(hj.pairwise_distances(X, "geodesic", k=3))
    assert D[4, 5] == 0.0
    np.testing.assert_allclose(D[4], D[5], rtol=1e-6)


def test_batched_geodesic_equals_single(cloud):
    Xs = np.stack([cloud(25, 3, seed=s) for s in range(2)])
    Ds = hj.batched_pairwise_distances(Xs, "geodesic", k=4)
    for b in range(2):
        np.testing.assert_array_equal(np.asarray(Ds[b]), np.asarray(hj.pairwise_distances(Xs[b], "geodesic", k=4)))


def test_bad_k_and_mutual(cloud):
    X = cloud(12, 3)
    with pytest.raises(ValueError, match=r"k must satisfy 1 <= k <= n - 1 = 11.*got k=12"):
        hj.pairwise_distances(X, "geodesic", k=12)
    with pytest.raises(ValueError, match=r"got k=0"):
        hj.metrics.knn_graph(X, k=0)
    with pytest.raises(TypeError, match=r"k must be an integer number of neighbours; got 2.5"):
        hj.pairwise_distances(X, "geodesic", k=2.5)
    with pytest.raises(TypeError, match=r"k must be an integer.*got True"):
        hj.metrics.knn_graph(X, k=True)
    with pytest.raises(TypeError, match="mutual must be True or False"):
        hj.metrics.knn_graph(X, k=3, mutual="yes")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_geodesic_sources_in_blocks_match_one_search(dtype, monkeypatch, cloud):
    # blocks of 7 sources over 30 samples (the last block short), two graph components
    monkeypatch.setattr(geo, "_SOURCE_BLOCK_BYTES", 7 * 8 * 30)
    X = cloud(30, 3, seed=6, dtype=dtype)
    X[20:] += 100.0
    with jax.enable_x64(dtype == np.float64):  # float64 edge lengths need x64 in the kNN kernel
        D, components = geo.geodesic_distances(X, k=3)
    ref = shortest_path(sklearn_graph(X, 3), method="D", directed=False)
    assert D.dtype == dtype and components.tolist() == [0] * 20 + [1] * 10
    assert np.isinf(D[:20, 20:]).all() and np.isinf(D[20:, :20]).all()
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(D), finite)
    np.testing.assert_allclose(D[finite], ref[finite], rtol=1e-5 if dtype == np.float32 else 1e-10)
