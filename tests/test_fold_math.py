"""fold_math against loops and formulas written here (float64 NumPy), on shapes with every axis
of a different length, so a wrong axis or a swapped operand cannot pass."""

import re

import keras
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from keras_lc import fold_math


def _compose_reference(spatial, combination):
    kh, kw, c_in, m = spatial.shape
    out = np.zeros((kh, kw, c_in, combination.shape[1]))
    for o in range(combination.shape[1]):
        for j in range(m):
            out[..., o] += combination[j, o] * spatial[..., j]
    return out


def test_compose_kernels_is_the_sum_over_the_spatial_filters():
    rng = np.random.default_rng(0)
    spatial = rng.normal(size=(3, 2, 4, 5)).astype("float32")
    combination = rng.normal(size=(5, 6)).astype("float32")
    composed = fold_math.compose_kernels(spatial, combination)
    assert composed.dtype == np.float64 and composed.shape == (3, 2, 4, 6)
    np.testing.assert_allclose(
        composed, _compose_reference(spatial.astype(np.float64), combination.astype(np.float64)),
        rtol=1e-12, atol=1e-12,
    )
    # float64 inside: the float32 inputs' products are not rounded to float32.
    exact = np.tensordot(spatial.astype(np.float64), combination.astype(np.float64), axes=([-1], [0]))
    assert np.array_equal(composed, exact)


def test_compose_kernels_compares_channel_counts_by_value():
    # 300 is past CPython's cache of small ints: equal counts, distinct int objects.
    composed = fold_math.compose_kernels(np.ones((1, 1, 2, 300)), np.ones((int("300"), 2)))
    assert composed.shape == (1, 1, 2, 2) and np.all(composed == 300.0)


@pytest.mark.parametrize("m", [4, 6])
def test_compose_kernels_refuses_mismatched_channels(m):
    spatial = np.ones((3, 3, 2, 5))
    with pytest.raises(ValueError, match=r"\(3, 3, 2, 5\) and \(%d, 7\)" % m):
        fold_math.compose_kernels(spatial, np.ones((m, 7)))


def test_batchnorm_scale_shift_is_inference_batchnorm():
    rng = np.random.default_rng(1)
    gamma, beta, mean = rng.normal(size=(3, 4))
    variance = np.array([1e-4, 0.3, 2.0, 10.0])
    epsilon = 1e-3
    x = rng.normal(size=(7, 4))
    expected = gamma * (x - mean) / np.sqrt(variance + epsilon) + beta
    scale, shift = fold_math.batchnorm_scale_shift(gamma, beta, mean, variance, epsilon)
    np.testing.assert_allclose(x * scale + shift, expected, rtol=1e-12, atol=1e-12)
    # scale=False, center=False: gamma 1, beta 0.
    scale, shift = fold_math.batchnorm_scale_shift(None, None, mean, variance, epsilon)
    np.testing.assert_allclose(scale, 1 / np.sqrt(variance + epsilon), rtol=1e-12)
    np.testing.assert_allclose(shift, -mean / np.sqrt(variance + epsilon), rtol=1e-12)
    scale, shift = fold_math.batchnorm_scale_shift(None, beta, mean, variance, epsilon)
    np.testing.assert_allclose(x * scale + shift, (x - mean) / np.sqrt(variance + epsilon) + beta,
                               rtol=1e-12, atol=1e-12)
    scale, shift = fold_math.batchnorm_scale_shift(gamma, None, mean, variance, epsilon)
    np.testing.assert_allclose(x * scale + shift, gamma * (x - mean) / np.sqrt(variance + epsilon),
                               rtol=1e-12, atol=1e-12)


def test_batchnorm_scale_shift_computes_in_float64():
    variance = np.array([3.0], dtype=np.float32)
    scale, shift = fold_math.batchnorm_scale_shift(
        np.float32([0.7]), np.float32([0.1]), np.float32([0.3]), variance, 1e-5
    )
    assert scale.dtype == shift.dtype == np.float64
    expected = np.float64(np.float32(0.7)) / np.sqrt(np.float64(np.float32(3.0)) + 1e-5)
    assert scale[0] == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("scale_flag,center_flag", [(True, True), (False, True), (True, False)])
def test_batchnorm_layer_scale_shift_reads_the_layer(scale_flag, center_flag):
    bn = keras.layers.BatchNormalization(scale=scale_flag, center=center_flag, epsilon=0.01)
    bn.build((None, 3))
    rng = np.random.default_rng(2)
    bn.moving_mean.assign(rng.normal(size=3).astype("float32"))
    bn.moving_variance.assign(np.float32([0.01, 0.5, 4.0]))
    if scale_flag:
        bn.gamma.assign(rng.normal(size=3).astype("float32"))
    if center_flag:
        bn.beta.assign(rng.normal(size=3).astype("float32"))
    x = rng.normal(size=(5, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(bn(x, training=False))
    scale, shift = fold_math.batchnorm_layer_scale_shift(bn)
    np.testing.assert_allclose(x * scale + shift, expected, rtol=1e-5, atol=1e-5)


def test_to_numpy64_of_a_variable():
    variable = keras.Variable(np.float32([[1.5, -2.25]]))
    array = fold_math.to_numpy64(variable)
    assert array.dtype == np.float64 and array.tolist() == [[1.5, -2.25]]


def _conv_reference(x, kernel, bias):
    """'valid' stride-1 convolution (cross-correlation, as Keras), NHWC, float64."""
    kh, kw = kernel.shape[:2]
    n, h, w, _ = x.shape
    out = np.zeros((n, h - kh + 1, w - kw + 1, kernel.shape[-1]))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = np.tensordot(x[:, i:i + kh, j:j + kw], kernel, axes=3)
    return out + bias


@pytest.mark.parametrize("with_bias", [True, False])
def test_fold_batchnorm_is_conv_then_batchnorm(with_bias):
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(3, 2, 4, 5))
    bias = rng.normal(size=5) if with_bias else None
    scale, shift = rng.normal(size=(2, 5))
    x = rng.normal(size=(2, 6, 5, 4))
    expected = _conv_reference(x, kernel, 0.0 if bias is None else bias) * scale + shift
    folded_kernel, folded_bias = fold_math.fold_batchnorm(kernel, bias, scale, shift)
    assert folded_kernel.dtype == folded_bias.dtype == np.float64
    assert folded_kernel.shape == kernel.shape and folded_bias.shape == (5,)
    np.testing.assert_allclose(_conv_reference(x, folded_kernel, folded_bias), expected,
                               rtol=1e-10, atol=1e-10)


def test_fold_batchnorm_refuses_a_wrong_channel_count():
    kernel = np.ones((3, 3, 2, 4))
    wrong = [(3, 4), (5, 4), (4, 3), (4, 5), (5, 5)]
    for scale, shift in [(np.ones(a), np.ones(b)) for a, b in wrong]:
        with pytest.raises(ValueError, match=re.escape(f"over {np.shape(scale)} channels") + ".* 4 output"):
            fold_math.fold_batchnorm(kernel, None, scale, shift)
    folded, bias = fold_math.fold_batchnorm(kernel, None, np.full(4, 2.0), np.full(4, 0.5))
    assert np.all(folded == 2.0) and np.all(bias == 0.5)


def _blas_threads():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_single_threaded_blas_limits_to_one_thread_and_restores():
    if not _blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can see")
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        with fold_math.single_threaded_blas():
            assert set(_blas_threads()) == {1}
        assert _blas_threads() == before
