"""The activation and results store schema: names, attributes and validation.

An activation store is an ``xarray.Dataset`` written to Zarr v3 with one data
variable per captured layer, named by the layer's path in the model, with
dims ``("perturbation", "sample", "<layer>:unit")``. Coordinates:
``perturbation`` (str, ``"clean"`` first), ``sample`` (int) and, when labels
were given, ``label`` (int, along ``sample``). Dataset attributes record the
holejax version, framework, model class, creation time, the parameters of
each perturbation, ``layers`` (the layer names in the model's execution
order; Zarr itself lists arrays alphabetically), the export progress and
``complete`` (True only once the export finished).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import xarray as xr

__all__ = [
    "ACTIVATIONS_KIND",
    "RESULTS_KIND",
    "LayerSpec",
    "StoreError",
    "unit_dim",
    "layer_names",
    "validate_activations",
]

ACTIVATIONS_KIND = "activations"
RESULTS_KIND = "results"
POOLINGS = ("flatten", "global_avg", "cls", "mean_tokens", "none", "mean", "first", "last", "max", "tokens")


class StoreError(ValueError):
    """A store is missing, foreign, interrupted or inconsistent with a request."""


def unit_dim(layer: str) -> str:
    """Name of the feature dim of ``layer``.

    Example:
        >>> unit_dim("layer1.relu")
        'layer1.relu:unit'
    """
    return f"{layer}:unit"


@dataclass(frozen=True)
class LayerSpec:
    """What a store holds for one captured layer.

    Attributes:
        name: layer path in the model, ``"."``-separated (``"layer1.0.relu"``).
        shape: per-sample output shape before pooling, e.g. ``(16, 8, 8)``.
        pooling: how the output became a vector (``"flatten"``,
            ``"global_avg"``, ``"cls"``, ``"mean_tokens"``, ``"none"``).
        units: length of the pooled feature vector (the unit dim).

    Example:
        >>> LayerSpec("fc1.relu", shape=(32,), pooling="flatten", units=32).units
        32
    """

    name: str
    shape: tuple[int, ...]
    pooling: str = "flatten"
    units: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LayerSpec.name must be a non-empty str; got {self.name!r}.")
        if "/" in self.name:
            raise ValueError(
                f"LayerSpec.name={self.name!r} contains '/', which Zarr reads as a folder; "
                "use '.' to separate the parts of a layer path."
            )
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.units == 0:
            units = 1
            for s in self.shape:
                units *= s
            object.__setattr__(self, "units", int(units))
        if int(self.units) < 1:
            raise ValueError(
                f"layer {self.name!r} has no units (shape {self.shape}); an empty layer cannot be "
                "stored. Leave it out of `layers`."
            )
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"LayerSpec.pooling={self.pooling!r} is not supported; expected one of {POOLINGS}."
            )


def layer_names(ds: xr.Dataset) -> list[str]:
    """The layer variables of an activation store, in the model's execution order.

    Zarr lists a store's arrays alphabetically (``"layer10"`` before
    ``"layer2"``), so the writer records the capture order in the dataset
    attribute ``layers``; layers it names come first in that order, any
    others (a store written without it, variables added later) follow in
    the Dataset's order.

    Example:
        >>> import numpy as np, xarray as xr
        >>> v = lambda u: (("perturbation", "sample", u), np.zeros((1, 2, 1)))
        >>> ds = xr.Dataset({"fc": v("fc:unit"), "conv": v("conv:unit")}, attrs={"layers": ["conv", "fc"]})
        >>> layer_names(ds), layer_names(ds.drop_attrs())
        (['conv', 'fc'], ['fc', 'conv'])
    """
    found = [
        str(name)
        for name, var in ds.data_vars.items()
        if var.dims[:2] == ("perturbation", "sample") and var.ndim == 3
    ]
    order = ds.attrs.get("layers")
    if not isinstance(order, (list, tuple)):
        return found
    present = set(found)
    listed = list(dict.fromkeys(str(n) for n in order if str(n) in present))
    return listed + [n for n in found if n not in set(listed)]


def _fail(path: Any, problem: str, fix: str) -> StoreError:
    return StoreError(f"store {str(path)!r}: {problem} {fix}")


def validate_activations(ds: xr.Dataset, path: Any = "<memory>", *, allow_incomplete: bool = False) -> None:
    """Check that ``ds`` follows the activation store schema.

    Raises:
        StoreError: naming the first problem found and how to fix it.
    """
    kind = ds.attrs.get("holejax_store")
    if kind != ACTIVATIONS_KIND:
        raise _fail(
            path,
            f"is not a holejax activation store (attribute holejax_store={kind!r}, "
            f"expected {ACTIVATIONS_KIND!r}).",
            "It was written by another tool; export activations with hj.export_activations "
            "into a new path.",
        )
    if not allow_incomplete and not ds.attrs.get("complete", False):
        progress = ds.attrs.get("progress", {})
        raise _fail(
            path,
            f"is an interrupted export (complete=False; samples written per perturbation: {progress}).",
            "Resume it with hj.export_activations(..., mode='resume'), start again with "
            "mode='overwrite', or pass allow_incomplete=True to read what was written.",
        )
    for coord in ("perturbation", "sample"):
        if coord not in ds.coords:
            raise _fail(path, f"has no {coord!r} coordinate.", "Re-export the activations.")
    pert = [str(p) for p in ds["perturbation"].values]
    if len(set(pert)) != len(pert):
        raise _fail(path, f"has repeated perturbation names {pert}.", "Re-export the activations.")
    layers = layer_names(ds)
    if not layers:
        raise _fail(path, "holds no layer variables.", "Export at least one layer.")
    for name in layers:
        var = ds[name]
        if var.dims != ("perturbation", "sample", unit_dim(name)):
            raise _fail(
                path,
                f"layer {name!r} has dims {var.dims}, expected "
                f"('perturbation', 'sample', {unit_dim(name)!r}).",
                "Re-export the activations.",
            )
        for key in ("shape", "pooling"):
            if key not in var.attrs:
                raise _fail(path, f"layer {name!r} lacks the attribute {key!r}.", "Re-export the activations.")
    if "label" in ds.coords and ds["label"].dims != ("sample",):
        raise _fail(path, f"label has dims {ds['label'].dims}, expected ('sample',).", "Re-export the activations.")
