"""Export activations: run a model over inputs and stream the chosen layers into a store.

The export reads the inputs once. For each batch it runs every pending
perturbation: input noise is drawn per sample from ``(seed, perturbation
name, sample index)`` (so a resumed export sees the very same noisy inputs),
compressed models are built once through the adapter. Each batch is pooled
and handed to a writer thread that stores it while the next batch runs; at
most one batch waits for it, so memory holds a few batches of activations
and the store writer's chunks (at most 32 MiB), never the data set. The
writer holds rows until their chunk is whole and writes whole chunks only
(see ``holejax.store.zarr_``).

Runnable examples with real models are in the adapter packages
(``holejax_torch``, ``holejax_flax``).
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr
from tqdm import tqdm

from holejax._checks import check_choice
from holejax.capture.inputs import ModelInput, as_source, example_of, iter_batches, n_samples_of, slice_samples
from holejax.capture.layers import LayerInfo, format_layers, residual_layers, select_layers
from holejax.capture.pooling import TOKEN_POOLINGS, pool, pooled_shape, resolve_pooling, token_counts
from holejax.capture.registry import Adapter, find_adapter
from holejax.perturb import as_perturbations
from holejax.store import ActivationWriter, LayerSpec, open_activations
from holejax.store.chunks import resolve_compressors
from holejax.store.fingerprint import export_fingerprint

__all__ = ["LayerTable", "TokenRows", "export_activations", "list_layers", "predict"]

MODES = ("error", "overwrite", "resume", "append")


class LayerTable(tuple):
    """The layers of a model (a tuple of :class:`LayerInfo`) that prints as a table.

    The rows of the residual stream (``layers="residual"``: embeddings and
    every transformer block or CNN stage) are marked; for models that have
    them it is the default selection.
    """

    @property
    def names(self) -> list[str]:
        """Names of the layers that fired."""
        return [i.name for i in self if i.fired]

    @property
    def residual(self) -> list[str]:
        """Names of the layers ``layers="residual"`` picks (the default when there are any)."""
        return [i.name for i in residual_layers(self)]

    def __str__(self) -> str:
        marked = set(self.residual)
        table = format_layers(self, marked)
        if marked:
            table += '\n* layers="residual": embeddings and every block, the default for this model'
        return table

    __repr__ = __str__


def _positive_int(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{argument} must be a positive int; got {value!r}.")
    return int(value)


def _adapter(model: Any, adapter: Adapter | None) -> Adapter:
    return adapter if adapter is not None else find_adapter(model)


def list_layers(model: Any, example_inputs: Any, *, adapter: Adapter | None = None) -> LayerTable:
    """What can be captured: every layer's name, module type and per-sample shape.

    Runs one inference forward pass on the first two samples of
    ``example_inputs``. Rows come in execution order; modules that produced
    no output come last with ``shape=None``.

    Args:
        model: a PyTorch ``nn.Module``, a Flax Linen ``(module, variables)``
            pair or a Flax NNX module.
        example_inputs: an array ``(sample, ...)`` or an iterable of batches
            (its first batch is read).
        adapter: use this adapter instead of the installed one that accepts
            the model.

    Returns:
        :class:`LayerTable` of :class:`~holejax.capture.LayerInfo`; ``print``
        it for a table, ``.names`` for the names.
    """
    return LayerTable(_adapter(model, adapter).list_layers(model, example_of(example_inputs)))


def _noisy(p: Any, x: ModelInput, seed: int, start: int) -> ModelInput:
    """The model input with input noise on every floating array (token ids and masks stay as they are)."""
    if p.kind != "input":
        return x
    if isinstance(x, np.ndarray):
        return np.asarray(p.apply_at(x, seed=seed, start=start))
    entries = x.items() if isinstance(x, dict) else enumerate(x)
    noisy = {k: np.asarray(p.apply_at(v, seed=seed, start=start)) if v.dtype.kind == "f" else v for k, v in entries}
    if all(v.dtype.kind != "f" for v in noisy.values()):
        raise ValueError(
            f"perturbation {p.name!r} adds noise to the inputs, but the model inputs {list(noisy)} hold no "
            "floating array (token ids are integers); use a compression perturbation, or pass floating "
            "inputs such as embeddings or pixel values."
        )
    return noisy if isinstance(x, dict) else tuple(noisy[i] for i in range(len(x)))


def _mask_source(mask: Any, example: ModelInput, n: int) -> str | np.ndarray | None:
    """The attention mask: the name of a key of the model inputs, a ``(sample, token)`` array, or None.

    None takes the inputs' ``attention_mask`` key when there is one.
    """
    keys = sorted(example) if isinstance(example, dict) else []
    if mask is None:
        return "attention_mask" if "attention_mask" in keys else None
    if isinstance(mask, str):
        if mask not in keys:
            held = keys if keys else "none: the inputs are not a mapping"
            raise ValueError(
                f"mask={mask!r} names no key of the model inputs (keys: {held}); pass the key of the "
                "attention mask or a (sample, token) array."
            )
        return mask
    arr = np.asarray(mask)
    if arr.ndim != 2 or arr.shape[0] != n or arr.dtype.kind not in "biuf":
        raise ValueError(
            f"mask must be the name of a key of the inputs or a numeric (sample, token) array with {n} rows; "
            f"got dtype {arr.dtype}, shape {arr.shape}."
        )
    return arr


def _batch_mask(source: str | np.ndarray | None, x: ModelInput, start: int) -> np.ndarray | None:
    if source is None:
        return None
    if isinstance(source, str):
        return np.asarray(x[source])
    return source[start : start + n_samples_of(x)]


def _token_layers(infos: Sequence[LayerInfo], residual: Sequence[LayerInfo], mask: np.ndarray | None) -> set[str]:
    """Rank-2 outputs that are token sequences.

    Those of the residual stream, and those as long as the sequence: the
    mask's token count, or without a mask the residual stream's (a final
    LayerNorm or the encoder's ``last_hidden_state`` of a ViT).
    """
    lengths = {i.shape[0] for i in residual if i.shape is not None and len(i.shape) == 2}
    if mask is not None:
        lengths = {mask.shape[1]}
    names = {i.name for i in residual}
    return {
        i.name for i in infos
        if i.shape is not None and len(i.shape) == 2 and (i.name in names or i.shape[0] in lengths)
    }


def _models(model: Any, perturbations: Sequence[Any], adapter: Adapter) -> dict[str, Any]:
    """The model each perturbation runs: the model itself, or its compressed copy."""
    return {
        p.name: adapter.compress(model, p) if p.kind == "compression" else model for p in perturbations
    }


def _stored_attrs(store: Any, mode: str) -> dict:
    if mode not in ("resume", "append") or not (Path(store) / "zarr.json").is_file():
        return {}
    return dict(open_activations(store, allow_incomplete=True).attrs)


def export_activations(
    model: Any,
    inputs: Any,
    *,
    store: str | os.PathLike,
    labels: Any = None,
    layers: str | type | Iterable[str | type] | None = None,
    perturbations: Sequence[Any] | None = None,
    batch_size: int = 256,
    mode: str = "error",
    seed: int = 0,
    pooling: Any = None,
    mask: Any = None,
    label_names: Sequence[str] | None = None,
    n_samples: int | None = None,
    progress: bool = True,
    adapter: Adapter | None = None,
    compressors: Any = None,
) -> xr.Dataset:
    """Capture layer activations of a model and stream them into an activation store.

    Args:
        model: a PyTorch ``nn.Module``, a Flax Linen ``(module, variables)``
            (or ``(module, variables, apply_kwargs)``) or a Flax NNX module.
        inputs: an array ``(sample, ...)`` in the framework's layout; a tuple
            of such arrays (positional arguments of the model); a mapping of
            them (keyword arguments: a tokenizer's ``BatchEncoding``, whose
            ``labels`` key, if any, gives the labels); or an iterable of
            batches of those (a DataLoader without shuffling; ``(x, y)``
            pairs). See ``holejax.capture.inputs``.
        store: path of the Zarr store to write.
        labels: ``(sample,)`` integer labels (optional; labels found in the
            inputs are used when left out).
        layers: names (``"layer1.0.relu"``), globs (``"layer*.relu"``, ``*``
            crosses dots), module types (``"ReLU"``, ``torch.nn.ReLU``), the
            preset ``"residual"`` (embeddings and every transformer block or
            CNN stage), or a list of them; None = the residual stream for
            models with blocks, else outputs of nonlinearities and of
            top-level blocks (see ``hj.list_layers``).
        perturbations: ``hj.clean()``, ``hj.gaussian(sigma=0.1)``,
            compression perturbations, or their names; ``clean`` is always
            exported first. None = clean only. Input noise goes to the
            floating arrays of the inputs (not to token ids).
        batch_size: samples per forward pass.
        mode: if ``store`` exists: ``"error"``, ``"overwrite"``, ``"resume"``
            (continue an interrupted export where it stopped) or ``"append"``
            (add new perturbations to a finished store).
        seed: seed of the input noise.
        pooling: ``"flatten"``, ``"global_avg"``, ``"mean"``, ``"cls"``,
            ``"first"``, ``"last"``, ``"max"``, ``"tokens"``, ``"none"``,
            ``"auto"``, or a mapping of layer names/globs to those; None =
            the masked mean over real tokens for token outputs, the mean
            over space for CNN stages of the preset, ``flatten`` otherwise
            (see ``holejax.capture.pooling``).
        mask: the attention mask for token poolings: the name of a key of
            the inputs, or a ``(sample, token)`` array, nonzero at real
            tokens. None = the inputs' ``attention_mask`` key, if any.
        label_names: class names indexed by label.
        n_samples: sample count of a one-shot iterator (generator).
        progress: show a progress bar with samples/s.
        adapter: use this adapter instead of the installed one that accepts
            the model.
        compressors: compression of the stored chunks: ``None`` (default,
            the fastest to write; float32 activations seldom shrink by more
            than 10-40%), ``"lz4"`` (Blosc LZ4 + byte shuffle), ``"zstd"``
            (Zstandard level 1, ~1.8x smaller for ReLU outputs, several
            times the write cost) or Zarr v3 codecs such as
            ``zarr.codecs.ZstdCodec(level=3)``. Resume and append keep the
            store's own.

    Returns:
        The finished store, opened (``xarray.Dataset`` with one
        ``(perturbation, sample, "<layer>:unit")`` variable per layer). With
        ``pooling="tokens"`` every row is one real token, with coordinates
        ``sample`` (its input sample) and ``token`` (its position).

    Raises:
        ValueError / TypeError: bad arguments, unknown layers (with close
            matches), a layer that did not fire, a mask that does not fit,
            non-finite activations (naming the layer, sample and perturbation).
        holejax.store.StoreError: the store exists (mode ``"error"``), was
            written by another tool, or does not match the export.
    """
    batch_size = _positive_int(batch_size, "batch_size")
    check_choice(mode, "mode", MODES)
    resolve_compressors(compressors, np.dtype(np.float32))  # rejects a bad value before any work
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; got {seed!r}.")
    perts = as_perturbations(perturbations)  # clean first
    adapter = _adapter(model, adapter)
    source = as_source(inputs, labels=labels, batch_size=batch_size, n_samples=n_samples)
    masks = _mask_source(mask, source.example, source.n)

    table = adapter.list_layers(model, source.example)
    infos = select_layers(table, layers)
    residual = residual_layers(table)
    tokens = _token_layers(infos, residual, _batch_mask(masks, source.example, 0))
    poolings = resolve_pooling(pooling, infos, tokens=tokens, stages={i.name for i in residual})
    specs = [
        LayerSpec(i.name, i.shape, pooling=poolings[i.name], units=math.prod(pooled_shape(i.shape, poolings[i.name], i.layout)))
        for i in infos
    ]
    rows = _token_rows(source, masks, infos[0]) if "tokens" in poolings.values() else None
    stored = _stored_attrs(store, mode)
    model_class = adapter.model_class(model)
    if stored and (stored.get("framework"), stored.get("model_class")) != (adapter.name, model_class):
        raise ValueError(
            f"the store {str(store)!r} holds activations of a {stored.get('framework')} "
            f"{stored.get('model_class')}, but this model is a {adapter.name} {model_class}; {mode} needs the "
            "same model, or use mode='overwrite' or another store."
        )
    if "export_seed" in stored and int(stored["export_seed"]) != int(seed):
        raise ValueError(
            f"seed={seed} but the store {str(store)!r} was exported with seed={stored['export_seed']}; "
            "pass that seed so the input noise matches, or mode='overwrite'."
        )
    n_rows = source.n if rows is None else len(rows.sample)
    row_labels = source.labels if rows is None or source.labels is None else source.labels[rows.sample]
    writer = ActivationWriter.create(
        store, specs, n_rows, perturbations=perts, labels=row_labels, label_names=label_names,
        attrs={"framework": adapter.name, "model_class": model_class, "export_seed": int(seed),
               **export_fingerprint(model, source.example)},
        mode=mode, compressors=compressors,
        sample_coords=None if rows is None else {"sample": rows.sample, "token": rows.token},
    )
    by_name = {p.name: p for p in perts}
    missing = [name for name in writer.pending() if name not in by_name]
    if missing:
        raise ValueError(
            f"the store {str(store)!r} has unfinished perturbations {missing} that perturbations= does not "
            "list; pass them too."
        )
    pending = [by_name[name] for name in writer.pending()]
    _run(adapter, model, infos, poolings, source, masks, rows, writer, pending, int(seed), progress)
    return writer.finish()


class TokenRows(NamedTuple):
    """Where the rows of a ``tokens`` export come from.

    Attributes:
        sample: ``(row,)`` input sample of each row.
        token: ``(row,)`` position of each row's token in its sequence.
        offsets: ``(sample + 1,)`` first row of each sample (and the row count).
    """

    sample: np.ndarray
    token: np.ndarray
    offsets: np.ndarray


def _token_rows(source: Any, masks: Any, info: LayerInfo) -> TokenRows:
    """One row per real token: a pass over the masks (not the model) before the store is created."""
    samples, positions = [], []
    for start, x in source.batches():
        m = _batch_mask(masks, x, start)
        if m is None:  # every token is real: as many as the layer has, per sample
            m = np.ones((n_samples_of(x), info.shape[0]), bool)
        s, t = np.nonzero(np.asarray(m) != 0)
        samples.append(s + start)
        positions.append(t)
    sample = np.concatenate(samples).astype(np.int64)
    counts = np.bincount(sample, minlength=source.n)
    return TokenRows(sample, np.concatenate(positions).astype(np.int64), np.concatenate([[0], np.cumsum(counts)]))


class _WriteBehind:
    """Writes batches on one worker thread while the main thread computes the next batch.

    At most one batch waits in the queue, so memory holds a bounded number of
    batches. The first write error stops all later writes (batches must stay
    contiguous) and is raised in the main thread at the next :meth:`put` or
    at :meth:`close`.
    """

    def __init__(self, writer: Any):
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="holejax-export-writer", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.writer.write_batch(*item)
                except BaseException as err:  # handed to the main thread
                    self.error = err

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, perturbation: str, start: int, batch: dict[str, np.ndarray]) -> None:
        self._raise()
        self.queue.put((perturbation, start, batch))

    def close(self) -> None:
        """Write what is queued and stop the worker."""
        self.queue.put(None)
        self.thread.join()


def _pooled(info: LayerInfo, out: np.ndarray, pooling: str, mask: np.ndarray | None, where: str) -> np.ndarray:
    """One layer's batch of outputs, checked against the example's shape and pooled."""
    token_pooling = pooling in TOKEN_POOLINGS
    same = tuple(out.shape[2:]) == info.shape[1:] and out.ndim == len(info.shape) + 1 if token_pooling else (
        tuple(out.shape[1:]) == info.shape
    )
    if not same:
        raise ValueError(
            f"layer {info.name!r} has per-sample shape {tuple(out.shape[1:])} for {where} but {info.shape} on "
            "the example batch; every sample must give the same shape (pad or resize the inputs"
            + ("" if len(info.shape) != 2 else ", or pool the token axis: pooling='mean'") + ")."
        )
    if not token_pooling:
        mask = None
    elif mask is not None and mask.shape != out.shape[:2]:
        raise ValueError(
            f"layer {info.name!r} has {out.shape[1]} tokens for {where} but the mask has {mask.shape[1]} "
            f"(mask shape {mask.shape}); the mask must mark every token of the layer's output. Pool this "
            "layer without the mask (pooling='flatten'), or capture layers with the inputs' token count."
        )
    try:
        return pool(out, pooling, info.layout, mask)
    except ValueError as err:
        raise ValueError(f"layer {info.name!r}, {where}: {err}") from None


def _run(
    adapter: Adapter,
    model: Any,
    infos: list[LayerInfo],
    poolings: dict[str, str],
    source: Any,
    masks: Any,
    rows: TokenRows | None,
    writer: Any,
    pending: list[Any],
    seed: int,
    progress: bool,
) -> None:
    """The batch loop: every pending perturbation of each batch, pooled and written."""
    if not pending:
        return
    names = [i.name for i in infos]
    models = _models(model, pending, adapter)
    next_row = {p.name: writer.next_sample(p.name) for p in pending}
    if rows is None:
        next_sample = dict(next_row)
        row_of = lambda sample: sample  # noqa: E731
    else:  # the sample holding the next row: a repaired chunk can start inside a sample
        next_sample = {p: int(np.searchsorted(rows.offsets, r, side="right")) - 1 for p, r in next_row.items()}
        row_of = lambda sample: int(rows.offsets[sample])  # noqa: E731
    total = sum(source.n - s for s in next_sample.values())
    with contextlib.ExitStack() as stack:
        runs: dict[int, Any] = {}
        for m in models.values():
            if id(m) not in runs:
                runs[id(m)] = stack.enter_context(adapter.capture(m, names))
        sink = _WriteBehind(writer)
        stack.callback(sink.close)
        bar = stack.enter_context(
            tqdm(total=total, unit=" samples", unit_scale=True, disable=not progress, desc="export", leave=False)
        )
        for start, x in source.batches(min(next_sample.values())):
            writer.record_inputs(start, x)  # the inputs' digest, for the store's fingerprint
            end = start + n_samples_of(x)
            for p in pending:
                first = next_sample[p.name]
                if first >= end:
                    continue
                xs = x if first == start else slice_samples(x, first - start)
                mask = _batch_mask(masks, xs, first)
                raw = runs[id(models[p.name])](_noisy(p, xs, seed, first))
                where = f"samples {first}..{end - 1} (perturbation {p.name!r})"
                batch = {}
                for info in infos:
                    out = raw.get(info.name)
                    if out is None:
                        raise ValueError(
                            f"layer {info.name!r} did not fire for {where}, although it fired on the example "
                            "batch; the forward pass takes another branch for these inputs. Leave the layer out "
                            "of layers=."
                        )
                    batch[info.name] = _pooled(info, out, poolings[info.name], mask, where)
                skip = next_row[p.name] - row_of(first)  # rows of the first sample already written
                if skip:
                    batch = {name: values[skip:] for name, values in batch.items()}
                sink.put(p.name, next_row[p.name], batch)
                next_row[p.name] = row_of(end)
                next_sample[p.name] = end
                bar.update(end - first)
    sink._raise()


def predict(
    model: Any,
    inputs: Any,
    *,
    batch_size: int = 256,
    perturbation: Any = None,
    seed: int = 0,
    adapter: Adapter | None = None,
) -> np.ndarray:
    """The model's outputs (logits) over ``inputs``, optionally perturbed.

    Input noise uses the same per-sample keys as :func:`export_activations`
    with the same ``seed``, so accuracy is measured on exactly the exported
    inputs; compression perturbations run the adapter's compressed copy.

    Args:
        model: as for :func:`export_activations`.
        inputs: an array ``(sample, ...)`` or an iterable of batches.
        batch_size: samples per forward pass.
        perturbation: a Perturbation, its name, or None (clean).
        seed: seed of the input noise.
        adapter: use this adapter instead of the installed one.

    Returns:
        ``np.ndarray`` ``(sample, ...)``: the first array of the model output
        for every sample.
    """
    batch_size = _positive_int(batch_size, "batch_size")
    adapter = _adapter(model, adapter)
    p = as_perturbations(None if perturbation is None else [perturbation])[-1]
    run_model = _models(model, [p], adapter)[p.name]
    outs = [adapter.predict(run_model, _noisy(p, x, seed, start)) for start, x in iter_batches(inputs, batch_size)]
    return np.concatenate(outs)
