"""Studies beyond one process: a Dask cluster, and every JAX device of one machine.

Modules:
    stores    where the workers find a store (a shared path or an fsspec URL) and how they open it
    tasks     submitting tasks to a ``distributed.Client``, progress, gathering
    studies   ``hj.analyze`` / ``hj.topology_summary`` split into independent tasks and stitched back
    sharding  a batch of clouds spread over every local JAX device

Dask is imported only when a cluster is used (``pip install "holejax[dask]"``).
``hj.analyze(store, ..., client=client)`` and
``hj.topology_summary(store, ..., client=client)`` come here.

Example:
    >>> from holejax.distributed import is_url
    >>> is_url("gs://bucket/acts.zarr")
    True
"""

from holejax.distributed.stores import is_url, open_store, open_store_on_worker, store_address
from holejax.distributed.studies import analyze_on_cluster, combine_parts, topology_summary_on_cluster
from holejax.distributed.tasks import check_client, connect, run_tasks

__all__ = [
    "analyze_on_cluster",
    "check_client",
    "combine_parts",
    "connect",
    "is_url",
    "open_store",
    "open_store_on_worker",
    "run_tasks",
    "store_address",
    "topology_summary_on_cluster",
]
