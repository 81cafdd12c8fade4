"""Mahalanobis distances and covariance estimators against scikit-learn and scipy."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import sklearn.covariance as skcov
from scipy.spatial.distance import cdist

import holejax as hj
from holejax.metrics import mahalanobis as mah

SKLEARN = {
    "ledoit_wolf": lambda X: skcov.ledoit_wolf(X),
    "oas": lambda X: skcov.oas(X),
    "empirical": lambda X: (skcov.empirical_covariance(X), 0.0),
}


def correlated(n, d, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    A = 0.3 * rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return (rng.normal(size=(n, d)) @ A + 1.0).astype(dtype)


@pytest.mark.parametrize("estimator", ["ledoit_wolf", "oas", "empirical"])
@pytest.mark.parametrize("shape", [(80, 10), (20, 50), (30, 1)])  # d > n and d = 1 included
def test_covariance_estimators_match_sklearn(estimator, shape):
    X = correlated(*shape, dtype=np.float64)
    ref_cov, ref_s = SKLEARN[estimator](X)
    with jax.enable_x64(True):
        est = mah.estimate_covariance(X, estimator)
        np.testing.assert_allclose(est.covariance, ref_cov, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(float(est.shrinkage), ref_s, rtol=1e-10, atol=1e-13)
    est32 = mah.estimate_covariance(X.astype(np.float32), estimator)
    assert est32.covariance.dtype == np.float32
    np.testing.assert_allclose(est32.covariance, ref_cov, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(est32.shrinkage), ref_s, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("estimator", ["ledoit_wolf", "oas", "empirical"])
def test_distances_match_scipy_with_the_same_inverse_covariance(estimator, assert_rel):
    X = correlated(60, 8)
    VI = np.linalg.inv(SKLEARN[estimator](X.astype(np.float64))[0])
    ref = cdist(X.astype(np.float64), X.astype(np.float64), "mahalanobis", VI=VI)
    assert_rel(hj.pairwise_distances(X, "mahalanobis", covariance=estimator), ref, 1e-5, estimator)
    X64 = X.astype(np.float64)
    with jax.enable_x64(True):
        D = hj.pairwise_distances(X64, "mahalanobis", covariance=estimator)
        assert D.dtype == np.float64
        assert_rel(D, ref, 1e-10, estimator)


def test_user_inverse_covariance_matches_scipy(assert_rel):
    X = correlated(40, 6, seed=3)
    B = np.random.default_rng(4).normal(size=(6, 6))
    VI = B @ B.T + 6 * np.eye(6)
    ref = cdist(X.astype(np.float64), X.astype(np.float64), "mahalanobis", VI=VI)
    assert_rel(hj.pairwise_distances(X, "mahalanobis", VI=VI), ref, 1e-5)
    with jax.enable_x64(True):
        assert_rel(hj.pairwise_distances(X.astype(np.float64), "mahalanobis", VI=VI), ref, 1e-10)


def test_more_units_than_samples_uses_shrinkage(assert_rel):
    X = correlated(25, 120)
    VI = np.linalg.inv(skcov.ledoit_wolf(X.astype(np.float64))[0])
    D = hj.pairwise_distances(X, "mahalanobis")
    assert np.isfinite(np.asarray(D)).all()
    assert_rel(D, cdist(X, X, "mahalanobis", VI=VI), 1e-4)


def test_constant_units_stay_finite():
    X = correlated(30, 5)
    X[:, 2] = 7.0
    D = np.asarray(hj.pairwise_distances(X, "mahalanobis"))
    assert np.isfinite(D).all() and (D[~np.eye(30, dtype=bool)] > 0).all()
    with pytest.raises(ValueError, match=r"covariance='empirical' is ill-conditioned.*ledoit_wolf"):
        hj.pairwise_distances(X, "mahalanobis", covariance="empirical")


def test_identical_points_give_zero_distances():
    D = np.asarray(hj.pairwise_distances(np.ones((5, 3), np.float32), "mahalanobis"))
    np.testing.assert_array_equal(D, 0.0)


def test_kernel_under_jit_and_vmap(assert_rel):
    Xs = np.stack([correlated(30, 5, seed=s) for s in range(3)])
    many = jax.jit(jax.vmap(mah.mahalanobis_distances))(Xs)
    for b in range(3):
        VI = np.linalg.inv(skcov.ledoit_wolf(Xs[b].astype(np.float64))[0])
        assert_rel(many[b], cdist(Xs[b], Xs[b], "mahalanobis", VI=VI), 1e-5)
    VI = np.eye(5, dtype=np.float32) * 4
    one = jax.jit(mah.mahalanobis_distances)(Xs[0], VI=VI)
    assert_rel(one, 2 * cdist(Xs[0], Xs[0]), 1e-5)


def test_bad_mahalanobis_parameters():
    X = correlated(20, 4)
    with pytest.raises(ValueError, match=r"covariance='ledoit-wolf'.*Did you mean 'ledoit_wolf'"):
        hj.pairwise_distances(X, "mahalanobis", covariance="ledoit-wolf")
    with pytest.raises(ValueError, match=r"VI must be the \(4, 4\) inverse covariance.*\(3, 3\)"):
        hj.pairwise_distances(X, "mahalanobis", VI=np.eye(3))
    with pytest.raises(ValueError, match="VI must be symmetric"):
        hj.pairwise_distances(X, "mahalanobis", VI=np.triu(np.ones((4, 4))))
    with pytest.raises(ValueError, match="VI must be positive definite"):
        hj.pairwise_distances(X, "mahalanobis", VI=-np.eye(4))
    with pytest.raises(ValueError, match="VI holds NaN"):
        hj.pairwise_distances(X, "mahalanobis", VI=np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r"needs more samples than units; got 20 samples and 30"):
        hj.pairwise_distances(correlated(20, 30), "mahalanobis", covariance="empirical")


@pytest.mark.parametrize("d", [1, 7, 64, 150])  # one block, a partial block, block edges
def test_blocked_cholesky_and_triangular_inverse_match_numpy(d):
    A = np.random.default_rng(d).normal(size=(2 * d + 10, d))
    S = A.T @ A / len(A) + 0.1 * np.eye(d)
    C_ref = np.linalg.cholesky(S)
    with jax.enable_x64(True):
        C = jax.jit(mah.cholesky_lower)(S)
        np.testing.assert_allclose(C, C_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(jax.jit(mah.tril_inverse)(C), np.linalg.inv(C_ref), rtol=1e-9, atol=1e-10)
    C32 = jax.jit(mah.cholesky_lower)(S.astype(np.float32))
    np.testing.assert_allclose(C32, C_ref, rtol=1e-4, atol=1e-5)
    assert np.isnan(np.asarray(jax.jit(mah.cholesky_lower)(-np.eye(d, dtype=np.float32)))).any()
