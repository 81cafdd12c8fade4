"""The topology section: figures hold the Dataset's values, the browser arrays hold every view."""

from __future__ import annotations

import re

import numpy as np
import pytest
from bokeh.models import Div, Select

import holejax as hj
from holejax.report import build_report
from holejax.report.html import report_html
from holejax.report.topology_views import (
    betti_columns,
    betti_curve_figure,
    betti_decay_figure,
    check_topology,
    landscape_columns,
    landscape_norm_figure,
    neural_persistence_figure,
    topology_section,
)

from .conftest import HOSTILE, HOSTILE_SCRIPT, make_acts, make_study, make_topology


def named(layout, name):
    found = [m for m in layout.references() if m.name == name]
    assert len(found) == 1, (name, len(found))
    return found[0]


def js_landscape(update, p, l, d):
    """What TOPOLOGY_JS slices out of the flat landscape array for one view."""
    a, S = update.args["lam"], update.args["shape"]
    return [a[(((p * S["L"] + l) * 2 + d) * S["K"] + k) * S["G"]:][: S["G"]] for k in range(S["K"])]


def js_betti(update, p, l):
    a, S = update.args["betti"], update.args["shape"]
    return [a[((p * S["L"] + l) * 3 + j) * S["T"]:][: S["T"]] for j in range(3)]


def test_every_view_of_the_section_is_in_the_page_arrays():
    topo = make_topology()
    section, update = topology_section(topo)
    lam = topo.landscape.values
    curves = topo.betti_curve.values
    for p in range(2):
        for l in range(3):
            for d in range(2):
                cols = landscape_columns(lam, topo.grid.values, p, l, d)
                for k, got in enumerate(js_landscape(update, p, l, d)):
                    np.testing.assert_allclose(got, lam[p, l, d, k], rtol=1e-6)
                    np.testing.assert_allclose(cols[f"k{k + 1}"], lam[p, l, d, k], rtol=1e-6)
            for j, got in enumerate(js_betti(update, p, l)):
                np.testing.assert_allclose(got, curves[p, l, j], rtol=1e-6)
    assert update.args["lam"].dtype == np.float32 and update.args["betti"].dtype == np.float32
    # the first view drawn is (layer 0, perturbation 0, H1) for landscapes
    src = named(section, "tp.landscape.data")
    np.testing.assert_allclose(src.data["k1"], lam[0, 0, 1, 0], rtol=1e-6)
    assert named(section, "tp.landscape").title.text == "Landscape (H1): conv1 | clean"
    assert named(section, "tp.sel.degree").active == 1
    np.testing.assert_allclose(named(section, "tp.betti.data").data["b2"], curves[0, 0, 2], rtol=1e-6)


def test_landscape_norm_lines_per_perturbation_and_degree():
    topo = make_topology()
    fig = landscape_norm_figure(topo.landscape_norm.values, ["clean", "noise"], ["conv1", "conv2", "fc"])
    lines = [r for r in fig.renderers if r.glyph.__class__.__name__ == "Line" and len(r.data_source.data["x"]) == 3]
    assert len(lines) == 4
    for i, r in enumerate(lines):
        np.testing.assert_allclose(r.data_source.data["y"], topo.landscape_norm.values[i // 2, :, i % 2])
        assert r.glyph.line_dash == ([] if i % 2 == 0 else [6])
    assert [i.label.value for i in fig.legend[0].items] == ["clean", "noise", "H0", "H1"]
    assert fig.xaxis[0].major_label_overrides == {0: "conv1", 1: "conv2", 2: "fc"}
    h1 = fig.legend[0].items[3].renderers
    assert len(h1) == 1 and h1[0].glyph.line_color == "#555555" and h1[0].glyph.line_dash == [6]  # the swatch
    linked = [cb.args["other"] for cb in h1[0].js_property_callbacks["change:visible"]]
    assert set(lines[1::2]) <= set(linked) and len(linked) == 2 * 2  # both perturbations' H1 lines and markers
    assert fig.y_range.only_visible
    with pytest.raises(ValueError, match=r"expected \(perturbation, layer, degree\) = \(1, 3, 2\)"):
        landscape_norm_figure(np.zeros((2, 3, 2)), ["clean"], ["a", "b", "c"])


def test_betti_decay_and_curves():
    topo = make_topology()
    fig = betti_decay_figure(topo.betti_omega.values, topo.betti_omega_fit.values, topo.betti_theta.values,
                             ["clean", "noise"], ["conv1", "conv2", "fc"])
    srcs = [r.data_source for r in fig.renderers if "omega" in r.data_source.data]
    np.testing.assert_allclose(srcs[0].data["omega"], topo.betti_omega.values[0, :2])  # fc (NaN) left out
    np.testing.assert_allclose(srcs[0].data["fit"], topo.betti_omega_fit.values[0, :2])
    assert list(srcs[0].data["layer"]) == ["conv1", "conv2"]
    theta = topo.betti_theta.values
    assert [i.label.value for i in fig.legend[0].items] == [f"clean: θ = {theta[0]:.3g}", f"noise: θ = {theta[1]:.3g}"]
    cols = betti_columns(topo.betti_curve.values, topo.threshold.values, 1, 2)
    assert np.isnan(cols["b0"]).all()  # not a feature map
    from bokeh.models import ColumnDataSource

    curve = betti_curve_figure(ColumnDataSource(cols), y_max=3.0)
    assert (curve.y_range.start, curve.y_range.end) == (0.0, pytest.approx(3.15))
    with pytest.raises(ValueError, match=r"omega / omega_fit must have shape"):
        betti_decay_figure(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(2), ["clean"], ["a", "b"])


def test_neural_persistence_band():
    topo = make_topology()
    fig = neural_persistence_figure(topo)
    src = named(fig, "tp.np.data")
    for var in ("np_girrbach", "np_lower", "np_upper", "np_normalized"):
        np.testing.assert_allclose(src.data[var], topo[var].values)
    assert list(src.data["weight"]) == ["fc.weight", "out.weight"]
    band = [r for r in fig.renderers if r.glyph.__class__.__name__ == "VArea"]
    assert len(band) == 1 and (band[0].glyph.y1, band[0].glyph.y2) == ("np_lower", "np_upper")
    assert "mean normalised NP 0.500" in fig.title.text


def test_missing_parts_are_left_out_with_their_reasons():
    topo = make_topology(weights=None, feature_maps=0)
    topo.attrs["skipped"]["neural_persistence"] = "no weights were given"
    section, update = topology_section(topo)
    names = {m.name for m in section.references() if m.name}
    assert {"tp.norm", "tp.landscape"} <= names
    assert not names & {"tp.betti", "tp.omega", "tp.np"}
    assert update.args["sources"]["betti"] is None
    header = named(section, "tp.header").text
    assert "no weights were given" in header and "not a feature map" in header
    one_map = make_topology(feature_maps=1)
    assert np.isnan(one_map.betti_theta).all()
    fig = named(topology_section(one_map)[0], "tp.omega")
    assert [i.label.value for i in fig.legend[0].items] == ["clean: θ n/a", "gaussian(sigma=0.8): θ n/a"]


def test_report_with_and_without_topology(case):
    study, acts = case
    plain = build_report(study, acts, heatmap_size=8)
    assert plain.topology_update is None
    assert not [m for m in plain.layout.references() if (m.name or "").startswith("tp.")]
    rep = build_report(study, acts, heatmap_size=8, topology=make_topology())
    assert rep.layout.children[-1].name == "tp.section"
    assert rep.topology_update is not None
    assert named(rep.layout, "tp.sel.layer").js_property_callbacks["change:value"] == [rep.topology_update]
    # the main views are the same
    assert rep.update.args["sizes"] == plain.update.args["sizes"]
    # the section costs little: the landscapes of every view are a few kB here
    extra = len(report_html(study, acts, heatmap_size=8, topology=make_topology())) - len(
        report_html(study, acts, heatmap_size=8))
    assert 0 < extra < 200_000


def test_topology_from_the_real_summary(case, tmp_path):
    study, acts = case
    topo = hj.topology_summary(acts, weights={"fc1": np.random.default_rng(0).normal(size=(6, 4))})
    hj.write_results(topo, tmp_path / "topo.zarr")
    rep = build_report(study, acts, heatmap_size=8, topology=hj.open_results(tmp_path / "topo.zarr"))
    np.testing.assert_allclose(named(rep.layout, "tp.landscape.data").data["k1"],
                               topo.landscape.values[0, 0, 1, 0], rtol=1e-6)
    assert "tp.omega" not in {m.name for m in rep.layout.references()}  # no feature maps in the blobs


def test_bad_topology_is_rejected_before_any_work(case):
    study, acts = case
    topo = make_topology()
    with pytest.raises(TypeError, match="topology must be an xarray.Dataset.*got dict"):
        build_report(study, acts, topology={})
    with pytest.raises(ValueError, match="topology has no variable 'landscape'"):
        build_report(study, acts, topology=topo.drop_vars("landscape"))
    with pytest.raises(ValueError, match=r"topology\['landscape_norm'\] has dims"):
        check_topology(topo.transpose("layer", ...))
    with pytest.raises(ValueError, match=r"topology degree coordinate is \[0, 2\]"):
        check_topology(topo.assign_coords(degree=[0, 2]))
    with pytest.raises(ValueError, match="degree must be 0 or 1; got 3"):
        topology_section(topo, degree=3)


def test_hostile_names_reach_the_section_only_as_text():
    topo = make_topology(layers=(HOSTILE, "conv2", HOSTILE_SCRIPT), perturbations=("clean", HOSTILE_SCRIPT),
                         weights=(HOSTILE, "w2"))
    topo.attrs["skipped"][f"diagrams (layer {HOSTILE!r})"] = HOSTILE
    section, update = topology_section(topo)
    sel = named(section, "tp.sel.layer")
    assert isinstance(sel, Select) and [label for _, label in sel.options] == [HOSTILE, "conv2", HOSTILE_SCRIPT]
    header = named(section, "tp.header")
    assert isinstance(header, Div)
    assert "<img" not in header.text and "&lt;img src=x onerror=alert(1)&gt;" in header.text
    assert "</script>" not in header.text
    assert update.args["names"]["layers"][0] == HOSTILE
    text = report_html(*_hostile_case(), topology=topo)
    assert not re.search(r"<img src=x", text.split("<body>")[1].split("<script type=\"application/json\"")[0])


def _hostile_case():
    acts = make_acts(layers={"fc1": 3}, perturbations=("clean",), n_per_class=4)
    return make_study(acts, metrics=("euclidean",)), acts
