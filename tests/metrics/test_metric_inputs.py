"""Bad and awkward input: every rejection names the argument, what arrived and the fix."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import holejax as hj
from holejax.metrics import batch


def test_metrics_tuple_is_complete():
    assert hj.METRICS == (
        "euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine", "angular",
        "mahalanobis", "geodesic", "density_euclidean", "density_cosine", "density_mahalanobis",
    )  # fmt: skip


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_values_name_the_sample_and_layer(bad, cloud):
    X = cloud(10, 3)
    X[6, 1] = bad
    with pytest.raises(ValueError, match=r"X holds NaN or Inf at sample 6 \(layer 'fc2'\)"):
        hj.pairwise_distances(X, layer="fc2")


def test_huge_finite_values_pass_and_an_inf_among_them_is_found():
    """The finite check sums first; a sum that overflows must not be mistaken for bad input."""
    from holejax._checks import first_nonfinite_row

    X = np.full((5, 3), 3e38, np.float32)  # finite, but their sum overflows float32
    assert first_nonfinite_row(X) is None
    assert np.isfinite(np.asarray(hj.pairwise_distances(X, "cosine"))).all()
    X[3, 2] = np.inf
    assert first_nonfinite_row(X) == 3
    X[1, 0] = -np.inf
    assert first_nonfinite_row(X) == 1


def test_nonfinite_in_a_batch_names_the_cloud_and_perturbation(cloud):
    Xs = np.stack([cloud(8, 3), cloud(8, 3, seed=1)])
    Xs[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"Xs\[1\] holds NaN or Inf at sample 2 \(layer 'fc', perturbation 'gaussian'\)"):
        hj.batched_pairwise_distances(Xs, "cosine", layer="fc", perturbations=["clean", "gaussian"])


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_samples(n):
    with pytest.raises(ValueError, match=f"X must hold at least 2 samples; got {n}"):
        hj.pairwise_distances(np.ones((n, 3), np.float32))


def test_wrong_rank_and_empty_features():
    with pytest.raises(ValueError, match=r"X must have rank 2 \(sample, unit\); got shape \(4, 2, 2\)"):
        hj.pairwise_distances(np.ones((4, 2, 2)))
    with pytest.raises(ValueError, match="X has no features"):
        hj.pairwise_distances(np.ones((4, 0)))
    with pytest.raises(TypeError, match=r"X must be a \(sample, unit\) array of real numbers; got dtype <U1"):
        hj.pairwise_distances(np.array([["a", "b"], ["c", "d"]]))


def test_unknown_metric_suggests_a_close_match(cloud):
    with pytest.raises(ValueError, match=r"metric='cosin' is not supported.*Did you mean 'cosine'\?"):
        hj.pairwise_distances(cloud(5, 2), "cosin")
    with pytest.raises(ValueError, match=r"metric='mahalanobas'.*Did you mean 'mahalanobis'\?"):
        hj.batched_pairwise_distances(cloud(5, 2)[None], "mahalanobas")
    with pytest.raises(TypeError, match="metric must be a metric name"):
        hj.pairwise_distances(cloud(5, 2), metric=2)


def test_unknown_parameter_lists_the_accepted_ones(cloud):
    with pytest.raises(TypeError, match=r"metric='euclidean' got unexpected parameter\(s\) \['k'\]; it accepts: none"):
        hj.pairwise_distances(cloud(5, 2), k=3)
    with pytest.raises(TypeError, match=r"it accepts: (disconnected, )?k, mutual"):
        hj.pairwise_distances(cloud(5, 2), "geodesic", kk=3)


@pytest.mark.parametrize("metric", ["density_euclidean", "geodesic"])
def test_bad_k(metric, cloud):
    with pytest.raises(ValueError, match=r"1 <= k <= n - 1 = 4.*got k=-1"):
        hj.pairwise_distances(cloud(5, 2), metric, k=-1)
    with pytest.raises(TypeError, match=r"k must be an integer"):
        hj.pairwise_distances(cloud(5, 2), metric, k="3")


def test_batched_shapes_must_match(cloud):
    with pytest.raises(ValueError, match=r"Xs\[1\] has shape \(6, 3\) but Xs\[0\] has shape \(5, 3\)"):
        hj.batched_pairwise_distances([cloud(5, 3), cloud(6, 3)], "euclidean")
    with pytest.raises(ValueError, match=r"Xs must have rank 3 \(batch, sample, unit\).*got shape \(5, 3\)"):
        hj.batched_pairwise_distances(cloud(5, 3), "euclidean")
    with pytest.raises(ValueError, match="Xs holds no clouds"):
        hj.batched_pairwise_distances([], "euclidean")
    with pytest.raises(ValueError, match="perturbations names 1 clouds but Xs holds 2"):
        hj.batched_pairwise_distances([cloud(5, 3)] * 2, "euclidean", perturbations=["clean"])


def test_memory_budget_checks(cloud):
    with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes; got 0"):
        hj.batched_pairwise_distances([cloud(5, 3)], "euclidean", memory_budget=0)
    with pytest.raises(ValueError, match=r"cannot hold even one 50 x 50 distance matrix.*raise memory_budget"):
        hj.batched_pairwise_distances([cloud(50, 3)], "euclidean", memory_budget=1000)


def test_chunked_batches_equal_single_calls(cloud, assert_rel):
    Xs = np.stack([cloud(20, 4, seed=s) for s in range(5)])
    budget = 2 * batch._WORK_FACTOR * 20 * 20 * 4  # two clouds per chunk: 3 chunks, last padded
    assert batch.clouds_per_chunk(20, 4, budget, 5) == 2
    for metric in ["euclidean", "cosine", "mahalanobis", "density_euclidean"]:
        Ds = hj.batched_pairwise_distances(Xs, metric, memory_budget=budget)
        assert Ds.shape == (5, 20, 20)
        for b in range(5):
            assert_rel(Ds[b], hj.pairwise_distances(Xs[b], metric), 1e-5, f"{metric}[{b}]")


def test_batched_zero_vector_warning_names_the_cloud(cloud):
    Xs = np.stack([cloud(6, 3), cloud(6, 3, seed=1)])
    Xs[1, 4] = 0.0
    with pytest.warns(RuntimeWarning, match=r"1 sample\(s\) are zero vectors \(first: sample 4\) \(cloud 1\)"):
        hj.batched_pairwise_distances(Xs, "cosine")


def test_duplicates_and_constant_units_are_fine(cloud):
    X = cloud(12, 4)
    X[3] = X[2]
    X[:, 1] = 5.0
    for metric in hj.METRICS:
        if metric in ("density_euclidean", "density_cosine", "density_mahalanobis", "geodesic"):
            D = np.asarray(hj.pairwise_distances(X, metric, k=3))
        else:
            D = np.asarray(hj.pairwise_distances(X, metric))
        assert np.isfinite(D).all(), metric
        assert D[2, 3] == 0.0, metric  # duplicates are exactly 0 apart


def test_jax_input_and_lists(cloud):
    X = cloud(6, 3)
    a = np.asarray(hj.pairwise_distances(jnp.asarray(X), "cosine"))
    b = np.asarray(hj.pairwise_distances(X.tolist(), "cosine"))
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_compiled_call_gets_the_callers_jax_array_or_the_checked_host_array(cloud):
    from holejax.metrics.host import device_input
    from holejax.metrics.pairwise import prepare_cloud

    X = cloud(6, 3).astype(np.float32)
    Xj = jnp.asarray(X)
    arr, _, _ = prepare_cloud(Xj, "euclidean", {})
    assert device_input(Xj, arr) is Xj  # already on the device: not transferred again
    host, _, _ = prepare_cloud(X, "euclidean", {})
    assert device_input(X, host) is host
    half = jnp.asarray(X, dtype=jnp.float16)
    arr16, _, _ = prepare_cloud(half, "euclidean", {})
    assert arr16.dtype == np.float32 and device_input(half, arr16) is arr16  # the converted copy
    np.testing.assert_array_equal(
        np.asarray(hj.pairwise_distances(half)), np.asarray(hj.pairwise_distances(np.asarray(half, np.float32)))
    )
    np.testing.assert_array_equal(np.asarray(hj.pairwise_distances(Xj)), np.asarray(hj.pairwise_distances(X)))


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (3, 5, 11)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_host_results_are_aligned_and_handed_over_intact(shape, dtype):
    from holejax.metrics.host import adopt, aligned_empty

    a = aligned_empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.ctypes.data % 64 == 0
    a[...] = np.arange(a.size).reshape(shape)
    expected = a.copy()
    np.testing.assert_array_equal(np.asarray(adopt(a)), expected)
    unaligned = np.empty(a.size + 1, dtype)[1:].reshape(shape)  # numpy memory, 8 bytes off
    unaligned[...] = expected
    np.testing.assert_array_equal(np.asarray(adopt(unaligned)), expected)


def test_geodesic_results_arrive_intact_single_and_batched(cloud):
    from scipy.sparse.csgraph import shortest_path
    from sklearn.neighbors import kneighbors_graph

    X = cloud(40, 3)
    G = kneighbors_graph(X.astype(np.float64), 5, mode="distance")
    ref = shortest_path(G.maximum(G.T), method="D", directed=False)
    np.testing.assert_allclose(np.asarray(hj.pairwise_distances(X, "geodesic", k=5)), ref, rtol=1e-5)
    both = np.asarray(hj.batched_pairwise_distances(np.stack([X, X[::-1]]), "geodesic", k=5))
    np.testing.assert_allclose(both[0], ref, rtol=1e-5)
    np.testing.assert_allclose(both[1], ref[::-1, ::-1], rtol=1e-5)
