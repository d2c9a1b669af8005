"""The NumPy input pipeline (`keras_lc.data.arrays`), used where TensorFlow is not installed."""

import numpy as np
import pytest

from keras_lc import startup
from keras_lc.data import get_spec, make_pipeline
from keras_lc.data.arrays import ArrayPipeline, cifar_augment, example_draws

SPEC = get_spec("cifar10")


def _reference_augment(image, row, col, flip, pad=4):
    """One image, padded with zeros, cropped at (row, col) and flipped: written out directly."""
    h, w, c = image.shape
    padded = np.zeros((h + 2 * pad, w + 2 * pad, c), image.dtype)
    padded[pad:pad + h, pad:pad + w] = image
    crop = padded[row:row + h, col:col + w]
    return crop[:, ::-1] if flip else crop


def test_the_augmentation_is_a_crop_of_the_padded_image_and_a_flip():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(400, 8, 6, 3), dtype=np.uint8)
    draws = example_draws(7, 2, np.arange(400))
    out = cifar_augment(images, draws)
    rows, cols = draws % np.uint64(9), (draws >> np.uint64(16)) % np.uint64(9)
    flips = (draws >> np.uint64(32)) & np.uint64(1)
    for i in range(400):
        expected = _reference_augment(images[i], int(rows[i]), int(cols[i]), bool(flips[i]))
        assert np.array_equal(out[i], expected), i
    assert set(rows.tolist()) == set(range(9)) and set(cols.tolist()) == set(range(9))
    assert 0.4 < flips.mean() < 0.6


def test_draws_are_a_function_of_seed_epoch_and_index_alone():
    a = example_draws(3, 5, np.arange(1000))
    assert np.array_equal(a[[10, 999]], example_draws(3, 5, np.array([10, 999])))
    assert len(np.unique(a)) == 1000
    for other in (example_draws(4, 5, np.arange(1000)), example_draws(3, 6, np.arange(1000))):
        assert np.mean(a == other) < 0.01


def _pipeline(epochs, n=300, augment=True):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    return ArrayPipeline(images, labels, SPEC, True, 64, augment, 11, epochs), images, labels


def _epoch(pipeline):
    batches = [pipeline[i] for i in range(len(pipeline))]
    pipeline.on_epoch_end()
    return batches


def test_a_resumed_pipeline_serves_the_uninterrupted_batches():
    full, _, _ = _pipeline(range(0, 3))
    resumed, _, _ = _pipeline(range(2, 3))
    epochs = [_epoch(full) for _ in range(3)]
    for (x, y), (rx, ry) in zip(epochs[2], _epoch(resumed)):
        assert np.array_equal(x, rx) and np.array_equal(y, ry)
    first = np.concatenate([x for x, _ in epochs[0]])
    assert not np.array_equal(first, np.concatenate([x for x, _ in epochs[1]]))  # reshuffled, recropped


def test_batches_are_normalized_one_hot_and_cover_the_split_once():
    pipeline, images, labels = _pipeline(range(0, 1), augment=False)
    batches = _epoch(pipeline)
    assert len(pipeline) == 5 and [len(x) for x, _ in batches] == [64, 64, 64, 64, 44]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    order = np.random.default_rng([11, 0]).permutation(300)
    mean, std = np.asarray(SPEC.mean) * 255, np.asarray(SPEC.std) * 255
    assert np.allclose(x, (images[order] - mean) / std, atol=1e-5) and x.dtype == np.float32
    assert np.array_equal(y, np.eye(10)[labels[order]]) and y.dtype == np.float32
    raw = ArrayPipeline(images, labels, SPEC, False, 100, normalize=False)
    assert np.array_equal(np.concatenate([raw[i][0] for i in range(3)]), images)  # in order, raw


def test_datasets_it_cannot_serve_are_named():
    with pytest.raises(ValueError, match=r"imagenet2012 needs the tf.data pipeline: install TensorFlow"):
        ArrayPipeline(np.zeros((1, 8, 8, 3), np.uint8), [0], get_spec("imagenet2012"), True, 1)


@pytest.fixture
def no_tensorflow(monkeypatch):
    monkeypatch.setattr(startup, "has_tensorflow", lambda: False)


def test_without_tensorflow_make_pipeline_gives_pillows_pixels(cifar_archive, no_tensorflow, monkeypatch):
    from PIL import Image

    from keras_lc.data import load_dataset

    test = load_dataset("cifar10", "test", cifar_archive, per_class=8)
    pipeline = make_pipeline(test, training=False, batch_size=32, normalize=False)
    assert isinstance(pipeline, ArrayPipeline)
    x = np.concatenate([pipeline[i][0] for i in range(len(pipeline))])
    from keras_lc.data import find_image_folder, list_image_files

    files, labels, _ = list_image_files(find_image_folder(cifar_archive, "test"), per_class=8)
    assert np.array_equal(x, np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
    monkeypatch.undo()
    tf_pixels = np.concatenate([np.asarray(b[0]) for b in make_pipeline(test, training=False, batch_size=32,
                                                                         normalize=False)])
    difference = np.abs(x - tf_pixels)  # TensorFlow's fast-DCT decode against Pillow's accurate one
    assert difference.max() <= 5 and 0.4 < np.mean(difference > 0) < 0.9, (difference.max(), np.mean(difference > 0))
    with pytest.raises(ValueError, match=r"has no RandAugment, MixUp, CutMix or resizing"):
        monkeypatch.setattr(startup, "has_tensorflow", lambda: False)
        make_pipeline(test, training=True, batch_size=8, image_size=64)
