"""The PyTorch adapter: hooks, container outputs, eval/inference mode, DataLoaders, bad input."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

import holejax as hj
from holejax_torch import ADAPTER

N = 40
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, 6)).astype(np.float32)
Y = np.arange(N) % 4


class Pair(NamedTuple):
    main: torch.Tensor
    aux: torch.Tensor


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    hidden: torch.Tensor
    loss: torch.Tensor | None = None


class TupleLayer(nn.Module):
    def forward(self, x):
        return x * 2, {"half": x / 2, "none": None}


class PairLayer(nn.Module):
    def forward(self, x):
        return Pair(x + 1, x.sum(dim=1, keepdim=True))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(6, 8)
        self.act = nn.ReLU()  # called twice
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm1d(8)
        self.tup = TupleLayer()
        self.pair = PairLayer()
        self.fc2 = nn.Linear(8, 3)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        h = self.act(self.fc1(x))
        h = self.bn(self.drop(h))
        doubled, _ = self.tup(h)
        p = self.pair(self.act(doubled))
        return Output(self.fc2(p.main), p.main)


class OutputNet(nn.Module):
    """A model whose root output is a dataclass (predict takes its first tensor)."""

    def __init__(self):
        super().__init__()
        self.net = Net()

    def forward(self, x):
        return self.net(x)


def manual(net: Net, x: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        t = torch.from_numpy(x)
        a0 = torch.relu(net.fc1(t))
        h = net.bn(a0)
        a1 = torch.relu(h * 2)
        main = a1 + 1
        return {
            "fc1": net.fc1(t), "act": a0, "bn": h, "tup[0]": h * 2, "tup[1][half]": h / 2, "act#1": a1,
            "pair[main]": main, "pair[aux]": a1.sum(1, keepdim=True), "fc2": net.fc2(main),
        }


def test_list_layers_names_calls_and_container_entries():
    table = hj.list_layers(Net(), X)
    rows = {r.name: r for r in table}
    assert table.names == [
        "fc1", "act", "drop", "bn", "tup[0]", "tup[1][half]", "act#1", "pair[main]", "pair[aux]", "fc2",
    ]
    assert rows["pair[aux]"].shape == (1,) and rows["fc1"].shape == (8,) and rows["fc1"].dtype == "float32"
    assert rows["unused"].shape is None and "never fired" in str(table)
    assert rows["act"].type == "ReLU" and "torch.nn.modules.activation.ReLU" in rows["act"].types
    assert rows["act"].layout == "channels_first" and rows["fc1"].depth == 1


def test_capture_equals_a_manual_forward_and_restores_modes(tmp_path):
    net = Net().train()
    net.bn.eval()  # a mixed state, restored exactly afterwards
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
    before = {name: m.training for name, m in net.named_modules()}
    names = list(manual(net, X[:2]))
    ds = hj.export_activations(net, X, labels=Y, layers=names, store=tmp_path / "a.zarr", batch_size=16, progress=False)
    ref = manual(net.eval(), X)
    for name in names:
        np.testing.assert_allclose(ds[name].sel(perturbation="clean").values, ref[name].numpy(), rtol=1e-5, atol=1e-6)
    net.train()
    net.bn.eval()
    assert {name: m.training for name, m in net.named_modules()} == before
    assert all(not m._forward_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


class InPlaceNet(nn.Module):
    """In-place operations on the input, on a captured output (ReLU) and in a residual sum."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(6, 8)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(8, 8)
        self.fc3 = nn.Linear(8, 3)
        self.forwards = 0

    def forward(self, x):
        self.forwards += 1
        x.mul_(2.0)
        h = self.act(self.fc1(x))
        r = self.fc2(h)
        r += h  # residual sum into the captured fc2 output
        return self.fc3(r)


def in_place_reference(net: InPlaceNet, x: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        pre = net.fc1(2.0 * torch.from_numpy(x))
        h = torch.relu(pre)
        r = net.fc2(h)
        return {"fc1": pre.numpy(), "act": h.numpy(), "fc2": r.numpy(), "fc3": net.fc3(r + h).numpy()}


def test_outputs_and_inputs_changed_in_place_keep_their_values(tmp_path):
    """Later in-place operations neither rewrite stored outputs nor reach the caller's inputs."""
    net = InPlaceNet()
    x = X.copy()
    noise = hj.gaussian(sigma=0.1)
    ds = hj.export_activations(
        net, x, layers=["fc1", "act", "fc2", "fc3"], perturbations=[noise],
        store=tmp_path / "a.zarr", batch_size=16, progress=False,
    )
    np.testing.assert_array_equal(x, X)  # the caller's array, untouched
    ref = in_place_reference(net, X)
    assert (ref["fc1"] < 0).any()  # the in-place ReLU had something to change
    for name, want in ref.items():
        np.testing.assert_allclose(ds[name].sel(perturbation="clean").values, want, rtol=1e-5, atol=1e-6, err_msg=name)
    noisy = noise.apply_at(X, seed=0, start=0)
    np.testing.assert_allclose(
        ds["fc1"].sel(perturbation=noise.name).values, in_place_reference(net, np.asarray(noisy))["fc1"],
        rtol=1e-5, atol=1e-6,
    )
    # one listing pass, one probe of two samples before the first batch, 3 batches x 2 perturbations:
    # outputs about to be written in place are copied right then, no batch runs again
    assert net.forwards == 1 + 1 + 3 * 2


class Scratch(nn.Module):
    """Returns its input copied into a view of its own buffer, which every pass rewrites."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("buffer", torch.zeros(N, width))

    def forward(self, x):
        out = self.buffer[: len(x)]
        out.copy_(x)
        return out


def test_outputs_living_in_module_state_are_copied():
    """A view of state that the next pass rewrites would change while the writer still holds it."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), Scratch(8), nn.Linear(8, 3))
    capture = ADAPTER.capture(net, ["0", "1"])
    with capture as run:
        first = run(X[:16])
        second = run(X[16:32])
    assert capture.copied == {"1"}  # the Linear output is fresh in every pass
    with torch.no_grad():
        for got, rows in [(first, X[:16]), (second, X[16:32])]:
            want = net[0](torch.from_numpy(rows)).numpy()
            np.testing.assert_allclose(got["0"], want, rtol=1e-6)
            np.testing.assert_allclose(got["1"], want, rtol=1e-6)


class Counting(nn.Module):
    """A Linear that counts the samples it sees."""

    def __init__(self):
        super().__init__()
        self.fc, self.seen = nn.Linear(6, 3), 0

    def forward(self, x):
        self.seen += len(x)
        return self.fc(x)


def test_the_check_for_module_state_costs_two_samples(tmp_path):
    """One listing pass and one probe, each of two samples, on top of the exported samples."""
    net = Counting()
    hj.export_activations(net, X, layers=["fc"], store=tmp_path / "a.zarr", batch_size=16, progress=False)
    assert net.seen == N + 2 + 2


class Resizing(nn.Module):
    """Keeps a buffer per batch size and returns a view of it: state the two-sample probe cannot see."""

    def __init__(self):
        super().__init__()
        self.buffer = torch.zeros(0, 6)

    def forward(self, x):
        if len(self.buffer) != len(x):
            self.buffer = torch.zeros(len(x), 6)
        self.buffer.copy_(x)
        return self.buffer


def test_state_the_probe_missed_stops_the_export():
    capture = ADAPTER.capture(nn.Sequential(Resizing()), ["0"])
    with capture as run:
        run(X[:16])  # the probe (2 samples) and this batch got buffers of their own
        with pytest.raises(RuntimeError, match=r"layers \['0'\] returned, for one batch, the memory"):
            run(X[16:32])


class Writes(nn.Module):
    """Writes into captured outputs through __setitem__ and out=, after their hooks ran."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 4), nn.Linear(6, 4)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        a[:, 0] = 0.0
        torch.mul(b, 2.0, out=b)
        return a + b


def test_writes_by_setitem_and_out_are_copied_first():
    net = Writes()
    with ADAPTER.capture(net, ["a", "b"]) as run:
        got = run(X)
    with torch.no_grad():
        for name in ("a", "b"):
            np.testing.assert_allclose(got[name], getattr(net, name)(torch.from_numpy(X)).numpy(), rtol=1e-6)


def test_captured_outputs_are_views_when_nothing_changes_them():
    """Outputs nothing changes later are not copied (no extra pass, no copy)."""
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    capture = ADAPTER.capture(net, ["0", "1"])
    with capture as run:
        first, second = run(X), run(X)
    assert capture.copied == set()
    np.testing.assert_array_equal(first["1"], np.maximum(first["0"], 0))
    assert not np.shares_memory(first["0"], second["0"])  # each batch has its own outputs


def test_hooks_are_removed_after_an_error(tmp_path):
    net = Net()
    bad = X.copy()
    bad[21, 0] = np.nan
    with pytest.raises(ValueError, match=r"layer 'fc1' produced NaN or Inf for sample 21 \(perturbation 'clean'\)"):
        hj.export_activations(net, bad, layers=["fc1", "fc2"], store=tmp_path / "a.zarr", batch_size=8, progress=False)
    assert all(not m._forward_hooks for m in net.modules())


def test_selection_by_module_class_and_type_name():
    table = hj.list_layers(Net(), X)
    from holejax.capture import select_layers

    assert [r.name for r in select_layers(table, nn.ReLU)] == ["act", "act#1"]
    assert [r.name for r in select_layers(table, "BatchNorm1d")] == ["bn"]
    assert [r.name for r in select_layers(table, nn.modules.batchnorm._BatchNorm)] == ["bn"]


def test_default_layers():
    from holejax.capture import select_layers

    names = [r.name for r in select_layers(hj.list_layers(Net(), X), None)]
    assert names == ["fc1", "act", "bn", "tup[0]", "act#1", "pair[main]", "fc2"]


def test_never_fired_module_of_a_fused_path(tmp_path):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    model = nn.Sequential(nn.Linear(6, 8), layer)
    tokens = RNG.normal(size=(4, 5, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=r"'1.self_attn.out_proj'.*never fired"):
        hj.export_activations(model, tokens, layers=["1.self_attn.out_proj"], store=tmp_path / "a.zarr")
    assert not (tmp_path / "a.zarr").exists()


class Branchy(nn.Module):
    """``branch`` runs only for batches whose first input is positive."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.branch = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        return self.branch(h) if x[0, 0] > 0 else h


def test_layer_that_stops_firing(tmp_path):
    x = np.abs(X)
    x[16:, 0] = -1.0
    with pytest.raises(ValueError, match=r"layer 'branch' did not fire for samples 16\.\.31"):
        hj.export_activations(Branchy(), x, layers=["branch"], store=tmp_path / "a.zarr", batch_size=16, progress=False)


def test_dataloader_inputs_equal_array_inputs(tmp_path):
    net = Net()
    ref = hj.export_activations(net, X, labels=Y, layers=["fc2"], store=tmp_path / "a.zarr", batch_size=16, progress=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), batch_size=7)
    ds = hj.export_activations(net, loader, layers=["fc2"], store=tmp_path / "b.zarr", batch_size=16, progress=False)
    np.testing.assert_array_equal(ds["label"].values, Y)
    np.testing.assert_allclose(ds["fc2"].values, ref["fc2"].values, rtol=1e-6)
    # torch tensors as arrays, too
    ds = hj.export_activations(net, torch.from_numpy(X), layers=["fc2"], store=tmp_path / "c.zarr", progress=False)
    np.testing.assert_allclose(ds["fc2"].values, ref["fc2"].values, rtol=1e-6)


def test_input_dtypes_follow_the_model():
    net = Net().double()
    table = hj.list_layers(net, X)  # float32 inputs into a float64 model
    assert {r.dtype for r in table if r.fired} == {"float64"}
    emb = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    tokens = RNG.integers(0, 10, size=(5, 3))
    assert hj.predict(emb, tokens).shape == (5, 2)


def test_predict_returns_the_first_tensor_of_the_output():
    net = OutputNet()
    logits = hj.predict(net, X, batch_size=9)
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(X)).logits.numpy()
    np.testing.assert_allclose(logits, ref, rtol=1e-5, atol=1e-6)


def test_compression_goes_through_the_compress_module(monkeypatch, tmp_path):
    calls = []

    def apply_compression(model, perturbation):
        calls.append(perturbation.name)
        pruned = Net()
        pruned.load_state_dict(model.state_dict())
        with torch.no_grad():
            pruned.fc2.weight.zero_()
        return pruned

    from holejax_torch import adapter

    monkeypatch.setattr(adapter, "apply_compression", apply_compression)
    net = Net()
    p = hj.perturb.global_l1_prune(0.5)
    ds = hj.export_activations(net, X, layers=["fc2"], perturbations=[p], store=tmp_path / "a.zarr", progress=False)
    assert calls == [p.name]
    np.testing.assert_allclose(ds["fc2"].sel(perturbation=p.name).values, np.broadcast_to(net.fc2.bias.detach().numpy(), (N, 3)), rtol=1e-6)
    assert net.fc2.weight.abs().sum() > 0  # the model itself is untouched


def test_global_avg_pooling_of_feature_maps(tmp_path):
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3))
    imgs = RNG.normal(size=(10, 1, 6, 6)).astype(np.float32)
    ds = hj.export_activations(cnn, imgs, pooling="auto", store=tmp_path / "a.zarr", progress=False)
    with torch.no_grad():
        ref = cnn(torch.from_numpy(imgs)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(ds["2"].values[0], ref, rtol=1e-5, atol=1e-6)
    assert ds["2"].attrs["pooling"] == "global_avg" and list(ds["2"].attrs["shape"]) == [5, 4, 4]
