"""The merge tree read off an H0Result: linkage, clusters, Betti-0 curve, diagram."""

from __future__ import annotations

import numpy as np
import pytest
from h0_helpers import cloud, dist32
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from holejax.filtration import (
    H0Result,
    betti0_curve,
    clusters_at,
    dendrogram_linkage,
    h0,
    h0_diagram,
)


def _grid_D() -> np.ndarray:
    g = np.stack(np.meshgrid(np.arange(8), np.arange(5)), -1).reshape(-1, 2)
    return dist32(g.astype(np.float64))


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("method", ["prim", "boruvka"])
@pytest.mark.parametrize("D", [dist32(cloud(7, 40)), _grid_D()], ids=["gaussian", "ties"])
def test_linkage_is_scipy_single_linkage_up_to_ties(D, method):
    h = h0(D, method=method)
    Z = hierarchy.linkage(squareform(D.astype(np.float64), checks=False), "single")
    assert hierarchy.is_valid_linkage(h.linkage)
    assert hierarchy.is_monotonic(h.linkage)
    np.testing.assert_allclose(h.linkage[:, 2], Z[:, 2], rtol=1e-5)
    # the cophenetic (merge-height) matrix does not depend on how ties are broken
    np.testing.assert_allclose(hierarchy.cophenet(h.linkage), hierarchy.cophenet(Z), rtol=1e-5)
    # every cluster size is consistent with its children
    n = len(D)
    sizes = np.concatenate([np.ones(n), h.linkage[:, 3]])
    np.testing.assert_array_equal(sizes[h.linkage[:, 0].astype(int)] + sizes[h.linkage[:, 1].astype(int)],
                                  h.linkage[:, 3])
    dn = hierarchy.dendrogram(h.linkage, no_plot=True)
    assert sorted(dn["leaves"]) == list(range(n))


def test_bit_identical_on_repeat():
    D = _grid_D()
    a, b = h0(D), h0(D.copy())
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    a, b = h0(D, method="boruvka"), h0(D.copy(), method="boruvka")
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()


def test_clusters_at_matches_fcluster_and_numbering():
    X = np.concatenate([cloud(1, 15, 3), cloud(2, 15, 3) + 8, cloud(3, 10, 3) - 8])
    X = X[np.random.default_rng(0).permutation(len(X))]
    D = dist32(X)
    h = h0(D)
    Z = hierarchy.linkage(squareform(D.astype(np.float64), checks=False), "single")
    for t in [0.0, 0.5, 1.0, 2.0, 5.0, 100.0]:
        lab = clusters_at(h, t)
        ref = hierarchy.fcluster(Z, t, criterion="distance")
        assert _same_partition(lab, ref), t
        # ids 0..k-1 in order of each component's smallest sample index
        firsts = [int(np.flatnonzero(lab == c)[0]) for c in range(lab.max() + 1)]
        assert firsts == sorted(firsts)
        assert lab.dtype == np.int64 and lab[0] == 0
    assert clusters_at(h, -1.0).tolist() == list(range(len(X)))
    assert set(clusters_at(h, np.inf).tolist()) == {0}


def test_betti0_curve_counts_clusters():
    h = h0(dist32(cloud(4, 40)))
    ts = np.linspace(0, 5, 23)
    curve = betti0_curve(h, ts)
    assert curve.tolist() == [int(clusters_at(h, t).max()) + 1 for t in ts]
    assert curve[0] == 40 and np.all(np.diff(curve) <= 0)


def test_diagram_shape_and_essential_bar():
    h = h0(dist32(cloud(5, 40)))
    dgm = h0_diagram(h)
    assert dgm.shape == (40, 2)
    assert np.all(dgm[:, 0] == 0) and np.isinf(dgm[-1, 1]) and np.isfinite(dgm[:-1, 1]).all()
    assert h0_diagram(h0(np.zeros((1, 1), np.float32))).tolist() == [[0.0, np.inf]]


def test_batched_helpers():
    Ds = np.stack([dist32(cloud(s, 40)) for s in range(3)])
    hb = h0(Ds)
    assert clusters_at(hb, 0.8).shape == (3, 40)
    assert betti0_curve(hb, [0.0, 1e9]).tolist() == [[40, 1]] * 3
    assert h0_diagram(hb).shape == (3, 40, 2)


def test_disconnected_linkage_for_drawing():
    D = np.full((40, 40), np.inf, np.float32)
    D[:20, :20] = dist32(cloud(0, 20))
    D[20:, 20:] = dist32(cloud(1, 20))
    h = h0(D)
    assert np.isinf(h.linkage[-1, 2]) and h.linkage[-1, 3] == 40
    Z = dendrogram_linkage(h)
    top = h.linkage[:-1, 2].max()
    assert Z[-1, 2] == pytest.approx(1.1 * top)
    np.testing.assert_array_equal(Z[:-1], h.linkage[:-1])
    hierarchy.dendrogram(Z, no_plot=True)
    assert dendrogram_linkage(h, cap=50.0)[-1, 2] == 50.0
    with pytest.raises(ValueError, match="cap=0.1 is below the largest finite merge height"):
        dendrogram_linkage(h, cap=0.1)
