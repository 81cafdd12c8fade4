"""A framework-free adapter over a small numpy network, to test the core export machinery."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from holejax.capture import LayerInfo


class NumpyNet:
    """fc1 -> relu1 -> fc2 -> relu2 -> head, plus a ``branch`` layer that fires only where
    ``branch_when(x)`` is true for the batch."""

    def __init__(self, d_in: int = 6, hidden: int = 5, n_out: int = 3, seed: int = 0, branch_when=None):
        rng = np.random.default_rng(seed)
        self.w = {
            "fc1": rng.normal(size=(d_in, hidden)).astype(np.float32),
            "fc2": rng.normal(size=(hidden, hidden)).astype(np.float32),
            "head": rng.normal(size=(hidden, n_out)).astype(np.float32),
        }
        self.branch_when = branch_when
        self.calls = 0  # forward passes run (for tests that count them)

    def forward(self, features: np.ndarray, offset: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Layer outputs for ``features`` (sample, d_in), shifted by ``offset`` (sample, d_in) if given."""
        self.calls += 1
        x = np.asarray(features, np.float32)
        if offset is not None:
            x = x + np.asarray(offset, np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            return self._forward(x)

    def _forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        out["fc1"] = x.reshape(len(x), -1) @ self.w["fc1"]
        out["relu1"] = np.maximum(out["fc1"], 0)
        out["fc2"] = out["relu1"] @ self.w["fc2"]
        out["relu2"] = np.maximum(out["fc2"], 0)
        if self.branch_when is not None and self.branch_when(x):
            out["branch"] = out["relu2"] * 2
        out["head"] = out["relu2"] @ self.w["head"]
        return out


TYPES = {"fc1": "Dense", "relu1": "ReLU", "fc2": "Dense", "relu2": "ReLU", "branch": "Scale", "head": "Dense"}


def call(model: NumpyNet, batch) -> dict[str, np.ndarray]:
    """``model.forward(x)``, ``(*x)`` or ``(**x)``: the protocol's three kinds of model input."""
    if isinstance(batch, dict):
        return model.forward(**batch)
    if isinstance(batch, tuple):
        return model.forward(*batch)
    return model.forward(batch)


class NumpyAdapter:
    name = "numpy"
    layout = "channels_last"

    def __init__(self):
        self.compressed: list[str] = []

    def accepts(self, model) -> bool:
        return isinstance(model, NumpyNet)

    def model_class(self, model) -> str:
        return type(model).__name__

    def list_layers(self, model: NumpyNet, example: np.ndarray) -> list[LayerInfo]:
        out = call(model, example)
        rows = [
            LayerInfo(k, TYPES[k], v.shape[1:], str(v.dtype), (f"numpy.{TYPES[k]}",), 1, self.layout)
            for k, v in out.items()
        ]
        rows += [LayerInfo(k, TYPES[k], None, None, (f"numpy.{TYPES[k]}",), 1, self.layout) for k in TYPES if k not in out]
        return rows

    @contextlib.contextmanager
    def capture(self, model: NumpyNet, names: Sequence[str]):
        def run(batch):
            out = call(model, batch)
            return {k: v for k, v in out.items() if k in names}

        yield run

    def predict(self, model: NumpyNet, batch: np.ndarray) -> np.ndarray:
        return call(model, batch)["head"]

    def compress(self, model: NumpyNet, perturbation) -> NumpyNet:
        self.compressed.append(perturbation.name)
        copy = NumpyNet.__new__(NumpyNet)
        copy.__dict__.update(model.__dict__)
        copy.w = {k: np.where(np.abs(v) < 0.5, 0, v).astype(np.float32) for k, v in model.w.items()}
        return copy


ADAPTER = NumpyAdapter()
