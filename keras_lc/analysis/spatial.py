"""Spatial variance heatmaps: where in the k x k window filters vary (the paper's Figure 8b)."""

import numpy as np


def _stacked_normalized(kernel):
    """`kernel / std(kernel)` as a `(kh, kw, N)` stack of its N = c_in * c_out filters."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 4:
        raise ValueError(
            f"A conv kernel must have 4 dimensions (kh, kw, c_in, c_out). Received shape {kernel.shape}."
        )
    std = kernel.std()
    if std == 0:
        raise ValueError(
            "Cannot normalize a kernel whose weights are all equal (standard deviation 0). "
            f"Received a kernel of shape {kernel.shape} with every weight {kernel.flat[0]!r}."
        )
    return (kernel / std).reshape(kernel.shape[0], kernel.shape[1], -1)


def spatial_variance(kernels):
    """The variance of each filter position over all filters, after per-layer normalization.

    Each kernel is divided by the standard deviation of all its weights, its
    filters are stacked to a `(k, k, N)` tensor (N = c_in * c_out, summed over
    the kernels given), and the variance is taken over the last axis.

    Args:
        kernels: One kernel `(k, k, c_in, c_out)`, or a list of kernels of the
            same spatial size (e.g. every layer of a model, as in the paper).

    Returns:
        `(k, k)` float64 heatmap. For i.i.d. random filters it is flat (about
        1 everywhere); learned large filters vary most in the center.

    Example:

    >>> import numpy as np
    >>> kernel = np.random.default_rng(0).normal(size=(5, 5, 8, 16))
    >>> heatmap = spatial_variance(kernel)
    >>> heatmap.shape
    (5, 5)
    """
    if isinstance(kernels, np.ndarray) and kernels.ndim == 4:
        kernels = [kernels]
    kernels = list(kernels)
    if not kernels:
        raise ValueError("`kernels` must hold at least one kernel. Received an empty list.")
    stacks = [_stacked_normalized(kernel) for kernel in kernels]
    sizes = sorted({stack.shape[:2] for stack in stacks})
    if len(sizes) > 1:
        raise ValueError(
            f"All kernels must share one spatial size to be stacked. Received sizes {sizes}."
        )
    return np.concatenate(stacks, axis=-1).var(axis=-1)


def spatial_variance_by_size(kernels):
    """Model-level heatmaps: `{(kh, kw): spatial_variance(every kernel of that size)}`.

    Args:
        kernels: A mapping name -> kernel (e.g. `combined_filters(model)`)
            or a sequence of kernels.
    """
    values = kernels.values() if hasattr(kernels, "values") else kernels
    groups = {}
    for kernel in values:
        kernel = np.asarray(kernel)
        groups.setdefault(tuple(int(k) for k in kernel.shape[:2]), []).append(kernel)
    return {size: spatial_variance(group) for size, group in sorted(groups.items())}
