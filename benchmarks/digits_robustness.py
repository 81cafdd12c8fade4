"""Validation on real data: purity per layer of the digits demo models, clean and perturbed.

Usage:
    python benchmarks/digits_robustness.py            # all perturbations, all three demo models
    python benchmarks/digits_robustness.py --quick    # fewer epochs and perturbations

Trains the demo models of ``holejax.demo`` (a PyTorch MLP, a PyTorch CNN and a
Flax MLP on scikit-learn's 8x8 digits), runs ``hj.robustness_study`` on the held-out
test images under HOLE's input noises (gaussian, uniform, salt-and-pepper,
Poisson, speckle; clipped to the [0, 1] pixel range) and compressions
(30 % global and 20 % layer-wise L1 pruning, dynamic INT8, 4- and 2-bit
weights), and reports, per model, the purity at the best threshold of every
layer (euclidean metric) with the model's accuracy, plus the bottleneck
distance of each layer's H0 diagram to the clean one.

Writes ``benchmarks/results/study_digits.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def perturbations(quick: bool) -> list:
    import holejax as hj

    clip = (0.0, 1.0)
    noise = [
        hj.gaussian(sigma=0.3, clip=clip),
        hj.uniform(a=0.5, clip=clip),
        hj.salt_and_pepper(p=0.2, clip=clip),
        hj.poisson(lam=5.0, clip=clip),
        hj.speckle(sigma=0.8, clip=clip),
    ]
    compression = [
        hj.global_l1_prune(0.3),
        hj.layerwise_l1_prune(0.2),
        hj.int8_dynamic(),
        hj.quantize(bits=4),
        hj.quantize(bits=2),
    ]
    if quick:
        return [noise[0], noise[4], compression[0], compression[4]]
    return noise + compression


LAYERS = {
    "torch-mlp": ["act1", "act2", "out"],
    "torch-cnn": ["act1", "act2", "act3", "out"],
    "flax-mlp": ["act1", "act2", "out"],  # the same capture points in both frameworks
}


def render(name: str, entry: dict, metric: str) -> str:
    """Markdown table of one model: purity (ARI) per layer, accuracy, last-layer bottleneck."""
    layers = entry["layers"]
    lines = [
        f"**{name}**: {metric} purity at the best threshold per layer (ARI in brackets), "
        "accuracy, and the bottleneck distance of the last layer's H0 diagram to the clean one.\n",
        "| perturbation | " + " | ".join(layers) + " | accuracy | bottleneck (last layer) |",
        "|---|" + "---:|" * (len(layers) + 2),
    ]
    for p, acc in entry["accuracy"].items():
        pur, ari = entry["purity"][metric][p], entry["ari"][metric][p]
        cells = " | ".join(f"{a:.2f} ({b:.2f})" for a, b in zip(pur, ari))
        lines.append(f"| {p} | {cells} | {acc:.2f} | {entry['bottleneck'][metric][p][-1]:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--metrics", default="euclidean,cosine")
    parser.add_argument("--tables", metavar="JSON", help="only print the tables of a results file")
    args = parser.parse_args()
    if args.tables:
        saved = json.loads(Path(args.tables).read_text())
        for name, entry in saved["models"].items():
            print(render(name, entry, saved["metrics"][0]))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import holejax as hj
    from holejax.demo.run import trained_models

    metrics = args.metrics.split(",")
    t0 = time.perf_counter()
    models, (digits, test) = trained_models(quick=args.quick, seed=0)
    perts = perturbations(args.quick)
    out: dict = {"benchmark": "study_digits", "quick": args.quick, "n_test": int(len(test)),
                 "metrics": metrics, "perturbations": [p.name for p in perts], "models": {}}
    for name, model in models.items():
        inputs = digits.images[test] if name == "torch-cnn" else digits.X[test]
        t = time.perf_counter()
        res = hj.robustness_study(model, inputs, digits.y[test], perturbations=perts, layers=LAYERS[name],
                       metrics=metrics, label_names=digits.label_names, progress=False)
        seconds = time.perf_counter() - t
        layers = [str(v) for v in res.layer.values]
        entry = {
            "seconds": seconds,
            "layers": layers,
            "accuracy": {p: float(v) for p, v in zip(res.perturbation.values, res.accuracy.values)},
        }
        for q in ("purity", "ari", "best_n_clusters", "best_n_outliers", "n_components", "n_outliers",
                  "bottleneck", "wasserstein"):
            entry[q] = {
                metric: {
                    str(p): [float(v) for v in res[q].sel(perturbation=p, metric=metric).values]
                    for p in res.perturbation.values
                }
                for metric in metrics
            }
        out["models"][name] = entry
        print(render(name, entry, metrics[0]), flush=True)
    out["total_seconds"] = time.perf_counter() - t0
    path = Path(__file__).resolve().parent / "results" / ("study_digits_quick.json" if args.quick else "study_digits.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {path} in {out['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
