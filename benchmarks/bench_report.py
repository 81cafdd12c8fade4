"""Report size and speed: build, write and open a study of 8 layers x 7 perturbations x 7 metrics.

Measures, for n samples (default 1000):

- build: computing every view (distances, orders, layouts, hulls) and the Bokeh document;
- write: serialising the standalone HTML (BokehJS inlined);
- size of the file (the requirement is < 25 MB);
- open: headless Chromium from navigation to BokehJS "document idle"
  (all views drawn), and the time to switch layer, metric and perturbation.

The study is synthetic (class blobs per layer; scipy single linkage over
holejax distances, as in tests/report/conftest.py) so the benchmark needs no
model. Run: ``python benchmarks/bench_report.py [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _fixtures():
    spec = importlib.util.spec_from_file_location("report_fixtures", ROOT / "tests" / "report" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _open_in_browser(path: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1250, "height": 900})
        idle, errors = [], []
        page.on("console", lambda m: idle.append(time.perf_counter()) if "document idle" in m.text else None)
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        t0 = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0", timeout=120_000)
        while not idle and time.perf_counter() - t0 < 120:
            page.wait_for_timeout(20)
        out["open_s"] = (idle[0] if idle else time.perf_counter()) - t0
        switches = []
        for name, value in (("sel.layer", "1"), ("sel.metric", "1"), ("sel.perturbation", "1")):
            page.evaluate("window.__img = Bokeh.documents[0].get_model_by_name('hd.image').data.image[0]")
            t1 = time.perf_counter()
            page.evaluate(
                "([n, v]) => { Bokeh.documents[0].get_model_by_name(n).value = v }", [name, value]
            )
            page.wait_for_function(
                "Bokeh.documents[0].get_model_by_name('hd.image').data.image[0] !== window.__img"
            )
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            switches.append(time.perf_counter() - t1)
        out["switch_s"] = float(np.median(switches))
        out["console_errors"] = len(errors)
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 layers x 3 perturbations x 3 metrics, n=300")
    parser.add_argument("--n", type=int, default=None, help="samples (default 1000, quick 300)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--keep", default=None, help="also save the HTML here")
    parser.add_argument("--open", default=None, metavar="HTML",
                        help="only time opening an existing report (3 runs, median)")
    args = parser.parse_args()
    if args.open:
        path = Path(args.open).resolve()
        runs = [_open_in_browser(path) for _ in range(3)]
        med = {k: float(np.median([r[k] for r in runs])) for k in ("open_s", "switch_s")}
        print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB, open {med['open_s']:.2f} s, "
              f"switch {med['switch_s']:.3f} s (median of 3), console errors {max(r['console_errors'] for r in runs)}")
        return

    import holejax as hj
    from holejax.report import build_report, report_html

    fx = _fixtures()
    n = args.n or (300 if args.quick else 1000)
    n_layers, n_perts, n_metrics = (3, 3, 3) if args.quick else (8, 7, 7)
    widths = [64, 128, 256, 128, 64, 32, 16, 10][:n_layers]
    layers = {f"layer{i}.relu": w for i, w in enumerate(widths)}
    perts = ("clean",) + tuple(f"gaussian(sigma={s})" for s in (0.05, 0.1, 0.2, 0.3, 0.5, 1.0))[: n_perts - 1]
    metrics = ("euclidean", "cosine", "angular", "manhattan", "chebyshev", "sqeuclidean", "mahalanobis")[:n_metrics]
    metrics = tuple(m for m in metrics if m in hj.METRICS)

    t = time.perf_counter()
    acts = fx.make_acts(n_per_class=n // 10, n_classes=10, layers=layers, perturbations=perts)
    study = fx.make_study(acts, metrics=metrics, max_candidates=12)
    setup_s = time.perf_counter() - t

    # first call compiles the distance kernels; the second is the steady-state build
    t = time.perf_counter()
    build_report(study, acts, layers=list(layers)[:1], perturbations=["clean"])
    warmup_s = time.perf_counter() - t
    t = time.perf_counter()
    report = build_report(study, acts)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    text = report_html(study, acts, title="bench")
    html_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        path.write_text(text, encoding="utf-8")
        size_mb = path.stat().st_size / 1e6
        if args.keep:
            Path(args.keep).write_text(text, encoding="utf-8")
        browser = {} if args.no_browser else _open_in_browser(path)

    result = {
        "n_samples": n, "layers": n_layers, "perturbations": len(perts), "metrics": len(metrics),
        "views": n_layers * len(perts) * len(metrics), "heatmap_size": report.heatmap_size,
        "size_mb": round(size_mb, 2), "setup_s": round(setup_s, 2), "warmup_build_s": round(warmup_s, 2),
        "build_s": round(build_s, 2), "build_and_write_html_s": round(html_s, 2),
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in browser.items()},
        "machine": platform.platform(), "quick": args.quick,
    }
    out = ROOT / "benchmarks" / "results" / ("report_quick.json" if args.quick else "report.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print("| views | n | heatmap px | HTML size | build views | build + write HTML | open (Chromium) | switch view |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {result['views']} ({n_layers}x{len(perts)}x{len(metrics)}) | {n} | {report.heatmap_size} "
          f"| {result['size_mb']} MB | {result['build_s']} s | {result['build_and_write_html_s']} s "
          f"| {result.get('open_s', 'n/a')} s | {result.get('switch_s', 'n/a')} s |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
