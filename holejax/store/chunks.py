"""Codecs of the activation store: the compressors a user may choose, and the checksum.

Every array of a store ends its codec pipeline with Zarr's ``crc32c`` codec,
so a chunk whose bytes were damaged or cut short fails to decode instead of
being read as data (see :func:`codecs_with_checksum`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

__all__ = ["COMPRESSORS", "codecs_with_checksum", "resolve_compressors"]

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


def codecs_with_checksum(compressors: tuple | None) -> tuple:
    """The bytes-to-bytes codecs of a stored array: ``compressors``, then a CRC-32C checksum.

    The checksum comes last, so it covers the bytes as they lie on disk: a
    truncated or altered chunk raises when it is read.

    Example:
        >>> [c.to_dict()["name"] for c in codecs_with_checksum(None)]
        ['crc32c']
        >>> [c.to_dict()["name"] for c in codecs_with_checksum(resolve_compressors("zstd", np.dtype("float32")))]
        ['zstd', 'crc32c']
    """
    return (*(compressors or ()), Crc32cCodec())
