"""Input checks shared by every stage.

Each check runs on concrete (non-traced) values before any kernel is traced
or any byte is written, and raises an error that names the argument, what was
expected, what arrived, and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import numpy as np


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` entries of ``choices`` that look like ``name``."""
    return difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=0.5)


def check_choice(value: str, argument: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise ValueError.

    Example:
        >>> check_choice("cosine", "metric", ["euclidean", "cosine"])
        'cosine'
    """
    choices = list(choices)
    if value in choices:
        return value
    hint = close_matches(value, choices)
    did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(
        f"{argument}={value!r} is not supported; expected one of {choices}.{did_you_mean}"
    )


def where(layer: str | None = None, perturbation: str | None = None) -> str:
    """A short ' (layer ..., perturbation ...)' suffix for error messages."""
    parts = []
    if layer is not None:
        parts.append(f"layer {layer!r}")
    if perturbation is not None:
        parts.append(f"perturbation {perturbation!r}")
    return f" ({', '.join(parts)})" if parts else ""


class CloudError(ValueError):
    """A valid cloud that a metric cannot use (e.g. its covariance is singular).

    Found only after the kernel ran, possibly for one cloud of a batch, so
    the error carries where the cloud came from; a caller that knows more
    (the analysis knows the layer and perturbation of every cloud of a
    batch) re-raises it with :meth:`located`.

    Attributes:
        problem: what is wrong, without the location.
        fix: what to do about it.
        layer, perturbation: where the cloud came from, when known.
        cloud: its index in a batch, when known.

    Example:
        >>> err = CloudError("the covariance is singular", "Use covariance='oas'.", cloud=3)
        >>> str(err)
        "the covariance is singular (cloud 3). Use covariance='oas'."
        >>> str(err.located(layer="fc1", perturbation="clean"))
        "the covariance is singular (layer 'fc1', perturbation 'clean'). Use covariance='oas'."
    """

    def __init__(self, problem: str, fix: str, *, layer=None, perturbation=None, cloud=None):
        self.problem, self.fix = problem, fix
        self.layer, self.perturbation, self.cloud = layer, perturbation, cloud
        place = where(layer, perturbation)
        if not place and cloud is not None:
            place = f" (cloud {cloud})"
        super().__init__(f"{problem}{place}. {fix}")

    def located(self, *, layer=None, perturbation=None, cloud=None) -> CloudError:
        """The same error with the location filled in (known fields are kept)."""
        return CloudError(
            self.problem,
            self.fix,
            layer=self.layer if layer is None else layer,
            perturbation=self.perturbation if perturbation is None else perturbation,
            cloud=self.cloud if cloud is None else cloud,
        )


def first_nonfinite_row(X: np.ndarray) -> int | None:
    """Index of the first row of a 2-D array holding NaN or Inf, or None.

    A finite sum proves every entry finite (NaN and Inf propagate through it),
    so the common case costs one vectorised reduction; only a non-finite sum
    (a bad entry, or finite values that overflow) pays the elementwise scan.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if X.size == 0 or np.isfinite(np.add.reduce(X, axis=None)):
            return None
    bad = ~np.isfinite(X).reshape(X.shape[0], -1).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def as_cloud(
    X: Any,
    argument: str = "X",
    *,
    min_points: int = 1,
    layer: str | None = None,
    perturbation: str | None = None,
) -> np.ndarray:
    """Validate a point cloud and return it as a 2-D floating numpy array.

    Args:
        X: array-like of shape ``(sample, unit)``.
        argument: name of the argument in the caller, used in messages.
        min_points: the fewest samples the caller can work with.
        layer, perturbation: where the cloud came from, used in messages.

    Returns:
        ``np.ndarray`` of shape ``(sample, unit)``, float32 unless the input
        was float64.

    Example:
        >>> as_cloud([[0, 1], [2, 3]]).dtype
        dtype('float32')
    """
    if hasattr(X, "shape") and not isinstance(X, np.ndarray):
        # jax / torch arrays; jax tracers must not reach this point
        X = np.asarray(X)
    arr = np.asarray(X)
    suffix = where(layer, perturbation)
    if arr.ndim != 2:
        raise ValueError(
            f"{argument} must have rank 2 (sample, unit); got shape {arr.shape}{suffix}. "
            "Flatten or pool the features first, e.g. X.reshape(len(X), -1)."
        )
    if arr.shape[0] < min_points:
        raise ValueError(
            f"{argument} must hold at least {min_points} samples; got {arr.shape[0]}{suffix}."
        )
    if arr.shape[1] == 0:
        raise ValueError(
            f"{argument} has no features (shape {arr.shape}){suffix}; the layer is empty. "
            "Choose a layer with at least one unit."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise TypeError(f"{argument} must be numeric; got dtype {arr.dtype}{suffix}.")
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    bad = first_nonfinite_row(arr)
    if bad is not None:
        raise ValueError(
            f"{argument} holds NaN or Inf at sample {bad}{suffix}. "
            "Remove those samples or fix the model/inputs that produced them."
        )
    return arr


def as_labels(y: Any, n: int, argument: str = "labels") -> np.ndarray:
    """Validate integer class labels for ``n`` samples; returns int64 ``(n,)``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{argument} must be 1-D (sample,); got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise ValueError(
            f"{argument} has {arr.shape[0]} entries but there are {n} samples; "
            "pass one label per sample."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"{argument} must hold integer class ids; got dtype {arr.dtype}. "
                "Map class names to 0..C-1 and pass the names as label_names."
            )
    return arr.astype(np.int64)
