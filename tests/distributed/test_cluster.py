"""hj.analyze / hj.topology_summary on a real LocalCluster: identical to a local run, faults, bad stores."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import dask
import fsspec
import numpy as np
import pytest
import xarray as xr
from cluster_stores import METRICS

import holejax as hj
from holejax.cli import main
from holejax.store import StoreError


def assert_equal_bitwise(local: xr.Dataset, remote: xr.Dataset) -> None:
    xr.testing.assert_identical(local, remote)
    for name in local.variables:
        a, b = local[name].values, remote[name].values
        assert a.dtype == b.dtype, name
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


@pytest.fixture(scope="module")
def local_study(store):
    return hj.analyze(store, metrics=METRICS)


def _refuse_layer_reads(monkeypatch):
    """Make any read of a (perturbation, sample, unit) array in this (the driver's) process fail."""
    from xarray.backends.zarr import ZarrArrayWrapper

    read = ZarrArrayWrapper.__getitem__

    def guarded(self, key):
        if len(self.shape) == 3:
            raise AssertionError("the driver read activations")
        return read(self, key)

    monkeypatch.setattr(ZarrArrayWrapper, "__getitem__", guarded)


def _keys_run_twice(client) -> list[str]:
    """Keys of holejax tasks the scheduler sent to a worker more than once."""

    def count(dask_scheduler):
        seen: dict[str, int] = {}
        for key, _start, finish, *_ in dask_scheduler.transition_log:
            if str(key).startswith("holejax-") and finish == "processing":
                seen[str(key)] = seen.get(str(key), 0) + 1
        return [k for k, v in seen.items() if v > 1]

    return client.run_on_scheduler(count)


# first, while the workers still compile: the kill surely lands in the middle of a task
def test_worker_killed_mid_study_loses_nothing(store, local_study, client):
    result: dict = {}
    study = threading.Thread(
        target=lambda: result.update(res=hj.analyze(store, metrics=METRICS, client=client))
    )
    pids = client.run(os.getpid)
    study.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        busy = {w: keys for w, keys in client.processing().items() if any(str(k).startswith("holejax-") for k in keys)}
        victim = next(iter(busy), None)
        time.sleep(0.02)
    assert victim is not None, "no task started"
    os.kill(pids[victim], signal.SIGKILL)  # the worker process dies in the middle of its task
    study.join(timeout=120)
    assert not study.is_alive()
    assert_equal_bitwise(local_study, result["res"])
    assert _keys_run_twice(client), "no task was run again after the worker died"
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the worker


def test_analyze_on_cluster_equals_local_and_driver_reads_no_activations(store, local_study, client, monkeypatch, capsys):
    _refuse_layer_reads(monkeypatch)
    # dask arrays read in this process (with a Client they would be read on the workers and sent here)
    with dask.config.set(scheduler="synchronous"):
        with pytest.raises(AssertionError, match="driver read activations"):
            hj.analyze(store, metrics=METRICS)  # the guard works on a local run
        remote = hj.analyze(store, metrics=METRICS, client=client)
    assert_equal_bitwise(local_study, remote)
    assert remote.attrs["source"] == store
    assert re.search(r"analyze: 100%.*4/4", capsys.readouterr().err)  # the driver's progress bar


def test_analyze_options_travel_to_the_tasks(store, client):
    options = dict(metrics=["euclidean", "geodesic"], layers=["head"], perturbations=["gaussian(sigma=0.5)"],
                   metric_params={"geodesic": {"k": 7}}, criterion="purity", min_cluster_size=4)
    local = hj.analyze(store, **options)
    remote = hj.analyze(store, client=client, **options)
    assert_equal_bitwise(local, remote)
    assert remote.attrs["metric_params"] == {"euclidean": {}, "geodesic": {"k": 7}}
    assert remote.perturbation.values.tolist() == ["clean", "gaussian(sigma=0.5)"]


def test_fsspec_url_store(store, local_study, client):
    url = "file://" + os.path.abspath(store)
    remote = hj.analyze(url, metrics=METRICS, client=client)
    assert remote.attrs["source"] == url
    assert_equal_bitwise(local_study.assign_attrs(source=url), remote)


def test_topology_summary_on_cluster_equals_local(store, client):
    weights = {"fc.weight": np.random.default_rng(1).normal(size=(5, 4))}
    local = hj.topology_summary(store, max_samples=40, resolution=21, weights=weights)
    remote = hj.topology_summary(store, max_samples=40, resolution=21, weights=weights, client=client)
    assert_equal_bitwise(local, remote)
    assert remote.perturbation.values.tolist() == hj.open_activations(store).perturbation.values.tolist()


def test_cli_scheduler_writes_the_local_results(store, cluster, tmp_path):
    assert main(["analyze", store, "-o", str(tmp_path / "local.zarr"), "--metric", "cosine"]) == 0
    assert main(["analyze", store, "-o", str(tmp_path / "remote.zarr"), "--metric", "cosine",
                 "--scheduler", cluster.scheduler_address]) == 0
    local, remote = hj.open_results(tmp_path / "local.zarr"), hj.open_results(tmp_path / "remote.zarr")
    assert_equal_bitwise(local.load(), remote.load())


def test_store_a_worker_cannot_open_names_store_and_worker(store, client):
    memory = fsspec.filesystem("memory")
    memory.put(store, "/driver-only.zarr", recursive=True)  # in this process's memory: the driver opens it
    try:
        assert hj.open_activations(store)["head"].shape == hj.distributed.open_store("memory://driver-only.zarr")["head"].shape
        workers = list(client.scheduler_info()["workers"])
        with pytest.raises(StoreError) as info:
            hj.analyze("memory://driver-only.zarr", metrics=["euclidean"], layers=["head"], client=client)
        message = str(info.value)
        assert "'memory://driver-only.zarr'" in message
        assert any(f"worker {address}" in message for address in workers), message
    finally:
        memory.rm("/driver-only.zarr", recursive=True)


def test_bad_arguments_fail_before_any_task(store, client):
    with pytest.raises(TypeError, match="distributed.Client"):
        hj.analyze(store, client="tcp://127.0.0.1:8786")
    with pytest.raises(TypeError, match="held in memory"):
        hj.analyze(hj.open_activations(store).load().drop_encoding(), client=client)
    with pytest.raises(ValueError, match="Did you mean 'head'"):
        hj.analyze(store, layers=["haed"], client=client)
    with pytest.raises(ValueError, match="metric_params has an entry for 'geodesic'"):
        hj.analyze(store, metrics=["cosine"], metric_params={"geodesic": {"k": 5}}, client=client)
    assert not client.who_has()  # nothing was submitted
