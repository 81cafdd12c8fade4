"""The report in headless Chromium: loads cleanly, draws every view, switches views, stays inert.

Driven with Playwright's sync API and Debian's chromium. Set
HOLEJAX_UPDATE_SCREENSHOT=1 to refresh docs/report.png from this run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from holejax.report import write_report
from holejax.report.sankey import ribbon_paths

from .conftest import HOSTILE, HOSTILE_SCRIPT
from .test_layout import unpack

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FIGURES = ["hd.dendrogram", "hd.strips", "hd.heatmap", "blob.figure", "sk.figure", "dg.diagram", "dg.barcode",
           "dg.betti", "sum.purity"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "report.png"

# true once the views show the selected layer, metric, perturbation, order and Sankey variant
# (the switch callback sets these titles last, after the data)
VIEW_SHOWN_JS = """() => {
  const d = Bokeh.documents[0];
  const label = (n) => { const s = d.get_model_by_name(n); return s.options.find((o) => o[0] === s.value)[1]; };
  const where = label('sel.layer') + ' | ' + label('sel.metric') + ' | ' + label('sel.perturbation');
  const order = ['RCM', 'dendrogram'][d.get_model_by_name('sel.order').active];
  const sankey = d.get_model_by_name('sel.sankey').active === 1 ? 'Compact Sankey: ' : 'Sankey: ';
  return d.get_model_by_name('hd.dendrogram').title.text === 'Heatmap-dendrogram (' + order + ' order)\\n' + where
    && d.get_model_by_name('sk.figure').title.text === sankey + where;
}"""

# pixels of a figure's exported canvas: size, distinct colours, share of non-white pixels, a hash
PIXELS_JS = """(name) => {
  const model = Bokeh.documents[0].get_model_by_name(name);
  const canvas = Bokeh.index.find_one(model).export('png').canvas;
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const colors = new Set();
  let ink = 0, hash = 2166136261, count = 0;
  for (let i = 0; i < d.length; i += 4 * 3) {
    colors.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    if (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240) ink++;
    hash = Math.imul(hash ^ (d[i] + 7 * d[i + 1] + 13 * d[i + 2]), 16777619) >>> 0;
    count++;
  }
  return {width: canvas.width, height: canvas.height, colors: colors.size, ink: ink / count, hash: hash};
}"""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def report_file(case, tmp_path_factory):
    study, acts = case
    return write_report(study, acts, tmp_path_factory.mktemp("report") / "report.html", title="Blobs study",
                        heatmap_size=24)


@pytest.fixture(scope="module")
def hostile_file(hostile_case, tmp_path_factory):
    study, acts = hostile_case
    return write_report(study, acts, tmp_path_factory.mktemp("hostile") / "report.html", title=HOSTILE)


class Page:
    """A loaded report with everything the page said."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1250, "height": 900})
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_function(
            "window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].get_model_by_name('stats').text.length > 0",
            timeout=60_000,
        )
        self.settle()

    def wait_until(self, condition: str, arg=None):
        """Wait for a JS condition (a function of ``arg``), then for two painted frames."""
        self.page.wait_for_function(condition, arg=arg, timeout=20_000)
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def settle(self):
        """Wait until the main views show the selectors' current state."""
        self.wait_until(VIEW_SHOWN_JS)

    def pixels(self, name):
        return self.page.evaluate(PIXELS_JS, name)

    def data(self, source, column):
        return self.page.evaluate(
            "([s, c]) => { const v = Bokeh.documents[0].get_model_by_name(s).data[c];"
            " return Array.from(v, (x) => (x && x.length !== undefined) ? Array.from(x) : x) }",
            [source, column],
        )

    def problems(self):
        bad = [f"{t}: {m}" for t, m in self.console if t in ("error", "warning")]
        return bad + self.errors + [f"dialog: {d}" for d in self.dialogs]


@pytest.fixture(scope="module")
def page(browser, report_file):
    p = Page(browser, report_file)
    yield p
    p.page.close()


def test_page_loads_offline_without_errors_and_draws_every_view(page):
    assert page.problems() == []
    assert all(url.startswith("file://") for url in page.requests), page.requests
    for name in FIGURES:
        px = page.pixels(name)
        assert px["width"] > 50 and px["height"] > 30, name
        assert px["colors"] > 3 and px["ink"] > 0.01, (name, px)
    assert "purity" in page.page.evaluate("Bokeh.documents[0].get_model_by_name('stats').text")


def test_switching_selectors_changes_the_views_to_the_stored_data(page, case, report_file):
    from holejax.report import build_report

    study, acts = case
    before = {name: page.pixels(name)["hash"] for name in ("hd.heatmap", "blob.figure", "sk.figure", "dg.betti")}
    selects = page.page.locator("select")
    assert selects.count() == 3
    selects.nth(0).select_option(index=1)   # layer
    selects.nth(2).select_option(index=1)   # metric
    page.page.get_by_role("button", name="dendrogram order").click()
    page.page.get_by_role("button", name="compact Sankey").click()
    page.settle()
    page.wait_until("() => Bokeh.documents[0].get_model_by_name('sk.figure').title.text.startsWith('Compact')")
    assert page.problems() == []
    after = {name: page.pixels(name)["hash"] for name in before}
    assert all(after[k] != before[k] for k in before), (before, after)
    title = page.page.evaluate("Bokeh.documents[0].get_model_by_name('hd.dendrogram').title.text")
    assert "fc2.relu" in title and "cosine" in title and "dendrogram order" in title

    # the browser drew exactly what Python stored for that view, ribbons included
    rep = build_report(study, acts, heatmap_size=24)
    args = rep.update.args
    state = {"p": 0, "l": 1, "m": 1, "order": 1, "boundary": 0, "sankey": 1}
    img = np.asarray(unpack(args["tables"]["hd.image"][0], state, args["sizes"])["image"][0])
    shown = page.page.evaluate("Array.from(Bokeh.documents[0].get_model_by_name('hd.image').data.image[0])")
    np.testing.assert_array_equal(np.asarray(shown).reshape(img.shape), img)
    rib = unpack(args["tables"]["sk.ribbons"][0], state, args["sizes"])
    g = args["geom"][1]
    xs, ys = ribbon_paths(rib["r_stage"], rib["r_count"], rib["r_y0"], rib["r_y1"], np.asarray(g["stage_x"]),
                          g["node_width"], g["points"])
    got_x, got_y = page.data("sk.ribbons", "xs"), page.data("sk.ribbons", "ys")
    assert len(got_x) == len(xs) > 0
    for a, b in zip(got_x, xs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(got_y, ys):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    hulls = page.data("blob.hulls", "xs")
    stored = unpack(args["tables"]["blob.hulls"][0], state, args["sizes"])["xs"]
    assert len(hulls) == len(stored)

    # switching perturbation moves the summary marker and the diagram; alpha shapes change the hulls
    cur_before = page.data("sum.hl", "purity")
    selects.nth(1).select_option(index=1)
    page.page.get_by_role("button", name="alpha shapes").click()
    page.settle()
    page.wait_until("(before) => Bokeh.documents[0].get_model_by_name('sum.hl').data.purity.some((v, i) => v !== before[i])",
                    cur_before)
    assert page.data("sum.hl", "purity") != cur_before
    assert page.problems() == []
    shot = report_file.with_suffix(".png")
    selects.nth(0).select_option(index=1)
    page.settle()
    page.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("HOLEJAX_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, DOCS)


def test_hover_shows_sample_label_and_cluster(page):
    point = page.page.evaluate("""() => {
      const m = Bokeh.documents[0].get_model_by_name('blob.figure');
      const v = Bokeh.index.find_one(m);
      const src = Bokeh.documents[0].get_model_by_name('blob.points');
      const r = v.canvas_view.el.getBoundingClientRect();
      const i = 0;
      return {x: r.x + v.frame.x_scale.compute(src.data.x[i]), y: r.y + v.frame.y_scale.compute(src.data.y[i]),
              sample: src.data.sample[i]};
    }""")
    page.page.mouse.move(point["x"], point["y"])
    tip = page.page.locator(".bk-tooltip-content").first
    tip.locator(".bk-tooltip-row-label").first.wait_for(state="visible")
    rows = dict(zip([t.strip().rstrip(":") for t in tip.locator(".bk-tooltip-row-label").all_inner_texts()],
                    [t.strip() for t in tip.locator(".bk-tooltip-row-value").all_inner_texts()]))
    label = page.page.evaluate("Bokeh.documents[0].get_model_by_name('blob.points').data.label_name[0]")
    cluster = page.page.evaluate("Bokeh.documents[0].get_model_by_name('blob.points').data.cluster[0]")
    assert rows["sample"] == str(point["sample"])
    assert rows["label"] == label
    assert rows["cluster"] == (str(cluster) if cluster >= 0 else "outlier (small cluster)")


def assert_names_stayed_inert(p):
    """No image was created, no script element came out of a name, and the page logged no problem."""
    p.settle()
    assert p.page.locator("img").count() == 0
    # the only scripts holding "alert(" are the JSON data
    injected = p.page.evaluate(
        "Array.from(document.scripts).filter(s => s.type !== 'application/json' && s.textContent.includes('alert(')).length"
    )
    assert injected == 0
    assert p.problems() == [], p.problems()


def test_hostile_names_stay_inert_text(browser, hostile_file):
    p = Page(browser, hostile_file)
    try:
        assert p.page.title() == HOSTILE
        options = p.page.locator("select option").all_text_contents()
        assert HOSTILE in options and HOSTILE_SCRIPT in options
        assert p.page.locator("h2").inner_text() == HOSTILE
        classes = p.page.locator("p", has_text="classes:").inner_text()
        assert HOSTILE in classes and HOSTILE_SCRIPT in classes
        # switch through every layer and perturbation: titles and tooltips carry the names
        selects = p.page.locator("select")
        for i in range(2):
            selects.nth(0).select_option(index=i)
            selects.nth(1).select_option(index=1 - i)
        p.settle()
        point = p.page.evaluate("""() => {
          const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('blob.figure'));
          const src = Bokeh.documents[0].get_model_by_name('blob.points');
          const r = v.canvas_view.el.getBoundingClientRect();
          return {x: r.x + v.frame.x_scale.compute(src.data.x[0]), y: r.y + v.frame.y_scale.compute(src.data.y[0])};
        }""")
        p.page.mouse.move(point["x"], point["y"])
        tip = p.page.locator(".bk-tooltip-content").first
        tip.locator(".bk-tooltip-row-label").first.wait_for(state="visible")
        assert HOSTILE in tip.inner_text()
        assert tip.locator("img").count() == 0
        assert_names_stayed_inert(p)
    finally:
        p.page.close()


TOPOLOGY_FIGURES = ["tp.norm", "tp.landscape", "tp.betti", "tp.omega", "tp.np"]


@pytest.fixture(scope="module")
def topology_page(browser, case, tmp_path_factory):
    from .conftest import make_topology

    study, acts = case
    path = write_report(study, acts, tmp_path_factory.mktemp("topology") / "report.html", heatmap_size=16,
                        topology=make_topology())
    p = Page(browser, path)
    yield p
    p.page.close()


def test_topology_section_draws_and_switches_offline(topology_page):
    from .conftest import make_topology

    page = topology_page
    assert page.problems() == []
    assert all(url.startswith("file://") for url in page.requests), page.requests
    for name in TOPOLOGY_FIGURES:
        px = page.pixels(name)
        assert px["width"] > 50 and px["height"] > 30, name
        assert px["colors"] > 3 and px["ink"] > 0.01, (name, px)
    topo = make_topology()
    np.testing.assert_allclose(page.data("tp.landscape.data", "k1"), topo.landscape.values[0, 0, 1, 0], rtol=1e-6)
    # the H0 legend item hides the H0 lines and markers of every perturbation (2 x 2), and itself
    hidden_count = "() => Bokeh.documents[0].get_model_by_name('tp.norm').renderers.filter((r) => !r.visible).length"
    page.page.evaluate("() => { Bokeh.documents[0].get_model_by_name('tp.norm.H0').visible = false; }")
    page.wait_until(f"() => ({hidden_count})() > 1")  # the legend callback hid more than the item itself
    assert page.page.evaluate(hidden_count) == 2 * 2 + 1
    page.page.evaluate("() => { Bokeh.documents[0].get_model_by_name('tp.norm.H0').visible = true; }")
    page.wait_until(f"() => ({hidden_count})() == 0")
    before = {name: page.pixels(name)["hash"] for name in ("tp.landscape", "tp.betti")}
    selects = page.page.locator("select")
    assert selects.count() == 5  # layer, perturbation, metric; topology layer, topology perturbation
    selects.nth(3).select_option(index=1)
    selects.nth(4).select_option(index=1)
    page.page.get_by_role("button", name="H0", exact=True).click()
    page.wait_until("() => Bokeh.documents[0].get_model_by_name('tp.landscape').title.text"
                    " === 'Landscape (H0): conv2 | gaussian(sigma=0.8)'")
    assert page.problems() == []
    for k in range(3):
        np.testing.assert_allclose(page.data("tp.landscape.data", f"k{k + 1}"), topo.landscape.values[1, 1, 0, k],
                                   rtol=1e-6)
    np.testing.assert_allclose(page.data("tp.betti.data", "b1"), topo.betti_curve.values[1, 1, 1], rtol=1e-6)
    after = {name: page.pixels(name)["hash"] for name in before}
    assert all(after[k] != before[k] for k in before), (before, after)
    title = page.page.evaluate("Bokeh.documents[0].get_model_by_name('tp.landscape').title.text")
    assert title == "Landscape (H0): conv2 | gaussian(sigma=0.8)"
    # a layer without feature maps: empty Betti curves, said in the title, no console noise
    selects.nth(3).select_option(index=2)
    page.wait_until("() => Bokeh.documents[0].get_model_by_name('tp.betti').title.text.includes('(not a feature map)')")
    assert page.problems() == []
    assert "(not a feature map)" in page.page.evaluate("Bokeh.documents[0].get_model_by_name('tp.betti').title.text")


def test_hostile_topology_names_stay_inert_text(browser, hostile_case, tmp_path_factory):
    from .conftest import make_topology

    study, acts = hostile_case
    topo = make_topology(layers=(HOSTILE, HOSTILE_SCRIPT, "fc"), perturbations=("clean", HOSTILE_SCRIPT),
                         weights=(HOSTILE, HOSTILE_SCRIPT))
    topo.attrs["skipped"][HOSTILE] = HOSTILE_SCRIPT
    path = write_report(study, acts, tmp_path_factory.mktemp("hostile_topology") / "report.html", topology=topo)
    p = Page(browser, path)
    try:
        selects = p.page.locator("select")
        for i in range(3):
            selects.nth(3).select_option(index=i)
            selects.nth(4).select_option(index=(i + 1) % 2)
        p.wait_until("(t) => Bokeh.documents[0].get_model_by_name('tp.landscape').title.text === t",
                     f"Landscape (H1): fc | {HOSTILE_SCRIPT}")
        options = p.page.locator("select option").all_text_contents()
        assert options.count(HOSTILE) >= 2 and options.count(HOSTILE_SCRIPT) >= 3
        p.page.locator("summary", has_text="not computed").click()
        assert HOSTILE_SCRIPT in p.page.locator("details").inner_text()
        title = p.page.evaluate("Bokeh.documents[0].get_model_by_name('tp.landscape').title.text")
        assert title == f"Landscape (H1): fc | {HOSTILE_SCRIPT}"
        assert_names_stayed_inert(p)
    finally:
        p.page.close()
