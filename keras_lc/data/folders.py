"""Image folders: finding a split's folder, listing, checking and decoding its images.

An image folder (or an archive of one, unpacked once into the cache by
`keras_lc.archives`) is laid out `split/class/image.ext`; the class index is
the alphabetical order of the class folder names (for CIFAR-10 the standard
label order). `list_image_files` lists a split, `check_images` checks every
file before any training starts, `load_image_folder` (and `decode_images`)
decodes a split into NumPy arrays, `find_image_folder` and `is_image_folder` locate one.
"""

import re
from pathlib import Path

import numpy as np

from keras_lc.archives import DataError, extract_archive
from keras_lc.files import one_line

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

#: Evaluation-split folder names tried, in order, for image folders.
TEST_SPLIT_FOLDERS = ("test", "val", "validation")


#: How many of the folders searched a "not found" message names (the rest are counted).
LOOKED_IN_SHOWN = 4


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
    shown = [str(c) for c in candidates[:LOOKED_IN_SHOWN]]
    more = len(candidates) - len(shown)
    raise FileNotFoundError(
        f"No '{split}' folder found in '{data}' (looked in {shown}"
        f"{f' and {more} more subfolders' if more else ''}). "
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
    paths, labels, class_names = list_image_files(
        find_image_folder(data, split), per_class, offset
    )
    check_images(paths)
    return decode_images(paths), labels, class_names


def decode_images(paths, channels=3):
    """uint8 `(n, h, w, channels)` of image files of one size: TensorFlow's decode where it is
    installed (what the tf.data pipeline feeds), else Pillow's.

    The two differ for JPEGs: TensorFlow's default is libjpeg's fast integer
    DCT, Pillow's the accurate one; on the CIFAR-10 JPEGs about two thirds of
    the values differ, by at most 5 levels (`tests/data/test_arrays.py`).
    TensorFlow's stays the default where it exists so every run and
    published figure sees the pixels the published models were trained on.
    """
    from keras_lc.startup import has_tensorflow

    if has_tensorflow():
        return _decode_with_tensorflow(paths, channels)
    from PIL import Image

    mode = {1: "L", 3: "RGB"}[channels]
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert(mode))
        except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ...
            raise DataError(
                f"Image '{path}' cannot be decoded ({one_line(error)}); replace it with a valid "
                "JPEG or PNG file or remove it."
            ) from None
        images.append(array if channels == 3 else array[..., None])
    return np.stack(images)


def _decode_with_tensorflow(paths, channels):
    """One tf.data pipeline decoding in parallel (3.6x a per-file eager loop on 2 cores,
    bit-identical); on a decoding error, that loop over the files, which names the one failing."""
    import tensorflow as tf

    @tf.autograph.experimental.do_not_convert
    def decode(path):
        return tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)

    names = [str(path) for path in paths]
    batches = (tf.data.Dataset.from_tensor_slices(names)
               .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(1024))
    try:
        return np.concatenate([batch.numpy() for batch in batches])
    except tf.errors.OpError:
        pass  # which file: decoded one by one below
    images = []
    for name in names:
        try:
            images.append(decode(name).numpy())
        except tf.errors.OpError as error:
            reason = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", error.message.splitlines()[0]).strip()
            raise DataError(
                f"Image '{name}' cannot be decoded ({reason}); replace it with a valid JPEG or "
                "PNG file or remove it."
            ) from None
    return np.stack(images)


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
                one_line(error))
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


def list_image_files(folder, per_class=None, offset=0):
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
