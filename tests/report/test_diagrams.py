"""Diagram views: deaths, Betti-0 counts against holejax.filtration and gudhi."""

from __future__ import annotations

import gudhi
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist, squareform

from holejax.filtration import betti0_curve, h0
from holejax.report.diagrams import (
    death_display,
    diagram_columns,
    diagram_figures,
    display_ranks,
)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 500), budget=st.integers(10, 100))
def test_display_ranks_keep_the_largest_and_stay_sorted(n, budget):
    r = display_ranks(n, budget)
    assert len(r) <= max(n, 0) and len(r) <= max(budget, n if n <= budget else budget)
    assert np.all(np.diff(r) > 0) and r[0] == 0 and r[-1] == n - 1
    if n > budget:
        assert set(range(n - budget // 2, n)) <= set(r.tolist())


def test_deaths_and_betti_curve_match_references():
    X = np.random.default_rng(0).normal(size=(25, 3)).astype(np.float32)
    D = squareform(pdist(X)).astype(np.float32)
    h = h0(D)
    dd = death_display(np.asarray(h.deaths))
    ref = gudhi.RipsComplex(distance_matrix=D.astype(np.float64)).create_simplex_tree(max_dimension=1)
    ref.compute_persistence()
    finite = np.sort([d for b, d in ref.persistence_intervals_in_dimension(0) if np.isfinite(d)])
    np.testing.assert_allclose(dd.death, finite, rtol=1e-5)
    cols = diagram_columns(dd)["dg.deaths"]
    # row 0 starts the curve at n components; after the merge at death[i], n - 1 - i are left
    assert cols["components"][0] == 25 and cols["death"][0] == 0
    np.testing.assert_array_equal(cols["components"][1:], np.asarray(betti0_curve(h, dd.death.astype(np.float64))))


def test_infinite_deaths_and_downsampling():
    deaths = np.concatenate([np.linspace(0.1, 1.0, 99), [np.inf, np.inf]])
    ranks = display_ranks(len(deaths), 20)
    dd = death_display(deaths[::-1], ranks)
    assert dd.n_infinite == 2 and dd.cap == pytest.approx(1.1)
    assert dd.death[-1] == pytest.approx(1.1) and len(dd.death) == len(ranks) <= 20
    np.testing.assert_array_equal(dd.rank, ranks)
    with pytest.raises(ValueError, match="deaths hold NaN"):
        death_display(np.array([1.0, np.nan]))


def test_figures_share_one_source():
    dd = death_display(np.array([0.5, 1.0, 3.0]))
    view = diagram_figures(dd)
    diagram, barcode, betti = view.children
    sources = {m.name: m for m in view.references() if m.name in ("dg.deaths", "dg.ess")}
    assert sources["dg.deaths"].data["death"].tolist() == [0.0, 0.5, 1.0, 3.0]
    assert sources["dg.ess"].data["death"] == [pytest.approx(3.3)]
    for fig in (diagram, barcode, betti):
        assert any(getattr(r, "data_source", None) is sources["dg.deaths"] for r in fig.renderers)
    # the diagram and barcode skip row 0 (the start of the Betti curve)
    filt = diagram.renderers[0].view.filter
    assert list(filt.indices) == [1, 2, 3]
