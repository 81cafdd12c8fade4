"""Dense against tiled H0 from points around ``DENSE_MAX_SAMPLES``: where ``engine="auto"`` switches.

Usage:
    python benchmarks/bench_crossover.py                 # n in 2048 ... 12288 (the dense engine holds three n x n matrices in 2 GiB), d in 64, 512
    python benchmarks/bench_crossover.py --sizes 4096 8192 --dims 64

One gaussian cloud (10 clusters, float32) per size; ``hj.h0_from_points``
with ``engine="dense"`` (the ``n x n`` matrix, then Prim) and
``engine="tiled"`` (Borůvka over row tiles); steady times are the best of
``--repeats`` calls after one compiling call. Both engines give the same
deaths (checked). Writes ``benchmarks/results/crossover.json`` and prints a
markdown table; the crossover is the first ``n`` where tiled is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def cloud(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, d)) * 4
    return (centres[rng.integers(0, 10, n)] + rng.normal(size=(n, d))).astype(np.float32)


def steady(fn, repeats: int) -> tuple[float, float, object]:
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return first, min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192, 12288])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import holejax as hj
    from holejax.filtration.points import DENSE_MAX_SAMPLES

    rows = []
    for d in args.dims:
        for n in args.sizes:
            X = cloud(n, d)
            row = {"n": n, "d": d}
            deaths = {}
            for engine in ("dense", "tiled"):
                first, best, h = steady(lambda e=engine: hj.h0_from_points(X, "euclidean", engine=e), args.repeats)
                row[f"{engine}_s"], row[f"{engine}_first_s"] = best, first
                deaths[engine] = np.asarray(h.deaths, np.float64)
            row["max_rel_death_difference"] = float(
                np.max(np.abs(deaths["dense"] - deaths["tiled"]) / np.maximum(deaths["dense"], 1e-12)))
            row["tiled_over_dense"] = row["tiled_s"] / row["dense_s"]
            rows.append(row)
            print(row, flush=True)
    out = {"benchmark": "crossover", "dense_max_samples": DENSE_MAX_SAMPLES, "cpus": os.cpu_count(),
           "loadavg_after": os.getloadavg(), "rows": rows}
    path = Path(__file__).resolve().parent / "results" / "crossover.json"
    path.write_text(json.dumps(out, indent=2))
    print("\n| d | n | dense (s) | tiled (s) | tiled / dense |\n|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['d']} | {r['n']} | {r['dense_s']:.2f} | {r['tiled_s']:.2f} | {r['tiled_over_dense']:.2f} |")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
