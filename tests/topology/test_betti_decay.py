"""Betti decay: Betti numbers against connected components and Euler characteristics, Omega, theta."""

from __future__ import annotations

import gudhi
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from holejax.topology import (
    BettiDecay,
    betti_curves,
    betti_decay,
    betti_numbers,
    cubical_diagrams,
    decay_rate,
)


def closed_union_euler(mask: np.ndarray) -> int:
    """Euler characteristic of the union of the closed pixels/voxels of ``mask``.

    Cells of the cubical grid live at integer positions of the doubled grid
    (top cells at odd coordinates); a cell belongs to the union when some top
    cell within one step along every axis is on. Its dimension is the number
    of odd coordinates.
    """
    doubled = np.zeros(tuple(2 * s + 1 for s in mask.shape), bool)
    doubled[tuple(slice(1, None, 2) for _ in mask.shape)] = mask
    present = ndimage.maximum_filter(doubled, size=3, mode="constant")
    idx = np.indices(present.shape)
    dim = sum(i % 2 for i in idx)
    return int(np.sum(np.where(present, (-1) ** dim, 0)))


def components(mask: np.ndarray) -> int:
    """Connected components of the closed union: pixels touching at a corner are joined."""
    return int(ndimage.label(mask, structure=np.ones((3,) * mask.ndim))[1])


def normalised(x):
    return (x - x.min()) / (x.max() - x.min())


@pytest.mark.parametrize("shape", [(9, 11), (3, 6, 7)], ids=["2d", "3d"])
@pytest.mark.parametrize("superlevel", [True, False])
def test_betti_numbers_match_components_and_euler_characteristic(shape, superlevel):
    rng = np.random.default_rng(0)
    maps = ndimage.gaussian_filter(rng.random((6,) + shape), sigma=(0,) + (0.8,) * len(shape))
    thresholds = np.linspace(0.1, 0.9, 9)
    curves = betti_curves(maps, thresholds, superlevel=superlevel)
    assert curves.shape == (6, len(shape), 9)
    for i, fmap in enumerate(maps):
        x = normalised(fmap)
        for j, t in enumerate(thresholds):
            mask = x >= t if superlevel else x <= t
            assert curves[i, 0, j] == components(mask)
            chi = sum((-1) ** k * curves[i, k, j] for k in range(len(shape)))
            assert chi == closed_union_euler(mask)


def test_betti_numbers_match_gudhi_persistent_betti_numbers():
    rng = np.random.default_rng(1)
    fmap = rng.random((5, 8, 8))
    thresholds = [0.2, 0.5, 0.8]
    ours = betti_curves(fmap[None], thresholds)[0]
    cc = gudhi.CubicalComplex(top_dimensional_cells=-normalised(fmap))
    cc.compute_persistence(homology_coeff_field=2)
    for j, t in enumerate(thresholds):
        ref = cc.persistent_betti_numbers(-t, -t)[:3]
        assert ours[:, j].tolist() == list(ref)


def test_cubical_diagrams_of_a_ring_has_one_loop():
    img = np.zeros((7, 7))
    img[1:6, 1:6] = 1.0
    img[2:5, 2:5] = 0.0  # a bright square frame around a dark centre
    h0, h1 = cubical_diagrams(img)
    assert np.isinf(h0[:, 1]).sum() == 1
    assert len(h1) == 1 and h1[0].tolist() == [1.0, 0.0]  # the loop lives while t in (0, 1]
    assert np.asarray(betti_numbers(h1, [0.5, 1.0])).tolist() == [1, 1]


def test_channel_order_does_not_change_betti_numbers():
    rng = np.random.default_rng(3)
    chw = rng.random((3, 2, 6, 5))
    hwc = np.moveaxis(chw, 1, -1)
    np.testing.assert_array_equal(betti_curves(chw, [0.3, 0.6]), betti_curves(hwc, [0.3, 0.6]))


def test_betti_numbers_under_jit_and_vmap():
    dgms = np.array(
        [[[1.0, -np.inf], [0.8, 0.2]], [[0.9, 0.1], [np.nan, np.nan]]]  # second padded with NaN
    )
    thresholds = jnp.array([0.15, 0.5, 0.85])
    batched = jax.jit(jax.vmap(lambda d: betti_numbers(d, thresholds)))(jnp.asarray(dgms))
    assert np.asarray(batched).tolist() == [[1, 2, 1], [1, 1, 1]]


def test_decay_rate_fits_polynomials():
    fit = decay_rate([10.0, 7.0, 4.0, 1.0])
    assert fit.theta == pytest.approx(-3.0) and fit.depth.tolist() == [0.0, 1.0, 2.0, 3.0]  # per layer
    omega = np.array([5.0, 2.0, 1.0, 2.0, 5.0])
    quad = decay_rate(omega, degree=2)
    np.testing.assert_allclose(quad.fitted, omega, atol=1e-9)  # exact parabola
    assert quad.theta == pytest.approx(0.0, abs=1e-9)
    spaced = decay_rate([3.0, 2.0, 0.0], depth=[0, 1, 3])
    slope, intercept = np.polyfit([0, 1, 3], [3.0, 2.0, 0.0], 1)
    np.testing.assert_allclose(spaced.coefficients, [slope, intercept])
    assert spaced.theta == pytest.approx(slope)
    # a cubic: theta is the mean slope between the first and last layer
    cubic = decay_rate([0.0, 1.0, 8.0, 27.0], degree=3)
    assert cubic.theta == pytest.approx(9.0)


def test_betti_decay_on_feature_maps_and_store(tmp_path):
    from holejax.store import ActivationWriter, LayerSpec

    rng = np.random.default_rng(2)
    noisy = rng.random((4, 2, 8, 8))
    smooth = ndimage.gaussian_filter(noisy, sigma=(0, 0, 2, 2))
    flat = np.ones((4, 3, 4, 4)) + np.linspace(0, 1, 16).reshape(4, 4)  # a single ramp per channel
    maps = {"conv1": noisy, "conv2": smooth, "pool": flat}
    res = betti_decay(maps)
    assert isinstance(res, BettiDecay) and res.curves.shape == (3, 3, 19)
    assert res.omega[0] > res.omega[1] > res.omega[2] and res.theta < 0
    expected = betti_curves(noisy, res.thresholds).mean(axis=0).sum(axis=0).mean()
    assert res.omega[0] == pytest.approx(expected)
    ds = res.to_xarray()
    assert ds["betti"].dims == ("layer", "dim", "threshold") and ds.attrs["theta"] == res.theta
    # per voxel: conv2 and pool hold 128 and 48 values per sample
    assert res.voxels.tolist() == [128, 128, 48]
    np.testing.assert_allclose(res.omega_per_voxel, res.omega / [128, 128, 48])
    assert res.theta == pytest.approx(np.polyfit([0, 1, 2], res.omega, 1)[0])
    per_voxel = betti_decay(maps, omega="per_voxel")
    assert per_voxel.theta == pytest.approx(np.polyfit([0, 1, 2], res.omega_per_voxel, 1)[0])
    np.testing.assert_allclose(per_voxel.omega, res.omega)

    specs = [LayerSpec(name=n, shape=m.shape[1:], pooling="flatten", units=int(np.prod(m.shape[1:]))) for n, m in maps.items()]
    writer = ActivationWriter.create(tmp_path / "acts.zarr", layers=specs, n_samples=4, perturbations=[("clean", {})])
    writer.write_batch("clean", 0, {n: m.reshape(4, -1).astype(np.float32) for n, m in maps.items()})
    store = writer.finish()
    from_store = betti_decay(store, layers=list(maps))
    np.testing.assert_allclose(from_store.omega, res.omega, rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: cubical_diagrams(np.array([[0.0, np.nan]])), ValueError, "NaN or Inf"),
        (lambda: cubical_diagrams(np.zeros((0, 3))), ValueError, "non-empty"),
        (lambda: cubical_diagrams(np.array([["a"]])), TypeError, "numeric"),
        (lambda: betti_curves(np.zeros(4), [0.5]), ValueError, r"\(sample, \.\.\.\)"),
        (lambda: betti_curves(np.zeros((2, 3, 3)), [[0.5]]), ValueError, "thresholds must be a non-empty 1-D"),
        (lambda: betti_curves(np.zeros((2, 3, 3)), [np.nan]), ValueError, "finite"),
        (lambda: betti_numbers(np.zeros((2, 3)), [0.5]), ValueError, r"shape \(k, 2\)"),
        (lambda: decay_rate([1.0]), ValueError, "at least 2 layers"),
        (lambda: decay_rate([1.0, 2.0], degree=2), ValueError, r"degree must be an integer in \[1, 1\]"),
        (lambda: decay_rate([1.0, 2.0], depth=[0, 1, 2]), ValueError, "depth must have the shape"),
        (lambda: decay_rate([1.0, 2.0], depth=[1, 1]), ValueError, "last layer at another position"),
        (lambda: betti_decay({"a": np.ones((2, 3, 3)), "b": np.ones((2, 3, 3))}, omega="per_pixel"), ValueError, "omega="),
        (lambda: betti_decay({"a": np.zeros((2, 3, 3))}), ValueError, "at least 2 layers"),
        (lambda: betti_decay({"a": np.zeros((2, 3, 3))}, layers=["a", "b"]), KeyError, r"\['b'\] are not in"),
        (lambda: betti_decay({"a": np.zeros((2, 1, 1, 2, 2)), "b": np.zeros((2, 3))}), ValueError, "at most 3"),
        (lambda: betti_decay([np.zeros((2, 3))]), TypeError, "mapping"),
    ],
)
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_pooled_store_layers_are_refused(tmp_path):
    from holejax.store import ActivationWriter, LayerSpec

    specs = [
        LayerSpec(name="conv", shape=(2, 4, 4), pooling="global_avg", units=2),
        LayerSpec(name="fc", shape=(3,), pooling="flatten", units=3),
    ]
    writer = ActivationWriter.create(tmp_path / "a.zarr", layers=specs, n_samples=2, perturbations=[("clean", {})])
    writer.write_batch("clean", 0, {"conv": np.ones((2, 2), np.float32), "fc": np.ones((2, 3), np.float32)})
    with pytest.raises(ValueError, match="pooling 'global_avg'.*pooling='flatten'"):
        betti_decay(writer.finish(), layers=["conv", "fc"])
