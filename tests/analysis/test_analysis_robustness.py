"""Batched exact H0 diagram distances against holejax.topology, gudhi and POT."""

from __future__ import annotations

import gudhi
import numpy as np
import pytest
from gudhi.wasserstein import wasserstein_distance as pot_wasserstein
from hypothesis import given, settings
from hypothesis import strategies as st

from holejax.analysis import h0_diagram_distances
from holejax.analysis.robustness import reference_diagram_distance


def diagram(deaths):
    d = np.asarray(deaths, np.float64)
    return np.c_[np.zeros(len(d)), d]


def random_pairs(rng, count, m):
    a = np.sort(rng.gamma(2.0, 1.0, (count, m)), axis=1)
    b = np.sort(rng.gamma(2.0, rng.uniform(0.5, 2.0, (count, 1)), (count, m)), axis=1)
    a[::3, : m // 3] = 0.0  # duplicate points (zero deaths)
    b[1::4, -2:] = b[1::4, -3:-2]  # ties
    return a, b


@pytest.mark.parametrize("kind, order", [("bottleneck", 1.0), ("wasserstein", 1.0), ("wasserstein", 2.0)])
def test_agrees_with_gudhi_and_the_topology_module(kind, order):
    rng = np.random.default_rng(0)
    a, b = random_pairs(rng, 12, 25)
    ours = h0_diagram_distances(a, b, kind, order)
    for i in range(len(a)):
        da, db = diagram(a[i]), diagram(b[i])
        if kind == "bottleneck":
            ref = gudhi.bottleneck_distance(da, db)
        else:
            ref = pot_wasserstein(da, db, order=order, internal_p=np.inf)
        assert ours[i] == pytest.approx(ref, rel=2e-6, abs=1e-9)
        assert ours[i] == pytest.approx(reference_diagram_distance(da, db, kind, order), rel=2e-6, abs=1e-9)


def test_infinite_deaths_are_essential_bars():
    a = np.array([[1.0, 2.0, np.inf]])
    b = np.array([[1.0, 2.5, np.inf]])
    c = np.array([[1.0, 2.0, 3.0]])
    assert h0_diagram_distances(a, b)[0] == pytest.approx(0.5, rel=1e-6)
    assert h0_diagram_distances(a, c).tolist() == [np.inf]
    assert h0_diagram_distances(a, c, "wasserstein").tolist() == [np.inf]


def test_large_batch_matches_small_batches():
    rng = np.random.default_rng(1)
    a, b = random_pairs(rng, 9, 40)
    whole = h0_diagram_distances(a, b, "wasserstein")
    parts = np.concatenate([h0_diagram_distances(a[i : i + 3], b[i : i + 3], "wasserstein") for i in range(0, 9, 3)])
    np.testing.assert_allclose(whole, parts, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(0, 50), min_size=8, max_size=8),
    st.lists(st.floats(0, 50), min_size=8, max_size=8),
    st.lists(st.floats(0, 50), min_size=8, max_size=8),
)
def test_metric_properties(x, y, z):
    A, B, C = (np.sort(np.asarray(v))[None] for v in (x, y, z))
    for kind in ("bottleneck", "wasserstein"):
        ab = h0_diagram_distances(A, B, kind)[0]
        ba = h0_diagram_distances(B, A, kind)[0]
        assert ab == pytest.approx(ba, rel=1e-5, abs=1e-5)
        assert h0_diagram_distances(A, A, kind)[0] == pytest.approx(0.0, abs=1e-5)
        ac, cb = h0_diagram_distances(A, C, kind)[0], h0_diagram_distances(C, B, kind)[0]
        assert ab <= ac + cb + 1e-4 * (1 + ab)
    # the bottleneck never exceeds the 1-Wasserstein distance
    assert h0_diagram_distances(A, B)[0] <= h0_diagram_distances(A, B, "wasserstein")[0] * (1 + 1e-5) + 1e-5


def test_empty_diagrams():
    assert h0_diagram_distances(np.zeros((2, 0)), np.zeros((2, 0))).tolist() == [0.0, 0.0]


# -- bad input ------------------------------------------------------------------------
def test_bad_input():
    with pytest.raises(ValueError, match="kind='bottle'.*Did you mean 'bottleneck'"):
        h0_diagram_distances([[1.0]], [[1.0]], "bottle")
    with pytest.raises(ValueError, match="order must be a finite number >= 1"):
        h0_diagram_distances([[1.0]], [[1.0]], "wasserstein", 0.5)
    with pytest.raises(ValueError, match="same|both have shape"):
        h0_diagram_distances([[1.0, 2.0]], [[1.0]])
    with pytest.raises(ValueError, match=">= 0 and not NaN"):
        h0_diagram_distances([[-1.0]], [[1.0]])
