"""FGSM: an analytic reference, a briefly trained LC model on real CIFAR-10, and the jax backend."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_lc.analysis import FGSM, fgsm_perturb, robust_accuracy
from keras_lc.data import CIFAR10_MEAN, CIFAR10_STD, normalize
from keras_lc.layers import LCConv2D

MEAN, STD = np.asarray(CIFAR10_MEAN, np.float32), np.asarray(CIFAR10_STD, np.float32)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(cifar_train_images, cifar_test_images):
    """A small CNN with an LCConv2D, 10 epochs on 640 real CIFAR-10 training images (~8 s)."""
    keras.utils.set_random_seed(0)
    bn = lambda: keras.layers.BatchNormalization(momentum=0.9)  # noqa: E731
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            LCConv2D(32, 3, expansion=4, seed=0), bn(), keras.layers.ReLU(), keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same"), bn(), keras.layers.ReLU(), keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same"), bn(), keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10),
        ],
        name="small_lc_cnn",
    )
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = cifar_train_images
    model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    x_test, y_test = cifar_test_images
    return model, x_test, y_test


def test_fgsm_lowers_accuracy_of_a_trained_model(trained):
    model, x, y = trained
    eps8 = robust_accuracy(model, x, y, epsilon=8 / 255)
    eps1 = robust_accuracy(model, x, y, epsilon=1 / 255)
    clean = eps8.clean_accuracy
    # 200 real test images, chance 0.10; measured: clean 0.375, 1/255 0.31, 8/255 0.05.
    assert eps8.num_images == 200 and eps1.clean_accuracy == clean
    assert clean >= 0.28, clean
    assert eps8.robust_accuracy <= min(0.15, clean - 0.15), eps8
    assert eps8.robust_accuracy < eps1.robust_accuracy <= clean, (eps1, eps8)


def test_epsilon_zero_leaves_images_and_accuracy_unchanged(trained):
    model, x, y = trained
    result = robust_accuracy(model, x, y, epsilon=0, batch_size=64)
    assert result.robust_accuracy == result.clean_accuracy
    x_adv = fgsm_perturb(model, x[:32], y[:32], epsilon=0)
    assert np.array_equal(x_adv, x[:32])


def test_perturbation_is_a_bounded_signed_step_that_raises_the_loss(trained):
    model, x, y = trained
    eps = 8 / 255
    x_adv = fgsm_perturb(model, x[:64], y[:64], epsilon=eps)
    pixels, adv_pixels = x[:64] * STD + MEAN, x_adv * STD + MEAN
    change = np.abs(adv_pixels - pixels)
    assert change.max() <= eps + 1e-6
    assert adv_pixels.min() >= -1e-6 and adv_pixels.max() <= 1 + 1e-6
    # Pixels not at the [0, 1] bounds move by exactly epsilon.
    free = (pixels > eps + 1e-4) & (pixels < 1 - eps - 1e-4)
    assert free.mean() > 0.5 and np.abs(change[free] - eps).max() < 1e-5
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    assert float(loss(y[:64], model(x_adv))) > float(loss(y[:64], model(x[:64]))) + 0.5


def _linear_model(activation=None):
    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(3, activation=activation)]
    )
    rng = np.random.default_rng(0)
    # Small weights: no sample is so confident that its gradient is round-off.
    model.set_weights([0.05 * rng.normal(size=(48, 3)).astype("float32"), rng.normal(size=3).astype("float32")])
    return model


def test_matches_pixel_space_numpy_reference():
    """Linear model: the pixel-space gradient by hand, step, clip to [0, 1], re-normalize."""
    model = _linear_model()
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(16, 4, 4, 3)).astype(np.uint8)
    pixels[:, 0] = 0
    pixels[:, 1] = 255  # rows at the bounds exercise the clipping
    y = rng.integers(0, 3, size=16)
    x = normalize(pixels)
    w, b = (np.asarray(v, np.float64) for v in model.get_weights())
    logits = x.reshape(16, -1) @ w + b
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    grad_norm = (probs - np.eye(3)[y]) @ w.T  # d CE / d x_normalized
    grad_pixel = grad_norm.reshape(x.shape) / STD  # chain rule through (p - mean) / std
    eps = 4 / 255
    expected_pixels = np.clip(pixels / 255.0 + eps * np.sign(grad_pixel), 0, 1)
    expected = (expected_pixels - MEAN) / STD
    x_adv = fgsm_perturb(model, x, y, epsilon=eps)
    assert np.abs(x_adv - expected).max() < 1e-5
    assert np.count_nonzero(np.abs(x_adv - x) > 1e-3) > 0.6 * x.size

    # The same step for a model taking [0, 1] pixels (mean 0, std 1) and for uint8 input.
    assert robust_accuracy(model, pixels, y, eps) == robust_accuracy(model, x, y, eps)
    raw = fgsm_perturb(model, (pixels / 255.0).astype("float32"), y, eps, mean=0.0, std=1.0)
    assert raw.min() >= 0 and raw.max() <= 1


def test_softmax_outputs_are_detected():
    logits_model, softmax_model = _linear_model(), _linear_model("softmax")
    assert FGSM(logits_model).from_logits and not FGSM(softmax_model).from_logits
    x = np.random.default_rng(2).normal(size=(8, 4, 4, 3)).astype("float32")
    y = np.arange(8) % 3
    same = fgsm_perturb(logits_model, x, y, 1 / 255) == fgsm_perturb(softmax_model, x, y, 1 / 255)
    assert same.mean() > 0.99


def test_progress_bar_and_bad_inputs(capsys):
    model = _linear_model()
    x = np.zeros((5, 4, 4, 3), np.float32)
    robust_accuracy(model, x, np.zeros(5), 1 / 255, batch_size=2, verbose=1)
    assert "fgsm_acc" in capsys.readouterr().out
    with pytest.raises(ValueError, match="epsilon=2"):
        robust_accuracy(model, x, np.zeros(5), epsilon=2)
    with pytest.raises(ValueError, match=r"labels=\(4,\)"):
        robust_accuracy(model, x, np.zeros(4))
    with pytest.raises(ValueError, match="batch_size=0"):
        robust_accuracy(model, x, np.zeros(5), batch_size=0)
    with pytest.raises(ValueError, match=r"std=\(0.2, 0.0, 0.2\)"):
        FGSM(model, std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="from_logits='yes'"):
        FGSM(model, from_logits="yes")


OTHER_BACKEND_SCRIPT = """
import json, sys, numpy as np, keras
import keras_lc
from keras_lc.analysis import robust_accuracy, fgsm_perturb
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
data = np.load(sys.argv[2])
result = robust_accuracy(model, data["x"], data["y"], epsilon=8 / 255, batch_size=200)
np.save(sys.argv[3], fgsm_perturb(model, data["x"][:200], data["y"][:200], epsilon=8 / 255))
print(json.dumps({"backend": keras.backend.backend(), **result.to_dict()}))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_give_the_same_attack(backend, trained, tmp_path):
    model, x, y = trained
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", OTHER_BACKEND_SCRIPT, str(tmp_path / "model.keras"), str(tmp_path / "data.npz"),
         str(tmp_path / "adv.npy")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    other = json.loads(proc.stdout.strip().splitlines()[-1])
    tf_result = robust_accuracy(model, x, y, epsilon=8 / 255, batch_size=200)
    assert other["backend"] == backend
    assert other["clean_accuracy"] == tf_result.clean_accuracy
    assert abs(other["robust_accuracy"] - tf_result.robust_accuracy) <= 0.02, (other, tf_result)
    agree = np.isclose(np.load(tmp_path / "adv.npy"), fgsm_perturb(model, x, y, 8 / 255), atol=1e-5)
    assert agree.mean() > 0.99, agree.mean()
