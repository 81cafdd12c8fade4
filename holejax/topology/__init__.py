"""Topological measures beside HOLE: diagram distances and summaries,
activation landscapes, neural persistence of weights, Betti-number decay.

Modules:
    diagrams            bottleneck / Wasserstein distances, total persistence, persistent entropy
    landscapes          activation landscapes (Wheeler, Bouza & Bubenik)
"""

from holejax.topology.diagrams import (
    as_diagram,
    bottleneck_distance,
    diagram_distance,
    persistent_entropy,
    split_essential,
    total_persistence,
    wasserstein_distance,
)
from holejax.topology.landscapes import (
    ActivationLandscapes,
    LandscapePCA,
    PermutationTestResult,
    activation_diagrams,
    activation_landscapes,
    average_landscapes,
    landscape_distance,
    landscape_grid,
    landscape_norm,
    landscape_pca,
    landscape_permutation_test,
    local_distance_matrix,
    normalize_activations,
    persistence_landscape,
    persistence_landscapes,
    subsample_activation_landscapes,
)

__all__ = [
    # diagrams
    "as_diagram",
    "bottleneck_distance",
    "diagram_distance",
    "persistent_entropy",
    "split_essential",
    "total_persistence",
    "wasserstein_distance",
    # landscapes
    "ActivationLandscapes",
    "LandscapePCA",
    "PermutationTestResult",
    "activation_diagrams",
    "activation_landscapes",
    "average_landscapes",
    "landscape_distance",
    "landscape_grid",
    "landscape_norm",
    "landscape_pca",
    "landscape_permutation_test",
    "local_distance_matrix",
    "normalize_activations",
    "persistence_landscape",
    "persistence_landscapes",
    "subsample_activation_landscapes",
]
