"""Codecs and batch writes: every codec with its checksum, any batch alignment, bad input; layer order."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

from holejax.store import ActivationWriter, LayerSpec, StoreError, layer_names, open_activations
from holejax.store.chunks import resolve_compressors

LAYERS = [LayerSpec("block1.relu", (2, 3)), LayerSpec("fc", (4,))]


def data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # ReLU-like: half zeros, so the compressors have something to do
    return {s.name: np.maximum(rng.normal(size=(n, s.units)), 0).astype(np.float32) for s in LAYERS}


def write(path, acts, batch, chunk, compressors=None, layers=LAYERS):
    n = len(next(iter(acts.values())))
    w = ActivationWriter.create(path, layers, n, sample_chunk=chunk, compressors=compressors)
    for start in range(0, n, batch):
        w.write_batch("clean", start, {k: v[start:start + batch] for k, v in acts.items()})
    return w.finish()


def chunk_bytes(path, layer) -> int:
    """Total bytes of a layer's chunks, through the store API."""
    return zarr.open_group(path, mode="r")[layer].nbytes_stored() - len((path / layer / "zarr.json").read_bytes())


@pytest.mark.parametrize(
    "compressors",
    [None, "lz4", "zstd", BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", typesize=4),
     [BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle", typesize=4), ZstdCodec(level=2, checksum=True)],
     GzipCodec(level=1)],
    ids=["none", "lz4", "zstd", "blosc-zstd-bitshuffle", "two-codecs", "gzip"],
)
def test_every_codec_round_trips_and_ends_with_a_checksum(tmp_path, compressors):
    acts = data(23)
    ds = write(tmp_path / "a.zarr", acts, batch=5, chunk=5, compressors=compressors)
    group = zarr.open_group(tmp_path / "a.zarr", mode="r")
    for name in [*acts, "sample", "perturbation"]:
        assert group[name].compressors[-1].to_dict()["name"] == "crc32c", name
    for name in acts:
        assert group[name].nchunks_initialized == group[name].nchunks == 5  # 4 whole chunks and the edge chunk
        np.testing.assert_array_equal(ds[name].values[0], acts[name])
    plain = xr.open_zarr(tmp_path / "a.zarr", zarr_format=3)
    np.testing.assert_array_equal(plain["fc"].values[0], acts["fc"])


def test_compressors_shrink_relu_outputs_and_none_stores_raw_bytes(tmp_path):
    acts = data(64)
    sizes = {}
    for comp in (None, "lz4", "zstd"):
        write(tmp_path / f"{comp}.zarr", acts, batch=64, chunk=64, compressors=comp)
        sizes[comp] = chunk_bytes(tmp_path / f"{comp}.zarr", "block1.relu")
    assert sizes[None] == acts["block1.relu"].nbytes + 4  # the raw bytes and their CRC-32C
    assert sizes["zstd"] < 0.8 * sizes[None] and sizes["lz4"] < sizes[None]
    codecs = zarr.open_array(tmp_path / "zstd.zarr" / "fc", mode="r").metadata.codecs
    assert [c.to_dict()["name"] for c in codecs] == ["bytes", "zstd", "crc32c"]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 14), batch=st.integers(1, 6), chunk=st.integers(1, 6), seed=st.integers(0, 100))
def test_any_batch_and_chunk_alignment_round_trips(tmp_path_factory, n, batch, chunk, seed):
    acts = data(n, seed)
    ds = write(tmp_path_factory.mktemp("s") / "a.zarr", acts, batch, chunk)
    for name, arr in acts.items():
        np.testing.assert_array_equal(ds[name].values[0], arr)
        assert ds[name].encoding["chunks"] == (1, min(chunk, n), arr.shape[1])


class BlockSpy(ActivationWriter):
    """An ActivationWriter that keeps the blocks it hands to Zarr: (perturbation, layer, first row, row count)."""

    blocks: list = []

    def _write_layers(self, p_index, blocks, attrs):
        BlockSpy.blocks += [(p_index, name, first, len(rows)) for name, first, rows in blocks]
        return super()._write_layers(p_index, blocks, attrs)


def boundaries(n: int, sizes: list[int]) -> list[int]:
    """Batch starts for batches of the given sizes, repeated until ``n``, and ``n``."""
    starts, at = [0], 0
    while at < n:
        at = min(n, at + sizes[len(starts) % len(sizes)])
        starts.append(at)
    return starts


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20), chunk=st.integers(1, 7), sizes=st.lists(st.integers(1, 9), min_size=1, max_size=5),
       cut=st.integers(0, 40), seed=st.integers(0, 100))
def test_batches_of_any_size_write_whole_chunks_and_an_interrupted_export_resumes_where_recorded(
    tmp_path_factory, n, chunk, sizes, cut, seed
):
    perts = ["clean", "noise"]
    acts = {p: data(n, seed + i) for i, p in enumerate(perts)}
    edges = boundaries(n, sizes)
    calls = [(p, a, b) for a, b in zip(edges, edges[1:]) for p in perts]
    path = tmp_path_factory.mktemp("s") / "a.zarr"
    BlockSpy.blocks = []
    w = BlockSpy.create(path, LAYERS, n, perturbations=perts, sample_chunk=chunk)
    for p, a, b in calls[:cut]:
        w.write_batch(p, a, {k: v[a:b] for k, v in acts[p].items()})
    if cut < len(calls):  # interrupted: what the store records is written, at a batch boundary
        del w
        partial = open_activations(path, allow_incomplete=True)
        for i, p in enumerate(perts):
            done = partial.attrs["progress"][p]
            assert done in edges
            for name, arr in acts[p].items():
                np.testing.assert_array_equal(partial[name].values[i, :done], arr[:done])
        w = BlockSpy.create(path, LAYERS, n, perturbations=perts, mode="resume")
        for p in perts:
            assert w.next_sample(p) == partial.attrs["progress"][p]
        for p, a, b in calls:
            if a >= w.next_sample(p):
                w.write_batch(p, a, {k: v[a:b] for k, v in acts[p].items()})
    else:  # whole chunks only, each written once
        for _, _, first, rows in BlockSpy.blocks:
            assert first % chunk == 0 and (rows % chunk == 0 or first + rows == n)
        written = [(i, name, c) for i, name, first, rows in BlockSpy.blocks for c in range(first, first + rows, chunk)]
        assert sorted(written) == [(i, name, c) for i in range(2) for name in sorted(acts["clean"])
                                   for c in range(0, n, chunk)]
    ds = w.finish()
    for i, p in enumerate(perts):
        for name, arr in acts[p].items():
            np.testing.assert_array_equal(ds[name].values[i], arr)


def test_failed_batch_write_records_no_progress(tmp_path, monkeypatch):
    """A batch whose write fails is not counted: the store stays resumable from the batch before."""
    acts = data(6)
    w = ActivationWriter.create(tmp_path / "a.zarr", LAYERS, 6, sample_chunk=3)
    w.write_batch("clean", 0, {k: v[:3] for k, v in acts.items()})

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ActivationWriter, "_write_layers", failing)
    with pytest.raises(OSError, match="disk full"):
        w.write_batch("clean", 3, {k: v[3:] for k, v in acts.items()})
    monkeypatch.undo()
    assert w.next_sample("clean") == 3
    partial = open_activations(tmp_path / "a.zarr", allow_incomplete=True)
    assert partial.attrs["progress"] == {"clean": 3} and partial.attrs["complete"] is False
    np.testing.assert_array_equal(partial["fc"].values[0, :3], acts["fc"][:3])
    assert np.isnan(partial["fc"].values[0, 3:]).all()
    w.write_batch("clean", 3, {k: v[3:] for k, v in acts.items()})
    np.testing.assert_array_equal(w.finish()["fc"].values[0], acts["fc"])


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
