"""Atomic file writes: every file keras-lc writes goes to a temporary name in the
target's folder and is renamed into place, so a crash never leaves a half-written
file under the final name and what was already saved is never lost."""

import contextlib
import json
import os
import tempfile
from pathlib import Path

#: The process umask, read once: temporary files and folders get the usual permissions.
UMASK = os.umask(0)
os.umask(UMASK)


def one_line(error):
    """An exception's message on one line (its type's name if it has none), for error messages.

    Example:

    >>> one_line(OSError("disk\\n  full")), one_line(KeyError())
    ('disk full', 'KeyError')
    """
    return " ".join(str(error).split()) or type(error).__name__


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside `path`; `os.replace` it onto `path` on success.

    `suffix` is the temporary name's ending (some writers need one, e.g.
    `.weights.h5`); it defaults to the target's suffixes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text):
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json_atomic(path, data):
    """Write `data` as indented JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_write(path, write):
    """Call `write(temporary_path)`, then rename the temporary file onto `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)
