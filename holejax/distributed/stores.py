"""Where the workers find an activation store, and how they open it.

On a cluster every task opens the store itself, so a study is passed by its
address (a local path on a file system every worker shares, or an fsspec URL
Zarr accepts, e.g. ``s3://bucket/acts.zarr``), never as activations in the
driver's memory.
"""

from __future__ import annotations

import os
import socket
import warnings
from typing import Any

import xarray as xr

from holejax.store import StoreError, open_activations, validate_activations

__all__ = ["is_url", "open_store", "open_store_on_worker", "store_address"]


def is_url(store: Any) -> bool:
    """Whether ``store`` is an fsspec URL (``protocol://...``) rather than a local path.

    Example:
        >>> is_url("s3://bucket/acts.zarr"), is_url("/data/acts.zarr")
        (True, False)
    """
    return isinstance(store, str) and "://" in store


def open_store(store: str) -> Any:
    """Open and validate the activation store at a local path or an fsspec URL.

    Args:
        store: a path (opened with ``hj.open_activations``) or a URL such as
            ``file:///data/acts.zarr`` or ``s3://bucket/acts.zarr`` (opened
            with ``xarray.open_zarr``; the protocol's fsspec package must be
            installed).

    Returns:
        The lazily loaded activation ``xarray.Dataset``.

    Raises:
        StoreError: the store is missing, foreign or an interrupted export.

    Example:
        >>> import tempfile, numpy as np
        >>> from holejax.store import ActivationWriter, LayerSpec
        >>> path = tempfile.mkdtemp() + "/acts.zarr"
        >>> w = ActivationWriter.create(path, [LayerSpec("fc", (3,))], n_samples=4)
        >>> w.write_batch("clean", 0, {"fc": np.ones((4, 3), np.float32)})
        >>> _ = w.finish()
        >>> open_store("file://" + path)["fc"].shape
        (1, 4, 3)
    """
    if not is_url(store):
        return open_activations(store)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # no consolidated metadata
            ds = xr.open_zarr(store, zarr_format=3)
    except Exception as err:  # zarr / fsspec raise many types for a missing or unreadable store
        raise StoreError(f"no activation store at {store!r} ({type(err).__name__}: {err}); check the URL.") from err
    validate_activations(ds, store)
    return ds


def store_address(acts: Any) -> tuple[str, str | None]:
    """The address the workers open, and the ``source`` a local run would record.

    Args:
        acts: a store path, an fsspec URL, or an activation Dataset opened from
            a store (``hj.open_activations``).

    Returns:
        ``(address, source)``: an absolute path or the URL for the workers; the
        string a local ``hj.analyze`` records as ``attrs["source"]``.

    Raises:
        TypeError: ``acts`` is a Dataset that was not opened from a store (the
            workers cannot read the driver's memory).

    Example:
        >>> store_address("s3://bucket/acts.zarr")
        ('s3://bucket/acts.zarr', 's3://bucket/acts.zarr')
    """
    if isinstance(acts, (str, os.PathLike)):
        source = os.fspath(acts)
        return (source if is_url(source) else os.path.abspath(source)), source
    source = getattr(acts, "encoding", {}).get("source")
    if source is None:
        raise TypeError(
            "on a cluster the workers open the activation store themselves, so pass the store's path or "
            f"URL (or a Dataset from hj.open_activations); got a {type(acts).__name__} held in memory. "
            "Write it with hj.export_activations(..., store=path) first."
        )
    source = str(source)
    return (source if is_url(source) else os.path.abspath(source)), source


def open_store_on_worker(store: str) -> Any:
    """Open ``store`` inside a task; a failure names the store and the worker.

    Raises:
        StoreError: ``worker <address> (host <name>) could not open the activation store ...``.
    """
    try:
        return open_store(store)
    except Exception as err:
        problem = str(err)
    # raised outside the handler: no exception chain, whose zarr / fsspec errors may not unpickle on the driver
    raise StoreError(
        f"worker {_worker_name()} (host {socket.gethostname()}) could not open the activation store "
        f"{store!r}: {problem} Every worker must reach the store: put it on a file system all workers "
        "mount at the same path, or in an object store they can read (an fsspec URL such as "
        "s3://bucket/acts.zarr)."
    )


def _worker_name() -> str:
    try:
        from distributed import get_worker  # dask: an optional dependency

        worker = get_worker()
    except (ImportError, ValueError):  # not inside a task
        return f"process {os.getpid()}"
    return f"{worker.address}" + (f" ({worker.name})" if worker.name not in (None, worker.address) else "")
