"""``robustness_study``: export, analyse and measure accuracy under every perturbation in one call."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from holejax._checks import as_labels, check_choice
from holejax.analysis.analyze import analyze
from holejax.capture import export_activations, predict
from holejax.metrics import METRICS
from holejax.perturb import as_perturbations
from holejax.store import write_results

__all__ = ["robustness_study"]


def _n_samples(inputs: Any) -> int:
    shape = getattr(inputs, "shape", None)
    if shape is None or len(shape) == 0:
        raise TypeError(
            "robustness_study needs inputs as one array (sample, ...) (numpy, jax or torch), so that the "
            f"accuracy pass sees the same samples as the export; got {type(inputs).__name__}. "
            "For iterables of batches call hj.export_activations and hj.analyze separately."
        )
    return int(shape[0])


def robustness_study(
    model: Any,
    inputs: Any,
    labels: Any = None,
    perturbations: Sequence[Any] | None = None,
    layers: Any = None,
    metrics: str | Sequence[str] = ("euclidean",),
    store: str | os.PathLike | None = None,
    *,
    results: str | os.PathLike | None = None,
    batch_size: int = 256,
    seed: int = 0,
    mode: str = "error",
    pooling: Any = "flatten",
    label_names: Sequence[str] | None = None,
    progress: bool = True,
    adapter: Any = None,
    **analyze_options: Any,
) -> Any:
    """Run a whole HOLE robustness study: export, analysis, accuracy per perturbation.

    Input noise is drawn from ``seed`` per sample (the same noisy inputs for
    the export and the accuracy pass); compression perturbations run a
    compressed copy of the model (the adapter's ``apply_compression``).

    Args:
        model: a PyTorch module, a Flax Linen ``(module, variables)`` or an NNX module.
        inputs: ``(sample, ...)`` array in the framework's layout.
        labels: ``(sample,)`` int classes; needed for purity, ARI, NMI and accuracy.
        perturbations: Perturbations or names (``clean`` is added first).
        layers: as in ``hj.export_activations`` (names, globs, types).
        metrics: metric names, see ``hj.METRICS``.
        store: path of the activation store; None writes it to a temporary
            folder that is removed afterwards (pass a path to keep the
            activations for ``hj.write_report``'s heatmaps).
        results: if given, the results are also written there (``hj.write_results``).
        batch_size, seed, mode, pooling, label_names, progress, adapter: as in
            ``hj.export_activations``.
        **analyze_options: passed to :func:`holejax.analyze` (``criterion``,
            ``min_cluster_size``, ``persistence``, ``metric_params``, ...).

    Returns:
        The results Dataset of :func:`holejax.analyze` with an ``accuracy``
        ``(perturbation)`` variable when labels were given and the model
        outputs one score vector per sample.

    Raises:
        ValueError / TypeError: unknown metric or perturbation names, labels
            that do not match the inputs, inputs that are not one array,
            before anything is exported.

    Example:
        >>> import numpy as np, torch, holejax as hj
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
        >>> y = (x[:, 0] > 0).astype(int)
        >>> res = hj.robustness_study(net, x, y, perturbations=[hj.gaussian(0.5), hj.int8_dynamic()],
        ...                layers=["1"], metrics=["euclidean"], progress=False)
        >>> res.perturbation.values.tolist()
        ['clean', 'gaussian(sigma=0.5)', 'int8_dynamic']
        >>> res.accuracy.dims, res.purity.dims
        (('perturbation',), ('perturbation', 'layer', 'metric'))
    """
    # check everything cheap before the export
    n = _n_samples(inputs)
    y = None if labels is None else as_labels(labels, n, "labels")
    metric_list = [metrics] if isinstance(metrics, str) else list(metrics)
    if not metric_list:
        raise ValueError("metrics is empty; pass at least one metric name, e.g. ['euclidean'].")
    for m in metric_list:
        check_choice(m, "metric", METRICS)
    perts = as_perturbations(perturbations)
    if "accuracy" in analyze_options:
        raise TypeError("robustness_study measures accuracy itself; do not pass accuracy=.")
    if results is not None and os.path.exists(results) and mode != "overwrite":
        raise FileExistsError(f"results={os.fspath(results)!r} already exists; pass mode='overwrite' or another path.")

    tmp = None
    if store is None:
        tmp = tempfile.mkdtemp(prefix="holejax-study-")
        store = os.path.join(tmp, "acts.zarr")
    try:
        acts = export_activations(
            model, inputs, store=store, labels=y, layers=layers, perturbations=perts,
            batch_size=batch_size, mode=mode, seed=seed, pooling=pooling, label_names=label_names,
            progress=progress, adapter=adapter,
        )
        accuracy = None
        if y is not None:
            accuracy = {}
            for p in perts:
                out = np.asarray(
                    predict(model, inputs, batch_size=batch_size, perturbation=p, seed=seed, adapter=adapter)
                )
                if out.ndim != 2 or out.shape[0] != n:
                    accuracy = None  # not a classifier with one score vector per sample
                    break
                accuracy[p.name] = float(np.mean(np.argmax(out, axis=1) == y))
        res = analyze(acts, metrics=metric_list, labels=y, accuracy=accuracy, **analyze_options)
        if tmp is not None:
            res.attrs["source"] = ""
            res = res.load()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if results is not None:
        write_results(res, results, mode="overwrite" if mode == "overwrite" else "error")
    return res

