"""Shared by the command-line tests: a fresh Python process, and TensorFlow's C++ log lines in its stderr."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: How TensorFlow's C++ lines start (absl's pre-initialization warning, `I0000 ...` log lines and
#: the second line of the CPU-feature notice): what `import tensorflow` prints by itself.
TF_STARTUP = ("WARNING: All log messages before absl::InitializeLog()", "I0000 ", "W0000 ", "E0000 ",
              "To enable the following instructions")
TENSORFLOW_IMPORT = "import tensorflow"


def native_lines(stderr):
    """TensorFlow's C++ log lines in `stderr`, each without its time stamp and thread id.

    >>> native_lines("I0000 00:00:1796131321.533170   22635 port.cc:153] oneDNN custom operations\\nours")
    ['port.cc:153] oneDNN custom operations']
    """
    return [re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ", "", line) for line in stderr.splitlines()
            if line.startswith(TF_STARTUP)]


def run_python(*argv, cwd=REPO):
    """`python ARGV` in a fresh process from `cwd`: the `subprocess.CompletedProcess` (text).

    `KERAS_LC_DEBUG` is removed from its environment (it keeps every line).
    """
    env = {k: v for k, v in os.environ.items() if k != "KERAS_LC_DEBUG"}
    return subprocess.run([sys.executable, *map(str, argv)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
