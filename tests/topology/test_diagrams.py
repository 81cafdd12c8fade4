"""Diagram distances and summaries against gudhi, under jit/vmap, and on bad input."""

from __future__ import annotations

import math
import warnings

import gudhi
import gudhi.representations as gr
import gudhi.wasserstein as gw
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holejax.topology import (
    as_diagram,
    bottleneck_distance,
    diagram_distance,
    h0_diagram_distances,
    persistent_entropy,
    total_persistence,
    wasserstein_distance,
)


def random_diagram(rng, k, *, shared_birth=False, rounded=False):
    birth = np.zeros(k) if shared_birth else rng.random(k)
    dgm = np.c_[birth, birth + rng.random(k)]
    return np.round(dgm, 1) if rounded else dgm


def gudhi_wasserstein(a, b, order, internal_p):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT warns on empty marginals
        return gw.wasserstein_distance(a, b, order=order, internal_p=internal_p)


@pytest.mark.parametrize("shared_birth", [False, True], ids=["general", "h0-like"])
def test_bottleneck_matches_gudhi(shared_birth):
    rng = np.random.default_rng(1)
    for trial in range(60):
        a = random_diagram(rng, rng.integers(0, 14), shared_birth=shared_birth, rounded=trial % 4 == 0)
        b = random_diagram(rng, rng.integers(0, 14), shared_birth=shared_birth, rounded=trial % 4 == 0)
        assert diagram_distance(a, b) == pytest.approx(gudhi.bottleneck_distance(a, b, 0), abs=1e-12)


@pytest.mark.parametrize("shared_birth", [False, True], ids=["general", "h0-like"])
@pytest.mark.parametrize("order", [1.0, 2.0, 3.5])
@pytest.mark.parametrize("internal_p", [math.inf, 1.0, 2.0])
def test_wasserstein_matches_gudhi(shared_birth, order, internal_p):
    rng = np.random.default_rng(2)
    for trial in range(15):
        a = random_diagram(rng, rng.integers(0, 12), shared_birth=shared_birth, rounded=trial % 3 == 0)
        b = random_diagram(rng, rng.integers(0, 12), shared_birth=shared_birth, rounded=trial % 3 == 0)
        ours = diagram_distance(a, b, "wasserstein", order, internal_p)
        assert ours == pytest.approx(gudhi_wasserstein(a, b, order, internal_p), rel=1e-9, abs=1e-12)


def test_large_h0_diagrams_match_gudhi():
    from scipy.cluster.hierarchy import linkage

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 8))
    Y = X + 0.05 * rng.normal(size=X.shape)
    a = np.c_[np.zeros(399), np.sort(linkage(X, "single")[:, 2])]
    b = np.c_[np.zeros(399), np.sort(linkage(Y, "single")[:, 2])]
    assert diagram_distance(a, b) == pytest.approx(gudhi.bottleneck_distance(a, b, 0), abs=1e-12)
    assert diagram_distance(a, b, "wasserstein") == pytest.approx(gudhi_wasserstein(a, b, 1.0, math.inf), rel=1e-9)


@pytest.mark.parametrize("kind", ["bottleneck", "wasserstein"])
def test_batched_h0_distances_match_gudhi(kind):
    from scipy.cluster.hierarchy import linkage

    rng = np.random.default_rng(6)
    clean, noisy = [], []
    for _ in range(6):
        X = rng.normal(size=(40, 3))
        clean.append(np.sort(linkage(X, "single")[:, 2]))
        noisy.append(np.sort(linkage(X + rng.normal(scale=rng.uniform(0.01, 0.5), size=X.shape), "single")[:, 2]))
    A, B = np.array(clean), np.array(noisy)
    for order in ([1.0] if kind == "bottleneck" else [1.0, 2.0]):
        ours = h0_diagram_distances(A, B, kind, order)
        for i in range(len(A)):
            a, b = np.c_[np.zeros(39), A[i]], np.c_[np.zeros(39), B[i]]
            ref = gudhi.bottleneck_distance(a, b, 0) if kind == "bottleneck" else gudhi_wasserstein(a, b, order, math.inf)
            assert ours[i] == pytest.approx(ref, rel=2e-6, abs=1e-9)
            assert ours[i] == pytest.approx(diagram_distance(a, b, kind, order), rel=2e-6, abs=1e-9)


def test_batched_h0_distances_handle_components_that_never_merge():
    a = np.array([[1.0, 2.0, np.inf]])
    assert h0_diagram_distances(a, np.array([[1.0, 2.5, np.inf]]))[0] == pytest.approx(0.5, rel=1e-6)
    assert h0_diagram_distances(a, np.array([[1.0, 2.5, 3.0]])).tolist() == [np.inf]
    assert h0_diagram_distances(np.zeros((2, 0)), np.zeros((2, 0))).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"shape \(batch, edge\)"):
        h0_diagram_distances(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=">= 0 and not NaN"):
        h0_diagram_distances([[-1.0]], [[1.0]])


def test_essential_bars_are_matched_by_birth_as_gudhi_does():
    a = np.array([[0.0, 1.0], [0.0, np.inf], [0.5, np.inf]])
    b = np.array([[0.0, 1.2], [0.2, np.inf], [0.4, np.inf]])
    assert diagram_distance(a, b) == pytest.approx(gudhi.bottleneck_distance(a, b, 0))
    assert diagram_distance(a, b) == pytest.approx(0.2)
    w = diagram_distance(a, b, "wasserstein", 2.0)
    assert w == pytest.approx(gudhi_wasserstein(a, b, 2.0, math.inf))
    assert w == pytest.approx(math.sqrt(0.2**2 + 0.2**2 + 0.1**2))


def test_different_essential_counts_give_inf_unless_ignored():
    a = np.array([[0.0, 1.0], [0.0, np.inf]])
    b = np.array([[0.0, 1.0]])
    assert diagram_distance(a, b) == math.inf
    assert diagram_distance(a, b, "wasserstein") == math.inf
    assert gudhi.bottleneck_distance(a, b) == math.inf
    assert diagram_distance(a, b, essential="ignore") == 0.0
    assert diagram_distance(a, b, "wasserstein", essential="ignore") == 0.0


def test_empty_and_diagonal_diagrams():
    assert diagram_distance([], []) == 0.0
    assert diagram_distance(np.empty((0, 2)), [[0.0, 2.0]]) == 1.0
    assert wasserstein_distance([[0.0, 2.0], [1.0, 5.0]], []) == pytest.approx(3.0)
    assert bottleneck_distance([[0.3, 0.3]], []) == 0.0  # diagonal points cost nothing


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), max_size=8),
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), max_size=8),
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), max_size=8),
)
def test_metric_properties(pa, pb, pc):
    a, b, c = ([(x, x + y) for x, y in pts] for pts in (pa, pb, pc))
    for kind in ("bottleneck", "wasserstein"):
        dab = diagram_distance(a, b, kind)
        assert dab == pytest.approx(diagram_distance(b, a, kind), abs=1e-12)
        assert diagram_distance(a, a, kind) == pytest.approx(0.0, abs=1e-12)
        assert dab <= diagram_distance(a, c, kind) + diagram_distance(c, b, kind) + 1e-9
    # bottleneck <= Wasserstein of any order (the largest term of the sum)
    assert diagram_distance(a, b) <= diagram_distance(a, b, "wasserstein", 2.0) + 1e-9


def test_summaries_match_definitions_and_gudhi():
    rng = np.random.default_rng(4)
    dgm = random_diagram(rng, 20)
    lengths = dgm[:, 1] - dgm[:, 0]
    assert float(total_persistence(dgm, 2.0)) == pytest.approx(np.sum(lengths**2), rel=1e-6)
    ref = gr.Entropy(mode="scalar").fit_transform([dgm])[0, 0]
    assert float(persistent_entropy(dgm)) == pytest.approx(ref, rel=1e-5)
    with_inf = np.r_[dgm, [[0.0, np.inf]]]
    assert float(total_persistence(with_inf)) == pytest.approx(lengths.sum(), rel=1e-6)
    assert float(persistent_entropy(with_inf)) == pytest.approx(ref, rel=1e-5)
    assert float(total_persistence([])) == 0.0
    assert float(persistent_entropy([[1.0, 1.0]])) == 0.0


def test_summaries_under_jit_and_vmap_with_diagonal_padding():
    rng = np.random.default_rng(5)
    dgms = [random_diagram(rng, k) for k in (3, 7, 0)]
    padded = np.zeros((3, 7, 2))
    for i, d in enumerate(dgms):
        padded[i, : len(d)] = d
    batch = jax.jit(jax.vmap(lambda d: persistent_entropy(d)))(jnp.asarray(padded))
    single = [float(persistent_entropy(d)) for d in dgms]
    np.testing.assert_allclose(np.asarray(batch), single, rtol=1e-5)
    tp = jax.jit(jax.vmap(lambda d: total_persistence(d, 1.5)))(jnp.asarray(padded))
    np.testing.assert_allclose(np.asarray(tp), [float(total_persistence(d, 1.5)) for d in dgms], rtol=1e-5)
    assert np.asarray(total_persistence(padded)).shape == (3,)


@pytest.mark.parametrize(
    ("dgm", "error", "match"),
    [
        (np.zeros((3, 3)), ValueError, r"shape \(k, 2\).*got shape \(3, 3\)"),
        (np.zeros(4), ValueError, r"shape \(k, 2\)"),
        ([[0.0, np.nan]], ValueError, "NaN at row 0"),
        ([[np.inf, np.inf]], ValueError, "infinite birth"),
        ([[1.0, 0.5]], ValueError, "death < birth.*negate"),
        ([["a", "b"]], TypeError, "numeric"),
    ],
)
def test_bad_diagrams_are_rejected(dgm, error, match):
    with pytest.raises(error, match=match):
        as_diagram(dgm)
    with pytest.raises(error, match=match):
        diagram_distance(dgm, [[0.0, 1.0]])


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="kind='wasserstien' is not supported.*'wasserstein'"):
        diagram_distance([], [], "wasserstien")
    with pytest.raises(ValueError, match="order must be a finite number >= 1"):
        diagram_distance([], [], "wasserstein", order=0.5)
    with pytest.raises(ValueError, match="internal_p must be >= 1"):
        diagram_distance([], [], internal_p=0.5)
    with pytest.raises(ValueError, match="bottleneck distance uses the L-infinity"):
        diagram_distance([], [], internal_p=2.0)
    with pytest.raises(ValueError, match="essential="):
        diagram_distance([], [], essential="drop")
    with pytest.raises(ValueError, match="p must be > 0"):
        total_persistence([[0.0, 1.0]], p=0)
    with pytest.raises(TypeError, match="traced JAX value"):
        jax.jit(lambda d: diagram_distance(d, []))(jnp.zeros((2, 2)))
