"""Filter variance entropy and sparsity against NumPy references and known values."""

import numpy as np
import pytest

from keras_lc.analysis import filter_stats, randomness_threshold, sparse_mask, sparsity, variance_entropy
from keras_lc.analysis.filters import kernel_to_filters


def _entropy_by_covariance(filters):
    """A different route: eigenvalues of the covariance matrix of the filters."""
    filters = np.asarray(filters, dtype=np.float64)
    eigenvalues = np.linalg.eigvalsh(np.cov(filters, rowvar=False))
    eigenvalues = eigenvalues[eigenvalues > 1e-12 * eigenvalues.max()]
    p = eigenvalues / eigenvalues.sum()
    return float(-np.sum(p * np.log10(p)))


@pytest.mark.parametrize("n", [144, 256, 1024, 2304])
def test_random_3x3_filters_are_about_1(n):
    # PyTorch-default-like U(-1, 1) filters; measured band over seeds 0..4:
    # 0.996 .. 1.011 for these n.
    values = [
        variance_entropy(np.random.default_rng(seed).uniform(-1, 1, (n, 9))) for seed in range(5)
    ]
    assert 0.99 <= min(values) and max(values) <= 1.02, values


def test_random_first_layer_sized_filters_are_about_1():
    # n = 48: a 3 -> 16 first layer; measured 1.008 .. 1.051 (the threshold is
    # a fit, so small n sit slightly above 1).
    values = [filter_stats(np.random.default_rng(s).normal(size=(3, 3, 3, 16))).normalized_entropy
              for s in range(5)]
    assert 0.98 <= min(values) and max(values) <= 1.08, values


def test_one_scaled_pattern_gives_zero():
    rng = np.random.default_rng(0)
    pattern = rng.normal(size=9)
    filters = rng.uniform(-3, 3, size=(512, 1)) * pattern
    assert variance_entropy(filters) == 0.0
    kernel = np.transpose(filters.reshape(32, 16, 3, 3), (2, 3, 1, 0)).astype(np.float32)
    stats = filter_stats(kernel)
    assert stats.entropy < 1e-6 and stats.normalized_entropy < 1e-6
    # Identical filters: no variance at all.
    assert variance_entropy(np.ones((10, 9))) == 0.0


def test_known_values():
    # +-e1, +-e2: two equal principal variances -> log10(2); all 9 axes -> log10(9).
    eye = np.eye(9)
    assert variance_entropy(np.concatenate([eye[:2], -eye[:2]]), normalize=False) == pytest.approx(
        np.log10(2), abs=1e-12)
    assert variance_entropy(np.concatenate([eye, -eye]), normalize=False) == pytest.approx(
        np.log10(9), abs=1e-12)


@pytest.mark.parametrize("k, n", [(3, 64), (3, 600), (5, 300), (7, 40)])
def test_matches_covariance_eigenvalues(k, n):
    rng = np.random.default_rng(k * n)
    # Structured filters: a few patterns plus noise, so the spectrum is uneven.
    filters = rng.normal(size=(n, 3)) @ rng.normal(size=(3, k * k)) + 0.1 * rng.normal(size=(n, k * k))
    expected = _entropy_by_covariance(filters)
    assert abs(variance_entropy(filters, normalize=False) - expected) <= 1e-10
    if k == 3:
        tau = 1.2618047 / (1 + np.exp(-0.88767525 * (np.log2(n) - 2.30436435))) - 0.31050834
        assert abs(variance_entropy(filters) - expected / tau) <= 1e-10
    else:
        assert variance_entropy(filters) == variance_entropy(filters, normalize=False)


def test_randomness_threshold_shape():
    n = np.array([16, 64, 256, 1024, 1 << 20])
    tau = randomness_threshold(n)
    assert np.all(np.diff(tau) > 0)
    assert abs(tau[-1] - (1.2618047 - 0.31050834)) < 1e-6  # the large-n limit, 0.9513


def test_sparsity_counts_a_constructed_kernel():
    rng = np.random.default_rng(0)
    kernel = rng.uniform(0.5, 1.0, size=(3, 3, 2, 5)) * rng.choice([-1, 1], size=(3, 3, 2, 5))
    kernel[1, 1, 0, 0] = 10.0  # the layer's max |w|: 1% of it is 0.1
    sparse = [(1, 1), (0, 3), (1, 4)]  # (c_in, c_out)
    for i, o in sparse:
        kernel[:, :, i, o] = rng.uniform(-0.0999, 0.0999, size=(3, 3))
    kernel[:, :, 0, 2] = 0.05
    kernel[2, 0, 0, 2] = -0.1  # exactly 1%: not below it, so not sparse
    stats = filter_stats(kernel)
    assert stats.num_filters == 10 and stats.num_sparse == 3 and stats.sparsity == 0.3
    mask = sparse_mask(kernel)
    assert sorted(np.flatnonzero(mask)) == sorted(o * 2 + i for i, o in sparse)
    dense = kernel_to_filters(kernel)[~mask]
    assert stats.entropy_nonsparse == variance_entropy(dense, normalize=False)
    assert stats.normalized_entropy_nonsparse == pytest.approx(
        stats.entropy_nonsparse / randomness_threshold(7), rel=1e-12)
    assert sparsity(np.zeros((3, 3, 4, 4))) == 1.0


def test_filter_stats_of_other_sizes_are_unnormalized():
    stats = filter_stats(np.random.default_rng(0).normal(size=(5, 5, 4, 8)))
    assert stats.kernel_size == (5, 5) and stats.num_filters == 32
    assert stats.normalized_entropy is None and stats.normalized_entropy_nonsparse is None
    assert stats.to_dict()["entropy"] == stats.entropy > 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="n=1"):
        variance_entropy(np.ones((1, 9)))
    with pytest.raises(ValueError, match="25 weights"):
        variance_entropy(np.ones((4, 25)), normalize=True)
    with pytest.raises(ValueError, match=r"shape \(9,\)"):
        variance_entropy(np.ones(9))
