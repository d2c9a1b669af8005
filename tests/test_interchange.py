"""ONNX, LiteRT and SavedModel exports (`keras_lc.interchange`), each run back in its own runtime.

The published models' exports are checked against their folded `.keras` on the shipped sample;
`export_formats` is checked on a small model with every kind of layer a folded model has
(Normalization preprocessing, Conv2D with bias, DepthwiseConv2D, Dense, softmax).
"""

import hashlib

import keras
import numpy as np
import onnxruntime
import pytest

from keras_lc import interchange, weights
from keras_lc.archives import sha256_of, tree_sha256
from keras_lc.samples import cifar10_test_sample
from tests.harness import run_cli

PUBLISHED = weights.published_weights()


def _small_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 12, 3), name="images")
    x = keras.layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[3000.0, 3500.0, 4000.0],
                                   name="preprocessing")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", bias_initializer="random_normal", activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, bias_initializer="random_normal")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax", bias_initializer="random_normal")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = _small_model()
    folder = tmp_path_factory.mktemp("exports")
    images = np.random.default_rng(1).integers(0, 256, size=(20, 12, 12, 3)).astype(np.float32)
    labels = np.arange(20) % 5
    checks = interchange.export_formats(model, folder, "small", "auto", images, labels)
    return model, folder, checks, images, labels


def test_every_format_is_written_checked_and_recorded(exported):
    model, folder, checks, images, labels = exported
    assert [c.format for c in checks] == list(interchange.FORMATS)
    assert sorted(p.name for p in folder.iterdir()) == ["saved_model", "small.onnx", "small.tflite"]
    reference = model.predict(images, verbose=0)
    for check in checks:
        path = folder / check.file_name
        assert check.sha256 == (tree_sha256(path) if path.is_dir() else sha256_of(path))
        outputs = interchange.run_export(path, check.format, images)
        assert outputs.shape == (20, 5)
        difference = np.max(np.abs(outputs - reference)) / np.max(np.abs(reference))
        assert difference <= 1e-5, (check.format, difference)
        assert check.max_relative_difference == pytest.approx(difference, rel=1e-6, abs=1e-12)
        assert check.sample_top1 == np.mean(np.argmax(outputs, axis=-1) == labels)
        assert check.runtime.split()[0] in ("tensorflow", "onnxruntime", "ai_edge_litert")


def test_exports_take_any_batch_size(exported):
    model, folder, checks, _, _ = exported
    for batch in (1, 7):
        x = np.random.default_rng(batch).uniform(0, 255, size=(batch, 12, 12, 3)).astype(np.float32)
        reference = model.predict(x, verbose=0)
        for check in checks:
            outputs = interchange.run_export(folder / check.file_name, check.format, x)
            assert np.max(np.abs(outputs - reference)) <= 1e-5 * np.max(np.abs(reference)), check.format


def test_the_onnx_graph_takes_only_the_images(exported):
    _, folder, _, _, _ = exported
    session = onnxruntime.InferenceSession(str(folder / "small.onnx"), providers=["CPUExecutionProvider"])
    (only,) = session.get_inputs()  # the Normalization statistics are constants, not inputs
    assert only.shape[1:] == [12, 12, 3] and only.type == "tensor(float)"


def test_onnx_ready_swaps_fixed_normalization_for_the_same_rescaling():
    model = _small_model()
    ready = interchange.onnx_ready(model)
    assert ready is not model
    assert [type(layer).__name__ for layer in ready.layers][1] == "Rescaling"
    x = np.random.default_rng(0).uniform(0, 255, size=(4, 12, 12, 3)).astype(np.float32)
    reference = model.predict(x, verbose=0)
    assert np.max(np.abs(ready.predict(x, verbose=0) - reference)) <= 1e-6 * np.max(np.abs(reference))
    plain = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 1)])
    assert interchange.onnx_ready(plain) is plain


def test_a_failed_check_raises_one_line_and_keeps_nothing(tmp_path, monkeypatch):
    model = _small_model()
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "saved_model" / "old.txt").write_text("the earlier export")
    real = interchange.run_export

    def off_by_a_bit(path, format, images):
        outputs = real(path, format, images)
        return outputs + (1e-3 if format == "litert" else 0.0)

    monkeypatch.setattr(interchange, "run_export", off_by_a_bit)
    with pytest.raises(interchange.ExportCheckError, match=r"litert export of 'small' differs from the "
                       r"Keras model by \d\.\d\de-0\d .*allowed: 0\.0001\)\.$") as error:
        interchange.export_formats(model, tmp_path, "small", ("saved_model", "litert"))
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]  # no staging folder left
    assert (tmp_path / "saved_model" / "old.txt").read_text() == "the earlier export"


def test_formats_are_validated_and_a_missing_extra_is_named(monkeypatch):
    assert interchange.resolve_formats(["onnx", "litert"]) == ("onnx", "litert")
    with pytest.raises(ValueError, match=r"some of \['saved_model', 'onnx', 'litert'\]\. Received: \('tflite',\)"):
        interchange.resolve_formats(["tflite"])
    monkeypatch.setitem(interchange.REQUIREMENTS, "onnx", ("tensorflow", "no_such_module_for_the_test"))
    assert interchange.resolve_formats("auto") == ("saved_model", "litert")
    with pytest.raises(interchange.MissingExtraError,
                       match=r"needs no_such_module_for_the_test, which is not installed: "
                             r"pip install 'keras-lc\[export\]'\.$"):
        interchange.resolve_formats(("onnx",))


def test_formats_on_another_backend_are_skipped_or_refused_in_one_line(monkeypatch):
    """On JAX or PyTorch `auto` writes none; asking for one names the backend and the way out."""
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert interchange.resolve_formats("auto") == ()
    assert interchange.unavailable("litert") == "is written on the TensorFlow backend (Keras runs on 'jax' here)"
    with pytest.raises(interchange.BackendError,
                       match=r"^The 'onnx' export is written on the TensorFlow backend \(Keras runs on 'jax' "
                             r"here\): run this with KERAS_BACKEND=tensorflow, which reads the files written "
                             r"on any backend\.$"):
        interchange.resolve_formats(("onnx", "litert"))


def test_export_command_rejects_bad_formats_in_one_line(tmp_path, capsys, monkeypatch):
    code, out, err = run_cli(["export", str(tmp_path), "--name", "x", "--formats", "onnx,tflite"], capsys)
    assert code == 2 and out == ""
    assert ("argument --formats: expected 'auto', 'none' or a comma-separated list of saved_model, onnx, litert, "
            "got 'onnx,tflite'") in err and len(err.strip().splitlines()) == 1
    monkeypatch.setitem(interchange.REQUIREMENTS, "litert", ("no_such_module_for_the_test",))
    code, out, err = run_cli(["export", str(tmp_path), "--name", "x", "--formats", "litert"], capsys)
    assert code == 2 and "pip install 'keras-lc[export]'" in err and len(err.strip().splitlines()) == 1


def test_tree_sha256_covers_names_and_contents(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"123")
    expected = hashlib.sha256(f"a/x.bin {hashlib.sha256(b'123').hexdigest()}\n".encode()).hexdigest()
    assert tree_sha256(tmp_path) == expected
    (tmp_path / "a" / "x.bin").write_bytes(b"124")
    assert tree_sha256(tmp_path) != expected
    (tmp_path / "a" / "x.bin").rename(tmp_path / "a" / "y.bin")
    assert tree_sha256(tmp_path) != expected


@pytest.fixture(scope="module")
def sample():
    return cifar10_test_sample()


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_exports_match_the_folded_model_in_their_runtimes(name, sample):
    entry = PUBLISHED[name]
    folder = weights.packaged_file(entry, entry.file_name).parent
    folded = keras.saving.load_model(folder / f"{name}_folded.keras", safe_mode=True)
    reference = folded.predict(sample.images.astype(np.float32), verbose=0)
    assert sorted(e.format for e in entry.exports) == sorted(interchange.FORMATS)
    for check in entry.exports:
        path = folder / check.file_name
        assert check.sha256 == (tree_sha256(path) if path.is_dir() else sha256_of(path)), check.format
        outputs = interchange.run_export(path, check.format, sample.images)
        difference = np.max(np.abs(outputs - reference)) / np.max(np.abs(reference))
        assert difference <= 1e-4, (check.format, difference)
        top1 = float(np.mean(np.argmax(outputs, axis=-1) == sample.labels))
        assert top1 == check.sample_top1 == entry.sample_top1_folded, check.format
    session = onnxruntime.InferenceSession(str(folder / entry.export("onnx").file_name),
                                           providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]  # as the README's example feeds it
