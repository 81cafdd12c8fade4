"""Analysis of H0 merge trees: label agreement, Sankey stages, persistence, robustness, studies.

Modules:
    scores      purity, inverse purity, ARI, NMI; every threshold of a merge tree at once
    stages      the five Sankey stages, small-cluster outliers, persistent components
    analyze     ``hj.analyze``: a whole activation store over (perturbation, layer, metric)
    robustness_study  ``hj.robustness_study``: export + analysis + accuracy under every perturbation

Example:
    >>> import holejax as hj
    >>> hj.purity([0, 0, 1], [0, 0, 0]), hj.inverse_purity([0, 0, 1], [0, 0, 0])
    (1.0, 0.6666666666666666)
"""

from holejax.analysis.analyze import analyze
from holejax.topology.diagrams import DISTANCES, h0_diagram_distances
from holejax.analysis.scores import (
    MergeScores,
    adjusted_rand,
    contingency,
    inverse_purity,
    merge_scores,
    normalized_mutual_info,
    purity,
)
from holejax.analysis.robustness_study import robustness_study
from holejax.analysis.stages import (
    CRITERIA,
    STAGES,
    PersistentComponents,
    group_small_clusters,
    persistent_components,
    sankey_stages,
    stage_thresholds,
)

__all__ = [
    "DISTANCES",
    "analyze",
    "h0_diagram_distances",
    "CRITERIA",
    "STAGES",
    "PersistentComponents",
    "group_small_clusters",
    "persistent_components",
    "sankey_stages",
    "stage_thresholds",
    "robustness_study",
    "MergeScores",
    "adjusted_rand",
    "contingency",
    "inverse_purity",
    "merge_scores",
    "normalized_mutual_info",
    "purity",
]
