"""Topology benchmark: diagram distances, landscapes and neural persistence against peers.

Usage::

    python benchmarks/bench_topology.py            # full run (a few minutes on 2 cores)
    python benchmarks/bench_topology.py --quick    # smaller sizes

What is measured (best of ``--repeats`` steady runs; compile time of JAX code
reported separately as first call minus a steady call):

- **diagram distances, H0** (every bar born at 0, as HOLE's diagrams): the
  H0 diagrams of a gaussian cloud of ``n`` points and of a perturbed copy.
  holejax ``h0_diagram_distances`` (exact; compile time separate) against
  gudhi's exact bottleneck (``e=0``), gudhi's default bottleneck (last bits
  approximate), gudhi.hera's Wasserstein (auction, relative error
  ``delta=0.01``) and gudhi.wasserstein (POT, exact). Diagrams in general
  position (H1) are not measured: ``diagram_distance`` hands them to gudhi.
- **landscapes**: ``persistence_landscapes`` of a batch of diagrams on a grid
  (one ``vmap``) against ``gudhi.representations.Landscape``.
- **neural persistence**: ``layer_neural_persistence`` (Prim in JAX on the
  matrix padded to power-of-two shapes, bounds included) and
  ``max_spanning_tree_weights`` vmapped over a stack of checkpoints, against
  scipy's ``minimum_spanning_tree`` on the dense bipartite graph.

Results go to ``benchmarks/results/topology.json``; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def timed_first(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def h0_pair(n: int, seed: int = 0):
    from scipy.cluster.hierarchy import linkage

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 16))
    Y = X + 0.1 * rng.normal(size=X.shape)
    a = np.c_[np.zeros(n - 1), np.sort(linkage(X, "single")[:, 2])]
    b = np.c_[np.zeros(n - 1), np.sort(linkage(Y, "single")[:, 2])]
    return a, b


def bench_distances(label, a, b, repeats, rows):
    import gudhi
    import gudhi.hera as hera
    import gudhi.wasserstein as gw

    from holejax.topology import h0_diagram_distances

    deaths_a, deaths_b = a[:, 1], b[:, 1]
    entries = {
        "bottleneck": [
            ("holejax (exact)", lambda: h0_diagram_distances(deaths_a, deaths_b)[0]),
            ("gudhi e=0 (exact)", lambda: gudhi.bottleneck_distance(a, b, 0)),
            ("gudhi default", lambda: gudhi.bottleneck_distance(a, b)),
        ],
        "wasserstein-1": [
            ("holejax (exact)", lambda: h0_diagram_distances(deaths_a, deaths_b, "wasserstein")[0]),
            ("gudhi.wasserstein / POT (exact)", lambda: gw.wasserstein_distance(a, b, order=1.0)),
            ("gudhi.hera delta=0.01", lambda: hera.wasserstein_distance(a, b, order=1.0, delta=0.01)),
        ],
    }
    for kind, runs in entries.items():
        values, times, compile_s = {}, {}, {}
        for name, fn in runs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                first = timed_first(fn) if name.startswith("holejax") else None
                values[name] = float(fn())
                times[name] = best_of(fn, repeats)
            if first is not None:
                compile_s[name] = max(first - times[name], 0.0)
        ours = times["holejax (exact)"]
        for name in times:
            rows.append(
                {
                    "case": label,
                    "kind": kind,
                    "engine": name,
                    "time_s": times[name],
                    **({"compile_s": compile_s[name]} if name in compile_s else {}),
                    "ratio_vs_holejax": times[name] / ours,
                    "value": values[name],
                }
            )


def bench_landscapes(batch, points, resolution, repeats, rows):
    import gudhi.representations as gr
    import jax

    from holejax.topology import landscape_grid, persistence_landscapes

    rng = np.random.default_rng(0)
    dgms = []
    for _ in range(batch):
        b = rng.random(points) * 0.5
        dgms.append(np.c_[b, b + rng.random(points) * 0.5])
    grid = landscape_grid(0.0, 1.0, resolution)

    def ours():
        jax.block_until_ready(persistence_landscapes(dgms, grid, 5))

    first = timed_first(ours)
    steady = best_of(ours, repeats)
    ref = gr.Landscape(num_landscapes=5, resolution=resolution, sample_range=[0.0, 1.0])
    peer = best_of(lambda: ref.fit_transform(dgms), repeats)
    label = f"{batch} diagrams x {points} bars, grid {resolution}"
    rows.append({"case": label, "kind": "landscapes", "engine": "holejax (vmap)", "time_s": steady,
                 "compile_s": max(first - steady, 0.0), "ratio_vs_holejax": 1.0})
    rows.append({"case": label, "kind": "landscapes", "engine": "gudhi Landscape", "time_s": peer,
                 "ratio_vs_holejax": peer / steady})


def bench_neural_persistence(n, m, checkpoints, repeats, rows):
    import jax
    import jax.numpy as jnp
    from scipy.sparse.csgraph import minimum_spanning_tree

    from holejax.topology import layer_neural_persistence, max_spanning_tree_weights

    rng = np.random.default_rng(0)
    W = rng.normal(size=(n, m))
    stack = np.abs(rng.normal(size=(checkpoints, n, m)))
    stack /= stack.max(axis=(1, 2), keepdims=True)

    def scipy_np(M):
        S = np.abs(M) / np.abs(M).max()
        graph = np.zeros((n + m, n + m))
        graph[:n, n:] = 2.0 - S
        return minimum_spanning_tree(graph)

    label = f"{n} x {m}"
    first = timed_first(lambda: layer_neural_persistence(W))
    ours = best_of(lambda: layer_neural_persistence(W), repeats)
    peer = best_of(lambda: scipy_np(W), repeats)
    rows.append({"case": label, "kind": "NP one matrix", "engine": "holejax layer_neural_persistence (+ bounds)",
                 "time_s": ours, "compile_s": max(first - ours, 0.0), "ratio_vs_holejax": 1.0})
    rows.append({"case": label, "kind": "NP one matrix", "engine": "scipy minimum_spanning_tree", "time_s": peer,
                 "ratio_vs_holejax": peer / ours})

    batched = jax.jit(jax.vmap(max_spanning_tree_weights))
    stack_j = jnp.asarray(stack, jnp.float32)

    def run():
        jax.block_until_ready(batched(stack_j))

    first = timed_first(run)
    steady = best_of(run, repeats)
    loop = best_of(lambda: [scipy_np(s) for s in stack], repeats)
    label = f"{checkpoints} checkpoints of {n} x {m}"
    rows.append({"case": label, "kind": "MST stack", "engine": "holejax vmap(max_spanning_tree_weights)", "time_s": steady,
                 "compile_s": max(first - steady, 0.0), "ratio_vs_holejax": 1.0})
    rows.append({"case": label, "kind": "MST stack", "engine": "scipy loop", "time_s": loop,
                 "ratio_vs_holejax": loop / steady})


def markdown(rows) -> str:
    lines = ["| case | measure | engine | time (s) | compile (s) | time / holejax |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        compile_s = f"{r['compile_s']:.2f}" if "compile_s" in r else ""
        lines.append(
            f"| {r['case']} | {r['kind']} | {r['engine']} | {r['time_s']:.4f} | {compile_s} | {r['ratio_vs_holejax']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rows: list[dict] = []
    for n in ([300, 1000] if args.quick else [300, 1000, 2000]):
        a, b = h0_pair(n)
        bench_distances(f"H0, n = {n}", a, b, args.repeats, rows)
    bench_landscapes(16 if args.quick else 64, 200, 500 if args.quick else 1000, args.repeats, rows)
    bench_neural_persistence(784, 128, 4 if args.quick else 10, args.repeats, rows)
    load_after = os.getloadavg()[0]

    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_before": load_before,
                    "load_after": load_after},
        "quick": args.quick,
        "rows": rows,
    }
    out = HERE / "results" / "topology.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(markdown(rows))
    print(f"\n{os.cpu_count()} CPUs, load average {load_before:.1f} before / {load_after:.1f} after.")


if __name__ == "__main__":
    main()
