"""The ImageNet-style builders compute keras.applications' functions: weights copied layer by
layer from `keras.applications.MobileNetV2` / `ResNet50` (`weights=None`, every BatchNorm's
statistics and affine parameters randomized), outputs compared on random inputs.

MobileNetV2 (`zoo.mobilenet_v2`) has keras.applications' architecture exactly (its stride-2
depthwise convolutions' explicit `correct_pad` zero padding is TensorFlow's "same"), with one
constant apart: BatchNormalization epsilon 1e-5 (PyTorch's) instead of 1e-3. The reference is
rebuilt from its config with epsilon 1e-5; then the whole models agree.

ResNet-50 (`zoo.resnet50`) is torchvision's "v1.5"; keras.applications.ResNet50 is the
original "v1". They differ, by design, in:
1. the stride 2 of stages 2-4's first block: on its 3x3 convolution (zoo) rather than on its
   first 1x1 convolution (keras); both put it on the projection shortcut;
2. the stem: the zoo's 7x7/2 convolution and 3x3/2 max-pool use TensorFlow's "same" padding
   (for a 64x64 input: 2 rows before and 3 after for the convolution, 0 before and 1 (-inf)
   after for the pool); keras zero-pads symmetrically (3, then 1) and uses 'valid';
3. convolution biases: keras' convolutions have them, the zoo's none (each feeds a BN, so the
   copy folds a bias b into that BN's moving mean, mean - b: the same function);
4. BatchNormalization epsilon 1.001e-5 (keras) and 1e-5 (zoo).
So the parts with the same architecture (all of stage 1, whose first block has stride 1; the
blocks 2..n of every later stage; the head) are compared with keras.applications' directly;
the whole models are compared with the independent NumPy ResNet-50 of
tests/zoo/numpy_blocks.py in both versions: "v1" against keras.applications (which checks the
reference itself) and "v1.5" against the zoo.
"""

import re

import keras
import numpy as np
import pytest

from keras_lc import zoo
from tests.reference import randomize_batchnorm, rel_error
from tests.zoo import numpy_blocks

WEIGHTED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.BatchNormalization,
            keras.layers.Dense)
SIZE = 64


def _numpy(weights):
    return [np.asarray(keras.ops.convert_to_numpy(w)) for w in weights]


def _random_inputs(shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).normal(0, scale, (2,) + tuple(shape[1:])).astype("float32")


def _randomized(model, seed, beta_std=0.3):
    """`model` with BatchNorms randomized over a wide range and every bias non-zero."""
    randomize_batchnorm(model, seed=seed, mean_std=0.3, variance=(0.05, 3.0), beta_std=beta_std)
    rng = np.random.default_rng(seed + 1)
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.use_bias:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype("float32"))
    return model


# ------------------------------------------------------------------------- MobileNetV2
def _mobilenet_reference(alpha):
    config = keras.applications.MobileNetV2(
        alpha=alpha, weights=None, input_shape=(SIZE, SIZE, 3), classifier_activation=None).get_config()
    norms = [layer["config"] for layer in config["layers"] if layer["class_name"] == "BatchNormalization"]
    assert norms and all(norm["epsilon"] == 1e-3 for norm in norms)
    for norm in norms:
        norm["epsilon"] = 1e-5  # the one constant the zoo's model differs in (PyTorch's)
    # BN offsets of std 3: most ReLU6 inputs exceed 6 somewhere, so the caps are compared too.
    return _randomized(keras.Model.from_config(config), seed=3, beta_std=3.0)


@pytest.mark.parametrize("alpha", [0.35, 1.0])
def test_mobilenet_v2_equals_keras_applications_with_copied_weights(alpha):
    keras.utils.set_random_seed(0)  # keras.applications' initializers draw from Keras' global seed
    reference = _mobilenet_reference(alpha)
    ours = zoo.mobilenet_v2(alpha=alpha, input_shape=(SIZE, SIZE, 3), classifier_activation=None, seed=0)
    sources = [layer for layer in reference.layers if isinstance(layer, WEIGHTED)]
    targets = [layer for layer in ours.layers if isinstance(layer, WEIGHTED)]
    assert len(sources) == len(targets) == 52 + 52 + 1  # 52 convolutions (17 depthwise), 52 BNs, the head
    for source, target in zip(sources, targets):  # both in the order the layers are applied
        assert type(source) is type(target), (source.name, target.name)
        weights = _numpy(source.weights)
        assert [w.shape for w in weights] == [tuple(w.shape) for w in target.weights], target.name
        target.set_weights(weights)
    x = _random_inputs(ours.input_shape, scale=2.0)
    expected = keras.ops.convert_to_numpy(reference(x, training=False))
    assert rel_error(ours(x, training=False), expected) <= 1e-5
    assert np.std(expected) > 1e-3  # not a degenerate (constant) output
    relu6 = [layer.input for layer in reference.layers if isinstance(layer, keras.layers.ReLU)]
    assert len(relu6) == 35 and all(layer.max_value == 6 for layer in reference.layers
                                    if isinstance(layer, keras.layers.ReLU))
    capped = [np.max(keras.ops.convert_to_numpy(a)) > 6 for a in keras.Model(reference.input, relu6)(x)]
    assert np.mean(capped) > 0.9, capped  # the cap acts in (nearly) every ReLU6 on these inputs


# ----------------------------------------------------------------------------- ResNet-50
def _zoo_name(keras_name):
    """keras.applications.ResNet50's layer name -> zoo.resnet50's."""
    fixed = {"conv1_conv": "stem_conv", "conv1_bn": "stem_bn", "pool1_pool": "stem_pool",
             "predictions": "predictions"}
    if keras_name in fixed:
        return fixed[keras_name]
    stage, block, rest = re.fullmatch(r"conv(\d)_block(\d+)_(.+)", keras_name).groups()
    rest = {"0_conv": "shortcut_conv", "0_bn": "shortcut_bn", "out": "out", "add": "add"}.get(
        rest, re.sub(r"^(\d)_(conv|bn)$", r"\2\1", rest))
    return f"stage{int(stage) - 1}_block{block}_{rest}"


@pytest.fixture(scope="module")
def resnet50_pair():
    """(keras.applications.ResNet50, zoo.resnet50 with its weights copied), randomized once;
    tests only read them."""
    reference = _randomized(
        keras.applications.ResNet50(weights=None, input_shape=(SIZE, SIZE, 3), classifier_activation=None),
        seed=5)
    ours = zoo.resnet50(input_shape=(SIZE, SIZE, 3), classifier_activation=None, seed=0)
    copied = set()
    for layer in reference.layers:
        if not layer.weights:
            continue
        target = ours.get_layer(_zoo_name(layer.name))
        weights = _numpy(layer.weights)
        if isinstance(layer, keras.layers.Conv2D):
            weights = weights[:1]  # its bias goes into the following BN's mean
        elif isinstance(layer, keras.layers.BatchNormalization):
            conv_bias = _numpy(reference.get_layer(layer.name[: -len("bn")] + "conv").weights)[1]
            weights[2] = weights[2] - conv_bias
        target.set_weights(weights)
        copied.add(target.name)
    assert copied == {layer.name for layer in ours.layers if layer.weights}
    assert len(copied) == 53 + 53 + 1  # 53 convolutions, 53 BNs, the dense head
    return reference, ours


def _cut(model, start, end):
    return keras.Model(model.get_layer(start).output, model.get_layer(end).output)


def _same_architecture_parts():
    """(keras start, keras end) of the parts both models share: stage 1, each later block
    that is not its stage's first, and the head."""
    parts = [("pool1_pool", "conv2_block3_out")]
    for stage, (_, blocks) in enumerate(numpy_blocks.RESNET50_STAGES[1:], start=3):
        parts += [(f"conv{stage}_block{b - 1}_out", f"conv{stage}_block{b}_out")
                  for b in range(2, blocks + 1)]
    return parts + [("conv5_block3_out", "predictions")]


def test_resnet50_parts_of_the_same_architecture_equal_keras_applications(resnet50_pair):
    reference, ours = resnet50_pair
    parts = _same_architecture_parts()
    assert len(parts) == 1 + 3 + 5 + 2 + 1
    for seed, (start, end) in enumerate(parts):
        theirs, mine = _cut(reference, start, end), _cut(ours, _zoo_name(start), _zoo_name(end))
        x = _random_inputs(theirs.input.shape, seed)
        expected = keras.ops.convert_to_numpy(theirs(x, training=False))
        assert rel_error(mine(x, training=False), expected) <= 1e-5, (start, end)


def _numpy_params(model, name_of):
    """The weights of `model` (either one) in numpy_blocks.resnet50's layout; `name_of(zoo layer
    name)` gives `model`'s name for it."""
    params = {name: _numpy(model.get_layer(name_of(name)).weights)
              for name in ("stem_conv", "stem_bn", "predictions")}
    for stage, (_, blocks) in enumerate(numpy_blocks.RESNET50_STAGES, start=1):
        for block in range(1, blocks + 1):
            prefix = f"stage{stage}_block{block}"
            suffixes = [f"{kind}{i}" for i in (1, 2, 3) for kind in ("conv", "bn")]
            suffixes += ["shortcut_conv", "shortcut_bn"] if block == 1 else []
            params[prefix] = {s: _numpy(model.get_layer(name_of(f"{prefix}_{s}")).weights) for s in suffixes}
    return params


def _keras_name(zoo_name):
    """zoo.resnet50's layer name -> keras.applications.ResNet50's (the inverse of `_zoo_name`)."""
    fixed = {"stem_conv": "conv1_conv", "stem_bn": "conv1_bn", "predictions": "predictions"}
    if zoo_name in fixed:
        return fixed[zoo_name]
    stage, block, rest = re.fullmatch(r"stage(\d)_block(\d+)_(.+)", zoo_name).groups()
    rest = {"shortcut_conv": "0_conv", "shortcut_bn": "0_bn"}.get(
        rest, re.sub(r"^(conv|bn)(\d)$", r"\2_\1", rest))
    return f"conv{int(stage) + 1}_block{block}_{rest}"


def test_resnet50_is_v1_5_where_keras_applications_is_v1(resnet50_pair):
    """Whole models against one NumPy ResNet-50: v1 (stride on the 1x1, symmetric stem padding)
    gives keras.applications' outputs, v1.5 (stride on the 3x3, "same" padding) the zoo's."""
    reference, ours = resnet50_pair
    x = _random_inputs(ours.input_shape, seed=11)
    theirs = keras.ops.convert_to_numpy(reference(x, training=False))
    mine = keras.ops.convert_to_numpy(ours(x, training=False))
    v1 = numpy_blocks.resnet50(x, _numpy_params(reference, _keras_name), "v1")
    assert rel_error(theirs, v1) <= 1e-5  # the NumPy reference is keras.applications' network
    v1_5 = numpy_blocks.resnet50(x, _numpy_params(ours, lambda name: name), "v1.5")
    assert rel_error(mine, v1_5) <= 1e-5
    assert rel_error(mine, theirs) > 1e-2  # the two versions are different functions
