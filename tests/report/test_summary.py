"""Per-layer summary figures."""

from __future__ import annotations

import numpy as np
import pytest

from holejax.report.summary import summary_columns, summary_figure, summary_tabs


def test_one_line_per_perturbation_and_metric():
    values = {"purity": np.random.default_rng(0).random((3, 4, 2)), "n_components": np.ones((3, 4, 2))}
    fig = summary_figure(values, "purity", ["clean", "noise", "prune"], list("abcd"), ["euclidean", "cosine"],
                         current=(1, 2, 1))
    lines = [r for r in fig.renderers if r.glyph.__class__.__name__ == "Line" and len(r.data_source.data["x"]) == 4
             and r.data_source.name is None]
    assert len(lines) == 3 * 2  # one per (perturbation, metric); plus the selection line on its own source
    np.testing.assert_allclose(lines[1].data_source.data["y"], values["purity"][0, :, 1])
    labels = [i.label.value for i in fig.legend[0].items]
    assert labels == ["perturbation: clean", "perturbation: noise", "perturbation: prune",
                      "metric: euclidean", "metric: cosine"]
    assert fig.legend[0].items[0].renderers[:-1] == lines[:2]  # a perturbation item toggles both metrics
    assert fig.legend[0].items[3].renderers[:-1] == lines[0::2]  # a metric item toggles every perturbation
    assert fig.legend[0].items[3].renderers[-1].glyph.line_color == "#555555"  # swatch: the grey proxy, on top
    hl = next(m for m in fig.references() if m.name == "sum.hl")
    np.testing.assert_allclose(hl.data["purity"], values["purity"][1, :, 1].astype(np.float32))
    cur = summary_columns(values, 1, 2, 1)["sum.cur"]
    assert cur["x"].tolist() == [2.0] and cur["n_components"].tolist() == [1.0]


def test_tabs_and_errors():
    values = {"purity": np.zeros((1, 2, 1)), "bottleneck": np.zeros((1, 2, 1))}
    tabs = summary_tabs(values, ["clean"], ["a", "b"], ["cosine"])
    assert [t.title for t in tabs.tabs] == ["purity at the best threshold", "bottleneck distance to clean"]
    with pytest.raises(ValueError, match="quantity='ari' is not supported"):
        summary_figure(values, "ari", ["clean"], ["a", "b"], ["cosine"])
    with pytest.raises(ValueError, match=r"expected \(perturbation, layer, metric\) = \(1, 3, 1\)"):
        summary_figure(values, "purity", ["clean"], ["a", "b", "c"], ["cosine"])


def test_hover_names_the_clusters_and_outliers_of_the_best_threshold():
    values = {"purity": np.full((1, 2, 1), 0.5), "best_n_clusters": np.array([[[3.0], [4.0]]]),
              "best_n_outliers": np.array([[[10.0], [2.0]]])}
    tabs = summary_tabs(values, ["clean"], ["a", "b"], ["cosine"], tabs=["purity"])
    assert [t.title for t in tabs.tabs] == ["purity at the best threshold"]
    hover = next(m for m in tabs.references() if m.__class__.__name__ == "HoverTool")
    assert ("clusters at best", "@{best_n_clusters}{0}") in hover.tooltips
    assert ("outliers at best", "@{best_n_outliers}{0}") in hover.tooltips
    hl = next(m for m in tabs.references() if m.name == "sum.hl")
    assert hl.data["best_n_clusters"].tolist() == [3.0, 4.0] and hl.data["best_n_outliers"].tolist() == [10.0, 2.0]
    with pytest.raises(ValueError, match="tabs='ari'"):
        summary_tabs(values, ["clean"], ["a", "b"], ["cosine"], tabs=["ari"])
