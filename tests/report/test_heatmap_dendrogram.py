"""Heatmap-dendrogram: orders, downsampling and dendrogram geometry against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import dendrogram, fcluster, leaves_list, linkage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee
from scipy.spatial.distance import pdist, squareform

from holejax.report.heatmap_dendrogram import (
    INF_CODE,
    bin_edges,
    block_means,
    dendrogram_segments,
    heatmap_dendrogram,
    heatmap_dendrogram_figure,
    quantize,
    rcm_order,
    seriation_order,
)


def blobs(n_per=12, k=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)
    X = rng.normal(size=(k, d))[y] * 6 + rng.normal(size=(y.size, d))
    perm = rng.permutation(y.size)
    return X[perm], y[perm]


def test_dendrogram_order_of_a_disconnected_cloud():
    # infinite merge heights (a disconnected cloud) still give scipy's leaf order
    Z = np.array([[0, 2, 1.0, 2], [1, 3, np.inf, 3]])
    assert seriation_order(None, Z, "dendrogram").tolist() == [1, 0, 2]


def test_rcm_dense_matches_scipy_and_knn_groups_clusters():
    X, y = blobs()
    D = squareform(pdist(X))
    adj = (D > 0).astype(np.int8)
    np.testing.assert_array_equal(rcm_order(D, None), reverse_cuthill_mckee(csr_matrix(adj), symmetric_mode=True))
    order = rcm_order(D, n_neighbors=5)
    assert sorted(order.tolist()) == list(range(len(y)))
    # well separated blobs: each class occupies one contiguous run of the order
    runs = np.count_nonzero(np.diff(y[order]) != 0) + 1
    assert runs == 3


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_rcm_reduces_bandwidth_of_the_knn_graph(seed):
    X, _ = blobs(seed=seed)
    D = squareform(pdist(X))
    k = 4
    nn = np.argsort(D + np.diag(np.full(len(D), np.inf)), axis=1)[:, :k]
    rows = np.repeat(np.arange(len(D)), k)
    adj = np.zeros_like(D, dtype=bool)
    adj[rows, nn.ravel()] = True
    adj |= adj.T

    def bandwidth(order):
        pos = np.empty(len(order), int)
        pos[order] = np.arange(len(order))
        i, j = np.nonzero(adj)
        return np.abs(pos[i] - pos[j]).max()

    assert bandwidth(rcm_order(D, k)) <= bandwidth(np.arange(len(D)))


def test_rcm_skips_infinite_entries_and_rejects_bad_input():
    D = np.array([[0, 1, np.inf], [1, 0, np.inf], [np.inf, np.inf, 0]])
    assert sorted(rcm_order(D, 2).tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match="square"):
        rcm_order(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_neighbors must be >= 1"):
        rcm_order(np.zeros((3, 3)), 0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), size=st.integers(1, 40), seed=st.integers(0, 1000))
def test_block_means_are_means_of_the_ordered_blocks(n, size, seed):
    rng = np.random.default_rng(seed)
    D = rng.random((n, n))
    order = rng.permutation(n)
    edges = bin_edges(n, size)
    assert edges[0] == 0 and edges[-1] == n and np.all(np.diff(edges) >= 1)
    M = block_means(D, order, edges)
    P = D[np.ix_(order, order)]
    for a in range(len(edges) - 1):
        for b in range(len(edges) - 1):
            np.testing.assert_allclose(M[a, b], P[edges[a]:edges[a + 1], edges[b]:edges[b + 1]].mean())


def test_quantize_codes():
    codes, lo, hi = quantize(np.array([[1.0, 3.0], [2.0, np.inf]]))
    assert (lo, hi) == (1.0, 3.0)
    assert codes.dtype == np.uint8 and codes.tolist() == [[0, 254], [127, INF_CODE]]
    codes, lo, hi = quantize(np.full((2, 2), 5.0))
    assert codes.max() == 0 and lo == hi == 5.0


def test_full_dendrogram_matches_scipy_drawing():
    X, _ = blobs(n_per=6)
    Z = linkage(X, "single")
    seg = dendrogram_segments(Z, leaves_list(Z))
    ref = dendrogram(Z, no_plot=True)
    # scipy puts leaf p at 10 p + 5; ours at p + 0.5
    ours = sorted(zip(seg.xl * 10, seg.h, seg.xr * 10, seg.yl, seg.yr))
    theirs = sorted((ic[0], dc[1], ic[3], dc[0], dc[3]) for ic, dc in zip(ref["icoord"], ref["dcoord"]))
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-5, atol=1e-4)


def test_truncated_dendrogram_keeps_the_last_merges_and_colours_clusters():
    X, y = blobs()
    Z = linkage(X, "single")
    t = Z[-3, 2] + 1e-9  # three clusters
    clusters = fcluster(Z, t, "distance") - 1
    seg = dendrogram_segments(Z, leaves_list(Z), clusters, max_leaves=8)
    assert len(seg.h) == 7
    np.testing.assert_allclose(seg.h, Z[-7:, 2].astype(np.float32))
    above = seg.h > t
    assert np.all(seg.color[above] == -1)
    assert np.all(seg.color[~above] >= 0)
    # legs hanging from a merge below t carry that merge's cluster
    assert np.all(seg.color_l[~above] == seg.color[~above])
    n = len(y)
    assert np.all((seg.xl >= 0) & (seg.xl <= n) & (seg.xr >= 0) & (seg.xr <= n))


def test_infinite_merges_are_drawn_at_the_cap():
    Z = np.array([[0, 1, 1.0, 2], [2, 3, np.inf, 3]])
    seg = dendrogram_segments(Z, np.array([0, 1, 2]))
    assert np.isfinite(seg.h).all() and seg.h[-1] == pytest.approx(1.1)


def test_heatmap_dendrogram_view_and_figure_data():
    X, y = blobs()
    D = squareform(pdist(X))
    Z = linkage(X, "single")
    clusters = fcluster(Z, Z[-3, 2] + 1e-9, "distance") - 1
    hd = heatmap_dendrogram(D, Z, y, clusters, order="dendrogram", size=9, sample_ids=np.arange(100, 136))
    assert hd.image.shape == (9, 9) and hd.image.dtype == np.uint8
    assert len(hd.segments.h) == 8  # max_leaves defaults to the resolution
    assert hd.strip.count.sum() == len(y)
    assert hd.strip.first.min() >= 100
    # in dendrogram order every cluster is contiguous, so the diagonal blocks are the darkest
    assert np.diag(hd.image).mean() < hd.image.mean()
    view = heatmap_dendrogram_figure(hd, label_names=["a", "b", "c"])
    names = {m.name for m in view.references() if m.name}
    assert {"hd.dendrogram", "hd.strips", "hd.strip", "hd.heatmap", "hd.image", "hd.dendro", "hd.colorbar"} <= names
    image = next(m for m in view.references() if m.name == "hd.image")
    np.testing.assert_array_equal(image.data["image"][0], hd.image)
    assert image.data["dw"] == [float(len(y))]
    bar = next(m for m in view.references() if m.name == "hd.colorbar")
    assert (bar.low, bar.high) == (hd.lo, hd.hi)


def test_heatmap_dendrogram_rejects_bad_input():
    X, y = blobs()
    D = squareform(pdist(X))
    Z = linkage(X, "single")
    with pytest.raises(ValueError, match="order='nope' is not supported"):
        heatmap_dendrogram(D, Z, y, order="nope")
    with pytest.raises(ValueError, match="linkage must have shape"):
        heatmap_dendrogram(D, Z[:, :3], y)
    with pytest.raises(ValueError, match="linkage has 35 merges; expected n - 1 = 34"):
        heatmap_dendrogram(D[:35, :35], Z, y[:35])
    with pytest.raises(ValueError, match=r"D must have shape \(36, 36\)"):
        heatmap_dendrogram(D[:5], Z, y)
    with pytest.raises(ValueError, match=r"clusters must have shape \(36,\)"):
        heatmap_dendrogram(D, Z, y, clusters=np.zeros(3))
    with pytest.raises(ValueError, match="order must have shape"):
        dendrogram_segments(Z, np.arange(3))
