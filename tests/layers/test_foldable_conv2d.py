"""FoldableConv2D, the base of the foldable layers: its geometry, and a new subclass through the
shared checks and the whole-model fold."""

import keras
import numpy as np
import pytest

from keras_lc import fold
from keras_lc.layers import FoldableConv2D, LCConv2D, RefocusConv2D, SharedLCConv2D
from tests.harness import check_foldable_layer, check_model_round_trip
from tests.reference import numpy_conv2d, randomize_batchnorm, rel_error, to_numpy


@keras.saving.register_keras_serializable(package="keras_lc_tests")
class ScaledConv2D(FoldableConv2D):
    """A frozen kernel times a learned per-filter scale: the smallest foldable layer."""

    def build(self, input_shape):
        channels = self.check_input_shape(input_shape)
        shape = self.kernel_size + (channels, self.filters)
        self.fixed = self.add_weight(name="fixed", shape=shape, initializer="zeros", trainable=False)
        self.scale = self.add_weight(name="scale", shape=(self.filters,), initializer="ones")

    def call(self, inputs):
        return keras.ops.conv(inputs, self.fixed * self.scale, strides=self.strides, padding=self.padding,
                              dilation_rate=self.dilation_rate)

    def fold(self):
        self.require_built()
        kernel = to_numpy(self.fixed, np.float64) * to_numpy(self.scale, np.float64)
        return kernel.astype(self.variable_dtype), None


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _scaled(**kwargs):
    layer = ScaledConv2D(4, 3, **kwargs)
    layer.build((None, None, None, 3))
    layer.fixed.assign(_x(layer.fixed.shape, seed=1))
    return layer


def _reference(layer, x):
    kernel = to_numpy(layer.fixed, np.float64) * to_numpy(layer.scale, np.float64)
    return numpy_conv2d(x, kernel, layer.strides, layer.padding, layer.dilation_rate)


def test_the_foldable_layers_share_the_base():
    for cls in (LCConv2D, SharedLCConv2D, RefocusConv2D):
        assert issubclass(cls, FoldableConv2D)
        shared = ("check_input_shape", "spatial_output_shape", "compute_output_shape", "to_conv2d",
                  "build_folded_layer") + (("conv2d_config",) if cls is not RefocusConv2D else ())
        for method in shared:  # written once (RefocusConv2D extends conv2d_config with groups)
            assert getattr(cls, method) is getattr(FoldableConv2D, method), (cls, method)


@pytest.mark.parametrize("geometry", [{}, {"strides": 2, "padding": "valid"}, {"dilation_rate": 2}])
def test_a_new_subclass_passes_the_shared_checks(geometry):
    check = check_foldable_layer(lambda: _scaled(**geometry), _x((2, 9, 9, 3)), _reference)
    assert check.reference_error < 1e-5 and check.fold_error <= 1e-5


def test_fold_folds_a_new_subclass_and_its_batchnorm():
    inputs = keras.Input((9, 9, 3))
    layer = _scaled(name="scaled")
    x = keras.layers.BatchNormalization(name="bn")(layer(inputs))
    model = randomize_batchnorm(keras.Model(inputs, keras.layers.ReLU()(x)))
    layer.scale.assign(np.linspace(0.5, 2.0, 4).astype("float32"))
    folded = fold(model)
    assert [type(l).__name__ for l in folded.layers] == ["InputLayer", "Conv2D", "ReLU"]
    data = _x((2, 9, 9, 3), seed=2)
    assert rel_error(folded(data), model(data, training=False)) <= 1e-5
    check_model_round_trip(model, data)


def test_geometry_is_validated_and_shared():
    layer = ScaledConv2D(4, (3, 5), strides=(2, 1), padding="VALID", name="g")
    assert (layer.kernel_size, layer.strides, layer.padding, layer.dilation_rate) == ((3, 5), (2, 1), "valid", (1, 1))
    assert layer.compute_output_shape((None, 9, None, 3)) == (None, 4, None, 4)
    config = layer.get_config()
    assert {k: config[k] for k in ("filters", "kernel_size", "strides", "padding", "dilation_rate")} == {
        "filters": 4, "kernel_size": (3, 5), "strides": (2, 1), "padding": "valid", "dilation_rate": (1, 1)
    }
    conv_config = layer.conv2d_config(use_bias=False)
    assert conv_config["filters"] == 4 and conv_config["name"] == "g" and not conv_config["use_bias"]
    with pytest.raises(ValueError, match=r"`filters` must be a positive integer. Received: filters=None"):
        ScaledConv2D(None, 3)  # filters_optional is False
    with pytest.raises(ValueError, match=r"not compatible.*Received: strides=2, dilation_rate=2"):
        ScaledConv2D(4, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match=r"inputs to ScaledConv2D must be defined"):
        ScaledConv2D(4, 3).build((None, 8, 8, None))
    with pytest.raises(ValueError, match=r"kernel extent 5 > input size 4"):
        ScaledConv2D(4, 5, padding="valid").build((None, 4, 8, 3))
    with pytest.raises(ValueError, match=r"'unbuilt' is not built yet"):
        ScaledConv2D(4, 3, name="unbuilt").fold()


def test_fold_is_abstract():
    class NoFold(FoldableConv2D):
        pass

    with pytest.raises(NotImplementedError, match=r"NoFold does not implement fold\(\)"):
        NoFold(4, 3).fold()
