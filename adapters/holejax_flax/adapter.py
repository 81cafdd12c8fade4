"""Capture Flax activations: Linen through ``capture_intermediates``, NNX through ``nnx.capture``.

Both frameworks collect intermediates into a nested mapping: module path
parts, then ``"__call__"`` (the module's output, one tuple entry per call) or
the name a model gave to a value it stored with ``sow``. A layer name's path
walks that mapping; what it reaches says whether it is a module output or a
sown value, so a name alone is enough to find a layer again.

Batches arrive as model inputs (``holejax.capture.inputs``): an array, a
tuple of arrays or a dict of arrays, applied as ``module.apply(variables,
x)``, ``module.apply(variables, *x)`` or ``module.apply(variables, **x)``
for Linen and ``model(x)``, ``model(*x)``, ``model(**x)`` for NNX.

Layers are listed in the order the forward pass computed them: the listing
traces the forward pass once (``jax.make_jaxpr``; nothing is computed) and
places each output at the equation that produced it. Outputs of the same
value (a Dropout that passes its input through, a block returning the value
it sowed) follow the order in which module calls returned, recorded through
public Flax API: ``flax.linen.intercept_methods`` for Linen, and for NNX an
``nnx.Variable`` type given to ``nnx.capture(method_outputs=...)`` that
numbers each method output as it is sown.

Capture runs under ``jax.jit``: Linen applies the module with
``mutable=["intermediates"]`` only (batch statistics are not updated), NNX
runs an ``eval()`` copy merged inside the traced function (the caller's
model is never changed). Batches smaller than the largest one seen are
padded to its size, so a short last batch does not compile again.
"""

from __future__ import annotations

import functools
import itertools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from holejax.capture.inputs import ModelInput, n_samples_of
from holejax.capture.layers import SOWN, LayerInfo, class_names, layer_name, output_leaves, split_layer_name
from holejax_flax.compress import apply_compression

__all__ = ["FlaxAdapter"]

LAYOUT = "channels_last"


def _is_array(x: Any) -> bool:
    """A jax array, a tracer, or the abstract value ``jax.eval_shape`` returns."""
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct))


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
def _producers(fn: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
    """Trace ``fn(*args)`` (nothing is computed) and say when each output was computed.

    Returns ``(shapes, ranks)``: the output pytree with ``jax.ShapeDtypeStruct``
    leaves, and the same pytree with, at each leaf, the index of the equation
    of the traced program (``jax.make_jaxpr``) that produced it; -1 for an
    input passed through or a constant.
    """
    closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
    made = {id(v): i for i, eqn in enumerate(closed.jaxpr.eqns) for v in eqn.outvars}
    ranks = [made.get(id(v), -1) for v in closed.jaxpr.outvars]
    return shapes, jax.tree.unflatten(jax.tree.structure(shapes), ranks)


def _sow_tie(path: tuple, rank: int, events: Mapping[tuple, int], ranks: Mapping[tuple, int]) -> float:
    """Where a value sown by the module at ``path`` stands among records of the same value:
    just before the return of the call that sowed it (the first call of that module whose
    output was computed at or after the value)."""
    after = [e for site, e in events.items() if site[:2] == (path, "__call__") and ranks.get(site, -1) >= rank]
    return min(after) - 0.5 if after else float("inf")


def _ordered_records(shapes: Mapping, ranks: Mapping, events: Mapping[tuple, int]) -> list[tuple[tuple, str, int, Any]]:
    """``(path, key, call, output)`` of every record, in the order the forward pass made them.

    The primary order is the position in the traced program of the
    equation that computed a record's first array (``ranks``); records of
    the same value (a module that passes its input through, a block that
    returns the value it sowed) follow the order in which module calls
    returned (``events``: ``(path, "__call__", call) -> return number``).
    """
    first_rank: dict[tuple, int] = {}
    records = []
    rank_sites = {(p, k): r for p, k, r in _sites(ranks)}
    for path, key, calls in _sites(shapes):
        rank_calls = rank_sites.get((path, key), ())
        for call, out in enumerate(calls):
            leaves = jax.tree.leaves(rank_calls[call]) if call < len(rank_calls) else []
            first_rank[(path, key, call)] = leaves[0] if leaves else -1
            records.append((path, key, call, out))

    def order(record: tuple) -> tuple:
        path, key, call, _ = record
        rank = first_rank[(path, key, call)]
        tie = events[(path, key, call)] if (path, key, call) in events else _sow_tie(path, rank, events, first_rank)
        return rank, tie, [str(p) for p in path], key, call

    return sorted(records, key=order)


def _infos(records: list, classes: Mapping[tuple, type], n: int, all_modules: Mapping[tuple, Any]) -> list[LayerInfo]:
    """The layer table from ordered records ``(path, key, call, output)``."""
    infos, fired = [], set()
    for path, key, call, out in records:
        if path == () and key == "__call__":  # the model output
            continue
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


def _call_args(x: Any, apply_kwargs: Mapping | None = None) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of a model call from a model input: ``model(x)``, ``model(*x)`` or ``model(**x)``.

    ``apply_kwargs`` (Linen call arguments such as ``{"train": False}``)
    join the keyword arguments.

    Example:
        >>> _call_args({"input_ids": 1}, {"train": False})
        ((), {'train': False, 'input_ids': 1})
        >>> _call_args((1, 2))
        ((1, 2), {})
    """
    if isinstance(x, dict):
        return (), {**(apply_kwargs or {}), **x}
    if isinstance(x, tuple):
        return x, dict(apply_kwargs or {})
    return (x,), dict(apply_kwargs or {})


def _check_call_arguments(x: Any, apply_kwargs: Mapping) -> None:
    """Inputs under the same keyword as a Linen call argument would silently replace it."""
    clash = sorted(set(x) & set(apply_kwargs)) if isinstance(x, dict) else []
    if clash:
        raise ValueError(
            f"inputs and the model's call arguments both set {clash}; pass each keyword once, either among the "
            "inputs (a per-sample array) or in model=(module, variables, apply_kwargs)."
        )


def _linen_events() -> tuple[Callable, list, dict]:
    """A method interceptor (``flax.linen.intercept_methods``) recording module calls.

    Returns ``(interceptor, returns, classes)``: ``returns`` receives the
    path of each module whose outermost ``__call__`` returns, in order;
    ``classes`` maps each path to its module class.
    """
    returns: list[tuple] = []
    classes: dict[tuple, type] = {}
    depth: dict[tuple, int] = {}

    def interceptor(next_fun: Callable, args: tuple, kwargs: dict, context: Any) -> Any:
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        path = tuple(context.module.path)
        depth[path] = depth.get(path, 0) + 1
        try:
            return next_fun(*args, **kwargs)
        finally:
            depth[path] -= 1
            if depth[path] == 0:
                returns.append(path)
                classes.setdefault(path, type(context.module))

    return interceptor, returns, classes


def _numbered(returns: list[tuple], key: str = "__call__") -> dict[tuple, int]:
    """``{(path, key, call): return number}`` from the paths of module calls in the order they returned.

    Example:
        >>> list(_numbered([("a",), ("b",), ("a",)]).items())
        [((('a',), '__call__', 0), 0), ((('b',), '__call__', 0), 1), ((('a',), '__call__', 1), 2)]
    """
    seen: dict[tuple, int] = {}
    events = {}
    for i, path in enumerate(returns):
        events[(path, key, seen.get(path, 0))] = i
        seen[path] = seen.get(path, 0) + 1
    return events


def _linen_list(module: Any, variables: Any, kwargs: dict, example: Any) -> list[LayerInfo]:
    """The layer table of a Linen model. It depends on shapes only (the forward
    pass is traced, not run), so it is kept per module, call arguments and shapes."""
    import flax.linen as nn  # optional framework: flax

    def build() -> tuple[LayerInfo, ...]:
        interceptor, returns, classes = _linen_events()

        def forward(variables: Any, x: Any) -> Any:
            args, kw = _call_args(x, kwargs)
            with nn.intercept_methods(interceptor):
                _, state = module.apply(variables, *args, capture_intermediates=True, mutable=["intermediates"], **kw)
            return state.get("intermediates", {})

        shapes, ranks = _producers(forward, variables, example)
        records = _ordered_records(shapes, ranks, _numbered(returns))
        modules = {**_linen_param_paths(variables), **classes}
        return tuple(_infos(records, classes, n_samples_of(example), modules))

    key = (*_linen_key(module, kwargs), _shapes(variables), _shapes(example))
    return list(_memo(_LISTS, key, build))


def _linen_runner(module: Any, variables: Any, kwargs: dict, names: Sequence[str]) -> Callable:
    """``run(x) -> {name: array}`` for a Linen model; the compiled function is shared by
    every export of the same module, call arguments and layers."""
    key = (*_linen_key(module, kwargs), tuple(names))
    return functools.partial(_memo(_CAPTURE_FNS, key, lambda: _linen_capture_fn(module, kwargs, names)), variables)


def _linen_capture_fn(module: Any, kwargs: dict, names: Sequence[str]) -> Callable:
    wanted = {tuple(split_layer_name(n)[0].split(".")) for n in names}

    def keep(mdl: Any, method: str) -> bool:
        return method == "__call__" and tuple(mdl.path) in wanted

    @jax.jit
    def run(variables: Any, x: Any) -> dict:
        args, kw = _call_args(x, kwargs)
        _, state = module.apply(variables, *args, capture_intermediates=keep, mutable=["intermediates"], **kw)
        return _pick(state.get("intermediates", {}), names)

    return run


# -- NNX ---------------------------------------------------------------------
def _nnx_modules(model: Any) -> dict[tuple, type]:
    from flax import nnx  # optional framework: flax

    return {tuple(path): type(m) for path, m in nnx.iter_modules(model)}


class _Stamp(NamedTuple):
    """A method output and the number of its return among all method returns of a listing."""

    event: int
    value: Any


_RETURNS = itertools.count()


@functools.lru_cache(maxsize=1)
def _stamped_type() -> type:
    """An NNX Variable type that stamps every value sown into it with a return number.

    Given to ``nnx.capture(..., method_outputs=...)``, it records the order
    in which module methods return: ``sow`` appends each method output to
    the tuple under the method's name, and ``set_value`` wraps the new last
    entry in a :class:`_Stamp`.
    """
    from flax import nnx  # optional framework: flax

    class MethodReturn(nnx.Variable):
        def set_value(self, value: Any, **kwargs: Any) -> Any:
            if "index" in kwargs and isinstance(value, tuple) and value and not isinstance(value[-1], _Stamp):
                value = (*value[:-1], _Stamp(next(_RETURNS), value[-1]))
            return super().set_value(value, **kwargs)

    return MethodReturn


def _unstamp(returns: Any, prefix: tuple = ()) -> tuple[dict, dict[tuple, int]]:
    """Method outputs without their stamps, and ``{(path, method, call): return number}``."""
    outputs: dict = {}
    events: dict[tuple, int] = {}
    for key, value in returns.items():
        if isinstance(value, Mapping):
            outputs[key], inner = _unstamp(value, (*prefix, key))
            events.update(inner)
        else:
            outputs[key] = tuple(v.value for v in value)
            events.update({(prefix, str(key), call): v.event for call, v in enumerate(value)})
    return outputs, events


def _merged(a: Mapping, b: Mapping) -> dict:
    """Two nested mappings joined key by key (``b`` wins where both hold a leaf)."""
    out = dict(a)
    for key, value in b.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _merged(out[key], value) if both else value
    return out


def _nnx_list(model: Any, example: Any) -> list[LayerInfo]:
    """The layer table of an NNX model, kept per graph and shapes like :func:`_linen_list`."""
    from flax import nnx  # optional framework: flax

    graphdef, state = nnx.split(model)

    def build() -> tuple[LayerInfo, ...]:
        events: dict[tuple, int] = {}
        returned = _stamped_type()

        def forward(state: Any, x: Any) -> Any:
            copy = nnx.merge(graphdef, state)
            copy.eval()
            args, kwargs = _call_args(x)
            _, sown, methods = nnx.capture(copy, nnx.Intermediate, returned, method_outputs=returned)(*args, **kwargs)
            outputs, stamps = _unstamp(nnx.to_pure_dict(methods))
            events.update(stamps)
            return _merged(nnx.to_pure_dict(sown), outputs)

        shapes, ranks = _producers(forward, state, example)
        numbered = {site: i for i, site in enumerate(sorted(events, key=events.get))}
        records = _ordered_records(shapes, ranks, numbered)
        modules = _nnx_modules(model)
        return tuple(_infos(records, modules, n_samples_of(example), modules))

    key = ("nnx", graphdef, _shapes(state), _shapes(example))
    return list(_memo(_LISTS, key, build))


def _nnx_runner(model: Any, names: Sequence[str]) -> Callable:
    """``run(x) -> {name: array}`` for an NNX model, compiled once per graph and layers."""
    from flax import nnx  # optional framework: flax

    graphdef, state = nnx.split(model)
    key = ("nnx", graphdef, tuple(names))
    return functools.partial(_memo(_CAPTURE_FNS, key, lambda: _nnx_capture_fn(graphdef, names)), state)


def _nnx_capture_fn(graphdef: Any, names: Sequence[str]) -> Callable:
    from flax import nnx  # optional framework: flax

    @jax.jit
    def run(state: Any, x: Any) -> dict:
        copy = nnx.merge(graphdef, state)
        copy.eval()
        args, kwargs = _call_args(x)
        _, inter = nnx.capture(copy, nnx.Intermediate, method_outputs=nnx.Intermediate)(*args, **kwargs)
        return _pick(nnx.to_pure_dict(inter), names)

    return run


def _linen_predict(module: Any, variables: Any, kwargs: dict, x: np.ndarray) -> Any:
    """The Linen model's output, compiled once per module and call arguments."""

    def build() -> Callable:
        def run(variables: Any, x: Any) -> Any:
            args, kw = _call_args(x, kwargs)
            return module.apply(variables, *args, **kw)

        return jax.jit(run)

    return _memo(_PREDICT_FNS, _linen_key(module, kwargs), build)(variables, x)


def _nnx_predict(graphdef: Any, state: Any, x: np.ndarray) -> Any:
    """The NNX model's output (an eval copy), compiled once per graph."""

    def build() -> Callable:
        from flax import nnx  # optional framework: flax

        @jax.jit
        def run(state: Any, x: Any) -> Any:
            copy = nnx.merge(graphdef, state)
            copy.eval()
            args, kwargs = _call_args(x)
            return nnx.capture(copy)(*args, **kwargs)  # sow is a no-op inside capture

        return run

    return _memo(_PREDICT_FNS, ("nnx", graphdef), build)(state, x)


# -- shared ------------------------------------------------------------------
def _as_input(batch: ModelInput) -> ModelInput:
    """A model input with float64 arrays as float32 (JAX's default precision); same kind and keys.

    Example:
        >>> x = _as_input({"ids": np.zeros((2, 3), np.int64), "w": np.zeros(2)})
        >>> x["ids"].dtype, x["w"].dtype
        (dtype('int64'), dtype('float32'))
    """

    def one(a: Any) -> np.ndarray:
        a = np.asarray(a)
        return a.astype(np.float32) if a.dtype == np.float64 else a

    if isinstance(batch, dict):
        return {k: one(v) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(one(v) for v in batch)
    return one(batch)


def _padded(x: ModelInput, size: int) -> ModelInput:
    """Every array of a model input padded to ``size`` samples by repeating its last sample.

    Example:
        >>> _padded((np.arange(2), np.ones((2, 3))), 4)[0].tolist()
        [0, 1, 1, 1]
    """

    def one(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a, np.repeat(a[-1:], size - len(a), axis=0)])

    if isinstance(x, dict):
        return {k: one(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(one(v) for v in x)
    return one(x)


class _Capture:
    """Context manager giving ``run(batch) -> {name: numpy array}``."""

    def __init__(self, runner: Callable):
        self.runner = runner
        self.size: int | None = None

    def __enter__(self) -> Callable[[ModelInput], dict[str, np.ndarray]]:
        return self.run

    def __exit__(self, *exc: Any) -> None:
        return None

    def run(self, batch: ModelInput) -> dict[str, np.ndarray]:
        x = _as_input(batch)
        n = n_samples_of(x)
        if self.size is None or n > self.size:
            self.size = n
        if n < self.size:  # pad to the compiled batch size; padding rows are dropped below
            x = _padded(x, self.size)
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

    def list_layers(self, model: Any, example: ModelInput) -> list[LayerInfo]:
        parts = _linen_parts(model)
        x = _as_input(example)
        if parts:
            _check_call_arguments(x, parts[2])
        return _linen_list(*parts, x) if parts else _nnx_list(model, x)

    def capture(self, model: Any, names: Sequence[str]) -> _Capture:
        parts = _linen_parts(model)
        if parts:
            return _Capture(_linen_runner(*parts, names))
        return _Capture(_nnx_runner(model, names))

    def predict(self, model: Any, batch: ModelInput) -> np.ndarray:
        x = _as_input(batch)
        parts = _linen_parts(model)
        if parts:
            _check_call_arguments(x, parts[2])
            out = _linen_predict(*parts, x)
        else:
            from flax import nnx  # optional framework: flax

            out = _nnx_predict(*nnx.split(model), x)
        leaves = output_leaves(out, _is_array)
        if not leaves:
            raise TypeError(f"{self.model_class(model)} returned {type(out).__name__}, which holds no array.")
        return np.asarray(jax.device_get(leaves[0][1]))

    def compress(self, model: Any, perturbation: Any) -> Any:
        return apply_compression(model, perturbation)
