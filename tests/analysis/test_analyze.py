"""hj.analyze over a whole store: the results Dataset, cross-checked cloud by cloud, and bad input."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

import holejax as hj
from holejax.topology import diagram_distance
from holejax.analysis import group_small_clusters
from holejax.analysis.stages import distinct_deaths
from holejax.filtration import H0Result, clusters_at

N = 40
PERTS = ["clean", "gaussian(sigma=0.1)", "speckle(sigma=0.3)"]
WIDTHS = {"block1": 6, "block2.relu": 6, "head": 3}  # two layers share a width: one batch


def make_acts(seed=0, labels=True, n=N):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2, 3], n // 4)
    data = {}
    for i, (name, w) in enumerate(WIDTHS.items()):
        centres = rng.normal(size=(4, w)) * (2 + i)
        base = centres[y] + rng.normal(size=(n, w))
        X = np.stack([base + 0.4 * k * rng.normal(size=(n, w)) for k in range(len(PERTS))]).astype(np.float32)
        data[name] = (("perturbation", "sample", f"{name}:unit"), X)
    coords = {"perturbation": PERTS, "sample": np.arange(n)}
    if labels:
        coords["label"] = ("sample", y)
    return xr.Dataset(data, coords=coords, attrs={"holejax_store": "activations", "label_names": list("abcd")}), y


@pytest.fixture(scope="module")
def study():
    acts, y = make_acts()
    res = hj.analyze(acts, metrics=["euclidean", "cosine", "geodesic"], metric_params={"geodesic": {"k": 8}})
    return acts, y, res


def test_results_follow_the_contract(study):
    _, _, res = study
    P, L, M, E = 3, 3, 3, N - 1
    assert res.perturbation.values.tolist() == PERTS
    assert res.layer.values.tolist() == list(WIDTHS)
    assert res.metric.values.tolist() == ["euclidean", "cosine", "geodesic"]
    assert res.stage.values.tolist() == ["labels", "first_merge", "best", "intermediate", "one"]
    assert res.edge.values.tolist() == list(range(E))
    assert res.deaths.shape == (P, L, M, E) and res.linkage.shape == (P, L, M, E, 4)
    assert res.mst_edges.shape == (P, L, M, E, 2) and res.mst_edges.dtype == np.int64
    assert res.stage_labels.shape == (P, L, M, 5, N) and res.stage_threshold.shape == (P, L, M, 5)
    for name in ("purity", "inverse_purity", "ari", "nmi", "best_threshold", "n_components", "n_outliers",
                 "bottleneck", "wasserstein"):
        assert res[name].dims == ("perturbation", "layer", "metric"), name
    assert res.label.dims == ("sample",)
    assert res.attrs["holejax_store"] == "results" and res.attrs["label_names"] == list("abcd")
    assert res.attrs["metric_params"]["geodesic"] == {"k": 8}


def test_every_cloud_matches_single_cloud_functions(study):
    acts, y, res = study
    for p in PERTS:
        for layer in WIDTHS:
            X = acts[layer].sel(perturbation=p).values
            for metric in ("euclidean", "cosine"):
                D = np.array(hj.pairwise_distances(X, metric))
                np.fill_diagonal(D, 0)
                ref = hj.h0(D)
                cell = res.sel(perturbation=p, layer=layer, metric=metric)
                np.testing.assert_allclose(cell.deaths.values, ref.deaths, rtol=2e-5, atol=2e-6)
            geo = hj.h0_from_points(X, "geodesic", k=8)
            cell = res.sel(perturbation=p, layer=layer, metric="geodesic")
            np.testing.assert_allclose(cell.deaths.values, geo.deaths, rtol=1e-6)


def test_scores_at_the_best_threshold(study):
    _, y, res = study
    size = res.attrs["min_cluster_size"]
    for cell in (res.isel(perturbation=i, layer=j, metric=k) for i in range(3) for j in range(3) for k in range(3)):
        h = H0Result(cell.deaths.values, cell.mst_edges.values, cell.linkage.values)
        lab = group_small_clusters(clusters_at(h, float(cell.best_threshold)), size)
        np.testing.assert_array_equal(lab, cell.stage_labels.sel(stage="best").values)
        assert int(cell.best_n_clusters) == len(np.unique(lab[lab >= 0])) <= 2 * 4
        assert int(cell.best_n_outliers) == int((lab < 0).sum())
        assert float(cell.purity) == pytest.approx(hj.purity(lab, y))
        assert float(cell.inverse_purity) == pytest.approx(hj.inverse_purity(lab, y))
        assert float(cell.ari) == pytest.approx(adjusted_rand_score(y, lab))
        assert float(cell.nmi) == pytest.approx(normalized_mutual_info_score(y, lab))
        assert float(cell.stage_threshold.sel(stage="best")) == float(cell.best_threshold)
        t, stages = hj.sankey_stages(h, y, min_cluster_size=res.attrs["min_cluster_size"])
        np.testing.assert_array_equal(cell.stage_threshold.values[1:], t[1:])
        np.testing.assert_array_equal(cell.stage_labels.values, stages)


def test_unbounded_rule_over_raw_clusters_is_still_available(study):
    acts, y, _ = study
    res = hj.analyze(acts, layers=["block1"], min_cluster_size=1, clusters_per_class=None)
    for cell in (res.isel(perturbation=i, layer=0, metric=0) for i in range(3)):
        h = H0Result(cell.deaths.values, cell.mst_edges.values, cell.linkage.values)
        values, _ = distinct_deaths(h.deaths)
        aris = [adjusted_rand_score(y, clusters_at(h, v)) for v in values[:-1]]
        lab = clusters_at(h, float(cell.best_threshold))
        assert float(cell.ari) == pytest.approx(max(aris), abs=1e-12)
        assert float(cell.purity) == pytest.approx(hj.purity(lab, y))
        assert int(cell.best_n_outliers) == 0 and int(cell.best_n_clusters) == len(np.unique(lab))


def float64_best(X, y, min_size, max_clusters):
    """The best threshold of float64 scipy single linkage, by brute force over its distinct heights."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    Z = linkage(pdist(np.asarray(X, np.float64)), "single")
    best = None
    for v in np.unique(Z[:-1, 2]):
        lab = group_small_clusters(fcluster(Z, v, "distance"), min_size)
        if max_clusters is not None and lab.max() + 1 > max_clusters:
            continue
        ari = adjusted_rand_score(y, lab)
        if best is None or ari > best[0]:
            best = (ari, hj.purity(lab, y), int(lab.max()) + 1, int((lab < 0).sum()))
    return best


@pytest.mark.parametrize("rule", ["unbounded", "default"])
def test_float32_ties_do_not_split_a_level_on_the_digits_inputs(rule):
    # the 540 held-out digits: two equal float64 distances (1.48297631) come out of the float32
    # kernel as 1.4829762 and 1.48297644; a threshold between them is a partition float64 never has
    from holejax.demo.data import load_digits, split_digits

    digits = load_digits()
    _, test = split_digits(digits)
    X, y = digits.X[test], digits.y[test]
    acts = xr.Dataset({"input": (("perturbation", "sample", "input:unit"), X[None])},
                      coords={"perturbation": ["clean"], "label": ("sample", y)})
    options = {"min_cluster_size": 1, "clusters_per_class": None} if rule == "unbounded" else {}
    res = hj.analyze(acts, **options).isel(perturbation=0, layer=0, metric=0)
    size = res.attrs["min_cluster_size"]
    ari, purity, n_clusters, n_outliers = float64_best(X, y, size, res.attrs["max_clusters"])
    assert float(res.purity) == pytest.approx(purity, abs=1e-12)
    assert float(res.ari) == pytest.approx(ari, abs=1e-9)
    assert (int(res.best_n_clusters), int(res.best_n_outliers)) == (n_clusters, n_outliers)


def test_separated_classes_are_found(study):
    _, _, res = study
    clean = res.sel(perturbation="clean", metric="euclidean")
    assert float(clean.purity.sel(layer="head")) > 0.9
    assert float(clean.ari.sel(layer="head")) > 0.8


def test_diagram_distances_to_clean(study):
    _, _, res = study
    assert np.all(res.bottleneck.sel(perturbation="clean").values == 0)
    for p in PERTS[1:]:
        for layer in WIDTHS:
            for metric in res.metric.values:
                a = hj.h0_diagram(H0Result(res.deaths.sel(perturbation="clean", layer=layer, metric=metric).values, None, None))
                b = hj.h0_diagram(H0Result(res.deaths.sel(perturbation=p, layer=layer, metric=metric).values, None, None))
                cell = res.sel(perturbation=p, layer=layer, metric=metric)
                assert float(cell.bottleneck) == pytest.approx(diagram_distance(a, b), rel=1e-5, abs=1e-7)
                assert float(cell.wasserstein) == pytest.approx(
                    diagram_distance(a, b, kind="wasserstein"), rel=1e-5, abs=1e-7
                )
    # more noise moves the diagram further
    assert (res.wasserstein.sel(perturbation=PERTS[2]) >= res.wasserstein.sel(perturbation=PERTS[1])).mean() > 0.8


def test_results_round_trip_through_zarr(study, tmp_path):
    _, _, res = study
    path = hj.write_results(res, tmp_path / "res.zarr")
    back = hj.open_results(path)
    xr.testing.assert_identical(back.load().drop_attrs(), res.drop_attrs())
    assert back.attrs["criterion"] == "ari"


def test_selection_and_order(study):
    acts, _, _ = study
    res = hj.analyze(acts, metrics="euclidean", layers=["head"], perturbations=[hj.speckle(0.3)])
    assert res.perturbation.values.tolist() == ["clean", "speckle(sigma=0.3)"]  # clean kept as reference
    assert res.layer.values.tolist() == ["head"]


def test_without_labels_uses_the_widest_gap():
    acts, _ = make_acts(labels=False)
    res = hj.analyze(acts, layers=["head"])
    assert np.isnan(res.purity).all() and "label" not in res.coords
    assert res.attrs["criterion"] == "gap"
    assert (res.stage_labels.sel(stage="labels") == -1).all()
    deaths = res.deaths.isel(perturbation=0, layer=0, metric=0).values
    u, _ = distinct_deaths(deaths)
    gaps = np.diff(u)
    assert float(res.best_threshold.isel(perturbation=0, layer=0, metric=0)) == u[np.argmax(gaps[:-1] if len(gaps) > 1 else gaps)]


def test_explicit_labels_and_accuracy():
    acts, y = make_acts(labels=False)
    res = hj.analyze(acts, layers=["head"], labels=y, accuracy={"clean": 1.0, "gaussian(sigma=0.1)": 0.5})
    assert res.accuracy.values.tolist()[:2] == [1.0, 0.5] and np.isnan(res.accuracy.values[2])
    assert float(res.purity.isel(perturbation=0, layer=0, metric=0)) > 0.5


def test_tiny_store():
    acts, y = make_acts(n=4)
    res = hj.analyze(acts, layers=["head"])
    assert res.deaths.shape[-1] == 3 and np.all(np.diff(res.stage_threshold.values[..., 1:], axis=-1) > 0)


# -- bad input ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def acts():
    return make_acts()[0]


def test_unknown_names_suggest_close_matches(acts):
    with pytest.raises(ValueError, match="metric='cosin'.*Did you mean 'cosine'"):
        hj.analyze(acts, metrics=["cosin"])
    with pytest.raises(ValueError, match="layer 'blok1' is not in the store.*Did you mean 'block1'"):
        hj.analyze(acts, layers=["blok1"])
    with pytest.raises(ValueError, match="perturbation 'gaussian\\(sigma=0.2\\)' is not in the store"):
        hj.analyze(acts, perturbations=["gaussian(sigma=0.2)"])
    with pytest.raises(ValueError, match="criterion='best'"):
        hj.analyze(acts, criterion="best")


def test_label_count_must_match(acts):
    with pytest.raises(ValueError, match="labels has 3 entries but there are 40 samples"):
        hj.analyze(acts, labels=[0, 1, 2])


def test_repeated_perturbations_and_oversized_min_cluster_size_are_named(acts):
    twice = acts.assign_coords(perturbation=["clean", "clean", "speckle(sigma=0.3)"])
    with pytest.raises(ValueError, match=r"perturbations \['clean'\] more than once"):
        hj.analyze(twice)
    with pytest.raises(ValueError, match="min_cluster_size=41 exceeds the 40 samples of a cloud"):
        hj.analyze(acts, min_cluster_size=41)
    assert hj.analyze(acts, min_cluster_size=40).purity.notnull().all()  # one cluster of everything is allowed


def test_empty_layer_and_non_finite_activations(acts):
    bad = acts.assign(empty=(("perturbation", "sample", "empty:unit"), np.zeros((3, N, 0), np.float32)))
    with pytest.raises(ValueError, match="layer 'empty' is empty"):
        hj.analyze(bad, layers=["empty"])
    X = acts["head"].values.copy()
    X[1, 7, 0] = np.nan
    with pytest.raises(ValueError, match="layer 'head', perturbation 'gaussian\\(sigma=0.1\\)'.*sample 7"):
        hj.analyze(acts.assign(head=(acts["head"].dims, X)), layers=["head"])


def test_other_bad_arguments(acts):
    with pytest.raises(TypeError, match="activation store"):
        hj.analyze(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="metrics is empty"):
        hj.analyze(acts, metrics=[])
    with pytest.raises(ValueError, match="metric_params has an entry for 'geodesic'"):
        hj.analyze(acts, metric_params={"geodesic": {"k": 5}})
    with pytest.raises(ValueError, match="persistence must be a number in \\(0, 1\\]"):
        hj.analyze(acts, persistence=2.0)
    with pytest.raises(ValueError, match="not an activation store"):
        hj.analyze(acts.assign_attrs(holejax_store="results"))
    with pytest.raises(ValueError, match="at least 2"):
        hj.analyze(acts.isel(sample=[0]))
    with pytest.raises(ValueError, match="accuracy names perturbations"):
        hj.analyze(acts, accuracy={"noise": 0.3})


def test_later_programs_compile_while_the_trees_are_computed(monkeypatch, caplog, tmp_path):
    # n = 44 occurs in no other test: every program of this call is new to the process,
    # and an empty cache folder holds none of them
    from holejax._cache import configure_compile_cache
    from holejax.filtration import dense

    monkeypatch.setattr(dense, "_cores", lambda batch: min(batch, 2))
    acts, _ = make_acts(seed=3, n=44)
    before = configure_compile_cache()
    hj.set_compile_cache(tmp_path / "cache")
    jax.config.update("jax_log_compiles", True)  # for every thread (the context manager is per thread)
    try:
        with caplog.at_level("WARNING"):
            res = hj.analyze(acts, metrics=["euclidean"], wasserstein_order=2.0)
    finally:
        jax.config.update("jax_log_compiles", False)
        hj.set_compile_cache(before)
    compiles = [r for r in caplog.records if r.getMessage().startswith("Compiling jit(")]
    later = [r for r in compiles if "_merge_scan_batched" in r.getMessage() or "_h0_programme" in r.getMessage()]
    assert len(later) == 3  # the merge scan, bottleneck and Wasserstein programmes, each once
    assert all(r.threadName != "MainThread" for r in later)  # built on the builder thread, not after the map
    assert np.isfinite(res.wasserstein.values).all() and np.isfinite(res.purity.values).all()
