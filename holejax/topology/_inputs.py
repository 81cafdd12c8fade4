"""Layer arrays from a ``{layer: array}`` mapping, shared by the topology entry points."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["mapping_layers"]


def mapping_layers(arrays: Mapping, layers: Sequence[str] | None, argument: str) -> list[tuple[str, np.ndarray]]:
    """``(name, array)`` pairs of ``layers`` (all, in the mapping's order, for ``None``).

    Raises a KeyError naming ``argument`` and the layers it holds when one is missing.

    Example:
        >>> [(n, a.shape) for n, a in mapping_layers({"a": [[1.0]], "b": [[2.0]]}, ["b"], "activations")]
        [('b', (1, 1))]
    """
    names = list(arrays) if layers is None else list(layers)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise KeyError(f"layers {missing} are not in {argument}; it holds {list(arrays)}.")
    return [(str(n), np.asarray(arrays[n])) for n in names]
