"""Hypothesis properties of every metric: symmetry, zero diagonal, permutation equivariance, scaling."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import holejax as hj

N, D = 12, 5  # one shape, so each metric compiles once for the whole property run
PARAMS = {"geodesic": {"k": 4}, "density_euclidean": {"k": 3}, "density_cosine": {"k": 3}, "density_mahalanobis": {"k": 3}}

# homogeneity degree of each metric under X -> c X (c > 0)
DEGREE = {
    "euclidean": 1, "sqeuclidean": 2, "manhattan": 1, "chebyshev": 1, "cosine": 0, "angular": 0,
    "mahalanobis": 0, "geodesic": 1, "density_euclidean": 0, "density_cosine": 0, "density_mahalanobis": 0,
}  # fmt: skip

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clouds(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    spread = draw(st.sampled_from([0.1, 1.0, 30.0]))
    offset = draw(st.sampled_from([0.0, 2.0, -50.0]))
    rng = np.random.default_rng(seed)
    return (offset + spread * rng.normal(size=(N, D))).astype(np.float32)


def distances(X, metric):
    return np.asarray(hj.pairwise_distances(X, metric, **PARAMS.get(metric, {})), dtype=np.float64)


@SETTINGS
@given(X=clouds(), metric=st.sampled_from(hj.METRICS))
def test_symmetric_nonnegative_zero_diagonal(X, metric):
    Dm = distances(X, metric)
    np.testing.assert_array_equal(Dm, Dm.T)
    np.testing.assert_array_equal(np.diag(Dm), 0.0)
    assert (Dm >= 0).all()


@SETTINGS
@given(X=clouds(), metric=st.sampled_from(hj.METRICS), perm_seed=st.integers(0, 1000))
def test_permutation_equivariance(X, metric, perm_seed):
    p = np.random.default_rng(perm_seed).permutation(N)
    a = distances(X, metric)[np.ix_(p, p)]
    b = distances(X[p], metric)
    scale = max(np.abs(a[np.isfinite(a)]).max(), 1e-30)
    np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-5 * scale)


@SETTINGS
@given(X=clouds(), metric=st.sampled_from(hj.METRICS), c=st.sampled_from([0.25, 3.0, 1000.0]))
def test_scale_behaviour(X, metric, c):
    a = distances(X, metric) * c ** DEGREE[metric]
    b = distances(np.float32(c) * X, metric)
    scale = max(np.abs(a[np.isfinite(a)]).max(), 1e-30)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * scale)


@SETTINGS
@given(X=clouds())
def test_triangle_inequality_of_true_metrics(X):
    for metric in ("euclidean", "manhattan", "chebyshev", "angular", "mahalanobis", "geodesic"):
        Dm = distances(X, metric)
        slack = Dm[:, :, None] + Dm[None, :, :] - Dm[:, None, :]  # d_ij + d_jk - d_ik
        assert slack.min() >= -1e-4 * Dm.max(), metric


@SETTINGS
@given(X=clouds(), shift=st.sampled_from([-3.0, 5.0]))
def test_translation_invariance(X, shift):
    for metric in ("euclidean", "manhattan", "chebyshev", "mahalanobis"):
        a = distances(X, metric)
        b = distances(X + np.float32(shift), metric)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * a.max(), err_msg=metric)
