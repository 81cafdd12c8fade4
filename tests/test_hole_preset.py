"""The "hole" metric preset against distances computed by hand from the HOLE reference code's definitions.

Every reference here is plain numpy / scipy in float64, written from the
definitions (mutual kNN graph as the minimum of the two directed
adjacencies, euclidean fill between components, projection onto 10 principal
components, k-th neighbour scale floored at max(0.01, 0.1 * median)).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.cluster.hierarchy import linkage
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree, shortest_path
from scipy.spatial.distance import cdist, squareform

import holejax as hj
from holejax.metrics import knn_graph
from holejax.metrics.presets import HOLE_STAGE_CRITERION


def blobs(seed: int, n: int = 90, d: int = 12, spread: float = 1.0) -> np.ndarray:
    """Three blobs of different widths and a tight far group: a mutual 10-NN graph falls apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(4, d))
    sizes, widths = [40, 30, 14, 6], [0.5, 1.0, 2.0, 0.01]
    X = np.concatenate([c + w * rng.normal(size=(s, d)) for c, s, w in zip(centres, sizes, widths)])
    return (spread * X[:n]).astype(np.float64)


def hole_geodesic(X: np.ndarray, k: int = 10) -> tuple[np.ndarray, int]:
    """Filled geodesic distances and the number of components of the mutual kNN graph."""
    E = cdist(X, X)
    n = len(X)
    order = np.argsort(E, axis=1, kind="stable")[:, 1 : k + 1]  # self first (distinct points)
    A = sp.csr_matrix((E[np.arange(n)[:, None], order].ravel(), (np.repeat(np.arange(n), k), order.ravel())), shape=(n, n))
    A = A.minimum(A.T)  # mutual kNN: both directions present
    G = shortest_path(A, method="D", directed=False)
    return np.where(np.isinf(G), E, G), connected_components(A, directed=False)[0]


def hole_mahalanobis(X: np.ndarray, components: int = 10) -> np.ndarray:
    Xc = X - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    Z = Xc @ Vt[:components].T
    VI = np.linalg.inv(np.cov(Z.T, bias=True))  # holejax's empirical covariance divides by n
    return cdist(Z, Z, "mahalanobis", VI=VI)


def hole_density(D: np.ndarray, k: int = 5) -> np.ndarray:
    r = np.sort(D, axis=1)[:, k]  # column 0 is the sample itself
    mu = np.maximum(r, max(0.01, 0.1 * np.median(r)))
    return D / np.sqrt(mu[:, None] * mu[None, :])


def single_linkage_deaths(D: np.ndarray) -> np.ndarray:
    return np.sort(linkage(squareform(D, checks=False), "single")[:, 2])


@pytest.mark.parametrize("seed", [0, 1])
def test_geodesic_preset_matches_hand_computation(seed):
    X = blobs(seed)
    params = hj.hole_metric_params(["geodesic"])["geodesic"]
    ref, n_comp = hole_geodesic(X)
    assert n_comp > 1  # the mutual graph is disconnected: the euclidean fill matters
    D = np.asarray(hj.pairwise_distances(X.astype(np.float32), "geodesic", **params), np.float64)
    np.testing.assert_allclose(D, ref, rtol=2e-5, atol=1e-4)
    # the H0 of the filled matrix is the minimum spanning forest of the graph with the cross edges
    g = knn_graph(X.astype(np.float32), **params)
    T = minimum_spanning_tree(sp.coo_matrix((g.weights.astype(np.float64), (g.rows, g.cols)), shape=(len(X),) * 2))
    np.testing.assert_allclose(np.sort(T.data), single_linkage_deaths(ref), rtol=2e-5)
    np.testing.assert_allclose(np.asarray(hj.h0(D).deaths), single_linkage_deaths(ref), rtol=2e-5)
    from_points = hj.h0_from_points(X.astype(np.float32), "geodesic", **params)  # the kNN-forest engine
    np.testing.assert_allclose(np.sort(np.asarray(from_points.deaths)), single_linkage_deaths(ref), rtol=2e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_mahalanobis_preset_matches_hand_computation(seed):
    X = blobs(seed, d=24)
    params = hj.hole_metric_params(["mahalanobis"])["mahalanobis"]
    D = np.asarray(hj.pairwise_distances(X.astype(np.float32), "mahalanobis", **params), np.float64)
    ref = hole_mahalanobis(X)
    np.testing.assert_allclose(D, ref, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.asarray(hj.h0(D).deaths), single_linkage_deaths(ref), rtol=1e-3, atol=1e-3)
    # and not the default (Ledoit-Wolf on all 24 units)
    default = np.asarray(hj.pairwise_distances(X.astype(np.float32), "mahalanobis"), np.float64)
    assert np.abs(default - ref).max() > 0.1 * ref.max()


@pytest.mark.parametrize("spread", [1.0, 1e-3])  # the second is small enough for the 0.01 floor
def test_density_preset_matches_hand_computation(spread):
    X = blobs(2, spread=spread)
    params = hj.hole_metric_params(["density_euclidean", "density_cosine", "density_mahalanobis"])
    E = cdist(X, X)
    cases = {
        "density_euclidean": hole_density(E),
        "density_cosine": hole_density(cdist(X, X, "cosine")),
        "density_mahalanobis": hole_density(hole_mahalanobis(X)),
    }
    for metric, ref in cases.items():
        D = np.asarray(hj.pairwise_distances(X.astype(np.float32), metric, **params[metric]), np.float64)
        np.testing.assert_allclose(D, ref, rtol=2e-3, atol=2e-4 * ref.max(), err_msg=metric)
    r = np.sort(E, axis=1)[:, 5]
    floored = r < max(0.01, 0.1 * np.median(r))
    assert floored.any()  # the floor is exercised: the outlier group, or every sample at 1e-3


def test_preset_selection_and_errors():
    full = hj.hole_metric_params()
    assert set(full) == {"euclidean", "cosine", "mahalanobis", "geodesic",
                         "density_euclidean", "density_cosine", "density_mahalanobis"}
    full["geodesic"]["k"] = 3
    assert hj.hole_metric_params()["geodesic"]["k"] == 10  # a fresh copy each call
    assert HOLE_STAGE_CRITERION == "hole"
    with pytest.raises(ValueError, match="manhattan"):
        hj.hole_metric_params(["manhattan"])
    X = blobs(0).astype(np.float32)
    with pytest.raises(ValueError, match="disconnected"):
        hj.pairwise_distances(X, "geodesic", disconnected="zero")
    with pytest.raises(ValueError, match="components must be None"):
        hj.pairwise_distances(X, "mahalanobis", components=0)
    with pytest.raises(ValueError, match="cannot be combined with components"):
        hj.pairwise_distances(X, "mahalanobis", components=3, VI=np.eye(X.shape[1]))
    with pytest.raises(ValueError, match="scale="):
        hj.pairwise_distances(X, "density_euclidean", scale="kth_floor")
