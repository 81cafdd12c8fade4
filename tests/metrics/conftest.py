"""Shared fixtures and helpers for the distance-kernel tests."""

from __future__ import annotations

import numpy as np
import pytest


def cloud(n: int = 60, d: int = 12, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """A reproducible gaussian cloud with an offset (so centring matters)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) + 3.0).astype(dtype)


def assert_rel(actual, desired, rtol: float, what: str = "") -> None:
    """Relative agreement off the diagonal (references put rounding noise on it)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, what
    off = ~np.eye(actual.shape[0], dtype=bool) if actual.ndim == 2 else np.ones_like(actual, bool)
    np.testing.assert_allclose(actual[off], desired[off], rtol=rtol, atol=0, err_msg=what)


@pytest.fixture(name="cloud")
def cloud_fixture():
    """The :func:`cloud` factory."""
    return cloud


@pytest.fixture(name="assert_rel")
def assert_rel_fixture():
    """The :func:`assert_rel` check."""
    return assert_rel
