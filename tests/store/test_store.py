"""Activation and results stores: roundtrips, interruption, resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from holejax.store import (
    ActivationWriter,
    LayerSpec,
    StoreError,
    open_activations,
    open_results,
    write_results,
)

LAYERS = [LayerSpec("block1.relu", (2, 3), pooling="flatten"), LayerSpec("fc", (4,))]


def fake_activations(n: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        p: {s.name: rng.normal(size=(n, s.units)).astype(np.float32) for s in LAYERS}
        for p in ("clean", "gaussian(sigma=0.1)")
    }


def write_all(path, data, batch, labels=None, mode="error", stop_after=None):
    n = len(next(iter(data["clean"].values())))
    w = ActivationWriter.create(
        path, LAYERS, n, perturbations=list(data), labels=labels, label_names=["a", "b"],
        attrs={"framework": "test", "model_class": "Fake"}, mode=mode, sample_chunk=batch,
    )
    written = 0
    for pert in w.pending():
        for start in range(w.next_sample(pert), n, batch):
            if stop_after is not None and written >= stop_after:
                return w
            w.write_batch(pert, start, {k: v[start:start + batch] for k, v in data[pert].items()})
            written += 1
    return w.finish()


def roundtrip(tmp_path, data, batch, labels=None) -> xr.Dataset:
    """Write ``data`` batch by batch, reopen it, and check every value."""
    ds = write_all(tmp_path / "acts.zarr", data, batch, labels)
    reopened = open_activations(tmp_path / "acts.zarr")
    for ds_ in (ds, reopened):
        assert list(ds_["perturbation"].values) == list(data)
        for p_index, pert in enumerate(data):
            for name, arr in data[pert].items():
                np.testing.assert_array_equal(ds_[name].values[p_index], arr)
    return reopened


def test_roundtrip_schema(tmp_path):
    data = fake_activations(7)
    labels = np.array([0, 1, 0, 1, 1, 0, 0])
    ds = roundtrip(tmp_path, data, batch=3, labels=labels)
    assert ds["block1.relu"].dims == ("perturbation", "sample", "block1.relu:unit")
    assert ds["block1.relu"].attrs["shape"] == [2, 3]
    assert ds["block1.relu"].attrs["pooling"] == "flatten"
    np.testing.assert_array_equal(ds["label"].values, labels)
    assert ds.attrs["complete"] is True
    assert ds.attrs["framework"] == "test"
    assert ds.attrs["label_names"] == ["a", "b"]
    assert ds.attrs["progress"] == {"clean": 7, "gaussian(sigma=0.1)": 7}
    # chunked along sample and perturbation
    assert ds["fc"].encoding["chunks"] == (1, 3, 4)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), batch=st.integers(1, 5), seed=st.integers(0, 1000))
def test_roundtrip_property(tmp_path_factory, n, batch, seed):
    roundtrip(tmp_path_factory.mktemp("p"), fake_activations(n, seed), batch)


def test_clean_goes_first(tmp_path):
    w = ActivationWriter.create(tmp_path / "s.zarr", LAYERS, 2, perturbations=["noise", "clean"])
    assert w.perturbations == ["clean", "noise"]


def test_plain_xarray_opens_store_without_holejax(tmp_path):
    path = tmp_path / "acts.zarr"
    write_all(path, fake_activations(5), 2)
    code = (
        "import sys, xarray as xr\n"
        f"ds = xr.open_zarr({str(path)!r})\n"
        "assert 'holejax' not in sys.modules\n"
        "print(ds['fc'].shape, ds.attrs['complete'])\n"
    )
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(2, 5, 4) True"


def test_interrupted_export_is_detected_and_resumed(tmp_path):
    path = tmp_path / "acts.zarr"
    data = fake_activations(9)
    write_all(path, data, batch=2, stop_after=3)  # clean: 6 of 9 samples written
    with pytest.raises(StoreError, match=r"interrupted export.*mode='resume'"):
        open_activations(path)
    partial = open_activations(path, allow_incomplete=True)
    assert partial.attrs["progress"] == {"clean": 6, "gaussian(sigma=0.1)": 0}
    assert np.isnan(partial["fc"].values[0, 6:]).all()
    with pytest.raises(StoreError, match="interrupted export: pass mode='resume'"):
        write_all(path, data, batch=2)
    w = ActivationWriter.create(path, LAYERS, 9, perturbations=list(data), mode="resume")
    assert w.next_sample("clean") == 6
    assert w.pending() == ["clean", "gaussian(sigma=0.1)"]
    write_all(path, data, batch=2, mode="resume")
    ds = open_activations(path)
    for p_index, pert in enumerate(data):
        np.testing.assert_array_equal(ds["fc"].values[p_index], data[pert]["fc"])


def test_resume_rejects_a_different_export(tmp_path):
    path = tmp_path / "acts.zarr"
    write_all(path, fake_activations(6), batch=2, stop_after=1)
    with pytest.raises(StoreError, match="holds 6 samples but this export has 5"):
        ActivationWriter.create(path, LAYERS, 5, perturbations=["clean", "gaussian(sigma=0.1)"], mode="resume")
    with pytest.raises(StoreError, match="capture the same layers"):
        ActivationWriter.create(path, LAYERS[:1], 6, perturbations=["clean", "gaussian(sigma=0.1)"], mode="resume")
    with pytest.raises(StoreError, match="cannot add"):
        ActivationWriter.create(path, LAYERS, 6, perturbations=["clean", "other"], mode="resume")


def test_sample_coords_are_written_with_the_store(tmp_path):
    coords = {"sample": np.array([0, 0, 1, 2, 2]), "token": np.array([0, 1, 0, 0, 1])}
    w = ActivationWriter.create(tmp_path / "t.zarr", [LayerSpec("fc", (2,))], 5, sample_coords=coords)
    w.write_batch("clean", 0, {"fc": np.ones((5, 2), np.float32)})
    ds = w.finish()
    np.testing.assert_array_equal(ds["sample"].values, coords["sample"])
    np.testing.assert_array_equal(ds["token"].values, coords["token"])
    assert "token" in ds.attrs["manifest"]
    with pytest.raises(StoreError, match="other 'token' coordinates"):
        ActivationWriter.create(tmp_path / "t.zarr", [LayerSpec("fc", (2,))], 5, mode="append",
                                perturbations=["clean", "x"], sample_coords={**coords, "token": np.zeros(5, int)})


@pytest.mark.parametrize(
    ("coords", "match"),
    [
        ({"token": np.zeros(4, int)},
         r"sample_coords\['token'\] must hold 5 integers, one per sample; got int64 of shape \(4,\)"),
        ({"token": np.zeros(5)}, r"must hold 5 integers.*got float64"),
        ({"label": np.zeros(5, int)}, "sample_coords cannot name 'label'"),
    ],
)
def test_bad_sample_coords_are_refused_before_the_store_exists(tmp_path, coords, match):
    with pytest.raises(ValueError, match=match):
        ActivationWriter.create(tmp_path / "t.zarr", [LayerSpec("fc", (2,))], 5, sample_coords=coords)
    assert not (tmp_path / "t.zarr").exists()


def test_a_store_naming_a_perturbation_twice_is_refused(tmp_path):
    from holejax.store.schema import validate_activations

    path = tmp_path / "s.zarr"
    write_all(path, fake_activations(6), batch=3)
    twice = open_activations(path).assign_coords(perturbation=["clean", "clean"])
    with pytest.raises(StoreError, match=r"names the perturbations \['clean'\] more than once"):
        validate_activations(twice, path)


def test_existing_store_modes(tmp_path):
    path = tmp_path / "acts.zarr"
    write_all(path, fake_activations(4), 2)
    with pytest.raises(StoreError, match="already exists.*mode='overwrite'"):
        write_all(path, fake_activations(4), 2)
    data = fake_activations(4, seed=5)
    write_all(path, data, 2, mode="overwrite")
    np.testing.assert_array_equal(open_activations(path)["fc"].values[0], data["clean"]["fc"])
    # append a new perturbation to the finished store
    w = ActivationWriter.create(path, LAYERS, 4, perturbations=["clean", "speckle"], mode="append")
    assert w.pending() == ["speckle"]
    extra = {s.name: np.full((4, s.units), 3.0, np.float32) for s in LAYERS}
    w.write_batch("speckle", 0, extra)
    ds = w.finish()
    assert list(ds["perturbation"].values) == ["clean", "gaussian(sigma=0.1)", "speckle"]
    np.testing.assert_array_equal(ds["fc"].values[2], extra["fc"])
    np.testing.assert_array_equal(ds["fc"].values[0], data["clean"]["fc"])


def test_overwrite_refuses_foreign_folder(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"not a store")
    with pytest.raises(StoreError, match="refusing to overwrite.*not a holejax activations store"):
        ActivationWriter.create(foreign, LAYERS, 2, mode="overwrite")
    assert (foreign / "cat.jpg").exists()


def test_store_path_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "acts.zarr"
    path.write_text("notes")
    for mode in ("error", "overwrite", "resume"):
        with pytest.raises(StoreError, match="is a file; a store is a folder"):
            ActivationWriter.create(path, LAYERS, 4, mode=mode)
    assert path.read_text() == "notes"


def test_store_written_by_another_tool(tmp_path):
    path = tmp_path / "other.zarr"
    xr.Dataset({"x": ("a", np.arange(3))}).to_zarr(path, zarr_format=3, consolidated=False)
    with pytest.raises(StoreError, match="not a holejax activations store.*another tool"):
        open_activations(path)
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a Zarr v3 store"):
        open_activations(tmp_path / "plain")
    with pytest.raises(StoreError, match="no store at"):
        open_activations(tmp_path / "missing.zarr")


def test_bad_batches_write_nothing(tmp_path):
    path = tmp_path / "acts.zarr"
    w = ActivationWriter.create(path, LAYERS, 4)
    good = {s.name: np.ones((2, s.units), np.float32) for s in LAYERS}
    bad = dict(good, fc=np.array([[1, 2, 3, 4], [1, np.nan, 3, 4]], np.float32))
    with pytest.raises(ValueError, match=r"layer 'fc' produced NaN or Inf for sample 1"):
        w.write_batch("clean", 0, bad)
    with pytest.raises(ValueError, match=r"must have shape \(batch, 4\)"):
        w.write_batch("clean", 0, dict(good, fc=np.ones((2, 5))))
    with pytest.raises(ValueError, match="same, non-zero number of samples"):
        w.write_batch("clean", 0, dict(good, fc=np.ones((3, 4))))
    with pytest.raises(KeyError, match=r"missing \['fc'\]"):
        w.write_batch("clean", 0, {"block1.relu": good["block1.relu"]})
    with pytest.raises(ValueError, match="next unwritten sample is 0"):
        w.write_batch("clean", 2, good)
    with pytest.raises(KeyError, match="not in this store"):
        w.write_batch("noise", 0, good)
    partial = open_activations(path, allow_incomplete=True)
    assert np.isnan(partial["block1.relu"].values).all()  # nothing was written half-way
    with pytest.raises(StoreError, match="perturbations \\['clean'\\] are incomplete"):
        w.finish()


def test_bad_creation_arguments(tmp_path):
    with pytest.raises(ValueError, match="labels has 3 entries but there are 4 samples"):
        ActivationWriter.create(tmp_path / "a", LAYERS, 4, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="contains '/'"):
        LayerSpec("encoder/dense", (3,))
    with pytest.raises(ValueError, match="empty layer"):
        LayerSpec("empty", (0,))
    with pytest.raises(ValueError, match="repeat the names"):
        ActivationWriter.create(tmp_path / "b", [LAYERS[0], LAYERS[0]], 4)
    with pytest.raises(ValueError, match="mode='replace' is not supported"):
        ActivationWriter.create(tmp_path / "c", LAYERS, 4, mode="replace")
    assert not (tmp_path / "a").exists()


def results_dataset() -> xr.Dataset:
    return xr.Dataset(
        {"purity": (("perturbation", "layer"), np.array([[1.0, 0.5], [0.9, 0.4]]))},
        coords={"perturbation": ["clean", "noise"], "layer": ["a", "b"]},
        attrs={"label_names": ["x", "y"], "params": {"k": np.int64(5)}},
    )


def test_results_roundtrip_and_atomic_write(tmp_path, monkeypatch):
    path = tmp_path / "results.zarr"
    assert results_dataset()["layer"].dtype.kind == "U"  # stored as variable-length strings
    write_results(results_dataset(), path)
    back = open_results(path)
    xr.testing.assert_equal(back.load().drop_attrs(), results_dataset().drop_attrs())
    assert back.attrs["holejax_store"] == "results"
    assert back.attrs["params"] == {"k": 5}
    with pytest.raises(StoreError, match="already exists"):
        write_results(results_dataset(), path)
    with pytest.raises(StoreError, match="not a holejax activations store"):
        open_activations(path)

    # an interrupted write leaves no results store behind
    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_zarr", explode)
    with pytest.raises(KeyboardInterrupt):
        write_results(results_dataset(), tmp_path / "other.zarr")
    assert not (tmp_path / "other.zarr").exists()


def test_store_metadata_is_plain_json(tmp_path):
    path = tmp_path / "acts.zarr"
    write_all(path, fake_activations(3), 3)
    meta = json.loads((path / "zarr.json").read_text())
    assert meta["zarr_format"] == 3
    assert meta["attributes"]["holejax_store"] == "activations"
    assert not list(path.rglob("*.pkl"))


@pytest.mark.parametrize("labels", [None, [0, 1, 1, 0, 1]])
@pytest.mark.parametrize("compressors", [None, "zstd"])
def test_new_store_reads_in_xarray_like_one_xarray_wrote(tmp_path, labels, compressors):
    path = tmp_path / "acts.zarr"
    ActivationWriter.create(
        path, LAYERS, 5, perturbations=["clean", "gaussian(sigma=0.1)"], labels=labels,
        attrs={"framework": "test"}, sample_chunk=2, compressors=compressors,
    )
    # the coordinates of the same store written the plain way, through xarray
    ref = tmp_path / "ref.zarr"
    coords = {"sample": np.arange(5), "perturbation": np.array(["clean", "gaussian(sigma=0.1)"], dtype=object)}
    if labels is not None:
        coords["label"] = ("sample", np.asarray(labels, dtype=np.int64))
    xr.Dataset(coords=coords).to_zarr(ref, mode="w", zarr_format=3, consolidated=False)
    opened, reference = (xr.open_zarr(p, zarr_format=3, consolidated=False) for p in (path, ref))
    assert set(opened.coords) == set(reference.coords) == {"sample", "perturbation"} | ({"label"} if labels else set())
    for name in reference.coords:
        assert opened[name].dims == reference[name].dims
        assert opened[name].dtype == reference[name].dtype
        np.testing.assert_array_equal(opened[name].values, reference[name].values)
    for spec in LAYERS:
        var = opened[spec.name]
        assert var.dims == ("perturbation", "sample", f"{spec.name}:unit")
        assert var.attrs == {"layer": spec.name, "shape": list(spec.shape), "pooling": spec.pooling}
        assert var.encoding["chunks"] == (1, 2, spec.units)
        assert np.isnan(var.values).all()
    assert opened.attrs["framework"] == "test" and opened.attrs["complete"] is False
