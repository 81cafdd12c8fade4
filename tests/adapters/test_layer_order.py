"""Layers come back from a store in execution order, whatever their names sort to (torch, Linen, NNX)."""

from __future__ import annotations

import flax.linen as linen
import jax
import numpy as np
import torch
import xarray as xr
from flax import nnx
from torch import nn

import holejax as hj
from holejax.store import layer_names

X = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
EXECUTION = ["zeta", "layer2", "layer10", "alpha"]  # sorted: alpha, layer10, layer2, zeta


class TorchBackwards(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.alpha = nn.Linear(4, 3)  # registered in name order, run in reverse
        self.layer10 = nn.Linear(4, 4)
        self.layer2 = nn.Linear(5, 4)
        self.zeta = nn.Linear(6, 5)

    def forward(self, x):
        return self.alpha(self.layer10(self.layer2(torch.relu(self.zeta(x)))))


class LinenBackwards(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = linen.relu(linen.Dense(5, name="zeta")(x))
        return linen.Dense(3, name="alpha")(linen.Dense(4, name="layer10")(linen.Dense(4, name="layer2")(x)))


class NNXBackwards(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.alpha = nnx.Linear(4, 3, rngs=rngs)
        self.layer10 = nnx.Linear(4, 4, rngs=rngs)
        self.layer2 = nnx.Linear(5, 4, rngs=rngs)
        self.zeta = nnx.Linear(6, 5, rngs=rngs)

    def __call__(self, x):
        return self.alpha(self.layer10(self.layer2(nnx.relu(self.zeta(x)))))


def check_round_trip(tmp_path, model, layer_type, zeta):
    ds = hj.export_activations(model, X, store=tmp_path / "a.zarr", layers=layer_type, batch_size=8, progress=False)
    reopened = hj.open_activations(tmp_path / "a.zarr")
    assert list(xr.open_zarr(tmp_path / "a.zarr", zarr_format=3).data_vars) != EXECUTION
    assert layer_names(ds) == layer_names(reopened) == EXECUTION
    assert reopened.attrs["layers"] == EXECUTION
    np.testing.assert_allclose(reopened["zeta"].values[0], zeta, rtol=1e-5, atol=1e-6)


def test_torch_layers_round_trip_in_execution_order(tmp_path):
    model = TorchBackwards()
    with torch.no_grad():
        zeta = model.zeta(torch.from_numpy(X)).numpy()
    check_round_trip(tmp_path, model, "Linear", zeta)


def test_linen_layers_round_trip_in_execution_order(tmp_path):
    module = LinenBackwards()
    variables = module.init(jax.random.key(0), X[:2])
    p = variables["params"]["zeta"]
    check_round_trip(tmp_path, (module, variables), "Dense", X @ np.asarray(p["kernel"]) + np.asarray(p["bias"]))


def test_nnx_layers_round_trip_in_execution_order(tmp_path):
    model = NNXBackwards(nnx.Rngs(0))
    check_round_trip(tmp_path, model, "Linear", np.asarray(model.zeta(X)))
