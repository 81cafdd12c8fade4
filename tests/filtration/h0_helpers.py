"""Shared helpers for the H0 tests: clouds and reference diagrams from independent libraries."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist, squareform


def cloud(seed: int, n: int, d: int = 5) -> np.ndarray:
    """A reproducible gaussian cloud (float64)."""
    return np.random.default_rng(seed).normal(size=(n, d))


def dist32(X: np.ndarray) -> np.ndarray:
    """float64 euclidean distances rounded once to float32 (the input every engine sees)."""
    return squareform(pdist(np.asarray(X, np.float64))).astype(np.float32)


def sorted_deaths(dgm) -> np.ndarray:
    """Death column of a dimension-0 diagram, sorted (inf last)."""
    d = np.asarray(dgm, np.float64).reshape(-1, 2)[:, 1]
    return np.sort(d)


def gudhi_deaths(D: np.ndarray) -> np.ndarray:
    import gudhi

    st = gudhi.RipsComplex(distance_matrix=np.asarray(D, np.float64)).create_simplex_tree(
        max_dimension=1
    )
    st.compute_persistence()
    return sorted_deaths(st.persistence_intervals_in_dimension(0))


def giotto_deaths(D: np.ndarray) -> np.ndarray:
    from gph import ripser_parallel

    out = ripser_parallel(np.asarray(D, np.float64), maxdim=0, metric="precomputed")
    return sorted_deaths(out["dgms"][0])


def ripser_deaths(D: np.ndarray) -> np.ndarray:
    import ripser

    out = ripser.ripser(np.asarray(D, np.float64), maxdim=0, distance_matrix=True)
    return sorted_deaths(out["dgms"][0])


def scipy_deaths(D: np.ndarray) -> np.ndarray:
    """Single-linkage heights plus the essential bar (finite D only)."""
    from scipy.cluster.hierarchy import linkage

    Z = linkage(squareform(np.asarray(D, np.float64), checks=False), "single")
    return np.sort(np.concatenate([Z[:, 2], [np.inf]]))


REFERENCES = {
    "gudhi": gudhi_deaths,
    "giotto-ph": giotto_deaths,
    "ripser": ripser_deaths,
}
