"""Packed per-view tables: layout of offsets, ragged and object columns, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from holejax.report._switch import Table

from .test_layout import unpack


def test_pack_and_unpack_round_trip():
    sizes = {"p": 2, "l": 3}
    t = Table(("p", "l"), sizes)
    rows = {}
    rng = np.random.default_rng(0)
    for p in range(2):
        for l in range(3):
            k = int(rng.integers(0, 4))
            rows[p, l] = {
                "v": rng.random(k),                                  # float64 -> float32
                "i": np.arange(k, dtype=np.int64),                   # int64 -> int32
                "poly": [rng.random(int(rng.integers(1, 5))) for _ in range(k)],
                "img": [np.full((2, 2), p * 3 + l, np.uint8)],
            }
            t.put({"p": p, "l": l}, rows[p, l])
    spec = t.pack()
    assert spec["cols"]["v"].dtype == np.float32 and spec["cols"]["i"].dtype == np.int32
    assert set(spec["ragged"]) == {"poly"} and set(spec["objects"]) == {"img"}
    for (p, l), row in rows.items():
        got = unpack(spec, {"p": p, "l": l}, sizes)
        np.testing.assert_allclose(got["v"], row["v"], rtol=1e-6)
        np.testing.assert_array_equal(got["i"], row["i"])
        assert len(got["poly"]) == len(row["poly"])
        for a, b in zip(got["poly"], row["poly"]):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        assert got["img"][0][0, 0] == p * 3 + l


def test_pack_errors():
    with pytest.raises(ValueError, match="unknown table dim 'x'"):
        Table(("x",), {"x": 1})
    t = Table(("p",), {"p": 2})
    t.put({"p": 0}, {"a": np.zeros(2)})
    with pytest.raises(RuntimeError, match=r"has no data for key\(s\) \[1\]"):
        t.pack()
    t.put({"p": 1}, {"a": np.zeros(2)})
    t.rows[1]["b"] = np.zeros(3)
    t.rows[0]["b"] = np.zeros(1)
    with pytest.raises(RuntimeError, match="column 'b' has rows of other lengths"):
        t.pack()
