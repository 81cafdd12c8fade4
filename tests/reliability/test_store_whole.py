"""A finished store proves it is whole: lost or damaged chunks are errors naming the array and chunk, never data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr

from holejax.store import ActivationWriter, LayerSpec, StoreError, open_activations

LAYERS = [LayerSpec("conv", (2, 3)), LayerSpec("fc", (4,))]
N, BATCH = 10, 4


def data(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {p: {s.name: rng.normal(size=(N, s.units)).astype(np.float32) for s in LAYERS} for p in ("clean", "noise")}


def write(path, acts, mode="error"):
    w = ActivationWriter.create(path, LAYERS, N, perturbations=list(acts), labels=np.arange(N) % 3, mode=mode,
                                sample_chunk=BATCH)
    for p in w.pending():
        for start in range(w.next_sample(p), N, BATCH):
            w.write_batch(p, start, {k: v[start:start + BATCH] for k, v in acts[p].items()})
    return w.finish()


@pytest.fixture
def store(tmp_path):
    acts = data()
    write(tmp_path / "acts.zarr", acts)
    return tmp_path / "acts.zarr", acts


def chunk_key(path, layer, p_index, k):
    """The object key of a layer chunk, as Zarr names it (``c.<perturbation>.<sample chunk>.0``)."""
    return path / layer / f"c.{p_index}.{k}.0"


def test_a_whole_store_opens_and_reads_what_was_written(store):
    path, acts = store
    ds = open_activations(path)
    for p_index, p in enumerate(acts):
        for name, arr in acts[p].items():
            np.testing.assert_array_equal(ds[name].values[p_index], arr)
    manifest = ds.attrs["manifest"]
    assert manifest["fc"]["chunks"] == 2 * 3  # 2 perturbations x 3 sample chunks
    assert manifest["label"]["chunks"] == 1


def test_a_deleted_chunk_is_named(store):
    path, _ = store
    chunk_key(path, "fc", 1, 2).unlink()
    with pytest.raises(StoreError, match=r"damaged: array 'fc' chunk \(1, 2, 0\) \(perturbation 'noise', "
                                         r"samples 8..9\) is missing.*mode='resume'"):
        open_activations(path)


def test_a_deleted_layer_folder_is_named(store):
    path, _ = store
    shutil.rmtree(path / "conv")
    with pytest.raises(StoreError, match=r"damaged: array 'conv': the array is missing.*mode='overwrite'"):
        open_activations(path)


def test_a_truncated_chunk_is_named(store):
    path, _ = store
    key = chunk_key(path, "conv", 0, 1)
    key.write_bytes(key.read_bytes()[:-7])
    with pytest.raises(StoreError, match=r"array 'conv' chunk \(0, 1, 0\) \(perturbation 'clean', samples 4..7\) "
                                         r"is damaged"):
        open_activations(path)


def test_a_deleted_label_chunk_is_an_error_not_class_zero(store):
    path, _ = store
    for f in (path / "label").iterdir():
        if f.is_file() and f.name != "zarr.json":
            f.unlink()
    with pytest.raises(StoreError, match=r"array 'label': 1 of its 1 chunks are missing"):
        open_activations(path)


def test_a_chunk_altered_in_place_fails_its_checksum_when_read(store):
    path, acts = store
    key = chunk_key(path, "fc", 0, 0)
    raw = bytearray(key.read_bytes())
    raw[5] ^= 0xFF  # same size: the listing cannot see it, the CRC-32C can
    key.write_bytes(bytes(raw))
    ds = open_activations(path)
    with pytest.raises(ValueError, match="checksum"):
        ds["fc"].values


def test_an_invalid_root_zarr_json_is_damaged_not_foreign(store):
    path, _ = store
    (path / "zarr.json").write_text("{ not json")
    with pytest.raises(StoreError, match=r"is damaged: its root zarr.json cannot be read"):
        open_activations(path)


@pytest.mark.parametrize("complete", ["false", "true", 1, None])
def test_complete_must_be_the_boolean_true(store, complete):
    path, _ = store
    group = zarr.open_group(path, mode="r+", use_consolidated=False)
    group.attrs["complete"] = complete
    zarr.consolidate_metadata(str(path))
    with pytest.raises(StoreError, match=rf"interrupted export \(complete={complete!r}"):
        open_activations(path)


def test_a_store_without_its_manifest_is_refused(store):
    path, _ = store
    group = zarr.open_group(path, mode="r+", use_consolidated=False)
    del group.attrs["manifest"]
    with pytest.raises(StoreError, match="records no manifest"):
        open_activations(path)


def test_resume_writes_the_damaged_chunks_again(store):
    path, acts = store
    chunk_key(path, "fc", 1, 1).unlink()
    truncated = chunk_key(path, "conv", 0, 2)
    truncated.write_bytes(truncated.read_bytes()[:3])
    w = ActivationWriter.create(path, LAYERS, N, perturbations=list(acts), mode="resume", sample_chunk=BATCH)
    assert {p: w.next_sample(p) for p in w.pending()} == {"clean": 8, "noise": 4}
    ds = write(path, acts, mode="resume")
    for p_index, p in enumerate(acts):
        for name, arr in acts[p].items():
            np.testing.assert_array_equal(ds[name].values[p_index], arr)
    open_activations(path)  # whole again


def test_append_refuses_a_damaged_store(store):
    path, _ = store
    chunk_key(path, "fc", 0, 0).unlink()
    with pytest.raises(StoreError, match="damaged.*resume it before appending"):
        ActivationWriter.create(path, LAYERS, N, perturbations=["clean", "noise", "blur"], mode="append")


def test_metadata_stays_plain_json(store):
    path, _ = store
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]
    assert attrs["complete"] is True and set(attrs["manifest"]) == {"conv", "fc", "label", "sample", "perturbation"}


def test_a_results_store_checks_its_chunks_too(tmp_path):
    import xarray as xr

    from holejax.store import open_results, write_results

    study = xr.Dataset({"purity": (("perturbation", "layer"), np.array([[1.0, 0.5]]))},
                       coords={"perturbation": ["clean"], "layer": ["a", "b"]})
    write_results(study, tmp_path / "r.zarr")
    write_results(open_results(tmp_path / "r.zarr"), tmp_path / "again.zarr")  # a round trip keeps the layout
    xr.testing.assert_equal(open_results(tmp_path / "again.zarr").load().drop_attrs(), study)
    for f in (tmp_path / "r.zarr" / "purity").iterdir():
        if f.name != "zarr.json":
            f.unlink()
    with pytest.raises(StoreError, match=r"damaged: array 'purity' chunk \(0, 0\) is missing.*write_results"):
        open_results(tmp_path / "r.zarr")
