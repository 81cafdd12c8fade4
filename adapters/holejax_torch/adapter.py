"""Capture PyTorch activations with forward hooks, in eval mode without gradients.

A forward hook sees a module's output before the rest of the forward pass,
which may still change it in place (``nn.ReLU(inplace=True)`` after a
``Linear``, ``out += identity`` in a residual block). Captured outputs are
therefore views checked against their tensor version counters after the
pass: a layer whose output changed is copied from then on, and that batch
runs again. The first batch runs twice, so outputs that live in module
state and change in the next pass are found too. The model never sees the
caller's input memory, so an in-place operation on its input cannot change
the caller's data either.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from holejax.capture.layers import LayerInfo, class_names, layer_name, output_leaves, split_layer_name

__all__ = ["TorchAdapter"]


def _torch():
    import torch

    return torch


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _numpy(t: Any) -> np.ndarray:
    """A CPU numpy array of a tensor (a view of CPU tensors); half precision becomes float32."""
    torch = _torch()
    t = t.detach()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.cpu().numpy()


def _dtype_name(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _as_input(model: Any, batch: np.ndarray) -> Any:
    """A tensor on the model's device that shares no memory with ``batch``.

    Floating inputs take the model's floating dtype.
    """
    torch = _torch()
    if isinstance(batch, torch.Tensor):
        given, callers = batch, True
    else:
        contiguous = np.ascontiguousarray(batch)
        given, callers = torch.from_numpy(contiguous), np.may_share_memory(contiguous, batch)
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    if ref is None:
        ref = next((b for b in model.buffers() if b.is_floating_point()), None)
    if given.is_floating_point():
        dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        x = given.to(device=ref.device if ref is not None else given.device, dtype=dtype)
    else:
        x = given if ref is None else given.to(ref.device)
    if callers and x.device == given.device and x.untyped_storage().data_ptr() == given.untyped_storage().data_ptr():
        x = x.clone()  # in-place operations on the input must not reach the caller's data
    return x


class _Capture:
    """Hooks on the modules of the requested layers; ``run(batch)`` returns their outputs."""

    def __init__(self, model: Any, names: Sequence[str]):
        self.model = model
        self.wanted: dict[str, dict[int, dict[str, str]]] = {}
        for name in names:
            path, call, pick = split_layer_name(name)
            self.wanted.setdefault(path, {}).setdefault(call, {})[pick] = name
        modules = dict(model.named_modules())
        unknown = [p for p in self.wanted if p not in modules or p == ""]
        if unknown:
            raise ValueError(f"layers {unknown} are not modules of this {type(model).__name__}.")
        self.modules = {p: modules[p] for p in self.wanted}
        self.calls: dict[str, int] = {}
        self.out: dict[str, tuple[Any, int]] = {}  # name -> (tensor, its version when captured)
        self.copied: set[str] = set()  # layers whose outputs change after their hook ran
        self.checked_across_passes = False
        self.stack = contextlib.ExitStack()

    def _hook(self, path: str) -> Callable:
        wanted = self.wanted[path]

        def hook(module: Any, args: Any, output: Any) -> None:
            call = self.calls.get(path, 0)
            self.calls[path] = call + 1
            picks = wanted.get(call)
            if picks is None:
                return
            for pick, leaf in output_leaves(output, _is_tensor):
                if pick in picks:
                    name = picks[pick]
                    kept = leaf.detach()  # a view: shares the version counter
                    if name in self.copied:
                        kept = kept.clone()
                    self.out[name] = (kept, kept._version)

        return hook

    def __enter__(self) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        self.stack.enter_context(_eval_mode(self.model))
        for path, module in self.modules.items():
            handle = module.register_forward_hook(self._hook(path))
            self.stack.callback(handle.remove)
        return self.run

    def __exit__(self, *exc: Any) -> None:
        self.stack.close()

    def _forward(self, batch: np.ndarray) -> dict[str, tuple[Any, int]]:
        self.calls, self.out = {}, {}
        with _torch().no_grad():  # not inference_mode: its tensors keep no version counters
            self.model(_as_input(self.model, batch))
        out, self.out = self.out, {}
        return out

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The captured outputs of one batch, as numpy arrays.

        Outputs changed after their hook ran are copied from then on, and
        the batch runs again. The first batch also runs a second time:
        outputs of the first pass that the second pass changes live in
        state that outlives a pass (a module writing into its own buffer),
        and a view of them would change while the writer still holds it.
        """
        while True:
            out = self._forward(batch)
            if not self.checked_across_passes:
                self.checked_across_passes = True
                self._forward(batch)
            changed = {name for name, (t, version) in out.items() if t._version != version}
            if not changed - self.copied:
                return {name: _numpy(t) for name, (t, _) in out.items()}
            self.copied |= changed


class TorchAdapter:
    """The PyTorch adapter (entry point ``torch``): any ``torch.nn.Module``.

    Layers are module outputs named by ``named_modules()`` paths; each
    requested module gets a forward hook, the model runs in eval mode without
    gradients, and every submodule's train/eval flag is restored afterwards.
    Inputs move to the device of the model's parameters; floating inputs
    take their dtype.
    """

    name = "torch"
    layout = "channels_first"

    def accepts(self, model: Any) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    def model_class(self, model: Any) -> str:
        return type(model).__name__

    def list_layers(self, model: Any, example: np.ndarray) -> list[LayerInfo]:
        n = len(example)
        records: list[tuple[str, int, Any, list[tuple[str, Any]]]] = []
        calls: dict[str, int] = {}
        modules = [(p, m) for p, m in model.named_modules() if p]

        def make_hook(path: str) -> Callable:
            def hook(module: Any, args: Any, output: Any) -> None:
                call = calls.get(path, 0)
                calls[path] = call + 1
                leaves = [(pick, tuple(t.shape), _dtype_name(t)) for pick, t in output_leaves(output, _is_tensor)]
                records.append((path, call, module, leaves))

            return hook

        with contextlib.ExitStack() as stack:
            stack.enter_context(_eval_mode(model))
            for path, module in modules:
                stack.callback(module.register_forward_hook(make_hook(path)).remove)
            with _torch().inference_mode():
                model(_as_input(model, example))

        infos = []
        for path, call, module, leaves in records:
            for pick, shape, dtype in leaves:
                if not shape or shape[0] != n:
                    continue  # not per-sample (no leading sample axis)
                infos.append(
                    LayerInfo(
                        layer_name(path, call, pick), type(module).__name__, shape[1:], dtype,
                        class_names(type(module)), path.count(".") + 1, self.layout,
                    )
                )
        infos += [
            LayerInfo(path, type(m).__name__, None, None, class_names(type(m)), path.count(".") + 1, self.layout)
            for path, m in modules
            if path not in calls
        ]
        return infos

    def capture(self, model: Any, names: Sequence[str]) -> _Capture:
        return _Capture(model, names)

    def predict(self, model: Any, batch: np.ndarray) -> np.ndarray:
        with _eval_mode(model), _torch().inference_mode():
            out = model(_as_input(model, batch))
        leaves = output_leaves(out, _is_tensor)
        if not leaves:
            raise TypeError(f"{type(model).__name__} returned {type(out).__name__}, which holds no tensor.")
        return _numpy(leaves[0][1])

    def compress(self, model: Any, perturbation: Any) -> Any:
        from holejax_torch.compress import apply_compression

        return apply_compression(model, perturbation)
