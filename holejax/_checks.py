"""Input checks shared by every stage.

Each check runs on concrete (non-traced) values before any kernel is traced
or any byte is written, and raises an error that names the argument, what was
expected, what arrived, and how to fix it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path
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


def describe(value: Any) -> str:
    """A short description of what arrived, for messages: type, and shape or value.

    Example:
        >>> describe(np.zeros((3, 4))), describe("0.5"), describe(None)
        ('ndarray of shape (3, 4)', "'0.5' (a str)", 'None')
    """
    if value is None:
        return "None"
    if isinstance(value, (str, bytes)):
        return f"{value!r:.40} (a {type(value).__name__})"
    if isinstance(value, (bool, int, float, complex)):
        return repr(value)
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)}"
    return type(value).__name__


def as_numeric_array(value: Any, argument: str, expected: str, *, numeric: bool = True) -> np.ndarray:
    """``np.asarray(value)``, with clear errors for None, strings, ragged nesting and non-numbers.

    Args:
        value: what the caller passed.
        argument: its name, for messages.
        expected: what the caller wants, e.g. ``"a (sample, unit) array"``.
        numeric: also require a real number dtype (integer, bool or floating).

    Returns:
        the array.

    Example:
        >>> as_numeric_array([[1.0, 2.0], [3.0]], "X", "a (sample, unit) array")
        Traceback (most recent call last):
        ...
        ValueError: X must be a (sample, unit) array; got a ragged nested sequence (rows of different lengths: 2, 1). Pad or trim the rows to one length, or pass a numpy array.
    """
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise TypeError(f"{argument} must be {expected}; got {describe(value)}.")
    if hasattr(value, "shape") and not isinstance(value, np.ndarray):
        value = np.asarray(value)  # jax / torch arrays; jax tracers must not reach this point
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        lengths = ", ".join(str(len(r)) if hasattr(r, "__len__") else "scalar" for r in list(value)[:6])
        raise ValueError(
            f"{argument} must be {expected}; got a ragged nested sequence (rows of different lengths: "
            f"{lengths}). Pad or trim the rows to one length, or pass a numpy array."
        ) from None
    if arr.dtype.name == "bfloat16" or arr.dtype.name.startswith("float8"):
        arr = arr.astype(np.float32)  # ml_dtypes floats (e.g. jax bfloat16) are not numpy number types
    if numeric and (
        not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise TypeError(f"{argument} must be {expected} of real numbers; got dtype {arr.dtype}.")
    return arr


def store_path(store: Any, argument: str = "store") -> Path:
    """The path of a store, or a TypeError / ValueError naming the argument.

    Example:
        >>> store_path("acts.zarr").name
        'acts.zarr'
        >>> store_path(None)
        Traceback (most recent call last):
        ...
        TypeError: store must be the path of a Zarr store (str or pathlib.Path), e.g. 'acts.zarr'; got None.
    """
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(
            f"{argument} must be the path of a Zarr store (str or pathlib.Path), e.g. 'acts.zarr'; got {describe(store)}."
        )
    if not str(os.fspath(store)).strip():
        raise ValueError(f"{argument} is an empty path; pass the path of a Zarr store, e.g. 'acts.zarr'.")
    return Path(store)


def check_threshold(value: Any, argument: str = "threshold") -> float:
    """One real, non-NaN scale (``+-inf`` allowed: all joined / none joined).

    Example:
        >>> check_threshold(np.float32(0.5))
        0.5
        >>> check_threshold(float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: threshold is NaN; pass a number (inf joins every sample, a value below the first death joins none).
    """
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{argument} must be a number; got {describe(value)}.")
    arr = np.asarray(value)
    if arr.ndim != 0:
        raise TypeError(
            f"{argument} must be one number; got {describe(value)}. Call once per threshold "
            "(hj.betti0_curve takes many)."
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{argument} must be a real number; got {describe(value)} of dtype {arr.dtype}.")
    t = float(arr)
    if np.isnan(t):
        raise ValueError(
            f"{argument} is NaN; pass a number (inf joins every sample, a value below the first death joins none)."
        )
    return t


def check_thresholds(values: Any, argument: str = "thresholds") -> None:
    """Real, non-NaN scales of any shape; jax tracers (inside ``jax.jit``) pass unchecked.

    Example:
        >>> check_thresholds([0.5, float("nan")])
        Traceback (most recent call last):
        ...
        ValueError: thresholds holds NaN at index (1,); pass numbers (inf joins every sample).
    """
    import jax  # loaded on use: holejax.store and holejax.cli import this module and run without jax

    if isinstance(values, jax.core.Tracer):
        return
    arr = as_numeric_array(values, argument, "an array of thresholds")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        first = tuple(int(i) for i in np.argwhere(np.isnan(arr))[0])
        raise ValueError(f"{argument} holds NaN at index {first}; pass numbers (inf joins every sample).")


_H0_FIELDS = ("deaths", "edges", "linkage")


def check_h0_result(h: Any, argument: str = "h") -> None:
    """TypeError unless ``h`` is an H0 result (``deaths``, ``edges``, ``linkage``), with a hint for arrays.

    Example:
        >>> check_h0_result(np.zeros((4, 4)))
        Traceback (most recent call last):
        ...
        TypeError: h must be an H0Result (from hj.h0 or hj.h0_from_points); got ndarray of shape (4, 4). It looks like a distance matrix: pass hj.h0(D).
    """
    if all(hasattr(h, f) for f in _H0_FIELDS):
        return
    hint = ""
    shape = getattr(h, "shape", None)
    if shape is not None and len(shape) == 2:
        hint = (
            " It looks like a distance matrix: pass hj.h0(D)."
            if shape[0] == shape[1]
            else " It looks like a point cloud: pass hj.h0_from_points(X)."
        )
    raise TypeError(f"{argument} must be an H0Result (from hj.h0 or hj.h0_from_points); got {describe(h)}.{hint}")


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
    suffix = where(layer, perturbation)
    arr = as_numeric_array(X, argument, f"a (sample, unit) array{suffix}")
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
    arr = as_numeric_array(y, argument, "a (sample,) array of integer class ids", numeric=False)
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
