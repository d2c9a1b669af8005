"""combined_filters / conv_layers against direct NumPy compositions."""

import keras
import numpy as np
import pytest

from keras_lc.analysis import combined_filters, conv_layers, kernel_to_filters
from keras_lc.initializers import torch_uniform
from keras_lc.layers import LCConv2D
from tests.reference import rel_error


def _built_lc(implementation="composed", expansion=4, channels=5, **kwargs):
    layer = LCConv2D(6, 3, expansion=expansion, seed=3, implementation=implementation, **kwargs)
    layer.build((None, 8, 8, channels))
    return layer


def test_lc_layer_equals_numpy_composition():
    layer = _built_lc()
    # A "trained" combination, not the initial one.
    combination = np.random.default_rng(1).normal(size=(24, 6)).astype("float32")
    layer.combination.assign(combination)
    spatial = np.asarray(layer.spatial_kernel, dtype=np.float64)
    expected = np.einsum("hwim,mo->hwio", spatial, combination.astype(np.float64))
    kernel = combined_filters(layer)
    assert kernel.shape == (3, 3, 5, 6) and kernel.dtype == np.float32
    assert rel_error(kernel, expected) <= 1e-6
    # ... and it is the same seeded kernel every backend draws.
    assert np.array_equal(spatial, torch_uniform((3, 3, 5, 24), 3).astype("float32"))


def test_basis_form_equals_composed_form():
    composed = combined_filters(_built_lc("composed"))
    basis = combined_filters(_built_lc("basis"))
    assert rel_error(basis, composed) <= 1e-5


def test_intermediate_batchnorm_is_folded():
    layer = _built_lc("two_stage", intermediate="bn")
    bn = layer.intermediate_bn
    rng = np.random.default_rng(2)
    gamma, var = rng.uniform(0.5, 2, 24), rng.uniform(0.5, 2, 24)
    bn.gamma.assign(gamma.astype("float32"))
    bn.moving_variance.assign(var.astype("float32"))
    bn.moving_mean.assign(rng.normal(size=24).astype("float32"))
    scale = gamma / np.sqrt(var + bn.epsilon)
    spatial = np.asarray(layer.spatial_kernel, dtype=np.float64) * scale
    expected = np.einsum("hwim,mo->hwio", spatial, np.asarray(layer.combination, np.float64))
    assert rel_error(combined_filters(layer), expected) <= 1e-6


def test_relu_intermediate_has_no_combined_filter():
    with pytest.raises(ValueError, match="not linear"):
        combined_filters(_built_lc("two_stage", intermediate="relu"))


def _model():
    inner = keras.Sequential(
        [keras.Input((16, 16, 8)), keras.layers.Conv2D(8, 3, padding="same", name="inner_conv")],
        name="inner",
    )
    x = inputs = keras.Input((16, 16, 3))
    x = LCConv2D(8, 5, expansion=2, seed=0, name="lc1")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = keras.layers.Conv2D(8, 1, name="pointwise")(x)
    x = inner(x)
    x = LCConv2D(4, 3, expansion=3, seed=1, name="lc2")(x)
    return keras.Model(inputs, x, name="m")


def test_model_gives_every_conv_in_order_with_nested_models():
    model = _model()
    kernels = combined_filters(model)
    assert list(kernels) == ["lc1", "dw", "pointwise", "inner/inner_conv", "lc2"]
    assert kernels["dw"].shape == (3, 3, 8, 2)
    assert np.array_equal(kernels["dw"], np.asarray(model.get_layer("dw").kernel))
    inner_kernel = model.get_layer("inner").get_layer("inner_conv").kernel
    assert np.array_equal(kernels["inner/inner_conv"], np.asarray(inner_kernel))
    assert rel_error(kernels["lc2"], model.get_layer("lc2").fold()[0]) == 0
    spatial = combined_filters(model, spatial_only=True)
    assert list(spatial) == ["lc1", "dw", "inner/inner_conv", "lc2"]
    assert list(conv_layers(model)) == list(kernels)


def test_kernel_to_filters_row_order():
    kernel = np.random.default_rng(0).normal(size=(3, 5, 4, 2))
    filters = kernel_to_filters(kernel)
    assert filters.shape == (8, 15)
    for o in range(2):
        for i in range(4):
            assert np.array_equal(filters[o * 4 + i], kernel[:, :, i, o].ravel())


def test_bad_inputs_are_refused_with_the_received_value():
    with pytest.raises(ValueError, match="Dense"):
        combined_filters(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="not built"):
        combined_filters(LCConv2D(4, 3, seed=0, name="fresh"))
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        kernel_to_filters(np.zeros((3, 3)))
