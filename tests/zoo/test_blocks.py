"""The conv/BN factory (`keras_lc.zoo.blocks`): seeds per layer name, frozen k x k kernels."""

import dataclasses

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D, zoo
from keras_lc.initializers import layer_seed, torch_uniform
from keras_lc.zoo import blocks


def test_seed_defines_the_model_and_layer_seeds_follow_names():
    a, b = zoo.resnet20(seed=7), zoo.resnet20(seed=7)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    c = zoo.resnet20(seed=8)
    assert not np.array_equal(a.get_layer("stem_conv").kernel, c.get_layer("stem_conv").kernel)
    # A layer's kernel depends on the model seed and its name only, not on the depth.
    deeper = zoo.resnet32(seed=7)
    name = "stage3_block1_conv2"
    np.testing.assert_array_equal(a.get_layer(name).kernel, deeper.get_layer(name).kernel)
    expected = torch_uniform((3, 3, 64, 64), layer_seed(7, name)).astype("float32")
    np.testing.assert_array_equal(a.get_layer(name).kernel, expected)
    # Frozen and learnable variants of one seed start from the same function.
    frozen = zoo.resnet20(seed=7, frozen_spatial=True)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), frozen.get_weights()))


def test_conv_factory():
    frozen = blocks.ConvOptions.create(seed=3, frozen_spatial=True)
    learnable = blocks.ConvOptions.create(seed=3)
    lc = blocks.ConvOptions.create(seed=3, frozen_spatial=False, lc=True, expansion=4)
    x = np.zeros((1, 8, 8, 6), "float32")
    spatial = blocks.conv(5, 3, 2, "c", frozen)
    spatial(x)
    assert isinstance(spatial, keras.layers.Conv2D) and not spatial.trainable and not spatial.use_bias
    assert spatial.strides == (2, 2) and spatial.padding == "same"
    expected = torch_uniform((3, 3, 6, 5), layer_seed(3, "c")).astype("float32")
    np.testing.assert_array_equal(spatial.kernel, expected)
    pointwise = blocks.conv(5, 1, 1, "p", frozen)
    assert pointwise.trainable and blocks.conv(5, 3, 1, "c", learnable).trainable
    block = blocks.conv(5, 3, 1, "l", lc)
    assert isinstance(block, LCConv2D) and not block.frozen_spatial and block.expansion == 4
    assert block.seed == layer_seed(3, "l")
    depthwise = blocks.depthwise_conv(3, 1, "d", frozen)
    depthwise(np.zeros((1, 8, 8, 200), "float32"))
    # PyTorch's depthwise fan-in is k*k (weight (C, 1, k, k)): bound 1/3, whatever C.
    bound = np.abs(np.asarray(depthwise.kernel)).max()
    assert not depthwise.trainable and 0.9 / 3 < bound <= 1 / 3
    bn = blocks.batch_norm("b")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)



def test_spatial_means_any_side_above_one():
    """2x2 and 1x3 kernels are spatial (frozen, or LC); 1x1 ones never are, depthwise too."""
    frozen = blocks.ConvOptions.create(seed=5, frozen_spatial=True)
    for kernel_size in (2, (1, 3), (3, 1)):
        assert not blocks.conv(4, kernel_size, 1, "k", frozen).trainable
        assert not blocks.depthwise_conv(kernel_size, 1, "dk", frozen).trainable
    assert blocks.depthwise_conv(1, 1, "d1", frozen).trainable
    assert blocks.depthwise_conv(3, 1, "d3", blocks.ConvOptions.create(seed=5)).trainable
    lc = blocks.ConvOptions.create(seed=5, lc=True)
    two = blocks.conv(4, 2, 1, "two", lc)
    assert isinstance(two, LCConv2D) and two.expansion == 1  # the default expansion
    assert type(blocks.conv(4, 1, 1, "one", lc)) is keras.layers.Conv2D
    assert not blocks.depthwise_conv(3, 1, "db", frozen).use_bias


def test_conv_options_defaults_and_immutability():
    options = blocks.ConvOptions(seed=1)
    assert (options.frozen_spatial, options.lc, options.expansion) == (False, False, 1)
    assert (options.implementation, options.make_lc) == ("auto", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.seed = 2
