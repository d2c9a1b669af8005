"""keras_lc.archives: archives unpacked once into the cache, keyed by content; clear errors."""

import io
import logging
import os
import tarfile

import pytest

from keras_lc import archives
from keras_lc.data import CacheError, DataError, extract_archive, load_dataset, sha256_of


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test's cache is its own folder, never ~/.cache/keras_lc."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("KERAS_LC_CACHE", str(folder))
    return folder


def _make_archive(path, files):
    """A .tar.gz at `path` holding `files` ({member name: bytes})."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.TarFile.open(path, "w:gz") as tar:  # not tarfile.open, which count_opens counts
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _unpacked(cache):
    """Names of the folders under cache/datasets (temporaries included)."""
    folder = cache / "datasets"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []


@pytest.fixture
def count_opens(monkeypatch):
    """Counts tarfile.open calls (one per unpack) and sha256 computations."""
    calls = {"open": 0, "sha256": 0}
    real_open, real_sha = tarfile.open, archives.sha256_of

    def counting_open(*args, **kwargs):
        calls["open"] += 1
        return real_open(*args, **kwargs)

    def counting_sha(*args, **kwargs):
        calls["sha256"] += 1
        return real_sha(*args, **kwargs)

    monkeypatch.setattr(archives.tarfile, "open", counting_open)
    monkeypatch.setattr(archives, "sha256_of", counting_sha)
    return calls


def test_two_archives_with_one_name_get_their_own_folders(tmp_path, cache):
    a = _make_archive(tmp_path / "a" / "ds.tar.gz", {"ds/train/x/0.txt": b"from a"})
    b = _make_archive(tmp_path / "b" / "ds.tar.gz", {"ds/train/x/0.txt": b"from b, longer"})
    folder_a, folder_b = extract_archive(a), extract_archive(b)
    assert folder_a != folder_b
    assert folder_a.name == f"ds-{sha256_of(a)[:12]}" and folder_b.name == f"ds-{sha256_of(b)[:12]}"
    assert (folder_a / "ds/train/x/0.txt").read_bytes() == b"from a"
    assert (folder_b / "ds/train/x/0.txt").read_bytes() == b"from b, longer"
    assert _unpacked(cache) == sorted([folder_a.name, folder_b.name])  # no temporaries left


def test_the_same_archive_is_unpacked_once_and_hashed_once(tmp_path, cache, count_opens, caplog):
    archive = _make_archive(tmp_path / "ds.tar.gz", {"ds/train/x/0.txt": b"data"})
    first = extract_archive(archive)
    assert count_opens == {"open": 1, "sha256": 1}
    caplog.clear()  # the first call logs too if an earlier test left the logger at INFO
    with caplog.at_level(logging.INFO, logger="keras_lc.archives"):
        again = extract_archive(archive)
    assert again == first and count_opens == {"open": 1, "sha256": 1}  # index hit: no re-hash
    assert caplog.messages == [f"reusing unpacked '{archive}' from cache {first}"]
    # A copy elsewhere has the same content: hashed once (another path), the folder reused.
    copy = tmp_path / "elsewhere" / "ds.tar.gz"
    copy.parent.mkdir()
    copy.write_bytes(archive.read_bytes())
    assert extract_archive(copy) == first and count_opens == {"open": 1, "sha256": 2}


def test_touched_archive_is_rehashed_and_a_modified_one_unpacked_again(tmp_path, count_opens):
    archive = _make_archive(tmp_path / "ds.tar.gz", {"ds/train/x/0.txt": b"old"})
    first = extract_archive(archive)
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touch: same content
    assert extract_archive(archive) == first
    assert count_opens == {"open": 1, "sha256": 2}  # hashed again, content unchanged: reused
    _make_archive(archive, {"ds/train/x/0.txt": b"new"})  # same name, new content
    second = extract_archive(archive)
    assert second != first and count_opens == {"open": 2, "sha256": 3}
    assert (second / "ds/train/x/0.txt").read_bytes() == b"new"
    assert (first / "ds/train/x/0.txt").read_bytes() == b"old"


def _truncated_real(cifar_archive, tmp_path):
    path = tmp_path / "cut" / "cifar10-jpeg.tar.gz"
    path.parent.mkdir()
    with open(cifar_archive, "rb") as f:
        path.write_bytes(f.read(1000))
    return path


@pytest.mark.parametrize("kind", ["first_1000_bytes_of_cifar", "half_of_an_archive", "not_an_archive"])
def test_broken_archive_is_one_clear_error_and_leaves_nothing(kind, tmp_path, cache, cifar_archive):
    if kind == "first_1000_bytes_of_cifar":
        path = _truncated_real(cifar_archive, tmp_path)
    elif kind == "half_of_an_archive":  # members are unpacked before the stream ends
        path = _make_archive(tmp_path / "ds.tar.gz",
                             {f"ds/train/x/{i}.bin": os.urandom(4096) for i in range(64)})
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path = tmp_path / "ds.tar.gz"
        path.write_text("this is a text file, not an archive\n")
    with pytest.raises(DataError) as error:
        extract_archive(path)
    message = str(error.value)
    expected = "not a .tar.gz/.tgz/.tar archive" if kind == "not_an_archive" else "not a complete"
    assert "\n" not in message and f"'{path}'" in message and expected in message
    assert not isinstance(error.value, CacheError)
    assert _unpacked(cache) == []
    # The same error through load_dataset, never a tarfile/EOF/zlib traceback.
    with pytest.raises(DataError, match=expected):
        load_dataset("cifar10", "train", path)
    assert _unpacked(cache) == []


def test_unsupported_file_name_is_a_data_error(tmp_path):
    path = tmp_path / "ds.zip"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match=r"Unsupported archive '.*ds\.zip': expected a \.tar\.gz"):
        extract_archive(path)


def test_cache_that_is_a_file_is_a_cache_error(tmp_path, cache, monkeypatch):
    archive = _make_archive(tmp_path / "ds.tar.gz", {"ds/train/x/0.txt": b"data"})
    cache.write_text("a file, not a folder")
    with pytest.raises(CacheError) as error:
        extract_archive(archive)
    message = str(error.value)
    assert message.startswith(f"KERAS_LC_CACHE='{cache}' is a file, not a folder")
    assert "\n" not in message and isinstance(error.value, OSError) and isinstance(error.value, DataError)
    assert cache.read_text() == "a file, not a folder"


def test_unwritable_cache_is_a_cache_error(tmp_path, cache, monkeypatch):
    archive = _make_archive(tmp_path / "ds.tar.gz", {"ds/train/x/0.txt": b"data"})
    if os.geteuid() == 0:  # root ignores permission bits: a path under a regular file fails for root too
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        cache = blocker / "cache"
        monkeypatch.setenv("KERAS_LC_CACHE", str(cache))
    else:
        cache.mkdir()
        cache.chmod(0o500)
    try:
        with pytest.raises(CacheError) as error:
            extract_archive(archive)
    finally:
        if cache.is_dir():
            cache.chmod(0o700)
    message = str(error.value)
    assert f"KERAS_LC_CACHE='{cache}'" in message and "writable folder" in message and "\n" not in message
    assert not (cache.is_dir() and any(cache.rglob("*")))  # nothing written
