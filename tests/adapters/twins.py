"""The same four architectures in PyTorch, Flax Linen and Flax NNX, and weight copying torch -> flax.

An MLP, a residual CNN, a transformer encoder block on feature rows, and a
token encoder (embeddings, a list of two attention blocks, called with
keyword arguments ``input_ids`` and ``attention_mask``).

Layer names agree across frameworks wherever the frameworks allow it: Flax
models ``sow`` the outputs of plain functions (``relu``, ``gelu``, the global
average pool) under the name of the matching PyTorch module. PyTorch
computes in NCHW with (out, in, kh, kw) kernels, Flax in NHWC with
(kh, kw, in, out) kernels; the copy functions convert.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn as tnn

import flax.linen as nn
import jax.numpy as jnp
from flax import nnx

RNG = nnx.Rngs(0)


# -- MLP ---------------------------------------------------------------------
class TorchMLP(tnn.Module):
    def __init__(self, d_in: int = 64, hidden: int = 32, n_out: int = 10):
        super().__init__()
        self.fc1, self.act1 = tnn.Linear(d_in, hidden), tnn.ReLU()
        self.fc2, self.act2 = tnn.Linear(hidden, hidden), tnn.ReLU()
        self.out = tnn.Linear(hidden, n_out)

    def forward(self, x):
        return self.out(self.act2(self.fc2(self.act1(self.fc1(x)))))


class LinenMLP(nn.Module):
    hidden: int = 32
    n_out: int = 10

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.hidden, name="fc1")(x))
        self.sow("intermediates", "act1", x)
        x = nn.relu(nn.Dense(self.hidden, name="fc2")(x))
        self.sow("intermediates", "act2", x)
        return nn.Dense(self.n_out, name="out")(x)


class NNXMLP(nnx.Module):
    def __init__(self, d_in: int = 64, hidden: int = 32, n_out: int = 10):
        self.fc1 = nnx.Linear(d_in, hidden, rngs=RNG)
        self.fc2 = nnx.Linear(hidden, hidden, rngs=RNG)
        self.out = nnx.Linear(hidden, n_out, rngs=RNG)

    def __call__(self, x):
        x = nnx.relu(self.fc1(x))
        self.sow(nnx.Intermediate, "act1", x)
        x = nnx.relu(self.fc2(x))
        self.sow(nnx.Intermediate, "act2", x)
        return self.out(x)


# -- CNN with residual blocks and global average pooling -----------------------
class TorchBlock(tnn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(c, c, 3, padding=1), tnn.BatchNorm2d(c)
        self.conv2, self.bn2 = tnn.Conv2d(c, c, 3, padding=1), tnn.BatchNorm2d(c)
        self.relu = tnn.ReLU()  # used twice: "relu" and "relu#1"

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(h)) + x)


class TorchCNN(tnn.Module):
    def __init__(self, c: int = 8, n_out: int = 10):
        super().__init__()
        self.stem, self.stem_act = tnn.Conv2d(1, c, 3, padding=1), tnn.ReLU()
        self.block1, self.block2 = TorchBlock(c), TorchBlock(c)
        self.pool, self.flatten = tnn.AdaptiveAvgPool2d(1), tnn.Flatten()
        self.head = tnn.Linear(c, n_out)

    def forward(self, x):
        x = self.block2(self.block1(self.stem_act(self.stem(x))))
        return self.head(self.flatten(self.pool(x)))


class LinenBlock(nn.Module):
    c: int

    @nn.compact
    def __call__(self, x):
        bn = dict(use_running_average=True, momentum=0.9, epsilon=1e-5)
        h = nn.relu(nn.BatchNorm(name="bn1", **bn)(nn.Conv(self.c, (3, 3), padding=1, name="conv1")(x)))
        self.sow("intermediates", "relu", h)
        h = nn.relu(nn.BatchNorm(name="bn2", **bn)(nn.Conv(self.c, (3, 3), padding=1, name="conv2")(h)) + x)
        self.sow("intermediates", "relu", h)
        return h


class LinenCNN(nn.Module):
    c: int = 8
    n_out: int = 10

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(self.c, (3, 3), padding=1, name="stem")(x))
        self.sow("intermediates", "stem_act", x)
        x = LinenBlock(self.c, name="block2")(LinenBlock(self.c, name="block1")(x))
        x = x.mean(axis=(1, 2))
        self.sow("intermediates", "pool", x)
        return nn.Dense(self.n_out, name="head")(x)


class NNXBlock(nnx.Module):
    def __init__(self, c: int):
        self.conv1 = nnx.Conv(c, c, (3, 3), padding=1, rngs=RNG)
        self.bn1 = nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, rngs=RNG)
        self.conv2 = nnx.Conv(c, c, (3, 3), padding=1, rngs=RNG)
        self.bn2 = nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, rngs=RNG)

    def __call__(self, x):
        h = nnx.relu(self.bn1(self.conv1(x)))
        self.sow(nnx.Intermediate, "relu", h)
        h = nnx.relu(self.bn2(self.conv2(h)) + x)
        self.sow(nnx.Intermediate, "relu", h)
        return h


class NNXCNN(nnx.Module):
    def __init__(self, c: int = 8, n_out: int = 10):
        self.stem = nnx.Conv(1, c, (3, 3), padding=1, rngs=RNG)
        self.block1, self.block2 = NNXBlock(c), NNXBlock(c)
        self.head = nnx.Linear(c, n_out, rngs=RNG)

    def __call__(self, x):
        x = nnx.relu(self.stem(x))
        self.sow(nnx.Intermediate, "stem_act", x)
        x = self.block2(self.block1(x)).mean(axis=(1, 2))
        self.sow(nnx.Intermediate, "pool", x)
        return self.head(x)


# -- transformer encoder block -------------------------------------------------
class TorchEncoder(tnn.Module):
    def __init__(self, d_in: int = 8, d: int = 16, heads: int = 2, ff: int = 32, n_out: int = 10):
        super().__init__()
        self.embed = tnn.Linear(d_in, d)
        self.attn = tnn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1 = tnn.LayerNorm(d)
        self.ff1, self.act, self.ff2 = tnn.Linear(d, ff), tnn.GELU(), tnn.Linear(ff, d)
        self.norm2 = tnn.LayerNorm(d)
        self.head = tnn.Linear(d, n_out)

    def forward(self, x):
        h = self.embed(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        h = self.norm1(h + a)
        h = self.norm2(h + self.ff2(self.act(self.ff1(h))))
        return self.head(h[:, 0])


class LinenEncoder(nn.Module):
    d: int = 16
    heads: int = 2
    ff: int = 32
    n_out: int = 10

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.d, name="embed")(x)
        a = nn.MultiHeadDotProductAttention(self.heads, qkv_features=self.d, out_features=self.d, name="attn")(h, h)
        h = nn.LayerNorm(epsilon=1e-5, name="norm1")(h + a)
        f = nn.gelu(nn.Dense(self.ff, name="ff1")(h), approximate=False)
        self.sow("intermediates", "act", f)
        h = nn.LayerNorm(epsilon=1e-5, name="norm2")(h + nn.Dense(self.d, name="ff2")(f))
        return nn.Dense(self.n_out, name="head")(h[:, 0])


class NNXEncoder(nnx.Module):
    def __init__(self, d_in: int = 8, d: int = 16, heads: int = 2, ff: int = 32, n_out: int = 10):
        self.embed = nnx.Linear(d_in, d, rngs=RNG)
        self.attn = nnx.MultiHeadAttention(heads, d, d, d, decode=False, rngs=RNG)
        self.norm1 = nnx.LayerNorm(d, epsilon=1e-5, rngs=RNG)
        self.ff1, self.ff2 = nnx.Linear(d, ff, rngs=RNG), nnx.Linear(ff, d, rngs=RNG)
        self.norm2 = nnx.LayerNorm(d, epsilon=1e-5, rngs=RNG)
        self.head = nnx.Linear(d, n_out, rngs=RNG)

    def __call__(self, x):
        h = self.embed(x)
        h = self.norm1(h + self.attn(h))
        f = nnx.gelu(self.ff1(h), approximate=False)
        self.sow(nnx.Intermediate, "act", f)
        h = self.norm2(h + self.ff2(f))
        return self.head(h[:, 0])


# -- token encoder: embeddings, a list of attention blocks, keyword inputs -------------
class TorchEmbeddings(tnn.Module):
    def __init__(self, vocab: int, d: int, max_len: int):
        super().__init__()
        self.tokens, self.positions = tnn.Embedding(vocab, d), tnn.Embedding(max_len, d)
        self.norm = tnn.LayerNorm(d)

    def forward(self, input_ids):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.norm(self.tokens(input_ids) + self.positions(pos)[None])


class TorchSelfAttention(tnn.Module):
    """Multi-head self-attention written out, so both frameworks run the same arithmetic."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (tnn.Linear(d, d) for _ in range(4))

    def forward(self, h, attention_mask):
        b, t, d = h.shape
        split = lambda y: y.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        scores = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5
        scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, -1e9)
        a = scores.softmax(-1) @ v
        return self.o(a.transpose(1, 2).reshape(b, t, d))


class TorchEncoderBlock(tnn.Module):
    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.attn, self.norm1 = TorchSelfAttention(d, heads), tnn.LayerNorm(d)
        self.ff1, self.act, self.ff2 = tnn.Linear(d, ff), tnn.GELU(), tnn.Linear(ff, d)
        self.norm2 = tnn.LayerNorm(d)

    def forward(self, h, attention_mask):
        h = self.norm1(h + self.attn(h, attention_mask))
        return self.norm2(h + self.ff2(self.act(self.ff1(h))))


class TorchTextEncoder(tnn.Module):
    """Token ids and an attention mask in (keyword arguments), class logits from the first token out."""

    def __init__(self, vocab: int = 40, d: int = 32, heads: int = 2, ff: int = 64, n_blocks: int = 2,
                 max_len: int = 16, n_out: int = 4):
        super().__init__()
        self.embeddings = TorchEmbeddings(vocab, d, max_len)
        self.blocks = tnn.ModuleList([TorchEncoderBlock(d, heads, ff) for _ in range(n_blocks)])
        self.head = tnn.Linear(d, n_out)

    def forward(self, input_ids, attention_mask):
        h = self.embeddings(input_ids)
        for block in self.blocks:
            h = block(h, attention_mask)
        return self.head(h[:, 0])


def _attention(q, k, v, attention_mask, heads: int):
    """Multi-head attention of projected queries, keys and values ``(b, t, d)``; padding keys masked."""
    b, t, d = q.shape
    split = lambda y: y.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(0, 1, 3, 2) / (d // heads) ** 0.5
    scores = jnp.where(attention_mask[:, None, None, :] == 0, -1e9, scores)
    a = nn.softmax(scores, axis=-1) @ v
    return a.transpose(0, 2, 1, 3).reshape(b, t, d)


class NNXEmbeddings(nnx.Module):
    def __init__(self, vocab: int, d: int, max_len: int):
        self.tokens, self.positions = nnx.Embed(vocab, d, rngs=RNG), nnx.Embed(max_len, d, rngs=RNG)
        self.norm = nnx.LayerNorm(d, epsilon=1e-5, rngs=RNG)

    def __call__(self, input_ids):
        return self.norm(self.tokens(input_ids) + self.positions(jnp.arange(input_ids.shape[1]))[None])


class NNXSelfAttention(nnx.Module):
    def __init__(self, d: int, heads: int):
        self.heads = heads
        self.q, self.k, self.v, self.o = (nnx.Linear(d, d, rngs=RNG) for _ in range(4))

    def __call__(self, h, attention_mask):
        return self.o(_attention(self.q(h), self.k(h), self.v(h), attention_mask, self.heads))


class NNXEncoderBlock(nnx.Module):
    def __init__(self, d: int, heads: int, ff: int):
        self.attn, self.norm1 = NNXSelfAttention(d, heads), nnx.LayerNorm(d, epsilon=1e-5, rngs=RNG)
        self.ff1, self.ff2 = nnx.Linear(d, ff, rngs=RNG), nnx.Linear(ff, d, rngs=RNG)
        self.norm2 = nnx.LayerNorm(d, epsilon=1e-5, rngs=RNG)

    def __call__(self, h, attention_mask):
        h = self.norm1(h + self.attn(h, attention_mask))
        f = nnx.gelu(self.ff1(h), approximate=False)
        self.sow(nnx.Intermediate, "act", f)
        return self.norm2(h + self.ff2(f))


class NNXTextEncoder(nnx.Module):
    def __init__(self, vocab: int = 40, d: int = 32, heads: int = 2, ff: int = 64, n_blocks: int = 2,
                 max_len: int = 16, n_out: int = 4):
        self.embeddings = NNXEmbeddings(vocab, d, max_len)
        self.blocks = nnx.List([NNXEncoderBlock(d, heads, ff) for _ in range(n_blocks)])
        self.head = nnx.Linear(d, n_out, rngs=RNG)

    def __call__(self, input_ids, attention_mask):
        h = self.embeddings(input_ids)
        for block in self.blocks:
            h = block(h, attention_mask)
        return self.head(h[:, 0])


class LinenSelfAttention(nn.Module):
    d: int
    heads: int

    @nn.compact
    def __call__(self, h, attention_mask):
        q, k, v = (nn.Dense(self.d, name=n)(h) for n in ("q", "k", "v"))
        return nn.Dense(self.d, name="o")(_attention(q, k, v, attention_mask, self.heads))


class LinenEncoderBlock(nn.Module):
    d: int
    heads: int
    ff: int

    @nn.compact
    def __call__(self, h, attention_mask):
        a = LinenSelfAttention(self.d, self.heads, name="attn")(h, attention_mask)
        h = nn.LayerNorm(epsilon=1e-5, name="norm1")(h + a)
        f = nn.gelu(nn.Dense(self.ff, name="ff1")(h), approximate=False)
        self.sow("intermediates", "act", f)
        return nn.LayerNorm(epsilon=1e-5, name="norm2")(h + nn.Dense(self.d, name="ff2")(f))


class LinenEmbeddings(nn.Module):
    vocab: int
    d: int
    max_len: int

    @nn.compact
    def __call__(self, input_ids):
        tokens = nn.Embed(self.vocab, self.d, name="tokens")(input_ids)
        positions = nn.Embed(self.max_len, self.d, name="positions")(jnp.arange(input_ids.shape[1]))
        return nn.LayerNorm(epsilon=1e-5, name="norm")(tokens + positions[None])


class LinenTextEncoder(nn.Module):
    """Blocks in a list attribute: Linen names them ``blocks_0``, ``blocks_1``."""

    vocab: int = 40
    d: int = 32
    heads: int = 2
    ff: int = 64
    n_blocks: int = 2
    max_len: int = 16
    n_out: int = 4

    def setup(self):
        self.embeddings = LinenEmbeddings(self.vocab, self.d, self.max_len)
        self.blocks = [LinenEncoderBlock(self.d, self.heads, self.ff) for _ in range(self.n_blocks)]
        self.head = nn.Dense(self.n_out)

    def __call__(self, input_ids, attention_mask):
        h = self.embeddings(input_ids)
        for block in self.blocks:
            h = block(h, attention_mask)
        return self.head(h[:, 0])


# -- copying weights torch -> flax -------------------------------------------------
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _dense(m: tnn.Linear) -> dict:
    return {"kernel": _np(m.weight).T, "bias": _np(m.bias)}


def _conv(m: tnn.Conv2d) -> dict:
    return {"kernel": _np(m.weight).transpose(2, 3, 1, 0), "bias": _np(m.bias)}


def _bn(m: tnn.BatchNorm2d) -> tuple[dict, dict]:
    return {"scale": _np(m.weight), "bias": _np(m.bias)}, {"mean": _np(m.running_mean), "var": _np(m.running_var)}


def _attn(m: tnn.MultiheadAttention) -> dict:
    d, heads = m.embed_dim, m.num_heads
    w, b = _np(m.in_proj_weight), _np(m.in_proj_bias)
    out = {}
    for i, name in enumerate(("query", "key", "value")):
        out[name] = {
            "kernel": w[i * d : (i + 1) * d].T.reshape(d, heads, d // heads),
            "bias": b[i * d : (i + 1) * d].reshape(heads, d // heads),
        }
    out["out"] = {"kernel": _np(m.out_proj.weight).T.reshape(heads, d // heads, d), "bias": _np(m.out_proj.bias)}
    return out


def _ln(m: tnn.LayerNorm) -> dict:
    return {"scale": _np(m.weight), "bias": _np(m.bias)}


def flax_params(tm: tnn.Module) -> tuple[dict, dict]:
    """``(params, batch_stats)`` trees (Linen layout) holding the weights of a torch twin."""
    if isinstance(tm, TorchMLP):
        return {k: _dense(getattr(tm, k)) for k in ("fc1", "fc2", "out")}, {}
    if isinstance(tm, TorchCNN):
        params = {"stem": _conv(tm.stem), "head": _dense(tm.head)}
        stats = {}
        for b in ("block1", "block2"):
            tb = getattr(tm, b)
            (s1, st1), (s2, st2) = _bn(tb.bn1), _bn(tb.bn2)
            params[b] = {"conv1": _conv(tb.conv1), "conv2": _conv(tb.conv2), "bn1": s1, "bn2": s2}
            stats[b] = {"bn1": st1, "bn2": st2}
        return params, stats
    if isinstance(tm, TorchEncoder):
        params = {k: _dense(getattr(tm, k)) for k in ("embed", "ff1", "ff2", "head")}
        params.update(attn=_attn(tm.attn), norm1=_ln(tm.norm1), norm2=_ln(tm.norm2))
        return params, {}
    if isinstance(tm, TorchTextEncoder):
        emb = tm.embeddings
        params = {
            "embeddings": {"tokens": {"embedding": _np(emb.tokens.weight)},
                           "positions": {"embedding": _np(emb.positions.weight)}, "norm": _ln(emb.norm)},
            "head": _dense(tm.head),
        }
        for i, b in enumerate(tm.blocks):
            params[f"blocks_{i}"] = {
                "attn": {n: _dense(getattr(b.attn, n)) for n in ("q", "k", "v", "o")},
                "norm1": _ln(b.norm1), "norm2": _ln(b.norm2), "ff1": _dense(b.ff1), "ff2": _dense(b.ff2),
            }
        return params, {}
    raise TypeError(type(tm))


_LINEN = {TorchMLP: LinenMLP, TorchCNN: LinenCNN, TorchEncoder: LinenEncoder, TorchTextEncoder: LinenTextEncoder}
_NNX = {TorchMLP: NNXMLP, TorchCNN: NNXCNN, TorchEncoder: NNXEncoder, TorchTextEncoder: NNXTextEncoder}


def linen_twin(tm: tnn.Module) -> tuple[nn.Module, dict]:
    module = _LINEN[type(tm)]()
    params, stats = flax_params(tm)
    variables = {"params": params}
    if stats:
        variables["batch_stats"] = stats
    as_jnp = lambda tree: {k: as_jnp(v) if isinstance(v, dict) else jnp.asarray(v) for k, v in tree.items()}  # noqa: E731
    return module, as_jnp(variables)


def _set(module: nnx.Module, tree: dict) -> None:
    for key, value in tree.items():
        name, _, index = key.rpartition("_")
        target = getattr(module, name)[int(index)] if name == "blocks" else getattr(module, key)
        if isinstance(value, dict):
            _set(target, value)
        else:
            target.set_value(jnp.asarray(value))


def nnx_twin(tm: tnn.Module) -> nnx.Module:
    model = _NNX[type(tm)]()
    params, stats = flax_params(tm)
    _set(model, params)
    _set(model, stats)
    return model


def torch_twin(kind: str, seed: int = 0) -> tnn.Module:
    """A randomly initialised torch model; BatchNorm statistics are made non-trivial."""
    torch.manual_seed(seed)
    model = {"mlp": TorchMLP, "cnn": TorchCNN, "encoder": TorchEncoder, "text": TorchTextEncoder}[kind]()
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model.eval()
