"""Benchmark of ``hj.analyze`` on a Dask cluster: 1 against 2 workers on this machine, and the overhead per cloud.

Usage:
    python benchmarks/bench_dask.py            # 8 layers x 6 perturbations x 3 metrics, n = 2000
    python benchmarks/bench_dask.py --quick    # 3 x 3 x 2, n = 300 smoke run

The study is synthetic (10 gaussian classes per layer, noisier copies as
perturbations) and written to a Zarr store in a temporary folder; every task
opens that store itself. In the same run:

* ``local``: ``hj.analyze(store)`` in this process (no cluster);
* ``LocalCluster(n_workers=1)`` and ``LocalCluster(n_workers=2)``, one thread
  per worker process, ``hj.analyze(store, client=client)`` (one task per
  (layer, metric), six clouds each). Two placements: ``free``, every worker
  sees every core (JAX's own threads use them all, as a default ``dask
  worker`` does), and ``pinned``, worker ``i`` is restricted to core ``i``
  (the machine split into one core per worker, how a cluster of one-core
  workers scales);
* the overhead: the round trip of an empty task through the scheduler, and a
  study of the same shape with n = 16 samples (almost no arithmetic) on one
  worker, whose time per cloud is what the cluster path adds per cloud.

Every timed study is the second of two identical calls (the first compiles;
all processes share one JAX compilation cache in the temporary folder).
Each cluster result is compared with the local one (``identical_to_local``,
and the number of clouds whose deaths differ in any bit).

Writes ``benchmarks/results/dask.json`` (``dask_quick.json`` with --quick)
and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTHS = [512, 256, 256, 128, 128, 64, 32, 10]
METRICS = ["euclidean", "cosine", "mahalanobis"]


def write_store(path: str, n: int, widths: list[int], n_perturbations: int, seed: int = 0) -> str:
    """A synthetic activation store: 10 classes, each perturbation adds more noise."""
    from holejax.store import ActivationWriter, LayerSpec

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    perts = ["clean"] + [f"gaussian(sigma={0.1 * k:.1f})" for k in range(1, n_perturbations)]
    specs = [LayerSpec(f"layer{i}", (w,)) for i, w in enumerate(widths)]
    writer = ActivationWriter.create(path, specs, n_samples=n, labels=y, perturbations=perts)
    bases = []
    for i, w in enumerate(widths):
        centres = rng.normal(size=(10, w)) * (1.0 + 0.3 * i)
        bases.append(centres[y] + rng.normal(size=(n, w)))
    for k, pert in enumerate(perts):
        writer.write_batch(pert, 0, {
            spec.name: np.maximum(base + 0.5 * k * rng.normal(size=base.shape), 0).astype(np.float32)
            for spec, base in zip(specs, bases)
        })
    writer.finish()
    return path


def use_compilation_cache(directory: str) -> None:
    """Point this process's JAX at a shared persistent compilation cache."""
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pin_process(cpu: int) -> list[int]:
    """Restrict every thread of this process (and threads it starts later) to one CPU."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:  # a thread that ended meanwhile
            pass
    return sorted(os.sched_getaffinity(0))


def empty_task() -> None:
    return None


def timed_study(store: str, metrics: list[str], client=None) -> tuple[float, float, object]:
    """(first call s, second call s, result of the second) of hj.analyze."""
    import holejax as hj

    t = time.perf_counter()
    hj.analyze(store, metrics=metrics, client=client)
    first = time.perf_counter() - t
    t = time.perf_counter()
    res = hj.analyze(store, metrics=metrics, client=client)
    return first, time.perf_counter() - t, res


def cluster_runs(store: str, tiny: str | None, metrics: list[str], workers: int, pinned: bool, cache: str) -> dict:
    import distributed

    out: dict = {"workers": workers, "placement": "pinned" if pinned else "free"}
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=40) as cluster, \
            distributed.Client(cluster) as client:
        client.wait_for_workers(workers)
        client.run(use_compilation_cache, cache)
        if pinned:
            cpus = sorted(os.sched_getaffinity(0))
            for i, address in enumerate(sorted(client.scheduler_info()["workers"])):
                out.setdefault("cpus", []).append(client.run(pin_process, cpus[i % len(cpus)], workers=[address])[address])
        first, second, res = timed_study(store, metrics, client)
        out.update(first_s=first, study_s=second)
        out["result"] = res
        if tiny is not None:
            t = time.perf_counter()
            for _ in range(200):
                client.submit(empty_task, pure=False).result()
            out["empty_task_round_trip_s"] = (time.perf_counter() - t) / 200
            futures = client.map(lambda i: None, range(1000), pure=False)
            t = time.perf_counter()
            distributed.wait(futures)
            out["empty_task_throughput_s"] = (time.perf_counter() - t) / 1000
            out["tiny_first_s"], out["tiny_study_s"], _ = timed_study(tiny, metrics, client)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--placements", default="free,pinned", help="free, pinned or both (default)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import jax

    import holejax as hj

    if args.quick:
        n, widths, P, metrics = 300, WIDTHS[:3], 3, METRICS[:2]
    else:
        n, widths, P, metrics = 2000, WIDTHS, 6, METRICS
    placements = args.placements.split(",")
    out = Path(__file__).resolve().parent / "results" / ("dask_quick.json" if args.quick else "dask.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.json")  # the runs so far, should the benchmark be stopped
    tmp = tempfile.mkdtemp(prefix="holejax-bench-dask-")
    try:
        cache = os.path.join(tmp, "jax-cache")
        use_compilation_cache(cache)
        store = write_store(os.path.join(tmp, "acts.zarr"), n, widths, P)
        tiny = write_store(os.path.join(tmp, "tiny.zarr"), 16, widths, P)
        load_before = os.getloadavg()
        local_first, local_s, local = timed_study(store, metrics)
        tiny_local = timed_study(tiny, metrics)[1]
        runs = []
        for placement in placements:
            for workers in (1, 2):
                run = cluster_runs(store, tiny if workers == 1 and placement == placements[0] else None,
                                   metrics, workers, placement == "pinned", cache)
                remote = run.pop("result")
                run["identical_to_local"] = bool(local.identical(remote))
                run["clouds_with_other_deaths"] = int(
                    (local.deaths != remote.deaths).any("edge").sum())  # 0 when identical
                # relative to each cloud's largest death (deaths of exactly 0 make a per-death ratio meaningless)
                scale = np.abs(local.deaths).max("edge")
                run["max_death_difference_per_cloud_scale"] = float(
                    (np.abs(local.deaths - remote.deaths).max("edge") / scale.where(scale > 0)).max())
                runs.append(run)
                print(f"{placement} {workers} worker(s): {run['study_s']:.2f} s, identical to local: "
                      f"{run['identical_to_local']}", flush=True)
                partial.write_text(json.dumps({"partial": True, "n_samples": n, "local_s": local_s, "runs": runs,
                                               "loadavg": os.getloadavg()}, indent=2))
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    clouds = P * len(widths) * len(metrics)
    tasks = len(widths) * len(metrics)
    by = {(r["placement"], r["workers"]): r for r in runs}
    ratios = {p: by[(p, 1)]["study_s"] / by[(p, 2)]["study_s"] for p in placements}
    over = next(r for r in runs if "tiny_study_s" in r)
    result = {
        "benchmark": "dask",
        "quick": args.quick,
        "n_samples": n,
        "layers": len(widths),
        "widths": widths,
        "perturbations": P,
        "metrics": metrics,
        "clouds": clouds,
        "tasks": tasks,
        "local_first_s": local_first,
        "local_s": local_s,
        "runs": runs,
        "speedup_2_over_1_workers": ratios,
        "overhead": {
            "empty_task_round_trip_s": over["empty_task_round_trip_s"],
            "empty_task_throughput_s": over["empty_task_throughput_s"],
            "tiny_n": 16,
            "tiny_local_s": tiny_local,
            "tiny_cluster_1_worker_s": over["tiny_study_s"],
            "per_cloud_s": (over["tiny_study_s"] - tiny_local) / clouds,
            "per_task_s": (over["tiny_study_s"] - tiny_local) / tasks,
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "affinity": len(os.sched_getaffinity(0)), "jax": jax.__version__,
                    "holejax": hj.__version__, "loadavg_before": load_before, "loadavg_after": load_after},
    }
    out.write_text(json.dumps(result, indent=2))
    partial.unlink(missing_ok=True)

    print(f"\n{len(widths)} layers x {P} perturbations x {len(metrics)} metrics = {clouds} clouds, n = {n}, "
          f"{tasks} tasks; load average {load_before[0]:.1f} -> {load_after[0]:.1f}\n")
    print("| run | study after compile (s) | 1 worker / 2 workers |")
    print("|---|---:|---:|")
    print(f"| local `hj.analyze(store)` | {local_s:.2f} | |")
    for p in placements:
        for w in (1, 2):
            ratio = f"{ratios[p]:.2f}" if w == 2 else ""
            print(f"| {p}, {w} worker{'s' if w > 1 else ''} | {by[(p, w)]['study_s']:.2f} | {ratio} |")
    o = result["overhead"]
    print(f"\nempty task round trip {1e3 * o['empty_task_round_trip_s']:.2f} ms, "
          f"throughput {1e3 * o['empty_task_throughput_s']:.2f} ms/task; "
          f"n = 16 study: local {o['tiny_local_s']:.2f} s, 1 worker {o['tiny_cluster_1_worker_s']:.2f} s, "
          f"{1e3 * o['per_cloud_s']:.1f} ms per cloud ({1e3 * o['per_task_s']:.1f} ms per task)")


if __name__ == "__main__":
    main()
