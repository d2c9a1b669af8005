"""ImageNet-style ResNets: torchvision layout (v1.5 bottleneck), ResNet-D, the 32x32 stem.

Parameter counts of every model are checked in tests/zoo/test_registry.py."""

import keras
import numpy as np
import pytest

from keras_lc import zoo


@pytest.fixture(scope="module")
def resnet18d_low_res():
    return zoo.resnet18d(low_res=True, input_shape=(32, 32, 3), classes=10, seed=0)


def test_stems_and_total_stride():
    imagenet = zoo.resnet18(include_top=False, input_shape=(224, 224, 3), seed=0)
    assert imagenet.output_shape == (None, 7, 7, 512)  # stride 32
    stem = imagenet.get_layer("stem_conv")
    assert stem.kernel_size == (7, 7) and stem.strides == (2, 2)
    assert isinstance(imagenet.get_layer("stem_pool"), keras.layers.MaxPooling2D)
    low_res = zoo.resnet18(low_res=True, include_top=False, input_shape=(32, 32, 3), seed=0)
    assert low_res.name == "resnet18_low_res" and low_res.output_shape == (None, 4, 4, 512)  # stride 8
    stem = low_res.get_layer("stem_conv")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1)
    assert not any(isinstance(l, keras.layers.MaxPooling2D) for l in low_res.layers)


def test_bottleneck_has_the_stride_on_the_3x3_conv():
    model = zoo.resnet50(include_top=False, input_shape=(64, 64, 3), seed=0)
    first = {i: model.get_layer(f"stage2_block1_conv{i}") for i in (1, 2, 3)}
    assert [(l.kernel_size, l.strides, l.filters) for l in first.values()] == [
        ((1, 1), (1, 1), 128),
        ((3, 3), (2, 2), 128),
        ((1, 1), (1, 1), 512),
    ]
    projection = model.get_layer("stage1_block1_shortcut_conv")  # 64 -> 256 channels
    assert projection.kernel_size == (1, 1) and projection.strides == (1, 1)
    assert model.get_layer("stage4_block1_shortcut_conv").strides == (2, 2)
    assert len([l for l in model.layers if l.name.endswith("_add")]) == 16


def test_resnet_d_deep_stem_and_average_pool_shortcuts(resnet18d_low_res):
    model = resnet18d_low_res
    stem = [model.get_layer(f"stem_conv{i}") for i in (1, 2, 3)]
    assert [(l.filters, l.kernel_size, l.strides) for l in stem] == [
        (32, (3, 3), (1, 1)),
        (32, (3, 3), (1, 1)),
        (64, (3, 3), (1, 1)),
    ]
    pool = model.get_layer("stage2_block1_shortcut_pool")
    assert isinstance(pool, keras.layers.AveragePooling2D) and pool.strides == (2, 2)
    conv = model.get_layer("stage2_block1_shortcut_conv")
    assert conv.strides == (1, 1) and conv.kernel_size == (1, 1)
    # The pool averages 2x2 windows (ceil mode, padding excluded: odd sizes too).
    x = np.random.default_rng(0).normal(size=(1, 5, 5, 2)).astype("float32")
    padded = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=np.nan)
    windows = padded.reshape(1, 3, 2, 3, 2, 2)
    np.testing.assert_allclose(pool(x), np.nanmean(windows, axis=(2, 4)), rtol=1e-6)
    imagenet_stem = zoo.resnet50d(include_top=False, seed=0).get_layer("stem_conv1")
    assert imagenet_stem.strides == (2, 2)


def test_keras_file_round_trip(resnet18d_low_res, tmp_path, cifar_test_images):
    x, _ = cifar_test_images
    model = resnet18d_low_res
    path = tmp_path / "resnet18d.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    np.testing.assert_array_equal(loaded(x[:16], training=False), model(x[:16], training=False))
