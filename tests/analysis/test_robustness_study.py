"""hj.robustness_study: export + analysis + accuracy per perturbation, for PyTorch and Flax models."""

from __future__ import annotations

import glob
import os
import tempfile

import jax
import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import pdist
import pytest
import torch
from flax import linen as nn

import holejax as hj
from holejax.capture import predict

N = 48


def data():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], N // 3)
    X = (rng.normal(size=(N, 6)) + 2.0 * np.eye(3, 6)[y] * 2).astype(np.float32)
    return X, y


def torch_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    X, y = data()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        opt.step()
    return net.eval()


PERTS = [hj.gaussian(0.5), hj.global_l1_prune(0.5), hj.int8_dynamic()]


def test_torch_study_end_to_end(tmp_path):
    X, y = data()
    net = torch_net()
    res = hj.robustness_study(net, X, y, perturbations=PERTS, layers=["1", "2"], metrics=["euclidean", "cosine"],
                   store=tmp_path / "acts.zarr", results=tmp_path / "res.zarr", seed=3, progress=False)
    assert res.perturbation.values.tolist() == ["clean"] + [p.name for p in PERTS]
    assert res.layer.values.tolist() == ["1", "2"]
    for p in ["clean"] + PERTS:
        logits = predict(net, X, perturbation=p, seed=3)
        expected = float(np.mean(logits.argmax(1) == y))
        assert float(res.accuracy.sel(perturbation=getattr(p, "name", p))) == pytest.approx(expected)
    assert float(res.accuracy.sel(perturbation="clean")) > 0.9
    # the stored activations are the analysed ones
    acts = hj.open_activations(tmp_path / "acts.zarr")
    A = acts["2"].sel(perturbation="int8_dynamic").values.astype(np.float64)
    reference = np.sort(linkage(pdist(A), "single")[:, 2])
    # float32 distances through |x|^2 + |y|^2 - 2 x.y: error about eps * |x|^2 / d (logits up to ~20 here)
    np.testing.assert_allclose(
        res.deaths.sel(perturbation="int8_dynamic", layer="2", metric="euclidean").values, reference, rtol=2e-4
    )
    assert hj.open_results(tmp_path / "res.zarr").accuracy.shape == (4,)
    assert res.attrs["source"].endswith("acts.zarr")


def test_temporary_store_is_removed():
    X, y = data()
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "holejax-study-*")))
    res = hj.robustness_study(torch_net(), X, y, perturbations=[hj.gaussian(0.1)], layers=["1"], progress=False)
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "holejax-study-*"))) == before
    assert res.attrs["source"] == "" and res.deaths.shape == (2, 1, 1, N - 1)


def test_flax_linen_study():
    X, y = data()

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(nn.relu(nn.Dense(16)(x)))

    module = MLP()
    variables = module.init(jax.random.key(0), X[:1])
    res = hj.robustness_study((module, variables), X, y, perturbations=[hj.quantize(bits=2)], layers=["Dense_0"],
                   metrics=["euclidean"], progress=False)
    assert res.accuracy.dims == ("perturbation",) and res.purity.shape == (2, 1, 1)
    # 2-bit weights change the layer's activations, hence its diagram
    assert float(res.bottleneck.sel(perturbation="quantize(bits=2, scheme=symmetric)").item()) > 0


def test_without_labels_there_is_no_accuracy():
    X, _ = data()
    res = hj.robustness_study(torch_net(), X, None, layers=["1"], progress=False)
    assert "accuracy" not in res and np.isnan(res.purity).all()


# -- bad input: rejected before anything is exported --------------------------------------
def test_bad_input_is_rejected_before_export(tmp_path):
    X, y = data()
    net = torch_net()
    store = tmp_path / "acts.zarr"
    with pytest.raises(ValueError, match="labels has 47 entries but there are 48 samples"):
        hj.robustness_study(net, X, y[:-1], store=store, progress=False)
    with pytest.raises(ValueError, match="metric='euclidian'.*Did you mean 'euclidean'"):
        hj.robustness_study(net, X, y, metrics=["euclidian"], store=store, progress=False)
    with pytest.raises(ValueError, match="unknown perturbation 'gaussain'"):
        hj.robustness_study(net, X, y, perturbations=["gaussain(sigma=0.1)"], store=store, progress=False)
    with pytest.raises(TypeError, match="one array"):
        hj.robustness_study(net, iter([X]), y, store=store, progress=False)
    assert not store.exists()


def test_unknown_layer_is_named(tmp_path):
    X, y = data()
    with pytest.raises(ValueError, match="'7'"):
        hj.robustness_study(torch_net(), X, y, layers=["7"], store=tmp_path / "a.zarr", progress=False)
