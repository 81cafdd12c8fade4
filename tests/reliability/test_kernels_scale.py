"""Distance kernels keep their accuracy over the whole float32 range, and never swap a covariance silently."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.covariance as skcov
import xarray as xr
from scipy.spatial.distance import cdist

import holejax as hj
from holejax._checks import CloudError
from holejax.metrics.registry import get_metric

OFF = ~np.eye(40, dtype=bool)


def points(n=40, d=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) + 0.5).astype(np.float32)


def reference(X32: np.ndarray, metric: str) -> np.ndarray:
    """float64 scipy distances of the float32 cloud, converted to float64 unscaled."""
    X = X32.astype(np.float64)
    if metric == "mahalanobis":
        return cdist(X, X, "mahalanobis", VI=np.linalg.inv(skcov.ledoit_wolf(X)[0]))
    if metric == "angular":
        return np.arccos(np.clip(1 - cdist(X, X, "cosine"), -1, 1))
    name = {"manhattan": "cityblock"}.get(metric, metric)
    return cdist(X, X, name)


def assert_close(D, ref, rtol=1e-5):
    D = np.asarray(D, np.float64)
    assert np.isfinite(D).all()
    np.testing.assert_allclose(D[OFF], ref[OFF], rtol=rtol, atol=0)
    assert (np.diagonal(D) == 0).all()


SCALES = [1e20, 1e-20]
METRICS = ["euclidean", "cosine", "angular", "manhattan", "chebyshev", "mahalanobis"]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("scale", SCALES)
def test_far_from_one_matches_float64_scipy(metric, scale):
    X = points() * np.float32(scale)
    assert_close(hj.pairwise_distances(X, metric), reference(X, metric))


@pytest.mark.parametrize("metric", METRICS)
def test_kernels_under_jit_and_vmap_at_extreme_scales(metric):
    base = points()
    Xs = np.stack([base * np.float32(s) for s in (1e20, 1e-20, 1.0)])
    kernel = get_metric(metric).kernel
    params = {"covariance": "ledoit_wolf", "VI": None} if metric == "mahalanobis" else {}
    Ds, _ = jax.jit(jax.vmap(lambda X: kernel(X, **params)))(jnp.asarray(Xs))
    for X, D in zip(Xs, Ds):
        assert_close(D, reference(X, metric))
    D_jit, _ = jax.jit(lambda X: kernel(X, **params))(jnp.asarray(Xs[0]))
    assert_close(D_jit, reference(Xs[0], metric))
    # the batched entry point (the library's vmap) agrees too
    assert_close(hj.batched_pairwise_distances(Xs, metric)[1], reference(Xs[1], metric))


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "mahalanobis"])
def test_512_units_near_1e18(metric):
    # sum of 512 squares of 1e18 is ~5e38: past the float32 maximum before rescaling
    X = points(d=512, seed=1) * np.float32(1e18)
    assert_close(hj.pairwise_distances(X, metric), reference(X, metric))


def test_sqeuclidean_is_scaled_back_exactly():
    X = points() * np.float32(1e15)  # squares near 1e30: representable, but 1e30 ** 2 is not
    ref = reference(X, "euclidean") ** 2
    assert_close(hj.pairwise_distances(X, "sqeuclidean"), ref, rtol=2e-6)


@pytest.mark.parametrize("scale", [1e12, 1e-12])
def test_mahalanobis_ledoit_wolf_far_from_one(scale):
    units = np.geomspace(1, 30, 10).astype(np.float32)  # unequal unit scales: mahalanobis != euclidean
    X = points(d=10, seed=2) * units * np.float32(scale)
    ref = reference(X, "mahalanobis")
    assert_close(hj.pairwise_distances(X, "mahalanobis"), ref)
    # and it is not the euclidean matrix (the old silent fallback to the identity)
    euclid = reference(X, "euclidean")
    ratio = ref[OFF] / euclid[OFF]
    assert ratio.max() / ratio.min() > 1.5


def test_mahalanobis_with_more_units_than_samples_at_1e12():
    X = points(d=60, seed=2) * np.float32(1e12)
    assert_close(hj.pairwise_distances(X, "mahalanobis"), reference(X, "mahalanobis"))


def test_cosine_is_scale_free_row_by_row():
    X = points()
    rows = np.float32(10.0) ** np.linspace(-30, 30, 40).astype(np.float32)
    D = hj.pairwise_distances(X, "cosine")
    D_scaled = hj.pairwise_distances(X * rows[:, None], "cosine")
    np.testing.assert_allclose(np.asarray(D_scaled), np.asarray(D), rtol=1e-5, atol=1e-6)


def test_analyze_mahalanobis_at_1e12_finds_the_classes():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 12)
    X = (rng.normal(size=(1, 36, 6)) + 6 * np.eye(6)[y][None]).astype(np.float32)

    def study(scale):
        acts = xr.Dataset(
            {"fc": (("perturbation", "sample", "fc:unit"), X * np.float32(scale))},
            coords={"perturbation": ["clean"], "label": ("sample", y)},
        )
        return hj.analyze(acts, metrics=["mahalanobis"])

    plain, far = study(1.0), study(1e12)
    # the same merge tree as the unscaled cloud, not one component with purity 1 / classes
    assert float(far.purity.item()) == float(plain.purity.item()) > 0.8
    np.testing.assert_allclose(far.deaths.values, plain.deaths.values, rtol=1e-5)


# four points on one axis, exactly: Ledoit-Wolf finds nothing to shrink and the covariance has rank 1
SINGULAR = np.array([[1, 0, 0], [-1, 0, 0], [1, 0, 0], [-1, 0, 0]], np.float32)


def test_singular_covariance_is_an_error_naming_the_layer():
    with pytest.raises(CloudError, match=r"singular.*layer 'fc2'.*covariance='oas'"):
        hj.pairwise_distances(SINGULAR, "mahalanobis", layer="fc2")
    fine = points(n=4, d=3)
    with pytest.raises(CloudError, match=r"singular.*cloud 1"):
        hj.batched_pairwise_distances(np.stack([fine, SINGULAR]), "mahalanobis")
    with pytest.raises(CloudError, match=r"singular.*cloud 1"):
        hj.batched_pairwise_distances(np.stack([fine, SINGULAR]), "density_mahalanobis", k=1)
    # the suggested fix works
    D = np.asarray(hj.pairwise_distances(SINGULAR, "mahalanobis", covariance="oas"))
    assert np.isfinite(D).all() and D[0, 1] > 0


def test_analyze_names_the_layer_and_perturbation_of_a_singular_covariance():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 2, 4, 3)).astype(np.float32)
    b[1] = SINGULAR
    acts = xr.Dataset(
        {"a": (("perturbation", "sample", "a:unit"), a), "b": (("perturbation", "sample", "b:unit"), b)},
        coords={"perturbation": ["clean", "noise"]},
    )
    with pytest.raises(CloudError, match=r"singular.*\(layer 'b', perturbation 'noise'\)"):
        hj.analyze(acts, metrics=["mahalanobis"])


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "mahalanobis", "manhattan"])
@pytest.mark.parametrize("unit", [2.7e37, 1e-36])
def test_the_ends_of_the_float32_range(metric, unit):
    # largest |x| ~ 3e38 (above 2^127; 2^128 is no float32), or every entry and difference
    # a normal float32 a few powers of ten above the smallest one (XLA flushes subnormals)
    X = (10 + 0.3 * np.random.default_rng(4).normal(size=(40, 8))).astype(np.float32) * np.float32(unit)
    assert_close(hj.pairwise_distances(X, metric), reference(X, metric))


@pytest.mark.parametrize("scale", [1e20, 1e-20])
def test_squared_distances_out_of_range_are_an_error(scale):
    X = points() * np.float32(scale)
    with pytest.raises(CloudError, match=r"squared euclidean distances.*leave the float range.*layer 'fc'.*metric='euclidean'"):
        hj.pairwise_distances(X, "sqeuclidean", layer="fc")


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("engine", ["dense", "tiled", "rows"])
@pytest.mark.parametrize("scale", [1e20, 1e-20])
def test_squared_deaths_out_of_range_are_an_error_on_every_engine(scale, engine):
    X = points() * np.float32(scale)
    with pytest.raises(CloudError, match=r"squared euclidean distances.*leave the float range"):
        hj.h0_from_points(X, "sqeuclidean", engine=engine)


@pytest.mark.parametrize("engine", ["tiled", "rows"])
def test_squared_deaths_of_a_cloud_with_a_zero_point_are_no_error(engine):
    X = points()
    X[0] = 0.0  # a zero point is a flag of cosine only
    got = hj.h0_from_points(X, "sqeuclidean", engine=engine)
    np.testing.assert_allclose(got.deaths, hj.h0_from_points(X, "sqeuclidean", engine="dense").deaths, rtol=1e-5)


@pytest.mark.parametrize("scale", [1e20, 1e-20])
def test_geodesic_far_from_one(scale):
    X = points()
    D = np.asarray(hj.pairwise_distances(X * np.float32(scale), "geodesic", k=8), np.float64)
    D1 = np.asarray(hj.pairwise_distances(X, "geodesic", k=8), np.float64)
    np.testing.assert_allclose(D[OFF] / scale, D1[OFF], rtol=1e-5)


def mst_lengths(X32, metric):
    from scipy.sparse.csgraph import minimum_spanning_tree

    ref = reference(X32, metric)
    unit = np.abs(ref[OFF]).max()  # scipy's spanning tree drops tiny weights: compare in units of the largest
    return np.sort(minimum_spanning_tree(ref / unit).data) * unit


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("scale", [1e20, 1e-20])
def test_h0_from_points_engines_far_from_one(metric, scale):
    from holejax.filtration.tiled import boruvka_from_points, h0_points_kernel

    X = points() * np.float32(scale)
    ref = mst_lengths(X, metric)
    prim = np.sort(np.asarray(jax.jit(h0_points_kernel, static_argnames="metric")(X, metric).deaths, np.float64))
    tiled = np.sort(np.asarray(boruvka_from_points(X, metric, tile_rows=8, tile_cols=16)[0].deaths, np.float64))
    np.testing.assert_allclose(prim, ref, rtol=1e-5)
    np.testing.assert_allclose(tiled, ref, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(hj.h0_from_points(X, metric).deaths, np.float64), ref, rtol=1e-5)
