"""`import keras_lc` loads neither matplotlib nor tensorboard (issue 15): the plots import it when they plot."""

import os
import subprocess
import sys

import numpy as np

HEAVY = ("matplotlib", "tensorboard")


def _run(code):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_keras_lc_does_not_import_matplotlib_or_tensorboard():
    # Keras itself imports matplotlib.pyplot when it is installed (keras.src.visualization),
    # so make both unimportable, as if not installed: keras_lc must import without them.
    out = _run(
        "import sys\n"
        f"HEAVY = {HEAVY!r}\n"
        "class Unimportable:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in HEAVY:\n"
        "            raise ImportError(f'{name} is not installed here')\n"
        "sys.meta_path.insert(0, Unimportable())\n"
        "import keras_lc\n"
        "assert 'matplotlib' not in sys.modules and 'tensorboard' not in sys.modules\n"
        "print('imported', keras_lc.__version__)\n"
    )
    assert "imported" in out


def test_import_keras_lc_adds_no_matplotlib_module_to_what_keras_loads():
    out = _run(
        "import sys\n"
        f"HEAVY = {HEAVY!r}\n"
        "heavy = lambda: {m for m in sys.modules if m.split('.')[0] in HEAVY}\n"
        "import keras\n"
        "before = heavy()\n"
        "import keras_lc\n"
        "print(sorted(heavy() - before))\n"
    )
    assert out.strip().splitlines()[-1] == "[]"


def test_plots_still_plot(tmp_path):
    from keras_lc.analysis import plot_filter_grid, plot_variance_heatmaps

    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 6))
    path = plot_filter_grid(kernel, tmp_path / "grid.png")
    plot_variance_heatmaps({"conv": np.ones((3, 3))}, tmp_path / "heat.png")
    for name in ("grid.png", "heat.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path == tmp_path / "grid.png"
