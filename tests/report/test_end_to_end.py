"""Store -> hj.analyze -> results store -> `holejax report` CLI -> HTML, with the real analysis."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import holejax as hj
from holejax.cli import main
from holejax.report import build_report
from holejax.store import ActivationWriter, LayerSpec

from .conftest import HOSTILE, make_acts
from .test_layout import unpack


def write_store(acts, path):
    names = [str(v) for v in acts.data_vars]
    specs = [LayerSpec(name, shape=(acts[name].shape[-1],)) for name in names]
    writer = ActivationWriter.create(
        path, layers=specs, n_samples=acts.sizes["sample"],
        perturbations=[str(p) for p in acts["perturbation"].values],
        labels=np.asarray(acts["label"].values), label_names=list(acts.attrs["label_names"]),
        attrs={"framework": "numpy", "model_class": "Blobs"},
    )
    for pert in acts["perturbation"].values:
        writer.write_batch(str(pert), 0, {name: np.asarray(acts[name].sel(perturbation=pert).values) for name in names})
    return writer.finish()


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    acts = write_store(make_acts(layers={"fc1": 6, HOSTILE: 4}, label_names=["cat", HOSTILE, "dog"]),
                       tmp / "acts.zarr")
    study = hj.analyze(acts, metrics=["euclidean", "cosine"])
    assert study.attrs["source"] == str(tmp / "acts.zarr")  # what `holejax report` opens
    hj.write_results(study, tmp / "results.zarr")
    return tmp, acts, study


def test_cli_writes_the_report_of_an_analysed_store(analysed, capsys):
    tmp, _, _ = analysed
    out = tmp / "report.html"
    assert main(["report", str(tmp / "results.zarr"), "-o", str(out)]) == 0
    assert "report written to" in capsys.readouterr().out
    assert out.stat().st_size > 1_000_000  # BokehJS and the data are inlined


def test_report_views_follow_the_analysis(analysed):
    _, acts, study = analysed
    opened = hj.open_results(analysed[0] / "results.zarr")
    rep = build_report(opened, acts)
    args = rep.update.args
    for pi, pert in enumerate(rep.axes.perturbations):
        for li, layer in enumerate(rep.axes.layers):
            for mi, metric in enumerate(rep.axes.metrics):
                sel = dict(perturbation=pert, layer=layer, metric=metric)
                state = {"p": pi, "l": li, "m": mi, "order": 0, "boundary": 0, "sankey": 0}
                sc = unpack(args["extra"]["sc.combo"], state, args["sizes"])
                assert sc["purity"][0] == pytest.approx(float(study["purity"].sel(sel)), rel=1e-6)
                assert sc["best_n_clusters"][0] == int(study["best_n_clusters"].sel(sel))
                assert sc["best_n_outliers"][0] == int(study["best_n_outliers"].sel(sel))
                hl = unpack(args["tables"]["sum.hl"][0], state, args["sizes"])
                assert hl["best_n_outliers"].tolist() == study["best_n_outliers"].sel(
                    perturbation=pert, metric=metric).values.astype(np.float32).tolist()
                marks = unpack(args["tables"]["blob.points"][1], state, args["sizes"])
                best = np.asarray(study["stage_labels"].sel({**sel, "stage": "best"}).values)
                np.testing.assert_array_equal(marks["cluster"], best)
                nodes = unpack(args["tables"]["sk.nodes"][0], state, args["sizes"])
                assert nodes["size"].sum() == 5 * acts.sizes["sample"]
                deaths = unpack(args["tables"]["dg.deaths"][0], state, args["sizes"])["death"][1:]
                np.testing.assert_allclose(deaths, np.sort(study["deaths"].sel(sel).values), rtol=1e-5)
    assert rep.axes.label_names == ("cat", HOSTILE, "dog")


def test_disconnected_geodesic_clouds_draw_infinite_distances():
    acts = make_acts(layers={"fc": 3}, perturbations=("clean",))
    with warnings.catch_warnings():  # the analysis may warn that the kNN graph is disconnected
        warnings.simplefilter("ignore", RuntimeWarning)
        study = hj.analyze(acts, metrics=["geodesic"], metric_params={"geodesic": {"k": 3}})
    assert np.isinf(study["deaths"].values).any()
    rep = build_report(study, acts)
    src = rep.update.args["sources"]
    assert src["hd.image"].data["image"][0].max() == 255  # infinite blocks
    death = src["dg.deaths"].data["death"]
    assert np.isfinite(death).all() and death.max() == pytest.approx(rep.update.args["extra"]["sc.combo"]["cols"]["cap"][0])
    assert np.isfinite(src["hd.dendro"].data["h"]).all()


def test_cli_report_with_a_topology_store(analysed, capsys):
    tmp, acts, _ = analysed
    topo = hj.topology_summary(tmp / "acts.zarr", weights={"fc1.weight": np.random.default_rng(0).normal(size=(4, 6))})
    hj.write_results(topo, tmp / "topology.zarr", mode="overwrite")
    out = tmp / "topology-report.html"
    assert main(["report", str(tmp / "results.zarr"), "-o", str(out), "--topology", str(tmp / "topology.zarr")]) == 0
    text = out.read_text(encoding="utf-8")
    assert "tp.section" in text and "tp.np" in text and "Landscape (H1)" in text
    plain = tmp / "plain.html"
    assert main(["report", str(tmp / "results.zarr"), "-o", str(plain)]) == 0
    assert "tp.section" not in plain.read_text(encoding="utf-8")
    # the analysis results are not a topology store
    capsys.readouterr()
    assert main(["report", str(tmp / "results.zarr"), "-o", str(tmp / "never.html"),
                 "--topology", str(tmp / "results.zarr")]) == 2
    assert "not a topology results store" in capsys.readouterr().err
    assert not (tmp / "never.html").exists()
