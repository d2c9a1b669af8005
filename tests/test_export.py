"""`keras-lc export`: a finished run published into a zoo folder and loaded back by name."""

import json
import shutil

import h5py
import keras
import numpy as np
import pytest

from keras_lc import cli, zoo
from keras_lc.data import load_image_folder, sha256_of
from keras_lc.export import load_run
from keras_lc.samples import cifar10_test_sample
from keras_lc.weights import PretrainedWeights
from tests.reference import normalized_cifar10, raw_from_normalized, rel_error


#: Test images per class of the run's test split (what the manifest's `top1` is measured on).
TEST_PER_CLASS = 10


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, cifar_archive):
    out = tmp_path_factory.mktemp("runs") / "lc"
    code = cli.main(["train", "--model", "resnet_lc20", "--expansion", "4", "--dataset", "cifar10",
                     "--data-dir", str(cifar_archive), "--train-per-class", "20",
                     "--test-per-class", str(TEST_PER_CLASS), "--epochs", "1", "--batch-size", "50",
                     "--no-validation", "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def published(run_dir, tmp_path_factory):
    zoo_dir = tmp_path_factory.mktemp("zoo")
    assert cli.main(["export", str(run_dir), "--name", "tiny_lc", "--zoo-dir", str(zoo_dir)]) == 0
    return zoo_dir


def test_run_directory_contents(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tensorboard_logs"] is True
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    for name in ("config.json", "history.csv", "learning_curve.png", "final.weights.h5", "model.keras"):
        assert (run_dir / name).stat().st_size > 0, name
    assert keras.saving.load_model(run_dir / "model.keras", safe_mode=True).name == "resnet_lc20_16x4"


def test_export_writes_a_complete_entry(published, run_dir):
    entry_dir = published / "tiny_lc"
    assert sorted(p.name for p in published.iterdir()) == ["tiny_lc"]  # no staging left
    assert {p.name for p in entry_dir.iterdir()} == {
        "tiny_lc.weights.h5", "tiny_lc_notop.weights.h5", "tiny_lc_folded.keras", "saved_model",
        "tiny_lc.onnx", "tiny_lc.tflite", "README.md", "manifest.json"}
    entry = PretrainedWeights.from_json(entry_dir / "manifest.json")
    assert [(e.format, e.file_name) for e in entry.exports] == [
        ("saved_model", "saved_model"), ("onnx", "tiny_lc.onnx"), ("litert", "tiny_lc.tflite")]
    assert all(e.max_relative_difference <= 1e-4 and e.sample_top1 == entry.sample_top1_folded
               for e in entry.exports)
    assert entry.sha256 == sha256_of(entry_dir / "tiny_lc.weights.h5")
    assert entry.notop_sha256 == sha256_of(entry_dir / "tiny_lc_notop.weights.h5")
    assert entry.model == "resnet_lc20_16x4" and entry.weights == "cifar10" and entry.classes == 10
    assert entry.command.startswith("keras-lc train --model resnet_lc20 --expansion 4")
    assert abs(entry.top1 - entry.top1_folded) <= 0.01 and 0 <= entry.top1 <= 1
    card = (entry_dir / "README.md").read_text()
    assert "Not the paper's full recipe**: 1 epochs instead of 75" in card and entry.sha256 in card
    assert f"{entry.top1:.2%}" in card
    with h5py.File(entry_dir / "tiny_lc.weights.h5") as f:  # compact: no frozen kernel stored
        names = []
        f.visit(names.append)
    assert not any(n.endswith("spatial_kernel") or n.endswith("/basis") for n in names)
    assert any(n.endswith("basis_coefficients") for n in names)


def test_published_forms_agree_with_the_run(published, run_dir, cifar_test_images):
    import tensorflow as tf

    x, _ = cifar_test_images
    raw = raw_from_normalized(x[:32])
    _, model = load_run(run_dir)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict_on_batch(x[:32])))
    folded = keras.saving.load_model(published / "tiny_lc" / "tiny_lc_folded.keras", safe_mode=True)
    assert rel_error(folded.predict_on_batch(raw), expected) <= 1e-5  # raw in, probabilities out
    served = tf.saved_model.load(str(published / "tiny_lc" / "saved_model"))
    assert rel_error(served.serve(tf.constant(raw)), expected) <= 1e-5


def test_builder_loads_the_published_weights_by_name(published, run_dir, cifar_test_images, monkeypatch):
    x, _ = cifar_test_images
    monkeypatch.setenv("KERAS_LC_ZOO", str(published))
    _, model = load_run(run_dir)
    # the default (composed) form loads the basis-form file: A -> C
    loaded = zoo.resnet_lc20(expansion=4, weights="cifar10", classifier_activation=None, seed=0,
                             include_preprocessing=False)
    assert rel_error(loaded.predict_on_batch(x[:32]), model.predict_on_batch(x[:32])) <= 1e-5
    raw_in = zoo.resnet_lc20(expansion=4, weights="cifar10", classifier_activation=None, seed=0)
    assert raw_in.get_layer("preprocessing").__class__ is keras.layers.Normalization
    assert rel_error(raw_in.predict_on_batch(raw_from_normalized(x[:32])), model.predict_on_batch(x[:32])) <= 1e-5
    with pytest.raises(ValueError, match=r"`classes` should be 10"):
        zoo.resnet_lc20(expansion=4, weights="cifar10", classes=5)


def test_include_top_false_gives_the_trained_backbone(published, run_dir, cifar_test_images, monkeypatch):
    x, _ = cifar_test_images
    monkeypatch.setenv("KERAS_LC_ZOO", str(published))
    _, model = load_run(run_dir)
    features = keras.Model(model.inputs, model.get_layer("avg_pool").input)
    extractor = zoo.resnet_lc20(expansion=4, weights="cifar10", include_top=False, seed=0,
                                input_shape=(32, 32, 3), include_preprocessing=False)
    assert extractor.output_shape == (None, 8, 8, 64)
    assert rel_error(extractor.predict_on_batch(x[:16]), features.predict_on_batch(x[:16])) <= 1e-5


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, after the refused load
def test_weights_of_another_architecture_get_a_clear_error(published):
    path = published / "tiny_lc" / "tiny_lc.weights.h5"
    with pytest.raises(ValueError, match=r"do not fit model 'resnet_lc20_16x2'.*arguments the weights were saved with"):
        zoo.resnet_lc20(expansion=2, weights=str(path), classifier_activation=None)


def test_export_replaces_an_entry_and_refuses_bad_input(published, run_dir, capsys, tmp_path):
    zoo_dir = tmp_path / "zoo"  # a copy: the module's `published` zoo stays as other tests read it
    shutil.copytree(published, zoo_dir, symlinks=True)
    before = json.loads((zoo_dir / "tiny_lc" / "manifest.json").read_text())
    assert cli.main(["export", str(run_dir), "--name", "tiny_lc", "--zoo-dir", str(zoo_dir),
                     "--weights-tag", "cifar10_again", "--formats", "none"]) == 0
    after = json.loads((zoo_dir / "tiny_lc" / "manifest.json").read_text())
    assert after["weights"] == "cifar10_again" and after["sha256"] == before["sha256"]
    # The replaced entry is the new export's alone: no SavedModel/ONNX/LiteRT left from before.
    assert after["exports"] == [] and not (zoo_dir / "tiny_lc" / "saved_model").exists()
    assert sorted(p.name for p in zoo_dir.iterdir()) == ["tiny_lc"]
    capsys.readouterr()
    assert cli.main(["export", str(run_dir), "--name", "Bad Name", "--zoo-dir", str(zoo_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Received: 'Bad Name'" in err[0]
    assert cli.main(["export", str(zoo_dir), "--name", "x", "--zoo-dir", str(zoo_dir)]) == 2
    assert "has no summary.json" in capsys.readouterr().err
    assert json.loads((published / "tiny_lc" / "manifest.json").read_text())["weights"] == "cifar10"


def _argmax_top1(model, images, labels):
    """`(top-1, slack)`: the fraction of `labels` that `model`'s argmax on `images` gives, and
    the fraction of images whose two highest outputs lie within 1e-5 (relative) of each other
    (their argmax another batching's rounding may flip)."""
    outputs = np.asarray(model.predict_on_batch(images), dtype=np.float64)
    top2 = np.sort(outputs, axis=-1)[:, -2:]
    ties = np.sum(top2[:, 1] - top2[:, 0] <= 1e-5 * np.abs(outputs).max(axis=-1))
    return float(np.mean(np.argmax(outputs, axis=-1) == labels)), ties / len(labels)


def test_recorded_top1_is_the_argmax_of_the_published_files(published, cifar_archive):
    """The manifest's top-1 figures, re-measured here without `keras_lc.serving`: the argmax of
    the published weights (training form, normalized with CIFAR-10's literal constants) and of
    the published folded `.keras` (raw images) on the run's test images, the check slice and
    the shipped sample, against the true labels."""
    entry_dir = published / "tiny_lc"
    entry = PretrainedWeights.from_json(entry_dir / "manifest.json")
    training_form = zoo.get_model(entry.builder, **entry.model_kwargs)
    training_form.load_weights(entry_dir / entry.file_name)
    folded = keras.saving.load_model(entry_dir / "tiny_lc_folded.keras", safe_mode=True)
    assert entry.slice_per_class == 100
    sample = cifar10_test_sample()
    data = {"sample": (sample.images, sample.labels)}
    for split, per_class in (("test", TEST_PER_CLASS), ("slice", entry.slice_per_class)):
        images, labels, _ = load_image_folder(cifar_archive, "test", per_class=per_class)
        assert np.bincount(labels).tolist() == [per_class] * 10
        data[split] = images, labels
    recorded = {("test", "training"): entry.top1, ("test", "folded"): entry.top1_folded,
                ("slice", "training"): entry.slice_top1, ("slice", "folded"): entry.slice_top1_folded,
                ("sample", "training"): entry.sample_top1, ("sample", "folded"): entry.sample_top1_folded}
    measured = {}
    for split, (images, labels) in data.items():
        measured[split, "training"] = _argmax_top1(training_form, normalized_cifar10(images), labels)
        measured[split, "folded"] = _argmax_top1(folded, images.astype("float32"), labels)
    for key, (top1, slack) in measured.items():
        assert abs(top1 - recorded[key]) <= slack + 1e-12, (key, top1, recorded[key], slack)


def test_analyze_reads_a_training_run(run_dir, tmp_path, cifar_archive):
    out = tmp_path / "analysis"
    assert cli.main(["analyze", str(run_dir), "--out", str(out), "--data", str(cifar_archive),
                     "--limit", "20", "--epsilon", "1/255"]) == 0
    report = json.loads((out / "analysis.json").read_text())
    assert 0 <= report["robustness"]["clean_accuracy"] <= 1
    assert report["robustness"]["robust_accuracy"] <= report["robustness"]["clean_accuracy"] + 0.05
    assert len(list(out.glob("*.png"))) >= 3


def test_learned_lc_kernels_are_reexpressed_on_the_seeded_ones(tmp_path, cifar_test_images):
    """A learnable LC model ships as A + seed: loaded into the learnable model it
    computes the trained function, with the seed's spatial kernels."""
    import numpy as np

    from keras_lc.export import reexpress_on_seeds
    from keras_lc.layers import LCConv2D

    x, _ = cifar_test_images
    kwargs = {"depth": 8, "width": 4, "expansion": 16, "frozen_spatial": False, "seed": 1,
              "classifier_activation": None}
    config = {"model": {"name": "resnet_lc", "kwargs": kwargs}}
    rng = np.random.default_rng(0)

    def trained_model(**kwargs):
        model = zoo.resnet_lc(**kwargs)
        for layer in model.layers:  # stand-in for training: move every learned kernel
            if isinstance(layer, LCConv2D) and not layer.frozen_spatial:
                kernel = keras.ops.convert_to_numpy(layer.spatial_kernel)
                layer.spatial_kernel.assign(kernel + rng.normal(0, 0.1, kernel.shape).astype("float32"))
        return model

    trained = trained_model(**kwargs)
    twin, twin_kwargs = reexpress_on_seeds(config, trained)
    assert twin_kwargs["implementation"] == "basis" and twin_kwargs["frozen_spatial"] is True
    twin.save_weights(tmp_path / "small.weights.h5")
    trained.save_weights(tmp_path / "full.weights.h5")
    small, full = ((tmp_path / n).stat().st_size for n in ("small.weights.h5", "full.weights.h5"))
    assert small < full / 4, (small, full)
    loaded = zoo.resnet_lc(**kwargs)
    loaded.load_weights(tmp_path / "small.weights.h5")
    assert rel_error(loaded.predict_on_batch(x[:32]), trained.predict_on_batch(x[:32])) <= 1e-5
    layer = loaded.get_layer("stem_conv")
    assert not layer.frozen_spatial
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.spatial_kernel), layer.seed_kernel())
    for name in ("stage1_block1_conv1", "stage3_block1_conv2"):
        np.testing.assert_allclose(loaded.get_layer(name).fold()[0], trained.get_layer(name).fold()[0],
                                   rtol=1e-4, atol=1e-6)
    few = dict(kwargs, expansion=1)  # c_out * E < k*k*c_in: not representable, so not re-expressed
    assert reexpress_on_seeds({"model": {"name": "resnet_lc", "kwargs": few}}, trained_model(**few)) is None
    frozen = dict(kwargs, frozen_spatial=True)  # nothing learned to re-express
    assert reexpress_on_seeds({"model": {"name": "resnet_lc", "kwargs": frozen}}, trained_model(**frozen)) is None
