"""The assembled report: the browser-side tables hold exactly what the figure functions draw."""

from __future__ import annotations

import re

import numpy as np
import pytest

from holejax.report import build_report, write_report
from holejax.report._study import distance_matrices, layer_cloud
from holejax.report.blob import blob_columns, blob_data, pca_2d
from holejax.report.diagrams import death_display, diagram_columns
from holejax.report.heatmap_dendrogram import heatmap_dendrogram, heatmap_dendrogram_columns
from holejax.report.sankey import sankey_columns, sankey_layout

from .conftest import HOSTILE, HOSTILE_SCRIPT, make_acts, make_study


def unpack(spec, state, sizes):
    """What the browser's read() returns for one packed table (same arithmetic as SWITCH_JS)."""
    k = 0
    for d in spec["dims"]:
        k = k * sizes[d] + state[d]
    a, b = spec["off"][k], spec["off"][k + 1]
    out = {c: flat[a:b] for c, flat in spec["cols"].items()}
    for c, r in spec["ragged"].items():
        out[c] = [r["values"][r["off"][j]:r["off"][j + 1]] for j in range(a, b)]
    for c, objs in spec["objects"].items():
        out[c] = objs[k]
    return out


def view(report, name, state):
    args = report.update.args
    data = {}
    for spec in args["tables"][name]:
        data.update(unpack(spec, state, args["sizes"]))
    return data


@pytest.fixture(scope="module")
def report(case):
    study, acts = case
    return build_report(study, acts, heatmap_size=20)


def test_every_view_is_stored_and_matches_the_figure_functions(case, report):
    study, acts = case
    state = {"p": 1, "l": 1, "m": 1, "order": 1, "boundary": 1, "sankey": 1}
    pert, layer, metric = "gaussian(sigma=0.8)", "fc2.relu", "cosine"
    sel = dict(perturbation=pert, layer=layer, metric=metric)
    samples = np.asarray(study["sample"].values)
    y = np.asarray(study["label"].values)
    S = np.asarray(study["stage_labels"].sel(sel).values)
    clusters = S[2]
    X = layer_cloud(acts, layer, pert, samples)
    D = distance_matrices(X[None], metric)[0]

    hd = heatmap_dendrogram(D, np.asarray(study["linkage"].sel(sel).values), y, clusters, order="dendrogram", size=20)
    expected = heatmap_dendrogram_columns(hd)
    got = view(report, "hd.image", state)
    np.testing.assert_array_equal(got["image"][0], hd.image)
    for name in ("hd.dendro", "hd.strip"):
        got = view(report, name, state)
        for col, val in expected[name].items():
            np.testing.assert_allclose(got[col], val, rtol=1e-6, err_msg=f"{name}.{col}")

    lay = sankey_layout(S, y, compact=True)
    for name, cols in sankey_columns(lay).items():
        got = view(report, name, state)
        for col, val in cols.items():
            np.testing.assert_allclose(got[col], val, rtol=1e-6, err_msg=f"{name}.{col}")

    xy = pca_2d(X, layer_cloud(acts, layer, "clean", samples))
    cols = blob_columns(blob_data(xy, y, clusters), "alpha")
    got = view(report, "blob.points", state)
    np.testing.assert_allclose(got["x"], cols["blob.xy"]["x"], rtol=1e-5)
    np.testing.assert_array_equal(got["cluster"], cols["blob.marks"]["cluster"])
    got = view(report, "blob.hulls", state)
    assert got["cluster"].tolist() == cols["blob.hulls"]["cluster"].tolist()
    for a, b in zip(got["xs"], cols["blob.hulls"]["xs"]):
        np.testing.assert_allclose(a, b)

    dd = death_display(np.asarray(study["deaths"].sel(sel).values))
    np.testing.assert_allclose(view(report, "dg.deaths", state)["death"], diagram_columns(dd)["dg.deaths"]["death"])
    sc = unpack(report.update.args["extra"]["sc.combo"], state, report.update.args["sizes"])
    assert sc["purity"][0] == pytest.approx(float(study["purity"].sel(sel)), rel=1e-6)
    assert sc["th2"][0] == pytest.approx(float(study["stage_threshold"].sel({**sel, "stage": "best"})), rel=1e-6)


def test_first_view_is_what_the_page_shows_before_any_switch(report):
    state = dict.fromkeys(("p", "l", "m", "order", "boundary", "sankey"), 0)
    args = report.update.args
    for name, source in args["sources"].items():
        stored = view(report, name, state)
        assert set(stored) <= set(source.data), name
        for col, val in stored.items():
            if col in ("image", "xs", "ys"):
                for a, b in zip(val, source.data[col]):
                    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6)
            else:
                np.testing.assert_allclose(np.asarray(val, float), np.asarray(source.data[col], float),
                                           rtol=1e-6, err_msg=f"{name}.{col}")
    # every table keeps one entry per key over its dims
    for name, specs in args["tables"].items():
        for spec in specs:
            n_keys = int(np.prod([args["sizes"][d] for d in spec["dims"]]))
            assert len(spec["off"]) == n_keys + 1, name
    assert report.heatmap_size == 20


def test_display_downsampling_for_large_clouds():
    acts = make_acts(n_per_class=40, n_classes=3, layers={"fc": 5}, perturbations=("clean",))
    study = make_study(acts, metrics=("euclidean",), max_candidates=8)
    rep = build_report(study, acts, max_points=50, max_heatmap_samples=60, heatmap_size=16)
    src = rep.update.args["sources"]
    assert len(src["blob.points"].data["x"]) == 50
    assert len(src["dg.deaths"].data["death"]) <= 51
    assert src["hd.image"].data["image"][0].shape == (16, 16)
    assert src["hd.strip"].data["count"].sum() == 60
    # automatic resolution fits the byte budget: 1 view x 2 orders x s^2 <= budget
    rep = build_report(study, acts, heatmap_budget=2 * 40 * 40)
    assert rep.heatmap_size == 40


def test_bad_inputs_are_rejected_before_any_work(case):
    study, acts = case
    with pytest.raises(TypeError, match="study must be an xarray.Dataset; got dict"):
        build_report({}, acts)
    with pytest.raises(ValueError, match="study has no variable 'deaths'"):
        build_report(study.drop_vars("deaths"), acts)
    with pytest.raises(ValueError, match=r"study\['deaths'\] has dims"):
        build_report(study.transpose("layer", ...), acts)
    with pytest.raises(ValueError, match="layers='fc9' is not supported.*Did you mean 'fc1'"):
        build_report(study, acts, layers=["fc9"])
    with pytest.raises(TypeError, match="layers must be a list of names; got the str 'fc1'"):
        build_report(study, acts, layers="fc1")
    with pytest.raises(ValueError, match="acts has no layer 'fc1'"):
        build_report(study, acts.drop_vars("fc1"))
    with pytest.raises(ValueError, match="acts has no perturbation"):
        build_report(study, acts.sel(perturbation=["clean"]))
    with pytest.raises(ValueError, match="heatmap_size must be an integer >= 2 or None; got 1"):
        build_report(study, acts, heatmap_size=1)
    with pytest.raises(ValueError, match="blob_stage='worst' is not supported"):
        build_report(study, acts, blob_stage="worst")
    with pytest.raises(TypeError, match="title must be a str or None; got int"):
        build_report(study, acts, title=3)


def test_write_report_is_one_offline_file(case, tmp_path):
    study, acts = case
    path = write_report(study, acts, tmp_path / "r.html", title="digits", layers=["fc1"], metrics=["euclidean"])
    assert path == tmp_path / "r.html" and not (tmp_path / "r.html.partial").exists()
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?(https?:)?//", text)  # no CDN or remote asset
    assert "<title>digits</title>" in text
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(study, acts, tmp_path / "missing" / "r.html")


def test_hostile_names_reach_the_models_only_as_text(hostile_case):
    study, acts = hostile_case
    rep = build_report(study, acts, title=HOSTILE)
    header = next(m for m in rep.layout.references() if m.name == "header")
    assert "<img" not in header.text and "&lt;img src=x onerror=alert(1)&gt;" in header.text
    assert "</script>" not in header.text
    layer_select = next(m for m in rep.layout.references() if m.name == "sel.layer")
    assert [label for _, label in layer_select.options] == [HOSTILE, "fc2"]
    assert rep.axes.label_names[:2] == (HOSTILE, HOSTILE_SCRIPT)


def test_minimal_and_unlabelled_studies(case):
    study, acts = case
    minimal = study[["deaths", "linkage", "stage_threshold", "stage_labels"]]
    rep = build_report(minimal, acts, metrics=["euclidean"])
    assert "sum.hl" not in rep.update.args["sources"]
    assert not [m for m in rep.layout.references() if (m.name or "").startswith("sum.")]
    sc = rep.update.args["extra"]["sc.combo"]["cols"]
    assert np.isnan(sc["purity"]).all() and np.isnan(sc["accuracy"]).all()
    unlabelled = study.drop_vars("label")
    unlabelled.attrs = {}
    rep = build_report(unlabelled, acts.drop_vars("label"), metrics=["euclidean"])
    assert rep.axes.label_names == ("(no labels)",) and not rep.axes.has_labels
    assert set(rep.update.args["sources"]["blob.points"].data["label_name"]) == {"(no labels)"}
