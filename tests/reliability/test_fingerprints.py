"""Fingerprints tie exports, results and reports together: resume, write_report and topology_summary refuse a mix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import holejax as hj
from holejax.store import ActivationWriter, StoreError, open_activations
from holejax.store import zarr_ as store_engine
from holejax.store.fingerprint import InputsDigest, inputs_digest, model_digest, weights_digest

N, BATCH = 48, 16


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def inputs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, 5)).astype(np.float32), rng.integers(0, 3, N)


def export(model, X, y, path, **kw):
    return hj.export_activations(model, X, labels=y, store=path, layers=["1", "2"], batch_size=BATCH,
                                 progress=False, **kw)


def interrupted(model, X, y, path, monkeypatch):
    """An export that stops after its first batch (the writer fails), as a killed process leaves it.

    The store's chunks hold one batch each, so the first batch is written when the writer fails.
    """
    write = ActivationWriter._write_layers

    def failing(self, p_index, blocks, attrs):
        if any(first >= BATCH for _, first, _ in blocks):
            raise OSError("killed")
        return write(self, p_index, blocks, attrs)

    with monkeypatch.context() as m:
        m.setattr(store_engine, "default_sample_chunk", lambda *args: BATCH)
        m.setattr(ActivationWriter, "_write_layers", failing)
        with pytest.raises(OSError, match="killed"):
            export(model, X, y, path)


def test_a_finished_export_records_its_fingerprint(tmp_path):
    model, (X, y) = mlp(0), inputs(0)
    ds = export(model, X, y, tmp_path / "a.zarr")
    fp = ds.attrs["fingerprint"]
    assert fp["model"] == model_digest(model) == weights_digest(model.state_dict())
    chain = InputsDigest()
    for start in range(0, N, BATCH):
        chain = chain.add(start, X[start:start + BATCH])
    assert fp["inputs"] == chain.digest and ds.attrs["inputs_head"] == inputs_digest(X[:2])
    assert set(fp["perturbations"]) == {"clean"} and fp["holejax_version"] == hj.__version__
    again = export(model, X, y, tmp_path / "b.zarr")
    assert {k: v for k, v in again.attrs["fingerprint"].items() if k != "store"} == {
        k: v for k, v in fp.items() if k != "store"}


def test_resume_refuses_reinitialised_weights(tmp_path, monkeypatch):
    X, y = inputs(0)
    interrupted(mlp(0), X, y, tmp_path / "a.zarr", monkeypatch)
    with pytest.raises(StoreError, match="exported from other model weights.*mix two exports"):
        export(mlp(1), X, y, tmp_path / "a.zarr", mode="resume")
    assert open_activations(tmp_path / "a.zarr", allow_incomplete=True).attrs["progress"] == {"clean": BATCH}


def test_resume_refuses_other_inputs_of_the_same_shape(tmp_path, monkeypatch):
    X, y = inputs(0)
    interrupted(mlp(0), X, y, tmp_path / "a.zarr", monkeypatch)
    with pytest.raises(StoreError, match="exported from other inputs"):
        export(mlp(0), inputs(1)[0], y, tmp_path / "a.zarr", mode="resume")


def test_resume_with_the_same_model_and_inputs_completes_as_one_export(tmp_path, monkeypatch):
    model, (X, y) = mlp(0), inputs(0)
    interrupted(model, X, y, tmp_path / "a.zarr", monkeypatch)
    resumed = export(model, X, y, tmp_path / "a.zarr", mode="resume")
    whole = export(model, X, y, tmp_path / "b.zarr")
    assert resumed.attrs["fingerprint"]["inputs"] == whole.attrs["fingerprint"]["inputs"]
    for name in whole.data_vars:
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fp")
    X, y = inputs(0)
    a = export(mlp(0), X, y, tmp / "a.zarr")
    b = export(mlp(1), X, y, tmp / "b.zarr")  # same shapes, other weights
    study = hj.analyze(a, metrics=["euclidean"])
    return tmp, a, b, study


def test_results_carry_the_fingerprint_of_their_store(two_stores):
    tmp, a, _, study = two_stores
    assert study.attrs["activations_fingerprint"] == a.attrs["fingerprint"]
    hj.write_results(study, tmp / "r.zarr")
    assert hj.open_results(tmp / "r.zarr").attrs["activations_fingerprint"] == a.attrs["fingerprint"]


def test_write_report_refuses_a_study_of_other_activations(two_stores):
    tmp, a, b, study = two_stores
    out = tmp / "mixed.html"
    with pytest.raises(ValueError, match="other model weights than acts holds.*check_fingerprint=False"):
        hj.write_report(study, b, out)
    assert not out.exists()
    hj.write_report(study, b, out, check_fingerprint=False)  # for those who mean it
    assert out.stat().st_size > 0


def test_topology_summary_refuses_weights_of_another_model(two_stores):
    _, a, _, _ = two_stores
    with pytest.raises(ValueError, match="weights are not those of the model.*check_fingerprint=False"):
        hj.topology_summary(a, weights=mlp(1).state_dict(), max_samples=8, betti_samples=4, resolution=5)
    ds = hj.topology_summary(a, weights=mlp(0).state_dict(), layers=["2"], max_samples=8, betti_samples=4,
                             resolution=5)
    assert ds.attrs["activations_fingerprint"] == a.attrs["fingerprint"]
