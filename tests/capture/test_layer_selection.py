"""Layer names, container outputs, default selection and selection by name / glob / type."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holejax.capture import LayerInfo, default_layers, format_layers, select_layers
from holejax.capture.layers import layer_name, output_leaves, residual_layers, split_layer_name


def row(name, type_="Linear", shape=(4,), dtype="float32", depth=None, types=None):
    depth = depth if depth is not None else split_layer_name(name)[0].count(".") + 1
    return LayerInfo(name, type_, shape, dtype, types or (f"pkg.{type_}", "pkg.Module"), depth)


ROWS = [
    row("stem"),
    row("stem_act", "ReLU"),
    row("layer1.0.conv1", "Conv2d", (8, 4, 4)),
    row("layer1.0.relu", "ReLU", (8, 4, 4)),
    row("layer1.0.relu#1", "ReLU", (8, 4, 4)),
    row("layer1.0", "Residual", (8, 4, 4)),
    row("layer1", "Sequential", (8, 4, 4)),
    row("attn[0]", "MultiheadAttention", (5, 8)),
    row("attn[1]", "MultiheadAttention", (5, 5)),
    row("drop", "Dropout"),
    row("head", "Linear", (10,)),
    row("argmax", "ArgMax", (), "int64"),
    row("layer2.unused", "Linear", None, None),
]
ALL = [r.name for r in ROWS]


name_part = st.text(alphabet="abcxyz_019", min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(name_part, min_size=1, max_size=4),
    st.integers(0, 5),
    st.lists(st.one_of(name_part, st.integers(0, 9).map(str)), max_size=3),
)
def test_layer_names_round_trip(parts, call, keys):
    path, pick = ".".join(parts), "".join(f"[{k}]" for k in keys)
    assert split_layer_name(layer_name(path, call, pick)) == (path, call, pick)


def test_split_rejects_malformed_names():
    with pytest.raises(ValueError, match="not a layer name"):
        split_layer_name("a[0")


class Pair(NamedTuple):
    hidden: np.ndarray
    pooled: np.ndarray


@dataclasses.dataclass
class ModelOutput:
    logits: np.ndarray
    hidden_states: tuple
    loss: None = None


def test_output_leaves_enter_tuples_dicts_namedtuples_and_dataclasses():
    a, b, c, d = (np.full(2, i) for i in range(4))
    is_arr = lambda x: isinstance(x, np.ndarray)  # noqa: E731
    out = (a, {"h": b, "skip": None, "n": 3}, Pair(c, d), ModelOutput(a, (b, c)), [d])
    leaves = output_leaves(out, is_arr)
    assert [p for p, _ in leaves] == [
        "[0]", "[1][h]", "[2][hidden]", "[2][pooled]", "[3][logits]", "[3][hidden_states][0]",
        "[3][hidden_states][1]", "[4][0]",
    ]
    assert [int(v[0]) for _, v in leaves] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert output_leaves(a, is_arr)[0][0] == "" and output_leaves(None, is_arr) == []


def test_default_selection_without_blocks():
    chosen = [r.name for r in default_layers(ROWS)]
    # top-level blocks and nonlinearities; first array of container outputs; no pass-through,
    # integer or never-fired outputs
    assert chosen == ["stem", "stem_act", "layer1.0.relu", "layer1.0.relu#1", "layer1", "attn[0]", "head"]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ("head", ["head"]),
        (["head", "stem"], ["stem", "head"]),  # execution order, not request order
        ("layer1.*.relu*", ["layer1.0.relu", "layer1.0.relu#1"]),
        ("layer1.?", ["layer1.0"]),
        ("attn[1]", ["attn[1]"]),  # brackets are literal
        ("attn[*]", ["attn[0]", "attn[1]"]),
        ("ReLU", ["stem_act", "layer1.0.relu", "layer1.0.relu#1"]),
        ("pkg.Conv2d", ["layer1.0.conv1"]),
        ("Conv*", ["layer1.0.conv1"]),  # glob over types when no name matches
        (["stem", "stem", "Linear"], ["stem", "drop", "head"][:1] + ["head"]),
    ],
)
def test_select_by_name_glob_and_type(request_, expected):
    assert [r.name for r in select_layers(ROWS, request_)] == expected


def test_select_by_class_object_matches_subclasses():
    class Base: ...

    class ReLU(Base): ...

    key = lambda c: f"{c.__module__}.{c.__qualname__}"  # noqa: E731
    rows = [row("a", "ReLU", types=(key(ReLU), key(Base))), row("b", "Other", types=("x.Other",))]
    assert [r.name for r in select_layers(rows, Base)] == ["a"]
    with pytest.raises(ValueError, match="matches no layer"):
        select_layers(rows, int)


def test_unknown_name_lists_close_matches_and_available():
    with pytest.raises(ValueError, match=r"'layer1.0.rleu'.*Close matches: \['layer1.0.relu'.*Available layers: \['stem'"):
        select_layers(ROWS, ["head", "layer1.0.rleu"])


def test_never_fired_module_is_named_as_such():
    with pytest.raises(ValueError, match=r"'layer2.unused'.*never fired"):
        select_layers(ROWS, "layer2.unused")


@pytest.mark.parametrize(("bad", "error", "match"), [([], ValueError, "layers is empty"), ([3], TypeError, "got 3")])
def test_bad_requests(bad, error, match):
    with pytest.raises(error, match=match):
        select_layers(ROWS, bad)


def test_no_default_layers():
    with pytest.raises(ValueError, match="found no default layers"):
        select_layers([row("a.b", depth=2)], None)


def test_long_listings_are_cut():
    rows = [row(f"fc{i}") for i in range(100)]
    with pytest.raises(ValueError, match=r"and 60 more"):
        select_layers(rows, "nothing")


def test_format_layers():
    text = format_layers(ROWS)
    assert text.splitlines()[0].split() == ["name", "type", "shape"]
    assert "layer2.unused" in text and "never fired" in text and "(8, 4, 4)" in text


def bert_rows(n_layers=2, t=7, h=8):
    """The layer table of a BERT encoder (names and classes as Hugging Face writes them)."""
    rows = [
        row("embeddings.word_embeddings", "Embedding", (t, h)),
        row("embeddings.LayerNorm", "LayerNorm", (t, h)),
        row("embeddings.dropout", "Dropout", (t, h)),
        row("embeddings", "BertEmbeddings", (t, h)),
    ]
    for k in range(n_layers):
        p = f"encoder.layer.{k}"
        rows += [
            row(f"{p}.attention.self[0]", "BertSelfAttention", (t, h)),
            row(f"{p}.attention.output.LayerNorm", "LayerNorm", (t, h)),
            row(f"{p}.intermediate.intermediate_act_fn", "GELUActivation", (t, 4 * h)),
            row(f"{p}.output", "BertOutput", (t, h)),
            row(f"{p}[0]", "BertLayer", (t, h)),
            row(f"{p}[1]", "BertLayer", (2, t, t)),  # attention weights, the second array
        ]
    rows += [row("encoder[last_hidden_state]", "BertEncoder", (t, h)), row("pooler", "BertPooler", (h,))]
    return rows


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (bert_rows(3), ["embeddings", "encoder.layer.0[0]", "encoder.layer.1[0]", "encoder.layer.2[0]"]),
        (  # GPT-2: the blocks' input is the dropout after the summed embeddings
            [row("wte", "Embedding", (5, 8)), row("wpe", "Embedding", (5, 8)), row("drop", "Dropout", (5, 8)),
             row("h.0.ln_1", "LayerNorm", (5, 8)), row("h.0[0]", "GPT2Block", (5, 8)),
             row("h.1[0]", "GPT2Block", (5, 8)), row("ln_f", "LayerNorm", (5, 8))],
            ["drop", "h.0[0]", "h.1[0]"],
        ),
        (  # Llama-style decoder, a block returning a tensor
            [row("embed_tokens", "Embedding", (5, 8)), row("layers.0.mlp", "LlamaMLP", (5, 8)),
             row("layers.0", "LlamaDecoderLayer", (5, 8)), row("layers.1", "LlamaDecoderLayer", (5, 8)),
             row("norm", "LlamaRMSNorm", (5, 8))],
            ["embed_tokens", "layers.0", "layers.1"],
        ),
        (  # Hugging Face ResNet: the stages, not the layers inside them; the stem before them
            [row("embedder", "ResNetEmbeddings", (8, 8, 8)),
             row("encoder.stages.0.layers.0", "ResNetBasicLayer", (8, 8, 8)),
             row("encoder.stages.0", "ResNetStage", (8, 8, 8)),
             row("encoder.stages.1.layers.0", "ResNetBasicLayer", (16, 4, 4)),
             row("encoder.stages.1", "ResNetStage", (16, 4, 4)), row("pooler", "AdaptiveAvgPool2d", (16, 1, 1))],
            ["embedder", "encoder.stages.0", "encoder.stages.1"],
        ),
        (  # torchvision ResNet: numbered stages holding lists of blocks
            [row("conv1", "Conv2d", (8, 8, 8)), row("maxpool", "MaxPool2d", (8, 4, 4)),
             row("layer1.0", "BasicBlock", (8, 4, 4)), row("layer1", "Sequential", (8, 4, 4)),
             row("layer2.0", "BasicBlock", (16, 2, 2)), row("layer2", "Sequential", (16, 2, 2)),
             row("fc", "Linear", (10,))],
            ["maxpool", "layer1", "layer2"],
        ),
        ([row("0", "Linear"), row("1", "ReLU"), row("2", "Linear")], []),  # a Sequential MLP has no blocks
        ([row("layers.0", "Linear"), row("layers.1", "Linear"), row("norms.0", "LayerNorm")], []),
    ],
)
def test_residual_preset_picks_embeddings_and_every_block(rows, expected):
    assert [r.name for r in residual_layers(rows)] == expected
    if expected:
        assert [r.name for r in select_layers(rows, None)] == expected
        assert [r.name for r in select_layers(rows, "residual")] == expected


def test_residual_preset_errors_and_globs_still_work():
    with pytest.raises(ValueError, match="layers='residual' picks the embeddings.*no list of blocks"):
        select_layers(ROWS, "residual")
    rows = bert_rows(2)
    assert [r.name for r in select_layers(rows, "encoder.layer.?[0]")] == ["encoder.layer.0[0]", "encoder.layer.1[0]"]
    named = [row("residual", "Linear"), *rows]  # a layer named like the preset is taken by its name
    assert [r.name for r in select_layers(named, "residual")] == ["residual"]


def test_format_layers_marks_the_preset():
    rows = bert_rows(1)
    text = format_layers(rows, {r.name for r in residual_layers(rows)})
    marked = [line.split()[0] for line in text.splitlines()[1:] if line.rstrip().endswith("*")]
    assert text.splitlines()[0].split() == ["name", "type", "shape", "residual"]
    assert marked == ["embeddings", "encoder.layer.0[0]"]
