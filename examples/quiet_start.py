"""Shared by the examples: TensorFlow imported without its C++ start-up lines (not an example).

`import tensorflow` (also through `import keras` or `import keras_lc`) makes
TensorFlow's C++ library write lines such as absl's "WARNING: All log
messages before absl::InitializeLog() is called are written to STDERR",
the oneDNN notice ("oneDNN custom operations are on ...") and "Could not
find cuda drivers on your machine" straight to file descriptor 2: before
Python's logging exists, whatever TF_CPP_MIN_LOG_LEVEL says. Probing the
devices adds "failed call to cuInit" on machines without a GPU. Only what
is printed changes: TensorFlow runs as it would (TF_ENABLE_ONEDNN_OPTS is
left alone). An example calls `import_tensorflow_quietly()` before its
other imports and accepts `--verbose` (`keras_lc.cli.common.add_verbose_flag`,
the flag of `keras-lc`):

    from quiet_start import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras
"""

import os
import sys

VERBOSE_FLAG = "--verbose"


def wants_native_logs(argv=None):
    """True if `argv` (default: the command line) has `--verbose` or `KERAS_LC_DEBUG` is set."""
    argv = sys.argv[1:] if argv is None else argv
    return VERBOSE_FLAG in argv or bool(os.environ.get("KERAS_LC_DEBUG"))


def import_tensorflow_quietly(argv=None):
    """Import TensorFlow and probe its devices with fd 2 on the null device, then restore fd 2.

    Nothing is hidden when `wants_native_logs(argv)`, and nothing is done
    when TensorFlow is already imported (e.g. by a test). Python exceptions
    propagate, their traceback printed after fd 2 is restored.
    """
    if "tensorflow" in sys.modules or wants_native_logs(argv):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ INFO/WARNING lines too
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
