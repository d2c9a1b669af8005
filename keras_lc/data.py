"""Datasets: image-folder archives unpacked once into a cache, normalization constants.

The CIFAR-10 used here is an archive of JPEGs laid out
`cifar10/{train,test}/{class}/NNNN.jpg` (class index = alphabetical order of
the folder names, the standard CIFAR-10 label order).
"""

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

#: Per-channel mean and standard deviation of the CIFAR-10 training images
#: (pixel values in [0, 1]); the normalization every CIFAR model here uses.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def cache_dir(path=None):
    """The cache directory: `path`, else `$KERAS_LC_CACHE`, else `~/.cache/keras_lc`.

    The environment variable is read at call time.
    """
    if path is None:
        path = os.environ.get("KERAS_LC_CACHE") or os.path.join(
            os.path.expanduser("~"), ".cache", "keras_lc"
        )
    return Path(path)


def sha256_of(path, chunk_size=1 << 20):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extract_archive(archive, cache=None):
    """Unpack a `.tar.gz`/`.tgz`/`.tar` archive once into the cache; return its folder.

    The archive is unpacked into a temporary folder beside the target and
    renamed into place, so an interrupted unpack never leaves a half-filled
    folder under the final name. A second call returns the existing folder.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(
            f"Dataset archive not found: '{archive}'. Pass the path of an image-folder "
            "archive (e.g. cifar10-jpeg.tar.gz) or of an unpacked image folder."
        )
    name = archive.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        raise ValueError(
            f"Unsupported archive '{archive}': expected .tar.gz, .tgz or .tar."
        )
    target = cache_dir(cache) / "datasets" / name
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not a concurrent unpack that won the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


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

    folder = find_image_folder(data, split)
    class_names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    images, labels = [], []
    for label, class_name in enumerate(class_names):
        files = sorted(
            p for p in (folder / class_name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
        )
        stop = None if per_class is None else offset + per_class
        for path in files[offset:stop]:
            images.append(tf.io.decode_image(tf.io.read_file(str(path)), channels=3).numpy())
            labels.append(label)
    if not images:
        raise FileNotFoundError(f"No images found under '{folder}'.")
    return np.stack(images), np.asarray(labels, dtype=np.int32), class_names


def normalize(images, mean=CIFAR10_MEAN, std=CIFAR10_STD):
    """uint8 images -> float32 per-channel standardized images."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
