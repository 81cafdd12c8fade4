"""Studies beyond one process: a Dask cluster, and every JAX device of one machine.

Modules:
    stores    where the workers find a store (a shared path or an fsspec URL) and how they open it
    tasks     submitting tasks to a ``distributed.Client``, progress, gathering
    studies   ``hj.analyze`` / ``hj.topology_summary`` split into independent tasks and stitched back
    sharding  a batch of clouds spread over every local JAX device

Dask is imported only when a cluster is used (``pip install "holejax[dask]"``).
The names below load their module on first use: the kernels of
:mod:`holejax.metrics` import :mod:`holejax.distributed.sharding`, and the
study modules import :mod:`holejax.analysis` and :mod:`holejax.topology`.
``hj.analyze(store, ..., client=client)`` and
``hj.topology_summary(store, ..., client=client)`` come here.

Example:
    >>> from holejax.distributed import is_url
    >>> is_url("gs://bucket/acts.zarr")
    True
"""

from __future__ import annotations

from holejax._lazy import lazy_getattr

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "analyze_on_cluster": "holejax.distributed.studies",
    "check_client": "holejax.distributed.tasks",
    "combine_parts": "holejax.distributed.studies",
    "connect": "holejax.distributed.tasks",
    "is_url": "holejax.distributed.stores",
    "open_store": "holejax.distributed.stores",
    "open_store_on_worker": "holejax.distributed.stores",
    "run_tasks": "holejax.distributed.tasks",
    "store_address": "holejax.distributed.stores",
    "topology_summary_on_cluster": "holejax.distributed.studies",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
