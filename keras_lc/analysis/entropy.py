"""Filter variance entropy and sparsity (Gavrikov & Keuper, "CNN Filter DB", CVPR 2022).

The filter variance entropy (FVE) measures how diverse the 2-D filter
patterns of a layer are: 0 when every filter is a multiple of one pattern,
about 1 (after normalization by the randomness threshold) for i.i.d. random
filters.
"""

import dataclasses
from typing import Optional

import numpy as np

from keras_lc.analysis.filters import kernel_to_filters

#: Fraction of the layer's largest |weight| below which a filter counts as sparse.
SPARSITY_THRESHOLD = 0.01


def randomness_threshold(n):
    """tau(n): the FVE of n i.i.d. random 3x3 filters (CNN Filter DB's fit).

    tau(n) = 1.2618047 / (1 + exp(-0.88767525 * (log2(n) - 2.30436435))) - 0.31050834
    """
    n = np.asarray(n, dtype=np.float64)
    return 1.2618047 / (1.0 + np.exp(-0.88767525 * (np.log2(n) - 2.30436435))) - 0.31050834


def _variances(filters):
    """The variances of `filters` (n, d) along their principal axes, by SVD."""
    n = filters.shape[0]
    centered = filters - filters.mean(axis=0, keepdims=True)
    s = np.linalg.svd(centered, compute_uv=False)
    # Singular values at round-off level (np.linalg.matrix_rank's tolerance)
    # are zero: a layer of one scaled pattern then has exactly one component.
    if s.size and s[0] > 0:
        s = np.where(s > s[0] * max(centered.shape) * np.finfo(np.float64).eps, s, 0.0)
    return s**2 / (n - 1)


def variance_entropy(filters, normalize=None):
    """Filter variance entropy of a kernel or of an `(n, kh*kw)` filter matrix.

    The filters (n = c_out * c_in rows of kh*kw weights) are centered by the
    mean filter; with the singular values s of the result, v = s^2 / (n - 1),
    p = v / sum(v), H = -sum p log10 p (0 log 0 = 0; H = 0 when every filter
    is the same).

    Args:
        filters: A 4-D kernel `(kh, kw, c_in, c_out)` or a 2-D `(n, kh*kw)` array.
        normalize: Divide by `randomness_threshold(n)`. `None` normalizes
            exactly when the filters are 3x3 (9 weights), the only size the
            threshold was derived for.

    Returns:
        H as a Python float.
    """
    filters = np.asarray(filters, dtype=np.float64)
    if filters.ndim == 4:
        filters = kernel_to_filters(filters)
    if filters.ndim != 2:
        raise ValueError(
            "`filters` must be a 4-D kernel (kh, kw, c_in, c_out) or a 2-D (n, kh*kw) "
            f"array. Received shape {filters.shape}."
        )
    n = filters.shape[0]
    if n < 2:
        raise ValueError(f"The filter variance entropy needs at least 2 filters. Received n={n}.")
    if normalize is None:
        normalize = filters.shape[1] == 9
    if normalize and filters.shape[1] != 9:
        raise ValueError(
            "The randomness threshold is defined for 3x3 filters only. Received filters "
            f"of {filters.shape[1]} weights; use normalize=False."
        )
    v = _variances(filters)
    total = v.sum()
    if total <= 0:
        return 0.0
    p = v[v > 0] / total
    entropy = max(float(-np.sum(p * np.log10(p))), 0.0)
    if normalize:
        entropy /= float(randomness_threshold(n))
    return entropy


def sparse_mask(filters, threshold=SPARSITY_THRESHOLD):
    """Boolean mask of the sparse filters of a kernel or `(n, kh*kw)` matrix.

    A filter is sparse when every |weight| is below `threshold` times the
    layer's largest |weight|; in an all-zero layer every filter is sparse.
    """
    filters = np.asarray(filters, dtype=np.float64)
    if filters.ndim == 4:
        filters = kernel_to_filters(filters)
    magnitude = np.abs(filters)
    limit = threshold * magnitude.max() if magnitude.size else 0.0
    if limit == 0:
        return np.ones(filters.shape[0], dtype=bool)
    return np.all(magnitude < limit, axis=1)


def sparsity(filters, threshold=SPARSITY_THRESHOLD):
    """The fraction of sparse filters (see `sparse_mask`)."""
    return float(np.mean(sparse_mask(filters, threshold)))


@dataclasses.dataclass(frozen=True)
class FilterStats:
    """Diversity and sparsity of one layer's filters.

    Attributes:
        kernel_size: `(kh, kw)`.
        num_filters: n = c_out * c_in, the number of 2-D filters.
        entropy: Filter variance entropy H (log10), unnormalized.
        normalized_entropy: H / tau(n) for 3x3 filters, else `None`.
        sparsity: Fraction of sparse filters.
        num_sparse: Number of sparse filters.
        entropy_nonsparse: H over the non-sparse filters (`None` if fewer than 2).
        normalized_entropy_nonsparse: That over tau(number of non-sparse
            filters), for 3x3 filters only.
    """

    kernel_size: tuple
    num_filters: int
    entropy: float
    normalized_entropy: Optional[float]
    sparsity: float
    num_sparse: int
    entropy_nonsparse: Optional[float]
    normalized_entropy_nonsparse: Optional[float]

    def to_dict(self):
        """A JSON-ready dict of every field."""
        out = dataclasses.asdict(self)
        out["kernel_size"] = list(self.kernel_size)
        return out


def filter_stats(kernel, threshold=SPARSITY_THRESHOLD):
    """`FilterStats` of a 4-D kernel `(kh, kw, c_in, c_out)`.

    Example:

    >>> import numpy as np
    >>> kernel = np.random.default_rng(0).uniform(-1, 1, (3, 3, 16, 32))
    >>> stats = filter_stats(kernel)
    >>> stats.num_filters, stats.sparsity
    (512, 0.0)
    >>> 0.95 < stats.normalized_entropy < 1.05
    True
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    filters = kernel_to_filters(kernel)
    is_3x3 = filters.shape[1] == 9
    mask = sparse_mask(filters, threshold)
    dense = filters[~mask]
    entropy = variance_entropy(filters, normalize=False)
    dense_entropy = variance_entropy(dense, normalize=False) if len(dense) >= 2 else None
    return FilterStats(
        kernel_size=tuple(int(k) for k in kernel.shape[:2]),
        num_filters=int(filters.shape[0]),
        entropy=entropy,
        normalized_entropy=entropy / float(randomness_threshold(len(filters))) if is_3x3 else None,
        sparsity=float(mask.mean()),
        num_sparse=int(mask.sum()),
        entropy_nonsparse=dense_entropy,
        normalized_entropy_nonsparse=(
            dense_entropy / float(randomness_threshold(len(dense)))
            if is_3x3 and dense_entropy is not None
            else None
        ),
    )
