"""The report's topology section: landscapes, neural persistence and Betti decay.

Drawn from the Dataset of :func:`holejax.topology.topology_summary`:

- landscape norm (topological complexity) per layer, one line per
  (perturbation, degree): colour by perturbation, solid H0 / dashed H1; the
  legend hides a perturbation or a degree;
- the landscape functions of the selected layer, perturbation and degree;
- Betti-number decay: Omega per feature-map layer with the fitted polynomial
  and theta per perturbation, and the Betti curves of the selected layer;
- neural persistence per weight matrix with the band of its bounds
  ``L <= NP <= U`` (Girrbach et al.).

The section has its own selectors (topology layer, perturbation, degree): its
layers and perturbations are those of the topology Dataset, which may differ
from the study's. All curves of every view travel in the page as two flat
float32 arrays; :data:`TOPOLOGY_JS` slices them in the browser, offline.
User strings (layer, perturbation and weight names, skip reasons) reach the
page as canvas text, select options, or ``html.escape``-d text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from bokeh.layouts import column, row
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    Div,
    FixedTicker,
    HoverTool,
    Legend,
    LegendItem,
    LayoutDOM,
    RadioButtonGroup,
    Range1d,
    Select,
)
from bokeh.palettes import Category10_10, Dark2_8
from bokeh.plotting import figure

from holejax.report._study import require_variables

__all__ = [
    "TopologyAxes",
    "TOPOLOGY_JS",
    "check_topology",
    "landscape_columns",
    "betti_columns",
    "landscape_norm_figure",
    "landscape_figure",
    "betti_decay_figure",
    "betti_curve_figure",
    "neural_persistence_figure",
    "topology_section",
]

_REQUIRED = {
    "landscape_norm": ("perturbation", "layer", "degree"),
    "landscape": ("perturbation", "layer", "degree", "k", "grid"),
    "total_persistence": ("perturbation", "layer", "degree"),
    "persistent_entropy": ("perturbation", "layer", "degree"),
    "betti_omega": ("perturbation", "layer"),
    "betti_omega_fit": ("perturbation", "layer"),
    "betti_curve": ("perturbation", "layer", "betti_dim", "threshold"),
    "betti_theta": ("perturbation",),
}
_NP = ("np_girrbach", "np_lower", "np_upper", "np_normalized", "weight_variance")
_DEGREE_DASH = ("solid", "dashed")
_BETTI_COLORS = ("#1f77b4", "#d62728", "#2ca02c")


class TopologyAxes(NamedTuple):
    """What the topology section draws over.

    Attributes:
        perturbations, layers: names (user strings), in Dataset order.
        weights: weight-matrix names, empty without neural persistence.
        has_betti: whether any Omega is finite.
        skipped: ``{what: reason}`` from the Dataset's attrs.
    """

    perturbations: tuple[str, ...]
    layers: tuple[str, ...]
    weights: tuple[str, ...]
    has_betti: bool
    skipped: dict[str, str]


def _names(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in np.asarray(values).tolist())


def check_topology(topology: Any) -> TopologyAxes:
    """Check a topology Dataset (``hj.topology_summary`` / ``hj.open_results``) and read its axes.

    Raises:
        TypeError: not an xarray Dataset.
        ValueError: a variable is missing or has other dims, or the degree
            coordinate is not ``[0, 1]``.

    Example:
        >>> import numpy as np, holejax as hj
        >>> acts = {"a": np.random.default_rng(0).normal(size=(20, 3))}
        >>> check_topology(hj.topology_summary(acts)).layers
        ('a',)
    """
    if not isinstance(topology, xr.Dataset):
        raise TypeError(
            f"topology must be an xarray.Dataset from hj.topology_summary (or hj.open_results of its store); "
            f"got {type(topology).__name__}."
        )
    require_variables(topology, _REQUIRED, "topology", "hj.topology_summary")
    if [int(d) for d in np.asarray(topology["degree"].values)] != [0, 1]:
        raise ValueError(f"topology degree coordinate is {topology['degree'].values.tolist()}; expected [0, 1].")
    weights: tuple[str, ...] = ()
    if all(name in topology.data_vars for name in _NP):
        for name in _NP:
            if tuple(topology[name].dims) != ("weight",):
                raise ValueError(f"topology[{name!r}] has dims {tuple(topology[name].dims)}; expected ('weight',).")
        weights = _names(topology["weight"].values)
    skipped = topology.attrs.get("skipped") or {}
    skipped = {str(k): str(v) for k, v in skipped.items()} if isinstance(skipped, dict) else {}
    has_betti = bool(np.isfinite(np.asarray(topology["betti_omega"].values, np.float64)).any())
    return TopologyAxes(_names(topology["perturbation"].values), _names(topology["layer"].values), weights,
                        has_betti, skipped)


# ----------------------------------------------------------------------------- columns


def landscape_columns(landscape: np.ndarray, grid: np.ndarray, p: int, l: int, degree: int) -> dict[str, np.ndarray]:
    """Data of ``tp.landscape.data``: ``x`` (grid) and ``k1 .. kK`` of one view.

    Args:
        landscape: ``(perturbation, layer, degree, k, grid)``.
        grid: ``(grid,)``.

    Example:
        >>> lam = np.arange(2 * 1 * 2 * 2 * 3, dtype=float).reshape(2, 1, 2, 2, 3)
        >>> landscape_columns(lam, np.array([0.0, 0.5, 1.0]), 1, 0, 1)["k2"].tolist()
        [21.0, 22.0, 23.0]
    """
    cols = {"x": np.asarray(grid, dtype=np.float32)}
    for k in range(landscape.shape[3]):
        cols[f"k{k + 1}"] = np.asarray(landscape[p, l, degree, k], dtype=np.float32)
    return cols


def betti_columns(curves: np.ndarray, thresholds: np.ndarray, p: int, l: int) -> dict[str, np.ndarray]:
    """Data of ``tp.betti.data``: ``x`` (threshold) and ``b0, b1, b2`` of one view (NaN where skipped).

    Example:
        >>> c = np.ones((1, 2, 3, 4)); c[0, 1, 2] = 5
        >>> betti_columns(c, np.linspace(0, 1, 4), 0, 1)["b2"].tolist()
        [5.0, 5.0, 5.0, 5.0]
    """
    cols = {"x": np.asarray(thresholds, dtype=np.float32)}
    for d in range(curves.shape[2]):
        cols[f"b{d}"] = np.asarray(curves[p, l, d], dtype=np.float32)
    return cols


# ----------------------------------------------------------------------------- figures


def _layer_axis(fig: figure, layers: Sequence[str]) -> None:
    fig.xaxis.ticker = FixedTicker(ticks=list(range(len(layers))))
    fig.xaxis.major_label_overrides = {i: str(name) for i, name in enumerate(layers)}
    fig.xaxis.major_label_orientation = 0.5


def _legend(fig: figure, items: list[LegendItem]) -> None:
    fig.add_layout(Legend(items=items, click_policy="hide", label_text_font_size="8pt", spacing=0, padding=4),
                   "right")


def landscape_norm_figure(
    norms: np.ndarray, perturbations: Sequence[str], layers: Sequence[str], *, width: int = 900, height: int = 300
) -> figure:
    """Landscape norm per layer: one line per (perturbation, degree).

    Args:
        norms: ``(perturbation, layer, degree)`` with degree 0 and 1.
        perturbations, layers: names (drawn as canvas text).

    Returns:
        a figure named ``tp.norm``; legend items toggle a perturbation's lines
        or all lines of a degree (in the browser, through ``js_link`` of visibility).

    Example:
        >>> fig = landscape_norm_figure(np.ones((2, 3, 2)), ["clean", "noise"], ["a", "b", "c"])
        >>> fig.name, [i.label.value for i in fig.legend[0].items]
        ('tp.norm', ['clean', 'noise', 'H0', 'H1'])
    """
    arr = np.asarray(norms, dtype=np.float64)
    if arr.shape != (len(perturbations), len(layers), 2):
        raise ValueError(f"norms has shape {arr.shape}; expected (perturbation, layer, degree) = "
                         f"{(len(perturbations), len(layers), 2)}.")
    fig = figure(width=width, height=height, name="tp.norm", title="Landscape norm (topological complexity) per layer",
                 tools="pan,wheel_zoom,reset", toolbar_location="above")
    _layer_axis(fig, layers)
    fig.yaxis.axis_label = "landscape norm"
    x = np.arange(len(layers), dtype=np.float64)
    by_pert: dict[int, list] = {}
    by_degree: dict[int, list] = {}
    for p in range(arr.shape[0]):
        for d in range(2):
            color = Category10_10[p % 10]
            src = ColumnDataSource({"x": x, "y": arr[p, :, d], "layer": [str(v) for v in layers]})
            r = fig.line("x", "y", source=src, line_color=color, line_dash=_DEGREE_DASH[d], line_width=2, alpha=0.85)
            s = fig.scatter("x", "y", source=src, size=5, fill_color=color, line_color=None, alpha=0.85)
            by_pert.setdefault(p, []).extend([r, s])
            by_degree.setdefault(d, []).extend([r, s])
            fig.add_tools(HoverTool(renderers=[s], tooltips=[("layer", "@layer"), (f"H{d} norm", "@y{0.0000}")]))
    items = []
    for p, rs in by_pert.items():
        proxy = fig.line([np.nan], [np.nan], line_color=Category10_10[p % 10], line_width=2)
        items.append(LegendItem(label=str(perturbations[p]), renderers=[proxy]))
        for r in rs:
            proxy.js_link("visible", r, "visible")
    for d, rs in by_degree.items():
        proxy = fig.line([np.nan], [np.nan], line_color="#555555", line_dash=_DEGREE_DASH[d], line_width=2,
                         name=f"tp.norm.H{d}")
        items.append(LegendItem(label=f"H{d}", renderers=[proxy]))
        for r in rs:
            proxy.js_link("visible", r, "visible")
    # each swatch draws only its proxy (its colour, or grey with its dash); clicking it hides the
    # proxy, and the proxy's visibility is linked to its lines and markers
    _legend(fig, items)
    fig.y_range.only_visible = True  # hiding H0 rescales to the smaller H1 norms
    return fig


def landscape_figure(
    source: ColumnDataSource, n_landscapes: int, *, title: str = "Landscape", width: int = 450, height: int = 300
) -> figure:
    """The landscape functions ``lambda_1 .. lambda_K`` of one view, from a ``tp.landscape.data`` source.

    Example:
        >>> cols = landscape_columns(np.zeros((1, 1, 2, 3, 5)), np.linspace(0, 1, 5), 0, 0, 1)
        >>> fig = landscape_figure(ColumnDataSource(cols, name="tp.landscape.data"), 3)
        >>> fig.name, len(fig.renderers)
        ('tp.landscape', 3)
    """
    fig = figure(width=width, height=height, name="tp.landscape", title=title, tools="pan,wheel_zoom,reset",
                 toolbar_location=None)
    fig.xaxis.axis_label = "filtration value (normalised distance)"
    fig.yaxis.axis_label = "landscape"
    items = []
    for k in range(n_landscapes):
        r = fig.line("x", f"k{k + 1}", source=source, line_color=Dark2_8[k % 8], line_width=2)
        items.append(LegendItem(label=f"λ{k + 1}", renderers=[r]))
    _legend(fig, items)
    fig.y_range.start = 0
    return fig


def betti_decay_figure(
    omega: np.ndarray,
    omega_fit: np.ndarray,
    theta: np.ndarray,
    perturbations: Sequence[str],
    layers: Sequence[str],
    *,
    width: int = 900,
    height: int = 300,
) -> figure:
    """Omega (mean total Betti number) per layer with the fitted decay, one colour per perturbation.

    Args:
        omega, omega_fit: ``(perturbation, layer)``, NaN for layers without feature maps.
        theta: ``(perturbation,)`` decay rates (in the legend).

    Returns:
        a figure named ``tp.omega``.

    Example:
        >>> om = np.array([[3.0, 2.0, np.nan]])
        >>> fig = betti_decay_figure(om, om, np.array([-1.0]), ["clean"], ["c1", "c2", "fc"])
        >>> [i.label.value for i in fig.legend[0].items]
        ['clean: θ = -1']
    """
    om = np.asarray(omega, dtype=np.float64)
    fit = np.asarray(omega_fit, dtype=np.float64)
    shape = (len(perturbations), len(layers))
    if om.shape != shape or fit.shape != shape or np.shape(theta) != shape[:1]:
        raise ValueError(f"omega / omega_fit must have shape (perturbation, layer) = {shape} and theta "
                         f"({shape[0]},); got {om.shape}, {fit.shape}, {np.shape(theta)}.")
    fig = figure(width=width, height=height, name="tp.omega", title="Betti-number decay: Ω per layer and fitted θ",
                 tools="pan,wheel_zoom,reset", toolbar_location="above")
    _layer_axis(fig, layers)
    fig.yaxis.axis_label = "Ω (mean total Betti number)"
    x = np.arange(len(layers), dtype=np.float64)
    items = []
    for p in range(shape[0]):
        color = Category10_10[p % 10]
        ok = np.isfinite(om[p])
        src = ColumnDataSource({"x": x[ok], "omega": om[p, ok], "fit": fit[p, ok],
                                "layer": [str(layers[i]) for i in np.flatnonzero(ok)]})
        r = fig.line("x", "omega", source=src, line_color=color, line_width=2)
        s = fig.scatter("x", "omega", source=src, size=7, fill_color=color, line_color=None)
        f = fig.line("x", "fit", source=src, line_color=color, line_dash="dashed", line_width=1.5)
        fig.add_tools(HoverTool(renderers=[s], tooltips=[("layer", "@layer"), ("Ω", "@omega{0.000}"),
                                                         ("fit", "@fit{0.000}")]))
        t = float(np.asarray(theta, dtype=np.float64)[p])
        label = f"{perturbations[p]}: θ = {t:.3g}" if np.isfinite(t) else f"{perturbations[p]}: θ n/a"
        items.append(LegendItem(label=label, renderers=[r, s, f]))
    _legend(fig, items)
    return fig


def betti_curve_figure(
    source: ColumnDataSource,
    *,
    y_max: float | None = None,
    title: str = "Betti curves",
    width: int = 450,
    height: int = 300,
) -> figure:
    """Mean Betti numbers beta_0, beta_1, beta_2 vs threshold of one view, from a ``tp.betti.data`` source.

    The axes are fixed (thresholds; ``0 .. y_max``, default the largest value
    in the source), so views of layers without feature maps (all NaN) draw
    an empty frame, and views compare at one scale.

    Example:
        >>> cols = betti_columns(np.ones((1, 1, 3, 4)), np.linspace(0, 1, 4), 0, 0)
        >>> betti_curve_figure(ColumnDataSource(cols, name="tp.betti.data")).name
        'tp.betti'
    """
    x = np.asarray(source.data["x"], dtype=np.float64)
    if y_max is None:
        values = np.concatenate([np.asarray(source.data[f"b{d}"], np.float64) for d in range(3)])
        values = values[np.isfinite(values)]
        y_max = float(values.max()) if values.size else 1.0
    y_max = y_max if np.isfinite(y_max) and y_max > 0 else 1.0
    pad = 0.02 * (x[-1] - x[0]) if x.size > 1 else 0.5
    fig = figure(width=width, height=height, name="tp.betti", title=title, tools="pan,wheel_zoom,reset",
                 toolbar_location=None, x_range=Range1d(x[0] - pad, x[-1] + pad),
                 y_range=Range1d(0.0, 1.05 * y_max))
    fig.xaxis.axis_label = "threshold (superlevel set, normalised activation)"
    fig.yaxis.axis_label = "mean Betti number"
    items = []
    for d in range(3):
        r = fig.line("x", f"b{d}", source=source, line_color=_BETTI_COLORS[d], line_width=2)
        items.append(LegendItem(label=f"β{d}", renderers=[r]))
    _legend(fig, items)
    return fig


def neural_persistence_figure(topology: xr.Dataset, *, width: int = 900, height: int = 300) -> figure:
    """Neural persistence per weight matrix (Girrbach form) inside the band of its bounds ``[L, U]``.

    Returns:
        a figure named ``tp.np``; the hover adds the normalised NP (Rieck et
        al.) and the weight variance.

    Example:
        >>> import numpy as np, holejax as hj
        >>> rng = np.random.default_rng(0)
        >>> ds = hj.topology_summary({"a": rng.normal(size=(20, 3))}, weights={"W": rng.normal(size=(4, 3))})
        >>> neural_persistence_figure(ds).name
        'tp.np'
    """
    names = [str(v) for v in np.asarray(topology["weight"].values).tolist()]
    x = np.arange(len(names), dtype=np.float64)
    data = {"x": x, "weight": names}
    for var in _NP:
        data[var] = np.asarray(topology[var].values, dtype=np.float64)
    src = ColumnDataSource(data, name="tp.np.data")
    mean = topology.attrs.get("np_mean_normalized")
    title = "Neural persistence per weight matrix, with bounds L ≤ NP ≤ U"
    if isinstance(mean, (int, float)) and np.isfinite(mean):
        title += f" (network: mean normalised NP {mean:.3f})"
    fig = figure(width=width, height=height, name="tp.np", title=title, tools="pan,wheel_zoom,reset",
                 toolbar_location="above")
    _layer_axis(fig, names)
    fig.yaxis.axis_label = "NP (Girrbach et al.)"
    band = fig.varea("x", "np_lower", "np_upper", source=src, fill_color="#9ecae1", fill_alpha=0.5)
    lo = fig.line("x", "np_lower", source=src, line_color="#6baed6", line_dash="dotted")
    hi = fig.line("x", "np_upper", source=src, line_color="#6baed6", line_dash="dotted")
    line = fig.line("x", "np_girrbach", source=src, line_color="#08519c", line_width=2)
    pts = fig.scatter("x", "np_girrbach", source=src, size=8, fill_color="#08519c", line_color="white")
    fig.add_tools(HoverTool(renderers=[pts], tooltips=[
        ("weight", "@weight"), ("NP", "@np_girrbach{0.000}"), ("L", "@np_lower{0.000}"), ("U", "@np_upper{0.000}"),
        ("normalised NP", "@np_normalized{0.000}"), ("weight variance", "@weight_variance{0.0000}"),
    ]))
    _legend(fig, [LegendItem(label="NP", renderers=[line, pts]),
                  LegendItem(label="bounds L, U", renderers=[band, lo, hi])])
    return fig


# ----------------------------------------------------------------------------- section

# args: widgets {layer, perturbation, degree}, lam (flat float32, shape (P, L, 2, K, G)), betti (flat
# float32, shape (P, L, 3, T)), shape {P, L, K, G, T}, sources {landscape, betti}, figs, names
TOPOLOGY_JS = r"""
const p = Number(widgets.perturbation.value), l = Number(widgets.layer.value), d = widgets.degree.active;
const S = shape;
function part(a, s, n) { return new Float32Array(a.buffer, a.byteOffset + s * 4, n); }
const ld = {x: sources.landscape.data.x};
for (let k = 0; k < S.K; k++) ld['k' + (k + 1)] = part(lam, (((p * S.L + l) * 2 + d) * S.K + k) * S.G, S.G);
sources.landscape.data = ld;
const where = names.layers[l] + ' | ' + names.perturbations[p];
figs.landscape.title.text = 'Landscape (H' + d + '): ' + where;
if (sources.betti) {
  const bd = {x: sources.betti.data.x};
  for (let j = 0; j < 3; j++) bd['b' + j] = part(betti, ((p * S.L + l) * 3 + j) * S.T, S.T);
  sources.betti.data = bd;
  const none = !bd.b0.some(Number.isFinite);
  figs.betti.title.text = 'Betti curves: ' + where + (none ? ' (not a feature map)' : '');
}
"""


def _notes(topology: xr.Dataset, axes: TopologyAxes, limit: int = 12) -> str:
    e = html.escape
    used = topology.attrs.get("samples_used")
    parts = ["<h3>Topology</h3>",
             "<p>Activation landscapes of the normalised activations (degree 0 and 1), Betti-number decay "
             "of the feature maps, and neural persistence of the weights. The selectors below choose the "
             "layer, perturbation and degree of this section.</p>"]
    facts = []
    if used is not None:
        facts.append(f"diagrams of {e(str(used))} samples")
    if topology.attrs.get("betti_samples") is not None and axes.has_betti:
        facts.append(f"Betti curves of {e(str(topology.attrs.get('betti_samples')))} samples")
    if facts:
        parts.append(f"<p>{' · '.join(facts)}</p>")
    if axes.skipped:
        items = list(axes.skipped.items())
        rows = "".join(f"<li>{e(k)}: {e(v)}</li>" for k, v in items[:limit])
        more = f"<li>... and {len(items) - limit} more</li>" if len(items) > limit else ""
        parts.append(f"<details><summary>not computed ({len(items)})</summary><ul>{rows}{more}</ul></details>")
    return "".join(parts)


def topology_section(topology: xr.Dataset, *, degree: int = 1) -> tuple[LayoutDOM, CustomJS]:
    """The topology views with their selectors, and the ``CustomJS`` that switches them.

    Args:
        topology: Dataset from ``hj.topology_summary`` (or its results store).
        degree: the landscape degree shown first (0 or 1).

    Returns:
        ``(layout named "tp.section", update)``.

    Example:
        >>> import numpy as np, holejax as hj
        >>> ds = hj.topology_summary({"a": np.random.default_rng(0).normal(size=(20, 3))})
        >>> section, update = topology_section(ds)
        >>> section.name, sorted(update.args["sources"])
        ('tp.section', ['betti', 'landscape'])
    """
    axes = check_topology(topology)
    if degree not in (0, 1):
        raise ValueError(f"degree must be 0 or 1; got {degree!r}.")
    P, L = len(axes.perturbations), len(axes.layers)
    lam = np.asarray(topology["landscape"].values, dtype=np.float32)
    grid = np.asarray(topology["grid"].values, dtype=np.float64)
    K, G = lam.shape[3], lam.shape[4]
    curves = np.asarray(topology["betti_curve"].values, dtype=np.float32)
    thresholds = np.asarray(topology["threshold"].values, dtype=np.float64)
    where = f"{axes.layers[0]} | {axes.perturbations[0]}"

    land_src = ColumnDataSource(landscape_columns(lam, grid, 0, 0, degree), name="tp.landscape.data")
    land_fig = landscape_figure(land_src, K, title=f"Landscape (H{degree}): {where}")
    norm_fig = landscape_norm_figure(np.asarray(topology["landscape_norm"].values), axes.perturbations, axes.layers)
    figs: dict[str, Any] = {"landscape": land_fig}
    sources: dict[str, Any] = {"landscape": land_src}
    views: list[LayoutDOM] = [norm_fig]
    curve_row: list[LayoutDOM] = [land_fig]
    if axes.has_betti:
        betti_src = ColumnDataSource(betti_columns(curves, thresholds, 0, 0), name="tp.betti.data")
        none = not np.isfinite(curves[0, 0, 0]).any()
        finite = curves[np.isfinite(curves)]
        betti_title = f"Betti curves: {where}" + (" (not a feature map)" if none else "")
        betti_fig = betti_curve_figure(betti_src, y_max=float(finite.max()) if finite.size else None,
                                       title=betti_title)
        figs["betti"], sources["betti"] = betti_fig, betti_src
        curve_row.append(betti_fig)
    else:
        sources["betti"] = None
    views.append(row(*curve_row))
    if axes.has_betti:
        views.append(betti_decay_figure(np.asarray(topology["betti_omega"].values),
                                        np.asarray(topology["betti_omega_fit"].values),
                                        np.asarray(topology["betti_theta"].values), axes.perturbations, axes.layers))
    if axes.weights:
        views.append(neural_persistence_figure(topology))

    def options(names_: tuple[str, ...]) -> list[tuple[str, str]]:
        return [(str(i), v) for i, v in enumerate(names_)]

    widgets = {
        "layer": Select(title="topology layer", options=options(axes.layers), value="0", name="tp.sel.layer",
                        width=260),
        "perturbation": Select(title="topology perturbation", options=options(axes.perturbations), value="0",
                               name="tp.sel.perturbation", width=260),
        "degree": RadioButtonGroup(labels=["H0", "H1"], active=degree, name="tp.sel.degree"),
    }
    update = CustomJS(
        args=dict(
            widgets=widgets, lam=lam.ravel(), betti=curves.ravel(),
            shape={"P": P, "L": L, "K": K, "G": G, "T": int(thresholds.size)},
            sources=sources, figs=figs,
            names={"layers": list(axes.layers), "perturbations": list(axes.perturbations)},
        ),
        code=TOPOLOGY_JS,
    )
    widgets["layer"].js_on_change("value", update)
    widgets["perturbation"].js_on_change("value", update)
    widgets["degree"].js_on_change("active", update)
    header = Div(text=_notes(topology, axes), name="tp.header", width=1100)
    selectors = row(widgets["layer"], widgets["perturbation"], column(Div(text="degree"), widgets["degree"]))
    section = column(header, selectors, *views, name="tp.section")
    return section, update
