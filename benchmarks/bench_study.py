"""Benchmark of ``hj.analyze``: 8 layers x 6 perturbations x 7 metrics, n = 1000 samples.

Usage:
    python benchmarks/bench_study.py            # the full study in fresh processes
    python benchmarks/bench_study.py --quick    # a small smoke run
    python benchmarks/bench_study.py --demo     # also `holejax demo`, cold and warm cache
    python benchmarks/bench_study.py --repeat 4 # four measurements in a row

The activations are synthetic (10 gaussian classes per layer, noisier copies
for the perturbations) so the run needs no model. Every measurement runs in a
fresh process, with JAX's persistent compilation cache in a new empty folder
(``HOLEJAX_CACHE_DIR``):

1. the **first process** (empty cache) calls ``analyze`` once (it compiles,
   and writes the cache), then twice more: the faster of those is the
   **warm analysis** time;
2. a **later process** (the cache from 1.) calls ``analyze`` once.

Reported: each first call against the warm analysis (targets: first process
<= 3x, later process <= 1.5x), the compile work of each process from JAX's
monitoring events (tracing, lowering, backend compilation, cache reads, and
the loads from holejax's store of executables), and,
apart, the imports that precede the first call (jax, ``holejax.analysis`` with
scipy, scikit-learn and xarray), which no cache shortens.
Peers are measured in the first process on a sample of the same clouds and
extrapolated per cloud (or per pair) to the whole study:

* ``gudhi_rips_h0``: H0 the way the HOLE reference code computes it
  (``gudhi.RipsComplex`` on the distance matrix, ``max_dimension=1``,
  ``persistence()``), on holejax's euclidean distances;
* ``sklearn_threshold_scan``: scoring every distinct death threshold with
  scipy connected components and scikit-learn's ARI (the reference searches
  all thresholds for the best one this way);
* ``gudhi_bottleneck`` / ``gudhi_pot_wasserstein``: ``gudhi.bottleneck_distance``
  and ``gudhi.wasserstein.wasserstein_distance`` (POT) on the H0 diagrams.

The HOLE reference library itself is not on PyPI (the ``hole`` package there
is an unrelated Pi-hole client) and this machine reaches no other index, so
it is not measured directly.

``--demo`` times ``holejax demo --quick``'s full run the same way: a fresh
process with an empty cache, then one with the cache it wrote.

Writes ``benchmarks/results/study.json`` (``study_quick.json`` with --quick)
from the last measurement and prints a markdown table; with ``--repeat``,
also ``study_repeats.json`` with every measurement's ratios (the machine's
other load moves them between runs).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HOLE_METRICS = [
    "euclidean",
    "cosine",
    "mahalanobis",
    "geodesic",
    "density_euclidean",
    "density_cosine",
    "density_mahalanobis",
]
WIDTHS = [512, 256, 256, 128, 128, 64, 32, 10]


def make_acts(n: int, widths: list[int], n_perturbations: int, seed: int = 0):
    """Synthetic activation store: 10 classes, perturbations add growing noise."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    perts = ["clean"] + [f"gaussian(sigma={0.1 * k:.1f})" for k in range(1, n_perturbations)]
    data = {}
    for i, w in enumerate(widths):
        centres = rng.normal(size=(10, w)) * (1.0 + 0.3 * i)
        base = centres[y] + rng.normal(size=(n, w))
        X = np.stack([base + 0.5 * k * rng.normal(size=(n, w)) for k in range(n_perturbations)])
        name = f"layer{i}"
        data[name] = (("perturbation", "sample", f"{name}:unit"), np.maximum(X, 0).astype(np.float32))
    return xr.Dataset(data, coords={"perturbation": perts, "label": ("sample", y)}), y


def time_peers(acts, res, y, n_clouds: int, n_pairs: int) -> dict:
    """Per-cloud / per-pair times of the peers, on clouds of the study."""
    import gudhi
    from gudhi.wasserstein import wasserstein_distance
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.metrics import adjusted_rand_score

    import holejax as hj

    layer = str(res.layer.values[0])
    X = acts[layer].values
    out: dict = {}
    # H0 with gudhi's Rips complex, as the reference computes it
    times, agree = [], []
    for p in range(n_clouds):
        D = np.asarray(hj.pairwise_distances(X[p], "euclidean"), np.float64)
        np.fill_diagonal(D, 0.0)
        t = time.perf_counter()
        st = gudhi.RipsComplex(distance_matrix=D).create_simplex_tree(max_dimension=1)
        dg = st.persistence()
        times.append(time.perf_counter() - t)
        g = np.sort([d for dim, (b, d) in dg if dim == 0 and np.isfinite(d)])
        ours = res.deaths.sel(perturbation=res.perturbation.values[p], layer=layer, metric="euclidean").values
        agree.append(float(np.max(np.abs(g - np.sort(ours)) / np.maximum(g, 1e-12))))
    out["gudhi_rips_h0"] = {"per_cloud_s": float(np.mean(times)), "clouds_timed": n_clouds,
                            "max_rel_deviation_from_holejax": float(max(agree))}
    # every threshold scored with connected components + sklearn ARI
    h = res.isel(perturbation=0).sel(layer=layer, metric="euclidean")
    deaths, edges = h.deaths.values, h.mst_edges.values
    values = np.unique(deaths[np.isfinite(deaths)])
    n = len(y)
    t = time.perf_counter()
    step = max(1, len(values) // 100)  # time 1 % of the thresholds, scale up
    for v in values[::step]:
        e = edges[deaths <= v]
        g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
        adjusted_rand_score(y, connected_components(g, directed=False)[1])
    per_threshold = (time.perf_counter() - t) / len(values[::step])
    out["sklearn_threshold_scan"] = {"per_cloud_s": per_threshold * len(values), "thresholds": int(len(values)),
                                     "note": "on MST edges (cheaper than the reference's n x n adjacency per threshold)"}
    # diagram distances
    tb, tw = [], []
    for p in range(1, 1 + n_pairs):
        a = hj.h0_diagram(hj.H0Result(res.deaths.values[0, 0, 0], None, None))
        b = hj.h0_diagram(hj.H0Result(res.deaths.values[p, 0, 0], None, None))
        t = time.perf_counter()
        gudhi.bottleneck_distance(a, b)
        tb.append(time.perf_counter() - t)
        t = time.perf_counter()
        wasserstein_distance(a, b, order=1, internal_p=np.inf)
        tw.append(time.perf_counter() - t)
    out["gudhi_bottleneck"] = {"per_pair_s": float(np.mean(tb)), "pairs_timed": n_pairs}
    out["gudhi_pot_wasserstein"] = {"per_pair_s": float(np.mean(tw)), "pairs_timed": n_pairs}
    return out


COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
    "/jax/core/compile/backend_compile_duration": "backend_compile_s",
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache_read_s",
    "/holejax/executables/load_duration": "store_load_s",  # holejax._executables.LOAD_EVENT
}


def record_compile_work() -> dict:
    """Sum JAX's compile-duration events in this process into the returned dict (live)."""
    import jax.monitoring

    totals = {name: 0.0 for name in COMPILE_EVENTS.values()} | {"programs_compiled": 0, "cache_hits": 0,
                                                                "programs_loaded": 0}

    def on_duration(event, seconds, **_):
        if event in COMPILE_EVENTS:
            totals[COMPILE_EVENTS[event]] += seconds
        if event == "/jax/core/compile/backend_compile_duration":
            totals["programs_compiled"] += 1
        if event == "/holejax/executables/load_duration":
            totals["programs_loaded"] += 1

    def on_event(event, **_):
        if event == "/jax/compilation_cache/cache_hits":
            totals["cache_hits"] += 1

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    return totals


def study_worker(quick: bool, warm_runs: int, peers: bool) -> dict:
    """One process: the first analyze call, then ``warm_runs`` more; compile work of the first."""
    clock = time.perf_counter()
    compile_work = record_compile_work()
    import jax

    import holejax as hj
    analyze_mod = importlib.import_module("holejax.analysis.analyze")  # the module, not the function
    imports = time.perf_counter() - clock  # jax, holejax.analysis (scipy, scikit-learn, xarray)

    if quick:
        n, widths, P, metrics = 200, WIDTHS[:3], 3, HOLE_METRICS[:3]
    else:
        n, widths, P, metrics = 1000, WIDTHS, 6, HOLE_METRICS
    acts, y = make_acts(n, widths, P)
    load_before = os.getloadavg()
    t = time.perf_counter()
    res = hj.analyze(acts, metrics=metrics)
    first = time.perf_counter() - t
    first_compile = dict(compile_work)
    runs, phase_runs = [], []
    for _ in range(warm_runs):
        t = time.perf_counter()
        res = hj.analyze(acts, metrics=metrics)
        runs.append(time.perf_counter() - t)
        phase_runs.append(dict(analyze_mod.last_timings))
    clouds = P * len(widths) * len(metrics)
    pairs = (P - 1) * len(widths) * len(metrics)
    result = {
        "n_samples": n, "layers": len(widths), "widths": widths, "perturbations": P, "metrics": metrics,
        "clouds": clouds, "imports_s": imports, "first_call_s": first, "first_call_compile_work": first_compile,
        "warm_runs_s": runs,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
                    "device": str(jax.devices()[0]), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
    }
    if runs:
        best = int(np.argmin(runs))
        result["analysis_s"] = runs[best]
        result["phases_s"] = phase_runs[best]
    if peers and runs:
        found = time_peers(acts, res, y, n_clouds=2 if not quick else 1, n_pairs=3 if not quick else 1)
        phases = result["phases_s"]
        result["peers"] = found
        result["peer_study_estimate_s"] = {
            "gudhi_rips_h0": found["gudhi_rips_h0"]["per_cloud_s"] * clouds,
            "sklearn_threshold_scan": found["sklearn_threshold_scan"]["per_cloud_s"] * clouds,
            "gudhi_bottleneck": found["gudhi_bottleneck"]["per_pair_s"] * pairs,
            "gudhi_pot_wasserstein": found["gudhi_pot_wasserstein"]["per_pair_s"] * pairs,
        }
        result["holejax_phase_for_peer_s"] = {
            "gudhi_rips_h0": phases.get("h0_s"),
            "sklearn_threshold_scan": phases.get("scores_s"),
            "gudhi_bottleneck": phases.get("distances_s"),
            "gudhi_pot_wasserstein": phases.get("distances_s"),
        }
    return result


def demo_worker(output: str) -> dict:
    compile_work = record_compile_work()
    from holejax.demo.run import run_demo

    t = time.perf_counter()
    run_demo(output, quick=True)
    return {"seconds": time.perf_counter() - t, "compile_work": dict(compile_work)}


def fresh_process(args: list[str], cache: str) -> dict:
    """Run this script with ``args`` in a new process using the compile cache folder ``cache``."""
    env = dict(os.environ, HOLEJAX_CACHE_DIR=cache)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True,
                         check=True, timeout=3600)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - t
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--no-peers", action="store_true", help="skip the peer measurements")
    parser.add_argument("--demo", action="store_true", help="also time `holejax demo --quick`, cold and warm")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure the study this many times in a row (peers in the last run only)")
    parser.add_argument("--worker", choices=["first", "later", "demo"], help=argparse.SUPPRESS)
    parser.add_argument("--demo-output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.worker == "demo":
        print(json.dumps(demo_worker(args.demo_output)))
        return
    if args.worker:
        warm = 2 if args.worker == "first" else 0
        print(json.dumps(study_worker(args.quick, warm, peers=args.worker == "first" and not args.no_peers)))
        return

    runs = [one_run(args, peers=not args.no_peers and k == args.repeat - 1) for k in range(args.repeat)]
    result = runs[-1]
    if args.demo:
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
            cold = fresh_process(["--worker", "demo", "--demo-output", out], cache)
            hot = fresh_process(["--worker", "demo", "--demo-output", out], cache)
        result["demo"] = {"cold_cache": cold, "warm_cache": hot}
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(parents=True, exist_ok=True)
    out = results / ("study_quick.json" if args.quick else "study.json")
    out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"\nwrote {out}")
    if args.repeat > 1:
        repeats = results / ("study_repeats_quick.json" if args.quick else "study_repeats.json")
        keys = ("first_process_ratio", "later_process_ratio", "analysis_s", "first_process", "later_process", "machine")
        repeats.write_text(json.dumps({"benchmark": "study_repeats", "command": " ".join(["python", *sys.argv]),
                                       "runs": [{k: r[k] for k in keys} for r in runs]}, indent=2))
        print("\n" + repeats_markdown(runs))
        print(f"\nwrote {repeats}")


def one_run(args, peers: bool) -> dict:
    """One study measurement: a first process (empty cache), then a later one (its cache)."""
    quick = ["--quick"] if args.quick else []
    with tempfile.TemporaryDirectory() as cache:
        first = fresh_process(["--worker", "first", *quick, *([] if peers else ["--no-peers"])], cache)
        later = fresh_process(["--worker", "later", *quick], cache)
    warm = first["analysis_s"]
    result = {
        "benchmark": "study", "quick": args.quick, **{k: first[k] for k in
        ("n_samples", "layers", "widths", "perturbations", "metrics", "clouds", "machine")},
        "analysis_s": warm, "phases_s": first["phases_s"], "warm_runs_s": first["warm_runs_s"],
        "first_process": {k: first[k] for k in ("imports_s", "first_call_s", "first_call_compile_work", "process_wall_s")},
        "later_process": {k: later[k] for k in ("imports_s", "first_call_s", "first_call_compile_work", "process_wall_s")},
        "first_process_ratio": first["first_call_s"] / warm,
        "later_process_ratio": later["first_call_s"] / warm,
        "targets": {"first_process_ratio": 3.0, "later_process_ratio": 1.5},
    }
    for key in ("peers", "peer_study_estimate_s", "holejax_phase_for_peer_s"):
        if key in first:
            result[key] = first[key]
    return result


def repeats_markdown(runs: list[dict]) -> str:
    lines = ["| run | warm analysis (s) | first process (s) | / warm | later process (s) | / warm |",
             "|---:|---:|---:|---:|---:|---:|"]
    for k, r in enumerate(runs, 1):
        lines.append(f"| {k} | {r['analysis_s']:.2f} | {r['first_process']['first_call_s']:.2f} | "
                     f"{r['first_process_ratio']:.2f} | {r['later_process']['first_call_s']:.2f} | "
                     f"{r['later_process_ratio']:.2f} |")
    return "\n".join(lines)


def _work(w: dict) -> str:
    return (f"{w['programs_compiled']} compiled ({w['cache_hits']} from JAX's cache), "
            f"{w['programs_loaded']} loaded from holejax's store; trace "
            f"{w['trace_s']:.1f} s, lower {w['lower_s']:.1f} s, compile {w['backend_compile_s']:.1f} s, "
            f"cache reads {w['cache_read_s']:.1f} s, store loads {w['store_load_s']:.2f} s")


def markdown(r: dict) -> str:
    lines = [f"### hj.analyze: {r['layers']} layers x {r['perturbations']} perturbations x "
             f"{len(r['metrics'])} metrics, n = {r['n_samples']} ({r['clouds']} clouds)", "",
             "| process | imports (s) | first `analyze` call (s) | / warm analysis | target | compile work in that call |",
             "|---|---:|---:|---:|---:|---|"]
    for key, label in (("first_process", "first (empty cache)"), ("later_process", "later (cache warm)")):
        p = r[key]
        lines.append(f"| {label} | {p['imports_s']:.1f} | {p['first_call_s']:.1f} | {r[key + '_ratio']:.2f} | "
                     f"<= {r['targets'][key + '_ratio']} | {_work(p['first_call_compile_work'])} |")
    lines.append(f"| warm analysis (best of {', '.join(f'{x:.1f}' for x in r['warm_runs_s'])}) | "
                 f" | {r['analysis_s']:.1f} | 1 | | |")
    lines += ["", "| step of the warm analysis | s |", "|---|---:|"]
    lines += [f"| {k[:-2]} | {v:.2f} |" for k, v in r["phases_s"].items()]
    if "peer_study_estimate_s" in r:
        lines += ["", "| peer, extrapolated to the whole study | peer (s) | holejax phase (s) | ratio |",
                  "|---|---:|---:|---:|"]
        labels = {
            "gudhi_rips_h0": "H0: gudhi RipsComplex (reference engine), all clouds",
            "sklearn_threshold_scan": "best threshold: components + sklearn ARI at every death",
            "gudhi_bottleneck": "gudhi.bottleneck_distance, all pairs",
            "gudhi_pot_wasserstein": "gudhi.wasserstein (POT), all pairs",
        }
        for k, label in labels.items():
            e, o = r["peer_study_estimate_s"][k], r["holejax_phase_for_peer_s"][k]
            lines.append(f"| {label} | {e:.1f} | {o:.2f} | {e / o:.0f}x |")
    if "demo" in r:
        lines += ["", "| `holejax demo --quick` | run (s) | process (s) | compile work |", "|---|---:|---:|---|"]
        for key, label in (("cold_cache", "empty cache"), ("warm_cache", "cache warm")):
            d = r["demo"][key]
            lines.append(f"| {label} | {d['seconds']:.1f} | {d['process_wall_s']:.1f} | {_work(d['compile_work'])} |")
    m = r["machine"]
    lines += ["", f"{m['cpus']} CPUs, jax {m['jax']}, {m['device']}; load average before/after the first "
                  f"process {m['loadavg_before'][0]:.1f} / {m['loadavg_after'][0]:.1f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
