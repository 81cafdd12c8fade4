"""H0 filtration benchmark: holejax against ripser, giotto-ph, gudhi, scipy and fastcluster.

Usage::

    python benchmarks/bench_h0.py            # full run (about 15-25 minutes on 2 cores)
    python benchmarks/bench_h0.py --quick    # n in {500, 1000}, d = 64, no large-n run

What is measured, per batch of 8 clouds (``n`` samples, ``d`` units, a gaussian
mixture of 10 clusters, float32):

- **from distances**: every engine gets the distance matrices; the distance
  computation is *not* timed. holejax: ``hj.h0(Ds)`` (validation
  included) on the (8, n, n) float32 batch; peers: their native input, float64
  (condensed ``pdist`` vector for scipy / fastcluster, square matrix for
  ripser, giotto-ph, gudhi).
- **from points**: every engine starts from the points; the distance
  computation *is* timed. holejax: ``hj.h0_from_points(Xs)`` (the dense
  engine: per cloud one distance program and one tree program); peers: ``pdist`` + linkage (scipy,
  fastcluster), fastcluster ``linkage_vector``, and ripser / giotto-ph / gudhi
  on the points.
- peers run once in this process (1 core; giotto-ph with 2 threads) and once
  split over **2 worker processes** (both cores; the workers are warmed on one
  cloud first and start together at a barrier); the faster of the two is the
  peer's time. holejax runs in one process on one CPU device: the batch is cut
  into one slice per core, each slice runs in a host thread (XLA executes the
  concurrent calls in parallel), so it also uses both cores.
- compile time (first call minus a steady call) is reported separately;
  steady times are the best of several runs.
- slow peers (a cloud taking more than ``--peer-budget`` seconds) are timed on
  fewer clouds and scaled to 8; such entries are flagged ``extrapolated``.

Also reported: the machine bound (float32 matmul FLOP/s and memory bandwidth
of a large copy) and holejax's time relative to it, and the large-n runs
(``--large``, ``NxD`` sizes): ``hj.h0_from_points`` on one gaussian cloud
(the tiled Borůvka engine) against fastcluster ``linkage_vector`` where that
finishes in reasonable time (``--peer-max-n``, d = 64 only), each in a fresh
subprocess with its peak RSS (VmHWM), the engine's rounds and scanned points,
and the time of one pass of the same tiles' matrix products (the bound the
engine is compared with). ``--large-only`` skips the batch cells. Results go
to ``benchmarks/results/h0.json`` (``h0_large.json`` with ``--large-only``);
a markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH = 8
HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------- data


def make_batch(n: int, d: int, seed: int = 0) -> np.ndarray:
    """(BATCH, n, d) float32 gaussian mixtures: 10 clusters, unit noise, spread centres."""
    rng = np.random.default_rng(seed)
    out = np.empty((BATCH, n, d), np.float32)
    for b in range(BATCH):
        centres = rng.normal(scale=4.0, size=(10, d))
        labels = rng.integers(0, 10, n)
        out[b] = centres[labels] + rng.normal(size=(n, d))
    return out


def distances64(X: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import pdist

    return pdist(X.astype(np.float64))


# --------------------------------------------------------------------------- peers


def run_peer(name: str, kind: str, item) -> None:
    """One cloud through one peer. kind: 'D' (item = condensed distances) or 'X' (points)."""
    import warnings

    from scipy.spatial.distance import pdist, squareform

    warnings.simplefilter("ignore")  # ripser: "more columns than rows" for d > n

    if kind == "D":
        y = item
        if name == "scipy":
            from scipy.cluster.hierarchy import linkage

            linkage(y, "single")
        elif name == "fastcluster":
            import fastcluster

            fastcluster.linkage(y, "single")
        elif name == "ripser":
            import ripser

            ripser.ripser(squareform(y), maxdim=0, distance_matrix=True)
        elif name == "giotto-ph":
            from gph import ripser_parallel

            ripser_parallel(squareform(y), maxdim=0, metric="precomputed", n_threads=2)
        elif name == "gudhi":
            import gudhi

            st = gudhi.RipsComplex(distance_matrix=squareform(y)).create_simplex_tree(max_dimension=1)
            st.compute_persistence()
        else:
            raise ValueError(name)
        return
    X = item.astype(np.float64)
    if name == "scipy":
        from scipy.cluster.hierarchy import linkage

        linkage(pdist(X), "single")
    elif name == "fastcluster":
        import fastcluster

        fastcluster.linkage(pdist(X), "single")
    elif name == "fastcluster-vector":
        import fastcluster

        fastcluster.linkage_vector(X, "single")
    elif name == "ripser":
        import ripser

        ripser.ripser(X, maxdim=0)
    elif name == "giotto-ph":
        from gph import ripser_parallel

        ripser_parallel(X, maxdim=0, n_threads=2)
    elif name == "gudhi":
        import gudhi

        st = gudhi.RipsComplex(points=X).create_simplex_tree(max_dimension=1)
        st.compute_persistence()
    else:
        raise ValueError(name)


PEERS = {
    "D": ["scipy", "fastcluster", "ripser", "giotto-ph", "gudhi"],
    "X": ["scipy", "fastcluster", "fastcluster-vector", "ripser", "giotto-ph", "gudhi"],
}


_BARRIER = None


def _init_worker(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier


def _worker(args) -> float:
    """Seconds for ``indices`` through one peer; pool workers first meet at the barrier.

    The barrier makes both pool workers take one task each and start together,
    so the two-process time is two clouds-halves run side by side on both cores.
    """
    name, kind, path, indices = args
    data = np.load(path, mmap_mode="r")
    if _BARRIER is not None:
        _BARRIER.wait()
    t = time.perf_counter()
    for i in indices:
        run_peer(name, kind, np.asarray(data[i]))
    return time.perf_counter() - t


def time_peer(name: str, kind: str, path: str, pool, budget: float) -> dict:
    """Seconds for all BATCH clouds: one process, and two processes of BATCH/2 each."""
    _worker((name, kind, path, [0]))  # warm imports and caches
    first = _worker((name, kind, path, [0]))
    count = BATCH
    if first > budget:
        count = 2 if first * 2 <= 4 * budget else 1
    one = _worker((name, kind, path, list(range(count)))) * BATCH / count
    if count == 1:
        one = min(one, first * BATCH)
    half = max(1, count // 2)
    pool.map(_worker, [(name, kind, path, [0])] * 2, chunksize=1)  # imports and caches, both workers
    two = max(pool.map(_worker, [(name, kind, path, list(range(half))),
                                 (name, kind, path, list(range(half, 2 * half)))], chunksize=1))
    two *= BATCH / (2 * half)
    return {"one_process_s": one, "two_processes_s": two, "best_s": min(one, two),
            "clouds_timed": count, "extrapolated": count < BATCH}


# --------------------------------------------------------------------------- holejax


def best_of(fn, repeats: int) -> tuple[float, float]:
    """(first call seconds, best steady seconds)."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return first, best


def time_holejax(Xs: np.ndarray, repeats: int) -> dict:
    import jax

    import holejax as hj

    Ds = jax.block_until_ready(hj.batched_pairwise_distances(Xs))
    out = {}
    first, best = best_of(lambda: hj.h0(Ds), repeats)
    out["D"] = {"first_s": first, "steady_s": best, "compile_s": max(0.0, first - best)}
    first, best = best_of(lambda: hj.h0(Ds, check=False), repeats)
    out["D_nocheck"] = {"steady_s": best}
    first, best = best_of(lambda: hj.h0_from_points(Xs), repeats)
    out["X"] = {"first_s": first, "steady_s": best, "compile_s": max(0.0, first - best)}
    # correctness spot check against scipy on cloud 0
    from scipy.cluster.hierarchy import linkage

    ref = linkage(distances64(Xs[0]), "single")[:, 2]
    got = hj.h0_from_points(Xs[0]).deaths
    out["max_rel_err_vs_scipy"] = float(np.max(np.abs(got - ref) / np.maximum(ref, 1e-12)))
    return out


# --------------------------------------------------------------------------- machine bound


def machine_bound() -> dict:
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).normal(size=(2048, 2048)).astype(np.float32))
    mm = jax.jit(lambda x, y: x @ y)
    first, best = best_of(lambda: jax.block_until_ready(mm(a, a)), 5)
    flops = 2 * 2048**3 / best
    big = np.ones(2**27, np.float32)  # 512 MiB
    dst = np.empty_like(big)
    copy_best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(dst, big)
        copy_best = min(copy_best, time.perf_counter() - t)
    bandwidth = 2 * big.nbytes / copy_best  # read + write
    return {"matmul_flops_per_s": flops, "copy_bytes_per_s": bandwidth}


# --------------------------------------------------------------------------- large n


def _status_mib(field: str) -> float:
    """VmRSS / VmHWM of this process in MiB (VmHWM, unlike ru_maxrss, restarts at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def gemm_pass_seconds(X: np.ndarray) -> float:
    """One pass of the tiled engine's matrix products over the cloud: every row tile times all points.

    The same tile shape, padding and host threads as the engine, each tile's
    products reduced to one number (so none is skipped): the arithmetic bound
    of one Borůvka pass.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    from holejax.filtration.dense import parallel_map
    from holejax.filtration.tiled import TILE_COLS, TILE_ROWS

    n, d = X.shape
    cols = min(TILE_COLS, n)
    n_pad = -(-n // cols) * cols
    Y = jnp.asarray(np.pad(X, ((0, n_pad - n), (0, 0))))

    @jax.jit
    def tile_products(start):
        R = lax.dynamic_slice_in_dim(Y, start, TILE_ROWS)

        def body(j, acc):
            C = lax.dynamic_slice_in_dim(Y, j * cols, cols)
            g = lax.dot_general(R, C, (((1,), (1,)), ((), ())), precision=lax.Precision.HIGHEST)
            return acc + jnp.max(g)

        return lax.fori_loop(0, n_pad // cols, body, jnp.float32(0))

    starts = [min(lo, n_pad - TILE_ROWS) for lo in range(0, n, TILE_ROWS)]
    jax.block_until_ready(tile_products(0))
    t = time.perf_counter()
    parallel_map(lambda s: float(tile_products(s)), starts)
    return time.perf_counter() - t


def large_worker(engine: str, n: int, d: int) -> None:
    """Run one engine on one large cloud and print JSON with time and peak RSS."""
    X = np.random.default_rng(1).normal(size=(n, d)).astype(np.float32)
    if engine == "holejax":
        import holejax as hj
        from holejax.filtration.tiled import boruvka_from_points  # noqa: F401  (imports in the baseline)
    else:
        import fastcluster  # noqa: F401
    base = _status_mib("VmRSS")
    extra = {}
    t = time.perf_counter()
    if engine == "holejax":
        h = hj.h0_from_points(X)
        result = float(h.deaths[-1])
        extra["holejax_engine"] = h.engine
    else:
        import fastcluster

        Z = fastcluster.linkage_vector(X.astype(np.float64), "single")
        result = float(Z[-1, 2])
    seconds = time.perf_counter() - t
    peak = _status_mib("VmHWM")
    if engine == "holejax":
        # compile time, rounds and scanned points: a second run on the now-compiled programs
        t = time.perf_counter()
        _, stats = boruvka_from_points(X)
        extra["steady_s"] = time.perf_counter() - t
        extra.update(stats)
        extra["gemm_pass_s"] = gemm_pass_seconds(X)
    print(json.dumps({"engine": engine, "n": n, "d": d, "seconds": seconds,
                      "peak_rss_mib": peak, "rss_before_mib": base,
                      "last_death": result, **extra}))


def run_large(sizes: list[tuple[int, int]], peer_max_n: int, timeout: float) -> list[dict]:
    rows = []
    for n, d in sizes:
        engines = ["holejax"] + (["fastcluster-vector"] if n <= peer_max_n and d == 64 else [])
        for engine in engines:
            cmd = [sys.executable, __file__, "--large-worker", engine, str(n), str(d)]
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            except subprocess.TimeoutExpired:
                rows.append({"engine": engine, "n": n, "d": d, "seconds": None,
                             "note": f"did not finish within {timeout:.0f} s"})
            except subprocess.CalledProcessError as err:
                rows.append({"engine": engine, "n": n, "d": d, "seconds": None,
                             "note": err.stderr.strip().splitlines()[-1] if err.stderr else "failed"})
            print(json.dumps(rows[-1]), flush=True)
    return rows


# --------------------------------------------------------------------------- main


def fmt(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no large-n run")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--dims", type=int, nargs="*", default=None)
    parser.add_argument("--peer-budget", type=float, default=1.5,
                        help="seconds per cloud above which a peer is timed on fewer clouds")
    parser.add_argument("--peers", nargs="*", default=None,
                        help="only these peers (development; the full run times all)")
    parser.add_argument("--large", default="10000x64,20000x64,50000x64,100000x64,200000x64,50000x768",
                        help="comma-separated NxD clouds for the large-n runs")
    parser.add_argument("--peer-max-n", type=int, default=50_000,
                        help="largest n at which fastcluster linkage_vector runs (d = 64 only)")
    parser.add_argument("--no-large", action="store_true")
    parser.add_argument("--large-only", action="store_true", help="only the large-n runs")
    parser.add_argument("--output", default=None)
    parser.add_argument("--cpu-devices", type=int, default=1,
                        help="jax_num_cpu_devices; hj.h0 spreads a batch over the devices")
    parser.add_argument("--large-worker", nargs=3, metavar=("ENGINE", "N", "D"))
    args = parser.parse_args()
    import jax

    jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    if args.large_worker:
        engine, n, d = args.large_worker
        large_worker(engine, int(n), int(d))
        return

    sizes = [] if args.large_only else (args.sizes or ([500, 1000] if args.quick else [500, 1000, 2000, 4000]))
    dims = args.dims or ([64] if args.quick else [64, 512])
    load_before = os.getloadavg()
    info = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "cpu_devices": len(jax.local_devices()),
        "loadavg_before": load_before,
        "command": "python " + " ".join(sys.argv),
    }
    bound = machine_bound()
    print(f"machine bound: matmul {bound['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s, "
          f"copy {bound['copy_bytes_per_s'] / 1e9:.1f} GB/s (read + write)", flush=True)
    results = []
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    with tempfile.TemporaryDirectory() as tmp, ctx.Pool(2, _init_worker, (barrier,)) as pool:
        for n in sizes:
            for d in dims:
                Xs = make_batch(n, d, seed=n + d)
                pathX = os.path.join(tmp, f"X_{n}_{d}.npy")
                pathD = os.path.join(tmp, f"D_{n}_{d}.npy")
                np.save(pathX, Xs)
                np.save(pathD, np.stack([distances64(x) for x in Xs]))
                repeats = 5 if n <= 1000 else 3
                hj = time_holejax(Xs, repeats)
                row = {"n": n, "d": d, "batch": BATCH, "holejax": hj, "peers": {"D": {}, "X": {}}}
                for kind, path in (("D", pathD), ("X", pathX)):
                    for name in PEERS[kind]:
                        if args.peers is not None and name not in args.peers:
                            continue
                        row["peers"][kind][name] = time_peer(name, kind, path, pool, args.peer_budget)
                    fastest = min(row["peers"][kind].items(), key=lambda kv: kv[1]["best_s"])
                    ours = hj[kind]["steady_s"]
                    row[f"ratio_{kind}"] = {"fastest_peer": fastest[0],
                                            "fastest_peer_s": fastest[1]["best_s"],
                                            "holejax_s": ours, "ratio": ours / fastest[1]["best_s"]}
                # machine bound (bytes at the measured copy rate, read and write bytes
                # both counted; flops at the measured matmul rate): from D, reading the
                # batch's n x n float32 matrices once; from points, the flops of the
                # symmetric gram product (n^2 d per cloud, half the full product) plus
                # writing the matrices and reading them once
                bytes_D = BATCH * n * n * 4
                bound_D = bytes_D / bound["copy_bytes_per_s"]
                bound_X = (BATCH * n * n * d / bound["matmul_flops_per_s"]
                           + 2 * bytes_D / bound["copy_bytes_per_s"])
                row["bound"] = {"D_s": bound_D, "X_s": bound_X,
                                "holejax_D_over_bound": hj["D"]["steady_s"] / bound_D,
                                "holejax_X_over_bound": hj["X"]["steady_s"] / bound_X}
                results.append(row)
                print(f"n={n} d={d}: holejax D {fmt(hj['D']['steady_s'])} "
                      f"(x{row['ratio_D']['ratio']:.2f} of {row['ratio_D']['fastest_peer']}), "
                      f"X {fmt(hj['X']['steady_s'])} "
                      f"(x{row['ratio_X']['ratio']:.2f} of {row['ratio_X']['fastest_peer']})",
                      flush=True)
    large_sizes = [tuple(int(v) for v in item.split("x")) for item in args.large.split(",") if item]
    large = [] if (args.quick or args.no_large) else run_large(large_sizes, args.peer_max_n, timeout=3600)
    info["loadavg_after"] = os.getloadavg()
    out = {"info": info, "machine_bound": bound, "batches": results, "large": large}
    output = Path(args.output or HERE / "results" / ("h0_large.json" if args.large_only else "h0.json"))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(out, indent=1))
    print(markdown(out))


def markdown(out: dict) -> str:
    lines = []
    b = out["machine_bound"]
    lines.append(f"Machine: {out['info']['cpus']} CPUs, jax {out['info']['jax']} "
                 f"({out['info']['backend']}); load average before/after "
                 f"{out['info']['loadavg_before'][0]:.1f} / {out['info']['loadavg_after'][0]:.1f}. "
                 f"Measured bound: matmul {b['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s, "
                 f"copy {b['copy_bytes_per_s'] / 1e9:.1f} GB/s (read + write).")
    lines.append("")
    for kind, title in (() if not out["batches"] else (("D", "From distance matrices (distance computation not timed)"),
                        ("X", "From points (distance computation timed for every engine)"))):
        lines.append(f"**{title}**, batch of {BATCH} clouds, steady seconds per batch "
                     "(peers: best of 1 process / 2 processes; * = extrapolated from fewer clouds)")
        lines.append("")
        names = [p for p in PEERS[kind] if p in out["batches"][0]["peers"][kind]] if out["batches"] else []
        lines.append("| n | d | holejax | compile | " + " | ".join(names)
                     + " | fastest peer | holejax / fastest | holejax / machine bound |")
        lines.append("|---|---|---|---|" + "---|" * len(names) + "---|---|---|")
        for row in out["batches"]:
            hj = row["holejax"][kind]
            cells = []
            for name in names:
                p = row["peers"][kind][name]
                cells.append(fmt(p["best_s"]) + ("*" if p["extrapolated"] else ""))
            r = row[f"ratio_{kind}"]
            lines.append(f"| {row['n']} | {row['d']} | {fmt(hj['steady_s'])} | {fmt(hj['compile_s'])} | "
                         + " | ".join(cells)
                         + f" | {r['fastest_peer']} | {r['ratio']:.2f} | "
                         f"{row['bound'][f'holejax_{kind}_over_bound']:.1f} |")
        lines.append("")
    if out["large"]:
        lines.append("**Large n** (one gaussian cloud, fresh subprocess each; tiled Borůvka for holejax)")
        lines.append("")
        lines.append("| n | d | holejax first call | holejax steady | fastcluster `linkage_vector` | "
                     "steady / fastcluster | holejax peak RSS | passes (scanned / n) | rounds | "
                     "one GEMM pass | steady / GEMM pass |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        by = {}
        for r in out["large"]:
            by.setdefault((r["n"], r["d"]), {})[r["engine"]] = r
        for (n, d), rows in by.items():
            h, f = rows.get("holejax", {}), rows.get("fastcluster-vector")
            t = fmt(h.get("seconds")) if h.get("seconds") else h.get("note", "-")
            ft = "-" if f is None else (fmt(f["seconds"]) if f.get("seconds") else f.get("note", "-"))
            ratio = f"{h['steady_s'] / f['seconds']:.3f}" if f and f.get("seconds") and h.get("steady_s") else "-"
            rss = f"{h['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in h else "-"
            passes = f"{h['scanned'] / n:.2f}" if "scanned" in h else "-"
            over = f"{h['steady_s'] / h['gemm_pass_s']:.2f}" if h.get("gemm_pass_s") else "-"
            lines.append(f"| {n} | {d} | {t} | {fmt(h.get('steady_s'))} | {ft} | {ratio} | {rss} | {passes} | "
                         f"{h.get('rounds', '-')} | {fmt(h.get('gemm_pass_s'))} | {over} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
