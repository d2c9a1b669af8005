"""Datasets: tfds and image folders, the paper's tf.data pipelines, normalization constants.

`load_dataset` gives one split as decoded examples (from tensorflow-datasets
or from an image folder/archive), `make_pipeline` the batched, augmented,
normalized `tf.data` pipeline; `DATASETS` states every per-dataset constant.

The CIFAR-10 used here is an archive of JPEGs laid out
`cifar10/{train,test}/{class}/NNNN.jpg` (class index = alphabetical order of
the folder names, the standard CIFAR-10 label order).
"""

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np

# The cache, hashing and archive unpacking live in `keras_lc.archives`; re-exported here.
from keras_lc.archives import CacheError, DataError, cache_dir, extract_archive, sha256_of  # noqa: F401

#: Per-channel mean and standard deviation of the CIFAR-10 training images
#: (pixel values in [0, 1]); the normalization every CIFAR model here uses.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def find_image_folder(data, split):
    """The `split/` folder (one subfolder per class) inside `data`.

    `data` is an archive (unpacked into the cache) or a folder holding
    `split/` directly or one level down (e.g. `cifar10/train`).
    """
    data = Path(data)
    root = extract_archive(data) if data.is_file() else data
    candidates = [root / split] + sorted(p / split for p in root.glob("*") if p.is_dir())
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"No '{split}' folder found in '{data}' (looked in {[str(c) for c in candidates]}). "
        "Expected a layout split/class_name/image.jpg."
    )


def load_image_folder(data, split, per_class=None, offset=0):
    """Decode an image folder split into NumPy arrays.

    Args:
        data: Archive or folder (see `find_image_folder`).
        split: e.g. `"train"` or `"test"`.
        per_class: Take at most this many images of each class (in file-name
            order, after skipping `offset`); `None` takes all.
        offset: Images of each class to skip first.

    Returns:
        `(images, labels, class_names)`: uint8 `(n, h, w, 3)`, int32 `(n,)`.
    """
    import tensorflow as tf

    paths, labels, class_names = _list_image_files(
        find_image_folder(data, split), per_class, offset
    )
    check_images(paths)
    images = []
    for path in paths:
        try:
            images.append(tf.io.decode_image(tf.io.read_file(path), channels=3).numpy())
        except tf.errors.OpError as error:
            reason = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", error.message.splitlines()[0]).strip()
            raise DataError(
                f"Image '{path}' cannot be decoded ({reason}); replace it with a valid JPEG or "
                "PNG file or remove it."
            ) from None
    return np.stack(images), labels, class_names


#: The last bytes of a complete file of each accepted format.
_END_MARKERS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND"}


def check_images(paths, size=None, dataset=None):
    """Check that every file is a complete JPEG or PNG and all have one size; `DataError` if not.

    Reads each file's header and last 64 bytes (Pillow, no decoding: about
    2 s for CIFAR-10's 50,000 training JPEGs on 2 busy cores), so a
    non-image, a truncated file or an image of the wrong size fails when the
    dataset is loaded, naming the file, rather than in the middle of `fit`.
    `size` is the required `(width, height)`; `None`: that of the first file.
    """
    from PIL import Image, UnidentifiedImageError

    first = None
    for path in paths:
        try:
            with open(path, "rb") as f:
                with Image.open(f) as image:
                    kind, got = image.format, image.size
                f.seek(max(0, f.seek(0, 2) - 64))
                tail = f.read()
        except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ...
            text = "not an image Pillow recognizes" if isinstance(error, UnidentifiedImageError) else (
                " ".join(str(error).split()) or type(error).__name__)
            raise DataError(
                f"Image '{path}' cannot be read ({text}); expected a JPEG or PNG image."
            ) from None
        if kind not in _END_MARKERS:
            raise DataError(f"Image '{path}' is a {kind} file; expected a JPEG or PNG image.")
        if _END_MARKERS[kind] not in tail:
            raise DataError(
                f"Image '{path}' is truncated (no {kind} end marker); replace it with a "
                "complete file or remove it."
            )
        if size is None:
            size, first = got, path
        if got != tuple(size):
            where = f"'{first}' is" if first else f"{dataset or 'the'} images are"
            raise DataError(
                f"Image '{path}' is {got[0]}x{got[1]} pixels but {where} {size[0]}x{size[1]}; "
                "resize it or remove it."
            )
    return size


def normalize(images, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """uint8 images -> float32 per-channel standardized images."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


# --------------------------------------------------------------------------
# Dataset table: every per-dataset constant is stated here and only here.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """What the pipelines need to know about one dataset.

    Attributes:
        name: The tensorflow-datasets name.
        num_classes: Number of classes.
        image_size: Side of the square images the models see.
        native_size: Side of the stored images (`None`: variable, ImageNet).
        channels: Channels of the stored images (1 for Fashion-MNIST, which
            the pipeline repeats to 3 so every model takes RGB input).
        mean, std: Per-channel statistics of the training images in [0, 1]
            (3 values; the grey level repeated for Fashion-MNIST).
        augmentation: `"cifar"` (pad 4 + random 32 crop + horizontal flip),
            `"none"`, or `"imagenet"` (random-resized crop + flip; RandAugment,
            MixUp and CutMix on request).
        test_split: The tfds split holding labelled evaluation images.
    """

    name: str
    num_classes: int
    image_size: int
    native_size: Optional[int]
    channels: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    augmentation: str
    test_split: str = "test"


#: The datasets of the paper (Appendix A) with their normalization constants.
DATASETS = {
    spec.name: spec
    for spec in (
        DatasetSpec("cifar10", 10, 32, 32, 3, CIFAR10_MEAN, CIFAR10_STD, "cifar"),
        DatasetSpec(
            "cifar100", 100, 32, 32, 3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "cifar"
        ),
        DatasetSpec(
            "svhn_cropped", 10, 32, 32, 3, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), "none"
        ),
        DatasetSpec("fashion_mnist", 10, 32, 28, 1, (0.2860,) * 3, (0.3530,) * 3, "none"),
        DatasetSpec(
            "imagenet2012", 1000, 224, None, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
            "imagenet", test_split="validation",
        ),
    )
}

#: Evaluation-split folder names tried, in order, for image folders.
TEST_SPLIT_FOLDERS = ("test", "val", "validation")


def get_spec(name):
    """The `DatasetSpec` of a dataset name (see `DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Known datasets: {sorted(DATASETS)}.")
    return DATASETS[name]


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
        source: Where the examples come from (folder or tfds directory).
        make_dataset: Builds the unbatched `(uint8 image (h, w, channels),
            int32 label)` dataset; `dataset` calls it once.
    """

    spec: DatasetSpec
    split: str
    num_examples: int
    class_names: List[str]
    source: str
    make_dataset: Callable = field(repr=False)
    _dataset: object = field(default=None, init=False, repr=False, compare=False)

    @property
    def dataset(self):
        """The unbatched `tf.data.Dataset` of decoded examples."""
        if self._dataset is None:
            self._dataset = self.make_dataset()
        return self._dataset


def _list_image_files(folder, per_class=None, offset=0):
    """Sorted `(paths, labels, class_names)` of a split folder `class/image.ext`."""
    folder = Path(folder)
    class_names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    paths, labels = [], []
    stop = None if per_class is None else offset + per_class
    for label, class_name in enumerate(class_names):
        files = sorted(
            p for p in (folder / class_name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
        )
        paths += [str(p) for p in files[offset:stop]]
        labels += [label] * len(files[offset:stop])
    if not paths:
        raise FileNotFoundError(
            f"No images found under '{folder}': expected class folders holding "
            f"{'/'.join(IMAGE_EXTENSIONS)} files."
        )
    return paths, np.asarray(labels, dtype=np.int32), class_names


def is_image_folder(data_dir):
    """True if `data_dir` is an archive or holds `split/class/image` folders."""
    path = Path(data_dir)
    if path.is_file():
        return True
    for split in ("train",) + TEST_SPLIT_FOLDERS:
        try:
            find_image_folder(path, split)
            return True
        except (FileNotFoundError, NotADirectoryError):
            continue
    return False


def _from_image_folder(spec, data_dir, split, per_class, offset):
    import tensorflow as tf

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
    paths, labels, class_names = _list_image_files(folder, per_class, offset)
    if len(class_names) != spec.num_classes:
        raise ValueError(
            f"'{folder}' has {len(class_names)} class folders but {spec.name} has "
            f"{spec.num_classes} classes. Received: data_dir={str(data_dir)!r}"
        )
    native = spec.native_size
    if native is not None:
        check_images(paths, (native, native), spec.name)

    def decode(path, label):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=spec.channels, expand_animations=False
        )
        if native is not None:
            image = tf.ensure_shape(image, (native, native, spec.channels))
        return image, label

    def make_dataset():
        return tf.data.Dataset.from_tensor_slices((paths, labels)).map(
            decode, num_parallel_calls=tf.data.AUTOTUNE
        )

    return LoadedDataset(spec, split, len(paths), class_names, f"folder:{folder}", make_dataset)


def _from_tfds(spec, data_dir, split, download, per_class, offset):
    import tensorflow as tf
    import tensorflow_datasets as tfds

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

    >>> train = load_dataset("cifar10", "train", "cifar10-jpeg.tar.gz")  # doctest: +SKIP
    >>> batches = make_pipeline(train, training=True, batch_size=256)  # doctest: +SKIP
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


# --------------------------------------------------------------------------
# tf.data pipelines
# --------------------------------------------------------------------------


def augmentation_seed(seed, epoch, index):
    """The stateless seed (an int64 pair) of example `index`'s augmentation in `epoch`.

    Every random choice of the training pipeline (crop offsets, flips) is a
    function of this pair alone, so a run resumed at any epoch draws exactly
    the augmentations of an uninterrupted run. `seed`, `epoch` and `index` may
    be Python ints or int64 tensors.
    """
    import tensorflow as tf

    base = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))


def _cifar_augment(image, key, pad=4):
    """Zero-pad by `pad`, random crop back to the image's size, random horizontal flip.

    Stateless: the crop offsets (uniform in [0, 2 * pad]) and the flip
    (probability 1/2) are functions of `key` (see `augmentation_seed`).
    """
    import tensorflow as tf

    crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    cropped = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_key)
    return tf.image.stateless_random_flip_left_right(cropped, seed=flip_key)


def _random_resized_crop(image, size, key, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """Inception-style crop: random area fraction and aspect ratio, resized to `size` (stateless)."""
    import tensorflow as tf

    begin, crop, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=key,
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    cropped = tf.slice(image, begin, crop)
    cropped.set_shape([None, None, image.shape[-1]])
    return tf.image.resize(cropped, (size, size), antialias=True)


def _center_crop(image, size, crop_fraction):
    """Resize the shorter side to `size / crop_fraction`, then take the central `size` crop."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / crop_fraction) / tf.reduce_min(shape)
    resized = tf.cast(tf.round(shape * scale), tf.int32)
    image = tf.image.resize(image, resized, antialias=True)
    top, left = (resized[0] - size) // 2, (resized[1] - size) // 2
    return tf.image.crop_to_bounding_box(image, top, left, size, size)


def make_pipeline(
    data,
    training,
    batch_size,
    augment=True,
    cache=None,
    shuffle_buffer=None,
    seed=None,
    image_size=None,
    randaugment=None,
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
    crop_fraction=0.875,
    epochs=None,
):
    """Batched, augmented, normalized `tf.data` pipeline over a `LoadedDataset`.

    Yields `(float32 images (b, s, s, 3) standardized with the dataset's
    mean/std, float32 one-hot labels (b, classes))`. Decoding runs in
    parallel, decoded images are cached (in memory by default for the
    low-resolution datasets), and batches are prefetched.

    Augmentation (training only, `augment=True`) follows the paper's
    Appendix A: CIFAR pad 4 + random crop + horizontal flip; SVHN and
    Fashion-MNIST none (Fashion-MNIST is always upscaled to 32x32 and
    repeated to 3 channels); ImageNet random-resized crop + flip, then on
    request Keras' `RandAugment` (`randaugment=(num_ops, factor)`) and
    `MixUp`/`CutMix` (with both, each batch gets one of them at random).
    Evaluation images are not modified (ImageNet: resize + center crop).

    Args:
        data: A `LoadedDataset` (see `load_dataset`).
        training: Shuffle and augment (`True`) or keep order (`False`).
        batch_size: Global batch size (distribution strategies split it).
        augment: Apply the training augmentation.
        cache: Cache decoded images: `True` (memory), a file path, or
            `False`. `None`: memory, except for ImageNet.
        shuffle_buffer: Shuffle buffer; `None`: the whole split (ImageNet
            10000).
        seed: Seed of the shuffle order (`None`: random).
        epochs: Training only: a `range` of epoch indices. The pipeline then
            holds exactly those epochs one after the other (iterate it once,
            e.g. `fit(..., steps_per_epoch=ceil(n / batch_size))`), and the
            order of epoch e depends on `(seed, e)` alone. So a run resumed
            at epoch e sees the same order as an uninterrupted one, and so
            does a run under a distribution strategy (for which Keras reads
            one batch before training, which would advance a reshuffling
            dataset). `None`: one epoch, reshuffled at every iteration.

    Resume-exactness: the CIFAR crop offsets and flips and the ImageNet
    crops and flips are stateless, each a function of `augmentation_seed(seed,
    epoch, example index)`, so with `epochs` a run resumed at any epoch sees
    exactly the batches of an uninterrupted one. Keras' `RandAugment`,
    `MixUp` and `CutMix` (ImageNet, on request) draw from their own seeded
    generators and restart with the process.
    """
    import keras
    import tensorflow as tf

    spec = data.spec
    size = image_size or spec.image_size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    imagenet = spec.augmentation == "imagenet"
    if (randaugment or mixup_alpha or cutmix_alpha) and not imagenet:
        raise ValueError(
            "RandAugment/MixUp/CutMix belong to the ImageNet-style pipeline; the paper's "
            f"{spec.name} recipe uses {spec.augmentation!r} augmentation. Received: "
            f"randaugment={randaugment!r}, mixup_alpha={mixup_alpha!r}, cutmix_alpha={cutmix_alpha!r}"
        )
    augment = bool(augment and training)
    autotune = tf.data.AUTOTUNE
    dataset = data.dataset
    if cache is None:
        cache = not imagenet
    if cache:
        dataset = dataset.cache("" if cache is True else str(cache))
    classes = spec.num_classes
    mean = tf.constant(spec.mean, tf.float32) * 255.0
    std = tf.constant(spec.std, tf.float32) * 255.0
    randaug = None
    if imagenet and augment and randaugment:
        num_ops, factor = randaugment
        randaug = keras.layers.RandAugment(value_range=(0, 255), num_ops=num_ops, factor=factor)
    cifar_augment = augment and spec.augmentation == "cifar"
    resize = not imagenet and spec.native_size != size

    def per_image(image, label, key):  # before batching: ImageNet crops differ in size
        if imagenet and augment:
            crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
            image = _random_resized_crop(image, size, crop_key)
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_key)
            if randaug is not None:
                image = randaug(image)
        elif imagenet:
            image = _center_crop(image, size, crop_fraction)
        elif cifar_augment:
            if resize:
                image = tf.image.resize(tf.cast(image, tf.float32), (size, size))
            image = _cifar_augment(image, key)
        return image, label

    def batched(examples):
        if imagenet or cifar_augment:
            examples = examples.map(per_image, num_parallel_calls=autotune)
        else:
            examples = examples.map(lambda image, label, key: (image, label))
        return examples.batch(batch_size, drop_remainder=False, num_parallel_calls=autotune)

    def per_batch(images, labels):
        images = tf.cast(images, tf.float32)
        if spec.channels == 1:
            images = tf.image.grayscale_to_rgb(images)
        if resize and not cifar_augment:
            images = tf.image.resize(images, (size, size))
        return (images - mean) / std, tf.one_hot(labels, classes)

    def keyed(epoch_seed, epoch):
        """(index, (image, label)) -> (image, label, the example's augmentation seed)."""
        return lambda index, example: (*example, augmentation_seed(epoch_seed, epoch, index))

    # Each example carries its index in the split: with the seed and the epoch,
    # the key of its augmentation.
    dataset = dataset.enumerate()
    buffer = shuffle_buffer or (10_000 if imagenet else max(data.num_examples, 1))
    if training and epochs is not None:
        if len(epochs) == 0:
            raise ValueError(f"`epochs` must be a non-empty range. Received: epochs={epochs!r}")
        base_seed = 0 if seed is None else int(seed)
        dataset = functools.reduce(
            lambda joined, more: joined.concatenate(more),  # batches never straddle epochs
            [
                batched(
                    dataset.shuffle(buffer, seed=base_seed * 1_000_003 + e, reshuffle_each_iteration=False)
                    .map(keyed(base_seed, e))
                )
                for e in epochs
            ],
        )
    elif training:
        # No epoch index: each iteration draws fresh per-example seeds instead.
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = batched(
            tf.data.Dataset.zip(dataset, draws).map(
                lambda indexed, draw: (*indexed[1], augmentation_seed(draw, -1, indexed[0]))
            )
        )
    else:
        dataset = batched(dataset.map(keyed(0, 0)))
    dataset = dataset.map(per_batch, num_parallel_calls=autotune)
    if augment and (mixup_alpha or cutmix_alpha):
        mixers = []
        if mixup_alpha:
            mixers.append(keras.layers.MixUp(alpha=mixup_alpha))
        if cutmix_alpha:
            mixers.append(keras.layers.CutMix(factor=cutmix_alpha))

        def mix(images, labels):
            batch = {"images": images, "labels": labels}
            if len(mixers) == 1:
                out = mixers[0](batch)
            else:
                out = tf.cond(
                    tf.random.uniform([]) < 0.5, lambda: mixers[0](batch), lambda: mixers[1](batch)
                )
            return out["images"], out["labels"]

        dataset = dataset.map(mix, num_parallel_calls=autotune)
    return dataset.prefetch(autotune)
