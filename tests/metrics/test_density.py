"""Density-normalised distances against a numpy reference built on scipy's cdist."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import sklearn.covariance as skcov
from scipy.spatial.distance import cdist

import holejax as hj
from holejax.metrics import density as den
from holejax.metrics.selection import row_smallest


def reference(X, base, k, scale):
    X = X.astype(np.float64)
    if base == "mahalanobis":
        D = cdist(X, X, "mahalanobis", VI=np.linalg.inv(skcov.ledoit_wolf(X)[0]))
    else:
        D = cdist(X, X, base)
    np.fill_diagonal(D, 0.0)
    nearest = np.sort(D + np.diag(np.full(len(X), np.inf)), axis=1)[:, :k]
    mu = nearest[:, -1] if scale == "kth" else nearest.mean(axis=1)
    return D / np.sqrt(np.outer(mu, mu))


@pytest.mark.parametrize("base", ["euclidean", "cosine", "mahalanobis"])
@pytest.mark.parametrize("scale", ["mean", "kth"])
def test_density_matches_reference(base, scale, cloud, assert_rel):
    X = cloud(50, 6, seed=3) - 3.0
    D = hj.pairwise_distances(X, f"density_{base}", k=4, scale=scale)
    assert_rel(D, reference(X, base, 4, scale), 1e-5, base)
    if scale == "mean":
        with jax.enable_x64(True):
            D64 = hj.pairwise_distances(X.astype(np.float64), f"density_{base}", k=4)
            assert D64.dtype == np.float64
            assert_rel(D64, reference(X, base, 4, scale), 1e-10, base)


def test_default_k_is_five(cloud, assert_rel):
    X = cloud(30, 4)
    assert_rel(hj.pairwise_distances(X, "density_euclidean"), reference(X, "euclidean", 5, "mean"), 1e-5)


def test_kernel_under_jit_and_vmap(cloud, assert_rel):
    Xs = np.stack([cloud(30, 4, seed=s) for s in range(3)])
    f = jax.jit(jax.vmap(lambda X: den.density_distances(X, "euclidean", k=3)))
    out = f(Xs)
    for b in range(3):
        assert_rel(out[b], reference(Xs[b], "euclidean", 3, "mean"), 1e-5)


def test_scale_invariance(cloud):
    X = cloud(40, 5)
    for metric in ["density_euclidean", "density_mahalanobis"]:
        a = np.asarray(hj.pairwise_distances(X, metric))
        b = np.asarray(hj.pairwise_distances(np.float32(7.5) * X, metric))
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6, err_msg=metric)


def test_duplicates_with_zero_scale_are_warned_and_finite(cloud):
    X = cloud(20, 3)
    X[1:4] = X[0]  # samples 0..3 each have 3 duplicates: zero scale for k <= 3
    with pytest.warns(RuntimeWarning, match=r"4 sample\(s\) have local scale 0 \(first: sample 0\)"):
        D = np.asarray(hj.pairwise_distances(X, "density_euclidean", k=2))
    assert np.isfinite(D).all() and D[0, 1] == 0.0


def test_density_cosine_warns_for_zero_vectors(cloud):
    X = cloud(20, 3)
    X[7] = 0.0
    with pytest.warns(RuntimeWarning, match=r"zero vectors \(first: sample 7\)"):
        D = np.asarray(hj.pairwise_distances(X, "density_cosine"))
    assert np.isfinite(D).all()


def test_bad_density_parameters(cloud):
    X = cloud(10, 3)
    with pytest.raises(ValueError, match=r"scale='median'.*expected one of \['mean', 'kth', 'kth_floored'\]"):
        hj.pairwise_distances(X, "density_euclidean", scale="median")
    with pytest.raises(ValueError, match=r"k must satisfy.*got k=10"):
        hj.pairwise_distances(X, "density_cosine", k=10)
    with pytest.raises(TypeError, match=r"metric='density_euclidean' got unexpected parameter\(s\) \['covariance'\]"):
        hj.pairwise_distances(X, "density_euclidean", covariance="oas")


@pytest.mark.parametrize(
    "width, k", [(7, 1), (7, 7), (50, 5), (301, 1), (301, 17), (1000, 5), (1000, 17), (1601, 1), (1601, 5)]
)
def test_row_smallest_matches_a_stable_sort(width, k):
    """Grouped selection (wide rows) and plain top_k (narrow rows) against a stable argsort:
    the same values and the same columns, ties (in column order) and inf included."""
    rng = np.random.default_rng(width + k)
    A = rng.integers(0, 40, size=(9, width)).astype(np.float32)  # many ties
    A[rng.random(A.shape) < 0.3] = np.inf
    A[0] = np.inf  # a row of inf only
    A[1, -k:] = -1.0  # the smallest values in the last, partial group
    A[2] = 3.0  # one value everywhere: the first k columns
    want_at = np.argsort(A, axis=1, kind="stable")[:, :k]
    want = np.take_along_axis(A, want_at, axis=1)
    values, columns = jax.jit(row_smallest, static_argnums=1)(A, k)
    np.testing.assert_array_equal(np.asarray(values), want)
    np.testing.assert_array_equal(np.asarray(columns), want_at)
    b_values, b_columns = jax.vmap(lambda a: row_smallest(a, k))(np.stack([A, A[::-1]]))
    np.testing.assert_array_equal(np.asarray(b_values[1]), want[::-1])
    np.testing.assert_array_equal(np.asarray(b_columns[1]), want_at[::-1])


def test_row_smallest_in_float64():
    A = np.random.default_rng(0).random((5, 2000))
    with jax.enable_x64(True):
        values, columns = row_smallest(A, 6)
        assert values.dtype == np.float64
        np.testing.assert_array_equal(np.asarray(values), np.sort(A, axis=1)[:, :6])
        np.testing.assert_array_equal(np.asarray(columns), np.argsort(A, axis=1)[:, :6])


@pytest.mark.parametrize("scale", ["mean", "kth"])
def test_density_on_wide_rows_matches_reference(scale, cloud, assert_rel):
    """A cloud large enough for the grouped nearest-neighbour selection."""
    X = cloud(700, 5, seed=11)
    X[10] = X[20]  # a duplicate pair: its zero distance is one of the k nearest
    D = hj.pairwise_distances(X, "density_euclidean", k=5, scale=scale)
    assert_rel(D, reference(X, "euclidean", 5, scale), 2e-5)
