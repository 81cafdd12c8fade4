"""Pooling modes against direct numpy, layout agreement, and their checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from holejax.capture import LayerInfo, pool, pooled_shape, resolve_pooling

feature_maps = arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4)),
    elements=st.floats(-10, 10, width=32),
)


@settings(max_examples=30, deadline=None)
@given(feature_maps)
def test_global_avg_agrees_across_layouts(x):
    nchw = pool(x, "global_avg", "channels_first")
    nhwc = pool(x.transpose(0, 2, 3, 1), "global_avg", "channels_last")
    np.testing.assert_allclose(nchw, x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(nhwc, nchw, rtol=1e-5, atol=1e-5)
    assert nchw.shape[1:] == pooled_shape(x.shape[1:], "global_avg")


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5)),
              elements=st.floats(-10, 10, width=32)))
def test_token_poolings_and_flatten(x):
    np.testing.assert_array_equal(pool(x, "cls"), x[:, 0])
    np.testing.assert_allclose(pool(x, "mean_tokens"), x.mean(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(pool(x, "flatten"), x.reshape(len(x), -1))
    for mode in ("cls", "mean_tokens", "flatten"):
        assert pool(x, mode).shape[1:] == pooled_shape(x.shape[1:], mode)


def test_global_avg_of_1d_feature_maps_and_none():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)  # (sample, channel, length)
    np.testing.assert_allclose(pool(x, "global_avg"), x.mean(axis=2))
    v = np.ones((2, 5), np.float32)
    np.testing.assert_array_equal(pool(v, "none"), v)


@pytest.mark.parametrize(
    ("shape", "mode", "match"),
    [
        ((5,), "global_avg", "has per-sample shape \\(5,\\) with none"),
        ((4, 3, 3), "cls", "expects a per-sample \\(token, feature\\)"),
        ((4, 3, 3), "mean_tokens", "expects a per-sample \\(token, feature\\)"),
        ((4, 3), "none", "keeps the output as it is"),
        ((4,), "median", "pooling='median' is not supported"),
        ((4,), "max", "expects a per-sample \\(token, feature\\)"),
    ],
)
def test_pooling_that_does_not_fit_the_shape(shape, mode, match):
    with pytest.raises(ValueError, match=match):
        pooled_shape(shape, mode, name="x")


ROWS = [
    LayerInfo("conv", "Conv2d", (4, 3, 3), "float32"),
    LayerInfo("block.tokens", "Encoder", (6, 8), "float32"),
    LayerInfo("fc", "Linear", (5,), "float32"),
]


def test_resolve_pooling():
    assert resolve_pooling("auto", ROWS) == {"conv": "global_avg", "block.tokens": "flatten", "fc": "flatten"}
    assert resolve_pooling({"block.*": "cls", "*": "auto"}, ROWS) == {
        "conv": "global_avg", "block.tokens": "cls", "fc": "flatten",
    }
    with pytest.raises(ValueError, match=r"pooling keys \['nothing'\] match none"):
        resolve_pooling({"nothing": "flatten"}, ROWS)
    with pytest.raises(ValueError, match="layer 'fc' has per-sample shape"):
        resolve_pooling("global_avg", ROWS)
    with pytest.raises(TypeError, match="pooling must be a pooling name or a mapping"):
        resolve_pooling(3, ROWS)
    with pytest.raises(TypeError, match=r"pooling\['fc'\] must be a pooling name"):
        resolve_pooling({"fc": 1}, ROWS)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_masked_token_poolings_against_loops(data):
    n, t, u = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6)), data.draw(st.integers(1, 3))
    x = data.draw(arrays(np.float32, (n, t, u), elements=st.floats(-10, 10, width=32)))
    mask = data.draw(arrays(np.int64, (n, t), elements=st.integers(0, 1)))
    mask[:, data.draw(st.integers(0, t - 1))] = 1  # every sample has a real token, anywhere (left or right padding)
    want = {"mean": [], "cls": [], "last": [], "max": []}
    for i in range(n):
        real = [k for k in range(t) if mask[i, k]]
        want["mean"].append(np.mean([x[i, k] for k in real], axis=0))
        want["cls"].append(x[i, real[0]])
        want["last"].append(x[i, real[-1]])
        want["max"].append(np.max([x[i, k] for k in real], axis=0))
    for mode, rows in want.items():
        np.testing.assert_allclose(pool(x, mode, mask=mask), np.stack(rows), rtol=1e-5, atol=1e-4, err_msg=mode)
    np.testing.assert_array_equal(pool(x, "first", mask=mask), pool(x, "cls", mask=mask))
    np.testing.assert_array_equal(pool(x, "mean_tokens", mask=mask), pool(x, "mean", mask=mask))
    rows = [x[i, k] for i in range(n) for k in range(t) if mask[i, k]]
    np.testing.assert_array_equal(pool(x, "tokens", mask=mask), np.stack(rows))
    np.testing.assert_array_equal(pool(x, "last"), x[:, -1])  # no mask: every token is real


def test_masked_pooling_errors():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="sample 1 of the batch has no real token"):
        pool(x, "mean", mask=[[1, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"the mask has shape \(2, 2\) but the layer output has \(2, 3\)"):
        pool(x, "last", mask=[[1, 0], [1, 1]])


def test_default_pooling_of_token_outputs_and_preset_stages():
    rows = [LayerInfo("h.0", "Block", (6, 8), "float32"), LayerInfo("stage", "Stage", (4, 3, 3), "float32"),
            LayerInfo("conv", "Conv2d", (4, 3, 3), "float32"), LayerInfo("seq", "Conv1d", (6, 8), "float32")]
    assert resolve_pooling(None, rows, tokens={"h.0"}, stages={"h.0", "stage"}) == {
        "h.0": "mean", "stage": "global_avg", "conv": "flatten", "seq": "flatten",
    }
    assert resolve_pooling({"h.*": "last"}, rows, tokens={"h.0"}, stages={"stage"}) == {
        "h.0": "last", "stage": "global_avg", "conv": "flatten", "seq": "flatten",
    }
    with pytest.raises(ValueError, match=r"every layer of the export must use it; layers \['seq'\] pool otherwise"):
        resolve_pooling({"h.0": "tokens", "seq": "mean"}, rows[:1] + rows[3:])
