"""Purity, inverse purity, ARI, NMI; every threshold of a merge tree scored at once."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

import holejax as hj
from holejax.analysis import adjusted_rand, group_small_clusters, merge_scores, normalized_mutual_info
from holejax.analysis import scores as scores_mod
from holejax.analysis.stages import distinct_deaths
from holejax.filtration import clusters_at


def blobs(n=60, d=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = (rng.normal(size=(n, d)) + 2.5 * y[:, None]).astype(np.float32)
    return X, y


def dist(X):
    """Euclidean distances with an exact zero diagonal (float32 rounding leaves ~1e-3 there)."""
    D = np.array(hj.pairwise_distances(X))
    np.fill_diagonal(D, 0.0)
    return D


def test_purity_and_inverse_purity_by_hand():
    pred = [0, 0, 0, 1, 1, 2]
    true = [0, 0, 1, 1, 1, 1]
    assert hj.purity(pred, true) == pytest.approx((2 + 2 + 1) / 6)
    assert hj.inverse_purity(pred, true) == pytest.approx((2 + 2) / 6)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 5), st.integers(0, 3)), min_size=1, max_size=40))
def test_purity_matches_a_contingency_reference(pairs):
    pred, true = (np.array(v) for v in zip(*pairs))
    table = contingency_matrix(true, pred)  # sklearn: (class, cluster)
    assert hj.purity(pred, true) == pytest.approx(table.max(axis=0).sum() / len(pred))
    assert hj.inverse_purity(pred, true) == pytest.approx(table.max(axis=1).sum() / len(pred))
    assert adjusted_rand(pred, true) == pytest.approx(adjusted_rand_score(true, pred))
    assert normalized_mutual_info(pred, true) == pytest.approx(normalized_mutual_info_score(true, pred), abs=1e-12)
    # renaming clusters changes nothing
    assert hj.purity(pred * 7 + 3, true) == pytest.approx(hj.purity(pred, true))
    assert 0 < hj.purity(pred, true) <= 1 and 0 < hj.inverse_purity(pred, true) <= 1


def test_singletons_are_pure_but_not_inversely_pure():
    y = np.array([0, 0, 1, 1])
    assert hj.purity(np.arange(4), y) == 1.0
    assert hj.inverse_purity(np.arange(4), y) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_scores_match_sklearn_at_every_threshold(seed):
    X, y = blobs(seed=seed)
    h = hj.h0(dist(X))
    s = merge_scores(np.asarray(h.linkage)[None], y)
    values, states = distinct_deaths(h.deaths)
    for v, k in zip(values, states):
        lab = clusters_at(h, v)
        assert s.purity[0, k] == pytest.approx(hj.purity(lab, y), abs=1e-12)
        assert s.inverse_purity[0, k] == pytest.approx(hj.inverse_purity(lab, y), abs=1e-12)
        assert s.ari[0, k] == pytest.approx(adjusted_rand_score(y, lab), abs=1e-12)
    # column 0 is the singleton partition
    assert s.purity[0, 0] == 1.0 and s.ari[0, 0] == 0.0


def test_merge_scores_batch_equals_one_by_one_and_chunks():
    Zs, y = [], None
    for seed in range(4):
        X, y = blobs(seed=seed)
        Zs.append(np.asarray(hj.h0(dist(X)).linkage))
    Zs = np.stack(Zs)
    whole = merge_scores(Zs, y)
    chunked = merge_scores(Zs, y, chunk=3)
    for i in range(4):
        single = merge_scores(Zs[i : i + 1], y)
        np.testing.assert_array_equal(whole.ari[i], single.ari[0])
        np.testing.assert_array_equal(whole.purity[i], chunked.purity[i])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("min_size", [2, 3, 7])
def test_pooled_outlier_scores_match_sklearn_at_every_threshold(seed, min_size):
    X, y = blobs(n=80, classes=4, seed=seed)
    h = hj.h0(dist(X))
    s = merge_scores(np.asarray(h.linkage)[None], y, min_cluster_size=min_size)
    values, states = distinct_deaths(h.deaths, rtol=0.0)
    for v, k in [(0.0, 0), *zip(values, states)]:
        lab = group_small_clusters(clusters_at(h, v), min_size)
        assert s.purity[0, k] == pytest.approx(hj.purity(lab, y), abs=1e-12)
        assert s.inverse_purity[0, k] == pytest.approx(hj.inverse_purity(lab, y), abs=1e-12)
        assert s.ari[0, k] == pytest.approx(adjusted_rand_score(y, lab), abs=1e-12)
        assert s.n_clusters[0, k] == len(np.unique(lab[lab >= 0]))
        assert s.n_outliers[0, k] == int((lab < 0).sum())


def test_min_cluster_size_one_counts_every_cluster():
    X, y = blobs()
    Z = np.asarray(hj.h0(dist(X)).linkage)[None]
    s = merge_scores(Z, y, min_cluster_size=1)
    assert s.n_clusters[0].tolist() == list(range(len(y), 0, -1))
    assert (s.n_outliers == 0).all()
    with pytest.raises(ValueError, match="min_cluster_size must be an int >= 1"):
        merge_scores(Z, y, min_cluster_size=0)


@pytest.mark.parametrize("min_size", [1, 4])
def test_merge_scan_under_jit_and_vmap(min_size):
    X, y = blobs()
    Z = jnp.asarray(hj.h0(dist(X)).linkage, jnp.float32)
    onehot = jnp.asarray(np.eye(3, dtype=np.int32)[y])
    m = jnp.int32(min_size)
    eager = scores_mod._merge_scan(Z, onehot, m)
    jitted = jax.jit(scores_mod._merge_scan)(Z, onehot, m)
    vmapped = jax.vmap(scores_mod._merge_scan, in_axes=(0, None, None))(jnp.stack([Z, Z]), onehot, m)
    for a, b, c in zip(eager, jitted, vmapped):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c[1])


def test_merge_scores_with_one_class_and_two_samples():
    s = merge_scores(np.array([[[0.0, 1.0, 0.5, 2.0]]]), [3, 3])
    assert s.purity.tolist() == [[1.0, 1.0]] and s.ari.tolist() == [[0.0, 1.0]]


# -- bad input ------------------------------------------------------------------------
def test_purity_needs_labels():
    with pytest.raises(ValueError, match="needs labels_true"):
        hj.purity([0, 1], None)


def test_mismatched_label_counts():
    with pytest.raises(ValueError, match="labels_pred has 3 samples but labels_true has 2"):
        hj.inverse_purity([0, 1, 1], [0, 1])


def test_non_integer_labels():
    with pytest.raises(TypeError, match="integer ids"):
        hj.purity([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        hj.purity([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="empty"):
        hj.purity([], [])


def test_merge_scores_bad_shapes():
    with pytest.raises(ValueError, match="\\(batch, edge, 4\\)"):
        merge_scores(np.zeros((3, 4)), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="one class per sample"):
        merge_scores(np.zeros((1, 3, 4)), [0, 1])
