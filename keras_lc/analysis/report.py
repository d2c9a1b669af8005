"""`analyze`: every analysis of one model written to a folder (PNG figures and a JSON of every number)."""

import json
import math
from collections import OrderedDict
from pathlib import Path

import keras
import numpy as np

from keras_lc.analysis import plots
from keras_lc.analysis.entropy import filter_stats
from keras_lc.analysis.filters import combined_filters, conv_layers
from keras_lc.analysis.robustness import robust_accuracy
from keras_lc.analysis.spatial import spatial_variance, spatial_variance_by_size
from keras_lc.data import CIFAR10_MEAN, CIFAR10_STD
from keras_lc.layers import LCConv2D
from keras_lc.training.run_dir import MODEL
from keras_lc.weights import published_weights
from keras_lc.zoo.pretrained import load_published, preprocessing_of, split_preprocessing

REPORT_NAME = "analysis.json"
COMPARISON_NAME = "comparison.json"


def write_json(path, payload):
    """Write `payload` as indented JSON, atomically (NaN is refused: use None)."""

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2, allow_nan=False)
            f.write("\n")

    return plots.atomic_write(path, write)


def resolve_model_path(model_or_run):
    """The `.keras` file named by a path to the file itself or to a run directory holding one,
    or the name itself when it is a published model's (`keras-lc list --pretrained`).

    A run directory must hold exactly one `*.keras` file at its top level, or
    several of which one is `model.keras`.
    """
    path = Path(model_or_run)
    if path.is_file():
        if path.suffix != ".keras":
            raise ValueError(f"Expected a .keras model file or a run directory. Received: '{path}'")
        return path
    if path.is_dir():
        found = sorted(path.glob("*.keras"))
        if len(found) == 1:
            return found[0]
        if (path / MODEL).is_file():
            return path / MODEL
        if not found:
            raise FileNotFoundError(f"No .keras model file in run directory '{path}'.")
        raise ValueError(
            f"Run directory '{path}' holds several .keras files {[p.name for p in found]}; "
            "pass the one to analyze."
        )
    published = published_weights(requested=str(model_or_run))
    if str(model_or_run) in published:
        return str(model_or_run)
    raise FileNotFoundError(
        f"No such model file, run directory or published model: '{path}' "
        f"(published: {sorted(published)})"
    )


def load_model(model_or_run):
    """Load the model of `resolve_model_path(model_or_run)` (safe mode); a published model by
    its builder call, in the form it was trained in (normalized inputs, logits), whose
    combined filters are the paper's (no BatchNorm folded in)."""
    import keras_lc  # noqa: F401  (registers the package's serializable layers)

    resolved = resolve_model_path(model_or_run)
    if isinstance(resolved, str):
        return load_published(resolved, classifier_activation=None, include_preprocessing=False)
    return keras.saving.load_model(resolved, safe_mode=True)


def load_test_images(data, limit=None, split="test"):
    """Uint8 images and labels of an image-folder dataset's `split`, class-balanced.

    With `limit`, `ceil(limit / classes)` images of each class are read and
    `limit` of them kept in a fixed shuffled order.
    """
    from keras_lc.data import find_image_folder, load_image_folder

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a positive integer or None. Received: limit={limit!r}")
    per_class = None
    if limit is not None:
        folder = find_image_folder(data, split)
        classes = sum(1 for p in folder.iterdir() if p.is_dir())
        per_class = math.ceil(limit / max(classes, 1))
    images, labels, _ = load_image_folder(data, split, per_class=per_class)
    order = np.random.default_rng(0).permutation(len(labels))[:limit]
    return images[order], labels[order]


def _layer_info(layer):
    info = {"type": type(layer).__name__}
    if isinstance(layer, LCConv2D):
        info.update(expansion=layer.expansion, frozen_spatial=layer.frozen_spatial)
    return info


def _fve(stats):
    """The FVE the paper reports: normalized for 3x3, else raw."""
    return stats.entropy if stats.normalized_entropy is None else stats.normalized_entropy


def _unique(values):
    values = set(values)
    return values.pop() if len(values) == 1 else None


def analyze(
    model,
    out_dir,
    data=None,
    epsilon=1 / 255,
    limit=None,
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    batch_size=128,
    verbose=0,
):
    """Analyze a model's filters (and optionally FGSM robustness); write figures and JSON.

    Writes into `out_dir`: `filters_first.png` and `filters_last.png` (the
    combined filters of the first and last LC layer, or of the first and last
    k x k conv when the model has no LC layer), `spatial_variance_layers.png`
    (per layer), `spatial_variance_model.png` (all kernels of a size stacked,
    the paper's Figure 8b), `fve_per_layer.png`, and `analysis.json` with
    every number. Only layers with kernels larger than 1x1 are analyzed; an
    LCConv2D with a ReLU between its stages has no combined filter and is
    listed under `skipped_layers`.

    Args:
        model: A built `keras.Model`.
        out_dir: Output folder (created).
        data: For FGSM: `(images, labels)` (images normalized, or uint8),
            or the path of an image-folder dataset (archive or folder) whose
            test split is used. `None` skips the robustness analysis.
        epsilon: FGSM budget in pixel units (the paper: 1/255).
        limit: Use at most this many images: the first `limit` of given
            arrays, or a class-balanced sample when `data` is a dataset path.
        mean, std: The model's input normalization.
        batch_size: FGSM batch size.
        verbose: Keras progress bar during FGSM.

    Returns:
        The dict written to `analysis.json`.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kernels, layers, stats, skipped = OrderedDict(), OrderedDict(), OrderedDict(), OrderedDict()
    for name, layer in conv_layers(model, spatial_only=True).items():
        try:
            kernels[name] = combined_filters(layer)
        except ValueError as error:  # e.g. a ReLU between the LC stages
            skipped[name] = str(error)
            continue
        stats[name] = filter_stats(kernels[name])
        layers[name] = _layer_info(layer)
        layers[name].update(
            kernel_shape=list(kernels[name].shape),
            **stats[name].to_dict(),
            spatial_variance=spatial_variance(kernels[name]).tolist(),
        )
    if not kernels:
        raise ValueError(
            f"Model '{model.name}' has no convolution layer with a k x k kernel (k > 1) to analyze"
            + (f"; skipped: {dict(skipped)}." if skipped else ".")
        )
    names = list(kernels)
    lc_names = [n for n in names if layers[n]["type"] == "LCConv2D"]
    grid_names = lc_names or names
    by_size = spatial_variance_by_size(kernels)
    figures = {}
    for key, name in (("filters_first", grid_names[0]), ("filters_last", grid_names[-1])):
        plots.plot_filter_grid(kernels[name], out_dir / f"{key}.png", title=f"{model.name}: {name}")
        figures[key] = {"file": f"{key}.png", "layer": name}
    plots.plot_variance_heatmaps(
        OrderedDict((n, layers[n]["spatial_variance"]) for n in names),
        out_dir / "spatial_variance_layers.png",
        title=f"{model.name}: spatial variance per layer",
    )
    figures["spatial_variance_layers"] = {"file": "spatial_variance_layers.png"}
    plots.plot_variance_heatmaps(
        OrderedDict((f"{h}x{w} (all layers)", v) for (h, w), v in by_size.items()),
        out_dir / "spatial_variance_model.png",
        title=f"{model.name}: spatial variance",
    )
    figures["spatial_variance_model"] = {"file": "spatial_variance_model.png"}
    plots.plot_fve_per_layer(stats, out_dir / "fve_per_layer.png", title=f"{model.name}: FVE per layer")
    figures["fve_per_layer"] = {"file": "fve_per_layer.png"}

    robustness = None
    if data is not None:
        images, labels = data if isinstance(data, (tuple, list)) else load_test_images(data, limit)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        # A model with its own preprocessing (a published one) takes raw pixels; the attack
        # works on normalized images, so it is given the model after that normalization.
        preprocessing, normalized_input_model = split_preprocessing(model)
        if preprocessing is not None:
            _check_preprocessing(preprocessing, mean, std)
        robustness = robust_accuracy(
            normalized_input_model, images, labels, epsilon, mean, std, batch_size, verbose=verbose
        ).to_dict()

    lc_layers = [layers[n] for n in lc_names]
    report = {
        "model": model.name,
        "num_parameters": int(model.count_params()),
        "expansion": _unique(layer["expansion"] for layer in lc_layers),
        "frozen_spatial": _unique(layer["frozen_spatial"] for layer in lc_layers),
        "num_lc_layers": len(lc_names),
        "first_layer": {"name": names[0], "fve": _fve(stats[names[0]])},
        "last_layer": {"name": names[-1], "fve": _fve(stats[names[-1]])},
        "layers": layers,
        "skipped_layers": skipped,
        "spatial_variance_by_kernel_size": {f"{h}x{w}": v.tolist() for (h, w), v in by_size.items()},
        "robustness": robustness,
        "figures": figures,
    }
    write_json(out_dir / REPORT_NAME, report)
    return report


def _check_preprocessing(layer, mean, std):
    """The model's own normalization must be the `mean`/`std` the attack assumes."""
    own = preprocessing_of(layer)
    if not (np.allclose(own.mean, mean, atol=1e-4) and np.allclose(own.std, std, atol=1e-4)):
        raise ValueError(
            f"The model normalizes its inputs with mean {[round(v, 4) for v in own.mean]} and "
            f"std {[round(v, 4) for v in own.std]} (of pixels in [0, 1]), but the analysis was given mean "
            f"{list(mean)} and std {list(std)}; pass the model's own."
        )


def compare(reports, out_dir):
    """FVE of the first and last layer against the LC expansion across several analyzed models.

    Models with LC layers form the series "frozen random LC" and "learnable
    LC" (by `frozen_spatial`); models without LC layers are drawn as
    horizontal baselines. Writes `fve_vs_expansion_first.png`,
    `fve_vs_expansion_last.png` and `comparison.json`.

    Args:
        reports: Dicts returned by `analyze` (or read from `analysis.json`).
        out_dir: Output folder.

    Returns:
        The dict written to `comparison.json`.
    """
    reports = list(reports)
    if len(reports) < 2:
        raise ValueError(f"Comparing needs at least 2 analyzed models. Received {len(reports)}.")
    out_dir = Path(out_dir)
    rows, figures = [], {}
    for report in reports:
        if report["num_lc_layers"] and report["expansion"] is None:
            raise ValueError(
                f"Model '{report['model']}' mixes LC layers of different expansions; "
                "it has no single expansion to plot against."
            )
        rows.append(
            {
                "model": report["model"],
                "expansion": report["expansion"],
                "frozen_spatial": _frozen_spatial(report),
                "first_layer_fve": report["first_layer"]["fve"],
                "last_layer_fve": report["last_layer"]["fve"],
            }
        )
    for which in ("first", "last"):
        series, baselines = {}, {}
        for row in rows:
            value = row[f"{which}_layer_fve"]
            if row["expansion"] is None:
                baselines[f"{row['model']} (no LC)"] = value
            else:
                label = "frozen random LC" if row["frozen_spatial"] else "learnable LC"
                series.setdefault(label, []).append((row["expansion"], value))
        name = f"fve_vs_expansion_{which}.png"
        plots.plot_fve_vs_expansion(
            series, out_dir / name, baselines, title=f"FVE of the {which} conv layer vs expansion"
        )
        figures[f"fve_vs_expansion_{which}"] = {"file": name}
    comparison = {"models": rows, "figures": figures}
    write_json(out_dir / COMPARISON_NAME, comparison)
    return comparison


def _frozen_spatial(report):
    """The report's `frozen_spatial`; reports of version 0.1.0 stored its inverse."""
    if "frozen_spatial" in report or report.get("spatial_trainable") is None:
        return report.get("frozen_spatial")
    return not report["spatial_trainable"]
