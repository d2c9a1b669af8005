"""SharedLCConv2D against NumPy references: slices of one bank, fold, saving."""

import json

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D
from keras_lc.layers.shared_lc_conv2d import SharedLCConv2D, spatial_bank
from tests.harness import check_foldable_layer, check_model_round_trip
from tests.reference import numpy_conv2d, to_numpy

BANK = {"bank_seed": 11, "bank_channels": 16, "bank_filters": 64}


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _numpy_bank(shape, seed):
    """U[-1, 1] drawn in PyTorch layout (filters, channels, kh, kw), independently of spatial_bank."""
    from keras_lc.initializers import STREAM_SPATIAL

    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, STREAM_SPATIAL])))
    k_h, k_w, c, m = shape
    return rng.uniform(-1, 1, size=(m, c, k_h, k_w)).transpose(2, 3, 1, 0)


@pytest.mark.parametrize("implementation", ["two_stage", "composed"])
@pytest.mark.parametrize("strides,kernel", [(1, 3), (2, 3), (1, 5)])
def test_matches_numpy_reference(implementation, strides, kernel):
    x = _x((2, 11, 11, 6))
    layer = SharedLCConv2D(
        5, kernel, strides=strides, expansion=4, use_bias=True, implementation=implementation, seed=3, **BANK
    )
    layer.build(x.shape)
    assert layer.trainable_weights == [layer.combination, layer.bias]
    # Same combination and bias as an LCConv2D of the same seed: only the spatial source differs.
    plain = LCConv2D(5, kernel, strides=strides, expansion=4, use_bias=True, seed=3)
    plain(x)
    np.testing.assert_array_equal(plain.combination, layer.combination)
    np.testing.assert_array_equal(plain.bias, layer.bias)

    def reference(layer, x):
        bank = _numpy_bank((kernel, kernel, 16, 64), 11)
        spatial = bank[:, :, :6, :20] / np.sqrt(6 * kernel * kernel)
        combination = to_numpy(layer.combination, np.float64)
        return numpy_conv2d(x, spatial, (strides, strides)) @ combination + to_numpy(layer.bias)

    # The reference (trained combination and bias), the fold into one Conv2D; the round trips
    # (config, .keras, .weights.h5) once per implementation.
    check_foldable_layer(layer, x, reference, round_trips=(strides, kernel) == (1, 3))


def test_layers_share_one_bank_at_default_init_scale():
    a = SharedLCConv2D(4, 3, expansion=2, seed=1, **BANK)
    b = SharedLCConv2D(8, 3, expansion=8, seed=2, **BANK)
    a(_x((1, 8, 8, 3)))
    b(_x((1, 8, 8, 16)))
    ka = to_numpy(a.spatial_kernel, np.float64) * np.sqrt(3 * 9)
    kb = to_numpy(b.spatial_kernel, np.float64) * np.sqrt(16 * 9)
    np.testing.assert_allclose(ka, kb[:, :, :3, :8], rtol=1e-6)  # one tensor, two slices
    np.testing.assert_allclose(kb, spatial_bank(11, (3, 3, 16, 64)), rtol=1e-6)
    for layer, c_in in ((a, 3), (b, 16)):  # PyTorch's default U[-a, a], a = 1/sqrt(c_in k k)
        bound = 1 / np.sqrt(c_in * 9)
        assert 0.9 * bound < np.abs(to_numpy(layer.spatial_kernel)).max() <= bound * (1 + 1e-6)


def test_save_and_load():
    x = _x((2, 8, 8, 4))
    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, SharedLCConv2D(6, 3, expansion=2, seed=5, name="shared", **BANK)(inputs))
    layer = model.get_layer("shared")
    layer.combination.assign(_x(layer.combination.shape, seed=1))
    check_model_round_trip(model, x)  # .keras (safe_mode: a SharedLCConv2D again), .weights.h5
    store = {}
    layer.save_own_variables(store)
    assert sorted(store) == ["bank_seed", "combination", "seed"]  # the bank slice is not stored
    other = SharedLCConv2D(6, 3, expansion=2, seed=5, **{**BANK, "bank_seed": 12})
    other(x)
    with pytest.raises(ValueError, match="has bank_seed=12 but the weights were saved with bank_seed=11"):
        other.load_own_variables(store)


def test_bad_arguments():
    with pytest.raises(ValueError, match="frozen shared bank. Received: frozen_spatial=False"):
        SharedLCConv2D(4, 3, frozen_spatial=False, **BANK)
    with pytest.raises(ValueError, match="Received: implementation='basis'"):
        SharedLCConv2D(4, 3, implementation="basis", **BANK)
    message = "`bank_channels` must be a positive integer. Received: bank_channels=0"
    with pytest.raises(ValueError, match=message):
        SharedLCConv2D(4, 3, bank_seed=0, bank_channels=0, bank_filters=4)
    with pytest.raises(ValueError, match="`seed` must be an integer in \\[0, 2\\*\\*63 - 1\\]. Received: seed=-1"):
        SharedLCConv2D(4, 3, bank_seed=-1, bank_channels=4, bank_filters=4)
    with pytest.raises(ValueError, match=r"needs a \(c_in=32, m=8\) slice of a bank of 16 channels"):
        SharedLCConv2D(4, 3, expansion=2, **BANK)(_x((1, 8, 8, 32)))


def test_saved_bank_seed_must_be_equal_not_merely_ordered():
    """A saved bank_seed above the layer's is refused as one below is; an equal large one (not a
    cached small int) loads; the bank every layer reads is read-only."""
    x = _x((1, 8, 8, 4))
    for saved_seed, layer_seed in ((11, 10), (2**40, 2**40 + 1)):
        saver = SharedLCConv2D(6, 3, expansion=2, seed=5, **{**BANK, "bank_seed": saved_seed})
        saver(x)
        store = {}
        saver.save_own_variables(store)
        other = SharedLCConv2D(6, 3, expansion=2, seed=5, **{**BANK, "bank_seed": layer_seed})
        other(x)
        with pytest.raises(ValueError, match=f"has bank_seed={layer_seed} but the weights were saved "
                                             f"with bank_seed={saved_seed}"):
            other.load_own_variables(store)
    same = SharedLCConv2D(6, 3, expansion=2, seed=5, **{**BANK, "bank_seed": 2**40})
    same(x)
    same.load_own_variables(store)
    np.testing.assert_array_equal(to_numpy(same(x)), to_numpy(saver(x)))
    assert spatial_bank(3, (3, 3, 4, 8)).flags.writeable is False


def test_basis_is_refused_however_the_string_was_made():
    """A config read from JSON carries a fresh (not interned) "basis": refused all the same."""
    spelled = json.loads('{"implementation": "basis"}')["implementation"]
    with pytest.raises(ValueError, match=r"Received: implementation='basis'"):
        SharedLCConv2D(4, 3, implementation="".join(["ba", spelled[2:]]), **BANK)
