"""The public API of holejax is pinned: names may be added here, never silently lost."""

import holejax as hj

PUBLIC = {
    "ActivationWriter", "LayerSpec", "StoreError", "open_activations", "open_results", "write_results",
    "export_activations", "list_layers",
    "Perturbation", "clean", "gaussian", "uniform", "salt_and_pepper", "poisson", "speckle",
    "pairwise_distances", "batched_pairwise_distances", "METRICS", "hole_metric_params",
    "H0Result", "h0", "h0_from_points", "clusters_at", "betti0_curve", "h0_diagram",
    "purity", "inverse_purity", "analyze", "robustness_study", "sankey_stages",
    "write_report",
    "global_l1_prune", "layerwise_l1_prune", "int8_dynamic", "quantize", "predict",
    "dendrogram_linkage", "set_compile_cache",
    "diagram_distance", "total_persistence", "persistent_entropy",
    "activation_landscapes", "neural_persistence", "betti_decay",
    "topology_summary",
}


def test_public_names_are_exported_and_resolve():
    assert PUBLIC <= set(hj.__all__)
    for name in hj.__all__:
        assert getattr(hj, name) is not None, name


def test_unknown_attribute_is_a_clear_error():
    try:
        hj.not_a_function
    except AttributeError as err:
        assert "not_a_function" in str(err)
    else:
        raise AssertionError("expected AttributeError")
