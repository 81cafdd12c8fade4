"""Hypothesis properties of H0: permutation invariance and stability."""

from __future__ import annotations

import numpy as np
from h0_helpers import dist32
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holejax.filtration import h0

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
N = 40  # the shape the other tests compile too


@st.composite
def clouds(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.01, 100.0))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 3)) * scale
    if draw(st.booleans()):  # integer coordinates: ties and duplicates
        X = np.round(X / scale * 2)
    return X


@SETTINGS
@given(clouds(), st.integers(0, 2**31 - 1), st.sampled_from(["prim", "boruvka"]))
def test_permutation_invariance(X, seed, method):
    perm = np.random.default_rng(seed).permutation(N)
    a = h0(dist32(X), method=method)
    b = h0(dist32(X[perm]), method=method)
    np.testing.assert_array_equal(a.deaths, b.deaths)
    # the permuted tree is the same tree up to ties: same multiset of lengths, and
    # edges map back to pairs at exactly those lengths
    D = dist32(X)
    back = perm[b.edges]
    np.testing.assert_array_equal(D[back[:, 0], back[:, 1]], b.deaths)


@SETTINGS
@given(clouds(), st.integers(0, 2**31 - 1), st.floats(1e-3, 0.5))
def test_stability_bound(X, seed, eps):
    """Moving every point by at most eps moves each sorted death by at most 2 eps."""
    rng = np.random.default_rng(seed)
    step = rng.normal(size=X.shape)
    step *= eps * rng.uniform(0, 1, (N, 1)) / np.linalg.norm(step, axis=1, keepdims=True)
    moved = np.linalg.norm(step, axis=1).max()
    a = h0(dist32(X)).deaths.astype(np.float64)
    b = h0(dist32(X + step)).deaths.astype(np.float64)
    slack = 1e-5 * max(1.0, np.abs(X).max())  # float32 rounding of the inputs
    assert np.max(np.abs(a - b)) <= 2 * moved + slack
