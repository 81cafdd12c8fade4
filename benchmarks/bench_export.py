"""Benchmark: activation export vs a bare forward loop over the same data.

A 10-layer MLP (784 -> 9 x 512 -> 10) runs over N random samples; with
``--model bert``, a small BERT encoder (PyTorch, ``transformers``, random
weights: 4 layers of width 128) runs over 273 texts of random token ids
padded to 64 tokens (a quarter to all of them real), and the export takes
its default layers (embeddings and every block) with the default pooling
(the mean over real tokens). Four runs per framework, each in a fresh
subprocess so its memory is its own:

- ``bare``:    the forward pass alone, batch by batch (the peer);
- ``capture``: forward with the adapter's capture of the 10 layers, no store;
- ``export``:  ``hj.export_activations`` of the 10 layers into a Zarr store,
               after one export of one batch in the same process (as the
               peer's first call, it compiles: the adapters keep the layer
               listing and the compiled capture per model and layers);
- ``export_cold``: the same export as the process's first, compilation included;
- ``setup``:   a first export over one batch (layer listing, compilation,
               store creation: the one-time cost inside ``export_cold``).

Time excludes model building, data generation and the first, compiling call
(the peer's forward pass; the capture's and the export's warm-up batch);
``setup`` and ``export_cold`` report what the first export adds.
CPU time is the process's user + system time over the same span (all its
threads). Peak memory is the rise of the resident set (VmHWM after resetting
it) during the timed part, and the tracemalloc peak from one extra, untimed
run per mode (tracing slows every Python allocation, so it would distort the
times). Repeats alternate the modes and report the median.

    python benchmarks/bench_export.py [--quick] [--framework torch|flax|both] [--threads N]
                                      [--compressors none|lz4|zstd] [--inplace-relu]
                                      [--model mlp|bert] [--out PATH]

``--threads N`` gives each framework N compute threads: ``torch.set_num_threads``
for PyTorch; for JAX, whose XLA_FLAGS have no such setting, the CPU backend
starts while the process is restricted to N CPUs (XLA sizes its thread pool
from the affinity mask), which is lifted again before anything runs. Left out,
each framework uses every CPU.

``--inplace-relu`` builds the PyTorch MLP with ``nn.ReLU(inplace=True)``: every
captured Linear output but the last is then changed in place later in the
forward pass, so the adapter copies it (Flax is unaffected: JAX arrays are
immutable).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

D_IN, WIDTH, DEPTH, N_OUT = 784, 512, 10, 10
BERT = {"vocab": 1000, "width": 128, "layers": 4, "heads": 4, "tokens": 64, "n": 273}
RESULTS = Path(__file__).parent / "results" / "export.json"


# -- child process -----------------------------------------------------------
def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def _torch_model(inplace_relu: bool = False):
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers, d = [], D_IN
    for i in range(DEPTH):
        out = N_OUT if i == DEPTH - 1 else WIDTH
        layers += [nn.Linear(d, out)] + ([nn.ReLU(inplace=inplace_relu)] if i < DEPTH - 1 else [])
        d = out
    return nn.Sequential(*layers).eval(), "Linear"


def _bert_model():
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=BERT["vocab"], hidden_size=BERT["width"], num_hidden_layers=BERT["layers"],
        num_attention_heads=BERT["heads"], intermediate_size=4 * BERT["width"], max_position_embeddings=128,
    )
    return BertModel(cfg).eval(), None  # None: the export's default layers, embeddings and every block


def _token_batches(n: int) -> dict:
    """Random token ids padded to BERT["tokens"], with their attention mask (16 to 64 real tokens)."""
    import numpy as np

    rng = np.random.default_rng(0)
    t = BERT["tokens"]
    lengths = rng.integers(t // 4, t + 1, n)
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": rng.integers(1, BERT["vocab"], (n, t)) * mask, "attention_mask": mask}


def _rows(X, start: int, stop: int):
    return {k: v[start:stop] for k, v in X.items()} if isinstance(X, dict) else X[start:stop]


def _flax_model():
    import flax.linen as nn
    import jax
    import numpy as np

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i in range(DEPTH - 1):
                x = nn.relu(nn.Dense(WIDTH)(x))
            return nn.Dense(N_OUT)(x)

    module = MLP()
    return (module, module.init(jax.random.key(0), np.zeros((1, D_IN), np.float32))), "Dense"


def _bare_loop(framework: str, model, X, batch: int):
    if framework == "torch":
        import torch

        def run_on(x) -> None:
            with torch.inference_mode():
                if isinstance(x, dict):
                    model(**{k: torch.from_numpy(v) for k, v in x.items()})
                else:
                    model(torch.from_numpy(x))

        n = len(X["input_ids"]) if isinstance(X, dict) else len(X)

        def run() -> None:
            for s in range(0, n, batch):
                run_on(_rows(X, s, s + batch))

        return run, lambda: run_on(_rows(X, 0, batch))
    import jax

    module, variables = model
    apply = jax.jit(module.apply)

    def run() -> None:
        for s in range(0, len(X), batch):
            x = X[s : s + batch]
            if len(x) < batch:  # the export pads the last batch too
                import numpy as np

                x = np.concatenate([x, np.repeat(x[-1:], batch - len(x), axis=0)])
            jax.block_until_ready(apply(variables, x))

    return run, lambda: jax.block_until_ready(apply(variables, X[:batch]))


def _limit_xla_threads(threads: int) -> None:
    """Start JAX's CPU backend with a thread pool of ``threads`` compute threads.

    XLA sizes that pool from the process's CPU affinity mask when the backend
    starts (the way JAX's maintainers point to in jax-ml/jax#1539; XLA_FLAGS
    have no such setting), and its threads keep the mask they started with.
    The mask is restored right after, so threads started later (the export's
    writer) may run on every CPU, as with ``torch.set_num_threads``.
    """
    import jax

    if not hasattr(os, "sched_setaffinity"):  # not Linux
        print(f"--threads {threads}: no CPU affinity on this system; JAX keeps its default threads",
              file=sys.stderr)
        return
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(cpus)[:threads])
    try:
        jax.devices()  # starts the backend and its thread pool
    finally:
        os.sched_setaffinity(0, cpus)


def child(mode: str, framework: str, store: str, args: argparse.Namespace) -> dict:
    import numpy as np

    n, batch, compressors = args.n, args.batch, args.compressors
    if args.threads and framework == "torch":
        import torch

        torch.set_num_threads(args.threads)
    if args.threads and framework == "flax":
        _limit_xla_threads(args.threads)

    import holejax as hj
    from holejax.capture import find_adapter, pool, select_layers

    if args.model == "bert":
        model, layer_type = _bert_model()
        X = _token_batches(n)
    else:
        model, layer_type = _torch_model(args.inplace_relu) if framework == "torch" else _flax_model()
        X = np.random.default_rng(0).standard_normal((n, D_IN), dtype=np.float32)
    run_bare, warm = _bare_loop(framework, model, X, batch)
    warm()  # framework start-up and the peer's compilation are not timed
    import holejax.perturb  # noqa: F401  (one-time imports are not timed either)
    import holejax.store  # noqa: F401
    if mode == "capture":
        adapter = find_adapter(model)
        names = [i.name for i in select_layers(adapter.list_layers(model, _rows(X, 0, 2)), layer_type)]

        def run_on(data) -> None:
            size = len(data["input_ids"]) if isinstance(data, dict) else len(data)
            with adapter.capture(model, names) as forward:
                for s in range(0, size, batch):
                    rows = _rows(data, s, s + batch)
                    for a in forward(rows).values():
                        if isinstance(rows, dict):
                            pool(a, "mean", mask=rows["attention_mask"])
                        else:
                            pool(a, "flatten")

        run_on(_rows(X, 0, batch))  # compiles, as the peer's first call
        run = lambda: run_on(X)  # noqa: E731

    elif mode in ("export", "export_cold", "setup"):
        data = _rows(X, 0, batch) if mode == "setup" else X

        def export(data, store) -> None:
            hj.export_activations(model, data, layers=layer_type, store=store, batch_size=batch, progress=False,
                                  compressors=None if compressors == "none" else compressors)

        if mode == "export":  # compiles, as the peer's first call
            export(_rows(X, 0, batch), f"{store}.warmup")
            shutil.rmtree(f"{store}.warmup")
        run = lambda: export(data, store)  # noqa: E731

    else:
        run = run_bare
    if args.trace:  # memory pass: tracemalloc slows every Python allocation, so this run is not timed
        tracemalloc.start()
        run()
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"tracemalloc_peak_mib": traced_peak / 2**20}
    base = _rss_kib("VmRSS")
    _reset_peak_rss()
    cpu0, t0 = time.process_time(), time.perf_counter()
    run()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    out = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_rise_mib": (_rss_kib("VmHWM") - base) / 1024}
    if mode in ("export", "export_cold"):
        out["store_mib"] = sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file()) / 2**20
    return out


# -- parent --------------------------------------------------------------------
def _run_child(mode: str, framework: str, workdir: Path, args: argparse.Namespace, trace: bool = False) -> dict:
    store = workdir / f"{framework}-{mode}.zarr"
    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", mode, "--framework", framework, "--n", str(args.n),
           "--batch", str(args.batch), "--store", str(store), "--threads", str(args.threads),
           "--compressors", args.compressors, "--model", args.model]
    for flag, on in [("--trace", trace), ("--inplace-relu", args.inplace_relu)]:
        cmd += [flag] if on else []
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{mode} ({framework}) failed:\n{out.stderr[-3000:]}")
    shutil.rmtree(store, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 samples, one repeat")
    parser.add_argument("--framework", default="both", choices=["torch", "flax", "both"])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="compute threads per framework (0 = its default)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--store", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compressors", default="none", choices=["none", "lz4", "zstd"],
                        help="compressors= of the export (default none, the export's default)")
    parser.add_argument("--inplace-relu", action="store_true",
                        help="PyTorch MLP with nn.ReLU(inplace=True): the captured Linear outputs are copied")
    parser.add_argument("--model", default="mlp", choices=["mlp", "bert"],
                        help="the 10-layer MLP, or a small BERT encoder over padded token ids (PyTorch only)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.model == "bert":
        args.framework = "torch"
        if "--n" not in sys.argv:
            args.n = BERT["n"]
    if args.child:
        print(json.dumps(child(args.child, args.framework, args.store, args)))
        return
    if args.quick:
        args.n, args.repeats = (args.n if args.model == "bert" else 2_000), 1
    frameworks = ["torch", "flax"] if args.framework == "both" else [args.framework]
    modes = ["bare", "capture", "export", "export_cold", "setup"]
    units = (BERT["layers"] + 1) * BERT["width"] if args.model == "bert" else (DEPTH - 1) * WIDTH + N_OUT
    layers_captured = BERT["layers"] + 1 if args.model == "bert" else DEPTH
    model_name = (
        f"BERT encoder ({BERT['layers']} layers of width {BERT['width']}, {BERT['tokens']} padded tokens, "
        "mean over real tokens)" if args.model == "bert" else f"MLP {D_IN} -> {DEPTH - 1} x {WIDTH} -> {N_OUT}"
    )
    batch_mib = args.batch * units * 4 / 2**20
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        for framework in frameworks:
            runs = {m: [] for m in modes}
            for _ in range(args.repeats):
                for mode in modes:
                    runs[mode].append(_run_child(mode, framework, Path(tmp), args))
            summary = {}
            for mode, rs in runs.items():
                traced = _run_child(mode, framework, Path(tmp), args, trace=True)
                summary[mode] = {
                    key: statistics.median(r[key] for r in rs) for key in rs[0]
                } | {"all_seconds": [r["seconds"] for r in rs]} | traced
            bare = summary["bare"]["seconds"]
            for mode in ("capture", "export", "export_cold"):
                summary[mode]["samples_per_s"] = args.n / summary[mode]["seconds"]
                summary[mode]["time_vs_bare"] = summary[mode]["seconds"] / bare
            summary["bare"]["samples_per_s"] = args.n / bare
            results[framework] = summary
    report = {
        "benchmark": "export",
        "config": {"n_samples": args.n, "batch_size": args.batch, "layers_captured": layers_captured,
                   "model": model_name, "repeats": args.repeats, "compute_threads": args.threads or "default",
                   "compressors": args.compressors, "inplace_relu": args.inplace_relu,
                   "one_batch_of_activations_mib": batch_mib,
                   "all_activations_mib": args.n * units * 4 / 2**20},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "results": results,
    }
    if not args.quick:  # one entry per thread setting, so both runs live in one file
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        saved = json.loads(out.read_text()) if out.is_file() else {}
        runs = saved.get("runs", {})
        key = (f"threads={args.threads or 'default'}" + ("" if args.compressors == "none" else f",compressors={args.compressors}")
               + (",inplace_relu" if args.inplace_relu else "") + (",bert" if args.model == "bert" else ""))
        runs[key] = report
        out.write_text(json.dumps({"benchmark": "export", "runs": runs}, indent=2) + "\n")
    print(markdown(report))


def markdown(report: dict) -> str:
    cfg = report["config"]
    lines = [
        f"{cfg['n_samples']:,} samples, batch {cfg['batch_size']}, {cfg['layers_captured']} layers of a {cfg['model']}; "
        f"one batch of activations = {cfg['one_batch_of_activations_mib']:.1f} MiB, all = "
        f"{cfg['all_activations_mib']:.0f} MiB. Compute threads: {cfg.get('compute_threads', 'default')}. "
        f"Compressors: {cfg.get('compressors', 'none')}. "
        + ("PyTorch ReLUs in place (captured Linear outputs copied). " if cfg.get("inplace_relu") else "")
        + f"Median of {cfg['repeats']}.",
        "",
        "| framework | run | time (s) | CPU time (s) | samples/s | time / bare | CPU time / bare | peak RSS rise (MiB) | tracemalloc peak (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fw, summary in report["results"].items():
        for mode in ("bare", "capture", "export", "export_cold", "setup"):
            r = summary[mode]
            ratio = f"{r['time_vs_bare']:.2f}" if "time_vs_bare" in r else ("1.00" if mode == "bare" else "")
            sps = f"{r['samples_per_s']:,.0f}" if "samples_per_s" in r else ""
            cpu_ratio = "" if mode == "setup" else f"{r['cpu_seconds'] / summary['bare']['cpu_seconds']:.2f}"
            lines.append(
                f"| {fw} | {mode} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {sps} | {ratio} | {cpu_ratio} | "
                f"{r['peak_rss_rise_mib']:.0f} | {r['tracemalloc_peak_mib']:.1f} |"
            )
    stores = ", ".join(f"{fw} {s['export']['store_mib']:.0f} MiB" for fw, s in report["results"].items()
                       if "store_mib" in s["export"])
    if stores:
        lines += ["", f"Store size on disk: {stores}."]
    m = report["machine"]
    lines += ["", f"{m['cpus']} CPUs, load average {m['load_average_before'][0]:.1f} before / "
              f"{m['load_average_after'][0]:.1f} after."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
