"""Every plot is written atomically as a valid, non-empty PNG."""

import os

import numpy as np
import pytest
from matplotlib.image import imread

from keras_lc.analysis import (
    filter_stats,
    plot_filter_grid,
    plot_fve_per_layer,
    plot_fve_vs_expansion,
    plot_variance_heatmaps,
    spatial_variance,
)
from keras_lc.files import atomic_write

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_side=100):
    """A non-empty PNG that decodes to an image of at least min_side pixels a side."""
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= min_side, image.shape
    assert image.std() > 0.01  # not a blank canvas
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]


@pytest.mark.parametrize("shape", [(9, 9, 3, 16), (3, 3, 32, 64), (5, 5, 1, 1)])
def test_filter_grid(tmp_path, shape):
    kernel = np.random.default_rng(0).normal(size=shape)
    assert_png(plot_filter_grid(kernel, tmp_path / "grid.png", title="t"))


def test_heatmaps_and_fve_plots(tmp_path):
    rng = np.random.default_rng(0)
    kernels = {f"conv{i}": rng.normal(size=(3, 3, 8, 8)) for i in range(5)}
    kernels["big"] = rng.normal(size=(7, 7, 8, 8))
    heatmaps = {name: spatial_variance(k) for name, k in kernels.items()}
    assert_png(plot_variance_heatmaps(heatmaps, tmp_path / "heat.png"))
    stats = {name: filter_stats(k) for name, k in kernels.items()}
    assert_png(plot_fve_per_layer(stats, tmp_path / "fve.png"))
    series = {"frozen random LC": [(1, 1.0), (4, 0.9), (4, 0.92), (16, 0.8)],
              "learnable LC": [(1, 0.6), (4, 0.61), (16, 0.6)]}
    assert_png(plot_fve_vs_expansion(series, tmp_path / "sub" / "exp.png", {"resnet20": 0.8}))


def test_empty_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot_variance_heatmaps({}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="empty"):
        plot_fve_per_layer({}, tmp_path / "b.png")
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_fve_vs_expansion({}, tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"shape \(3, 3\)"):
        plot_filter_grid(np.ones((3, 3)), tmp_path / "d.png")
    assert os.listdir(tmp_path) == []


def test_atomic_write_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def failing(tmp):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.png"]
    atomic_write(target, lambda tmp: open(tmp, "wb").write(b"new"))
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.png"]
