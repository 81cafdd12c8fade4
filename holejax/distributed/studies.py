"""``hj.analyze`` and ``hj.topology_summary`` on a Dask cluster, equal to the local results bit for bit.

A study splits into tasks whose results do not depend on each other:

- ``analyze``: one task per ``(layer, metric)``, holding every perturbation of
  that layer (the diagram distances compare each perturbed cloud with its
  clean twin, so they travel together);
- ``topology_summary``: one task per perturbation, holding every layer (the
  Betti-number decay is fitted across the layers).

Each task opens the store itself, reads only its clouds' chunks and runs the
ordinary local function on its part; the driver reads nothing but the
store's metadata and stitches the parts together along ``layer`` / ``metric``
or ``perturbation``. Every cloud is computed by the same single-cloud
programs as in a local run (the batched kernels handle each cloud of a batch
on its own), so the gathered Dataset is identical to the local one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from holejax._checks import check_choice
from holejax.analysis import analyze
from holejax.distributed.stores import open_store, open_store_on_worker, store_address
from holejax.distributed.tasks import check_client, run_tasks
from holejax.metrics import METRICS
from holejax.store import layer_names
from holejax.topology import topology_summary

__all__ = ["analyze_on_cluster", "combine_parts", "topology_summary_on_cluster"]


def _name_list(value: Any, argument: str, available: Sequence[str], what: str) -> list[str]:
    """The names a study covers, checked against the store (None: all)."""
    if value is None:
        return list(available)
    values = [value] if isinstance(value, str) or not isinstance(value, Sequence) else list(value)
    names = [getattr(v, "name", v) for v in values]  # Perturbation objects
    if not names:
        raise ValueError(f"{argument} is empty; pass at least one {what} or None for all.")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{argument} must hold {what} names (str); got {type(name).__name__}.")
        check_choice(name, argument, available)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{argument} lists the {what}s {repeated} more than once.")
    return names


def _analyze_part(store: str, layer: str, metric: str, *, metric_params: Any = None, **options: Any) -> Any:
    """One task: ``hj.analyze`` of every perturbation of one layer under one metric."""
    params = None if not metric_params or metric not in metric_params else {metric: metric_params[metric]}
    return analyze(open_store_on_worker(store), metrics=[metric], layers=[layer], metric_params=params, **options)


def _topology_part(store: str, perturbation: str, **options: Any) -> Any:
    """One task: ``hj.topology_summary`` of every layer under one perturbation."""
    return topology_summary(open_store_on_worker(store), perturbations=[perturbation], **options)


def analyze_on_cluster(
    client: Any,
    acts: Any,
    metrics: str | Sequence[str] = ("euclidean",),
    layers: Sequence[str] | None = None,
    perturbations: Sequence[Any] | None = None,
    *,
    progress: bool = True,
    **options: Any,
) -> Any:
    """``hj.analyze(acts, metrics, layers, perturbations, **options)``, one task per (layer, metric) on ``client``.

    Args:
        client: a ``distributed.Client``.
        acts: the activation store's path (on a file system every worker
            mounts at that path), an fsspec URL, or a Dataset opened from one.
        metrics, layers, perturbations, **options: as in :func:`holejax.analyze`.
        progress: a progress bar on the driver (the dashboard shows the tasks
            as ``holejax-analyze-<layer>-<metric>-...``).

    Returns:
        The ``xarray.Dataset`` that ``hj.analyze`` returns for the same arguments.

    Raises:
        TypeError / ValueError: bad client, unknown layer, metric or
            perturbation names, before any task runs; a task's own error
            (e.g. NaN activations) as ``hj.analyze`` raises it.
        StoreError: a worker cannot open the store (naming the store and the worker).

    Example (a local cluster of two worker processes; ``tests/distributed`` runs it)::

        import distributed, holejax as hj

        with distributed.Client(n_workers=2, threads_per_worker=1) as client:
            res = hj.analyze("acts.zarr", metrics=["euclidean", "cosine"], client=client)
    """
    check_client(client)
    address, source = store_address(acts)
    store = open_store(address)  # metadata only: names, sizes, coordinates
    metric_list = _name_list(metrics, "metrics", list(METRICS), "metric")
    layer_list = _name_list(layers, "layers", layer_names(store), "layer")
    store_perts = [str(p) for p in store["perturbation"].values]
    pert_names = None if perturbations is None else _name_list(perturbations, "perturbations", store_perts, "perturbation")
    metric_params = options.get("metric_params")
    if isinstance(metric_params, Mapping):
        for metric in metric_params:
            if metric not in metric_list:
                raise ValueError(
                    f"metric_params has an entry for {metric!r}, which is not among metrics={metric_list}; "
                    "add it to metrics or remove the entry."
                )

    items = [
        (f"{layer}-{metric}", (address, layer, metric))
        for metric in metric_list
        for layer in layer_list
    ]
    parts = run_tasks(
        client, _analyze_part, items, shared={"perturbations": pert_names, **options},
        description="analyze", progress=progress,
    )
    grid = {(li, mi): parts[mi * len(layer_list) + li] for mi in range(len(metric_list)) for li in range(len(layer_list))}
    result = combine_parts(grid, {"layer": layer_list, "metric": metric_list})
    result.attrs["source"] = source or ""
    return result


def topology_summary_on_cluster(
    client: Any,
    acts: Any,
    *,
    perturbations: Sequence[str] | None = None,
    weights: Any = None,
    progress: bool = True,
    **options: Any,
) -> Any:
    """``hj.topology_summary(acts, **options)``, one task per perturbation on ``client``.

    Args:
        client: a ``distributed.Client``.
        acts: the activation store's path, an fsspec URL, or a Dataset opened from one.
        perturbations, weights, **options: as in :func:`holejax.topology_summary`;
            the weights are sent to the cluster once.
        progress: a progress bar on the driver.

    Returns:
        The ``xarray.Dataset`` that ``hj.topology_summary`` returns for the same arguments.
    """
    check_client(client)
    address, source = store_address(acts)
    store = open_store(address)
    store_perts = [str(p) for p in store["perturbation"].values]
    pert_list = _name_list(perturbations, "perturbations", store_perts, "perturbation")
    shared = dict(options)
    if weights is not None:
        shared["weights"] = client.scatter([weights], hash=False)[0]
    items = [(p, (address, p)) for p in pert_list]
    parts = run_tasks(client, _topology_part, items, shared=shared, description="topology", progress=progress)
    result = combine_parts({(pi,): part for pi, part in enumerate(parts)}, {"perturbation": pert_list})
    result.attrs["source"] = source or ""
    return result


def combine_parts(parts: Mapping[tuple[int, ...], Any], dims: Mapping[str, Sequence[Any]]) -> Any:
    """One Dataset from parts that each cover one position along ``dims``.

    Args:
        parts: ``{(i, j, ...): Dataset}``, one index per entry of ``dims``,
            every part holding a length-1 slice along those dims.
        dims: ``{dim: full coordinate}``, e.g. ``{"layer": [...], "metric": [...]}``.

    Returns:
        A Dataset whose variables along ``dims`` are filled from the parts
        (dtypes kept); variables without those dims come from the first part;
        dict attrs are merged over the parts (e.g. per-metric parameters),
        other attrs taken from the first part.

    Example:
        >>> import xarray as xr
        >>> a = xr.Dataset({"v": ("metric", [1.0])}, coords={"metric": ["x"]})
        >>> b = xr.Dataset({"v": ("metric", [2.0])}, coords={"metric": ["y"]})
        >>> combine_parts({(0,): a, (1,): b}, {"metric": ["x", "y"]}).v.values.tolist()
        [1.0, 2.0]
    """
    names = list(dims)
    sizes = [len(dims[d]) for d in names]
    missing = [idx for idx in np.ndindex(*sizes) if idx not in parts]
    if missing:
        raise ValueError(f"parts miss the positions {missing} of {names}.")
    first = parts[(0,) * len(names)]

    def assemble(name: str) -> Any:
        var = first.variables[name]
        along = [d for d in names if d in var.dims]
        if not along:
            return var
        shape = tuple(len(dims[d]) if d in along else s for d, s in zip(var.dims, var.shape))
        out = np.empty(shape, dtype=var.dtype)
        for idx in np.ndindex(*sizes):
            if any(i and d not in along for i, d in zip(idx, names)):
                continue  # a variable without this dim is the same in every part along it
            part = parts[idx].variables[name]
            where = tuple(
                slice(idx[names.index(d)], idx[names.index(d)] + 1) if d in along else slice(None) for d in var.dims
            )
            out[where] = part.values
        return xr.Variable(var.dims, out, attrs=var.attrs, encoding=var.encoding)

    coords = {name: (dims[name] if name in dims else assemble(name)) for name in first.coords}
    data = {name: assemble(name) for name in first.data_vars}
    attrs = {}
    for key, value in first.attrs.items():
        values = [p.attrs.get(key) for p in parts.values()]
        if isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            merged: dict = {}
            for idx in np.ndindex(*sizes):
                merged.update(parts[idx].attrs[key])
            attrs[key] = merged
        else:
            attrs[key] = value
    return xr.Dataset(data, coords=coords, attrs=attrs)
