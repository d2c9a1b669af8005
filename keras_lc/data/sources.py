"""Where a split's examples come from: `load_dataset` and the `LoadedDataset` it returns.

`load_dataset` reads one split from an image folder or archive (see
`keras_lc.data.folders`) or from tensorflow-datasets, offline unless asked to
download; the `tf.data.Dataset` of decoded examples is built lazily, on first
access of `LoadedDataset.dataset`.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List

from keras_lc.archives import data_source
from keras_lc.data.datasets import DatasetSpec, get_spec
from keras_lc.data.folders import (
    TEST_SPLIT_FOLDERS,
    check_images,
    decode_images,
    find_image_folder,
    is_image_folder,
    list_image_files,
)


@dataclass
class LoadedDataset:
    """A split of a dataset: its size and classes now, its examples on demand.

    The `tf.data.Dataset` is built on first access of `dataset`, so loading
    runs no TensorFlow op: a `MultiWorkerMirroredStrategy`, which must be
    created before any op, can still be created after `load_dataset`.

    Attributes:
        spec: The dataset's `DatasetSpec`.
        split: The split asked for (`"train"`, `"test"`, ...).
        num_examples: Number of examples.
        class_names: Class names in label order.
        source: Where the examples come from, as `keras_lc.archives.data_source`
            spells it (`archive:...` for an unpacked archive, `folder:...`), or
            `tfds:<directory>`.
        make_dataset: Builds the unbatched `(uint8 image (h, w, channels),
            int32 label)` dataset; `dataset` calls it once.
        make_arrays: Decodes the split into `(uint8 images (n, h, w,
            channels), int32 labels (n,))` without TensorFlow (image folders;
            `None` for tensorflow-datasets); `arrays()` calls it once.
    """

    spec: DatasetSpec
    split: str
    num_examples: int
    class_names: List[str]
    source: str
    make_dataset: Callable = field(repr=False)
    make_arrays: Callable = field(default=None, repr=False)
    _dataset: object = field(default=None, init=False, repr=False, compare=False)
    _arrays: object = field(default=None, init=False, repr=False, compare=False)

    @property
    def dataset(self):
        """The unbatched `tf.data.Dataset` of decoded examples."""
        if self._dataset is None:
            self._dataset = self.make_dataset()
        return self._dataset

    def arrays(self):
        """`(images, labels)` of the whole split as NumPy arrays (decoded once, with Pillow)."""
        if self.make_arrays is None:
            raise ValueError(
                f"{self.spec.name} from {self.source} comes from tensorflow-datasets, which needs "
                "TensorFlow; without TensorFlow pass an image folder or archive (--data-dir)."
            )
        if self._arrays is None:
            self._arrays = self.make_arrays()
        return self._arrays


def _from_image_folder(spec, data_dir, split, per_class, offset):
    splits = TEST_SPLIT_FOLDERS if split == "test" else (split,)
    errors = []
    for candidate in splits:
        try:
            folder = find_image_folder(data_dir, candidate)
            break
        except FileNotFoundError as error:
            errors.append(str(error))
    else:
        raise FileNotFoundError(" ".join(errors))
    paths, labels, class_names = list_image_files(folder, per_class, offset)
    if len(class_names) != spec.num_classes:
        raise ValueError(
            f"'{folder}' has {len(class_names)} class folders but {spec.name} has "
            f"{spec.num_classes} classes. Received: data_dir={str(data_dir)!r}"
        )
    native = spec.native_size
    if native is not None:
        check_images(paths, (native, native), spec.name)

    def decode(path, label):
        import tensorflow as tf

        image = tf.io.decode_image(
            tf.io.read_file(path), channels=spec.channels, expand_animations=False
        )
        if native is not None:
            image = tf.ensure_shape(image, (native, native, spec.channels))
        return image, label

    def make_dataset():
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((paths, labels)).map(
            decode, num_parallel_calls=tf.data.AUTOTUNE
        )

    return LoadedDataset(spec, split, len(paths), class_names, data_source(folder), make_dataset,
                         lambda: (decode_images(paths, spec.channels), labels))


def _from_tfds(spec, data_dir, split, download, per_class, offset):
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise FileNotFoundError(
            f"Dataset {spec.name!r} without an image folder is read by tensorflow-datasets, which "
            f"is not installed here ({error}). Pass an image-folder archive or a folder laid out "
            f"split/class/image.jpg as data_dir. Received: data_dir={data_dir!r}"
        ) from None

    tfds_split = spec.test_split if split == "test" else split
    builder = tfds.builder(spec.name, data_dir=None if data_dir is None else str(data_dir))
    if not download and not builder.is_prepared():
        raise FileNotFoundError(
            f"Dataset {spec.name!r} is not available offline: looked for a prepared "
            f"tensorflow-datasets copy in '{builder.data_dir}'. Provide it by running "
            f"`tfds build {spec.name} --data_dir DIR` on a machine with internet access "
            "(ImageNet needs --manual_dir with the ILSVRC2012 tars) and passing that DIR, "
            "or pass an image-folder archive/folder laid out split/class/image.jpg, "
            "or allow the download (download=True)."
        )
    if per_class is not None or offset:
        raise ValueError(
            "`per_class`/`offset` subsets are only supported for image folders; use a "
            f"tfds split slice such as 'train[:10%]' instead. Received: per_class={per_class!r}, "
            f"offset={offset!r}"
        )
    if download:
        builder.download_and_prepare()

    def make_dataset():  # what tfds.load(..., as_supervised=True) returns
        dataset = builder.as_dataset(split=tfds_split, as_supervised=True, shuffle_files=False)
        return dataset.map(lambda x, y: (x, tf.cast(y, tf.int32)))

    try:
        num_examples = int(builder.info.splits[tfds_split].num_examples)
    except KeyError:  # no split metadata (e.g. tfds.testing.mock_data): count
        num_examples = int(make_dataset().reduce(0, lambda count, _: count + 1))
    class_names = list(builder.info.features["label"].names)
    return LoadedDataset(spec, split, num_examples, class_names, f"tfds:{builder.data_dir}", make_dataset)


def load_dataset(name, split, data_dir=None, download=False, per_class=None, offset=0):
    """One split of a dataset (`LoadedDataset`; its `tf.data` examples are built lazily).

    Args:
        name: A key of `DATASETS` (`cifar10`, `cifar100`, `svhn_cropped`,
            `fashion_mnist`, `imagenet2012`); fixes the constants and the
            augmentation.
        split: `"train"` or `"test"` (`"test"` maps to ImageNet's
            `validation`; image folders try `test`, `val`, `validation`).
            tfds slices such as `"train[:10%]"` pass through to tfds.
        data_dir: An image-folder archive (`.tar.gz`, unpacked once into
            `cache_dir()/datasets`), a folder laid out `split/class/image.jpg`,
            or a tensorflow-datasets data directory (`None`: tfds' default).
        download: Let tfds download and prepare a missing dataset. Default
            `False`: a missing dataset fails at once with a message saying
            where it looked and how to provide it; nothing touches the network.
        per_class, offset: Image folders only: take `per_class` images of
            each class after skipping `offset` (file-name order).

    Example:

    An image folder (here the 100 shipped test images written as one; the
    CIFAR-10 archive `cifar10-jpeg.tar.gz` is given the same way):

    >>> import pathlib, tempfile
    >>> import keras
    >>> from keras_lc.data import make_pipeline
    >>> from keras_lc.samples import cifar10_test_sample
    >>> sample, root = cifar10_test_sample(), pathlib.Path(tempfile.mkdtemp())
    >>> for image, name in zip(sample.images, sample.files):  # e.g. test/cat/0990.jpg
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     keras.utils.save_img(root / name.replace(".jpg", ".png"), image)
    >>> test = load_dataset("cifar10", "test", root)
    >>> test.num_examples, test.class_names[:3]
    (100, ['airplane', 'automobile', 'bird'])
    >>> images, labels = next(iter(make_pipeline(test, training=False, batch_size=32)))
    >>> tuple(images.shape), tuple(labels.shape)
    ((32, 32, 32, 3), (32, 10))
    """
    spec = get_spec(name)
    if data_dir is not None and is_image_folder(data_dir):
        return _from_image_folder(spec, data_dir, split, per_class, offset)
    if data_dir is not None and not Path(data_dir).exists():
        raise FileNotFoundError(
            f"Data directory not found: '{data_dir}'. Pass an image-folder archive "
            "(e.g. cifar10-jpeg.tar.gz), a folder laid out split/class/image.jpg, or a "
            "tensorflow-datasets data directory."
        )
    return _from_tfds(spec, data_dir, split, download, per_class, offset)
