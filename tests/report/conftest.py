"""Small activation stores and results Datasets for the report tests.

The results follow the schema of CONTRACTS.md and are computed here from
holejax distances with scipy (single linkage = H0 merge tree) and
scikit-learn, so the report tests do not depend on the analysis code.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from holejax.metrics import pairwise_distances

STAGES = ["labels", "first_merge", "best", "intermediate", "one"]
HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = "</script><script>alert(2)</script>"


def make_acts(
    *,
    n_per_class: int = 15,
    n_classes: int = 3,
    layers: dict[str, int] | None = None,
    perturbations: tuple[str, ...] = ("clean", "gaussian(sigma=0.8)"),
    label_names: list[str] | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Gaussian blobs per class; deeper layers separate the classes more; noise per perturbation."""
    layers = {"fc1": 6, "fc2.relu": 4} if layers is None else layers
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    n = y.size
    data = {}
    for depth, (name, units) in enumerate(layers.items()):
        centers = rng.normal(size=(n_classes, units)) * (2.0 + 2.0 * depth)
        base = centers[y] + rng.normal(size=(n, units))
        cube = np.stack([base + (rng.normal(size=base.shape) * (0.8 * k)) for k in range(len(perturbations))])
        data[name] = (("perturbation", "sample", f"{name}:unit"), cube.astype(np.float32),
                      {"layer": name, "shape": [units], "pooling": "flatten"})
    names = label_names or [f"class {c}" for c in range(n_classes)]
    return xr.Dataset(
        data,
        coords={"perturbation": list(perturbations), "sample": np.arange(n), "label": ("sample", y)},
        attrs={"holejax_store": "activations", "complete": True, "label_names": names,
               "framework": "numpy", "model_class": "Blobs"},
    )


def _renumber(raw: np.ndarray, min_size: int) -> np.ndarray:
    """Ids by smallest member, clusters below min_size -> -1 (the contract's convention)."""
    out = np.full(raw.shape, -1, dtype=np.int64)
    next_id = 0
    for i in range(raw.size):
        if out[i] != -1 or (raw == raw[i]).sum() < min_size:
            continue
        members = raw == raw[i]
        if out[members].max() == -1:
            out[members] = next_id
            next_id += 1
    return out


def _stages(Z: np.ndarray, y: np.ndarray, min_size: int, max_candidates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    d = Z[:, 2]
    cand = np.unique(d)
    if max_candidates is not None and len(cand) > max_candidates:
        cand = cand[np.linspace(0, len(cand) - 1, max_candidates).round().astype(int)]
    scores = [adjusted_rand_score(y, fcluster(Z, t, "distance")) for t in cand]
    best = float(cand[int(np.argmax(scores))])
    one = float(d.max())
    first = float(d.min())
    if best >= one:
        best = float(cand[-2]) if len(cand) > 1 else one
    mid = 0.5 * (best + one)
    th = np.array([0.0, first, best, mid, one])
    labs = [y.astype(np.int64)] + [_renumber(fcluster(Z, t, "distance"), min_size) for t in th[1:]]
    return th, np.stack(labs)


def make_study(
    acts: xr.Dataset,
    metrics: tuple[str, ...] = ("euclidean", "cosine"),
    min_size: int = 3,
    max_candidates: int | None = None,
) -> xr.Dataset:
    """A results Dataset with the analysis schema, from scipy single linkage."""
    perts = [str(p) for p in acts["perturbation"].values]
    layers = [str(v) for v in acts.data_vars]
    y = np.asarray(acts["label"].values)
    n = y.size
    P, L, M, E = len(perts), len(layers), len(metrics), n - 1
    deaths = np.zeros((P, L, M, E))
    link = np.zeros((P, L, M, E, 4))
    mst = np.zeros((P, L, M, E, 2), dtype=np.int64)
    th = np.zeros((P, L, M, 5))
    stage_labels = np.zeros((P, L, M, 5, n), dtype=np.int64)
    q = {k: np.zeros((P, L, M)) for k in ("purity", "inverse_purity", "ari", "nmi", "best_threshold",
                                           "n_components", "n_outliers", "bottleneck", "wasserstein")}
    for pi, p in enumerate(perts):
        for li, layer in enumerate(layers):
            X = np.asarray(acts[layer].sel(perturbation=p).values, dtype=np.float64)
            for mi, metric in enumerate(metrics):
                D = np.asarray(pairwise_distances(X.astype(np.float32), metric), dtype=np.float64)
                D = 0.5 * (D + D.T)
                np.fill_diagonal(D, 0.0)
                Z = linkage(squareform(D, checks=False), "single")
                deaths[pi, li, mi] = Z[:, 2]
                link[pi, li, mi] = Z
                mst[pi, li, mi] = np.sort(Z[:, :2], axis=1).astype(np.int64) % n
                th[pi, li, mi], stage_labels[pi, li, mi] = _stages(Z, y, min_size, max_candidates)
                best = stage_labels[pi, li, mi, 2]
                kept = best >= 0
                purity = sum(np.bincount(y[best == c]).max() for c in np.unique(best[kept])) / n
                q["purity"][pi, li, mi] = purity
                q["inverse_purity"][pi, li, mi] = purity
                q["ari"][pi, li, mi] = adjusted_rand_score(y, best)
                q["nmi"][pi, li, mi] = normalized_mutual_info_score(y, best)
                q["best_threshold"][pi, li, mi] = th[pi, li, mi, 2]
                q["n_components"][pi, li, mi] = len(np.unique(best[kept]))
                q["n_outliers"][pi, li, mi] = int((~kept).sum())
    for pi in range(P):
        diff = np.sort(deaths[pi], axis=-1) - np.sort(deaths[0], axis=-1)
        q["bottleneck"][pi] = np.abs(diff).max(axis=-1)
        q["wasserstein"][pi] = np.abs(diff).sum(axis=-1)
    dims3 = ("perturbation", "layer", "metric")
    data = {
        "deaths": (dims3 + ("edge",), deaths),
        "linkage": (dims3 + ("edge", "linkage_col"), link),
        "mst_edges": (dims3 + ("edge", "end"), mst),
        "stage_threshold": (dims3 + ("stage",), th),
        "stage_labels": (dims3 + ("stage", "sample"), stage_labels),
        "accuracy": (("perturbation",), np.linspace(0.95, 0.7, P)),
        **{k: (dims3, v) for k, v in q.items()},
    }
    return xr.Dataset(
        data,
        coords={"perturbation": perts, "layer": layers, "metric": list(metrics), "sample": np.arange(n),
                "label": ("sample", y), "stage": STAGES, "edge": np.arange(E)},
        attrs={"holejax_store": "results", "label_names": list(acts.attrs["label_names"]),
               "source_store": "memory"},
    )


@pytest.fixture(scope="session")
def case() -> tuple[xr.Dataset, xr.Dataset]:
    """(study, acts): 45 samples, 3 classes, 2 layers, 2 perturbations, 2 metrics."""
    acts = make_acts()
    return make_study(acts), acts


@pytest.fixture(scope="session")
def hostile_case() -> tuple[xr.Dataset, xr.Dataset]:
    """Layer, perturbation and class names that are HTML/script injections."""
    acts = make_acts(
        layers={HOSTILE: 5, "fc2": 4},
        perturbations=("clean", HOSTILE_SCRIPT),
        label_names=[HOSTILE, HOSTILE_SCRIPT, "plain & <b>bold</b>"],
        n_per_class=10,
    )
    return make_study(acts, metrics=("euclidean",)), acts


def make_topology(
    layers: tuple[str, ...] = ("conv1", "conv2", "fc"),
    perturbations: tuple[str, ...] = ("clean", "gaussian(sigma=0.8)"),
    weights: tuple[str, ...] | None = ("fc.weight", "out.weight"),
    feature_maps: int = 2,
    seed: int = 0,
) -> xr.Dataset:
    """A topology Dataset with the schema of hj.topology_summary and random values (the first
    ``feature_maps`` layers carry Betti decay)."""
    rng = np.random.default_rng(seed)
    P, L, K, G, T = len(perturbations), len(layers), 3, 21, 7
    grid = np.linspace(0, 1, G)
    mid, half = rng.random((P, L, 2, K, 1)) * 0.6 + 0.2, rng.random((P, L, 2, K, 1)) * 0.2
    lam = -np.sort(-np.maximum(half - np.abs(grid - mid), 0.0), axis=3)
    norms = np.sqrt((lam**2).sum(axis=(3, 4)) * (grid[1] - grid[0]))
    omega = np.full((P, L), np.nan)
    omega[:, :feature_maps] = rng.random((P, feature_maps)) * 5 + 1
    fit = omega + 0.1
    curves = np.full((P, L, 3, T), np.nan)
    curves[:, :feature_maps] = rng.random((P, feature_maps, 3, T)) * 4
    theta = np.where(np.isfinite(omega).sum(axis=1) >= 2, rng.normal(size=P), np.nan)
    pl, pld = ("perturbation", "layer"), ("perturbation", "layer", "degree")
    data = {
        "total_persistence": (pld, rng.random((P, L, 2))), "persistent_entropy": (pld, rng.random((P, L, 2))),
        "n_bars": (pld, rng.integers(1, 50, (P, L, 2))), "landscape_norm": (pld, norms),
        "landscape": (pld + ("k", "grid"), lam), "betti_omega": (pl, omega), "betti_omega_fit": (pl, fit),
        "betti_curve": (pl + ("betti_dim", "threshold"), curves), "betti_theta": (("perturbation",), theta),
    }
    coords = {"perturbation": list(perturbations), "layer": list(layers), "degree": [0, 1], "k": np.arange(1, K + 1),
              "grid": grid, "threshold": np.linspace(0.05, 0.95, T), "betti_dim": [0, 1, 2]}
    attrs = {"content": "topology", "samples_used": 40, "betti_samples": 20,
             "skipped": {f"betti_decay (layer {name!r})": "not a feature map" for name in layers[feature_maps:]}}
    if weights:
        W = len(weights)
        lower = rng.random(W) + 1
        npg = lower + rng.random(W)
        data.update(np=(("weight",), npg - 0.5), np_normalized=(("weight",), rng.random(W)),
                    np_girrbach=(("weight",), npg), np_lower=(("weight",), lower),
                    np_upper=(("weight",), npg + rng.random(W)), weight_variance=(("weight",), rng.random(W)))
        coords["weight"] = list(weights)
        attrs["np_mean_normalized"] = 0.5
    return xr.Dataset(data, coords=coords, attrs=attrs)
