"""Compact per-view data for the browser, and the JavaScript that switches views.

A report holds the data of every (perturbation, layer, metric, ...) view, but
draws one at a time. Each display source is fed by one or more *tables*; a
table is keyed by some of the selector dims (``p``, ``l``, ``m``, ``order``,
``boundary``, ``sankey``) and stores, for every key, the rows that source
shows for it. Rows of all keys are concatenated into one typed array per
column with an offsets array, so a report carries a few dozen binary arrays
instead of thousands, and switching a view only creates array views over them:

- numeric columns: ``cols[c]`` flat values, ``off`` (key + 1,) row offsets;
- ragged columns (a list of 1-D arrays per key, e.g. polygon vertices):
  ``ragged[c] = {"off": (row + 1,), "values": flat}``;
- object columns (anything else, e.g. an image): ``objects[c]`` one entry per key.

Columns that are the same for every key (sample ids, names) are not stored:
the browser keeps the source's current values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["DIMS", "Table", "SWITCH_JS"]

DIMS = ("p", "l", "m", "order", "boundary", "sankey")


def _compact(a: np.ndarray) -> np.ndarray:
    """BokehJS has no 64-bit integer arrays; send int32 / float32."""
    a = np.asarray(a)
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype in (np.int64, np.uint64):
        return a.astype(np.int32)
    if a.dtype == bool:
        return a.astype(np.uint8)
    return a


class Table:
    """Rows of one display source for every key over ``dims``.

    Example:
        >>> t = Table(("p", "l"), {"p": 2, "l": 1})
        >>> t.put({"p": 0, "l": 0}, {"a": np.array([1.0, 2.0])})
        >>> t.put({"p": 1, "l": 0}, {"a": np.array([3.0])})
        >>> spec = t.pack()
        >>> spec["off"].tolist(), spec["cols"]["a"].tolist()
        ([0, 2, 3], [1.0, 2.0, 3.0])
    """

    def __init__(self, dims: Sequence[str], sizes: Mapping[str, int]) -> None:
        for d in dims:
            if d not in DIMS:
                raise ValueError(f"unknown table dim {d!r}; expected one of {DIMS}.")
        self.dims = tuple(dims)
        self.shape = tuple(int(sizes[d]) for d in self.dims)
        self.rows: list[dict[str, Any] | None] = [None] * int(np.prod(self.shape, dtype=np.int64))

    def key(self, index: Mapping[str, int]) -> int:
        k = 0
        for d, size in zip(self.dims, self.shape):
            k = k * size + int(index[d])
        return k

    def put(self, index: Mapping[str, int], columns: Mapping[str, Any]) -> None:
        self.rows[self.key(index)] = dict(columns)

    def pack(self) -> dict[str, Any]:
        """The table as the browser reads it (see module docstring)."""
        missing = [k for k, r in enumerate(self.rows) if r is None]
        if missing:
            raise RuntimeError(f"table over {self.dims} has no data for key(s) {missing[:5]}.")
        first = self.rows[0]
        cols, ragged, objects = {}, {}, {}
        lengths = None
        for name, value in first.items():
            values = [r[name] for r in self.rows]
            if isinstance(value, np.ndarray) and value.ndim == 1:
                arrays = [np.asarray(v) for v in values]
                n_rows = np.array([len(a) for a in arrays])
                cols[name] = _compact(np.concatenate(arrays)) if arrays else np.zeros(0, np.float32)
            elif isinstance(value, list) and all(isinstance(a, np.ndarray) and a.ndim == 1 for r in values for a in r):
                n_rows = np.array([len(v) for v in values])
                flat = [a for v in values for a in v]
                elem_off = np.concatenate([[0], np.cumsum([len(a) for a in flat])]).astype(np.int32)
                data = np.concatenate(flat) if flat else np.zeros(0, np.float32)
                ragged[name] = {"off": elem_off, "values": _compact(data)}
            else:
                objects[name] = values
                continue
            if lengths is None:
                lengths = n_rows
            elif not np.array_equal(lengths, n_rows):
                raise RuntimeError(f"column {name!r} has rows of other lengths than its table's columns.")
        if lengths is None:
            lengths = np.ones(len(self.rows), dtype=np.int64)
        off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return {"dims": list(self.dims), "off": off, "cols": cols, "ragged": ragged, "objects": objects}


# args: state widgets, tables {source name: [packed tables]}, sources {name: CDS},
# sizes, extra {name: packed table} (scalars), geom (Sankey geometry per variant),
# names, targets (models the post step updates).
SWITCH_JS = r"""
const TYPED = [Float32Array, Float64Array, Int8Array, Uint8Array, Int16Array, Uint16Array, Int32Array, Uint32Array];
function view(a, s, e) {
  for (const T of TYPED) {
    if (a instanceof T) return new T(a.buffer, a.byteOffset + s * T.BYTES_PER_ELEMENT, e - s);
  }
  return Array.prototype.slice.call(a, s, e);
}
const st = {
  p: Number(widgets.perturbation.value), l: Number(widgets.layer.value), m: Number(widgets.metric.value),
  order: widgets.order.active, boundary: widgets.boundary.active, sankey: widgets.sankey.active,
};
function key(t) { let k = 0; t.dims.forEach((d, i) => { k = k * sizes[d] + st[d]; }); return k; }
function read(t, data) {
  const k = key(t), a = t.off[k], b = t.off[k + 1];
  for (const [c, flat] of Object.entries(t.cols)) data[c] = view(flat, a, b);
  for (const [c, r] of Object.entries(t.ragged)) {
    const out = [];
    for (let j = a; j < b; j++) out.push(view(r.values, r.off[j], r.off[j + 1]));
    data[c] = out;
  }
  for (const [c, objs] of Object.entries(t.objects)) data[c] = objs[k];
  return data;
}
__RIBBON_JS__
for (const [name, feeds] of Object.entries(tables)) {
  const src = sources[name];
  const data = {};
  for (const c of Object.keys(src.data)) data[c] = src.data[c];
  for (const t of feeds) read(t, data);
  if (name === 'sk.ribbons') {
    const g = geom[st.sankey];
    const paths = ribbon_paths(data, g.stage_x, g.node_width, g.points);
    data.xs = paths[0]; data.ys = paths[1];
  }
  src.data = data;
}
const sc = read(extra['sc.combo'], {});
const hd = read(extra['sc.hd'], {});
const one = (v) => v[0];
const cap = one(sc.cap);
targets.colorbar.low = one(hd.lo);
targets.colorbar.high = one(hd.hi) > one(hd.lo) ? one(hd.hi) : one(hd.lo) + 1;
for (const s of targets.cap_spans) s.location = cap;
targets.diagram_x.start = -0.05 * cap;
targets.diagram_x.end = 0.5 * cap;
const where = names.layers[st.l] + ' | ' + names.metrics[st.m] + ' | ' + names.perturbations[st.p];
targets.dendrogram.title.text = 'Heatmap-dendrogram (' + ['RCM', 'dendrogram'][st.order] + ' order)\n' + where;
targets.blob.title.text = 'Blob graph at the ' + names.blob_stage + ' threshold: ' + where;
targets.sankey.title.text = (st.sankey ? 'Compact Sankey: ' : 'Sankey: ') + where;
targets.diagram.title.text = 'Persistence diagram (H0): ' + names.layers[st.l];
function num(v, d) { return Number.isFinite(v) ? v.toFixed(d) : (Number.isNaN(v) ? 'n/a' : String(v)); }
const th = [sc.th0, sc.th1, sc.th2, sc.th3, sc.th4].map(one);
const rows = [
  ['purity at the best threshold', num(one(sc.purity), 3)],
  ['clusters / outliers at the best threshold', Number.isFinite(one(sc.best_n_clusters))
    ? num(one(sc.best_n_clusters), 0) + ' / ' + num(one(sc.best_n_outliers), 0) : 'n/a'],
  ['persistent components', num(one(sc.n_components), 0)],
  ['outliers of the persistent components', num(one(sc.n_outliers), 0)], ['bottleneck to clean', num(one(sc.bottleneck), 4)],
  ['Wasserstein to clean', num(one(sc.wasserstein), 4)], ['accuracy', num(one(sc.accuracy), 3)],
  ['thresholds (first, best, mid, one)', th.slice(1).map((v) => num(v, 4)).join(', ')],
  ['infinite deaths', num(one(sc.n_infinite), 0)],
];
targets.stats.text = '<table class="hj-stats">' + rows.filter((r) => r[1] !== 'n/a').map((r) => '<tr><th>' + r[0] + '</th><td>' + r[1] + '</td></tr>').join('') + '</table>';
"""
