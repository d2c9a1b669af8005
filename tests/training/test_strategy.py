"""Distribution: strategy choice, synchronized BatchNorm, Mirrored vs one device, MultiWorker.

The Mirrored check needs two logical CPU devices, configured before TensorFlow
initializes, so it runs as `python -m tests.training.test_strategy` in a
subprocess; the MultiWorker check runs two worker processes on 127.0.0.1.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from keras_lc.layers import LCConv2D
from keras_lc.training import get_strategy, synchronize_batchnorm
from keras_lc.training.strategy import resolve_strategy_name, worker_role

REPO = Path(__file__).resolve().parents[2]


def test_strategy_names_and_errors(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert resolve_strategy_name("auto") == "default"  # no GPU, no cluster here
    strategy = get_strategy("default")
    assert strategy.num_replicas_in_sync == 1 and worker_role(strategy) == (True, None, None)
    with pytest.raises(ValueError, match="strategy='multiworker' needs the cluster in the TF_CONFIG"):
        get_strategy("multiworker")
    with pytest.raises(ValueError, match=r"one of \('auto', 'default', 'mirrored', 'multiworker', 'data_parallel'\)"):
        get_strategy("horovod")
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert resolve_strategy_name("auto") == "multiworker"
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        resolve_strategy_name("auto")


def test_synchronize_batchnorm_reaches_nested_layers():
    inputs = keras.Input((8, 8, 3))
    x = LCConv2D(4, 3, expansion=2, intermediate="bn", seed=0)(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, x)
    assert synchronize_batchnorm(model) == 2  # the model's and LCConv2D's intermediate one
    layers = [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert all(l.synchronized for l in layers)
    synchronize_batchnorm(model, False)
    assert not any(l.synchronized for l in layers)


def _mirrored_main():
    """Subprocess: two logical CPUs; BN statistics and a training run vs one device."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_lc.data import load_dataset
    from keras_lc.training import Recipe, train
    from tests.conftest import cifar10_archive
    from tests.training.test_run import small_cnn

    strategy = get_strategy("mirrored")
    result = {"replicas": strategy.num_replicas_in_sync}
    # One training-mode BN call on a global batch of 8 whose two halves (one per
    # replica) differ; momentum 0 makes the moving statistics the batch's.
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    x[4:] = x[4:] * 3.0 + 2.0
    result["global"] = [x.mean((0, 1, 2)).tolist(), x.var((0, 1, 2)).tolist()]
    for synchronized in (True, False):
        with strategy.scope():
            bn = keras.layers.BatchNormalization(momentum=0.0, epsilon=1e-5, synchronized=synchronized)
            bn.build((None, 4, 4, 3))
        halves = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(x[4 * ctx.replica_id_in_sync_group:4 * ctx.replica_id_in_sync_group + 4]))
        strategy.run(tf.function(lambda t: bn(t, training=True)), args=(halves,))
        result[f"bn_{synchronized}"] = [bn.moving_mean.numpy().tolist(), bn.moving_variance.numpy().tolist()]

    class BatchLosses(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.losses = []

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["loss"]))

    archive = cifar10_archive()
    data = load_dataset("cifar10", "train", archive, per_class=16), load_dataset("cifar10", "test", archive, per_class=2)
    recipe = Recipe(epochs=3, batch_size=32, learning_rate=0.05, augment=False)
    for name, chosen in (("one_device", "default"), ("mirrored", strategy)):
        losses, models = BatchLosses(), []
        summary = train(lambda: models.append(small_cnn(True, widths=(8, 16), expansion=4,
                                                        implementation="composed")) or models[-1],
                        *data, Path(sys.argv[2]) / name, recipe, strategy=chosen, validate=False,
                        callbacks=[losses], verbose=0, print_fn=None)
        result[name] = {"losses": losses.losses, "summary": summary,
                        "weights": [[w.name, w.numpy().tolist()] for w in models[0].weights]}
    print("RESULT " + json.dumps(result))


def test_mirrored_two_cpus_matches_one_device_with_synchronized_batchnorm(tmp_path, cifar_archive):
    done = subprocess.run([sys.executable, "-m", "tests.training.test_strategy", "mirrored", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result["replicas"] == 2
    # Synchronized: the moving statistics are the global batch's (NumPy), to float32 precision.
    np.testing.assert_allclose(result["bn_True"], result["global"], rtol=1e-5, atol=1e-6)
    # Not synchronized: they are replica 0's half only, far from the global variance.
    assert np.all(np.asarray(result["bn_False"][1]) < 0.5 * np.asarray(result["global"][1]))

    one, mirrored = result["one_device"], result["mirrored"]
    assert mirrored["summary"]["replicas"] == 2 and mirrored["summary"]["batchnorm_synchronized"] == 2
    assert len(one["losses"]) == len(mirrored["losses"]) == 15  # 3 epochs x 5 steps
    # Same data order, same initial weights: the per-step losses agree to float32 round-off,
    # which training then amplifies step by step (how much depends on the CPU's kernels: after
    # 10-15 steps 4.5e-5 relative on an Intel Xeon, less on an AMD EPYC). A real difference
    # (unsynchronized BatchNorm, gradients summed instead of averaged) moves them by > 1e-3.
    np.testing.assert_allclose(mirrored["losses"][:5], one["losses"][:5], rtol=1e-5)
    np.testing.assert_allclose(mirrored["losses"], one["losses"], rtol=2e-4)
    assert len(one["weights"]) == len(mirrored["weights"]) == 14
    for (name, value), (other_name, other) in zip(one["weights"], mirrored["weights"]):
        value, other = np.asarray(value), np.asarray(other)
        scale = np.max(np.abs(value)) or 1.0
        # The same amplified round-off: up to 9.3e-4 of the largest weight after 15 steps on
        # the Intel machine (the combination kernels); wrong averaging would be ~lr-sized.
        assert name == other_name and np.max(np.abs(other - value)) <= 5e-3 * scale, name


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _h5_values(path):
    values = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: values.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return values


def test_multiworker_two_processes_on_loopback_end_with_identical_weights(tmp_path, cifar_archive):
    from tests.training.test_run import tiny_run

    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    out = tmp_path / "multiworker"
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(config))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tests.training.test_run", str(out), "2", "multiworker"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=240)[0])
    finally:
        for process in processes:
            process.kill()
    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["strategy"], summary["replicas"], summary["steps"]) == ("multiworker", 2, 2 * 5)
    assert summary["batchnorm_synchronized"] == 1
    chief = _h5_values(out / "final.weights.h5")
    other = _h5_values(out / "workers" / "worker-1" / "final.weights.h5")
    assert chief.keys() == other.keys() and len(chief) > 4
    for name in chief:
        assert np.array_equal(chief[name], other[name]), name
    # And the two workers together trained like one process on the same data.
    single = tmp_path / "single"
    tiny_run(single, 2, strategy="default", print_fn=None)
    alone = _h5_values(single / "final.weights.h5")
    for name in (n for n in chief if n.startswith("layers/")):
        scale = np.max(np.abs(alone[name])) or 1.0
        assert np.max(np.abs(chief[name] - alone[name])) <= 1e-4 * scale, name


if __name__ == "__main__":
    _mirrored_main()


def test_data_parallel_is_jaxs_and_says_so_on_tensorflow():
    import keras

    assert keras.backend.backend() == "tensorflow"  # the suite's default backend
    with pytest.raises(ValueError, match=r"^strategy='data_parallel' is Keras' keras.distribution.DataParallel, "
                       r"which keras-lc uses on the JAX backend; Keras runs on 'tensorflow' here \(on TensorFlow "
                       r"use strategy='mirrored'\)\.$"):
        resolve_strategy_name("data_parallel")
