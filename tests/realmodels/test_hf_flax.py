"""A Hugging Face BERT and its port to Flax NNX with the same weights give the same store.

``transformers`` ships no Flax models any more, so the NNX encoder here is a
port of ``BertModel``'s inference arithmetic (embeddings with token types,
post-norm attention blocks, exact GELU), its modules named as in the PyTorch
model. Weights come from a tiny randomly initialised ``BertModel`` built
from a config (no downloads). Exported with the default layers (the residual
stream) and pooling (the mean over real tokens) from keyword inputs on
batches padded to different lengths, both models give the same activations,
which equal ``output_hidden_states`` averaged over real tokens by hand, and
the same H0 deaths (checked against scipy's single linkage).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
nnx = pytest.importorskip("flax.nnx")
jnp = pytest.importorskip("jax.numpy")

from scipy.cluster.hierarchy import linkage  # noqa: E402

import holejax as hj  # noqa: E402
from holejax.store import layer_names  # noqa: E402

VOCAB, H, HEADS, FF, LAYERS, EPS = 40, 32, 2, 64, 2, 1e-12
RESIDUAL = ["embeddings", "encoder.layer.0", "encoder.layer.1"]


class BertEmbeddings(nnx.Module):
    def __init__(self, rngs):
        self.word_embeddings = nnx.Embed(VOCAB, H, rngs=rngs)
        self.position_embeddings = nnx.Embed(32, H, rngs=rngs)
        self.token_type_embeddings = nnx.Embed(2, H, rngs=rngs)
        self.LayerNorm = nnx.LayerNorm(H, epsilon=EPS, rngs=rngs)

    def __call__(self, input_ids, token_type_ids):
        positions = self.position_embeddings(jnp.arange(input_ids.shape[1]))[None]
        return self.LayerNorm(self.word_embeddings(input_ids) + positions + self.token_type_embeddings(token_type_ids))


class BertLayer(nnx.Module):
    def __init__(self, rngs):
        self.query, self.key, self.value = (nnx.Linear(H, H, rngs=rngs) for _ in range(3))
        self.attention_output = nnx.Linear(H, H, rngs=rngs)
        self.attention_norm = nnx.LayerNorm(H, epsilon=EPS, rngs=rngs)
        self.intermediate = nnx.Linear(H, FF, rngs=rngs)
        self.output = nnx.Linear(FF, H, rngs=rngs)
        self.output_norm = nnx.LayerNorm(H, epsilon=EPS, rngs=rngs)

    def __call__(self, h, attention_mask):
        b, t, _ = h.shape
        split = lambda y: y.reshape(b, t, HEADS, H // HEADS).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(H // HEADS)
        scores = jnp.where(attention_mask[:, None, None, :] == 0, jnp.finfo(jnp.float32).min, scores)
        context = (nnx.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, t, H)
        h = self.attention_norm(self.attention_output(context) + h)
        return self.output_norm(self.output(nnx.gelu(self.intermediate(h), approximate=False)) + h)


class BertEncoder(nnx.Module):
    def __init__(self, rngs):
        self.layer = nnx.List([BertLayer(rngs) for _ in range(LAYERS)])

    def __call__(self, h, attention_mask):
        for layer in self.layer:
            h = layer(h, attention_mask)
        return h


class NNXBert(nnx.Module):
    def __init__(self, rngs):
        self.embeddings = BertEmbeddings(rngs)
        self.encoder = BertEncoder(rngs)

    def __call__(self, input_ids, attention_mask, token_type_ids):
        return self.encoder(self.embeddings(input_ids, token_type_ids), attention_mask)


def _np(t) -> np.ndarray:
    return t.detach().numpy()


def _copy_linear(target, source) -> None:
    target.kernel.set_value(jnp.asarray(_np(source.weight).T))
    target.bias.set_value(jnp.asarray(_np(source.bias)))


def _copy_norm(target, source) -> None:
    target.scale.set_value(jnp.asarray(_np(source.weight)))
    target.bias.set_value(jnp.asarray(_np(source.bias)))


def nnx_port(tm) -> NNXBert:
    """An :class:`NNXBert` holding the weights of a ``transformers.BertModel``."""
    model = NNXBert(nnx.Rngs(0))
    emb, src = model.embeddings, tm.embeddings
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        getattr(emb, name).embedding.set_value(jnp.asarray(_np(getattr(src, name).weight)))
    _copy_norm(emb.LayerNorm, src.LayerNorm)
    for ours, theirs in zip(model.encoder.layer, tm.encoder.layer):
        attn = theirs.attention
        for name in ("query", "key", "value"):
            _copy_linear(getattr(ours, name), getattr(attn.self, name))
        _copy_linear(ours.attention_output, attn.output.dense)
        _copy_norm(ours.attention_norm, attn.output.LayerNorm)
        _copy_linear(ours.intermediate, theirs.intermediate.dense)
        _copy_linear(ours.output, theirs.output.dense)
        _copy_norm(ours.output_norm, theirs.output.LayerNorm)
    return model


def _batches(n: int = 48, batch: int = 16, seed: int = 0) -> tuple[dict, ...]:
    """Tokenizer-like batches, each right-padded to its own longest row (8, 10, 12 tokens)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, start in enumerate(range(0, n, batch)):
        t = 8 + 2 * i
        lengths = rng.integers(2, t + 1, batch)
        lengths[0] = t
        mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
        out.append({"input_ids": rng.integers(1, VOCAB, (batch, t)) * mask, "attention_mask": mask,
                    "token_type_ids": (np.arange(t)[None, :] >= lengths[:, None] // 2).astype(np.int64) * mask})
    return tuple(out)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                  intermediate_size=FF, max_position_embeddings=32, layer_norm_eps=EPS)
    tm = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    batches = _batches()
    labels = np.concatenate([b["input_ids"][:, 0] % 3 for b in batches])
    root = tmp_path_factory.mktemp("bert")
    kw = dict(labels=labels, batch_size=16, progress=False)
    return tm, batches, {
        "torch": hj.export_activations(tm, batches, store=root / "torch.zarr", **kw),
        "nnx": hj.export_activations(nnx_port(tm), batches, store=root / "nnx.zarr", **kw),
    }


def test_nnx_port_gives_the_same_residual_stream(stores):
    tm, batches, ds = stores
    assert layer_names(ds["torch"]) == layer_names(ds["nnx"]) == RESIDUAL
    # the reference: the model's own hidden states, averaged over real tokens by hand
    by_hand = {name: [] for name in RESIDUAL}
    for b in batches:
        with torch.no_grad():
            hidden = tm(**{k: torch.as_tensor(v) for k, v in b.items()}, output_hidden_states=True).hidden_states
        m = b["attention_mask"][..., None]
        for name, h in zip(RESIDUAL, hidden):
            by_hand[name].append((h.numpy() * m).sum(1) / m.sum(1))
    for name in RESIDUAL:
        ref = np.concatenate(by_hand[name])
        np.testing.assert_allclose(ds["torch"][name].values[0], ref, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(ds["nnx"][name].values[0], ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_nnx_port_gives_the_same_h0(stores):
    _, _, ds = stores
    for name in RESIDUAL:
        a, b = ds["torch"][name].values[0], ds["nnx"][name].values[0]
        deaths_a = np.sort(np.asarray(hj.h0(hj.pairwise_distances(a)).deaths))
        deaths_b = np.sort(np.asarray(hj.h0(hj.pairwise_distances(b)).deaths))
        np.testing.assert_allclose(deaths_b, deaths_a, rtol=1e-4, atol=1e-5, err_msg=name)
        heights = np.sort(linkage(a.astype(np.float64), method="single")[:, 2])
        np.testing.assert_allclose(deaths_a, heights, rtol=1e-4, atol=1e-5, err_msg=name)
