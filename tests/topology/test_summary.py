"""topology_summary: ripser / gudhi / scipy references, Betti decay and NP as computed alone, store round trip."""

from __future__ import annotations

import gudhi.representations as gr
import numpy as np
import pytest
import xarray as xr
from scipy.integrate import trapezoid
from scipy.spatial.distance import pdist, squareform

import holejax as hj
from holejax.topology import betti_decay, neural_persistence, topology_summary


def circle(n, rng, r=1.0):
    t = rng.uniform(0, 2 * np.pi, n)
    return r * np.c_[np.cos(t), np.sin(t)] + 0.02 * rng.normal(size=(n, 2))


def store(layers: dict[str, np.ndarray], perturbations=("clean",)) -> xr.Dataset:
    """An in-memory activation store: layers (perturbation, sample, *shape)."""
    data = {}
    for name, arr in layers.items():
        P, n = arr.shape[:2]
        data[name] = (("perturbation", "sample", f"{name}:unit"), arr.reshape(P, n, -1),
                      {"shape": list(arr.shape[2:]), "pooling": "flatten"})
    n = next(iter(layers.values())).shape[1]
    return xr.Dataset(data, coords={"perturbation": list(perturbations), "sample": np.arange(n)},
                      attrs={"holejax_store": "activations", "complete": True})


@pytest.fixture(scope="module")
def cnn_like():
    rng = np.random.default_rng(0)
    n = 60
    acts = store({
        "conv1": rng.random((2, n, 2, 6, 6)),
        "conv2": rng.random((2, n, 3, 4, 4)) ** 3,
        "ring": np.stack([circle(n, rng), circle(n, rng) * 2]),
        "fc": rng.normal(size=(2, n, 5)),
    }, perturbations=("clean", "noise"))
    weights = {"fc.weight": rng.normal(size=(5, 8)), "fc.bias": np.zeros(5), "conv.weight": rng.normal(size=(2, 1, 3, 3)),
               "out": {"kernel": rng.normal(size=(5, 3))}}
    return acts, weights


@pytest.fixture(scope="module")
def summary(cnn_like):
    acts, weights = cnn_like
    return topology_summary(acts, weights=weights, max_samples=40, betti_samples=20, resolution=51, seed=3)


def test_diagram_summaries_and_landscapes_match_ripser_and_gudhi(cnn_like, summary):
    import ripser

    acts, _ = cnn_like
    n = acts.sizes["sample"]
    keep = np.sort(np.random.default_rng(3).choice(n, 40, replace=False))
    assert summary.attrs["samples_used"] == 40
    grid = summary["grid"].values
    for pert in ("clean", "noise"):
        for layer in ("conv2", "ring", "fc"):
            X = np.asarray(acts[layer].sel(perturbation=pert).values, np.float64)[keep]
            Y = X - X.mean(0)
            Y /= pdist(Y).max()
            ref = ripser.ripser(squareform(pdist(Y)), distance_matrix=True, maxdim=1)["dgms"]
            for k in (0, 1):
                fin = ref[k][np.isfinite(ref[k][:, 1])]
                lengths = fin[:, 1] - fin[:, 0]
                sel = dict(perturbation=pert, layer=layer, degree=k)
                # holejax distances are float32: ~1e-5 of the diameter
                assert float(summary.total_persistence.sel(sel)) == pytest.approx(lengths.sum(), abs=2e-3)
                q = lengths[lengths > 0] / lengths.sum()
                assert float(summary.persistent_entropy.sel(sel)) == pytest.approx(-(q * np.log(q)).sum(), abs=2e-3)
                assert int(summary.n_bars.sel(sel)) == len(fin)
                lam = gr.Landscape(num_landscapes=5, resolution=51, sample_range=[0.0, 1.0]).fit_transform([fin])
                lam = lam.reshape(5, 51) / np.sqrt(2)  # gudhi samples in rotated coordinates
                np.testing.assert_allclose(summary.landscape.sel(sel).values, lam, atol=1e-4)
                # the norm of the whole landscape, every tent, on a fine float64 grid
                fine = np.linspace(0.0, 1.0, 20_001)
                tents = np.maximum(np.minimum(fine[:, None] - fin[:, 0], fin[:, 1] - fine[:, None]), 0.0)
                norm = np.sqrt(trapezoid((tents**2).sum(1), fine)) if len(fin) else 0.0
                assert float(summary.landscape_norm.sel(sel)) == pytest.approx(norm, abs=1e-4)
    # the ring's loop makes its H1 the most complex
    h1 = summary.landscape_norm.sel(perturbation="clean", degree=1)
    assert float(h1.sel(layer="ring")) > float(h1.sel(layer="fc"))


def test_betti_decay_over_feature_maps_only(cnn_like, summary):
    acts, _ = cnn_like
    n = acts.sizes["sample"]
    rng = np.random.default_rng(3)
    rng.choice(n, 40, replace=False)  # the diagram subsample is drawn first
    keep = np.sort(rng.choice(n, 20, replace=False))
    assert summary.attrs["betti_layers"] == ["conv1", "conv2"]
    for pert in ("clean", "noise"):
        maps = {name: np.asarray(acts[name].sel(perturbation=pert).values)[keep].reshape((20,) + shape)
                for name, shape in (("conv1", (2, 6, 6)), ("conv2", (3, 4, 4)))}
        ref = betti_decay(maps)
        np.testing.assert_allclose(summary.betti_omega.sel(perturbation=pert, layer=["conv1", "conv2"]), ref.omega)
        assert float(summary.betti_theta.sel(perturbation=pert)) == pytest.approx(ref.theta)
        np.testing.assert_allclose(summary.betti_curve.sel(perturbation=pert, layer="conv2"), ref.curves[1])
        assert np.isnan(summary.betti_omega.sel(perturbation=pert, layer=["ring", "fc"])).all()
    skipped = summary.attrs["skipped"]
    assert "not a feature map" in skipped["betti_decay (layer 'fc')"]
    assert "betti_decay" not in skipped and "neural_persistence" not in skipped


def test_neural_persistence_of_the_weights_and_its_bounds(cnn_like, summary):
    _, weights = cnn_like
    ref = neural_persistence(weights)
    assert summary["weight"].values.tolist() == ["fc.weight", "out.kernel"]  # biases and conv kernels left out
    np.testing.assert_allclose(summary.np_normalized, [lay.normalized for lay in ref.layers])
    np.testing.assert_allclose(summary.np_girrbach, [lay.np for lay in ref.layers])
    np.testing.assert_allclose(summary.np_upper_tight, [lay.upper_tight for lay in ref.layers])
    assert (summary.np_lower <= summary.np_girrbach + 1e-12).all() and (summary.np_girrbach <= summary.np_upper + 1e-12).all()
    assert summary.attrs["np_mean_normalized"] == pytest.approx(ref.mean_normalized)


def test_torch_state_dict_and_flax_params_give_the_same_neural_persistence():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    W1, W2 = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(3, 6)).astype(np.float32)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(W1))
        net[2].weight.copy_(torch.from_numpy(W2))
    flax_params = {"Dense_0": {"kernel": W1.T, "bias": np.zeros(6)}, "Dense_1": {"kernel": W2.T, "bias": np.zeros(3)}}
    acts = {"a": rng.normal(size=(12, 3))}
    a = topology_summary(acts, weights=net.state_dict())
    b = topology_summary(acts, weights=flax_params)
    assert a["weight"].values.tolist() == ["0.weight", "2.weight"]
    for var in ("np_normalized", "np_girrbach", "np_lower", "np_upper_tight"):  # the paper's U depends on orientation
        np.testing.assert_allclose(a[var].values, b[var].values, rtol=1e-6, err_msg=var)


def test_skips_are_recorded_never_raised():
    rng = np.random.default_rng(2)
    acts = store({"dead": np.zeros((1, 20, 4)), "one_map": rng.random((1, 20, 1, 5, 5)), "fc": rng.normal(size=(1, 20, 3))})
    ds = topology_summary(acts)
    assert np.isnan(ds.landscape_norm.sel(layer="dead")).all()
    assert "all 20 samples of X are equal" in ds.attrs["skipped"]["diagrams (layer 'dead', perturbation 'clean')"]
    assert "only one feature-map layer" in ds.attrs["skipped"]["betti_theta"]
    assert np.isnan(ds.betti_theta).all() and np.isfinite(ds.betti_omega.sel(layer="one_map")).all()
    assert "no weights" in ds.attrs["skipped"]["neural_persistence"]
    assert "weight" not in ds.coords
    assert np.isfinite(ds.landscape_norm.sel(layer="fc")).all()
    pooled = acts.copy()
    pooled["one_map"].attrs["pooling"] = "mean"
    assert "layers ['one_map'] were stored pooled" in topology_summary(pooled).attrs["skipped"]["betti_decay"]
    both = store({"map1": rng.random((1, 20, 1, 5, 5)), "map2": rng.random((1, 20, 2, 3, 3)), "fc": rng.normal(size=(1, 20, 3))})
    both["map2"].attrs["pooling"] = "max"
    assert "pooling 'max'" in topology_summary(both).attrs["skipped"]["betti_decay (layer 'map2')"]


def test_results_store_round_trip_and_subsets(summary, cnn_like, tmp_path):
    path = hj.write_results(summary, tmp_path / "topology.zarr")
    back = hj.open_results(path).load()
    xr.testing.assert_allclose(back, summary)
    assert back.attrs["content"] == "topology"
    assert back.attrs["skipped"] == summary.attrs["skipped"]
    acts, _ = cnn_like
    sub = topology_summary(acts, layers=["ring", "conv1"], perturbations=["noise"], max_samples=30)
    assert sub["layer"].values.tolist() == ["ring", "conv1"] and sub["perturbation"].values.tolist() == ["noise"]
    assert sub.landscape.shape == (1, 2, 2, 5, 101)


def test_store_path_and_mapping_inputs(tmp_path):
    from holejax.store import ActivationWriter, LayerSpec

    rng = np.random.default_rng(5)
    X = circle(30, rng)
    writer = ActivationWriter.create(tmp_path / "acts.zarr", layers=[LayerSpec("ring", shape=(2,))], n_samples=30)
    writer.write_batch("clean", 0, {"ring": X})
    writer.finish()
    from_path = topology_summary(tmp_path / "acts.zarr")
    from_mapping = topology_summary({"ring": X})
    assert from_path.attrs["source"] == str(tmp_path / "acts.zarr")
    np.testing.assert_allclose(from_path.landscape_norm, from_mapping.landscape_norm, rtol=1e-5)
    h1 = hj.topology.activation_diagrams(X)[1]
    assert int(from_mapping.n_bars.sel(perturbation="clean", layer="ring", degree=1)) == len(h1) >= 1


def test_bad_inputs_are_rejected_before_any_work(cnn_like):
    acts, _ = cnn_like
    with pytest.raises(TypeError, match="acts must be an activation store.*got list"):
        topology_summary([1, 2])
    with pytest.raises(TypeError, match="layers must be a list of names; got the str 'fc'"):
        topology_summary(acts, layers="fc")
    with pytest.raises(ValueError, match="layers='fc9' is not supported.*Did you mean 'fc'"):
        topology_summary(acts, layers=["fc9"])
    with pytest.raises(ValueError, match="perturbations='nois' is not supported"):
        topology_summary(acts, perturbations=["nois"])
    with pytest.raises(ValueError, match="max_samples must be an integer >= 4; got 2"):
        topology_summary(acts, max_samples=2)
    with pytest.raises(ValueError, match="betti_samples must be an integer >= 1; got 0"):
        topology_summary(acts, betti_samples=0)
    with pytest.raises(ValueError, match="thresholds must be a non-empty finite 1-D array"):
        topology_summary(acts, thresholds=[[0.5]])
    with pytest.raises(ValueError, match="weights hold no 2-D matrices"):
        topology_summary(acts, weights={"bias": np.zeros(3)})
    with pytest.raises(ValueError, match="acts holds 3 sample"):
        topology_summary({"a": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="acts is a holejax 'results' store"):
        topology_summary(xr.Dataset(attrs={"holejax_store": "results"}))
    with pytest.raises(ValueError, match=r"acts\['b'\] holds 4 samples"):
        topology_summary({"a": np.zeros((5, 2)), "b": np.zeros((4, 2))})
