"""Codecs of the activation store and direct writes of whole sample chunks.

Writing a batch through ``zarr.Array.__setitem__`` costs about a millisecond
of Python per chunk (indexing, the async codec pipeline, an event-loop round
trip), which is most of an export's write time. An export writes whole
chunks in order, so :class:`ChunkFiles` encodes each whole chunk itself (raw
little-endian bytes, then the array's compressor through the same numcodecs
codec Zarr uses) and writes it to the chunk's file under the key Zarr's own
metadata gives, through a temporary file renamed into place as Zarr does.
The edge chunk is written whole as well, padded with the fill value, as Zarr
stores it. The store stays an ordinary Zarr v3 store: every byte equals what
Zarr would have written, which the tests check. Anything else (part of a
chunk, a codec it does not know, a store that is not a local folder) goes
through Zarr.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

__all__ = ["COMPRESSORS", "ChunkFiles", "resolve_compressors"]

COMPRESSORS = (None, "lz4", "zstd")


def resolve_compressors(compressors: Any, dtype: np.dtype) -> tuple | None:
    """The Zarr v3 compressor codecs for ``compressors``.

    Args:
        compressors: ``None`` (no compression, the default: fastest, and
            float32 activations rarely shrink by more than 10-40%),
            ``"lz4"`` (Blosc LZ4 with byte shuffle, level 5: cheap, small
            gains), ``"zstd"`` (Zstandard level 1: ~1.8x smaller for ReLU
            outputs, several times the write cost), or Zarr v3 bytes-to-bytes
            codecs (one or a sequence) passed on as they are.
        dtype: the stored floating dtype (sets the Blosc type size).

    Returns:
        A tuple of codecs, or None for no compression.

    Example:
        >>> import numpy as np
        >>> resolve_compressors(None, np.dtype("float32")) is None
        True
        >>> resolve_compressors("zstd", np.dtype("float32"))[0].to_dict()["name"]
        'zstd'
    """
    from zarr.abc.codec import BytesBytesCodec
    from zarr.codecs import BloscCodec, ZstdCodec

    if compressors is None:
        return None
    if isinstance(compressors, str):
        if compressors == "lz4":
            return (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=dtype.itemsize),)
        if compressors == "zstd":
            return (ZstdCodec(level=1),)
        raise ValueError(
            f"compressors={compressors!r} is not a known name; expected one of {COMPRESSORS} or "
            "Zarr v3 codecs such as zarr.codecs.ZstdCodec(level=3)."
        )
    codecs = (compressors,) if isinstance(compressors, BytesBytesCodec) else compressors
    if not isinstance(codecs, Sequence) or not all(isinstance(c, BytesBytesCodec) for c in codecs):
        raise TypeError(
            f"compressors must be None, 'lz4', 'zstd' or Zarr v3 bytes-to-bytes codecs; got {compressors!r}. "
            "Pass e.g. compressors=zarr.codecs.BloscCodec(cname='zstd', clevel=3, shuffle='shuffle')."
        )
    return tuple(codecs) or None


def _numcodecs(codec: Any) -> Any | None:
    """The numcodecs object that encodes like the Zarr codec ``codec``, or None."""
    import numcodecs

    config = codec.to_dict()
    name, cfg = config["name"], config.get("configuration", {})
    if name == "zstd":
        return numcodecs.Zstd(level=cfg["level"], checksum=cfg["checksum"])
    if name == "blosc":
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}.get(cfg["shuffle"])
        if shuffle is None:
            return None
        return numcodecs.Blosc(
            cname=cfg["cname"], clevel=cfg["clevel"], shuffle=shuffle, blocksize=cfg["blocksize"],
            typesize=cfg["typesize"],
        )
    return None


class ChunkFiles:
    """Writes the whole ``(1, chunk, unit)`` chunks of one activation array as files.

    Build one with :meth:`of`, which returns None for arrays it cannot
    write directly; :meth:`write` hands partial chunks to Zarr.

    Example:
        >>> import tempfile, numpy as np, zarr
        >>> g = zarr.open_group(tempfile.mkdtemp(), mode="w", zarr_format=3)
        >>> a = g.create_array("fc", shape=(1, 5, 3), chunks=(1, 2, 3), dtype="float32", compressors=None)
        >>> files = ChunkFiles.of(a)
        >>> files.write(0, 0, np.arange(15, dtype=np.float32).reshape(5, 3))
        >>> a[0, :, 0]
        array([ 0.,  3.,  6.,  9., 12.], dtype=float32)
    """

    def __init__(self, array: zarr.Array, folder: Path, encoders: list[Any]):
        self.array = array
        self.folder = folder
        self.encoders = encoders
        self.chunk = int(array.chunks[1])
        self.dtype = np.dtype(array.dtype).newbyteorder("<")
        self.fill = array.metadata.fill_value
        self._made: set[Path] = set()

    @classmethod
    def of(cls, array: zarr.Array) -> "ChunkFiles | None":
        """A writer for ``array``, or None where only Zarr can write it."""
        from zarr.storage import LocalStore

        meta = array.metadata
        if getattr(meta, "zarr_format", None) != 3 or not isinstance(array.store, LocalStore):
            return None
        if array.ndim != 3 or array.chunks[0] != 1 or array.chunks[2] != array.shape[2]:
            return None
        codecs = list(meta.codecs)
        first = codecs[0].to_dict() if codecs else {}
        if first.get("name") != "bytes" or first.get("configuration", {}).get("endian", "little") != "little":
            return None
        encoders = [_numcodecs(c) for c in codecs[1:]]
        if any(e is None for e in encoders):
            return None
        return cls(array, Path(array.store.root) / array.path, encoders)

    def _put(self, key: str, data: np.ndarray) -> None:
        path = self.folder / key
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        buf: Any = data
        for encoder in self.encoders:
            buf = encoder.encode(np.frombuffer(buf, dtype=np.uint8))
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(tmp, "xb") as f:
                f.write(memoryview(buf).cast("B"))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write(self, p_index: int, start: int, data: np.ndarray) -> None:
        """Store ``data`` ``(sample, unit)`` at ``[p_index, start:start + len(data)]``.

        Whole chunks are encoded and written here, the edge chunk too when
        ``data`` holds all of its samples (Zarr stores edge chunks whole,
        padded with the fill value); the pieces of partial chunks (batches
        not aligned to chunks) go through ``zarr.Array.__setitem__``.
        """
        data = np.ascontiguousarray(data, dtype=self.dtype)
        stop = start + len(data)
        c, n = self.chunk, self.array.shape[1]
        for k in range(start // c, -(-stop // c)):
            lo, hi = max(start, k * c), min(stop, (k + 1) * c)
            piece = data[lo - start : hi - start]
            if lo == k * c and hi == min((k + 1) * c, n):
                if hi - lo < c:  # the edge chunk: stored whole, its rows past the end hold the fill value
                    piece = np.concatenate([piece, np.full((c - len(piece), piece.shape[1]), self.fill, self.dtype)])
                self._put(self.array.metadata.encode_chunk_key((p_index, k, 0)), piece)
            else:
                self.array[p_index, lo:hi, :] = piece
