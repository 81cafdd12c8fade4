"""Submitting a study's tasks to a Dask cluster and gathering their results with progress.

The scheduler does the fault handling: a task whose worker dies is run again
on another worker (up to ``distributed.scheduler.allowed-failures`` times).
The driver pulls each result as soon as its task finishes, so a worker lost
later takes nothing with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

__all__ = ["check_client", "connect", "run_tasks"]

_INSTALL = 'pip install "holejax[dask]"'


def _distributed() -> Any:
    try:
        import distributed  # dask: an optional dependency
    except ImportError as err:
        raise ImportError(f"running on a cluster needs Dask distributed; install it with {_INSTALL}.") from err
    return distributed


def check_client(client: Any) -> Any:
    """Return ``client`` if it is a connected ``distributed.Client``; otherwise raise TypeError / ValueError.

    Example:
        >>> check_client("tcp://scheduler:8786")
        Traceback (most recent call last):
        ...
        TypeError: client must be a distributed.Client (e.g. distributed.Client("tcp://scheduler:8786")); got str. ...
    """
    if type(client).__name__ != "Client" or not hasattr(client, "submit"):
        hint = " Connect first: client = distributed.Client(address)." if isinstance(client, str) else ""
        raise TypeError(
            "client must be a distributed.Client (e.g. distributed.Client(\"tcp://scheduler:8786\")); "
            f"got {type(client).__name__}.{hint}"
        )
    if client.status not in ("running", "connecting", "newly-created"):
        raise ValueError(f"client is {client.status!r}, not connected to a scheduler; create a new distributed.Client.")
    return client


def connect(address: str, timeout: float = 30.0) -> Any:
    """A ``distributed.Client`` connected to the scheduler at ``address`` (``tcp://host:8786``).

    Raises:
        ImportError: Dask distributed is not installed (with the install command).
        OSError: no scheduler answered at ``address`` within ``timeout`` seconds.
    """
    distributed = _distributed()
    try:
        return distributed.Client(address, timeout=timeout)
    except OSError as err:
        raise OSError(
            f"no Dask scheduler answered at {address!r} within {timeout:g} s ({err}); start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS`, or check the address."
        ) from err


def run_tasks(
    client: Any,
    function: Callable,
    items: Sequence[tuple[str, tuple]],
    *,
    shared: dict[str, Any] | None = None,
    description: str = "tasks",
    progress: bool = True,
) -> list[Any]:
    """``function(*args, **shared)`` for every ``(name, args)`` of ``items`` on the cluster, results in order.

    Args:
        client: a ``distributed.Client``.
        function: a module-level function (the workers import it by name).
        items: one ``(name, args)`` per task; ``name`` labels the task on the
            dashboard (its key is ``holejax-<description>-<name>-<token>``).
        shared: keyword arguments common to every task (arrays over 1 MiB are
            scattered to the cluster once).
        description: the progress bar's label and the tasks' key prefix.
        progress: show a tqdm bar on the driver as tasks finish.

    Returns:
        The results, in the order of ``items``.

    Raises:
        The first task's exception (the remaining tasks are cancelled).
    """
    distributed = _distributed()
    # large arrays (labels of a big sample set) go to the cluster once, not inside every task
    shared = {k: _scattered(client, v) for k, v in (shared or {}).items()}
    token = uuid.uuid4().hex  # every study its own keys
    prefix = "holejax-" + description.replace(" ", "-")
    futures = [
        client.submit(function, *args, **shared, key=f"{prefix}-{name}-{token}", pure=False, retries=0)
        for name, args in items
    ]
    index = {future.key: i for i, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    try:
        with tqdm(total=len(futures), desc=description, unit="task", disable=not progress) as bar:
            for future in distributed.as_completed(futures):
                results[index[future.key]] = future.result()  # re-raises a task's exception
                future.release()
                bar.update(1)
    except BaseException:
        client.cancel(futures)
        raise
    return results


def _scattered(client: Any, value: Any) -> Any:
    """A future for an array over 1 MiB (sent to the cluster once), else ``value`` itself."""
    if getattr(value, "nbytes", 0) > 2**20 and hasattr(value, "shape"):
        return client.scatter([value], hash=False)[0]
    return value
