"""Spatial variance heatmaps against a direct per-position computation."""

import numpy as np
import pytest

from keras_lc.analysis import spatial_variance, spatial_variance_by_size


def _direct(kernels):
    """Per position (i, j): variance over every filter of every kernel, each / its layer std."""
    k_h, k_w = kernels[0].shape[:2]
    out = np.zeros((k_h, k_w))
    for i in range(k_h):
        for j in range(k_w):
            values = np.concatenate([(k / k.std())[i, j].ravel() for k in kernels])
            out[i, j] = np.var(values)
    return out


def test_matches_direct_computation():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(5, 5, 3, 7)) * np.linspace(0.2, 2, 25).reshape(5, 5, 1, 1)
    heatmap = spatial_variance(kernel)
    assert heatmap.shape == (5, 5)
    np.testing.assert_allclose(heatmap, _direct([kernel]), rtol=1e-12)
    # The variance grows with the position's scale, so the corners differ by ~100x.
    assert heatmap[4, 4] > 50 * heatmap[0, 0]


def test_stacks_several_layers_each_normalized_by_its_own_std():
    rng = np.random.default_rng(1)
    small, large = rng.normal(size=(3, 3, 4, 8)), 100 * rng.uniform(-1, 1, size=(3, 3, 8, 8))
    np.testing.assert_allclose(spatial_variance([small, large]), _direct([small, large]), rtol=1e-12)
    by_size = spatial_variance_by_size({"a": small, "b": rng.normal(size=(5, 5, 2, 2)), "c": large})
    assert list(by_size) == [(3, 3), (5, 5)]
    np.testing.assert_allclose(by_size[(3, 3)], _direct([small, large]), rtol=1e-12)


def test_center_only_filters_vary_only_in_the_center():
    kernel = np.zeros((7, 7, 8, 8))
    kernel[3, 3] = np.random.default_rng(2).normal(size=(8, 8))
    heatmap = spatial_variance(kernel)
    assert np.count_nonzero(heatmap) == 1 and heatmap[3, 3] > 0


def test_iid_random_filters_give_a_flat_heatmap():
    # N = 4096 filters of U(-1, 1): every position's normalized variance is ~1.
    heatmap = spatial_variance(np.random.default_rng(3).uniform(-1, 1, size=(5, 5, 64, 64)))
    assert 0.95 < heatmap.min() and heatmap.max() < 1.05


def test_bad_inputs():
    with pytest.raises(ValueError, match="share one spatial size"):
        spatial_variance([np.ones((3, 3, 1, 2)) * [1, 2], np.ones((5, 5, 1, 2)) * [1, 2]])
    with pytest.raises(ValueError, match="standard deviation 0"):
        spatial_variance(np.zeros((3, 3, 2, 2)))
    with pytest.raises(ValueError, match="empty"):
        spatial_variance([])
    with pytest.raises(ValueError, match=r"shape \(3, 3, 2\)"):
        spatial_variance([np.ones((3, 3, 2))])
