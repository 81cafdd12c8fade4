"""Input noise: distributions, keys, batching independence, clipping, dtypes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import holejax as hj
from holejax.perturb import noise as noise_mod

KEY = jax.random.key(0)
SHAPE = (12, 8)  # one shape for most tests: each new shape compiles the kernels again
NOISES = [
    hj.gaussian(0.2),
    hj.uniform(0.3),
    hj.salt_and_pepper(0.1),
    hj.poisson(20.0),
    hj.speckle(0.2),
]


def test_gaussian_noise_is_normal_with_sigma():
    x = np.full((50, 40), 0.5, np.float32)
    n = (hj.gaussian(sigma=0.3).apply(x, KEY) - x).ravel()
    assert stats.kstest(n / 0.3, "norm").pvalue > 1e-3
    assert abs(n.std() - 0.3) < 0.02


def test_uniform_noise_is_uniform_on_minus_a_a():
    x = np.zeros((50, 40), np.float32)
    n = hj.uniform(a=0.4).apply(x, KEY).ravel()
    assert n.min() >= -0.4 and n.max() <= 0.4
    assert stats.kstest(n, stats.uniform(loc=-0.4, scale=0.8).cdf).pvalue > 1e-3


def test_salt_and_pepper_fraction_and_values():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, size=(40, 50)).astype(np.float32)
    y = hj.salt_and_pepper(p=0.2, clip=(0.0, 1.0)).apply(x, KEY)
    changed = y != x
    assert abs(changed.mean() - 0.2) < 0.02
    assert set(np.unique(y[changed]).tolist()) <= {0.0, 1.0}
    assert abs((y == 1.0).mean() - (y == 0.0).mean()) < 0.02


def test_salt_and_pepper_defaults_to_each_samples_range():
    x = np.stack([np.linspace(-2, 3, 100), np.linspace(5, 6, 100)]).astype(np.float32)
    y = hj.salt_and_pepper(p=0.5).apply(x, KEY)
    for i in range(2):
        changed = y[i] != x[i]
        assert set(np.unique(y[i][changed]).tolist()) <= {float(x[i].min()), float(x[i].max())}


def test_poisson_mean_and_variance_follow_the_signal():
    x = np.full(SHAPE, 0.5, np.float32)
    lam = 40.0
    p = hj.poisson(lam=lam)
    y = np.stack([p.apply(x, jax.random.key(k)) for k in range(30)])  # one shape: compiled once
    # counts ~ Poisson(lam * x): mean x, variance x / lam
    assert abs(y.mean() - 0.5) < 0.01
    assert abs(y.var() - 0.5 / lam) / (0.5 / lam) < 0.15
    counts = np.round(y * lam).astype(int).ravel()
    assert np.allclose(counts / lam, y.ravel(), atol=1e-5)
    assert stats.chisquare(np.bincount(counts, minlength=50)[10:31], stats.poisson(20).pmf(np.arange(10, 31)) * counts.size, sum_check=False).pvalue > 1e-4


def test_poisson_shifts_negative_signals():
    x = np.full((12, 8), -1.0, np.float32)
    x[:, 0] = 1.0  # per-sample minimum is -1: rates lam * (x + 1) are >= 0
    y = hj.poisson(lam=50.0).apply(x, KEY)
    assert np.all(y[:, 1:] == -1.0)  # zero rate -> no events
    assert abs(y[:, 0].mean() - 1.0) < 0.25  # 12 draws, std 0.2 each


def test_speckle_is_multiplicative():
    x = np.zeros((4, 10), np.float32)
    assert np.array_equal(hj.speckle(0.5).apply(x, KEY), x)
    x = np.full((100, 100), 2.0, np.float32)
    n = hj.speckle(0.1).apply(x, KEY) - x
    assert abs(n.std() - 0.2) < 0.01


@pytest.mark.parametrize("p", NOISES, ids=lambda p: p.method)
def test_same_key_same_noise_other_key_other_noise(p):
    x = np.random.default_rng(1).uniform(0.1, 0.9, SHAPE).astype(np.float32)
    a, b = p.apply(x, KEY), p.apply(x, KEY)
    c = p.apply(x, jax.random.key(1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("p", NOISES, ids=lambda p: p.method)
def test_apply_at_does_not_depend_on_batching(p):
    x = np.random.default_rng(2).uniform(0.1, 0.9, SHAPE).astype(np.float32)
    whole = p.apply_at(x, seed=7)
    parts = np.concatenate([p.apply_at(x[s : s + 4], seed=7, start=s) for s in range(0, 12, 4)])
    assert np.array_equal(whole, parts)
    assert not np.array_equal(whole, p.apply_at(x, seed=8))


def test_different_perturbations_draw_different_noise_from_one_seed():
    x = np.zeros((3, 20), np.float32)
    a = hj.gaussian(0.1).apply_at(x, seed=0)
    b = hj.gaussian(0.2).apply_at(x, seed=0)
    assert not np.allclose(2 * a, b)


def test_legacy_prng_key_is_accepted():
    x = np.zeros((2, 5), np.float32)
    a = hj.gaussian(1.0).apply(x, jax.random.PRNGKey(3))
    b = hj.gaussian(1.0).apply(x, jax.random.wrap_key_data(jax.random.PRNGKey(3)))
    assert np.array_equal(a, b)


def test_clean_returns_input_unchanged():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert hj.clean().apply(x, KEY) is x


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int32])
def test_dtype_shape_and_array_kind_are_kept(dtype):
    x = (np.random.default_rng(0).uniform(0, 200, (3, 4, 5))).astype(dtype)
    y = hj.gaussian(5.0).apply(x, KEY)
    assert isinstance(y, np.ndarray) and y.dtype == dtype and y.shape == x.shape
    assert y.flags.writeable  # torch.from_numpy warns on read-only arrays
    yj = hj.gaussian(5.0).apply(jnp.asarray(x), KEY)
    assert isinstance(yj, jax.Array) and yj.shape == x.shape


def test_uint8_noise_is_rounded_and_saturated():
    x = np.array([[0, 128, 255]], np.uint8)
    y = hj.gaussian(1000.0).apply(x, KEY)
    assert y.dtype == np.uint8 and set(np.unique(y).tolist()) <= {0, 255}


def test_single_sample_kernel_agrees_under_jit_and_vmap():
    x = jnp.asarray(np.random.default_rng(0).uniform(size=SHAPE), jnp.float32)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(KEY, jnp.arange(SHAPE[0], dtype=jnp.uint32))
    for p in NOISES:
        jitted = jax.jit(lambda a, k, p=p: noise_mod._noisy_sample(a, k, p.method, p.args))
        loop = jnp.stack([jitted(x[i], keys[i]) for i in range(SHAPE[0])])
        vm = jax.jit(jax.vmap(jitted))(x, keys)
        np.testing.assert_allclose(np.asarray(vm), np.asarray(loop), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(p.apply(x, KEY)), np.asarray(loop), rtol=1e-6, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    method=st.sampled_from(["gaussian", "uniform", "salt_and_pepper", "poisson", "speckle"]),
    severity=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_clipped_noise_stays_in_range(method, severity, seed):
    if method == "poisson":
        severity += 0.5
    if method == "salt_and_pepper":
        severity = min(severity, 1.0)
    p = hj.perturb.sweep(method, [severity], clip=(-0.5, 0.5))[0]
    x = np.random.default_rng(seed).uniform(-1, 1, SHAPE).astype(np.float32)
    y = p.apply_at(x, seed=seed)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= -0.5 and y.max() <= 0.5


@settings(max_examples=20, deadline=None)
@given(method=st.sampled_from(["gaussian", "uniform", "salt_and_pepper", "speckle"]), seed=st.integers(0, 1000))
def test_zero_severity_is_the_identity(method, seed):
    p = hj.perturb.sweep(method, [0.0])[0]
    x = np.random.default_rng(seed).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(p.apply_at(x, seed=seed), x)


# -- bad input -------------------------------------------------------------------
def test_compression_cannot_be_applied_to_inputs():
    with pytest.raises(TypeError, match="apply_compression"):
        hj.global_l1_prune().apply(np.zeros((2, 2)), KEY)


def test_apply_needs_a_key_or_seed():
    with pytest.raises(ValueError, match="key=jax.random.key"):
        noise_mod.apply_noise(hj.gaussian(), np.zeros((2, 2)))


def test_bad_key_is_rejected():
    with pytest.raises(TypeError, match="key must be a jax.random.key"):
        hj.gaussian().apply(np.zeros((2, 2)), 0)


def test_empty_batch_is_rejected():
    with pytest.raises(ValueError, match="at least one sample"):
        hj.gaussian().apply(np.zeros((0, 3)), KEY)


def test_non_numeric_input_is_rejected():
    with pytest.raises(TypeError, match="numeric"):
        hj.gaussian().apply(np.array([["a"]]), KEY)


def test_negative_start_is_rejected():
    with pytest.raises(ValueError, match="start"):
        hj.gaussian().apply_at(np.zeros((2, 2)), seed=0, start=-1)
