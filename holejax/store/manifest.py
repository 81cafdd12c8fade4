"""A finished store proves it is whole: what was written, recorded at completion and checked on open.

At completion the writer lists the store's objects (through the Zarr store
API) and records, per array, how many chunk objects it holds and their total
size in bytes (root attribute ``manifest``). Opening the store lists them
again and compares: a deleted chunk, a deleted array folder or a chunk cut
short is found before any value is read, in one listing of the store. Each
chunk also carries a CRC-32C checksum (the ``crc32c`` codec), so a chunk
altered in place fails to decode when it is read.

When the listing disagrees, :func:`locate_damage` reads the affected arrays
chunk by chunk to name the chunk: one that fails to decode is damaged, one
of an activation array that reads as all fill value (NaN, which no written
activation holds) is missing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import zarr
from zarr.storage import LocalStore

__all__ = ["ChunkProblem", "array_manifest", "locate_damage", "manifest_differences", "run_coroutine", "store_objects"]

METADATA_KEY = "zarr.json"  # a node's metadata document (Zarr v3 specification)


def run_coroutine(make: Callable[[], Coroutine], loop: asyncio.AbstractEventLoop | None = None) -> Any:
    """Run the coroutine ``make()`` to completion and return its result.

    On ``loop`` (an event loop the caller owns and that no thread is
    running), or on a fresh one; where the calling thread already runs an
    event loop (a notebook), in a worker thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if loop is not None:
            return loop.run_until_complete(make())
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()


async def _object_sizes(store: Any, arrays: list[str]) -> dict[str, int]:
    sizes = {}
    for name in arrays:
        async for key in store.list_dir(name):
            sizes[f"{name}/{key}"] = await store.getsize(f"{name}/{key}")
    return sizes


def store_objects(path: Any, arrays: Iterable[str]) -> dict[str, int]:
    """The objects of the named arrays of the local store at ``path``: key -> size in bytes.

    One listing per array folder: the stores' arrays key their chunks with
    the ``"."`` separator (``c.0.3.0``), so every chunk lies directly in it.

    Example:
        >>> import tempfile
        >>> g = zarr.create_group(tempfile.mkdtemp(), zarr_format=3)
        >>> a = g.create_array("x", shape=(4,), chunks=(2,), dtype="int8",
        ...                    chunk_key_encoding={"name": "default", "separator": "."})
        >>> a[:] = 1
        >>> sorted(store_objects(g.store.root, ["x"]))
        ['x/c.0', 'x/c.1', 'x/zarr.json']
    """
    store = LocalStore(path, read_only=True)
    names = [str(a) for a in arrays]
    return run_coroutine(lambda: _object_sizes(store, names))


def array_manifest(objects: Mapping[str, int], arrays: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per array: the number of chunk objects and their total bytes, from ``objects`` (key -> size).

    Example:
        >>> array_manifest({"fc/zarr.json": 90, "fc/c.0.0.0": 16, "fc/c.0.1.0": 16}, ["fc"])
        {'fc': {'chunks': 2, 'bytes': 32, 'metadata': 1}}
    """
    out = {str(name): {"chunks": 0, "bytes": 0, "metadata": 0} for name in arrays}
    for key, size in objects.items():
        name, _, rest = key.partition("/")
        entry = out.get(name)
        if entry is None or not rest:
            continue
        if rest == METADATA_KEY:
            entry["metadata"] = 1
        else:
            entry["chunks"] += 1
            entry["bytes"] += int(size)
    return out


def manifest_differences(recorded: Mapping[str, Any], found: Mapping[str, Mapping[str, int]]) -> dict[str, str]:
    """Arrays whose objects differ from the record: name -> what differs, in words.

    Example:
        >>> rec = {"fc": {"chunks": 2, "bytes": 32}}
        >>> manifest_differences(rec, {"fc": {"chunks": 1, "bytes": 16, "metadata": 1}})
        {'fc': '1 of its 2 chunks are missing'}
        >>> manifest_differences(rec, {"fc": {"chunks": 2, "bytes": 30, "metadata": 1}})
        {'fc': 'its chunks hold 30 bytes, 32 were written'}
    """
    out = {}
    for name, rec in recorded.items():
        now = found.get(name, {"chunks": 0, "bytes": 0, "metadata": 0})
        if not now.get("metadata"):
            out[name] = "the array is missing (its folder or its zarr.json was deleted)"
        elif now["chunks"] < int(rec["chunks"]):
            out[name] = f"{int(rec['chunks']) - now['chunks']} of its {int(rec['chunks'])} chunks are missing"
        elif now["chunks"] != int(rec["chunks"]) or now["bytes"] != int(rec["bytes"]):
            out[name] = f"its chunks hold {now['bytes']} bytes, {int(rec['bytes'])} were written"
    return out


class ChunkProblem(NamedTuple):
    """One missing or damaged chunk.

    Attributes:
        array: the array's name.
        chunk: the chunk's index in the array's chunk grid.
        region: the array region it holds (one ``slice`` per dim).
        problem: ``"missing"`` or ``"damaged"`` (with the decoder's reason).
    """

    array: str
    chunk: tuple[int, ...]
    region: tuple[slice, ...]
    problem: str


def _chunk_regions(arr: zarr.Array) -> Iterable[tuple[tuple[int, ...], tuple[slice, ...]]]:
    for index in np.ndindex(*arr.cdata_shape):
        yield index, tuple(
            slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(index, arr.chunks, arr.shape, strict=True)
        )


def locate_damage(group: zarr.Group, name: str) -> list[ChunkProblem]:
    """The chunks of array ``name`` that fail to decode, or (floating arrays) read as all NaN.

    Reads the array chunk by chunk through Zarr: the slow path, taken only
    once the listing showed that something is wrong.
    """
    try:
        arr = group[name]
    except (KeyError, ValueError, OSError):
        return []
    try:
        floating = np.dtype(arr.dtype).kind == "f"
    except TypeError:  # Zarr's own string types
        floating = False
    problems = []
    for index, region in _chunk_regions(arr):
        try:
            values = arr[region]
        except Exception as err:  # a codec's error: the bytes on disk are not what was written
            problems.append(ChunkProblem(name, index, region, f"damaged ({type(err).__name__}: {err})"))
            continue
        if floating and np.isnan(values).all():
            problems.append(ChunkProblem(name, index, region, "missing"))
    return problems
