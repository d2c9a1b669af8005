"""keras-lc on JAX where `import tensorflow` fails: train (killed and resumed), evaluate, fold, export.

Each step runs in a subprocess whose import system refuses TensorFlow (and what needs it:
tensorboard, tensorflow_datasets, tf2onnx), with `KERAS_BACKEND=jax`, as on the GPU machine this
project is sometimes lent, which has JAX but no TensorFlow. The input pipeline is then the NumPy
one (`keras_lc.data.arrays`).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.training.test_run import _weights

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("tensorflow", "tensorboard", "tensorflow_datasets", "tf2onnx", "tf_keras")
PRELUDE = f"""
import sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (no TensorFlow in this test)")
sys.meta_path.insert(0, NoTensorFlow())
"""
CLI = PRELUDE + """
from keras_lc.cli import main
code = main(sys.argv[1:])
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
raise SystemExit(code)
"""
RUN = PRELUDE + """
import runpy
sys.argv = ["test_run"] + sys.argv[1:]
runpy.run_module("tests.training.test_run", run_name="__main__")
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
"""

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("jax") is None, reason="needs JAX (the test extra has it)")


def _env(cifar_archive):
    return dict(os.environ, KERAS_BACKEND="jax", PYTHONUNBUFFERED="1", KERAS_LC_CIFAR10=str(cifar_archive),
                JAX_PLATFORMS="cpu")


def _cli(args, env, timeout=600):
    done = subprocess.run([sys.executable, "-c", CLI, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_the_import_guard_refuses_tensorflow(tmp_path):
    done = subprocess.run([sys.executable, "-c", PRELUDE + "import tensorflow"], capture_output=True, text=True,
                          env=dict(os.environ, KERAS_BACKEND="jax"))
    assert done.returncode == 1 and "no TensorFlow in this test" in done.stderr


def test_a_killed_run_resumes_bit_identical_on_jax_without_tensorflow(tmp_path, cifar_archive):
    env = _env(cifar_archive)
    out = tmp_path / "resumed"
    args = [sys.executable, "-c", RUN, str(out), "3", "auto", "augment"]
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        for line in process.stdout:
            if line.startswith("[keras-lc] epoch 1/3 done"):
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL and not (out / "summary.json").exists()
    for target in (out, tmp_path / "uninterrupted"):
        done = subprocess.run([sys.executable, "-c", RUN, str(target), "3", "auto", "augment"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 15 and summary["resumed_from_epoch"] in (1, 2)
    assert summary["strategy"] == "default" and summary["tensorboard_logs"] is False
    resumed, uninterrupted = _weights(out / "final.weights.h5"), _weights(tmp_path / "uninterrupted" / "final.weights.h5")
    assert sorted(resumed) == sorted(uninterrupted)
    assert [n for n in resumed if not np.array_equal(resumed[n], uninterrupted[n])] == []


def test_train_evaluate_fold_and_export_on_jax_without_tensorflow(tmp_path, cifar_archive):
    env = _env(cifar_archive)
    run = tmp_path / "run"
    _cli(["train", "--model", "resnet_lc20", "--expansion", "4", "--dataset", "cifar10", "--data-dir",
          cifar_archive, "--train-per-class", "20", "--test-per-class", "10", "--epochs", "2", "--batch-size",
          "50", "--out", run], env)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["steps"] == 8 and summary["tensorboard_logs"] is False
    evaluated = json.loads(_cli(["evaluate", run, "--data-dir", cifar_archive, "--test-per-class", "10"],
                                env).stdout.strip().splitlines()[-1])
    assert evaluated["top1"] == pytest.approx(summary["top1"], abs=1e-6) and evaluated["test_examples"] == 100
    done = _cli(["export", run, "--name", "tiny", "--zoo-dir", tmp_path / "zoo"], env)
    assert "not writing saved_model, onnx, litert" in done.stderr
    folder = tmp_path / "zoo" / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "manifest.json", "tiny.weights.h5", "tiny_folded.keras", "tiny_notop.weights.h5"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["exports"] == [] and abs(manifest["top1"] - manifest["top1_folded"]) <= 0.01
    # The files written on JAX load here (TensorFlow) and the fold computes the trained function.
    import keras_lc
    from keras_lc.data import load_image_folder, normalize

    images, labels, _ = load_image_folder(cifar_archive, "test", per_class=10)
    trained = keras.saving.load_model(run / "model.keras")
    trained.load_weights(run / "final.weights.h5")
    folded = keras.saving.load_model(folder / "tiny_folded.keras", safe_mode=True)
    logits = np.asarray(trained.predict(normalize(images), verbose=0))
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    got = np.asarray(folded.predict(images.astype("float32"), verbose=0))
    assert np.max(np.abs(got - expected)) <= 1e-5
    assert np.max(np.abs(np.asarray(keras_lc.fold(trained).predict(normalize(images), verbose=0)) - logits)) \
        <= 1e-4 * np.max(np.abs(logits))
    assert float(np.mean(np.argmax(logits, axis=-1) == labels)) == pytest.approx(summary["top1"], abs=1e-6)
