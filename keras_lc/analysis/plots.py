"""PNG figures of the analysis (matplotlib, Agg, no pyplot state). Every file is written atomically.

matplotlib is imported by the functions that plot, not by this module, so
`import keras_lc` (which imports `keras_lc.analysis`) does not load it.
"""

import math

import numpy as np

from keras_lc.files import atomic_write

DPI = 120


def new_figure(**kwargs):
    """A `matplotlib.figure.Figure(**kwargs)`, matplotlib imported on first use."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(figure, path):
    """Write a matplotlib `Figure` to `path` as a PNG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))


def _mosaic(tiles, columns, gap_value):
    """Tile `(n, h, w[, 3])` images into one image with one-pixel gaps."""
    n, h, w = tiles.shape[:3]
    rows = math.ceil(n / columns)
    shape = (rows * (h + 1) - 1, columns * (w + 1) - 1) + tiles.shape[3:]
    out = np.full(shape, gap_value, dtype=np.float64)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = tile
    return out


def plot_filter_grid(kernel, path, title=None, max_filters=64):
    """A grid of a layer's filters, each scaled to its own largest |weight| (Figure 7 style).

    A kernel with 3 input channels (a first layer) is shown as RGB filters,
    one per output channel (mid-gray is 0). Otherwise the 2-D filters of the
    first output channels (rows) and input channels (columns) are shown in a
    diverging colormap, at most `max_filters` in all.

    Args:
        kernel: `(k, k, c_in, c_out)` array, e.g. from `combined_filters`.
        path: Output PNG path.
        title: Figure title.
        max_filters: Most filters (RGB) or 2-D filters shown.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 4:
        raise ValueError(f"`kernel` must be 4-D (kh, kw, c_in, c_out). Received shape {kernel.shape}.")
    figure = new_figure(figsize=(6, 6.4))
    axes = figure.add_subplot()
    c_in, c_out = kernel.shape[2:]
    if c_in == 3:
        tiles = np.transpose(kernel, (3, 0, 1, 2))[:max_filters]  # (n, k, k, 3)
        scale = np.abs(tiles).reshape(len(tiles), -1).max(axis=1)
        tiles = tiles / (2 * np.where(scale > 0, scale, 1.0))[:, None, None, None] + 0.5
        columns = math.ceil(math.sqrt(len(tiles)))
        axes.imshow(_mosaic(tiles, columns, 1.0), interpolation="nearest")
    else:
        side = max(1, int(math.sqrt(max_filters)))
        rows, columns = min(c_out, side), min(c_in, side)
        tiles = np.transpose(kernel[:, :, :columns, :rows], (3, 2, 0, 1)).reshape(
            rows * columns, kernel.shape[0], kernel.shape[1]
        )
        scale = np.abs(tiles).reshape(len(tiles), -1).max(axis=1)
        tiles = tiles / np.where(scale > 0, scale, 1.0)[:, None, None]
        import matplotlib

        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
        axes.imshow(_mosaic(tiles, columns, np.nan), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        axes.set_xlabel(f"input channel (first {columns} of {c_in})")
        axes.set_ylabel(f"output channel (first {rows} of {c_out})")
    axes.set_xticks([])
    axes.set_yticks([])
    figure.suptitle(title or f"filters {kernel.shape[0]}x{kernel.shape[1]}, c_in={c_in}, c_out={c_out}")
    return save_figure(figure, path)


def plot_variance_heatmaps(heatmaps, path, title="Spatial variance of the filters"):
    """One heatmap per entry of `heatmaps` (name -> `(k, k)` array), each with a colorbar."""
    if not heatmaps:
        raise ValueError("`heatmaps` is empty: no convolution layer with a k x k kernel (k > 1).")
    names = list(heatmaps)
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure = new_figure(figsize=(3.2 * columns, 3.0 * rows + 0.5))
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        image = axes.imshow(np.asarray(heatmaps[name]), cmap="viridis", interpolation="nearest")
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        axes.set_title(str(name), fontsize=8)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_fve_per_layer(stats, path, title="Filter variance entropy per layer"):
    """Bars of H and H / tau(n) (3x3 layers) for every layer of `stats` (name -> FilterStats)."""
    if not stats:
        raise ValueError("`stats` is empty: no convolution layer with a k x k kernel (k > 1).")
    names = list(stats)
    x = np.arange(len(names))
    raw = [stats[name].entropy for name in names]
    normalized = [
        np.nan if stats[name].normalized_entropy is None else stats[name].normalized_entropy
        for name in names
    ]
    figure = new_figure(figsize=(max(6.0, 0.35 * len(names) + 2), 4.2))
    axes = figure.add_subplot()
    axes.bar(x - 0.2, raw, width=0.4, label="H (log10)")
    if not np.all(np.isnan(normalized)):
        axes.bar(x + 0.2, normalized, width=0.4, label="H / tau(n) (3x3 only)")
        axes.axhline(1.0, color="gray", linestyle="--", linewidth=1, label="random (H / tau = 1)")
    axes.set_xticks(x)
    axes.set_xticklabels(names, rotation=90, fontsize=7)
    axes.set_ylabel("filter variance entropy")
    axes.legend(fontsize=8)
    axes.set_title(title)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_fve_vs_expansion(series, path, baselines=None, ylabel="filter variance entropy", title=None):
    """FVE against the LC expansion for several model families (the paper's Figure 5).

    Args:
        series: Mapping label (e.g. `"frozen random"`) -> sequence of
            `(expansion, value)` pairs; several values at one expansion are
            averaged and drawn with their standard deviation.
        path: Output PNG path.
        baselines: Optional mapping label -> value drawn as horizontal lines
            (models without LC layers).
        ylabel, title: Axis label and title.
    """
    if not series and not baselines:
        raise ValueError("`series` and `baselines` are both empty: nothing to plot.")
    figure = new_figure(figsize=(6, 4.2))
    axes = figure.add_subplot()
    ticks = set()
    for label, points in (series or {}).items():
        grouped = {}
        for expansion, value in points:
            if value is not None:
                grouped.setdefault(float(expansion), []).append(float(value))
        xs = sorted(grouped)
        ticks.update(xs)
        means = [np.mean(grouped[e]) for e in xs]
        stds = [np.std(grouped[e]) for e in xs]
        axes.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=str(label))
    for label, value in (baselines or {}).items():
        axes.axhline(float(value), linestyle="--", color="black", linewidth=1, label=str(label))
    axes.set_xscale("log", base=2)
    if ticks:
        axes.set_xticks(sorted(ticks), [f"{e:g}" for e in sorted(ticks)])
        axes.minorticks_off()
    axes.set_xlabel("LC expansion E")
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=8)
    axes.set_title(title or f"{ylabel} vs expansion")
    figure.tight_layout()
    return save_figure(figure, path)
