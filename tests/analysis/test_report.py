"""analyze / compare / the `analyze` CLI: every figure written, every number in the JSON."""

import argparse
import json
import math

import keras
import numpy as np
import pytest

from keras_lc.analysis import (
    analyze,
    combined_filters,
    compare,
    filter_stats,
    robust_accuracy,
    spatial_variance,
    spatial_variance_by_size,
)
from keras_lc.analysis.report import load_test_images
from keras_lc.cli import analyze as cli
from keras_lc.layers import LCConv2D
from tests.analysis.test_plots import assert_png


def _model(expansion=2, frozen_spatial=True, lc=True, name="m"):
    def conv(filters, k, seed, **kwargs):
        if lc:
            return LCConv2D(filters, k, expansion=expansion, frozen_spatial=frozen_spatial,
                            seed=seed, **kwargs)
        return keras.layers.Conv2D(filters, k, padding="same", **kwargs)

    x = inputs = keras.Input((32, 32, 3))
    x = conv(8, 3, 0, name="first")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = conv(8, 5, 1, name="mid")(x)
    x = keras.layers.Conv2D(8, 1, name="pointwise")(x)
    if lc:
        x = LCConv2D(8, 3, expansion=expansion, intermediate="relu", seed=2, name="relu_lc")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="last")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=name)


def _numbers(tree):
    """Every number in a JSON tree."""
    if isinstance(tree, dict):
        return [n for v in tree.values() for n in _numbers(v)]
    if isinstance(tree, list):
        return [n for v in tree for n in _numbers(v)]
    return [tree] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


FIGURES = ("filters_first", "filters_last", "spatial_variance_layers", "spatial_variance_model",
           "fve_per_layer")


def test_analyze_writes_every_figure_and_number(tmp_path, cifar_test_images):
    model = _model()
    x, y = cifar_test_images
    report = analyze(model, tmp_path, data=(x, y), limit=40, epsilon=2 / 255)
    on_disk = json.loads((tmp_path / "analysis.json").read_text())
    assert on_disk == report
    assert all(math.isfinite(n) for n in _numbers(on_disk)) and len(_numbers(on_disk)) > 100

    for key in FIGURES:
        assert_png(tmp_path / on_disk["figures"][key]["file"])
    assert on_disk["figures"]["filters_first"]["layer"] == "first"
    assert on_disk["figures"]["filters_last"]["layer"] == "mid"  # the last LC layer with a fold

    # k x k layers only (no 1x1), the ReLU LC layer skipped with the reason.
    layers = on_disk["layers"]
    assert list(layers)[0] == "first" and list(layers)[-1] == "last" and len(layers) == 3
    assert "pointwise" not in layers
    assert "not linear" in on_disk["skipped_layers"]["relu_lc"]
    kernels = {name: combined_filters(model.get_layer(name)) for name in layers}
    for name, entry in layers.items():
        stats = filter_stats(kernels[name]).to_dict()
        assert {k: entry[k] for k in stats} == stats
        assert entry["kernel_shape"] == list(kernels[name].shape)
        assert np.array_equal(entry["spatial_variance"], spatial_variance(kernels[name]))
    assert layers["first"]["type"] == "LCConv2D" and layers["first"]["expansion"] == 2
    assert layers["last"]["type"] == "Conv2D"
    by_size = spatial_variance_by_size(kernels)
    assert sorted(on_disk["spatial_variance_by_kernel_size"]) == ["3x3", "5x5"]
    assert np.array_equal(on_disk["spatial_variance_by_kernel_size"]["3x3"], by_size[(3, 3)])
    assert on_disk["first_layer"]["fve"] == layers["first"]["normalized_entropy"]
    assert on_disk["last_layer"]["fve"] == layers["last"]["normalized_entropy"]
    assert on_disk["expansion"] == 2 and on_disk["frozen_spatial"] is True
    assert on_disk["num_parameters"] == model.count_params()
    expected = robust_accuracy(model, x[:40], y[:40], epsilon=2 / 255).to_dict()
    assert on_disk["robustness"] == expected and expected["num_images"] == 40


def test_compare_across_expansions(tmp_path):
    reports = [
        analyze(_model(1, name="e1"), tmp_path / "e1"),
        analyze(_model(4, name="e4"), tmp_path / "e4"),
        analyze(_model(2, frozen_spatial=False, name="learn"), tmp_path / "learn"),
        analyze(_model(lc=False, name="base"), tmp_path / "base"),
    ]
    assert reports[3]["expansion"] is None and reports[3]["robustness"] is None
    comparison = compare(reports, tmp_path)
    assert json.loads((tmp_path / "comparison.json").read_text()) == comparison
    rows = {row["model"]: row for row in comparison["models"]}
    assert rows["e4"]["expansion"] == 4 and rows["learn"]["frozen_spatial"] is False
    assert rows["e1"]["first_layer_fve"] == reports[0]["first_layer"]["fve"]
    for which in ("first", "last"):
        assert_png(tmp_path / f"fve_vs_expansion_{which}.png")
    with pytest.raises(ValueError, match="at least 2"):
        compare(reports[:1], tmp_path)


def _parser():
    parser = argparse.ArgumentParser(prog="keras-lc")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser


def test_cli_on_a_run_directory_with_real_test_images(tmp_path, cifar_archive):
    run = tmp_path / "run1"
    run.mkdir()
    _model().save(run / "model.keras")
    args = _parser().parse_args(
        ["analyze", str(run), "--out", str(tmp_path / "out"), "--data", str(cifar_archive),
         "--limit", "20", "--epsilon", "8/255"]
    )
    assert args.func(args) == 0
    report = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert report["robustness"]["num_images"] == 20 and report["robustness"]["epsilon"] == 8 / 255
    for key in FIGURES:
        assert_png(tmp_path / "out" / report["figures"][key]["file"])

    # Two models: one folder each plus the comparison.
    (tmp_path / "e4").mkdir()
    _model(4).save(tmp_path / "e4" / "lc_e4.keras")
    args = _parser().parse_args(
        ["analyze", str(run), str(tmp_path / "e4" / "lc_e4.keras"), "--out", str(tmp_path / "both")]
    )
    assert args.func(args) == 0
    assert (tmp_path / "both" / "run1" / "analysis.json").is_file()
    assert (tmp_path / "both" / "lc_e4" / "analysis.json").is_file()
    assert_png(tmp_path / "both" / "fve_vs_expansion_first.png")


def test_a_published_model_with_its_preprocessing_is_attacked_after_it(tmp_path):
    """A published folded `.keras` takes raw pixels (its `preprocessing` layer): the clean
    accuracy on the shipped sample is the card's, and the attack is the one on the model after
    that normalization (was: every image fed normalized twice, 10% clean accuracy)."""
    from keras_lc import weights, zoo
    from keras_lc.samples import cifar10_test_sample

    entry = weights.published_weights()["resnet20_16_cifar10"]
    folder = weights.packaged_file(entry, entry.file_name).parent
    model = keras.saving.load_model(folder / f"{entry.name}_folded.keras", safe_mode=True)
    sample = cifar10_test_sample()
    report = analyze(model, tmp_path / "published", data=(sample.images, sample.labels))
    assert report["robustness"]["clean_accuracy"] == pytest.approx(entry.sample_top1)
    prep, rest = zoo.split_preprocessing(model)
    assert prep.name == "preprocessing" and rest.input_shape == model.input_shape
    assert zoo.split_preprocessing(rest) == (None, rest)
    expected = robust_accuracy(rest, sample.images, sample.labels).to_dict()
    assert report["robustness"] == expected and expected["robust_accuracy"] < expected["clean_accuracy"]
    with pytest.raises(ValueError, match=r"normalizes its inputs with mean \[0.4914, 0.4822, 0.4465\]"):
        analyze(model, tmp_path / "other", data=(sample.images, sample.labels), mean=(0.5, 0.5, 0.5))


def test_cli_on_a_published_model_by_name(tmp_path, cifar_archive):
    """`keras-lc analyze NAME`: the published model's training form (BatchNorm not folded into
    its combined filters), with its card's parameter count, on the test images it scores."""
    from keras_lc import weights, zoo

    args = _parser().parse_args(["analyze", "resnet20_16_cifar10", "--out", str(tmp_path / "out"),
                                 "--data", str(cifar_archive), "--limit", "20"])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "out" / "analysis.json").read_text())
    entry = weights.published_weights()["resnet20_16_cifar10"]
    assert report["num_parameters"] == entry.total_params and len(report["layers"]) == 19
    model = zoo.load_published("resnet20_16_cifar10", classifier_activation=None, include_preprocessing=False)
    stem = model.get_layer("stem_conv").kernel
    np.testing.assert_allclose(report["layers"]["stem_conv"]["spatial_variance"],
                               spatial_variance(keras.ops.convert_to_numpy(stem)).tolist())
    images, labels = load_test_images(cifar_archive, 20)
    expected = robust_accuracy(model, images, labels).to_dict()
    assert report["robustness"] == expected


def test_cli_user_mistakes_are_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "two").mkdir()
    for name in ("a.keras", "b.keras"):
        (tmp_path / "two" / name).write_bytes(b"x")
    (tmp_path / "model.h5").write_bytes(b"x")
    (tmp_path / "ok.keras").write_bytes(b"x")
    cases = [
        (["missing"], FileNotFoundError,
         r"No such model file, run directory or published model: 'missing' \(published: \['resnet20_16_cifar10'"),
        ([str(tmp_path / "empty")], FileNotFoundError, "No .keras model file"),
        ([str(tmp_path / "two")], ValueError, r"\['a.keras', 'b.keras'\]"),
        ([str(tmp_path / "model.h5")], ValueError, "model.h5"),
        ([str(tmp_path / "ok.keras"), "--epsilon", "abc"], ValueError, "'abc'"),
        ([str(tmp_path / "ok.keras"), "--epsilon", "2"], ValueError, "'2'"),
        ([str(tmp_path / "ok.keras"), "--limit", "0"], ValueError, "--limit .* Received: 0"),
        ([str(tmp_path / "ok.keras"), "--data", "nowhere"], FileNotFoundError, "'nowhere'"),
    ]
    for argv, error, message in cases:
        args = _parser().parse_args(["analyze", *argv, "--out", str(tmp_path / "out")])
        with pytest.raises(error, match=message):
            args.func(args)
    assert not (tmp_path / "out").exists()
