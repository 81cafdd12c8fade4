"""Hugging Face transformers in PyTorch: structured inputs, masked token pooling, the residual preset.

Tiny randomly initialised models built from configs (no downloads). Every
pooled activation is compared with the model's own ``output_hidden_states``
pooled by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import holejax as hj  # noqa: E402

N, T, VOCAB, H = 12, 9, 40, 32


def _tiny(kind: str):
    torch.manual_seed(0)
    if kind == "bert":
        cfg = transformers.BertConfig(
            vocab_size=VOCAB, hidden_size=H, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * H,
            max_position_embeddings=32,
        )
        return transformers.BertModel(cfg).eval()
    if kind == "gpt2":
        cfg = transformers.GPT2Config(
            vocab_size=VOCAB, n_embd=H, n_layer=2, n_head=2, n_positions=32, bos_token_id=0, eos_token_id=0,
        )
        return transformers.GPT2Model(cfg).eval()
    cfg = transformers.ViTConfig(
        hidden_size=H, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * H, image_size=16,
        patch_size=8, num_channels=3,
    )
    return transformers.ViTModel(cfg).eval()


@pytest.fixture(scope="module")
def bert():
    return _tiny("bert")


@pytest.fixture(scope="module")
def gpt2():
    return _tiny("gpt2")


def _tokens(n: int = N, t: int = T, seed: int = 0) -> dict[str, np.ndarray]:
    """Right-padded token ids and their attention mask; lengths 2..t, at least one full row."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, t + 1, n)
    lengths[0] = t
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": rng.integers(1, VOCAB, (n, t)) * mask, "attention_mask": mask}


def _hidden_states(model, **inputs) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(**{k: torch.as_tensor(v) for k, v in inputs.items()}, output_hidden_states=True)
    return [h.numpy() for h in out.hidden_states]


def _by_hand(h: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Pooling written out with loops over samples: the reference."""
    rows = []
    for i in range(len(h)):
        real = np.flatnonzero(mask[i])
        tokens = h[i, real]
        rows.append({"mean": tokens.mean(0), "cls": tokens[0], "last": tokens[-1], "max": tokens.max(0)}[pooling])
    return np.stack(rows)


def _clean(ds, name):
    return ds[name].sel(perturbation="clean").values


def test_default_preset_is_embeddings_and_every_block(bert, gpt2):
    table = hj.list_layers(bert, _tokens())
    assert table.residual == ["embeddings", "encoder.layer.0", "encoder.layer.1"]
    assert "* layers=\"residual\"" in str(table)
    marked = [line.split()[0] for line in str(table).splitlines()[1:-1] if line.rstrip().endswith("*")]
    assert marked == table.residual
    assert hj.list_layers(gpt2, _tokens()).residual == ["drop", "h.0", "h.1"]
    vit = _tiny("vit")
    blocks = [p for p, m in vit.named_modules() if type(m).__name__ == "ViTLayer"]
    assert hj.list_layers(vit, np.zeros((2, 3, 16, 16), np.float32)).residual == ["embeddings", *blocks]
    assert len(blocks) == 2


@pytest.mark.parametrize("pooling", ["mean", "cls", "last", "max"])
def test_bert_pooling_equals_the_masked_pooling_of_its_hidden_states(bert, tmp_path, pooling):
    inputs = _tokens()
    ds = hj.export_activations(
        bert, inputs, store=tmp_path / "a.zarr", batch_size=5, progress=False,
        pooling=None if pooling == "mean" else pooling,  # mean is the default for token outputs
    )
    names = hj.store.layer_names(ds)
    assert names == ["embeddings", "encoder.layer.0", "encoder.layer.1"]  # the preset, by default
    states = _hidden_states(bert, **inputs)
    assert len(states) == len(names)
    for name, h in zip(names, states):
        assert ds[name].attrs["pooling"] == pooling
        np.testing.assert_allclose(_clean(ds, name), _by_hand(h, inputs["attention_mask"], pooling),
                                   rtol=1e-5, atol=1e-5, err_msg=name)
    if pooling == "mean":  # padding moved the unmasked mean: the test can tell the two apart
        unmasked = states[-1].mean(axis=1)
        assert np.abs(_clean(ds, names[-1]) - unmasked).max() > 1e-2


def test_gpt2_last_token_and_the_residual_stream(gpt2, tmp_path):
    inputs = _tokens()
    ds = hj.export_activations(gpt2, inputs, store=tmp_path / "g.zarr", pooling="last", batch_size=5,
                               progress=False)
    states = _hidden_states(gpt2, **inputs)  # embeddings, h.0, then ln_f(h.1)
    mask = inputs["attention_mask"]
    np.testing.assert_allclose(_clean(ds, "drop"), _by_hand(states[0], mask, "last"), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_clean(ds, "h.0"), _by_hand(states[1], mask, "last"), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the final LayerNorm works token by token, so it commutes with picking a token
        last = gpt2.ln_f(torch.from_numpy(_clean(ds, "h.1"))).numpy()
    np.testing.assert_allclose(last, _by_hand(states[2], mask, "last"), rtol=1e-5, atol=1e-5)


def test_vit_without_a_mask_pools_every_token(tmp_path):
    vit = _tiny("vit")
    pixels = np.random.default_rng(0).normal(size=(6, 3, 16, 16)).astype(np.float32)
    ds = hj.export_activations(vit, pixels, store=tmp_path / "v.zarr", batch_size=4, progress=False)
    names = hj.store.layer_names(ds)
    states = _hidden_states(vit, pixel_values=pixels)
    assert len(names) == len(states) == 3 and names[0] == "embeddings"
    for name, h in zip(names, states):
        np.testing.assert_allclose(_clean(ds, name), h.mean(axis=1), rtol=1e-5, atol=1e-5, err_msg=name)
    # other token outputs as long as the residual stream are pooled the same way: the final LayerNorm
    final = hj.export_activations(vit, pixels, layers="layernorm", store=tmp_path / "f.zarr", progress=False)
    with torch.no_grad():
        want = vit(pixel_values=torch.from_numpy(pixels)).last_hidden_state.numpy().mean(axis=1)
    assert final["layernorm"].attrs["pooling"] == "mean"
    np.testing.assert_allclose(_clean(final, "layernorm"), want, rtol=1e-5, atol=1e-5)


def test_dict_batchencoding_tuple_and_dataloader_inputs_agree(bert, tmp_path):
    inputs = _tokens()
    labels = np.arange(N) % 3
    kw = dict(layers="residual", batch_size=5, progress=False)
    want = hj.export_activations(bert, inputs, labels=labels, store=tmp_path / "dict.zarr", **kw)
    encoding = transformers.BatchEncoding({k: torch.from_numpy(v) for k, v in inputs.items()})
    encoding["labels"] = torch.from_numpy(labels)  # a labels key gives the labels, not a model argument
    rows = [{"input_ids": inputs["input_ids"][i], "attention_mask": inputs["attention_mask"][i],
             "labels": labels[i]} for i in range(N)]
    loader = torch.utils.data.DataLoader(rows, batch_size=4)
    got = {
        "BatchEncoding": hj.export_activations(bert, encoding, store=tmp_path / "be.zarr", **kw),
        "tuple": hj.export_activations(bert, (inputs["input_ids"], inputs["attention_mask"]), labels=labels,
                                       mask=inputs["attention_mask"], store=tmp_path / "tuple.zarr", **kw),
        "DataLoader": hj.export_activations(bert, loader, store=tmp_path / "dl.zarr", **kw),
    }
    for kind, ds in got.items():
        np.testing.assert_array_equal(ds["label"].values, labels, err_msg=kind)
        for name in hj.store.layer_names(want):
            np.testing.assert_allclose(_clean(ds, name), _clean(want, name), rtol=1e-5, atol=1e-6, err_msg=kind)
    np.testing.assert_allclose(hj.predict(bert, encoding, batch_size=5)[:, 0], _hidden_states(bert, **inputs)[-1][:, 0],
                               rtol=1e-5, atol=1e-5)


def _padded_per_batch(rows: list[dict]) -> dict:
    """A collate function that pads each batch to its own longest sequence."""
    t = max(int(r["attention_mask"].sum()) for r in rows)
    return {k: torch.as_tensor(np.stack([r[k][:t] for r in rows])) for k in ("input_ids", "attention_mask")}


def test_batches_padded_to_different_lengths(bert, tmp_path):
    inputs = _tokens(n=10, t=T, seed=1)
    order = np.argsort(inputs["attention_mask"].sum(1))  # short texts first: the first batches are shorter
    inputs = {k: v[order] for k, v in inputs.items()}
    rows = [{k: v[i] for k, v in inputs.items()} for i in range(10)]
    loader = torch.utils.data.DataLoader(rows, batch_size=3, collate_fn=_padded_per_batch)
    assert len({b["input_ids"].shape[1] for b in loader}) > 1
    ds = hj.export_activations(bert, loader, store=tmp_path / "v.zarr", batch_size=4, progress=False)
    whole = hj.export_activations(bert, inputs, store=tmp_path / "w.zarr", batch_size=4, progress=False)
    states = _hidden_states(bert, **inputs)
    for name, h in zip(hj.store.layer_names(ds), states):
        np.testing.assert_allclose(_clean(ds, name), _clean(whole, name), rtol=1e-4, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(_clean(ds, name), _by_hand(h, inputs["attention_mask"], "mean"),
                                   rtol=1e-4, atol=1e-5, err_msg=name)


def test_tokens_pooling_gives_one_row_per_real_token(bert, tmp_path):
    inputs = _tokens(n=8)
    labels = np.arange(8) % 2
    ds = hj.export_activations(bert, inputs, labels=labels, pooling="tokens", store=tmp_path / "t.zarr",
                               batch_size=3, progress=False)
    mask = inputs["attention_mask"].astype(bool)
    sample, token = np.nonzero(mask)
    assert ds.sizes["sample"] == mask.sum()
    np.testing.assert_array_equal(ds["sample"].values, sample)
    np.testing.assert_array_equal(ds["token"].values, token)
    np.testing.assert_array_equal(ds["label"].values, labels[sample])
    for name, h in zip(hj.store.layer_names(ds), _hidden_states(bert, **inputs)):
        np.testing.assert_allclose(_clean(ds, name), h[mask], rtol=1e-5, atol=1e-5, err_msg=name)
    result = hj.analyze(ds, metrics=["euclidean"])
    assert int(result.sizes["layer"]) == 3


def test_tokens_store_records_its_coordinates_in_the_manifest(bert, tmp_path):
    inputs = _tokens(n=8)
    store = tmp_path / "t.zarr"
    ds = hj.export_activations(bert, inputs, pooling="tokens", layers="embeddings", store=store, progress=False)
    assert {"sample", "token"} <= set(ds.attrs["manifest"])
    (store / "token" / "c.0").write_bytes(b"")  # the token coordinate cut short
    with pytest.raises(hj.store.StoreError, match="token"):
        hj.open_activations(store)


def test_tokens_store_repairs_a_chunk_that_starts_inside_a_sample(bert, tmp_path, monkeypatch):
    from holejax.store import zarr_ as store_engine

    monkeypatch.setattr(store_engine, "default_sample_chunk", lambda *args: 7)  # rows: chunks cut samples
    inputs = _tokens(n=8)
    store = tmp_path / "t.zarr"
    kw = dict(pooling="tokens", layers=["embeddings", "encoder.layer.1"], store=store, batch_size=3, progress=False)
    whole = hj.export_activations(bert, inputs, **kw)
    offsets = np.concatenate([[0], np.cumsum(inputs["attention_mask"].sum(1))])
    k = next(k for k in range(1, len(offsets)) if 7 * k not in offsets and 7 * k < offsets[-1])
    (store / "embeddings" / f"c.0.{k}.0").unlink()  # rows 7k.. of clean, from inside a sample
    with pytest.raises(hj.store.StoreError, match="missing"):
        hj.open_activations(store)
    repaired = hj.export_activations(bert, inputs, mode="resume", **kw)
    for name in hj.store.layer_names(whole):
        np.testing.assert_array_equal(repaired[name].values, whole[name].values, err_msg=name)
    np.testing.assert_array_equal(repaired["token"].values, whole["token"].values)


def test_tokens_store_resume_refuses_other_masks(bert, tmp_path):
    inputs = _tokens(n=8)
    store = tmp_path / "t.zarr"
    kw = dict(pooling="tokens", layers="embeddings", store=store, progress=False)
    hj.export_activations(bert, inputs, **kw)
    other = {**inputs, "attention_mask": inputs["attention_mask"].copy()}
    i = int(np.argmin(inputs["attention_mask"].sum(1)))  # a text shorter than T
    other["attention_mask"][i, 0] = 0  # as many rows, other tokens
    other["attention_mask"][i, inputs["attention_mask"][i].sum()] = 1
    with pytest.raises(hj.store.StoreError, match="'token' coordinates"):
        hj.export_activations(bert, other, mode="resume", **kw)


def test_explicit_mask_by_key_and_by_array(bert, tmp_path):
    inputs = _tokens()
    mask = inputs["attention_mask"].copy()
    mask[:, 0] = 0  # leave the first token out of the pooling
    by_array = hj.export_activations(bert, inputs, mask=mask, layers="embeddings", store=tmp_path / "a.zarr",
                                     progress=False)
    h = _hidden_states(bert, **inputs)[0]
    np.testing.assert_allclose(_clean(by_array, "embeddings"), _by_hand(h, mask, "mean"), rtol=1e-5, atol=1e-5)
    by_key = hj.export_activations(bert, inputs, mask="attention_mask", layers="embeddings",
                                   store=tmp_path / "k.zarr", progress=False)
    np.testing.assert_allclose(_clean(by_key, "embeddings"), _by_hand(h, inputs["attention_mask"], "mean"),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda x: {**x, "attention_mask": x["attention_mask"][:-1]}, ValueError,
         r"inputs\['attention_mask'\] holds 11 samples but inputs\['input_ids'\] holds 12"),
        (lambda x: (x["input_ids"], x["attention_mask"][:5]), ValueError, r"inputs\[1\] holds 5 samples"),
        (lambda x: {**x, "labels": np.zeros(5, int)}, ValueError, "labels found in the inputs has 5 entries"),
    ],
)
def test_mismatched_sample_counts_are_named(bert, tmp_path, change, error, match):
    with pytest.raises(error, match=match):
        hj.export_activations(bert, change(_tokens()), store=tmp_path / "a.zarr", progress=False)
    assert not (tmp_path / "a.zarr").exists()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"mask": "mask"}, r"mask='mask' names no key of the model inputs \(keys: \['attention_mask', 'input_ids'\]\)"),
        ({"mask": np.ones((3, T))}, r"numeric \(sample, token\) array with 12 rows; got dtype float64, shape \(3, 9\)"),
        ({"labels": np.zeros(3, int)}, "labels has 3 entries"),
        ({"perturbations": [hj.gaussian(sigma=0.1)]}, "hold no floating array"),
    ],
)
def test_bad_masks_labels_and_noise_on_token_ids(bert, tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        hj.export_activations(bert, _tokens(), store=tmp_path / "a.zarr", progress=False, **kw)
