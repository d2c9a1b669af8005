"""Wide ResNets: pre-activation CIFAR WRN-D-K, bottleneck WRN-50-2, frozen training, saving.

Parameter counts (WRN-28-10 36.5M, WRN-50-2 68.9M / 23.6M frozen) are checked
in tests/zoo/test_registry.py."""

import keras
import numpy as np
import pytest

from keras_lc import zoo
from keras_lc.initializers import torch_uniform
from keras_lc.initializers import layer_seed


def _input_layer(model, name):
    return model.get_layer(name)._inbound_nodes[0].input_tensors[0]._keras_history.operation.name


def test_cifar_wrn_is_pre_activation():
    model = zoo.wide_resnet(depth=16, width=4, dropout_rate=0.3, seed=0)
    assert model.name == "wide_resnet16_4"
    assert [model.get_layer(f"stage{s}_block1_conv1").filters for s in (1, 2, 3)] == [64, 128, 256]
    assert [model.get_layer(f"stage{s}_block1_conv1").strides for s in (1, 2, 3)] == [(1, 1), (2, 2), (2, 2)]
    assert _input_layer(model, "stage1_block1_bn1") == "stem_conv"
    assert _input_layer(model, "stage1_block2_bn1") == "stage1_block1_add"  # BN on the sum
    assert _input_layer(model, "stage2_block1_shortcut_conv") == "stage2_block1_relu1"
    assert _input_layer(model, "stage2_block1_bn2") == "stage2_block1_conv1"  # conv -> BN
    assert _input_layer(model, "stage1_block1_conv2") == "stage1_block1_dropout"
    assert _input_layer(model, "final_bn") == "stage3_block2_add"
    assert not any("dropout" in l.name for l in zoo.wide_resnet(depth=10, width=1, seed=0).layers)


def test_symmetric_padding_pads_the_strided_3x3_convolutions():
    model = zoo.wide_resnet(depth=10, width=1, padding="symmetric", seed=0)
    assert model.name == "wide_resnet10_1_symmetric"
    pads = [(l.name, l.padding) for l in model.layers if isinstance(l, keras.layers.ZeroPadding2D)]
    assert pads == [(f"stage{s}_block1_conv1_pad", ((1, 1), (1, 1))) for s in (2, 3)]
    assert model.get_layer("stage2_block1_conv1").padding == "valid"
    assert model.get_layer("stage2_block1_shortcut_conv").padding == "same"  # 1x1: no padding
    assert model.count_params() == zoo.wide_resnet(depth=10, width=1, seed=0).count_params()


def test_wide_resnet50_2_doubles_the_bottleneck_width():
    wide = zoo.wide_resnet50_2(include_top=False, input_shape=(32, 32, 3), seed=0)
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        prefix = f"stage{stage}_block1"
        widths = [wide.get_layer(f"{prefix}_conv{i}").filters for i in (1, 2)]
        assert widths == [2 * planes, 2 * planes]
        assert wide.get_layer(f"{prefix}_conv3").filters == 4 * planes
    assert wide.name == "wide_resnet50_2"


@pytest.fixture(scope="module")
def trained_frozen_wrn(cifar_train_images):
    """WRN-10-1 with frozen 3x3 kernels, 2 epochs of 5 steps on real CIFAR-10."""
    images, labels = cifar_train_images
    model = zoo.wide_resnet(depth=10, width=1, frozen_spatial=True, seed=3)
    before = [np.array(w) for w in model.weights]
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy", jit_compile=False
    )
    history = model.fit(images[:320], labels[:320], batch_size=64, epochs=2, shuffle=False, verbose=0)
    return model, before, history.history["loss"]


def test_frozen_kernels_survive_fit_bit_for_bit(trained_frozen_wrn):
    model, before, losses = trained_frozen_wrn
    assert losses[1] < losses[0]
    changed = {v.path for v, b in zip(model.weights, before) if not np.array_equal(v, b)}
    spatial = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.kernel_size == (3, 3)]
    assert len(spatial) == 7  # stem + 3 blocks x 2
    for layer in spatial:
        assert layer.kernel.path not in changed
        expected = torch_uniform(layer.kernel.shape, layer_seed(3, layer.name)).astype("float32")
        np.testing.assert_array_equal(layer.kernel, expected)
    assert model.get_layer("stage2_block1_shortcut_conv").kernel.path in changed  # 1x1 trains
    assert model.get_layer("final_bn").gamma.path in changed


def test_keras_file_round_trip(trained_frozen_wrn, tmp_path, cifar_test_images):
    x, _ = cifar_test_images
    model = trained_frozen_wrn[0]
    path = tmp_path / "wrn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [l.trainable for l in loaded.layers] == [l.trainable for l in model.layers]
    np.testing.assert_array_equal(loaded(x[:32], training=False), model(x[:32], training=False))
