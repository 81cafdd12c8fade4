"""The Flax adapter: Linen capture_intermediates, NNX capture, sow, eval copies, padding, keyword and
positional inputs, bad input."""

from __future__ import annotations

import sys

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import holejax as hj
from holejax.capture import select_layers
from holejax_flax import ADAPTER

N = 37
X = np.random.default_rng(0).normal(size=(N, 6)).astype(np.float32)


class LinenBlock(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(5, name="fc")(x))
        self.sow("intermediates", "act", h)
        return h, {"sum": h.sum(axis=1)}


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(5, name="stem")(x)
        x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
        x = nn.Dropout(0.5, deterministic=not train)(x)
        block = LinenBlock(name="block")
        h, _ = block(x)
        h, _ = block(h)  # shared: block#1, block.fc#1, block.act#1
        return nn.Dense(3, name="head")(h)


@pytest.fixture(scope="module")
def linen():
    module = LinenNet()
    variables = module.init(jax.random.key(0), X[:2])
    stats = jax.tree_util.tree_map(lambda v: v + 0.3, variables["batch_stats"])
    return module, {"params": variables["params"], "batch_stats": stats}


def test_linen_layers_in_execution_order(linen):
    table = hj.list_layers(linen, X)
    assert table.names == [
        "stem", "bn", "Dropout_0", "block.fc", "block.act", "block[0]", "block[1][sum]",
        "block.fc#1", "block.act#1", "block#1[0]", "block#1[1][sum]", "head",
    ]
    rows = {r.name: r for r in table}
    assert rows["block.act"].type == "sow" and rows["block.fc"].type == "Dense"
    assert rows["block[1][sum]"].shape == () and rows["stem"].layout == "channels_last"
    assert [r.name for r in select_layers(table, nn.Dense)] == ["stem", "block.fc", "block.fc#1", "head"]
    assert [r.name for r in select_layers(table, None)] == [
        "stem", "bn", "block.act", "block[0]", "block.act#1", "block#1[0]", "head",
    ]


def test_linen_capture_equals_apply(linen, tmp_path):
    module, variables = linen
    names = ["bn", "block.fc", "block.act#1", "block#1[1][sum]", "head"]
    ds = hj.export_activations(linen, X, layers=names, store=tmp_path / "a.zarr", batch_size=8, progress=False)
    out, state = module.apply(variables, X, capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]
    ref = {
        "bn": inter["bn"]["__call__"][0],
        "block.fc": inter["block"]["fc"]["__call__"][0],
        "block.act#1": inter["block"]["act"][1],
        "block#1[1][sum]": inter["block"]["__call__"][1][1]["sum"][:, None],
        "head": out,
    }
    for name in names:
        np.testing.assert_allclose(ds[name].values[0], np.asarray(ref[name]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hj.predict(linen, X, batch_size=10), np.asarray(out), rtol=1e-5, atol=1e-6)


def test_linen_apply_kwargs(linen, tmp_path):
    module, variables = linen
    ds = hj.export_activations((module, variables, {"train": False}), X, layers=["head"], store=tmp_path / "a.zarr", progress=False)
    np.testing.assert_allclose(ds["head"].values[0], np.asarray(module.apply(variables, X, train=False)), rtol=1e-5, atol=1e-6)


def test_linen_bad_models():
    module = LinenNet()
    with pytest.raises(TypeError, match=r"bare Flax Linen module \(LinenNet\).*pass model=\(module, variables\)"):
        hj.list_layers(module, X)
    with pytest.raises(TypeError, match="needs the variables mapping from module.init; got list"):
        hj.list_layers((module, [1, 2]), X)


def test_linen_module_that_never_ran(tmp_path):
    class Skips(nn.Module):
        @nn.compact
        def __call__(self, x):
            extra = nn.Dense(6, name="extra")
            if x.shape[0] > 100:
                x = extra(x)
            return nn.Dense(2, name="out")(x)

    module = Skips()
    big = np.zeros((101, 6), np.float32)
    variables = module.init(jax.random.key(0), big)
    table = hj.list_layers((module, variables), X)
    assert {r.name: r.shape for r in table}["extra"] is None
    with pytest.raises(ValueError, match="'extra'.*never fired"):
        hj.export_activations((module, variables), X, layers=["extra"], store=tmp_path / "a.zarr")


class NNXBlock(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(5, 5, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.fc(x))
        self.sow(nnx.Intermediate, "act", h)
        return h


class NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.stem = nnx.Linear(6, 5, rngs=rngs)
        self.bn = nnx.BatchNorm(5, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.blocks = nnx.List([NNXBlock(rngs), NNXBlock(rngs)])
        self.seq = nnx.Sequential(nnx.Linear(5, 4, rngs=rngs), nnx.relu, nnx.Linear(4, 3, rngs=rngs))
        self.unused = nnx.Linear(2, 2, rngs=rngs)

    def __call__(self, x):
        x = self.drop(self.bn(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.seq(x)


def test_nnx_layers_and_capture(tmp_path):
    model = NNXNet(nnx.Rngs(0))
    model.bn.mean.set_value(model.bn.mean.get_value() + 0.2)
    table = hj.list_layers(model, X)
    assert table.names == [
        "stem", "bn", "drop", "blocks.0.fc", "blocks.0.act", "blocks.0", "blocks.1.fc", "blocks.1.act",
        "blocks.1", "seq.layers.0", "seq.layers.2", "seq",
    ]
    rows = {r.name: r for r in table}
    assert rows["unused"].shape is None and rows["blocks.0.act"].type == "sow"
    names = ["bn", "drop", "blocks.1.act", "seq"]
    ds = hj.export_activations(model, X, layers=names, store=tmp_path / "a.zarr", batch_size=10, progress=False)
    # the reference: an eval copy; the user's model stays in training mode and unchanged
    ref_model = nnx.merge(*nnx.split(model))
    ref_model.eval()
    h = ref_model.bn(ref_model.stem(X))
    ref = {"bn": h, "drop": h}
    for block in ref_model.blocks:
        h = block.fc(h).clip(0)
    ref["blocks.1.act"] = h
    ref["seq"] = ref_model.seq(h)
    for name in names:
        np.testing.assert_allclose(ds[name].values[0], np.asarray(ref[name]), rtol=1e-5, atol=1e-6)
    assert model.bn.use_running_average is False and model.drop.deterministic is False
    np.testing.assert_allclose(hj.predict(model, X, batch_size=8), np.asarray(ref["seq"]), rtol=1e-5, atol=1e-6)


def test_padding_keeps_one_compiled_shape(tmp_path):
    model = NNXNet(nnx.Rngs(1))
    capture = ADAPTER.capture(model, ["seq"])
    with capture as run:
        full = run(X[:16])
        short = run(X[16:19])
    assert capture.size == 16 and short["seq"].shape == (3, 3)
    np.testing.assert_allclose(short["seq"], run(X[16:32])["seq"][:3], rtol=1e-6)
    assert full["seq"].shape == (16, 3)


def test_flax_compression_goes_through_the_compress_module(monkeypatch, tmp_path, linen):
    module, variables = linen

    def apply_compression(model, perturbation):
        m, v = model[:2]
        head = dict(v["params"]["head"], kernel=jnp.zeros_like(v["params"]["head"]["kernel"]))
        return m, {**v, "params": {**v["params"], "head": head}}

    from holejax_flax import adapter

    monkeypatch.setattr(adapter, "apply_compression", apply_compression)
    p = hj.perturb.quantize(bits=4)
    ds = hj.export_activations(linen, X, layers=["head"], perturbations=[p], store=tmp_path / "a.zarr", progress=False)
    bias = np.asarray(variables["params"]["head"]["bias"])
    np.testing.assert_allclose(ds["head"].sel(perturbation=p.name).values, np.broadcast_to(bias, (N, 3)), rtol=1e-6)


def test_accepts_only_flax_models():
    assert not ADAPTER.accepts(object()) and not ADAPTER.accepts((1, 2))
    assert ADAPTER.accepts(NNXNet(nnx.Rngs(0)))


def test_listing_layers_under_cprofile_keeps_the_profiler(linen):
    import cProfile
    import pstats

    def after_listing():
        return 1

    def job():
        table = hj.list_layers(linen, X)
        after_listing()  # recorded only if the profiler is on again after the listing
        return table

    profile = cProfile.Profile()
    assert profile.runcall(job).names[0] == "stem"
    assert sys.getprofile() is None
    assert any(func[2] == "after_listing" for func in pstats.Stats(profile).stats)


def _traced_calls(monkeypatch) -> list:
    """Empties the adapter's caches and records each layer listing (a traced forward pass) it runs."""
    from holejax_flax import adapter

    monkeypatch.setattr(adapter, "_LISTS", {})
    monkeypatch.setattr(adapter, "_CAPTURE_FNS", {})
    calls = []
    original = adapter._producers

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(adapter, "_producers", counting)
    return calls


def test_repeated_linen_exports_reuse_listing_and_compiled_capture(monkeypatch, tmp_path):
    from holejax_flax import adapter

    listings = _traced_calls(monkeypatch)
    module = LinenNet()
    runs = [module.init(jax.random.key(k), X[:2]) for k in (1, 2)]
    outs = [
        hj.export_activations((LinenNet(), v), X, layers=["block.fc", "head"], store=tmp_path / f"{k}.zarr",
                              batch_size=8, progress=False)
        for k, v in enumerate(runs)
    ]
    fns = [fn for key, fn in adapter._CAPTURE_FNS.items() if key[:2] == ("linen", module)]
    assert len(listings) == 1 and len(fns) == 1 and fns[0]._cache_size() == 1
    for ds, v in zip(outs, runs):  # each export used its own weights
        np.testing.assert_allclose(ds["head"].values[0], np.asarray(module.apply(v, X)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(outs[0]["head"].values, outs[1]["head"].values)


def test_repeated_nnx_exports_reuse_listing_and_compiled_capture(monkeypatch, tmp_path):
    from holejax_flax import adapter

    listings = _traced_calls(monkeypatch)
    models = [NNXNet(nnx.Rngs(k)) for k in (3, 4)]
    outs = [
        hj.export_activations(m, X, layers=["seq"], store=tmp_path / f"{k}.zarr", batch_size=8, progress=False)
        for k, m in enumerate(models)
    ]
    graphdef = nnx.split(models[0])[0]
    fns = [fn for key, fn in adapter._CAPTURE_FNS.items() if key[:2] == ("nnx", graphdef)]
    assert len(listings) == 1 and len(fns) == 1 and fns[0]._cache_size() == 1
    for ds, m in zip(outs, models):
        np.testing.assert_allclose(ds["seq"].values[0], hj.predict(m, X), rtol=1e-5, atol=1e-6)


def test_unhashable_call_arguments_run_uncached(monkeypatch, tmp_path):
    """Call arguments such as a list cannot key a cache: predict and export still run, without caching."""
    from holejax_flax import adapter

    _traced_calls(monkeypatch)
    monkeypatch.setattr(adapter, "_PREDICT_FNS", {})

    class Scaled(nn.Module):
        @nn.compact
        def __call__(self, x, scales=(1.0,)):
            return nn.Dense(3, name="head")(x) * scales[0]

    module = Scaled()
    variables = module.init(jax.random.key(0), X[:2])
    model = (module, variables, {"scales": [2.0]})
    expected = 2.0 * np.asarray(module.apply(variables, X))
    np.testing.assert_allclose(hj.predict(model, X), expected, rtol=1e-5, atol=1e-6)
    ds = hj.export_activations(model, X, layers=["head"], store=tmp_path / "a.zarr", progress=False)
    np.testing.assert_allclose(ds["head"].values[0], expected / 2.0, rtol=1e-5, atol=1e-6)
    assert not adapter._PREDICT_FNS and not adapter._CAPTURE_FNS and not adapter._LISTS


# -- keyword and positional inputs -----------------------------------------------
W = np.random.default_rng(1).uniform(0.5, 1.5, size=N).astype(np.float32)


class LinenTwoInputs(nn.Module):
    @nn.compact
    def __call__(self, features, weight, scale: float = 1.0):
        h = nn.relu(nn.Dense(5, name="fc")(features)) * weight[:, None] * scale
        return nn.Dense(3, name="head")(h)


class NNXTwoInputs(nnx.Module):
    def __init__(self, rngs):
        self.fc, self.head = nnx.Linear(6, 5, rngs=rngs), nnx.Linear(5, 3, rngs=rngs)

    def __call__(self, features, weight):
        return self.head(nnx.relu(self.fc(features)) * weight[:, None])


@pytest.mark.parametrize("flavour", ["linen", "nnx"])
def test_keyword_and_positional_inputs(flavour, monkeypatch, tmp_path):
    from holejax_flax import adapter

    monkeypatch.setattr(adapter, "_CAPTURE_FNS", {})
    if flavour == "linen":
        module = LinenTwoInputs()
        variables = module.init(jax.random.key(0), X[:2], W[:2])
        model, fc = (module, variables), variables["params"]["fc"]
        ref_fc = X @ np.asarray(fc["kernel"]) + np.asarray(fc["bias"])
        ref_out = np.asarray(module.apply(variables, X, W))
    else:
        model = NNXTwoInputs(nnx.Rngs(0))
        ref_fc = np.asarray(model.fc(X))
        ref_out = np.asarray(model(X, W))
    kw = dict(layers=["fc", "head"], batch_size=8, progress=False)  # 37 samples: the last batch is padded
    by_name = hj.export_activations(model, {"features": X, "weight": W}, store=tmp_path / "k.zarr", **kw)
    by_position = hj.export_activations(model, (X, W), store=tmp_path / "p.zarr", **kw)
    for ds in (by_name, by_position):
        np.testing.assert_allclose(ds["head"].values[0], ref_out, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ds["fc"].values[0], ref_fc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hj.predict(model, {"features": X, "weight": W}, batch_size=10), ref_out, rtol=1e-5, atol=1e-6)
    # one compiled capture per kind of input (keyword, positional), each compiled once for every batch
    assert sorted(fn._cache_size() for fn in adapter._CAPTURE_FNS.values()) == [2]


def test_inputs_that_clash_with_call_arguments():
    module = LinenTwoInputs()
    variables = module.init(jax.random.key(0), X[:2], W[:2])
    model = (module, variables, {"scale": 2.0})
    np.testing.assert_allclose(hj.predict(model, {"features": X, "weight": W}),
                               np.asarray(module.apply(variables, X, W, scale=2.0)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"inputs and the model's call arguments both set \['scale'\]"):
        hj.list_layers(model, {"features": X, "weight": W, "scale": np.ones(N, np.float32)})


# -- blocks that return tuples or dataclasses: the residual preset takes their hidden state ---------
T = 7


@flax.struct.dataclass
class BlockOutput:
    hidden: jax.Array
    scores: jax.Array


class NNXTupleBlock(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, h, attention_mask):
        scores = jnp.einsum("btd,bsd->bts", h, h) + jnp.where(attention_mask[:, None, :] == 0, -1e9, 0.0)
        return BlockOutput(hidden=h + jnp.tanh(self.fc(nnx.softmax(scores) @ h)), scores=scores)


class NNXTokenModel(nnx.Module):
    def __init__(self, rngs):
        self.embed = nnx.Embed(10, 4, rngs=rngs)
        self.blocks = nnx.List([NNXTupleBlock(rngs), NNXTupleBlock(rngs)])

    def __call__(self, input_ids, attention_mask):
        h = self.embed(input_ids)
        for block in self.blocks:
            h = block(h, attention_mask).hidden
        return h[:, 0]


class LinenTupleBlock(nn.Module):
    @nn.compact
    def __call__(self, h, attention_mask):
        scores = jnp.einsum("btd,bsd->bts", h, h) + jnp.where(attention_mask[:, None, :] == 0, -1e9, 0.0)
        return h + jnp.tanh(nn.Dense(4, name="fc")(nn.softmax(scores) @ h)), scores


class LinenTokenModel(nn.Module):
    def setup(self):
        self.embed = nn.Embed(10, 4)
        self.blocks = [LinenTupleBlock(), LinenTupleBlock()]

    def __call__(self, input_ids, attention_mask):
        h = self.embed(input_ids)
        for block in self.blocks:
            h, _ = block(h, attention_mask)
        return h[:, 0]


def _token_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, T + 1, N)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int32)
    return {"input_ids": rng.integers(1, 10, (N, T)).astype(np.int32) * mask, "attention_mask": mask}


@pytest.mark.parametrize("flavour", ["linen", "nnx"])
def test_residual_preset_takes_the_hidden_state_of_tuple_and_dataclass_blocks(flavour, tmp_path):
    x = _token_inputs()
    if flavour == "nnx":
        model = NNXTokenModel(nnx.Rngs(0))
        hidden = ["blocks.0[hidden]", "blocks.1[hidden]"]
        states = [np.asarray(model.embed(x["input_ids"]))]
        for block in model.blocks:
            states.append(np.asarray(block(states[-1], x["attention_mask"]).hidden))
    else:
        module = LinenTokenModel()
        model = (module, module.init(jax.random.key(0), **x))
        hidden = ["blocks_0[0]", "blocks_1[0]"]
        states = [np.asarray(module.apply(model[1], x["input_ids"], method=lambda m, ids: m.embed(ids)))]
        for i in range(2):
            states.append(np.asarray(module.apply(
                model[1], states[-1], x["attention_mask"], method=lambda m, h, a, i=i: m.blocks[i](h, a)[0])))
    table = hj.list_layers(model, x)
    assert table.residual == ["embed", *hidden]
    assert {r.name: r.shape for r in table}[hidden[0]] == (T, 4)  # (token, unit): not flattened
    ds = hj.export_activations(model, x, store=tmp_path / "a.zarr", batch_size=16, progress=False)
    m = x["attention_mask"][..., None]
    for name, state in zip(["embed", *hidden], states):
        assert ds[name].attrs["pooling"] == "mean"
        np.testing.assert_allclose(ds[name].values[0], (state * m).sum(1) / m.sum(1), rtol=1e-5, atol=1e-6)
