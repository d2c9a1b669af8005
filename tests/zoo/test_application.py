"""keras.applications-style arguments (`keras_lc.zoo.application`): every bad one gets its
error; the builders' one spelling of them; head, pooling and input."""

import inspect

import keras
import numpy as np
import pytest

from keras_lc import zoo
from keras_lc.zoo.application import APPLICATION_ARGUMENTS

BAD_ARGUMENTS = [
    (
        zoo.resnet20,
        {"include_top": "yes"},
        "`include_top` must be a bool. Received: include_top='yes'",
    ),
    (
        zoo.resnet20,
        {"weights": "imagenet"},
        r"published for 'resnet20' \('cifar10' \(frozen_spatial=False\)\).*Received: weights='imagenet'",
    ),
    (
        zoo.resnet20,
        {"weights": "/no/such/file.weights.h5"},
        "Received: weights='/no/such/file.weights.h5'",
    ),
    (
        zoo.resnet20,
        {"weights": 3},
        "The `weights` argument should be either `None`.*Received: weights=3",
    ),
    (
        zoo.resnet20,
        {"pooling": "mean"},
        r"`pooling` must be one of \(None, 'avg', 'max'\). Received: pooling='mean'",
    ),
    (zoo.resnet20, {"classes": 0}, "`classes` must be a positive integer. Received: classes=0"),
    (
        zoo.resnet20,
        {"classifier_activation": "nope"},
        "`classifier_activation` must be None, an activation.*Received: classifier_activation='nope'",
    ),
    (
        zoo.resnet20,
        {"input_shape": (32, 32)},
        r"`input_shape` must be a tuple of three integers. Received: input_shape=\(32, 32\)",
    ),
    (
        zoo.resnet20,
        {"input_shape": (32, 32, None)},
        "The channel dimension of `input_shape` must be defined",
    ),
    (
        zoo.resnet20,
        {"input_shape": (2, 32, 3)},
        r"Input size must be at least 4x4; Received: input_shape=\(2, 32, 3\)",
    ),
    (zoo.resnet50, {"input_shape": (16, 16, 3)}, "Input size must be at least 32x32"),
    (
        zoo.resnet20,
        {"input_shape": (None, None, 3)},
        "If `include_top` is True, you should specify a static `input_shape`",
    ),
    (
        zoo.resnet20,
        {"input_tensor": np.zeros((1, 32, 32, 3))},
        "`input_tensor` must be a Keras tensor.*Received: input_tensor of type ndarray",
    ),
    (zoo.resnet20, {"name": ""}, "`name` must be a non-empty string. Received: name=''"),
    (
        zoo.resnet20,
        {"frozen_spatial": 1},
        "`frozen_spatial` must be a bool. Received: frozen_spatial=1",
    ),
    (zoo.resnet20, {"seed": -1}, "`seed` must be an integer in \\[0, 2\\*\\*63 - 1\\]. Received: seed=-1"),
    (zoo.resnet_cifar, {"depth": 21}, r"`depth` must be 6n \+ 2 .*Received: depth=21"),
    (zoo.resnet_cifar, {"width": 0}, "`width` must be a positive integer. Received: width=0"),
    (
        zoo.resnet_cifar,
        {"kernel_size": 0},
        "`kernel_size` must be a positive integer. Received: kernel_size=0",
    ),
    (
        zoo.resnet_cifar,
        {"shortcut": "D"},
        r"`shortcut` must be one of \('A', 'B'\). Received: shortcut='D'",
    ),
    (
        zoo.resnet_lc,
        {"expansion": 0},
        "`expansion` must be a positive integer. Received: expansion=0",
    ),
    (
        zoo.resnet_lc,
        {"implementation": "fast"},
        "`implementation` must be one of .*Received: implementation='fast'",
    ),
    (
        zoo.resnet_lc,
        {"shared_spatial": True, "frozen_spatial": False},
        "needs frozen_spatial=True. Received: frozen_spatial=False",
    ),
    (
        zoo.resnet_lc,
        {"shared_spatial": "yes"},
        "`shared_spatial` must be a bool. Received: shared_spatial='yes'",
    ),
    (zoo.resnet18, {"low_res": 1}, "`low_res` must be a bool. Received: low_res=1"),
    (zoo.wide_resnet, {"depth": 27}, r"`depth` must be 6n \+ 4 .*Received: depth=27"),
    (
        zoo.wide_resnet,
        {"dropout_rate": 1.5},
        r"`dropout_rate` must be in \[0, 1\). Received: dropout_rate=1.5",
    ),
    (zoo.mobilenet_v2, {"alpha": 0}, "`alpha` must be a positive number. Received: alpha=0"),
    (zoo.mobilenet_v2, {"low_res": "no"}, "`low_res` must be a bool. Received: low_res='no'"),
]


@pytest.mark.parametrize("builder,kwargs,message", BAD_ARGUMENTS)
def test_bad_argument_gets_its_error(builder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)


def test_channels_first_is_refused():
    keras.config.set_image_data_format("channels_first")
    try:
        with pytest.raises(ValueError, match="channels_last models. Received: .*'channels_first'"):
            zoo.resnet20()
    finally:
        keras.config.set_image_data_format("channels_last")


def test_head_pooling_and_input_tensor():
    no_top = zoo.resnet_cifar(depth=8, width=4, include_top=False, seed=0)
    assert no_top.input_shape == (None, None, None, 3) and no_top.output_shape == (None, None, None, 16)
    avg = zoo.resnet_cifar(depth=8, width=4, include_top=False, pooling="avg", seed=0)
    top = zoo.resnet_cifar(depth=8, width=4, classifier_activation=None, seed=0)
    assert avg.output_shape == (None, 16) and avg.layers[-1].name == "avg_pool"
    assert zoo.resnet_cifar(depth=8, width=4, include_top=False, pooling="max").layers[-1].name == "max_pool"
    assert top.layers[-1].name == "predictions" and top.layers[-1].activation is keras.activations.linear
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype("float32")
    dense = top.get_layer("predictions")
    np.testing.assert_allclose(top(x), avg(x) @ dense.kernel + dense.bias, rtol=1e-5, atol=1e-6)
    # input_tensor: the model starts at the tensor's source input.
    source = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(2.0)(source)
    model = zoo.resnet_cifar(depth=8, width=4, input_tensor=scaled, seed=0)
    assert model.inputs[0] is source
    np.testing.assert_allclose(model(x), zoo.resnet_cifar(depth=8, width=4, seed=0)(2 * x), rtol=1e-5)


def test_builders_spell_keras_applications_arguments_in_their_signature():
    for name in zoo.list_models():
        parameters = list(inspect.signature(zoo.get_builder(name)).parameters)
        at = parameters.index("include_top")
        assert parameters[at : at + len(APPLICATION_ARGUMENTS)] == list(APPLICATION_ARGUMENTS), name
    # Calls bind as to the spelled-out signature: positionally too.
    assert zoo.resnet_cifar(8, 4, 3, "A", False, None, None, None, "avg", seed=0).output_shape == (None, 16)
    assert zoo.resnet18(True, input_shape=(32, 32, 3), seed=0).name == "resnet18_low_res"
    with pytest.raises(TypeError, match=r"resnet_cifar\(\) got an unexpected keyword argument 'depht'"):
        zoo.resnet_cifar(depht=8)
    with pytest.raises(TypeError, match=r"resnet20\(\) got an unexpected keyword argument 'depht'"):
        zoo.resnet20(depht=8)
