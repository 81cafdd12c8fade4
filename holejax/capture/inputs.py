"""Inputs for an export: arrays, iterables of batches, or a PyTorch DataLoader.

Whatever arrives is cut into batches of exactly ``batch_size`` samples (the
last one may be shorter) that start at multiples of ``batch_size``, as numpy
arrays. An export therefore sees the same batches however the data was
delivered, and a resumed export can start at any sample.

Accepted:

- an array ``(sample, ...)``: numpy, jax, torch, or a list/tuple of samples;
- any other iterable of batches, each an array, an ``(x, y)`` / ``(x,)``
  tuple or list, or a mapping with an ``"x"``/``"input"``/``"inputs"`` key and
  optionally a ``"y"``/``"label"``/``"labels"`` key. A PyTorch DataLoader is
  such an iterable (it must not shuffle). Labels found in the batches are
  used when ``labels`` is not given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from holejax._checks import as_labels

__all__ = ["InputSource", "as_source", "example_of", "iter_batches"]

_X_KEYS = ("x", "input", "inputs")
_Y_KEYS = ("y", "label", "labels")


def _split_batch(batch: Any, index: int) -> tuple[Any, Any]:
    """``(x, y or None)`` of one batch from an iterable."""
    if isinstance(batch, (tuple, list)):
        if len(batch) not in (1, 2):
            raise ValueError(
                f"batch {index} of inputs is a {type(batch).__name__} of {len(batch)} entries; "
                "expected (x,) or (x, y)."
            )
        return batch[0], batch[1] if len(batch) == 2 else None
    if isinstance(batch, Mapping):
        x_key = next((k for k in _X_KEYS if k in batch), None)
        if x_key is None:
            raise ValueError(
                f"batch {index} of inputs is a mapping with keys {sorted(map(str, batch))}; "
                f"expected one of {list(_X_KEYS)} for the inputs."
            )
        y_key = next((k for k in _Y_KEYS if k in batch), None)
        return batch[x_key], batch[y_key] if y_key else None
    return batch, None


def _numeric(x: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except ValueError as err:  # ragged nested lists
        raise TypeError(f"{what} must be a numeric array (sample, ...); {err}") from None
    if arr.ndim < 1 or arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{what} must be a numeric array (sample, ...); got dtype {arr.dtype}, shape {arr.shape}."
        )
    return arr


def _is_array(inputs: Any) -> bool:
    return isinstance(inputs, (list, tuple)) or (
        hasattr(inputs, "shape") and hasattr(inputs, "__getitem__") and len(getattr(inputs, "shape", ())) >= 1
    )


def _known_length(inputs: Any) -> int | None:
    """Sample count of a DataLoader-like object, when it is known without a pass."""
    dataset = getattr(inputs, "dataset", None)
    if dataset is None or getattr(inputs, "drop_last", False) or not hasattr(dataset, "__len__"):
        return None
    if getattr(inputs, "batch_size", None) is None:  # a batch_sampler decides; count instead
        return None
    return len(dataset)


class InputSource(NamedTuple):
    """Inputs cut into aligned batches.

    Attributes:
        n: number of samples.
        labels: ``(sample,)`` int64 labels, or None.
        batch_size: samples per batch.
        data: the array, or the iterable of batches.
        is_array: whether ``data`` is an array of samples.
        example: the first samples (at most 2), for a look at the layers.
    """

    n: int
    labels: np.ndarray | None
    batch_size: int
    data: Any
    is_array: bool
    example: np.ndarray

    def batches(self, first: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, x)`` for the batches holding samples ``first .. n-1``.

        Batches start at multiples of ``batch_size``; the first one is the
        batch that holds ``first``. Iterables are read from their start (the
        skipped batches do not run the model) and checked to hold ``n``
        samples.
        """
        bs, n = self.batch_size, self.n
        start = (first // bs) * bs
        if self.is_array:
            for s in range(start, n, bs):
                yield s, _numeric(self.data[s : s + bs], "inputs")
            return
        pending: list[np.ndarray] = []
        held = seen = 0
        for x in _batch_inputs(self.data):
            pos, seen = seen, seen + len(x)
            if seen > n:
                raise ValueError(f"inputs yielded more than the expected {n} samples; pass n_samples={seen} or more.")
            if seen <= start:
                continue
            if pos < start:  # the batch that holds the first sample to export
                x = x[start - pos :]
            pending.append(x)
            held += len(x)
            while held >= bs:
                whole = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield start, whole[:bs]
                start += bs
                rest = whole[bs:]
                pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
        if seen < n:
            raise ValueError(
                f"inputs ended after {seen} samples but {n} were expected; the inputs changed since "
                "the export began, or n_samples is wrong."
            )
        if held:
            yield start, np.concatenate(pending) if len(pending) > 1 else pending[0]


def _batch_inputs(batches: Iterable) -> Iterator[np.ndarray]:
    """The inputs ``x`` of each batch of an iterable, as numeric numpy arrays."""
    for i, batch in enumerate(batches):
        yield _numeric(_split_batch(batch, i)[0], f"batch {i} of inputs")


def iter_batches(inputs: Any, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, x)`` over an array in slices of ``batch_size``, or over an iterable's batches as they come.

    Example:
        >>> [(s, len(x)) for s, x in iter_batches(np.zeros((5, 2)), 2)]
        [(0, 2), (2, 2), (4, 1)]
    """
    if _is_array(inputs):
        data = _numeric(inputs, "inputs") if isinstance(inputs, (list, tuple)) else inputs
        for s in range(0, int(data.shape[0]), batch_size):
            yield s, _numeric(data[s : s + batch_size], "inputs")
        return
    start = 0
    for x in _batch_inputs(inputs):
        yield start, x
        start += len(x)


def example_of(inputs: Any, k: int = 2) -> np.ndarray:
    """The first ``k`` samples of an array, or of an iterable's first batch."""
    for _, x in iter_batches(inputs, k):
        return x[:k]
    raise ValueError("inputs holds no samples; pass at least one.")


def _scan(inputs: Iterable) -> tuple[int, np.ndarray | None]:
    """One pass over an iterable of batches: the sample count and the labels found."""
    n, ys, missing = 0, [], False
    for i, batch in enumerate(inputs):
        x, y = _split_batch(batch, i)
        k = len(np.asarray(x)) if not hasattr(x, "shape") else int(x.shape[0])
        n += k
        if y is None:
            missing = True
        else:
            ys.append(np.asarray(y).reshape(-1))
    labels = None if missing or not ys else np.concatenate(ys)
    return n, labels


def as_source(
    inputs: Any,
    labels: Any = None,
    batch_size: int = 256,
    n_samples: int | None = None,
) -> InputSource:
    """Check ``inputs`` and ``labels`` and describe how to batch them.

    Args:
        inputs: an array of samples or an iterable of batches (module docstring).
        labels: ``(sample,)`` integer labels, or None (then labels found in
            the batches are used).
        batch_size: samples per batch.
        n_samples: the number of samples of a one-shot iterator (generators);
            not needed otherwise.

    Raises:
        ValueError / TypeError: naming the argument, what was expected and
            what arrived.

    Example:
        >>> src = as_source(np.zeros((5, 2)), labels=[0, 1, 0, 1, 0], batch_size=2)
        >>> [(s, x.shape[0]) for s, x in src.batches()]
        [(0, 2), (2, 2), (4, 1)]
    """
    if _is_array(inputs):
        data = _numeric(inputs, "inputs") if isinstance(inputs, (list, tuple)) else inputs
        n = int(data.shape[0])
        if n_samples is not None and int(n_samples) != n:
            raise ValueError(f"n_samples={n_samples} but inputs holds {n} samples; leave n_samples out for arrays.")
        if n == 0:
            raise ValueError("inputs holds no samples; pass at least one.")
        label_arr = None if labels is None else as_labels(np.asarray(labels), n)
        return InputSource(n, label_arr, batch_size, data, True, _numeric(data[:2], "inputs"))
    if not isinstance(inputs, Iterable):
        raise TypeError(
            f"inputs must be an array (sample, ...) or an iterable of batches; got {type(inputs).__name__}."
        )
    if type(getattr(inputs, "sampler", None)).__name__ == "RandomSampler":
        raise ValueError(
            "inputs is a DataLoader that shuffles: every pass (and a resumed export) would see the samples "
            "in a different order. Build it with shuffle=False."
        )
    one_shot = iter(inputs) is inputs
    kind = type(inputs).__name__
    if one_shot:  # keep the first batch for the example and put it back in front
        try:
            head = next(inputs)
        except StopIteration:
            raise ValueError("inputs is an empty iterator; pass at least one sample.") from None
        inputs = itertools.chain([head], inputs)
    else:
        head = next(iter(inputs), None)
        if head is None:
            raise ValueError("inputs yields no batches; pass at least one sample.")
    example = _numeric(_split_batch(head, 0)[0], "batch 0 of inputs")[:2]
    n = int(n_samples) if n_samples is not None else _known_length(inputs)
    found = None
    if one_shot and n is None:
        raise ValueError(
            f"inputs is a one-shot iterator ({kind}) of unknown length; pass n_samples= (and labels=), "
            "or an iterable that can be read more than once, such as a DataLoader."
        )
    if not one_shot and (labels is None or n is None):  # count the samples and look for labels
        counted, found = _scan(inputs)
        if n is not None and counted != n:
            raise ValueError(f"n_samples={n} but inputs yielded {counted} samples.")
        n = counted
    if n < 1:
        raise ValueError("inputs holds no samples; pass at least one.")
    if labels is not None:
        label_arr = as_labels(np.asarray(labels), n)
    else:
        label_arr = None if found is None else as_labels(found, n, "labels found in the input batches")
    return InputSource(n, label_arr, batch_size, inputs, False, example)
