"""Euclidean family and cosine/angular kernels against scipy's cdist."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.spatial.distance import cdist

import holejax as hj
from holejax.metrics import cosine as cos_mod
from holejax.metrics import euclidean as euc_mod

SCIPY_NAME = {
    "euclidean": "euclidean",
    "sqeuclidean": "sqeuclidean",
    "manhattan": "cityblock",
    "chebyshev": "chebyshev",
    "cosine": "cosine",
}
KERNELS = {
    "euclidean": euc_mod.euclidean_distances,
    "sqeuclidean": euc_mod.sqeuclidean_distances,
    "manhattan": euc_mod.manhattan_distances,
    "chebyshev": euc_mod.chebyshev_distances,
    "cosine": cos_mod.cosine_distances,
    "angular": cos_mod.angular_distances,
}


def reference(X: np.ndarray, metric: str) -> np.ndarray:
    X64 = X.astype(np.float64)
    if metric == "angular":
        return np.arccos(np.clip(1.0 - cdist(X64, X64, "cosine"), -1, 1))
    return cdist(X64, X64, SCIPY_NAME[metric])


@pytest.mark.parametrize("metric", list(KERNELS))
@pytest.mark.parametrize("shape", [(60, 12), (40, 200)])  # d > n included
def test_float32_matches_scipy(metric, shape, cloud, assert_rel):
    X = cloud(*shape)
    D = hj.pairwise_distances(X, metric)
    assert D.dtype == np.float32 and D.shape == (shape[0], shape[0])
    assert_rel(D, reference(X, metric), 1e-5, metric)
    np.testing.assert_array_equal(np.diag(np.asarray(D)), 0.0)


@pytest.mark.parametrize("metric", list(KERNELS))
def test_float64_matches_scipy_under_x64(metric, cloud, assert_rel):
    X = cloud(50, 30, dtype=np.float64)
    with jax.enable_x64(True):
        D = hj.pairwise_distances(X, metric)
        assert D.dtype == np.float64
        assert_rel(D, reference(X, metric), 1e-10, metric)


def test_float64_input_without_x64_runs_in_float32(cloud, assert_rel):
    D = hj.pairwise_distances(cloud(10, 3, dtype=np.float64))
    assert D.dtype == np.float32


@pytest.mark.parametrize("metric", list(KERNELS))
def test_kernels_under_jit_and_vmap(metric, cloud, assert_rel):
    Xs = np.stack([cloud(30, 8, seed=s) for s in range(3)])
    kernel = KERNELS[metric]
    single = jax.jit(kernel)(Xs[1])
    many = jax.jit(jax.vmap(kernel))(Xs)
    assert_rel(single, reference(Xs[1], metric), 1e-5, metric)
    for b in range(3):
        assert_rel(many[b], reference(Xs[b], metric), 1e-5, metric)


def test_integer_and_jax_inputs_are_accepted(cloud, assert_rel):
    X = np.arange(12).reshape(4, 3)
    D = hj.pairwise_distances(X)
    assert_rel(D, cdist(X, X), 1e-6)
    D2 = hj.pairwise_distances(jax.numpy.asarray(X, dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(D), np.asarray(D2))


def test_centring_keeps_euclidean_accurate_far_from_origin(cloud, assert_rel):
    X = cloud(40, 16) + np.float32(1e3)
    assert_rel(hj.pairwise_distances(X), reference(X, "euclidean"), 1e-4)


@pytest.mark.parametrize("metric", ["cosine", "angular"])
def test_zero_vectors_are_defined_and_warned(metric, cloud, assert_rel):
    X = cloud(20, 5)
    X[[4, 9]] = 0.0
    with pytest.warns(RuntimeWarning, match=r"2 sample\(s\) are zero vectors \(first: sample 4\)"):
        D = np.asarray(hj.pairwise_distances(X, metric))
    assert np.isfinite(D).all()
    far = 1.0 if metric == "cosine" else np.pi / 2
    np.testing.assert_allclose(D[4, [0, 1, 9]], far, rtol=1e-6)
    assert D[4, 4] == 0.0 and D[9, 9] == 0.0


def test_parallel_and_opposite_directions(cloud, assert_rel):
    X = np.array([[1.0, 2.0], [2.0, 4.0], [-1.0, -2.0]], dtype=np.float32)
    D = np.asarray(hj.pairwise_distances(X, "cosine"))
    np.testing.assert_allclose(D, [[0, 0, 2], [0, 0, 2], [2, 2, 0]], atol=1e-6)
    A = np.asarray(hj.pairwise_distances(X, "angular"))
    # next to pi the angle is ill-conditioned in the cosine: float32 resolves ~sqrt(eps)
    np.testing.assert_allclose(A[0, 2], np.pi, atol=1e-3)
    assert A[0, 1] < 1e-3


@pytest.mark.parametrize("metric", ["manhattan", "chebyshev"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_fold_blocks_and_unroll_remainder(metric, dtype, monkeypatch, cloud, assert_rel):
    # several row blocks with a short last one (45 rows in blocks of 6) and a unit
    # loop whose length is no multiple of its unroll depth (9 units, 4 deep)
    monkeypatch.setattr(euc_mod, "_REDUCE_PANEL_MIN_SAMPLES", 1000)
    monkeypatch.setattr(euc_mod, "_BLOCK_BYTES", 6 * 45 * np.dtype(dtype).itemsize)
    monkeypatch.setattr(euc_mod, "_UNROLL_UNITS", 4)
    kernel = KERNELS[metric]
    clouds = np.stack([cloud(45, 9, seed=s, dtype=dtype) for s in range(3)])
    clouds[1, 7] = clouds[1, 30]  # duplicates in different blocks
    with jax.enable_x64(dtype == np.float64):
        single = np.asarray(jax.jit(lambda X: kernel(X))(clouds[0]))
        batched = np.asarray(jax.jit(jax.vmap(kernel))(clouds))
    assert single.dtype == batched.dtype == dtype
    np.testing.assert_array_equal(batched[0], single)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for X, D in zip(clouds, batched):
        np.testing.assert_array_equal(np.diag(D), 0.0)
        assert_rel(D, reference(X, metric), rtol, metric)
    assert batched[1, 7, 30] == batched[1, 30, 7] == 0.0


def test_manhattan_of_wide_clouds_keeps_float32_accuracy(assert_rel):
    # a running float32 sum over 16384 units drifts by ~8e-6 relative; chunked sums stay near 5e-7
    X = np.random.default_rng(3).normal(3.0, 1.0, size=(20, 16384)).astype(np.float32)
    D = np.asarray(hj.pairwise_distances(X, "manhattan"))
    assert_rel(D, reference(X, "manhattan"), 2e-6, "manhattan")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_manhattan_chunks_pad_units_to_whole_passes(dtype, monkeypatch, cloud, assert_rel):
    # 45 units in chunks of at most 16: three chunks of 16, the last one padded with zero units
    monkeypatch.setattr(euc_mod, "_SUM_CHUNK_UNITS", 16)
    monkeypatch.setattr(euc_mod, "_UNROLL_UNITS", 4)
    X = cloud(30, 45, seed=4, dtype=dtype)
    with jax.enable_x64(dtype == np.float64):
        D = np.asarray(jax.jit(lambda X: euc_mod.manhattan_distances(X))(X))
    assert D.dtype == dtype
    assert_rel(D, reference(X, "manhattan"), 1e-5 if dtype == np.float32 else 1e-12, "manhattan")


@pytest.mark.parametrize("metric", list(KERNELS))
def test_symmetric_panel_path_matches_scipy(metric, monkeypatch, cloud, assert_rel):
    # large clouds compute only the upper triangle in row panels: force that path on a small cloud
    monkeypatch.setattr(euc_mod, "_PANEL_MIN_UNITS", 4)
    monkeypatch.setattr(euc_mod, "_PANEL_MIN_SAMPLES", 16)
    monkeypatch.setattr(euc_mod, "_REDUCE_PANEL_MIN_SAMPLES", 16)
    X = cloud(45, 9, seed=5)  # 45 rows: 8 panels of 6, the last one short
    X[40] = X[2]  # duplicates in different panels
    X[11] = 0.0
    kernel = KERNELS[metric]
    D = np.asarray(jax.jit(lambda X: kernel(X))(X))  # a fresh function, traced with the patch
    np.testing.assert_array_equal(D, D.T)
    np.testing.assert_array_equal(np.diag(D), 0.0)
    assert D[2, 40] == 0.0
    ref = reference(X, metric)
    ref[2, 40] = ref[40, 2] = 0.0  # scipy leaves rounding noise (~1e-16) between duplicates
    keep = np.ones(45, bool)
    keep[11] = False  # scipy gives NaN for the zero row
    assert_rel(D[np.ix_(keep, keep)], ref[np.ix_(keep, keep)], 1e-5, metric)
    if metric in ("cosine", "angular"):
        far = 1.0 if metric == "cosine" else np.pi / 2
        np.testing.assert_allclose(np.delete(D[11], 11), far, rtol=1e-6)


def test_fast_float32_arcsin_is_accurate():
    x = np.linspace(0, 1, 200_001, dtype=np.float32)
    got = np.asarray(jax.jit(cos_mod._arcsin_unit)(x), dtype=np.float64)
    ref = np.arcsin(x.astype(np.float64))
    np.testing.assert_allclose(got[1:], ref[1:], rtol=5e-7)
    assert got[0] == 0.0
