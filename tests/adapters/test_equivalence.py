"""The same architecture in PyTorch, Flax Linen and Flax NNX, with the same weights, gives the same store.

For an MLP, a residual CNN with global average pooling and a transformer
encoder block: every default layer agrees to 1e-5 (after NCHW -> NHWC for
feature maps), and the H0 deaths and cluster purity computed from the stores
agree too. Single linkage from scipy checks the H0 deaths independently.
Input noise and compression (pruning, quantization) give the same stores in
every framework as well. A token encoder (embeddings and two attention blocks)
called with keyword arguments (``input_ids``, ``attention_mask``) on batches
padded to different lengths gives the same default layers (the residual
stream), pooled over real tokens, and the same H0 in all three.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage
from sklearn.datasets import load_digits

import holejax as hj
import twins
from holejax.store import layer_names

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


# -- a token encoder called with keyword arguments, on batches padded to their own lengths ----------
VOCAB, TEXTS = 40, 60


def _padded_batches(n: int = TEXTS, batch: int = 20, seed: int = 0) -> tuple[tuple[dict, ...], np.ndarray]:
    """Batches of right-padded token ids and attention masks, each padded to its own longest row,
    and ``(sample,)`` labels: the class of a text is its first token modulo 4."""
    rng = np.random.default_rng(seed)
    batches = []
    for i, start in enumerate(range(0, n, batch)):
        t = 8 + 2 * i  # longest row of this batch
        lengths = rng.integers(2, t + 1, min(batch, n - start))
        lengths[0] = t
        mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
        batches.append({"input_ids": rng.integers(1, VOCAB, (len(lengths), t)) * mask, "attention_mask": mask})
    labels = np.concatenate([b["input_ids"][:, 0] % 4 for b in batches])
    return tuple(batches), labels


@pytest.fixture(scope="module")
def text_exports(tmp_path_factory):
    tm = twins.torch_twin("text")
    batches, labels = _padded_batches()
    assert len({b["input_ids"].shape[1] for b in batches}) > 1  # the batches differ in length
    root = tmp_path_factory.mktemp("text")
    models = {"torch": tm, "linen": twins.linen_twin(tm), "nnx": twins.nnx_twin(tm)}
    stores = {
        name: hj.export_activations(model, batches, labels=labels, store=root / f"{name}.zarr", batch_size=20,
                                    progress=False)
        for name, model in models.items()
    }
    return models, batches, labels, stores


def test_token_encoder_default_layers_agree_across_frameworks(text_exports):
    models, batches, _, stores = text_exports
    linen_names = {"blocks.0": "blocks_0", "blocks.1": "blocks_1"}  # Linen names list members <name>_<int>
    assert layer_names(stores["torch"]) == layer_names(stores["nnx"]) == ["embeddings", "blocks.0", "blocks.1"]
    assert layer_names(stores["linen"]) == ["embeddings", "blocks_0", "blocks_1"]
    for name in layer_names(stores["torch"]):
        ref = stores["torch"][name].values[0]
        assert ref.shape == (TEXTS, 32) and stores["nnx"][name].attrs["pooling"] == "mean"
        np.testing.assert_allclose(stores["nnx"][name].values[0], ref, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(stores["linen"][linen_names.get(name, name)].values[0], ref, rtol=1e-5,
                                   atol=1e-5, err_msg=name)
    # independent of holejax's pooling: the embeddings of the NNX model averaged over real tokens by hand
    nnx_model = models["nnx"]
    by_hand = []
    for b in batches:
        h = np.asarray(nnx_model.embeddings(b["input_ids"]))
        m = b["attention_mask"][..., None]
        by_hand.append((h * m).sum(1) / m.sum(1))
    np.testing.assert_allclose(stores["nnx"]["embeddings"].values[0], np.concatenate(by_hand), rtol=1e-5, atol=1e-5)


def test_token_encoder_h0_agrees_across_frameworks(text_exports):
    _, _, labels, stores = text_exports
    for name in ("embeddings", "blocks.1"):
        a = stores["torch"][name].values[0]
        deaths_a = np.sort(np.asarray(hj.h0(hj.pairwise_distances(a)).deaths))
        heights = np.sort(linkage(a.astype(np.float64), method="single")[:, 2])
        np.testing.assert_allclose(deaths_a, heights, rtol=1e-4, atol=1e-5, err_msg=name)
        for flavour, other in (("nnx", name), ("linen", name.replace(".", "_") if name != "embeddings" else name)):
            b = stores[flavour][other].values[0]
            deaths_b = np.sort(np.asarray(hj.h0(hj.pairwise_distances(b)).deaths))
            np.testing.assert_allclose(deaths_b, deaths_a, rtol=1e-4, atol=1e-5, err_msg=f"{flavour} {name}")
    np.testing.assert_array_equal(stores["nnx"]["label"].values, labels)


def test_token_encoder_predictions_agree(text_exports):
    models, batches, _, _ = text_exports
    ref = np.concatenate([hj.predict(models["torch"], b) for b in batches])
    for flavour in ("linen", "nnx"):
        out = np.concatenate([hj.predict(models[flavour], b) for b in batches])
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5, err_msg=flavour)
