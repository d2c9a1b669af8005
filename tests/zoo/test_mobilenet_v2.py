"""MobileNetV2: keras.applications' layout and size, the 32x32 variant, frozen depthwise convs."""

import keras
import numpy as np
import pytest

from keras_lc import freeze_spatial, zoo
from keras_lc.zoo.mobilenet_v2 import make_divisible

CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _layout(model):
    return [
        (type(l).__name__, l.kernel_size, l.strides, getattr(l, "filters", None))
        for l in model.layers
        if isinstance(l, CONVS)
    ]


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize("alpha", [0.35, 1.0])
def test_matches_keras_applications(alpha):
    ours = zoo.mobilenet_v2(alpha=alpha, input_shape=(32, 32, 3), seed=0)
    reference = keras.applications.MobileNetV2(alpha=alpha, weights=None, input_shape=(32, 32, 3))
    assert _layout(ours) == _layout(reference)
    assert _trainable(ours) == _trainable(reference)
    assert ours.name == ("mobilenet_v2" if alpha == 1 else "mobilenet_v2_0.35")
    # frozen_spatial freezes what freeze_spatial freezes in keras.applications' model.
    frozen = zoo.mobilenet_v2(alpha=alpha, input_shape=(32, 32, 3), frozen_spatial=True, seed=0)
    _, summary = freeze_spatial(reference, seed=0)
    assert _trainable(frozen) == summary.trainable_params_after
    assert [l.name for l in frozen.layers if isinstance(l, CONVS) and not l.trainable] == [
        "stem_conv"
    ] + [f"block{i}_depthwise" for i in range(17)]


def test_make_divisible_rounds_like_the_reference():
    assert [make_divisible(v) for v in (11.2, 16, 33.6, 3.5, 1280 * 1.4)] == [16, 16, 32, 8, 1792]


def test_low_res_variant():
    low_res = zoo.mobilenet_v2(low_res=True, include_top=False, input_shape=(32, 32, 3), seed=0)
    assert low_res.output_shape == (None, 4, 4, 1280) and low_res.name == "mobilenet_v2_low_res"
    assert low_res.get_layer("stem_conv").strides == (1, 1)
    assert low_res.get_layer("block1_depthwise").strides == (1, 1)
    assert low_res.get_layer("block3_depthwise").strides == (2, 2)
    default = zoo.mobilenet_v2(include_top=False, input_shape=(32, 32, 3), seed=0)
    assert default.output_shape == (None, 1, 1, 1280)


def test_keras_file_round_trip(tmp_path, cifar_test_images):
    x, _ = cifar_test_images
    model = zoo.mobilenet_v2(
        alpha=0.35, low_res=True, input_shape=(32, 32, 3), classes=10, frozen_spatial=True, seed=1
    )
    path = tmp_path / "mobilenet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [l.trainable for l in loaded.layers] == [l.trainable for l in model.layers]
    np.testing.assert_array_equal(loaded(x[:16], training=False), model(x[:16], training=False))
