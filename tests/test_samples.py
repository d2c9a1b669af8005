"""keras_lc.samples: the shipped CIFAR-10 test images are the archive's, bit for bit."""

import importlib.resources
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_lc.samples import SAMPLE_FILE, cifar10_test_sample, write_cifar10_test_sample

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="module")
def sample():
    return cifar10_test_sample()


def _jpeg_bytes(archive, files):
    """{file: bytes} read straight from the archive (or folder), not through keras_lc.data."""
    archive = Path(archive)
    if archive.is_dir():
        roots = [archive, *[p for p in archive.iterdir() if p.is_dir()]]
        return {f: next(r / f for r in roots if (r / f).is_file()).read_bytes() for f in files}
    wanted, found = set(files), {}
    with tarfile.open(archive) as tar:
        for member in tar:  # names are cifar10/test/CLASS/NNNN.jpg
            name = member.name.split("/", 1)[-1]
            if name in wanted:
                found[name] = tar.extractfile(member).read()
                if len(found) == len(wanted):
                    break
    return found


def test_shapes_dtypes_labels_and_file_names(sample):
    assert sample.images.shape == (100, 32, 32, 3) and sample.images.dtype == np.uint8
    assert sample.labels.dtype == np.int32
    np.testing.assert_array_equal(sample.labels, np.repeat(np.arange(10), 10))
    assert sample.class_names == CIFAR10_CLASSES
    # the last ten of each class's 1000 test images: disjoint from the first-N slices the tests use
    assert sample.files == tuple(f"test/{c}/{i:04d}.jpg" for c in CIFAR10_CLASSES for i in range(990, 1000))
    assert 20 < sample.images.mean() < 235 and sample.images.std() > 20  # real pictures, not blank
    with pytest.raises(ValueError, match="read-only"):
        sample.images[0, 0, 0, 0] = 0


def test_images_are_the_archive_jpegs_bit_for_bit(sample, cifar_archive):
    raw = _jpeg_bytes(cifar_archive, sample.files)
    assert sorted(raw) == sorted(sample.files)
    decoded = np.stack([tf.io.decode_jpeg(raw[f], channels=3).numpy() for f in sample.files])
    assert np.array_equal(decoded, sample.images)


def test_writer_reproduces_the_shipped_file(sample, cifar_archive, tmp_path):
    path = tmp_path / "sample.npz"
    written = write_cifar10_test_sample(cifar_archive, path)
    assert [p.name for p in tmp_path.iterdir()] == ["sample.npz"]  # no temporary file left
    with np.load(path) as data:
        assert np.array_equal(data["images"], sample.images)
        assert np.array_equal(data["labels"], sample.labels)
        assert tuple(data["files"].tolist()) == sample.files == written.files


def test_shipped_file_is_small_and_a_package_resource():
    resource = importlib.resources.files("keras_lc") / "sample_data" / SAMPLE_FILE
    assert resource.is_file()
    assert len(resource.read_bytes()) < 400 * 1024


def test_loaded_dataset_goes_through_the_training_pipeline(sample):
    from keras_lc.data import make_pipeline, normalize

    loaded = sample.loaded_dataset()
    assert loaded.num_examples == 100 and loaded.class_names == list(CIFAR10_CLASSES)
    x, onehot = next(iter(make_pipeline(loaded, training=False, batch_size=100)))
    np.testing.assert_array_equal(np.argmax(onehot, -1), sample.labels)
    # the pipeline standardizes in another order of float32 operations than normalize
    np.testing.assert_allclose(x.numpy(), normalize(sample.images), rtol=0, atol=5e-7)
