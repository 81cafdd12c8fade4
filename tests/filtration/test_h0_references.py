"""H0 deaths against gudhi, giotto-ph, ripser and scipy on clouds that stress the engine."""

from __future__ import annotations

import numpy as np
import pytest
from h0_helpers import REFERENCES, cloud, dist32, scipy_deaths

from holejax.filtration import h0, h0_diagram


def _grid() -> np.ndarray:
    """Integer grid: many exactly equal distances (ties)."""
    g = np.stack(np.meshgrid(np.arange(8), np.arange(5)), -1).reshape(-1, 2)
    return g.astype(np.float64)


def _duplicates() -> np.ndarray:
    X = cloud(3, 25, 3)
    return np.concatenate([X, X[:13], X[:2]])  # repeated points: zero distances


def _collinear() -> np.ndarray:
    t = np.random.default_rng(4).uniform(0, 10, 40)
    return np.stack([t, 2 * t + 1, -t], 1)


def _disconnected() -> np.ndarray:
    """Three blocks that never connect (inf between blocks)."""
    D = np.full((40, 40), np.inf, np.float32)
    for lo, hi, seed in [(0, 10, 0), (10, 11, 1), (11, 40, 2)]:
        D[lo:hi, lo:hi] = dist32(cloud(seed, hi - lo, 4))
    perm = np.random.default_rng(5).permutation(40)
    return D[np.ix_(perm, perm)]


CASES = {
    "gaussian": lambda: dist32(cloud(0, 40, 6)),
    "ties": lambda: dist32(_grid()),
    "duplicates": lambda: dist32(_duplicates()),
    "collinear": lambda: dist32(_collinear()),
    "disconnected": _disconnected,
    "n1": lambda: np.zeros((1, 1), np.float32),
    "n2": lambda: dist32(cloud(1, 2)),
    "n3": lambda: dist32(cloud(2, 3)),
}


@pytest.mark.parametrize("method", ["prim", "boruvka"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference_libraries(case, method):
    D = CASES[case]()
    h = h0(D, method=method)
    ours = np.asarray(h0_diagram(h))[:, 1].astype(np.float64)
    assert np.all(h.deaths[1:] >= h.deaths[:-1]), "deaths are in ascending (Kruskal) order"
    for name, reference in REFERENCES.items():
        ref = reference(D)
        if len(D) == 1 and name == "gudhi":
            assert len(ref) == 0  # gudhi reports no bar at all for a single vertex
            continue
        # the references drop zero-length bars (duplicate points); ours keeps them
        assert np.sum(ours == 0) >= len(ours) - len(ref), name
        ref = np.concatenate([np.zeros(len(ours) - len(ref)), ref])
        assert np.array_equal(np.isinf(ours), np.isinf(ref)), name
        finite = np.isfinite(ref)
        np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-5, atol=1e-6, err_msg=name)
    if np.isfinite(D).all() and len(D) > 1:
        np.testing.assert_allclose(ours[:-1], scipy_deaths(D)[:-1], rtol=1e-5, atol=1e-6)


def test_disconnected_parts_die_at_inf():
    h = h0(_disconnected())
    assert np.isinf(h.deaths).sum() == 2
    assert np.all(np.isfinite(h.deaths[:-2]))
