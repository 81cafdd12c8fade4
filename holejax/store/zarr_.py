"""Zarr v3 engine of the activation and results stores.

The activation store is written batch by batch: :class:`ActivationWriter`
creates the arrays (filled with NaN), writes each batch of every layer into
its ``(perturbation, sample)`` region, records the progress in the dataset
attributes after each batch and marks the store ``complete`` at the end. An
interrupted export therefore stays detectable (``complete: false`` and the
progress per perturbation) and resumable. The finished store opens with plain
``xarray.open_zarr`` and no holejax import.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from holejax._checks import as_labels, first_nonfinite_row
from holejax._version import __version__
from holejax.store.chunks import ChunkFiles, resolve_compressors
from holejax.store.schema import (
    ACTIVATIONS_KIND,
    RESULTS_KIND,
    LayerSpec,
    StoreError,
    layer_names,
    unit_dim,
    validate_activations,
)

__all__ = ["ActivationWriter", "as_activation_store", "open_activations", "write_results", "open_results"]

MODES = ("error", "overwrite", "resume", "append")
_CHUNK_BYTES = 4 * 2**20


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars/arrays and tuples turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _perturbation_entries(perturbations: Sequence[Any] | None) -> list[tuple[str, dict]]:
    """Normalise perturbations to ``(name, params)`` pairs, ``"clean"`` first."""
    if perturbations is None:
        perturbations = [("clean", {})]
    entries: list[tuple[str, dict]] = []
    for p in perturbations:
        if isinstance(p, str):
            name, params = p, {}
        elif hasattr(p, "name") and hasattr(p, "params"):
            name, params = p.name, {"kind": getattr(p, "kind", None), **dict(p.params)}
        elif isinstance(p, (tuple, list)) and len(p) == 2:
            name, params = p
        else:
            raise TypeError(
                "perturbations must hold names, (name, params) pairs or Perturbation objects; "
                f"got {p!r}."
            )
        if not isinstance(name, str) or not name:
            raise ValueError(f"perturbation names must be non-empty str; got {name!r}.")
        entries.append((name, json_safe(dict(params))))
    names = [n for n, _ in entries]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"perturbations repeat the names {repeated}; each must be unique.")
    entries.sort(key=lambda e: e[0] != "clean")  # stable: "clean" first
    return entries


def _is_store(path: Path) -> bool:
    return (path / "zarr.json").is_file()


def _read_root_attrs(path: Path) -> dict:
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta.get("attributes", {}) or {}


def _remove_store(path: Path, kind: str) -> None:
    """Delete ``path`` only if it is empty or a holejax store of ``kind``."""
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        return
    if _read_root_attrs(path).get("holejax_store") != kind:
        raise StoreError(
            f"refusing to overwrite {str(path)!r}: it is not a holejax {kind} store. "
            "Choose another path or delete it yourself."
        )
    shutil.rmtree(path)


_BYTES_CODEC = {"name": "bytes", "configuration": {"endian": "little"}}
_COORD_CODECS = [_BYTES_CODEC, {"name": "zstd", "configuration": {"level": 0, "checksum": False}}]
_STRING_CODECS = [{"name": "vlen-utf8", "configuration": {}}, _COORD_CODECS[1]]


def _array_metadata(
    shape: Sequence[int], chunks: Sequence[int], data_type: str, fill_value: Any, codecs: list[dict],
    dims: Sequence[str], attributes: Mapping[str, Any] | None = None, separator: str = "/",
) -> Any:
    """The metadata of one Zarr v3 array, from the document the Zarr v3 specification defines."""
    from zarr.core.metadata import ArrayV3Metadata

    return ArrayV3Metadata.from_dict({
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": separator}},
        "fill_value": fill_value,
        "codecs": codecs,
        "attributes": dict(attributes or {}),
        "dimension_names": list(dims),
    })


def _create_nodes(
    path: Path, root_attrs: dict, n_samples: int, perturbations: list[str], labels: np.ndarray | None,
    layers: Sequence[LayerSpec], chunks: Mapping[str, int], dtype: np.dtype, codecs: tuple | None,
) -> dict[str, zarr.Array]:
    """Create the group, its coordinates and the NaN-filled layer arrays; return the layer arrays.

    The coordinates (``sample``, ``perturbation`` and ``label``, the last
    named in the group's ``coordinates`` attribute) take the layout that
    ``xarray.Dataset.to_zarr`` gives them, so the store opens with plain
    ``xarray.open_zarr``. Every node is created in one concurrent
    ``zarr.create_hierarchy`` call: about a third of the time of writing the
    coordinates through xarray and then creating the arrays one by one.
    """
    from zarr.core.group import GroupMetadata
    from zarr.storage import LocalStore

    attrs = dict(root_attrs, **({"coordinates": "label"} if labels is not None else {}))
    p = len(perturbations)
    nodes: dict[str, Any] = {
        "": GroupMetadata(attributes=json_safe(attrs)),
        "sample": _array_metadata((n_samples,), (n_samples,), "int64", 0, _COORD_CODECS, ["sample"]),
        "perturbation": _array_metadata((p,), (p,), "string", "", _STRING_CODECS, ["perturbation"]),
    }
    if labels is not None:
        nodes["label"] = _array_metadata((n_samples,), (n_samples,), "int64", 0, _COORD_CODECS, ["sample"])
    layer_codecs = [_BYTES_CODEC, *(c.to_dict() for c in codecs or ())]
    for spec in layers:
        nodes[spec.name] = _array_metadata(
            (p, n_samples, spec.units), (1, chunks[spec.name], spec.units), dtype.name, "NaN", layer_codecs,
            ["perturbation", "sample", unit_dim(spec.name)],
            {"layer": spec.name, "shape": list(spec.shape), "pooling": spec.pooling},
            separator=".",  # one folder of chunks per layer
        )
    created = dict(zarr.create_hierarchy(store=LocalStore(path), nodes=nodes))
    created["sample"][:] = np.arange(n_samples, dtype=np.int64)
    created["perturbation"][:] = np.array(perturbations, dtype=object)
    if labels is not None:
        created["label"][:] = labels
    return {spec.name: created[spec.name] for spec in layers}


class ActivationWriter:
    """Streams activations into a Zarr v3 activation store.

    Create one with :meth:`create`, call :meth:`write_batch` for contiguous
    batches of every layer, then :meth:`finish`.

    Example:
        >>> import tempfile, numpy as np
        >>> path = tempfile.mkdtemp() + "/acts.zarr"
        >>> w = ActivationWriter.create(path, layers=[LayerSpec("fc", (3,))], n_samples=4,
        ...                             labels=[0, 1, 0, 1])
        >>> w.write_batch("clean", 0, {"fc": np.ones((4, 3), np.float32)})
        >>> ds = w.finish()
        >>> ds["fc"].shape, bool(ds.attrs["complete"])
        ((1, 4, 3), True)
    """

    def __init__(
        self, path: Path, arrays: Mapping[str, zarr.Array], layers: list[LayerSpec], perturbations: list[str],
        n_samples: int,
    ):
        self.path = path
        self.layers = layers
        self.perturbations = perturbations
        self.n_samples = n_samples
        self._arrays = {spec.name: arrays[spec.name] for spec in layers}
        self._files = {name: ChunkFiles.of(arr) for name, arr in self._arrays.items()}
        self._root = json.loads((path / "zarr.json").read_text())  # the writer owns the root metadata now
        progress = self._root.get("attributes", {}).get("progress", {})
        self._progress: dict[str, int] = {p: int(v) for p, v in dict(progress).items()}

    # -- construction -----------------------------------------------------
    @classmethod
    def create(
        cls,
        store: str | os.PathLike,
        layers: Sequence[LayerSpec],
        n_samples: int,
        perturbations: Sequence[Any] | None = None,
        labels: Any = None,
        label_names: Sequence[str] | None = None,
        attrs: Mapping[str, Any] | None = None,
        mode: str = "error",
        sample_chunk: int | None = None,
        dtype: Any = np.float32,
        compressors: Any = None,
    ) -> "ActivationWriter":
        """Open a store for writing.

        Args:
            store: path of the Zarr store (a folder).
            layers: one :class:`LayerSpec` per captured layer.
            n_samples: number of samples of every perturbation.
            perturbations: names, ``(name, params)`` pairs or Perturbation
                objects; ``None`` means ``["clean"]``.
            labels: optional ``(sample,)`` integer class ids.
            label_names: optional class names, indexed by label.
            attrs: extra dataset attributes (``framework``, ``model_class``).
            mode: what to do if ``store`` exists: ``"error"`` (default),
                ``"overwrite"``, ``"resume"`` an interrupted export, or
                ``"append"`` new perturbations to a finished store.
            sample_chunk: samples per chunk (default: about 4 MiB chunks).
                Batches that fill whole chunks are written fastest: pass
                the batch size.
            dtype: floating dtype of the stored activations.
            compressors: ``None`` (default: no compression, the fastest to
                write), ``"lz4"``, ``"zstd"`` or Zarr v3 codecs; see
                :func:`holejax.store.chunks.resolve_compressors`. Ignored
                by ``"resume"`` and ``"append"``, which keep the store's.
        """
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not supported; expected one of {MODES}.")
        path = Path(store)
        layers = list(layers)
        if not layers:
            raise ValueError("layers is empty; pass at least one LayerSpec.")
        names = [spec.name for spec in layers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"layers repeat the names {repeated}; each layer must be stored once.")
        n_samples = int(n_samples)
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1; got {n_samples}.")
        entries = _perturbation_entries(perturbations)
        label_arr = None if labels is None else as_labels(labels, n_samples)
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"dtype must be a floating dtype; got {dtype}.")
        codecs = resolve_compressors(compressors, dtype)

        if path.exists() and not path.is_dir():
            raise StoreError(
                f"store {str(path)!r} is a file; a store is a folder. Pass the path of a new folder or of a "
                "holejax activation store."
            )
        exists = path.exists() and (_is_store(path) or any(path.iterdir()))
        if exists and mode == "error":
            attrs_now = _read_root_attrs(path)
            if attrs_now.get("holejax_store") == ACTIVATIONS_KIND and not attrs_now.get("complete"):
                hint = "It is an interrupted export: pass mode='resume' to continue it or mode='overwrite'."
            else:
                hint = "Pass mode='overwrite' to replace it, mode='append' to add perturbations, or another path."
            raise StoreError(f"store {str(path)!r} already exists. {hint}")
        if exists and mode in ("resume", "append"):
            return cls._reopen(path, layers, n_samples, entries, label_arr, mode)
        if exists:  # overwrite
            _remove_store(path, ACTIVATIONS_KIND)

        root_attrs = {
            "holejax_store": ACTIVATIONS_KIND,
            "holejax_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "complete": False,
            "perturbation_params": {n: p for n, p in entries},
            "progress": {n: 0 for n, _ in entries},
            "label_names": json_safe(list(label_names)) if label_names is not None else None,
            **json_safe(dict(attrs or {})),
            "layers": names,
        }
        chunks = {
            spec.name: min(int(sample_chunk or max(1, _CHUNK_BYTES // (spec.units * dtype.itemsize))), n_samples)
            for spec in layers
        }
        arrays = _create_nodes(
            path, root_attrs, n_samples, [n for n, _ in entries], label_arr, layers, chunks, dtype, codecs
        )
        return cls(path, arrays, layers, [n for n, _ in entries], n_samples)

    @classmethod
    def _reopen(cls, path, layers, n_samples, entries, label_arr, mode) -> "ActivationWriter":
        existing = open_activations(path, allow_incomplete=True)
        where = f"store {str(path)!r}"
        if existing.sizes["sample"] != n_samples:
            raise StoreError(
                f"{where} holds {existing.sizes['sample']} samples but this export has {n_samples}; "
                "pass the same inputs, or mode='overwrite'."
            )
        stored = {name: existing[name].shape[-1] for name in layer_names(existing)}
        wanted = {spec.name: spec.units for spec in layers}
        if stored != wanted:
            raise StoreError(
                f"{where} holds layers {stored} (name: units) but this export captures {wanted}; "
                "capture the same layers, or mode='overwrite'."
            )
        if label_arr is not None and "label" in existing.coords:
            if not np.array_equal(existing["label"].values, label_arr):
                raise StoreError(f"{where} holds different labels; pass the same labels, or mode='overwrite'.")
        present = [str(p) for p in existing["perturbation"].values]
        new = [e for e in entries if e[0] not in present]
        if mode == "resume" and new:
            raise StoreError(
                f"{where} was started with perturbations {present}; resuming cannot add {[n for n, _ in new]}. "
                "Finish the resume first, then export them with mode='append'."
            )
        if mode == "append" and not existing.attrs.get("complete"):
            raise StoreError(
                f"{where} is an interrupted export; pass mode='resume' to finish it before appending."
            )
        group = zarr.open_group(path, mode="a", zarr_format=3, use_consolidated=False)
        if new:
            total = len(present) + len(new)
            pert = group["perturbation"]
            pert.resize((total,))
            pert[len(present):] = np.array([n for n, _ in new], dtype=object)
            for name in stored:
                arr = group[name]
                arr.resize((total, *arr.shape[1:]))
            params = dict(group.attrs.get("perturbation_params", {}))
            params.update({n: p for n, p in new})
            progress = dict(group.attrs.get("progress", {}))
            progress.update({n: 0 for n, _ in new})
            group.attrs.update({"perturbation_params": params, "progress": progress, "complete": False})
        if not isinstance(group.attrs.get("layers"), list):  # a store written before the order was kept
            group.attrs["layers"] = [spec.name for spec in layers]
        order = {spec.name: spec for spec in layers}
        layers = [order[name] for name in stored]
        return cls(path, {name: group[name] for name in stored}, layers, present + [n for n, _ in new], n_samples)

    # -- writing ----------------------------------------------------------
    def next_sample(self, perturbation: str) -> int:
        """Index of the first sample of ``perturbation`` not yet written."""
        self._check_perturbation(perturbation)
        return self._progress.get(perturbation, 0)

    def pending(self) -> list[str]:
        """Perturbations whose samples are not all written yet, in store order."""
        return [p for p in self.perturbations if self._progress.get(p, 0) < self.n_samples]

    def _check_perturbation(self, perturbation: str) -> int:
        if perturbation not in self.perturbations:
            raise KeyError(
                f"perturbation {perturbation!r} is not in this store; it holds {self.perturbations}."
            )
        return self.perturbations.index(perturbation)

    def write_batch(self, perturbation: str, start: int, activations: Mapping[str, Any]) -> None:
        """Write one batch of every layer for one perturbation.

        Args:
            perturbation: name of the perturbation the batch belongs to.
            start: index of the batch's first sample; batches arrive in order,
                so ``start`` must equal :meth:`next_sample`.
            activations: layer name -> ``(batch, unit)`` array, every layer of
                the store present, all with the same batch size.

        Every check runs before any byte is written.
        """
        p_index = self._check_perturbation(perturbation)
        expected_start = self._progress.get(perturbation, 0)
        if int(start) != expected_start:
            raise ValueError(
                f"start={start} for perturbation {perturbation!r}, but the next unwritten sample is "
                f"{expected_start}; write batches in order."
            )
        missing = [s.name for s in self.layers if s.name not in activations]
        extra = [k for k in activations if k not in self._arrays]
        if missing or extra:
            raise KeyError(
                f"activations must hold exactly the store's layers; missing {missing}, unknown {extra}."
            )
        batch = None
        arrays = {}
        for spec in self.layers:
            arr = np.asarray(activations[spec.name])
            if arr.ndim != 2 or arr.shape[1] != spec.units:
                raise ValueError(
                    f"activations[{spec.name!r}] must have shape (batch, {spec.units}); got {arr.shape}."
                )
            if batch is None:
                batch = arr.shape[0]
            if arr.shape[0] != batch or batch == 0:
                raise ValueError(
                    f"every layer of a batch must hold the same, non-zero number of samples; "
                    f"layer {spec.name!r} has {arr.shape[0]}, expected {batch}."
                )
            bad = first_nonfinite_row(arr)
            if bad is not None:
                raise ValueError(
                    f"layer {spec.name!r} produced NaN or Inf for sample {int(start) + bad} "
                    f"(perturbation {perturbation!r}); check the model and inputs for that sample."
                )
            arrays[spec.name] = arr
        stop = int(start) + int(batch)
        if stop > self.n_samples:
            raise ValueError(
                f"batch ends at sample {stop} but the store holds {self.n_samples} samples."
            )
        for name, arr in arrays.items():
            files = self._files[name]
            if files is not None:
                files.write(p_index, int(start), arr)
            else:
                zarr_array = self._arrays[name]
                zarr_array[p_index, int(start):stop, :] = arr.astype(zarr_array.dtype, copy=False)
        self._progress[perturbation] = stop
        self._set_attrs(progress=dict(self._progress))

    def _set_attrs(self, **updates: Any) -> None:
        """Update root attributes in ``zarr.json``, replacing the file atomically.

        Cheaper than a Zarr metadata write per batch; nothing else writes
        the root metadata while the writer is open.
        """
        self._root.setdefault("attributes", {}).update(json_safe(updates))
        target = self.path / "zarr.json"
        tmp = self.path / f"zarr.json.{os.getpid()}.partial"
        tmp.write_text(json.dumps(self._root, indent=2))
        os.replace(tmp, target)

    def finish(self) -> xr.Dataset:
        """Mark the store complete, consolidate its metadata and open it."""
        left = {p: self._progress.get(p, 0) for p in self.pending()}
        if left:
            raise StoreError(
                f"cannot finish {str(self.path)!r}: perturbations {sorted(left)} are incomplete "
                f"(samples written: {left} of {self.n_samples})."
            )
        self._set_attrs(complete=True)
        _consolidate(self.path)
        return open_activations(self.path)


def _consolidate(path: Path) -> None:
    """Consolidate the store's metadata so plain ``xarray.open_zarr`` reads it in one request."""
    with warnings.catch_warnings():
        # zarr notes that consolidated metadata is an extension of the v3 spec
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(str(path))


def _open_group_attrs(path: Path, kind: str) -> dict:
    if not path.exists():
        raise StoreError(f"no store at {str(path)!r}; check the path.")
    if not _is_store(path):
        raise StoreError(
            f"{str(path)!r} is not a Zarr v3 store (no zarr.json); it was written by another tool "
            f"or is not a holejax {kind} store."
        )
    attrs = _read_root_attrs(path)
    if attrs.get("holejax_store") != kind:
        raise StoreError(
            f"store {str(path)!r} is not a holejax {kind} store (holejax_store="
            f"{attrs.get('holejax_store')!r}); it was written by another tool."
        )
    return attrs


def _open_dataset(path: Path, attrs: dict) -> xr.Dataset:
    consolidated = "consolidated_metadata" in json.loads((path / "zarr.json").read_text()) and bool(
        attrs.get("complete", True)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return xr.open_zarr(path, consolidated=consolidated, zarr_format=3)


def open_activations(store: str | os.PathLike, *, allow_incomplete: bool = False) -> xr.Dataset:
    """Open and validate an activation store.

    Args:
        store: path of a store written by :class:`ActivationWriter` or
            ``hj.export_activations``.
        allow_incomplete: open an interrupted export instead of raising.

    Returns:
        Lazily loaded ``xarray.Dataset``: one ``(perturbation, sample,
        unit)`` variable per layer.

    Raises:
        StoreError: the path is missing, foreign, interrupted or malformed.
    """
    path = Path(store)
    attrs = _open_group_attrs(path, ACTIVATIONS_KIND)
    if not allow_incomplete and not attrs.get("complete"):
        validate_activations(xr.Dataset(attrs=attrs), path)
    ds = _open_dataset(path, attrs)
    validate_activations(ds, path, allow_incomplete=allow_incomplete)
    return ds


def as_activation_store(acts: Any, accepted: str = "") -> tuple[xr.Dataset, str | None]:
    """An activation store and its path (``None`` when unknown) from a store or its path.

    Args:
        acts: ``xarray.Dataset`` from ``hj.open_activations`` / ``hj.export_activations``,
            or the path of a store (opened with :func:`open_activations`).
        accepted: further accepted kinds, named in the TypeError (", or a mapping ...").

    Raises:
        TypeError: ``acts`` is neither. ValueError: a results store, or a Dataset
            without ``perturbation`` / ``sample`` dimensions.
    """
    if isinstance(acts, (str, os.PathLike)):
        return open_activations(acts), os.fspath(acts)
    if not isinstance(acts, xr.Dataset):
        raise TypeError(
            f"acts must be an activation store (xarray.Dataset from hj.open_activations or "
            f"hj.export_activations) or its path{accepted}; got {type(acts).__name__}."
        )
    kind = acts.attrs.get("holejax_store", "activations")
    if kind != "activations":
        raise ValueError(
            f"acts is a holejax {kind!r} store, not an activation store; pass the activations "
            "(hj.open_activations(path))."
        )
    for coord in ("perturbation", "sample"):
        if coord not in acts.dims:
            raise ValueError(f"acts has no {coord!r} dimension; it is not an activation store.")
    source = acts.encoding.get("source")
    return acts, None if source is None else str(source)


def write_results(results: xr.Dataset, store: str | os.PathLike, *, mode: str = "error") -> Path:
    """Write a results Dataset (from ``hj.analyze``) to a Zarr v3 store.

    The store is written to a temporary sibling folder and renamed into
    place, so an interrupted write never leaves a partial results store.

    Args:
        results: the Dataset to write.
        store: target path.
        mode: ``"error"`` if it exists (default) or ``"overwrite"``.
    """
    if mode not in ("error", "overwrite"):
        raise ValueError(f"mode={mode!r} is not supported; expected 'error' or 'overwrite'.")
    path = Path(store)
    if path.exists():
        if mode == "error":
            raise StoreError(f"store {str(path)!r} already exists; pass mode='overwrite' or another path.")
        _remove_store(path, RESULTS_KIND)
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    ds = results.copy()
    ds.attrs = json_safe({**results.attrs, "holejax_store": RESULTS_KIND, "holejax_version": __version__})
    for name in list(ds.variables):
        var = ds[name]
        if var.dtype.kind == "U":
            # fixed-width unicode has no Zarr v3 data type; variable-length strings do
            ds[name] = var.astype(object)
        ds[name].attrs = json_safe(dict(var.attrs))
    ds.to_zarr(partial, mode="w", zarr_format=3, consolidated=False)
    _consolidate(partial)
    partial.rename(path)
    return path


def open_results(store: str | os.PathLike) -> xr.Dataset:
    """Open a results store written by :func:`write_results`."""
    path = Path(store)
    attrs = _open_group_attrs(path, RESULTS_KIND)
    return _open_dataset(path, attrs)
