"""Each residual block family of the zoo against an independent NumPy forward pass
(tests/zoo/numpy_blocks.py) with the block's own weights: basic (ResNet-18, option-B and
ResNet-D shortcuts), bottleneck (ResNet-50 v1.5, Wide-ResNet-50-2), pre-activation wide
(CIFAR WRN) and inverted-residual (MobileNetV2) blocks, identity and projection variants.

Each block is cut out of a built model as a sub-model, from the tensor its first layer reads
to the tensor the next block reads (so an activation placed after the block's last named
layer is inside the cut), and fed random inputs of both signs, in inference mode, with every
BatchNormalization's statistics and affine parameters randomized. Strides, shortcut kinds
and where each ReLU and add goes are the reference's, written out here, not read from the
model; only the weights are copied.
"""

import functools

import keras
import numpy as np
import pytest

from keras_lc import zoo
from tests.reference import randomize_batchnorm, rel_error
from tests.zoo import numpy_blocks


@pytest.fixture(scope="module")
def built():
    """`built(builder, **kwargs)`: that zoo model (seed 0, no top) with randomized BatchNorms,
    built once per module; tests only read it."""
    models = {}

    def get(builder, **kwargs):
        key = (builder, tuple(sorted(kwargs.items())))
        if key not in models:
            model = getattr(zoo, builder)(include_top=False, seed=0, **kwargs)
            models[key] = randomize_batchnorm(model, seed=1, mean_std=0.5, variance=(0.1, 2.0),
                                              beta_std=0.5)
        return models[key]

    yield get
    models.clear()


def _block_params(model, prefix):
    """{suffix: float64 weights} of the layers named `{prefix}_{suffix}` that have weights."""
    params = {}
    for layer in model.layers:
        if layer.name.startswith(prefix + "_") and layer.weights:
            params[layer.name[len(prefix) + 1:]] = [
                np.asarray(keras.ops.convert_to_numpy(w), np.float64) for w in layer.weights]
    return params


def _check_block(model, first, following, prefix, reference, scale=2.0):
    """The block from `first`'s input to `following`'s input against `reference(x, p)`;
    returns the random inputs and the block's weights."""
    block = keras.Model(model.get_layer(first).input, model.get_layer(following).input)
    shape = (2,) + tuple(block.input.shape[1:])
    x = np.random.default_rng(0).normal(0, scale, shape).astype("float32")
    actual = keras.ops.convert_to_numpy(block(x, training=False))
    params = _block_params(model, prefix)
    expected = reference(x, params)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = rel_error(actual, expected)
    assert error <= 1e-5, (prefix, error)
    return x, params


LOW_RES_18 = dict(low_res=True, input_shape=(16, 16, 3))


@pytest.mark.parametrize("builder, prefix, following, strides, kind", [
    ("resnet18", "stage1_block1", "stage1_block2_conv1", 1, None),
    ("resnet18", "stage2_block1", "stage2_block2_conv1", 2, "B"),
    ("resnet18d", "stage2_block1", "stage2_block2_conv1", 2, "D"),
])
def test_basic_block_matches_numpy(built, builder, prefix, following, strides, kind):
    """ReLU after the add (none on the second conv's path alone), the shortcut of the block's
    input: identity, 1x1 conv + BN with the stride, or 2x2 average pool then 1x1 conv + BN."""
    model = built(builder, **LOW_RES_18)
    _check_block(model, f"{prefix}_conv1", following, prefix,
                 lambda x, p: numpy_blocks.basic_block(x, p, strides, kind))


@pytest.mark.parametrize("builder, prefix, following, strides, kind, width", [
    ("resnet50", "stage1_block1", "stage1_block2_conv1", 1, "B", 64),  # 64 -> 256 channels
    ("resnet50", "stage2_block1", "stage2_block2_conv1", 2, "B", 128),
    ("resnet50", "stage2_block2", "stage2_block3_conv1", 1, None, 128),
    ("wide_resnet50_2", "stage2_block1", "stage2_block2_conv1", 2, "B", 256),
])
def test_bottleneck_block_matches_numpy(built, builder, prefix, following, strides, kind, width):
    """v1.5: the stride on the 3x3 convolution; ReLU after the add; Wide-ResNet-50-2's 3x3 is
    twice ResNet-50's width."""
    model = built(builder, input_shape=(32, 32, 3))
    assert model.get_layer(f"{prefix}_conv2").kernel.shape[-1] == width
    _check_block(model, f"{prefix}_conv1", following, prefix,
                 lambda x, p: numpy_blocks.bottleneck_block(x, p, strides, kind, stride_on="3x3"))


@pytest.mark.parametrize("prefix, following, strides, projection", [
    ("stage1_block1", "stage1_block2_bn1", 1, True),  # 16 -> 32 channels: 1x1 conv shortcut
    ("stage1_block2", "stage2_block1_bn1", 1, False),
    ("stage2_block1", "stage2_block2_bn1", 2, True),
])
def test_wide_resnet_preactivation_block_matches_numpy(built, prefix, following, strides, projection):
    """BN-ReLU before each conv; the identity shortcut adds the block's raw input, the 1x1
    shortcut reads the pre-activated input; nothing after the add; dropout inert at inference."""
    model = built("wide_resnet", depth=16, width=2, dropout_rate=0.3, input_shape=(16, 16, 3))
    _check_block(model, f"{prefix}_bn1", following, prefix,
                 lambda x, p: numpy_blocks.preact_block(x, p, strides, projection))


@pytest.mark.parametrize("prefix, first, following, strides, expand, add", [
    ("block0", "block0_depthwise", "block1_expand_conv", 1, False, False),  # t = 1: no expansion
    ("block2", "block2_expand_conv", "block3_expand_conv", 1, True, True),  # 24 -> 24 channels
    ("block3", "block3_expand_conv", "block4_expand_conv", 2, True, False),
    ("block16", "block16_expand_conv", "head_conv", 1, True, False),  # 160 -> 320 channels
])
def test_inverted_residual_block_matches_numpy(built, prefix, first, following, strides, expand, add):
    """ReLU6 after the expansion and the depthwise convolution, none after the projection;
    the add only where stride 1 keeps the channels. Inputs large enough that the cap at 6 acts."""
    model = built("mobilenet_v2", low_res=True, input_shape=(32, 32, 3))
    reference = functools.partial(numpy_blocks.inverted_residual, strides=strides, expand=expand, add=add)
    x, params = _check_block(model, first, following, prefix, reference, scale=6.0)
    assert rel_error(reference(x, params, cap=None), reference(x, params)) > 1e-3  # the cap acts
