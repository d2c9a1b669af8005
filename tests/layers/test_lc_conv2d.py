"""LCConv2D against NumPy references; runs on the tensorflow and jax backends."""

import itertools
import os

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D
from keras_lc.initializers import torch_uniform
from tests.harness import check_foldable_layer, check_model_round_trip
from tests.reference import gradients, numpy_conv2d, rel_error, to_numpy

IMPLEMENTATIONS = ("two_stage", "composed", "basis")


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _reference(layer, x):
    """The paper's block in float64 NumPy: conv to m channels, then the 1x1 conv."""
    k_h, k_w = layer.kernel_size
    spatial = torch_uniform((k_h, k_w, x.shape[-1], layer.spatial_filters), layer.seed)
    hidden = numpy_conv2d(x, spatial, layer.strides, layer.padding, layer.dilation_rate)
    if layer.resolved_implementation == "basis":
        combination = layer.to_composed().combination
    else:
        combination = layer.combination
    return hidden @ to_numpy(combination, dtype=np.float64)


# kernel 1/3/5/7/9 x (strides, dilation) x padding x expansion x implementation
CASES = [
    (k, s, d, p, e, impl)
    for k, (s, d), p, e, impl in itertools.product(
        (1, 3, 5, 7, 9),
        ((1, 1), (2, 1), (1, 2)),
        ("same", "valid"),
        (1, 2, 8, 128),
        IMPLEMENTATIONS,
    )
]


@pytest.mark.parametrize("kernel,strides,dilation,padding,expansion,implementation", CASES)
def test_matches_numpy_reference(kernel, strides, dilation, padding, expansion, implementation):
    x = _x((2, 19, 18, 2), seed=kernel)
    layer = LCConv2D(
        3, kernel, strides=strides, dilation_rate=dilation, padding=padding,
        expansion=expansion, implementation=implementation, seed=kernel * 100 + expansion,
    )
    # The fold on every strides/dilation/padding for two kernel sizes (composed, E=2; each form
    # is folded in the tests below): a new Conv2D kernel shape costs a compilation on jax.
    fold = (implementation, expansion) == ("composed", 2) and kernel in (3, 7)
    check_foldable_layer(layer, x, _reference, fold=fold, round_trips=False)


def test_implementations_start_from_the_same_function():
    x = _x((2, 12, 12, 5))
    outputs = [to_numpy(LCConv2D(6, 3, expansion=8, implementation=i, seed=7)(x)) for i in IMPLEMENTATIONS]
    assert rel_error(outputs[1], outputs[0]) < 1e-5
    assert rel_error(outputs[2], outputs[0]) < 1e-5


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("expansion", [1, 16, 128])
def test_fold_equivalence_random_inputs(implementation, expansion):
    x = _x((4, 16, 16, 8))
    layer = LCConv2D(8, 3, expansion=expansion, use_bias=True, implementation=implementation, seed=1)
    y = check_foldable_layer(layer, x).outputs  # fold, config, .keras and .weights.h5
    assert layer.folded_layer_class is keras.layers.Conv2D  # to_conv2d() built one (checked above)
    kernel, bias = layer.fold()
    assert kernel.shape == (3, 3, 8, 8) and kernel.dtype == np.float32 and bias.shape == (8,)
    assert rel_error(numpy_conv2d(x, kernel) + bias, y) <= 1e-5


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_fold_equivalence_real_cifar10(cifar_test_images, implementation):
    x, _ = cifar_test_images
    layer = LCConv2D(16, 3, expansion=128, strides=2, implementation=implementation, seed=3)
    check_foldable_layer(layer, x, perturb=False, round_trips=False)


def test_fold_with_intermediate_batchnorm(cifar_test_images):
    x, _ = cifar_test_images
    layer = LCConv2D(8, 3, expansion=4, intermediate="bn", use_bias=True, seed=2)
    layer(x, training=True)
    bn = layer.intermediate_bn
    rng = np.random.default_rng(0)  # statistics and affine far from the identity
    bn.moving_mean.assign(rng.normal(0, 0.3, 32).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.2, 3.0, 32).astype("float32"))
    bn.gamma.assign(np.linspace(0.5, 1.5, 32).astype("float32"))
    bn.beta.assign(np.linspace(-0.2, 0.2, 32).astype("float32"))
    check_foldable_layer(layer, x, perturb=False, round_trips=False)


@pytest.mark.parametrize("intermediate", ["relu", "bn_relu"])
def test_fold_refuses_nonlinear_intermediate(intermediate):
    layer = LCConv2D(4, 3, expansion=2, intermediate=intermediate, name="blocky")
    layer(_x((1, 8, 8, 3)))
    assert layer.resolved_implementation == "two_stage"
    with pytest.raises(ValueError, match=r"'blocky'.*ReLU.*not linear"):
        layer.fold()


@pytest.mark.parametrize("frozen_spatial", [True, False])
def test_gradients_equal_between_two_stage_and_composed(frozen_spatial):
    x = _x((3, 10, 10, 4))
    upstream = _x((3, 10, 10, 5), seed=9)
    grads = {}
    for impl in ("two_stage", "composed"):
        layer = LCConv2D(5, 3, expansion=8, use_bias=True, frozen_spatial=frozen_spatial,
                         implementation=impl, seed=4)
        layer.build(x.shape)
        grads[impl] = gradients(layer, x, upstream)
    expected = {"combination", "bias"} | (set() if frozen_spatial else {"spatial_kernel"})
    assert set(grads["two_stage"]) == set(grads["composed"]) == expected
    for name in expected:
        assert np.abs(grads["two_stage"][name]).max() > 0
        assert rel_error(grads["composed"][name], grads["two_stage"][name]) <= 1e-4, name


def test_basis_gradient_is_projected_combination_gradient():
    """dL/dA = V^T dL/dC: the identity that makes basis training exact under SGD."""
    x = _x((3, 10, 10, 4))
    upstream = _x((3, 10, 10, 5), seed=9)
    composed = LCConv2D(5, 3, expansion=8, implementation="composed", seed=4)
    basis = LCConv2D(5, 3, expansion=8, implementation="basis", seed=4)
    composed.build(x.shape)
    basis.build(x.shape)
    _, v = basis._frozen_svd(4)
    g_c = gradients(composed, x, upstream)["combination"]
    g_a = gradients(basis, x, upstream)["basis_coefficients"]
    assert rel_error(g_a, v.T @ g_c) <= 1e-4


def _tiny_model(layer_kwargs):
    inputs = keras.Input((32, 32, 3))
    x = LCConv2D(8, 3, seed=11, name="lc", **layer_kwargs)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_frozen_means_frozen(cifar_train_images, implementation):
    x, y = cifar_train_images
    model = _tiny_model({"expansion": 4, "implementation": implementation})
    lc = model.get_layer("lc")
    frozen = lc.basis if implementation == "basis" else lc.spatial_kernel
    learned = lc.basis_coefficients if implementation == "basis" else lc.combination
    frozen_before, learned_before = np.array(frozen), np.array(learned)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)
    assert np.array_equal(to_numpy(frozen), frozen_before)
    assert np.abs(to_numpy(learned) - learned_before).max() > 1e-4
    if implementation != "basis":
        spatial = torch_uniform(lc.spatial_kernel.shape, 11).astype("float32")
        assert np.array_equal(to_numpy(lc.spatial_kernel), spatial)
    # trainable: the combination (or A), BN gamma/beta, Dense kernel/bias
    assert len(model.trainable_weights) == 5
    assert frozen.path not in {w.path for w in model.trainable_weights}
    expected = learned.shape[0] * learned.shape[1] + 2 * 8 + 8 * 10 + 10
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected


def test_learnable_spatial_kernel_moves(cifar_train_images):
    x, y = cifar_train_images
    model = _tiny_model({"expansion": 2, "frozen_spatial": False})
    before = np.array(model.get_layer("lc").spatial_kernel)
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:128], y[:128], batch_size=64, verbose=0)
    assert np.abs(to_numpy(model.get_layer("lc").spatial_kernel) - before).max() > 1e-5
    assert len(model.trainable_weights) == 6


def test_seed_defines_the_kernel():
    a = LCConv2D(4, 3, expansion=2, seed=5)
    b = LCConv2D(4, 3, expansion=2, seed=5)
    c = LCConv2D(4, 3, expansion=2, seed=6)
    for layer in (a, b, c):
        layer.build((None, 8, 8, 3))
    assert np.array_equal(to_numpy(a.spatial_kernel), to_numpy(b.spatial_kernel))
    assert np.array_equal(to_numpy(a.combination), to_numpy(b.combination))
    assert not np.allclose(to_numpy(a.spatial_kernel), to_numpy(c.spatial_kernel))
    bound = 1 / np.sqrt(3 * 3 * 3)
    assert np.abs(to_numpy(a.spatial_kernel)).max() <= bound
    assert np.abs(to_numpy(a.combination)).max() <= 1 / np.sqrt(8)


def test_seed_none_is_drawn_and_stored():
    keras.utils.set_random_seed(123)
    first = LCConv2D(4, 3).seed
    keras.utils.set_random_seed(123)
    assert LCConv2D(4, 3).seed == first
    assert LCConv2D.from_config(LCConv2D(4, 3, seed=None).get_config()).seed is not None


@pytest.mark.parametrize(
    "shape,expected",
    [((None, 32, 32, 16), "composed"), ((None, 2, 2, 512), "two_stage"), ((None, None, None, 64), "composed")],
)
def test_auto_picks_the_cheaper_implementation(shape, expected):
    layer = LCConv2D(16, 3, expansion=8, seed=0)
    layer.build(shape)
    assert layer.resolved_implementation == expected
    bn = LCConv2D(16, 3, expansion=8, intermediate="bn", seed=0)
    bn.build(shape)
    assert bn.resolved_implementation == "two_stage"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"filters": 0}, r"filters.*Received: filters=0"),
        ({"filters": 2.5}, r"filters.*Received: filters=2.5"),
        ({"expansion": 0}, r"expansion.*positive integer.*Received: expansion=0"),
        ({"expansion": 1.5}, r"Received: expansion=1.5"),
        ({"expansion": True}, r"Received: expansion=True"),
        ({"padding": "causal"}, r"padding.*\('same', 'valid'\).*Received: padding='causal'"),
        ({"implementation": "fast"}, r"implementation.*two_stage.*Received: implementation='fast'"),
        ({"intermediate": "gelu"}, r"intermediate.*bn_relu.*Received: intermediate='gelu'"),
        ({"intermediate": "bn", "implementation": "composed"}, r"two_stage.*Received: implementation='composed'"),
        ({"implementation": "basis", "frozen_spatial": False}, r"frozen.*Received: frozen_spatial=False"),
        ({"kernel_size": (3, 3, 3)}, r"kernel_size.*Received: kernel_size=\(3, 3, 3\)"),
        ({"strides": 0}, r"strides.*Received: strides=0"),
        ({"strides": 2, "dilation_rate": 2}, r"not compatible.*Received: strides=2, dilation_rate=2"),
        ({"seed": -1}, r"seed.*Received: seed=-1"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = {"filters": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        LCConv2D(**arguments)


def test_kernel_larger_than_valid_input():
    layer = LCConv2D(4, 7, padding="valid")
    with pytest.raises(ValueError, match=r"kernel extent 7 > input size 5.*padding='same'"):
        layer(_x((1, 5, 5, 3)))
    dilated = LCConv2D(4, 3, padding="valid", dilation_rate=4)
    with pytest.raises(ValueError, match=r"kernel extent 9 > input size 8"):
        dilated(_x((1, 8, 8, 3)))


def test_unknown_channels():
    with pytest.raises(ValueError, match="channel dimension"):
        LCConv2D(4, 3).build((None, 8, 8, None))


# ---------------------------------------------------------------- serialization
def test_get_config_round_trip():
    layer = LCConv2D(6, (3, 5), strides=2, padding="valid", expansion=3, frozen_spatial=False,
                     use_bias=True, implementation="two_stage", intermediate="bn", seed=9, name="x")
    config = layer.get_config()
    clone = LCConv2D.from_config(config)
    assert clone.get_config() == config
    assert config["kernel_size"] == (3, 5) and config["seed"] == 9
    # and built: fold (BN folded), config, .keras and .weights.h5 round trips
    check_foldable_layer(layer, _x((2, 9, 11, 4)))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_keras_file_round_trip_safe_mode(cifar_test_images, implementation):
    x, _ = cifar_test_images
    model = _tiny_model({"expansion": 16, "implementation": implementation, "use_bias": True})
    lc = model.get_layer("lc")
    learned = lc.basis_coefficients if implementation == "basis" else lc.combination
    learned.assign(to_numpy(learned) * 1.7)  # not the initial value
    check_model_round_trip(model, x[:16])  # the same classes (LCConv2D), weights, outputs


def test_keras_file_round_trip_with_intermediate_bn(cifar_test_images):
    x, _ = cifar_test_images
    model = _tiny_model({"expansion": 4, "intermediate": "bn_relu"})
    model.get_layer("lc")(x[:32], training=True)
    assert np.abs(to_numpy(model.get_layer("lc").intermediate_bn.moving_mean)).max() > 0
    check_model_round_trip(model, x[:8])  # every weight, the moving statistics included


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_weights_h5_round_trip(implementation):
    x = _x((2, 32, 32, 3))
    model = _tiny_model({"expansion": 8, "implementation": implementation})
    for w in model.trainable_weights:
        w.assign(to_numpy(w) + 0.01)
    check_model_round_trip(model, x)  # .weights.h5 (and .keras): bit-identical weights, outputs


def _weights_file_size(tmp_path, name, **layer_kwargs):
    model = _tiny_model(layer_kwargs)
    model.save_weights(tmp_path / f"{name}.weights.h5")
    return os.path.getsize(tmp_path / f"{name}.weights.h5")


def test_basis_weights_file_does_not_grow_with_expansion(tmp_path):
    basis = {e: _weights_file_size(tmp_path, f"b{e}", expansion=e, implementation="basis") for e in (32, 256)}
    composed = {e: _weights_file_size(tmp_path, f"c{e}", expansion=e, implementation="composed") for e in (32, 256)}
    # r = min(27, 8E) = 27 coefficients per filter for E >= 4: the same file.
    assert basis[256] == basis[32]
    # the composed form stores C, (8E x 8): it grows with E.
    assert composed[256] - composed[32] >= 4 * (256 - 32) * 8 * 8 * 0.9


def test_frozen_kernel_is_stored_as_its_seed(tmp_path):
    compact = _weights_file_size(tmp_path, "compact", expansion=128, implementation="composed")
    full = _weights_file_size(tmp_path, "full", expansion=128, implementation="composed", frozen_spatial=False)
    kernel_bytes = 3 * 3 * 3 * 8 * 128 * 4
    assert full - compact >= 0.95 * kernel_bytes
    layer = LCConv2D(4, 3, expansion=8, seed=3)
    layer.build((None, 8, 8, 3))
    store = {}
    layer.save_own_variables(store)
    assert set(store) == {"combination", "seed"}


def test_compact_weights_give_bit_identical_training(tmp_path, cifar_train_images):
    x, y = cifar_train_images

    def compiled(model):
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    model = compiled(_tiny_model({"expansion": 32, "implementation": "composed"}))
    model.fit(x[:128], y[:128], batch_size=64, verbose=0, shuffle=False)
    model.save(tmp_path / "mid.keras")
    loaded = keras.saving.load_model(tmp_path / "mid.keras", safe_mode=True)
    np.testing.assert_array_equal(to_numpy(loaded(x[:32])), to_numpy(model(x[:32])))
    for m in (model, loaded):
        m.fit(x[128:256], y[128:256], batch_size=64, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=a.path)


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, after the refused load
def test_assigned_frozen_kernel_is_stored_in_full(tmp_path):
    x = _x((2, 32, 32, 3))
    model = _tiny_model({"expansion": 4, "implementation": "composed"})
    lc = model.get_layer("lc")
    lc.spatial_kernel.assign(to_numpy(lc.spatial_kernel) * -1)
    model.save_weights(tmp_path / "w.weights.h5")
    other = _tiny_model({"expansion": 4, "implementation": "composed"})
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(to_numpy(other(x)), to_numpy(model(x)))
    basis = _tiny_model({"expansion": 4, "implementation": "basis"})
    with pytest.raises(ValueError, match="differs from its seed's frozen kernel"):
        basis.load_weights(tmp_path / "w.weights.h5")


def test_compact_load_refuses_other_seed():
    a = LCConv2D(4, 3, expansion=8, seed=1)
    b = LCConv2D(4, 3, expansion=8, seed=2)
    for layer in (a, b):
        layer.build((None, 8, 8, 3))
    store = {}
    a.save_own_variables(store)
    with pytest.raises(ValueError, match=r"seed=2 but the weights were saved from seed=1"):
        b.load_own_variables(store)


def test_basis_and_composed_load_each_others_weights(tmp_path):
    x = _x((2, 32, 32, 3))
    composed = _tiny_model({"expansion": 16, "implementation": "composed"})
    lc = composed.get_layer("lc")
    lc.combination.assign(to_numpy(lc.combination) * 2 + 0.01)
    composed.save_weights(tmp_path / "c.weights.h5")
    basis = _tiny_model({"expansion": 16, "implementation": "basis"})
    basis.load_weights(tmp_path / "c.weights.h5")
    assert rel_error(basis(x), composed(x)) <= 1e-5
    basis.save_weights(tmp_path / "b.weights.h5")
    back = _tiny_model({"expansion": 16, "implementation": "two_stage"})
    back.load_weights(tmp_path / "b.weights.h5")
    assert rel_error(back(x), composed(x)) <= 1e-5


def test_basis_to_composed_is_equivalent_minimum_norm():
    x = _x((2, 12, 12, 4))
    basis = LCConv2D(6, 3, expansion=16, implementation="basis", use_bias=True, seed=8)
    y = basis(x)
    basis.basis_coefficients.assign(to_numpy(basis.basis_coefficients) * 1.3)
    y = basis(x)
    composed = basis.to_composed()
    assert composed.resolved_implementation == "composed"
    assert rel_error(composed(x), y) <= 1e-5
    # minimum norm: C lies in the row space of the spatial matrix (C = V A)
    _, v = basis._frozen_svd(4)
    c = to_numpy(composed.combination, dtype=np.float64)
    assert rel_error(v @ (v.T @ c), c) <= 1e-6
    with pytest.raises(ValueError, match="converts a basis-form layer"):
        composed.to_composed()


def test_basis_load_refuses_other_seed(tmp_path):
    a = LCConv2D(4, 3, expansion=8, implementation="basis", seed=1)
    b = LCConv2D(4, 3, expansion=8, implementation="basis", seed=2)
    for layer in (a, b):
        layer.build((None, 8, 8, 3))
    store = {}
    a.save_own_variables(store)
    assert set(store) == {"basis_coefficients", "seed"}
    with pytest.raises(ValueError, match=r"seed=2 but the weights were saved from seed=1"):
        b.load_own_variables(store)


def test_deprecated_spatial_trainable_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"use frozen_spatial=False"):
        layer = LCConv2D(4, 3, expansion=2, spatial_trainable=True, seed=0)
    assert layer.frozen_spatial is False and "spatial_trainable" not in layer.get_config()
    with pytest.warns(DeprecationWarning, match="not layer.frozen_spatial"):
        assert layer.spatial_trainable is True
    with pytest.raises(ValueError, match="contradict.*Received: frozen_spatial=False, spatial_trainable=False"):
        LCConv2D(4, 3, frozen_spatial=False, spatial_trainable=False)


def test_configs_saved_by_0_1_0_load_without_a_warning(recwarn):
    old = LCConv2D(4, 3, expansion=2, frozen_spatial=False, seed=3).get_config()
    old["spatial_trainable"] = not old.pop("frozen_spatial")
    layer = LCConv2D.from_config(old)
    assert layer.frozen_spatial is False and layer.get_config()["frozen_spatial"] is False
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
