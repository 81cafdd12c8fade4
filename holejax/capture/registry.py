"""The adapter protocol and the entry-point registry that finds an adapter for a model.

Framework code lives in separate packages (``holejax_torch``,
``holejax_flax``) that register an object following :class:`Adapter` in the
entry-point group ``holejax.adapters``::

    [project.entry-points."holejax.adapters"]
    torch = "holejax_torch:ADAPTER"

The core asks each registered adapter whether it accepts the model and never
imports a framework itself.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import numpy as np

from holejax.capture.inputs import ModelInput
from holejax.capture.layers import LayerInfo

__all__ = ["ENTRY_POINT_GROUP", "Adapter", "adapters", "find_adapter"]

ENTRY_POINT_GROUP = "holejax.adapters"

_INSTALL_HINTS = {
    "torch": "PyTorch nn.Module: pip install 'holejax[torch]'",
    "flax": "Flax: pip install 'holejax[flax]'; pass a Linen module as (module, variables) and an NNX module as itself",
}


@runtime_checkable
class Adapter(Protocol):
    """What a framework adapter provides.

    Batches cross the boundary as *model inputs* (see
    ``holejax.capture.inputs``) in the framework's own layout: a numpy array
    ``(sample, ...)``, called as ``model(x)``; a tuple of such arrays,
    called as ``model(*x)``; or a dict of them, called as ``model(**x)``
    (token ids and ``attention_mask``). Every array holds the same samples
    along axis 0. Outputs come back as numpy arrays. Pooling over tokens,
    with the attention mask, happens in the core, not in adapters.
    """

    name: str
    """Framework name recorded in the store (``"torch"``, ``"flax"``)."""

    def accepts(self, model: Any) -> bool:
        """Whether ``model`` belongs to this framework (never imports the framework)."""

    def model_class(self, model: Any) -> str:
        """Class name of the model, recorded in the store."""

    def list_layers(self, model: Any, example: ModelInput) -> list[LayerInfo]:
        """Run one inference forward pass on the model input ``example`` and describe every output.

        Rows of layers that fired come first, in execution order; then one
        row (``shape=None``) per module that produced no output.
        """

    def capture(self, model: Any, names: Sequence[str]) -> AbstractContextManager[Callable[[ModelInput], dict[str, np.ndarray]]]:
        """Context manager giving ``run(batch) -> {name: (sample, *shape) array}`` in inference mode.

        ``batch`` is a model input; outputs must not change after ``run``
        returns (later passes must not rewrite them).

        A layer that did not fire in a batch is absent from the result.
        """

    def predict(self, model: Any, batch: ModelInput) -> np.ndarray:
        """The model output (logits) for one batch (a model input), in inference mode."""

    def compress(self, model: Any, perturbation: Any) -> Any:
        """A compressed copy of ``model`` (pruning, quantization); never in place."""


_loaded: dict[str, Any] = {}
_failed: dict[str, str] = {}


def _entry_points() -> Sequence[importlib.metadata.EntryPoint]:
    return tuple(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def adapters() -> dict[str, Adapter]:
    """The installed adapters that load, by entry-point name.

    Entry points that fail to load are skipped and remembered for the error
    message of :func:`find_adapter`.
    """
    for ep in _entry_points():
        if ep.name in _loaded or ep.name in _failed:
            continue
        try:
            _loaded[ep.name] = ep.load()
        except Exception as err:  # a broken plugin must not hide the others
            _failed[ep.name] = f"{type(err).__name__}: {err}"
    return dict(_loaded)


def _iter_candidates(candidates: Sequence[Adapter] | None) -> Iterator[Adapter]:
    yield from (candidates if candidates is not None else adapters().values())


def find_adapter(model: Any, candidates: Sequence[Adapter] | None = None) -> Adapter:
    """The first adapter that accepts ``model``.

    Adapters already loaded are asked first; the installed entry points are
    scanned only when none of them accepts the model, so a plugin
    installed while the process runs is still found.

    Args:
        model: a PyTorch ``nn.Module``, a Flax Linen ``(module, variables)``
            pair, a Flax NNX module, or anything another installed adapter
            accepts.
        candidates: adapters to try instead of the installed ones.

    Raises:
        TypeError: no adapter accepts the model; the message names the
            installed adapters and how to install the missing ones.
    """
    if candidates is None:  # adapters loaded before: no scan of the installed distributions
        for adapter in _loaded.values():
            if adapter.accepts(model):
                return adapter
    for adapter in _iter_candidates(candidates):
        if adapter.accepts(model):
            return adapter
    installed = sorted(adapters()) if candidates is None else [a.name for a in candidates]
    broken = "".join(f"\n  adapter {k!r} failed to load: {v}" for k, v in sorted(_failed.items()))
    hints = "\n  ".join(_INSTALL_HINTS.values())
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    raise TypeError(
        f"model of type {kind} is not supported by any installed holejax adapter "
        f"(installed: {installed or 'none'}).{broken}\nSupported models:\n  {hints}"
    )
