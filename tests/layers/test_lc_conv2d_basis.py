"""The basis form: P and A's shapes, the Gram-matrix basis against the SVD, its cache, the
inference kernel reused after load, and drawing each seeded kernel once."""

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D, zoo
from keras_lc.initializers import STREAM_COMBINATION, STREAM_SPATIAL, TorchUniform, torch_uniform
from keras_lc.layers import compact_weights
from keras_lc.layers.compact_weights import BasisCache, SeedMatrix, basis_cache, frozen_basis, frozen_svd
from keras_lc.layers.shared_lc_conv2d import SharedLCConv2D
from tests.reference import gradients, numpy_conv2d, rel_error, to_numpy


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_basis_rank_is_min_of_fan_in_and_spatial_filters():
    model = zoo.resnet_lc(depth=8, width=8, expansion=8, implementation="basis", seed=0,
                          input_shape=(32, 32, 3))
    layers = [layer for layer in model.layers if isinstance(layer, LCConv2D)]
    cut = 0
    for layer in layers:
        fan_in, m = layer.basis.shape[0], layer.spatial_filters
        assert layer.basis.shape[1] == layer.basis_coefficients.shape[0] == min(fan_in, m)
        cut += fan_in < m
    # the stem (27 < 64) and the first conv of stages 2 and 3 (72 < 128, 144 < 256)
    assert cut == 3


# (kh, kw, c_in, m): m >> k*k*c_in (E=128), m < k*k*c_in (E=1), about square
# (condition numbers in the hundreds), 1x1 and 5x5 kernels.
SHAPES = [(3, 3, 16, 2048), (3, 3, 3, 16), (3, 3, 16, 32), (3, 3, 4, 36), (1, 1, 16, 16), (5, 5, 4, 100)]


@pytest.mark.parametrize("shape", SHAPES)
def test_seed_matrix_is_the_seeds_kernel(shape):
    matrix = SeedMatrix(shape, 7)
    kernel = torch_uniform(shape, 7)
    np.testing.assert_array_equal(matrix.kernel(), kernel)
    np.testing.assert_array_equal(matrix.kernel("float32"), kernel.astype("float32"))
    w = kernel.reshape(-1, shape[-1])
    np.testing.assert_array_equal(matrix.matrix(), w)
    x, y = _x((shape[-1], 3)).astype(np.float64), _x((w.shape[0], 3), seed=1).astype(np.float64)
    assert rel_error(matrix.matmul(x), w @ x) <= 1e-14
    assert rel_error(matrix.rmatmul(y), w.T @ y) <= 1e-14


@pytest.mark.parametrize("shape", SHAPES)
def test_gram_basis_is_the_svd_basis(shape):
    for seed in (0, 5):
        basis, s = frozen_basis(SeedMatrix(shape, seed))
        expected, _ = frozen_svd(torch_uniform(shape, seed).reshape(-1, shape[-1]))
        assert basis.shape == expected.shape
        assert rel_error(basis, expected) <= 1e-9
        np.testing.assert_allclose(s, np.linalg.norm(expected, axis=0), rtol=1e-9)


def test_ill_conditioned_kernels_fall_back_to_the_svd(monkeypatch):
    shape = (3, 3, 4, 36)
    gram, _ = frozen_basis(SeedMatrix(shape, 0))
    monkeypatch.setattr(compact_weights, "GRAM_CONDITION_LIMIT", 1.0)  # every kernel "ill-conditioned"
    svd, s = frozen_basis(SeedMatrix(shape, 0))
    np.testing.assert_array_equal(svd, frozen_svd(torch_uniform(shape, 0).reshape(-1, 36))[0])
    assert rel_error(gram, svd) <= 1e-9 and s.shape == (36,)


def test_wide_layer_basis_matches_the_svd_form():
    """ResNet-LC-20-16x128's widest shape (3, 3, 64, 8192): P, initial A, outputs and fold
    within 1e-5 (float32) of those the SVD gives."""
    x = _x((2, 8, 8, 64))
    layer = LCConv2D(64, 3, expansion=128, implementation="basis", seed=21)
    layer.build(x.shape)
    shape = (3, 3, 64, 8192)
    p, v = frozen_svd(torch_uniform(shape, 21).reshape(-1, 8192))
    a = v.T @ torch_uniform((8192, 64), 21, STREAM_COMBINATION)
    assert rel_error(to_numpy(layer.basis), p) <= 1e-5
    assert rel_error(to_numpy(layer.basis_coefficients), a) <= 1e-5
    expected = numpy_conv2d(x, (p @ a).reshape(3, 3, 64, 64))
    y = to_numpy(layer(x))
    assert rel_error(y, expected) <= 1e-5
    assert rel_error(to_numpy(layer.to_conv2d()(x)), expected) <= 1e-5


def test_rebuilding_reuses_the_cached_basis(monkeypatch):
    drawn = []
    seed_matrix = compact_weights.SeedMatrix
    monkeypatch.setattr(compact_weights, "SeedMatrix", lambda *a: drawn.append(a) or seed_matrix(*a))
    layers = [LCConv2D(8, 3, expansion=16, implementation="basis", seed=9_876_543) for _ in range(2)]
    for layer in layers:
        layer.build((None, 8, 8, 4))
    assert len(drawn) == 1  # the second build neither draws nor decomposes
    first, second = (layer.seed_basis(4) for layer in layers)
    assert all(a is b for a, b in zip(first, second))
    assert not first[0].flags.writeable
    np.testing.assert_array_equal(to_numpy(layers[0].basis), to_numpy(layers[1].basis))
    np.testing.assert_array_equal(to_numpy(layers[0].basis_coefficients), to_numpy(layers[1].basis_coefficients))


def test_basis_cache_is_bounded_in_bytes():
    cache = BasisCache(max_bytes=3 * 800)  # three (10, 10) float64 arrays
    calls = []

    def entry(key):
        return cache.get(key, lambda: calls.append(key) or (np.full((10, 10), float(key)),))

    for key in range(3):
        entry(key)
    assert len(cache) == 3 and cache.nbytes == 2400
    assert entry(0)[0][0, 0] == 0 and calls == [0, 1, 2]  # a hit, now most recently used
    entry(3)  # evicts 1, the least recently used
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    entry(1)
    assert calls == [0, 1, 2, 3, 1]
    big = cache.get("big", lambda: (np.zeros((40, 40)),))  # larger than the budget: not kept
    assert big[0].shape == (40, 40) and "big" not in cache and 1 in cache and cache.nbytes <= cache.max_bytes
    assert not big[0].flags.writeable
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    assert basis_cache.max_bytes == compact_weights.BASIS_CACHE_BYTES


def test_loading_draws_the_seed_kernel_once(tmp_path, monkeypatch):
    basis = LCConv2D(6, 3, expansion=32, implementation="basis", seed=4_242_424)
    basis.build((None, 8, 8, 4))
    basis.basis_coefficients.assign(to_numpy(basis.basis_coefficients) * 1.5)
    store = {}
    basis.save_own_variables(store)
    composed = LCConv2D(6, 3, expansion=32, implementation="composed", seed=4_242_424)
    composed.build((None, 8, 8, 4))
    drawn = []
    real = compact_weights.torch_uniform
    monkeypatch.setattr(compact_weights, "torch_uniform", lambda *a, **k: drawn.append(a[0]) or real(*a, **k))
    basis_cache.clear()
    composed.load_own_variables(store)  # kernel regenerated and C = V A: one draw
    assert drawn == [(3, 3, 4, 192)]
    x = _x((2, 8, 8, 4))
    assert rel_error(to_numpy(composed(x)), to_numpy(basis(x))) <= 1e-5


def test_shared_layer_never_draws_the_seed_kernel(monkeypatch):
    streams = []
    real = TorchUniform.__call__
    monkeypatch.setattr(TorchUniform, "__call__", lambda self, *a, **k: streams.append(self.stream) or real(self, *a, **k))
    layer = SharedLCConv2D(4, 3, expansion=2, bank_seed=0, bank_channels=8, bank_filters=16, seed=1)
    layer.build((None, 6, 6, 4))
    assert STREAM_SPATIAL not in streams
    np.testing.assert_allclose(to_numpy(layer.spatial_kernel), layer.bank_slice(4), rtol=1e-6)


def _loaded_basis_layer(seed=3, pixels=4):
    """A basis layer (r = 36 > pixels * pixels output pixels) loaded from its own weights."""
    layer = LCConv2D(5, 3, expansion=16, implementation="basis", use_bias=True, seed=seed)
    layer.build((None, pixels, pixels, 4))
    for weight in layer.trainable_weights:
        weight.assign(to_numpy(weight) * 1.5 + 0.01)
    store = {}
    layer.save_own_variables(store)
    layer.load_own_variables(store)
    return layer


def test_inference_reuses_the_kernel_computed_on_load_bit_identically():
    layer = _loaded_basis_layer()
    assert layer._inference_kernel is not None
    x = _x((2, 4, 4, 4))
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), to_numpy(layer(x, training=True)))
    conv = layer.to_conv2d()
    assert rel_error(to_numpy(layer(x, training=False)), to_numpy(conv(x))) <= 1e-5
    inputs = keras.Input((4, 4, 4))
    model = keras.Model(inputs, layer(inputs))
    np.testing.assert_array_equal(model.predict_on_batch(x), to_numpy(layer(x, training=True)))
    # A changed after load: inference follows it, eagerly and in the predict traced before
    layer.basis_coefficients.assign(to_numpy(layer.basis_coefficients) * -2.0)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), to_numpy(layer(x, training=True)))
    expected = to_numpy(layer.to_conv2d()(x))
    assert rel_error(to_numpy(layer(x, training=False)), expected) <= 1e-5
    assert rel_error(model.predict_on_batch(x), expected) <= 1e-5


def test_narrow_layers_compose_every_call():
    """r < output pixels: composing costs less than one image's convolution, nothing is kept."""
    layer = _loaded_basis_layer(pixels=8)
    assert layer._inference_kernel is None


def test_inference_gradients_are_exact():
    """Fine-tuning with training=False (BatchNormalization frozen) takes the reused kernel's
    branch: its gradient is still P^T dL/dW."""
    layer = _loaded_basis_layer()
    x, upstream = _x((3, 4, 4, 4)), _x((3, 4, 4, 5), seed=9)
    inference = gradients(layer, x, upstream, training=False)
    training = gradients(layer, x, upstream, training=True)
    assert set(inference) == set(training) == {"basis_coefficients", "bias"}
    for name in training:
        assert np.abs(training[name]).max() > 0
        assert rel_error(inference[name], training[name]) <= 1e-6, name


def test_decompositions_run_on_one_blas_thread(monkeypatch):
    """frozen_basis's eigh runs inside single_threaded_blas, which restores the thread count."""
    from threadpoolctl import threadpool_info

    from keras_lc import fold_math

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before, seen = blas_threads(), []
    if not before:
        pytest.skip("threadpoolctl finds no BLAS library in this process")
    real_eigh = np.linalg.eigh
    monkeypatch.setattr(np.linalg, "eigh", lambda a: seen.append(blas_threads()) or real_eigh(a))
    frozen_basis(SeedMatrix((3, 3, 4, 64), 0))
    assert seen == [[1] * len(before)] and blas_threads() == before
    with fold_math.single_threaded_blas():
        assert set(blas_threads()) == {1}
    assert blas_threads() == before
