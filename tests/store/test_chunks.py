"""Direct chunk writes and compressors: the same bytes as Zarr, any batch alignment, bad input; layer order."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from holejax.store import ActivationWriter, LayerSpec, StoreError, layer_names, open_activations
from holejax.store.chunks import ChunkFiles, resolve_compressors

LAYERS = [LayerSpec("block1.relu", (2, 3)), LayerSpec("fc", (4,))]


def data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # ReLU-like: half zeros, so the compressors have something to do
    return {s.name: np.maximum(rng.normal(size=(n, s.units)), 0).astype(np.float32) for s in LAYERS}


def write(path, acts, batch, chunk, compressors=None, through_zarr=False, layers=LAYERS):
    n = len(next(iter(acts.values())))
    w = ActivationWriter.create(path, layers, n, sample_chunk=chunk, compressors=compressors)
    if through_zarr:
        w._files = dict.fromkeys(w._files)  # every write through zarr.Array.__setitem__
    for start in range(0, n, batch):
        w.write_batch("clean", start, {k: v[start:start + batch] for k, v in acts.items()})
    return w.finish()


def chunk_files(path, layer) -> dict[str, bytes]:
    folder = path / layer
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()
            and f.name != "zarr.json"}


@pytest.mark.parametrize(
    "compressors",
    [None, "lz4", "zstd", BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", typesize=4),
     [BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle", typesize=4), ZstdCodec(level=2, checksum=True)]],
    ids=["none", "lz4", "zstd", "blosc-zstd-bitshuffle", "two-codecs"],
)
def test_direct_chunks_hold_the_bytes_zarr_writes(tmp_path, compressors, monkeypatch):
    acts = data(23)
    ref = write(tmp_path / "ref.zarr", acts, batch=5, chunk=5, compressors=compressors, through_zarr=True)

    setitem = zarr.Array.__setitem__

    def through_zarr(array, key, value):
        assert array.basename not in acts, f"a chunk of {array.basename!r} went through zarr.Array.__setitem__"
        setitem(array, key, value)  # the coordinates

    with monkeypatch.context() as m:
        m.setattr(zarr.Array, "__setitem__", through_zarr)
        ours = write(tmp_path / "ours.zarr", acts, batch=5, chunk=5, compressors=compressors)
    for name in acts:
        files = chunk_files(tmp_path / "ours.zarr", name)
        assert len(files) == 5  # 4 whole chunks and the edge chunk (3 samples, padded with NaN), all direct
        assert files == chunk_files(tmp_path / "ref.zarr", name)
        np.testing.assert_array_equal(ours[name].values[0], acts[name])
        np.testing.assert_array_equal(ref[name].values[0], acts[name])
    plain = xr.open_zarr(tmp_path / "ours.zarr", zarr_format=3)
    np.testing.assert_array_equal(plain["fc"].values[0], acts["fc"])


def test_compressors_shrink_relu_outputs_and_none_stores_raw_bytes(tmp_path):
    acts = data(64)
    sizes = {}
    for comp in (None, "lz4", "zstd"):
        write(tmp_path / f"{comp}.zarr", acts, batch=64, chunk=64, compressors=comp)
        sizes[comp] = sum(len(b) for b in chunk_files(tmp_path / f"{comp}.zarr", "block1.relu").values())
    assert sizes[None] == acts["block1.relu"].nbytes
    assert sizes["zstd"] < 0.8 * sizes[None] and sizes["lz4"] < sizes[None]
    codecs = zarr.open_array(tmp_path / "zstd.zarr" / "fc", mode="r").metadata.codecs
    assert [c.to_dict()["name"] for c in codecs] == ["bytes", "zstd"]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 14), batch=st.integers(1, 6), chunk=st.integers(1, 6), seed=st.integers(0, 100))
def test_any_batch_and_chunk_alignment_round_trips(tmp_path_factory, n, batch, chunk, seed):
    acts = data(n, seed)
    ds = write(tmp_path_factory.mktemp("s") / "a.zarr", acts, batch, chunk)
    for name, arr in acts.items():
        np.testing.assert_array_equal(ds[name].values[0], arr)
        assert ds[name].encoding["chunks"] == (1, min(chunk, n), arr.shape[1])


def test_unknown_codec_goes_through_zarr(tmp_path):
    acts = data(9)
    ds = write(tmp_path / "a.zarr", acts, batch=3, chunk=3, compressors=GzipCodec(level=1))
    assert ChunkFiles.of(zarr.open_group(tmp_path / "a.zarr", mode="r")["fc"]) is None
    np.testing.assert_array_equal(ds["fc"].values[0], acts["fc"])


def test_failed_chunk_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """A chunk goes to a temporary file renamed into place; a failure removes it."""
    acts = data(6)
    w = ActivationWriter.create(tmp_path / "a.zarr", LAYERS, 6, sample_chunk=3)
    w.write_batch("clean", 0, {k: v[:3] for k, v in acts.items()})
    replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("c.0.1.0"):
            raise OSError("disk full")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        w.write_batch("clean", 3, {k: v[3:] for k, v in acts.items()})
    monkeypatch.undo()
    assert not list((tmp_path / "a.zarr").rglob("*.partial"))
    assert not list((tmp_path / "a.zarr").rglob("c.0.1.0"))
    partial = open_activations(tmp_path / "a.zarr", allow_incomplete=True)
    assert partial.attrs["progress"] == {"clean": 3} and partial.attrs["complete"] is False
    np.testing.assert_array_equal(partial["fc"].values[0, :3], acts["fc"][:3])
    assert np.isnan(partial["fc"].values[0, 3:]).all()


@pytest.mark.parametrize(
    ("compressors", "error", "match"),
    [("gzip", ValueError, r"compressors='gzip' is not a known name; expected one of \(None, 'lz4', 'zstd'\)"),
     (5, TypeError, r"compressors must be None, 'lz4', 'zstd' or Zarr v3 bytes-to-bytes codecs; got 5"),
     ([ZstdCodec(), "lz4"], TypeError, "compressors must be None")],
)
def test_bad_compressors_are_rejected_before_writing(tmp_path, compressors, error, match):
    with pytest.raises(error, match=match):
        ActivationWriter.create(tmp_path / "a.zarr", LAYERS, 4, compressors=compressors)
    assert not (tmp_path / "a.zarr").exists()


def test_resolve_compressors_names():
    f32 = np.dtype("float32")
    assert resolve_compressors(None, f32) is None and resolve_compressors([], f32) is None
    (lz4,) = resolve_compressors("lz4", f32)
    assert lz4.to_dict()["configuration"] == {
        "typesize": 4, "cname": "lz4", "clevel": 5, "shuffle": "shuffle", "blocksize": 0}


# -- layer order ------------------------------------------------------------------
ORDER = [LayerSpec("zeta", (2,)), LayerSpec("layer2", (3,)), LayerSpec("layer10", (2,)), LayerSpec("alpha", (1,))]


def test_layer_order_survives_the_store(tmp_path):
    rng = np.random.default_rng(0)
    acts = {s.name: rng.normal(size=(4, s.units)).astype(np.float32) for s in ORDER}
    w = ActivationWriter.create(tmp_path / "a.zarr", ORDER, 4)
    w.write_batch("clean", 0, acts)
    w.finish()
    names = [s.name for s in ORDER]
    plain = xr.open_zarr(tmp_path / "a.zarr", zarr_format=3)
    assert list(plain.data_vars) != names  # Zarr alone lists them in another order
    assert plain.attrs["layers"] == names
    assert layer_names(open_activations(tmp_path / "a.zarr")) == names
    assert layer_names(plain) == names
    # a selection keeps the recorded order of what it holds
    assert layer_names(open_activations(tmp_path / "a.zarr")[["alpha", "layer10", "zeta"]]) == [
        "zeta", "layer10", "alpha"]


def test_store_without_a_layer_order_falls_back_and_gains_one_on_resume(tmp_path):
    rng = np.random.default_rng(0)
    acts = {s.name: rng.normal(size=(4, s.units)).astype(np.float32) for s in ORDER}
    path = tmp_path / "a.zarr"
    w = ActivationWriter.create(path, ORDER, 4, sample_chunk=2)
    w.write_batch("clean", 0, {k: v[:2] for k, v in acts.items()})
    meta = json.loads((path / "zarr.json").read_text())
    del meta["attributes"]["layers"]  # as written by an older holejax
    (path / "zarr.json").write_text(json.dumps(meta))
    old = open_activations(path, allow_incomplete=True)
    assert layer_names(old) == list(old.data_vars) != [s.name for s in ORDER]
    with pytest.raises(StoreError, match="interrupted export"):
        open_activations(path)
    w = ActivationWriter.create(path, ORDER, 4, mode="resume")
    w.write_batch("clean", 2, {k: v[2:] for k, v in acts.items()})
    assert layer_names(w.finish()) == [s.name for s in ORDER]
