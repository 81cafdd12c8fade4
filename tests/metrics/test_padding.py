"""Clouds padded with zero units: the distances of the unpadded cloud, one program per width bucket."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import sklearn.covariance as skcov
from scipy.spatial.distance import cdist

import holejax as hj
from holejax._checks import CloudError
from holejax.metrics import geodesic as geo
from holejax.metrics import mahalanobis as mah
from holejax.metrics import pairwise
from holejax.metrics.batch import PADDED_METRICS, cloud_distances_arguments
from holejax.metrics.pairwise import cloud_distances
from holejax.metrics.padding import pad_inverse_covariance, pad_to_bucket, unit_bucket
from holejax.metrics.registry import get_metric, resolve_params

SKLEARN = {
    "ledoit_wolf": lambda X: skcov.ledoit_wolf(X),
    "oas": lambda X: skcov.oas(X),
    "empirical": lambda X: (skcov.empirical_covariance(X), 0.0),
}
ESTIMATORS = tuple(SKLEARN)


def correlated(n, d, seed=0):
    rng = np.random.default_rng(seed)
    A = 0.3 * rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    return (rng.normal(size=(n, d)) @ A * rng.uniform(0.5, 2.0, d) + 1.0).astype(np.float32)


def mahalanobis_reference(X, estimator=None, VI=None, components=None):
    """float64 scipy distances under the sklearn estimate (or ``VI``), after PCA if ``components``."""
    X = X.astype(np.float64)
    if components is not None:
        Xc = X - X.mean(axis=0)
        U, s, _ = np.linalg.svd(Xc, full_matrices=False)
        X = U[:, :components] * s[:components]
    if VI is None:
        VI = np.linalg.inv(SKLEARN[estimator](X)[0])
    return cdist(X, X, "mahalanobis", VI=VI)


def density_reference(D, k):
    """The paper's density normalisation: mean distance to the k nearest neighbours."""
    mu = np.sort(D + np.diag(np.full(len(D), np.inf)), axis=1)[:, :k].mean(axis=1)
    return D / np.sqrt(mu[:, None] * mu[None, :])


def padded_call(X, metric, **params):
    """Distances and flags of ``X`` through the padded path a study takes (one compiled program per bucket)."""
    spec = get_metric(metric)
    full = resolve_params(spec, params, *X.shape)
    clouds, static, arrays = cloud_distances_arguments(X[None], metric, spec, full)
    assert clouds.shape[-1] == unit_bucket(X.shape[1])
    D, flags = cloud_distances(clouds[0], metric, static, arrays)
    return np.asarray(D), np.asarray(flags)


def test_mahalanobis_metrics_are_padded():
    assert {"mahalanobis", "density_mahalanobis"} <= set(PADDED_METRICS)
    assert all(get_metric(m).takes_units for m in ("mahalanobis", "density_mahalanobis"))


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("shape", [(80, 10), (20, 50), (30, 1), (40, 64)])  # d > n, d = 1, d at the bucket
def test_estimators_on_padded_clouds_match_sklearn(estimator, shape):
    X = correlated(*shape)
    d = shape[1]
    ref_cov, ref_s = SKLEARN[estimator](X.astype(np.float64))
    est = jax.jit(mah.estimate_covariance, static_argnames="covariance")(pad_to_bucket(X), estimator, np.int32(d))
    cov = np.asarray(est.covariance)
    np.testing.assert_allclose(cov[:d, :d], ref_cov, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(est.shrinkage), ref_s, rtol=1e-5, atol=1e-6)
    assert not cov[d:].any() and not cov[:, d:].any()  # padded rows and columns stay zero


SMALL = [(m, e, d) for m in ("mahalanobis", "density_mahalanobis") for e in ESTIMATORS for d in (5, 40)]


# the 512 bucket (a larger program to compile) for two of the six metric-estimator pairs
@pytest.mark.parametrize(
    "metric, estimator, d", SMALL + [("mahalanobis", "empirical", 130), ("density_mahalanobis", "ledoit_wolf", 130)]
)
def test_padded_distances_match_scipy(metric, estimator, d, assert_rel):
    X = correlated(150, d, seed=d)
    extra = {"k": 4} if metric.startswith("density") else {}
    D, flags = padded_call(X, metric, covariance=estimator, **extra)
    ref = mahalanobis_reference(X, estimator)
    if extra:
        ref = density_reference(ref, 4)
    assert not flags.any()
    assert_rel(D, ref, 2e-4, f"{metric} {estimator} d={d}")
    if d == 5:  # and the unpadded float32 kernel, to its rounding
        assert_rel(D, hj.pairwise_distances(X, metric, covariance=estimator, **extra), 2e-5, "unpadded")


@pytest.mark.parametrize("metric", ["mahalanobis", "density_mahalanobis"])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_padded_principal_components_match_scipy(metric, estimator, assert_rel):
    X = correlated(60, 20, seed=1)
    extra = {"k": 3} if metric.startswith("density") else {}
    D, flags = padded_call(X, metric, covariance=estimator, components=6, **extra)
    ref = mahalanobis_reference(X, estimator, components=6)
    if extra:
        ref = density_reference(ref, 3)
    assert not flags.any()
    assert_rel(D, ref, 1e-4, f"{metric} {estimator}")


@pytest.mark.parametrize("estimator", ["ledoit_wolf", "oas"])
def test_fewer_varying_directions_than_components(estimator, assert_rel):
    """Only 3 units vary and 5 components are asked for: padded units change nothing."""
    X = correlated(40, 8, seed=2)
    X[:, 3:] = 2.5  # constant units
    D, flags = padded_call(X, "mahalanobis", covariance=estimator, components=5)
    D0, flags0 = get_metric("mahalanobis").kernel(X, covariance=estimator, components=5)
    assert flags.any() == bool(np.asarray(flags0).any())
    if not flags.any():
        assert_rel(D, D0, 1e-4, estimator)
        assert_rel(D, mahalanobis_reference(X, estimator, components=5), 1e-3, "scipy")
    with pytest.raises(ValueError, match="covariance='empirical' is ill-conditioned"):
        hj.h0_from_points(X, "mahalanobis", covariance="empirical", components=5, engine="dense")


@pytest.mark.parametrize("metric", ["mahalanobis", "density_mahalanobis"])
def test_padded_inverse_covariance_matches_scipy(metric, assert_rel):
    X = correlated(50, 12, seed=4)
    B = np.random.default_rng(5).normal(size=(12, 12))
    VI = B @ B.T + 12 * np.eye(12)
    extra = {"k": 3} if metric.startswith("density") else {}
    D, flags = padded_call(X, metric, VI=VI, **extra)
    ref = mahalanobis_reference(X, VI=VI)
    if extra:
        ref = density_reference(ref, 3)
    assert not flags.any()
    assert_rel(D, ref, 1e-5, metric)
    np.testing.assert_array_equal(pad_inverse_covariance(VI, 64)[:12, :12], VI)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_padded_kernel_under_jit_and_vmap(estimator, assert_rel):
    """Clouds of widths 3, 9 and 30 in one (cloud, 64) batch, their real widths vmapped beside them."""
    widths = [3, 9, 30]
    Xs = [correlated(45, d, seed=d) for d in widths]
    padded = np.stack([pad_to_bucket(X) for X in Xs])
    kernel = get_metric("density_mahalanobis").kernel

    def one(X, units):
        return kernel(X, k=3, scale="mean", covariance=estimator, units=units)

    Ds, flags = jax.jit(jax.vmap(one))(padded, np.array(widths, np.int32))
    assert not np.asarray(flags).any()
    for D, X in zip(Ds, Xs):
        assert_rel(D, density_reference(mahalanobis_reference(X, estimator), 3), 2e-4, estimator)


def test_singular_covariances_stay_errors_and_padding_adds_none():
    # four points on one axis: Ledoit-Wolf finds nothing to shrink, the covariance has rank 1
    singular = np.array([[1, 0, 0], [-1, 0, 0], [1, 0, 0], [-1, 0, 0]], np.float32)
    assert padded_call(singular, "mahalanobis")[1].all()
    assert not padded_call(singular, "mahalanobis", covariance="oas")[1].any()
    with pytest.raises(CloudError, match=r"'ledoit_wolf' covariance of this cloud is singular.*covariance='oas'"):
        hj.h0_from_points(np.stack([singular + 1, singular]), "mahalanobis", engine="dense")
    # variances 4e5 apart: usable, padded or not; 1e12 apart: singular in float32, padded or not
    kernel = get_metric("mahalanobis").kernel
    for spread, usable in [(10**1.4, True), (1e3, False)]:
        X = correlated(60, 6, seed=6) * np.float32([1 / spread, 1, 1, 1, 1, spread])
        D, flags = padded_call(X, "mahalanobis", covariance="empirical")
        assert flags.all() != usable and np.asarray(kernel(X, covariance="empirical")[1]).all() != usable
        if usable:
            np.testing.assert_allclose(D, mahalanobis_reference(X, "empirical"), rtol=1e-3, atol=1e-5)


def test_widths_of_one_bucket_share_one_program():
    # n = 27 occurs in no other test, so every program here is new
    widths = (5, 17, 40)
    Xs = [correlated(27, d, seed=d) for d in widths]
    VIs = [np.eye(d) * 2.0 for d in widths]
    kernels, density = pairwise._kernel_program, pairwise._density_program
    before = kernels.cache_size(), density.cache_size()
    for X in Xs:
        padded_call(X, "mahalanobis")
    assert (kernels.cache_size() - before[0], density.cache_size() - before[1]) == (1, 0)
    for X in Xs:  # the density form runs the mahalanobis program, then one normalisation program
        padded_call(X, "density_mahalanobis", k=3)
    assert (kernels.cache_size() - before[0], density.cache_size() - before[1]) == (1, 1)
    padded_call(Xs[0], "density_euclidean", k=3)  # a base without flag columns: the same normalisation
    assert density.cache_size() - before[1] == 1
    before = kernels.cache_size()
    for X, VI in zip(Xs, VIs):
        padded_call(X, "mahalanobis", VI=VI)
    assert kernels.cache_size() - before == 1, "VI"
    # the analysis path (h0_from_points' dense engine) and the geodesic kNN
    before = kernels.cache_size(), geo._knn_jit.cache_size()
    for X in Xs:
        hj.h0_from_points(X, "mahalanobis", covariance="oas", engine="dense")
        hj.h0_from_points(X, "geodesic", k=4)
    assert kernels.cache_size() - before[0] == 1
    assert geo._knn_jit.cache_size() - before[1] == 1
