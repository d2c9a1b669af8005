"""TensorFlow's C++ start-up lines, hidden for the `keras-lc` command line (imports no TensorFlow);
whether TensorFlow is here at all (`has_tensorflow`, `uses_tensorflow`).

`import tensorflow` makes TensorFlow's C++ library write lines such as
absl's "WARNING: All log messages before absl::InitializeLog() is called are
written to STDERR", the oneDNN notice ("oneDNN custom operations are on
...") and "Could not find cuda drivers on your machine" straight to file
descriptor 2: before Python's logging exists, whatever TF_CPP_MIN_LOG_LEVEL
says. `keras_lc/__init__.py` imports TensorFlow first, through
`import_tensorflow_quietly()`, which points fd 2 at the null device for that
import and restores it, only when the program is the `keras-lc` command
(its console script or `python -m keras_lc.cli`) without `--verbose` and
without `KERAS_LC_DEBUG`. What TensorFlow does is unchanged
(TF_ENABLE_ONEDNN_OPTS is left alone); a library user's `import keras_lc`
prints what TensorFlow prints.
"""

import contextlib
import os
import sys

CLI_SCRIPT = "keras-lc"
CLI_MODULE = "keras_lc.cli"
VERBOSE_FLAG = "--verbose"


def is_command_line(argv=None, orig_argv=None):
    """True if this process is `keras-lc ...` or `python -m keras_lc.cli ...`.

    >>> is_command_line(["/venv/bin/keras-lc", "list"], [])
    True
    >>> is_command_line(["-m", "list"], ["python", "-u", "-m", "keras_lc.cli", "list"])
    True
    >>> is_command_line(["train.py"], ["python", "train.py"])
    False
    """
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    script = os.path.basename(argv[0]) if argv else ""
    if script.rsplit(".", 1)[0] in (CLI_SCRIPT, f"{CLI_SCRIPT}-script"):
        return True
    return any(a == "-m" and b == CLI_MODULE for a, b in zip(orig_argv, orig_argv[1:])) or (
        f"-m{CLI_MODULE}" in orig_argv)


def wants_native_logs(argv=None):
    """True if `argv` (default: the command line) has `--verbose` or `KERAS_LC_DEBUG` is set."""
    argv = sys.argv[1:] if argv is None else argv
    return VERBOSE_FLAG in argv or bool(os.environ.get("KERAS_LC_DEBUG"))


@contextlib.contextmanager
def native_stderr_silenced(verbose=False):
    """File descriptor 2 on the null device inside the block (C++ writes there directly), restored after.

    Python exceptions propagate; `verbose` or `KERAS_LC_DEBUG=1` keeps everything.
    """
    if verbose or os.environ.get("KERAS_LC_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def is_installed(module):
    """True if `module` can be imported here (checked without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a blocked or half-installed package
        return False


def has_tensorflow():
    """True if TensorFlow can be imported here (checked without importing it).

    keras-lc runs without it on the JAX and PyTorch backends: the NumPy input
    pipeline replaces tf.data, and only what is TensorFlow's (SavedModel,
    LiteRT, `tf.distribute` strategies, TensorBoard logs) is left out.
    """
    return is_installed("tensorflow")


def uses_tensorflow():
    """True if TensorFlow is installed and Keras runs on it (its backend)."""
    import keras

    return keras.backend.backend() == "tensorflow" and has_tensorflow()


def import_tensorflow_quietly():
    """For `keras-lc` without `--verbose`: import TensorFlow without its C++ start-up lines.

    Does nothing in any other program, when TensorFlow is already imported,
    or when Keras runs on another backend (`KERAS_BACKEND`).
    """
    if "tensorflow" in sys.modules or not is_command_line() or wants_native_logs():
        return
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow" or not has_tensorflow():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ INFO/WARNING lines too
    with native_stderr_silenced():
        import tensorflow  # noqa: F401
