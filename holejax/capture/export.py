"""Export activations: run a model over inputs and stream the chosen layers into a store.

The export reads the inputs once. For each batch it runs every pending
perturbation: input noise is drawn per sample from ``(seed, perturbation
name, sample index)`` (so a resumed export sees the very same noisy inputs),
compressed models are built once through the adapter. Each batch is pooled
and handed to a writer thread that stores it while the next batch runs; at
most one batch waits for it, so memory holds a few batches of activations,
never the data set. Store chunks hold one batch each, so every batch is
written as whole chunk files (see ``holejax.store.chunks``).

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
from typing import Any

import numpy as np
import xarray as xr

from holejax._checks import check_choice
from holejax.capture.inputs import as_source, example_of, iter_batches
from holejax.capture.layers import LayerInfo, format_layers, select_layers
from holejax.capture.pooling import pool, pooled_shape, resolve_pooling
from holejax.capture.registry import Adapter, find_adapter

__all__ = ["LayerTable", "export_activations", "list_layers", "predict"]

MODES = ("error", "overwrite", "resume", "append")


class LayerTable(tuple):
    """The layers of a model (a tuple of :class:`LayerInfo`) that prints as a table."""

    @property
    def names(self) -> list[str]:
        """Names of the layers that fired."""
        return [i.name for i in self if i.fired]

    def __str__(self) -> str:
        return format_layers(self)

    __repr__ = __str__


def _positive_int(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{argument} must be a positive int; got {value!r}.")
    return int(value)


def _perturbations(perturbations: Any) -> list[Any]:
    """Perturbation objects, ``clean`` first (see ``holejax.perturb``)."""
    from holejax.perturb import as_perturbations

    return as_perturbations(perturbations)


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


def _noisy(p: Any, x: np.ndarray, seed: int, start: int) -> np.ndarray:
    if p.kind != "input":
        return x
    return np.asarray(p.apply_at(x, seed=seed, start=start))


def _models(model: Any, perturbations: Sequence[Any], adapter: Adapter) -> dict[str, Any]:
    """The model each perturbation runs: the model itself, or its compressed copy."""
    return {
        p.name: adapter.compress(model, p) if p.kind == "compression" else model for p in perturbations
    }


def _stored_attrs(store: Any, mode: str) -> dict:
    if mode not in ("resume", "append") or not (Path(store) / "zarr.json").is_file():
        return {}
    from holejax.store import open_activations

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
    pooling: Any = "flatten",
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
        inputs: an array ``(sample, ...)`` in the framework's layout, or an
            iterable of batches (arrays, ``(x, y)`` pairs; a DataLoader
            without shuffling).
        store: path of the Zarr store to write.
        labels: ``(sample,)`` integer labels (optional; labels found in the
            batches are used when left out).
        layers: names (``"layer1.0.relu"``), globs (``"layer*.relu"``, ``*``
            crosses dots), module types (``"ReLU"``, ``torch.nn.ReLU``), or a
            list of them; None = outputs of nonlinearities and of top-level
            blocks (see ``hj.list_layers``).
        perturbations: ``hj.clean()``, ``hj.gaussian(sigma=0.1)``,
            compression perturbations, or their names; ``clean`` is always
            exported first. None = clean only.
        batch_size: samples per forward pass (and per store chunk).
        mode: if ``store`` exists: ``"error"``, ``"overwrite"``, ``"resume"``
            (continue an interrupted export where it stopped) or ``"append"``
            (add new perturbations to a finished store).
        seed: seed of the input noise.
        pooling: ``"flatten"``, ``"global_avg"``, ``"cls"``, ``"mean_tokens"``,
            ``"none"``, ``"auto"``, or a mapping of layer names/globs to those
            (see ``holejax.capture.pooling``).
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
        ``(perturbation, sample, "<layer>:unit")`` variable per layer).

    Raises:
        ValueError / TypeError: bad arguments, unknown layers (with close
            matches), a layer that did not fire, non-finite activations
            (naming the layer, sample and perturbation).
        holejax.store.StoreError: the store exists (mode ``"error"``), was
            written by another tool, or does not match the export.
    """
    from holejax.store import ActivationWriter, LayerSpec
    from holejax.store.chunks import resolve_compressors

    batch_size = _positive_int(batch_size, "batch_size")
    check_choice(mode, "mode", MODES)
    resolve_compressors(compressors, np.dtype(np.float32))  # rejects a bad value before any work
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; got {seed!r}.")
    perts = _perturbations(perturbations)
    adapter = _adapter(model, adapter)
    source = as_source(inputs, labels=labels, batch_size=batch_size, n_samples=n_samples)

    infos = select_layers(adapter.list_layers(model, source.example), layers)
    poolings = resolve_pooling(pooling, infos)
    specs = [
        LayerSpec(i.name, i.shape, pooling=poolings[i.name], units=math.prod(pooled_shape(i.shape, poolings[i.name], i.layout)))
        for i in infos
    ]
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
    writer = ActivationWriter.create(
        store, specs, source.n, perturbations=perts, labels=source.labels, label_names=label_names,
        attrs={"framework": adapter.name, "model_class": model_class, "export_seed": int(seed)},
        mode=mode, sample_chunk=min(batch_size, source.n), compressors=compressors,
    )
    by_name = {p.name: p for p in perts}
    missing = [name for name in writer.pending() if name not in by_name]
    if missing:
        raise ValueError(
            f"the store {str(store)!r} has unfinished perturbations {missing} that perturbations= does not "
            "list; pass them too."
        )
    pending = [by_name[name] for name in writer.pending()]
    _run(adapter, model, infos, poolings, source, writer, pending, int(seed), progress)
    return writer.finish()


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


def _run(
    adapter: Adapter,
    model: Any,
    infos: list[LayerInfo],
    poolings: dict[str, str],
    source: Any,
    writer: Any,
    pending: list[Any],
    seed: int,
    progress: bool,
) -> None:
    """The batch loop: every pending perturbation of each batch, pooled and written."""
    from tqdm import tqdm

    if not pending:
        return
    names = [i.name for i in infos]
    models = _models(model, pending, adapter)
    next_sample = {p.name: writer.next_sample(p.name) for p in pending}
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
            end = start + len(x)
            for p in pending:
                first = next_sample[p.name]
                if first >= end:
                    continue
                xs = _noisy(p, x[first - start :], seed, first)
                raw = runs[id(models[p.name])](xs)
                batch = {}
                for info in infos:
                    out = raw.get(info.name)
                    if out is None:
                        raise ValueError(
                            f"layer {info.name!r} did not fire for samples {first}..{end - 1} (perturbation "
                            f"{p.name!r}), although it fired on the example batch; the forward pass takes "
                            "another branch for these inputs. Leave the layer out of layers=."
                        )
                    if tuple(out.shape[1:]) != info.shape:
                        raise ValueError(
                            f"layer {info.name!r} has per-sample shape {tuple(out.shape[1:])} for samples "
                            f"{first}..{end - 1} but {info.shape} on the example batch; every sample must give "
                            "the same shape (pad or resize the inputs)."
                        )
                    batch[info.name] = pool(out, poolings[info.name], info.layout)
                sink.put(p.name, first, batch)
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
    p = _perturbations(None if perturbation is None else [perturbation])[-1]
    run_model = _models(model, [p], adapter)[p.name]
    outs = [adapter.predict(run_model, _noisy(p, x, seed, start)) for start, x in iter_batches(inputs, batch_size)]
    return np.concatenate(outs)
