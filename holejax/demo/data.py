"""scikit-learn's bundled digits data (no download), ready for the demo models."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.datasets import load_digits as sk_load_digits
from sklearn.model_selection import train_test_split

__all__ = ["Digits", "load_digits", "split_digits"]


class Digits(NamedTuple):
    """The digits data set.

    Attributes:
        X: ``(sample, 64)`` float32 pixel intensities in [0, 1].
        y: ``(sample,)`` int64 digit classes 0..9.
        images: ``(sample, 1, 8, 8)`` float32, channels first (PyTorch layout).
        label_names: ``["0", ..., "9"]``.
    """

    X: np.ndarray
    y: np.ndarray
    images: np.ndarray
    label_names: list[str]


def load_digits() -> Digits:
    """Load the 1797 8x8 digit images bundled with scikit-learn.

    Example:
        >>> d = load_digits()
        >>> d.X.shape, d.images.shape, float(d.X.max())
        ((1797, 64), (1797, 1, 8, 8), 1.0)
    """
    bunch = sk_load_digits()
    X = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    return Digits(X, y, X.reshape(-1, 1, 8, 8), [str(c) for c in bunch.target_names])


def split_digits(digits: Digits, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A stratified train/test split of the digits, as index arrays.

    Example:
        >>> train, test = split_digits(load_digits())
        >>> len(train) + len(test)
        1797
    """
    idx = np.arange(len(digits.y))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=digits.y)
    return np.sort(train), np.sort(test)
