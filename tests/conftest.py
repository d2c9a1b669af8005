"""Shared fixtures: real CIFAR-10 from ../shared/datasets, unpacked once into the cache."""

import os
from pathlib import Path

# One BLAS thread for the NumPy references: on 2 cores a multi-threaded OpenBLAS contends
# with TensorFlow's own thread pool (the library keeps its own decompositions on one thread
# itself, `keras_lc.fold_math.single_threaded_blas`). Set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


#: Fixtures that read the full CIFAR-10 archive; a test using one is marked `cifar10`.
CIFAR10_FIXTURES = ("cifar_archive", "cifar_test_images", "cifar_train_images")


def cifar10_archive():
    """Path of the CIFAR-10 JPEG archive: $KERAS_LC_CIFAR10 or ../shared/datasets.

    Missing, the tests that need it are skipped with the reason, so `pytest`
    passes from a clean clone; with `KERAS_LC_REQUIRE_CIFAR10=1` (CI sets it)
    a missing archive fails them instead.
    """
    path = Path(os.environ.get("KERAS_LC_CIFAR10", DEFAULT_ARCHIVE))
    if not path.exists():
        message = (
            f"CIFAR-10 archive not found at '{path}'. Set KERAS_LC_CIFAR10 to the "
            "cifar10-jpeg.tar.gz archive or an unpacked folder."
        )
        if os.environ.get("KERAS_LC_REQUIRE_CIFAR10"):
            pytest.fail(message + " (KERAS_LC_REQUIRE_CIFAR10 is set)")
        pytest.skip(message)
    return path


def pytest_collection_modifyitems(config, items):
    """Mark every test that reads the full CIFAR-10 archive `cifar10` (`-m "not cifar10"`)."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & set(CIFAR10_FIXTURES):
            item.add_marker(pytest.mark.cifar10)


@pytest.fixture(scope="session")
def cifar_archive():
    return cifar10_archive()


@pytest.fixture(scope="session")
def cifar_test_images(cifar_archive):
    """20 real test images per class, normalized float32, with labels."""
    from keras_lc.data import load_image_folder, normalize

    images, labels, _ = load_image_folder(cifar_archive, "test", per_class=20)
    return normalize(images), labels


@pytest.fixture(scope="session")
def cifar_train_images(cifar_archive):
    """64 real training images per class (640), normalized float32, with labels."""
    from keras_lc.data import load_image_folder, normalize

    images, labels, _ = load_image_folder(cifar_archive, "train", per_class=64)
    order = np.random.default_rng(0).permutation(len(labels))
    return normalize(images)[order], labels[order]
