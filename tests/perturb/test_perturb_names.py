"""Perturbation descriptors: names, params, parsing, sweeps, parameter checks."""

from __future__ import annotations

import dataclasses
import json

import pytest

import holejax as hj
from holejax.perturb import as_perturbations, from_name, from_params, sweep

ALL = [
    hj.clean(),
    hj.gaussian(0.1),
    hj.gaussian(sigma=0.05, clip=(0.0, 1.0)),
    hj.uniform(a=0.2),
    hj.salt_and_pepper(p=0.05),
    hj.salt_and_pepper(p=0.05, low=-1.0, high=1.0),
    hj.poisson(lam=10),
    hj.speckle(sigma=0.3),
    hj.global_l1_prune(),
    hj.global_l1_prune(amount=0.9),
    hj.layerwise_l1_prune(),
    hj.int8_dynamic(),
    hj.quantize(),
    hj.quantize(bits=2, scheme="affine"),
]


def test_names_are_readable_and_stable():
    assert [p.name for p in ALL] == [
        "clean",
        "gaussian(sigma=0.1)",
        "gaussian(sigma=0.05, clip=(0.0, 1.0))",
        "uniform(a=0.2)",
        "salt_and_pepper(p=0.05)",
        "salt_and_pepper(p=0.05, low=-1.0, high=1.0)",
        "poisson(lam=10.0)",
        "speckle(sigma=0.3)",
        "global_l1_prune(amount=0.3)",
        "global_l1_prune(amount=0.9)",
        "layerwise_l1_prune(amount=0.2)",
        "int8_dynamic",
        "quantize(bits=8, scheme=symmetric)",
        "quantize(bits=2, scheme=affine)",
    ]


def test_kinds():
    assert [p.kind for p in ALL[:8]] == ["clean"] + ["input"] * 7
    assert {p.kind for p in ALL[8:]} == {"compression"}


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.name)
def test_name_and_params_round_trip(p):
    assert from_name(p.name) == p
    params = json.loads(json.dumps(p.params))  # JSON-safe
    assert from_params(params) == p
    assert params["kind"] == p.method


def test_descriptors_are_frozen_and_hashable():
    p = hj.gaussian(0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.method = "uniform"  # type: ignore[misc]
    assert len({hj.gaussian(0.1), hj.gaussian(sigma=0.1), hj.gaussian(0.2)}) == 2


def test_ints_and_floats_give_one_name():
    assert hj.gaussian(1).name == hj.gaussian(1.0).name == "gaussian(sigma=1.0)"


def test_bare_method_name_uses_defaults():
    assert from_name("global_l1_prune") == hj.global_l1_prune(0.3)
    assert from_name("quantize(bits=4)") == hj.quantize(4, "symmetric")


def test_sweep():
    names = [p.name for p in sweep("global_l1_prune", [0.1, 0.5, 0.9])]
    assert names == [f"global_l1_prune(amount={a})" for a in (0.1, 0.5, 0.9)]
    assert [p.get("bits") for p in sweep("quantize", [8, 4, 2], scheme="affine")] == [8, 4, 2]


def test_as_perturbations_puts_clean_first():
    ps = as_perturbations(["gaussian(sigma=0.1)", hj.int8_dynamic(), "clean"])
    assert [p.name for p in ps] == ["clean", "gaussian(sigma=0.1)", "int8_dynamic"]
    assert [p.name for p in as_perturbations(None)] == ["clean"]


# -- bad input -------------------------------------------------------------------
def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown perturbation 'gausian'.*Did you mean 'gaussian'"):
        from_name("gausian(sigma=0.1)")


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="sigmaa"):
        from_name("gaussian(sigmaa=0.1)")


def test_malformed_names():
    with pytest.raises(ValueError, match="param=value"):
        from_name("gaussian(0.1)")
    with pytest.raises(ValueError, match="method\\(param=value"):
        from_name("gaussian sigma")
    with pytest.raises(TypeError, match="Perturbation or its name"):
        from_name(3)


def test_from_params_needs_kind():
    with pytest.raises(ValueError, match="'kind'"):
        from_params({"sigma": 0.1})


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: hj.gaussian(-0.1), "0.0 <= sigma"),
        (lambda: hj.gaussian(float("nan")), "finite"),
        (lambda: hj.uniform("x"), "finite number"),
        (lambda: hj.salt_and_pepper(1.5), "p <= 1.0"),
        (lambda: hj.salt_and_pepper(0.1, low=1.0, high=0.0), "low <= high"),
        (lambda: hj.poisson(0.0), "0.0 < lam"),
        (lambda: hj.speckle(sigma=True), "finite number"),
        (lambda: hj.gaussian(0.1, clip=(1.0, 0.0)), "low < high"),
        (lambda: hj.gaussian(0.1, clip=0.5), "pair"),
        (lambda: hj.global_l1_prune(1.0), "amount < 1.0"),
        (lambda: hj.layerwise_l1_prune(0.0), "0.0 < amount"),
        (lambda: hj.quantize(bits=1), "2 <= bits"),
        (lambda: hj.quantize(bits=4.5), "integer"),
        (lambda: hj.quantize(scheme="asym"), "scheme='asym'"),
    ],
)
def test_bad_parameters_are_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_sweep_bad_input():
    with pytest.raises(ValueError, match="no severity.*Did you mean 'speckle'"):
        sweep("speckl", [0.1])
    with pytest.raises(ValueError, match="at least one severity"):
        sweep("gaussian", [])


def test_duplicate_perturbations_are_rejected():
    with pytest.raises(ValueError, match="listed twice"):
        as_perturbations(["gaussian(sigma=0.1)", hj.gaussian(0.1)])
