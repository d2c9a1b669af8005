"""freeze_spatial and lcify on keras.applications models, sequential, nested and LC models."""

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D, fold, freeze_spatial, lcify, refocus, zoo
from keras_lc.initializers import torch_uniform
from keras_lc.layers import RefocusConv2D
from keras_lc.initializers import layer_seed
from keras_lc.surgery import FreezeSummary, count_trainable_params
from tests.reference import randomize_batchnorm, rel_error


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def _spatial_convs(model):
    return [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and max(l.kernel_size) > 1]


@pytest.fixture(scope="module")
def resnet50():
    """keras.applications ResNet50 at 32x32 with logits, and its LC-ified copy."""
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classifier_activation=None)
    return model, lcify(model, expansion=4, seed=0)


def test_freeze_spatial_resnet50_trainable_parameters_fall_from_25_6m_to_14_2m():
    model = keras.applications.ResNet50(weights=None)
    kernels = {l.name: np.array(l.kernel) for l in _spatial_convs(model)}
    same, summary = freeze_spatial(model, seed=0)
    assert same is model and isinstance(summary, FreezeSummary)
    # The paper's authors: ResNet-50 25.6M trainable, 14.2M with frozen spatial convolutions.
    assert summary.trainable_params_before == _trainable(model) + summary.frozen_params == 25_583_592
    assert round(summary.trainable_params_before / 1e6, 1) == 25.6
    assert summary.trainable_params_after == _trainable(model) == 14_253_096
    assert abs(summary.trainable_params_after / 14.2e6 - 1) < 0.005
    # = torchvision's frozen ResNet-50 (the authors' 14.2M; zoo.resnet50 has it exactly)
    # plus keras.applications' biases on the 1x1 convolutions.
    pointwise_biases = sum(
        l.filters for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.kernel_size == (1, 1)
    )
    assert summary.trainable_params_after - pointwise_biases == 14_230_376
    assert len(summary.frozen_layers) == 17 and summary.frozen_layers[0] == "conv1_conv"
    for layer in model.layers:
        spatial = layer.name in kernels
        assert layer.trainable != spatial, layer.name  # 1x1, BN and Dense stay trainable
        if spatial:  # re-drawn with PyTorch's default bounds from the layer's seed
            expected = torch_uniform(layer.kernel.shape, layer_seed(0, layer.name))
            np.testing.assert_array_equal(layer.kernel, expected.astype("float32"))
            assert not np.array_equal(layer.kernel, kernels[layer.name])
    assert str(summary) == "froze 17 layers: trainable parameters 25,583,592 -> 14,253,096"


def test_freeze_spatial_mobilenet_v2_freezes_depthwise_convs():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3))
    depthwise = [l for l in model.layers if isinstance(l, keras.layers.DepthwiseConv2D)]
    kernels = [np.array(l.kernel) for l in depthwise]
    _, summary = freeze_spatial(model, reinitialize=False)
    assert len(depthwise) == 17 and summary.frozen_layers == ("Conv1",) + tuple(l.name for l in depthwise)
    assert all(not l.trainable for l in depthwise)
    assert all(np.array_equal(l.kernel, k) for l, k in zip(depthwise, kernels))  # kept as they were
    frozen = 3 * 3 * 3 * 32 + sum(int(np.prod(l.kernel.shape)) for l in depthwise)
    assert summary.trainable_params_after == 3_504_872 - frozen == 3_439_784


def test_frozen_kernels_survive_fit_sequential_and_nested(cifar_train_images):
    images, labels = cifar_train_images
    inner_input = keras.Input((16, 16, 8))
    inner = keras.Model(
        inner_input, keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(inner_input), name="inner"
    )
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            inner,
            keras.layers.Conv2D(10, 1, name="pointwise"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    _, summary = freeze_spatial(model, seed=5)
    assert summary.frozen_layers == ("conv", "inner/dw")
    dw = inner.get_layer("dw")
    bound = np.abs(np.asarray(dw.kernel)).max()  # PyTorch depthwise fan-in k*k: bound 1/3
    assert 0.9 / 3 < bound <= 1 / 3
    expected = torch_uniform((3, 3, 8, 1), layer_seed(5, "inner/dw"), fan_in=9).astype("float32")
    np.testing.assert_array_equal(dw.kernel, expected)
    before = [np.array(v) for v in model.weights]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(0.1), loss, jit_compile=False)
    model.fit(images[:128], labels[:128], batch_size=32, epochs=1, verbose=0)
    changed = {v.path for v, b in zip(model.weights, before) if not np.array_equal(v, b)}
    assert model.get_layer("conv").kernel.path not in changed and dw.kernel.path not in changed
    assert {model.get_layer("pointwise").kernel.path, model.get_layer("bn").gamma.path} <= changed


def test_freeze_spatial_learnable_lc_layer_gets_its_seed_kernel_back():
    inputs = keras.Input((8, 8, 3))
    layer = LCConv2D(4, 3, expansion=2, frozen_spatial=False, seed=9, name="lc")
    model = keras.Model(inputs, layer(inputs))
    layer.spatial_kernel.assign(np.zeros(layer.spatial_kernel.shape, "float32"))
    _, summary = freeze_spatial(model)
    assert summary.frozen_layers == ("lc",) and summary.frozen_params == 3 * 3 * 3 * 8
    assert layer.frozen_spatial and layer.get_config()["frozen_spatial"] is True
    np.testing.assert_array_equal(layer.spatial_kernel, torch_uniform((3, 3, 3, 8), 9).astype("float32"))


def test_lcify_resnet50_replaces_exactly_the_spatial_convs(resnet50):
    model, lc = resnet50
    replaced = _spatial_convs(model)
    lc_layers = [l for l in lc.layers if isinstance(l, LCConv2D)]
    assert len(lc_layers) == len(replaced) == 17 and not _spatial_convs(lc)
    assert [l.name for l in lc.layers] == [l.name for l in model.layers]
    for old in replaced:
        new = lc.get_layer(old.name)
        assert isinstance(new, LCConv2D) and new.expansion == 4 and new.frozen_spatial
        assert new.output.shape == old.output.shape and new.use_bias == old.use_bias
        assert new.seed == layer_seed(0, old.name)
    for old in model.layers:  # every other layer keeps its weights bit for bit
        if old not in replaced:
            new = lc.get_layer(old.name)
            assert type(new) is type(old)
            assert all(np.array_equal(a, b) for a, b in zip(new.get_weights(), old.get_weights()))


def test_lcify_resnet50_wiring_folds_back_to_the_original(resnet50, cifar_test_images):
    """Writing each LC-block's folded kernel into the original conv gives the LC model's outputs."""
    model, lc = resnet50
    x, _ = cifar_test_images
    folded = keras.models.clone_model(model)
    folded.set_weights(model.get_weights())
    for layer in lc.layers:
        if isinstance(layer, LCConv2D):
            kernel, bias = layer.fold()
            folded.get_layer(layer.name).set_weights([kernel, bias])
    expected = np.asarray(lc(x[:16], training=False))
    assert rel_error(folded(x[:16], training=False), expected) <= 1e-5
    assert rel_error(model(x[:16], training=False), expected) > 0.1  # the function did change


def test_lcify_mobilenet_v2_and_sequential_with_fused_activation(cifar_test_images):
    x, _ = cifar_test_images
    mobilenet = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35)
    lc = lcify(mobilenet, expansion=2, frozen_spatial=False, implementation="two_stage", seed=1)
    assert [l.name for l in lc.layers if isinstance(l, LCConv2D)] == ["Conv1"]
    stem = lc.get_layer("Conv1")
    assert not stem.frozen_spatial and stem.resolved_implementation == "two_stage"
    assert sum(isinstance(l, keras.layers.DepthwiseConv2D) for l in lc.layers) == 17
    assert lc.output_shape == mobilenet.output_shape
    sequential = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(6, 3, activation="relu", name="c"),
            keras.layers.Conv2D(4, 1, name="p"),
        ]
    )
    lc_seq = lcify(sequential, expansion=3, seed=2)
    assert isinstance(lc_seq, keras.Sequential)
    assert [(type(l).__name__, l.name) for l in lc_seq.layers] == [
        ("LCConv2D", "c"),
        ("Activation", "c_activation"),
        ("Conv2D", "p"),
    ]
    kernel, bias = lc_seq.get_layer("c").fold()
    sequential.get_layer("c").set_weights([kernel, bias])
    assert rel_error(sequential(x[:4]), lc_seq(x[:4])) <= 1e-5


def test_bad_arguments():
    message = "`model` must be a functional or sequential `keras.Model`. Received: model=3"
    with pytest.raises(ValueError, match=message):
        freeze_spatial(3)
    with pytest.raises(ValueError, match="Model 'unbuilt' is not built"):
        lcify(keras.Sequential([keras.layers.Conv2D(2, 3)], name="unbuilt"))
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="`reinitialize` must be a bool. Received: reinitialize='yes'"):
        freeze_spatial(model, reinitialize="yes")
    with pytest.raises(ValueError, match="`seed` must be an integer in \\[0, 2\\*\\*63 - 1\\]. Received: seed=-2"):
        freeze_spatial(model, seed=-2)
    with pytest.raises(ValueError, match="`expansion` must be a positive integer. Received: expansion=0"):
        lcify(model, expansion=0)
    with pytest.raises(ValueError, match="`implementation` must be one of .*Received: implementation='fast'"):
        lcify(model, implementation="fast")
    message = "`frozen_spatial` must be a bool. Received: frozen_spatial=None"
    with pytest.raises(ValueError, match=message):
        lcify(model, frozen_spatial=None)


def test_lcify_nested_functional_model(cifar_test_images):
    x, _ = cifar_test_images
    inner_input = keras.Input((32, 32, 3))
    hidden = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inner_input)
    hidden = keras.layers.BatchNormalization(name="bn")(hidden)
    backbone = keras.Model(inner_input, hidden, name="backbone")
    inputs = keras.Input((32, 32, 3), name="image")
    outputs = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(backbone(inputs)))
    model = keras.Model(inputs, outputs)
    backbone.get_layer("bn").moving_variance.assign(np.full(8, 2.0, "float32"))
    lc = lcify(model, expansion=2, seed=4)
    conv = lc.get_layer("backbone").get_layer("conv")
    assert isinstance(conv, LCConv2D) and conv.seed == layer_seed(4, "backbone/conv")
    assert lc.inputs[0]._keras_history.operation.name == "image"
    np.testing.assert_array_equal(lc.get_layer("backbone").get_layer("bn").moving_variance, np.full(8, 2.0))
    np.testing.assert_array_equal(lc.get_layer("head").kernel, model.get_layer("head").kernel)
    kernel, _ = conv.fold()
    backbone.get_layer("conv").set_weights([kernel])
    assert rel_error(model(x[:4]), lc(x[:4])) <= 1e-5


# ------------------------------------------------------------------ refocus
def _trained_like(model, seed=0):
    """Random non-zero weights everywhere (kernels, biases, BatchNorm statistics), as after training."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0, 0.2, variable.shape).astype("float32"))
    return randomize_batchnorm(model, seed=seed)


def _small_model():
    """3x3 conv with bias and fused ReLU; strided 3x3 conv + BN; depthwise (x2) + BN; 1x1; dense."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv_b")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn_b")(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False, name="dw")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn_dw")(x))
    x = keras.layers.Conv2D(16, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return _trained_like(keras.Model(inputs, keras.layers.Dense(10, name="head")(x)))


def _refocused_layers(model):
    return {l.name: l for l in model._flatten_layers(include_self=False) if isinstance(l, RefocusConv2D)}


def _assert_refocus_copies(model, refocused):
    """W_b is each replaced layer's kernel bit for bit; every other layer keeps its weights."""
    layers = _refocused_layers(refocused)
    for old in model.layers:
        new = refocused.get_layer(old.name)
        if old.name in layers:
            np.testing.assert_array_equal(new.basis_kernel, old.kernel)
            assert new.use_bias == old.use_bias and (not old.use_bias or np.array_equal(new.bias, old.bias))
            assert not np.any(np.asarray(new.refocus_kernel)) and not new.basis_kernel.trainable
        else:
            assert type(new) is type(old)
            assert all(np.array_equal(a, b) for a, b in zip(new.get_weights(), old.get_weights()))


def test_refocus_small_model_starts_exactly_at_the_original(cifar_test_images):
    x, _ = cifar_test_images
    model = _small_model()
    refocused = refocus(model)
    assert [(type(l).__name__, l.name) for l in refocused.layers[1:5]] == [
        ("RefocusConv2D", "conv_a"), ("Activation", "conv_a_activation"),
        ("RefocusConv2D", "conv_b"), ("BatchNormalization", "bn_b"),
    ]
    assert sorted(_refocused_layers(refocused)) == ["conv_a", "conv_b", "dw"]  # not the 1x1
    assert refocused.get_layer("dw").depthwise and refocused.get_layer("dw").refocus_kernel.shape == (3, 3, 16, 16)
    _assert_refocus_copies(model, refocused)
    np.testing.assert_array_equal(refocused(x, training=False), model(x, training=False))
    # zero_init=False starts elsewhere: the map is PyTorch-default random.
    moved = refocus(model, zero_init=False)
    assert rel_error(moved(x[:16], training=False), model(x[:16], training=False)) > 0.01


@pytest.mark.parametrize(
    "name,arguments,replaced",
    [
        ("mobilenet_v2", dict(alpha=0.35, low_res=True), 1 + 17),  # stem + 17 depthwise
        ("resnet20", dict(), 19),  # every 3x3 conv
    ],
)
def test_refocus_zoo_models_start_exactly_at_the_original(name, arguments, replaced, cifar_test_images):
    x, _ = cifar_test_images
    model = _trained_like(zoo.get_model(name, input_shape=(32, 32, 3), classes=10, seed=0, **arguments))
    refocused = refocus(model)
    spatial = [l for l in model.layers if isinstance(l, keras.layers.DepthwiseConv2D) or (
        isinstance(l, keras.layers.Conv2D) and max(l.kernel_size) > 1)]
    assert len(_refocused_layers(refocused)) == len(spatial) == replaced
    _assert_refocus_copies(model, refocused)
    np.testing.assert_array_equal(refocused(x[:64], training=False), model(x[:64], training=False))


def test_refocus_fine_tune_keeps_the_basis_and_folds_back(cifar_train_images, cifar_test_images, tmp_path):
    images, labels = cifar_train_images
    x, _ = cifar_test_images
    model = _small_model()
    refocused = refocus(model)
    layers = _refocused_layers(refocused)
    # Trainable: the maps (9 per 3x3 kernel; a dense 16 -> 16 map for the depthwise layer), the
    # bias of conv_a, BatchNorm, 1x1 and head; not the basis kernels.
    maps = 9 * (3 * 8 + 8 * 8) + 9 * 16 * 16
    others = 8 + 2 * (8 + 16) + (16 * 16 + 16) + (16 * 10 + 10)
    assert count_trainable_params(refocused) == maps + others == 3_594
    before = {v.path: np.array(v) for v in refocused.weights}
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    refocused.compile(keras.optimizers.SGD(0.05, momentum=0.9), loss)
    refocused.fit(images[:128], labels[:128], batch_size=32, epochs=1, verbose=0)
    for name, layer in layers.items():
        np.testing.assert_array_equal(layer.basis_kernel, model.get_layer(name).kernel)  # bit-identical
        assert np.abs(np.asarray(layer.refocus_kernel)).max() > 1e-4, name  # learned from zero
    assert not np.array_equal(refocused.get_layer("bn_dw").gamma, before[refocused.get_layer("bn_dw").gamma.path])
    expected = np.asarray(refocused(x, training=False))
    assert rel_error(expected, model(x, training=False)) > 1e-3  # the function did change
    for fold_batchnorm in (True, False):
        folded = fold(refocused, fold_batchnorm=fold_batchnorm)
        assert rel_error(folded(x, training=False), expected) <= 1e-5
    assert all(type(l).__module__.startswith("keras.") for l in folded.layers)
    folded = fold(refocused)
    kinds = {l.name: type(l).__name__ for l in folded.layers}
    assert kinds["conv_a"] == kinds["conv_b"] == "Conv2D" and kinds["dw"] == "DepthwiseConv2D"
    assert not {"bn_b", "bn_dw"} & set(kinds)
    path = tmp_path / "folded.keras"
    folded.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert rel_error(loaded(x, training=False), expected) <= 1e-5


def test_refocus_sequential_and_nested(cifar_test_images):
    x, _ = cifar_test_images
    inner_input = keras.Input((16, 16, 8))
    inner = keras.Model(inner_input, keras.layers.DepthwiseConv2D(1, name="dw1x1")(inner_input), name="inner")
    model = _trained_like(keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, (3, 1), strides=2, padding="same", name="conv"),
        inner,
        keras.layers.GlobalAveragePooling2D(),
    ]))
    refocused = refocus(model, refocus_kernel_size=5)
    assert isinstance(refocused, keras.Sequential)
    conv, dw = refocused.get_layer("conv"), refocused.get_layer("inner").get_layer("dw1x1")
    assert conv.refocus_kernel_size == (3, 1) and dw.refocus_kernel_size == (1, 1)  # cut to the kernel
    assert dw.refocus_kernel.shape == (1, 1, 8, 8)  # a 1x1 depthwise kernel: its channels' scales mixed
    np.testing.assert_array_equal(dw.basis_kernel, inner.get_layer("dw1x1").kernel)
    np.testing.assert_array_equal(refocused(x[:8], training=False), model(x[:8], training=False))


def test_refocus_bad_arguments():
    with pytest.raises(ValueError, match="`model` must be a functional or sequential `keras.Model`. Received: model=3"):
        refocus(3)
    with pytest.raises(ValueError, match="Received: model=<RefocusConv2D"):
        refocus(RefocusConv2D(4, 3))
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="`zero_init` must be a bool. Received: zero_init='yes'"):
        refocus(model, zero_init="yes")
    with pytest.raises(ValueError, match="`refocus_kernel_size` must be odd. Received: refocus_kernel_size=2"):
        refocus(model, refocus_kernel_size=2)
    with pytest.raises(ValueError, match="positive integer. Received: refocus_kernel_size=0"):
        refocus(model, refocus_kernel_size=0)
