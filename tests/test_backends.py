"""Across Keras backends: files written on one load on the others, the published models predict
the same on each, and a tiny `keras-lc train` is killed, resumed, exported and analyzed on each.

CI runs this module in each backend's pass (`-m every_backend`, see conftest.py). Here, on the
backend under test, a small model holding every kind of weight keras-lc writes (frozen LCConv2D
kernels stored as their seed, a learned spatial kernel stored in full, the basis form's
coefficients, a stock Conv2D with bias, BatchNormalization statistics, Dense) is saved as `.keras`
and `.weights.h5`; a subprocess on each other installed backend loads both files (and, in the
TensorFlow pass, runs every published model), and writes what it computed, which is compared here
with this backend's.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from keras_lc import LCConv2D, weights, zoo
from keras_lc.samples import cifar10_test_sample
from tests.harness import kill_at_line, run_cli
from tests.reference import randomize_batchnorm, rel_error, to_numpy

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
OTHERS = [b for b in BACKENDS if b != keras.backend.backend() and importlib.util.find_spec(b) is not None]
#: What the other backend computes, in a subprocess: `python -c CHILD FOLDER`.
CHILD = """
import sys
from pathlib import Path

import keras
import numpy as np

from keras_lc import weights, zoo
from keras_lc.samples import cifar10_test_sample
from tests.test_backends import computed_by, mixed_model

folder, published = Path(sys.argv[1]), sys.argv[2] == "published"
x = np.load(folder / "x.npy")
loaded = keras.saving.load_model(folder / "mixed.keras", safe_mode=True)
rebuilt = mixed_model()
rebuilt.load_weights(folder / "mixed.weights.h5")
np.savez(folder / (keras.backend.backend() + ".npz"), **computed_by(loaded, rebuilt, x, published))
"""


def compares_published():
    """Whether this pass compares the published models: the TensorFlow pass does, with a
    subprocess on each other backend (TensorFlow is the reference; the JAX and PyTorch passes
    would repeat the same pairs, and JAX against PyTorch adds nothing to both against it)."""
    return keras.backend.backend() == "tensorflow"


def mixed_model():
    """Every kind of weight keras-lc saves, in one small model (the same on every backend)."""
    inputs = keras.Input((12, 12, 3))
    x = LCConv2D(8, 3, expansion=16, seed=1, implementation="basis", name="lc_basis")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = LCConv2D(8, 3, expansion=8, seed=2, implementation="composed", name="lc_composed")(x)
    x = LCConv2D(8, 3, expansion=2, seed=3, frozen_spatial=False, implementation="two_stage",
                 name="lc_learned")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, use_bias=True, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="dense")(x), name="mixed")


def computed_by(loaded, rebuilt, x, published=True):
    """What both sides compare: the outputs and weights of the `.keras` file's model (`loaded`)
    and of `rebuilt` after loading the `.weights.h5` file, and (`published`) every published
    model's logits and folded-file probabilities on the shipped CIFAR-10 sample."""
    results = {"keras/outputs": to_numpy(loaded(x, training=False)),
               "weights/outputs": to_numpy(rebuilt(x, training=False))}
    for side, model in (("keras", loaded), ("weights", rebuilt)):
        results.update({f"{side}/{v.path}": to_numpy(v) for v in model.weights})
    if not published:
        return results
    images = cifar10_test_sample().images
    for name, entry in sorted(weights.published_weights().items()):
        model = zoo.load_published(name, classifier_activation=None)
        results[f"published/{name}"] = to_numpy(model.predict(images, verbose=0))
        folder = weights.packaged_file(entry, entry.file_name).parent
        folded = keras.saving.load_model(folder / f"{name}_folded.keras", safe_mode=True)
        results[f"folded/{name}"] = to_numpy(folded.predict(images.astype("float32"), verbose=0))
        keras.backend.clear_session()
    return results


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """`(folder, this backend's results)`: the mixed model, its learned state moved off its
    initial values, saved in both formats, with its inputs."""
    folder = tmp_path_factory.mktemp("backends")
    model = randomize_batchnorm(mixed_model(), variance=(1e-2, 10))
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:
        v.assign(to_numpy(v) * 1.5 + rng.normal(0, 0.01, v.shape).astype("float32"))
    x = rng.normal(size=(4, 12, 12, 3)).astype("float32")
    np.save(folder / "x.npy", x)
    model.save(folder / "mixed.keras")
    model.save_weights(folder / "mixed.weights.h5")
    return folder, computed_by(model, model, x, compares_published())


@pytest.fixture(scope="module", params=OTHERS)
def other(request, written):
    """`(backend, its results)` for each other installed backend, computed in a subprocess."""
    folder, _ = written
    env = dict(os.environ, KERAS_BACKEND=request.param, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    published = "published" if compares_published() else "files"
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), published], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with np.load(folder / f"{request.param}.npz") as data:
        return request.param, dict(data)


def test_two_other_backends_are_installed():
    """The test extra installs all three backends, so every cross-backend pair is checked."""
    assert len(OTHERS) == 2, f"only {OTHERS} besides {keras.backend.backend()} are installed"


def test_weights_file_is_compact(written):
    """The frozen kernels are stored as their seeds: the file holds under half the model's floats."""
    folder, _ = written
    with h5py.File(folder / "mixed.weights.h5") as f:
        stored = []
        f.visititems(lambda name, obj: stored.append(obj.size) if isinstance(obj, h5py.Dataset) else None)
    total = sum(int(np.prod(v.shape)) for v in mixed_model().weights)
    assert sum(stored) < 0.5 * total, (sum(stored), total)


@pytest.mark.parametrize("form", ["keras", "weights"])
def test_files_load_bit_identical_on_the_other_backend(form, written, other):
    """Every weight (seed-regenerated frozen kernels included) arrives bit for bit; outputs
    agree to float32 rounding (each backend's own convolution)."""
    _, mine = written
    backend, theirs = other
    names = sorted(k for k in mine if k.startswith(f"{form}/") and k != f"{form}/outputs")
    assert names and names == sorted(k for k in theirs if k.startswith(f"{form}/") and k != f"{form}/outputs")
    for name in names:
        np.testing.assert_array_equal(theirs[name], mine[name], err_msg=f"{name} on {backend}")
    assert rel_error(theirs[f"{form}/outputs"], mine[f"{form}/outputs"]) <= 1e-5


def test_published_models_predict_the_same_on_the_other_backend(written, other):
    """Top-1 on the shipped sample identical, logits (and folded probabilities) within 1e-4."""
    _, mine = written
    backend, theirs = other
    if not compares_published():  # not marked every_backend (tests/conftest.py)
        pytest.skip("the TensorFlow pass compares the published models on every backend")
    names = sorted(k for k in mine if k.startswith(("published/", "folded/")))
    assert len(names) == 2 * len(weights.published_weights()) >= 8
    for name in names:
        assert np.array_equal(np.argmax(theirs[name], -1), np.argmax(mine[name], -1)), (name, backend)
        assert np.max(np.abs(theirs[name] - mine[name])) <= 1e-4, (name, backend)


def test_tiny_run_is_killed_resumed_exported_and_analyzed(tmp_path, cifar_archive, capsys):
    """`keras-lc train` killed hard after epoch 1 and resumed by the same command, then `export`
    (every format this backend can write, each checked in its runtime) and `analyze` with FGSM."""
    run = tmp_path / "run"
    command = ["train", "--model", "resnet_lc20", "--expansion", "2", "--dataset", "cifar10", "--data-dir",
               str(cifar_archive), "--train-per-class", "10", "--test-per-class", "10", "--epochs", "2",
               "--batch-size", "50", "--validate-every", "2", "--out", str(run)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", JAX_PLATFORMS="cpu")
    killed = kill_at_line([sys.executable, "-m", "keras_lc.cli", *command], "[keras-lc] epoch 1/2 done",
                          cwd=REPO, env=env)
    assert killed == -signal.SIGKILL and not (run / "summary.json").exists()

    code, out, err = run_cli(command, capsys)
    assert code == 0, err
    assert "[keras-lc] resuming run" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == 1 and summary["steps"] == 4 and summary["epochs"] == 2

    zoo_dir = tmp_path / "zoo"
    code, out, err = run_cli(["export", str(run), "--name", "tiny", "--zoo-dir", str(zoo_dir)], capsys)
    assert code == 0, err
    manifest = json.loads((zoo_dir / "tiny" / "manifest.json").read_text())
    assert manifest["top1"] == pytest.approx(summary["top1"], abs=1e-6)
    assert abs(manifest["top1_folded"] - manifest["top1"]) <= 0.01  # 100 images: one may flip
    # Every format on TensorFlow, each run back in its runtime; on the others only the folded
    # .keras file, and one line saying why.
    if keras.backend.backend() == "tensorflow":
        assert [check["format"] for check in manifest["exports"]] == ["saved_model", "onnx", "litert"]
        assert all(check["max_relative_difference"] <= 1e-4 for check in manifest["exports"]), manifest
    else:
        assert manifest["exports"] == []
        assert "not writing saved_model, onnx, litert (saved_model is written on the TensorFlow backend" in err
    folded = keras.saving.load_model(zoo_dir / "tiny" / "tiny_folded.keras", safe_mode=True)
    assert folded.output_shape == (None, 10)

    code, out, err = run_cli(["analyze", str(run), "--out", str(tmp_path / "analysis"), "--data",
                              str(cifar_archive), "--limit", "20", "--epsilon", "8/255"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    robustness = report["robustness"]
    assert robustness["num_images"] == 20 and robustness["epsilon"] == pytest.approx(8 / 255)
    assert 0 <= robustness["robust_accuracy"] <= robustness["clean_accuracy"], robustness
