"""RefocusConv2D against a NumPy reference: the refocusing map, the convolution, fold, saving."""

import keras
import numpy as np
import pytest

from keras_lc.layers import RefocusConv2D
from tests.harness import check_foldable_layer, check_model_round_trip
from tests.reference import numpy_conv2d, rel_error, to_numpy


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _reference_refocus(basis, maps, dense):
    """W_b + map(W_b), written tap by tap: kernel n at (y, x) gathers the kernels' values
    at (y + i - r//2, x + j - r//2) (zero outside), weighted by the map (dense: from every
    kernel m with maps[i, j, m, n]; grouped: from itself with maps[i, j, n])."""
    basis = to_numpy(basis, np.float64)
    k_h, k_w = basis.shape[:2]
    flat = basis.reshape(k_h, k_w, -1)
    n_kernels = flat.shape[-1]
    r_h, r_w = maps.shape[:2]
    maps = to_numpy(maps, np.float64)
    maps = maps.reshape((r_h, r_w, n_kernels, n_kernels) if dense else (r_h, r_w, n_kernels))
    out = flat.copy()
    for y in range(k_h):
        for x in range(k_w):
            for i in range(r_h):
                for j in range(r_w):
                    yy, xx = y + i - r_h // 2, x + j - r_w // 2
                    if 0 <= yy < k_h and 0 <= xx < k_w:
                        out[y, x] += flat[yy, xx] @ maps[i, j] if dense else flat[yy, xx] * maps[i, j]
    return out.reshape(basis.shape)


def _full_kernel(kernel, groups=1, depthwise=False):
    """A grouped (kh, kw, cin/g, cout) or depthwise (kh, kw, C, m) kernel as a dense
    (kh, kw, cin, cout) one with zeros off the blocks, for numpy_conv2d."""
    k_h, k_w, a, b = kernel.shape
    if depthwise:
        full = np.zeros((k_h, k_w, a, a * b))
        for c in range(a):
            full[:, :, c, c * b : (c + 1) * b] = kernel[:, :, c, :]
        return full
    full = np.zeros((k_h, k_w, a * groups, b))
    per_group = b // groups
    for g in range(groups):
        outputs = slice(g * per_group, (g + 1) * per_group)
        full[:, :, g * a : (g + 1) * a, outputs] = kernel[:, :, :, outputs]
    return full


# Built from zeros, then given random values with NumPy: each random initializer of a new
# shape costs a compilation on the jax backend.
ZEROS = dict(basis_initializer="zeros", zero_init=True)


def _randomize(layer, seed=1, scale=0.3):
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(0, scale, variable.shape).astype("float32"))


CASES = [  # (constructor arguments, input shape)
    (dict(filters=6, kernel_size=3), (2, 9, 9, 4)),
    (dict(filters=4, kernel_size=5, strides=2, padding="valid"), (2, 11, 11, 3)),
    (dict(filters=6, kernel_size=3, dilation_rate=2, groups=2), (2, 10, 10, 4)),
    (dict(filters=3, kernel_size=(5, 3), refocus_kernel_size=(3, 1)), (1, 8, 7, 2)),
    (dict(filters=2, kernel_size=5, refocus_kernel_size=5, strides=(2, 1)), (1, 9, 9, 3)),
    (dict(filters=None, kernel_size=3, depthwise=True), (2, 9, 9, 5)),
    (dict(filters=None, kernel_size=3, depthwise=True, depth_multiplier=2, strides=2), (2, 9, 9, 3)),
    (dict(filters=None, kernel_size=5, depthwise=True, dilation_rate=2, padding="valid"), (1, 12, 12, 4)),
    (dict(filters=None, kernel_size=1, depthwise=True, refocus_kernel_size=1), (1, 5, 5, 6)),
]


@pytest.mark.parametrize("arguments,shape", CASES)
def test_matches_numpy_reference(arguments, shape):
    x = _x(shape)
    layer = RefocusConv2D(**arguments, **ZEROS)
    layer.build(shape)
    _randomize(layer)
    depthwise = layer.depthwise
    basis = to_numpy(layer.basis_kernel, np.float64)
    maps = to_numpy(layer.refocus_kernel, np.float64)
    kernel = _reference_refocus(basis, maps, dense=depthwise)
    assert rel_error(kernel, basis) > 0.1  # the map really changes the kernel

    def reference(layer, x):
        full = _full_kernel(kernel, layer.groups, depthwise)
        return numpy_conv2d(x, full, layer.strides, layer.padding, layer.dilation_rate) + to_numpy(layer.bias)

    # The reference, the fold into the stock layer (Conv2D or DepthwiseConv2D) within 1e-5;
    # the round trips (config, .keras, .weights.h5) for the first ordinary and depthwise cases.
    check = check_foldable_layer(
        layer, x, reference, perturb=False, round_trips=(arguments, shape) in (CASES[0], CASES[5])
    )
    assert rel_error(layer.transformed_kernel(), kernel) <= 1e-6
    folded, bias = layer.fold()  # float64 fold, returned in float32
    assert folded.dtype == np.float32 and rel_error(folded, kernel) <= 1e-6
    assert layer.folded_layer_class is (keras.layers.DepthwiseConv2D if depthwise else keras.layers.Conv2D)
    assert check.fold_error <= 1e-5


def test_weight_shapes_and_trainability():
    conv = RefocusConv2D(8, 3, groups=2, name="conv", **ZEROS)
    conv.build((None, 16, 16, 4))
    assert conv.basis_kernel.shape == conv.refocus_kernel.shape[:2] + (2, 8) == (3, 3, 2, 8)
    assert [w.name for w in conv.trainable_weights] == ["refocus_kernel", "bias"]
    assert [w.name for w in conv.non_trainable_weights] == ["basis_kernel"]
    dw = RefocusConv2D(None, 3, depthwise=True, depth_multiplier=2, use_bias=False, **ZEROS)
    dw.build((None, 16, 16, 5))
    assert dw.basis_kernel.shape == (3, 3, 5, 2) and dw.refocus_kernel.shape == (3, 3, 10, 10)
    assert [w.name for w in dw.trainable_weights] == ["refocus_kernel"]
    # zero_init=False: PyTorch's default U[-a, a], a = 1/sqrt(fan_in) of the map's conv.
    grouped = RefocusConv2D(32, 3, basis_initializer="zeros", zero_init=False)
    dense = RefocusConv2D(None, 3, depthwise=True, basis_initializer="zeros", zero_init=False)
    for layer, fan_in in ((grouped, 9), (dense, 9 * 32)):  # both maps (3, 3, 32, 32)
        layer.build((None, 8, 8, 32))
        values = np.abs(to_numpy(layer.refocus_kernel))
        assert 0.9 / np.sqrt(fan_in) < values.max() <= 1 / np.sqrt(fan_in)


@pytest.mark.parametrize("depthwise", [False, True])
def test_zero_init_is_exactly_the_basis_convolution(depthwise):
    x = _x((2, 12, 12, 4))
    if depthwise:
        layer = RefocusConv2D(None, 3, strides=2, depthwise=True, depth_multiplier=2, **ZEROS)
        stock = keras.layers.DepthwiseConv2D(
            3, strides=2, padding="same", depth_multiplier=2, depthwise_initializer="zeros"
        )
    else:
        layer = RefocusConv2D(6, 3, strides=2, **ZEROS)
        stock = keras.layers.Conv2D(6, 3, strides=2, padding="same", kernel_initializer="zeros")
    layer.build(x.shape)
    stock.build(x.shape)
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=layer.basis_kernel.shape).astype("float32")
    bias = rng.normal(size=layer.bias.shape).astype("float32")
    layer.basis_kernel.assign(kernel)
    layer.bias.assign(bias)
    stock.set_weights([kernel, bias])
    assert not np.any(to_numpy(layer.refocus_kernel))
    np.testing.assert_array_equal(to_numpy(layer.transformed_kernel()), kernel)
    np.testing.assert_array_equal(to_numpy(layer(x)), to_numpy(stock(x)))


def test_training_moves_only_the_map(cifar_train_images):
    images, labels = cifar_train_images
    inputs = keras.Input((32, 32, 3))
    x = RefocusConv2D(8, 3, strides=2, name="conv", **ZEROS)(inputs)
    x = keras.layers.ReLU()(x)
    x = RefocusConv2D(None, 3, depthwise=True, name="dw", **ZEROS)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="head", kernel_initializer="zeros")(x))
    for i, variable in enumerate(  # a "trained" basis and head; the maps stay zero
        (model.get_layer("conv").basis_kernel, model.get_layer("dw").basis_kernel, model.get_layer("head").kernel)
    ):
        variable.assign(np.random.default_rng(i).normal(0, 0.3, variable.shape))
    before = {v.path: np.array(v) for v in model.weights}
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images[:64], labels[:64], batch_size=16, epochs=1, verbose=0)
    for name in ("conv", "dw"):
        layer = model.get_layer(name)
        np.testing.assert_array_equal(layer.basis_kernel, before[layer.basis_kernel.path])  # bit-identical
        assert np.abs(to_numpy(layer.refocus_kernel)).max() > 1e-4  # started at zero, learned
        assert not np.array_equal(layer.bias, before[layer.bias.path])
        kernel, bias = layer.fold()
        assert rel_error(kernel, layer.transformed_kernel()) <= 1e-6


def test_save_and_load():
    x = _x((2, 10, 10, 4))
    inputs = keras.Input((10, 10, 4))
    y = RefocusConv2D(6, 3, groups=2, dilation_rate=2, refocus_kernel_size=1, name="conv", **ZEROS)(inputs)
    y = RefocusConv2D(None, 3, depthwise=True, depth_multiplier=2, use_bias=False, name="dw", **ZEROS)(y)
    model = keras.Model(inputs, y)
    for i, name in enumerate(("conv", "dw")):
        _randomize(model.get_layer(name), seed=i)
    # .keras (safe_mode: RefocusConv2D layers, basis kernels still frozen) and .weights.h5
    check_model_round_trip(model, x)
    config = model.get_layer("conv").get_config()
    assert RefocusConv2D.from_config(config).get_config() == config
    assert config["refocus_kernel_size"] == (1, 1) and config["groups"] == 2 and config["zero_init"] is True
    assert config["basis_initializer"]["class_name"] == "Zeros"


@pytest.mark.parametrize(
    "arguments,message",
    [
        (dict(filters=4, kernel_size=3, refocus_kernel_size=2), r"must be odd .*Received: refocus_kernel_size=2"),
        (dict(filters=4, kernel_size=3, refocus_kernel_size=0), r"positive integer.*Received: refocus_kernel_size=0"),
        (dict(filters=4, kernel_size=3, refocus_kernel_size=5),
         r"at most the kernel size \(3, 3\).*Received: refocus_kernel_size=5"),
        (dict(filters=4, kernel_size=1), r"at most the kernel size \(1, 1\).*Received: refocus_kernel_size=3"),
        (dict(filters=4, kernel_size=0), r"`kernel_size` must be a positive integer.*Received: kernel_size=0"),
        (dict(filters=4, kernel_size=(3, 3, 3)), r"Received: kernel_size=\(3, 3, 3\)"),
        (dict(filters=4, kernel_size=3, zero_init="yes"), r"`zero_init` must be a bool. Received: zero_init='yes'"),
        (dict(filters=4, kernel_size=3, use_bias=1), r"`use_bias` must be a bool. Received: use_bias=1"),
        (dict(filters=0, kernel_size=3), r"`filters` must be a positive integer. Received: filters=0"),
        (dict(filters=None, kernel_size=3), r"`filters` must be a positive integer. Received: filters=None"),
        (dict(filters=8, kernel_size=3, depthwise=True), r"pass filters=None. Received: filters=8"),
        (dict(filters=6, kernel_size=3, groups=4), r"divisible by `groups`. Received: filters=6, groups=4"),
        (dict(filters=None, kernel_size=3, depthwise=True, groups=2), r"groups=1. Received: groups=2"),
        (dict(filters=4, kernel_size=3, depth_multiplier=2), r"depthwise=True only. Received: depth_multiplier=2"),
        (dict(filters=4, kernel_size=3, padding="causal"), r"`padding` must be one of .*Received: padding='causal'"),
        (dict(filters=4, kernel_size=3, strides=2, dilation_rate=2), r"Received: strides=2, dilation_rate=2"),
        (dict(filters=4, kernel_size=3, depthwise="no"), r"`depthwise` must be a bool. Received: depthwise='no'"),
    ],
)
def test_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        RefocusConv2D(**arguments)


def test_bad_input_and_unbuilt_fold():
    layer = RefocusConv2D(4, 3, groups=2, name="grouped")
    with pytest.raises(ValueError, match=r"'grouped'.*divisible by groups=2. Received: input_shape=\(None, 8, 8, 3\)"):
        layer.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match="not built yet"):
        RefocusConv2D(4, 3, name="unbuilt").fold()
