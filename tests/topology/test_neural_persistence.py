"""Neural persistence: scipy/gudhi references, Girrbach bounds, jit/vmap, torch and Flax weights."""

from __future__ import annotations

import gudhi
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.stats import pearsonr

from holejax.topology import (
    layer_neural_persistence,
    max_spanning_tree_edges,
    max_spanning_tree_weights,
    neural_persistence,
    neural_persistence_bounds,
    np_variance_trend,
    weight_matrices,
    weight_variance,
)

SHAPES = [(1, 6), (5, 3), (12, 12), (30, 8)]  # few shapes: each compiles the Prim kernel once


def random_matrix(rng, shape):
    W = rng.random(shape) ** rng.uniform(0.2, 5.0)
    return W / W.max()


def scipy_mst_weights(W):
    n, m = W.shape
    graph = np.zeros((n + m, n + m))
    graph[:n, n:] = 2.0 - W  # positive weights; the minimum tree of 2 - w is the maximum tree of w
    return np.sort(2.0 - minimum_spanning_tree(graph).data)


def gudhi_h0_bars(W):
    """gudhi's H0 bars of the graph filtration: vertices at 0, edge (i, j) at 1 - W[i, j]."""
    n, m = W.shape
    tree = gudhi.SimplexTree()
    for v in range(n + m):
        tree.insert([v], 0.0)
    for i in range(n):
        for j in range(m):
            tree.insert([i, n + j], 1.0 - W[i, j])
    tree.compute_persistence(min_persistence=-1.0)
    return tree.persistence_intervals_in_dimension(0)


def gudhi_h0_deaths(W):
    """Finite H0 deaths of the graph filtration, sorted."""
    deaths = gudhi_h0_bars(W)[:, 1]
    return np.sort(deaths[np.isfinite(deaths)])


@pytest.mark.parametrize("shape", SHAPES)
def test_mst_matches_scipy_and_the_gudhi_filtration(shape):
    rng = np.random.default_rng(0)
    for _ in range(5):
        W = random_matrix(rng, shape)
        ours = np.sort(np.asarray(max_spanning_tree_weights(W), dtype=np.float64))
        np.testing.assert_allclose(ours, scipy_mst_weights(W), atol=1e-6)
        np.testing.assert_allclose(np.sort(1.0 - ours), gudhi_h0_deaths(W), atol=1e-6)
        rows, cols = (np.asarray(x) for x in max_spanning_tree_edges(W))
        assert len(set(zip(rows.tolist(), cols.tolist()))) == sum(shape) - 1
        assert set(rows.tolist()) == set(range(shape[0])) and set(cols.tolist()) == set(range(shape[1]))


def test_mst_under_vmap_equals_single_calls():
    rng = np.random.default_rng(1)
    stack = np.stack([random_matrix(rng, (5, 3)) for _ in range(4)])
    batched = np.asarray(jax.jit(jax.vmap(max_spanning_tree_weights))(jnp.asarray(stack)))
    for i in range(4):
        np.testing.assert_allclose(np.sort(batched[i]), np.sort(np.asarray(max_spanning_tree_weights(stack[i]))))


def gudhi_neural_persistence(W, p):
    """NP_p from gudhi's H0 of the graph filtration, the essential class closed at 1."""
    bars = gudhi_h0_bars(W)
    lengths = np.minimum(bars[:, 1], 1.0) - bars[:, 0]  # the filtration ends at 1
    return float(np.sum(lengths**p) ** (1 / p))


def test_np_by_hand():
    # |W| / 2: [[1, .5], [0, .5]]; maximum tree 1, .5, .5 -> persistences 0, .5, .5, and 1 for the essential class
    res = layer_neural_persistence(np.array([[2.0, -1.0], [0.0, 1.0]]), p=2)
    assert res.np == pytest.approx(np.sqrt(1.5))
    assert res.normalized == pytest.approx(np.sqrt(1.5) / np.sqrt(3))
    assert res.variance == pytest.approx(np.var([1.0, 0.5, 0.0, 0.5]))


def test_identity_counts_the_essential_class():
    # Girrbach et al., Definition 2.4: tree 1, 1, 0 -> (1 + 0 + 0 + 1) ** (1/2) / 3 ** (1/2)
    res = layer_neural_persistence(np.eye(2))
    assert res.np == pytest.approx(np.sqrt(2.0))
    assert res.normalized == pytest.approx(0.8164965809, abs=1e-9)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_np_matches_gudhi_persistence(p):
    rng = np.random.default_rng(int(p))
    for shape in SHAPES:
        W = random_matrix(rng, shape)
        res = layer_neural_persistence(W, p)
        assert res.np == pytest.approx(gudhi_neural_persistence(W, p), rel=1e-12, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3), st.integers(0, 2**31 - 1), st.sampled_from([1.0, 2.0, 3.0]), st.booleans())
def test_bounds_bracket_np_on_random_matrices(shape_index, seed, p, heavy_tailed):
    rng = np.random.default_rng(seed)
    shape = SHAPES[shape_index]
    W = rng.standard_t(1.5, size=shape) if heavy_tailed else rng.normal(size=shape)
    res = layer_neural_persistence(W, p)
    assert 0.0 <= res.lower <= res.np + 1e-12
    assert res.np <= res.upper_tight + 1e-12 and res.upper_tight <= res.upper + 1e-12
    assert res.upper <= sum(shape) ** (1 / p) + 1e-12
    assert 0.0 <= res.normalized <= 1.0 + 1e-12  # Rieck et al., Theorem 1 (per-matrix scaling)


@pytest.mark.parametrize("levels", [2, 4, 16])
def test_bounds_hold_with_ties_from_quantised_weights(levels):
    rng = np.random.default_rng(levels)
    for shape in SHAPES:
        W = np.round(rng.normal(size=shape) * levels) / levels  # many equal weights, as after k-bit quantisation
        if not np.abs(W).max():
            continue
        res = layer_neural_persistence(W)
        assert res.lower <= res.np + 1e-12 and res.np <= res.upper_tight + 1e-12 <= res.upper + 2e-12


def test_np_is_symmetric_in_orientation_and_upper_bound_is_tight_for_a_row():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(12, 12))
    a, b = layer_neural_persistence(W), layer_neural_persistence(W.T)
    assert (a.np, a.lower, a.upper_tight) == pytest.approx((b.np, b.lower, b.upper_tight))
    row = layer_neural_persistence(rng.normal(size=(1, 6)))  # every edge is in the tree
    assert row.np == pytest.approx(row.upper_tight, abs=1e-12)


def test_bounds_by_definition():
    W = np.array([[1.0, 0.2, 0.1], [0.9, 0.3, 0.0]])
    L, U, U_tight = neural_persistence_bounds(W, p=1)
    # columns: maxima 1, .3, .1; rows: 1, .9; row arg-maxes both column 0
    assert L == pytest.approx((0 + 0.7 + 0.9) + (0 + 0.1))
    u_rows = 1 + (0.7 + 0.9) + (0 + 0.1)  # |B \ B'| = 1
    u_cols = 2 + 0.0 + (0 + 0.7 + 0.9)  # W.T: both rows of W are some column's arg-max
    assert U == pytest.approx(u_rows) and U_tight == pytest.approx(min(u_rows, u_cols)) == pytest.approx(2.7)
    # the tree holds 1, .9, .3, .1: 1 + (0 + .1 + .7 + .9) = 2.7, so U is attained here
    assert layer_neural_persistence(W, p=1).np == pytest.approx(2.7)
    # the transpose: the paper's U (rows of W.T are the set A) is u_cols, looser than the tight bound
    L_t, U_t, U_tight_t = neural_persistence_bounds(W.T, p=1)
    assert (L_t, U_t, U_tight_t) == pytest.approx((L, u_cols, 2.7))
    assert layer_neural_persistence(W.T, p=1).upper == pytest.approx(u_cols)


@pytest.fixture(scope="module")
def trained_torch_checkpoints():
    torch = pytest.importorskip("torch")
    from holejax.demo import load_digits
    from holejax.demo.torch_models import make_mlp, train_torch

    digits = load_digits()
    X, y = digits.X[:300], digits.y[:300]
    model = make_mlp(seed=0, hidden=(32, 16))
    checkpoints = [{k: v.clone() for k, v in model.state_dict().items()}]
    for _ in range(3):
        train_torch(model, X, y, epochs=1, seed=0)
        checkpoints.append({k: v.clone() for k, v in model.state_dict().items()})
    assert isinstance(checkpoints[0]["fc1.weight"], torch.Tensor)
    return checkpoints


def test_bounds_hold_on_trained_torch_weights(trained_torch_checkpoints):
    res = neural_persistence(trained_torch_checkpoints[-1])
    assert [lay.name for lay in res.layers] == ["fc1.weight", "fc2.weight", "out.weight"]
    for lay in res.layers:
        assert lay.lower <= lay.np + 1e-12 <= lay.upper_tight + 2e-12 <= lay.upper + 3e-12
    assert res.mean_normalized == pytest.approx(np.mean([lay.normalized for lay in res.layers]))
    raw = [trained_torch_checkpoints[-1][k].numpy() for k in ("fc1.weight", "fc2.weight", "out.weight")]
    assert res.scale == pytest.approx(max(np.abs(w).max() for w in raw))
    # every layer is scaled by the global maximum, not its own
    alone = layer_neural_persistence(raw[1])
    assert res.layers[1].np != pytest.approx(alone.np)
    ds = res.to_xarray()
    assert list(ds.layer.values) == ["fc1.weight", "fc2.weight", "out.weight"]


def test_variance_trend_over_training(trained_torch_checkpoints):
    trend = np_variance_trend(trained_torch_checkpoints)
    assert trend.np.shape == (4,) and trend.variance.shape == (4,)
    # the variance of the weights scaled to [0, 1] falls as NP rises (Girrbach et al.: about -0.98)
    assert trend.pearson < -0.5
    assert trend.pearson == pytest.approx(pearsonr(trend.np, trend.variance)[0])
    assert trend.pearson_log == pytest.approx(pearsonr(trend.np, np.log(trend.variance))[0])
    assert trend.variance[0] == pytest.approx(weight_variance(trained_torch_checkpoints[0]))
    raw = np.concatenate([v.numpy().ravel() for v in trained_torch_checkpoints[-1].values() if v.ndim == 2])
    assert trend.variance[-1] == pytest.approx(np.var(np.abs(raw) / np.abs(raw).max()))


def test_flax_tree_matches_the_same_weights_from_torch_layout():
    pytest.importorskip("flax")
    from holejax.demo.flax_models import make_flax_mlp

    module = make_flax_mlp(hidden=(16, 8))
    variables = module.init(jax.random.key(0), jnp.zeros((1, 64)))
    flax_res = neural_persistence(variables)  # the whole tree: kernels found, biases skipped
    assert [lay.name for lay in flax_res.layers] == ["params.fc1.kernel", "params.fc2.kernel", "params.out.kernel"]
    # the same matrices in PyTorch's (out, in) layout give the same values
    params = variables["params"]
    torch_like = {f"{k}.weight": np.asarray(params[k]["kernel"]).T for k in ("fc1", "fc2", "out")}
    torch_res = neural_persistence(torch_like)
    for f, t in zip(flax_res.layers, torch_res.layers):
        assert (f.np, f.lower, f.upper_tight) == pytest.approx((t.np, t.lower, t.upper_tight), rel=1e-9)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: weight_matrices({"b": np.zeros(3)}), ValueError, "no 2-D matrices.*reshape convolution"),
        (lambda: weight_matrices({"conv": np.zeros((2, 1, 3, 3))}, include=["conv"]), ValueError, r"shape \(2, 1, 3, 3\).*2-D"),
        (lambda: weight_matrices({"fc1.weight": np.eye(2)}, include=["fc1.weigth"]), KeyError, "did you mean 'fc1.weight'"),
        (lambda: weight_matrices({"W": np.array([[np.nan, 1.0]])}), ValueError, "NaN or Inf"),
        (lambda: weight_matrices({"W": np.zeros((0, 3))}), ValueError, "empty"),
        (lambda: weight_matrices([np.eye(2)]), TypeError, "mapping"),
        (lambda: weight_matrices({"W": np.array([["a"]])}), TypeError, "numeric"),
        (lambda: layer_neural_persistence(np.zeros(3)), ValueError, "2-D"),
        (lambda: layer_neural_persistence(np.zeros((2, 2))), ValueError, "all-zero"),
        (lambda: layer_neural_persistence(np.eye(2), p=0.5), ValueError, "p must be a finite number >= 1"),
        (lambda: layer_neural_persistence(np.eye(2) * 3, scale=1.0), ValueError, "below max"),
        (lambda: neural_persistence_bounds(np.eye(2) * 2), ValueError, r"in \[0, 1\]"),
        (lambda: neural_persistence({"W": np.zeros((2, 2))}), ValueError, "every chosen weight is 0"),
        (lambda: np_variance_trend([{"W": np.eye(2)}]), ValueError, "at least 2"),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_tensor_that_requires_grad_gets_a_hint():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"detach\(\)"):
        neural_persistence({"W": torch.ones(2, 2, requires_grad=True)})
