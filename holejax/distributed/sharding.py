"""A batch of clouds spread over every local JAX device.

A compiled call whose input is sharded along its leading (batch) axis with a
:class:`jax.sharding.NamedSharding` over ``jax.local_devices()`` is
partitioned by XLA: each device computes its own slice of clouds, and the
output stays sharded the same way. Each cloud is computed by the same
single-cloud program as on one device, so the results are the same.

With one device nothing changes: the batch stays the host array it was.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["batch_sharding", "device_count", "round_to_devices", "shard_batch"]


def device_count() -> int:
    """The number of local JAX devices (``jax.local_devices()``)."""
    return len(jax.local_devices())


@functools.lru_cache(maxsize=8)
def _sharding(devices: tuple) -> Any:
    return NamedSharding(Mesh(np.array(devices), ("batch",)), PartitionSpec("batch"))


def batch_sharding() -> Any:
    """``NamedSharding`` that splits axis 0 over every local device, or None with one device.

    Example:
        >>> s = batch_sharding()
        >>> s is None or len(s.device_set) > 1
        True
    """
    devices = tuple(jax.local_devices())
    return None if len(devices) < 2 else _sharding(devices)


def round_to_devices(count: int) -> int:
    """``count`` rounded up to a multiple of the local device count (each device gets an equal slice).

    Example:
        >>> round_to_devices(5) % device_count()
        0
    """
    k = device_count()
    return -(-int(count) // k) * k


def shard_batch(xs: Any) -> Any:
    """``xs`` ``(batch, ...)`` placed one equal slice per local device; unchanged with one device.

    Args:
        xs: an array whose leading axis is the batch; its length must be a
            multiple of the device count (see :func:`round_to_devices`).

    Returns:
        A ``jax.Array`` sharded along axis 0 over ``jax.local_devices()``, or
        ``xs`` itself when there is one device.

    Raises:
        ValueError: the batch does not split evenly over the devices.

    Example:
        >>> import numpy as np
        >>> xs = np.zeros((round_to_devices(3), 4, 2), np.float32)
        >>> shard_batch(xs).shape == xs.shape
        True
    """
    sharding = batch_sharding()
    if sharding is None:
        return xs
    k = len(sharding.device_set)
    if xs.shape[0] % k:
        raise ValueError(
            f"a batch of {xs.shape[0]} clouds does not split evenly over {k} devices; pad it to "
            f"round_to_devices({xs.shape[0]}) = {round_to_devices(xs.shape[0])} clouds first."
        )
    return jax.device_put(xs, sharding)
