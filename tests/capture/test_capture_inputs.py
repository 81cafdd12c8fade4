"""Input batching: arrays and iterables give the same aligned batches, from any start."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holejax.capture import as_source, iter_batches
from holejax.capture.inputs import example_of


class Reiterable:
    def __init__(self, X, sizes, y=None):
        self.X, self.sizes, self.y = X, sizes, y

    def __iter__(self):
        s = 0
        for k in self.sizes:
            yield (self.X[s : s + k],) if self.y is None else (self.X[s : s + k], self.y[s : s + k])
            s += k


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_iterables_are_cut_like_arrays(data):
    n = data.draw(st.integers(1, 60))
    sizes = []
    while sum(sizes) < n:
        sizes.append(data.draw(st.integers(1, n - sum(sizes))))
    bs = data.draw(st.integers(1, 20))
    first = data.draw(st.integers(0, n - 1))
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    a = list(as_source(X, batch_size=bs).batches(first))
    b = list(as_source(Reiterable(X, sizes), batch_size=bs).batches(first))
    assert [s for s, _ in a] == [s for s, _ in b]
    assert all(s % bs == 0 for s, _ in a) and a[0][0] <= first < a[0][0] + bs
    for (_, xa), (_, xb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
    assert np.concatenate([x for _, x in b])[-1, 0] == X[-1, 0]


def test_labels_found_in_batches():
    X, y = np.zeros((7, 2)), np.arange(7) % 2
    src = as_source(Reiterable(X, [3, 3, 1], y), batch_size=4)
    assert src.n == 7 and src.labels.tolist() == y.tolist()
    # some batches without labels -> no labels
    class Mixed:
        def __iter__(self):
            yield X[:3], y[:3]
            yield (X[3:],)

    assert as_source(Mixed(), batch_size=4).labels is None


def test_example_and_iter_batches():
    X = np.arange(10.0).reshape(5, 2)
    assert example_of(X).shape == (2, 2)
    assert example_of(Reiterable(X, [1, 4])).shape == (1, 2)
    assert [(s, len(x)) for s, x in iter_batches(Reiterable(X, [2, 3]), 100)] == [(0, 2), (2, 3)]


def test_dataloader_without_shuffle_and_refusal_of_shuffling():
    torch = pytest.importorskip("torch")
    X = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    y = torch.arange(10) % 2
    ds = torch.utils.data.TensorDataset(X, y)
    src = as_source(torch.utils.data.DataLoader(ds, batch_size=3), batch_size=4)
    assert src.n == 10 and src.labels.tolist() == y.tolist()
    np.testing.assert_array_equal(np.concatenate([x for _, x in src.batches()]), X.numpy())
    with pytest.raises(ValueError, match="DataLoader that shuffles"):
        as_source(torch.utils.data.DataLoader(ds, batch_size=3, shuffle=True))


@pytest.mark.parametrize(
    ("inputs", "kw", "error", "match"),
    [
        (iter([]), {}, ValueError, "empty iterator"),
        (Reiterable(np.zeros((0, 2)), []), {}, ValueError, "yields no batches"),
        (Reiterable(np.zeros((4, 2)), [4]), {"n_samples": 5}, ValueError, "n_samples=5 but inputs yielded 4"),
        (np.zeros((4, 2)), {"n_samples": 5}, ValueError, "n_samples=5 but inputs holds 4"),
        (Reiterable(np.zeros((4, 2)), [4]), {"labels": [0, 1]}, ValueError, "labels has 2 entries"),
        (np.zeros((4, 2)), {"labels": [0.5] * 4}, TypeError, "labels must hold integer class ids"),
        ([(np.zeros((2, 2)), 1, 2)], {}, TypeError, "numeric array"),
        (iter([(np.zeros((2, 2)), 1, 2)]), {"n_samples": 2}, ValueError, "expected \\(x,\\) or \\(x, y\\)"),
        (iter([{"img": np.zeros((2, 2)), "text": ["a", "b"]}]), {"n_samples": 2}, TypeError,
         r"batch 0 of inputs\['text'\] must be a numeric array"),
        ({"ids": np.zeros((3, 2)), "mask": np.zeros((4, 2))}, {}, ValueError,
         r"inputs\['mask'\] holds 4 samples but inputs\['ids'\] holds 3"),
        ((np.zeros((3, 2)), np.zeros((2, 2))), {}, ValueError, r"inputs\[1\] holds 2 samples but inputs\[0\] holds 3"),
        ({"ids": np.zeros((3, 2)), "labels": [0, 1]}, {}, ValueError, "labels found in the inputs has 2 entries"),
        ({"ids": np.zeros((3, 2))}, {"labels": [0, 1]}, ValueError, "labels has 2 entries"),
        (Reiterable(np.zeros((4, 2)), [4], np.zeros((4, 2))), {}, ValueError, r"yield \(\(a, b\), y\)"),
        (object(), {}, TypeError, "inputs must be an array"),
    ],
)
def test_bad_inputs(inputs, kw, error, match):
    with pytest.raises(error, match=match):
        as_source(inputs, **kw)


def test_iterable_that_yields_more_than_expected():
    src = as_source(Reiterable(np.zeros((6, 2)), [3, 3]), batch_size=2, n_samples=6)
    src = src._replace(n=4)
    with pytest.raises(ValueError, match="more than the expected 4 samples"):
        list(src.batches())


class KeysOnly:
    """A mapping-like object that is not a Mapping (as some tokenizer outputs are): keys() and []."""

    def __init__(self, **arrays):
        self.arrays = arrays

    def keys(self):
        return self.arrays.keys()

    def __getitem__(self, key):
        return self.arrays[key]


def test_mappings_and_tuples_are_sliced_along_the_sample_axis():
    ids, mask = np.arange(10).reshape(5, 2), np.ones((5, 2), np.int64)
    for inputs in ({"ids": ids, "mask": mask, "labels": [0, 1, 0, 1, 1]}, KeysOnly(ids=ids, mask=mask, labels=[0, 1, 0, 1, 1])):
        src = as_source(inputs, batch_size=2)
        assert src.n == 5 and src.labels.tolist() == [0, 1, 0, 1, 1]
        got = list(src.batches())
        assert [s for s, _ in got] == [0, 2, 4] and sorted(got[0][1]) == ["ids", "mask"]
        np.testing.assert_array_equal(np.concatenate([x["ids"] for _, x in got]), ids)
    got = list(as_source((ids, mask), batch_size=3).batches())
    assert [type(x).__name__ for _, x in got] == ["tuple", "tuple"] and got[1][1][0].tolist() == ids[3:].tolist()
    assert isinstance(example_of({"ids": ids}), dict) and example_of((ids, mask))[0].shape == (2, 2)
    assert as_source([[1.0, 2.0], [3.0, 4.0]]).n == 2  # a list is an array of samples, as before


def test_batches_of_different_trailing_shapes_are_never_joined():
    """Token sequences padded per batch: a shorter batch wherever the length changes."""
    lengths = [3, 3, 5, 5, 4]
    sizes = [2, 3, 1, 4, 2]

    class Loader:
        def __iter__(self):
            s = 0
            for k, t in zip(sizes, lengths):
                yield {"ids": np.full((k, t), s) + np.arange(k)[:, None], "label": np.arange(s, s + k)}
                s += k

    src = as_source(Loader(), batch_size=4)
    assert src.n == 12 and src.labels.tolist() == list(range(12))
    got = [(s, x["ids"].shape) for s, x in src.batches()]
    # 2+3 samples of length 3 -> 4 + 1; then 1+4 of length 5 -> 4 + 1; then 2 of length 4
    assert got == [(0, (4, 3)), (4, (1, 3)), (5, (4, 5)), (9, (1, 5)), (10, (2, 4))]
    first_ids = [int(x["ids"][0, 0]) for _, x in src.batches()]
    assert first_ids == [0, 4, 5, 9, 10]
    resumed = [(s, x["ids"].shape) for s, x in src.batches(first=6)]
    assert resumed[0][0] <= 6 and resumed[-1] == (10, (2, 4))


def test_iterables_of_positional_inputs_and_labels():
    a, b = np.zeros((6, 2)), np.ones((6, 3))
    class Batches:
        def __iter__(self):
            yield from (((a[s : s + 3], b[s : s + 3]), np.arange(s, s + 3)) for s in (0, 3))

    src = as_source(Batches(), batch_size=4)
    assert src.labels.tolist() == list(range(6))
    got = list(src.batches())
    assert [x[1].shape for _, x in got] == [(4, 3), (2, 3)]
