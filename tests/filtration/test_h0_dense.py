"""h0 on dense matrices (with and without batch axes) against scipy single linkage, under jit and vmap."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

import holejax as hj
from holejax.filtration import H0Result, h0, h0_from_points, h0_kernel
from holejax.metrics.batch import pad_units
from h0_helpers import cloud, dist32

METHODS = ["prim", "boruvka"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 3, 40])
def test_matches_scipy_single_linkage(method, n):
    D = dist32(cloud(n, n))
    h = h0(D, method=method)
    Z = linkage(squareform(D.astype(np.float64), checks=False), "single")
    np.testing.assert_allclose(h.deaths, Z[:, 2], rtol=1e-5)
    np.testing.assert_array_equal(h.linkage[:, [0, 1, 3]], Z[:, [0, 1, 3]])
    np.testing.assert_allclose(h.linkage[:, 2], Z[:, 2], rtol=1e-5)
    assert h.linkage.dtype == np.float64 and h.edges.dtype == np.int64
    # edges are tree edges whose lengths are the deaths
    np.testing.assert_array_equal(D[h.edges[:, 0], h.edges[:, 1]], h.deaths)
    assert np.all(h.edges[:, 0] < h.edges[:, 1])


@pytest.mark.parametrize("method", METHODS)
def test_one_sample(method):
    h = h0(np.zeros((1, 1), np.float32), method=method)
    assert h.deaths.shape == (0,) and h.edges.shape == (0, 2) and h.linkage.shape == (0, 4)


@pytest.mark.parametrize("method", METHODS)
def test_jit_and_vmap_agree_with_host(method):
    Ds = np.stack([dist32(cloud(s, 40)) for s in range(3)])
    host = h0(Ds, method=method)
    jitted = jax.jit(lambda D: h0(D, method=method))(jnp.asarray(Ds[1]))
    assert isinstance(jitted.deaths, jax.Array)
    np.testing.assert_array_equal(np.asarray(jitted.deaths), host.deaths[1])
    vm = jax.jit(jax.vmap(lambda D: h0_kernel(D, method)))(jnp.asarray(Ds))
    for a, b in zip(vm, host):
        np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))
    for i in range(3):
        single = h0(Ds[i], method=method)
        for a, b in zip(single, H0Result(*(f[i] for f in host))):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", METHODS)
def test_leading_batch_axes(method):
    """(2, 3, n, n) gives (2, 3, ...) results equal to each matrix on its own, on the host and traced."""
    Ds = np.stack([dist32(cloud(s, 12)) for s in range(6)]).reshape(2, 3, 12, 12)
    h = h0(Ds, method=method)
    assert h.deaths.shape == (2, 3, 11) and h.edges.shape == (2, 3, 11, 2)
    assert h.linkage.shape == (2, 3, 11, 4) and h.engine == f"dense-{method}"
    traced = jax.jit(lambda D: h0(D, method=method))(jnp.asarray(Ds))
    for i in range(2):
        for j in range(3):
            one = h0(Ds[i, j], method=method)
            Z = linkage(squareform(Ds[i, j].astype(np.float64), checks=False), "single")
            np.testing.assert_allclose(h.deaths[i, j], Z[:, 2], rtol=1e-5)
            np.testing.assert_array_equal(h.linkage[i, j], one.linkage)
            np.testing.assert_array_equal(np.asarray(traced.deaths[i, j]), one.deaths)
    assert hj.clusters_at(h, 0.0).shape == (2, 3, 12)
    np.testing.assert_array_equal(hj.clusters_at(h, 1.0)[1, 2], hj.clusters_at(h0(Ds[1, 2]), 1.0))


def test_methods_agree_on_deaths():
    D = dist32(cloud(5, 40))
    np.testing.assert_array_equal(h0(D, method="prim").deaths, h0(D, method="boruvka").deaths)


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_batch_groups_per_core_agree_with_single_clouds(monkeypatch, groups):
    """On CPU the batch runs as equal ranges in host threads (the last range overlapping the
    one before); any number of ranges gives the per-cloud answer."""
    from holejax.filtration import dense

    monkeypatch.setattr(dense, "_cores", lambda batch: min(batch, groups))
    Xs = np.stack([cloud(s, 30) for s in range(5)]).astype(np.float32)
    Ds = np.stack([dist32(X) for X in Xs])
    from_points = partial(h0_from_points, engine="dense")
    for fn, arg in ((h0, Ds), (from_points, Xs)):
        got = fn(arg, method="prim")
        for i in range(5):
            D = Ds[i] if fn is h0 else np.asarray(hj.pairwise_distances(pad_units(Xs[i], "euclidean")))
            ref = h0(D, method="prim")
            for a, b in zip(ref, H0Result(*(f[i] for f in got))):
                np.testing.assert_array_equal(a, b)


def test_batch_spread_over_several_cpu_devices():
    """With jax_num_cpu_devices=2 (one call on CPU, per-core loops inside) the answer is the same."""
    import json
    import subprocess
    import sys

    Ds = np.stack([dist32(cloud(s, 40)) for s in range(3)])
    code = (
        "import jax, json, sys, numpy as np; jax.config.update('jax_num_cpu_devices', 2)\n"
        "from holejax.filtration import h0\n"
        "Ds = np.array(json.loads(sys.stdin.read()), np.float32)\n"
        "h = h0(Ds)\n"
        "print(json.dumps([len(jax.local_devices()), h.linkage.tolist()]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(Ds.tolist()),
                         capture_output=True, text=True, check=True, timeout=300)
    devices, linkage = json.loads(out.stdout.strip().splitlines()[-1])
    assert devices == 2
    np.testing.assert_array_equal(np.array(linkage), h0(Ds).linkage)
