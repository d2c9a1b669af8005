"""The cache folder, file hashes, and dataset archives unpacked once into the cache by content.

`extract_archive` unpacks a `.tar.gz`/`.tgz`/`.tar` into
`cache_dir()/datasets/<archive stem>-<first 12 hex of its sha256>`, so two
different archives with the same name never share a folder, and an archive
whose content changed is unpacked again. The sha256 of each archive is
remembered in `cache_dir()/datasets/archives.json`, keyed by its resolved path
with its size and modification times, so an unchanged archive is not hashed
again. Problems with the archive or the cache raise `DataError` (one line,
naming the path); the cache folder's own problems raise its subclass
`CacheError`, which is also an `OSError`. `data_source` names a folder the
same way on every machine, for a run's configuration.
"""

import gzip
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from keras_lc.files import UMASK, one_line, write_json_atomic

logger = logging.getLogger(__name__)
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
INDEX_FILE = "archives.json"
_DEFAULT_CACHE = "~/.cache/keras_lc"


class DataError(ValueError):
    """A dataset, archive, image or cache folder that cannot be used; the message names the path."""


class CacheError(DataError, OSError):
    """The cache folder (`$KERAS_LC_CACHE`, `cache=`, or ~/.cache/keras_lc) is not a writable folder."""


def cache_dir(path=None):
    """The cache directory: `path`, else `$KERAS_LC_CACHE`, else `~/.cache/keras_lc`.

    The environment variable is read at call time.
    """
    if path is None:
        path = os.environ.get("KERAS_LC_CACHE") or os.path.expanduser(_DEFAULT_CACHE)
    return Path(path)


def _cache_label(path, root):
    """How the cache folder `root` was chosen, for messages."""
    if path is not None:
        return f"the cache folder '{root}'"
    if os.environ.get("KERAS_LC_CACHE"):
        return f"KERAS_LC_CACHE='{root}'"
    return f"the default cache folder '{root}'"


_PASS_ARCHIVE = "pass a complete image-folder archive or an unpacked folder laid out split/class/image.jpg"
_FIX_CACHE = "set KERAS_LC_CACHE (or pass a cache folder) to a writable folder"


def cache_subdir(name, cache=None):
    """`cache_dir(cache) / name`, created if needed; `CacheError` (naming the folder) if it cannot be."""
    root = cache_dir(cache)
    folder = root / name
    if root.exists() and not root.is_dir():
        raise CacheError(f"{_cache_label(cache, root)} is a file, not a folder; {_FIX_CACHE}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CacheError(
            f"Cannot create '{folder}' in {_cache_label(cache, root)} ({one_line(error)}); "
            f"{_FIX_CACHE}."
        ) from None
    return folder


def sha256_of(path, chunk_size=1 << 20):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def path_sha256(path):
    """Hex sha256 of a file, or `tree_sha256` of a folder (a SavedModel)."""
    return tree_sha256(path) if Path(path).is_dir() else sha256_of(path)


def tree_sha256(folder):
    r"""Hex sha256 of a folder's files: of the lines `RELATIVE_PATH SHA256`, sorted, one per file.

    Example:

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.txt").write_text("a")
    >>> tree_sha256(folder) == hashlib.sha256(
    ...     b"a.txt ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb\n").hexdigest()
    True
    """
    folder = Path(folder)
    lines = sorted(f"{p.relative_to(folder).as_posix()} {sha256_of(p)}\n"
                   for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256("".join(lines).encode()).hexdigest()



def _archive_stem(archive):
    name = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise DataError(
        f"Unsupported archive '{archive}': expected a {', '.join(ARCHIVE_SUFFIXES)} file "
        "or an unpacked image folder."
    )


def _read_index(index):
    try:
        with open(index, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):  # missing or unreadable: every archive is hashed again
        return {}
    return data if isinstance(data, dict) else {}


def _archive_sha256(archive, folder):
    """sha256 of `archive`, looked up in `folder`'s index by (path, size, mtime, ctime), else computed.

    Returns `(sha256, record)`: `record` is the index entry to store once the
    archive has been unpacked (or `None` when the index already holds it).
    """
    stat = archive.stat()
    key = str(archive.resolve())
    identity = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}
    known = _read_index(folder / INDEX_FILE).get(key)
    if isinstance(known, dict) and {k: known.get(k) for k in identity} == identity:
        if isinstance(known.get("sha256"), str) and len(known["sha256"]) == 64:
            return known["sha256"], None
    return sha256_of(archive), (key, identity)


def _remember(folder, record, sha256):
    """Add `record` to the index (best effort: a read-only cache only costs a re-hash)."""
    if record is None:
        return
    key, identity = record
    index = folder / INDEX_FILE
    entries = _read_index(index)
    entries[key] = dict(identity, sha256=sha256)
    try:
        write_json_atomic(index, entries)
    except OSError as error:
        logger.debug("could not update %s: %s", index, error)


def data_source(folder, cache=None):
    """Where a split's images come from, spelled the same on every machine that has the same data.

    A folder inside one that `extract_archive` unpacked is named by the
    archive's stem and content hash and the path inside it
    (`archive:cifar10-jpeg-fe72f91e441a/cifar10/train`), wherever the cache
    is; any other folder is `folder:<its absolute path>`. A source recorded
    as `folder:<cache path>` (as keras-lc recorded every folder before) may
    be passed as `folder` with its prefix and gets the `archive:` spelling, so
    a run directory started then still compares equal, and one moved to
    another machine resumes there.

    Example:

    >>> import tempfile
    >>> cache = tempfile.mkdtemp()
    >>> data_source(f"{cache}/datasets/cifar10-jpeg-fe72f91e441a/cifar10/train", cache)
    'archive:cifar10-jpeg-fe72f91e441a/cifar10/train'
    >>> data_source(f"folder:{cache}/datasets/cifar10-jpeg-fe72f91e441a/cifar10/train", cache)
    'archive:cifar10-jpeg-fe72f91e441a/cifar10/train'
    >>> data_source("/data/my_images/train", cache)
    'folder:/data/my_images/train'
    """
    text = str(folder)
    if text.startswith(("archive:", "tfds:")):
        return text
    folder = Path(text[len("folder:"):] if text.startswith("folder:") else text).absolute()
    root = (cache_dir(cache) / "datasets").absolute()
    for candidate, base in ((folder, root), (folder.resolve(), root.resolve())):
        if candidate.is_relative_to(base) and candidate != base:
            return f"archive:{candidate.relative_to(base).as_posix()}"
    return f"folder:{folder}"


def extract_archive(archive, cache=None):
    """Unpack a `.tar.gz`/`.tgz`/`.tar` archive once into the cache; return its folder.

    The folder is `datasets/<stem>-<first 12 hex of the archive's sha256>`: a
    call with the same archive (same content, wherever it lies) reuses it and
    logs "reusing unpacked ..." at INFO on the `keras_lc.archives` logger. The
    archive is unpacked into a temporary folder beside the target and renamed
    into place, so a failed or interrupted unpack never leaves a half-filled
    folder under the final name. A truncated or corrupt archive, or a file
    that is not one, raises `DataError`; an unusable cache folder `CacheError`.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(
            f"Dataset archive not found: '{archive}'. Pass the path of an image-folder "
            "archive (e.g. cifar10-jpeg.tar.gz) or of an unpacked image folder."
        )
    stem = _archive_stem(archive)
    folder = cache_dir(cache) / "datasets"
    try:
        sha256, record = _archive_sha256(archive, folder)
    except OSError as error:
        raise DataError(f"Cannot read the archive '{archive}' ({one_line(error)}).") from None
    target = folder / f"{stem}-{sha256[:12]}"
    if target.is_dir():
        logger.info("reusing unpacked '%s' from cache %s", archive, target)
        _remember(folder, record, sha256)
        return target
    folder = cache_subdir("datasets", cache)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=folder))
    except OSError as error:
        raise CacheError(
            f"Cannot unpack '{archive}' into {_cache_label(cache, folder.parent)} "
            f"({one_line(error)}); {_FIX_CACHE}."
        ) from None
    logger.info("unpacking '%s' into %s", archive, target)
    try:
        os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700; give the usual permissions
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            kinds = "/".join(ARCHIVE_SUFFIXES)
            if isinstance(error, tarfile.ReadError) and "could not be opened" in str(error):
                problem = f"not a {kinds} archive (no gzip, bzip2, xz or tar data)"
            else:
                problem = f"not a complete {kinds} archive, truncated or corrupt ({one_line(error)})"
            raise DataError(f"Cannot unpack '{archive}': {problem}; {_PASS_ARCHIVE}.") from None
        except OSError as error:
            raise CacheError(
                f"Cannot unpack '{archive}' into '{folder}' ({one_line(error)}); free space "
                f"there or {_FIX_CACHE}."
            ) from None
        try:
            os.rename(tmp, target)
        except OSError as error:
            if not target.is_dir():  # not a concurrent unpack that won the race
                raise CacheError(
                    f"Cannot move the unpacked '{archive}' to '{target}' ({one_line(error)}); "
                    f"{_FIX_CACHE}."
                ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _remember(folder, record, sha256)
    return target
