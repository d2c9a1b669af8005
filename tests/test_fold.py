"""Whole-model folding against the original model's outputs."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D
from keras_lc.folding import fold
from tests.reference import randomize_batchnorm, rel_error, to_numpy


def _randomize_batchnorm(model):
    return randomize_batchnorm(model, mean_std=0.3, variance=(0.3, 2.0), beta_std=0.2)


def _mixed_model():
    """LC, plain, depthwise convs with BN; a residual add; a BN on a shared tensor."""
    inputs = keras.Input((32, 32, 3))
    x = LCConv2D(16, 3, expansion=8, seed=1, name="lc1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv2")(x)
    y = keras.layers.BatchNormalization(epsilon=1e-3, name="bn2")(y)
    x = keras.layers.Add()([x, y])
    z = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw3")(x)
    z = keras.layers.BatchNormalization(name="bn3")(z)
    shared = LCConv2D(8, 3, strides=2, expansion=4, intermediate="bn", seed=2, name="lc4")(z)
    a = keras.layers.BatchNormalization(name="bn4a")(shared)  # shared has 2 consumers:
    b = keras.layers.ReLU()(shared)  # bn4a must not fold
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="head")(x)
    return _randomize_batchnorm(keras.Model(inputs, outputs))


@pytest.fixture(scope="module")
def mixed():
    model = _mixed_model()
    return model, fold(model)


def test_fold_matches_on_random_and_real_images(mixed, cifar_test_images):
    model, folded = mixed
    x_real, _ = cifar_test_images
    x_random = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    for x in (x_random, x_real):
        assert rel_error(folded.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5


def test_folded_model_is_stock_and_batchnorms_are_gone(mixed):
    _, folded = mixed
    kinds = {layer.name: type(layer).__name__ for layer in folded.layers}
    assert all(type(layer).__module__.startswith("keras.") for layer in folded.layers)
    assert kinds["lc1"] == kinds["conv2"] == kinds["lc4"] == "Conv2D"
    assert kinds["dw3"] == "DepthwiseConv2D"
    assert not {"bn1", "bn2", "bn3"} & set(kinds)
    assert kinds["bn4a"] == "BatchNormalization"  # its input has two consumers


def test_folded_keras_file_loads_without_keras_lc(mixed, tmp_path, cifar_test_images):
    model, folded = mixed
    x, _ = cifar_test_images
    path = tmp_path / "folded.keras"
    folded.save(path)
    np.save(tmp_path / "x.npy", x[:16])
    script = (
        "import sys; sys.modules['keras_lc'] = None\n"  # any import of keras_lc fails
        "import keras, numpy as np\n"
        f"m = keras.saving.load_model(r'{path}', safe_mode=True)\n"
        f"np.save(r'{tmp_path / 'y.npy'}', m.predict(np.load(r'{tmp_path / 'x.npy'}'), verbose=0))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    assert rel_error(np.load(tmp_path / "y.npy"), model.predict(x[:16], verbose=0)) <= 1e-5


def test_fold_sequential_and_nested():
    inner = keras.Sequential(
        [keras.Input((16, 16, 3)), LCConv2D(8, 3, expansion=2, seed=3), keras.layers.BatchNormalization()]
    )
    inputs = keras.Input((16, 16, 3))
    x = inner(inputs)
    x = keras.layers.Conv2D(4, 1)(x)
    outer = _randomize_batchnorm(keras.Model(inputs, x))
    folded = fold(outer)
    x = np.random.default_rng(1).normal(size=(4, 16, 16, 3)).astype("float32")
    assert rel_error(folded(x), outer(x)) <= 1e-5
    inner_folded = folded.layers[1]
    assert [type(l).__name__ for l in inner_folded.layers] == ["InputLayer", "Conv2D"]
    assert rel_error(fold(inner)(x), inner(x)) <= 1e-5


def test_fold_batchnorm_false_keeps_batchnorm(mixed):
    model, _ = mixed
    kept = fold(model, fold_batchnorm=False)
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in kept.layers) == 4
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype("float32")
    assert rel_error(kept(x), model(x)) <= 1e-5


def test_fold_refuses_relu_between_stages():
    inputs = keras.Input((8, 8, 3))
    outputs = LCConv2D(4, 3, intermediate="relu", seed=0, name="nonlinear_lc")(inputs)
    with pytest.raises(ValueError, match="'nonlinear_lc'.*not linear"):
        fold(keras.Model(inputs, outputs))


def test_fold_refuses_unfoldable_custom_layer():
    class Custom(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inputs = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match=r"'mystery' \(Custom\) is not a stock Keras layer"):
        fold(keras.Model(inputs, Custom(name="mystery")(inputs)))
    with pytest.raises(ValueError, match="must be a functional or sequential `keras.Model`. Received: model=<LCConv2D"):
        fold(LCConv2D(4, 3))


def test_fold_dispatches_on_foldable_conv2d_not_on_a_fold_method():
    """A layer with fold() and conv2d_config() that is no FoldableConv2D is not taken for one."""

    class DuckConv(keras.layers.Layer):
        def call(self, x):
            return x

        def fold(self):  # pragma: no cover - must not be called
            raise AssertionError("fold() of a non-FoldableConv2D was called")

        def conv2d_config(self, use_bias, name=None):  # pragma: no cover
            raise AssertionError("conv2d_config() of a non-FoldableConv2D was called")

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization(name="bn")(DuckConv(name="duck")(inputs))
    with pytest.raises(ValueError, match=r"'duck' \(DuckConv\) is not a stock Keras layer and not a "
                                         r"keras_lc.layers.FoldableConv2D"):
        fold(keras.Model(inputs, x))


def test_fold_keras_applications_mobilenet_v2():
    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10, classifier_activation=None
    )
    _randomize_batchnorm(model)
    folded = fold(model)
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers)
    x = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32")
    assert rel_error(folded(x), model(x)) <= 1e-5


def test_fold_refocus_conv2d_into_conv2d_and_depthwise_with_batchnorm(cifar_test_images):
    """RefocusConv2D folds into Conv2D (grouped, dilated) or DepthwiseConv2D (multiplier 2), BN included."""
    from keras_lc.layers import RefocusConv2D

    inputs = keras.Input((32, 32, 3))
    x = RefocusConv2D(8, 3, use_bias=False, zero_init=False, name="ref_conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn_conv")(x)
    x = RefocusConv2D(8, 5, dilation_rate=2, groups=2, zero_init=False, name="ref_grouped")(x)
    x = RefocusConv2D(None, 3, strides=2, depthwise=True, depth_multiplier=2, zero_init=False, name="ref_dw")(x)
    x = keras.layers.BatchNormalization(name="bn_dw")(x)
    model = _randomize_batchnorm(keras.Model(inputs, keras.layers.ReLU()(x)))
    model.get_layer("ref_dw").bias.assign(np.linspace(-1, 1, 16).astype("float32"))
    folded = fold(model)
    kinds = [(type(l).__name__, l.name) for l in folded.layers]
    assert kinds == [("InputLayer", kinds[0][1]), ("Conv2D", "ref_conv"), ("Conv2D", "ref_grouped"),
                     ("DepthwiseConv2D", "ref_dw"), ("ReLU", kinds[-1][1])]
    assert folded.get_layer("ref_grouped").groups == 2 and folded.get_layer("ref_dw").depth_multiplier == 2
    x, _ = cifar_test_images
    expected = to_numpy(model(x, training=False))
    assert rel_error(folded(x, training=False), expected) <= 1e-5
    assert rel_error(fold(model, fold_batchnorm=False)(x, training=False), expected) <= 1e-5


def test_batchnorm_after_a_fused_activation_is_not_folded(cifar_test_images):
    """conv(activation=relu) -> BN: the BN stays (folding it into the kernel
    would apply it before the ReLU)."""
    x, _ = cifar_test_images
    inputs = keras.Input((32, 32, 3))
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    y = keras.layers.BatchNormalization(name="bn")(y)
    model = keras.Model(inputs, y)
    randomize_batchnorm(model, np.random.default_rng(0))
    folded = fold(model)
    assert [type(l).__name__ for l in folded.layers] == ["InputLayer", "Conv2D", "BatchNormalization"]
    assert rel_error(folded.predict_on_batch(x[:16]), model.predict_on_batch(x[:16])) <= 1e-5


def test_fold_keeps_every_bias_under_widely_spread_batchnorm_statistics(cifar_test_images):
    """Every conv, depthwise conv, LC and dense layer has a non-zero bias, and the BatchNorm
    variances span 1e-4 to 10 (log-uniform): a fold that drops or mis-scales a bias, or mixes
    up variance and standard deviation, is far off here."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=True, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn_conv")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=True, name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn_dw")(x)
    x = LCConv2D(8, 3, expansion=4, use_bias=True, seed=5, name="lc")(x)
    x = keras.layers.BatchNormalization(name="bn_lc")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="head")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_variance.assign((10.0 ** rng.uniform(-4, 1, n)).astype("float32"))
            layer.moving_mean.assign(rng.normal(0, 1, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.5, n).astype("float32"))
        elif getattr(layer, "use_bias", False):
            layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape).astype("float32"))
    folded = fold(model)
    assert sorted(type(l).__name__ for l in folded.layers if "bn" in l.name) == []
    x_real, _ = cifar_test_images
    expected = model.predict(x_real[:64], verbose=0)
    assert rel_error(folded.predict(x_real[:64], verbose=0), expected) <= 1e-5
    # the biases matter: without them the output moves by far more than the tolerance
    for layer in model.layers:
        if getattr(layer, "use_bias", False) and layer.name != "head":
            layer.bias.assign(np.zeros(layer.bias.shape, "float32"))
    assert rel_error(model.predict(x_real[:64], verbose=0), expected) > 1e-2


def test_a_batchnorm_named_by_its_positive_channel_axis_folds(cifar_test_images):
    """BatchNormalization(axis=3) on NHWC is the channels-last BN of axis=-1: folded the same;
    one over the rows (axis=1) is not a per-channel scale and stays."""
    x, _ = cifar_test_images
    inputs = keras.Input((32, 32, 3))
    y = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    y = keras.layers.BatchNormalization(axis=3, name="bn_channels")(y)
    y = keras.layers.Conv2D(8, 3, padding="same", name="conv2")(y)
    y = keras.layers.BatchNormalization(axis=1, name="bn_rows")(y)
    model = keras.Model(inputs, y)
    randomize_batchnorm(model, np.random.default_rng(0))
    folded = fold(model)
    assert [type(l).__name__ for l in folded.layers] == ["InputLayer", "Conv2D", "Conv2D", "BatchNormalization"]
    assert folded.layers[-1].name == "bn_rows"
    assert rel_error(folded.predict_on_batch(x[:16]), model.predict_on_batch(x[:16])) <= 1e-5


def test_an_input_that_enters_late_does_not_hide_the_layers_beside_it(cifar_test_images):
    """A second input added only at the end sits at a shallower depth of the graph than the
    first, beside the last conv and BN: the fold still finds and folds that pair."""
    x, _ = cifar_test_images
    image = keras.Input((32, 32, 3), name="image")
    late = keras.Input((32, 32, 8), name="late")
    y = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(image)
    y = keras.layers.BatchNormalization(name="bn1")(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(8, 3, padding="same", name="conv2")(y)
    y = keras.layers.BatchNormalization(name="bn2")(y)
    # `late` first: Keras lists it before bn2 among the nodes of that depth.
    model = keras.Model([image, late], keras.layers.Add(name="add")([late, y]))
    randomize_batchnorm(model, np.random.default_rng(1))
    extra = np.random.default_rng(2).normal(size=(16, 32, 32, 8)).astype("float32")
    folded = fold(model)
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers)
    expected = model.predict_on_batch([x[:16], extra])
    assert rel_error(folded.predict_on_batch([x[:16], extra]), expected) <= 1e-5



def test_a_shared_conv_or_a_thrice_used_tensor_keeps_its_batchnorm(cifar_test_images):
    """A BN folds into its conv only if the conv is called once and its output feeds the BN
    alone: a conv called twice (shared weights), a conv output read by three layers, and a BN
    layer called three times keep their BatchNorm, and the function is unchanged."""
    x, _ = cifar_test_images
    inputs = keras.Input((32, 32, 3))
    shared = keras.layers.Conv2D(8, 3, padding="same", name="shared")
    a = keras.layers.BatchNormalization(name="bn_shared")(shared(inputs))
    b = shared(keras.layers.AveragePooling2D(1)(inputs))  # the second call of `shared`
    conv = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    c = keras.layers.BatchNormalization(name="bn_three_readers")(conv)
    d, e = keras.layers.ReLU()(conv), keras.layers.Activation("tanh")(conv)
    thrice = keras.layers.BatchNormalization(name="bn_thrice")
    convs = [keras.layers.Conv2D(8, 3, padding="same", name=f"c{i}")(inputs) for i in range(3)]
    used = [thrice(t) for t in convs]
    outputs = keras.layers.Concatenate()([a, b, c, d, e, *used])
    model = keras.Model(inputs, outputs)
    randomize_batchnorm(model, np.random.default_rng(4))
    folded = fold(model)
    kept = sorted(l.name for l in folded.layers if isinstance(l, keras.layers.BatchNormalization))
    assert kept == ["bn_shared", "bn_three_readers", "bn_thrice"]
    assert rel_error(folded.predict_on_batch(x[:8]), model.predict_on_batch(x[:8])) <= 1e-5


def test_a_fold_left_naming_keras_lc_is_refused_listing_three_references(monkeypatch):
    """The last check of `fold`: should any layer's config keep a keras_lc object (here every
    config is kept as it is), the folded model is refused, naming the first three."""
    import keras_lc.folding as folding

    found = []

    def spy(config):
        found[:] = original(config)
        return list(found)

    original = folding.keras_lc_references
    monkeypatch.setattr(folding, "_portable_config", lambda layer, config: config)
    monkeypatch.setattr(folding, "keras_lc_references", spy)

    @keras.saving.register_keras_serializable(package="keras_lc", name="FoldCheckPenalty")
    class Penalty(keras.regularizers.Regularizer):
        def __call__(self, x):
            return 0.0

        def get_config(self):
            return {}

    inputs = keras.Input((5,))
    x = inputs
    for i in range(4):
        x = keras.layers.Dense(5, kernel_regularizer=Penalty(), name=f"dense{i}")(x)
    with pytest.raises(ValueError) as error:
        fold(keras.Model(inputs, x, name="leaky"))
    assert len(found) > 3
    assert str(error.value) == ("The folded model of 'leaky' still names keras_lc objects, so it would not "
                                f"load without keras_lc: {', '.join(found[:3])}")
