"""Zero units appended to clouds, so clouds of many widths share a few compiled programs.

A compiled program is specialised to the shape of its input. A study of
layers of widths 10, 32, 64, 128, 256 and 512 would compile each distance
kernel six times; padded with zero units to :func:`unit_bucket` widths, the
same layers need two programs. A zero unit leaves euclidean, cosine and kNN
distances unchanged; the Mahalanobis kernels take the number of real units
as a traced argument instead (:func:`holejax.metrics.mahalanobis.mahalanobis_kernel`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["unit_bucket", "pad_to_bucket", "pad_inverse_covariance"]

_SMALL_BUCKET = 64
_LARGE_BUCKET = 512


def unit_bucket(d: int) -> int:
    """The width clouds of ``d`` units are padded to: 64, 512, then multiples of 512.

    Three widths cover the layers of most networks, so a study compiles about
    one distance program per metric; the padding at most doubles the matrix
    product above 512 units, and below that costs less than the tree.

    Example:
        >>> [unit_bucket(d) for d in (10, 64, 100, 512, 700)]
        [64, 64, 512, 512, 1024]
    """
    d = max(int(d), 1)
    if d <= _SMALL_BUCKET:
        return _SMALL_BUCKET
    return -(-d // _LARGE_BUCKET) * _LARGE_BUCKET


def pad_to_bucket(X: np.ndarray) -> np.ndarray:
    """``X`` (host array, units last) with zero units appended up to :func:`unit_bucket`.

    Example:
        >>> pad_to_bucket(np.ones((2, 3), np.float32)).shape
        (2, 64)
    """
    d = X.shape[-1]
    if d == unit_bucket(d):
        return X
    return np.pad(X, [(0, 0)] * (X.ndim - 1) + [(0, unit_bucket(d) - d)])


def pad_inverse_covariance(VI: np.ndarray, width: int) -> np.ndarray:
    """The ``(width, width)`` inverse covariance with ``VI`` in its leading block and the identity after it.

    The padded units of a cloud are zero in every sample, so the identity
    block adds nothing to ``(x - y)^T VI (x - y)``; it keeps the matrix
    positive definite, and its Cholesky factor block diagonal.

    Example:
        >>> pad_inverse_covariance(np.full((1, 1), 4.0), 3).tolist()
        [[4.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    d = VI.shape[0]
    out = np.eye(width, dtype=VI.dtype)
    out[:d, :d] = VI
    return out
