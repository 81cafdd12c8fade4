"""Hostile inputs to the public functions: a clear error naming the argument, never a silent answer or a raw internal error."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import holejax as hj

RAGGED = [[1.0, 2.0], [3.0]]


@pytest.fixture(scope="module")
def tree():
    X = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    D = np.asarray(hj.pairwise_distances(X))
    return D, hj.h0(D)


def test_clusters_at_nan_threshold_is_an_error_not_singletons(tree):
    _, h = tree
    with pytest.raises(ValueError, match=r"threshold is NaN; pass a number"):
        hj.clusters_at(h, np.nan)
    with pytest.raises(ValueError, match=r"threshold is NaN"):
        hj.clusters_at(h, np.float32("nan"))


@pytest.mark.parametrize(
    "threshold, message",
    [
        ("0.5", r"threshold must be a number; got '0.5' \(a str\)"),
        (None, r"threshold must be a number; got None"),
        (True, r"threshold must be a number; got True"),
        (np.array([0.5, 1.0]), r"threshold must be one number; got ndarray of shape \(2,\)"),
        (1 + 2j, r"threshold must be a real number"),
    ],
)
def test_clusters_at_threshold_types(tree, threshold, message):
    _, h = tree
    with pytest.raises(TypeError, match=message):
        hj.clusters_at(h, threshold)


def test_infinite_thresholds_stay_meaningful(tree):
    _, h = tree
    assert hj.clusters_at(h, np.inf).tolist() == [0] * 10
    assert hj.clusters_at(h, -np.inf).tolist() == list(range(10))
    assert hj.clusters_at(h, np.float32(0.5)).tolist() == hj.clusters_at(h, 0.5).tolist()


@pytest.mark.parametrize("fn", [
    lambda h: hj.clusters_at(h, 0.5),
    lambda h: hj.betti0_curve(h, [0.5]),
    hj.h0_diagram,
    hj.dendrogram_linkage,
])
def test_a_matrix_where_an_h0_result_is_expected(tree, fn):
    D, _ = tree
    with pytest.raises(TypeError, match=r"h must be an H0Result.*ndarray of shape \(10, 10\).*distance matrix: pass hj.h0\(D\)"):
        fn(D)
    with pytest.raises(TypeError, match=r"point cloud: pass hj.h0_from_points\(X\)"):
        fn(D[:, :3])
    with pytest.raises(TypeError, match=r"h must be an H0Result.*got None"):
        fn(None)


def test_sankey_stages_needs_an_h0_result(tree):
    D, _ = tree
    with pytest.raises(TypeError, match=r"H0Result.*distance matrix"):
        hj.sankey_stages(D, np.repeat([0, 1], 5))


def test_betti0_curve_thresholds(tree):
    _, h = tree
    with pytest.raises(ValueError, match=r"thresholds holds NaN at index \(1,\)"):
        hj.betti0_curve(h, [0.5, np.nan])
    with pytest.raises(TypeError, match=r"thresholds must be an array of thresholds; got 'abc'"):
        hj.betti0_curve(h, "abc")
    with pytest.raises(ValueError, match=r"thresholds must be an array of thresholds; got a ragged"):
        hj.betti0_curve(h, [[1.0], [1.0, 2.0]])
    # still traceable: thresholds inside jax.jit are not inspected
    jh = jax.tree_util.tree_map(jax.numpy.asarray, h[:3])
    out = jax.jit(lambda t: hj.betti0_curve(hj.H0Result(*jh), t))(jax.numpy.array([0.0, 10.0]))
    assert out.tolist() == [10, 1]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: hj.pairwise_distances(RAGGED), r"X must be a \(sample, unit\) array; got a ragged nested sequence \(rows of different lengths: 2, 1\)"),
        (lambda: hj.pairwise_distances(None), r"X must be a \(sample, unit\) array; got None"),
        (lambda: hj.pairwise_distances("abc"), r"X must be a \(sample, unit\) array; got 'abc' \(a str\)"),
        (lambda: hj.pairwise_distances(np.ones((4, 2), np.complex64)), r"X must be a \(sample, unit\) array of real numbers; got dtype complex64"),
        (lambda: hj.pairwise_distances(np.ones((4, 2)), "mahalanobis", VI="abc"), r"VI must be the \(2, 2\) inverse covariance.*got 'abc'"),
        (lambda: hj.pairwise_distances(np.ones((4, 2)), "mahalanobis", VI=RAGGED), r"VI must be the \(2, 2\) inverse covariance.*ragged"),
        (lambda: hj.batched_pairwise_distances([RAGGED, RAGGED]), r"Xs\[0\] must be a \(sample, unit\) array; got a ragged"),
        (lambda: hj.h0(None), r"D must be a distance matrix; got None"),
        (lambda: hj.h0(RAGGED), r"D must be a distance matrix; got a ragged"),
        (lambda: hj.h0_from_points(RAGGED), r"X must be a \(sample, unit\) cloud.*; got a ragged"),
        (lambda: hj.h0_from_points([np.ones((4, 2)), np.ones((3, 2))]), r"X must be a \(sample, unit\) cloud.*ragged"),
        (lambda: hj.purity(RAGGED, [0, 1]), r"labels_pred must be a \(sample,\) array of cluster ids; got a ragged"),
        (lambda: hj.inverse_purity([0, 1], RAGGED), r"labels_true must be a \(sample,\) array of classes; got a ragged"),
        (lambda: hj.diagram_distance(RAGGED, [[0.0, 1.0]]), r"dgm_a must be a \(k, 2\) diagram.*ragged"),
        (lambda: hj.total_persistence(RAGGED), r"must be a \(\.\.\., k, 2\) diagram.*ragged"),
    ],
)
def test_ragged_none_and_strings_name_the_argument(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


@pytest.mark.parametrize("fn", [hj.open_activations, hj.open_results])
@pytest.mark.parametrize("store, error, message", [
    (None, TypeError, r"store must be the path of a Zarr store \(str or pathlib.Path\), e.g. 'acts.zarr'; got None"),
    (3, TypeError, r"store must be the path of a Zarr store.*got 3\."),
    ("", ValueError, r"store is an empty path"),
])
def test_store_none_or_not_a_path(fn, store, error, message):
    with pytest.raises(error, match=message):
        fn(store)


def test_write_results_to_store_none_writes_nothing(tmp_path, monkeypatch):
    import xarray as xr

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=r"store must be the path of a Zarr store.*got None"):
        hj.write_results(xr.Dataset(), None)
    assert list(tmp_path.iterdir()) == []


def test_float64_beyond_float32_is_refused_without_x64():
    X = np.random.default_rng(1).normal(size=(6, 3))
    with pytest.raises(ValueError, match=r"X holds values up to .*e\+300.*outside the float32 range.*Enable x64"):
        hj.pairwise_distances(X * 1e300)
    with pytest.raises(ValueError, match=r"X holds values up to .*e-300.*outside the float32 range"):
        hj.pairwise_distances(X * 1e-300)
    with jax.enable_x64(True):  # float64 kernels take them
        D = np.asarray(hj.pairwise_distances(X * 1e300))
    np.testing.assert_allclose(D, np.asarray(hj.pairwise_distances(X), np.float64) * 1e300, rtol=1e-5)


def test_bfloat16_clouds_are_accepted():
    X = np.random.default_rng(2).normal(size=(6, 3)).astype(np.float32)
    Xb = jax.numpy.asarray(X, jax.numpy.bfloat16)
    D = np.asarray(hj.pairwise_distances(Xb))
    np.testing.assert_allclose(D, np.asarray(hj.pairwise_distances(np.asarray(Xb.astype(np.float32)))), rtol=1e-6)


@pytest.mark.parametrize("factor", [1e50, 1e-50])
def test_inverse_covariance_beyond_float32_is_refused(factor):
    X = np.random.default_rng(3).normal(size=(8, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"VI holds values up to .*outside the float32 range.*rescale VI"):
        hj.pairwise_distances(X, "mahalanobis", VI=np.eye(3) * factor)


def small_acts(X):
    import xarray as xr

    return xr.Dataset({"fc": (("perturbation", "sample", "fc:unit"), X)}, coords={"perturbation": ["clean"]})


@pytest.mark.parametrize("metrics", [None, 3])
def test_analyze_metrics_of_the_wrong_type(metrics):
    acts = small_acts(np.random.default_rng(0).normal(size=(1, 6, 2)).astype(np.float32))
    with pytest.raises(TypeError, match=r"metrics must be a metric name or a list of them.*got (None|3)"):
        hj.analyze(acts, metrics=metrics)


def test_analyze_complex_activations_are_refused_not_truncated():
    X = np.random.default_rng(0).normal(size=(1, 6, 2)).astype(np.complex64)
    with pytest.raises(TypeError, match=r"layer 'fc' holds complex64 activations; expected real numbers"):
        hj.analyze(small_acts(X))


def test_analyze_float64_beyond_float32_names_the_layer():
    X = np.random.default_rng(0).normal(size=(1, 6, 2)) * 1e300
    with pytest.raises(ValueError, match=r"layer 'fc' holds values up to .* \(perturbation 'clean'\), outside the float32"):
        hj.analyze(small_acts(X))
