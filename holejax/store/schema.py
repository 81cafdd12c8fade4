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
    "RESERVED_NAMES",
    "StoreError",
    "check_layer_name",
    "stored_names",
    "unit_dim",
    "layer_names",
    "repeated_perturbations",
    "validate_activations",
]

ACTIVATIONS_KIND = "activations"
RESULTS_KIND = "results"
POOLINGS = ("flatten", "global_avg", "cls", "mean_tokens", "none", "mean", "first", "last", "max", "tokens")
# dimension and coordinate names of the stores: a layer cannot take them as its variable name
RESERVED_NAMES = ("perturbation", "sample", "label", "token", "layer", "metric", "stage", "edge")
MAX_NAME_LENGTH = 200  # a layer's name is a folder name; file systems allow 255 bytes


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
        check_layer_name(self.name, "LayerSpec.name")
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


def check_layer_name(name: Any, argument: str = "layer name") -> None:
    """Refuse a layer name that cannot name a folder of the store, before anything is written.

    A layer is stored as a Zarr array named after it, i.e. a folder: ``/``
    would nest folders, ``.`` / ``..`` name the store or its parent,
    ``zarr.json`` is Zarr's metadata file, names starting with ``__`` are
    reserved by the Zarr v3 specification, and file systems cap a name's
    length.

    Raises:
        ValueError: naming the layer, what is wrong and the fix.

    Example:
        >>> check_layer_name("layer1.0.relu")
        >>> check_layer_name("..")
        Traceback (most recent call last):
        ...
        ValueError: layer name '..' names a folder outside the layer's own (the store or its parent); rename the module, or leave it out of layers=.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{argument} must be a non-empty str; got {name!r}.")
    fix = "rename the module, or leave it out of layers=."
    if name in (".", ".."):
        raise ValueError(f"{argument} {name!r} names a folder outside the layer's own (the store or its parent); {fix}")
    if "/" in name or "\\" in name:
        raise ValueError(
            f"{argument} {name!r} contains '/' or '\\', which the store reads as a folder; "
            "use '.' to separate the parts of a layer path."
        )
    if name.startswith("__") or name == "zarr.json" or any(ord(c) < 32 for c in name):
        raise ValueError(
            f"{argument} {name!r} is reserved by Zarr (zarr.json, names starting with '__') or holds a control "
            f"character; {fix}"
        )
    if len(name.encode()) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{argument} {name[:40]!r}... is {len(name.encode())} bytes long; a layer is stored as a folder "
            f"named after it, and names longer than {MAX_NAME_LENGTH} bytes do not fit every file system. {fix}"
        )


def stored_names(names: list[str]) -> dict[str, str]:
    """Layer name -> the store variable that holds it: the name itself, or, where it is a
    dimension or coordinate of the stores (``sample``, ``label``, ...), the name with ``_layer``
    appended (repeated until unique). The variable's ``layer`` attribute keeps the model's name.

    Example:
        >>> stored_names(["fc", "sample", "label", "label_layer"])
        {'fc': 'fc', 'sample': 'sample_layer', 'label': 'label_layer_layer', 'label_layer': 'label_layer'}
    """
    taken = set(names) | set(RESERVED_NAMES)
    out = {}
    for name in names:
        stored = name
        if name in RESERVED_NAMES:
            while stored in taken:
                stored += "_layer"
            taken.add(stored)
        out[name] = stored
    return out


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


def repeated_perturbations(ds: xr.Dataset) -> list[str]:
    """Perturbation names that occur more than once along ``ds``'s ``perturbation`` dimension, sorted.

    Example:
        >>> repeated_perturbations(xr.Dataset(coords={"perturbation": ["clean", "x", "clean"]}))
        ['clean']
    """
    names = [str(p) for p in ds["perturbation"].values]
    return sorted({p for p in names if names.count(p) > 1})


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
    if not allow_incomplete and ds.attrs.get("complete") is not True:
        progress = ds.attrs.get("progress", {})
        raise _fail(
            path,
            f"is an interrupted export (complete={ds.attrs.get('complete')!r}; samples written per "
            f"perturbation: {progress}).",
            "Resume it with hj.export_activations(..., mode='resume'), start again with "
            "mode='overwrite', or pass allow_incomplete=True to read what was written.",
        )
    for coord in ("perturbation", "sample"):
        if coord not in ds.coords:
            raise _fail(path, f"has no {coord!r} coordinate.", "Re-export the activations.")
    repeated = repeated_perturbations(ds)
    if repeated:
        raise _fail(path, f"names the perturbations {repeated} more than once.", "Re-export the activations.")
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
