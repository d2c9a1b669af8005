"""The suite's isolation (tests/conftest.py): every test, and every session- or module-scoped
fixture, has its cache and zoo folders under pytest's temporary directory, never the user's
~/.cache/keras_lc; each test finds them empty but for the shared unpacked datasets; the
checkout's published models are still found."""

import json
import logging
import os
from pathlib import Path

import pytest

from keras_lc import archives, weights
from tests.conftest import DATASET_STORE, ISOLATED_VARIABLES, REPO

USER_CACHE = Path(os.path.expanduser("~/.cache/keras_lc")).resolve()


def _under(path, base):
    return Path(path).resolve().is_relative_to(Path(base).resolve())


@pytest.fixture(scope="module")
def seen_by_a_module_fixture():
    """The folders a module-scoped fixture (set up before any per-test fixture) works in."""
    return {name: os.environ.get(name) for name in ISOLATED_VARIABLES}


def test_the_cache_and_the_zoo_are_empty_temporary_folders(tmp_path_factory, keras_lc_cache):
    base = tmp_path_factory.getbasetemp()
    cache = archives.cache_dir()
    assert cache == keras_lc_cache and _under(cache, base) and not _under(cache, USER_CACHE)
    assert sorted(p.name for p in cache.iterdir()) == ["datasets"]
    weights_folder = archives.cache_subdir("weights")  # where `weights.fetch` downloads
    assert weights_folder == cache / "weights" and weights_folder.is_dir() and _under(weights_folder, base)
    zoo = Path(os.environ["KERAS_LC_ZOO"])
    assert _under(zoo, base) and zoo.is_dir() and list(zoo.iterdir()) == []
    assert "KERAS_LC_WEIGHTS_URL" not in os.environ


def test_module_scoped_fixtures_see_the_same_temporary_folders(seen_by_a_module_fixture, tmp_path_factory,
                                                               keras_lc_session_cache, keras_lc_cache):
    """So a run made by a module fixture and one made by a test record the same dataset paths."""
    seen = seen_by_a_module_fixture
    assert seen["KERAS_LC_CACHE"] == str(keras_lc_session_cache) == str(keras_lc_cache)
    assert seen["KERAS_LC_ZOO"] == os.environ["KERAS_LC_ZOO"]
    assert _under(seen["KERAS_LC_CACHE"], tmp_path_factory.getbasetemp())
    assert seen["KERAS_LC_WEIGHTS_URL"] is None


@pytest.mark.parametrize("marker", ["first", "second"])
def test_no_test_sees_what_another_test_left_in_the_cache_or_the_zoo(marker):
    """Whichever runs second fails if the first one's files are still there."""
    cache, zoo = archives.cache_dir(), Path(os.environ["KERAS_LC_ZOO"])
    assert sorted(p.name for p in cache.iterdir()) == ["datasets"] and list(zoo.iterdir()) == []
    (archives.cache_subdir("weights") / f"{marker}.weights.h5").write_bytes(b"written by a test")
    (zoo / marker).mkdir()
    (zoo / marker / "manifest.json").write_text("{}")
    assert sorted(p.name for p in (cache / "weights").iterdir()) == [f"{marker}.weights.h5"]


def test_the_checkouts_published_models_are_still_found():
    """An empty $KERAS_LC_ZOO hides nothing: every manifest of the checkout's zoo/ is found there."""
    manifests = sorted((REPO / "zoo").glob("*/manifest.json"))
    assert len(manifests) >= 4
    names = {json.loads(path.read_text())["name"]: path.parent for path in manifests}
    found = weights.published_weights()
    assert set(names) <= set(found)
    for name, folder in names.items():
        local = weights.packaged_file(found[name], found[name].file_name)
        assert local is not None and not _under(local, os.environ["KERAS_LC_ZOO"]), name
        assert weights.location(found[name])[0] == f"shipped with keras-lc ({folder.name}/)"


def test_cifar10_is_unpacked_once_into_the_shared_store(cifar_archive, keras_lc_session_cache, caplog):
    if not cifar_archive.is_file():
        pytest.skip(f"KERAS_LC_CIFAR10 is an unpacked folder ({cifar_archive}): nothing to unpack")
    with caplog.at_level(logging.INFO, logger="keras_lc.archives"):
        folder = archives.extract_archive(cifar_archive)  # this test's cache
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["reusing"]
    assert folder.resolve().parent == (keras_lc_session_cache / "datasets").resolve() == DATASET_STORE.resolve()
    assert not _under(DATASET_STORE, Path.home() / ".cache" / "keras_lc")


def test_the_long_modules_exist_and_are_queued_first(request):
    """`LONG_MODULES` names real files (a renamed module would silently lose its place), and the
    collection starts with them, in that order."""
    from tests.conftest import LONG_MODULES

    assert all((REPO / module).is_file() for module in LONG_MODULES), LONG_MODULES
    assert request.config.option.loadscopereorder is False
    modules = list(dict.fromkeys(item.nodeid.split("::")[0] for item in request.session.items))
    collected = [m for m in LONG_MODULES if m in modules]
    assert modules[:len(collected)] == collected
