"""Write a report as one standalone HTML file (BokehJS inlined, opens offline)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import xarray as xr
from bokeh.document import Document
from bokeh.embed import file_html
from bokeh.events import DocumentReady
from bokeh.resources import INLINE

from holejax.report.layout import build_report
from holejax.store.fingerprint import check_study_and_store

__all__ = ["report_html", "write_report"]


def report_html(study: xr.Dataset, acts: xr.Dataset, title: str | None = None, **options: Any) -> str:
    """The report as an HTML string; see :func:`write_report`."""
    report = build_report(study, acts, title=title, **options)
    doc = Document()
    doc.add_root(report.layout)
    doc.js_on_event(DocumentReady, report.update)
    return file_html(doc, resources=INLINE, title=title or "holejax report")


def write_report(
    study: xr.Dataset, acts: xr.Dataset, path: str | os.PathLike, title: str | None = None, *,
    check_fingerprint: bool = True, **options: Any
) -> Path:
    """Write the interactive report of a study to one standalone HTML file.

    The file inlines BokehJS and all data: it opens offline, from disk, with
    no server and no CDN. Selectors switch layer, perturbation and metric
    (and the heatmap order, blob boundaries and Sankey variant) in the browser.

    Args:
        study: results Dataset from ``hj.analyze`` or ``hj.open_results``.
        acts: the activation store the study was computed from
            (``hj.open_activations(study.attrs["source"])``, the path ``hj.analyze``
            recorded).
        path: the ``.html`` file to write (its folder must exist).
        title: page heading and browser title (default "holejax report").
        check_fingerprint: refuse a study (or ``topology=``) computed from
            other activations than ``acts`` (other model weights, inputs,
            labels or perturbations; see ``holejax.store.fingerprint``).
            False writes the report anyway.
        **options: passed to :func:`holejax.report.build_report` (subsets,
            display resolution, alpha radius, blob stage, ...; ``topology=ds``
            from ``hj.topology_summary`` adds the topology section).

    Returns:
        the path written.

    Raises:
        ValueError / TypeError: bad inputs, before anything is written.
        FileNotFoundError: the folder of ``path`` does not exist.
    """
    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(
            f"path={str(path)!r}: folder {str(path.parent)!r} does not exist; create it or write elsewhere."
        )
    if path.is_dir():
        raise IsADirectoryError(f"path={str(path)!r} is a folder; pass a file name such as report.html.")
    check_study_and_store(study, acts, check_fingerprint=check_fingerprint)
    check_study_and_store(options.get("topology"), acts, check_fingerprint=check_fingerprint, what="topology")
    text = report_html(study, acts, title=title, **options)
    tmp = path.with_name(f"{path.name}.partial-{uuid.uuid4().hex[:12]}")  # ours alone: never a user's file
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
