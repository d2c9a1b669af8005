"""What the `keras-lc` subcommands share.

`UsageError` (a user mistake: one line, exit status 2), `Parser` (argparse
with one-line errors), the argparse value types `positive_int`,
`randaugment` and `model_arg`, `add_verbose_flag` (the one `--verbose`),
`init_devices_quietly` (TensorFlow's C++ device lines silenced unless
`--verbose`; its start-up lines: `keras_lc.startup`),
`load_split` (a dataset split, its user mistakes as `UsageError`),
`say_cache_use` (the dataset cache's unpack/reuse lines on stdout) and
`one_line` (an error as one line).
"""

import argparse
import json
import re
import sys

from keras_lc.files import one_line  # noqa: F401 (the package's one spelling; public here for the commands)
from keras_lc.startup import native_stderr_silenced, uses_tensorflow

PROG = "keras-lc"


class UsageError(Exception):
    """A user mistake: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a parse error is one line on stderr (exit 2), no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


VERBOSE_HELP = ("show TensorFlow's native log lines (oneDNN, CUDA, absl start-up and device "
                "messages), hidden by default")


def add_verbose_flag(parser, default=False):
    """Add `--verbose` to `parser`; returns `parser`.

    The one definition of the flag: `build_parser` adds it to the main parser
    (`default=False`) and to every subcommand (`default=argparse.SUPPRESS`, so
    `keras-lc --verbose list` and `keras-lc list --verbose` both set it and an
    absent flag never overrides the main parser's value).
    """
    parser.add_argument("--verbose", action="store_true", default=default, help=VERBOSE_HELP)
    return parser


def init_devices_quietly(verbose=False):
    """Probe TensorFlow's devices without its C++ log lines (unless `verbose`).

    The probe is where CUDA says e.g. "failed call to cuInit" on GPU-less
    machines. TensorFlow's import-time lines are hidden by `keras_lc.startup`
    when `keras_lc` is imported by `keras-lc`.
    """
    if not uses_tensorflow():  # JAX or PyTorch: their own devices, no CUDA probe of TensorFlow's
        return
    with native_stderr_silenced(verbose):
        import tensorflow as tf

        tf.config.list_physical_devices()


# ------------------------------------------------------- argparse value types
def positive_int(text):
    """argparse type: an integer >= 1.

    >>> positive_int("3")
    3
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a positive integer, got '0'
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def randaugment(text):
    """argparse type: `NUM_OPS,FACTOR` -> `(int, float)`.

    >>> randaugment("2,0.5")
    (2, 0.5)
    """
    try:
        num_ops, factor = text.split(",")
        return int(num_ops), float(factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NUM_OPS,FACTOR such as 2,0.5, got {text!r}") from None


_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def model_arg(text):
    """KEY=VALUE with a JSON VALUE (`expansion=8`, `shortcut="B"`, `strides=[1,2]`).

    A bare word that is not JSON (`implementation=basis`) is taken as a
    string; anything else must be valid JSON, so `expansion={bad` is refused
    rather than passed on as a string.

    >>> model_arg("expansion=8"), model_arg("implementation=basis")
    (('expansion', 8), ('implementation', 'basis'))
    """
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        if _BARE_WORD.match(value):
            return key, value
        raise argparse.ArgumentTypeError(
            f"the value of {text!r} is not JSON: use a number, true/false/null, a bare word, "
            'a quoted string (\'key="a b"\') or a JSON list/object'
        ) from None


# ------------------------------------------------------------------ helpers
def load_split(dataset, split, args, per_class=None):
    """`keras_lc.data.load_dataset` with `args.data_dir`/`args.download`; its user mistakes as `UsageError`."""
    from keras_lc.data import load_dataset

    try:
        return load_dataset(dataset, split, args.data_dir, download=args.download, per_class=per_class)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None


def say_cache_use():
    """Print the dataset cache's INFO lines (unpacking, reusing) as `[keras-lc] ...` on stdout.

    The handler writes to whatever `sys.stdout` is when a line is logged (not
    the stream current when it was attached), so callers that swap stdout,
    e.g. tests calling `main` repeatedly, never hit a closed stream.
    """
    import logging

    class _CurrentStdout(logging.StreamHandler):
        keras_lc_cli = True

        @property
        def stream(self):
            return sys.stdout

        @stream.setter
        def stream(self, value):  # StreamHandler.__init__ assigns it; the property wins
            pass

    logger = logging.getLogger("keras_lc.archives")
    if not any(getattr(h, "keras_lc_cli", False) for h in logger.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("[keras-lc] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def hub_manifest(hub_id):
    """The manifest of the Hub model `hub_id` (`keras_lc.hub.manifest`); a bad id or a missing
    `huggingface_hub` is a `UsageError` (unreachable repositories are `OSError`s, exit 2 too)."""
    from keras_lc import hub

    try:
        return hub.manifest(hub_id)
    except (ValueError, ImportError) as error:
        raise UsageError(str(error)) from None
