"""Shared helpers for the H0 tests: reference computations by independent libraries."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist, squareform


def cloud(seed: int, n: int, d: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def dist32(X: np.ndarray) -> np.ndarray:
    """float64 euclidean distances rounded once to float32 (the input every engine sees)."""
    return squareform(pdist(X)).astype(np.float32)


def finite_sorted(deaths) -> np.ndarray:
    d = np.asarray(deaths, np.float64)
    return np.sort(d[np.isfinite(d)])
