"""CIFAR ResNets and ResNet-LC: sizes, structure, option-A shortcut, training, saving, sharing."""

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D, fold, zoo
from keras_lc.initializers import torch_uniform
from keras_lc.layers.shared_lc_conv2d import SharedLCConv2D, spatial_bank
from keras_lc.zoo.blocks import ConvOptions
from keras_lc.zoo.resnet import shortcut
from tests.harness import check_model_round_trip
from tests.reference import randomize_batchnorm, rel_error
from tests.zoo.test_registry import cifar_resnet_params


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def test_resnet20_16_has_0_27m_parameters_like_he_et_al():
    model = zoo.resnet20(seed=0)
    assert model.name == "resnet20"
    assert _trainable(model) == 269_722 and model.count_params() == 271_098  # + BN statistics
    # He et al. (2015), Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M.
    for depth, figure in [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)]:
        assert round(cifar_resnet_params(depth) / 1e6, 2 if depth < 110 else 1) == figure
    assert _trainable(zoo.resnet20(shortcut="B", seed=0)) == 269_722 + 16 * 32 + 32 * 64 + 2 * (32 + 64)


def test_structure_and_shortcuts():
    model = zoo.resnet20(seed=0)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 19 and all(l.kernel_size == (3, 3) for l in convs)  # D - 1 convs + dense
    strided = [l.name for l in convs if l.strides == (2, 2)]
    assert strided == ["stage2_block1_conv1", "stage3_block1_conv1"]
    shortcuts = [l.name for l in model.layers if "shortcut" in l.name]
    assert shortcuts == [  # option A: parameter-free
        f"stage{s}_block1_shortcut{part}" for s in (2, 3) for part in ("_pool", "_zeros", "")
    ]
    b = zoo.resnet20(shortcut="B", seed=0)
    projection = b.get_layer("stage2_block1_shortcut_conv")
    assert projection.kernel_size == (1, 1) and projection.strides == (2, 2) and projection.trainable
    assert isinstance(b.get_layer("stage2_block1_shortcut_bn"), keras.layers.BatchNormalization)
    k5 = zoo.resnet_lc(kernel_size=5, expansion=2, seed=0)
    assert k5.name == "resnet_lc20_16x2_k5"
    assert k5.get_layer("stem_conv").spatial_kernel.shape == (5, 5, 3, 32)


@pytest.mark.parametrize("shared", [False, True])
def test_symmetric_padding_pads_the_strided_convolutions_and_folds(shared, cifar_test_images):
    """`padding="symmetric"`: k // 2 zeros on every side before each stride-2 k x k convolution
    (PyTorch's `padding=1`), then "valid"; the output of such a convolution is the "same"-padded
    one shifted by one input pixel; the model folds exactly and survives a `.keras` round trip."""
    images, _ = cifar_test_images
    model = zoo.resnet_lc20(expansion=2, padding="symmetric", shared_spatial=shared, seed=0)
    assert model.name == "resnet_lc20_16x2_symmetric" + ("_shared" if shared else "")
    pads = [l for l in model.layers if isinstance(l, keras.layers.ZeroPadding2D)]
    assert [(l.name, l.padding) for l in pads] == [
        (f"stage{s}_block1_conv1_pad", ((1, 1), (1, 1))) for s in (2, 3)]
    lc = [l for l in model.layers if isinstance(l, LCConv2D)]
    assert {(l.strides, l.padding) for l in lc} == {((1, 1), "same"), ((2, 2), "valid")}
    same = zoo.resnet_lc20(expansion=2, shared_spatial=shared, seed=0)
    assert not any(isinstance(l, keras.layers.ZeroPadding2D) for l in same.layers)
    # One layer, the same kernels: on an 8x8 input, output (i, j) of the symmetric form sees
    # input rows and columns 2i-1..2i+1 (centred on the even positions the stride-2 shortcut
    # keeps); Keras' "same" (its one zero row and column after the image) sees 2i..2i+2,
    # so it gives the symmetric outputs only once the input is shifted by one pixel.
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 16)).astype("float32")
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    symmetric_out = np.asarray(model.get_layer("stage2_block1_conv1")(padded))
    same_layer = same.get_layer("stage2_block1_conv1")
    assert symmetric_out.shape == np.asarray(same_layer(x)).shape == (1, 4, 4, 32)
    np.testing.assert_allclose(symmetric_out, np.asarray(same_layer(padded))[:, :4, :4], rtol=1e-5, atol=1e-5)
    assert np.abs(symmetric_out - np.asarray(same_layer(x))).max() > 0.1
    randomize_batchnorm(model)
    logits = model(images[:4], training=False)
    assert rel_error(fold(model)(images[:4]), logits) <= 1e-5
    check_model_round_trip(model, images[:2])


def test_padding_is_checked_and_keeps_published_weights_apart():
    with pytest.raises(ValueError, match=r"`padding` must be one of \('same', 'symmetric'\). Received: padding='torch'"):
        zoo.resnet20(padding="torch")
    assert zoo.resnet20(padding="symmetric", shortcut="B", seed=0).name == "resnet20_shortcutB_symmetric"
    # The published CIFAR-10 weights were trained with "same": not offered for "symmetric".
    with pytest.raises(ValueError, match="resnet20_symmetric"):
        zoo.resnet20(padding="symmetric", weights="cifar10")


def test_option_a_shortcut_matches_numpy():
    inputs = keras.Input((None, None, 3))
    options = ConvOptions.create(seed=0)
    model = keras.Model(inputs, shortcut(inputs, 6, 2, "A", options, "block"))
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype("float32")
    expected = np.pad(x[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (0, 3)))
    np.testing.assert_array_equal(model(x), expected)
    assert model.count_params() == 0
    assert all(type(l).__module__.startswith("keras.") for l in model.layers)  # stock layers
    with pytest.raises(ValueError, match="Option-A shortcuts double the channels; block 'b' goes from 3 to 8"):
        shortcut(inputs, 8, 2, "A", options, "b")
    with pytest.raises(ValueError, match=r"`shortcut` must be one of \('A', 'B', 'D'\). Received: shortcut='C'"):
        shortcut(inputs, 6, 2, "C", options, "b")


def test_resnet_lc_frozen_and_learnable():
    frozen = zoo.resnet_lc(expansion=2, seed=0, implementation="two_stage")
    lc_layers = [l for l in frozen.layers if isinstance(l, LCConv2D)]
    assert len(lc_layers) == 19 and not any(isinstance(l, keras.layers.Conv2D) for l in frozen.layers)
    assert all(l.frozen_spatial and l.resolved_implementation == "two_stage" for l in lc_layers)
    spatial = sum(int(np.prod(l.spatial_kernel.shape)) for l in lc_layers)
    assert _trainable(frozen) == cifar_resnet_params(20, expansion=2) - spatial
    learnable = zoo.resnet_lc(expansion=2, seed=0, frozen_spatial=False)
    assert _trainable(learnable) == cifar_resnet_params(20, expansion=2)
    assert all(not l.frozen_spatial for l in learnable.layers if isinstance(l, LCConv2D))


@pytest.fixture(scope="module")
def trained_lc(cifar_train_images):
    """ResNet-LC-20-16x2 (frozen random), 2 epochs of 5 steps on real CIFAR-10."""
    images, labels = cifar_train_images
    model = zoo.resnet_lc20(expansion=2, seed=0)
    before = {l.name: np.array(l.spatial_kernel) for l in model.layers if isinstance(l, LCConv2D)}
    combination = np.array(model.get_layer("stage2_block1_conv1").combination)
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy", jit_compile=False
    )
    history = model.fit(images[:320], labels[:320], batch_size=64, epochs=2, shuffle=False, verbose=0)
    return model, before, combination, history.history["loss"]


def test_frozen_spatial_kernels_survive_fit_bit_for_bit(trained_lc):
    model, before, combination, losses = trained_lc
    assert losses[1] < losses[0]  # it learns (2.35 -> 2.2 in practice)
    for layer in model.layers:
        if isinstance(layer, LCConv2D):
            kernel = np.asarray(layer.spatial_kernel)
            np.testing.assert_array_equal(kernel, before[layer.name])
            np.testing.assert_array_equal(kernel, torch_uniform(kernel.shape, layer.seed).astype("float32"))
    assert not np.array_equal(model.get_layer("stage2_block1_conv1").combination, combination)


@pytest.mark.parametrize("variant", ["trained_lc", "resnet20", "shared"])
def test_keras_file_round_trip(variant, trained_lc, tmp_path, cifar_test_images):
    x, _ = cifar_test_images
    model = {
        "trained_lc": lambda: trained_lc[0],
        "resnet20": lambda: zoo.resnet20(shortcut="B", frozen_spatial=True, seed=1),
        "shared": lambda: zoo.resnet_lc(shared_spatial=True, expansion=2, seed=2),
    }[variant]()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.trainable for l in loaded.layers] == [l.trainable for l in model.layers]
    np.testing.assert_array_equal(loaded(x[:32], training=False), model(x[:32], training=False))


def test_shared_spatial_bank():
    shared = zoo.resnet_lc(shared_spatial=True, expansion=2, seed=0)
    plain = zoo.resnet_lc(expansion=2, seed=0)
    assert shared.name == "resnet_lc20_16x2_shared"
    layers = [l for l in shared.layers if isinstance(l, LCConv2D)]
    assert len(layers) == 19 and all(isinstance(l, SharedLCConv2D) for l in layers)
    assert {(l.bank_seed, l.bank_shape) for l in layers} == {(layers[0].bank_seed, (3, 3, 64, 128))}
    bank = spatial_bank(layers[0].bank_seed, (3, 3, 64, 128))
    for layer in layers:  # a scaled slice of one bank, within PyTorch's default bounds
        kernel = np.asarray(layer.spatial_kernel, dtype=np.float64)
        c_in, m = kernel.shape[2:]
        bound = 1 / np.sqrt(9 * c_in)
        np.testing.assert_allclose(kernel / bound, bank[:, :, :c_in, :m], rtol=1e-6)
        assert 0.95 * bound < np.abs(kernel).max() <= bound * (1 + 1e-6)
    # Same function and parameter count as the unshared model; far fewer stored values.
    assert shared.count_params() == plain.count_params()
    name = "stage1_block1_conv1"  # the combination weights keep the layer's own seed
    assert shared.get_layer(name).seed == plain.get_layer(name).seed
    per_layer = sum(int(np.prod(l.spatial_kernel.shape)) for l in layers)
    assert (per_layer, bank.size) == (535_392, 73_728)  # ResNet-LC-20-16x2: 7.3x fewer random values
