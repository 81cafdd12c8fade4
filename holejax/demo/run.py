"""``holejax demo``: train, export, analyse and report on the digits data.

Trains a small MLP and CNN in PyTorch and the same MLP in Flax on
scikit-learn's digits, exports every layer's activations on the held-out
digits for clean and noisy inputs, analyses them, computes the topology
summary (landscapes, Betti decay of the CNN's feature maps, neural
persistence of the trained weights) and writes one HTML report per model
plus the stores, all under one output folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import holejax as hj
from holejax._cache import configure_compile_cache
from holejax.demo.data import load_digits, split_digits
from holejax.demo.flax_models import make_flax_mlp, train_flax
from holejax.demo.torch_models import make_cnn, make_mlp, train_torch
from holejax.store import layer_names

__all__ = ["DEMO_METRICS", "demo_perturbations", "model_weights", "run_demo"]

DEMO_METRICS = ("euclidean", "cosine")


def demo_perturbations() -> list:
    """Clean inputs, two levels of gaussian input noise and 50% global L1 pruning."""
    return [hj.clean(), hj.gaussian(sigma=0.1), hj.gaussian(sigma=0.3), hj.global_l1_prune(amount=0.5)]


def trained_models(quick: bool = False, seed: int = 0) -> tuple[dict, "object"]:
    """Train the demo models; returns ``({name: model}, (digits, test index))``.

    The Flax model is returned as ``(module, variables)``.
    """
    digits = load_digits()
    train, test = split_digits(digits, seed=seed)
    epochs = 5 if quick else 25
    Xtr, ytr = digits.X[train], digits.y[train]
    models = {
        "torch-mlp": train_torch(make_mlp(seed), Xtr, ytr, epochs=epochs, seed=seed),
        "torch-cnn": train_torch(make_cnn(seed), digits.images[train], ytr, epochs=epochs, seed=seed),
    }
    module = make_flax_mlp()
    models["flax-mlp"] = (module, train_flax(module, Xtr, ytr, epochs=epochs, seed=seed))
    return models, (digits, test)


def model_weights(model) -> dict:
    """The parameter mapping of a demo model: a PyTorch ``state_dict()`` or Flax ``params``."""
    if isinstance(model, tuple):  # Flax: (module, variables)
        return model[1]["params"]
    return model.state_dict()


def run_demo(output: str | Path = "holejax-demo", quick: bool = False, seed: int = 0) -> dict[str, Path]:
    """Run the whole demo; returns ``{model name: report path}``."""
    configure_compile_cache()  # before the Flax training, whose programs are cached too

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print("holejax demo: training a PyTorch MLP, a PyTorch CNN and a Flax MLP on digits ...", flush=True)
    models, (digits, test) = trained_models(quick=quick, seed=seed)
    if quick:
        test = test[:120]
    reports = {}
    for name, model in models.items():
        inputs = digits.images[test] if name == "torch-cnn" else digits.X[test]
        store = out / f"{name}.zarr"
        print(f"\n[{name}] exporting activations to {store} and analysing them", flush=True)
        study = hj.robustness_study(
            model, inputs, labels=digits.y[test], label_names=digits.label_names,
            perturbations=demo_perturbations(), metrics=list(DEMO_METRICS), store=store,
            results=out / f"{name}-results.zarr", batch_size=128, mode="overwrite", seed=seed,
        )
        acts = hj.open_activations(store)
        print(f"[{name}] {len(acts['perturbation'])} perturbations x {len(layer_names(acts))} layers x "
              f"{len(DEMO_METRICS)} metrics; accuracy: "
              + ", ".join(f"{p} {a:.3f}" for p, a in zip(study["perturbation"].values, study["accuracy"].values)),
              flush=True)
        t1 = time.perf_counter()
        topology = hj.topology_summary(acts, weights=model_weights(model), max_samples=200,
                                       betti_samples=32, seed=seed)
        hj.write_results(topology, out / f"{name}-topology.zarr", mode="overwrite")
        omega = "" if not topology.attrs["betti_layers"] else (
            "; Betti decay theta " + ", ".join(f"{p} {t:.2f}" for p, t in
                                               zip(topology["perturbation"].values, topology["betti_theta"].values)))
        print(f"[{name}] topology summary in {time.perf_counter() - t1:.1f} s: network neural persistence "
              f"{topology.attrs['np_mean_normalized']:.3f}{omega}", flush=True)
        reports[name] = hj.write_report(study, acts, out / f"{name}-report.html", title=f"holejax demo: {name}",
                                        topology=topology)
    print(f"\nholejax demo finished in {time.perf_counter() - t0:.0f} s. Reports:")
    for name, path in reports.items():
        print(f"  {name}: {Path(path).resolve()}")
    return reports
