"""The one merge-tree builder: Kruskal over spanning-tree edges, against scipy single linkage."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from h0_helpers import cloud, dist32
from scipy.cluster import hierarchy
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import squareform

from holejax.filtration import h0, h0_from_points, merge_tree
from holejax.filtration.result import complete_forest, forest_merge_tree


def _scipy_linkage(D: np.ndarray) -> np.ndarray:
    return hierarchy.linkage(squareform(np.asarray(D, np.float64), checks=False), "single")


def _scipy_tree(D: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scipy's minimum spanning tree of a tie-free ``D``, edges shuffled and endpoints swapped."""
    T = minimum_spanning_tree(np.asarray(D, np.float64)).tocoo()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(T.data))
    flip = rng.random(len(T.data)) < 0.5
    lo, hi = np.where(flip, T.col, T.row)[perm], np.where(flip, T.row, T.col)[perm]
    return lo, hi, T.data[perm].astype(D.dtype)


def _prim_tree(D: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A minimum spanning tree by a plain numpy Prim (keeps zero-length edges, unlike scipy)."""
    n = len(D)
    inside = np.zeros(n, bool)
    inside[0] = True
    best, via = D[0].astype(np.float64), np.zeros(n, np.int64)
    lo, hi, w = [], [], []
    for _ in range(n - 1):
        j = int(np.argmin(np.where(inside, np.inf, best)))
        lo.append(via[j]), hi.append(j), w.append(D[via[j], j])
        inside[j] = True
        closer = D[j] < best
        best, via = np.where(closer, D[j], best), np.where(closer, j, via)
    return np.array(lo), np.array(hi), np.array(w, D.dtype)


@pytest.mark.parametrize("n", [2, 3, 40])
def test_equals_scipy_single_linkage_without_ties(n):
    D = dist32(cloud(n, n))
    Z = _scipy_linkage(D)
    r = merge_tree(*_scipy_tree(D), n)
    assert isinstance(r.linkage, jax.Array) and r.linkage.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(r.linkage, np.float64)[:, [0, 1, 3]], Z[:, [0, 1, 3]])
    np.testing.assert_allclose(np.asarray(r.linkage)[:, 2], Z[:, 2], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(r.deaths), np.asarray(r.linkage)[:, 2])
    edges = np.asarray(r.edges)
    assert np.all(edges[:, 0] < edges[:, 1])
    np.testing.assert_array_equal(D[edges[:, 0], edges[:, 1]], np.asarray(r.deaths))
    host = forest_merge_tree(*_scipy_tree(D, seed=1), n)
    assert host.linkage.dtype == np.float64 and host.edges.dtype == np.int64 and host.deaths.dtype == np.float32
    np.testing.assert_array_equal(host.linkage, np.asarray(r.linkage, np.float64))
    np.testing.assert_array_equal(host.edges, edges)


@pytest.mark.parametrize("case", ["lattice", "duplicates"])
def test_ties_give_scipy_heights_and_one_deterministic_order(case):
    if case == "lattice":
        X = np.stack(np.meshgrid(np.arange(7), np.arange(5)), -1).reshape(-1, 2).astype(np.float64)
    else:
        X = cloud(2, 20, 3)
        X = np.concatenate([X, X[:8], X[:3]])
    D = dist32(X)
    lo, hi, w = _prim_tree(D)
    r = merge_tree(lo, hi, w, len(D))
    Z = _scipy_linkage(D)
    L = np.asarray(r.linkage, np.float64)
    assert hierarchy.is_valid_linkage(L) and hierarchy.is_monotonic(L)
    np.testing.assert_array_equal(L[:, 2], Z[:, 2])
    np.testing.assert_array_equal(hierarchy.cophenet(L), hierarchy.cophenet(Z))
    # edges in (length, lo, hi) order, whatever order they were given in
    e, d = np.asarray(r.edges), np.asarray(r.deaths)
    np.testing.assert_array_equal(np.lexsort((e[:, 1], e[:, 0], d)), np.arange(len(d)))
    rev = merge_tree(hi[::-1], lo[::-1], w[::-1], len(D))
    for a, b in zip(rev, r):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_disconnected_forest_is_joined_at_inf():
    D = np.full((30, 30), np.inf, np.float32)
    parts = [(0, 12), (12, 13), (13, 30)]
    for (a, b), seed in zip(parts, range(3)):
        D[a:b, a:b] = dist32(cloud(seed, b - a, 3))
    perm = np.random.default_rng(7).permutation(30)
    D = D[np.ix_(perm, perm)]
    finite = np.where(np.isfinite(D), D, 0)
    T = minimum_spanning_tree(finite.astype(np.float64)).tocoo()  # a forest of 27 edges
    assert len(T.data) == 27
    lo, hi, w = complete_forest(T.row, T.col, T.data.astype(np.float32), 30)
    assert len(lo) == 29 and np.isinf(w).sum() == 2
    # the +inf edges join every part through its smallest sample to the part of sample 0
    firsts = sorted(int(np.flatnonzero(np.isin(perm, np.arange(a, b)))[0]) for a, b in parts)
    assert sorted(zip(lo[np.isinf(w)].tolist(), hi[np.isinf(w)].tolist())) == [(0, firsts[1]), (0, firsts[2])]
    host = forest_merge_tree(T.row, T.col, T.data.astype(np.float32), 30)
    assert np.isinf(host.deaths[-2:]).all() and np.isfinite(host.deaths[:-2]).all()
    assert host.linkage[-1, 3] == 30
    for engine in ("prim", "boruvka"):
        np.testing.assert_array_equal(h0(D, method=engine).linkage, host.linkage)
    with pytest.raises(ValueError, match="spanning forest of 3 samples; got 3 edges in 1 parts.*cycle"):
        complete_forest([0, 1, 0], [1, 2, 2], [1.0, 1.0, 1.0], 3)


@pytest.mark.parametrize("n", [1, 2])
def test_one_and_two_samples(n):
    D = dist32(cloud(3, n))
    lo, hi, w = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)) if n == 1 else (
        np.array([1]), np.array([0]), D[0, 1:])
    for r in (merge_tree(lo, hi, w, n), jax.jit(merge_tree, static_argnums=3)(lo, hi, w, n),
              forest_merge_tree(lo, hi, w, n)):
        assert np.shape(r.deaths) == (n - 1,) and np.shape(r.edges) == (n - 1, 2)
        assert np.shape(r.linkage) == (n - 1, 4)
        if n == 2:
            np.testing.assert_array_equal(np.asarray(r.linkage, np.float64), _scipy_linkage(D))
            assert np.asarray(r.edges).tolist() == [[0, 1]]


def test_under_jit_and_vmap():
    n = 40
    Ds = [dist32(cloud(s, n)) for s in range(4)]
    trees = [_scipy_tree(D, seed=s) for s, D in enumerate(Ds)]
    lo, hi, w = (np.stack(part) for part in zip(*trees))
    batched = jax.jit(jax.vmap(lambda a, b, c: merge_tree(a, b, c, n)))(lo, hi, w)
    assert batched.linkage.shape == (4, n - 1, 4)
    for i, D in enumerate(Ds):
        one = merge_tree(lo[i], hi[i], w[i], n)
        for a, b in zip(batched, one):
            np.testing.assert_array_equal(np.asarray(a[i]), np.asarray(b))
        np.testing.assert_array_equal(np.asarray(batched.linkage[i], np.float64)[:, [0, 1, 3]],
                                      _scipy_linkage(D)[:, [0, 1, 3]])


@pytest.mark.parametrize("n", [63, 64, 65, 130])
def test_padded_host_program_equals_the_exact_shape(n):
    """Host edge lists are padded to a power of two; the padding never changes a row."""
    D = dist32(cloud(n, n, 4))
    tree = _scipy_tree(D)
    host = forest_merge_tree(*tree, n)
    exact = merge_tree(*tree, n)
    np.testing.assert_array_equal(host.linkage, np.asarray(exact.linkage, np.float64))
    np.testing.assert_array_equal(host.edges, np.asarray(exact.edges))
    np.testing.assert_array_equal(host.deaths, np.asarray(exact.deaths))


def test_bad_edge_count():
    with pytest.raises(ValueError, match=r"lo, hi and w must each have shape \(n - 1,\) = \(3,\) for n=4"):
        merge_tree(np.array([0, 1]), np.array([1, 2]), np.array([1.0, 2.0]), 4)


def test_every_engine_gives_one_linkage_on_a_tie_free_cloud():
    n = 60
    X = cloud(11, n, 4).astype(np.float32)
    Z = _scipy_linkage(dist32(X))
    results = {
        "dense-prim": h0_from_points(X, engine="dense", method="prim"),
        "dense-boruvka": h0_from_points(X, engine="dense", method="boruvka"),
        "tiled": h0_from_points(X, engine="tiled"),
        "rows": h0_from_points(X, engine="rows"),
        "knn-graph": h0_from_points(X, "geodesic", k=n - 1),  # the complete graph: euclidean MST
        "h0": h0(dist32(X)),
    }
    ref = results["dense-prim"]
    for name, h in results.items():
        np.testing.assert_array_equal(h.linkage[:, [0, 1, 3]], Z[:, [0, 1, 3]], err_msg=name)
        np.testing.assert_array_equal(h.edges, ref.edges, err_msg=name)
        np.testing.assert_allclose(h.linkage[:, 2], Z[:, 2], rtol=1e-5, err_msg=name)


def test_large_random_tree_merges_consistently():
    """Every merge joins two existing clusters into one of their summed size, in death order."""
    n = 20_000
    rng = np.random.default_rng(0)
    lo = (rng.random(n - 1) * np.arange(1, n)).astype(np.int64)  # a random recursive tree
    hi = np.arange(1, n)
    w = rng.random(n - 1).astype(np.float32)
    h = forest_merge_tree(lo, hi, w, n)
    assert h.linkage[-1, 3] == n and np.all(np.diff(h.deaths) >= 0)
    sizes = np.concatenate([np.ones(n), h.linkage[:, 3]])
    np.testing.assert_array_equal(sizes[h.linkage[:, 0].astype(int)] + sizes[h.linkage[:, 1].astype(int)],
                                  h.linkage[:, 3])
    # each cluster id is merged exactly once, and only after it was formed
    ids = h.linkage[:, :2].astype(int).ravel()
    assert len(np.unique(ids)) == len(ids)
    assert np.all(h.linkage[:, :2].max(axis=1) < n + np.arange(n - 1))
