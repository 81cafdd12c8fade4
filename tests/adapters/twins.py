"""The same three architectures in PyTorch, Flax Linen and Flax NNX, and weight copying torch -> flax.

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
    raise TypeError(type(tm))


def linen_twin(tm: tnn.Module) -> tuple[nn.Module, dict]:
    module = {TorchMLP: LinenMLP, TorchCNN: LinenCNN, TorchEncoder: LinenEncoder}[type(tm)]()
    params, stats = flax_params(tm)
    variables = {"params": params}
    if stats:
        variables["batch_stats"] = stats
    as_jnp = lambda tree: {k: as_jnp(v) if isinstance(v, dict) else jnp.asarray(v) for k, v in tree.items()}  # noqa: E731
    return module, as_jnp(variables)


def _set(module: nnx.Module, tree: dict) -> None:
    for key, value in tree.items():
        target = getattr(module, key)
        if isinstance(value, dict):
            _set(target, value)
        else:
            target.set_value(jnp.asarray(value))


def nnx_twin(tm: tnn.Module) -> nnx.Module:
    model = {TorchMLP: NNXMLP, TorchCNN: NNXCNN, TorchEncoder: NNXEncoder}[type(tm)]()
    params, stats = flax_params(tm)
    _set(model, params)
    _set(model, stats)
    return model


def torch_twin(kind: str, seed: int = 0) -> tnn.Module:
    """A randomly initialised torch model; BatchNorm statistics are made non-trivial."""
    torch.manual_seed(seed)
    model = {"mlp": TorchMLP, "cnn": TorchCNN, "encoder": TorchEncoder}[kind]()
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model.eval()
