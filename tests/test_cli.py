"""The command line: ``holejax demo``, ``holejax analyze`` and ``holejax report``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import holejax as hj
from holejax.store import layer_names


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "holejax.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=900
    )


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = run_cli("demo", "--quick", "-o", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_demo_writes_stores_and_reports(demo_output):
    out, proc = demo_output
    for name in ("torch-mlp", "torch-cnn", "flax-mlp"):
        report = out / f"{name}-report.html"
        assert report.stat().st_size > 100_000
        assert str(report.resolve()) in proc.stdout
        acts = hj.open_activations(out / f"{name}.zarr")
        assert list(acts["perturbation"].values)[0] == "clean"
        assert len(acts["perturbation"]) == 4
        results = hj.open_results(out / f"{name}-results.zarr")
        assert set(results["metric"].values) == {"euclidean", "cosine"}
        purity = results["purity"].values
        assert np.all((purity > 0) & (purity <= 1))
        # the trained models classify clean digits well
        assert float(results["accuracy"].sel(perturbation="clean")) > 0.7
        # the topology summary is stored and drawn in the report
        topology = hj.open_results(out / f"{name}-topology.zarr")
        assert topology.attrs["content"] == "topology"
        assert np.all(np.isfinite(topology["np_girrbach"].values)) and np.all(topology["np_girrbach"].values > 0)
        assert "Landscape norm" in report.read_text(encoding="utf-8")
    # the CNN's feature maps give a Betti-decay rate per perturbation
    cnn_topology = hj.open_results(out / "torch-cnn-topology.zarr")
    assert np.all(np.isfinite(cnn_topology["betti_theta"].values))
    # progress bars went to stderr
    assert "samples/s" in proc.stderr


@pytest.mark.slow
def test_flax_and_torch_mlp_capture_the_same_layer_paths(demo_output):
    out, _ = demo_output
    torch_layers = layer_names(hj.open_activations(out / "torch-mlp.zarr"))
    flax_layers = layer_names(hj.open_activations(out / "flax-mlp.zarr"))
    assert set(torch_layers) >= {"act1", "act2"} and set(flax_layers) >= {"act1", "act2"}
    # both stores list their layers in the order the forward pass ran them
    assert torch_layers == flax_layers == ["fc1", "act1", "fc2", "act2", "out"]


@pytest.mark.slow
def test_analyze_and_report_commands(demo_output, tmp_path):
    out, _ = demo_output
    results = tmp_path / "results.zarr"
    proc = run_cli("analyze", str(out / "torch-mlp.zarr"), "-o", str(results), "--metric", "angular")
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = hj.open_results(results)
    assert list(study["metric"].values) == ["angular"]
    proc = run_cli("report", str(results), "-o", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (tmp_path / "r.html").read_text()
    assert "<script" in html and "cdn.bokeh.org" not in html


def test_report_without_activation_store_is_a_clear_error(tmp_path):
    import xarray as xr

    hj.write_results(xr.Dataset({"purity": ("layer", [1.0])}, coords={"layer": ["a"]}), tmp_path / "r.zarr")
    proc = run_cli("report", str(tmp_path / "r.zarr"), "-o", str(tmp_path / "r.html"))
    assert proc.returncode != 0
    assert "pass --activations STORE" in proc.stderr


def test_unknown_command_is_rejected():
    proc = run_cli("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
