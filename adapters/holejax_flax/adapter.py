"""Capture Flax activations: Linen through ``capture_intermediates``, NNX through ``nnx.capture``.

Both frameworks collect intermediates into a nested mapping: module path
parts, then ``"__call__"`` (the module's output, one tuple entry per call) or
the name a model gave to a value it stored with ``sow``. A layer name's path
walks that mapping; what it reaches says whether it is a module output or a
sown value, so a name alone is enough to find a layer again.

Capture runs under ``jax.jit``: Linen applies the module with
``mutable=["intermediates"]`` only (batch statistics are not updated), NNX
runs an ``eval()`` copy merged inside the traced function (the caller's
model is never changed). Batches smaller than the largest one seen are
padded to its size, so a short last batch does not compile again.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from holejax.capture.layers import SOWN, LayerInfo, class_names, layer_name, output_leaves, split_layer_name

__all__ = ["FlaxAdapter"]

LAYOUT = "channels_last"


def _is_array(x: Any) -> bool:
    """A jax array, a tracer, or the abstract value ``jax.eval_shape`` returns."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, (jax.Array, jax.ShapeDtypeStruct))


def _linen_parts(model: Any) -> tuple[Any, Any, dict] | None:
    """``(module, variables, apply_kwargs)`` for a Linen model, None for anything else."""
    linen = sys.modules.get("flax.linen")
    if linen is None:
        return None
    if isinstance(model, linen.Module):
        raise TypeError(
            f"model is a bare Flax Linen module ({type(model).__name__}); Linen keeps its weights "
            "apart, so pass model=(module, variables), e.g. (net, net.init(key, x)), or "
            "(module, variables, apply_kwargs) to add call arguments such as {'train': False}."
        )
    if isinstance(model, tuple) and len(model) in (2, 3) and isinstance(model[0], linen.Module):
        kwargs = dict(model[2]) if len(model) == 3 else {}
        if not isinstance(model[1], Mapping):
            raise TypeError(
                f"model=(module, variables) needs the variables mapping from module.init; got "
                f"{type(model[1]).__name__}."
            )
        return model[0], model[1], kwargs
    return None


def _is_nnx(model: Any) -> bool:
    nnx = sys.modules.get("flax.nnx")
    return nnx is not None and isinstance(model, nnx.Module)


# -- walking the intermediates mapping ----------------------------------------
def _step(node: Any, part: str) -> Any:
    if not isinstance(node, Mapping):
        return None
    if part in node:
        return node[part]
    if part.isdigit() and int(part) in node:  # NNX list indices
        return node[int(part)]
    return None


def _calls(intermediates: Mapping, path: str) -> tuple | None:
    """The outputs recorded at ``path``: one entry per call, or None."""
    node = intermediates
    for part in path.split("."):
        node = _step(node, part)
        if node is None:
            return None
    if isinstance(node, Mapping):
        node = node.get("__call__")
    if node is None:
        return None
    return node if isinstance(node, tuple) else (node,)


def _pick(intermediates: Mapping, names: Sequence[str]) -> dict[str, Any]:
    """``{name: array}`` for the requested layers present in ``intermediates``."""
    out = {}
    for name in names:
        path, call, pick = split_layer_name(name)
        calls = _calls(intermediates, path)
        if calls is None or call >= len(calls):
            continue
        leaf = dict(output_leaves(calls[call], _is_array)).get(pick)
        if leaf is not None:
            out[name] = leaf
    return out


def _sites(intermediates: Mapping, prefix: tuple = ()) -> Iterator[tuple[tuple, str, tuple]]:
    """``(module path, key, calls)`` for every record: key ``"__call__"`` or a sown name."""
    for key, value in intermediates.items():
        if isinstance(value, Mapping):
            yield from _sites(value, (*prefix, key))
        else:
            yield prefix, str(key), value if isinstance(value, tuple) else (value,)


# -- execution order ---------------------------------------------------------
def _execution_order(fn: Callable[[], Any], module_cls: type, path_of: Callable[[Any], tuple]) -> tuple[Any, list, dict]:
    """Run ``fn`` eagerly and record module returns and ``sow`` calls in order.

    Returns ``(fn(), [(path, key), ...], {path: module class})``; key is
    ``"__call__"`` for a module call (recorded when its outermost
    ``__call__`` returns) or the name given to ``sow``.
    """
    events: list[tuple[tuple, str]] = []
    classes: dict[tuple, type] = {}
    depth: dict[int, int] = {}

    def profiler(frame: Any, event: str, arg: Any) -> None:
        code = frame.f_code.co_name
        if code not in ("__call__", "sow") or event not in ("call", "return"):
            return
        module = frame.f_locals.get("self")
        if not isinstance(module, module_cls):
            return
        if code == "sow":
            name = frame.f_locals.get("name")
            if event == "return" and isinstance(name, str) and name != "__call__":
                events.append((path_of(module), name))
            return
        key = id(module)
        if event == "call":
            depth[key] = depth.get(key, 0) + 1
            return
        depth[key] = depth.get(key, 1) - 1
        if depth[key] == 0:
            path = path_of(module)
            events.append((path, "__call__"))
            classes.setdefault(path, type(module))

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        result = fn()
    finally:
        if previous is None or callable(previous):
            sys.setprofile(previous)
        else:  # a C-level profiler (cProfile) cannot be set back from Python: switch it on again
            sys.setprofile(None)
            enable = getattr(previous, "enable", None)
            if callable(enable):
                enable()
    return result, events, classes


def _infos(intermediates: Mapping, events: list, classes: dict, n: int, all_modules: dict) -> list[LayerInfo]:
    """The layer table from recorded intermediates, in the order of ``events``."""
    rank: dict[tuple, int] = {}
    seen: dict[tuple, int] = {}
    for i, site in enumerate(events):
        call = seen.get(site, 0)
        seen[site] = call + 1
        rank[(*site, call)] = i
    records = [
        (path, key, call, out)
        for path, key, calls in _sites(intermediates)
        if path != () or key != "__call__"  # not the model output
        for call, out in enumerate(calls)
    ]
    records.sort(key=lambda r: (rank.get(r[:3], len(events)), [str(p) for p in r[0]], r[1], r[2]))
    infos, fired = [], set()
    for path, key, call, out in records:
        parts = [str(p) for p in path]
        if key == "__call__":
            fired.add(path)
            cls = classes.get(path) or all_modules.get(path)
            kind, types = (cls.__name__, class_names(cls)) if cls else ("unknown", ())
        else:
            parts.append(key)
            kind, types = SOWN, (SOWN,)
        base, depth = ".".join(parts), len(parts)
        for pick, leaf in output_leaves(out, _is_array):
            shape = tuple(leaf.shape)
            if shape and shape[0] == n:  # per-sample outputs only
                infos.append(
                    LayerInfo(layer_name(base, call, pick), kind, shape[1:], str(leaf.dtype), types, depth, LAYOUT)
                )
    for path, cls in all_modules.items():
        if path and path not in fired:
            name = ".".join(str(p) for p in path)
            infos.append(
                LayerInfo(name, cls.__name__ if cls else "unknown", None, None,
                          class_names(cls) if cls else (), len(path), LAYOUT)
            )
    return infos


# -- Linen -------------------------------------------------------------------
def _linen_param_paths(variables: Mapping) -> dict[tuple, None]:
    """Paths of the modules that own parameters (their class is unknown until they run)."""
    paths: dict[tuple, None] = {}

    def walk(node: Mapping, prefix: tuple) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(value, (*prefix, key))
            else:
                paths[prefix] = None

    walk(variables.get("params", {}), ())
    return paths


def _shapes(tree: Any) -> tuple:
    """A hashable key of a pytree's structure and its leaves' shapes and dtypes."""
    import jax

    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(np.shape(a)), str(getattr(a, "dtype", type(a).__name__))) for a in leaves)


_MEMO_SIZE = 32


def _memo(cache: dict, key: tuple, build: Callable[[], Any]) -> Any:
    """``cache[key]``, built on a miss; the oldest entry goes beyond 32, and an
    unhashable key (call arguments such as a list) is built without caching."""
    try:
        hit = cache.get(key)
    except TypeError:
        return build()
    if hit is None:
        hit = cache[key] = build()
        while len(cache) > _MEMO_SIZE:
            cache.pop(next(iter(cache)))
    return hit


_LISTS: dict = {}
_CAPTURE_FNS: dict = {}
_PREDICT_FNS: dict = {}


def _linen_key(module: Any, kwargs: dict) -> tuple:
    """The part of a cache key that names a Linen model: module and call arguments."""
    return "linen", module, tuple(sorted(kwargs.items()))


def _linen_list(module: Any, variables: Any, kwargs: dict, example: np.ndarray) -> list[LayerInfo]:
    """The layer table of a Linen model. It depends on shapes only (the forward
    pass is traced, not run), so it is kept per module, call arguments and shapes."""
    import flax.linen as nn
    import jax

    def forward() -> Any:  # traced for shapes only: nothing is computed
        return jax.eval_shape(
            lambda v, x: module.apply(v, x, capture_intermediates=True, mutable=["intermediates"], **kwargs),
            variables, example,
        )

    def build() -> tuple[LayerInfo, ...]:
        (_, state), events, classes = _execution_order(forward, nn.Module, lambda m: tuple(m.scope.path))
        modules = {**_linen_param_paths(variables), **classes}
        return tuple(_infos(state.get("intermediates", {}), events, classes, len(example), modules))

    key = (*_linen_key(module, kwargs), _shapes(variables), example.shape, str(example.dtype))
    return list(_memo(_LISTS, key, build))


def _linen_runner(module: Any, variables: Any, kwargs: dict, names: Sequence[str]) -> Callable:
    """``run(x) -> {name: array}`` for a Linen model; the compiled function is shared by
    every export of the same module, call arguments and layers."""
    key = (*_linen_key(module, kwargs), tuple(names))
    return functools.partial(_memo(_CAPTURE_FNS, key, lambda: _linen_capture_fn(module, kwargs, names)), variables)


def _linen_capture_fn(module: Any, kwargs: dict, names: Sequence[str]) -> Callable:
    import jax

    wanted = {tuple(split_layer_name(n)[0].split(".")) for n in names}

    def keep(mdl: Any, method: str) -> bool:
        return method == "__call__" and tuple(mdl.scope.path) in wanted

    @jax.jit
    def run(variables: Any, x: Any) -> dict:
        _, state = module.apply(variables, x, capture_intermediates=keep, mutable=["intermediates"], **kwargs)
        return _pick(state.get("intermediates", {}), names)

    return run


# -- NNX ---------------------------------------------------------------------
def _nnx_modules(model: Any) -> dict[tuple, type]:
    from flax import nnx

    return {tuple(path): type(m) for path, m in nnx.iter_modules(model)}


def _nnx_list(model: Any, example: np.ndarray) -> list[LayerInfo]:
    """The layer table of an NNX model, kept per graph and shapes like :func:`_linen_list`."""
    import jax
    from flax import nnx

    graphdef, state = nnx.split(model)

    def build() -> tuple[LayerInfo, ...]:
        paths: dict[int, tuple] = {}

        def forward(state: Any, x: Any) -> Any:
            copy = nnx.merge(graphdef, state)
            copy.eval()
            paths.update({id(m): tuple(path) for path, m in nnx.iter_modules(copy)})
            _, inter = nnx.capture(copy, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)
            return nnx.to_pure_dict(inter)

        inter, events, classes = _execution_order(
            lambda: jax.eval_shape(forward, state, example),  # traced for shapes only: nothing is computed
            nnx.Module,
            lambda m: paths.get(id(m), ("?",)),
        )
        return tuple(_infos(inter, events, classes, len(example), _nnx_modules(model)))

    key = ("nnx", graphdef, _shapes(state), example.shape, str(example.dtype))
    return list(_memo(_LISTS, key, build))


def _nnx_runner(model: Any, names: Sequence[str]) -> Callable:
    """``run(x) -> {name: array}`` for an NNX model, compiled once per graph and layers."""
    from flax import nnx

    graphdef, state = nnx.split(model)
    key = ("nnx", graphdef, tuple(names))
    return functools.partial(_memo(_CAPTURE_FNS, key, lambda: _nnx_capture_fn(graphdef, names)), state)


def _nnx_capture_fn(graphdef: Any, names: Sequence[str]) -> Callable:
    import jax
    from flax import nnx

    @jax.jit
    def run(state: Any, x: Any) -> dict:
        copy = nnx.merge(graphdef, state)
        copy.eval()
        _, inter = nnx.capture(copy, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)
        return _pick(nnx.to_pure_dict(inter), names)

    return run


def _linen_predict(module: Any, variables: Any, kwargs: dict, x: np.ndarray) -> Any:
    """The Linen model's output, compiled once per module and call arguments."""

    def build() -> Callable:
        import jax

        return jax.jit(lambda variables, x: module.apply(variables, x, **kwargs))

    return _memo(_PREDICT_FNS, _linen_key(module, kwargs), build)(variables, x)


def _nnx_predict(graphdef: Any, state: Any, x: np.ndarray) -> Any:
    """The NNX model's output (an eval copy), compiled once per graph."""

    def build() -> Callable:
        import jax
        from flax import nnx

        @jax.jit
        def run(state: Any, x: Any) -> Any:
            copy = nnx.merge(graphdef, state)
            copy.eval()
            return nnx.capture(copy)(x)  # sow is a no-op inside capture

        return run

    return _memo(_PREDICT_FNS, ("nnx", graphdef), build)(state, x)


# -- shared ------------------------------------------------------------------
def _as_input(batch: np.ndarray) -> np.ndarray:
    x = np.asarray(batch)
    return x.astype(np.float32) if x.dtype == np.float64 else x


class _Capture:
    """Context manager giving ``run(batch) -> {name: numpy array}``."""

    def __init__(self, runner: Callable):
        self.runner = runner
        self.size: int | None = None

    def __enter__(self) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        return self.run

    def __exit__(self, *exc: Any) -> None:
        return None

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        import jax

        x = _as_input(batch)
        n = len(x)
        if self.size is None or n > self.size:
            self.size = n
        if n < self.size:  # pad to the compiled batch size; padding rows are dropped below
            x = np.concatenate([x, np.repeat(x[-1:], self.size - n, axis=0)])
        out = jax.device_get(self.runner(x))
        return {k: np.asarray(v)[:n] for k, v in out.items()}


class FlaxAdapter:
    """The Flax adapter (entry point ``flax``): Linen ``(module, variables)`` and NNX modules.

    A Linen model may be ``(module, variables, apply_kwargs)`` to pass
    call arguments such as ``{"train": False}``. Values a model stores with
    ``sow`` (``self.sow("intermediates", "relu1", x)`` in Linen,
    ``self.sow(nnx.Intermediate, "relu1", x)`` in NNX) are layers too; that is
    how outputs of plain functions such as ``nn.relu`` become capturable.
    """

    name = "flax"
    layout = LAYOUT

    def accepts(self, model: Any) -> bool:
        return _linen_parts(model) is not None or _is_nnx(model)

    def model_class(self, model: Any) -> str:
        parts = _linen_parts(model)
        return type(parts[0] if parts else model).__name__

    def list_layers(self, model: Any, example: np.ndarray) -> list[LayerInfo]:
        parts = _linen_parts(model)
        x = _as_input(example)
        return _linen_list(*parts, x) if parts else _nnx_list(model, x)

    def capture(self, model: Any, names: Sequence[str]) -> _Capture:
        parts = _linen_parts(model)
        return _Capture(_linen_runner(*parts, names) if parts else _nnx_runner(model, names))

    def predict(self, model: Any, batch: np.ndarray) -> np.ndarray:
        import jax

        x = _as_input(batch)
        parts = _linen_parts(model)
        if parts:
            out = _linen_predict(*parts, x)
        else:
            from flax import nnx

            out = _nnx_predict(*nnx.split(model), x)
        leaves = output_leaves(out, _is_array)
        if not leaves:
            raise TypeError(f"{self.model_class(model)} returned {type(out).__name__}, which holds no array.")
        return np.asarray(jax.device_get(leaves[0][1]))

    def compress(self, model: Any, perturbation: Any) -> Any:
        from holejax_flax.compress import apply_compression

        return apply_compression(model, perturbation)
