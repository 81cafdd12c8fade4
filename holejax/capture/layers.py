"""Layer names, the layer table and layer selection, shared by every adapter.

A *layer* is one array a model produces in its forward pass: the output of a
module call, or one entry of it when the output is a tuple, dict or
dataclass. Adapters describe what they saw in one forward pass as a tuple of
:class:`LayerInfo` rows in execution order; this module names the rows and
chooses among them, knowing nothing of any framework.

Names: ``path`` (the module's attribute path, ``"."``-separated, e.g.
``"layer1.0.relu"``), then ``#k`` for the k-th extra call of a module used
more than once in one forward pass (``"layer1.0.relu#1"``), then ``[key]``
for each step into a container output (``"encoder.attn[0]"``,
``"head[logits]"``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from holejax._checks import close_matches

__all__ = [
    "LayerInfo",
    "NONLINEARITIES",
    "SOWN",
    "class_names",
    "layer_name",
    "split_layer_name",
    "output_leaves",
    "default_layers",
    "PRESETS",
    "residual_layers",
    "select_layers",
    "format_layers",
    "glob_pattern",
]

# class names (any framework) whose output is the output of a nonlinearity
NONLINEARITIES = frozenset(
    {
        "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU",
        "Swish", "Mish", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softplus", "Softsign",
        "Hardtanh", "Hardswish", "Hardsigmoid", "Tanhshrink", "Softshrink", "Hardshrink",
        "LogSigmoid", "GLU", "Threshold",
    }
)
# modules whose output repeats their input in inference mode: left out of the default selection
_PASS_THROUGH = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Identity", "Flatten"})
SOWN = "sow"
"""Type name of values a model stores itself (Flax ``sow``); the default selection keeps them."""


class LayerInfo(NamedTuple):
    """One capturable layer, as seen in one forward pass.

    Attributes:
        name: the layer's name (see the module docstring).
        type: short class name of the module that produced it (``"ReLU"``,
            ``"Conv"``), ``"sow"`` for values the model stored itself.
        shape: per-sample output shape (without the sample dim), or ``None``
            when the module exists but produced no output in the pass.
        dtype: dtype name of the output (``"float32"``), or ``None``.
        types: qualified names of the module's class and its bases, for
            selection by type (``"torch.nn.modules.activation.ReLU"``).
        depth: number of parts in the module path (1 = top-level block).
        layout: ``"channels_first"`` (PyTorch) or ``"channels_last"`` (Flax);
            tells ``global_avg`` pooling which axes are spatial.
    """

    name: str
    type: str
    shape: tuple[int, ...] | None
    dtype: str | None
    types: tuple[str, ...] = ()
    depth: int = 1
    layout: str = "channels_first"

    @property
    def fired(self) -> bool:
        """Whether the layer produced an output in the forward pass."""
        return self.shape is not None


def class_names(cls: type) -> tuple[str, ...]:
    """Qualified names of a class and its bases, for :attr:`LayerInfo.types`.

    Example:
        >>> class_names(bool)
        ('builtins.bool', 'builtins.int')
    """
    return tuple(f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__ if c is not object)


_NAME = re.compile(r"^(?P<path>[^#\[]*)(?:#(?P<call>\d+))?(?P<pick>(?:\[[^\]]*\])*)$")


def layer_name(path: str, call: int = 0, pick: str = "") -> str:
    """The layer name of call ``call`` of module ``path``, entry ``pick``.

    Example:
        >>> layer_name("layer1.0.relu"), layer_name("layer1.0.relu", 1), layer_name("attn", 0, "[0]")
        ('layer1.0.relu', 'layer1.0.relu#1', 'attn[0]')
    """
    return f"{path}{f'#{call}' if call else ''}{pick}"


def split_layer_name(name: str) -> tuple[str, int, str]:
    """Inverse of :func:`layer_name`: ``(path, call, pick)``.

    Example:
        >>> split_layer_name("block.attn#2[0][hidden]")
        ('block.attn', 2, '[0][hidden]')
    """
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a layer name of the form path[#call][[key]...].")
    return match["path"], int(match["call"] or 0), match["pick"]


def _children(out: Any) -> list[tuple[str, Any]] | None:
    """``(key, value)`` entries of a container output, or None for a non-container."""
    if isinstance(out, Mapping):
        return [(str(k), v) for k, v in out.items()]
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)]
    if isinstance(out, tuple) and hasattr(out, "_fields"):  # NamedTuple
        return [(str(k), v) for k, v in zip(out._fields, out)]
    if isinstance(out, (tuple, list)):
        return [(str(i), v) for i, v in enumerate(out)]
    return None


def output_leaves(out: Any, is_array: Callable[[Any], bool]) -> list[tuple[str, Any]]:
    """The arrays inside a module output, each with its ``pick`` suffix.

    Tuples and lists are entered by index, mappings by key, dataclasses and
    NamedTuples by field name; anything else that is not an array (None,
    numbers, strings) is skipped.

    Args:
        out: a module output.
        is_array: tells the framework's arrays apart.

    Returns:
        ``[(pick, array), ...]`` in container order; ``[("", out)]`` for an array.

    Example:
        >>> import numpy as np
        >>> out = (np.zeros(2), {"h": np.ones(3), "n": None})
        >>> [p for p, _ in output_leaves(out, lambda a: isinstance(a, np.ndarray))]
        ['[0]', '[1][h]']
    """
    if is_array(out):
        return [("", out)]
    entries = _children(out)
    if entries is None:
        return []
    leaves = []
    for key, value in entries:
        leaves.extend((f"[{key}]{pick}", leaf) for pick, leaf in output_leaves(value, is_array))
    return leaves


def _is_floating(dtype: str | None) -> bool:
    return dtype is not None and ("float" in dtype or dtype == "bfloat16")


def _first_leaves(infos: Sequence[LayerInfo]) -> list[LayerInfo]:
    """Of each module call that fired with a floating output, the row of its first array."""
    rows, seen = [], set()
    for info in infos:
        if not info.fired or not _is_floating(info.dtype):
            continue
        path, call, _ = split_layer_name(info.name)
        if (path, call) not in seen:
            seen.add((path, call))
            rows.append(info)
    return rows


def default_layers(infos: Sequence[LayerInfo]) -> list[LayerInfo]:
    """The default selection: the residual stream (:func:`residual_layers`) when the model has blocks.

    Otherwise the outputs of nonlinearities, top-level blocks and sown
    values: only floating outputs that fired; of a container output only
    its first array; modules that pass their input through in inference
    (Dropout, Identity, Flatten) are left out.

    Example:
        >>> rows = [LayerInfo("fc1", "Linear", (4,), "float32"),
        ...         LayerInfo("block.relu", "ReLU", (4,), "float32", depth=2),
        ...         LayerInfo("block.fc", "Linear", (4,), "float32", depth=2),
        ...         LayerInfo("drop", "Dropout", (4,), "float32")]
        >>> [r.name for r in default_layers(rows)]
        ['fc1', 'block.relu']
    """
    residual = residual_layers(infos)
    if residual:
        return residual
    chosen = []
    for info in _first_leaves(infos):
        if info.type in _PASS_THROUGH:
            continue
        if info.depth == 1 or info.type in NONLINEARITIES or info.type == SOWN:
            chosen.append(info)
    return chosen


PRESETS = ("residual",)
"""Names of layer presets ``layers=`` accepts (an exact layer name of the model wins over a preset)."""

_BLOCK_WORDS = ("Layer", "Block", "Stage")  # class-name parts of transformer blocks and CNN stages
_NOT_BLOCK_WORDS = ("Norm", "Scale", "Drop", "Embed", "Linear", "Dense", "Conv")
_NUMBERED = re.compile(r"^[A-Za-z_]+\d+$")  # "layer1": a stage of a torchvision-style ResNet


def _block_like(type_name: str) -> bool:
    return any(w in type_name for w in _BLOCK_WORDS) and not any(w in type_name for w in _NOT_BLOCK_WORDS)


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _list_path(path: str) -> str | None:
    """The list a module belongs to: ``<parent>`` of ``<parent>.<int>`` (PyTorch ModuleList,
    Flax NNX List), ``<parent>.<name>`` of ``<parent>.<name>_<int>`` (Flax Linen lists and
    auto-named submodules); None for other paths.

    Example:
        >>> _list_path("encoder.layer.3"), _list_path("encoder.blocks_3"), _list_path("Block_0"), _list_path("fc")
        ('encoder.layer', 'encoder.blocks', 'Block', None)
    """
    parent, _, last = path.rpartition(".")
    if last.isdigit():
        return parent
    name, sep, index = last.rpartition("_")
    if not (sep and name and index.isdigit()):
        return None
    return f"{parent}.{name}" if parent else name


def _block_groups(rows: Sequence[LayerInfo]) -> dict[str, list[LayerInfo]]:
    """Lists of blocks: rows ``<parent>.<int>`` (or Flax Linen's ``<parent>.<name>_<int>``) of one
    block-like class, by list path."""
    groups: dict[str, list[LayerInfo]] = {}
    for info in rows:
        path, call, _ = split_layer_name(info.name)
        owner = _list_path(path)
        if call == 0 and owner is not None and _block_like(info.type):
            groups.setdefault(owner, []).append(info)
    return {p: g for p, g in groups.items() if len({i.type for i in g}) == 1}


def _inside(path: str, parents: Collection[str]) -> bool:
    return any(path.startswith(p + ".") for p in parents if p)


def residual_layers(infos: Sequence[LayerInfo]) -> list[LayerInfo]:
    """The residual stream of a model: its embeddings, then every block or stage, in execution order.

    Framework-neutral: it reads only names and class names. A *block* is a
    module at ``<parent>.<int>`` (``encoder.layer.3``, ``h.3``,
    ``layers.3``, ``encoder.stages.1``, ``blocks.3``; Flax Linen's ``blocks_3``) whose class name holds
    ``Layer``, ``Block`` or ``Stage`` (not ``Norm``, ``Scale``, ``Drop``,
    ``Embed``, ``Linear``, ``Dense``, ``Conv``), all of one class: BERT and
    RoBERTa layers, GPT-2 and Llama-style decoder blocks, ViT layers, the
    stages of a Hugging Face ResNet or ConvNeXt. Lists inside a block are
    left out (the outermost list wins). Where the lists of blocks sit in
    numbered siblings (``layer1`` .. ``layer4`` of a torchvision ResNet),
    those siblings are the stages and are taken instead. Of a block that
    returns a tuple or a model output, the first array is taken: the hidden
    state.

    The *embeddings* are the last output before the first block that is not
    inside a block and has the first block's per-sample shape (the input of
    the first block: ``embeddings`` of BERT and ViT, GPT-2's ``drop`` after
    the summed token and position embeddings, ``embed_tokens`` of Llama);
    without one of that shape (a CNN stem), the last output before it.

    Args:
        infos: the layer table (execution order).

    Returns:
        The chosen rows, or ``[]`` when the model has no blocks.

    Example:
        >>> rows = [LayerInfo("embeddings", "BertEmbeddings", (5, 8), "float32"),
        ...         LayerInfo("encoder.layer.0.attention", "BertAttention", (5, 8), "float32", depth=4),
        ...         LayerInfo("encoder.layer.0[0]", "BertLayer", (5, 8), "float32", depth=3),
        ...         LayerInfo("encoder.layer.1[0]", "BertLayer", (5, 8), "float32", depth=3),
        ...         LayerInfo("encoder.layer.1[1]", "BertLayer", (2, 5, 5), "float32", depth=3),
        ...         LayerInfo("pooler", "BertPooler", (8,), "float32")]
        >>> [r.name for r in residual_layers(rows)]
        ['embeddings', 'encoder.layer.0[0]', 'encoder.layer.1[0]']
    """
    rows = _first_leaves(infos)
    groups = _block_groups(rows)
    if not groups:
        return []
    member_paths = {split_layer_name(i.name)[0] for g in groups.values() for i in g}
    outer = {p: g for p, g in groups.items() if not _inside(p, member_paths)}
    stage_paths = {p for p in outer if _NUMBERED.match(p.rpartition(".")[2])}
    by_grandparent: dict[str, set[str]] = {}
    for p in stage_paths:
        by_grandparent.setdefault(_parent(p), set()).add(p)
    stages = {p for ps in by_grandparent.values() if len(ps) > 1 for p in ps}
    chosen_paths = {split_layer_name(i.name)[0] for p, g in outer.items() if p not in stages for i in g} | stages
    blocks = [i for i in rows if split_layer_name(i.name)[0] in chosen_paths]
    if not blocks:
        return []
    first = rows.index(blocks[0])
    before = [i for i in rows[:first] if not _inside(split_layer_name(i.name)[0], chosen_paths)]
    same = [i for i in before if i.shape == blocks[0].shape]
    embeddings = same[-1:] if same else before[-1:]
    return embeddings + blocks


def glob_pattern(pattern: str) -> re.Pattern:
    """The regular expression of a layer-name pattern: ``*`` = any characters (dots included), ``?`` = one character, the rest literal.

    Example:
        >>> bool(glob_pattern("blocks.*.mlp").match("blocks.3.mlp")), bool(glob_pattern("fc?").match("fc10"))
        (True, False)
    """
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts) + r"\Z")


def _listing(names: Sequence[str], limit: int = 40) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... and {len(names) - limit} more" if len(names) > limit else ""
    return f"[{shown}{more}]"


def _match(entry: Any, infos: Sequence[LayerInfo]) -> list[LayerInfo]:
    if isinstance(entry, type):
        key = class_names(entry)[0]
        return [i for i in infos if key in i.types]
    exact = [i for i in infos if i.name == entry]
    if exact:
        return exact
    if "*" in entry or "?" in entry:
        pattern = glob_pattern(entry)
        by_name = [i for i in infos if pattern.match(i.name)]
        if by_name:
            return by_name
        return [i for i in infos if pattern.match(i.type) or any(pattern.match(t) for t in i.types)]
    return [i for i in infos if entry == i.type or entry in i.types]


def select_layers(
    infos: Sequence[LayerInfo],
    layers: str | type | Iterable[str | type] | None,
    argument: str = "layers",
) -> list[LayerInfo]:
    """Choose layers by exact name, glob, or module type.

    Each entry of ``layers`` is tried as an exact layer name, then (when it
    holds ``*`` or ``?``) as a glob over names, then as a module type: a
    class name (``"ReLU"``), a qualified class name, or a class object
    (subclasses match too), then as a preset: ``"residual"`` gives
    :func:`residual_layers`. ``None`` gives :func:`default_layers` (the
    residual stream for models with blocks).

    Args:
        infos: the layer table from an adapter (execution order).
        layers: the request.
        argument: name of the argument in the caller, used in messages.

    Returns:
        The chosen rows, each once, in execution order.

    Raises:
        ValueError: an entry matches nothing (the message lists close
            matches and the available names), or matches only modules that
            produced no output in the forward pass.

    Example:
        >>> rows = [LayerInfo("layer1.relu", "ReLU", (4,), "float32", depth=2),
        ...         LayerInfo("layer1.fc", "Linear", (4,), "float32", depth=2),
        ...         LayerInfo("layer2.relu", "ReLU", (4,), "float32", depth=2)]
        >>> [r.name for r in select_layers(rows, "layer*.relu")]
        ['layer1.relu', 'layer2.relu']
        >>> [r.name for r in select_layers(rows, ["Linear"])]
        ['layer1.fc']
    """
    if layers is None:
        chosen = default_layers(infos)
        if not chosen:
            raise ValueError(
                f"{argument}=None found no default layers (nonlinearity outputs or top-level blocks) "
                f"among {_listing([i.name for i in infos if i.fired])}; pass {argument}=[...] with "
                "names, globs or module types."
            )
        return chosen
    entries = [layers] if isinstance(layers, (str, type)) else list(layers)
    if not entries:
        raise ValueError(f"{argument} is empty; pass None for the default layers or at least one name.")
    fired = [i.name for i in infos if i.fired]
    picked: set[str] = set()
    for entry in entries:
        if not isinstance(entry, (str, type)):
            raise TypeError(
                f"{argument} entries must be layer names, globs or module classes; got {entry!r} "
                f"({type(entry).__name__})."
            )
        matches = _match(entry, infos)
        if not matches and entry in PRESETS:
            matches = residual_layers(infos)
            if not matches:
                raise ValueError(
                    f"{argument}={entry!r} picks the embeddings and every transformer block or CNN stage, but "
                    "this model has no list of blocks (modules <parent>.<int> whose class name holds Layer, "
                    f"Block or Stage). Pass names, globs or module types: {_listing(fired)}."
                )
        live = [i for i in matches if i.fired]
        if live:
            picked.update(i.name for i in live)
            continue
        label = class_names(entry)[0] if isinstance(entry, type) else entry
        if matches:
            raise ValueError(
                f"{argument} entry {label!r} names {[i.name for i in matches]}, which never fired: the "
                "module exists but produced no output in the forward pass over the example batch "
                "(a branch not taken, a fused fast path, or a module the forward does not call). "
                f"Choose layers that fired: {_listing(fired)}."
            )
        types = sorted({i.type for i in infos if i.fired})
        hint = close_matches(label, [*fired, *types])
        did_you_mean = f" Close matches: {hint}." if hint else ""
        raise ValueError(
            f"{argument} entry {label!r} matches no layer name, glob or module type of this model."
            f"{did_you_mean} Available layers: {_listing(fired)}; module types: {_listing(types)}. "
            "See hj.list_layers(model, example_inputs)."
        )
    return [i for i in infos if i.name in picked]


def format_layers(infos: Sequence[LayerInfo], marked: Collection[str] = (), mark: str = "residual") -> str:
    """A plain-text table of layers: name, type, per-sample shape, and the preset's rows marked.

    Args:
        infos: the layer table.
        marked: names of the rows a preset picks; with any, a fourth column
            ``mark`` marks them with ``*``.
        mark: the column's title.

    Example:
        >>> print(format_layers([LayerInfo("fc", "Linear", (4,), "float32")]))
        name  type    shape
        fc    Linear  (4,)
        >>> print(format_layers([LayerInfo("h.0", "Block", (3, 4), "float32"),
        ...                      LayerInfo("h.0.fc", "Linear", (3, 4), "float32")], marked={"h.0"}))
        name    type    shape   residual
        h.0     Block   (3, 4)  *
        h.0.fc  Linear  (3, 4)
    """
    rows = [("name", "type", "shape", mark if marked else "")]
    rows += [
        (i.name, i.type, "never fired" if i.shape is None else str(i.shape), "*" if i.name in marked else "")
        for i in infos
    ]
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows
    )
