"""Zarr v3 engine of the activation and results stores.

The activation store is written batch by batch through Zarr's public API:
:class:`ActivationWriter` creates the group and arrays (``zarr.create_group``,
``Group.create_array``; layers filled with NaN), holds each batch's rows
until their chunks are whole, writes whole chunks only (the layers'
region assignments run concurrently on the writer's event loop), records the
progress in the group attributes as chunks are written and, at the end, what
the store holds
(a manifest of its chunks and the fingerprints of the export) and
``complete: true``. An interrupted export therefore stays detectable and
resumable, and a finished store that lost or damaged a chunk is refused on
open (:mod:`holejax.store.manifest`). The finished store opens with plain
``xarray.open_zarr`` and no holejax import.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import shutil
import uuid
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
import zarr

from holejax._checks import as_labels, first_nonfinite_row, store_path
from holejax._version import __version__
from holejax.store.chunks import codecs_with_checksum, resolve_compressors
from holejax.store.fingerprint import InputsDigest, array_digest, new_store_id, perturbation_digests
from holejax.store.manifest import (
    METADATA_KEY,
    ChunkProblem,
    array_manifest,
    locate_damage,
    manifest_differences,
    run_coroutine,
    store_objects,
)
from holejax.store.schema import (
    ACTIVATIONS_KIND,
    RESERVED_NAMES,
    RESULTS_KIND,
    LayerSpec,
    StoreError,
    layer_names,
    repeated_perturbations,
    stored_names,
    unit_dim,
    validate_activations,
)

__all__ = ["ActivationWriter", "as_activation_store", "open_activations", "write_results", "open_results"]

MODES = ("error", "overwrite", "resume", "append")
_FLAT_KEYS = {"name": "default", "separator": "."}  # chunk keys c.<i>.<j>...: one flat folder of chunks per array
_CHUNK_BYTES = 4 * 2**20  # largest default chunk of the widest layer
_BUFFER_BYTES = 32 * 2**20  # default bound on the chunks the writer holds, all layers and perturbations
_CONCURRENT_CHUNKS = 4  # chunk writes in flight at once: each holds an encoded copy of its chunk


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
    return (path / METADATA_KEY).is_file()


def _damaged(path: Path, problem: str, remedy: str | None = None) -> StoreError:
    remedy = remedy or (
        "Export it again (hj.export_activations with mode='resume' repairs the chunks of an activation store; "
        "mode='overwrite' starts it again)."
    )
    return StoreError(f"store {str(path)!r} is damaged: {problem}. {remedy}")


def _root_group(path: Path, mode: str = "r") -> zarr.Group:
    """The store's root group, opened without its consolidated metadata; a root that Zarr cannot read is damaged."""
    try:
        return zarr.open_group(str(path), mode=mode, zarr_format=3, use_consolidated=False)
    except Exception as err:  # Zarr's metadata parsing: invalid JSON, wrong node type, missing fields
        raise _damaged(path, f"its root zarr.json cannot be read ({type(err).__name__}: {err})") from err


def _read_root_attrs(path: Path) -> dict:
    return dict(_root_group(path).attrs)


def _check_removable(path: Path, kind: str) -> None:
    """Refuse to replace ``path`` unless it is an empty folder or a holejax store of ``kind``."""
    if path.is_dir() and not any(path.iterdir()):
        return
    try:
        found = _read_root_attrs(path).get("holejax_store") if _is_store(path) else None
    except StoreError:
        found = None
    if found != kind:
        raise StoreError(
            f"refusing to overwrite {str(path)!r}: it is not a holejax {kind} store. "
            "Choose another path or delete it yourself."
        )


def _remove_store(path: Path, kind: str) -> None:
    """Delete ``path`` only if it is empty or a holejax store of ``kind``."""
    _check_removable(path, kind)
    shutil.rmtree(path)


def _remove_created(path: Path, existed: bool) -> None:
    """Remove what this call created at ``path``: the folder, or, where it existed empty, its contents."""
    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _sample_coords(sample_coords: Mapping[str, Any] | None, n_samples: int) -> dict[str, np.ndarray]:
    """Checked ``sample_coords`` of :meth:`ActivationWriter.create`: int64 arrays of ``n_samples`` values."""
    coords = {}
    for name, values in dict(sample_coords or {}).items():
        if name in RESERVED_NAMES and name not in ("sample", "token"):
            raise ValueError(f"sample_coords cannot name {name!r}; the store writes it itself.")
        arr = np.asarray(values)
        if arr.shape != (n_samples,) or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"sample_coords[{name!r}] must hold {n_samples} integers, one per sample; got {arr.dtype} "
                f"of shape {arr.shape}."
            )
        coords[name] = arr.astype(np.int64)
    return coords


def _create_store(
    path: Path, root_attrs: dict, n_samples: int, perturbations: list[str], labels: np.ndarray | None,
    layers: Sequence[LayerSpec], chunks: Mapping[str, int], dtype: np.dtype, codecs: tuple | None,
    sample_coords: Mapping[str, np.ndarray],
) -> zarr.Group:
    """Create the group, its coordinates and the NaN-filled layer arrays through Zarr's API.

    The coordinates (``sample``, ``perturbation``, ``label`` and any other
    of ``sample_coords``, all but the first two named in the group's
    ``coordinates`` attribute) are one-chunk arrays with
    their dimension names, as ``xarray.Dataset.to_zarr`` writes them, so the
    store opens with plain ``xarray.open_zarr``. Every array ends its codecs
    with a CRC-32C checksum; chunks are keyed ``c.<p>.<s>.<u>`` (one flat
    folder of chunks per array, listed in one call) and layer chunks are
    written even where they equal the fill value, so the chunk count of a
    finished store is known.
    """
    extra = {name: values for name, values in sample_coords.items() if name != "sample"}
    listed = (["label"] if labels is not None else []) + list(extra)
    attrs = dict(root_attrs, **({"coordinates": " ".join(listed)} if listed else {}))
    group = zarr.create_group(str(path), zarr_format=3, attributes=json_safe(attrs))
    checksum = codecs_with_checksum(None)
    p = len(perturbations)
    sample = sample_coords.get("sample", np.arange(n_samples))
    coords: list[tuple[str, np.ndarray, Any, Any]] = [
        ("sample", np.asarray(sample, dtype=np.int64), "int64", 0),
        ("perturbation", np.array(perturbations, dtype=object), str, ""),
    ]
    if labels is not None:
        coords.append(("label", np.asarray(labels, dtype=np.int64), "int64", 0))
    coords += [(name, np.asarray(values, dtype=np.int64), "int64", 0) for name, values in extra.items()]
    for name, values, data_type, fill in coords:
        arr = group.create_array(
            name, shape=values.shape, chunks=values.shape, dtype=data_type, fill_value=fill,
            compressors=checksum, dimension_names=["perturbation" if name == "perturbation" else "sample"],
            chunk_key_encoding=_FLAT_KEYS,
        )
        arr[:] = values
    layer_codecs = codecs_with_checksum(codecs)
    for spec in layers:
        group.create_array(
            spec.name, shape=(p, n_samples, spec.units), chunks=(1, chunks[spec.name], spec.units), dtype=dtype,
            fill_value=np.nan, compressors=layer_codecs, chunk_key_encoding=_FLAT_KEYS,
            dimension_names=["perturbation", "sample", unit_dim(spec.name)],
            attributes={"layer": spec.name, "shape": list(spec.shape), "pooling": spec.pooling},
            config={"write_empty_chunks": True},
        )
    return group


def default_sample_chunk(units: Sequence[int], n_samples: int, n_perturbations: int, itemsize: int) -> int:
    """Samples per chunk shared by every layer of a new store.

    At most 4 MiB for the widest layer: each chunk is one file, and creating
    a file costs as much as writing several hundred KiB into it, so fewer,
    larger chunks write faster. The writer holds up to two chunks per layer
    and perturbation (one filling, one waiting to be written), so the chunk
    is cut where those would pass 32 MiB. The samples are then shared out
    evenly over that many chunks: Zarr stores the last chunk at full size.

    Example:
        >>> default_sample_chunk([512] * 9 + [10], 20_000, 1, 4)  # 23 chunks of 1.7 MiB for the 512-wide layers
        870
        >>> default_sample_chunk([512] * 9 + [10], 20_000, 4, 4)  # 4 perturbations share the 32 MiB
        225
        >>> default_sample_chunk([3], 4, 1, 4)
        4
    """
    widest = max(units) * itemsize
    held = 2 * sum(units) * itemsize * n_perturbations
    most = max(1, min(_CHUNK_BYTES // widest, _BUFFER_BYTES // held, n_samples))
    return -(-n_samples // -(-n_samples // most))


class _TailPlan(NamedTuple):
    """What one batch does to a :class:`_ChunkTail`.

    Attributes:
        completed: ``(first row, rows)`` of the held chunk the batch makes whole, or None.
        direct: whole chunks straight from the batch, ``(first row, rows)``.
        boundary: every chunk before this row is whole once the batch is taken.
    """

    completed: tuple[int, np.ndarray] | None
    direct: list[tuple[int, np.ndarray]]
    boundary: int


class _ChunkTail:
    """The rows of one layer and perturbation past its last written chunk.

    Zarr encodes a region of whole chunks as it is, while a write into part
    of a chunk reads, merges and rewrites the chunk; so the rows of a batch
    that do not fill a chunk wait here, rows ``start .. start + filled``
    (``start`` a chunk boundary), until their chunk is whole. A whole chunk
    may wait too (``ready``), in the second of two buffers, so that its write
    can be spread over the next batches. The chunk that ends the array is
    whole once its last row arrives.
    """

    def __init__(self, chunk: int, n_samples: int, units: int, dtype: np.dtype, start: int = 0):
        self.chunk, self.n_samples, self.units, self.dtype = chunk, n_samples, units, dtype
        self.start = start - start % chunk if start < n_samples else n_samples
        self.filled = start - self.start
        self.ready: tuple[int, np.ndarray] | None = None
        self._buffers: list[np.ndarray | None] = [None, None]
        self._current = 0

    def rows(self) -> np.ndarray:
        """The ``(chunk, unit)`` buffer being filled (made at first use, then reused)."""
        if self._buffers[self._current] is None:
            self._buffers[self._current] = np.empty((min(self.chunk, self.n_samples), self.units), self.dtype)
        return self._buffers[self._current]

    def plan(self, first: int, values: np.ndarray) -> _TailPlan:
        """The whole chunks made by rows ``first ..`` (``values``); :meth:`commit` takes the batch.

        Copies into the buffer being filled the rows it keeps, past
        ``filled``: what is held stays as it was until the commit.
        """
        stop = first + len(values)
        boundary = stop if stop == self.n_samples else max(self.start, stop - stop % self.chunk)
        if boundary == self.start:  # the chunk being filled is still partial
            self.rows()[first - self.start : stop - self.start] = values
            return _TailPlan(None, [], boundary)
        at, completed, direct = self.start, None, []
        if self.filled:  # the held rows and the head of values complete their chunk
            top = min(at + self.chunk, self.n_samples)
            self.rows()[self.filled : top - at] = values[: top - first]
            completed, at = (at, self.rows()[: top - at]), top
        if at < boundary:
            direct.append((at, values[at - first : boundary - first]))
        return _TailPlan(completed, direct, boundary)

    def commit(self, first: int, values: np.ndarray, plan: _TailPlan, ready: tuple[int, np.ndarray] | None) -> None:
        """Take rows ``first ..`` as planned, once the chunks written with them are in the store.

        ``ready`` is the whole chunk still waiting to be written, if any.
        """
        self.ready = ready
        if plan.boundary == self.start:
            self.filled = first + len(values) - self.start
            return
        if plan.completed is not None:  # that chunk's buffer is held (or free); the next rows go to the other
            self._current ^= 1
        rest = values[plan.boundary - first :]
        if len(rest):
            self.rows()[: len(rest)] = rest
        self.start, self.filled = plan.boundary, len(rest)


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
        self, path: Path, group: zarr.Group, layers: list[LayerSpec], perturbations: list[str], n_samples: int,
    ):
        self.path = path
        self.layers = layers
        self.perturbations = perturbations
        self.n_samples = n_samples
        self._group = group
        self._stored = stored_names([spec.name for spec in layers])
        # every chunk is written, even one equal to the fill value: the manifest counts them all
        self._arrays = {
            spec.name: group[self._stored[spec.name]].with_config({"write_empty_chunks": True}) for spec in layers
        }
        attrs = group.attrs
        # progress in the store: a resume starts there (a batch boundary; the rows before it are written)
        self._recorded: dict[str, int] = {p: int(v) for p, v in dict(attrs.get("progress", {})).items()}
        self._progress = dict(self._recorded)  # rows taken by write_batch: written, or held in self._tails
        self._marks: dict[str, list[int]] = {p: [v] for p, v in self._recorded.items()}  # batch boundaries since
        self._tails = {p: self._chunk_tails(p) for p in perturbations}
        self._inputs = InputsDigest.from_attrs(attrs.get("inputs_digest"))
        self._unhashed: collections.deque = collections.deque()  # input batches to add to the digest
        # one event loop per writer runs each batch's writes of every layer concurrently
        self._loop = asyncio.new_event_loop()
        self._close_loop = weakref.finalize(self, self._loop.close)

    def _chunk_tails(self, perturbation: str) -> dict[str, _ChunkTail]:
        """Per layer, the rows of ``perturbation`` past its last whole chunk, read back from the store.

        A resume starts at a batch boundary, which need not be a chunk
        boundary: the rows of that chunk before it are read from the store,
        so the chunk is written whole again.
        """
        start = self._recorded.get(perturbation, 0)
        p_index = self.perturbations.index(perturbation)
        tails = {}
        for spec in self.layers:
            arr = self._arrays[spec.name]
            tail = _ChunkTail(int(arr.chunks[1]), self.n_samples, spec.units, np.dtype(arr.dtype), start)
            if tail.filled:
                tail.rows()[: tail.filled] = arr[p_index, tail.start : start]
            tails[spec.name] = tail
        return tails

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
        sample_coords: Mapping[str, Any] | None = None,
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
                ``"overwrite"``, ``"resume"`` an interrupted export (or a
                finished one that lost or damaged chunks: their samples are
                pending again), or ``"append"`` new perturbations to a
                finished store. Resume and append refuse another model or
                other inputs (``attrs`` ``model_digest`` / ``inputs_head``,
                see :func:`holejax.store.fingerprint.export_fingerprint`).
            sample_chunk: samples per chunk of every layer (default: see
                :func:`default_sample_chunk`). Rows wait in memory until
                their chunk is whole, so an interrupted export resumes at
                the last batch whose chunks were all written.
            dtype: floating dtype of the stored activations.
            compressors: ``None`` (default: no compression, the fastest to
                write), ``"lz4"``, ``"zstd"`` or Zarr v3 codecs; see
                :func:`holejax.store.chunks.resolve_compressors`. Ignored
                by ``"resume"`` and ``"append"``, which keep the store's.
            sample_coords: integer coordinates along ``sample``, each
                ``(n_samples,)``: ``"sample"`` replaces the row numbers, other
                names are added (a ``pooling="tokens"`` export gives each row
                its input ``sample`` and its ``token``). Written with the
                store, so its manifest covers them; a resume or append must
                pass the same.
        """
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not supported; expected one of {MODES}.")
        path = store_path(store)
        layers = list(layers)
        if not layers:
            raise ValueError("layers is empty; pass at least one LayerSpec.")
        names = [spec.name for spec in layers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"layers repeat the names {repeated}; each layer must be stored once.")
        stored = stored_names(names)
        n_samples = int(n_samples)
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1; got {n_samples}.")
        entries = _perturbation_entries(perturbations)
        label_arr = None if labels is None else as_labels(labels, n_samples)
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"dtype must be a floating dtype; got {dtype}.")
        codecs = resolve_compressors(compressors, dtype)
        extra = json_safe(dict(attrs or {}))
        coords = _sample_coords(sample_coords, n_samples)

        if path.exists() and not path.is_dir():
            raise StoreError(
                f"store {str(path)!r} is a file; a store is a folder. Pass the path of a new folder or of a "
                "holejax activation store."
            )
        exists = path.exists() and (_is_store(path) or any(path.iterdir()))
        exists_empty = path.exists() and not exists
        if exists and mode == "error":
            attrs_now = _read_root_attrs(path) if _is_store(path) else {}
            if attrs_now.get("holejax_store") == ACTIVATIONS_KIND and attrs_now.get("complete") is not True:
                hint = "It is an interrupted export: pass mode='resume' to continue it or mode='overwrite'."
            else:
                hint = "Pass mode='overwrite' to replace it, mode='append' to add perturbations, or another path."
            raise StoreError(f"store {str(path)!r} already exists. {hint}")
        if exists and mode in ("resume", "append"):
            return cls._reopen(path, layers, n_samples, entries, label_arr, mode, extra, coords)
        if exists:  # overwrite
            _remove_store(path, ACTIVATIONS_KIND)

        root_attrs = {
            "holejax_store": ACTIVATIONS_KIND,
            "holejax_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "store_id": new_store_id(),
            "complete": False,
            "perturbation_params": {n: p for n, p in entries},
            "progress": {n: 0 for n, _ in entries},
            "label_names": json_safe(list(label_names)) if label_names is not None else None,
            **extra,
            "layers": [stored[n] for n in names],
        }
        rows = sample_chunk or default_sample_chunk([s.units for s in layers], n_samples, len(entries), dtype.itemsize)
        chunks = {spec.name: min(int(rows), n_samples) for spec in layers}
        stored_specs = [replace(spec, name=stored[spec.name]) if stored[spec.name] != spec.name else spec
                        for spec in layers]
        for spec, original in zip(stored_specs, layers, strict=True):
            chunks[spec.name] = chunks[original.name]
        try:
            group = _create_store(
                path, root_attrs, n_samples, [n for n, _ in entries], label_arr, stored_specs, chunks, dtype, codecs,
                coords,
            )
        except BaseException:
            _remove_created(path, existed=exists_empty)  # the folder was new or empty: what is in it is ours
            raise
        if stored_specs != layers:  # the variable of a renamed layer names the model's layer
            for spec, original in zip(stored_specs, layers, strict=True):
                if spec.name != original.name:
                    group[spec.name].attrs["layer"] = original.name
        return cls(path, group, layers, [n for n, _ in entries], n_samples)

    @classmethod
    def _reopen(cls, path, layers, n_samples, entries, label_arr, mode, extra, coords) -> "ActivationWriter":
        existing = open_activations(path, allow_incomplete=True)
        where = f"store {str(path)!r}"
        if existing.sizes["sample"] != n_samples:
            raise StoreError(
                f"{where} holds {existing.sizes['sample']} samples but this export has {n_samples}; "
                "pass the same inputs, or mode='overwrite'."
            )
        names = stored_names([spec.name for spec in layers])
        stored = {name: existing[name].shape[-1] for name in layer_names(existing)}
        wanted = {names[spec.name]: spec.units for spec in layers}
        if stored != wanted:
            raise StoreError(
                f"{where} holds layers {stored} (name: units) but this export captures {wanted}; "
                "capture the same layers, or mode='overwrite'."
            )
        if label_arr is not None and "label" in existing.coords:
            if not np.array_equal(existing["label"].values, label_arr):
                raise StoreError(f"{where} holds different labels; pass the same labels, or mode='overwrite'.")
        for name, values in coords.items():
            if name not in existing.coords or not np.array_equal(existing[name].values, values):
                raise StoreError(
                    f"{where} holds other {name!r} coordinates than this export's (e.g. other attention masks "
                    "of a pooling='tokens' export); pass the same inputs, or mode='overwrite'."
                )
        for key, words in (("model_digest", "model weights"), ("inputs_head", "inputs (its first samples)")):
            before, now = existing.attrs.get(key), extra.get(key)
            if before and now and before != now:
                raise StoreError(
                    f"{where} was exported from other {words} than this export's; {mode} would mix two "
                    "exports in one store. Pass the same model and inputs, or mode='overwrite' or another path."
                )
        present = [str(p) for p in existing["perturbation"].values]
        new = [e for e in entries if e[0] not in present]
        if mode == "resume" and new:
            raise StoreError(
                f"{where} was started with perturbations {present}; resuming cannot add {[n for n, _ in new]}. "
                "Finish the resume first, then export them with mode='append'."
            )
        complete = existing.attrs.get("complete") is True
        if mode == "append" and not complete:
            raise StoreError(
                f"{where} is an interrupted export; pass mode='resume' to finish it before appending."
            )
        group = _root_group(path, mode="r+")
        repaired = _progress_before_damage(path, group, existing) if complete else {}
        if repaired and mode == "append":
            raise _damaged(path, f"chunks of {sorted(repaired)} are missing or damaged; resume it before appending")
        updates: dict[str, Any] = {}
        if repaired:  # mode="resume" on a damaged store: write the damaged chunks' samples again
            updates.update(progress={**dict(group.attrs.get("progress", {})), **repaired}, complete=False)
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
            progress = dict(updates.get("progress", group.attrs.get("progress", {})))
            progress.update({n: 0 for n, _ in new})
            updates.update(perturbation_params=params, progress=progress, complete=False)
        if not isinstance(group.attrs.get("layers"), list):  # a store written before the order was kept
            updates["layers"] = [names[spec.name] for spec in layers]
        if updates:
            group.attrs.update(json_safe(updates))
        by_stored = {names[spec.name]: spec for spec in layers}
        layers = [by_stored[name] for name in stored]
        return cls(path, group, layers, present + [n for n, _ in new], n_samples)

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
        """Take one batch of every layer for one perturbation.

        Rows are written once their chunk is whole (the last chunk once the
        last row arrives) and held in memory until then; the progress the
        store records is the last batch boundary before which every chunk
        is written, where a resume starts.

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
            arrays[spec.name] = arr.astype(self._arrays[spec.name].dtype, copy=False)
        stop = int(start) + int(batch)
        if stop > self.n_samples:
            raise ValueError(
                f"batch ends at sample {stop} but the store holds {self.n_samples} samples."
            )
        self._hash_inputs()
        start, tails = int(start), self._tails[perturbation]
        plans = {name: tails[name].plan(start, arr) for name, arr in arrays.items()}
        blocks, older, newer = [], [], []  # written with this batch; whole chunks that may wait
        for name, plan in plans.items():
            ready = tails[name].ready
            if ready is not None:  # its buffer takes this batch's rows once the completed chunk is held
                (blocks if plan.completed is not None else older).append((name, *ready))
            blocks += [(name, *block) for block in plan.direct]
            if plan.completed is not None:
                newer.append((name, *plan.completed))
        # beside those, about as many waiting chunks as this batch fills, oldest first; all at the last row
        waiting = older + newer
        quota = len(waiting) if stop == self.n_samples else math.ceil(
            sum(len(arr) / tails[name].chunk for name, arr in arrays.items())
        )
        blocks += waiting[:quota]
        ready = {name: (first, rows) for name, first, rows in waiting[quota:]}
        # the progress recorded moves to the last batch boundary before which every chunk is written
        written = min(ready[name][0] if name in ready else plan.boundary for name, plan in plans.items())
        marks = [*self._marks.get(perturbation, []), stop]
        recorded = self._recorded.get(perturbation, 0)
        record = max([m for m in marks if m <= written], default=recorded)
        attrs = None
        if record > recorded:
            attrs = {"progress": {**self._recorded, perturbation: record}, "inputs_digest": self._inputs.to_attrs()}
        self._progress[perturbation] = stop
        try:
            if blocks:
                self._write_layers(p_index, blocks, attrs)
        except BaseException:
            self._progress[perturbation] = expected_start
            raise
        for name, arr in arrays.items():
            tails[name].commit(start, arr, plans[name], ready.get(name))
        self._recorded[perturbation] = max(record, recorded)
        self._marks[perturbation] = [m for m in marks if m >= self._recorded[perturbation]]

    def _write_layers(self, p_index: int, blocks: list[tuple[str, int, np.ndarray]], attrs: dict | None) -> None:
        """Write whole chunks of the layers concurrently, then record ``attrs`` (the progress), if any, in the root.

        ``blocks`` holds ``(layer, first sample, (sample, unit) rows)``; a
        block of one whole chunk is encoded as it is, without a copy.
        """

        async def write() -> None:
            for i in range(0, len(blocks), _CONCURRENT_CHUNKS):
                await asyncio.gather(*(
                    self._arrays[name].async_array.setitem(
                        (slice(p_index, p_index + 1), slice(first, first + len(rows)), slice(None)), rows[None]
                    )
                    for name, first, rows in blocks[i : i + _CONCURRENT_CHUNKS]
                ))
            if attrs:  # replaces the whole attribute document, so it is given all of it
                self._group = await self._group.update_attributes_async(
                    {**self._group.attrs.asdict(), **json_safe(attrs)}
                )

        run_coroutine(write, self._loop)

    def record_inputs(self, start: int, x: Any) -> None:
        """Add the input batch ``x`` (samples ``start ..``) to the digest of the inputs.

        Call it for every batch, in order, before its activations are
        written. The hashing itself runs in :meth:`write_batch` (the export's
        writer thread; hashlib releases the GIL), and the digest is recorded
        with the progress and, at :meth:`finish`, in the store's fingerprint;
        see :mod:`holejax.store.fingerprint`.
        """
        self._unhashed.append((int(start), x))

    def _hash_inputs(self) -> None:
        while self._unhashed:
            start, x = self._unhashed.popleft()
            self._inputs = self._inputs.add(start, x)

    def finish(self) -> xr.Dataset:
        """Record what the store holds (manifest and fingerprint), mark it complete, consolidate and open it."""
        left = {p: self._progress.get(p, 0) for p in self.pending()}
        if left:
            raise StoreError(
                f"cannot finish {str(self.path)!r}: perturbations {sorted(left)} are incomplete "
                f"(samples written: {left} of {self.n_samples})."
            )
        self._hash_inputs()
        attrs = self._group.attrs
        arrays = list(self._group.array_keys())
        manifest = array_manifest(store_objects(self.path, arrays), arrays)
        labels = self._group["label"][:] if "label" in self._group else None
        fingerprint = {
            "holejax_version": __version__,
            "store": attrs.get("store_id"),
            "model": attrs.get("model_digest"),
            "inputs": self._inputs.digest or None,
            "labels": None if labels is None else array_digest(labels),
            "perturbations": perturbation_digests(attrs.get("perturbation_params", {}), attrs.get("export_seed")),
        }
        self._group.attrs.update(json_safe({
            "inputs_digest": self._inputs.to_attrs(), "manifest": manifest, "fingerprint": fingerprint,
            "complete": True,
        }))
        self._loop.close()
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
    # a finished store has consolidated metadata; an unfinished one may hold a stale copy (append)
    consolidated = None if attrs.get("complete", True) is True else False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return xr.open_zarr(path, consolidated=consolidated, zarr_format=3)


def _where(group: zarr.Group, problem: ChunkProblem) -> str:
    """Where a chunk of a layer array lies, in the store's terms."""
    if len(problem.region) != 3:
        return ""
    p_index, samples = problem.chunk[0], problem.region[1]
    try:
        name = str(group["perturbation"][p_index])
    except Exception:  # the coordinate itself may be what is damaged
        name = f"#{p_index}"
    return f" (perturbation {name!r}, samples {samples.start}..{samples.stop - 1})"


def _damage(path: Path, attrs: Mapping[str, Any]) -> tuple[dict[str, str], list[ChunkProblem], zarr.Group | None]:
    """What differs from the manifest of a finished store, and the chunks at fault; empty when whole."""
    recorded = attrs.get("manifest")
    if not isinstance(recorded, Mapping) or not recorded:
        raise _damaged(
            path, "it is marked complete but records no manifest of its chunks (its attributes were edited, or an "
            "older holejax wrote it)"
        )
    found = array_manifest(store_objects(path, recorded), recorded)
    diffs = manifest_differences(recorded, found)
    if not diffs:
        return {}, [], None
    group = _root_group(path)
    problems = [p for name in diffs for p in locate_damage(group, name)]
    return diffs, problems, group


def _check_whole(path: Path, attrs: Mapping[str, Any], remedy: str | None = None) -> None:
    """Raise a StoreError naming the first missing or damaged array and chunk of a finished store."""
    diffs, problems, group = _damage(path, attrs)
    if not diffs:
        return
    if problems:
        first = problems[0]
        more = f" ({len(problems) - 1} more chunk(s) too)" if len(problems) > 1 else ""
        raise _damaged(
            path, f"array {first.array!r} chunk {first.chunk}{_where(group, first)} is {first.problem}{more}", remedy
        )
    name, what = next(iter(diffs.items()))
    raise _damaged(path, f"array {name!r}: {what}", remedy)


def _progress_before_damage(path: Path, group: zarr.Group, existing: xr.Dataset) -> dict[str, int]:
    """For resuming a damaged finished store: perturbation -> first sample to write again; {} if whole."""
    diffs, problems, _ = _damage(path, existing.attrs)
    if not diffs:
        return {}
    layers = set(layer_names(existing))
    located = {p.array for p in problems}
    beyond = sorted((set(diffs) - located) | (located - layers))
    if beyond:
        raise _damaged(path, f"{beyond} cannot be written again by a resume ({diffs})")
    names = [str(p) for p in existing["perturbation"].values]
    restart: dict[str, int] = {}
    for p in problems:
        name = names[p.chunk[0]]
        restart[name] = min(restart.get(name, p.region[1].start), p.region[1].start)
    return restart


def open_activations(store: str | os.PathLike, *, allow_incomplete: bool = False) -> xr.Dataset:
    """Open and validate an activation store.

    A finished store is checked against the manifest it recorded at
    completion (one listing of its objects; see
    :mod:`holejax.store.manifest`): a missing or damaged chunk is an error
    naming the array and chunk, never fill values read as data.

    Args:
        store: path of a store written by :class:`ActivationWriter` or
            ``hj.export_activations``.
        allow_incomplete: open an interrupted export instead of raising
            (its chunks are not checked: unwritten samples read as NaN).

    Returns:
        Lazily loaded ``xarray.Dataset``: one ``(perturbation, sample,
        unit)`` variable per layer.

    Raises:
        StoreError: the path is missing, foreign, interrupted, damaged or malformed.
    """
    path = store_path(store)
    attrs = _open_group_attrs(path, ACTIVATIONS_KIND)
    if not allow_incomplete:
        if attrs.get("complete") is not True:
            validate_activations(xr.Dataset(attrs=attrs), path)  # raises: an interrupted export
        _check_whole(path, attrs)
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
    repeated = repeated_perturbations(acts)
    if repeated:
        raise ValueError(
            f"acts names the perturbations {repeated} more than once; each perturbation must be one "
            "entry of the perturbation dimension (export them once, or rename the copies)."
        )
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
    path = store_path(store)
    if path.exists() and mode == "error":
        raise StoreError(f"store {str(path)!r} already exists; pass mode='overwrite' or another path.")
    if path.exists():
        _check_removable(path, RESULTS_KIND)  # before any work
    ds = results.copy()
    ds.attrs = json_safe({**results.attrs, "holejax_store": RESULTS_KIND, "holejax_version": __version__})
    for name in list(ds.variables):
        var = ds[name]
        if var.dtype.kind == "U":
            # fixed-width unicode has no Zarr v3 data type; variable-length strings do
            ds[name] = var.astype(object)
        ds[name].attrs = json_safe(dict(var.attrs))
    partial = path.with_name(f"{path.name}.partial-{uuid.uuid4().hex[:12]}")  # ours alone: deleted on failure
    try:
        flat = {name: {"chunk_key_encoding": _FLAT_KEYS} for name in ds.variables}
        ds.to_zarr(partial, mode="w-", zarr_format=3, consolidated=False, encoding=flat)
        _record_manifest(partial)
        _consolidate(partial)
        if path.exists():
            _remove_store(path, RESULTS_KIND)
        partial.rename(path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return path


def open_results(store: str | os.PathLike) -> xr.Dataset:
    """Open a results store written by :func:`write_results`, checked against its manifest.

    Raises:
        StoreError: the path is missing, foreign or damaged (a chunk missing
            or cut short, named with its array).
    """
    path = store_path(store)
    attrs = _open_group_attrs(path, RESULTS_KIND)
    _check_whole(path, attrs, remedy="Write the results again (hj.write_results(..., mode='overwrite')).")
    return _open_dataset(path, attrs)


def _record_manifest(path: Path) -> None:
    """Record the manifest of the store at ``path`` (every array's chunk count and bytes) in its attributes."""
    group = _root_group(path, mode="r+")
    arrays = list(group.array_keys())
    group.attrs["manifest"] = array_manifest(store_objects(path, arrays), arrays)
