"""fold, lcify and refocus on a subclassed keras.Model: one clear ValueError; freeze_spatial works
in place on one; lcify on a model with no k x k convolution: a ValueError naming the model."""

import keras
import numpy as np
import pytest

from keras_lc import fold, freeze_spatial, lcify, refocus
from keras_lc.initializers import torch_uniform
from keras_lc.model_kinds import require_functional_or_sequential
from keras_lc.initializers import layer_seed


class TwoConvs(keras.Model):
    """A subclassed model: its graph is its `call`, not a graph of layers."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.spatial = keras.layers.Conv2D(4, 3, padding="same", name="spatial")
        self.pointwise = keras.layers.Conv2D(2, 1, name="pointwise")

    def call(self, x):
        return self.pointwise(keras.ops.relu(self.spatial(x)))


@pytest.fixture
def subclassed():
    model = TwoConvs(name="two_convs")
    model(np.zeros((1, 8, 8, 3), "float32"))  # built
    return model


@pytest.mark.parametrize("function", [fold, lcify, refocus], ids=lambda f: f.__name__)
def test_rebuilding_functions_refuse_a_subclassed_model_in_one_line(function, subclassed):
    with pytest.raises(ValueError) as raised:
        function(subclassed)
    message = str(raised.value)
    assert message == (
        f"{function.__name__}() supports functional and Sequential models. Received: "
        "model=<TwoConvs name=two_convs, built=True>, a subclassed keras.Model of class TwoConvs"
    )
    assert "\n" not in message


def test_freeze_spatial_freezes_a_subclassed_model_in_place(subclassed):
    same, summary = freeze_spatial(subclassed, seed=3)
    assert same is subclassed and summary.frozen_layers == ("spatial",)
    # 3x3x3x4 kernel + 4 biases frozen; the 1x1 (4x2 + 2) stays trainable.
    assert (summary.trainable_params_before, summary.trainable_params_after) == (122, 10)
    expected = torch_uniform((3, 3, 3, 4), layer_seed(3, "spatial")).astype("float32")
    np.testing.assert_array_equal(subclassed.spatial.kernel, expected)


def test_functional_and_sequential_models_pass_the_check():
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    sequential = keras.Sequential([keras.layers.Dense(2)])  # not built: still Sequential
    assert require_functional_or_sequential(functional, "fold") is functional
    assert require_functional_or_sequential(sequential, "fold") is sequential
    with pytest.raises(ValueError, match=r"`model` must be a functional or sequential `keras.Model`. "
                                         r"Received: model='resnet20' of type str"):
        require_functional_or_sequential("resnet20", "fold")


def test_lcify_without_a_spatial_convolution_names_the_model(cifar_test_images):
    pointwise = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 1), keras.layers.DepthwiseConv2D(3),
         keras.layers.Conv2D(4, 3, groups=2, name="grouped")],  # none of them lcify replaces
        name="only_pointwise",
    )
    with pytest.raises(ValueError, match=r"lcify found no k x k convolution .* in model 'only_pointwise'\.$"):
        lcify(pointwise, expansion=2, seed=0)
    inputs = keras.Input((32, 32, 3))
    dense = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)), name="mlp")
    with pytest.raises(ValueError, match="in model 'mlp'"):
        lcify(dense)
    # One 3x3 conv inside a nested model is enough: it is replaced, the rest is kept.
    inner_input = keras.Input((32, 32, 3))
    inner = keras.Model(inner_input, keras.layers.Conv2D(4, 3, name="conv")(inner_input), name="inner")
    outer_input = keras.Input((32, 32, 3))
    outer = keras.Model(outer_input, keras.layers.Conv2D(2, 1, name="mix")(inner(outer_input)), name="outer")
    lc = lcify(outer, expansion=2, seed=0)
    assert type(lc.get_layer("inner").get_layer("conv")).__name__ == "LCConv2D"
    x, _ = cifar_test_images
    assert lc(x[:2]).shape == (2, 30, 30, 2)
