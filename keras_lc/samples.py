"""Real CIFAR-10 test images shipped with the package, for demos without a download.

`cifar10_test_sample()` returns 100 real CIFAR-10 test images, 10 per class:
the last ten of each class's test folder (`test/CLASS/0990.jpg` to
`0999.jpg`), so they do not overlap the first images of each class that the
tests and `--test-per-class` runs use. The file is
`keras_lc/sample_data/cifar10_test_sample.npz`, read with `importlib.resources`
so it works from an installed wheel; `write_cifar10_test_sample` wrote it
from the CIFAR-10 JPEG archive.
"""

import importlib.resources
import io
from pathlib import Path
from typing import NamedTuple, Tuple

import numpy as np

from keras_lc.data import find_image_folder, list_image_files, load_image_folder
from keras_lc.files import atomic_path

SAMPLE_FILE = "cifar10_test_sample.npz"
#: Which test images the sample holds: `PER_CLASS` per class after skipping `OFFSET`.
PER_CLASS, OFFSET = 10, 990


class ImageSample(NamedTuple):
    """A small labelled image set.

    Attributes:
        images: uint8 `(n, 32, 32, 3)` RGB images, as decoded from the JPEGs.
        labels: int32 `(n,)` class indices.
        class_names: Class names in label order.
        files: Each image's source file, relative to the dataset folder
            (e.g. `"test/cat/0990.jpg"`).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: Tuple[str, ...]
    files: Tuple[str, ...]

    def loaded_dataset(self, dataset="cifar10"):
        """The images as a `keras_lc.data.LoadedDataset` of `dataset`.

        `keras_lc.data.make_pipeline(sample.loaded_dataset(), training=False,
        batch_size=...)` then normalizes them exactly as training and
        evaluation do.
        """
        import tensorflow as tf

        from keras_lc.data import LoadedDataset, get_spec

        images, labels = self.images, self.labels
        return LoadedDataset(
            get_spec(dataset), "test", len(labels), list(self.class_names), "keras_lc.samples",
            lambda: tf.data.Dataset.from_tensor_slices((images, labels)),
        )


def cifar10_test_sample():
    """The 100 shipped CIFAR-10 test images (10 per class), uint8, with labels.

    Feed them to a CIFAR-10 model through `keras_lc.data.make_pipeline`
    (`sample.loaded_dataset()`), which normalizes as training does, or after
    `keras_lc.data.normalize` (the same to within float32 rounding).

    Example:

    >>> from keras_lc.samples import cifar10_test_sample
    >>> sample = cifar10_test_sample()
    >>> sample.images.shape, sample.class_names[3], sample.files[30]
    ((100, 32, 32, 3), 'cat', 'test/cat/0990.jpg')
    """
    resource = importlib.resources.files("keras_lc") / "sample_data" / SAMPLE_FILE
    with np.load(io.BytesIO(resource.read_bytes()), allow_pickle=False) as data:
        images = data["images"]
        images.setflags(write=False)
        labels = data["labels"]
        labels.setflags(write=False)
        return ImageSample(images, labels, tuple(data["class_names"].tolist()),
                           tuple(data["files"].tolist()))


def write_cifar10_test_sample(archive, path):
    """Writes the sample file from the CIFAR-10 archive (or its folder), atomically.

    Args:
        archive: The CIFAR-10 image-folder archive (`cifar10-jpeg.tar.gz`) or
            its unpacked folder (see `keras_lc.data.find_image_folder`).
        path: The `.npz` file to write.

    Returns:
        The written `ImageSample`.
    """
    folder = find_image_folder(archive, "test")
    paths, _, _ = list_image_files(folder, PER_CLASS, OFFSET)
    images, labels, class_names = load_image_folder(archive, "test", per_class=PER_CLASS, offset=OFFSET)
    files = [Path(p).relative_to(folder.parent).as_posix() for p in paths]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, images=images, labels=labels.astype(np.int32),
                            class_names=np.asarray(class_names), files=np.asarray(files))
    return ImageSample(images, labels, tuple(class_names), tuple(files))
