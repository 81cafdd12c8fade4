"""Every metric's matrix is a valid H0 input: zero diagonal, symmetric, and H0 equals scipy's single linkage."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

import holejax as hj


@pytest.mark.parametrize("metric", sorted(hj.METRICS))
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), offset=st.sampled_from([0.0, 50.0, 1e3]), scale=st.sampled_from([1e-2, 1.0, 1e2]))
def test_every_metric_feeds_h0_and_matches_single_linkage(metric, seed, offset, scale):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(40, 12)) * scale + offset).astype(np.float32)
    D = np.asarray(hj.pairwise_distances(X, metric=metric, **({"k": 39} if metric == "geodesic" else {})))
    assert np.all(np.diag(D) == 0), metric
    assert np.array_equal(D, D.T), metric
    deaths = np.sort(np.asarray(hj.h0(D).deaths))
    finite = deaths[np.isfinite(deaths)]
    reference = np.sort(linkage(squareform(D.astype(np.float64), checks=False), "single")[:, 2])
    np.testing.assert_allclose(finite, reference, rtol=1e-5, atol=1e-6 * max(1.0, float(D.max())))
