"""Analyses of trained models: what the linear combinations build, how diverse and how robust.

- `combined_filters`: the effective k x k filters (LC-blocks folded).
- `filter_stats` / `variance_entropy` / `sparsity`: filter variance entropy
  (normalized by the randomness threshold for 3x3) and sparsity.
- `spatial_variance`: the per-position variance heatmap (the paper's Figure 8b).
- `robust_accuracy` / `FGSM`: L-infinity FGSM accuracy, epsilon in pixel units.
- `analyze` / `compare`: figures and a JSON of every number (`keras-lc analyze`).
"""

from keras_lc.analysis.entropy import (
    FilterStats,
    filter_stats,
    randomness_threshold,
    sparse_mask,
    sparsity,
    variance_entropy,
)
from keras_lc.analysis.filters import combined_filters, conv_layers, kernel_to_filters
from keras_lc.analysis.plots import (
    plot_filter_grid,
    plot_fve_per_layer,
    plot_fve_vs_expansion,
    plot_variance_heatmaps,
)
from keras_lc.analysis.report import analyze, compare, load_model, resolve_model_path
from keras_lc.analysis.robustness import FGSM, RobustnessResult, fgsm_perturb, robust_accuracy
from keras_lc.analysis.spatial import spatial_variance, spatial_variance_by_size

__all__ = [
    "FGSM",
    "FilterStats",
    "RobustnessResult",
    "analyze",
    "combined_filters",
    "compare",
    "conv_layers",
    "fgsm_perturb",
    "filter_stats",
    "kernel_to_filters",
    "load_model",
    "plot_filter_grid",
    "plot_fve_per_layer",
    "plot_fve_vs_expansion",
    "plot_variance_heatmaps",
    "randomness_threshold",
    "resolve_model_path",
    "robust_accuracy",
    "sparse_mask",
    "sparsity",
    "spatial_variance",
    "spatial_variance_by_size",
    "variance_entropy",
]
