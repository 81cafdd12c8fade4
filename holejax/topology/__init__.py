"""Topological measures beside HOLE: diagram distances and summaries,
activation landscapes, neural persistence of weights, Betti-number decay.

Modules:
    diagrams            bottleneck / Wasserstein distances, total persistence, persistent entropy
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

__all__ = [
    "as_diagram",
    "bottleneck_distance",
    "diagram_distance",
    "persistent_entropy",
    "split_essential",
    "total_persistence",
    "wasserstein_distance",
]
