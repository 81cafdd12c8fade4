"""Host arrays on their way into XLA: what a compiled call receives, and results made on the host.

A compiled call transfers a host numpy array itself, sooner than a
``jax.device_put`` before it; a ``jax.Array`` already holding the data needs
no transfer at all (:func:`device_input`). Matrices computed on the host
(geodesic distances, from scipy's Dijkstra) are written into memory aligned
the way XLA:CPU wants it (:func:`aligned_empty`), so :func:`adopt` hands them
over without copying: numpy's own allocations are only 16-byte aligned, and
XLA would copy such an ``n x n`` matrix.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import numpy as np

__all__ = ["device_input", "aligned_empty", "adopt"]

_ALIGN = 64  # bytes; XLA:CPU adopts host buffers aligned like this, and copies others
# JAX releases before device_put's may_alias always copy, which is still correct
_MAY_ALIAS = {"may_alias": True} if "may_alias" in inspect.signature(jax.device_put).parameters else {}


def device_input(X: Any, arr: np.ndarray) -> Any:
    """What a compiled call should receive for the validated host array ``arr`` of input ``X``.

    ``X`` itself when it is a ``jax.Array`` holding exactly ``arr`` (no
    second transfer); otherwise ``arr``: a jit call transfers a host array
    itself, which saves the separate ``jax.device_put`` step.

    Example:
        >>> import jax.numpy as jnp
        >>> X = jnp.ones((3, 2))
        >>> device_input(X, np.asarray(X)) is X
        True
    """
    if isinstance(X, jax.Array) and X.shape == arr.shape and X.dtype == arr.dtype:
        return X
    return arr


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary.

    Example:
        >>> a = aligned_empty((3, 5), np.float32)
        >>> a.shape, a.dtype.name, a.ctypes.data % 64, a.flags.c_contiguous
        ((3, 5), 'float32', 0, True)
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + _ALIGN, np.uint8)
    offset = -raw.ctypes.data % _ALIGN
    return raw[offset : offset + nbytes].view(dtype).reshape(shape)


def adopt(host: np.ndarray) -> jax.Array:
    """``host`` as a ``jax.Array``, without a copy where XLA can take the memory over.

    ``host`` must be an array nothing else writes to afterwards (a result
    the caller just computed): the returned array may share its memory.
    Arrays from :func:`aligned_empty` are taken over on the CPU; others, or
    other devices, are copied.

    Example:
        >>> a = aligned_empty((2, 2), np.float32)
        >>> a[:] = 1.0
        >>> np.asarray(adopt(a)).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    return jax.device_put(host, **_MAY_ALIAS)
