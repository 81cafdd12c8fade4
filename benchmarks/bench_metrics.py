"""Benchmark: every holejax distance metric against numpy, scipy, scikit-learn and torch.

For each cloud size (n samples x d units, float32 gaussian data) and each
metric in ``holejax.METRICS``, the same run times:

- ``jax``: ``hj.pairwise_distances(X, metric)`` from a host numpy array to a
  finished ``jax.Array`` (input checks and transfer included,
  ``block_until_ready``); its first call (trace + compile) is reported
  separately as ``compile_s`` (first call minus the median run);
- ``numpy``: the matmul identity / normalised-rows product a careful numpy
  user writes (only for metrics with such a formulation);
- ``scipy``: ``scipy.spatial.distance.cdist`` (geodesic: scikit-learn
  ``kneighbors_graph`` + ``scipy.sparse.csgraph.shortest_path``);
- ``sklearn``: ``sklearn.metrics.pairwise_distances``;
- ``torch``: ``torch.cdist`` (p = 2, 1, inf); cosine/angular as normalised
  rows times their transpose, since ``cdist`` has no cosine.

Density variants use each peer's base distances plus a partial sort for the
local scales; mahalanobis peers get the Ledoit-Wolf inverse covariance from
scikit-learn (numpy/torch whiten with its Cholesky factor). Peers whose cost
grows as ``n^2 d^2`` (scipy/sklearn mahalanobis) are skipped where one call
would take minutes. Each timing is the median of ``--repeat`` calls (one
call when a single call exceeds 5 s; fast calls are repeated for ~1 s, up to
50 times). The ratio is jax's median over the fastest peer's median (< 1: jax
is faster); the ratio of minima is reported beside it.

    python benchmarks/bench_metrics.py [--quick] [--metrics euclidean,cosine] [--sizes 4000x512] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "metrics.json"
PEERS = ("numpy", "scipy", "sklearn", "torch")
SLOW_CALL_S = 5.0
MIN_TOTAL_S = 1.0
# OpenMP (torch/MKL) and OpenBLAS workers spin for up to ~200 ms after a call and would
# steal the cores from whatever is timed next on a 2-core machine
SETTLE_S = 0.3
MAX_RUNS = 50
# scipy/sklearn mahalanobis evaluate (u - v) VI (u - v) per pair: n^2 d^2 flops
MAX_QUADRATIC_FORM_FLOPS = 3e10


def _timed(fn, repeat: int, *, compiles: bool = False) -> dict:
    """Median and min over timed calls after one untimed first call.

    At least ``repeat`` calls, more for fast calls (until ~``MIN_TOTAL_S`` of
    timed calls, at most ``MAX_RUNS``): on a shared machine one call in a few
    lands on a descheduled thread, and medians over many calls absorb that.
    For peers, a first call slower than ``SLOW_CALL_S`` counts as the single
    measurement. For jax (``compiles=True``) the first call traces and
    compiles, so it is always followed by at least one timed call.
    """
    time.sleep(SETTLE_S)  # let the previous library's spinning worker threads go idle
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    runs = [] if compiles or first <= SLOW_CALL_S else [first]
    while not runs or (runs[0] <= SLOW_CALL_S and (len(runs) < repeat or (sum(runs) < MIN_TOTAL_S and len(runs) < MAX_RUNS))):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return {"median_s": statistics.median(runs), "min_s": min(runs), "first_s": first, "runs": len(runs)}


# ---- peers -----------------------------------------------------------------------


def _np_sqeuclidean(X):
    Xc = X - X.mean(axis=0)
    sq = np.einsum("ij,ij->i", Xc, Xc)
    D = Xc @ Xc.T
    D *= -2
    D += sq[:, None]
    D += sq[None, :]
    np.maximum(D, 0, out=D)
    np.fill_diagonal(D, 0)
    return D


def _np_cosine(X):
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    D = U @ U.T
    np.clip(D, -1, 1, out=D)
    D = 1 - D
    np.fill_diagonal(D, 0)
    return D


def _lw_whitener(X):
    """Cholesky factor L of the Ledoit-Wolf precision: |(x - y) L| is the distance."""
    from sklearn.covariance import ledoit_wolf

    cov = ledoit_wolf(X)[0]
    VI = np.linalg.inv(cov)
    return VI, np.linalg.cholesky(VI).astype(X.dtype)


def _density(D, k=5):
    D = np.array(D, dtype=D.dtype, copy=True)
    np.fill_diagonal(D, np.inf)
    mu = np.partition(D, k - 1, axis=1)[:, :k].mean(axis=1)
    np.fill_diagonal(D, 0)
    inv = 1 / np.sqrt(mu)
    return D * inv[:, None] * inv[None, :]


def _torch_density(D, k=5):
    import torch

    D = D.clone()
    D.fill_diagonal_(float("inf"))
    mu = torch.topk(D, k, dim=1, largest=False).values.mean(dim=1)
    D.fill_diagonal_(0)
    inv = 1 / torch.sqrt(mu)
    return D * inv[:, None] * inv[None, :]


def peer_functions(metric: str, X: np.ndarray) -> dict:
    """name -> zero-argument callable computing ``metric`` on ``X``, or a skip reason (str)."""
    import torch
    from scipy.spatial.distance import cdist
    from sklearn.metrics import pairwise_distances as skpd

    n, d = X.shape
    Xt = torch.from_numpy(X)
    out: dict = {}

    def np_torch_cos(X):
        U = torch.nn.functional.normalize(Xt, dim=1)
        return (1 - (U @ U.T).clamp(-1, 1)).fill_diagonal_(0)

    if metric == "euclidean":
        out["numpy"] = lambda: np.sqrt(_np_sqeuclidean(X))
        out["scipy"] = lambda: cdist(X, X, "euclidean")
        out["sklearn"] = lambda: skpd(X, metric="euclidean")
        out["torch"] = lambda: torch.cdist(Xt, Xt)
    elif metric == "sqeuclidean":
        out["numpy"] = lambda: _np_sqeuclidean(X)
        out["scipy"] = lambda: cdist(X, X, "sqeuclidean")
        out["sklearn"] = lambda: skpd(X, metric="sqeuclidean")
        out["torch"] = lambda: torch.cdist(Xt, Xt).square_()
    elif metric == "manhattan":
        out["numpy"] = "no vectorised numpy formulation (O(n^2 d) memory)"
        out["scipy"] = lambda: cdist(X, X, "cityblock")
        out["sklearn"] = lambda: skpd(X, metric="manhattan")
        out["torch"] = lambda: torch.cdist(Xt, Xt, p=1)
    elif metric == "chebyshev":
        out["numpy"] = "no vectorised numpy formulation (O(n^2 d) memory)"
        out["scipy"] = lambda: cdist(X, X, "chebyshev")
        out["sklearn"] = lambda: skpd(X, metric="chebyshev")
        out["torch"] = lambda: torch.cdist(Xt, Xt, p=float("inf"))
    elif metric == "cosine":
        out["numpy"] = lambda: _np_cosine(X)
        out["scipy"] = lambda: cdist(X, X, "cosine")
        out["sklearn"] = lambda: skpd(X, metric="cosine")
        out["torch"] = lambda: np_torch_cos(X)
    elif metric == "angular":
        out["numpy"] = lambda: np.arccos(np.clip(1 - _np_cosine(X), -1, 1))
        out["scipy"] = lambda: np.arccos(np.clip(1 - cdist(X, X, "cosine"), -1, 1))
        out["sklearn"] = lambda: np.arccos(np.clip(1 - skpd(X, metric="cosine"), -1, 1))
        out["torch"] = lambda: torch.arccos((1 - np_torch_cos(X)).clamp(-1, 1))
    elif metric in ("mahalanobis", "density_mahalanobis"):
        dens = metric.startswith("density")

        def np_mah():
            _, L = _lw_whitener(X)
            D = np.sqrt(_np_sqeuclidean(X @ L))
            return _density(D) if dens else D

        def torch_mah():
            _, L = _lw_whitener(X)
            Z = Xt @ torch.from_numpy(L)
            D = torch.cdist(Z, Z)
            return _torch_density(D) if dens else D

        out["numpy"] = np_mah
        out["torch"] = torch_mah
        if n * n * d * d > MAX_QUADRATIC_FORM_FLOPS:
            reason = f"cdist mahalanobis costs n^2 d^2 = {n * n * d * d:.1e} flops (minutes)"
            out["scipy"] = out["sklearn"] = reason
        else:
            out["scipy"] = lambda: (lambda D: _density(D) if dens else D)(
                cdist(X, X, "mahalanobis", VI=_lw_whitener(X)[0])
            )
            out["sklearn"] = lambda: (lambda D: _density(D) if dens else D)(
                skpd(X, metric="mahalanobis", VI=_lw_whitener(X)[0])
            )
    elif metric == "geodesic":
        from scipy.sparse.csgraph import shortest_path
        from sklearn.neighbors import kneighbors_graph

        def sp_geo():
            G = kneighbors_graph(X, 10, mode="distance", include_self=False)
            # symmetric, so a directed search is the undirected one without scipy's transposed copy
            return shortest_path(G.maximum(G.T), method="D", directed=True)

        out["numpy"] = "no numpy graph search"
        out["scipy"] = sp_geo
        out["sklearn"] = "same path as scipy (kneighbors_graph + csgraph)"
        out["torch"] = "no torch graph search"
    elif metric == "density_euclidean":
        out["numpy"] = lambda: _density(np.sqrt(_np_sqeuclidean(X)))
        out["scipy"] = lambda: _density(cdist(X, X, "euclidean"))
        out["sklearn"] = lambda: _density(skpd(X, metric="euclidean"))
        out["torch"] = lambda: _torch_density(torch.cdist(Xt, Xt))
    elif metric == "density_cosine":
        out["numpy"] = lambda: _density(_np_cosine(X))
        out["scipy"] = lambda: _density(cdist(X, X, "cosine"))
        out["sklearn"] = lambda: _density(skpd(X, metric="cosine"))
        out["torch"] = lambda: _torch_density(np_torch_cos(X))
    else:
        raise KeyError(metric)
    return out


# ---- why a naive jax cosine was slower than numpy -------------------------------------


def cosine_ablation(n: int, d: int, repeat: int) -> list[dict]:
    """Time cosine formulations and their parts on one (n, d) float32 cloud."""
    import jax
    import jax.numpy as jnp

    from holejax.metrics import cosine as cos_mod

    X = (np.random.default_rng(0).normal(size=(n, d)) + 0.5).astype(np.float32)
    Y = X.copy()  # a different buffer: numpy cannot use syrk for X @ Y.T
    Xj = jax.device_put(X)

    def naive(X):  # gram, then divide by the outer product of the norms
        G = X @ X.T
        norms = jnp.linalg.norm(X, axis=1)
        return 1 - G / (norms[:, None] * norms[None, :])

    def unit_rows_full(X):  # normalise rows, one full matmul, clamp, zero diagonal
        U = X / jnp.linalg.norm(X, axis=1, keepdims=True)
        D = jnp.clip(1 - U @ U.T, 0, 2)
        return jnp.where(jnp.eye(X.shape[0], dtype=bool), 0, D)

    jitted = {
        "jax naive: X @ X.T / outer(norms)": jax.jit(naive),
        "jax unit rows + one full matmul": jax.jit(unit_rows_full),
        "jax holejax cosine (symmetric panels)": jax.jit(cos_mod.cosine_distances),
        "jax X @ X.T alone": jax.jit(lambda X: X @ X.T),
        "jax arcsin (n x n, XLA)": jax.jit(lambda X: jnp.arcsin(jnp.clip(X @ X.T, -1, 1) * 0.5)),
    }
    rows = []
    for name, f in jitted.items():
        rows.append({"variant": name, **_timed(lambda f=f: f(Xj).block_until_ready(), repeat, compiles=True)})
    rows.append({"variant": "numpy unit rows + X @ X.T (BLAS syrk)", **_timed(lambda: _np_cosine(X), repeat)})
    rows.append({"variant": "numpy X @ X.T alone (syrk)", **_timed(lambda: X @ X.T, repeat)})
    rows.append({"variant": "numpy X @ Y.T alone (gemm)", **_timed(lambda: X @ Y.T, repeat)})
    G = X @ X.T
    rows.append({"variant": "numpy arcsin (n x n)", **_timed(lambda: np.arcsin(np.clip(G, -1, 1) * 0.5), repeat)})
    D = jitted["jax holejax cosine (symmetric panels)"](Xj).block_until_ready()
    rows.append({"variant": "np.asarray(jax result)", **_timed(lambda: np.asarray(D + 0), repeat)})
    rows.append({"variant": "jnp.asarray(host n x n)", **_timed(lambda: jnp.asarray(G).block_until_ready(), repeat)})
    rows.append({"variant": "jax.device_put(host n x n)", **_timed(lambda: jax.device_put(G).block_until_ready(), repeat)})
    for row in rows:
        row.update(n=n, d=d)
        print(f"| {row['variant']} | {n} | {d} | {1e3 * row['median_s']:.1f} |", flush=True)
    return rows


# ---- the run -------------------------------------------------------------------------


def run(sizes, metrics, repeat: int) -> dict:
    import jax
    import torch

    import holejax as hj

    results = []
    for n, d in sizes:
        X = (np.random.default_rng(n + d).normal(size=(n, d)) + 0.5).astype(np.float32)
        for metric in metrics:
            row = {"metric": metric, "n": n, "d": d}
            jax_fn = lambda: hj.pairwise_distances(X, metric).block_until_ready()  # noqa: E731
            jax.clear_caches()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = _timed(jax_fn, repeat, compiles=True)
            t["compile_s"] = max(0.0, t["first_s"] - t["median_s"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                D = hj.pairwise_distances(X, metric).block_until_ready()
            start = time.perf_counter()
            np.asarray(D)
            t["to_numpy_s"] = time.perf_counter() - start
            row["jax"] = t
            for name, fn in peer_functions(metric, X).items():
                if isinstance(fn, str):
                    row[name] = {"skipped": fn}
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    row[name] = _timed(fn, repeat)
            timed = {p: row[p]["median_s"] for p in PEERS if "median_s" in row.get(p, {})}
            if timed:
                best = min(timed, key=timed.get)
                row["fastest_peer"] = best
                row["ratio"] = row["jax"]["median_s"] / timed[best]
                best_min = min(row[p]["min_s"] for p in timed)
                row["ratio_of_minima"] = row["jax"]["min_s"] / best_min
            results.append(row)
            print(_row_line(row), flush=True)
    return {
        "machine": {
            "platform": platform.platform(),
            "processor": _cpu_name(),
            "cpus": os.cpu_count(),
            "loadavg_end": os.getloadavg(),
            "python": sys.version.split()[0],
        },
        "versions": _versions(),
        "torch_threads": torch.get_num_threads(),
        "repeat": repeat,
        "results": results,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _versions() -> dict:
    import jax
    import scipy
    import sklearn
    import torch

    return {"jax": jax.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "sklearn": sklearn.__version__, "torch": torch.__version__}  # fmt: skip


def _ms(entry: dict | None) -> str:
    if not entry:
        return "-"
    if "skipped" in entry:
        return "n/a"
    return f"{1e3 * entry['median_s']:.1f}"


def _row_line(row: dict) -> str:
    cells = [row["metric"], str(row["n"]), str(row["d"]), _ms(row["jax"]), f"{row['jax']['compile_s']:.2f}"]
    cells += [_ms(row.get(p)) for p in PEERS]
    cells += [row.get("fastest_peer", "-"), f"{row['ratio']:.2f}" if "ratio" in row else "-"]
    cells += [f"{row['ratio_of_minima']:.2f}" if "ratio_of_minima" in row else "-"]
    return "| " + " | ".join(cells) + " |"


def updated_report(old: dict, new: dict, command: str) -> dict:
    """``old`` with its rows for the (metric, n, d) cells measured in ``new`` replaced.

    Replaced rows carry ``rerun`` (the command and the date), so a results
    file assembled from several runs says which figures came from which.
    """
    stamp = {"command": command, "date": time.strftime("%Y-%m-%d"), "versions": new["versions"]}
    fresh = {(r["metric"], r["n"], r["d"]): {**r, "rerun": stamp} for r in new["results"]}
    rows = [fresh.pop((r["metric"], r["n"], r["d"]), r) for r in old["results"]]
    return {**old, "results": rows + list(fresh.values())}


def markdown(report: dict) -> str:
    head = ["metric", "n", "d", "jax ms", "jax compile s", *[f"{p} ms" for p in PEERS], "fastest peer",
            "jax / fastest (medians)", "jax / fastest (minima)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [_row_line(r) for r in report["results"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 repeats")
    parser.add_argument("--metrics", default=None, help="comma-separated subset of holejax.METRICS")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--sizes", default=None, help="comma-separated NxD list, e.g. 4000x512,1000x64")
    parser.add_argument("--ablation-only", action="store_true", help="only the cosine ablation")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--update", action="store_true",
                        help="replace only the measured (metric, n, d) rows of the results file, "
                             "each marked with this command and date; keep the rest")  # fmt: skip
    args = parser.parse_args(argv)

    import holejax as hj

    metrics = hj.METRICS if args.metrics is None else tuple(args.metrics.split(","))
    if args.quick:
        sizes, repeat = [(500, 64), (1000, 64)], args.repeat or 3
        out = args.out or RESULTS.with_name("metrics_quick.json")
    else:
        sizes = [(n, d) for n in (1000, 2000, 4000) for d in (64, 512)]
        repeat, out = args.repeat or 5, args.out or RESULTS
    if args.sizes:
        sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",")]
    print("| cosine variant | n | d | ms |\n|---|---|---|---|")
    ablation = [row for n, d in [(4000, 512), (4000, 64)][: 1 if args.quick else 2]
                for row in cosine_ablation(n if not args.quick else 1000, d, repeat)]  # fmt: skip
    if args.ablation_only:
        return 0
    print(markdown({"results": []}))
    report = run(sizes, metrics, repeat)
    report["cosine_ablation"] = ablation
    report["command"] = "python benchmarks/bench_metrics.py" + (" --quick" if args.quick else "")
    if args.update and out.exists():
        report = updated_report(json.loads(out.read_text()), report, " ".join(["python", *sys.argv]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
