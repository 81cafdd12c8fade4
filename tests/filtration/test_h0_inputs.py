"""Bad distance matrices are rejected before tracing, with messages that say what to do."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from h0_helpers import cloud, dist32

import holejax as hj
from holejax.filtration import h0


@pytest.fixture(name="D")
def fixture_D():
    return dist32(cloud(0, 6))


def test_shape_errors(D):
    with pytest.raises(ValueError, match=r"D must have shape \(..., sample, sample\); got shape \(6,\)"):
        h0(D[0])
    with pytest.raises(ValueError, match=r"D must be square.*got shape \(6, 5\).*h0_from_points"):
        h0(D[:, :5])
    with pytest.raises(ValueError, match="at least 1 sample"):
        h0(np.zeros((0, 0), np.float32))
    with pytest.raises(TypeError, match="D must hold real numbers; got dtype complex64"):
        h0(D.astype(np.complex64))


def test_value_errors(D):
    bad = D.copy()
    bad[2, 4] = bad[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"D holds NaN at entry \(2, 4\)"):
        h0(bad)
    bad = D.copy()
    bad[1, 3] = bad[3, 1] = -0.5
    with pytest.raises(ValueError, match=r"D must be non-negative; got -0.5 at entry \(1, 3\)"):
        h0(bad)
    bad = D.copy()
    bad[0, 5] += 1.0
    with pytest.raises(ValueError, match=r"D must be symmetric.*at entry \(0, 5\).*\(D \+ D.T\) / 2"):
        h0(bad)
    bad = D.copy()
    bad[0, 5] = np.inf
    with pytest.raises(ValueError, match="D must be symmetric"):
        h0(bad)
    bad = D + np.eye(6, dtype=np.float32)
    with pytest.raises(ValueError, match="D must have a zero diagonal"):
        h0(bad)
    batch = np.stack([D, D])
    batch[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"D holds NaN at matrix 1, entry \(2, 3\)"):
        h0(batch)
    # the batched data checks come from the same compiled call as the trees
    batch = np.stack([D, D, D])
    batch[2, 1, 3] = batch[2, 3, 1] = -0.5
    with pytest.raises(ValueError, match=r"D must be non-negative; got -0.5 at matrix 2, entry \(1, 3\)"):
        h0(batch)
    batch = np.stack([D, D, D])
    batch[1, 0, 5] += 1.0
    with pytest.raises(ValueError, match=r"D must be symmetric.*at matrix 1, entry \(0, 5\)"):
        h0(batch)
    batch = np.stack([D, D + np.eye(6, dtype=np.float32), D])
    with pytest.raises(ValueError, match="D must have a zero diagonal"):
        h0(batch)


def test_method_errors(D):
    with pytest.raises(ValueError, match="method='prims' is not supported.*Did you mean 'prim'"):
        h0(D, method="prims")


def test_accepted_inputs(D):
    """Lists, ints, float64 and jax arrays; tiny asymmetry from float noise is tolerated."""
    ref = h0(D).deaths
    np.testing.assert_array_equal(h0(D.tolist()).deaths, ref)
    np.testing.assert_array_equal(h0(jnp.asarray(D)).deaths, ref)
    np.testing.assert_allclose(h0(D.astype(np.float64)).deaths, ref)
    noisy = D.copy()
    noisy[0, 1] *= 1 + 1e-7
    np.testing.assert_allclose(h0(noisy).deaths, ref, rtol=1e-6)
    ints = np.array([[0, 2, 1], [2, 0, 3], [1, 3, 0]])
    assert h0(ints).deaths.tolist() == [1.0, 2.0]
    # check=False skips validation (for matrices known to be valid)
    np.testing.assert_array_equal(h0(D, check=False).deaths, ref)


@pytest.mark.parametrize("engine", ["auto", "tiled"])
@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((20, 0), r"X has no features \(shape \(20, 0\)\)"),
        ((2, 20, 0), r"X\[0\] has no features"),
        ((0, 3), "X must hold at least 2 samples; got 0"),
        ((2, 0, 3), r"X\[0\] must hold at least 2 samples; got 0"),
        ((0, 20, 3), r"X holds no clouds \(shape \(0, 20, 3\)\)"),
    ],
)
def test_empty_clouds_from_points_are_named(shape, match, engine):
    with pytest.raises(ValueError, match=match):
        hj.h0_from_points(np.zeros(shape, np.float32), engine=engine)


def test_an_empty_batch_of_matrices_is_named():
    with pytest.raises(ValueError, match=r"D holds no matrices \(shape \(0, 3, 3\)\)"):
        h0(np.zeros((0, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"D holds no matrices \(shape \(2, 0, 3, 3\)\)"):
        h0(np.zeros((2, 0, 3, 3), np.float32))
