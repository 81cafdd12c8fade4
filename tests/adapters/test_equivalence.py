"""The same architecture in PyTorch, Flax Linen and Flax NNX, with the same weights, gives the same store.

For an MLP, a residual CNN with global average pooling and a transformer
encoder block: every default layer agrees to 1e-5 (after NCHW -> NHWC for
feature maps), and the H0 deaths and cluster purity computed from the stores
agree too. Single linkage from scipy checks the H0 deaths independently.
Input noise and compression (pruning, quantization) give the same stores in
every framework as well.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage
from sklearn.datasets import load_digits

import holejax as hj
import twins

N = 150
_digits = load_digits()
IMAGES = (_digits.data[:N] / 16.0).astype(np.float32)
LABELS = _digits.target[:N]

INPUTS = {  # (torch layout, flax layout)
    "mlp": (IMAGES, IMAGES),
    "cnn": (IMAGES.reshape(N, 1, 8, 8), IMAGES.reshape(N, 8, 8, 1)),
    "encoder": (IMAGES.reshape(N, 8, 8), IMAGES.reshape(N, 8, 8)),
}
FLAX_NAME = {"attn[0]": "attn"}  # MultiheadAttention returns (output, weights); Flax returns the output


def as_flax_layout(values: np.ndarray, shape: tuple) -> np.ndarray:
    """Torch (C, H, W) feature maps, flattened, in Flax (H, W, C) order."""
    if len(shape) != 3:
        return values
    return values.reshape(len(values), *shape).transpose(0, 2, 3, 1).reshape(len(values), -1)


@pytest.fixture(scope="module", params=["mlp", "cnn", "encoder"])
def exports(request, tmp_path_factory):
    kind = request.param
    tm = twins.torch_twin(kind)
    xt, xf = INPUTS[kind]
    root = tmp_path_factory.mktemp(kind)
    common = dict(labels=LABELS, batch_size=64, progress=False)
    stores = {
        "torch": hj.export_activations(tm, xt, store=root / "torch.zarr", **common),
        "linen": hj.export_activations(twins.linen_twin(tm), xf, store=root / "linen.zarr", **common),
        "nnx": hj.export_activations(twins.nnx_twin(tm), xf, store=root / "nnx.zarr", **common),
    }
    return kind, stores


@pytest.mark.parametrize("flavour", ["linen", "nnx"])
def test_activations_agree(exports, flavour):
    kind, stores = exports
    ref, other = stores["torch"], stores[flavour]
    assert sorted(FLAX_NAME.get(n, n) for n in ref.data_vars) == sorted(other.data_vars)
    assert len(ref.data_vars) >= 5
    for name in ref.data_vars:
        shape = tuple(ref[name].attrs["shape"])
        a = as_flax_layout(ref[name].values[0], shape)
        b = other[FLAX_NAME.get(name, name)].values[0]
        assert a.shape == b.shape, name
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5, err_msg=f"{kind} {flavour} {name}")
    assert ref.attrs["framework"] == "torch" and other.attrs["framework"] == "flax"
    # the last layer is the model output
    last = "out" if kind == "mlp" else "head"
    np.testing.assert_allclose(other[last].values[0], hj.predict(twins.torch_twin(kind), INPUTS[kind][0]), rtol=1e-5, atol=1e-5)


def _h0_summary(acts: np.ndarray) -> tuple[np.ndarray, float]:
    h = hj.h0(hj.pairwise_distances(acts))
    deaths = np.sort(np.asarray(h.deaths))
    t = 0.5 * (deaths[-10] + deaths[-9])  # ten components
    return deaths, hj.purity(np.asarray(hj.clusters_at(h, t)), LABELS)


@pytest.mark.parametrize("flavour", ["linen", "nnx"])
def test_h0_deaths_and_purity_agree(exports, flavour):
    kind, stores = exports
    ref, other = stores["torch"], stores[flavour]
    for name in ref.data_vars:
        a, b = ref[name].values[0], other[FLAX_NAME.get(name, name)].values[0]
        deaths_a, purity_a = _h0_summary(a)
        deaths_b, purity_b = _h0_summary(b)
        np.testing.assert_allclose(deaths_b, deaths_a, rtol=1e-4, atol=1e-5, err_msg=f"{kind} {name}")
        assert purity_a == purity_b, (kind, name)
        # independent reference: scipy single linkage merge heights
        heights = np.sort(linkage(a.astype(np.float64), method="single")[:, 2])
        np.testing.assert_allclose(deaths_a, heights, rtol=1e-4, atol=1e-4, err_msg=f"{kind} {name}")


def test_perturbed_stores_agree(tmp_path):
    from holejax.perturb import global_l1_prune, layerwise_l1_prune, quantize

    perts = [hj.gaussian(sigma=0.2), global_l1_prune(0.3), layerwise_l1_prune(0.2), quantize(bits=4)]
    tm = twins.torch_twin("mlp")
    kw = dict(perturbations=perts, layers=["act2", "out"], batch_size=64, seed=5, progress=False)
    ref = hj.export_activations(tm, IMAGES, store=tmp_path / "t.zarr", **kw)
    for name, model in (("linen", twins.linen_twin(tm)), ("nnx", twins.nnx_twin(tm))):
        other = hj.export_activations(model, IMAGES, store=tmp_path / f"{name}.zarr", **kw)
        assert list(other["perturbation"].values) == list(ref["perturbation"].values)
        for layer in ("act2", "out"):
            np.testing.assert_allclose(other[layer].values, ref[layer].values, rtol=1e-5, atol=1e-5, err_msg=f"{name} {layer}")
    # every perturbation changed something
    clean = ref["out"].values[0]
    assert all(np.abs(ref["out"].values[i] - clean).max() > 1e-3 for i in range(1, len(perts) + 1))


def test_pooled_layers_agree_without_transposing(tmp_path):
    tm = twins.torch_twin("cnn")
    xt, xf = INPUTS["cnn"]
    kw = dict(layers=["block*.relu#1", "stem"], pooling="auto", batch_size=50, progress=False)
    a = hj.export_activations(tm, xt, store=tmp_path / "t.zarr", **kw)
    b = hj.export_activations(twins.nnx_twin(tm), xf, store=tmp_path / "f.zarr", **kw)
    for name in ("stem", "block1.relu#1", "block2.relu#1"):
        assert a[name].attrs["pooling"] == "global_avg" and a[name].shape == (1, N, 8)
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=1e-5, atol=1e-5)
    tm = twins.torch_twin("encoder")
    xt, xf = INPUTS["encoder"]
    kw = dict(layers=["norm1", "norm2"], pooling={"norm1": "cls", "norm2": "mean_tokens"}, progress=False)
    a = hj.export_activations(tm, xt, store=tmp_path / "te.zarr", **kw)
    b = hj.export_activations(twins.linen_twin(tm), xf, store=tmp_path / "fe.zarr", **kw)
    for name in ("norm1", "norm2"):
        assert a[name].shape == (1, N, 16)
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=1e-5, atol=1e-5)
