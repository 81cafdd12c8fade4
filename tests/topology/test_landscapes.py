"""Activation landscapes: gudhi/ripser/sklearn references, jit/vmap, properties, bad input."""

from __future__ import annotations

import itertools

import gudhi.representations as gr
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import trapezoid
from scipy.spatial.distance import pdist, squareform

from holejax.topology import (
    ActivationLandscapes,
    activation_diagrams,
    activation_landscapes,
    average_landscapes,
    diagram_distance,
    landscape_distance,
    landscape_grid,
    diagram_landscape_norm,
    landscape_norm,
    landscape_pca,
    landscape_permutation_test,
    local_distance_matrix,
    normalize_activations,
    persistence_landscape,
    persistence_landscapes,
    subsample_activation_landscapes,
)


def random_diagrams(rng, sizes):
    out = []
    for k in sizes:
        b = rng.random(k) * 0.6
        out.append(np.c_[b, b + rng.random(k) * 0.4])
    return out


def circle(n, rng, noise=0.02):
    t = rng.uniform(0, 2 * np.pi, n)
    return np.c_[np.cos(t), np.sin(t)] + noise * rng.normal(size=(n, 2))


# ----------------------------------------------------------------------------- landscapes


@pytest.mark.parametrize("num_landscapes", [1, 3, 8])
def test_landscapes_match_gudhi(num_landscapes):
    rng = np.random.default_rng(0)
    grid = landscape_grid(0.0, 1.0, 57)
    dgms = random_diagrams(rng, [1, 4, 9, 15])
    ours = np.asarray(persistence_landscapes(dgms, grid, num_landscapes))
    ref = gr.Landscape(num_landscapes=num_landscapes, resolution=57, sample_range=[0.0, 1.0]).fit_transform(dgms)
    # gudhi samples the landscape in rotated coordinates: sqrt(2) times ours
    np.testing.assert_allclose(ours, ref.reshape(len(dgms), num_landscapes, 57) / np.sqrt(2), atol=1e-6)


def test_landscape_under_jit_and_vmap_equals_single_calls():
    rng = np.random.default_rng(1)
    grid = jnp.asarray(landscape_grid(0.0, 1.0, 31))
    dgms = random_diagrams(rng, [6, 6, 6])
    stacked = jnp.asarray(np.stack(dgms))
    batched = jax.jit(jax.vmap(lambda d: persistence_landscape(d, grid, 4)))(stacked)
    for i, d in enumerate(dgms):
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(persistence_landscape(d, grid, 4)), atol=1e-7)
    norms = jax.jit(lambda lam: landscape_norm(lam, grid))(batched)
    assert norms.shape == (3,)


def test_infinite_bars_and_padding_add_nothing():
    grid = landscape_grid(0.0, 2.0, 21)
    lam = np.asarray(persistence_landscape([[0.0, 2.0], [0.0, np.inf], [0.0, 0.0]], grid, 3))
    ref = np.asarray(persistence_landscape([[0.0, 2.0]], grid, 3))
    np.testing.assert_array_equal(lam, ref)
    assert np.asarray(persistence_landscapes([[]], grid, 2)).sum() == 0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=0, max_size=7),
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=0, max_size=7),
)
def test_landscapes_are_1_lipschitz_in_the_bottleneck_distance(pa, pb):
    grid = landscape_grid(0.0, 2.0, 81)
    a = [(x, x + y) for x, y in pa]
    b = [(x, x + y) for x, y in pb]
    lam_a = np.asarray(persistence_landscape(a, grid, 4), dtype=np.float64)
    lam_b = np.asarray(persistence_landscape(b, grid, 4), dtype=np.float64)
    assert np.abs(lam_a - lam_b).max() <= diagram_distance(a, b) + 1e-5
    # the functions are ordered and non-negative
    assert (np.diff(lam_a, axis=0) <= 1e-7).all() and (lam_a >= 0).all()


def fine_grid_norm(dgm, points=400_001):
    """Reference: every tent sampled in float64 on a fine grid, sorted per point, trapezoid rule."""
    dgm = np.asarray(dgm, dtype=np.float64)
    grid = np.linspace(dgm[:, 0].min(), dgm[:, 1].max(), points)
    total = np.zeros_like(grid)
    for b, d in dgm:  # sum over k of lambda_k^2 is the sum of the squared tents' order statistics: all of them
        total += np.maximum(np.minimum(grid - b, d - grid), 0.0) ** 2
    return float(np.sqrt(trapezoid(total, grid)))


def test_exact_norm_matches_analytic_values_and_a_fine_grid():
    # one tent of half-width h: int = 2 h^3 / 3
    assert diagram_landscape_norm([[0.0, 2.0]]) == pytest.approx(np.sqrt(2 / 3), rel=1e-14)
    assert diagram_landscape_norm([[0.25, 0.25], [0.0, np.inf]]) == 0.0
    # nested and crossing bars: lambda_1, lambda_2 swap where tents cross
    rng = np.random.default_rng(11)
    for k in (2, 5, 30):
        birth = rng.random(k)
        dgm = np.c_[birth, birth + rng.random(k) * 0.4]
        assert diagram_landscape_norm(dgm) == pytest.approx(fine_grid_norm(dgm), rel=1e-8)
    # only the first landscape functions: the sampled kernel on a fine grid agrees
    grid = landscape_grid(0.0, 1.5, 300_001)
    lam = np.asarray(persistence_landscape(dgm, grid, 3), dtype=np.float64)
    ref = np.sqrt(trapezoid((lam**2).sum(0), grid))
    assert diagram_landscape_norm(dgm, 3) == pytest.approx(ref, rel=1e-5)


def test_exact_norm_where_the_default_grid_is_coarse():
    # a bar two grid steps long: the trapezoid rule on 101 points misses its peak
    dgm = [[0.303, 0.323]]
    exact = diagram_landscape_norm(dgm)
    assert exact == pytest.approx(np.sqrt(2 * 0.01**3 / 3), rel=1e-12)
    grid = landscape_grid()
    coarse = float(landscape_norm(persistence_landscape(dgm, grid, 1), grid))
    assert abs(coarse - exact) > 0.05 * exact


def test_norm_is_the_trapezoid_integral():
    grid = landscape_grid(0.0, 2.0, 2001)
    lam = persistence_landscape([[0.0, 2.0]], grid, 1)
    assert float(landscape_norm(lam, grid)) == pytest.approx(np.sqrt(2 / 3), rel=1e-5)
    rng = np.random.default_rng(2)
    grid = np.sort(rng.random(40))  # uneven grid
    lam = rng.random((3, 40))
    ref = np.sqrt(sum(trapezoid(lam[k] ** 2, grid) for k in range(3)))
    assert float(landscape_norm(lam, grid)) == pytest.approx(ref, rel=1e-5)
    assert float(landscape_distance(lam, lam, grid)) == 0.0


# ----------------------------------------------------------------------------- activations -> diagrams


def test_normalisation_centres_and_sets_diameter_to_one():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 6)) * 7 + 3
    Y = normalize_activations(X)
    assert np.abs(Y.mean(axis=0)).max() < 1e-9
    assert pdist(Y).max() == pytest.approx(1.0, rel=1e-5)


def test_diagrams_match_ripser_on_scipy_distances():
    import ripser

    rng = np.random.default_rng(4)
    X = np.r_[circle(60, rng), 0.3 * circle(30, rng) + 3]
    ours = activation_diagrams(X, maxdim=1)
    Y = (X - X.mean(0)) / pdist(X - X.mean(0)).max()
    ref = ripser.ripser(squareform(pdist(Y)), distance_matrix=True, maxdim=1)["dgms"]
    for k in (0, 1):  # holejax distances are float32: ~1e-5 of the diameter
        assert diagram_distance(ours[k], ref[k]) < 1e-4
    assert len(ours[1]) >= 2 and np.sort(ours[1][:, 1] - ours[1][:, 0])[-2] > 0.05  # two loops


def paper_local_distances(X, relu):
    """The local-homology steps of the paper, written out plainly."""
    X = np.asarray(X, dtype=np.float64)
    if not relu:
        X = X - X.mean(axis=0)
    norms = np.linalg.norm(X, axis=1)
    median = np.median(norms)
    X, norms = X / median, norms / median
    Y = np.array([x / r if r > 1 else x for x, r in zip(X, norms)])
    D = squareform(pdist(Y))
    for i, j in itertools.product(range(len(Y)), repeat=2):
        if norms[i] >= 1 and norms[j] >= 1:
            D[i, j] = 0.0
    return D


@pytest.mark.parametrize("relu", [True, False])
def test_local_distance_matrix_follows_the_paper(relu):
    rng = np.random.default_rng(5)
    X = np.abs(rng.normal(size=(41, 5))) if relu else rng.normal(size=(41, 5)) + 1
    D, norms = local_distance_matrix(X, relu=relu)
    np.testing.assert_allclose(D, paper_local_distances(X, relu), atol=1e-5)
    assert np.median(norms) == pytest.approx(1.0)


def test_local_variant_detects_relu_layers_and_names():
    rng = np.random.default_rng(6)
    X = np.abs(rng.normal(size=(21, 4)))
    auto, _ = local_distance_matrix(X)  # all >= 0: treated as a ReLU output, not centred
    np.testing.assert_allclose(auto, paper_local_distances(X, True), atol=1e-5)
    named, _ = local_distance_matrix(X, relu=["other"], layer="act1")  # act1 not listed: centred
    np.testing.assert_allclose(named, paper_local_distances(X, False), atol=1e-5)
    dgms = activation_diagrams(X, local=True, relu=True)
    assert len(dgms) == 2 and np.isinf(dgms[0][:, 1]).sum() == 1


# ----------------------------------------------------------------------------- pipeline


def test_activation_landscapes_from_mapping_and_store(tmp_path):
    from holejax.store import ActivationWriter, LayerSpec

    rng = np.random.default_rng(7)
    acts = {"circle": circle(40, rng), "blob": rng.normal(size=(40, 3))}
    res = activation_landscapes(acts, degree=1)
    assert isinstance(res, ActivationLandscapes)
    assert res.layers == ("circle", "blob") and res.landscapes.shape == (2, 5, 101)
    assert res.norms[0] > 3 * res.norms[1]  # the loop dominates
    np.testing.assert_allclose(res.norms, [fine_grid_norm(d) for d in res.diagrams], rtol=1e-6)
    ds = res.to_xarray()
    assert ds["landscape"].dims == ("layer", "k", "grid") and list(ds.layer.values) == ["circle", "blob"]

    writer = ActivationWriter.create(
        tmp_path / "acts.zarr",
        layers=[LayerSpec(name=n, shape=(a.shape[1],), pooling="flatten", units=a.shape[1]) for n, a in acts.items()],
        n_samples=40,
        perturbations=[("clean", {})],
    )
    writer.write_batch("clean", 0, {n: a.astype(np.float32) for n, a in acts.items()})
    store = writer.finish()
    from_store = activation_landscapes(store, degree=1, layers=list(acts))
    np.testing.assert_allclose(from_store.norms, res.norms, rtol=1e-3)
    with pytest.raises(KeyError, match="perturbation='noisy' is not in the store"):
        activation_landscapes(store, perturbation="noisy")


def test_subsamples_average_and_local_grid():
    rng = np.random.default_rng(8)
    acts = {"a": circle(60, rng), "b": np.abs(rng.normal(size=(60, 3)))}
    runs = subsample_activation_landscapes(acts, 3, 30, degree=1)
    assert len(runs) == 3 and not np.allclose(runs[0].landscapes, runs[1].landscapes)
    avg = average_landscapes(runs)
    np.testing.assert_allclose(avg.landscapes, np.mean([r.landscapes for r in runs], axis=0))
    np.testing.assert_allclose(avg.norms, np.mean([r.norms for r in runs], axis=0))
    assert avg.count == 3 and average_landscapes([avg, runs[0]]).count == 4
    local = activation_landscapes(acts, degree=1, local=True, max_samples=30)
    assert local.local and local.grid[-1] == 2.0
    with pytest.raises(ValueError, match=r"results\[1\] does not match"):
        average_landscapes([runs[0], local])


# ----------------------------------------------------------------------------- statistics


def exact_permutation_p(a, b, grid):
    """p-value over every split of the pooled members (the exact test)."""
    data = np.concatenate([a, b])
    w = np.diff(grid)
    weights = np.r_[w[0] / 2, (w[1:] + w[:-1]) / 2, w[-1] / 2]

    def stat(idx):
        mask = np.zeros(len(data), bool)
        mask[list(idx)] = True
        diff = data[mask].mean(0) - data[~mask].mean(0)
        return np.sqrt(np.sum(diff**2 * weights))

    observed = stat(range(len(a)))
    null = [stat(c) for c in itertools.combinations(range(len(data)), len(a))]
    return observed, np.mean(np.array(null) >= observed * (1 - 1e-9))


def test_permutation_test_agrees_with_the_exact_test():
    rng = np.random.default_rng(9)
    grid = np.linspace(0, 1, 11)
    a = rng.random((4, 2, 11))
    b = rng.random((4, 2, 11)) + 0.3
    observed, exact_p = exact_permutation_p(a, b, grid)
    res = landscape_permutation_test(a, b, grid, 4000, seed=1)
    assert res.statistic == pytest.approx(observed, rel=1e-5)
    assert res.p_value == pytest.approx(exact_p, abs=0.02)
    assert res.null.shape == (4000,)


def test_permutation_test_same_distribution_is_not_significant():
    rng = np.random.default_rng(10)
    grid = np.linspace(0, 1, 21)
    a, b = rng.random((10, 3, 21)), rng.random((10, 3, 21))
    assert landscape_permutation_test(a, b, grid, 500).p_value > 0.05


def test_permutation_test_takes_activation_landscapes():
    rng = np.random.default_rng(11)
    acts_a = {"x": circle(50, rng)}
    acts_b = {"x": rng.normal(size=(50, 2))}
    group_a = subsample_activation_landscapes(acts_a, 4, 30, degree=1)
    group_b = subsample_activation_landscapes(acts_b, 4, 30, degree=1)
    res = landscape_permutation_test(group_a, group_b, group_a[0].grid, 300)
    assert res.p_value < 0.05


def test_pca_matches_sklearn_in_the_landscape_metric():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(12)
    grid = np.sort(rng.random(15))
    lam = rng.random((3, 5, 2, 15))
    pca = landscape_pca(lam, grid, 3)
    w = np.r_[np.diff(grid)[0] / 2, (np.diff(grid)[1:] + np.diff(grid)[:-1]) / 2, np.diff(grid)[-1] / 2]
    flat = (lam * np.sqrt(w)).reshape(15, -1)
    ref = PCA(3, svd_solver="full").fit(flat)
    np.testing.assert_allclose(pca.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-6)
    coords = pca.coords.reshape(15, 3)
    ref_coords = ref.transform(flat)
    signs = np.sign((coords * ref_coords).sum(0))
    np.testing.assert_allclose(coords, ref_coords * signs, atol=1e-8)
    # distances between coordinates never exceed landscape distances (a projection)
    d_pca = np.linalg.norm(coords[0] - coords[1])
    d_lam = float(landscape_distance(lam[0, 0], lam[0, 1], grid))
    assert d_pca <= d_lam + 1e-6


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: landscape_grid(1.0, 0.0), ValueError, "finite start < stop"),
        (lambda: landscape_grid(0.0, 1.0, 1), ValueError, "resolution must be an integer >= 2"),
        (lambda: persistence_landscape([[0, 1]], [[0, 1]]), ValueError, "grid must be 1-D"),
        (lambda: persistence_landscape([[0, 1]], [0.0, 0.0, 1.0]), ValueError, "strictly increasing"),
        (lambda: persistence_landscape([[0, 1]], [0, 1], 0), ValueError, "num_landscapes must be an integer >= 1"),
        (lambda: persistence_landscape([[0, np.nan]], [0, 1]), ValueError, "NaN at row 0"),
        (lambda: persistence_landscapes([], [0, 1]), ValueError, "dgms is empty"),
        (lambda: persistence_landscapes("x", [0, 1]), TypeError, "dgms must be a sequence"),
        (lambda: landscape_norm(np.zeros(5), np.linspace(0, 1, 5)), ValueError, "num_landscapes, grid"),
        (lambda: landscape_distance(np.zeros((1, 3)), np.zeros((2, 3)), [0, 1, 2]), ValueError, "same shape"),
        (lambda: normalize_activations(np.ones((5, 3))), ValueError, "all 5 samples of X are equal"),
        (lambda: normalize_activations(np.array([[0.0, np.nan], [1, 1]])), ValueError, "NaN or Inf at sample 0"),
        (lambda: normalize_activations(np.zeros((2, 3, 4))), ValueError, "rank 2"),
        (lambda: local_distance_matrix(np.zeros((5, 2))), ValueError, "median norm of X is 0"),
        (lambda: local_distance_matrix(np.eye(3), relu="yes"), TypeError, "relu must be"),
        (lambda: activation_diagrams(np.eye(3), maxdim=-1), ValueError, "maxdim must be"),
        (lambda: activation_landscapes([np.eye(3)]), TypeError, "mapping"),
        (lambda: activation_landscapes({"a": np.eye(3)}, layers=["b"]), KeyError, r"\['b'\] are not in"),
        (lambda: activation_landscapes({"a": np.eye(3), "b": np.eye(4)}), ValueError, "different sample counts"),
        (lambda: activation_landscapes({"a": np.eye(3)}, max_samples=1), ValueError, "max_samples"),
        (lambda: activation_landscapes({"a": np.eye(3)}, degree=-1), ValueError, "degree must be"),
        (lambda: subsample_activation_landscapes({"a": np.eye(3)}, 0, 2), ValueError, "n_subsamples"),
        (lambda: average_landscapes([]), ValueError, "results is empty"),
        (lambda: landscape_permutation_test(np.zeros((2, 3)), np.zeros((2, 4)), [0, 1, 2]), ValueError, "must agree"),
        (lambda: landscape_permutation_test(np.zeros((2, 3)), np.zeros((2, 3)), [0, 1]), ValueError, "match the grid"),
        (lambda: landscape_permutation_test(np.full((2, 3), np.nan), np.zeros((2, 3)), [0, 1, 2]), ValueError, "NaN"),
        (lambda: landscape_permutation_test(np.zeros((2, 3)), np.zeros((2, 3)), [0, 1, 2], 0), ValueError, "n_permutations"),
        (lambda: landscape_pca(np.zeros((2, 3)), [0, 1, 2]), ValueError, "curve, layer, landscape, grid"),
        (lambda: landscape_pca(np.zeros((1, 2, 1, 3)), [0, 1, 2], 5), ValueError, "n_components must be"),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_single_result_is_not_a_group():
    rng = np.random.default_rng(13)
    res = activation_landscapes({"a": rng.normal(size=(10, 2))}, degree=0)
    with pytest.raises(TypeError, match="pass a list of them"):
        landscape_permutation_test(res, [res], res.grid)

