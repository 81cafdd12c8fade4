"""Layer names: refused with a clear message before anything is written, or renamed where they collide."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import holejax as hj
from holejax.store import ActivationWriter, LayerSpec, layer_names, open_activations


@pytest.mark.parametrize(
    ("name", "match"),
    [("..", "names a folder outside the layer's own"),
     (".", "names a folder outside the layer's own"),
     ("zarr.json", "reserved by Zarr"),
     ("__pycache__", "reserved by Zarr"),
     ("encoder/dense", "contains '/'"),
     ("a\\b", "contains '/'"),
     ("tab\there", "control character"),
     ("x" * 300, "is 300 bytes long; a layer is stored as a folder"),
     ("", "must be a non-empty str")],
)
def test_unusable_names_are_refused_before_anything_is_written(tmp_path, name, match):
    with pytest.raises(ValueError, match=match):
        ActivationWriter.create(tmp_path / "acts.zarr", [LayerSpec(name, (3,))], 4)
    assert not (tmp_path / "acts.zarr").exists()


def test_names_that_collide_with_coordinates_are_renamed_and_keep_the_models_name(tmp_path):
    names = ["sample", "label", "perturbation", "token", "label_layer"]
    specs = [LayerSpec(n, (2,)) for n in names]
    rng = np.random.default_rng(0)
    acts = {n: rng.normal(size=(4, 2)).astype(np.float32) for n in names}
    w = ActivationWriter.create(tmp_path / "acts.zarr", specs, 4, labels=[0, 1, 0, 1])
    w.write_batch("clean", 0, acts)  # keyed by the model's names
    ds = w.finish()
    stored = ["sample_layer", "label_layer_layer", "perturbation_layer", "token_layer", "label_layer"]
    assert layer_names(ds) == stored
    for model_name, var in zip(names, stored, strict=True):
        assert ds[var].attrs["layer"] == model_name
        np.testing.assert_array_equal(ds[var].values[0], acts[model_name])
    np.testing.assert_array_equal(ds["label"].values, [0, 1, 0, 1])  # the coordinates are untouched
    np.testing.assert_array_equal(ds["sample"].values, np.arange(4))
    w = ActivationWriter.create(tmp_path / "acts.zarr", specs, 4, perturbations=["clean", "more"], mode="append")
    w.write_batch("more", 0, acts)
    assert layer_names(w.finish()) == stored


class Named(nn.Module):
    """Submodules named like the store's coordinates."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.sample = nn.Linear(3, 4)
        self.label = nn.ReLU()
        self.perturbation = nn.Linear(4, 2)

    def forward(self, x):
        return self.perturbation(self.label(self.sample(x)))


def test_an_export_of_submodules_named_like_coordinates(tmp_path):
    model = Named().eval()
    X = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    ds = hj.export_activations(model, X, labels=np.arange(10) % 2, store=tmp_path / "a.zarr",
                               layers=["sample", "label", "perturbation"], batch_size=4, progress=False)
    assert layer_names(open_activations(tmp_path / "a.zarr")) == ["sample_layer", "label_layer", "perturbation_layer"]
    with torch.no_grad():
        hidden = model.sample(torch.from_numpy(X))
        expected = {"sample_layer": hidden, "label_layer": torch.relu(hidden), "perturbation_layer": model(torch.from_numpy(X))}
    for var, ref in expected.items():
        np.testing.assert_allclose(ds[var].sel(perturbation="clean").values, ref.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ds["label"].values, np.arange(10) % 2)
