"""Topological measures beside HOLE: diagram distances and summaries,
activation landscapes, neural persistence of weights, Betti-number decay.

Modules:
    diagrams                bottleneck / Wasserstein distances (gudhi; batched H0 in JAX),
                            total persistence, persistent entropy
    landscapes              persistence landscapes on a grid, norms (JAX)
    activation_landscapes   activation landscapes per layer (Wheeler, Bouza & Bubenik)
    landscape_stats         permutation test and PCA view over groups of landscapes
    neural_persistence      neural persistence of weights (Rieck et al.; bounds of Girrbach et al.)
    betti_decay             Betti numbers of feature maps across depth (Suresh et al.)
    summary                 all of the above for one model as a results Dataset (topology_summary)

Example:
    >>> import numpy as np
    >>> from holejax import topology
    >>> topology.diagram_distance([[0.0, 1.0]], [[0.0, 1.5]])
    0.5
"""

from holejax.topology.betti_decay import (
    BettiDecay,
    DecayFit,
    OMEGAS,
    betti_curves,
    betti_decay,
    betti_numbers,
    cubical_diagrams,
    decay_rate,
)
from holejax.topology.diagrams import (
    as_diagram,
    bottleneck_distance,
    diagram_distance,
    h0_diagram_distances,
    persistent_entropy,
    split_essential,
    total_persistence,
    wasserstein_distance,
)
from holejax.topology.neural_persistence import (
    LayerPersistence,
    NetworkPersistence,
    NPBounds,
    NPVarianceTrend,
    layer_neural_persistence,
    max_spanning_tree_edges,
    max_spanning_tree_weights,
    neural_persistence,
    neural_persistence_bounds,
    np_variance_trend,
    weight_matrices,
    weight_variance,
)
from holejax.topology.activation_landscapes import (
    ActivationLandscapes,
    activation_diagrams,
    activation_landscapes,
    average_landscapes,
    local_distance_matrix,
    normalize_activations,
    subsample_activation_landscapes,
)
from holejax.topology.landscape_stats import (
    LandscapePCA,
    PermutationTestResult,
    landscape_pca,
    landscape_permutation_test,
)
from holejax.topology.summary import topology_summary
from holejax.topology.landscapes import (
    diagram_landscape_norm,
    landscape_distance,
    landscape_grid,
    landscape_norm,
    persistence_landscape,
    persistence_landscapes,
)

__all__ = [
    # diagrams
    "as_diagram",
    "bottleneck_distance",
    "diagram_distance",
    "h0_diagram_distances",
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
    "diagram_landscape_norm",
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
    # neural persistence
    "LayerPersistence",
    "NetworkPersistence",
    "NPBounds",
    "NPVarianceTrend",
    "layer_neural_persistence",
    "max_spanning_tree_edges",
    "max_spanning_tree_weights",
    "neural_persistence",
    "neural_persistence_bounds",
    "np_variance_trend",
    "weight_matrices",
    "weight_variance",
    # Betti decay
    "BettiDecay",
    "DecayFit",
    "OMEGAS",
    "betti_curves",
    "betti_decay",
    "betti_numbers",
    "cubical_diagrams",
    "decay_rate",
    # summary for the report and the results store
    "topology_summary",
]
