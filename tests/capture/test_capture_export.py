"""export_activations end to end through a framework-free adapter: streaming, modes, resume, bad input."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import zarr

import holejax as hj
from holejax.capture import export_activations, predict
from holejax.perturb import global_l1_prune
from holejax.store import StoreError, layer_names, open_activations
from holejax.store import ActivationWriter
from holejax.store import zarr_ as store_engine

from numpy_adapter import NumpyAdapter, NumpyNet

N = 100
X = np.random.default_rng(1).normal(size=(N, 6)).astype(np.float32)
Y = np.arange(N) % 3


def export(store, model=None, inputs=X, adapter=None, **kw):
    kw.setdefault("labels", Y)
    kw.setdefault("batch_size", 16)
    kw.setdefault("progress", False)
    return export_activations(model or NumpyNet(), inputs, store=store, adapter=adapter or NumpyAdapter(), **kw)


@pytest.fixture
def batch_chunks(monkeypatch):
    """Store chunks of one batch (16 samples): an export that stops has written every batch before."""
    monkeypatch.setattr(store_engine, "default_sample_chunk", lambda *args: 16)


def values(ds) -> dict[str, np.ndarray]:
    return {name: ds[name].values for name in ds.data_vars}


def test_export_streams_the_layers_the_model_computes(tmp_path):
    net = NumpyNet()
    ds = export(tmp_path / "a.zarr", net, layers=["fc1", "relu2", "head"])
    # one forward pass on the example, then one per batch
    assert net.calls == 1 + -(-N // 16)
    ref = net.forward(X)
    assert sorted(ds.data_vars) == ["fc1", "head", "relu2"]
    for name in ds.data_vars:
        np.testing.assert_allclose(ds[name].sel(perturbation="clean").values, ref[name], rtol=1e-6)
    assert ds.attrs["framework"] == "numpy" and ds.attrs["model_class"] == "NumpyNet"
    assert bool(ds.attrs["complete"])
    np.testing.assert_array_equal(ds["label"].values, Y)
    assert ds["relu2"].attrs["pooling"] == "flatten" and list(ds["relu2"].attrs["shape"]) == [5]


def test_default_layers_are_nonlinearities_and_top_level_blocks(tmp_path):
    ds = export(tmp_path / "a.zarr")
    assert sorted(ds.data_vars) == ["fc1", "fc2", "head", "relu1", "relu2"]


@pytest.mark.parametrize("source_batch", [1, 7, 16, 33, N])
def test_iterables_of_batches_give_the_same_store_as_arrays(tmp_path, source_batch):
    ref = values(export(tmp_path / "array.zarr"))

    class Batches:  # re-iterable; labels inside the batches
        def __iter__(self):
            for s in range(0, N, source_batch):
                yield X[s : s + source_batch], Y[s : s + source_batch]

    ds = export(tmp_path / "iter.zarr", inputs=Batches(), labels=None)
    np.testing.assert_array_equal(ds["label"].values, Y)
    for name, v in values(ds).items():
        np.testing.assert_array_equal(v, ref[name])
    gen = (X[s : s + source_batch] for s in range(0, N, source_batch))
    ds = export(tmp_path / "gen.zarr", inputs=gen, n_samples=N)
    for name, v in values(ds).items():
        np.testing.assert_array_equal(v, ref[name])


def test_dict_batches_and_list_inputs(tmp_path):
    ref = values(export(tmp_path / "array.zarr"))

    class Dicts:
        def __iter__(self):
            for s in range(0, N, 10):
                yield {"x": X[s : s + 10], "label": Y[s : s + 10]}

    for store, inputs in [("dict.zarr", Dicts()), ("list.zarr", X.tolist())]:
        ds = export(tmp_path / store, inputs=inputs)
        for name, v in values(ds).items():
            np.testing.assert_allclose(v, ref[name], rtol=1e-6)


def test_noise_and_compression_perturbations(tmp_path):
    adapter = NumpyAdapter()
    net = NumpyNet()
    perts = [hj.gaussian(sigma=0.5), global_l1_prune(0.3)]
    ds = export(tmp_path / "a.zarr", net, adapter=adapter, perturbations=perts, layers=["head"], seed=3)
    assert [str(p) for p in ds["perturbation"].values] == ["clean", perts[0].name, perts[1].name]
    assert adapter.compressed == [perts[1].name]
    noisy = perts[0].apply_at(X, seed=3, start=0)
    np.testing.assert_allclose(ds["head"].sel(perturbation=perts[0].name).values, net.forward(noisy)["head"], rtol=1e-5)
    pruned = adapter.compress(net, perts[1])
    np.testing.assert_allclose(ds["head"].sel(perturbation=perts[1].name).values, pruned.forward(X)["head"], rtol=1e-5)
    assert ds.attrs["perturbation_params"][perts[0].name]["sigma"] == 0.5
    # predict sees exactly the exported noisy inputs
    logits = predict(net, X, perturbation=perts[0], seed=3, batch_size=7, adapter=adapter)
    np.testing.assert_allclose(logits, ds["head"].sel(perturbation=perts[0].name).values, rtol=1e-5)


class Interrupted(RuntimeError):
    pass


class FailingBatches:
    """Batches that raise once, after ``fail_after`` batches, on the first pass made once ``store`` exists."""

    def __init__(self, store, fail_after: int, size: int = 10):
        self.store, self.fail_after, self.size, self.failed = store, fail_after, size, False

    def __iter__(self):
        armed = self.store.exists() and not self.failed
        for i, s in enumerate(range(0, N, self.size)):
            if armed and i == self.fail_after:
                self.failed = True
                raise Interrupted("input pipeline failed")
            yield X[s : s + self.size], Y[s : s + self.size]


@pytest.mark.parametrize("resume_batch", [16, 5])
def test_resume_after_interruption_equals_an_uninterrupted_export(tmp_path, resume_batch, batch_chunks):
    perts = [hj.gaussian(sigma=0.3)]
    ref = values(export(tmp_path / "whole.zarr", perturbations=perts))
    store = tmp_path / "cut.zarr"
    with pytest.raises(Interrupted):
        export(store, inputs=FailingBatches(store, fail_after=4), labels=None, perturbations=perts)
    with pytest.raises(StoreError, match="interrupted export"):
        open_activations(store)
    progress = open_activations(store, allow_incomplete=True).attrs["progress"]
    assert 0 < progress["clean"] < N
    with pytest.raises(StoreError, match="mode='resume'"):
        export(store, perturbations=perts)
    net = NumpyNet()
    ds = export(store, net, perturbations=perts, mode="resume", batch_size=resume_batch)
    assert bool(ds.attrs["complete"])
    for name, v in values(ds).items():
        np.testing.assert_allclose(v, ref[name], rtol=1e-6, err_msg=name)
    # only the missing samples ran through the model again
    done = min(progress.values())
    assert net.calls - 1 <= 2 * -(-(N - done) // resume_batch) + 2


def test_resume_of_a_finished_store_runs_nothing(tmp_path):
    export(tmp_path / "a.zarr")
    net = NumpyNet()
    ds = export(tmp_path / "a.zarr", net, mode="resume")
    assert net.calls == 1 and bool(ds.attrs["complete"])


def test_resume_with_another_seed_is_refused(tmp_path):
    store = tmp_path / "cut.zarr"
    with pytest.raises(Interrupted):
        export(store, inputs=FailingBatches(store, 2), labels=None, perturbations=[hj.gaussian(sigma=0.3)], seed=1)
    with pytest.raises(ValueError, match="seed=2 but the store .* seed=1"):
        export(store, perturbations=[hj.gaussian(sigma=0.3)], mode="resume", seed=2)


def test_resume_or_append_with_another_model_is_refused(tmp_path):
    store = tmp_path / "a.zarr"
    export(store)

    class OtherNet(NumpyNet):
        pass

    with pytest.raises(ValueError, match="holds activations of a numpy NumpyNet, but this model is a numpy OtherNet"):
        export(store, OtherNet(), mode="append", perturbations=[hj.gaussian(sigma=0.1)])


def test_append_perturbations_to_a_finished_store(tmp_path):
    perts = [hj.gaussian(sigma=0.3), hj.uniform(a=0.2)]
    ref = values(export(tmp_path / "both.zarr", perturbations=perts))
    store = tmp_path / "grow.zarr"
    export(store, perturbations=perts[:1])
    net = NumpyNet()
    ds = export(store, net, perturbations=perts, mode="append")
    assert [str(p) for p in ds["perturbation"].values] == ["clean", perts[0].name, perts[1].name]
    assert net.calls == 1 + -(-N // 16)  # only the new perturbation ran
    for name, v in values(ds).items():
        np.testing.assert_allclose(v, ref[name], rtol=1e-6)


def test_existing_store_modes(tmp_path):
    store = tmp_path / "a.zarr"
    export(store)
    with pytest.raises(StoreError, match="already exists"):
        export(store)
    ds = export(store, mode="overwrite", layers=["head"])
    assert list(ds.data_vars) == ["head"]
    with pytest.raises(ValueError, match="mode='later' is not supported"):
        export(store, mode="later")


def test_store_written_by_another_tool_is_refused(tmp_path):
    foreign = tmp_path / "other.zarr"
    zarr.open_group(foreign, mode="w", zarr_format=3).attrs["tool"] = "not holejax"
    for mode in ("resume", "append"):
        with pytest.raises(StoreError, match="another tool"):
            export(foreign, mode=mode)
    with pytest.raises(StoreError, match="not a holejax activations store"):
        export(foreign, mode="overwrite")
    assert json.loads((foreign / "zarr.json").read_text())["attributes"] == {"tool": "not holejax"}


def test_non_finite_activations_name_the_layer_and_the_first_bad_sample(tmp_path, batch_chunks):
    bad = X.copy()
    bad[37, 2] = np.nan
    bad[52, 0] = np.inf
    with pytest.raises(ValueError, match=r"layer 'fc1' produced NaN or Inf for sample 37 \(perturbation 'clean'\)"):
        export(tmp_path / "a.zarr", inputs=bad)
    # what came before the bad batch is kept and the store says it is unfinished
    ds = open_activations(tmp_path / "a.zarr", allow_incomplete=True)
    assert ds.attrs["progress"]["clean"] == 32 and not ds.attrs["complete"]


def test_label_count_mismatch(tmp_path):
    with pytest.raises(ValueError, match="labels has 99 entries but there are 100 samples"):
        export(tmp_path / "a.zarr", labels=Y[:-1])
    assert not (tmp_path / "a.zarr").exists()


def test_unknown_layer_lists_close_matches_and_available_names(tmp_path):
    with pytest.raises(ValueError, match=r"'relu3'.*Close matches: \['relu\d', 'relu\d'\].*Available layers: \['fc1', 'relu1', 'fc2'"):
        export(tmp_path / "a.zarr", layers=["relu3"])
    assert not (tmp_path / "a.zarr").exists()


def test_layer_that_never_fired(tmp_path):
    with pytest.raises(ValueError, match="'branch'.*never fired"):
        export(tmp_path / "a.zarr", layers=["branch"])
    # fires on the example batch but not later: named with the samples and perturbation
    net = NumpyNet(branch_when=lambda x: float(x[0, 0]) == float(X[0, 0]))
    with pytest.raises(ValueError, match=r"layer 'branch' did not fire for samples 16\.\.31 \(perturbation 'clean'\)"):
        export(tmp_path / "b.zarr", net, layers=["branch"])


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int; got 0"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be a positive int"),
        ({"seed": "0"}, TypeError, "seed must be an int"),
        ({"pooling": "median"}, ValueError, "pooling='median' is not supported"),
        ({"pooling": "max"}, ValueError, r"pooling 'max' expects a per-sample \(token, feature\) output"),
        ({"pooling": {"fc9": "flatten"}}, ValueError, r"pooling keys \['fc9'\] match none"),
        ({"perturbations": ["gausian(sigma=0.1)"]}, ValueError, "perturbations"),
        ({"inputs": np.array([["a", "b"]] * N)}, TypeError, "inputs must be a numeric array"),
        ({"inputs": iter([X])}, ValueError, r"one-shot iterator \(list_iterator\) of unknown length; pass n_samples="),
        ({"inputs": 3}, TypeError, "inputs must be an array"),
        ({"inputs": X[:0]}, ValueError, "inputs holds no samples"),
        ({"compressors": "gzip"}, ValueError, "compressors='gzip' is not a known name"),
        ({"compressors": 3}, TypeError, "compressors must be None, 'lz4', 'zstd' or Zarr v3"),
    ],
)
def test_bad_arguments_are_rejected_before_writing(tmp_path, kw, error, match):
    with pytest.raises(error, match=match):
        export(tmp_path / "a.zarr", **kw)
    assert not (tmp_path / "a.zarr").exists()


def test_generator_with_wrong_n_samples(tmp_path):
    gen = (X[s : s + 10] for s in range(0, N, 10))
    with pytest.raises(ValueError, match="inputs ended after 100 samples but 120 were expected"):
        export(tmp_path / "a.zarr", inputs=gen, n_samples=120, labels=None)


def test_progress_bar_reports_samples_per_second(tmp_path, capsys):
    export(tmp_path / "a.zarr", progress=True)
    assert "samples/s" in capsys.readouterr().err


def test_peak_memory_does_not_grow_with_the_data_set(tmp_path):
    def peak(n: int) -> int:
        X_big = np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32)
        net = NumpyNet(hidden=512)
        tracemalloc.start()
        export(tmp_path / f"{n}.zarr", net, inputs=X_big, labels=None, batch_size=256)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(4_000), peak(16_000)  # both past their first two chunks: the rows the writer holds
    whole = 16_000 * 512 * 4 * 3  # the large export's activations of three 512-wide layers
    assert large < small + 0.25 * whole, (small, large, whole)


def test_a_write_error_in_the_writer_thread_reaches_the_caller_and_leaves_the_store_unfinished(
    tmp_path, monkeypatch, batch_chunks
):
    write = ActivationWriter._write_layers

    def failing(self, p_index, blocks, attrs):
        if any(first >= 48 for _, first, _ in blocks):
            raise OSError("no space left on device")
        return write(self, p_index, blocks, attrs)

    monkeypatch.setattr(ActivationWriter, "_write_layers", failing)
    with pytest.raises(OSError, match="no space left on device"):
        export(tmp_path / "a.zarr")
    with pytest.raises(StoreError, match="interrupted export"):
        open_activations(tmp_path / "a.zarr")
    assert open_activations(tmp_path / "a.zarr", allow_incomplete=True).attrs["progress"] == {"clean": 48}
    monkeypatch.undo()
    resumed = export(tmp_path / "a.zarr", mode="resume")
    whole = export(tmp_path / "b.zarr")
    for name in whole.data_vars:
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)


def test_compressors_change_the_codec_not_the_values(tmp_path):
    plain = export(tmp_path / "a.zarr")
    packed = export(tmp_path / "b.zarr", compressors="zstd")
    codecs = zarr.open_array(tmp_path / "b.zarr" / "fc1", mode="r").metadata.codecs
    assert [c.to_dict()["name"] for c in codecs] == ["bytes", "zstd", "crc32c"]
    assert [c.to_dict()["name"] for c in zarr.open_array(tmp_path / "a.zarr" / "fc1", mode="r").metadata.codecs] == ["bytes", "crc32c"]
    for name in plain.data_vars:
        np.testing.assert_array_equal(plain[name].values, packed[name].values)


def test_store_keeps_the_execution_order_of_the_layers(tmp_path):
    export(tmp_path / "a.zarr", layers=["head", "relu1", "fc2"])
    ds = open_activations(tmp_path / "a.zarr")
    assert ds.attrs["layers"] == ["relu1", "fc2", "head"] == layer_names(ds)


def test_tuple_and_mapping_inputs_call_the_model_with_arguments(tmp_path):
    """A tuple is the model's positional arguments, a mapping its keyword arguments; labels come out of it."""
    offset = np.random.default_rng(2).normal(size=X.shape).astype(np.float32)
    want = values(export(tmp_path / "sum.zarr", inputs=X + offset, layers=["fc1", "head"]))
    by_tuple = export(tmp_path / "tuple.zarr", inputs=(X, offset), layers=["fc1", "head"])
    by_mapping = export(tmp_path / "map.zarr", inputs={"features": X, "offset": offset, "labels": Y},
                        layers=["fc1", "head"], labels=None)
    for ds in (by_tuple, by_mapping):
        for name, v in want.items():
            np.testing.assert_allclose(ds[name].values, v, rtol=1e-6)
    np.testing.assert_array_equal(by_mapping["label"].values, Y)

    class Batches:  # a DataLoader of dicts: every key reaches the model
        def __iter__(self):
            for s in range(0, N, 30):
                yield {"features": X[s : s + 30], "offset": offset[s : s + 30], "label": Y[s : s + 30]}

    ds = export(tmp_path / "dl.zarr", inputs=Batches(), layers=["fc1", "head"], labels=None)
    for name, v in want.items():
        np.testing.assert_allclose(ds[name].values, v, rtol=1e-6)
    np.testing.assert_array_equal(ds["label"].values, Y)
    np.testing.assert_allclose(predict(NumpyNet(), (X, offset), adapter=NumpyAdapter()), want["head"][0], rtol=1e-6)


def test_input_noise_reaches_floating_arrays_only(tmp_path):
    noise = hj.gaussian(sigma=0.5)
    ids = np.zeros_like(X)  # a second, floating input gets its own noise too
    ds = export(tmp_path / "a.zarr", inputs={"features": X, "offset": ids}, layers=["fc1"], perturbations=[noise])
    noisy = np.asarray(noise.apply_at(X, seed=0, start=0))
    want = NumpyNet().forward(noisy, np.asarray(noise.apply_at(ids, seed=0, start=0)))["fc1"]
    np.testing.assert_allclose(ds["fc1"].sel(perturbation=noise.name).values, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"inputs \['features'\] hold no floating array"):
        export(tmp_path / "b.zarr", inputs={"features": (X > 0).astype(np.int64)}, layers=["fc1"],
               perturbations=[noise])


class TokenNet(NumpyNet):
    """Per-token features: ``features`` (sample, token, d_in) -> fc1 (sample, token, hidden)."""

    def forward(self, features, attention_mask=None):
        self.calls += 1
        x = np.asarray(features, np.float32)
        fc1 = x @ self.w["fc1"]
        return {"fc1": fc1, "relu1": np.maximum(fc1, 0), "head": fc1.mean(axis=1) @ self.w["fc2"] @ self.w["head"]}


def test_token_outputs_are_pooled_over_the_mask_in_the_core(tmp_path):
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(20, 7, 6)).astype(np.float32)
    lengths = rng.integers(1, 8, 20)
    mask = (np.arange(7)[None] < lengths[:, None]).astype(np.int64)
    inputs = {"features": feats, "attention_mask": mask}
    ds = export(tmp_path / "a.zarr", TokenNet(), inputs=inputs, layers=["fc1", "relu1"], labels=None,
                pooling={"fc1": "mean", "relu1": "max"}, batch_size=6)
    h = TokenNet().forward(feats)
    for i in range(20):
        real = slice(0, lengths[i])
        np.testing.assert_allclose(ds["fc1"].values[0, i], h["fc1"][i, real].mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ds["relu1"].values[0, i], h["relu1"][i, real].max(0), rtol=1e-6)
    with pytest.raises(ValueError, match=r"layer 'fc1' has 7 tokens for samples 0..5 \(perturbation 'clean'\) but the mask has 3"):
        export(tmp_path / "b.zarr", TokenNet(), inputs=feats, mask=mask[:, :3], layers=["fc1"], labels=None,
               pooling="mean", batch_size=6)
    assert not (tmp_path / "b.zarr").exists() or not open_activations(tmp_path / "b.zarr", allow_incomplete=True).attrs["complete"]
