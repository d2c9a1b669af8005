"""`strategy="data_parallel"`: Keras' `keras.distribution.DataParallel` on JAX, over two host CPU
devices (`XLA_FLAGS=--xla_force_host_platform_device_count=2`), against one device."""

import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from keras_lc.training.strategy import resolve_strategy_name
from tests.training.test_run import REPO, _weights

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("jax") is None, reason="needs JAX (the test extra has it)")


def _env(cifar_archive, devices):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
               KERAS_LC_CIFAR10=str(cifar_archive))
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _args(out, strategy):
    return [sys.executable, "-m", "tests.training.test_run", str(out), "3", strategy, "augment"]


def _losses(run):
    with open(run / "history.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def test_two_devices_train_as_one_and_resume(tmp_path, cifar_archive):
    one = tmp_path / "one"
    done = subprocess.run(_args(one, "default"), cwd=REPO, env=_env(cifar_archive, 1), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    two = tmp_path / "two"
    env = _env(cifar_archive, 2)
    process = subprocess.Popen(_args(two, "data_parallel"), cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        for line in process.stdout:
            if line.startswith("[keras-lc] epoch 1/3 done"):
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL and not (two / "summary.json").exists()
    done = subprocess.run(_args(two, "auto"), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "strategy data_parallel (2 replicas)" in done.stdout  # auto: several JAX devices
    summary = json.loads((two / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["resumed_from_epoch"] in (1, 2) and summary["steps"] == 15
    assert np.allclose(_losses(two), _losses(one), rtol=0, atol=1e-5), (_losses(two), _losses(one))
    a, b = _weights(one / "final.weights.h5"), _weights(two / "final.weights.h5")
    assert sorted(a) == sorted(b)
    # the same weights up to the order of float additions (the batch is reduced over two devices;
    # measured: 1.6e-4 relative after 15 steps at lr 0.05)
    assert max(float(np.max(np.abs(a[k] - b[k])) / max(np.max(np.abs(a[k])), 1e-12)) for k in a) <= 1e-3


def test_the_strategies_of_another_backend_are_one_line():
    import keras

    assert keras.backend.backend() == "tensorflow"  # the suite's default backend
    with pytest.raises(ValueError, match=r"^strategy='data_parallel' is Keras' keras.distribution.DataParallel, "
                       r"which keras-lc uses on the JAX backend; Keras runs on 'tensorflow' here \(on TensorFlow "
                       r"use strategy='mirrored'\)\.$"):
        resolve_strategy_name("data_parallel")
