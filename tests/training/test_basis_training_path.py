"""The basis form of LCConv2D trains exactly like the composed form under SGD, not under Adam.

The training-path comparisons run in float64. In float32 even two_stage and
composed, which are the same function with the same gradients, drift apart
over 50 steps of this ReLU network (relative loss gaps ~1e-2 on both backends):
rounding at 1e-7 flips the sign of a few near-zero pre-activations and each
flip changes a gradient by O(1). In float64 nothing flips and the identity
shows to ~1e-14, so the tests can assert it far inside the 1e-4 asked for.

TensorFlow only: on JAX, Keras' float64 policy (even with jax_enable_x64) does
not keep every step in float64 here; the basis and composed losses agree
exactly for 20 steps and then drift (5.5e-4 by step 50), while two_stage drifts
from the composed form sooner, so the JAX run cannot resolve the identity.
"""

import keras
import numpy as np
import pytest

from keras_lc import LCConv2D, zoo
from tests.reference import rel_error

STEPS, BATCH = 50, 32


@pytest.fixture
def float64():
    """float64 everywhere; JAX computes in float32 unless x64 is enabled."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    yield
    keras.config.set_dtype_policy(previous)
    if keras.backend.backend() == "jax":
        jax.config.update("jax_enable_x64", False)


def _train(implementation, optimizer, x, y):
    """50 steps of a small ResNet-LC (depth 8, width 8, E=8) on real CIFAR-10 batches."""
    keras.utils.set_random_seed(0)
    x = x.astype(keras.config.dtype_policy().variable_dtype)
    model = zoo.resnet_lc(depth=8, width=8, expansion=8, implementation=implementation, seed=0,
                          input_shape=(32, 32, 3), classifier_activation=None)
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = []
    for step in range(STEPS):
        start = (step * BATCH) % (len(y) - BATCH)
        losses.append(float(model.train_on_batch(x[start:start + BATCH], y[start:start + BATCH])))
    lc_layers = [layer for layer in model.layers if isinstance(layer, LCConv2D)]
    assert {layer.resolved_implementation for layer in lc_layers} == {implementation}
    assert {w.dtype for w in model.weights} == {keras.config.dtype_policy().variable_dtype}
    computed = keras.ops.convert_to_numpy(model(x[:2])).dtype  # what the backend really ran
    assert computed == np.dtype(keras.config.dtype_policy().compute_dtype)
    return np.array(losses), [layer.fold()[0] for layer in lc_layers]


def test_sgd_training_paths_are_identical(float64, cifar_train_images):
    x, y = cifar_train_images

    def sgd():
        return keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)

    composed_losses, composed_kernels = _train("composed", sgd(), x, y)
    basis_losses, basis_kernels = _train("basis", sgd(), x, y)
    assert composed_losses[-10:].mean() < composed_losses[:10].mean()  # it learned something
    assert np.max(np.abs(basis_losses - composed_losses) / np.abs(composed_losses)) <= 1e-10
    for basis_kernel, composed_kernel in zip(basis_kernels, composed_kernels):
        assert rel_error(basis_kernel, composed_kernel) <= 1e-10


def test_adam_training_paths_differ(float64, cifar_train_images):
    """The docstring's warning: Adam's per-coordinate scaling breaks the equivalence."""
    x, y = cifar_train_images
    composed_losses, composed_kernels = _train("composed", keras.optimizers.Adam(1e-3), x, y)
    basis_losses, basis_kernels = _train("basis", keras.optimizers.Adam(1e-3), x, y)
    kernel_gap = max(rel_error(b, c) for b, c in zip(basis_kernels, composed_kernels))
    assert kernel_gap > 1e-2
    assert np.max(np.abs(basis_losses - composed_losses)) > 1e-3
