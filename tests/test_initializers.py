"""The seeded PyTorch-default initializer: bounds, distribution, determinism across backends."""

import hashlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_lc.initializers import TorchUniform, fan_in_of, torch_uniform

KERNEL_SCRIPT = (
    "import hashlib, keras, numpy as np\n"
    "from keras_lc import LCConv2D\n"
    "layer = LCConv2D(32, 3, expansion=4, seed=1234)\n"
    "layer.build((None, 16, 16, 8))\n"
    "print(keras.backend.backend(), hashlib.sha256(np.asarray(layer.spatial_kernel).tobytes()).hexdigest(),"
    " hashlib.sha256(np.asarray(layer.combination).tobytes()).hexdigest())\n"
)


def test_pytorch_default_bound_and_distribution():
    shape = (3, 3, 16, 4096)
    values = torch_uniform(shape, seed=0)
    bound = 1 / np.sqrt(3 * 3 * 16)
    assert values.shape == shape and values.dtype == np.float64
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.999 * bound  # U[-a, a] reaches its bound
    # U[-a, a]: mean 0, variance a^2/3; 590k draws give standard errors ~1e-3 relative
    assert abs(values.mean()) < 3 * bound / np.sqrt(3 * values.size)
    assert values.var() == pytest.approx(bound**2 / 3, rel=0.01)
    assert fan_in_of(shape) == 144 and fan_in_of((64, 10)) == 64


def test_seed_stream_and_layout():
    a = torch_uniform((3, 3, 4, 8), seed=7)
    np.testing.assert_array_equal(a, torch_uniform((3, 3, 4, 8), seed=7))
    assert not np.allclose(a, torch_uniform((3, 3, 4, 8), seed=8))
    assert not np.allclose(a, torch_uniform((3, 3, 4, 8), seed=7, stream=1))
    # drawn in PyTorch's (c_out, c_in, kh, kw) order: the first filters are a prefix
    np.testing.assert_array_equal(torch_uniform((3, 3, 4, 16), seed=7)[..., :8] * np.sqrt(4 * 9), a * np.sqrt(4 * 9))
    bias = torch_uniform((8,), seed=7, stream=2, fan_in=64)
    assert bias.shape == (8,) and np.abs(bias).max() <= 1 / 8


def test_keras_initializer_round_trip():
    init = TorchUniform(seed=3, stream=1, fan_in=12)
    clone = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert isinstance(clone, TorchUniform) and clone.get_config() == init.get_config()
    np.testing.assert_array_equal(np.asarray(clone((4, 5))), np.asarray(init((4, 5))))
    assert np.asarray(init((4, 5), dtype="float32")).dtype == np.float32


@pytest.mark.parametrize(
    "kwargs,match",
    [({"seed": -1}, r"Received: seed=-1"), ({"seed": 1.5}, r"Received: seed=1.5"),
     ({"seed": 0, "stream": -2}, r"Received: stream=-2"), ({"seed": 0, "fan_in": 0}, r"Received: fan_in=0")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TorchUniform(**kwargs)
    with pytest.raises(ValueError, match="fan_in"):
        torch_uniform((5,), seed=0)


def test_same_seed_same_kernel_on_tensorflow_and_jax():
    digests = {}
    for backend in ("tensorflow", "jax"):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run([sys.executable, "-c", KERNEL_SCRIPT], env=env, capture_output=True,
                              text=True, check=True)
        name, spatial, combination = done.stdout.strip().splitlines()[-1].split()
        assert name == backend
        digests[backend] = (spatial, combination)
    expected = hashlib.sha256(torch_uniform((3, 3, 8, 128), 1234).astype("float32").tobytes()).hexdigest()
    assert digests["tensorflow"] == digests["jax"]
    assert digests["tensorflow"][0] == expected


def test_golden_values_pin_the_seed_scheme():
    """Literal values: a change of the seed derivation or of the initializer stream fails here,
    not only in the published files (whose stored seeds a re-export would silently follow)."""
    from keras_lc.initializers import layer_seed

    assert [layer_seed(0, "stem_conv"), layer_seed(0, "stage1_block1_conv1"),
            layer_seed(0, "stage3_block3_conv2"), layer_seed(12345, "predictions")] == [
        658547548, 525418163, 2103518112, 574436788]
    kernel = torch_uniform((3, 3, 3, 16), seed=0)
    np.testing.assert_allclose(kernel[0, 0, 0, :4], [0.05271658, 0.18507361, -0.06307857, -0.00099200497],
                               rtol=1e-6)
    assert kernel[2, 1, 2, 15] == pytest.approx(-0.033118396280603174, rel=1e-15)
    assert hashlib.sha256(kernel.tobytes()).hexdigest() == (
        "f6499d9f53c8eb9ca6d3517af635e574064e33581cdc9b9144f6c298e1162681")


def test_same_shape_layers_of_one_model_get_their_own_kernels():
    from keras_lc import LCConv2D, zoo

    model = zoo.resnet_lc20(expansion=2, seed=0)
    lc = [layer for layer in model.layers if isinstance(layer, LCConv2D)
          and layer.name.startswith("stage1_")]
    assert len(lc) == 6 and len({layer.seed for layer in lc}) == 6
    kernels = [np.asarray(layer.seed_kernel()) for layer in lc]
    assert all(not np.allclose(kernels[0], other) for other in kernels[1:])


def test_a_fresh_seed_comes_from_numpys_global_generator():
    """Golden values: `seed=None` draws from [0, 2**31 - 1) of NumPy's global generator, so
    `keras.utils.set_random_seed` reproduces it, for `resolve_seed` and `LCConv2D` alike."""
    from keras_lc import LCConv2D
    from keras_lc.initializers import resolve_seed

    np.random.seed(0)
    assert [resolve_seed(None) for _ in range(4)] == [209652396, 398764591, 924231285, 1478610112]
    keras.utils.set_random_seed(7)
    assert resolve_seed(None) == 327741615
    keras.utils.set_random_seed(7)
    assert LCConv2D(8, 3, expansion=2).seed == 327741615
    assert resolve_seed(5) == 5 and resolve_seed(np.int64(2**63 - 1)) == 2**63 - 1
    with pytest.raises(ValueError, match=r"Received: seed=-3"):
        resolve_seed(-3)


@pytest.mark.parametrize("kernel_size, fan_in", [((3, 3), 9), ((2, 3), 6), ((1, 5), 5)])
def test_depthwise_spatial_initializer_uses_pytorchs_fan_in(kernel_size, fan_in):
    """PyTorch's depthwise weight is (C * mult, 1, kh, kw): fan_in = kh * kw, not C * kh * kw."""
    from keras_lc.initializers import spatial_initializer

    shape = kernel_size + (4, 1)
    # float32: JAX holds no float64 unless x64 is enabled; the cast is the same on both sides.
    depthwise = np.asarray(spatial_initializer(kernel_size, seed=3, depthwise=True)(shape, dtype="float32"))
    np.testing.assert_array_equal(depthwise, torch_uniform(shape, 3, fan_in=fan_in).astype("float32"))
    assert np.abs(depthwise).max() <= 1 / np.sqrt(fan_in) < np.abs(depthwise).max() * 1.5
    dense = np.asarray(spatial_initializer(kernel_size, seed=3)(shape, dtype="float32"))
    np.testing.assert_array_equal(dense, torch_uniform(shape, 3, fan_in=4 * fan_in).astype("float32"))


@pytest.mark.parametrize("shape", [(6, 5), (3, 6, 5), (2, 3, 6, 5)])
def test_every_rank_is_drawn_in_pytorchs_layout(shape):
    """Rank 2 (Dense), 3 (Conv1D) and 4: drawn as (c_out, c_in, *spatial), returned in Keras'
    layout by `torch_uniform` and `TorchUniform` alike, `layout="torch"` as drawn."""
    drawn = torch_uniform(shape, 11, layout="".join(["tor", "ch"]))  # equal to "torch", not the same object
    assert drawn.shape == (shape[-1], shape[-2]) + shape[:-2]
    keras_layout = torch_uniform(shape, 11)
    np.testing.assert_array_equal(keras_layout, np.transpose(drawn, tuple(range(2, len(shape))) + (1, 0)))
    np.testing.assert_array_equal(np.asarray(TorchUniform(11)(shape, dtype="float32")), keras_layout.astype("float32"))
    # The first filters do not depend on how many are drawn.
    np.testing.assert_array_equal(torch_uniform(shape[:-1] + (2,), 11), keras_layout[..., :2])


def test_a_bias_is_symmetric_and_the_streams_are_pinned():
    """A bias (rank 1, `fan_in` given) spans [-a, a]; the stream numbers are literals, since the
    published files' kernels and biases follow from them."""
    from keras_lc import initializers

    bias = np.asarray(TorchUniform(0, initializers.STREAM_BIAS, fan_in=1)((4096,), dtype="float32"))
    assert bias.min() < -0.99 and bias.max() > 0.99 and np.abs(bias).max() <= 1.0
    assert (initializers.STREAM_SPATIAL, initializers.STREAM_COMBINATION, initializers.STREAM_BIAS) == (0, 1, 2)


@pytest.mark.parametrize("stream", [True, -1, 1.0, "1"])
def test_a_stream_must_be_a_non_negative_integer(stream):
    with pytest.raises(ValueError, match=r"Received: stream="):
        TorchUniform(0, stream=stream)


def test_the_requested_dtype_is_the_returned_one():
    """`to_keras_layout(values, dtype)` casts while copying; `TorchUniform` returns the dtype
    asked for, and `keras.config.floatx()` when none is."""
    from keras_lc.initializers import to_keras_layout

    drawn = torch_uniform((3, 3, 2, 4), 0, layout="torch")
    assert to_keras_layout(drawn).dtype == np.float64
    assert to_keras_layout(drawn, "float32").dtype == np.float32
    np.testing.assert_array_equal(to_keras_layout(drawn, "float32"), to_keras_layout(drawn).astype("float32"))
    for shape in ((3, 3, 2, 4), (4, 5)):
        assert keras.backend.standardize_dtype(TorchUniform(0)(shape, dtype="float16").dtype) == "float16"
        assert keras.backend.standardize_dtype(TorchUniform(0)(shape).dtype) == keras.config.floatx()
