"""The examples' command lines: quiet start (TensorFlow's C++ lines only with --verbose), outputs under runs/."""

import pytest

from keras_lc.cli.common import VERBOSE_HELP
from tests.examples.conftest import EXAMPLES
from tests.native_logs import REPO, TENSORFLOW_IMPORT, native_lines, run_python

#: Each example's options naming what it writes.
OUTPUTS = {"quickstart": [], "finetune": ["--out"], "refocus_finetune": ["--out"]}


def test_every_example_is_covered():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py") if p.stem != "quiet_start") == sorted(OUTPUTS)


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_help_starts_quietly_and_outputs_default_to_runs(name, tmp_path):
    done = run_python(EXAMPLES / f"{name}.py", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no oneDNN notice, no "Could not find cuda drivers", no absl warning
    assert "".join(f"--verbose {VERBOSE_HELP}".split()) in "".join(done.stdout.split())  # `keras-lc`'s flag
    text = " ".join(done.stdout.split())
    for option in OUTPUTS[name]:
        after = text.split(" options: ", 1)[1].split(f"{option} ", 1)[1]
        assert "(default: runs/" in after.split(" --", 1)[0], (option, after)
    assert list(tmp_path.iterdir()) == []
    assert "runs/" in (REPO / ".gitignore").read_text().split()  # where the outputs go is git-ignored


def test_verbose_shows_what_tensorflow_prints(tmp_path):
    verbose = run_python(EXAMPLES / "quickstart.py", "--help", "--verbose", cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    tensorflow = run_python("-c", TENSORFLOW_IMPORT)
    shown = native_lines(verbose.stderr)
    assert [line for line in native_lines(tensorflow.stderr) if line not in shown] == [], verbose.stderr
