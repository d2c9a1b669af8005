"""Shared fixtures: isolation from the user's folders, and real CIFAR-10 from ../shared/datasets,
unpacked once into a store the test sessions share (`DATASET_STORE`).

Isolation: no test reads or writes the user's `~/.cache/keras_lc`, `$KERAS_LC_ZOO` or
`$KERAS_LC_WEIGHTS_URL`. Those variables are cleared when this file is imported (before
collection reads the published models); a session fixture points `KERAS_LC_CACHE` and
`KERAS_LC_ZOO` at folders under pytest's temporary directory (what session- and module-scoped
fixtures see), and an autouse fixture empties both before every test (`keras_lc_cache`), all
but the cache's `datasets/`, a link to one store of unpacked archives (`DATASET_STORE`) that
every test session, xdist worker and backend pass shares, so the CIFAR-10 archive is unpacked
once per machine, not once per worker and pass (35 s each). The checkout's `zoo/` and the
wheel's `published/` are searched after `$KERAS_LC_ZOO`, so an empty one hides no published
model.
"""

import contextlib
import fcntl
import os
import tempfile
import uuid
from pathlib import Path

# One BLAS thread for the NumPy references: on 2 cores a multi-threaded OpenBLAS contends
# with TensorFlow's own thread pool (the library keeps its own decompositions on one thread
# itself, `keras_lc.fold_math.single_threaded_blas`). Set before NumPy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

#: What chooses the folders keras_lc reads and writes: cleared for the whole test process.
ISOLATED_VARIABLES = ("KERAS_LC_CACHE", "KERAS_LC_ZOO", "KERAS_LC_WEIGHTS_URL")
for _variable in ISOLATED_VARIABLES:
    os.environ.pop(_variable, None)

import numpy as np  # noqa: E402
import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
#: Where the tests' unpacked archives live (`$KERAS_LC_TEST_DATASETS`, else a folder in the
#: system's temporary directory): keyed by the archive's sha256 (`keras_lc.archives`), never
#: the user's cache.
DATASET_STORE = Path(os.environ.get("KERAS_LC_TEST_DATASETS",
                                    Path(tempfile.gettempdir()) / "keras_lc_tests" / "datasets"))
#: JAX's persistent compilation cache, beside the dataset store and shared the same way: XLA
#: compiles each eager op (and each jitted step) once per machine, not once per xdist worker,
#: subprocess and pass (the registry's models share most of their op shapes). Every entry is
#: kept (no minimum compile time or size). The cache is keyed by the HLO, JAX version and
#: flags, so it changes no result. Set before JAX is imported.
JAX_CACHE = DATASET_STORE.parent / "jax_compilation_cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(JAX_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


#: Fixtures that read the full CIFAR-10 archive; a test using one is marked `cifar10`.
CIFAR10_FIXTURES = ("cifar_archive", "cifar_test_images", "cifar_train_images")

#: The tests marked `every_backend` (test ids, or the start of one): what must hold on each Keras
#: backend. CI runs every test on TensorFlow, then these again on JAX and on PyTorch
#: (`KERAS_BACKEND=jax python -m pytest -m every_backend`): the layers, fold, seeds and
#: initializers (the weights registry's files, hashes and downloads are backend-free: TensorFlow
#: only), every registered model (build, forward, a training step, fold, files), the
#: files across backends, and a tiny run killed, resumed, exported and analyzed. The published
#: weights' predictions on JAX and PyTorch are compared with TensorFlow's in the TensorFlow pass,
#: by a subprocess on each (`tests/test_backends.py`), so the other passes do not repeat those
#: pairs; their accuracy on raw images (`tests/zoo/test_published_usable.py`) is measured on
#: TensorFlow.
EVERY_BACKEND = (
    "tests/layers/",
    "tests/test_fold.py::",
    "tests/test_initializers.py::",
    "tests/zoo/test_blocks.py::",
    "tests/zoo/test_block_references.py::",
    "tests/zoo/test_registry.py::test_every_registered_model",
    "tests/test_backends.py::test_two_other_backends_are_installed",
    "tests/test_backends.py::test_weights_file_is_compact",
    "tests/test_backends.py::test_files_load_bit_identical_on_the_other_backend",
    "tests/test_backends.py::test_tiny_run_is_killed_resumed_exported_and_analyzed",
    "tests/training/test_run.py::test_killed_run_with_augmentation_resumes_bit_identical_to_an_uninterrupted_one",
)


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

#: The files and folders `EVERY_BACKEND` names.
EVERY_BACKEND_FILES = tuple(prefix.split("::")[0] for prefix in EVERY_BACKEND)

#: Tests under `EVERY_BACKEND` that run every backend they compare in subprocesses of their own:
#: the same in every pass, so only the TensorFlow pass runs them.
SELF_CONTAINED = ("tests/test_initializers.py::test_same_seed_same_kernel_on_tensorflow_and_jax",)


#: The modules that take longest on TensorFlow, longest first (measured with `--durations`:
#: from about 150 s of one worker down to 35 s; together about two thirds of the pass). They
#: are queued first, so that on 2 cores no worker is left with one of them while the other has
#: finished (longest-first scheduling), see `pytest_collection_modifyitems`.
LONG_MODULES = (
    "tests/zoo/test_registry.py",
    "tests/test_backends.py",
    "tests/training/test_run.py",
    "tests/test_bad_inputs.py",
    "tests/test_without_tensorflow.py",
    "tests/test_export.py",
    "tests/test_fold_portable.py",
    "tests/training/test_strategy.py",
    "tests/examples/test_command_lines.py",
    "tests/training/test_basis_training_path.py",
    "tests/analysis/test_robustness.py",
)


def pytest_configure(config):
    """xdist's `--dist loadscope` queues the modules with the most tests first unless told not
    to, which put the long modules, with few tests each, last: one worker then ran the last of
    them alone. The queue follows the collection order instead (`pytest_collection_modifyitems`)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_ignore_collect(collection_path, config):
    """In a pass selecting `-m every_backend` alone (CI's JAX and PyTorch passes), the test
    modules holding no such test are not imported: most import TensorFlow or build fixtures at
    import, about 10 s of collection in each xdist process. Any other selection collects all."""
    if config.getoption("markexpr", "") != "every_backend" or collection_path.suffix != ".py":
        return None
    path = collection_path.resolve()
    if not collection_path.name.startswith("test_") or not path.is_relative_to(REPO):
        return None
    return None if path.relative_to(REPO).as_posix().startswith(EVERY_BACKEND_FILES) else True


def pytest_collection_modifyitems(config, items):
    """Mark every test that reads the full CIFAR-10 archive `cifar10` (`-m "not cifar10"`), and
    those of `EVERY_BACKEND` `every_backend`; then move the `LONG_MODULES` to the front, longest
    first. A stable sort on pytest-randomly's shuffled order (which runs before this hook): the
    order within each module, and of all other modules, stays random and reproducible from
    the seed."""
    for item in items:
        if set(getattr(item, "fixturenames", ())) & set(CIFAR10_FIXTURES):
            item.add_marker(pytest.mark.cifar10)
        if item.nodeid.startswith(EVERY_BACKEND) and not item.nodeid.startswith(SELF_CONTAINED):
            item.add_marker(pytest.mark.every_backend)
    rank = {module: i for i, module in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONG_MODULES)))


@pytest.fixture(scope="session", autouse=True)
def keras_lc_session_cache(tmp_path_factory):
    """The test session's cache folder: `KERAS_LC_CACHE` for the whole session (and
    `KERAS_LC_ZOO` its sibling `zoo/`), under pytest's temporary directory.

    Its `datasets/` is a link to `DATASET_STORE`, so an archive is unpacked once; everything
    else in it (and the zoo folder) is emptied before each test by
    `keras_lc_cache`. The path itself stays the same, so a run made by a module-scoped fixture
    and one made by a test record the same unpacked-dataset paths.
    """
    root = tmp_path_factory.mktemp("keras_lc_session")
    DATASET_STORE.mkdir(parents=True, exist_ok=True)
    (root / "datasets").symlink_to(DATASET_STORE, target_is_directory=True)
    (root / "retired").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_LC_CACHE", str(root / "cache"))
        patch.setenv("KERAS_LC_ZOO", str(root / "zoo"))
        _fresh(root)
        yield root / "cache"


def _fresh(root):
    """root/cache (with `datasets/` linked to root/datasets) and an empty root/zoo, what an
    earlier test left there moved into root/retired/."""
    for name in ("cache", "zoo"):
        folder = root / name
        if folder.exists() or folder.is_symlink():
            folder.rename(root / "retired" / f"{name}-{uuid.uuid4().hex}")
        folder.mkdir()
    (root / "cache" / "datasets").symlink_to(root / "datasets", target_is_directory=True)


@pytest.fixture(autouse=True)
def keras_lc_cache(keras_lc_session_cache, monkeypatch):
    """This test's cache: the session's, emptied (but for the shared `datasets/`), with an
    empty `KERAS_LC_ZOO`; both variables set again, whatever an earlier test left."""
    root = keras_lc_session_cache.parent
    _fresh(root)
    monkeypatch.setenv("KERAS_LC_CACHE", str(root / "cache"))
    monkeypatch.setenv("KERAS_LC_ZOO", str(root / "zoo"))
    return root / "cache"


@pytest.fixture(scope="session")
def cifar_archive(keras_lc_session_cache):
    """The CIFAR-10 archive, unpacked once into `DATASET_STORE` (every test and session reuses it)."""
    path = cifar10_archive()
    if path.is_file():
        from keras_lc.archives import extract_archive

        with _store_lock():  # a second worker waits, then reuses the first one's
            extract_archive(path, keras_lc_session_cache)
    return path


@contextlib.contextmanager
def _store_lock():
    with open(DATASET_STORE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
