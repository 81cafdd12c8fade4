"""Capture PyTorch activations with forward hooks, in eval mode without gradients.

A forward hook sees a module's output before the rest of the forward pass,
which may still change it in place (``nn.ReLU(inplace=True)`` after a
``Linear``, ``out += identity`` in a residual block). Captured outputs are
kept as views and copied only when something is about to write into them:
while the model runs, a ``torch.overrides.TorchFunctionMode`` sees every
torch function call, and one that writes in place (a method ending in
``_``, ``__setitem__``, ``out=``, ``inplace=True``) into the memory of a
captured output copies that output first. Writes that bypass torch's
Python API (TorchScript, custom C++ kernels) are not seen.

Outputs can also live in module state that the next pass rewrites (a layer
returning a view of its own buffer). Before the first batch the capture
runs its first two samples once: an output of the first batch that shares
memory with the same layer's output of that probe lives in state and is
copied from then on. Later passes check the same against the pass before
and stop with an error if a pass rewrote the previous batch's outputs.
The model never sees the caller's input memory, so an in-place operation on
its input cannot change the caller's data either.

Model inputs arrive as an array (``model(x)``), a tuple of arrays
(``model(*x)``) or a dict of arrays (``model(**x)``; token ids and
``attention_mask`` of a Hugging Face model).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from holejax.capture.inputs import ModelInput, n_samples_of, slice_samples
from holejax.capture.layers import LayerInfo, class_names, layer_name, output_leaves, split_layer_name
from holejax_torch.compress import apply_compression

__all__ = ["TorchAdapter", "written_tensors"]

PROBE_SAMPLES = 2
"""Samples of the first batch run once before it, to find outputs kept in module state."""


def _torch():
    import torch  # optional framework: torch

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


def _reference(model: Any) -> Any:
    """The model's first floating parameter (or buffer): its device and dtype are the inputs'."""
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    return ref if ref is not None else next((b for b in model.buffers() if b.is_floating_point()), None)


def _as_tensor(ref: Any, array: Any) -> Any:
    """A tensor on the model's device that shares no memory with ``array``.

    Floating inputs take the model's floating dtype.
    """
    torch = _torch()
    if isinstance(array, torch.Tensor):
        given, callers = array, True
    else:
        contiguous = np.ascontiguousarray(array)
        given, callers = torch.from_numpy(contiguous), np.may_share_memory(contiguous, array)
    if given.is_floating_point():
        dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        x = given.to(device=ref.device if ref is not None else given.device, dtype=dtype)
    else:
        x = given if ref is None else given.to(ref.device)
    if callers and x.device == given.device and x.untyped_storage().data_ptr() == given.untyped_storage().data_ptr():
        x = x.clone()  # in-place operations on the input must not reach the caller's data
    return x


def _call(model: Any, batch: ModelInput) -> Any:
    """``model(x)``, ``model(*x)`` or ``model(**x)`` on tensors of the model's device."""
    ref = _reference(model)
    if isinstance(batch, dict):
        return model(**{k: _as_tensor(ref, v) for k, v in batch.items()})
    if isinstance(batch, tuple):
        return model(*(_as_tensor(ref, v) for v in batch))
    return model(_as_tensor(ref, batch))


def _storage(t: Any) -> int:
    return t.untyped_storage().data_ptr()


def written_tensors(func: Any, args: Sequence[Any], kwargs: dict) -> list[Any]:
    """The tensors a torch function call writes into in place.

    A method or function whose name ends in a single ``_`` (``add_``,
    ``copy_``, ``relu_``; ``x += y`` arrives as ``add_``) and
    ``__setitem__`` write into their first argument; ``inplace=True``
    (``F.relu``, ``nn.ReLU(inplace=True)``) does too; ``out=`` names the
    tensors written.

    Example:
        >>> import torch
        >>> x = torch.zeros(2)
        >>> [t is x for t in written_tensors(torch.Tensor.add_, (x, 1), {})], written_tensors(torch.add, (x, 1), {})
        ([True], [])
    """
    name = getattr(func, "__name__", "")
    targets = []
    if args and ((name.endswith("_") and not name.endswith("__")) or name == "__setitem__" or kwargs.get("inplace") is True):
        targets.append(args[0])
    out = kwargs.get("out")
    if out is not None:
        targets.extend(out if isinstance(out, (tuple, list)) else [out])
    return [t for t in targets if _is_tensor(t)]


_MODE: list[type] = []  # the mode class, defined once torch is imported


def _copy_on_write_mode(capture: "_Capture") -> Any:
    """A TorchFunctionMode that copies captured outputs before an in-place write reaches them."""
    if not _MODE:
        from torch.overrides import TorchFunctionMode  # optional framework: torch

        class CopyOnWrite(TorchFunctionMode):
            def __init__(self, capture: "_Capture"):
                super().__init__()
                self.capture = capture

            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if self.capture.watched:
                    for t in written_tensors(func, args, kwargs):
                        self.capture.copy_before_write(t)
                return func(*args, **kwargs)

        _MODE.append(CopyOnWrite)
    return _MODE[0](capture)


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
        self.out: dict[str, Any] = {}  # name -> captured tensor (a view until something writes into it)
        self.watched: dict[int, set[str]] = {}  # storage pointer -> names of this pass's views on it
        self.copied: set[str] = set()  # layers written in place after their hook, or kept in module state
        self.state: set[str] = set()  # layers whose outputs live in module state: copied in the hook
        self.previous: dict[str, Any] = {}  # the outputs of the pass before (kept alive: their memory is theirs)
        self.previous_was_probe = False
        self.rewritten: list[str] = []
        self.probed = False
        self.stack = contextlib.ExitStack()

    def copy_before_write(self, target: Any) -> None:
        """Copy the captured outputs on ``target``'s memory before a write changes them."""
        names = self.watched.pop(_storage(target), None)
        for name in names or ():
            self.out[name] = self.out[name].clone()
            self.copied.add(name)

    def _hook(self, path: str) -> Callable:
        wanted = self.wanted[path]

        def hook(module: Any, args: Any, output: Any) -> None:
            call = self.calls.get(path, 0)
            self.calls[path] = call + 1
            picks = wanted.get(call)
            if picks is None:
                return
            for pick, leaf in output_leaves(output, _is_tensor):
                if pick not in picks:
                    continue
                name = picks[pick]
                kept = leaf.detach()
                before = self.previous.get(name)
                if before is not None and _storage(before) == _storage(kept) and name not in self.state:
                    self.state.add(name)  # the pass before returned the same memory: module state
                    if not self.previous_was_probe:
                        self.rewritten.append(name)
                if name in self.state:
                    kept = kept.clone()
                    self.copied.add(name)
                else:
                    self.watched.setdefault(_storage(kept), set()).add(name)
                self.out[name] = kept

        return hook

    def __enter__(self) -> Callable[[ModelInput], dict[str, np.ndarray]]:
        self.stack.enter_context(_eval_mode(self.model))
        for path, module in self.modules.items():
            handle = module.register_forward_hook(self._hook(path))
            self.stack.callback(handle.remove)
        return self.run

    def __exit__(self, *exc: Any) -> None:
        self.previous = {}
        self.stack.close()

    def _forward(self, batch: ModelInput) -> dict[str, Any]:
        self.calls, self.out, self.watched = {}, {}, {}
        try:
            with _torch().no_grad(), _copy_on_write_mode(self):
                _call(self.model, batch)
        finally:
            self.watched = {}
        out, self.out = self.out, {}
        return out

    def run(self, batch: ModelInput) -> dict[str, np.ndarray]:
        """The captured outputs of one batch, as numpy arrays.

        The first call first runs the batch's first two samples (the probe),
        so outputs kept in module state are found before any is handed on.

        Raises:
            RuntimeError: a pass returned, for some layer, the memory of the
                previous pass's output (module state the probe missed).
        """
        if not self.probed:
            self.probed = True
            self.previous = self._forward(slice_samples(batch, 0, min(PROBE_SAMPLES, n_samples_of(batch))))
            self.previous_was_probe = True
        out = self._forward(batch)
        self.previous, self.previous_was_probe = out, False
        if self.rewritten:
            raise RuntimeError(
                f"layers {self.rewritten} returned, for one batch, the memory they had returned for the batch "
                "before (a view of module state reallocated with the batch size, which the probe of the first "
                "batch did not see); the previous batch's outputs may have changed before they were stored. "
                "Capture another layer (the next module's output), or export with one batch_size that divides "
                "the sample count."
            )
        return {name: _numpy(t) for name, t in out.items()}


class TorchAdapter:
    """The PyTorch adapter (entry point ``torch``): any ``torch.nn.Module``.

    Layers are module outputs named by ``named_modules()`` paths; each
    requested module gets a forward hook, the model runs in eval mode without
    gradients, and every submodule's train/eval flag is restored afterwards.
    Inputs move to the device of the model's parameters; floating inputs
    take their dtype. Model inputs that are tuples are passed as positional
    arguments, dicts as keyword arguments.
    """

    name = "torch"
    layout = "channels_first"

    def accepts(self, model: Any) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    def model_class(self, model: Any) -> str:
        return type(model).__name__

    def list_layers(self, model: Any, example: ModelInput) -> list[LayerInfo]:
        n = n_samples_of(example)
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
                _call(model, example)

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

    def predict(self, model: Any, batch: ModelInput) -> np.ndarray:
        with _eval_mode(model), _torch().inference_mode():
            out = _call(model, batch)
        leaves = output_leaves(out, _is_tensor)
        if not leaves:
            raise TypeError(f"{type(model).__name__} returned {type(out).__name__}, which holds no tensor.")
        return _numpy(leaves[0][1])

    def compress(self, model: Any, perturbation: Any) -> Any:
        return apply_compression(model, perturbation)
