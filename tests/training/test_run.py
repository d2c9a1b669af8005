"""keras_lc.training.train: real learning, resume after a kill, NaN stop, run directory.

`python -m tests.training.test_run OUT EPOCHS [STRATEGY]` trains the tiny LC
model of `tiny_run` (used as a subprocess by the resume and multi-worker tests).
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from keras_lc.data import load_dataset, load_image_folder, normalize
from keras_lc.initializers import torch_uniform
from keras_lc.layers import LCConv2D
from keras_lc.training import Recipe, RunDirectoryError, TrainingDiverged, train
from tests.conftest import cifar10_archive
from tests.harness import kill_at_line

REPO = Path(__file__).resolve().parents[2]


def small_cnn(lc, widths=(16, 32, 64), expansion=8, implementation="basis", seed=0):
    """Three conv (or frozen LC) + BN + ReLU stages, global pooling, dense logits."""
    x = inputs = keras.Input((32, 32, 3))
    for i, width in enumerate(widths):
        strides = 1 if i == 0 else 2
        if lc:
            x = LCConv2D(width, 3, strides=strides, expansion=expansion, seed=seed + i,
                         implementation=implementation, name=f"lc{i}")(x)
        else:
            x = keras.layers.Conv2D(width, 3, strides=strides, padding="same", use_bias=False,
                                    kernel_initializer=keras.initializers.HeUniform(seed + i))(x)
        x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(10, kernel_initializer=keras.initializers.GlorotUniform(seed + 9))
    return keras.Model(inputs, dense(x))


def tiny_run(out, epochs, strategy="auto", per_class=16, batch_size=32, print_fn=print, augment=False):
    """The tiny run of the subprocess tests: 160 CIFAR-10 images, 5 steps per epoch."""
    archive = cifar10_archive()
    train_data = load_dataset("cifar10", "train", archive, per_class=per_class)
    test_data = load_dataset("cifar10", "test", archive, per_class=4)
    recipe = Recipe(epochs=epochs, batch_size=batch_size, learning_rate=0.05, augment=augment)
    return train(lambda: small_cnn(True, widths=(8,), expansion=4, implementation="composed"),
                 train_data, test_data, out, recipe, strategy=strategy, validate=False,
                 verbose=2, print_fn=print_fn)


def _run_subprocess_args(out, epochs, strategy="auto", augment=False):
    return [sys.executable, "-m", "tests.training.test_run", str(out), str(epochs), strategy,
            "augment" if augment else "plain"]


def test_frozen_lc_and_baseline_learn_cifar10(tmp_path, cifar_archive):
    """5 epochs on 5000 real training images; top-1 on 1000 held-out test images.

    Chance is 10%; both reach about 40% here (fixed seeds). Bound: >= 35%.
    The recipe is the paper's except for the short run (epochs 5, batch 64,
    lr 0.05, no augmentation).
    """
    train_data = load_dataset("cifar10", "train", cifar_archive, per_class=500)
    test_data = load_dataset("cifar10", "test", cifar_archive, per_class=100)
    recipe = Recipe(epochs=5, batch_size=64, learning_rate=0.05, augment=False)
    accuracy = {}
    for name, lc in (("frozen_lc", True), ("baseline", False)):
        summary = train(lambda: small_cnn(lc), train_data, test_data, tmp_path / name, recipe,
                        validate=False, verbose=0, print_fn=None)
        accuracy[name] = summary["top1"]
        assert summary["steps"] == 5 * 79
    print("top-1 after 5 epochs:", accuracy)
    assert accuracy["frozen_lc"] >= 0.35 and accuracy["baseline"] >= 0.35, accuracy


def _weights(path):
    values = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: values.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return values


def test_killed_run_with_augmentation_resumes_bit_identical_to_an_uninterrupted_one(tmp_path, cifar_archive):
    """Killed hard after epoch 1, moved, resumed: every saved array equals the uninterrupted run's.

    With the paper's pad-4 crop + flip on, each random choice is a function of
    (seed, epoch, example), so the resumed epochs see the same batches.
    """
    out = tmp_path / "resumed"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    killed = kill_at_line(_run_subprocess_args(out, 3, augment=True), "[keras-lc] epoch 1/3 done", cwd=REPO,
                          env=env)  # killed hard, mid-run
    assert killed == -signal.SIGKILL
    assert not (out / "summary.json").exists()
    completed = json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"]
    assert completed in (1, 2)
    source = json.loads((out / "config.json").read_text())["data"]["source"]
    assert source.startswith("archive:cifar10") and str(tmp_path.parent) not in source

    # Resumed as on another machine: the run directory moved, the cache somewhere else (its
    # unpacked datasets the same, so the run's recorded data source must still match).
    moved = tmp_path / "elsewhere" / "resumed"
    moved.parent.mkdir()
    out = Path(shutil.move(out, moved))
    other_cache = tmp_path / "other_cache"
    other_cache.mkdir()
    (other_cache / "datasets").symlink_to(Path(os.environ["KERAS_LC_CACHE"], "datasets").resolve())
    done = subprocess.run(_run_subprocess_args(out, 3, augment=True), cwd=REPO,
                          env=dict(env, KERAS_LC_CACHE=str(other_cache)), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "[keras-lc] resuming run" in done.stdout
    resumed = json.loads((out / "summary.json").read_text())
    uninterrupted_dir = tmp_path / "uninterrupted"
    done = subprocess.run(_run_subprocess_args(uninterrupted_dir, 3, augment=True), cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    uninterrupted = json.loads((uninterrupted_dir / "summary.json").read_text())
    assert resumed["steps"] == uninterrupted["steps"] == 3 * 5
    resumed_weights = _weights(out / "final.weights.h5")
    uninterrupted_weights = _weights(uninterrupted_dir / "final.weights.h5")
    assert sorted(resumed_weights) == sorted(uninterrupted_weights)
    differing = [name for name in resumed_weights
                 if not np.array_equal(resumed_weights[name], uninterrupted_weights[name])]
    assert differing == [], f"{len(differing)} of {len(resumed_weights)} arrays differ: {differing[:5]}"
    assert resumed["resumed_from_epoch"] == completed
    with open(out / "history.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2, 3]
    assert not (out / "backup").exists()

    # Frozen kernels: still the seed's bit for bit (a changed kernel would be
    # saved in the file; an unchanged one is regenerated from the seed).
    model = small_cnn(True, widths=(8,), expansion=4, implementation="composed")
    initial_combination = keras.ops.convert_to_numpy(model.get_layer("lc0").combination)
    model.load_weights(out / "final.weights.h5")
    layer = model.get_layer("lc0")
    seed_kernel = torch_uniform(layer.spatial_kernel.shape, layer.seed).astype("float32")
    assert np.array_equal(keras.ops.convert_to_numpy(layer.spatial_kernel), seed_kernel)
    assert not any("spatial_kernel" in name for name in _weights(out / "final.weights.h5"))
    assert not np.allclose(keras.ops.convert_to_numpy(layer.combination), initial_combination)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_backup(tmp_path, cifar_archive):
    train_data = load_dataset("cifar10", "train", cifar_archive, per_class=8)
    recipe = Recipe(epochs=3, batch_size=16, learning_rate=1e3, schedule="constant")
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged) as error:
        train(lambda: small_cnn(False, widths=(8,)), train_data, None, out, recipe,
              verbose=0, print_fn=None)
    # lr 1e3 diverges during the second epoch (fixed seeds).
    assert str(error.value) == (
        "Training stopped: the loss became nan at epoch 2, batch 3. The last good checkpoint "
        f"(epoch 1) is kept in '{out / 'backup'}'. Lower the learning rate or disable mixed "
        "precision, and start a new run."
    )
    assert json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    backup = _weights(out / "backup" / "epoch-00001.weights.h5")
    assert all(np.isfinite(v).all() for v in backup.values())
    assert not (out / "summary.json").exists()


def test_run_directory_contents_mixed_precision_and_xla(tmp_path, cifar_archive):
    train_data = load_dataset("cifar10", "train", cifar_archive, per_class=8)
    test_data = load_dataset("cifar10", "test", cifar_archive, per_class=2)
    recipe = Recipe(epochs=2, batch_size=40, mixed_precision=True, xla=True)
    out = tmp_path / "run"
    summary = train(lambda: small_cnn(True, widths=(8,), expansion=4), train_data, test_data, out,
                    recipe, config={"note": "test"}, verbose=0, print_fn=None)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored afterwards
    assert summary["mixed_precision_policy"] == "mixed_bfloat16"  # no GPU here
    assert summary["xla"] is True
    assert np.isfinite(summary["test_loss"]) and 0 <= summary["top1"] <= summary["top5"] <= 1
    assert summary["steps"] == 2 * 2 and summary["epochs"] == 2 and summary["images_per_s"] > 0
    # Basis form, k*k*c_in = 27 < m = 32: A (27 x 8) + BN gamma/beta 2 x 8 + dense 8 x 10 + 10.
    assert summary["parameters"]["trainable"] == 27 * 8 + 16 + 90
    assert summary["parameters"]["frozen"] == 27 * 27  # basis P (k*k*c_in x r)
    assert summary["lc_implementations"] == ["basis"]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "history.csv", "learning_curve.png", "final.weights.h5", "summary.json"} <= names
    assert not [n for n in names if ".tmp" in n]
    assert json.loads((out / "config.json").read_text())["note"] == "test"
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(RunDirectoryError, match="already holds a finished run"):
        train(lambda: small_cnn(False), train_data, test_data, out, recipe, verbose=0, print_fn=None)
    (out / "summary.json").unlink()
    with pytest.raises(RunDirectoryError, match=r"different configuration \(differs in \['recipe'\]\)"):
        train(lambda: small_cnn(False), train_data, test_data, out, recipe.replace(epochs=3),
              config={"note": "test"}, verbose=0, print_fn=None)


def test_validation_every_second_epoch_and_always_at_the_end(tmp_path, cifar_archive):
    train_data = load_dataset("cifar10", "train", cifar_archive, per_class=8)
    test_data = load_dataset("cifar10", "test", cifar_archive, per_class=2)
    recipe = Recipe(epochs=3, batch_size=40)
    out = tmp_path / "run"
    lines = []
    summary = train(lambda: small_cnn(False, widths=(8,)), train_data, test_data, out, recipe,
                    validation_freq=2, verbose=0, print_fn=lines.append)
    # The last line gives the figures rounded, as percentages.
    assert lines[-1].startswith(f"[keras-lc] finished: top-1 {summary['top1']:.2%}, "
                                f"top-5 {summary['top5']:.2%}, 6 steps, ")
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["val_top1"] != "" for row in rows] == [False, True, False]
    # Epoch 3 was not validated, so the summary comes from a final evaluation of the
    # final weights: recompute it independently.
    model = small_cnn(False, widths=(8,))
    model.load_weights(out / "final.weights.h5")
    images, y, _ = load_image_folder(cifar_archive, "test", per_class=2)
    x = normalize(images)
    top1 = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
    assert summary["top1"] == pytest.approx(top1)
    with pytest.raises(ValueError, match="validation_freq=0"):
        train(lambda: small_cnn(False), train_data, test_data, tmp_path / "bad", recipe,
              validation_freq=0, verbose=0, print_fn=None)
    assert not (tmp_path / "bad").exists()


if __name__ == "__main__":
    tiny_run(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "auto",
             augment=len(sys.argv) > 4 and sys.argv[4] == "augment")


def test_a_run_recorded_with_the_cache_path_resumes_as_the_archive_it_is(tmp_path, monkeypatch):
    """Run directories from before `data_source` recorded `folder:<cache path>`: under that
    cache they resume against the `archive:` spelling; another archive (or folder) does not."""
    from keras_lc.training.run_dir import RunDirectory

    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path / "cache"))
    config = {"recipe": {"epochs": 2}, "data": {"dataset": "cifar10",
              "source": f"folder:{tmp_path}/cache/datasets/cifar10-jpeg-fe72f91e441a/cifar10/train"}}
    with RunDirectory.open(tmp_path / "run") as run:
        run.write_config(config)
    same = dict(config, data=dict(config["data"], source="archive:cifar10-jpeg-fe72f91e441a/cifar10/train"))
    with RunDirectory.open(tmp_path / "run") as run:
        assert run.check(same) is True
        for source in ("archive:cifar10-jpeg-0123456789ab/cifar10/train", f"folder:{tmp_path}/cifar10/train"):
            with pytest.raises(RunDirectoryError, match=r"differs in \['data'\]"):
                run.check(dict(config, data=dict(config["data"], source=source)))
