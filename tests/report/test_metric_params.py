"""Every metric parameter survives hj.analyze -> hj.write_results -> hj.open_results -> hj.write_report."""

from __future__ import annotations

import numpy as np
import pytest

import holejax as hj
from holejax.metrics.registry import get_metric
from holejax.report._study import metric_params

from .conftest import make_acts
from .test_end_to_end import write_store

WIDTH = 4
SPD = np.array([[2.0, 0.3, 0.0, 0.0], [0.3, 1.0, 0.1, 0.0], [0.0, 0.1, 1.5, 0.2], [0.0, 0.0, 0.2, 0.7]])
# two settings, since VI and components exclude each other; every value differs from the default
SETTINGS = (
    {"covariance": "oas", "VI": SPD, "components": None, "k": 4, "mutual": True, "disconnected": "euclidean",
     "scale": "kth"},
    {"covariance": "empirical", "VI": None, "components": 2, "k": 6, "mutual": False, "disconnected": "inf",
     "scale": "kth_floored"},
)


# the metrics that take parameters
METRICS = [m for m in hj.METRICS if get_metric(m).defaults]


def params_of(setting: dict) -> dict:
    return {m: {name: setting.get(name, default) for name, default in get_metric(m).defaults.items()}
            for m in METRICS}


def assert_same_params(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for name, value in expected.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(np.asarray(got[name]), value)
        else:
            assert got[name] == value and type(got[name]) is type(value), name


def test_every_parameter_has_a_setting():
    for m in hj.METRICS:
        for name in get_metric(m).defaults:
            assert name in SETTINGS[0] and name in SETTINGS[1], (m, name)


@pytest.mark.slow
@pytest.mark.parametrize("setting", SETTINGS, ids=["VI", "components"])
def test_metric_params_round_trip_into_the_report(setting, tmp_path):
    acts = write_store(make_acts(n_per_class=10, layers={"fc": WIDTH}, perturbations=("clean",)), tmp_path / "acts.zarr")
    params = params_of(setting)
    study = hj.analyze(acts, metrics=METRICS, metric_params=params)
    hj.write_results(study, tmp_path / "results.zarr")
    opened = hj.open_results(tmp_path / "results.zarr")
    for m in METRICS:
        assert_same_params(metric_params(study, m), params[m])
        assert_same_params(metric_params(opened, m), params[m])
    path = hj.write_report(opened, acts, tmp_path / "report.html")
    assert path.stat().st_size > 1_000_000
