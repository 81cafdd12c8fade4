"""holejax: persistent homology of neural-network activations with JAX.

The package follows the data flow of a study::

    capture/     model + inputs -> activation store (framework adapters)
    store/       Zarr v3 activation and results stores (xarray)
    perturb/     input noise (compression lives in the adapters)
    metrics/     jit + vmap distance kernels
    filtration/  H0 filtration: MST, Kruskal merge tree, diagrams
    analysis/    clusters, purity, Sankey stages, robustness, studies
    topology/    landscapes, neural persistence, Betti decay, diagram distances
    report/      Bokeh figures and the standalone HTML report

Public names are loaded on first use, so ``import holejax`` stays light: it
never imports torch, flax or bokeh.

Example:
    >>> import numpy as np, holejax as hj
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 0.0]], dtype=np.float32)
    >>> h = hj.h0(hj.pairwise_distances(X))
    >>> np.round(np.asarray(h.deaths), 3).tolist()
    [1.0, 5.0]
"""

from __future__ import annotations

from holejax._lazy import lazy_getattr
from holejax._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # store
    "open_activations": "holejax.store",
    "ActivationWriter": "holejax.store",
    "LayerSpec": "holejax.store",
    "StoreError": "holejax.store",
    "open_results": "holejax.store",
    "write_results": "holejax.store",
    # capture
    "export_activations": "holejax.capture",
    "list_layers": "holejax.capture",
    "predict": "holejax.capture",
    # perturbations
    "Perturbation": "holejax.perturb",
    "clean": "holejax.perturb",
    "gaussian": "holejax.perturb",
    "uniform": "holejax.perturb",
    "salt_and_pepper": "holejax.perturb",
    "poisson": "holejax.perturb",
    "speckle": "holejax.perturb",
    "global_l1_prune": "holejax.perturb",
    "layerwise_l1_prune": "holejax.perturb",
    "int8_dynamic": "holejax.perturb",
    "quantize": "holejax.perturb",
    # metrics
    "pairwise_distances": "holejax.metrics",
    "batched_pairwise_distances": "holejax.metrics",
    "METRICS": "holejax.metrics",
    "hole_metric_params": "holejax.metrics.presets",
    # filtration
    "H0Result": "holejax.filtration",
    "h0": "holejax.filtration",
    "h0_from_points": "holejax.filtration",
    "clusters_at": "holejax.filtration",
    "betti0_curve": "holejax.filtration",
    "h0_diagram": "holejax.filtration",
    "dendrogram_linkage": "holejax.filtration",
    "set_compile_cache": "holejax._cache",
    # analysis
    "purity": "holejax.analysis",
    "inverse_purity": "holejax.analysis",
    "analyze": "holejax.analysis",
    "robustness_study": "holejax.analysis",
    "sankey_stages": "holejax.analysis",
    # topology
    "diagram_distance": "holejax.topology",
    "total_persistence": "holejax.topology",
    "persistent_entropy": "holejax.topology",
    "activation_landscapes": "holejax.topology",
    "neural_persistence": "holejax.topology",
    "betti_decay": "holejax.topology",
    "topology_summary": "holejax.topology",
    # report
    "write_report": "holejax.report",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
