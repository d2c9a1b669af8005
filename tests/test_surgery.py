"""freeze_spatial and lcify on keras.applications models, sequential, nested and LC models."""

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D, freeze_spatial, lcify
from keras_lc.initializers import torch_uniform
from keras_lc.surgery import FreezeSummary, layer_seed
from tests.reference import rel_error


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
    layer = LCConv2D(4, 3, expansion=2, spatial_trainable=True, seed=9, name="lc")
    model = keras.Model(inputs, layer(inputs))
    layer.spatial_kernel.assign(np.zeros(layer.spatial_kernel.shape, "float32"))
    _, summary = freeze_spatial(model)
    assert summary.frozen_layers == ("lc",) and summary.frozen_params == 3 * 3 * 3 * 8
    assert not layer.spatial_trainable and layer.get_config()["spatial_trainable"] is False
    np.testing.assert_array_equal(layer.spatial_kernel, torch_uniform((3, 3, 3, 8), 9).astype("float32"))


def test_lcify_resnet50_replaces_exactly_the_spatial_convs(resnet50):
    model, lc = resnet50
    replaced = _spatial_convs(model)
    lc_layers = [l for l in lc.layers if isinstance(l, LCConv2D)]
    assert len(lc_layers) == len(replaced) == 17 and not _spatial_convs(lc)
    assert [l.name for l in lc.layers] == [l.name for l in model.layers]
    for old in replaced:
        new = lc.get_layer(old.name)
        assert isinstance(new, LCConv2D) and new.expansion == 4 and not new.spatial_trainable
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
    lc = lcify(mobilenet, expansion=2, spatial_trainable=True, implementation="two_stage", seed=1)
    assert [l.name for l in lc.layers if isinstance(l, LCConv2D)] == ["Conv1"]
    stem = lc.get_layer("Conv1")
    assert stem.spatial_trainable and stem.resolved_implementation == "two_stage"
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
    with pytest.raises(ValueError, match="`seed` must be a non-negative integer. Received: seed=-2"):
        freeze_spatial(model, seed=-2)
    with pytest.raises(ValueError, match="`expansion` must be a positive integer. Received: expansion=0"):
        lcify(model, expansion=0)
    with pytest.raises(ValueError, match="`implementation` must be one of .*Received: implementation='fast'"):
        lcify(model, implementation="fast")
    message = "`spatial_trainable` must be a bool. Received: spatial_trainable=None"
    with pytest.raises(ValueError, match=message):
        lcify(model, spatial_trainable=None)


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
