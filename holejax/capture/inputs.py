"""Inputs for an export: arrays, tuples and mappings of arrays, or iterables of batches.

Whatever arrives is cut into batches of *model inputs* along the sample axis
(axis 0). A model input is one of:

- an array ``(sample, ...)``: the model's one positional argument;
- a tuple of arrays ``(sample, ...)``: its positional arguments;
- a dict ``str -> (sample, ...)`` array: its keyword arguments (token ids and
  ``attention_mask`` of a transformer).

Adapters call the model as ``model(x)``, ``model(*x)`` or ``model(**x)``.
Every array of one model input holds the same samples; the counts are checked.

Accepted ``inputs``:

- an array ``(sample, ...)``: numpy, jax, torch, or a list of samples;
- a tuple of arrays (positional arguments), each ``(sample, ...)``;
- a mapping of arrays (``dict``, a ``transformers`` ``BatchEncoding``,
  anything with ``keys()``): keyword arguments. Keys ``label``/``labels``/``y``
  are labels, not model arguments; a mapping with an ``x``/``input``/``inputs``
  key holds the model input under that key;
- any other iterable of batches (a PyTorch DataLoader, which must not
  shuffle), each batch an array, a mapping as above, or an ``(x,)`` / ``(x, y)``
  tuple or list whose ``x`` is an array, a tuple of arrays or a mapping.
  Labels found in the batches are used when ``labels`` is not given.

Batches hold exactly ``batch_size`` samples (the last one may be shorter)
and start at multiples of ``batch_size``, so an export sees the same batches
however the data was delivered, and a resumed export can start at any
sample. Iterables whose batches differ in their trailing shapes (token
sequences padded per batch) give a shorter batch wherever the shape
changes, so batches of different shapes are never merged.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple, Union

import numpy as np

from holejax._checks import as_labels

__all__ = [
    "InputSource",
    "ModelInput",
    "as_model_input",
    "as_source",
    "concat_samples",
    "example_of",
    "iter_batches",
    "n_samples_of",
    "slice_samples",
]

ModelInput = Union[np.ndarray, tuple, dict]
"""One batch of model inputs: an array, a tuple of arrays or a dict of arrays, all ``(sample, ...)``."""

_X_KEYS = ("x", "input", "inputs")
_Y_KEYS = ("y", "label", "labels")


def _is_mapping(x: Any) -> bool:
    return isinstance(x, Mapping) or (
        hasattr(x, "keys") and hasattr(x, "__getitem__") and not hasattr(x, "shape")
    )


def _has_shape(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "__getitem__") and len(getattr(x, "shape", ())) >= 1


def _is_positional(x: Any) -> bool:
    """A tuple of arrays: positional arguments (a list, or a tuple of numbers, is an array of samples)."""
    return isinstance(x, tuple) and len(x) > 0 and all(_has_shape(e) for e in x)


def _to_numpy(x: Any) -> Any:
    """A numpy view of a CPU tensor, or a host copy of a device tensor; other values unchanged."""
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x


def _numeric(x: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(_to_numpy(x))
    except ValueError as err:  # ragged nested lists
        raise TypeError(
            f"{what} must be a numeric array (sample, ...); {str(err).rstrip('.')}. Pad sequences to one length "
            "(a tokenizer's padding=True) or pass batches of equal shape."
        ) from None
    if arr.ndim < 1 or arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{what} must be a numeric array (sample, ...); got dtype {arr.dtype}, shape {arr.shape}."
        )
    return arr


def _entries(x: ModelInput, what: str) -> list[tuple[str, Any]]:
    """``(description, array)`` of every array of a model input."""
    if isinstance(x, dict):
        return [(f"{what}[{k!r}]", v) for k, v in x.items()]
    if isinstance(x, tuple):
        return [(f"{what}[{i}]", v) for i, v in enumerate(x)]
    return [(what, x)]


def n_samples_of(x: ModelInput, what: str = "inputs") -> int:
    """The number of samples of a model input; every array must hold the same.

    Raises:
        ValueError: the arrays disagree on the sample count (names both).

    Example:
        >>> n_samples_of({"input_ids": np.zeros((3, 5)), "attention_mask": np.ones((3, 5))})
        3
    """
    entries = _entries(x, what)
    if not entries:
        raise ValueError(f"{what} holds no arrays; pass at least one.")
    counts = [(d, int(np.shape(v)[0])) for d, v in entries]
    first = counts[0]
    for desc, k in counts[1:]:
        if k != first[1]:
            raise ValueError(
                f"{desc} holds {k} samples but {first[0]} holds {first[1]}; every array of the inputs must "
                "hold the same samples along axis 0 (the sample axis)."
            )
    return first[1]


def as_model_input(x: Any, what: str = "inputs", convert: bool = True) -> ModelInput:
    """``x`` as a model input: an array, a tuple of arrays or a dict of arrays.

    Args:
        x: an array, a tuple of arrays, or a mapping of arrays.
        what: the argument's name, used in messages.
        convert: make every entry a numpy array; ``False`` keeps array-likes
            (memory maps, Zarr arrays) to be sliced lazily.

    Raises:
        TypeError: an entry is not numeric; ValueError: the sample counts differ.

    Example:
        >>> x = as_model_input({"input_ids": [[1, 2], [3, 4]], "attention_mask": [[1, 1], [1, 0]]})
        >>> sorted(x), x["input_ids"].shape
        (['attention_mask', 'input_ids'], (2, 2))
    """
    one = (lambda v, d: _numeric(v, d)) if convert else (lambda v, d: v if _has_shape(v) else _numeric(v, d))
    if _is_mapping(x):
        out: ModelInput = {str(k): one(x[k], f"{what}[{k!r}]") for k in x.keys()}
    elif _is_positional(x):
        out = tuple(one(v, f"{what}[{i}]") for i, v in enumerate(x))
    else:
        out = one(x, what)
    n_samples_of(out, what)
    return out


def slice_samples(x: ModelInput, start: int, stop: int | None = None) -> ModelInput:
    """Samples ``start .. stop-1`` of a model input, as numpy arrays.

    Example:
        >>> slice_samples((np.arange(4), np.arange(8).reshape(4, 2)), 1, 3)[1].tolist()
        [[2, 3], [4, 5]]
    """
    if isinstance(x, dict):
        return {k: _numeric(v[start:stop], f"inputs[{k!r}]") for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_numeric(v[start:stop], f"inputs[{i}]") for i, v in enumerate(x))
    return _numeric(x[start:stop], "inputs")


def concat_samples(parts: list[ModelInput]) -> ModelInput:
    """Model inputs of the same kind joined along the sample axis.

    Example:
        >>> concat_samples([{"a": np.zeros((2, 3))}, {"a": np.ones((1, 3))}])["a"].shape
        (3, 3)
    """
    if len(parts) == 1:
        return parts[0]
    head = parts[0]
    if isinstance(head, dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in head}
    if isinstance(head, tuple):
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(head)))
    return np.concatenate(parts)


def _layout(x: ModelInput) -> Any:
    """What two model inputs must share to be joined: kind, keys, trailing shapes, dtypes."""
    return tuple((d, np.shape(v)[1:], np.asarray(v[:0]).dtype) for d, v in _entries(x, ""))


def _split_batch(batch: Any, index: int) -> tuple[Any, Any]:
    """``(x, y or None)`` of one batch from an iterable."""
    if isinstance(batch, (tuple, list)):
        if len(batch) not in (1, 2):
            raise ValueError(
                f"batch {index} of inputs is a {type(batch).__name__} of {len(batch)} entries; "
                "expected (x,) or (x, y), where x may be an array, a tuple of arrays or a mapping "
                "(yield ((a, b), y) for several positional inputs)."
            )
        return batch[0], batch[1] if len(batch) == 2 else None
    if _is_mapping(batch):
        return _split_mapping(batch)
    return batch, None


def _split_mapping(batch: Any) -> tuple[Any, Any]:
    """``(x, y or None)`` of a mapping: labels under a label key, the rest keyword arguments."""
    keys = list(batch.keys())
    y_key = next((k for k in _Y_KEYS if k in keys), None)
    y = batch[y_key] if y_key is not None else None
    x_key = next((k for k in _X_KEYS if k in keys), None)
    if x_key is not None:
        return batch[x_key], y
    return {k: batch[k] for k in keys if k not in _Y_KEYS}, y


def _known_length(inputs: Any) -> int | None:
    """Sample count of a DataLoader-like object, when it is known without a pass."""
    dataset = getattr(inputs, "dataset", None)
    if dataset is None or getattr(inputs, "drop_last", False) or not hasattr(dataset, "__len__"):
        return None
    if getattr(inputs, "batch_size", None) is None:  # a batch_sampler decides; count instead
        return None
    return len(dataset)


def _in_memory(inputs: Any) -> tuple[Any, Any] | None:
    """``(x, labels found)`` when ``inputs`` is one model input held whole, else None."""
    if isinstance(inputs, list) or _has_shape(inputs):
        return inputs, None
    if _is_positional(inputs):
        return inputs, None
    if _is_mapping(inputs):
        x, y = _split_mapping(inputs)
        return x, y
    return None


class InputSource(NamedTuple):
    """Inputs cut into aligned batches.

    Attributes:
        n: number of samples.
        labels: ``(sample,)`` int64 labels, or None.
        batch_size: samples per batch.
        data: the model input held whole, or the iterable of batches.
        is_array: whether ``data`` is one model input held whole.
        example: the first samples (at most 2), for a look at the layers.
    """

    n: int
    labels: np.ndarray | None
    batch_size: int
    data: Any
    is_array: bool
    example: ModelInput

    def batches(self, first: int = 0) -> Iterator[tuple[int, ModelInput]]:
        """``(start, x)`` for the batches holding samples ``first .. n-1``.

        Batches start at multiples of ``batch_size``; the first one is the
        batch that holds ``first``. Iterables are read from their start (the
        skipped batches do not run the model) and checked to hold ``n``
        samples; batches of an iterable are joined only where their arrays
        have the same trailing shapes.
        """
        bs, n = self.batch_size, self.n
        start = (first // bs) * bs
        if self.is_array:
            for s in range(start, n, bs):
                yield s, slice_samples(self.data, s, s + bs)
            return
        pending: list[ModelInput] = []
        held = seen = 0
        for x in _batch_inputs(self.data):
            k = n_samples_of(x)
            pos, seen = seen, seen + k
            if seen > n:
                raise ValueError(f"inputs yielded more than the expected {n} samples; pass n_samples={seen} or more.")
            if seen <= start:
                continue
            if pos < start:  # the batch that holds the first sample to export
                x, k = slice_samples(x, start - pos), k - (start - pos)
            if pending and _layout(pending[0]) != _layout(x):  # another padded length: never merged
                yield start, concat_samples(pending)
                start, pending, held = start + held, [], 0
            pending.append(x)
            held += k
            while held >= bs:
                whole = concat_samples(pending)
                yield start, slice_samples(whole, 0, bs)
                start += bs
                held -= bs
                pending = [slice_samples(whole, bs)] if held else []
        if seen < n:
            raise ValueError(
                f"inputs ended after {seen} samples but {n} were expected; the inputs changed since "
                "the export began, or n_samples is wrong."
            )
        if held:
            yield start, concat_samples(pending)


def _batch_inputs(batches: Iterable) -> Iterator[ModelInput]:
    """The model input ``x`` of each batch of an iterable, as numpy arrays."""
    for i, batch in enumerate(batches):
        yield as_model_input(_split_batch(batch, i)[0], f"batch {i} of inputs")


def iter_batches(inputs: Any, batch_size: int) -> Iterator[tuple[int, ModelInput]]:
    """``(start, x)`` over a model input in slices of ``batch_size``, or over an iterable's batches as they come.

    Example:
        >>> [(s, len(x)) for s, x in iter_batches(np.zeros((5, 2)), 2)]
        [(0, 2), (2, 2), (4, 1)]
        >>> [(s, x["ids"].shape) for s, x in iter_batches({"ids": np.zeros((3, 4)), "labels": [0, 1, 0]}, 2)]
        [(0, (2, 4)), (2, (1, 4))]
    """
    held = _in_memory(inputs)
    if held is not None:
        data = as_model_input(held[0], convert=False)
        for s in range(0, n_samples_of(data), batch_size):
            yield s, slice_samples(data, s, s + batch_size)
        return
    start = 0
    for x in _batch_inputs(inputs):
        yield start, x
        start += n_samples_of(x)


def example_of(inputs: Any, k: int = 2) -> ModelInput:
    """The first ``k`` samples of a model input, or of an iterable's first batch."""
    for _, x in iter_batches(inputs, k):
        return slice_samples(x, 0, k)
    raise ValueError("inputs holds no samples; pass at least one.")


def _scan(inputs: Iterable) -> tuple[int, np.ndarray | None]:
    """One pass over an iterable of batches: the sample count and the labels found."""
    n, ys, missing = 0, [], False
    for i, batch in enumerate(inputs):
        x, y = _split_batch(batch, i)
        k = n_samples_of(as_model_input(x, f"batch {i} of inputs", convert=False), f"batch {i} of inputs")
        n += k
        if y is None:
            missing = True
        else:
            y = np.asarray(_to_numpy(y))
            if y.ndim > 1:
                raise ValueError(
                    f"batch {i} of inputs is a pair (x, y) whose labels y have shape {y.shape}; labels are one "
                    "integer per sample. For several model inputs yield ((a, b), y), (a, b) inside a 1-tuple, "
                    "or a dict such as {'input_ids': ..., 'attention_mask': ..., 'labels': ...}."
                )
            if len(y) != k:
                raise ValueError(f"batch {i} of inputs holds {k} samples but {len(y)} labels; pass one label per sample.")
            ys.append(y)
    labels = None if missing or not ys else np.concatenate(ys)
    return n, labels


def _labels(labels: Any, found: Any, n: int) -> np.ndarray | None:
    if labels is not None:
        return as_labels(np.asarray(_to_numpy(labels)), n)
    if found is None:
        return None
    return as_labels(np.asarray(_to_numpy(found)).reshape(-1), n, "labels found in the inputs")


def as_source(
    inputs: Any,
    labels: Any = None,
    batch_size: int = 256,
    n_samples: int | None = None,
) -> InputSource:
    """Check ``inputs`` and ``labels`` and describe how to batch them.

    Args:
        inputs: a model input held whole (array, tuple or mapping of arrays)
            or an iterable of batches (module docstring).
        labels: ``(sample,)`` integer labels, or None (then labels found in
            the inputs are used).
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
        >>> src = as_source({"input_ids": np.zeros((3, 4), int), "labels": [0, 1, 1]}, batch_size=2)
        >>> src.labels.tolist(), [sorted(x) for _, x in src.batches()]
        ([0, 1, 1], [['input_ids'], ['input_ids']])
    """
    held = _in_memory(inputs)
    if held is not None:
        x, found = held
        if isinstance(x, list):
            x = _numeric(x, "inputs")
        data = as_model_input(x, convert=False)
        n = n_samples_of(data)
        if n_samples is not None and int(n_samples) != n:
            raise ValueError(f"n_samples={n_samples} but inputs holds {n} samples; leave n_samples out for arrays.")
        if n == 0:
            raise ValueError("inputs holds no samples; pass at least one.")
        return InputSource(n, _labels(labels, found, n), batch_size, data, True, slice_samples(data, 0, 2))
    if not isinstance(inputs, Iterable):
        raise TypeError(
            f"inputs must be an array (sample, ...), a tuple or mapping of such arrays, or an iterable of "
            f"batches; got {type(inputs).__name__}."
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
    example = slice_samples(as_model_input(_split_batch(head, 0)[0], "batch 0 of inputs"), 0, 2)
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
    return InputSource(n, _labels(labels, found, n), batch_size, inputs, False, example)
