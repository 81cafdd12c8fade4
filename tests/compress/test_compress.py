"""Compression in both adapters: exact sparsity, quantization levels, PyTorch == Flax, never in place."""

from __future__ import annotations

import copy

import jax
import numpy as np
import pytest
import torch
from flax import linen as nn
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from holejax_flax.compress import apply_compression as flax_compress
from holejax_flax.compress import compress_params, kernel_paths
from holejax_torch.compress import apply_compression as torch_compress
from holejax_torch.compress import prunable_weights

import holejax as hj
from holejax.perturb import prune_count, quantize_qparams

SIZES = (12, 20, 16, 5)  # an MLP 12 -> 20 -> 16 -> 5


# -- twin models with the same weights -----------------------------------------------
def torch_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


def torch_linears(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        for i, b in enumerate(SIZES[1:]):
            x = nn.Dense(b, name=f"Dense_{i}")(x)
            if i < len(SIZES) - 2:
                x = nn.relu(x)
        return x


class NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(SIZES[:-1], SIZES[1:])])

    def __call__(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = jax.nn.relu(x)
        return x


def linen_twin(tm: torch.nn.Module):
    module = LinenMLP()
    params = {
        f"Dense_{i}": {"kernel": m.weight.detach().numpy().T.copy(), "bias": m.bias.detach().numpy().copy()}
        for i, m in enumerate(torch_linears(tm))
    }
    return module, {"params": jax.tree_util.tree_map(jax.numpy.asarray, params)}


def nnx_twin(tm: torch.nn.Module):
    model = NnxMLP(nnx.Rngs(0))
    for layer, m in zip(model.layers, torch_linears(tm)):
        layer.kernel[...] = jax.numpy.asarray(m.weight.detach().numpy().T)
        layer.bias[...] = jax.numpy.asarray(m.bias.detach().numpy())
    return model


def torch_kernels(model) -> list[np.ndarray]:
    """Kernels as (in, out) float arrays; int8 modules give their de-quantized weights."""
    out = []
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            out.append(m.weight.detach().numpy().T)
        elif type(m).__name__ == "Linear" and hasattr(m, "weight") and callable(m.weight):
            out.append(m.weight().dequantize().numpy().T)
    return out


def linen_kernels(model) -> list[np.ndarray]:
    params = model[1]["params"]
    return [np.asarray(params[f"Dense_{i}"]["kernel"]) for i in range(len(SIZES) - 1)]


def nnx_kernels(model) -> list[np.ndarray]:
    return [np.asarray(layer.kernel[...]) for layer in model.layers]


COMPRESSIONS = [
    hj.global_l1_prune(),
    hj.global_l1_prune(0.9),
    hj.layerwise_l1_prune(),
    hj.layerwise_l1_prune(0.55),
    hj.quantize(8, "symmetric"),
    hj.quantize(4, "symmetric"),
    hj.quantize(2, "symmetric"),
    hj.quantize(8, "affine"),
    hj.quantize(4, "affine"),
    hj.quantize(2, "affine"),
    hj.int8_dynamic(),
]


# -- exact sparsity ---------------------------------------------------------------------
@pytest.mark.parametrize("amount", [0.1, 0.3, 0.5, 0.77, 0.9])
def test_global_pruning_sparsity_is_exact(amount):
    tm = torch_mlp()
    total = sum(m.weight.numel() for m in torch_linears(tm))
    expected = prune_count(amount, total)
    p = hj.global_l1_prune(amount)
    for kernels in (
        torch_kernels(torch_compress(tm, p)),
        linen_kernels(flax_compress(linen_twin(tm), p)),
        nnx_kernels(flax_compress(nnx_twin(tm), p)),
    ):
        assert sum(int((k == 0).sum()) for k in kernels) == expected


@pytest.mark.parametrize("amount", [0.2, 0.35, 0.8])
def test_layerwise_pruning_sparsity_is_exact_per_layer(amount):
    tm = torch_mlp()
    p = hj.layerwise_l1_prune(amount)
    for kernels in (torch_kernels(torch_compress(tm, p)), linen_kernels(flax_compress(linen_twin(tm), p))):
        assert [int((k == 0).sum()) for k in kernels] == [prune_count(amount, k.size) for k in kernels]


def test_pruning_removes_the_smallest_magnitudes():
    tm = torch_mlp()
    before = np.concatenate([k.ravel() for k in torch_kernels(tm)])
    after = np.concatenate([k.ravel() for k in torch_kernels(torch_compress(tm, hj.global_l1_prune(0.4)))])
    pruned = after == 0
    assert np.abs(before[pruned]).max() <= np.abs(before[~pruned]).min()
    np.testing.assert_array_equal(after[~pruned], before[~pruned])


def test_torch_pruning_is_permanent():
    pruned = torch_compress(torch_mlp(), hj.global_l1_prune())
    names = {n for n, _ in pruned.named_parameters()} | {n for n, _ in pruned.named_buffers()}
    assert not any(n.endswith(("_orig", "_mask")) for n in names)
    assert all(not m._forward_pre_hooks for m in pruned.modules())


def test_biases_are_not_pruned_or_quantized():
    tm = torch_mlp()
    for p in (hj.global_l1_prune(0.9), hj.quantize(2)):
        new = torch_compress(tm, p)
        for a, b in zip(torch_linears(tm), torch_linears(new)):
            assert torch.equal(a.bias, b.bias)
        _, vars_ = flax_compress(linen_twin(tm), p)
        _, ref = linen_twin(tm)
        for i in range(3):
            np.testing.assert_array_equal(vars_["params"][f"Dense_{i}"]["bias"], ref["params"][f"Dense_{i}"]["bias"])


# -- quantization levels -----------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("scheme", ["symmetric", "affine"])
def test_number_of_distinct_levels(bits, scheme):
    tm = torch_mlp()
    p = hj.quantize(bits, scheme)
    limit = 2**bits - 1 if scheme == "symmetric" else 2**bits
    for model_kernels in (
        torch_kernels(torch_compress(tm, p)),
        linen_kernels(flax_compress(linen_twin(tm), p)),
        nnx_kernels(flax_compress(nnx_twin(tm), p)),
    ):
        for k, ref in zip(model_kernels, torch_kernels(tm)):
            levels = np.unique(k)
            assert len(levels) <= limit
            if bits <= 4:  # 80+ gaussian-ish weights fill (nearly) every level of a coarse grid
                assert len(levels) >= limit - 2
            scale, zero_point, qmin, qmax = quantize_qparams(ref, bits, scheme)
            grid = levels / scale  # levels are integers times the scale, inside the integer range
            np.testing.assert_allclose(grid, np.round(grid), atol=1e-3)
            assert np.round(grid).min() >= qmin - zero_point and np.round(grid).max() <= qmax - zero_point
            assert np.abs(k - ref).max() <= scale / 2 * (1 + 1e-5)  # round to nearest


def test_int8_dynamic_torch_model_runs_and_stays_close():
    tm = torch_mlp()
    q = torch_compress(tm, hj.int8_dynamic())
    assert {type(m).__module__ for m in q.modules() if type(m).__name__ == "Linear"} == {
        "torch.ao.nn.quantized.dynamic.modules.linear"
    }
    x = torch.randn(64, SIZES[0])
    with torch.no_grad():
        ref, out = tm(x), q(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    for k in torch_kernels(q):
        assert len(np.unique(k)) <= 256


# -- PyTorch and Flax agree ----------------------------------------------------------------
@pytest.mark.parametrize("p", COMPRESSIONS, ids=lambda p: p.name)
def test_torch_and_flax_give_the_same_weights(p):
    tm = torch_mlp(seed=3)
    t = torch_kernels(torch_compress(tm, p))
    for kernels in (linen_kernels(flax_compress(linen_twin(tm), p)), nnx_kernels(flax_compress(nnx_twin(tm), p))):
        for a, b in zip(t, kernels):
            np.testing.assert_array_equal(a == 0, b == 0)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


@pytest.mark.parametrize("p", [hj.global_l1_prune(0.5), hj.layerwise_l1_prune(0.3), hj.quantize(4, "affine")], ids=str)
def test_torch_and_flax_compressed_models_predict_alike(p):
    tm = torch_mlp(seed=1)
    x = np.random.default_rng(0).normal(size=(32, SIZES[0])).astype(np.float32)
    with torch.no_grad():
        ref = torch_compress(tm, p)(torch.from_numpy(x)).numpy()
    module, variables = flax_compress(linen_twin(tm), p)
    np.testing.assert_allclose(np.asarray(module.apply(variables, x)), ref, atol=1e-5)
    np.testing.assert_allclose(np.asarray(flax_compress(nnx_twin(tm), p)(x)), ref, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(amount=st.floats(0.1, 0.9), seed=st.integers(0, 10_000), scope=st.sampled_from(["global", "layerwise"]))
def test_pruning_masks_agree_for_any_ratio(amount, seed, scope):
    tm = torch_mlp(seed)
    p = hj.global_l1_prune(amount) if scope == "global" else hj.layerwise_l1_prune(amount)
    t = torch_kernels(torch_compress(tm, p))
    f = linen_kernels(flax_compress(linen_twin(tm), p))
    for a, b in zip(t, f):
        np.testing.assert_array_equal(a, b)


# -- never in place -------------------------------------------------------------------------
@pytest.mark.parametrize("p", COMPRESSIONS, ids=lambda p: p.name)
def test_models_are_never_modified_in_place(p):
    tm = torch_mlp()
    before = copy.deepcopy(tm.state_dict())
    new = torch_compress(tm, p)
    assert new is not tm
    for k, v in tm.state_dict().items():
        assert torch.equal(v, before[k])
    module, variables = linen_twin(tm)
    saved = jax.tree_util.tree_map(np.array, variables)
    new_module, new_vars = flax_compress((module, variables), p)
    assert new_module is module and new_vars is not variables
    jax.tree_util.tree_map(np.testing.assert_array_equal, variables, saved)
    nm = nnx_twin(tm)
    saved_nnx = nnx_kernels(nm)
    new_nnx = flax_compress(nm, p)
    assert new_nnx is not nm
    for a, b in zip(nnx_kernels(nm), saved_nnx):
        np.testing.assert_array_equal(a, b)


def test_linen_three_tuple_keeps_apply_kwargs():
    module, variables = linen_twin(torch_mlp())
    out = flax_compress((module, variables, {"train": False}), hj.quantize(4))
    assert len(out) == 3 and out[2] == {"train": False}


def test_conv_weights_are_compressed_too():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    assert [n for n, _ in prunable_weights(net)] == ["0", "2"]
    pruned = torch_compress(net, hj.layerwise_l1_prune(0.5))
    assert int((pruned[0].weight == 0).sum()) == prune_count(0.5, 36)
    params = {"Conv_0": {"kernel": np.ones((3, 3, 1, 4)), "bias": np.ones(4)}, "Dense_0": {"kernel": np.ones((4, 2))}}
    assert kernel_paths(params) == ["Conv_0.kernel", "Dense_0.kernel"]
    out = compress_params(params, hj.int8_dynamic())  # int8 dynamic: Dense (2-D) kernels only
    np.testing.assert_array_equal(out["Conv_0"]["kernel"], params["Conv_0"]["kernel"])


# -- bad input ------------------------------------------------------------------------------
def test_noise_is_not_a_compression():
    with pytest.raises(ValueError, match="not a compression"):
        torch_compress(torch_mlp(), hj.gaussian(0.1))
    with pytest.raises(ValueError, match="not a compression"):
        flax_compress(linen_twin(torch_mlp()), "clean")


def test_unknown_compression_name():
    with pytest.raises(ValueError, match="Did you mean 'quantize'"):
        torch_compress(torch_mlp(), "quantise(bits=4)")


def test_wrong_model_types():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        torch_compress(linen_twin(torch_mlp()), hj.quantize())
    with pytest.raises(TypeError, match="\\(module, variables\\)"):
        flax_compress(LinenMLP(), hj.quantize())
    with pytest.raises(TypeError, match="Flax model"):
        flax_compress(torch_mlp(), hj.quantize())
    with pytest.raises(TypeError, match="'params' collection"):
        flax_compress((LinenMLP(), {"batch_stats": {}}), hj.quantize())


def test_models_without_weights_are_rejected():
    with pytest.raises(ValueError, match="no Linear or Conv layer"):
        torch_compress(torch.nn.Sequential(torch.nn.ReLU()), hj.global_l1_prune())
    with pytest.raises(ValueError, match="no Linear layer"):
        torch_compress(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 2)), hj.int8_dynamic())
    with pytest.raises(ValueError, match="no 'kernel' leaf"):
        compress_params({"bias": np.ones(3)}, hj.quantize())
