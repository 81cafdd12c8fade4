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
